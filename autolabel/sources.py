"""Streaming images and video frames for labeling.

Users point autolabel at folders of thousands of mixed-format images and hours of CCTV video, with unreadable
files among them. This module turns such inputs into a lazy stream of :class:`Frame` objects:

* :func:`discover` walks folders recursively and deterministically (sorted per directory, hidden entries
  skipped) without ever holding the whole file list, and gives every file a stable, filesystem-safe id;
* :func:`load_image` decodes one image by content (not by extension) into an RGB ``uint8`` array, applying
  EXIF orientation and guarding against truncated files and decompression bombs;
* :func:`iter_frames` yields decoded images and sampled, de-duplicated video frames, recording every
  unreadable input in a :class:`SourceReport` instead of raising.

Example:
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(root / "a.png")
    >>> report = SourceReport()
    >>> [(f.id, f.image.shape, f.copyable) for f in iter_frames([root], report=report)]
    [('a', (4, 6, 3), True)]
    >>> report.images_found
    1
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.config import SourceConfig
from autolabel.core.checkpoints import unpatched_image_open
from autolabel.core.errors import SourceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "MediaItem",
    "SourceConfig",
    "VideoSpan",
    "image_frame",
    "truncation_note",
    "SourceReport",
    "count_items",
    "discover",
    "estimate_total_frames",
    "iter_frames",
    "load_image",
    "video_blocks",
    "video_span_frames",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".webp",
        ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm",
    }
)  # fmt: skip
"""Image file extensions (lowercase, with the dot). Files are decoded by content; GIFs give their first frame."""

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".ts"}
)
"""Video file extensions (lowercase, with the dot), decoded with OpenCV (FFmpeg)."""

IMAGE = "image"
VIDEO = "video"

_ASSUMED_FPS = 25.0  # when a container reports no usable frame rate (common for raw CCTV streams)
_MAX_PLAUSIBLE_FPS = 1000.0  # broken containers report 90000 (the MPEG-TS clock); treat as unknown
_THUMB_SIZE = (64, 36)  # (width, height) of the grayscale thumbnail used for de-duplication
_MAX_ID_LEN = 200  # keeps f"{id}_f0000000.jpg" under the usual 255-byte file name limit
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# An id part kept as it is: starts with a letter or digit, single underscores only, none at the end.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(?:_[A-Za-z0-9.-]+)*")
_FRAME_LIKE = re.compile(r"_f[0-9]{7,}$")  # what _make_frame_id appends to a video's id
# EXIF orientation -> the numpy operation that undoes it (same results as PIL.ImageOps.exif_transpose).
_ORIENT_OPS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


_DEFAULT_CONFIG = SourceConfig()


@dataclass(frozen=True)
class MediaItem:
    """One discovered file, before decoding.

    Attributes:
        path: The file.
        kind: ``"image"`` or ``"video"``.
        id: Unique, filesystem-safe id derived from the path relative to its source root.
    """

    path: Path
    kind: str
    id: str


@dataclass
class Frame:
    """One decoded image or sampled video frame.

    Attributes:
        id: Unique, filesystem-safe and stable across runs: the image's :class:`MediaItem` id, or
            ``f"{video_id}_f{frame_index:07d}"`` for video.
        image: ``HxWx3`` ``uint8`` RGB, C-contiguous and writeable, EXIF orientation applied.
        source: The original file path.
        group: Train/val split group key: the image id, or ``f"{video_id}_t{block:05d}"`` for video.
        frame_index: Index of the frame in the video (video only).
        timestamp: ``frame_index / fps`` in seconds (video only).
        copyable: The original file's bytes can be copied into a dataset as-is (JPEG or 8-bit RGB PNG,
            no EXIF rotation, not resized); otherwise the consumer re-encodes ``image``.
        suffix: File suffix to use when copying (``.jpg``, ``.jpeg`` or ``.png``); ``.jpg`` when not copyable.
    """

    id: str
    image: np.ndarray = field(repr=False)
    source: str
    group: str
    frame_index: int | None = None
    timestamp: float | None = None
    copyable: bool = False
    suffix: str = ".jpg"


@dataclass
class SourceReport:
    """What happened to the inputs; filled while iterating, printed or saved at the end.

    ``images_found``, ``videos_found`` and ``ignored_files`` describe the latest walk over the sources
    (:func:`count_items` and :func:`iter_frames` each set them, so one report may be passed to both).

    Attributes:
        images_found: Image files found (by extension).
        videos_found: Video files found (by extension).
        frames_sampled: Video frames taken at the sampling rate.
        frames_deduplicated: Of those, frames skipped as near-duplicates of the last kept frame.
        ignored_files: Files that are neither images nor videos by extension (hidden files not counted).
        skipped: ``(path, one-line reason)`` for every unreadable input.
    """

    images_found: int = 0
    videos_found: int = 0
    frames_sampled: int = 0
    frames_deduplicated: int = 0
    ignored_files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``skipped`` becomes a list of ``{"path": ..., "reason": ...}``."""
        return {
            "images_found": self.images_found,
            "videos_found": self.videos_found,
            "frames_sampled": self.frames_sampled,
            "frames_deduplicated": self.frames_deduplicated,
            "ignored_files": self.ignored_files,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }

    def _reset_found(self) -> None:
        self.images_found = self.videos_found = self.ignored_files = 0


# --------------------------------------------------------------------------------------------- discovery


def discover(sources: Sequence[str | Path], report: SourceReport | None = None) -> Iterator[MediaItem]:
    """Lazily yield the images and videos under ``sources``, in a deterministic order.

    Folders are walked recursively with :func:`os.scandir`, sorted by name per directory; only one
    directory listing per level is held, so memory does not grow with the number of files. Hidden files and
    folders (name starting with ``.``) are skipped; extensions match case-insensitively; symlinked folders
    are followed unless they loop back to a folder being walked.

    Ids are the path relative to the source root, extension removed, separators replaced by ``__``
    (``sub/x.jpg`` -> ``sub__x``). The root of a folder source is the folder itself when one source is given
    and its parent when several are (``camA__x``, ``camB__x``); a file's root is its parent. Distinct files
    always get distinct ids, stable across runs:

    * a path whose parts are not all *plain* (letters, digits, ``.``, ``-`` and single inner ``_``; a part
      ending in ``_f`` + 7 digits is not plain either, since video frame ids end so) would lose information
      when cleaned (``x y/x.jpg`` vs ``x_y/x.jpg``, ``日本/x.jpg`` vs ``中国/x.jpg``, ``a__x.jpg`` vs
      ``a/x.jpg``, ``cam_f0000000.jpg`` vs frame 0 of ``cam.mp4``): its id is the cleaned name, ``___`` and
      a 12-hex hash of the raw relative path (``x_y__x___3f2a…``), a form no plain id takes;
    * when two files of one folder share a stem (``a.jpg``, ``a.png``) the later one gets the lowercased
      extension appended (``a_png``);
    * ids never start with ``.`` and are at most 200 characters (longer ones are shortened with a hash).

    Args:
        sources: Folders, image files or video files (a single path is accepted too).
        report: If given, found and ignored files are added to it, and unlistable folders recorded.

    Raises:
        SourceError: no sources are given or one does not exist (raised at once, before iterating).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "sub").mkdir(); (root / "sub" / "x.JPG").touch(); (root / "notes.txt").touch()
        >>> [(m.kind, m.id) for m in discover([root])]
        [('image', 'sub__x')]
        >>> (root / "sub" / "y z.jpg").touch()
        >>> [m.id for m in discover([root])][1][:8]
        'sub__y_z'
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [Path(s) for s in sources]
    if not paths:
        raise SourceError("no sources given (expected images, videos or folders of them)")
    for s, p in zip(sources, paths, strict=True):
        if not p.exists():
            raise SourceError(f"source '{s}' not found (expected an image, a video or a folder of them)")
    # A generator created here (not a generator function) so missing sources raise on the call itself.
    return _discover(paths, report if report is not None else SourceReport())


def _discover(paths: list[Path], report: SourceReport) -> Iterator[MediaItem]:
    several = len(paths) > 1
    used: set[str] = set()  # top-level names given on the command line: bounded by the argument list

    def unique(name: str) -> str:
        # Two sources with the same name (a/cam, b/cam; a/x.jpg, b/x.jpg) would share ids, and the
        # second would be taken as already labeled on resume: number the later ones.
        out, k = name, 2
        while out in used:
            out, k = f"{name}_{k}", k + 1
        used.add(out)
        return out

    for p in paths:
        if p.is_dir():
            prefix = [unique(Path(os.path.abspath(p)).name or "root")] if several else []
            yield from _walk(p, prefix, report, ())
        else:
            kind = _kind(p.name)
            if kind is None:
                report.ignored_files += 1
                continue
            _count(report, kind)
            stem = _split_stem(p.name)[0]
            if _plain(stem):
                ident = _make_id([unique(stem)])
            else:  # numbered on the raw name, so two different lossy names never share a number
                ident = _lossy_id([], unique(stem), f"file:{p.name}")
            yield MediaItem(path=p, kind=kind, id=ident)


def _walk(
    directory: Path, prefix: list[str], report: SourceReport, ancestors: tuple[tuple[int, int], ...]
) -> Iterator[MediaItem]:
    """Depth-first walk of one folder; ``prefix`` holds the raw names of the id's leading parts and
    ``ancestors`` (dev, inode) pairs stop symlink loops."""
    try:
        st = directory.stat()
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            return  # a symlink back to a folder being walked: its files are already covered
        with os.scandir(directory) as it:
            # Only names and kinds of this one folder are kept, not DirEntry objects of the whole tree.
            entries = sorted((e.name, _entry_kind(e)) for e in it if not e.name.startswith("."))
    except OSError as exc:
        report.skipped.append((str(directory), f"cannot list folder: {exc.strerror or exc}"))
        return
    ancestors = (*ancestors, key)
    plain_prefix = all(_plain(part) for part in prefix)
    used: set[str] = set()  # ids given in this folder, for the same-stem rule
    for name, entry_kind in entries:
        path = directory / name
        if entry_kind == "dir":
            yield from _walk(path, [*prefix, name], report, ancestors)
            continue
        kind = _kind(name)
        if kind is None:
            report.ignored_files += 1
            continue
        if entry_kind != "file":
            report.skipped.append((str(path), "not a regular file (broken link, pipe or device)"))
            continue
        stem, ext = _split_stem(name)
        _count(report, kind)
        if not (plain_prefix and _plain(stem)):
            # The cleaned name loses information: a hash of the raw relative path keeps it unique.
            yield MediaItem(path=path, kind=kind, id=_lossy_id(prefix, stem, "/".join([*prefix, name])))
            continue
        local = stem
        if local in used:  # a.jpg then a.png: the later one becomes a_png (then a_png_2, ... if needed)
            base = f"{local}_{ext.lstrip('.').lower()}"
            local, n = base, 2
            while local in used:
                local, n = f"{base}_{n}", n + 1
        used.add(local)
        yield MediaItem(path=path, kind=kind, id=_make_id([*prefix, local]))


def _entry_kind(entry: os.DirEntry[str]) -> str:
    try:
        if entry.is_dir():
            return "dir"
        return "file" if entry.is_file() else "other"
    except OSError:
        return "other"


def _kind(name: str) -> str | None:
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return IMAGE
    if ext in VIDEO_EXTENSIONS:
        return VIDEO
    return None


def _count(report: SourceReport, kind: str) -> None:
    if kind == IMAGE:
        report.images_found += 1
    else:
        report.videos_found += 1


def _split_stem(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    return stem, ext


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part)


def _plain(part: str) -> bool:
    """True when ``part`` is its own id part: cleaning it loses nothing and it cannot be mistaken for the
    ``__`` separator, a hashed id (``___``), a video frame id (``_f0000123``) or a hidden file."""
    return _PLAIN.fullmatch(part) is not None and _FRAME_LIKE.search(part) is None


def _make_id(parts: list[str]) -> str:
    """The id of plain parts: joined by ``__`` (each part already passed :func:`_plain`)."""
    return _shorten("__".join(parts))


def _lossy_id(parts: list[str], stem: str, key: str) -> str:
    """A readable cleaned name plus ``___`` and a hash of the raw relative path ``key``.

    Plain ids never contain ``___`` (plain parts neither start nor end with ``_`` nor hold ``__``) and never
    end in ``_f`` + digits, so a hashed id can meet neither a plain id nor a video frame id; two different
    raw paths share one only on a 48-bit hash collision.
    """
    clean = "__".join(_safe(p) for p in [*parts, stem]) or "_"
    if clean.startswith("."):  # an explicitly named dotfile: its dataset files must not be hidden files
        clean = "_" + clean[1:]
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return _shorten(f"{clean}___{digest}")


def _shorten(ident: str) -> str:
    if len(ident) > _MAX_ID_LEN:  # deep trees: keep the head readable, keep ids unique with a hash
        digest = hashlib.sha1(ident.encode()).hexdigest()[:12]
        ident = f"{ident[: _MAX_ID_LEN - 15]}___{digest}"
    return ident


def count_items(sources: Sequence[str | Path], report: SourceReport | None = None) -> tuple[int, int]:
    """Count images and videos by walking once without decoding (for progress totals).

    Args:
        sources: As for :func:`discover`.
        report: If given, its ``images_found``, ``videos_found`` and ``ignored_files`` are set.

    Returns:
        ``(n_images, n_videos)``.

    Raises:
        SourceError: a source is missing, or no image or video is found at all.

    Example:
        >>> import tempfile
        >>> count_items([tempfile.mkdtemp()])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        autolabel.core.errors.SourceError: no images or videos found in [...] (looked for ...)
    """
    scratch = SourceReport()
    for _ in discover(sources, scratch):
        pass
    if report is not None:
        report.images_found = scratch.images_found
        report.videos_found = scratch.videos_found
        report.ignored_files = scratch.ignored_files
    if scratch.images_found + scratch.videos_found == 0:
        raise _nothing_found(sources, scratch)
    return scratch.images_found, scratch.videos_found


def _nothing_found(sources: Sequence[str | Path], report: SourceReport) -> SourceError:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    names = [str(s) for s in sources]
    ignored = f"; {report.ignored_files} other file(s) ignored" if report.ignored_files else ""
    return SourceError(
        f"no images or videos found in {names} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} "
        f"and {', '.join(sorted(VIDEO_EXTENSIONS))}{ignored})"
    )


def estimate_total_frames(sources: Sequence[str | Path], config: SourceConfig = _DEFAULT_CONFIG) -> int:
    """Images plus the sampled frames each video should give, for a progress bar total.

    Cheap: videos are opened to read their frame count and rate, not decoded. De-duplication and broken
    frames can only lower the real count, so this is an upper bound (videos without a frame count add 0).

    Raises:
        SourceError: a source is missing, or no image or video is found at all.
    """
    config = config or _DEFAULT_CONFIG
    scratch = SourceReport()
    total = 0
    for item in discover(sources, scratch):
        total += 1 if item.kind == IMAGE else _estimate_video_samples(item.path, config)
    if scratch.images_found + scratch.videos_found == 0:
        raise _nothing_found(sources, scratch)
    return total


# ------------------------------------------------------------------------------------------------ images


def load_image(path: str | Path, config: SourceConfig = _DEFAULT_CONFIG) -> tuple[np.ndarray, bool]:
    """Decode one image file into an ``HxWx3`` ``uint8`` RGB array.

    The format is detected from the content (a PNG named ``.jpg`` works); multi-frame GIF/TIFF give their
    first frame; EXIF orientation is applied. Modes are converted as follows:

    * RGB as is; L, 1, P, CMYK, YCbCr, LAB, HSV converted to RGB;
    * modes with transparency (RGBA, LA, PA, P with a transparent color) are composited over black, so
      fully transparent areas are black whatever colors they store;
    * 16/32-bit integer (I;16, I;16B, I) is scaled to 8 bits when its maximum exceeds 255: by 65535 when it
      fits 16 bits, else by 2**31 - 1 (negatives clip to 0); grayscale becomes gray RGB;
    * float (F): values within [0, 1] are scaled by 255, others clipped to [0, 255] (NaN -> 0).

    Args:
        path: The image file.
        config: ``max_pixels`` (checked from the header, before decoding) and ``max_side``.

    Returns:
        ``(image, copyable)``; ``copyable`` is True when the file's bytes can be used as-is: a JPEG or an
        8-bit RGB PNG, with no EXIF rotation, not resized.

    Raises:
        SourceError: one-line reason: empty, not an image, truncated or corrupt, too large, ...

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "gray.png"
        >>> from PIL import Image
        >>> Image.new("L", (3, 2), 7).save(p)
        >>> img, copyable = load_image(p)
        >>> img.shape, int(img[0, 0, 2]), copyable
        ((2, 3, 3), 7, False)
    """
    image, suffix = _load_image(Path(path), config or _DEFAULT_CONFIG)
    return image, suffix is not None


def _load_image(path: Path, config: SourceConfig) -> tuple[np.ndarray, str | None]:
    """:func:`load_image`, returning the suffix to copy the file with (None when not copyable)."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    try:
        nbytes = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc
    if nbytes == 0:
        raise SourceError("empty file (0 bytes)")

    # max_pixels is the limit autolabel enforces; PIL's own bomb limit (2x MAX_IMAGE_PIXELS) is raised to it
    # when the user allows more (raising only: never loosens what someone else tightened below ours).
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < config.max_pixels:
        Image.MAX_IMAGE_PIXELS = config.max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            # Pillow's own open: Ultralytics, once imported, replaces Image.open with one that runs
            # ``pip install pi-heif`` on a file Pillow cannot identify. autolabel never installs at run time.
            img = unpatched_image_open()(path)
        except Image.DecompressionBombError as exc:
            raise SourceError(f"too large: {_one_line(exc)}") from exc
        except UnidentifiedImageError as exc:
            raise SourceError("not an image: content is not a recognized image format") from exc
        except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:
            raise SourceError(f"cannot read file: {exc.strerror or exc}") from exc
        except Exception as exc:  # PIL raises many types for malformed headers
            raise SourceError(f"not an image: {_one_line(exc)}") from exc

    with img:
        w, h = img.size
        if w <= 0 or h <= 0:
            raise SourceError(f"truncated or corrupt image: size {w}x{h}")
        if w * h > config.max_pixels:
            raise SourceError(f"too large: {w}x{h} > max_pixels ({config.max_pixels})")
        fmt = img.format
        target = _fit(w, h, config.max_side) if config.max_side else None
        if target is not None and fmt == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster and smaller for big photos.
            img.draft(None, target)

        # Truncated files must fail, not come back padded with gray; restore whatever a caller had set.
        truncated_ok = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            img.load()
        except Exception as exc:
            raise SourceError(f"truncated or corrupt image: {_one_line(exc)}") from exc
        finally:
            if truncated_ok:
                ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok

        orientation = _orientation(img)
        mode = img.mode
        try:
            arr = _to_rgb(img)
        except Exception as exc:
            raise SourceError(f"unsupported image mode {mode}: {_one_line(exc)}") from exc
        copyable = (
            target is None
            and orientation == 1
            and mode == "RGB"
            and (fmt == "JPEG" or (fmt == "PNG" and _is_plain_rgb8_png(path, img)))
        )

    op = _ORIENT_OPS.get(orientation)
    if op is not None:
        arr = op(arr)
    if target is not None:
        import cv2

        th, tw = (target[1], target[0]) if orientation < 5 else (target[0], target[1])
        if arr.shape[:2] != (th, tw):
            arr = cv2.resize(np.ascontiguousarray(arr), (tw, th), interpolation=cv2.INTER_AREA)
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # arrays over PIL's bytes are read-only; consumers may draw on frames
        arr = arr.copy()
    return arr, (_copy_suffix(path, fmt) if copyable else None)


def _fit(w: int, h: int, max_side: int) -> tuple[int, int] | None:
    """``(w, h)`` scaled so the longer side is ``max_side``, or None when already small enough."""
    if max(w, h) <= max_side:
        return None
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _orientation(img: Any) -> int:
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block should not cost an otherwise good image
        return 1
    return value if value in _ORIENT_OPS else 1


def _to_rgb(img: Any) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _gray3(_int_to_uint8(np.asarray(img)))
    if mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.min() >= 0 and a.max() <= 1.0:
            a = a * 255.0
        return _gray3(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img if mode == "RGBA" else img.convert("RGBA"))
        alpha = rgba[..., 3]
        if alpha.size == 0 or alpha.min() == 255:
            return rgba[..., :3]
        rgb = (rgba[..., :3].astype(np.uint16) * alpha[..., None] + 127) // 255
        return rgb.astype(np.uint8)
    if mode == "L":
        return _gray3(np.asarray(img))
    return np.asarray(img.convert("RGB"))


def _int_to_uint8(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64) if a.dtype.kind == "i" else a.astype(np.uint32)
    hi = int(a.max()) if a.size else 0
    if hi <= 255:
        return np.clip(a, 0, 255).astype(np.uint8)
    scale = 65535.0 if hi <= 65535 else float(2**31 - 1)
    return np.clip(np.rint(np.clip(a, 0, None) * (255.0 / scale)), 0, 255).astype(np.uint8)


def _gray3(g: np.ndarray) -> np.ndarray:
    return np.repeat(g[..., None], 3, axis=2)


def _is_plain_rgb8_png(path: Path, img: Any) -> bool:
    """True for a single-frame PNG stored as 8-bit RGB (PIL shows 16-bit RGB as mode RGB too)."""
    if getattr(img, "n_frames", 1) > 1:  # APNG
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return False
    # Signature (8) + IHDR length and type (8) + width, height (8) + bit depth (1) + color type (1).
    return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 8 and head[25] == 2


def _copy_suffix(path: Path, img_format: str | None) -> str:
    ext = path.suffix.lower()
    if img_format == "PNG":
        return ".png"
    # Keep .jpg/.jpeg; .jpe/.jfif (or a JPEG named .png) become .jpg, which every trainer recognizes.
    return ext if ext in (".jpg", ".jpeg") else ".jpg"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------------------------------------ frames


def iter_frames(
    sources: Sequence[str | Path],
    config: SourceConfig = _DEFAULT_CONFIG,
    report: SourceReport | None = None,
    skip: Callable[[str], bool] | None = None,
    resume: Callable[[str, Path, int | None], bool] | None = None,
) -> Iterator[Frame]:
    """Lazily yield decoded images and sampled video frames, in discovery order.

    Unreadable inputs are recorded in ``report.skipped`` and iteration goes on; one bad file never raises.
    Video is sampled at ``config.video_fps`` (or every ``video_stride``-th frame) with cheap ``grab()`` calls
    in between, and a sampled frame nearly identical to the last kept one is dropped (``dedup_threshold``).
    A video reporting no usable frame rate is assumed to run at 25 fps.

    Args:
        sources: As for :func:`discover` (missing sources raise :class:`SourceError` at the first ``next``).
        config: Sampling, de-duplication and decoding options.
        report: Filled while iterating (its found/ignored counts are reset to this walk's).
        skip: Resume support: called with a frame id; when it returns True the frame is not yielded. Images
            are then not even decoded; video frames still take part in de-duplication, so a resumed run
            keeps exactly the frames the first run kept.
        resume: Like ``skip`` but called with ``(frame id, source file, frame index or None for an image)``,
            so a dataset writer can recognise an input it labeled under another id (another source list).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("a.png", "b.png"):
        ...     Image.new("RGB", (2, 2)).save(root / name)
        >>> [f.id for f in iter_frames([root], skip=lambda i: i == "a")]
        ['b']
    """
    config = config or _DEFAULT_CONFIG
    report = report if report is not None else SourceReport()
    report._reset_found()
    done = _done_test(skip, resume)
    for item in discover(sources, report):
        if item.kind == IMAGE:
            if done is not None and done(item.id, item.path, None):
                continue
            frame = image_frame(item, config, report)
            if frame is not None:
                yield frame
        else:
            yield from _video_frames(item, config, report, done)


def _done_test(
    skip: Callable[[str], bool] | None, resume: Callable[[str, Path, int | None], bool] | None
) -> Callable[[str, Path, int | None], bool] | None:
    if skip is None and resume is None:
        return None

    def done(frame_id: str, path: Path, index: int | None) -> bool:
        return (skip is not None and skip(frame_id)) or (resume is not None and resume(frame_id, path, index))

    return done


def image_frame(item: MediaItem, config: SourceConfig, report: SourceReport) -> Frame | None:
    """Decode one discovered image into a :class:`Frame`; a file that cannot be read is added to ``report`` (None)."""
    try:
        image, suffix = _load_image(item.path, config)
    except SourceError as exc:
        report.skipped.append((str(item.path), str(exc)))
        return None
    return Frame(
        id=item.id,
        image=image,
        source=str(item.path),
        group=item.id,
        copyable=suffix is not None,
        suffix=suffix or ".jpg",
    )


def _open_video(path: Path) -> Any:
    import cv2

    # FFmpeg first: CAP_ANY may treat a name containing '%' as an image-sequence pattern.
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def _video_fps(cap: Any) -> float:
    import cv2

    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (isinstance(fps, float) and math.isfinite(fps) and 0 < fps <= _MAX_PLAUSIBLE_FPS):
        return _ASSUMED_FPS
    return float(fps)


def _sample_step(config: SourceConfig, fps: float) -> float:
    """Frames between samples (>= 1); float for fps sampling so the rate does not drift."""
    if config.video_stride is not None:
        return float(config.video_stride)
    assert config.video_fps is not None  # guaranteed by SourceConfig validation
    return max(1.0, fps / config.video_fps)


def _estimate_video_samples(path: Path, config: SourceConfig) -> int:
    import cv2

    try:
        if path.stat().st_size == 0:
            return 0
    except OSError:
        return 0
    cap = _open_video(path)
    if cap is None:
        return 0
    try:
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if not (math.isfinite(n) and n >= 1):
            return 0
        step = _sample_step(config, _video_fps(cap))
        return int(math.floor((int(n) - 1) / step + 1e-9)) + 1
    finally:
        cap.release()


@dataclass
class VideoSpan:
    """What decoding one span of a video (the whole of it, or one block) saw; :func:`video_span_frames`
    fills it, so a caller that decodes a video in blocks can report it as one.

    Attributes:
        opened: the file could be opened (``reason`` says why not otherwise).
        reason: why nothing could be read (empty file, unreadable, cannot open), else ``None``.
        sampled: frames taken at the sampling rate in the span.
        decoded: of those, frames decoded (or passed over as already labeled).
        read_to: index + 1 of the last frame read.
        ended: the stream ended before the span's end.
        declared: the frame count the container declares (0 when it declares none).
    """

    opened: bool = True
    reason: str | None = None
    sampled: int = 0
    decoded: int = 0
    read_to: int = 0
    ended: bool = False
    declared: int = 0


# Containers OpenCV (FFmpeg) seeks frame-accurately when they declare a frame count; raw streams (.ts, .mpg)
# are decoded as one piece.
_SEEKABLE = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})


def video_blocks(path: str | Path, config: SourceConfig = _DEFAULT_CONFIG) -> list[tuple[int, int | None]]:
    """The ``[lo, hi)`` frame ranges of a video's split blocks (``video_group_seconds`` each; the last one
    open-ended, ``hi=None``), the work units of a distributed run.

    A video that cannot be opened, declares no frame count or is not in a container known to seek
    frame-accurately is one range ``[(0, None)]`` (decoded from the start, as by :func:`iter_frames`).
    """
    path = Path(path)
    if path.suffix.lower() not in _SEEKABLE:
        return [(0, None)]
    import cv2

    try:
        if path.stat().st_size == 0:
            return [(0, None)]
    except OSError:
        return [(0, None)]
    cap = _open_video(path)
    if cap is None:
        return [(0, None)]
    try:
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = _video_fps(cap)
    finally:
        cap.release()
    if not (math.isfinite(n) and n >= 1):
        return [(0, None)]
    last = _block_of(int(n) - 1, fps, config.video_group_seconds)
    los = [_block_start(k, fps, config.video_group_seconds) for k in range(last + 1)]
    return [(lo, los[k + 1] if k < last else None) for k, lo in enumerate(los)]


def _block_of(index: int, fps: float, group_seconds: float) -> int:
    return int((index / fps) // group_seconds)  # the same expression the frames' split group uses


def _block_start(k: int, fps: float, group_seconds: float) -> int:
    """The first frame index of block ``k``."""
    i = max(0, math.ceil(k * group_seconds * fps) - 2)
    while _block_of(i, fps, group_seconds) < k:
        i += 1
    while i > 0 and _block_of(i - 1, fps, group_seconds) >= k:
        i -= 1
    return i


def _sample_index(n: int, step: float) -> int:
    """The frame index of sample ``n``: the first index with ``index + 1e-6 >= n * step`` (as sampled)."""
    c = max(0, math.ceil(n * step - 1e-6) - 1)
    while c + 1e-6 < n * step:
        c += 1
    return c


def _first_sample_from(lo: int, step: float) -> int:
    """The number of the first sample whose frame index is ``>= lo``."""
    n = max(0, int(lo / step) - 1)
    while _sample_index(n, step) < lo:
        n += 1
    return n


def _seek(cap: Any, index: int) -> bool:
    """Position ``cap`` so the next ``grab()`` reads frame ``index``; False when it cannot."""
    import cv2

    if index <= 0:
        return True
    return bool(cap.set(cv2.CAP_PROP_POS_FRAMES, index)) and int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index


def _video_frames(
    item: MediaItem, config: SourceConfig, report: SourceReport,
    skip: Callable[[str, Path, int | None], bool] | None,
) -> Iterator[Frame]:
    span = VideoSpan()
    yield from video_span_frames(item, config, report, skip, span=span)
    source = str(item.path)
    if not span.opened:
        report.skipped.append((source, span.reason or "cannot open video"))
    elif span.decoded == 0:
        report.skipped.append((source, "video has no decodable frames"))
    else:
        truncated = truncation_note(span.read_to, span.sampled, span.declared)
        if truncated:
            report.skipped.append((source, truncated))


def video_span_frames(
    item: MediaItem, config: SourceConfig, report: SourceReport,
    skip: Callable[[str, Path, int | None], bool] | None = None,
    lo: int = 0, hi: int | None = None, span: VideoSpan | None = None,
) -> Iterator[Frame]:
    """Sampled, de-duplicated frames of frames ``[lo, hi)`` of a video (``hi=None``: to its end).

    Decoding a video block by block (:func:`video_blocks`) gives exactly the frames one pass over the whole
    video gives: samples fall on the same indices, and de-duplication never looks across a block boundary
    further back than the previous sample (the first sample of a block is compared with the sample before
    it, kept or not; within a block, with the last kept frame). A block is decoded from the sample before
    it, found by a frame-accurate seek.

    ``report`` gets the sampled and de-duplicated counts; what went wrong with the file as a whole (cannot
    open, no decodable frame, cut short) is left in ``span`` for the caller to report once per video.
    """
    import cv2

    span = span if span is not None else VideoSpan()
    try:
        if item.path.stat().st_size == 0:
            span.opened, span.reason = False, "empty file (0 bytes)"
            return
    except OSError as exc:
        span.opened, span.reason = False, f"cannot read file: {exc.strerror or exc}"
        return
    cap = _open_video(item.path)
    if cap is None:
        span.opened, span.reason = False, "cannot open video"
        return
    try:
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        span.declared = int(declared) if math.isfinite(declared) and declared >= 1 else 0
        fps = _video_fps(cap)
        step = _sample_step(config, fps)
        threshold = config.dedup_threshold
        group_s = config.video_group_seconds
        n_samples = _first_sample_from(lo, step) if lo > 0 else 0
        start = _sample_index(n_samples, step) if lo > 0 else 0
        if n_samples > 0 and threshold > 0:  # decode the sample before the span: its de-dup reference
            n_samples -= 1
            start = _sample_index(n_samples, step)
        if hi is not None and start >= hi:
            span.read_to = lo
            return
        if not _seek(cap, start):  # not frame-accurate here: read up to it (slow, but the same frames)
            cap.release()
            cap = _open_video(item.path)
            index = -1
            while index + 1 < start and cap is not None and cap.grab():
                index += 1
            if index + 1 < start:
                span.read_to, span.ended = index + 1, True
                return
        next_sample = n_samples * step  # frame index (fractional) of the next sample
        last_thumb: np.ndarray | None = None  # thumbnail of the last kept frame
        prev_thumb: np.ndarray | None = None  # thumbnail of the previous sample, and its block
        prev_block: int | None = None
        index = start - 1
        while hi is None or index + 1 < hi:
            if not cap.grab():
                span.ended = True
                break
            index += 1
            if index + 1e-6 < next_sample:
                continue  # grab() without retrieve(): no color conversion for frames not sampled
            n_samples += 1
            next_sample = n_samples * step
            own = index >= lo  # not the reference sample before the span
            if own:
                span.sampled += 1
                report.frames_sampled += 1
            frame_id = _make_frame_id(item.id, index)
            if own and threshold == 0 and skip is not None and skip(frame_id, item.path, index):
                span.decoded += 1  # no dedup state to keep, so a resumed frame need not be decoded at all
                continue
            timestamp = index / fps
            block = int(timestamp // group_s)
            ok, bgr = cap.retrieve()
            if not ok or bgr is None or bgr.size == 0:
                prev_thumb, prev_block = None, block
                continue
            if own:
                span.decoded += 1
            if bgr.ndim == 2:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            elif bgr.shape[2] == 4:
                bgr = cv2.cvtColor(bgr, cv2.COLOR_BGRA2BGR)
            if threshold > 0:
                thumb = cv2.cvtColor(
                    cv2.resize(bgr, _THUMB_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
                ).astype(np.int16)
                if prev_block is not None and block != prev_block:
                    # A new block: compare with the previous sample, so each block is decided on its own
                    # (the same whether the video is decoded in one pass or block by block).
                    last_thumb = prev_thumb
                prev_thumb, prev_block = thumb, block
                if not own:
                    continue
                if last_thumb is not None and float(np.abs(thumb - last_thumb).mean()) < threshold:
                    report.frames_deduplicated += 1
                    continue
                last_thumb = thumb  # compare with the last KEPT frame, so slow drifts still get sampled
            if skip is not None and skip(frame_id, item.path, index):
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if config.max_side:
                target = _fit(rgb.shape[1], rgb.shape[0], config.max_side)
                if target is not None:
                    rgb = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)
            yield Frame(
                id=frame_id,
                image=np.ascontiguousarray(rgb),
                source=str(item.path),
                group=f"{item.id}_t{block:05d}",
                frame_index=index,
                timestamp=timestamp,
            )
        span.read_to = index + 1
    finally:
        if cap is not None:
            cap.release()  # also runs when the consumer stops early and the generator is closed


def truncation_note(read: int, sampled: int, declared: int) -> str | None:
    """The report line of a video that ended well before the frame count its header declares, else None."""
    if declared < 1:
        return None  # raw streams often declare nothing: nothing to compare with
    # Some containers estimate the count from duration x fps: allow a small miss before calling it a cut.
    if read < declared - max(2, round(0.02 * declared)):
        return (
            f"truncated or corrupt video: decoding stopped at frame {read} of the {declared} its header "
            f"declares; the {sampled} frame(s) sampled before the cut were used, the rest is missing"
        )
    return None


def _make_frame_id(video_id: str, index: int) -> str:
    return f"{video_id}_f{index:07d}"
