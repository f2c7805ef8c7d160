"""The SSDLite student family: torchvision's SSDLite320-MobileNetV3-Large distilling the teacher's soft scores.

:mod:`~autolabel.students.ssdlite.train` (model, soft-label loss, data, training, prediction, loading) and
:mod:`~autolabel.students.ssdlite.student` (the family's :class:`~autolabel.students.base.Student` adapter).
Names are imported lazily (no torch on import).
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_TRAIN = "autolabel.students.ssdlite.train"
_EXPORTS = {
    "SSDLiteConfig": "autolabel.config",
    "SSDLiteResult": _TRAIN,
    "evaluate_ssdlite": _TRAIN,
    "load_ssdlite": _TRAIN,
    "predict_ssdlite": _TRAIN,
    "train_ssdlite": _TRAIN,
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
