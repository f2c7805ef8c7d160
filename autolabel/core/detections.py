"""The detection contract between teachers, datasets and students.

Teachers return one :class:`supervision.Detections` per image with

* ``xyxy`` — (N, 4) float boxes in pixels of the image the teacher was given;
* ``class_id`` — (N,) int hard class, an index into the ontology's classes;
* ``confidence`` — (N,) float confidence of the hard class;
* ``data[SOFT_SCORES]`` — (N, C) float32 **soft scores**: for every kept box, the teacher's score for
  *each* of the C ontology classes, in ``[0, 1]``. This is the teacher's "dark knowledge" that students
  learn from (Hinton et al.). Scores are per-class probabilities as the teacher defines them: independent
  sigmoid scores for YOLO-style and DETR-style detectors (rows need not sum to 1), softmax probabilities
  for CLIP (rows sum to 1). A class the teacher cannot see (a COCO model asked for "package") scores 0.

The hard class is normally ``argmax`` of the soft row and ``confidence`` its value; fused or re-scored
detections may differ slightly, so only shapes and ranges are enforced (:func:`validate_soft_scores`).

Example:
    >>> import numpy as np
    >>> d = make_detections(np.array([[0, 0, 10, 10.]]), np.array([[0.1, 0.8]]))
    >>> int(d.class_id[0]), round(float(d.confidence[0]), 6)  # confidence is float32
    (1, 0.8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # supervision is light, but keep `import autolabel` minimal
    import supervision as sv

__all__ = [
    "SOFT_SCORES",
    "apply_class_thresholds",
    "empty_detections",
    "make_detections",
    "nms",
    "validate_soft_scores",
]

SOFT_SCORES = "soft_scores"
"""Key of the (N, C) per-box, per-class soft score array in ``Detections.data``."""


def make_detections(
    xyxy: np.ndarray,
    soft_scores: np.ndarray,
    class_id: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> sv.Detections:
    """Build Detections from boxes and soft scores; hard class and confidence default to the argmax."""
    import supervision as sv

    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    soft = np.asarray(soft_scores, dtype=np.float32)
    soft = soft.reshape(len(xyxy), soft.shape[-1] if soft.ndim else 0)
    if class_id is None:
        class_id = soft.argmax(1) if soft.shape[1] else np.zeros(len(xyxy), dtype=int)
    class_id = np.asarray(class_id, dtype=int).reshape(-1)
    if confidence is None:
        confidence = soft[np.arange(len(xyxy)), class_id] if len(xyxy) else np.zeros(0, np.float32)
    return sv.Detections(
        xyxy=xyxy,
        class_id=class_id,
        confidence=np.asarray(confidence, dtype=np.float32).reshape(-1),
        data={SOFT_SCORES: soft},
    )


def empty_detections(num_classes: int) -> sv.Detections:
    """Detections with no boxes but a (0, C) soft score array, so concatenation keeps the key."""
    return make_detections(np.zeros((0, 4)), np.zeros((0, num_classes)), class_id=np.zeros(0, int))


def validate_soft_scores(detections: sv.Detections, num_classes: int) -> np.ndarray:
    """Check the soft score contract and return the (N, C) array.

    Raises:
        ValueError: the key is missing, the shape is not (N, C), or values are outside [0, 1] / not finite.
    """
    soft = detections.data.get(SOFT_SCORES)
    if soft is None:
        raise ValueError(f"detections lack data['{SOFT_SCORES}'] (an (N, {num_classes}) array)")
    soft = np.asarray(soft)
    n = len(detections)
    if soft.shape != (n, num_classes):
        raise ValueError(f"data['{SOFT_SCORES}'] has shape {soft.shape}, expected ({n}, {num_classes})")
    if n and (not np.isfinite(soft).all() or soft.min() < -1e-6 or soft.max() > 1 + 1e-6):
        raise ValueError(f"data['{SOFT_SCORES}'] must hold finite scores in [0, 1]")
    if detections.class_id is None or detections.confidence is None:
        raise ValueError("detections need class_id and confidence")
    if n and (detections.class_id.min() < 0 or detections.class_id.max() >= num_classes):
        raise ValueError(f"class_id out of range [0, {num_classes})")
    return soft


def apply_class_thresholds(detections: sv.Detections, thresholds: Sequence[float]) -> sv.Detections:
    """Keep boxes whose confidence reaches the threshold of their hard class."""
    if len(detections) == 0:
        return detections
    thr = np.asarray(thresholds, dtype=np.float32)[detections.class_id]
    return detections[detections.confidence >= thr]


def nms(detections: sv.Detections, iou: float = 0.5, class_agnostic: bool = False) -> sv.Detections:
    """Non-maximum suppression (supervision's), keeping ``data`` (soft scores) aligned with the boxes."""
    if len(detections) <= 1:
        return detections
    return detections.with_nms(threshold=iou, class_agnostic=class_agnostic)
