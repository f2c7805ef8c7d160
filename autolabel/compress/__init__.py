"""Compress and ship: structured pruning with KD recovery, ONNX export, INT8 calibrated on the user's images.

Names are imported lazily so ``import autolabel.compress`` needs neither torch nor onnx.
"""

from __future__ import annotations

import importlib
from typing import Any

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'autolabel.compress' has no attribute '{name}'")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
