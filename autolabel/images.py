"""Reading an image file and preparing it as the bundle runtime does: the package's one reader and one letterbox.

* :func:`read_rgb` decodes a file with :func:`autolabel.sources.load_image` (format detected from the content,
  EXIF orientation applied, every mode converted to RGB); a file it cannot decode is one
  :class:`~autolabel.core.errors.SourceError` line naming the file.
* :func:`letterbox` and :func:`letterbox_square` *are* the runtime's (:mod:`autolabel.runtime`): the runtime is
  copied into every bundle and must run with numpy and onnxruntime alone, so it cannot import the package;
  the package imports it instead, and what calibrates, prunes or scores a model is preprocessed exactly as
  the camera will preprocess it.
* :func:`letterboxed_batch` is a detection bundle's input for a list of files: ``(B, 3, S, S)`` float32 in [0, 1].

Example:
    >>> import numpy as np
    >>> letterbox(np.zeros((10, 40, 3), np.uint8), 32)[0].shape
    (32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolabel.core.errors import SourceError
from autolabel.runtime import letterbox, letterbox_square

__all__ = ["letterbox", "letterbox_square", "letterboxed_batch", "read_rgb"]


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``HxWx3`` uint8 RGB.

    Raises:
        SourceError: ``cannot read image 'PATH': REASON`` (empty, not an image, truncated or corrupt, too large).
    """
    from autolabel.sources import load_image

    try:
        return load_image(path)[0]
    except SourceError as e:
        raise SourceError(f"cannot read image '{path}': {e}") from None


def letterboxed_batch(paths: Sequence[str | Path], imgsz: int) -> np.ndarray:
    """The files read, letterboxed to ``imgsz`` and stacked as a detection bundle takes them: ``(B, 3, S, S)``
    float32 in [0, 1]."""
    x = np.stack([letterbox(read_rgb(p), imgsz)[0] for p in paths]).transpose(0, 3, 1, 2)
    return x.astype(np.float32) / 255.0
