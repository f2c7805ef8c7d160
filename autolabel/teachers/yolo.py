"""The closed-set teacher: any Ultralytics detection checkpoint, its class names mapped to the ontology.

A COCO YOLO knows ``person``, ``car``, ``backpack`` …; the ontology's ``aliases`` (or class names and
prompts) say which model classes feed which ontology class. Ultralytics' own NMS keeps only the argmax
class of each box, so this teacher runs the network itself and keeps, for every box that survives NMS,
the score of **every** ontology class — the soft scores students distill from.

Soft score of an ontology class = the maximum sigmoid score over the model classes mapped to it (a class
mapped from ``car`` and ``truck`` scores as the more confident of the two); ontology classes the model
cannot see score 0.

Example:
    >>> teacher = YoloTeacher(onto, weights="yolov8n.pt")      # doctest: +SKIP
    >>> dets = teacher.predict([rgb])[0]                       # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.core.detections import make_detections
from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology
from autolabel.core.weights import resolve_device, ultralytics_hint, ultralytics_weights
from autolabel.teachers import register_teacher
from autolabel.teachers.base import Teacher

if TYPE_CHECKING:
    import supervision as sv
    import torch

__all__ = ["UltralyticsTeacher", "YoloTeacher", "load_ultralytics", "predict_yolo", "yolo_candidates"]


def load_ultralytics(spec: str, teacher: str) -> Any:
    """Load an Ultralytics model from a local file or (online) an Ultralytics asset name.

    Raises:
        WeightsNotFoundError: offline and not found locally, or the file is not an Ultralytics checkpoint.
    """
    from autolabel.core.checkpoints import load_yolo

    path = ultralytics_weights(spec, f"teacher '{teacher}':", ultralytics_hint(spec, f"--teacher {teacher}:"))
    return load_yolo(path, what=f"teacher '{teacher}'")


def letterbox_batch(
    images: Sequence[np.ndarray], imgsz: int, device: str, half: bool
) -> tuple[torch.Tensor, list[tuple[float, float, float]]]:
    """Letterbox RGB images to ``imgsz``² (Ultralytics' LetterBox, pad 114) and stack them as a tensor.

    Returns the (B, 3, S, S) float tensor in [0, 1] and, per image, (ratio, pad_x, pad_y) to map back.
    """
    import torch
    from ultralytics.data.augment import LetterBox

    lb = LetterBox(new_shape=(imgsz, imgsz), auto=False, scaleup=True)
    arrays, params = [], []
    for im in images:
        h, w = im.shape[:2]
        r = min(imgsz / h, imgsz / w)
        new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
        # LetterBox centres the resized image; the left/top pads are half the (rounded) remainder.
        pad_x = round((imgsz - new_w) / 2 - 0.1)
        pad_y = round((imgsz - new_h) / 2 - 0.1)
        arrays.append(lb(image=np.ascontiguousarray(im)))
        params.append((r, float(pad_x), float(pad_y)))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    x = x.to(device)
    x = (x.half() if half else x.float()) / 255.0
    return x, params


def yolo_candidates(
    raw: torch.Tensor,
    class_map: np.ndarray,
    num_classes: int,
    min_score: float,
    iou: float,
    max_det: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Turn raw YOLO output (B, 4 + nc, anchors) into per-image (xyxy, soft scores) after NMS.

    ``class_map[k]`` is the ontology id of model class ``k`` (or -1). Ontology scores are the max over the
    model classes mapped to each ontology class. NMS is per ontology class (hard class = argmax), and the
    full soft rows of the survivors are gathered by index — this is what Ultralytics' NMS throws away.
    """
    import torch
    import torchvision

    out = []
    cols = np.flatnonzero(class_map >= 0)
    col_idx = torch.as_tensor(cols, device=raw.device)
    target = torch.as_tensor(class_map[cols], device=raw.device)
    for pred in raw.float():  # (4 + nc, A)
        boxes_xywh = pred[:4].T
        cls_scores = pred[4 + col_idx].T  # (A, mapped model classes)
        onto = torch.zeros((cls_scores.shape[0], num_classes), device=pred.device)
        onto.scatter_reduce_(1, target.expand_as(cls_scores), cls_scores, reduce="amax", include_self=True)
        conf, cls = onto.max(1)
        keep = conf >= min_score
        if keep.sum() > 30000:  # as Ultralytics: cap the NMS input
            keep &= conf >= conf[keep].topk(30000).values[-1]
        b, s, c_, k = boxes_xywh[keep], onto[keep], cls[keep], conf[keep]
        xyxy = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
        idx = torchvision.ops.batched_nms(xyxy, k, c_, iou)[:max_det]
        out.append((xyxy[idx].cpu().numpy(), s[idx].cpu().numpy()))
    return out


class UltralyticsTeacher(Teacher):
    """A teacher over an Ultralytics detection network whose raw output keeps every class score.

    Shared by :class:`YoloTeacher` and :class:`~autolabel.teachers.yolo_world.YoloWorldTeacher`: they load
    the network (:meth:`_load`); this class letterboxes each batch, runs it and keeps the full soft rows
    (:func:`predict_yolo`).

    Args:
        ontology, weights, device, min_score, batch_size: see :class:`~autolabel.teachers.base.Teacher`.
        imgsz: inference size (square letterbox).
        iou: NMS IoU between boxes of the same class.
        max_det: most boxes per image.
    """

    half: bool = False
    """Run the network in fp16 (set by :meth:`_load`)."""

    def __init__(self, ontology: Ontology, *args: Any, imgsz: int = 640, iou: float = 0.7, max_det: int = 300,
                 **kwargs: Any) -> None:
        super().__init__(ontology, *args, **kwargs)
        self.imgsz, self.iou, self.max_det = int(imgsz), float(iou), int(max_det)
        self.device = resolve_device(self.device_spec)
        self.model, self.class_map = self._load()
        self.stride = int(max(getattr(self.model, "stride", [32])))

    @abstractmethod
    def _load(self) -> tuple[Any, np.ndarray]:
        """The torch network on ``self.device`` in eval mode, and the ontology class of each of its score
        columns (-1: none)."""

    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        out: list[sv.Detections] = []
        for start in range(0, len(images), self.batch_size):
            out += predict_yolo(
                self.model, images[start : start + self.batch_size], self.imgsz, self.device, self.half,
                self.class_map, self.num_classes, self.min_score, self.iou, self.max_det,
            )
        return out


@register_teacher("closed-set Ultralytics detector (e.g. a COCO YOLO), class names mapped to the ontology")
class YoloTeacher(UltralyticsTeacher):
    """Closed-set teacher over an Ultralytics detection checkpoint.

    Args:
        ontology: the classes; each maps to model classes through ``aliases`` (or its name/prompts).
        weights: checkpoint path or Ultralytics name (default ``yolov8n.pt``).
        device, min_score, batch_size, imgsz, iou, max_det: see :class:`UltralyticsTeacher`.
    """

    name = "yolo"
    default_weights = "yolov8n.pt"

    def _load(self) -> tuple[Any, np.ndarray]:
        self._yolo = load_ultralytics(str(self.weights), self.name)
        if getattr(self._yolo, "task", "detect") != "detect":
            raise TeacherError(f"teacher 'yolo': '{self.weights}' is a {self._yolo.task} model; expected a detection model")
        self.model_names: dict[int, str] = dict(self._yolo.names)
        mapping = self.ontology.map_model_classes(self.model_names)
        if not mapping:
            raise TeacherError(
                f"teacher 'yolo': none of the ontology classes {self.ontology.names} matches a class of "
                f"'{self.weights}' (its classes include {list(self.model_names.values())[:8]}...); add "
                "'aliases' to the ontology classes"
            )
        class_map = np.full(len(self.model_names), -1, dtype=int)
        for mid, cid in mapping.items():
            class_map[mid] = cid
        self.unmapped = [c for i, c in enumerate(self.ontology.names) if i not in set(mapping.values())]
        if self.unmapped:
            warnings.warn(
                f"teacher 'yolo': ontology classes {self.unmapped} have no class in '{self.weights}'; "
                "they will never be labeled by this teacher",
                stacklevel=3,  # the caller of the constructor
            )
        self.half = self.device.startswith("cuda")
        model = self._yolo.model
        model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
        return (model.half() if self.half else model.float()).to(self.device).eval(), class_map


def predict_yolo(
    model: Any,
    images: Sequence[np.ndarray],
    imgsz: int,
    device: str,
    half: bool,
    class_map: np.ndarray,
    num_classes: int,
    min_score: float,
    iou: float,
    max_det: int,
) -> list[sv.Detections]:
    """Letterbox a batch, run an Ultralytics detection network, keep full soft rows (one batch of
    :meth:`UltralyticsTeacher.predict`)."""
    import torch

    if not len(images):
        return []
    with torch.inference_mode():
        x, params = letterbox_batch(images, imgsz, device, half)
        raw = model(x)
        raw = raw[0] if isinstance(raw, (list, tuple)) else raw
        cands = yolo_candidates(raw, class_map, num_classes, min_score, iou, max_det)
    results = []
    for (xyxy, soft), (r, px, py), im in zip(cands, params, images):
        h, w = im.shape[:2]
        xyxy = xyxy.copy()
        xyxy[:, [0, 2]] = ((xyxy[:, [0, 2]] - px) / r).clip(0, w)
        xyxy[:, [1, 3]] = ((xyxy[:, [1, 3]] - py) / r).clip(0, h)
        results.append(make_detections(xyxy, soft))
    return results
