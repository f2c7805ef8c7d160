"""Finding model weights: local files, ``AUTOLABEL_WEIGHTS_DIR``, Ultralytics names and Hugging Face ids.

The one place that turns a weights name or path into something to load: :func:`ultralytics_weights` (a
``.pt`` file; :func:`find_ultralytics_weights` checks without downloading) and :func:`hf_from_pretrained`
(a Hugging Face model or processor). Loading a ``.pt`` safely is :mod:`autolabel.core.checkpoints`' job.

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

__all__ = [
    "WEIGHTS_ENV",
    "find_ultralytics_weights",
    "hf_from_pretrained",
    "looked_in",
    "resolve_device",
    "resolve_local_weights",
    "ultralytics_hint",
    "ultralytics_offline",
    "ultralytics_weights",
    "weights_dir",
]

WEIGHTS_ENV = "AUTOLABEL_WEIGHTS_DIR"

_TRUE = {"1", "true", "yes", "on"}


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


def ultralytics_offline() -> str | None:
    """Why Ultralytics cannot download weights now, or ``None`` when it may.

    Offline means ``YOLO_OFFLINE`` is set, or Ultralytics found no network when it was imported (its
    ``ONLINE``, which a test may patch).
    """
    if os.environ.get("YOLO_OFFLINE", "").strip().lower() in _TRUE:
        return "YOLO_OFFLINE is set"
    try:
        from autolabel.core.checkpoints import import_ultralytics

        utils = import_ultralytics().utils
    except Exception:  # ultralytics missing: the download itself will say so
        return None
    return None if getattr(utils, "ONLINE", True) else "no network"


def ultralytics_hint(spec: str, option: str) -> str:
    """How to get a missing Ultralytics checkpoint: download it, or pass a local file with ``option``.

    ``option`` is how a local file is passed: ``"--teacher yolo:"`` (the path follows the colon) or
    ``"--student"`` (the path follows a space).

    >>> ultralytics_hint("yolov8n.pt", "--student").split(": ")[-1]
    '--student /path/to/yolov8n.pt (or set AUTOLABEL_WEIGHTS_DIR)'
    """
    joiner = "" if option.endswith((":", "=")) else " "
    return (
        f"download it on a connected machine (Ultralytics fetches '{spec}' by name) or pass a local file: "
        f"{option}{joiner}/path/to/{os.path.basename(spec)} (or set {WEIGHTS_ENV})"
    )


def find_ultralytics_weights(spec: str, what: str, hint: str) -> Path | None:
    """The local file of an Ultralytics checkpoint, or ``None`` when Ultralytics may still download it by name.

    ``spec`` is a path or an Ultralytics asset name (``yolov8n.pt``), looked for with
    :func:`resolve_local_weights`. Use this to check up front without downloading;
    :func:`ultralytics_weights` also downloads.

    Args:
        spec: the path or name.
        what: who wants it, the start of the error: ``"teacher 'yolo':"``, ``"student"``.
        hint: what to do about it, the end of the error (e.g. :func:`ultralytics_hint`).

    Raises:
        WeightsNotFoundError: not here and not to be downloaded: offline (:func:`ultralytics_offline`), a
            path rather than a name, or a name that is no ``.pt`` file.
    """
    local = resolve_local_weights(spec)
    if local is not None:
        return local
    downloadable = len(Path(spec).parts) == 1 and not spec.startswith((".", "~")) and spec.endswith(".pt")
    offline = ultralytics_offline() if downloadable else None
    if not downloadable or offline:
        why = f" (offline: {offline})" if offline else ""
        raise WeightsNotFoundError(f"{what} weights '{spec}' not found{why} (looked in {looked_in(spec)}); {hint}")
    return None


def ultralytics_weights(spec: str, what: str, hint: str) -> Path:
    """The local file of an Ultralytics checkpoint; online, an asset name is downloaded as ``YOLO(name)`` does.

    Arguments as :func:`find_ultralytics_weights`.

    Raises:
        WeightsNotFoundError: not found and not downloadable, or the download failed.

    Example:
        >>> ultralytics_weights("yolov8n.pt", "student", ultralytics_hint("yolov8n.pt", "--student"))  # doctest: +SKIP
        PosixPath('/work/shared/weights/yolov8n.pt')
    """
    local = find_ultralytics_weights(spec, what, hint)
    if local is not None:
        return local
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        got = Path(attempt_download_asset(spec))
        if not got.is_file():
            raise FileNotFoundError(spec)
    except Exception as e:  # network errors come in many types
        raise WeightsNotFoundError(
            f"{what} weights '{spec}' not found locally ({looked_in(spec)}) and the download failed "
            f"({type(e).__name__}); {hint}"
        ) from None
    return got


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
