"""OWLv2 and OWL-ViT teachers (Hugging Face ``transformers``): open-vocabulary boxes with soft scores.

OWL models predict one box per image patch and score it against every text query independently. These
teachers

1. embed **all prompts of the ontology once** (cached text embeddings; every image batch reuses them, so a
   forward is one pass of the vision tower per batch, not images × prompts text passes);
2. take ``sigmoid`` of each (box, prompt) logit and combine a class's prompts with **max** (a box is a
   "person" when it matches any of the person prompts; a sum or noisy-OR would grow with the number of
   prompts a class happens to have) → ``soft_scores`` (N, C);
3. keep boxes whose best class score reaches ``min_score`` and run **per-class NMS** (IoU ``nms_iou``,
   0.5 by default) because neighbouring patches emit many near-identical boxes.

Boxes: OWL-ViT stretches the image to a square, so normalized boxes scale by (W, H). OWLv2 first pads the
image at the bottom/right to a square of side ``max(H, W)``, so normalized boxes scale by ``max(H, W)`` on
both axes (what ``Owlv2ImageProcessor.post_process_object_detection`` does in transformers 5.x when given the
original sizes); boxes are then clipped to the image and those lying wholly in the padding dropped.

Example:
    >>> from autolabel.teachers import create_teacher
    >>> teacher = create_teacher("owlv2", ontology=onto, min_score=0.1)   # doctest: +SKIP
    >>> dets = teacher.predict([rgb])[0]                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from autolabel.core.detections import empty_detections, make_detections, nms
from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology
from autolabel.core.weights import hf_from_pretrained, resolve_device
from autolabel.teachers import TEACHERS
from autolabel.teachers.base import Teacher
from autolabel.teachers.grounding_dino import _check_images

if TYPE_CHECKING:
    import supervision as sv
    import torch

__all__ = ["OwlV2Teacher", "OwlViTTeacher", "prompt_scores_to_class_scores"]

_PRE_NMS_TOPK = 2000  # OWLv2-B/16 has 3600 patches; supervision's NMS builds an N x N IoU matrix


def prompt_scores_to_class_scores(
    prompt_scores: np.ndarray, prompt_class: Sequence[int], num_classes: int
) -> np.ndarray:
    """Combine ``(..., P)`` per-prompt scores into ``(..., C)`` class scores by max over a class's prompts.

    Classes with no prompt score 0.

    Example:
        >>> prompt_scores_to_class_scores(np.array([[0.2, 0.7, 0.4]]), [0, 0, 1], 3)
        array([[0.7, 0.4, 0. ]], dtype=float32)
    """
    s = np.asarray(prompt_scores, dtype=np.float32)
    pc = np.asarray(prompt_class)
    out = np.zeros((*s.shape[:-1], num_classes), dtype=np.float32)
    for c in np.unique(pc):
        out[..., c] = s[..., pc == c].max(-1)
    return out


class _OwlTeacher(Teacher):
    """Shared OWL-ViT / OWLv2 logic; subclasses name the model and processor classes and the box geometry.

    Args:
        ontology: the classes; every prompt of every class is a text query.
        weights: a Hugging Face id or a folder saved with ``save_pretrained`` (model + processor).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; fp16 is used on CUDA.
        min_score: lowest best-class score of a kept box (defaults to the lowest class threshold).
        batch_size: images per forward pass.
        nms_iou: IoU of the per-class NMS (``None`` or ``>= 1`` disables it).
        max_detections: most boxes kept per image after NMS (highest scores first).
        model, processor: an already-built model and processor (see :meth:`from_model`).
    """

    _model_class: ClassVar[str]
    _pads_to_square: ClassVar[bool]

    def __init__(
        self,
        ontology: Ontology,
        weights: str | None = None,
        device: str = "auto",
        min_score: float | None = None,
        batch_size: int = 8,
        *,
        nms_iou: float | None = 0.5,
        max_detections: int = 300,
        model: Any = None,
        processor: Any = None,
    ) -> None:
        super().__init__(ontology, weights, device, min_score, batch_size)
        self.nms_iou = nms_iou
        self.max_detections = int(max_detections)
        if model is None or processor is None:
            import transformers

            assert self.weights is not None
            processor = hf_from_pretrained(transformers.AutoProcessor, self.weights, self.name)
            model = hf_from_pretrained(getattr(transformers, self._model_class), self.weights, self.name)
        self._setup(model, processor)

    @classmethod
    def from_model(cls, model: Any, processor: Any, ontology: Ontology, **kwargs: Any) -> _OwlTeacher:
        """Wrap an already-built model and processor (tests, custom checkpoints).

        Example:
            >>> teacher = OwlV2Teacher.from_model(model, processor, onto, device="cpu")  # doctest: +SKIP
        """
        kwargs.setdefault("weights", getattr(model, "name_or_path", None) or "in-memory")
        return cls(ontology, model=model, processor=processor, **kwargs)

    def _setup(self, model: Any, processor: Any) -> None:
        import torch

        self.device = resolve_device(self.device_spec)
        # fp16 halves memory and roughly doubles speed on GPUs; CPUs have no fast fp16 kernels
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.model = model.to(self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.image_processor = getattr(processor, "image_processor", processor)
        self.tokenizer = getattr(processor, "tokenizer", None)
        if self.tokenizer is None:
            raise TeacherError(f"{self.name}: the processor has no tokenizer")
        # OwlViTForObjectDetection.owlvit / Owlv2ForObjectDetection.owlv2: the CLIP-like dual encoder
        self._base = getattr(model, "owlv2", None)
        if self._base is None:
            self._base = getattr(model, "owlvit", None)
        if self._base is None:
            raise TeacherError(f"{self.name}: expected an OWL-ViT/OWLv2 object detection model")
        self._query_embeds: torch.Tensor | None = None

    @property
    def query_embeds(self) -> torch.Tensor:
        """``(P, D)`` text embeddings of ``ontology.prompts``, computed once and cached."""
        if self._query_embeds is None:
            import torch

            # OWL's text tower has 16 positions; the processor pads every query to that length
            max_len = int(getattr(self.model.config.text_config, "max_position_embeddings", 16))
            enc = self.tokenizer(
                list(self.ontology.prompts),
                padding="max_length",
                max_length=max_len,
                truncation=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = self._base.get_text_features(
                    input_ids=enc["input_ids"].to(self.device),
                    attention_mask=enc["attention_mask"].to(self.device),
                )
            # transformers >= 5 returns a model output whose pooler_output is projected; 4.x a tensor
            self._query_embeds = getattr(out, "pooler_output", out)
        return self._query_embeds

    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """Detect every ontology class in a batch of HxWx3 uint8 RGB images (one Detections per image)."""
        images = _check_images(images, self.name)
        out: list[sv.Detections] = []
        for i in range(0, len(images), self.batch_size):
            out.extend(self._predict_batch(images[i : i + self.batch_size]))
        return out

    def _predict_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        import torch

        C = self.num_classes
        queries = self.query_embeds
        pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        pixel_values = pixel_values.to(self.device, dtype=self.dtype)
        B = len(images)
        with torch.inference_mode():
            # The model's forward, minus the per-batch text tower: image features, then the class and box
            # heads against the cached query embeddings.
            feature_map = self.model.image_embedder(pixel_values=pixel_values)[0]  # (B, h, w, D)
            image_feats = feature_map.reshape(B, -1, feature_map.shape[-1])
            logits, _ = self.model.class_predictor(image_feats, queries[None].expand(B, -1, -1), None)
            boxes = self.model.box_predictor(image_feats, feature_map)  # (B, N, 4) cxcywh in [0, 1]
        prompt_scores = logits.float().sigmoid().cpu().numpy()  # (B, N, P)
        boxes_np = boxes.float().cpu().numpy()
        results = []
        for b, img in enumerate(images):
            h, w = img.shape[:2]
            soft = prompt_scores_to_class_scores(prompt_scores[b], self.ontology.prompt_class, C)
            best = soft.max(1)
            keep = np.flatnonzero(best >= self.min_score)
            keep = keep[np.argsort(-best[keep], kind="stable")][:_PRE_NMS_TOPK]
            xyxy = self._to_pixels(boxes_np[b, keep], w, h)
            # boxes wholly in OWLv2's padding collapse to zero area after clipping
            valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
            if not valid.any():
                results.append(empty_detections(C))
                continue
            dets = make_detections(xyxy[valid], soft[keep[valid]])
            if self.nms_iou is not None and self.nms_iou < 1:
                dets = nms(dets, iou=self.nms_iou, class_agnostic=False)
            if len(dets) > self.max_detections:
                dets = dets[np.argsort(-dets.confidence, kind="stable")[: self.max_detections]]
            results.append(dets)
        return results

    def _to_pixels(self, cxcywh: np.ndarray, width: int, height: int) -> np.ndarray:
        """Normalized ``cxcywh`` → pixel ``xyxy`` of the input image, clipped to it."""
        cx, cy, bw, bh = cxcywh.T
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        if self._pads_to_square:
            side = max(width, height)  # OWLv2 pads bottom/right to a square before resizing
            xyxy = xyxy * side
        else:
            xyxy = xyxy * [width, height, width, height]
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        return xyxy.astype(np.float32).reshape(-1, 4)


@TEACHERS.register(
    "owlv2",
    help="OWLv2 open-vocabulary detector (transformers); all prompts in one pass, per-class NMS",
    default_weights="google/owlv2-base-patch16-ensemble",
)
class OwlV2Teacher(_OwlTeacher):
    """OWLv2 (``Owlv2ForObjectDetection``): images padded to a square, 960 px for the base model.

    Example:
        >>> teacher = OwlV2Teacher(onto, device="cpu", min_score=0.1)   # doctest: +SKIP
        >>> dets = teacher.predict([rgb])                                # doctest: +SKIP
    """

    name = "owlv2"
    default_weights = "google/owlv2-base-patch16-ensemble"
    _model_class = "Owlv2ForObjectDetection"
    _pads_to_square = True


@TEACHERS.register(
    "owlvit",
    help="OWL-ViT open-vocabulary detector (transformers); faster, weaker than OWLv2",
    default_weights="google/owlvit-base-patch32",
)
class OwlViTTeacher(_OwlTeacher):
    """OWL-ViT (``OwlViTForObjectDetection``): images stretched to a square, 768 px for the B/32 model.

    Example:
        >>> teacher = OwlViTTeacher(onto, device="cpu", min_score=0.1)  # doctest: +SKIP
    """

    name = "owlvit"
    default_weights = "google/owlvit-base-patch32"
    _model_class = "OwlViTForObjectDetection"
    _pads_to_square = False
