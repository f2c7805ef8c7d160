"""The prune stage: structured channel pruning of a student with torch-pruning, and recovery by distillation.

Example:
    >>> from autolabel.compress import PruneConfig, prune
    >>> res = prune("runs/cam1/weights/best.pt", "runs/cam1_pruned", data="datasets/cam1",
    ...             config=PruneConfig(ratio=0.5, recover_epochs=20))              # doctest: +SKIP
    >>> res.report["pruned"]["flops"] / res.report["original"]["flops"]           # doctest: +SKIP

:func:`prune` takes a YOLO student (:mod:`autolabel.compress.prune_yolo`) or a classifier
(:mod:`autolabel.compress.prune_classifier`); both use the generic machinery of
:mod:`autolabel.compress.prune_engine`. Output folder: ``pruned.pt`` (before recovery), the recovered
checkpoint, and ``prune_report.json`` (params, FLOPs and val accuracy of the original, pruned and recovered
models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolabel.core.errors import ConfigError

__all__ = ["PruneConfig", "PruneResult", "classifier_checkpoint", "prune"]

REPORT_FILE = "prune_report.json"


@dataclass(frozen=True)
class PruneConfig:
    """Settings of the pruning stage.

    Attributes:
        ratio: fraction of the FLOPs (``target="flops"``) or parameters (``"params"``) to remove.
        target: ``flops`` or ``params``.
        imgsz: image size for FLOPs counting, validation and recovery training.
        keep: module names kept whole (e.g. ``["model.9"]``); the Detect head always is.
        round_to: keep channel counts multiples of this (8 suits many NPUs, but rounds YOLO-n's 16-channel
            layers down to 8 and costs accuracy; 1 = exact ratio).
        steps: at most this many bisection trials to find the channel ratio that meets the target.
        recover_epochs: fine-tuning epochs after pruning (0 = none), split over the rounds.
        rounds: prune gradually: ``rounds`` steps of ``ratio / rounds`` each followed by its share of the
            recovery epochs (small steps damage less than one big cut; 1 = one shot, then recover).
        kd: recover with the unpruned model as online teacher (else plain fine-tuning on the labels).
        kd_weight, hint_weight, alpha, temperature: see :class:`autolabel.students.yolo.train.TrainConfig`.
        lr0, optimizer: the recovery optimizer. Every batch is one optimizer step (``nbs = batch``) and the
            warm-up lasts at most one epoch, biases included (Ultralytics starts them at 0.1, harmless for
            SGD from scratch, a jolt for AdamW on a trained net; it zeroes that only when it picks AdamW
            itself). Ultralytics' defaults (gradients accumulated to a nominal batch
            of 64, three warm-up epochs, ``optimizer=auto`` picking AdamW at ``0.01 / (4 + nc)``) leave a
            few-hundred-image dataset a few dozen small steps in ten epochs, too few to recover a pruned net.
        batch, device, workers: recovery training and validation.
        evaluate: val-split mAP (against the dataset's labels) before and after.
        progress: progress bars and training logs.
        ultralytics: extra Ultralytics training arguments for the recovery.
    """

    ratio: float = 0.5
    target: str = "flops"
    imgsz: int = 640
    keep: Sequence[str] = ()
    round_to: int = 1
    steps: int = 12
    recover_epochs: int = 10
    rounds: int = 1
    kd: bool = True
    kd_weight: float = 1.0
    hint_weight: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    lr0: float = 0.002
    optimizer: str = "AdamW"
    batch: int = 16
    device: str = "auto"
    workers: int = 2
    evaluate: bool = True
    progress: bool = True
    ultralytics: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.ratio) < 0.95:
            raise ConfigError(f"ratio must be in (0, 0.95), found {self.ratio}")
        if self.target not in ("flops", "params"):
            raise ConfigError(f"target must be 'flops' or 'params', found '{self.target}'")
        if int(self.recover_epochs) < 0:
            raise ConfigError(f"recover_epochs must be >= 0, found {self.recover_epochs}")
        if int(self.rounds) < 1:
            raise ConfigError(f"rounds must be >= 1, found {self.rounds}")
        if int(self.rounds) > max(1, int(self.recover_epochs)):
            raise ConfigError(f"rounds ({self.rounds}) needs at least one recovery epoch each (recover_epochs "
                              f"{self.recover_epochs})")
        if not float(self.lr0) > 0:
            raise ConfigError(f"lr0 must be > 0, found {self.lr0}")
        if int(self.steps) < 1 or int(self.round_to) < 1:
            raise ConfigError(f"steps and round_to must be >= 1, found {self.steps}, {self.round_to}")


@dataclass
class PruneResult:
    """What :func:`prune` wrote."""

    out: Path
    pruned: Path
    recovered: Path | None
    report: dict[str, Any]



def prune(model: str | Path, out: str | Path, data: str | Path | None = None,
          config: PruneConfig | None = None) -> PruneResult:
    """Prune a student to ``ratio`` fewer FLOPs/params, then recover it by distillation on ``data``.

    Args:
        model: a YOLO ``.pt`` checkpoint or an ``autolabel train`` output folder; or a classifier checkpoint
            (``train-classifier`` folder or its ``best.pt``).
        out: output folder (``pruned.pt``, ``weights/best.pt`` or ``recover/weights/best.pt``, ``prune_report.json``).
        data: the auto-labeled dataset (``autolabel label`` output) for recovery and val accuracy.
        config: :class:`PruneConfig`.

    Raises:
        WeightsNotFoundError: model missing or unreadable. ConfigError: bad settings, recovery without data.
        DatasetError: a dataset without data.yaml.
    """
    from autolabel.students.base import create_student

    config = config or PruneConfig()
    student = create_student(model)  # which family the checkpoint is: classifiers prune their own way
    if student.name != "yolo":
        return student.prune(out, data=data, config=config)
    from autolabel.compress.prune_yolo import prune_yolo

    return prune_yolo(model, out, data=data, config=config)


def classifier_checkpoint(model: str | Path) -> Path | None:
    """The path of an autolabel classifier checkpoint (file or ``train-classifier`` folder), else None."""
    from autolabel.students.base import identify_student, resolve_checkpoint

    p = resolve_checkpoint(model)
    return p if p.is_file() and identify_student(p) == "classifier" else None


def __getattr__(name: str) -> Any:
    """``C2fSplit`` lived here: checkpoints pruned before it moved to :mod:`autolabel.students.yolo.layers`
    name it ``autolabel.compress.pruning.C2fSplit``, and unpickling them with ``--trust-checkpoint`` looks it
    up here (the restricted loader resolves the old name through its allow-list)."""
    from autolabel.students.yolo.layers import LEGACY_NAMES

    cls = LEGACY_NAMES.get(f"{__name__}.{name}")
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls
