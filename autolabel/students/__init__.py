"""Students: small models trained on a labeled dataset, distilling the teacher's soft scores.

Three families, one interface (:mod:`autolabel.students.base`): Ultralytics YOLO detectors
(:mod:`~autolabel.students.yolo`), torchvision's SSDLite320-MobileNetV3 detector (:mod:`~autolabel.students.ssdlite`)
and torchvision classifiers (:mod:`~autolabel.students.classifier`). ``train(dataset, student=..., out=...)``
trains any of them; :func:`create_student` builds a family's :class:`Student` from a spec or a checkpoint and
:func:`identify_student` says which family a spec, checkpoint or run folder is.

Example:
    >>> from autolabel.students import train, TrainConfig, ClassifierConfig
    >>> train("datasets/cam1", student="yolov8n.pt", out="runs/cam1", config=TrainConfig(epochs=50))  # doctest: +SKIP
    >>> train("datasets/cam1", student="mobilenet_v3_small", out="runs/cls")                          # doctest: +SKIP

Names are imported lazily, so ``import autolabel.students`` does not import torch or ultralytics.
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_BASE = "autolabel.students.base"
_YOLO = "autolabel.students.yolo.train"
_SSD = "autolabel.students.ssdlite.train"
_CLS = "autolabel.students.classifier.train"
_EXPORTS = {
    "STUDENT_FAMILIES": _BASE,
    "Student": _BASE,
    "create_student": _BASE,
    "identify_student": _BASE,
    "list_students": _BASE,
    "train": _BASE,
    "STUDENTS": _YOLO,
    "TrainConfig": "autolabel.config",
    "TrainResult": _YOLO,
    "load_soft_table": _YOLO,
    "teacher_class_index": _YOLO,
    "tiny_yolo_yaml": _YOLO,
    "SSDLiteConfig": "autolabel.config",
    "SSDLiteResult": _SSD,
    "train_ssdlite": _SSD,
    "ClassifierConfig": "autolabel.config",
    "ClassifierResult": _CLS,
    "train_classifier": _CLS,
    "load_classifier": "autolabel.students.classifier.model",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
