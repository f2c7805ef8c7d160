"""Every stage's settings, in one place: the config dataclasses.

A field declared with :func:`autolabel.core.settings.setting` is a user-facing setting: its default, help
and type here are the only definition; the CLI option (``autolabel label --batch-size``), the pipeline key
(``label.batch_size``), the Python API keyword and the check all come from it. To add a setting, add one
field here (and use it in the stage). This module stays light (no numpy, torch) so ``autolabel --help``
stays fast.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.core.errors import ConfigError
from autolabel.core.settings import setting
from autolabel.distill.recipes import TEACHER_NETWORK_RECIPES, recipe_problem

__all__ = ["CALIB_METHODS", "ENGINES", "EXTRA_FORMATS", "ZERO_ROW_POLICIES", "check_targets", "ClassLabelConfig", "ClassifierConfig",
           "ExportConfig", "LabelConfig", "PruneConfig", "SSDLiteConfig", "SourceConfig", "TrainConfig"]


def _real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def _positive_real(x: object) -> bool:
    return _real(x) and float(x) > 0  # type: ignore[arg-type]


def _positive_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool) and int(x) >= 1


@dataclass(frozen=True)
class SourceConfig:
    """How images are decoded and how video is sampled.

    Attributes:
        video_fps: Sample this many frames per second of video; ``None`` to use ``video_stride``.
        video_stride: Sample every Nth video frame instead (overrides ``video_fps`` when set).
        dedup_threshold: Skip a sampled video frame whose 64x36 grayscale thumbnail differs from the last
            kept frame's by a mean absolute difference below this (0..255 scale); 0 disables.
        max_pixels: Images with more pixels (W*H, read from the header before decoding) are skipped as
            "too large", a guard against decompression bombs.
        max_side: If set, downscale (keeping the aspect ratio) so the longer side is at most this.
        video_group_seconds: Frames of one video within the same block of this many seconds share a
            train/val split group, so near-identical neighbours never straddle the split.

    Example:
        >>> SourceConfig(video_stride=5).video_stride
        5
        >>> SourceConfig(video_fps=0)
        Traceback (most recent call last):
        ...
        autolabel.core.errors.ConfigError: video_fps must be a positive number of frames per second or None, got 0
    """

    video_fps: float | None = setting(1.0, "Video frames sampled per second.", key="fps")
    video_stride: int | None = setting(None, "Sample every Nth video frame instead of --fps.", key="stride")
    dedup_threshold: float = setting(2.0, "Skip video frames this similar to the last kept one (0 = off).", key="dedup")
    max_pixels: int = 178_956_970
    max_side: int | None = setting(None, "Downscale images whose longer side exceeds this.")
    video_group_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.video_fps is not None and not _positive_real(self.video_fps):
            raise ConfigError(
                f"video_fps must be a positive number of frames per second or None, got {self.video_fps!r}"
            )
        if self.video_stride is not None and not _positive_int(self.video_stride):
            raise ConfigError(f"video_stride must be an integer >= 1 or None, got {self.video_stride!r}")
        if self.video_fps is None and self.video_stride is None:
            raise ConfigError(
                "set video_fps (frames per second) or video_stride (every Nth frame); both are None"
            )
        t = self.dedup_threshold
        if not (_real(t) and 0 <= t <= 255):
            raise ConfigError(f"dedup_threshold must be a number in [0, 255] (0 disables), got {t!r}")
        if not _positive_int(self.max_pixels):
            raise ConfigError(f"max_pixels must be an integer >= 1, got {self.max_pixels!r}")
        if self.max_side is not None and not _positive_int(self.max_side):
            raise ConfigError(f"max_side must be an integer >= 1 or None, got {self.max_side!r}")
        if not _positive_real(self.video_group_seconds):
            raise ConfigError(
                f"video_group_seconds must be a positive number of seconds, got {self.video_group_seconds!r}"
            )


ENGINES = ("local", "ray")
"""Where labeling runs: this process, or a Ray cluster (``pip install "autolabel[ray]"``)."""


@dataclass(frozen=True)
class LabelConfig:
    """Settings of the labeling stage.

    Attributes:
        batch_size: images per teacher forward pass.
        val_fraction: share of split groups (images, or 60-s blocks of video) put in ``val``.
        seed: split seed.
        conf: if set, replaces every class threshold (e.g. 0.001 to score a teacher's mAP).
        uncertain_conf: also keep the teacher's boxes from this confidence up to their class threshold, as
            *uncertain* boxes in the sidecar only (not in the label files): soft-label training uses them as
            soft-only targets (their class target is the teacher's score, not 1) instead of treating those
            objects as background; hard-label training never sees them. ``None`` keeps no such boxes.
        agnostic_nms: also suppress overlapping boxes of *different* classes (keeps the most confident).
        agnostic_iou: IoU of that class-agnostic NMS.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        tta: test-time augmentation (horizontal flip) fused with weighted boxes fusion.
        tta_scales: extra scales for TTA (e.g. ``(0.83, 1.2)``).
        tile: slice each image into ``tile``-pixel tiles (plus the full image) for small objects.
        tile_overlap: overlap between tiles (fraction).
        rescore: a teacher spec (``clip[:weights]``) that re-scores every box's crop over all classes.
        sources: how images and videos are read (video sampling rate, de-duplication …).
        preview_count: annotated samples in ``preview.jpg``.
        overwrite: delete an existing dataset in the output folder first (otherwise resume).
        progress: draw a progress bar.
        prefetch: batches decoded ahead of the teacher.
        prefetch_bytes: most bytes of decoded pixels held between the decoder and the teacher (the batch
            being decoded, the queued ones and the one the teacher runs on); at least one frame is always
            let through, and a batch that reaches the budget is handed over early (smaller).
            With ``engine="ray"`` the same bound holds in each worker.
        engine: ``local`` (this process: a decode thread and the teacher) or ``ray`` (a Ray cluster: images
            and 60-s video blocks spread over teacher workers; the same dataset, see :mod:`autolabel.labeling.ray_engine`).
        address: ``ray`` engine: the cluster to join (``auto``, ``ray://HOST:PORT``, ``HOST:PORT``); ``None``
            starts a local Ray on this machine (or uses the one this process already joined).
        workers: ``ray`` engine: teacher workers (one teacher each); ``None``: as many as the cluster's CPUs
            (or GPUs, with ``gpus_per_worker``) allow.
        gpus_per_worker: ``ray`` engine: GPUs reserved per worker (0.5 puts two workers on a GPU).
        cpus_per_worker: ``ray`` engine: CPUs reserved per worker.
    """

    batch_size: int = setting(8, "Images per teacher forward pass.")
    val_fraction: float = setting(0.2, "Fraction of images (video: 60-s blocks) in the val split.", flag="--val")
    seed: int = setting(0, "Split seed.")
    conf: float | None = setting(None, "Override every class threshold (e.g. 0.001).")
    uncertain_conf: float | None = setting(0.1, "Also keep the teacher's boxes from this confidence up to their class threshold as uncertain (soft-only) boxes in the sidecar, not in the labels (0 or null: none).")
    agnostic_nms: bool = setting(False, "Suppress overlapping boxes across classes too.")
    agnostic_iou: float = setting(0.7, "IoU of the class-agnostic NMS.")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N.")
    tta: bool = setting(False, "Test-time augmentation: horizontal flip, fused by WBF.")
    tta_scales: tuple[float, ...] = ()
    tile: int | None = setting(None, "Sliced inference with tiles of this size (small objects).")
    tile_overlap: float = 0.2
    rescore: str | None = setting(None, "Re-score box crops with a CLIP teacher (clip[:WEIGHTS]).")
    sources: SourceConfig = field(default_factory=SourceConfig)
    preview_count: int = 16
    overwrite: bool = False
    progress: bool = True
    prefetch: int = 2
    prefetch_bytes: int = 1 << 30
    engine: str = setting("local", "local (this process) or ray (a Ray cluster; pip install \"autolabel[ray]\"): the same dataset.")
    address: str | None = setting(None, "Ray cluster to join: auto, ray://HOST:PORT (default: start a local Ray).")
    workers: int | None = setting(None, "Ray teacher workers (default: as many as the cluster fits).")
    gpus_per_worker: float = setting(0.0, "GPUs per Ray worker (0.5 = two workers a GPU).")
    cpus_per_worker: float = setting(1.0, "CPUs per Ray worker.")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, found {self.batch_size}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), found {self.val_fraction}")
        if self.conf is not None and not 0 <= self.conf <= 1:
            raise ConfigError(f"conf must be between 0 and 1, found {self.conf}")
        if self.uncertain_conf == 0:  # 0 = none: the command line cannot say null
            object.__setattr__(self, "uncertain_conf", None)
        if self.uncertain_conf is not None and not 0 < self.uncertain_conf <= 1:
            raise ConfigError(f"uncertain_conf must be in (0, 1], found {self.uncertain_conf}")
        if not 0 < self.agnostic_iou <= 1:
            raise ConfigError(f"agnostic_iou must be in (0, 1], found {self.agnostic_iou}")
        if self.tile is not None and self.tile < 32:
            raise ConfigError(f"tile must be >= 32 pixels, found {self.tile}")
        if not 0 <= self.tile_overlap < 1:
            raise ConfigError(f"tile_overlap must be in [0, 1), found {self.tile_overlap}")
        if self.prefetch < 1:
            raise ConfigError(f"prefetch must be >= 1, found {self.prefetch}")
        if isinstance(self.prefetch_bytes, bool) or not isinstance(self.prefetch_bytes, int) or self.prefetch_bytes < 1:
            raise ConfigError(f"prefetch_bytes must be an integer >= 1, found {self.prefetch_bytes!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {list(ENGINES)}, found {self.engine!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or int(self.workers) != self.workers
                                         or self.workers < 1):
            raise ConfigError(f"workers must be an integer >= 1 or None, found {self.workers!r}")
        if not self.gpus_per_worker >= 0:
            raise ConfigError(f"gpus_per_worker must be >= 0, found {self.gpus_per_worker}")
        if not self.cpus_per_worker > 0:
            raise ConfigError(f"cpus_per_worker must be > 0, found {self.cpus_per_worker}")
        if self.engine == "local" and (self.address is not None or self.workers is not None or self.gpus_per_worker):
            raise ConfigError("address, workers and gpus_per_worker are settings of engine 'ray'; set engine to 'ray'")


ZERO_ROW_POLICIES = ("onehot", "uniform", "skip")

CALIB_METHODS = ("minmax", "entropy", "percentile")

EXTRA_FORMATS = {"openvino": "openvino", "tflite": "tensorflow"}


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
    min_confidence: float = setting(0.0, "classify: images below this teacher confidence are left out.")
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


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the training stage.

    Attributes:
        epochs, imgsz, batch: as Ultralytics (``imgsz`` is rounded up to a multiple of the stride).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        workers: dataloader workers (Ultralytics uses none on CPU).
        soft: distill the teacher's soft scores (the default); ``False`` is plain Ultralytics training on the
            hard labels (no sidecar needed), for comparison. The same switch as ``SSDLiteConfig.soft`` and
            ``ClassifierConfig.soft`` (the CLI's ``--hard-only`` and the pipeline's ``train.hard_only`` set it).
        alpha: weight of the one-hot in the class target (1 = hard labels, 0 = teacher scores only).
        temperature: ``T`` softening the teacher's scores (soft labels and online KD); 1 keeps them.
        conf_weight: weigh each box's class and box losses by the teacher's confidence in it.
        uncertain: train on the dataset's *uncertain* boxes too (labeled with ``uncertain_conf``: the
            teacher's boxes below their class threshold), as soft-only targets: class target = the teacher's
            soft scores (no one-hot), box losses weighted by the teacher's confidence. Hard labels would
            make those objects background. Ignored with ``soft=False`` and by datasets without such boxes.
        kd_teacher: online KD teacher: a YOLO checkpoint path / name, or a torch ``DetectionModel``.
        recipe: the distillation recipe (:mod:`autolabel.distill.recipes`): ``hinton`` (the soft targets
            above, plus online KD from ``kd_teacher``) or ``born-again`` (``generations`` runs in
            ``OUT/gen{k}/``, generation k's ``kd_teacher`` being generation k−1's ``best.pt``).
        generations: ``born-again``: students trained one after another.
        kd_weight: weight of the dense class-logit KD loss (needs ``kd_teacher``).
        hint_weight: weight of the FitNets neck-feature hint loss (needs ``kd_teacher``).
        resume: continue an interrupted run from ``OUT/weights/last.pt`` (settings are read back).
        overwrite: start over in an ``out`` folder that already holds a run.
        seed: Ultralytics seed.
        amp: mixed precision; ``None`` = bf16 on a CUDA GPU that supports it (no AMP-check download),
            fp32 otherwise.
        patience: early-stopping patience in epochs.
        close_mosaic: turn mosaic off for the last N epochs (as Ultralytics).
        cache: cache decoded images (``ram`` / ``disk``) as Ultralytics.
        progress: Ultralytics' per-epoch progress bars and logs (off = warnings only).
        ultralytics: any other Ultralytics train argument (``lr0``, ``mosaic``, ``fliplr`` …); these win over
            :data:`FINE_TUNE` (``{"optimizer": "auto", "nbs": 64}`` gives Ultralytics' own schedule back).
        gt: human labels of (some of) the images (YOLO folder / data.yaml or COCO JSON, matched by the
            original file names): the student is also scored on the val split against them.
        hard_only: deprecated alias of ``soft`` (``hard_only=True`` is ``soft=False``).
    """

    epochs: int = setting(50, "Training epochs.")
    imgsz: int = setting(640, "Training image size (SSDLite: its square input, default 320).")
    batch: int = setting(16, "Images per batch.")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N.")
    workers: int = setting(2, "Dataloader workers.")
    soft: bool = setting(True, "Distill the teacher's soft scores; --hard-only trains on the hard labels alone, for comparison.", flag="--soft/--hard-only")
    alpha: float = setting(0.5, "Weight of the hard label against the teacher's soft scores (1 = hard only).")
    temperature: float = setting(1.0, "Temperature softening the teacher's scores.")
    conf_weight: bool = setting(False, "Weigh boxes by the teacher's confidence (YOLO).")
    uncertain: bool = setting(True, "Use the dataset's uncertain boxes (label --uncertain-conf) as soft-only targets (YOLO).")
    kd_teacher: Any = setting(None, "Online KD from this YOLO checkpoint (YOLO).", cli_type=str | None)
    recipe: str = setting("hinton", "Distillation recipe: hinton, or born-again (YOLO: generations of the student, each taught online by the previous one's best.pt).")
    generations: int = setting(2, "born-again recipe: students trained one after another, each taught by the previous one's best.pt.")
    kd_weight: float = setting(1.0, "Weight of the dense class-logit KD loss.")
    hint_weight: float = setting(1.0, "Weight of the FitNets neck-feature hint loss.")
    resume: bool = setting(False, "Continue the run in --out from weights/last.pt.", flag="--resume", pipeline=False)
    overwrite: bool = setting(False, "Start over in an --out that holds a run.", flag="--overwrite", pipeline=False)
    seed: int = setting(0, "Training seed.")
    amp: bool | None = None
    patience: int = 100
    close_mosaic: int = 10
    cache: bool | str = False
    progress: bool = True
    ultralytics: Mapping[str, Any] = setting(help="Any other Ultralytics train argument (lr0, mosaic, nbs ...).", cli=False, default_factory=dict)
    gt: str | Path | None = setting(None, "Human labels (YOLO folder or COCO JSON): also score the val split against them.", flag="--gt", pipeline=False, cli_type=Path | None)
    hard_only: bool | None = None

    def __post_init__(self) -> None:
        if self.hard_only is not None:  # the old name of the switch
            warnings.warn("TrainConfig(hard_only=...) is deprecated; use soft=...", DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "soft", not self.hard_only)
            object.__setattr__(self, "hard_only", None)

    def check(self) -> None:
        """Raise :class:`ConfigError` on an invalid value."""
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be >= 1, found {self.epochs}")
        if int(self.imgsz) < 32:
            raise ConfigError(f"imgsz must be >= 32, found {self.imgsz}")
        if int(self.batch) < 1:
            raise ConfigError(f"batch must be >= 1, found {self.batch}")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], found {self.alpha}")
        if not float(self.temperature) > 0:
            raise ConfigError(f"temperature must be > 0, found {self.temperature}")
        problem = recipe_problem(self.recipe, kd_teacher=self.kd_teacher, generations=self.generations, detector=True)
        if problem:
            raise ConfigError(problem)
        if float(self.kd_weight) < 0 or float(self.hint_weight) < 0:
            raise ConfigError(f"kd_weight and hint_weight must be >= 0, found {self.kd_weight}, {self.hint_weight}")
        reserved = {"model", "data", "save_dir", "project", "name", "resume", "task", "mode", "single_cls", "classes"}
        bad = sorted(reserved & set(self.ultralytics))
        if bad:
            raise ConfigError(f"ultralytics arguments {bad} are set by autolabel (or unsupported); remove them")
        if "," in str(self.ultralytics.get("device", self.device)):
            raise ConfigError("multi-GPU (DDP) training is not supported; pick one device, e.g. --device cuda:0")


@dataclass(frozen=True)
class SSDLiteConfig:
    """Settings of SSDLite training.

    Attributes:
        epochs: training epochs.
        batch: images per step (>= 2: the last feature maps are 1×1 and BatchNorm needs 2 values).
        lr: AdamW peak learning rate (linear warm-up over the first epoch, at most 300 steps, then cosine
            to 5 %).
        weight_decay: AdamW weight decay of conv/linear weights (not of norms and biases).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        seed: initialization, shuffling and augmentation seed (a resumed run continues identically).
        pretrained: ``"auto"`` = COCO weights when they can be had, else from scratch with a warning;
            ``True`` = COCO weights or a :class:`WeightsNotFoundError`; ``False`` = from scratch.
        soft: distill the teacher's soft rows (see the module doc); ``False`` = torchvision's hard loss.
        alpha: weight of the hard CE on positive anchors (1 = torchvision's loss).
        temperature: ``T`` of the soft targets and of the student's softmax in the KL term.
        min_size: square input size (torchvision's model uses 320).
        workers: dataloader worker processes.
        hflip: probability of a horizontal flip; photometric: brightness/contrast/saturation jitter.
        precise_bn: before each evaluation/checkpoint, recompute the BatchNorm statistics on up to this
            many (un-augmented) training images (0 = off). SSDLite's BN momentum (0.03) is tuned for
            600-epoch schedules; on short runs its running statistics lag far behind the weights.
        resume: continue the run in ``out`` from ``weights/last.pt`` (its settings are read back; only
            ``device``, ``workers`` and ``progress`` are taken from this config).
        overwrite: start over in an ``out`` folder that already holds a run.
        progress: per-epoch progress bars.
    """

    epochs: int = 50
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    device: str = "auto"
    seed: int = 0
    pretrained: bool | str = "auto"
    soft: bool = True
    alpha: float = 0.5
    temperature: float = 2.0
    min_size: int = 320
    workers: int = 0
    hflip: float = 0.5
    photometric: bool = True
    precise_bn: int = 256
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be >= 1, found {self.epochs}")
        if int(self.batch) < 2:
            raise ConfigError(f"batch must be >= 2 for SSDLite (BatchNorm on 1×1 feature maps), found {self.batch}")
        if not float(self.lr) > 0:
            raise ConfigError(f"lr must be > 0, found {self.lr}")
        if float(self.weight_decay) < 0:
            raise ConfigError(f"weight_decay must be >= 0, found {self.weight_decay}")
        if self.pretrained not in ("auto", True, False):
            raise ConfigError(f"pretrained must be 'auto', True or False, found {self.pretrained!r}")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], found {self.alpha}")
        if not (math.isfinite(float(self.temperature)) and float(self.temperature) > 0):
            raise ConfigError(f"temperature must be > 0, found {self.temperature}")
        if int(self.min_size) < 64:
            raise ConfigError(f"min_size must be >= 64 pixels, found {self.min_size}")
        if int(self.workers) < 0:
            raise ConfigError(f"workers must be >= 0, found {self.workers}")
        if not 0.0 <= float(self.hflip) <= 1.0:
            raise ConfigError(f"hflip must be a probability in [0, 1], found {self.hflip}")
        if int(self.precise_bn) < 0:
            raise ConfigError(f"precise_bn must be >= 0 images, found {self.precise_bn}")


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings of :func:`train_classifier`.

    Attributes:
        model: torchvision classification model name.
        pretrained: see :func:`~autolabel.students.classifier.model.build_classifier` (``False``, ``True``, ``"auto"``, a weights name, a path).
        epochs: total epochs (a resumed run continues up to this number).
        batch: training batch size.
        imgsz: side of the square (letterboxed) input.
        lr: peak AdamW learning rate (linear warmup, then cosine decay to 5 % per step).
        weight_decay: AdamW weight decay.
        warmup_epochs: warmup length in epochs.
        temperature: KD temperature ``T``.
        alpha: weight of the hard-label cross-entropy in the KD loss.
        soft: distill the teacher (Hinton KD on its distributions + hard labels); ``False`` trains on the hard
            labels only (CE). The same switch as ``TrainConfig.soft`` and ``SSDLiteConfig.soft``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        seed: seeds the init, the shuffling, the augmentations and ``max_per_class``.
        workers: DataLoader worker processes.
        context, min_box, max_per_class, zero_rows: crop datasets only, see :class:`~autolabel.students.classifier.dataset.CropDataset`.
        augment: training augmentations (box jitter / random crop, horizontal flip).
        bn_momentum: momentum of every BatchNorm's running statistics while training; ``None`` keeps the
            model's own. torchvision's MobileNetV3 uses 0.01, tuned for ImageNet-length runs: after the few
            hundred steps of a small dataset its running statistics are still mostly their initial values and
            eval-mode predictions collapse to one class. 0.1 (PyTorch's default) avoids that.
        kd_teacher: an autolabel classifier checkpoint (same classes) distilled *online*: its logits on each
            training batch replace the dataset's teacher scores in the KD term (e.g. the unpruned model
            teaching its pruned copy, :func:`autolabel.compress.pruning.prune_classifier`, or a larger
            trained classifier for the ``sp`` / ``rkd`` / ``class-specialized`` recipes).
        recipe: the distillation recipe (:mod:`autolabel.distill.recipes`): ``hinton`` (the default),
            ``dml``, ``sp``, ``rkd``, ``class-specialized`` or ``born-again``.
        generations: ``born-again``: students trained one after another, each taught by the previous one.
        relation_weight: ``sp`` / ``rkd``: weight of the relation term added to Hinton KD, relative to the
            papers' weights (SP: 3000; RKD: 25 · distance + 50 · angle).
        resume: continue from ``out/weights/last.pt`` (or a run's older ``out/last.pt``) when it exists (else
            start fresh); ``False`` starts over.
        progress: draw a progress bar.
        kd: deprecated alias of ``soft`` (``kd=False`` is ``soft=False``).
    """

    model: str = setting("mobilenet_v3_small", "torchvision classifier name.", flag=("--model", "-m"), pipeline=False)
    pretrained: bool | str = setting(False, "Start from ImageNet weights (downloaded by torchvision).", flag="--pretrained/--no-pretrained", pipeline=False, cli_type=bool)
    epochs: int = setting(30, "Training epochs.", pipeline=False)
    batch: int = setting(64, "Samples per batch.", pipeline=False)
    imgsz: int = setting(128, "Square input size.", pipeline=False)
    lr: float = setting(2e-3, "Peak AdamW learning rate (warm-up, then cosine decay).", pipeline=False)
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    temperature: float = setting(4.0, "KD temperature T.", pipeline=False)
    alpha: float = setting(0.5, "Weight of the hard-label CE in the KD loss.", pipeline=False)
    soft: bool = setting(True, "Hinton KD on the teacher's distributions; --no-kd: hard labels only (cross-entropy), for comparison.", flag="--soft/--no-kd", pipeline=False)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N.", pipeline=False)
    seed: int = setting(0, "Seed of the init, shuffling and augmentations.", pipeline=False)
    workers: int = 0
    context: float = 0.1
    min_box: float = 0.0
    max_per_class: int | None = None
    zero_rows: str = "onehot"
    augment: bool = True
    bn_momentum: float | None = 0.1
    kd_teacher: str | None = setting(None, "Teacher network: a trained classifier checkpoint or run folder (needed by --recipe sp, rkd, class-specialized; with hinton its logits replace the dataset's scores).", pipeline=False)
    recipe: str = setting("hinton", "Distillation recipe: hinton, dml, sp, rkd, class-specialized, born-again (README: Distillation recipes).", pipeline=False)
    generations: int = setting(2, "born-again recipe: students trained one after another, each taught by the previous one's best.pt.", pipeline=False)
    relation_weight: float = setting(1.0, "sp / rkd recipes: weight of the relation loss added to Hinton KD (1: the papers' weights).", pipeline=False)
    resume: bool = setting(False, "Continue from --out/weights/last.pt.", flag="--resume", pipeline=False)
    progress: bool = True
    kd: bool | None = None

    def __post_init__(self) -> None:
        if self.kd is not None:  # the old name of the switch
            warnings.warn("ClassifierConfig(kd=...) is deprecated; use soft=...", DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "soft", bool(self.kd))
            object.__setattr__(self, "kd", None)
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
            (self.relation_weight >= 0 and math.isfinite(self.relation_weight), "relation_weight", ">= 0"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"{key} must be {expected}, found {getattr(self, key)!r}")
        problem = recipe_problem(self.recipe, kd_teacher=self.kd_teacher, generations=self.generations)
        if problem:
            raise ConfigError(problem)
        if not self.soft and self.recipe in (*TEACHER_NETWORK_RECIPES, "born-again"):
            raise ConfigError(f"recipe {self.recipe!r} distills a teacher network's logits and needs soft=True "
                              "(drop --no-kd)")


@dataclass(frozen=True)
class PruneConfig:
    """Settings of the pruning stage.

    Attributes:
        ratio: fraction of the FLOPs (``target="flops"``) or parameters (``"params"``) to remove.
        target: ``flops`` or ``params``.
        imgsz: image size for FLOPs counting, validation and recovery training.
        keep: module names kept whole (e.g. ``["model.9"]``); the Detect head always is.
        round_to: keep channel counts multiples of this (8 suits many NPUs, but rounds YOLO-n's 16-channel
            layers down to 8 and costs accuracy; 1 = exact ratio).
        steps: at most this many bisection trials to find the channel ratio that meets the target.
        recover_epochs: fine-tuning epochs after pruning (0 = none), split over the rounds.
        rounds: prune gradually: ``rounds`` steps of ``ratio / rounds`` each followed by its share of the
            recovery epochs (small steps damage less than one big cut; 1 = one shot, then recover).
        kd: recover with the unpruned model as online teacher (else plain fine-tuning on the labels).
        kd_weight, hint_weight, alpha, temperature: see :class:`autolabel.students.yolo.train.TrainConfig`.
        lr0, optimizer: the recovery optimizer. Every batch is one optimizer step (``nbs = batch``) and the
            warm-up lasts at most one epoch, biases included (Ultralytics starts them at 0.1, harmless for
            SGD from scratch, a jolt for AdamW on a trained net; it zeroes that only when it picks AdamW
            itself). Ultralytics' defaults (gradients accumulated to a nominal batch
            of 64, three warm-up epochs, ``optimizer=auto`` picking AdamW at ``0.01 / (4 + nc)``) leave a
            few-hundred-image dataset a few dozen small steps in ten epochs, too few to recover a pruned net.
        batch, device, workers: recovery training and validation.
        evaluate: val-split mAP (against the dataset's labels) before and after.
        progress: progress bars and training logs.
        ultralytics: extra Ultralytics training arguments for the recovery.
    """

    ratio: float = setting(0.5, "Fraction of FLOPs (or --target params) to remove.")
    target: str = setting("flops", "flops or params.")
    imgsz: int = setting(640, "Image size (FLOPs, validation, recovery).", pipeline=False)
    keep: Sequence[str] = setting((), "Module kept whole, e.g. model.9 (repeatable).", flag="--keep", cli_type=list[str] | None)
    round_to: int = setting(1, "Keep channel counts multiples of this (8: faster kernels, coarser cut).")
    steps: int = 12
    recover_epochs: int = setting(10, "Recovery fine-tuning epochs (0 = prune only).")
    rounds: int = setting(1, "Prune gradually in this many cut + recover rounds.")
    kd: bool = setting(True, "Recover with the unpruned model as teacher (--no-kd: plain fine-tuning on the labels).", flag="--kd/--no-kd")
    kd_weight: float = 1.0
    hint_weight: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    lr0: float = setting(0.002, "Recovery learning rate (AdamW, cosine decay).")
    optimizer: str = "AdamW"
    batch: int = setting(16, "Recovery batch size (one optimizer step per batch).", pipeline=False)
    device: str = setting("auto", "auto, cpu, cuda, cuda:N.", pipeline=False)
    workers: int = 2
    evaluate: bool = True
    progress: bool = True
    ultralytics: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.ratio) < 0.95:
            raise ConfigError(f"ratio must be in (0, 0.95), found {self.ratio}")
        if self.target not in ("flops", "params"):
            raise ConfigError(f"target must be 'flops' or 'params', found '{self.target}'")
        if int(self.recover_epochs) < 0:
            raise ConfigError(f"recover_epochs must be >= 0, found {self.recover_epochs}")
        if int(self.rounds) < 1:
            raise ConfigError(f"rounds must be >= 1, found {self.rounds}")
        if int(self.rounds) > max(1, int(self.recover_epochs)):
            raise ConfigError(f"rounds ({self.rounds}) needs at least one recovery epoch each (recover_epochs "
                              f"{self.recover_epochs})")
        if not float(self.lr0) > 0:
            raise ConfigError(f"lr0 must be > 0, found {self.lr0}")
        if int(self.steps) < 1 or int(self.round_to) < 1:
            raise ConfigError(f"steps and round_to must be >= 1, found {self.steps}, {self.round_to}")


def check_targets(target_precision: Any, target_recall: Any, what: str = "target") -> None:
    """Targets are numbers in (0, 1] (or ``{class: number}``), and no class takes both.

    Raises:
        ConfigError: out of range, not a number, or both for a class.
    """
    for key, t in (("target_precision", target_precision), ("target_recall", target_recall)):
        vals = t.items() if isinstance(t, Mapping) else [("all classes", t)] if t is not None else []
        for n, v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= 1:
                raise ConfigError(f"{key} ({n}) must be a number in (0, 1], found {v!r}")
    if target_precision is None or target_recall is None:
        return
    if not isinstance(target_precision, Mapping) or not isinstance(target_recall, Mapping):
        raise ConfigError("set target_precision or target_recall, not both (per class, as {name: value}, "
                          "each class may take one of them)")
    both = sorted(set(target_precision) & set(target_recall))
    if both:
        raise ConfigError(f"classes {both} have both a target_precision and a target_recall; give each one")


@dataclass(frozen=True)
class ExportConfig:
    """Settings of the export stage.

    Attributes:
        imgsz: square input size of the exported model (a multiple of 32).
        dynamic: dynamic batch dimension (``batch`` is then only the calibration batch).
        batch: fixed batch size of the exported model.
        opset: ONNX opset (>= 17).
        fp16: also write ``model_fp16.onnx``.
        int8: also write ``model_int8.onnx`` (needs ``data`` for calibration).
        calib_images: number of the dataset's images to calibrate on.
        calib_method: ``percentile`` (99.99 %, the default: minmax lost 2.5 points of mAP50-95 more on the CCTV
            student), ``minmax`` (fastest) or ``entropy``.
        per_channel: per-channel weight scales (recommended for depthwise/narrow convs).
        formats: extra targets through Ultralytics: ``openvino`` (INT8 when ``int8``), ``tflite``.
        conf: default score threshold written to the bundle (per-class thresholds win).
        target_precision: per class, ship the lowest threshold whose val precision reaches this (one value for
            all classes or ``{name: value}``); default (neither target): the threshold of maximum F1.
        target_recall: per class, ship the highest threshold whose val recall reaches this (value or mapping).
        gt: human labels (YOLO folder / data.yaml or COCO JSON) to choose the thresholds against, matched to the
            val images by file name; default: the dataset's (teacher's) val labels.
        min_boxes: fewest labeled val boxes of a class to choose its threshold from; fewer keep the ontology's.
        iou: NMS IoU of the bundle.
        evaluate: score each model on the dataset's val split (needs ``data``).
        max_eval_images: cap on val images scored (None = all).
        seed: calibration image sampling seed.
        progress: progress bars.
    """

    imgsz: int = setting(640, "Input size of the exported model (multiple of 32).")
    dynamic: bool = setting(False, "Dynamic batch dimension.", flag="--dynamic")
    batch: int = setting(1, "Fixed batch size of the model.", pipeline=False)
    opset: int = setting(17, "ONNX opset (>= 17).", pipeline=False)
    fp16: bool = setting(False, "Also write an FP16 model.", flag="--fp16")
    int8: bool = setting(False, "Also write an INT8 (QDQ) model calibrated on --data.", flag="--int8")
    calib_images: int = setting(100, "Images of --data to calibrate INT8 on.")
    calib_method: str = setting("percentile", "percentile (99.99 %), minmax or entropy.")
    per_channel: bool = True
    formats: Sequence[str] = ()
    conf: float = 0.25
    target_precision: float | Mapping[str, float] | None = None
    target_recall: float | Mapping[str, float] | None = None
    gt: str | None = None
    min_boxes: int = setting(10, "Fewest labeled val boxes to choose a class's threshold; fewer keep the ontology's.")
    iou: float = 0.7
    evaluate: bool = setting(True, "Score the models on the val split of --data.", flag="--eval/--no-eval", pipeline=False)
    max_eval_images: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if int(self.imgsz) < 32 or int(self.imgsz) % 32:
            raise ConfigError(f"imgsz must be a multiple of 32 (>= 32), found {self.imgsz}")
        if int(self.batch) < 1:
            raise ConfigError(f"batch must be >= 1, found {self.batch}")
        if int(self.opset) < 17:
            raise ConfigError(f"opset must be >= 17, found {self.opset}")
        if self.calib_method not in CALIB_METHODS:
            raise ConfigError(f"calib_method must be one of {list(CALIB_METHODS)}, found '{self.calib_method}'")
        if int(self.calib_images) < 1:
            raise ConfigError(f"calib_images must be >= 1, found {self.calib_images}")
        bad = [f for f in self.formats if f not in EXTRA_FORMATS]
        if bad:
            raise ConfigError(f"unknown export format(s) {bad}; valid extra formats are {sorted(EXTRA_FORMATS)} (onnx is always written)")
        if not 0 < float(self.conf) < 1 or not 0 < float(self.iou) <= 1:
            raise ConfigError(f"conf must be in (0, 1) and iou in (0, 1], found {self.conf}, {self.iou}")
        check_targets(self.target_precision, self.target_recall)
        if int(self.min_boxes) < 1:
            raise ConfigError(f"min_boxes must be >= 1, found {self.min_boxes}")
        if self.gt is not None and not Path(self.gt).expanduser().exists():
            raise ConfigError(f"gt '{self.gt}' not found; expected human labels: a YOLO dataset folder / data.yaml "
                              "or a COCO JSON")
