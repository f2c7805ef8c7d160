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
from dataclasses import dataclass, field

from autolabel.core.errors import ConfigError
from autolabel.core.settings import setting

__all__ = ["ENGINES", "LabelConfig", "SourceConfig"]


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
