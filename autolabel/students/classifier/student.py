"""The classifier student family: torchvision classifiers (MobileNetV3 …), see :mod:`autolabel.students.classifier`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autolabel.students.base import STUDENT_FAMILIES, StudentBase

__all__ = ["ClassifierStudent"]


@STUDENT_FAMILIES.register("classifier", help="torchvision classifier (mobilenet_v3_small, resnet18 …) on box "
                                              "crops or CLIP-labeled images", default_weights="mobilenet_v3_small")
class ClassifierStudent(StudentBase):
    """A classification student: ``spec`` is a torchvision model name to train, or a trained checkpoint / run
    folder (training from a checkpoint starts from its weights)."""

    name = "classifier"
    task = "classify"
    checkpoint_format = "autolabel-classifier"
    default_spec = "mobilenet_v3_small"
    task_default = True
    config_type = "autolabel.config:ClassifierConfig"
    priority = 20

    @classmethod
    def accepts(cls, spec: Any) -> bool:
        if not isinstance(spec, str) or not spec or any(c in spec for c in "./\\:"):
            return False  # files and paths are YOLO's (or checkpoints, identified by their format)
        from autolabel.students.classifier.model import classifier_names

        return spec in classifier_names()

    @classmethod
    def spec_from_config(cls, config: Any) -> Any:
        return config.model

    @classmethod
    def config_from_train_options(cls, options: dict[str, Any]) -> Any:
        from autolabel.core.errors import ConfigError

        raise ConfigError("classifiers are trained with `autolabel train-classifier DATASET --model NAME --out DIR`")

    def train(self, dataset: str | Path, out: str | Path, config: Any = None) -> Any:
        from dataclasses import replace

        from autolabel.students.classifier.model import load_checkpoint
        from autolabel.students.classifier.train import train_classifier

        cfg = self.checked_config(config)
        if isinstance(self.spec, str) and self.accepts(self.spec):
            cfg = replace(cfg, model=self.spec)
        else:  # a trained classifier: the same architecture, starting from its weights
            ckpt = self.weights()
            cfg = replace(cfg, model=str(load_checkpoint(ckpt)["model_name"]), pretrained=str(ckpt))
        return train_classifier(dataset, out, cfg)

    def evaluate(self, dataset: str | Path, **kwargs: Any) -> dict[str, Any]:
        """Top-1 on the dataset's val split against the teacher's labels (and ``human_labels`` when given),
        see :func:`~autolabel.students.classifier.train.evaluate_checkpoint`."""
        from autolabel.students.classifier.train import evaluate_checkpoint

        return evaluate_checkpoint(self.weights(), dataset, **kwargs)

    def prune(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        from autolabel.compress.prune_classifier import prune_classifier

        return prune_classifier(self.spec, out, data=data, config=config)

    def export(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        from autolabel.compress.bundle import export_classifier

        return self.export_onnx_only(export_classifier, "classifiers", out, data, config)

    def load(self, device: str = "cpu") -> Any:
        """A :class:`~autolabel.students.classifier.model.LoadedClassifier` (model, names, preprocessing)."""
        from autolabel.students.classifier.model import load_classifier

        return load_classifier(self.weights(), device=device)
