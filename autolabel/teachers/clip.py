"""CLIP teacher (Hugging Face ``transformers``): zero-shot image classification and box re-scoring.

One class, two roles:

* **classifier** — :meth:`ClipTeacher.classify` returns ``(B, C)`` softmax probabilities over the ontology
  classes (and the logits on request). Each class is a *prompt ensemble*: every prompt of the class is put
  through every template (``"a photo of a {}."``, ... — :data:`DEFAULT_TEMPLATES`, the CLIP paper's prompt
  engineering), each text embedding is L2-normalized, the class's embeddings are averaged and the mean is
  renormalized. ``logits = logit_scale * cos(image, class)``. Text embeddings are computed once per teacher.
  As a *detection* teacher (:meth:`ClipTeacher.predict`) CLIP yields **image-level labels**: one whole-image
  box per image whose soft scores are the class probabilities (the classification pipeline calls
  :meth:`classify` directly).
* **re-scorer** — :meth:`ClipTeacher.rescore` crops every box of another teacher (with a context margin,
  letterboxed to a square so CLIP's center crop keeps the whole object), classifies the crops in batches
  and rewrites the soft scores:

  - ``"replace"``: ``soft = CLIP probabilities``, ``class_id = argmax``, and
    ``confidence = original confidence × CLIP probability of the new class`` — the detector vouches for
    *an object being there*, CLIP for *what it is*;
  - ``"multiply"`` (product of experts): ``posterior = normalize(original soft × CLIP probs)`` (rows sum to
    1; falls back to the CLIP probabilities when the product is all zero), then
    ``soft = original max score × posterior``, ``class_id = argmax``, ``confidence = soft[class_id]``. The
    row keeps the detector's objectness (its best score) and both models must agree on the class.

Example:
    >>> from autolabel.teachers import create_teacher
    >>> clip = create_teacher("clip", ontology=onto)                 # doctest: +SKIP
    >>> probs = clip.classify([rgb])                                  # doctest: +SKIP
    >>> dets = clip.rescore([rgb], owl.predict([rgb]), mode="replace") # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from autolabel.core.detections import SOFT_SCORES, empty_detections, make_detections
from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology
from autolabel.teachers import register_teacher
from autolabel.teachers.base import check_images
from autolabel.teachers.hf import HFTeacher

if TYPE_CHECKING:
    import supervision as sv
    import torch

__all__ = ["DEFAULT_TEMPLATES", "ClipTeacher", "crop_boxes"]

DEFAULT_WEIGHTS = "openai/clip-vit-base-patch32"

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a blurry photo of a {}.",
    "a cropped photo of a {}.",
    "a low resolution photo of a {}.",
)
"""Templates every prompt is put through (a subset of the CLIP paper's ImageNet ensemble)."""


def crop_boxes(image: np.ndarray, xyxy: np.ndarray, context: float = 0.1) -> list[np.ndarray]:
    """Crop boxes with a context margin and letterbox each crop to a square (gray padding).

    The margin is ``context`` × the box's width/height on each side, clipped to the image. Letterboxing
    keeps a tall person whole where CLIP's resize + center crop would cut head and feet.

    Example:
        >>> crops = crop_boxes(np.zeros((100, 200, 3), np.uint8), np.array([[10, 10, 30, 90.]]))
        >>> crops[0].shape
        (96, 96, 3)
    """
    h, w = image.shape[:2]
    out = []
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=np.float64).reshape(-1, 4):
        mx, my = (x2 - x1) * context, (y2 - y1) * context
        a = int(np.clip(np.floor(x1 - mx), 0, w - 1))
        b = int(np.clip(np.floor(y1 - my), 0, h - 1))
        c = int(np.clip(np.ceil(x2 + mx), a + 1, w))
        d = int(np.clip(np.ceil(y2 + my), b + 1, h))
        crop = image[b:d, a:c]
        side = max(crop.shape[:2])
        square = np.full((side, side, 3), 127, dtype=np.uint8)  # ~CLIP's mean: a neutral background
        oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        square[oy : oy + crop.shape[0], ox : ox + crop.shape[1]] = crop
        out.append(square)
    return out


@register_teacher(
    "CLIP zero-shot classifier (transformers): image-level labels, or re-scores another teacher's boxes"
)
class ClipTeacher(HFTeacher):
    """CLIP with prompt-ensembled class embeddings.

    Args:
        ontology: the classes; every prompt (through every template) describes its class.
        weights, device, model, processor: see :class:`~autolabel.teachers.hf.HFTeacher` (fp16 on CUDA).
        min_score: :meth:`predict` returns no box for an image whose top probability is below it.
        batch_size: images (or crops) per forward pass.
        templates: format strings with one ``{}`` for the prompt; ``("{}",)`` uses the prompts verbatim.
        context: crop margin of :meth:`rescore`, a fraction of the box size on each side.

    Example:
        >>> clip = ClipTeacher(onto, device="cpu")              # doctest: +SKIP
        >>> probs, logits = clip.classify(images, return_logits=True)  # doctest: +SKIP
    """

    name = "clip"
    default_weights = DEFAULT_WEIGHTS
    model_class = "CLIPModel"

    def __init__(self, ontology: Ontology, *args: Any, templates: Sequence[str] = DEFAULT_TEMPLATES,
                 context: float = 0.1, **kwargs: Any) -> None:
        templates = tuple(templates)
        if not templates or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates):
            raise TeacherError(f"clip: templates must be strings with exactly one '{{}}', found {templates!r}")
        self.templates = templates
        self.context = float(context)
        super().__init__(ontology, *args, **kwargs)
        self._class_embeds: torch.Tensor | None = None

    # -- text side ----------------------------------------------------------------------------
    @property
    def class_embeds(self) -> torch.Tensor:
        """``(C, D)`` unit-norm class embeddings (prompt × template ensembles), computed once."""
        if self._class_embeds is None:
            import torch

            texts = [t.format(p) for p in self.ontology.prompts for t in self.templates]
            owner = torch.tensor([c for c in self.ontology.prompt_class for _ in self.templates])
            max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
            embeds = []
            with torch.inference_mode():
                for i in range(0, len(texts), 256):  # bounded memory for big ontologies × templates
                    enc = self.tokenizer(
                        texts[i : i + 256], padding=True, truncation=True, max_length=max_len, return_tensors="pt"
                    )
                    out = self.model.get_text_features(
                        input_ids=enc["input_ids"].to(self.device),
                        attention_mask=enc["attention_mask"].to(self.device),
                    )
                    embeds.append(getattr(out, "pooler_output", out).float())  # 5.x: model output; 4.x: tensor
            e = torch.cat(embeds)
            e = e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            owner = owner.to(e.device)
            cls_e = torch.stack([e[owner == c].mean(0) for c in range(self.num_classes)])
            self._class_embeds = cls_e / cls_e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self._class_embeds

    # -- image side ---------------------------------------------------------------------------
    @overload
    def classify(self, images: Sequence[np.ndarray], return_logits: Literal[False] = ...) -> np.ndarray: ...

    @overload
    def classify(
        self, images: Sequence[np.ndarray], return_logits: Literal[True]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def classify(
        self, images: Sequence[np.ndarray], return_logits: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Zero-shot classify HxWx3 uint8 RGB images over the ontology classes.

        Returns:
            ``(B, C)`` float32 softmax probabilities (rows sum to 1); with ``return_logits=True`` also the
            ``(B, C)`` logits ``logit_scale * cos``.

        Example:
            >>> probs = clip.classify([rgb1, rgb2])        # doctest: +SKIP
            >>> probs.shape, probs.sum(1)                   # doctest: +SKIP
            ((2, 12), array([1., 1.], dtype=float32))
        """
        images = check_images(images, self.name)
        logits = self._logits(images)
        z = logits - logits.max(1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(1, keepdims=True)
        probs = probs.astype(np.float32)
        return (probs, logits) if return_logits else probs

    def _logits(self, images: list[np.ndarray]) -> np.ndarray:
        import torch

        C = self.num_classes
        if not images:
            return np.zeros((0, C), np.float32)
        text = self.class_embeds
        scale = float(self.model.logit_scale.detach().float().exp())
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                px = self.image_processor(images=images[i : i + self.batch_size], return_tensors="pt")
                out = self.model.get_image_features(pixel_values=px["pixel_values"].to(self.device, self.dtype))
                img = getattr(out, "pooler_output", out).float()
                img = img / img.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                chunks.append((scale * img @ text.T).cpu().numpy())
        return np.concatenate(chunks).astype(np.float32)

    def _predict_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        """Image-level labels as detections: one whole-image box per image, soft scores = class probabilities.

        An image whose top probability is below ``min_score`` gets no box.
        """
        probs = self.classify(images)
        out = []
        for img, p in zip(images, probs, strict=True):
            h, w = img.shape[:2]
            if p.max() < self.min_score:
                out.append(empty_detections(self.num_classes))
                continue
            out.append(make_detections(np.array([[0.0, 0.0, w, h]]), p[None]))
        return out

    # -- re-scoring ---------------------------------------------------------------------------
    def rescore(
        self,
        images: Sequence[np.ndarray],
        detections_list: Sequence[sv.Detections],
        mode: str = "replace",
    ) -> list[sv.Detections]:
        """Re-score another teacher's boxes with CLIP on their crops (see the module docs for the modes).

        Boxes, their order and every ``data`` array stay aligned; only ``class_id``, ``confidence`` and
        ``data["soft_scores"]`` change. The input detections are not modified.

        Args:
            images: the HxWx3 uint8 RGB images the detections were made on.
            detections_list: one Detections per image, boxes in that image's pixels.
            mode: ``"replace"`` or ``"multiply"``.

        Example:
            >>> dets = clip.rescore(images, owl.predict(images), mode="multiply")   # doctest: +SKIP
        """
        if mode not in ("replace", "multiply"):
            raise TeacherError(f"clip: rescore mode must be 'replace' or 'multiply', found {mode!r}")
        images = check_images(images, self.name)
        if len(images) != len(detections_list):
            raise TeacherError(
                f"clip: rescore got {len(images)} images but {len(detections_list)} detection sets"
            )
        crops: list[np.ndarray] = []
        for img, dets in zip(images, detections_list, strict=True):
            crops.extend(crop_boxes(img, dets.xyxy, self.context))
        all_probs = self.classify(crops) if crops else np.zeros((0, self.num_classes), np.float32)

        out: list[sv.Detections] = []
        start = 0
        for dets in detections_list:
            n = len(dets)
            q = all_probs[start : start + n]
            start += n
            new = copy.deepcopy(dets)
            if n == 0:
                new.data[SOFT_SCORES] = np.zeros((0, self.num_classes), np.float32)
                out.append(new)
                continue
            conf = (
                np.asarray(dets.confidence, np.float32)
                if dets.confidence is not None
                else np.ones(n, np.float32)
            )
            if mode == "replace":
                soft = q
                cid = soft.argmax(1)
                new_conf = conf * soft[np.arange(n), cid]
            else:
                old = dets.data.get(SOFT_SCORES)
                if old is None:  # a detector without soft scores: one-hot on its hard class
                    old = np.zeros((n, self.num_classes), np.float32)
                    old[np.arange(n), dets.class_id] = conf
                old = np.asarray(old, np.float32)
                prod = old * q
                total = prod.sum(1, keepdims=True)
                posterior = np.where(total > 1e-12, prod / np.maximum(total, 1e-12), q)
                soft = old.max(1, keepdims=True) * posterior
                cid = soft.argmax(1)
                new_conf = soft[np.arange(n), cid]
            new.class_id = cid.astype(int)
            new.confidence = np.clip(new_conf, 0.0, 1.0).astype(np.float32)
            new.data[SOFT_SCORES] = np.clip(soft, 0.0, 1.0).astype(np.float32)
            out.append(new)
        return out
