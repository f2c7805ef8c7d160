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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolabel.config import PruneConfig

__all__ = ["PruneConfig", "PruneResult", "classifier_checkpoint", "prune"]

REPORT_FILE = "prune_report.json"


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
