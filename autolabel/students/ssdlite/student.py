"""The SSDLite student family: torchvision's SSDLite320-MobileNetV3-Large, see :mod:`autolabel.students.ssdlite.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autolabel.students.base import STUDENT_FAMILIES, StudentBase

__all__ = ["SSDLiteStudent"]

ARCH = "ssdlite320_mobilenet_v3_large"  # = autolabel.students.ssdlite.train.ARCH (that module imports torch)
NAMES = {"ssdlite", ARCH}


@STUDENT_FAMILIES.register("ssdlite", help="torchvision SSDLite320-MobileNetV3-Large detector "
                                           "(ssdlite320_mobilenet_v3_large)", default_weights=ARCH)
class SSDLiteStudent(StudentBase):
    """An SSDLite detection student: ``spec`` is ``ssdlite320_mobilenet_v3_large`` to train, or a trained
    checkpoint / run folder."""

    name = "ssdlite"
    task = "detect"
    checkpoint_format = "autolabel-ssdlite"
    default_spec = ARCH
    config_type = "autolabel.config:SSDLiteConfig"
    priority = 10

    @classmethod
    def accepts(cls, spec: Any) -> bool:
        return isinstance(spec, str) and spec.strip().lower() in NAMES

    @classmethod
    def config_from_train_options(cls, options: dict[str, Any]) -> Any:
        """SSDLite's settings from the ``train`` command's: the shared ones; its square input defaults to 320."""
        from autolabel.config import SSDLiteConfig, TrainConfig
        from autolabel.core.errors import ConfigError

        if options.get("kd_teacher"):
            raise ConfigError("--kd-teacher (online KD) is for YOLO students; SSDLite distills the dataset's soft scores")
        if options.get("recipe", TrainConfig.recipe) != TrainConfig.recipe:
            raise ConfigError(f"--recipe {options['recipe']} is for YOLO students and classifiers; SSDLite trains "
                              "with the hinton recipe (its soft scores)")
        shared = ("epochs", "batch", "device", "soft", "alpha", "temperature", "resume", "overwrite", "seed",
                  "progress")
        return SSDLiteConfig(**{k: options[k] for k in shared if k in options},
                             min_size=options.get("imgsz") or 320)

    def train(self, dataset: str | Path, out: str | Path, config: Any = None) -> Any:
        from autolabel.students.ssdlite.train import train_ssdlite

        if not self.accepts(str(self.spec)):
            raise self.unsupported(f"training from '{self.spec}'", "name ssdlite320_mobilenet_v3_large, and "
                                   "continue a run with SSDLiteConfig(resume=True) and its out folder")
        return train_ssdlite(dataset, out, self.checked_config(config))

    def evaluate(self, dataset: str | Path, **kwargs: Any) -> dict[str, Any]:
        """mAP on the dataset's val split against the teacher's labels
        (:func:`~autolabel.students.ssdlite.train.evaluate_ssdlite`)."""
        from autolabel.students.ssdlite.train import evaluate_ssdlite

        return evaluate_ssdlite(self.weights(), dataset, **kwargs)

    def prune(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        raise self.unsupported("pruning", "export the trained model as it is (autolabel export)")

    def export(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        from autolabel.compress.bundle import export_ssdlite

        return self.export_onnx_only(export_ssdlite, "SSDLite students", out, data, config)

    def load(self, device: str = "cpu") -> Any:
        """``(model, names)``: a torchvision ``SSD`` in eval mode and its class names."""
        from autolabel.students.ssdlite.train import load_ssdlite

        return load_ssdlite(self.weights(), device=device)
