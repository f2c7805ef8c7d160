"""The YOLO checkpoint that ``prune`` and ``export`` take: a ``.pt`` file or a training / pruning output folder,
loaded with restricted unpickling (:func:`autolabel.core.checkpoints.load_yolo`), detection models only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autolabel.core.errors import ConfigError, WeightsNotFoundError

__all__ = ["load_detector", "resolve_checkpoint"]


def resolve_checkpoint(model: str | Path) -> Path:
    """The ``.pt`` file of ``model``: the file itself, or a folder's ``weights/best.pt``, ``weights/last.pt``
    or ``pruned.pt`` (the first that exists)."""
    p = Path(model).expanduser()
    if p.is_dir():  # an `autolabel train` / `autolabel prune` output folder
        for cand in (p / "weights" / "best.pt", p / "weights" / "last.pt", p / "pruned.pt"):
            if cand.is_file():
                return cand
        raise WeightsNotFoundError(f"'{p}' holds no weights/best.pt, weights/last.pt or pruned.pt; pass a .pt file")
    if not p.is_file():
        raise WeightsNotFoundError(f"model '{model}' not found; pass a YOLO checkpoint (.pt) or a training output folder")
    if p.suffix != ".pt":
        raise ConfigError(f"model '{model}': expected an Ultralytics .pt checkpoint, found a '{p.suffix}' file")
    return p


def load_detector(path: Path) -> Any:
    """The Ultralytics ``YOLO`` of a detection checkpoint (another task is a :class:`ConfigError`)."""
    from autolabel.core.checkpoints import load_yolo

    y = load_yolo(path, what="model")
    if y.task != "detect":
        raise ConfigError(f"'{path}' is a {y.task} model; export handles detection models")
    return y
