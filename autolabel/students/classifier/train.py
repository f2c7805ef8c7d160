"""Classification students: torchvision classifiers distilled from a teacher's class distributions.

Two kinds of data, one trainer:

* **crops** of an autolabel *detection* dataset (``autolabel label``): every box is a sample, cut on the
  fly with a context margin and letterboxed to a square. Hard label = the box's ``class_id``; teacher
  distribution = its ``soft_scores`` row **divided by its sum**. Detection teachers (YOLO, OWL, Grounding
  DINO) score classes with independent sigmoids, so a row need not sum to 1; its normalization is the
  teacher's relative evidence among the ontology classes (the same distribution :class:`HintonKD` builds
  from probabilities at T = 1). Rows of softmax teachers (CLIP re-scoring) already sum to 1 and are
  unchanged. A row of zeros (a teacher without per-class scores) becomes a one-hot on the hard label by
  default (``zero_rows="onehot"``; ``"uniform"`` and ``"skip"`` are the alternatives).
* **images** labeled by an image-level teacher (:meth:`ClipTeacher.classify`) with
  :func:`label_classification`, which writes an ImageFolder layout plus a sidecar::

      DIR/
        train/<class>/<id>.jpg      # the class folder is the teacher's argmax (any ImageFolder reader works)
        val/<class>/<id>.jpg
        autolabel_cls.json          # header: format, version, class names, folder names, teacher, split
        autolabel_cls.jsonl         # one record per image: id, split, image, class_id, confidence, probs
        summary.json                # images per split and class, skipped inputs with reasons

:func:`train_classifier` trains a torchvision classifier (``mobilenet_v3_small`` by default, any name of
``torchvision.models.list_models(module=torchvision.models)``) with Hinton KD
(``α·CE(hard) + (1−α)·T²·KL(p_T^τ ‖ p_S^τ)``) or, with ``kd=False``, on the hard labels alone. Each
epoch writes ``last.pt`` (resumable) and ``best.pt`` (best val top-1 against the teacher's labels), and
``metrics.json``. :func:`load_classifier` returns the model, its class names and its preprocessing.

Sample keys (used by ``human_labels``): ``"<record id>:<box index>"`` for crops (see :func:`crop_key`),
``"<record id>"`` for images.

Example:
    >>> from autolabel.students.classifier.train import ClassifierConfig, train_classifier, load_classifier
    >>> res = train_classifier("datasets/cam1", "runs/cls", ClassifierConfig(epochs=20))   # doctest: +SKIP
    >>> res.metrics["best"]["top1_teacher"]                                               # doctest: +SKIP
    >>> clf = load_classifier(res.best); probs = clf.predict([crop_rgb])                  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.core.progress import ProgressBar
from autolabel.data.dataset import META_FILE, assign_split, read_meta, read_records
from autolabel.sources import SourceConfig

if TYPE_CHECKING:
    from autolabel.core.ontology import Ontology

__all__ = [
    "CLS_META_FILE",
    "CLS_SIDECAR_FILE",
    "CKPT_FORMAT",
    "ClassLabelConfig",
    "ClassLabelResult",
    "ClassifierConfig",
    "ClassifierResult",
    "CropDataset",
    "ImageClassDataset",
    "LoadedClassifier",
    "build_classifier",
    "classification_loss",
    "crop_box",
    "crop_key",
    "evaluate_classifier",
    "label_classification",
    "letterbox_square",
    "load_classifier",
    "open_classification_dataset",
    "preprocess",
    "train_classifier",
]

CLS_FORMAT = "autolabel-classification"
CLS_FORMAT_VERSION = 1
CLS_META_FILE = "autolabel_cls.json"
CLS_SIDECAR_FILE = "autolabel_cls.jsonl"
CKPT_FORMAT = "autolabel-classifier"
CKPT_VERSION = 1

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_VALUE = 114  # letterbox gray, as Ultralytics
ZERO_ROW_POLICIES = ("onehot", "uniform", "skip")
_FEW_MODELS = ("mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "efficientnet_b0", "regnet_y_400mf",
               "shufflenet_v2_x1_0", "convnext_tiny")


# ----------------------------------------------------------------------------------------------------------
# preprocessing (shared by training, evaluation and load_classifier)
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


def letterbox_square(image: np.ndarray, size: int, pad: int = PAD_VALUE) -> np.ndarray:
    """Resize an ``HxWx3`` uint8 image to fit ``size``² keeping its aspect ratio, centered on gray padding.

    Letterboxing keeps a tall person or a long car whole, where resize + center crop would cut it.

    Example:
        >>> letterbox_square(np.zeros((10, 40, 3), np.uint8), 32).shape
        (32, 32, 3)
    """
    import cv2

    h, w = image.shape[:2]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        image = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    out = np.full((size, size, 3), pad, np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    out[oy : oy + nh, ox : ox + nw] = image
    return out


def _default_preprocessing(imgsz: int, context: float | None) -> dict[str, Any]:
    return {
        "imgsz": int(imgsz),
        "resize": "letterbox",
        "pad_value": PAD_VALUE,
        "color": "RGB",
        "scale": 1 / 255,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "layout": "NCHW",
        "crop_context": context,  # crop margin used for crop datasets; None for whole images
    }


def _to_tensor(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def preprocess(images: Sequence[np.ndarray], preprocessing: Mapping[str, Any]) -> Tensor:
    """``HxWx3`` uint8 RGB images (whole images or crops already cut) → a ``(B, 3, S, S)`` float tensor.

    Example:
        >>> preprocess([np.zeros((20, 10, 3), np.uint8)], _default_preprocessing(32, 0.1)).shape
        torch.Size([1, 3, 32, 32])
    """
    size, pad = int(preprocessing["imgsz"]), int(preprocessing.get("pad_value", PAD_VALUE))
    mean, std = preprocessing.get("mean", IMAGENET_MEAN), preprocessing.get("std", IMAGENET_STD)
    if not images:
        return torch.zeros(0, 3, size, size)
    return torch.stack([_to_tensor(letterbox_square(im, size, pad), mean, std) for im in images])


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


class _SampleDataset(Dataset):
    """Common parts: ``names``, ``keys``, ``labels`` (teacher hard labels), ``probs`` (teacher rows)."""

    names: list[str]
    keys: list[str]
    labels: np.ndarray
    probs: np.ndarray
    kind: str = ""

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
        return (_to_tensor(img, self.mean, self.std), int(self.labels[index]),
                torch.from_numpy(self.probs[index].copy()))


class CropDataset(_SampleDataset):
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
        self.names = list(meta.get("names", []))
        self.teacher = meta.get("teacher")
        c = len(self.names)
        images: list[str] = []
        img_idx, boxes, labels, rows, keys = [], [], [], [], []
        stats = {"records": 0, "boxes": 0, "too_small": 0, "zero_rows": 0, "skipped_zero_rows": 0,
                 "over_max_per_class": 0}
        for rec in read_records(self.root):
            if rec.get("split") != split:
                continue
            stats["records"] += 1
            n = len(rec.get("class_id", []))
            soft = rec.get("soft_scores", [])
            xyxy = rec.get("xyxy", [])
            if len(soft) != n or len(xyxy) != n or any(len(r) != c for r in soft):
                raise DatasetError(
                    f"{self.root / 'autolabel.jsonl'}: record {rec.get('id')} has {n} boxes but "
                    f"{len(xyxy)} xyxy / {len(soft)} soft rows (expected rows of {c} classes)"
                )
            for j in range(n):
                stats["boxes"] += 1
                x1, y1, x2, y2 = (float(v) for v in xyxy[j])
                if min(x2 - x1, y2 - y1) < max(min_box, 1.0):
                    stats["too_small"] += 1
                    continue
                cls = int(rec["class_id"][j])
                if not 0 <= cls < c:
                    raise DatasetError(f"record {rec.get('id')} box {j}: class_id {cls} outside 0..{c - 1}")
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
                if not images or images[-1] != rec["image"]:
                    images.append(rec["image"])
                img_idx.append(len(images) - 1)
                boxes.append((x1, y1, x2, y2))
                labels.append(cls)
                rows.append(row)
                keys.append(crop_key(rec["id"], j))
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


class ImageClassDataset(_SampleDataset):
    """Whole images of a dataset written by :func:`label_classification`, read from disk per item.

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
        for rec in _iter_jsonl(self.root / CLS_SIDECAR_FILE):
            if rec.get("split") != split:
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


def _iter_jsonl(path: Path):
    if not path.is_file():
        raise DatasetError(f"'{path.parent}' has no {path.name}")
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn write of a killed run
            if line.strip():
                yield json.loads(line)


def read_cls_meta(root: str | Path) -> dict[str, Any]:
    """Read and check the header ``autolabel_cls.json`` of an image-level classification dataset."""
    p = Path(root) / CLS_META_FILE
    if not Path(root).is_dir():
        raise DatasetError(f"dataset folder '{root}' not found")
    if not p.is_file():
        raise DatasetError(f"'{root}' has no {CLS_META_FILE}; expected a folder written by label_classification")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
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
# image-level labeling
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassLabelConfig:
    """Settings of :func:`label_classification`.

    Attributes:
        val_fraction: share of images (split groups; 60-s blocks for video) put in ``val``.
        seed: split seed.
        min_confidence: images whose top teacher probability is below this are left out (counted).
        batch_size: images per teacher call.
        device: for a teacher given by spec.
        sources: how images and videos are read.
        overwrite: delete an existing classification dataset in the output folder first (else resume).
        progress: draw a progress bar.
    """

    val_fraction: float = 0.2
    seed: int = 0
    min_confidence: float = 0.0
    batch_size: int = 16
    device: str = "auto"
    sources: SourceConfig = field(default_factory=SourceConfig)
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), found {self.val_fraction}")
        if not 0 <= self.min_confidence <= 1:
            raise ConfigError(f"min_confidence must be in [0, 1], found {self.min_confidence}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, found {self.batch_size}")


@dataclass
class ClassLabelResult:
    """What :func:`label_classification` produced."""

    out: Path
    summary: dict[str, Any]


def _safe_dirs(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        d = re.sub(r"[^A-Za-z0-9 _.\-]+", "_", n).strip(" .") or "class"
        base, k = d, 1
        while d.lower() in (o.lower() for o in out):
            k += 1
            d = f"{base}_{k}"
        out.append(d)
    return out


def label_classification(
    sources: str | Path | Sequence[str | Path],
    teacher: Any,
    out: str | Path,
    *,
    ontology: Ontology | str | Path | None = None,
    config: ClassLabelConfig | None = None,
) -> ClassLabelResult:
    """Label images (or sampled video frames) with an image-level teacher into a classification dataset.

    Args:
        sources: image files, video files or folders (searched recursively).
        teacher: an object with ``classify(images) -> (B, C) probabilities`` and an ``ontology`` (e.g. a
            :class:`~autolabel.teachers.clip.ClipTeacher`), or a teacher spec such as ``"clip"`` /
            ``"clip:openai/clip-vit-base-patch32"`` together with ``ontology``.
        out: output folder (layout in the module docs); an existing one is resumed.
        ontology: the classes, needed when ``teacher`` is a spec.
        config: stage settings.

    Returns:
        A :class:`ClassLabelResult`; ``summary`` counts images per split and class.

    Example:
        >>> label_classification("photos/", "clip", "datasets/photos_cls", ontology="animals.yaml")  # doctest: +SKIP
    """
    import cv2

    from autolabel.labeling.label import _batches
    from autolabel.sources import SourceReport, estimate_total_frames, iter_frames

    cfg = config or ClassLabelConfig()
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = list(sources)
    total = estimate_total_frames(sources, cfg.sources)  # one-line SourceError on missing / empty sources
    if isinstance(teacher, str):
        from autolabel.core.ontology import Ontology, load_ontology
        from autolabel.teachers import create_teacher

        if ontology is None:
            raise ConfigError(f"teacher '{teacher}' is a spec: pass ontology= (the classes) as well")
        onto = ontology if isinstance(ontology, Ontology) else load_ontology(ontology)
        teacher = create_teacher(teacher, ontology=onto, device=cfg.device, batch_size=cfg.batch_size)
    if not callable(getattr(teacher, "classify", None)):
        raise ConfigError(
            f"teacher {type(teacher).__name__} has no classify(images) method; use an image-level teacher such as clip"
        )
    onto = getattr(teacher, "ontology", None)
    names = list(getattr(onto, "names", None) or getattr(teacher, "names", []) or [])
    if not names:
        raise ConfigError("the teacher has no class names (expected teacher.ontology.names)")
    spec = str(getattr(teacher, "spec", type(teacher).__name__))
    c = len(names)
    root = Path(out)
    meta_path, side_path = root / CLS_META_FILE, root / CLS_SIDECAR_FILE
    if root.exists() and not root.is_dir():
        raise DatasetError(f"output '{root}' exists and is not a folder")
    if cfg.overwrite and meta_path.is_file():
        for sub in ("train", "val"):
            shutil.rmtree(root / sub, ignore_errors=True)
        for f in (CLS_META_FILE, CLS_SIDECAR_FILE, "summary.json"):
            (root / f).unlink(missing_ok=True)
    dirs = _safe_dirs(names)
    split_cfg = {"val_fraction": float(cfg.val_fraction), "seed": int(cfg.seed), "by": "group"}
    if meta_path.is_file():
        meta = read_cls_meta(root)
        if meta.get("names") != names or meta.get("teacher") != spec or meta.get("split") != split_cfg:
            raise DatasetError(
                f"'{root}' was labeled with classes {meta.get('names')}, teacher '{meta.get('teacher')}', split "
                f"{meta.get('split')} (now {names}, '{spec}', {split_cfg}): use a new out, or overwrite=True"
            )
    elif root.is_dir() and any(root.iterdir()):
        raise DatasetError(f"output folder '{root}' is not empty and is not a classification dataset; choose a new out")
    else:
        root.mkdir(parents=True, exist_ok=True)
        meta = {"format": CLS_FORMAT, "version": CLS_FORMAT_VERSION, "names": names, "dirs": dirs,
                "teacher": spec, "split": split_cfg, "min_confidence": cfg.min_confidence,
                "sidecar": CLS_SIDECAR_FILE,
                "probs": "per record: probs[c] is the teacher's probability of class c for the whole image; "
                         "the image lies in <split>/<dirs[argmax]>/"}
        _atomic_write(meta_path, json.dumps(meta, indent=2).encode())
    done = _recover_jsonl(side_path)
    report = SourceReport()
    low_conf: list[str] = []
    frames = iter_frames(sources, cfg.sources, report=report, skip=lambda i: i in done)
    written = 0
    with side_path.open("ab") as side, ProgressBar(total=max(total, len(done)), desc="labeling (classify)",
                                                   enabled=cfg.progress, initial=len(done), unit="img") as bar:
        for batch in _batches(frames, cfg.batch_size, 2):
            probs = np.asarray(teacher.classify([f.image for f in batch]), dtype=np.float64)
            if probs.shape != (len(batch), c) or not np.isfinite(probs).all():
                raise DatasetError(
                    f"teacher '{spec}' returned probabilities of shape {probs.shape} for {len(batch)} images "
                    f"and {c} classes (expected finite values)"
                )
            lines = []
            for frame, p in zip(batch, probs):
                k = int(p.argmax())
                if p[k] < cfg.min_confidence:
                    low_conf.append(frame.id)
                    continue
                split = assign_split(frame.group, cfg.val_fraction, cfg.seed)
                suffix = frame.suffix if frame.copyable else ".jpg"
                rel = f"{split}/{dirs[k]}/{frame.id}{suffix}"
                dst = root / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if frame.copyable:
                    tmp = dst.with_name(f".{dst.name}.tmp")
                    shutil.copyfile(frame.source, tmp)
                    os.replace(tmp, dst)
                else:
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, 95])
                    if not ok:
                        raise DatasetError(f"could not encode image {frame.source} as JPEG")
                    _atomic_write(dst, buf.tobytes())
                rec = {"id": frame.id, "split": split, "image": rel, "class_id": k,
                       "confidence": round(float(p[k]), 5), "probs": np.round(p, 5).tolist(),
                       "source": str(Path(frame.source).resolve())}
                lines.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
                done.add(frame.id)
            if lines:  # commit point of the batch: images first, then their records
                side.write(b"".join(lines))
                side.flush()
                os.fsync(side.fileno())
                written += len(lines)
            bar.update(len(batch))
    per_split = {"train": 0, "val": 0}
    per_class = {s: dict.fromkeys(names, 0) for s in per_split}
    for rec in _iter_jsonl(side_path):
        per_split[rec["split"]] += 1
        per_class[rec["split"]][names[rec["class_id"]]] += 1
    summary = {"images": sum(per_split.values()), **per_split, "per_class": per_class,
               "written_this_run": written, "low_confidence_this_run": len(low_conf),
               "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}
    _atomic_write(root / "summary.json", json.dumps(summary, indent=2).encode())
    if summary["images"] == 0:
        raise DatasetError(
            f"no image was labeled into '{root}': {len(low_conf)} below min_confidence={cfg.min_confidence}, "
            f"{len(report.skipped)} unreadable"
        )
    return ClassLabelResult(out=root, summary=summary)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _recover_jsonl(path: Path) -> set[str]:
    """Truncate a torn last line; return the committed ids."""
    done: set[str] = set()
    if not path.exists():
        path.touch()
        return done
    good = 0
    with path.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                done.add(json.loads(line)["id"])
            except (json.JSONDecodeError, KeyError):
                break
            good += len(line)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return done


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------


def _classifier_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _check_model_name(name: str) -> None:
    valid = _classifier_names()
    if name not in valid:
        close = difflib.get_close_matches(str(name), valid, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"unknown torchvision classifier '{name}'; {hint}valid names include {', '.join(_FEW_MODELS)} "
            f"({len(valid)} in torchvision.models.list_models(module=torchvision.models))"
        )


def _replace_head(model: nn.Module, n_old: int, n_new: int) -> int:
    """Replace every final layer with ``n_old`` outputs (Linear, or SqueezeNet's 1x1 conv) by ``n_new`` outputs."""
    targets = [
        (name, m) for name, m in model.named_modules()
        if (isinstance(m, nn.Linear) and m.out_features == n_old)
        or (isinstance(m, nn.Conv2d) and m.out_channels == n_old and m.kernel_size == (1, 1))
    ]
    for name, m in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(m, nn.Linear):
            new: nn.Module = nn.Linear(m.in_features, n_new, bias=m.bias is not None)
        else:
            new = nn.Conv2d(m.in_channels, n_new, 1, bias=m.bias is not None)
        setattr(parent, attr, new)
    return len(targets)


def build_classifier(name: str, num_classes: int, pretrained: bool | str = False) -> tuple[nn.Module, str | None]:
    """A torchvision classifier with ``num_classes`` outputs, and which weights it started from.

    Args:
        name: a torchvision classification model name (``mobilenet_v3_small``, ``resnet18`` …).
        num_classes: outputs of the new last layer.
        pretrained: ``False`` — random init; ``True`` / ``"DEFAULT"`` — torchvision's default ImageNet
            weights (downloaded into the torch hub cache on a connected machine); a weights name of that
            model (``"IMAGENET1K_V1"``); ``"auto"`` — the default weights when they can be had, random init
            otherwise; or the path of a local state dict (a torchvision ``.pth`` or an autolabel classifier
            checkpoint). With ImageNet weights the last layer is replaced by a new ``num_classes`` one.

    Returns:
        ``(model, weights)`` where ``weights`` names the pretrained weights used, or None (random init).

    Raises:
        ConfigError: unknown model or weights name, or a state dict that does not fit the model.
        WeightsNotFoundError: pretrained weights were asked for but are not cached and cannot be downloaded.

    Example:
        >>> model, used = build_classifier("mobilenet_v3_small", 3)   # doctest: +SKIP
    """
    from torchvision.models import get_model, get_model_weights

    _check_model_name(name)
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, found {num_classes}")
    if pretrained is False or pretrained is None or (isinstance(pretrained, str) and pretrained.lower() in ("", "none", "false")):
        return get_model(name, weights=None, num_classes=num_classes), None
    if not isinstance(pretrained, (bool, str)):
        raise ConfigError(f"pretrained must be a bool, a weights name or a file path, found {pretrained!r}")
    if isinstance(pretrained, str) and (Path(pretrained).expanduser().is_file() or os.sep in pretrained
                                        or pretrained.endswith((".pt", ".pth"))):
        return _from_state_dict(name, num_classes, Path(pretrained).expanduser()), str(pretrained)
    auto = isinstance(pretrained, str) and pretrained.lower() == "auto"
    key = "DEFAULT" if pretrained is True or auto else str(pretrained)
    enum = get_model_weights(name)
    try:
        weights = enum[key] if key != "DEFAULT" else enum.DEFAULT
    except (KeyError, AttributeError):
        raise ConfigError(
            f"unknown weights '{key}' for '{name}'; valid: DEFAULT, {', '.join(w.name for w in enum)}"
        ) from None
    try:
        model = get_model(name, weights=weights, progress=False)
    except Exception as e:  # offline: URLError / OSError / HTTPError / hash mismatch … come in many types
        if auto:
            return get_model(name, weights=None, num_classes=num_classes), None
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise WeightsNotFoundError(
            f"torchvision weights {type(weights).__name__}.{weights.name} for '{name}' are not in the torch hub "
            f"cache ({cache}) and could not be downloaded ({type(e).__name__}); download them on a connected "
            f"machine, or use pretrained=False, pretrained='auto' or pretrained='/path/to/weights.pth'"
        ) from None
    n_old = len(weights.meta.get("categories") or []) or 1000
    if n_old != num_classes and _replace_head(model, n_old, num_classes) == 0:
        raise ConfigError(f"cannot find the classification layer of '{name}' to replace")
    return model, f"{type(weights).__name__}.{weights.name}"


def _from_state_dict(name: str, num_classes: int, path: Path) -> nn.Module:
    from torchvision.models import get_model

    if not path.is_file():
        raise WeightsNotFoundError(f"pretrained weights file '{path}' not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"'{path}' is not a loadable state dict ({type(e).__name__})") from None
    if isinstance(sd, dict) and sd.get("format") == CKPT_FORMAT:
        n_old, sd = int(sd["num_classes"]), sd["model"]
    else:
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        n_old = None
    if not isinstance(sd, dict):
        raise ConfigError(f"'{path}' does not hold a state dict")
    model = get_model(name, weights=None, **({"num_classes": n_old} if n_old else {}))
    n_old = n_old or _num_outputs(model)
    fit_to_state_dict(model, sd)  # e.g. a pruned autolabel checkpoint
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"'{path}' does not fit torchvision '{name}': {str(e).splitlines()[0][:160]}") from None
    if n_old != num_classes and _replace_head(model, n_old, num_classes) == 0:
        raise ConfigError(f"cannot find the classification layer of '{name}' to replace")
    return model


def fit_to_state_dict(model: nn.Module, sd: Mapping[str, Tensor]) -> int:
    """Resize ``model``'s Conv2d / BatchNorm / Linear layers to the shapes in ``sd``; how many were resized.

    A channel-pruned classifier (:func:`autolabel.compress.pruning.prune_classifier`) is saved as a plain
    state dict of its torchvision architecture with fewer channels; this rebuilds that architecture from
    the name, so checkpoints stay ``weights_only`` loadable. Depthwise convolutions keep ``groups`` equal to
    their channel count.
    """
    n = 0
    for name, m in list(model.named_modules()):
        w = sd.get(f"{name}.weight" if name else "weight")
        if w is None or not hasattr(m, "weight") or m.weight is None or tuple(w.shape) == tuple(m.weight.shape):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(m, nn.Conv2d):
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            out_c = int(w.shape[0])
            groups = out_c if depthwise else m.groups
            new: nn.Module = nn.Conv2d(int(w.shape[1]) * groups, out_c, m.kernel_size, m.stride, m.padding,
                                       m.dilation, groups, bias=m.bias is not None, padding_mode=m.padding_mode)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            new = type(m)(int(w.shape[0]), eps=m.eps, momentum=m.momentum, affine=m.affine,
                          track_running_stats=m.track_running_stats)
        elif isinstance(m, nn.Linear):
            new = nn.Linear(int(w.shape[1]), int(w.shape[0]), bias=m.bias is not None)
        else:
            continue
        setattr(parent, attr, new)
        n += 1
    return n


def _num_outputs(model: nn.Module) -> int:
    for m in reversed(list(model.modules())):
        if isinstance(m, nn.Linear):
            return m.out_features
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
            return m.out_channels
    return 1000


def _logits(out: Any) -> Tensor:
    """Plain logits from a model output (Inception/GoogLeNet return named tuples in train mode)."""
    if isinstance(out, Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return out[0]


# ----------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of :func:`train_classifier`.

    Attributes:
        model: torchvision classification model name.
        pretrained: see :func:`build_classifier` (``False``, ``True``, ``"auto"``, a weights name, a path).
        epochs: total epochs (a resumed run continues up to this number).
        batch: training batch size.
        imgsz: side of the square (letterboxed) input.
        lr: peak AdamW learning rate (linear warmup, then cosine decay to 5 % per step).
        weight_decay: AdamW weight decay.
        warmup_epochs: warmup length in epochs.
        temperature: KD temperature ``T``.
        alpha: weight of the hard-label cross-entropy in the KD loss.
        kd: Hinton KD (teacher distributions + hard labels); ``False`` trains on hard labels only (CE).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        seed: seeds the init, the shuffling, the augmentations and ``max_per_class``.
        workers: DataLoader worker processes.
        context, min_box, max_per_class, zero_rows: crop datasets only, see :class:`CropDataset`.
        augment: training augmentations (box jitter / random crop, horizontal flip).
        bn_momentum: momentum of every BatchNorm's running statistics while training; ``None`` keeps the
            model's own. torchvision's MobileNetV3 uses 0.01, tuned for ImageNet-length runs: after the few
            hundred steps of a small dataset its running statistics are still mostly their initial values and
            eval-mode predictions collapse to one class. 0.1 (PyTorch's default) avoids that.
        kd_teacher: an autolabel classifier checkpoint (same classes) distilled *online*: its logits on each
            training batch replace the dataset's teacher scores in the KD term (e.g. the unpruned model
            teaching its pruned copy, :func:`autolabel.compress.pruning.prune_classifier`).
        resume: continue from ``out/last.pt`` when it exists (else start fresh); ``False`` starts over.
        progress: draw a progress bar.
    """

    model: str = "mobilenet_v3_small"
    pretrained: bool | str = False
    epochs: int = 30
    batch: int = 64
    imgsz: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    temperature: float = 4.0
    alpha: float = 0.5
    kd: bool = True
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    context: float = 0.1
    min_box: float = 0.0
    max_per_class: int | None = None
    zero_rows: str = "onehot"
    augment: bool = True
    bn_momentum: float | None = 0.1
    kd_teacher: str | None = None
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.model, str) and self.model.strip() != "", "model", "a torchvision model name"),
            (self.epochs >= 1, "epochs", ">= 1"),
            (self.batch >= 1, "batch", ">= 1"),
            (self.imgsz >= 16, "imgsz", ">= 16"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", "> 0"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs", ">= 0"),
            (self.temperature > 0 and math.isfinite(self.temperature), "temperature", "> 0"),
            (0 <= self.alpha <= 1, "alpha", "in [0, 1]"),
            (self.workers >= 0, "workers", ">= 0"),
            (self.context >= 0, "context", ">= 0"),
            (self.min_box >= 0, "min_box", ">= 0"),
            (self.max_per_class is None or self.max_per_class >= 1, "max_per_class", "None or >= 1"),
            (self.zero_rows in ZERO_ROW_POLICIES, "zero_rows", f"one of {ZERO_ROW_POLICIES}"),
            (isinstance(self.pretrained, (bool, str)), "pretrained", "a bool, a weights name or a path"),
            (self.bn_momentum is None or 0 < self.bn_momentum <= 1, "bn_momentum", "None or in (0, 1]"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"{key} must be {expected}, found {getattr(self, key)!r}")


@dataclass
class ClassifierResult:
    """What :func:`train_classifier` produced."""

    out: Path
    best: Path
    last: Path
    metrics_path: Path
    metrics: dict[str, Any]
    names: list[str]
    start_epoch: int
    epochs_run: int

    @property
    def top1_teacher(self) -> float | None:
        """Val top-1 of ``best.pt`` against the teacher's hard labels."""
        return self.metrics["best"].get("top1_teacher")

    @property
    def top1_human(self) -> float | None:
        """Val top-1 of ``best.pt`` against the human labels (None when none were given)."""
        return self.metrics["best"].get("top1_human")


class _HardCE(nn.Module):
    """Cross-entropy on the hard labels, with :class:`HintonKD`'s call signature (teacher ignored)."""

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None = None,
                targets: Tensor | None = None, teacher_probs: Tensor | None = None) -> Tensor:
        assert targets is not None
        return nn.functional.cross_entropy(student_logits, targets)

    def extra_repr(self) -> str:
        return "hard labels only"


def classification_loss(config: ClassifierConfig) -> nn.Module:
    """The trainer's loss: :class:`HintonKD` ``(T, α)`` when ``config.kd``, else plain cross-entropy.

    Called as ``loss(logits, targets=hard_labels, teacher_probs=teacher_rows)``.
    """
    if config.kd:
        from autolabel.distill.losses import HintonKD

        return HintonKD(temperature=config.temperature, alpha=config.alpha)
    return _HardCE()


def _loss_name(config: ClassifierConfig) -> str:
    return f"hinton_kd(T={config.temperature}, alpha={config.alpha})" if config.kd else "cross_entropy(hard labels)"


@torch.no_grad()
def evaluate_classifier(model: nn.Module, dataset: _SampleDataset, human: Tensor | None = None, *,
                        batch: int = 128, device: str = "cpu", workers: int = 0) -> dict[str, Any]:
    """Top-1 of ``model`` on ``dataset`` against the teacher's hard labels and, where given, human labels.

    ``human`` holds one class index per sample (−1 = no human label). Returns ``n``, ``top1_teacher``,
    ``loss_teacher`` (CE against the teacher labels), ``n_human``, ``top1_human`` and
    ``balanced_top1_human`` (mean per-class recall over the human classes present).
    """
    was = model.training
    model.eval()
    preds, losses = [], []
    if len(dataset):
        for x, y, _ in DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers):
            z = _logits(model(x.to(device))).float().cpu()
            losses.append(nn.functional.cross_entropy(z, y, reduction="sum"))
            preds.append(z.argmax(1))
    model.train(was)
    n = len(dataset)
    out: dict[str, Any] = {"n": n, "top1_teacher": None, "loss_teacher": None, "n_human": 0, "top1_human": None,
                           "balanced_top1_human": None}
    if n == 0:
        return out
    pred = torch.cat(preds)
    teacher = torch.from_numpy(dataset.labels)
    out["top1_teacher"] = round(float((pred == teacher).float().mean()), 5)
    out["loss_teacher"] = round(float(torch.stack(losses).sum()) / n, 5)
    if human is not None:
        m = human >= 0
        out["n_human"] = int(m.sum())
        if m.any():
            hp, ht = pred[m], human[m]
            out["top1_human"] = round(float((hp == ht).float().mean()), 5)
            recalls = [float((hp[ht == k] == k).float().mean()) for k in ht.unique().tolist()]
            out["balanced_top1_human"] = round(sum(recalls) / len(recalls), 5)
    return out


def _human_targets(human_labels: Mapping[str, int | str] | None, dataset: _SampleDataset,
                   names: list[str]) -> tuple[Tensor | None, int]:
    if not human_labels:
        return None, 0
    index = {n: i for i, n in enumerate(names)}
    t = torch.full((len(dataset),), -1, dtype=torch.long)
    pos = {k: i for i, k in enumerate(dataset.keys)}
    unused = 0
    for key, v in human_labels.items():
        if isinstance(v, str):
            if v not in index:
                raise ConfigError(f"human label '{v}' of sample '{key}' is not one of the classes {names}")
            k = index[v]
        else:
            k = int(v)
            if not 0 <= k < len(names):
                raise ConfigError(f"human label {v!r} of sample '{key}' is outside 0..{len(names) - 1}")
        i = pos.get(str(key))
        if i is None:
            unused += 1
        else:
            t[i] = k
    return t, unused


def _save(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


_RESUME_KEYS = ("model", "imgsz", "kd", "temperature", "alpha", "lr", "weight_decay", "batch", "seed",
                "context", "min_box", "max_per_class", "zero_rows", "augment", "warmup_epochs", "bn_momentum",
                "kd_teacher")


def train_classifier(
    dataset: str | Path,
    out: str | Path,
    config: ClassifierConfig | None = None,
    *,
    human_labels: Mapping[str, int | str] | None = None,
) -> ClassifierResult:
    """Train a torchvision classifier on a dataset's crops (or images) from its teacher, with Hinton KD.

    Args:
        dataset: a detection dataset (``autolabel label``; trained on its box crops) or an image-level
            dataset (:func:`label_classification`). Train/val come from the records' ``split``.
        out: run folder: ``last.pt``, ``best.pt``, ``metrics.json``.
        config: settings (``kd=False`` trains on hard labels only, for comparison).
        human_labels: optional ``{sample key: class name or index}``; val samples among them are also scored
            against these labels (keys: :func:`crop_key` for crops, the record id for images).

    Returns:
        A :class:`ClassifierResult` (paths and the ``metrics.json`` content).

    Raises:
        DatasetError: missing dataset, no training samples, unreadable image.
        ConfigError: unknown model name, bad settings, a ``last.pt`` trained with other settings.
        WeightsNotFoundError: pretrained weights asked for, not cached and not downloadable.

    Example:
        >>> res = train_classifier("datasets/cam1", "runs/cls", ClassifierConfig(epochs=20, imgsz=96))  # doctest: +SKIP
    """
    from autolabel.core.weights import resolve_device

    cfg = config or ClassifierConfig()
    _check_model_name(cfg.model)  # fail fast, before reading the dataset
    device = resolve_device(cfg.device)
    kw = dict(imgsz=cfg.imgsz, seed=cfg.seed, context=cfg.context, min_box=cfg.min_box, zero_rows=cfg.zero_rows)
    train_ds = open_classification_dataset(dataset, "train", augment=cfg.augment, max_per_class=cfg.max_per_class, **kw)
    val_ds = open_classification_dataset(dataset, "val", augment=False, **kw)
    names = train_ds.names
    if len(train_ds) == 0:
        what = "box crops" if train_ds.kind == "crops" else "images"
        detail = f" ({train_ds.stats})" if train_ds.kind == "crops" else ""
        raise DatasetError(f"'{dataset}' has no {what} in its train split to train on{detail}")
    human, human_unused = _human_targets(human_labels, val_ds, names)

    run = Path(out)
    if run.exists() and not run.is_dir():
        raise ConfigError(f"output '{run}' exists and is not a folder")
    run.mkdir(parents=True, exist_ok=True)
    last_p, best_p, metrics_p = run / "last.pt", run / "best.pt", run / "metrics.json"
    state = _load_ckpt(last_p) if cfg.resume and last_p.is_file() else None
    if state is not None:
        old = state.get("config", {})
        diff = [f"{k}={old.get(k)!r} (now {getattr(cfg, k)!r})" for k in _RESUME_KEYS if old.get(k) != getattr(cfg, k)]
        if state.get("names") != names:
            diff.append(f"classes {state.get('names')} (now {names})")
        if diff:
            raise ConfigError(f"cannot resume '{last_p}': it was trained with " + ", ".join(diff)
                              + "; use resume=False to start over")

    torch.manual_seed(cfg.seed)
    if state is None:
        model, pretrained_used = build_classifier(cfg.model, len(names), cfg.pretrained)
    else:
        model, pretrained_used = build_classifier(cfg.model, len(names), False)
        fit_to_state_dict(model, state["model"])
        model.load_state_dict(state["model"])
        pretrained_used = state.get("pretrained_used")
    if cfg.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = cfg.bn_momentum
    model.to(device)
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, cfg.imgsz, cfg.imgsz, device=device))
    except RuntimeError as e:
        raise ConfigError(
            f"'{cfg.model}' cannot run on {cfg.imgsz}x{cfg.imgsz} inputs ({str(e).splitlines()[0][:120]}); "
            f"try a larger imgsz"
        ) from None
    model.train()

    loss_fn = classification_loss(cfg)
    teacher = None
    if cfg.kd_teacher is not None:
        if not cfg.kd:
            raise ConfigError("kd_teacher needs kd=True (it is distilled through the KD term)")
        tclf = load_classifier(cfg.kd_teacher, device=str(device))
        if list(tclf.names) != list(names):
            raise ConfigError(f"kd_teacher '{cfg.kd_teacher}' predicts {tclf.names}, the dataset has {names}")
        teacher = tclf.model.float().eval()
        for q in teacher.parameters():
            q.requires_grad_(False)
    drop_last = len(train_ds) > cfg.batch  # a batch of 1 breaks BatchNorm in small feature maps
    steps = len(train_ds) // cfg.batch if drop_last else 1
    total_steps = steps * cfg.epochs
    warm = int(round(cfg.warmup_epochs * steps))

    def lr_factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / max(warm, 1)
        t = (step - warm) / max(total_steps - warm, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    history: list[dict[str, Any]] = []
    best_key: tuple[float, float] | None = None
    best_epoch, best_val = 0, {}
    start_epoch, seconds_before = 1, 0.0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history = list(state.get("history", []))
        best_epoch, best_val = int(state.get("best_epoch", 0)), dict(state.get("best_val", {}))
        best_key = tuple(state["best_key"]) if state.get("best_key") is not None else None
        start_epoch = int(state["epoch"]) + 1
        seconds_before = float(state.get("seconds", 0.0))

    preprocessing = _default_preprocessing(cfg.imgsz, cfg.context if train_ds.kind == "crops" else None)
    base = {"format": CKPT_FORMAT, "version": CKPT_VERSION, "model_name": cfg.model, "num_classes": len(names),
            "names": names, "preprocessing": preprocessing, "dataset": str(dataset), "kind": train_ds.kind,
            "teacher": train_ds.teacher, "config": asdict(cfg), "pretrained_used": pretrained_used,
            "loss": _loss_name(cfg)}
    t0 = time.perf_counter()
    final_val: dict[str, Any] = history[-1]["val"] if history else {}
    with ProgressBar(total=total_steps, desc=f"training {cfg.model}", enabled=cfg.progress,
                     initial=min((start_epoch - 1) * steps, total_steps), unit="batch") as bar:
        for epoch in range(start_epoch, cfg.epochs + 1):
            te = time.perf_counter()
            train_ds.set_epoch(epoch)
            g = torch.Generator()
            g.manual_seed(cfg.seed * 100_003 + epoch)
            loader = DataLoader(train_ds, batch_size=cfg.batch, shuffle=True, generator=g, drop_last=drop_last,
                                num_workers=cfg.workers)
            model.train()
            total, count = 0.0, 0
            for x, y, p in loader:
                x, y, p = x.to(device), y.to(device), p.to(device)
                logits = _logits(model(x))
                if teacher is not None:
                    with torch.no_grad():
                        t_logits = _logits(teacher(x)).float()
                    loss = loss_fn(logits, teacher_logits=t_logits, targets=y)
                else:
                    loss = loss_fn(logits, targets=y, teacher_probs=p)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(y)
                count += len(y)
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{total / count:.3f}")
            val = evaluate_classifier(model, val_ds, human, batch=max(cfg.batch, 64), device=device,
                                      workers=cfg.workers)
            final_val = val
            rec = {"epoch": epoch, "train_loss": round(total / max(count, 1), 5),
                   "lr": round(opt.param_groups[0]["lr"], 8), "val": val,
                   "seconds": round(time.perf_counter() - te, 2)}
            history.append(rec)
            # best: highest val top-1 vs the teacher, then lowest val loss; without val, the latest epoch
            key = ((val["top1_teacher"], -val["loss_teacher"]) if val["n"] else (float(epoch), 0.0))
            is_best = best_key is None or key > best_key
            if is_best:
                best_key, best_epoch, best_val = key, epoch, val
            sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            seconds = seconds_before + time.perf_counter() - t0
            common = {**base, "epoch": epoch, "model": sd, "val": val, "seconds": round(seconds, 2)}
            if is_best:
                _save(best_p, common)
            _save(last_p, {**common, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                           "rng": torch.get_rng_state(), "history": history, "best_epoch": best_epoch,
                           "best_val": best_val, "best_key": list(best_key) if best_key else None})
            bar.set_postfix(epoch=epoch, loss=f"{rec['train_loss']:.3f}", val_top1=val["top1_teacher"])
            metrics = _metrics(base, cfg, train_ds, val_ds, history, final_val, best_epoch, best_val,
                               human_unused, seconds)
            _atomic_write(metrics_p, json.dumps(metrics, indent=2).encode())
    epochs_run = max(0, cfg.epochs - start_epoch + 1)
    if epochs_run == 0:  # nothing left to train: report what last.pt holds
        metrics = _metrics(base, cfg, train_ds, val_ds, history, final_val, best_epoch, best_val, human_unused,
                           seconds_before)
        _atomic_write(metrics_p, json.dumps(metrics, indent=2).encode())
    else:
        metrics = json.loads(metrics_p.read_text())
    return ClassifierResult(out=run, best=best_p, last=last_p, metrics_path=metrics_p, metrics=metrics,
                            names=names, start_epoch=start_epoch, epochs_run=epochs_run)


def _metrics(base: dict[str, Any], cfg: ClassifierConfig, train_ds: _SampleDataset, val_ds: _SampleDataset,
             history: list[dict[str, Any]], final_val: dict[str, Any], best_epoch: int,
             best_val: dict[str, Any], human_unused: int, seconds: float) -> dict[str, Any]:
    return {
        "model": cfg.model, "pretrained": cfg.pretrained, "pretrained_used": base["pretrained_used"],
        "kd": cfg.kd, "loss": base["loss"], "names": base["names"], "dataset": base["dataset"],
        "kind": base["kind"], "teacher": base["teacher"],
        "train_samples": len(train_ds), "val_samples": len(val_ds),
        "train_per_class": np.bincount(train_ds.labels, minlength=len(train_ds.names)).tolist(),
        "dataset_stats": {"train": train_ds.stats, "val": val_ds.stats},
        "epochs": cfg.epochs, "epoch": history[-1]["epoch"] if history else 0,
        "best_epoch": best_epoch,
        "final": final_val,  # val metrics of last.pt (the latest epoch)
        "best": best_val,  # val metrics of best.pt
        "human_labels_not_in_val": human_unused,
        "preprocessing": base["preprocessing"],
        "seconds": round(seconds, 2),
        "config": asdict(cfg),
        "history": history,
    }


def _load_ckpt(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise ConfigError(f"classifier checkpoint '{path}' not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"'{path}' is not a readable classifier checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise ConfigError(f"'{path}' is not an autolabel classifier checkpoint (best.pt / last.pt of train_classifier)")
    if int(ckpt.get("version", 0)) > CKPT_VERSION:
        raise ConfigError(f"'{path}': checkpoint version {ckpt.get('version')} is newer than this autolabel supports")
    return ckpt


# ----------------------------------------------------------------------------------------------------------
# loading for inference / export
# ----------------------------------------------------------------------------------------------------------


@dataclass
class LoadedClassifier:
    """A trained classifier ready for inference or export.

    Attributes:
        model: the torchvision module, in eval mode.
        names: class names, index = output position.
        preprocessing: how inputs are made (letterbox to ``imgsz``, RGB, /255, ImageNet mean/std, NCHW;
            ``crop_context`` = margin used around boxes for crop-trained models).
        model_name: torchvision model name.
        info: the rest of the checkpoint (epoch, val metrics, config, teacher, loss).
    """

    model: nn.Module
    names: list[str]
    preprocessing: dict[str, Any]
    model_name: str
    info: dict[str, Any]

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, C)`` class probabilities of ``HxWx3`` uint8 RGB images (or crops already cut)."""
        device = next(self.model.parameters()).device
        x = preprocess(images, self.preprocessing).to(device)
        return _logits(self.model(x)).float().softmax(-1).cpu().numpy()


def load_classifier(path: str | Path, device: str = "cpu") -> LoadedClassifier:
    """Load ``best.pt`` / ``last.pt`` of :func:`train_classifier`: model (eval), class names, preprocessing.

    Raises:
        ConfigError: the file is missing or is not a classifier checkpoint.

    Example:
        >>> clf = load_classifier("runs/cls/best.pt")                 # doctest: +SKIP
        >>> clf.names, clf.preprocessing["imgsz"]                      # doctest: +SKIP
    """
    from torchvision.models import get_model

    from autolabel.core.weights import resolve_device

    ckpt = _load_ckpt(Path(path))
    name = ckpt["model_name"]
    _check_model_name(name)
    model = get_model(name, weights=None, num_classes=int(ckpt["num_classes"]))
    fit_to_state_dict(model, ckpt["model"])  # pruned checkpoints have fewer channels
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    # pretrained GoogLeNet/Inception drop their auxiliary heads; nothing else may differ
    if unexpected or any(not k.startswith(("aux", "AuxLogits")) for k in missing):
        raise ConfigError(f"'{path}': weights do not fit '{name}' (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(resolve_device(device)).eval()
    info = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "rng")}
    return LoadedClassifier(model=model, names=list(ckpt["names"]), preprocessing=dict(ckpt["preprocessing"]),
                            model_name=name, info=info)
