"""A second student family: torchvision's SSDLite320-MobileNetV3-Large, distilling the teacher's soft scores.

Example:
    >>> from autolabel.students.ssdlite.train import SSDLiteConfig, train_ssdlite, load_ssdlite, predict_ssdlite
    >>> res = train_ssdlite("datasets/cam1", "runs/cam1-ssd", SSDLiteConfig(epochs=30))   # doctest: +SKIP
    >>> model, names = load_ssdlite(res.best)                                           # doctest: +SKIP
    >>> dets = predict_ssdlite(model, [rgb_image], conf=0.3)                            # doctest: +SKIP

Model
-----
``ssdlite320_mobilenet_v3_large(num_classes=C + 1)`` (class 0 is background). With ``pretrained`` the COCO
weights (``SSDLite320_MobileNet_V3_Large_Weights.COCO_V1``: ``$AUTOLABEL_WEIGHTS_DIR/<file>``, the torch hub
cache, or a download) are loaded into backbone, extra layers and regression head; the classification head
is re-initialized for the ``C + 1`` classes. ``min_size`` replaces the fixed 320×320 input size (images are
resized to ``min_size``², as torchvision does at 320). The trained network is a plain torchvision
:class:`~torchvision.models.detection.ssd.SSD`; :class:`SSDLiteExport` is its traceable core (normalize,
backbone, head, box decoding; no NMS) for ONNX export.

Soft-label distillation (classification head)
----------------------------------------------
For a positive anchor matched to a teacher box with soft row ``s`` (``C`` per-class teacher scores in
``[0, 1]``, independent sigmoids for YOLO-like teachers), the teacher's distribution over ``C + 1``
classes is built from the *unnormalized* scores

``p = (1 − max_c s_c,  s_1, …, s_C)``        (background = the teacher's doubt that the box holds any class)

and tempered as in Hinton KD from probabilities: ``p^τ = normalize(p^(1/T)) = softmax(log p / T)`` — the
foreground part is the tempered teacher scores renormalized, the background part shrinks as the teacher's
confidence grows (0 when it is certain). A row with no score at all (``max s = 0``) falls back to the box's
one-hot. The classification loss is

``L_cls = [ Σ_pos (α·CE(z, y) + (1 − α)·T²·KL(p^τ ‖ softmax(z / T)))  +  Σ_mined-neg CE(z, background) ] / N_pos``

with torchvision's 3:1 hard negative mining on the background CE (unchanged) and torchvision's regression
loss. ``α = 1`` is exactly torchvision's loss; ``soft=False`` uses :meth:`SSD.compute_loss` itself. The soft
rows travel with the boxes as ``targets[i]["soft"]`` (through the horizontal flip and box sanitizing).

Training
--------
AdamW (linear warm-up, cosine decay), augmentation = horizontal flip + photometric jitter. After every
epoch the BatchNorm statistics are recomputed on training images ("precise BN": SSDLite's BN momentum of
0.03 leaves the running statistics far behind the weights on short runs, which ruins eval-mode outputs),
then the model is scored on the val split and checkpointed. Shuffling and augmentation are seeded per
epoch and image, so a resumed run continues as the uninterrupted one would.

Output folder
-------------
``OUT/weights/last.pt`` (every epoch; model, optimizer, names, settings, history — ``resume=True``
continues from it), ``OUT/weights/best.pt`` (best val fitness ``0.9·mAP50-95 + 0.1·mAP50``),
``OUT/weights/metrics.json`` (best.pt's mAP on the val split against the teacher's labels, and the
per-epoch history), ``OUT/val_labels.coco.json`` / ``OUT/val_predictions.json`` (what was scored).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD

from autolabel.config import SSDLiteConfig
from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.core.progress import ProgressBar
from autolabel.core.weights import resolve_device, weights_dir
from autolabel.data.dataset import check_dataset, read_records
from autolabel.distill.losses import kd_kl_div

if TYPE_CHECKING:
    import supervision as sv

__all__ = [
    "ARCH",
    "COCO_WEIGHTS_FILE",
    "SSDLiteConfig",
    "SSDLiteExport",
    "SSDLiteResult",
    "SoftLabelSSD",
    "augment_sample",
    "build_ssdlite",
    "evaluate_ssdlite",
    "load_ssdlite",
    "predict_ssdlite",
    "soft_class_target",
    "soft_label_ssd_loss",
    "teacher_class_scores",
    "train_ssdlite",
]

ARCH = "ssdlite320_mobilenet_v3_large"
COCO_WEIGHTS_FILE = "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"
CHECKPOINT_FORMAT = "autolabel-ssdlite"
CHECKPOINT_VERSION = 1
METRICS_FILE = "metrics.json"
# torchvision's ssdlite320_mobilenet_v3_large settings (score/NMS/top-k, inputs scaled to [-1, 1])
_SSD_KW: dict[str, Any] = {
    "score_thresh": 0.001,
    "nms_thresh": 0.55,
    "detections_per_img": 300,
    "topk_candidates": 300,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


# ----------------------------------------------------------------------------------------------------------
# configuration and result
# ----------------------------------------------------------------------------------------------------------


@dataclass
class SSDLiteResult:
    """What :func:`train_ssdlite` produced."""

    out: Path
    best: Path
    last: Path
    metrics: dict[str, Any]
    metrics_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    pretrained: str = "scratch"  # "coco" or "scratch"


# ----------------------------------------------------------------------------------------------------------
# soft-label loss
# ----------------------------------------------------------------------------------------------------------


def teacher_class_scores(soft: Tensor, labels: Tensor | None = None) -> Tensor:
    """Unnormalized teacher scores over ``C + 1`` classes of positive anchors: ``(1 − max s, s)``.

    Rows with ``max s = 0`` (no teacher score at all) become the one-hot of ``labels`` (1-based) when given.
    """
    soft = soft.detach().float().clamp(0.0, 1.0)
    m = soft.amax(-1, keepdim=True) if soft.shape[-1] else soft.new_zeros(*soft.shape[:-1], 1)
    p = torch.cat([1.0 - m, soft], -1)
    if labels is not None:
        onehot = F.one_hot(labels.long(), p.shape[-1]).to(p.dtype)
        p = torch.where(m > 0, p, onehot)
    return p


def soft_class_target(soft: Tensor, temperature: float, labels: Tensor | None = None) -> Tensor:
    """The teacher's tempered ``(P, C + 1)`` class distribution (column 0 = background):
    ``normalize(p^(1/T))`` of :func:`teacher_class_scores`."""
    p = teacher_class_scores(soft, labels)
    return torch.softmax(torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)) / float(temperature), -1)


def soft_label_ssd_loss(
    model: SSD,
    targets: list[dict[str, Tensor]],
    head_outputs: dict[str, Tensor],
    anchors: list[Tensor],
    matched_idxs: list[Tensor],
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> dict[str, Tensor]:
    """:meth:`SSD.compute_loss` with the soft-label KD term on positive anchors (see the module doc).

    ``targets[i]["soft"]`` holds the ``(N_i, C)`` teacher rows of ``targets[i]["boxes"]``.
    """
    bbox_regression = head_outputs["bbox_regression"]
    cls_logits = head_outputs["cls_logits"]
    num_foreground = 0
    bbox_loss, cls_targets, pos_soft = [], [], []
    for t, reg, logits, anc, matched in zip(targets, bbox_regression, cls_logits, anchors, matched_idxs):
        fg = torch.where(matched >= 0)[0]
        fg_matched = matched[fg]
        num_foreground += fg_matched.numel()
        target_regression = model.box_coder.encode_single(t["boxes"][fg_matched], anc[fg, :])
        bbox_loss.append(F.smooth_l1_loss(reg[fg, :], target_regression, reduction="sum"))
        gt = torch.zeros((logits.size(0),), dtype=t["labels"].dtype, device=t["labels"].device)
        gt[fg] = t["labels"][fg_matched]
        cls_targets.append(gt)
        pos_soft.append(t["soft"][fg_matched])  # ascending anchor order = the boolean mask's order below
    bbox_loss_t = torch.stack(bbox_loss)
    cls_targets_t = torch.stack(cls_targets)

    num_classes = cls_logits.size(-1)
    ce = F.cross_entropy(cls_logits.view(-1, num_classes), cls_targets_t.view(-1), reduction="none").view(
        cls_targets_t.size()
    )
    # torchvision's hard negative mining (3:1), on the CE to background
    foreground = cls_targets_t > 0
    num_negative = model.neg_to_pos_ratio * foreground.sum(1, keepdim=True)
    negative_loss = ce.clone()
    negative_loss[foreground] = -float("inf")
    _, idx = negative_loss.sort(1, descending=True)
    background = idx.sort(1)[1] < num_negative

    positive = ce[foreground].sum()
    if alpha < 1.0 and num_foreground:
        p = teacher_class_scores(torch.cat(pos_soft), labels=cls_targets_t[foreground]).to(cls_logits.dtype)
        # T²·KL(normalize(p^(1/T)) ‖ softmax(z/T)), summed over positive anchors
        kd = kd_kl_div(cls_logits[foreground], teacher_probs=p, temperature=temperature, reduction="sum")
        positive = alpha * positive + (1.0 - alpha) * kd
    n = max(1, num_foreground)
    return {
        "bbox_regression": bbox_loss_t.sum() / n,
        "classification": (positive + ce[background].sum()) / n,
    }


class SoftLabelSSD(SSD):
    """torchvision's :class:`SSD` whose training loss distills ``targets[i]["soft"]`` (see the module doc).

    Targets without ``"soft"`` get torchvision's own loss. Inference is :class:`SSD`'s.
    """

    soft_alpha: float = 0.5
    soft_temperature: float = 2.0

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        if not all("soft" in t for t in targets):
            return super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        return soft_label_ssd_loss(
            self, targets, head_outputs, anchors, matched_idxs, self.soft_alpha, self.soft_temperature
        )


# ----------------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------------


def _download_coco_state_dict(progress: bool) -> dict[str, Tensor]:
    """COCO weights from ``$AUTOLABEL_WEIGHTS_DIR``, the torch hub cache, or a download."""
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights

    wd = weights_dir()
    if wd is not None and (wd / COCO_WEIGHTS_FILE).is_file():
        return torch.load(wd / COCO_WEIGHTS_FILE, map_location="cpu", weights_only=True)
    return SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.get_state_dict(progress=progress, check_hash=True)


def build_ssdlite(
    num_classes: int,
    min_size: int = 320,
    pretrained: bool | str = False,
    soft: bool = True,
    alpha: float = 0.5,
    temperature: float = 2.0,
    progress: bool = False,
) -> tuple[SSD, str]:
    """``ssdlite320_mobilenet_v3_large(num_classes=num_classes + 1)`` at ``min_size``², and where its
    weights came from (``"coco"`` or ``"scratch"``).

    ``soft`` makes it a :class:`SoftLabelSSD` (an :class:`SSD` subclass whose loss distills ``targets[i]["soft"]``);
    otherwise a plain torchvision :class:`SSD`.
    """
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    base = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes + 1)
    cls = SoftLabelSSD if soft else SSD
    size = (int(min_size), int(min_size))
    model = cls(base.backbone, base.anchor_generator, size, num_classes + 1, head=base.head, **_SSD_KW)
    if soft:
        model.soft_alpha, model.soft_temperature = float(alpha), float(temperature)
    source = "scratch"
    if pretrained:
        try:
            state = _download_coco_state_dict(progress)
        except Exception as e:  # offline, missing file, bad hash …
            reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            msg = (
                f"COCO weights of {ARCH} could not be loaded ({reason}); put {COCO_WEIGHTS_FILE} in "
                "$AUTOLABEL_WEIGHTS_DIR or the torch hub cache (~/.cache/torch/hub/checkpoints)"
            )
            if pretrained is True:
                raise WeightsNotFoundError(msg + ", or train with pretrained=False") from None
            warnings.warn(msg + "; training from scratch", stacklevel=2)
        else:
            keep = {k: v for k, v in state.items() if not k.startswith("head.classification_head.")}
            missing, unexpected = model.load_state_dict(keep, strict=False)
            if unexpected or any(not k.startswith("head.classification_head.") for k in missing):
                raise WeightsNotFoundError(
                    f"the COCO weights do not fit {ARCH}: missing {missing[:3]}, unexpected {unexpected[:3]}"
                )
            source = "coco"
    return model, source


class SSDLiteExport(nn.Module):
    """The traceable core of a trained SSD, for ``torch.onnx.export``: ``(B, 3, S, S)`` RGB in ``[0, 1]`` →
    ``boxes (B, A, 4)`` xyxy in input pixels and ``scores (B, A, C + 1)`` softmax (column 0 = background).

    Normalization, backbone, head and box decoding with the anchors of the fixed input size; NMS is left
    to the runtime (as torchvision's own ``postprocess_detections`` does it per class).

    Example:
        >>> m = SSDLiteExport(model).eval()                                                 # doctest: +SKIP
        >>> torch.onnx.export(m, (torch.rand(1, 3, 320, 320),), "ssd.onnx", dynamo=False)  # doctest: +SKIP
    """

    def __init__(self, model: SSD) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        tr = model.transform
        h, w = tr.fixed_size if tr.fixed_size is not None else (tr.min_size[0], tr.min_size[0])
        self.size = (int(h), int(w))
        self.register_buffer("mean", torch.tensor(tr.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(tr.image_std).view(1, 3, 1, 1))
        self.weights = tuple(float(v) for v in model.box_coder.weights)
        self.clip = float(model.box_coder.bbox_xform_clip)
        p = next(model.parameters())
        was = model.training
        model.eval()
        with torch.no_grad():
            x = torch.zeros(1, 3, h, w, device=p.device)
            feats = list(model.backbone(x).values())
            anchors = model.anchor_generator(ImageList(x, [(h, w)]), feats)[0]
        model.train(was)
        self.register_buffer("anchors", anchors)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = (x - self.mean) / self.std
        out = self.head(list(self.backbone(x).values()))
        rel, a = out["bbox_regression"], self.anchors
        wx, wy, ww, wh = self.weights
        aw, ah = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        cx, cy = a[:, 0] + 0.5 * aw, a[:, 1] + 0.5 * ah
        pcx = rel[..., 0] / wx * aw + cx
        pcy = rel[..., 1] / wy * ah + cy
        pw = torch.exp(torch.clamp(rel[..., 2] / ww, max=self.clip)) * aw
        ph = torch.exp(torch.clamp(rel[..., 3] / wh, max=self.clip)) * ah
        boxes = torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], -1)
        return boxes, torch.softmax(out["cls_logits"], -1)


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Sample:
    image: Path
    stem: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) xyxy pixels
    classes: np.ndarray  # (N,) 0-based
    soft: np.ndarray  # (N, C)


def _read_samples(root: Path, num_classes: int) -> dict[str, list[_Sample]]:
    out: dict[str, list[_Sample]] = {"train": [], "val": []}
    for rec in read_records(root, num_classes):
        img = root / rec.image
        if not img.is_file():
            raise DatasetError(f"'{root}': image {rec.image} of record {rec.id} is missing")
        boxes = np.asarray(rec.boxes.xyxy, dtype=np.float32).reshape(-1, 4)
        soft = np.asarray(rec.boxes.soft_scores, dtype=np.float32).reshape(len(boxes), num_classes)
        cls = np.asarray(rec.boxes.class_id, dtype=np.int64).reshape(len(boxes))
        out[rec.split].append(_Sample(img, img.stem, rec.width, rec.height, boxes, cls, soft))
    return out


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def _sanitize(target: dict[str, np.ndarray], width: int, height: int) -> dict[str, np.ndarray]:
    """Clip boxes to the image and drop those under 1 pixel, with their classes and soft rows."""
    b = target["boxes"].copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    keep = ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
    return {"boxes": b[keep], "classes": target["classes"][keep], "soft": target["soft"][keep]}


def augment_sample(
    image: np.ndarray,
    target: dict[str, np.ndarray],
    rng: np.random.Generator,
    hflip: float = 0.5,
    photometric: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Horizontal flip (boxes mirrored; classes and soft rows keep their box) and photometric jitter.

    Args:
        image: ``(H, W, 3)`` RGB, uint8 or float in ``[0, 1]``.
        target: ``boxes (N, 4)`` xyxy pixels, ``classes (N,)``, ``soft (N, C)``.
    Returns:
        float32 ``(H, W, 3)`` image in ``[0, 1]`` and the new target (boxes clipped, sub-pixel ones dropped).
    """
    img = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32, copy=True)
    h, w = img.shape[:2]
    target = {k: np.array(v, copy=True) for k, v in target.items()}
    if rng.random() < hflip:
        img = img[:, ::-1]
        b = target["boxes"]
        target["boxes"] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1).astype(b.dtype).reshape(-1, 4)
    if photometric:
        bright, contrast, sat = rng.uniform(0.75, 1.25, 3)
        img = img * bright
        img = (img - img.mean()) * contrast + img.mean()
        gray = img.mean(-1, keepdims=True)
        img = gray + (img - gray) * sat
        img = img.clip(0.0, 1.0)
    return np.ascontiguousarray(img, dtype=np.float32), _sanitize(target, w, h)


class _Data:
    """Map-style dataset: ``(image (3, H, W) float [0, 1], target)``; SSD labels are ``class + 1``."""

    def __init__(self, samples: Sequence[_Sample], train: bool, seed: int, hflip: float, photometric: bool) -> None:
        self.samples = list(samples)
        self.train, self.seed, self.hflip, self.photometric = train, int(seed), float(hflip), bool(photometric)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        s = self.samples[i]
        img = _read_rgb(s.image)
        target = {"boxes": s.boxes, "classes": s.classes, "soft": s.soft}
        if self.train:
            # one generator per (seed, epoch, image): identical with any number of workers and after resume
            rng = np.random.default_rng([self.seed, self.epoch, i])
            imgf, target = augment_sample(img, target, rng, self.hflip, self.photometric)
        else:
            imgf = img.astype(np.float32) / 255.0
            target = _sanitize(target, img.shape[1], img.shape[0])
        return torch.from_numpy(imgf).permute(2, 0, 1).contiguous(), {
            "boxes": torch.from_numpy(target["boxes"].astype(np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(target["classes"].astype(np.int64) + 1),
            "soft": torch.from_numpy(target["soft"].astype(np.float32)),
        }


def _collate(batch: list[Any]) -> tuple[list[Any], list[Any]]:
    images, targets = zip(*batch)
    return list(images), list(targets)


# ----------------------------------------------------------------------------------------------------------
# predict / load
# ----------------------------------------------------------------------------------------------------------


def _to_tensor(image: np.ndarray) -> Tensor:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ConfigError(f"expected an RGB image of shape (H, W, 3), found shape {a.shape}")
    a = a[..., :3]
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


def predict_ssdlite(
    model: SSD, images: Sequence[np.ndarray], conf: float = 0.25, batch_size: int = 8
) -> list[sv.Detections]:
    """Detect on RGB images (``(H, W, 3)`` uint8, or float in ``[0, 1]``).

    Returns one :class:`supervision.Detections` per image: ``xyxy`` in the image's pixels, ``class_id``
    0-based (the dataset's classes), ``confidence`` the class's softmax score; torchvision's per-class NMS.
    """
    import supervision as sv

    if not 0.0 <= conf <= 1.0:
        raise ConfigError(f"conf must be between 0 and 1, found {conf}")
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out: list[sv.Detections] = []
    try:
        with torch.inference_mode():
            for k in range(0, len(images), max(1, batch_size)):
                batch = [_to_tensor(im).to(device) for im in images[k : k + batch_size]]
                for r in model(batch):
                    keep = r["scores"] >= conf
                    out.append(
                        sv.Detections(
                            xyxy=r["boxes"][keep].float().cpu().numpy().reshape(-1, 4),
                            confidence=r["scores"][keep].float().cpu().numpy(),
                            class_id=(r["labels"][keep] - 1).cpu().numpy().astype(int),
                        )
                    )
    finally:
        model.train(was)
    return out


def _load_checkpoint(path: str | Path) -> dict[str, Any]:
    from autolabel.core.checkpoints import load_format

    return load_format(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "SSDLite", "train_ssdlite")


def load_ssdlite(path: str | Path, device: str = "cpu") -> tuple[SSD, list[str]]:
    """A trained SSDLite (a plain torchvision :class:`SSD`, eval mode, on ``device``) and its class names."""
    ckpt = _load_checkpoint(path)
    names = list(ckpt["names"])
    model, _ = build_ssdlite(len(names), int(ckpt["min_size"]), pretrained=False, soft=False)
    model.load_state_dict(ckpt["model"])
    return model.to(resolve_device(device)).eval(), names


# ----------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a module-level function so tests can interrupt a run here)."""
    _atomic_save(payload, path)


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    prog = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * prog)))


def _coco_gt(samples: Sequence[_Sample], names: list[str]) -> dict[str, Any]:
    images, anns = [], []
    for i, s in enumerate(samples, 1):
        images.append({"id": i, "file_name": s.image.name, "width": s.width, "height": s.height})
        for (x1, y1, x2, y2), c in zip(s.boxes.tolist(), s.classes.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    cats = [{"id": c + 1, "name": n} for c, n in enumerate(names)]
    return {"images": images, "annotations": anns, "categories": cats}


def _evaluate_split(model: SSD, samples: Sequence[_Sample], names: list[str], out: Path, batch: int) -> dict[str, Any] | None:
    """mAP of the model on ``samples`` against the teacher's labels (pycocotools via autolabel.metrics)."""
    from autolabel.metrics import evaluate

    gt = _coco_gt(samples, names)
    if not gt["annotations"]:
        return None
    gt_path, pred_path = out / "val_labels.coco.json", out / "val_predictions.json"
    gt_path.write_text(json.dumps(gt))
    results = []
    for k in range(0, len(samples), batch):
        chunk = samples[k : k + batch]
        dets = predict_ssdlite(model, [_read_rgb(s.image) for s in chunk], conf=0.0, batch_size=batch)
        for i, d in enumerate(dets, k + 1):
            for (x1, y1, x2, y2), c, sc in zip(d.xyxy.tolist(), d.class_id.tolist(), d.confidence.tolist()):
                results.append({"image_id": i, "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "score": float(sc)})
    pred_path.write_text(json.dumps(results))
    if not results:
        return {"mAP50-95": 0.0, "mAP50": 0.0, "per_class": {}, "images": len(samples)}
    r = evaluate(pred_path, gt_path)
    return {"mAP50-95": r.map50_95, "mAP50": r.map50, "per_class": r.per_class, "images": r.images}


def _precise_bn(model: SSD, samples: Sequence[_Sample], batch: int, limit: int, seed: int) -> int:
    """Recompute every BatchNorm's running statistics as the average over batches of up to ``limit`` fixed
    training images (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021); returns the batches used."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    idx = np.random.default_rng(seed).permutation(len(samples))[: max(0, limit)]
    if not bns or len(idx) < 2:
        return 0
    device = next(model.parameters()).device
    momenta = [m.momentum for m in bns]
    was = model.training
    used = 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        with torch.no_grad():
            for k in range(0, len(idx), batch):
                chunk = [samples[i] for i in idx[k : k + batch]]
                if len(chunk) < 2:  # one image cannot be batch-normalized on 1×1 maps
                    break
                images, _ = model.transform([_to_tensor(_read_rgb(s.image)).to(device) for s in chunk])
                model.head(list(model.backbone(images.tensors).values()))
                used += 1
    finally:
        for m, mo in zip(bns, momenta):
            m.momentum = mo
        model.train(was)
    return used


def _fitness(metrics: dict[str, Any] | None, loss: float) -> float:
    if metrics is None:
        return -loss
    return 0.9 * float(metrics["mAP50-95"]) + 0.1 * float(metrics["mAP50"])


def _prepare_out(out: Path, config: SSDLiteConfig) -> tuple[SSDLiteConfig, dict[str, Any] | None]:
    """Check the output folder; on resume return the settings read back and the last checkpoint."""
    last = out / "weights" / "last.pt"
    if config.resume:
        if not last.is_file():
            raise ConfigError(f"nothing to resume in '{out}' (no weights/last.pt); drop resume")
        ckpt = _load_checkpoint(last)
        known = {f.name for f in fields(SSDLiteConfig)}
        saved = {k: v for k, v in ckpt.get("config", {}).items() if k in known}
        cfg = replace(SSDLiteConfig(**saved), device=config.device, workers=config.workers,
                      progress=config.progress, resume=True, overwrite=False)
        return cfg, ckpt
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output '{out}' exists and is not a folder")
    if last.is_file() or (out / "weights" / "best.pt").is_file():
        if not config.overwrite:
            raise ConfigError(f"'{out}' already holds a training run; use resume=True to continue it, "
                              "overwrite=True to start over, or a new out folder")
        shutil.rmtree(out / "weights", ignore_errors=True)
        for f in ("val_labels.coco.json", "val_predictions.json"):
            (out / f).unlink(missing_ok=True)
    return config, None


def train_ssdlite(dataset: str | Path, out: str | Path, config: SSDLiteConfig | None = None) -> SSDLiteResult:
    """Train SSDLite320-MobileNetV3 on an autolabel dataset, distilling the teacher's soft scores.

    Args:
        dataset: a folder written by ``autolabel label`` (YOLO layout + ``autolabel.jsonl`` sidecar).
        out: output folder (see the module doc).
        config: settings; ``resume=True`` continues the run in ``out``.

    Raises:
        DatasetError: missing/inconsistent dataset, no training images.
        ConfigError: invalid settings, ``out`` holds a run (without resume/overwrite), nothing to resume.
        WeightsNotFoundError: ``pretrained=True`` and the COCO weights cannot be had.
    """
    from torch.utils.data import DataLoader

    config = config or SSDLiteConfig()
    root, out = Path(dataset), Path(out)
    meta = check_dataset(root)  # before touching ``out`` (overwrite deletes the old run)
    config, ckpt = _prepare_out(out, config)
    names = list(meta.names)  # at least one: checked with the header
    if ckpt is not None and list(ckpt["names"]) != names:
        raise DatasetError(f"the run in '{out}' was trained on classes {ckpt['names']}, '{root}' has {names}")
    samples = _read_samples(root, len(names))
    train_s = samples.get("train", [])
    if not train_s:
        raise DatasetError(f"'{root}' has no training images (split 'train' is empty)")
    if len(train_s) < 2:
        raise DatasetError(f"'{root}' has {len(train_s)} training image; SSDLite needs at least 2 (BatchNorm)")
    eval_split = "val" if samples.get("val") else "train"
    eval_s = samples.get(eval_split, [])

    device = torch.device(resolve_device(config.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model, source = build_ssdlite(
            len(names), config.min_size, pretrained=False if ckpt is not None else config.pretrained,
            soft=config.soft, alpha=config.alpha, temperature=config.temperature, progress=config.progress,
        )
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        source = str(ckpt.get("pretrained", "scratch"))
    model.to(device).train()

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    history: list[dict[str, Any]] = []
    start, best_fit, best_metrics = 0, -math.inf, None
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        history = list(ckpt.get("history", []))
        start = int(ckpt["epoch"])
        best_fit = float(ckpt.get("best_fitness", -math.inf))
        best_metrics = ckpt.get("best_metrics")

    data = _Data(train_s, train=True, seed=config.seed, hflip=config.hflip, photometric=config.photometric)
    drop_last = len(train_s) % config.batch == 1  # a lone last image would break BatchNorm
    steps = len(train_s) // config.batch if drop_last else math.ceil(len(train_s) / config.batch)
    total, warmup = steps * config.epochs, min(300, steps)
    wdir = out / "weights"
    wdir.mkdir(parents=True, exist_ok=True)
    last_p, best_p, metrics_p = wdir / "last.pt", wdir / "best.pt", wdir / METRICS_FILE
    settings = asdict(config)

    for epoch in range(start, config.epochs):
        data.epoch = epoch
        gen = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        loader = DataLoader(data, batch_size=config.batch, shuffle=True, generator=gen, drop_last=drop_last,
                            num_workers=config.workers, collate_fn=_collate)
        sums = {"loss": 0.0, "classification": 0.0, "bbox_regression": 0.0}
        n, skipped = 0, 0
        model.train()
        with ProgressBar(total=steps, desc=f"ssdlite {epoch + 1}/{config.epochs}", enabled=config.progress,
                         unit="batch") as bar:
            for i, (images, targets) in enumerate(loader):
                lr = _lr_at(epoch * steps + i, total, warmup, config.lr)
                for g in opt.param_groups:
                    g["lr"] = lr
                images = [im.to(device) for im in images]
                targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
                if not config.soft:
                    targets = [{k: v for k, v in t.items() if k != "soft"} for t in targets]
                losses = model(images, targets)
                loss = losses["classification"] + losses["bbox_regression"]
                if not torch.isfinite(loss):
                    skipped += 1
                    opt.zero_grad(set_to_none=True)
                    bar.update()
                    continue
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                n += 1
                sums["loss"] += loss.item()
                sums["classification"] += losses["classification"].item()
                sums["bbox_regression"] += losses["bbox_regression"].item()
                bar.update()
                bar.set_postfix(loss=f"{sums['loss'] / n:.3f}")
        mean = {k: (v / n if n else float("nan")) for k, v in sums.items()}
        if config.precise_bn:
            _precise_bn(model, train_s, config.batch, config.precise_bn, config.seed)
        metrics = _evaluate_split(model, eval_s, names, out, config.batch)
        fit = _fitness(metrics, mean["loss"])
        row = {"epoch": epoch + 1, **mean, "lr": lr, "skipped_steps": skipped,
               "mAP50-95": metrics["mAP50-95"] if metrics else None, "mAP50": metrics["mAP50"] if metrics else None}
        history.append(row)
        base = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "arch": ARCH, "names": names,
                "min_size": config.min_size, "config": settings, "pretrained": source, "epoch": epoch + 1,
                "history": history}
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if fit > best_fit or not best_p.is_file():
            best_fit, best_metrics = fit, {**(metrics or {}), "epoch": epoch + 1}
            _save_checkpoint(best_p, {**base, "model": state, "fitness": fit, "metrics": metrics})
        _save_checkpoint(last_p, {**base, "model": state, "optimizer": opt.state_dict(), "best_fitness": best_fit,
                                  "best_metrics": best_metrics})
        _write_metrics(metrics_p, best_metrics, history, eval_split, source, config)

    if not metrics_p.is_file():  # resumed a finished run
        _write_metrics(metrics_p, best_metrics, history, eval_split, source, config)
    return SSDLiteResult(out=out, best=best_p, last=last_p, metrics=json.loads(metrics_p.read_text()),
                         metrics_path=metrics_p, history=history, pretrained=source)


def _write_metrics(path: Path, best: dict[str, Any] | None, history: list[dict[str, Any]], split: str,
                   source: str, config: SSDLiteConfig) -> None:
    best = best or {}
    doc = {
        "model": ARCH,
        "against": "teacher labels",
        "split": split,
        "best_epoch": best.get("epoch"),
        "mAP50-95": best.get("mAP50-95"),
        "mAP50": best.get("mAP50"),
        "per_class": best.get("per_class", {}),
        "images": best.get("images"),
        "pretrained": source,
        "soft": config.soft,
        "alpha": config.alpha,
        "temperature": config.temperature,
        "history": history,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=float))
    os.replace(tmp, path)


def evaluate_ssdlite(weights: str | Path, dataset: str | Path, split: str = "val", batch: int = 8,
                     device: str = "cpu") -> dict[str, Any]:
    """mAP50-95 / mAP50 (overall and per class) of a trained SSDLite on a dataset split, against the teacher's
    labels (pycocotools via :func:`autolabel.metrics.evaluate`, as after every training epoch).

    Raises:
        ConfigError: not an SSDLite checkpoint. DatasetError: a dataset with other classes, or no such split.
    """
    import tempfile

    model, names = load_ssdlite(weights, device=device)
    root = Path(dataset)
    meta = check_dataset(root)
    if list(meta.names) != names:
        raise DatasetError(f"'{weights}' predicts {names}, '{root}' has classes {list(meta.names)}")
    samples = _read_samples(root, len(names)).get(split, [])
    if not samples:
        raise DatasetError(f"'{root}' has no images in its '{split}' split")
    with tempfile.TemporaryDirectory() as tmp:
        metrics = _evaluate_split(model, samples, names, Path(tmp), max(2, int(batch)))
    base = {"against": "teacher labels", "split": split}
    if metrics is None:
        return {**base, "mAP50-95": None, "mAP50": None, "images": len(samples), "note": "no labeled boxes"}
    return {**base, **metrics}
