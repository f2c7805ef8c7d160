"""autolabel: label images or CCTV video with zero-shot teachers, distill into small detectors, ship them.

The public API is imported lazily so that ``import autolabel`` stays fast::

    from autolabel import label, evaluate, train, prune, export, predict, Pipeline
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AutolabelError": "autolabel.errors",
    "ConfigError": "autolabel.errors",
    "DatasetError": "autolabel.errors",
    "OntologyError": "autolabel.errors",
    "SourceError": "autolabel.errors",
    "TeacherError": "autolabel.errors",
    "WeightsNotFoundError": "autolabel.errors",
    "UnsafeCheckpointError": "autolabel.errors",
    "Ontology": "autolabel.ontology",
    "load_ontology": "autolabel.ontology",
    "SOFT_SCORES": "autolabel.detections",
    "Teacher": "autolabel.teachers",
    "create_teacher": "autolabel.teachers",
    "list_teachers": "autolabel.teachers",
    "SourceConfig": "autolabel.sources",
    "iter_frames": "autolabel.sources",
    "LabelConfig": "autolabel.label",
    "LabelResult": "autolabel.label",
    "label": "autolabel.label",
    "evaluate": "autolabel.evaluate",
    "read_records": "autolabel.dataset",
    "read_meta": "autolabel.dataset",
    "check_dataset": "autolabel.dataset",
    "TrainConfig": "autolabel.students.yolo",
    "train": "autolabel.students.yolo",
    "PruneConfig": "autolabel.compress.pruning",
    "prune": "autolabel.compress.pruning",
    "ExportConfig": "autolabel.compress.bundle",
    "export": "autolabel.compress.bundle",
    "PredictConfig": "autolabel.inference",
    "predict": "autolabel.inference",
    "load_bundle": "autolabel.runtime",
    "Pipeline": "autolabel.pipeline",
    "PipelineResult": "autolabel.pipeline",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'autolabel' has no attribute '{name}'")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
