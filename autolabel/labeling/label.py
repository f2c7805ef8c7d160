"""The labeling stage: images and videos in, a trainable dataset with soft scores out.

Example:
    >>> from autolabel import label, LabelConfig
    >>> result = label(["footage/"], ontology="ontologies/security.yaml",
    ...                teacher="yolo:yolov8n.pt", out="datasets/cam1")          # doctest: +SKIP
    >>> result.summary["boxes_per_class"]                                     # doctest: +SKIP
    {'person': 1520, 'car': 233, ...}

Frames are decoded in a background thread while the teacher runs on the previous batch; memory stays
bounded by (prefetch + 1) batches and by ``prefetch_bytes`` of decoded pixels in flight, whatever the number
and size of inputs. Re-running with the same output folder resumes: committed images are skipped without
being decoded, even when the source list changed (they are recognised by file, not only by id). One run
at a time writes a folder: a second one fails at once with one line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.config import ENGINES, LabelConfig
from autolabel.core.detections import apply_class_thresholds, nms, validate_soft_scores
from autolabel.core.errors import ConfigError, SourceError, TeacherError
from autolabel.core.ontology import Ontology, load_ontology
from autolabel.core.progress import ProgressBar
from autolabel.data.dataset import DatasetLock, DatasetWriter
from autolabel.sources import Frame, SourceReport, estimate_total_frames, iter_frames

if TYPE_CHECKING:
    import supervision as sv

    from autolabel.teachers.base import Teacher

__all__ = ["ENGINES", "LabelConfig", "LabelResult", "build_rescorer", "build_teacher", "config_json", "label",
           "postprocess", "predict_batch", "prefetch_batches", "run_summary"]


@dataclass
class LabelResult:
    """What :func:`label` produced."""

    out: Path
    data_yaml: Path
    summary: dict[str, Any]
    report: SourceReport

    @property
    def images(self) -> int:
        return int(self.summary["images"])


def build_teacher(teacher: str | Sequence[str] | Teacher, ontology: Ontology, config: LabelConfig) -> Teacher:
    """A teacher from one spec, several specs (an ensemble) or an instance, wrapped for TTA / tiling."""
    from autolabel.teachers import Teacher as TeacherBase
    from autolabel.teachers import create_teacher

    floor = min(ontology.thresholds)
    if config.uncertain_conf is not None:
        floor = min(floor, config.uncertain_conf)
    kwargs = {"device": config.device, "min_score": floor, "batch_size": config.batch_size}
    if isinstance(teacher, TeacherBase):
        t = teacher
        if t.min_score > floor + 1e-9:
            t.min_score = floor
    elif isinstance(teacher, str):
        t = create_teacher(teacher, ontology=ontology, **kwargs)
    else:
        specs = list(teacher)
        if not specs:
            raise ConfigError("no teacher given; expected --teacher NAME[:WEIGHTS]")
        if len(specs) == 1:
            t = create_teacher(specs[0], ontology=ontology, **kwargs)
        else:
            from autolabel.teachers.ensemble import create_ensemble

            t = create_ensemble(specs, ontology=ontology, **kwargs)
    if config.tta or config.tta_scales:
        from autolabel.teachers.wrappers import with_tta

        t = with_tta(t, flip=config.tta, scales=(1.0, *config.tta_scales))
    if config.tile:
        from autolabel.teachers.wrappers import with_tiling

        t = with_tiling(t, tile=config.tile, overlap=config.tile_overlap)
    return t


def postprocess(det: sv.Detections, ontology: Ontology, image_shape: tuple[int, ...], config: LabelConfig,
                uncertain: bool = False) -> sv.Detections:
    """Per-class thresholds, optional class-agnostic NMS, boxes clipped to the image, degenerate ones dropped.

    ``uncertain=True``: the teacher's uncertain candidates instead — kept from ``config.uncertain_conf`` up.
    """
    validate_soft_scores(det, len(ontology))
    floor = ontology.thresholds
    if uncertain:
        floor = [min(t, config.uncertain_conf or 0.0) for t in floor]
    det = apply_class_thresholds(det, floor)
    if config.agnostic_nms:
        det = nms(det, iou=config.agnostic_iou, class_agnostic=True)
    if len(det):
        h, w = image_shape[:2]
        det.xyxy[:, [0, 2]] = det.xyxy[:, [0, 2]].clip(0, w)
        det.xyxy[:, [1, 3]] = det.xyxy[:, [1, 3]].clip(0, h)
        wh = det.xyxy[:, 2:] - det.xyxy[:, :2]
        det = det[(wh >= 1).all(1)]
    return det


def _split_labels(hard: sv.Detections, unc: sv.Detections, ontology: Ontology, image_shape: tuple[int, ...],
                  config: LabelConfig) -> tuple[sv.Detections, sv.Detections]:
    """(hard labels, uncertain boxes) from a teacher's :meth:`~Teacher.predict_split` candidates: hard
    candidates below their class threshold join the uncertain ones."""
    import supervision as sv

    below = hard
    if len(hard):
        thr = np.asarray(ontology.thresholds, dtype=np.float32)[hard.class_id]
        below = hard[hard.confidence < thr]
    labels = postprocess(hard, ontology, image_shape, config)
    rest = [d for d in (below, unc) if len(d)]
    unc = sv.Detections.merge(rest) if len(rest) > 1 else (rest[0] if rest else unc)
    return labels, postprocess(unc, ontology, image_shape, replace(config, agnostic_nms=False), uncertain=True)


def prefetch_batches(frames: Iterator[Frame], size: int, depth: int,
                     max_bytes: int | None = None) -> Iterator[list[Frame]]:
    """Group frames into batches decoded by a background thread, at most ``depth`` batches ahead.

    ``max_bytes`` bounds the decoded pixels in flight: the batch being filled, the queued batches and the
    batch last handed to the consumer (held until it asks for the next). The decoder waits before decoding
    another frame while the bound is reached, and hands over a batch early once it alone reaches it, so at
    most ``max_bytes`` plus one frame is ever held, and one frame always gets through.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    budget = threading.Condition()
    in_flight = [0]  # bytes decoded and not yet released by the consumer

    def nbytes(batch: list[Frame]) -> int:
        return sum(int(f.image.nbytes) for f in batch)

    def wait_for_room() -> None:
        with budget:
            while max_bytes is not None and in_flight[0] >= max_bytes and not stop.is_set():
                budget.wait(timeout=0.1)

    def produce() -> None:
        try:
            batch: list[Frame] = []
            batch_bytes = 0
            it = iter(frames)
            while True:
                wait_for_room()
                if stop.is_set():
                    return
                f = next(it, None)
                if f is None:
                    break
                size_f = int(f.image.nbytes)
                with budget:
                    in_flight[0] += size_f
                batch.append(f)
                batch_bytes += size_f
                if len(batch) == size or (max_bytes is not None and batch_bytes >= max_bytes):
                    q.put(batch)
                    batch, batch_bytes = [], 0
            if batch:
                q.put(batch)
            q.put(done)
        except BaseException as e:  # surfaced in the consumer
            q.put(e)

    th = threading.Thread(target=produce, name="autolabel-decode", daemon=True)
    th.start()
    held = 0
    try:
        while True:
            if held:
                with budget:  # the consumer is done with the last batch: its bytes are free
                    in_flight[0] -= held
                    budget.notify_all()
                held = 0
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            held = nbytes(item)
            yield item
    finally:
        stop.set()
        with budget:
            budget.notify_all()
        while th.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(timeout=0.05)


def label(
    sources: str | Path | Sequence[str | Path],
    ontology: Ontology | str | Path,
    teacher: str | Sequence[str] | Teacher,
    out: str | Path,
    config: LabelConfig | None = None,
) -> LabelResult:
    """Label images and videos with a teacher into a YOLO dataset with a soft-score sidecar.

    Args:
        sources: image files, video files or folders (searched recursively).
        ontology: an :class:`Ontology` or the path of its YAML file.
        teacher: ``NAME[:WEIGHTS]``, several specs (fused as an ensemble) or a :class:`Teacher`.
        out: output folder; an existing autolabel dataset there is resumed.
        config: stage settings.

    Returns:
        A :class:`LabelResult` with the dataset folder, its ``data.yaml`` and the summary.

    Raises:
        SourceError: a source is missing, or no input could be read at all.
        OntologyError, ConfigError, TeacherError, WeightsNotFoundError, DatasetError: bad input.
    """
    config = config or LabelConfig()
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = list(sources)
    onto = ontology if isinstance(ontology, Ontology) else load_ontology(ontology)
    if config.conf is not None:
        onto = onto.with_threshold(config.conf)
    report = SourceReport()
    # fails fast, with one line, on missing or empty sources (before loading a large teacher)
    total = estimate_total_frames(sources, config.sources)
    if config.engine == "ray":
        from autolabel.labeling.ray_engine import import_ray

        import_ray()  # one line naming the extra to install, before anything is written
    with DatasetLock(out) as lock:  # a second run on this folder fails here, before loading a teacher
        if config.engine == "ray":
            from autolabel.labeling.ray_engine import label_on_ray

            summary = label_on_ray(sources, onto, teacher, out, config, report, total, lock)
        else:
            summary = _label_locked(sources, onto, teacher, out, config, report, total, lock)
    if summary["images"] == 0:
        first = "; ".join(f"{p}: {r}" for p, r in report.skipped[:3])
        raise SourceError(
            f"no image could be read from {[str(s) for s in sources]}: {len(report.skipped)} input(s) skipped"
            + (f" ({first})" if first else "")
        )
    return LabelResult(out=Path(out), data_yaml=Path(out) / "data.yaml", summary=summary, report=report)


def _label_locked(sources: list[str | Path], onto: Ontology, teacher: str | Sequence[str] | Teacher,
                  out: str | Path, config: LabelConfig, report: SourceReport, total: int,
                  lock: DatasetLock) -> dict[str, Any]:
    t = build_teacher(teacher, onto, config)
    hard_floor = min(onto.thresholds)
    writer = DatasetWriter(
        out, onto, teacher=t.spec, config=config_json(config),
        val_fraction=config.val_fraction, seed=config.seed, overwrite=config.overwrite, lock=lock,
    )
    already = len(writer.done)
    rescorer = build_rescorer(onto, config)

    start = time.perf_counter()
    frames = iter_frames(sources, config.sources, report=report, resume=writer.is_input_done)
    with writer:
        with ProgressBar(total=max(total, already), desc="labeling", enabled=config.progress,
                         initial=already, unit="img") as bar:
            for batch in prefetch_batches(frames, config.batch_size, config.prefetch, config.prefetch_bytes):
                _label_batch(batch, t, rescorer, onto, config, hard_floor, writer)
                bar.update(len(batch))
                bar.set_postfix(boxes=writer.stats.boxes, skipped=len(report.skipped))
        return writer.finalize(skipped=report.skipped, extra=run_summary(sources, report, writer, start),
                               preview_count=config.preview_count)


def run_summary(sources: Sequence[str | Path], report: SourceReport, writer: Any, start: float) -> dict[str, Any]:
    """What a labeling run adds to ``summary.json`` (both engines): sources, what was found, its speed."""
    elapsed = time.perf_counter() - start
    return {
        "sources": [str(s) for s in sources],
        "source_report": report.to_dict(),
        "seconds_this_run": round(elapsed, 2),
        "images_per_second_this_run": round(writer.stats.images / elapsed, 3) if elapsed > 0 else None,
    }


def build_rescorer(onto: Ontology, config: LabelConfig) -> Any:
    """The ``config.rescore`` teacher (a CLIP re-scorer of box crops), or None."""
    if not config.rescore:
        return None
    from autolabel.teachers import create_teacher

    rescorer = create_teacher(config.rescore, ontology=onto, device=config.device, batch_size=config.batch_size)
    if not hasattr(rescorer, "rescore"):
        raise ConfigError(f"teacher '{config.rescore}' cannot re-score boxes; use clip[:WEIGHTS]")
    return rescorer


def _label_batch(batch: list[Frame], t: Teacher, rescorer: Any, onto: Ontology, config: LabelConfig,
                 hard_floor: float, writer: DatasetWriter) -> None:
    labels, uncertain = predict_batch(batch, t, rescorer, onto, config, hard_floor)
    writer.write_batch(batch, labels, uncertain=uncertain)


def predict_batch(batch: list[Frame], t: Teacher, rescorer: Any, onto: Ontology, config: LabelConfig,
                  hard_floor: float) -> tuple[list[sv.Detections], list[sv.Detections] | None]:
    """(labels, uncertain boxes or None) of a batch of frames: the teacher, the re-scorer, then
    :func:`postprocess`. The one place both engines turn frames into labels."""
    images = [f.image for f in batch]
    try:
        if config.uncertain_conf is None:
            dets, uncs = t.predict(images), None
        else:
            pairs = t.predict_split(images, hard_floor)
            dets, uncs = [h for h, _ in pairs], [u for _, u in pairs]
        if rescorer is not None:
            dets = rescorer.rescore(images, dets)
            uncs = rescorer.rescore(images, uncs) if uncs is not None else None
    except (MemoryError, RuntimeError) as e:
        raise TeacherError(
            f"teacher '{t.spec}' failed on a batch of {len(images)} images starting with "
            f"{batch[0].source}: {str(e).splitlines()[0][:200]} (try a smaller --batch-size)"
        ) from None
    if len(dets) != len(images):
        raise TeacherError(f"teacher '{t.spec}' returned {len(dets)} results for {len(images)} images")
    if uncs is None:
        return [postprocess(d, onto, im.shape, config) for d, im in zip(dets, images)], None
    parts = [_split_labels(d, u, onto, im.shape, config) for d, u, im in zip(dets, uncs, images)]
    return [h for h, _ in parts], [u for _, u in parts]


def config_json(config: LabelConfig) -> dict[str, Any]:
    """The labeling settings as JSON values: the ``config`` recorded in the dataset header (both engines)."""
    return _jsonable(asdict(config))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj
