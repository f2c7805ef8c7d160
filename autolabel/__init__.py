"""autolabel: label images or CCTV video with zero-shot teachers, distill into small detectors, ship them.

The public API is imported lazily so that ``import autolabel`` stays fast::

    from autolabel import label, evaluate, train, prune, export, predict, Pipeline

``train`` trains any student family (YOLO, SSDLite, torchvision classifiers; see ``create_student``);
``prune`` and ``export`` take a trained student of any family.
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "AutolabelError": "autolabel.core.errors",
    "ConfigError": "autolabel.core.errors",
    "DatasetError": "autolabel.core.errors",
    "OntologyError": "autolabel.core.errors",
    "SourceError": "autolabel.core.errors",
    "TeacherError": "autolabel.core.errors",
    "WeightsNotFoundError": "autolabel.core.errors",
    "UnsafeCheckpointError": "autolabel.core.errors",
    "Ontology": "autolabel.core.ontology",
    "load_ontology": "autolabel.core.ontology",
    "SOFT_SCORES": "autolabel.core.detections",
    "Teacher": "autolabel.teachers",
    "create_teacher": "autolabel.teachers",
    "list_teachers": "autolabel.teachers",
    "SourceConfig": "autolabel.config",
    "iter_frames": "autolabel.sources",
    "LabelConfig": "autolabel.config",
    "LabelResult": "autolabel.labeling.label",
    "label": "autolabel.labeling.label",
    "evaluate": "autolabel.metrics",
    "read_records": "autolabel.data.dataset",
    "read_meta": "autolabel.data.dataset",
    "check_dataset": "autolabel.data.dataset",
    "Record": "autolabel.data.record",
    "DatasetMeta": "autolabel.data.record",
    "train": "autolabel.students.base",
    "create_student": "autolabel.students.base",
    "identify_student": "autolabel.students.base",
    "Student": "autolabel.students.base",
    "TrainConfig": "autolabel.config",
    "TrainResult": "autolabel.students.yolo.train",
    "SSDLiteConfig": "autolabel.config",
    "SSDLiteResult": "autolabel.students.ssdlite.train",
    "train_ssdlite": "autolabel.students.ssdlite.train",
    "ClassifierConfig": "autolabel.config",
    "ClassifierResult": "autolabel.students.classifier.train",
    "train_classifier": "autolabel.students.classifier.train",
    "load_classifier": "autolabel.students.classifier.model",
    "ClassLabelConfig": "autolabel.config",
    "ClassLabelResult": "autolabel.labeling.classify",
    "label_classification": "autolabel.labeling.classify",
    "PruneConfig": "autolabel.config",
    "prune": "autolabel.compress.pruning",
    "ExportConfig": "autolabel.config",
    "export": "autolabel.compress.bundle",
    "PredictConfig": "autolabel.students.predict",
    "predict": "autolabel.students.predict",
    "load_bundle": "autolabel.runtime",
    "Pipeline": "autolabel.app.pipeline",
    "PipelineResult": "autolabel.app.pipeline",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, eager=["__version__"])
