"""Loading model checkpoints without running code from them, and importing Ultralytics without side effects.

A ``.pt`` file is a pickle: loading it with ``torch.load(weights_only=False)`` — what Ultralytics does by
default — runs any code the file's author put in it. autolabel loads every checkpoint it reads with
``weights_only=True``: its own state-dict checkpoints directly, Ultralytics checkpoints through Ultralytics'
restricted loader (``ULTRALYTICS_SAFE_LOAD``: ``weights_only=True`` plus an allow-list of its model
classes), which still loads official and fine-tuned YOLO files. A file that needs anything else is refused
with one line; :func:`trust_checkpoints` (the CLI's ``--trust-checkpoint``) is the explicit opt-in to the
unrestricted path, for files whose origin the user vouches for.

Importing Ultralytics also patches ``PIL.Image.open`` (a non-image then triggers ``pip install pi-heif``) and
enables run-time auto-installs. :func:`import_ultralytics` is the one way autolabel imports it: auto-install
off, safe loading on, ``PIL.Image.open`` restored.

Example:
    >>> from autolabel.core.checkpoints import load_yolo              # doctest: +SKIP
    >>> model = load_yolo("yolov8n.pt")                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from autolabel.core.errors import UnsafeCheckpointError, WeightsNotFoundError

__all__ = [
    "TRUST_ENV",
    "import_ultralytics",
    "load_format",
    "load_state",
    "load_yolo",
    "trust_checkpoints",
    "trusted",
    "private_ultralytics_config",
    "unpatched_image_open",
]

TRUST_ENV = "AUTOLABEL_TRUST_CHECKPOINTS"
"""Set to 1 to load checkpoints with full unpickling (the CLI's ``--trust-checkpoint``)."""

_TRUE = {"1", "true", "yes", "on"}
TRUST_HINT = (
    "if you trust where the file came from, pass --trust-checkpoint (or set AUTOLABEL_TRUST_CHECKPOINTS=1): "
    "a .pt file is a pickle and loading it unrestricted can run any code in it"
)


def trusted() -> bool:
    """Whether unrestricted checkpoint loading was opted into (``AUTOLABEL_TRUST_CHECKPOINTS``)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in _TRUE


def trust_checkpoints(on: bool = True) -> None:
    """Opt in (or back out of) unrestricted ``.pt`` loading for this process and its workers."""
    if on:
        os.environ[TRUST_ENV] = "1"
    else:
        os.environ.pop(TRUST_ENV, None)
    if "ultralytics" in sys.modules:
        _configure(sys.modules["ultralytics"])


def unpatched_image_open() -> Any:
    """``PIL.Image.open`` as Pillow ships it, even when Ultralytics replaced it before autolabel was imported."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    orig = getattr(patches, "_image_open", None) if patches is not None else None
    if orig is not None and getattr(Image.open, "__module__", "") == "ultralytics.utils.patches":
        return orig
    return Image.open


def private_ultralytics_config() -> None:
    """Give Ultralytics a settings folder of this process's own, removed at exit, unless the user set one.

    Importing Ultralytics writes ``~/.config/Ultralytics/settings.json``; a command of autolabel should leave
    nothing outside its output folder (and must not create that folder before its settings are valid, which
    a settings file inside it would). Only before Ultralytics is first imported and when ``YOLO_CONFIG_DIR``
    is unset; the CLI calls it once.
    """
    if "ultralytics" in sys.modules or os.environ.get("YOLO_CONFIG_DIR"):
        return
    import atexit
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="autolabel-ultralytics-")
    os.environ["YOLO_CONFIG_DIR"] = d
    atexit.register(shutil.rmtree, d, ignore_errors=True)


def import_ultralytics() -> ModuleType:
    """Import Ultralytics the way autolabel needs it: nothing installed at run time, checkpoints loaded safely.

    Sets ``YOLO_AUTOINSTALL=false`` and ``ULTRALYTICS_SAFE_LOAD`` before the first import, and after it (the
    user may have imported Ultralytics first) sets the same module flags and restores ``PIL.Image.open``.
    """
    if "ultralytics" not in sys.modules:
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")
        os.environ.setdefault("YOLO_VERBOSE", "false")  # its argument dump and layer tables; --verbose shows them
        os.environ["ULTRALYTICS_SAFE_LOAD"] = "0" if trusted() else "1"
    import ultralytics

    _configure(ultralytics)
    return ultralytics


def _configure(ultralytics: ModuleType) -> None:
    import importlib

    from PIL import Image

    utils = importlib.import_module("ultralytics.utils")
    checks = importlib.import_module("ultralytics.utils.checks")
    tasks = importlib.import_module("ultralytics.nn.tasks")
    patches = importlib.import_module("ultralytics.utils.patches")
    utils.AUTOINSTALL = False
    checks.AUTOINSTALL = False
    # With ray installed (the [ray] extra) Ultralytics adds its Ray Tune callback to every trainer, which warns
    # "get_trial_id is meant to only be called inside ... a Tuner" at each epoch: autolabel never trains under
    # Tune. Set in memory only (dict.__setitem__), so the user's own settings file is left as it is.
    if getattr(utils, "SETTINGS", None) is not None and utils.SETTINGS.get("raytune"):
        dict.__setitem__(utils.SETTINGS, "raytune", False)
    # check_font downloads Arial.ttf from GitHub at every dataset check, YOLO_OFFLINE or not
    for name in ("ultralytics.utils.checks", "ultralytics.data.utils", "ultralytics.utils.plotting"):
        mod = sys.modules.get(name) or importlib.import_module(name)
        if getattr(mod, "check_font", None) is not None and mod.check_font is not _local_font:
            mod.check_font = _local_font
    tasks.SAFE_LOAD = not trusted()
    _allow_autolabel_modules()
    orig = getattr(patches, "_image_open", None)
    if orig is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = orig


def _local_font(font: str = "Arial.ttf") -> Path | str | None:
    """Ultralytics' ``check_font`` without the download: its config folder, else a font matplotlib ships."""
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    name = Path(font).name
    if (Path(USER_CONFIG_DIR) / name).exists():
        return Path(USER_CONFIG_DIR) / name
    found = [f.fname for f in font_manager.fontManager.ttflist if font in f.fname and os.path.exists(f.fname)]
    return found[0] if found else font_manager.findfont("DejaVu Sans")


def _allow_autolabel_modules() -> None:
    """autolabel's own layers that its checkpoints hold (pruned students) join the weights-only allow-list.

    They are plain ``nn.Module`` subclasses: the restricted unpickler only sets their attributes, it calls no
    code of the file's choosing. Files pruned before the layers moved name them where they were
    (:data:`~autolabel.students.yolo.layers.LEGACY_NAMES`): those names resolve to the same classes.
    """
    import torch

    from autolabel.students.yolo.layers import LEGACY_NAMES, C2fSplit

    torch.serialization.add_safe_globals([C2fSplit, *((cls, name) for name, cls in LEGACY_NAMES.items())])


def safe_loading_supported() -> bool:
    """Ultralytics' restricted loader needs torch >= 2.6 and an Ultralytics that ships it."""
    import importlib

    tasks = importlib.import_module("ultralytics.nn.tasks")
    safe = getattr(tasks, "_SafeLoad", None)
    return bool(safe is not None and getattr(safe, "SUPPORTED", False))


def load_yolo(path: str | Path, *, what: str = "model") -> Any:
    """``ultralytics.YOLO(path)`` with restricted unpickling unless :func:`trusted`.

    Args:
        path: A local Ultralytics ``.pt`` (or an exported model Ultralytics can run).
        what: How the file is named in error messages ("teacher 'yolo'", "student" …).

    Raises:
        UnsafeCheckpointError: the file needs objects outside the allow-list (it may run code), or this
            torch/Ultralytics cannot load restricted and trust was not given.
        WeightsNotFoundError: the file is not a loadable Ultralytics checkpoint.
    """
    import_ultralytics()
    from ultralytics import YOLO

    p = str(path)
    restricted = not trusted() and p.endswith(".pt")
    if restricted and not safe_loading_supported():
        raise UnsafeCheckpointError(
            f"{what}: '{p}' was not loaded: safe (weights_only) loading needs torch>=2.6 and ultralytics>=8.4; "
            f"upgrade them, or {TRUST_HINT}"
        )
    try:
        return YOLO(p)
    except Exception as e:  # Ultralytics wraps the unpickler's refusal in TypeError / UnpicklingError
        msg = str(e).strip()
        first = msg.splitlines()[0][:160] if msg else type(e).__name__
        if restricted and _is_refusal(e) and _is_pickle(Path(p)):
            raise UnsafeCheckpointError(
                f"{what}: '{p}' was not loaded: it holds Python objects outside the Ultralytics checkpoint "
                f"format ({first}); {TRUST_HINT}"
            ) from None
        raise WeightsNotFoundError(
            f"{what}: '{p}' is not a loadable Ultralytics checkpoint ({type(e).__name__}: {first})"
        ) from None


def _is_pickle(path: Path) -> bool:
    """A torch.save zip archive or a legacy pickle: what a refusal can be about (random bytes are just broken)."""
    import zipfile

    try:
        with path.open("rb") as f:
            head = f.read(2)
        return zipfile.is_zipfile(path) or head[:1] == b"\x80"  # pickle protocol 2+ starts with PROTO
    except OSError:
        return False


def _is_refusal(e: BaseException) -> bool:
    import pickle

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if isinstance(e, pickle.UnpicklingError) or "outside the supported" in text or "weights_only" in text.lower():
            return True
        if isinstance(e, ModuleNotFoundError):  # a checkpoint naming a module Ultralytics would auto-install
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False


def load_state(path: str | Path, *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` for autolabel's own state-dict checkpoints.

    Raises:
        UnsafeCheckpointError: the file holds objects a weights-only load refuses.
        WeightsNotFoundError: the file is missing or not a torch checkpoint.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(f"{what}: '{p}' not found")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UnsafeCheckpointError(f"{what}: '{p}' was not loaded with weights_only=True ({first})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise WeightsNotFoundError(f"{what}: '{p}' is not a readable torch checkpoint ({type(e).__name__})") from None


def load_format(path: str | Path, fmt: str, version: int, what: str, written_by: str) -> dict[str, Any]:
    """One of autolabel's own checkpoint dicts (``{"format": fmt, "version": n, ...}``), ``weights_only`` loaded,
    after checking its format and version: the classifier's and SSDLite's checkpoints.

    Args:
        fmt, version: the format tag and the newest version this autolabel reads.
        what: the model kind in messages (``"classifier"``, ``"SSDLite"``).
        written_by: what writes such files, for the message on another file (``"train_classifier"``).

    Raises:
        ConfigError: the file is missing, unreadable, another kind of file, or of a newer version.
    """
    import torch

    from autolabel.core.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} checkpoint '{path}' not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise ConfigError(f"'{path}' is not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ConfigError(f"'{path}' is not an autolabel {what} checkpoint (best.pt / last.pt of {written_by})")
    if int(ckpt.get("version", 0)) > version:
        raise ConfigError(f"'{path}': checkpoint version {ckpt.get('version')} is newer than this autolabel "
                          "supports; upgrade autolabel")
    return ckpt
