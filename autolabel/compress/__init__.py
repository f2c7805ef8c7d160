"""Compress and ship: structured pruning with KD recovery, ONNX export, INT8 calibrated on the user's images.

Modules: :mod:`~autolabel.compress.pruning` (the prune stage) on :mod:`~autolabel.compress.prune_engine`, with
:mod:`~autolabel.compress.prune_yolo` and :mod:`~autolabel.compress.prune_classifier`;
:mod:`~autolabel.compress.bundle` (the export stage and the bundle it writes) from
:mod:`~autolabel.compress.onnx_export`, :mod:`~autolabel.compress.quantize` (INT8 / FP16, calibrated on
:mod:`~autolabel.compress.calibration`'s images), :mod:`~autolabel.compress.score` and
:mod:`~autolabel.compress.operating_point`.

Names are imported lazily so ``import autolabel.compress`` needs neither torch nor onnx.
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_EXPORT = "autolabel.compress.bundle"
_PRUNE = "autolabel.compress.pruning"
_EXPORTS = {
    "ExportConfig": "autolabel.config",
    "ExportResult": _EXPORT,
    "export": _EXPORT,
    "quantize_int8": "autolabel.compress.quantize",
    "score_bundle": "autolabel.compress.score",
    "PruneConfig": "autolabel.config",
    "PruneResult": _PRUNE,
    "prune": _PRUNE,
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, eager=())
