"""The YOLO student family: Ultralytics detectors distilled from the teacher's soft scores.

:mod:`~autolabel.students.yolo.train` (settings, dataset checks, the stage), :mod:`~autolabel.students.yolo.trainer`
(Ultralytics' trainer with soft labels and online KD), :mod:`~autolabel.students.yolo.student` (the family's
:class:`~autolabel.students.base.Student` adapter). Names are imported lazily (no torch on import).
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_TRAIN = "autolabel.students.yolo.train"
_EXPORTS = {
    "YOLO_MODELS": _TRAIN,
    "TrainConfig": "autolabel.config",
    "TrainResult": _TRAIN,
    "evaluate_student": _TRAIN,
    "load_soft_table": _TRAIN,
    "teacher_class_index": _TRAIN,
    "tiny_yolo_yaml": _TRAIN,
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
