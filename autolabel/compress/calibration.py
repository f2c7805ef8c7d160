"""Which of the user's images calibrate compression: INT8 activation ranges (:mod:`autolabel.compress.quantize`)
and pruning's channel statistics (:mod:`autolabel.compress.prune_yolo`)."""

from __future__ import annotations

import random
from pathlib import Path

__all__ = ["calibration_images", "dataset_images"]


def dataset_images(data: Path, split: str | None) -> list[Path]:
    """Images of an autolabel dataset split, or every image under a plain folder."""
    from autolabel.data.dataset import META_FILE, read_records

    if (data / META_FILE).is_file():
        return [data / r.image for r in read_records(data) if split is None or r.split == split]
    from autolabel.sources import discover

    return [Path(m.path) for m in discover([data]) if m.kind == "image"]


def calibration_images(data: Path, n: int, seed: int = 0) -> list[Path]:
    """Up to ``n`` of the dataset's train images (all of its images when it has no train split), in an order
    shuffled with ``seed``."""
    imgs = dataset_images(data, "train") or dataset_images(data, None)
    random.Random(seed).shuffle(imgs)
    return imgs[: int(n)]
