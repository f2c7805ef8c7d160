"""Knowledge-distillation losses and recipes for training students from autolabel's teachers.

Names are imported lazily, so ``import autolabel.distill`` does not import torch; the first use of a
loss does (see :mod:`autolabel.distill.losses`). The recipes a student trains with — which losses, by name —
are listed in :mod:`autolabel.distill.recipes` (``--recipe`` of ``autolabel train`` / ``train-classifier``).

Example:
    >>> from autolabel.distill import HintonKD, born_again
    >>> kd = HintonKD(temperature=4.0, alpha=0.5)
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_LOSSES = "autolabel.distill.losses"
_RECIPES = "autolabel.distill.recipes"

_EXPORTS = {
    "ClassSpecializedKD": _LOSSES,
    "DMLLoss": _LOSSES,
    "DMLOutput": _LOSSES,
    "FitNetsHint": _LOSSES,
    "HintonKD": _LOSSES,
    "MultiLevelHint": _LOSSES,
    "RKD": _LOSSES,
    "RKDAngle": _LOSSES,
    "RKDDistance": _LOSSES,
    "SimilarityPreserving": _LOSSES,
    "SoftTargetBCE": _LOSSES,
    "hinton_kd": _LOSSES,
    "kd_kl_div": _LOSSES,
    "soften_probs": _LOSSES,
    "CLASSIFIER_RECIPES": _RECIPES,
    "DETECTOR_RECIPES": _RECIPES,
    "born_again": _RECIPES,
    "recipe_problem": _RECIPES,
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, eager=())
