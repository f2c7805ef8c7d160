"""Classification students: torchvision classifiers (MobileNetV3 …) distilled from a teacher with Hinton KD.

* :mod:`~autolabel.students.classifier.model` — architectures, the input contract, checkpoints, loading;
* :mod:`~autolabel.students.classifier.dataset` — box crops of a detection dataset, and the image-level
  classification dataset format (its reader and the writer's building blocks);
* :mod:`~autolabel.students.classifier.train` — the training loop (:func:`train_classifier`);
* :mod:`~autolabel.students.classifier.student` — the family's :class:`~autolabel.students.base.Student` adapter.

Image-level labeling by CLIP (:func:`autolabel.labeling.classify.label_classification`) is part of labeling.
Names are imported lazily: ``import autolabel.students.classifier`` does not import torch.
"""

from __future__ import annotations

from autolabel.core.lazy import lazy_exports

_MODEL = "autolabel.students.classifier.model"
_DATA = "autolabel.students.classifier.dataset"
_TRAIN = "autolabel.students.classifier.train"
_EXPORTS = {
    "LoadedClassifier": _MODEL,
    "build_classifier": _MODEL,
    "load_classifier": _MODEL,
    "CropDataset": _DATA,
    "ImageClassDataset": _DATA,
    "crop_key": _DATA,
    "open_classification_dataset": _DATA,
    "ClassifierConfig": "autolabel.config",
    "ClassifierResult": _TRAIN,
    "evaluate_classifier": _TRAIN,
    "train_classifier": _TRAIN,
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
