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
    >>> fast = OwlViTTeacher(onto, device="cpu", min_score=0.1)          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from autolabel.core.detections import empty_detections, make_detections, nms
from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology
from autolabel.teachers import register_teacher
from autolabel.teachers.hf import HFTeacher, cxcywh_to_xyxy

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


class _OwlTeacher(HFTeacher):
    """Shared OWL-ViT / OWLv2 logic; subclasses name the model class and the box geometry.

    Args:
        ontology: the classes; every prompt of every class is a text query.
        weights, device, min_score, batch_size, model, processor: see :class:`~autolabel.teachers.hf.HFTeacher`
            (fp16 on CUDA; ``min_score`` is the lowest best-class score of a kept box).
        nms_iou: IoU of the per-class NMS (``None`` or ``>= 1`` disables it).
        max_detections: most boxes kept per image after NMS (highest scores first).
    """

    _pads_to_square: ClassVar[bool]

    def __init__(self, ontology: Ontology, *args: Any, nms_iou: float | None = 0.5, max_detections: int = 300,
                 **kwargs: Any) -> None:
        self.nms_iou = nms_iou
        self.max_detections = int(max_detections)
        super().__init__(ontology, *args, **kwargs)
        # OwlViTForObjectDetection.owlvit / Owlv2ForObjectDetection.owlv2: the CLIP-like dual encoder
        self._base = getattr(self.model, "owlv2", None)
        if self._base is None:
            self._base = getattr(self.model, "owlvit", None)
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
        """Normalized ``cxcywh`` → pixel ``xyxy`` of the input image, clipped to it (the box geometry)."""
        return cxcywh_to_xyxy(cxcywh, width, height, pad_square=self._pads_to_square)


@register_teacher("OWLv2 open-vocabulary detector (transformers); all prompts in one pass, per-class NMS")
class OwlV2Teacher(_OwlTeacher):
    """OWLv2 (``Owlv2ForObjectDetection``): images padded to a square, 960 px for the base model."""

    name = "owlv2"
    default_weights = "google/owlv2-base-patch16-ensemble"
    model_class = "Owlv2ForObjectDetection"
    _pads_to_square = True


@register_teacher("OWL-ViT open-vocabulary detector (transformers); faster, weaker than OWLv2")
class OwlViTTeacher(_OwlTeacher):
    """OWL-ViT (``OwlViTForObjectDetection``): images stretched to a square, 768 px for the B/32 model."""

    name = "owlvit"
    default_weights = "google/owlvit-base-patch32"
    model_class = "OwlViTForObjectDetection"
    _pads_to_square = False
