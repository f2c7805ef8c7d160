"""Finding model weights: local files, ``AUTOLABEL_WEIGHTS_DIR``, Ultralytics names and Hugging Face ids.

On a connected machine Ultralytics names (``yolov8n.pt``) and Hugging Face ids
(``IDEA-Research/grounding-dino-tiny``) download through their libraries' own caches and progress bars.
Offline, or when a file is missing, one :class:`~autolabel.core.errors.WeightsNotFoundError` line says where the
weights were looked for and how to point at local files (``--teacher yolo:/path/to/yolov8n.pt``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autolabel.core.errors import ConfigError, WeightsNotFoundError

__all__ = ["WEIGHTS_ENV", "hf_from_pretrained", "resolve_device", "resolve_local_weights", "weights_dir"]

WEIGHTS_ENV = "AUTOLABEL_WEIGHTS_DIR"


def weights_dir() -> Path | None:
    """The folder named by ``AUTOLABEL_WEIGHTS_DIR``, if set."""
    d = os.environ.get(WEIGHTS_ENV)
    return Path(d).expanduser() if d else None


def resolve_local_weights(spec: str) -> Path | None:
    """Return a local path for ``spec`` or ``None``.

    Looks at ``spec`` as a path, then for its file name in ``AUTOLABEL_WEIGHTS_DIR``, then in the
    Ultralytics weights folder.
    """
    p = Path(spec).expanduser()
    if p.exists():
        return p
    if len(p.parts) == 1:  # a bare name: try the known folders
        candidates = []
        wd = weights_dir()
        if wd is not None:
            candidates.append(wd / p.name)
        candidates.append(_ultralytics_weights_dir() / p.name)
        for c in candidates:
            if c.exists():
                return c
    return None


def _ultralytics_weights_dir() -> Path:
    """Where Ultralytics keeps downloaded weights (its ``weights_dir`` setting)."""
    try:  # only called when weights are about to be loaded, so importing ultralytics here costs nothing extra
        from autolabel.core.checkpoints import import_ultralytics

        import_ultralytics()
        from ultralytics.utils import SETTINGS

        return Path(SETTINGS["weights_dir"])
    except Exception:  # ultralytics missing or settings unreadable
        cfg = os.environ.get("YOLO_CONFIG_DIR")
        return Path(cfg).expanduser() / "weights" if cfg else Path.home() / ".config" / "Ultralytics" / "weights"


def looked_in(spec: str) -> str:
    """Human-readable list of places searched for ``spec`` (for error messages)."""
    wd = weights_dir()
    places = [f"'{spec}' as a path"]
    places.append(f"${WEIGHTS_ENV} ({wd})" if wd else f"${WEIGHTS_ENV} (unset)")
    places.append(str(_ultralytics_weights_dir()))
    return ", ".join(places)


def hf_from_pretrained(cls: Any, name_or_path: str, teacher: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(name_or_path)`` with a one-line error when the weights cannot be had.

    ``name_or_path`` is a local folder or a Hugging Face id. When the id is not in the local cache and the
    hub cannot be reached (offline, ``HF_HUB_OFFLINE=1``), the error names the id, the cache folder and how
    to pass a local folder (``--teacher {teacher}:/models/folder``).
    """
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not local.is_dir():
            raise WeightsNotFoundError(
                f"teacher '{teacher}': '{local}' is a file; expected a folder saved with save_pretrained() "
                "(config.json + weights) or a Hugging Face id"
            )
        name_or_path = str(local)
    elif name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:  # a path, not an id
        raise WeightsNotFoundError(f"teacher '{teacher}': local folder '{name_or_path}' does not exist")
    try:
        return cls.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as e:  # OSError covers offline hub, missing files, gated repos
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsNotFoundError(
            f"teacher '{teacher}': could not load '{name_or_path}' (looked in the Hugging Face cache {cache} "
            f"and the hub: {first[:160]}); download it on a connected machine with "
            f"`huggingface-cli download {name_or_path} --local-dir DIR` and pass --teacher {teacher}:DIR"
        ) from None


def resolve_device(device: str | None = "auto") -> str:
    """Turn ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` into a torch device string.

    Raises:
        ConfigError: a GPU was asked for but none is available.
    """
    import torch

    d = (device or "auto").lower()
    if d == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        return "cpu"
    if d == "cpu":
        return "cpu"
    if d.startswith("cuda") or d.isdigit():
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' requested but no CUDA GPU is available; use --device cpu")
        return f"cuda:{d}" if d.isdigit() else d
    if d == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("device 'mps' requested but Apple MPS is not available; use --device cpu")
        return "mps"
    raise ConfigError(f"unknown device '{device}'; expected auto, cpu, cuda, cuda:N or mps")
