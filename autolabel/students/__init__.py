"""Students: small detectors trained on a labeled dataset, distilling the teacher's soft scores.

``train(dataset, student="yolov8n.pt", out="runs/cam1")`` trains an Ultralytics detection student on a
dataset written by ``autolabel label``; see :mod:`autolabel.students.yolo.train`. ``STUDENTS`` is a registry of
named model configurations (``test-yolo-tiny`` is a very small one for tests and smoke runs).

Names are imported lazily, so ``import autolabel.students`` does not import torch or ultralytics.
"""

from __future__ import annotations

import importlib
from typing import Any

from autolabel.core.lazy import lazy_exports
from autolabel.core.registry import Registry

STUDENTS: Registry[Any] = Registry("student")

_YOLO = "autolabel.students.yolo.train"
_EXPORTS = {
    "TrainConfig": _YOLO,
    "TrainResult": _YOLO,
    "train": _YOLO,
    "load_soft_table": _YOLO,
    "teacher_class_index": _YOLO,
    "tiny_yolo_yaml": _YOLO,
}


def _load_builtin() -> None:
    """Register the built-in student configurations (importing the module registers them)."""
    importlib.import_module(_YOLO)

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, eager=["STUDENTS"])
