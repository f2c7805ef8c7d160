"""Compress and ship: structured pruning with KD recovery, ONNX export, INT8 calibrated on the user's images.

Names are imported lazily so ``import autolabel.compress`` needs neither torch nor onnx.
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_EXPORT = "autolabel.compress.bundle"
_PRUNE = "autolabel.compress.pruning"
_EXPORTS = {
    "ExportConfig": _EXPORT,
    "ExportResult": _EXPORT,
    "export": _EXPORT,
    "quantize_int8": _EXPORT,
    "score_bundle": _EXPORT,
    "PruneConfig": _PRUNE,
    "PruneResult": _PRUNE,
    "prune": _PRUNE,
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, eager=())
