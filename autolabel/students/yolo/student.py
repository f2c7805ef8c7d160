"""The YOLO student family: Ultralytics detectors (YOLOv8 / YOLO11 …), see :mod:`autolabel.students.yolo.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autolabel.students.base import STUDENT_FAMILIES, StudentBase

__all__ = ["YoloStudent"]

_FILES = {".pt", ".yaml", ".yml"}


@STUDENT_FAMILIES.register("yolo", help="Ultralytics YOLO detector: a .pt checkpoint, a model .yaml, a registered "
                                        "name (test-yolo-tiny) or a DetectionModel", default_weights="yolov8n.pt")
class YoloStudent(StudentBase):
    """A YOLO detection student: ``spec`` is a checkpoint, model YAML, registered name or ``DetectionModel``
    to train from, or a trained checkpoint / run folder."""

    name = "yolo"
    task = "detect"
    checkpoint_format = None  # Ultralytics checkpoints (pickled modules), pruned ones included
    default_spec = "yolov8n.pt"
    task_default = True
    config_type = "autolabel.config:TrainConfig"
    priority = 100  # a bare name is an Ultralytics asset (NAME.pt): asked after every other family

    @classmethod
    def accepts(cls, spec: Any) -> bool:
        if not isinstance(spec, str):  # a module: train() checks that it is a DetectionModel
            return hasattr(spec, "state_dict")
        return Path(spec).suffix.lower() in _FILES or "." not in Path(spec).name

    @classmethod
    def config_from_train_options(cls, options: dict[str, Any]) -> Any:
        from autolabel.config import TrainConfig

        return TrainConfig(**{**options, "imgsz": options.get("imgsz") or 640})

    def train(self, dataset: str | Path, out: str | Path, config: Any = None) -> Any:
        from autolabel.students.yolo.train import train

        return train(dataset, student=self.spec, out=out, config=self.checked_config(config))

    def evaluate(self, dataset: str | Path, gt: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
        """mAP on the dataset's val split against the human labels ``gt``
        (:func:`~autolabel.students.yolo.train.evaluate_student`; the mAP against the teacher's labels is in
        the run's ``weights/metrics.json``)."""
        from autolabel.core.errors import ConfigError
        from autolabel.students.yolo.train import evaluate_student

        if gt is None:
            raise ConfigError("evaluating a YOLO student needs gt= (human labels: a YOLO folder or COCO JSON); "
                              "its mAP against the teacher's labels is in weights/metrics.json")
        return evaluate_student(self.weights(), dataset, gt, **kwargs)

    def prune(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        from autolabel.compress.pruning import prune

        return prune(self.spec, out, data=data, config=config)

    def export(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        from autolabel.compress.bundle import export

        return export(self.spec, out, data=data, config=config)

    def load(self, device: str = "cpu") -> Any:
        """The Ultralytics ``YOLO`` model (restricted unpickling, see :mod:`autolabel.core.checkpoints`)."""
        from autolabel.core.checkpoints import load_yolo

        y = load_yolo(self.weights(), what="student")
        y.to(device)
        return y
