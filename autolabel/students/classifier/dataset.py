"""Classification students, the data: box crops of a detection dataset, or an image-level dataset.

Two kinds of data, one item format ``(image (3, S, S) float tensor, hard label, teacher distribution (C,))``:

* **crops** of an autolabel *detection* dataset (``autolabel label``): every box is a sample, cut on the
  fly with a context margin and letterboxed to a square (:class:`CropDataset`). Hard label = the box's
  ``class_id``; teacher distribution = its ``soft_scores`` row **divided by its sum**. Detection teachers
  (YOLO, OWL, Grounding DINO) score classes with independent sigmoids, so a row need not sum to 1; its
  normalization is the teacher's relative evidence among the ontology classes (the same distribution
  :class:`~autolabel.distill.losses.HintonKD` builds from probabilities at T = 1). Rows of softmax teachers
  (CLIP re-scoring) already sum to 1 and are unchanged. A row of zeros (a teacher without per-class scores)
  becomes a one-hot on the hard label by default (``zero_rows="onehot"``; ``"uniform"`` and ``"skip"`` are
  the alternatives).
* **images** labeled by an image-level teacher (:func:`autolabel.labeling.classify.label_classification`),
  in this module's *classification dataset* format (:class:`ImageClassDataset`)::

      DIR/
        train/<class>/<id>.jpg      # the class folder is the teacher's argmax (any ImageFolder reader works)
        val/<class>/<id>.jpg
        autolabel_cls.json          # header: format, version, class names, folder names, teacher, split
        autolabel_cls.jsonl         # one record per image: id, split, image, class_id, confidence, probs
        summary.json                # images per split and class, skipped inputs with reasons

  Reading (:func:`read_cls_meta`, :func:`read_cls_records`) and the writer's building blocks (:func:`cls_meta`,
  :func:`class_dirs`, :func:`committed_ids` for resume) live here, next to the reader; the files are written
  and recovered through :mod:`autolabel.data.jsonl` like every other autolabel file.

Sample keys (used by ``human_labels``): ``"<record id>:<box index>"`` for crops (see :func:`crop_key`),
``"<record id>"`` for images.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from autolabel.config import ZERO_ROW_POLICIES
from autolabel.core.errors import ConfigError, DatasetError
from autolabel.data.dataset import META_FILE, read_meta, read_records
from autolabel.data.jsonl import BadLine, iter_jsonl, read_json, recover_jsonl
from autolabel.students.classifier.model import IMAGENET_MEAN, IMAGENET_STD, image_tensor, letterbox_square

__all__ = [
    "CLS_FORMAT",
    "CLS_FORMAT_VERSION",
    "CLS_META_FILE",
    "CLS_SIDECAR_FILE",
    "ZERO_ROW_POLICIES",
    "CropDataset",
    "ImageClassDataset",
    "SampleDataset",
    "class_dirs",
    "cls_meta",
    "committed_ids",
    "crop_box",
    "crop_key",
    "open_classification_dataset",
    "read_cls_meta",
    "read_cls_records",
]

CLS_FORMAT = "autolabel-classification"
CLS_FORMAT_VERSION = 1
CLS_META_FILE = "autolabel_cls.json"
CLS_SIDECAR_FILE = "autolabel_cls.jsonl"


# ----------------------------------------------------------------------------------------------------------
# crops
# ----------------------------------------------------------------------------------------------------------


def crop_key(record_id: str, box_index: int) -> str:
    """The sample key of box ``box_index`` (its row in the label file) of a detection-dataset record."""
    return f"{record_id}:{box_index}"


def crop_box(image: np.ndarray, xyxy: Sequence[float], context: float = 0.1) -> np.ndarray:
    """Cut a box with a margin of ``context`` × its width/height on each side, clipped to the image.

    Example:
        >>> crop_box(np.zeros((100, 200, 3), np.uint8), [10, 10, 30, 90]).shape
        (96, 24, 3)
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    mx, my = (x2 - x1) * context, (y2 - y1) * context
    a = int(np.clip(np.floor(x1 - mx), 0, w - 1))
    b = int(np.clip(np.floor(y1 - my), 0, h - 1))
    c = int(np.clip(np.ceil(x2 + mx), a + 1, w))
    d = int(np.clip(np.ceil(y2 + my), b + 1, h))
    return image[b:d, a:c]


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:  # cv2 cannot read some PNG modes / formats: fall back to the tolerant loader
        from autolabel.core.errors import SourceError
        from autolabel.sources import load_image

        try:
            return load_image(path)[0]
        except SourceError as e:
            raise DatasetError(f"cannot read image '{path}': {e}") from None
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------------------------------------------


class SampleDataset(Dataset):
    """Common parts: ``names``, ``keys``, ``labels`` (teacher hard labels), ``probs`` (teacher rows)."""

    names: list[str]
    keys: list[str]
    labels: np.ndarray
    probs: np.ndarray
    kind: str = ""
    ontology: Mapping[str, Any] | None = None  # the labeling ontology (crop datasets): maps a teacher's classes

    def __init__(self, imgsz: int, augment: bool, seed: int) -> None:
        self.imgsz, self.augment, self.seed = int(imgsz), bool(augment), int(seed)
        self.epoch = 0
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are a pure function of (seed, epoch, index): reproducible, and the same on resume."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __len__(self) -> int:
        return len(self.keys)

    def _finish(self, img: np.ndarray, index: int, flip: bool) -> tuple[Tensor, int, Tensor]:
        img = letterbox_square(img, self.imgsz)
        if flip:
            img = img[:, ::-1]
        return (image_tensor(img, self.mean, self.std), int(self.labels[index]),
                torch.from_numpy(self.probs[index].copy()))


class CropDataset(SampleDataset):
    """Box crops of an autolabel detection dataset, cut on the fly (only the box index is held in memory).

    Items are ``(image (3, S, S) float tensor, hard label int, teacher distribution (C,) summing to 1)``.

    Args:
        root: a folder written by ``autolabel label`` (``autolabel.json`` + ``autolabel.jsonl``).
        split: ``"train"`` or ``"val"`` (the record's ``split``).
        imgsz: side of the square input.
        context: crop margin, a fraction of the box's width/height on each side.
        min_box: boxes whose shorter side is below this many pixels are left out.
        max_per_class: keep at most this many crops per (hard) class, a seeded random subset.
        zero_rows: teacher rows summing to 0: ``"onehot"`` (on the hard label), ``"uniform"`` or ``"skip"``.
        augment: random box jitter (±10 % scale, ±8 % shift) and horizontal flip.
        seed: seed of ``max_per_class`` and of the augmentations.

    Example:
        >>> ds = CropDataset("datasets/cam1", "train", imgsz=96)       # doctest: +SKIP
        >>> x, y, p = ds[0]; ds.keys[0]                                 # doctest: +SKIP
        'img0001:0'
    """

    kind = "crops"

    def __init__(self, root: str | Path, split: str = "train", *, imgsz: int = 128, context: float = 0.1,
                 min_box: float = 0.0, max_per_class: int | None = None, zero_rows: str = "onehot",
                 augment: bool = False, seed: int = 0) -> None:
        super().__init__(imgsz, augment, seed)
        if zero_rows not in ZERO_ROW_POLICIES:
            raise ConfigError(f"zero_rows must be one of {ZERO_ROW_POLICIES}, found {zero_rows!r}")
        self.root = Path(root)
        self.split, self.context = split, float(context)
        meta = read_meta(self.root)
        self.names = list(meta.names)
        self.teacher, self.ontology = meta.teacher, meta.ontology
        c = len(self.names)
        images: list[str] = []
        img_idx, boxes, labels, rows, keys = [], [], [], [], []
        stats = {"records": 0, "boxes": 0, "too_small": 0, "zero_rows": 0, "skipped_zero_rows": 0,
                 "over_max_per_class": 0}
        for rec in read_records(self.root, num_classes=c):  # checked there: one soft row of C scores per box
            if rec.split != split:
                continue
            stats["records"] += 1
            soft, xyxy = rec.boxes.soft_scores, rec.boxes.xyxy
            for j, cls in enumerate(rec.boxes.class_id):
                stats["boxes"] += 1
                x1, y1, x2, y2 = (float(v) for v in xyxy[j])
                if min(x2 - x1, y2 - y1) < max(min_box, 1.0):
                    stats["too_small"] += 1
                    continue
                row = np.clip(np.asarray(soft[j], dtype=np.float64), 0.0, None)
                total = row.sum()
                if total <= 1e-12:
                    stats["zero_rows"] += 1
                    if zero_rows == "skip":
                        stats["skipped_zero_rows"] += 1
                        continue
                    row = np.full(c, 1.0 / c) if zero_rows == "uniform" else np.eye(c)[cls]
                else:
                    row = row / total
                if not images or images[-1] != rec.image:
                    images.append(rec.image)
                img_idx.append(len(images) - 1)
                boxes.append((x1, y1, x2, y2))
                labels.append(cls)
                rows.append(row)
                keys.append(crop_key(rec.id, j))
        self.images = images
        self.img_idx = np.asarray(img_idx, np.int64)
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels, np.int64)
        self.probs = np.asarray(rows, np.float32).reshape(-1, c)
        self.keys = keys
        if max_per_class is not None:
            rng = np.random.default_rng(seed)
            keep = []
            for k in range(c):
                idx = np.flatnonzero(self.labels == k)
                if len(idx) > max_per_class:
                    idx = rng.choice(idx, max_per_class, replace=False)
                keep.extend(idx.tolist())
            keep_arr = np.sort(np.asarray(keep, np.int64))
            stats["over_max_per_class"] = len(self.labels) - len(keep_arr)
            self.img_idx, self.boxes = self.img_idx[keep_arr], self.boxes[keep_arr]
            self.labels, self.probs = self.labels[keep_arr], self.probs[keep_arr]
            self.keys = [self.keys[i] for i in keep_arr]
        stats["crops"] = len(self.keys)
        self.stats = stats

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        img = _read_rgb(self.root / self.images[self.img_idx[index]])
        x1, y1, x2, y2 = (float(v) for v in self.boxes[index])
        flip = False
        if self.augment:
            rng = self._rng(index)
            w, h = x2 - x1, y2 - y1
            cx, cy = (x1 + x2) / 2 + rng.uniform(-0.08, 0.08) * w, (y1 + y2) / 2 + rng.uniform(-0.08, 0.08) * h
            w, h = w * rng.uniform(0.9, 1.1), h * rng.uniform(0.9, 1.1)
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            flip = bool(rng.random() < 0.5)
        return self._finish(crop_box(img, (x1, y1, x2, y2), self.context), index, flip)


class ImageClassDataset(SampleDataset):
    """Whole images of a dataset written by :func:`~autolabel.labeling.classify.label_classification`, read from disk per item.

    Items are ``(image (3, S, S) tensor, hard label = teacher argmax, teacher probabilities (C,))``;
    ``augment`` takes a random crop of 70–100 % of the area and flips horizontally.
    """

    kind = "images"

    def __init__(self, root: str | Path, split: str = "train", *, imgsz: int = 128, augment: bool = False,
                 seed: int = 0) -> None:
        super().__init__(imgsz, augment, seed)
        self.root = Path(root)
        self.split = split
        meta = read_cls_meta(self.root)
        self.names = list(meta["names"])
        self.teacher = meta.get("teacher")
        c = len(self.names)
        paths, labels, rows, keys = [], [], [], []
        for rec in read_cls_records(self.root):
            if rec["split"] != split:
                continue
            p = np.clip(np.asarray(rec["probs"], np.float64), 0, None)
            if len(p) != c:
                raise DatasetError(f"{self.root / CLS_SIDECAR_FILE}: record {rec.get('id')} has {len(p)} probs, expected {c}")
            paths.append(rec["image"])
            labels.append(int(rec["class_id"]))
            rows.append(p / p.sum() if p.sum() > 1e-12 else np.eye(c)[int(rec["class_id"])])
            keys.append(str(rec["id"]))
        self.paths, self.keys = paths, keys
        self.labels = np.asarray(labels, np.int64)
        self.probs = np.asarray(rows, np.float32).reshape(-1, c)
        self.stats = {"images": len(keys)}

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        img = _read_rgb(self.root / self.paths[index])
        flip = False
        if self.augment:
            rng = self._rng(index)
            h, w = img.shape[:2]
            s = math.sqrt(rng.uniform(0.7, 1.0))
            cw, ch = max(1, round(w * s)), max(1, round(h * s))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            img = img[y : y + ch, x : x + cw]
            flip = bool(rng.random() < 0.5)
        return self._finish(img, index, flip)


def _cls_record(d: Any) -> dict[str, Any]:
    if not isinstance(d, dict) or any(k not in d for k in ("id", "split", "image", "class_id", "probs")):
        raise DatasetError("not a classification record (id, split, image, class_id, probs)")
    return d


def read_cls_records(root: str | Path) -> Iterator[dict[str, Any]]:
    """The committed records of ``autolabel_cls.jsonl`` (a torn last line of a killed run is left out; a line
    that is no record is skipped, and one warning at the end says how many were).

    Raises:
        DatasetError: the folder has no ``autolabel_cls.jsonl``.
    """
    path = Path(root) / CLS_SIDECAR_FILE
    if not path.is_file():
        raise DatasetError(f"'{root}' has no {CLS_SIDECAR_FILE}")
    bad: list[BadLine] = []
    for _, _, rec in iter_jsonl(path, _cls_record, bad=bad):
        yield rec
    if bad:
        warnings.warn(f"{path}: {len(bad)} corrupt line(s) skipped (first at line {bad[0].number}): "
                      f"{bad[0].reason}", stacklevel=2)


def read_cls_meta(root: str | Path) -> dict[str, Any]:
    """Read and check the header ``autolabel_cls.json`` of an image-level classification dataset."""
    p = Path(root) / CLS_META_FILE
    if not Path(root).is_dir():
        raise DatasetError(f"dataset folder '{root}' not found")
    if not p.is_file():
        raise DatasetError(f"'{root}' has no {CLS_META_FILE}; expected a folder written by label_classification")
    meta = read_json(p)
    if not isinstance(meta, dict):
        raise DatasetError(f"{p}: not an autolabel classification dataset header")
    if meta.get("format") != CLS_FORMAT or not meta.get("names"):
        raise DatasetError(f"{p}: not an autolabel classification dataset header (format={meta.get('format')!r})")
    if int(meta.get("version", 0)) > CLS_FORMAT_VERSION:
        raise DatasetError(f"{p}: format version {meta.get('version')} is newer than this autolabel supports")
    return meta


def open_classification_dataset(root: str | Path, split: str = "train", *, imgsz: int = 128,
                                augment: bool = False, seed: int = 0, context: float = 0.1,
                                min_box: float = 0.0, max_per_class: int | None = None,
                                zero_rows: str = "onehot") -> CropDataset | ImageClassDataset:
    """A :class:`CropDataset` for a detection dataset or an :class:`ImageClassDataset`, by the header found.

    Raises:
        DatasetError: the folder is missing or is neither kind of autolabel dataset.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder '{root}' not found")
    if (root / CLS_META_FILE).is_file():
        return ImageClassDataset(root, split, imgsz=imgsz, augment=augment, seed=seed)
    if (root / META_FILE).is_file():
        return CropDataset(root, split, imgsz=imgsz, context=context, min_box=min_box,
                           max_per_class=max_per_class, zero_rows=zero_rows, augment=augment, seed=seed)
    raise DatasetError(
        f"'{root}' is not an autolabel dataset: expected {META_FILE} (detection dataset, trained on box crops) "
        f"or {CLS_META_FILE} (image-level dataset from label_classification)"
    )



# ----------------------------------------------------------------------------------------------------------
# writing a classification dataset (used by autolabel.labeling.classify)
# ----------------------------------------------------------------------------------------------------------


def cls_meta(names: Sequence[str], dirs: Sequence[str], teacher: str, split: dict[str, Any],
             min_confidence: float) -> dict[str, Any]:
    """The header (``autolabel_cls.json``) of a new classification dataset."""
    return {"format": CLS_FORMAT, "version": CLS_FORMAT_VERSION, "names": list(names), "dirs": list(dirs),
            "teacher": teacher, "split": split, "min_confidence": min_confidence, "sidecar": CLS_SIDECAR_FILE,
            "probs": "per record: probs[c] is the teacher's probability of class c for the whole image; "
                     "the image lies in <split>/<dirs[argmax]>/"}


def class_dirs(names: Sequence[str]) -> list[str]:
    """One folder name per class: cleaned to ``[A-Za-z0-9 _.-]``, unique regardless of case."""
    out: list[str] = []
    for n in names:
        d = re.sub(r"[^A-Za-z0-9 _.\-]+", "_", n).strip(" .") or "class"
        base, k = d, 1
        while d.lower() in (o.lower() for o in out):
            k += 1
            d = f"{base}_{k}"
        out.append(d)
    return out


def committed_ids(root: str | Path) -> set[str]:
    """Resume: make ``autolabel_cls.jsonl`` safe to append to again (a torn last line of a killed run is cut,
    a corrupt line moved to ``autolabel_cls.jsonl.corrupt``) and return the ids of the images it holds."""
    path = Path(root) / CLS_SIDECAR_FILE
    done: set[str] = set()

    def keep(rec: dict[str, Any]) -> bool:
        done.add(str(rec["id"]))
        return True

    recover_jsonl(path, _cls_record, keep, corrupt=path.with_name(path.name + ".corrupt"))
    return done
