"""Students: small detectors trained on a labeled dataset, distilling the teacher's soft scores.

``train(dataset, student="yolov8n.pt", out="runs/cam1")`` trains an Ultralytics detection student on a
dataset written by ``autolabel label``; see :mod:`autolabel.students.yolo`. ``STUDENTS`` is a registry of
named model configurations (``test-yolo-tiny`` is a very small one for tests and smoke runs).

Names are imported lazily, so ``import autolabel.students`` does not import torch or ultralytics.
"""

from __future__ import annotations

import importlib
from typing import Any

from autolabel.registry import Registry

STUDENTS: Registry[Any] = Registry("student")

_YOLO = "autolabel.students.yolo"
_EXPORTS = {
    "TrainConfig": _YOLO,
    "TrainResult": _YOLO,
    "train": _YOLO,
    "load_soft_table": _YOLO,
    "teacher_class_index": _YOLO,
    "tiny_yolo_yaml": _YOLO,
}

__all__ = sorted([*_EXPORTS, "STUDENTS"])


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'autolabel.students' has no attribute '{name}'")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def _load_builtin() -> None:
    """Register the built-in student configurations (importing the module registers them)."""
    importlib.import_module(_YOLO)
