"""Labeling on a Ray cluster: the same dataset as :func:`autolabel.labeling.label`, made by many teacher workers.

``label(..., config=LabelConfig(engine="ray"))`` (``autolabel label --engine ray``) plans the work on the
driver and runs it with Ray Data's batch inference: a dataset of *work units* streamed through
``map_batches`` over an actor pool that holds one teacher per worker (per GPU with ``gpus_per_worker=1``).

* **Work units.** Up to ``batch_size`` images, or one block of a video: the same ``video_group_seconds``
  (60 s) blocks the train/val split uses, so one long recording spreads over many workers. Workers decode,
  sample and de-duplicate (:func:`autolabel.sources.video_span_frames` seeks to the sample before its block;
  de-duplication never looks further back across a block boundary, in either engine, so a block is decided
  on its own and both engines keep the same frames).
* **Shards and one writer.** A worker runs the teacher, encodes each frame exactly as the local path does
  (:func:`autolabel.data.dataset.encode_frame`) and writes its image and label file into a staging folder
  ``DIR/.shards/UNIT-ATTEMPT/`` of the (shared) output folder. The driver alone commits: it gives ids and
  splits, renames the staged files into place and appends the records to the sidecar (fsync'ed), then notes
  the unit in ``DIR/.autolabel.units``. Ids, splits, label files, records and the COCO file are those of a
  single-process run; only the order of the records differs.
* **Resume.** The folder lock, the sidecar and the rules for recognising inputs are those of the local
  path: a rerun (either engine) skips committed images without decoding them, skips committed video blocks
  without decoding them (unit file) and labels only the frames missing from a partly committed block.
* **Faults.** A worker process that dies mid-unit is restarted by Ray and its unit retried (up to
  ``MAX_RETRIES`` times); the dead attempt's staged files are never committed (the driver commits only the
  results Ray hands back, and an input already committed is never committed twice), and are deleted at the
  end. A killed driver loses at most the units not yet committed.

Why Ray Data and not a scheduler of our own or bare actors: its ``map_batches`` over an
``ActorPoolStrategy`` already is "load a model once per worker, stream work through it", with backpressure
(a slow teacher never lets decoded work pile up in the object store), actor restarts and task retries, and
GPU placement. A video block fits it cleanly because a row is a *description* of a unit (paths, frame range,
frames already done), not decoded pixels: decoding is the first step inside the worker, so pixels never
travel through the object store and each worker's memory stays bounded by ``prefetch_bytes``.

Example:
    >>> from autolabel import label, LabelConfig
    >>> label(["nvr/"], "ontologies/security.yaml", "grounding-dino", "/shared/ds",          # doctest: +SKIP
    ...       config=LabelConfig(engine="ray", address="auto", gpus_per_worker=1))
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.core.errors import AutolabelError, ConfigError
from autolabel.core.ontology import Ontology
from autolabel.core.progress import ProgressBar
from autolabel.data.dataset import SHARDS_DIR, DatasetLock, DatasetWriter, EncodedFrame, encode_frame
from autolabel.sources import IMAGE, MediaItem, SourceReport, VideoSpan, discover, video_blocks

if TYPE_CHECKING:
    from autolabel.labeling.label import LabelConfig
    from autolabel.teachers.base import Teacher

__all__ = ["MAX_RETRIES", "import_ray", "label_on_ray"]

MAX_RETRIES = 3
"""Times a unit is retried after its worker process died (a unit that kills every worker it meets fails)."""

INSTALL_HINT = 'pip install "autolabel[ray]"'


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a :class:`ConfigError` saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (the engine needs Ray Data, not only Ray core)
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray with Ray Data, which is not installed: {INSTALL_HINT}") from None
    return ray


# ------------------------------------------------------------------------------------------------ driver


def label_on_ray(sources: list[str | Path], onto: Ontology, teacher: str | Sequence[str] | Teacher, out: str | Path,
                 config: LabelConfig, report: SourceReport, total: int, lock: DatasetLock) -> dict[str, Any]:
    """The ``ray`` engine of :func:`autolabel.labeling.label` (which holds ``lock`` on ``out``); returns the summary."""
    from autolabel.labeling.label import config_json, run_summary

    ray = import_ray()
    started = _connect(ray, config)
    try:
        workers = _check_resources(ray, config)
        payload = _payload(teacher, onto, config, out)
        spec = _probe_teacher(ray, payload, config)
        start = time.perf_counter()
        writer = DatasetWriter(
            out, onto, teacher=spec, config=config_json(config),
            val_fraction=config.val_fraction, seed=config.seed, overwrite=config.overwrite, lock=lock,
        )
        with writer:
            shutil.rmtree(writer.root / SHARDS_DIR, ignore_errors=True)  # a killed run's staged files
            plan = _Plan.make(sources, config, report, writer)
            if plan.tasks:
                _run(ray, plan, payload, config, workers, writer, spec, total)
            plan.finish(report)
            shutil.rmtree(writer.root / SHARDS_DIR, ignore_errors=True)
            return writer.finalize(
                skipped=report.skipped,
                extra={
                    **run_summary(sources, report, writer, start),
                    "engine": {"name": "ray", "workers": workers, "units_this_run": len(plan.tasks),
                               "units_skipped": plan.units_skipped},
                },
                preview_count=config.preview_count,
            )
    finally:
        if started:
            ray.shutdown()


def _connect(ray: Any, config: LabelConfig) -> bool:
    """Join the cluster (or start a local Ray); True when this call started it (and shuts it down)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # autolabel never phones home on a user's behalf
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": "ERROR"}
    try:
        if config.address is None:
            ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=config.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = config.address or "a local Ray"
        raise ConfigError(f"cannot start or join the Ray cluster ({where}): {str(e).splitlines()[0][:200]}") from None
    return True


def _check_resources(ray: Any, config: LabelConfig) -> int:
    """The number of workers; a clear error instead of a hang when the cluster cannot place one."""
    res = ray.cluster_resources()
    cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
    where = config.address or "local"
    if config.gpus_per_worker > 0 and gpus < config.gpus_per_worker:
        raise ConfigError(
            f"--gpus-per-worker {config.gpus_per_worker:g} needs GPUs, but the Ray cluster ({where}) has "
            f"{gpus:g}; use --gpus-per-worker 0 for CPU workers"
        )
    if cpus < config.cpus_per_worker:
        raise ConfigError(f"--cpus-per-worker {config.cpus_per_worker:g} exceeds the Ray cluster's {cpus:g} CPUs")
    fit = int(cpus // config.cpus_per_worker)
    if config.gpus_per_worker > 0:
        fit = min(fit, int(gpus // config.gpus_per_worker))
    if config.workers is not None and config.workers > fit:
        raise ConfigError(
            f"--workers {config.workers} do not fit the Ray cluster ({where}: {cpus:g} CPUs, {gpus:g} GPUs) at "
            f"{config.cpus_per_worker:g} CPU / {config.gpus_per_worker:g} GPU each; at most {fit}"
        )
    return config.workers or max(1, fit)


def _payload(teacher: str | Sequence[str] | Teacher, onto: Ontology, config: LabelConfig, out: str | Path) -> bytes:
    """What each worker needs, pickled once. Teachers registered outside autolabel (a plugin, a test's fake)
    travel by value, so workers that never imported their module know them too."""
    import ray.cloudpickle as cloudpickle

    from autolabel.teachers import TEACHERS

    plugins = {e.name: e for e in TEACHERS.entries() if not str(getattr(e.obj, "__module__", "")).startswith("autolabel.")}
    modules = {getattr(e.obj, "__module__", "") for e in plugins.values()}
    if not isinstance(teacher, (str, list, tuple)):
        modules.add(type(teacher).__module__)
    by_value = [sys.modules[m] for m in modules if m in sys.modules and m != "__main__" and not m.startswith("autolabel.")]
    for m in by_value:
        cloudpickle.register_pickle_by_value(m)
    try:
        return cloudpickle.dumps({
            "teacher": teacher if not isinstance(teacher, tuple) else list(teacher),
            "plugins": {n: (e.obj, e.help, e.default_weights) for n, e in plugins.items()},
            "ontology": onto, "config": config, "out": str(Path(out).resolve()),
        })
    finally:
        for m in by_value:
            cloudpickle.unregister_pickle_by_value(m)


def _probe_teacher(ray: Any, payload: bytes, config: LabelConfig) -> str:
    """Build the teacher once on a worker, before anything is written: its spec for the dataset header, and
    a bad teacher name or missing weights fail here with their own one-line error."""
    probe = ray.remote(max_calls=1)(_probe)
    ref = probe.options(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker).remote(payload)
    return str(_get(ray, ref))


def _probe(payload: bytes) -> str:
    worker = _LabelWorker(payload)
    return worker.teacher.spec


def _get(ray: Any, ref: Any) -> Any:
    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001  (re-raised as the autolabel error inside, or one line)
        raise _unwrap(e) from None


def _unwrap(e: BaseException) -> AutolabelError:
    """The AutolabelError a worker raised (Ray wraps it, sometimes twice), or a one-line one."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, AutolabelError):
            cls = next((c for c in type(x).__mro__ if issubclass(c, AutolabelError) and c.__module__.startswith("autolabel")),
                       AutolabelError)
            msg = str(getattr(x, "cause", None) or x) if not type(x).__module__.startswith("autolabel") else str(x)
            lines = [ln for ln in msg.splitlines() if ln.strip()]
            return cls(lines[-1].split(": ", 1)[-1] if len(lines) > 1 else (lines[0] if lines else cls.__name__))
        stack += [getattr(x, "cause", None), x.__cause__, x.__context__]
    first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return AutolabelError(f"labeling on Ray failed: {first[:300]}")


class _Plan:
    """The run's work units in discovery order, and what to report for inputs decoded away from here."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []
        self.slots: list[list[tuple[str, str]]] = []  # report lines, in the order a local run writes them
        self.videos: dict[str, dict[str, Any]] = {}  # source -> its blocks' spans and where its lines go
        self.units_skipped = 0
        self.counts: list[tuple[int, int]] = []  # (frames sampled, frames de-duplicated) per unit

    @classmethod
    def make(cls, sources: list[str | Path], config: LabelConfig, report: SourceReport,
             writer: DatasetWriter) -> _Plan:
        plan = cls()
        done_units = writer.units_done()
        report._reset_found()
        pending: list[dict[str, str]] = []
        fingerprint = json.dumps(asdict(config.sources), sort_keys=True)

        def flush() -> None:
            if pending:
                plan._add({"kind": "images", "items": list(pending)})
                pending.clear()

        it = discover(sources, report)
        while True:
            before = len(report.skipped)
            item = next(it, None)
            if len(report.skipped) > before:  # a folder that cannot be listed: reported where a local run does
                flush()
                plan.slots.append(report.skipped[before:])
                del report.skipped[before:]
            if item is None:
                break
            if item.kind == IMAGE:
                if not writer.is_input_done(item.id, item.path, None):
                    pending.append({"path": str(item.path), "id": item.id})
                    if len(pending) == config.batch_size:
                        flush()
                continue
            flush()
            plan._add_video(item, config, writer, done_units, fingerprint)
        flush()
        return plan

    def _add(self, task: dict[str, Any]) -> None:
        task["n"] = len(self.tasks)
        task["slot"] = len(self.slots)
        self.tasks.append(task)
        self.slots.append([])

    def _add_video(self, item: MediaItem, config: LabelConfig, writer: DatasetWriter,
                   done_units: dict[str, dict[str, Any]], fingerprint: str) -> None:
        source = str(item.path)
        v: dict[str, Any] = {"spans": {}}
        self.videos[source] = v
        done: set[int] | None = None
        blocks = video_blocks(item.path, config.sources)
        try:  # a file that changed (a recording still being written) is a new unit
            st = item.path.stat()
            version = [st.st_size, st.st_mtime_ns]
        except OSError:
            version = None
        for k, (lo, hi) in enumerate(blocks):
            key = json.dumps([str(Path(source).resolve()), version, lo, hi, fingerprint])
            if key in done_units:  # committed by an earlier run: its report numbers come from the unit file
                info = done_units[key]
                v["spans"][k] = VideoSpan(**info.get("span", {}))
                self.counts.append((int(info.get("sampled", 0)), int(info.get("deduplicated", 0))))
                self.units_skipped += 1
                continue
            if done is None:
                done = writer.done_frames(item.id, item.path)
            mine = sorted(i for i in done if i >= lo and (hi is None or i < hi))
            self._add({"kind": "video", "path": source, "id": item.id, "lo": lo, "hi": hi, "block": k,
                       "key": key, "done": mine})
        v["blocks"] = len(blocks)
        v["slot"] = len(self.slots)  # the video's own line (cannot open, no frame, cut short) after its frames
        self.slots.append([])

    def record(self, result: dict[str, Any]) -> None:
        """Counts and report lines of one finished unit."""
        task = self.tasks[result["n"]]
        self.slots[task["slot"]] = [tuple(x) for x in result["skipped"]]
        self.counts.append((int(result["sampled"]), int(result["deduplicated"])))
        if task["kind"] == "video":
            self.videos[task["path"]]["spans"][task["block"]] = VideoSpan(**result["span"])

    def finish(self, report: SourceReport) -> None:
        """Per-video lines, as one pass over each video would write them; report.skipped in local order."""
        from autolabel.sources import truncation_note

        for sampled, dedup in self.counts:
            report.frames_sampled += sampled
            report.frames_deduplicated += dedup
        for source, v in self.videos.items():
            spans = [v["spans"].get(k) for k in range(v["blocks"])]
            if any(s is None for s in spans):
                continue  # not all blocks came back (cannot happen unless the run failed)
            first = spans[0]
            if not first.opened:
                self.slots[v["slot"]].append((source, first.reason or "cannot open video"))
            elif sum(s.decoded for s in spans) == 0:
                self.slots[v["slot"]].append((source, "video has no decodable frames"))
            else:
                sampled = 0
                for s in spans:  # the first block that ended early is where one pass would have stopped
                    sampled += s.sampled
                    if s.ended:
                        line = truncation_note(s.read_to, sampled, s.declared)
                        if line:
                            self.slots[v["slot"]].append((source, line))
                        break
        report.skipped.extend(x for slot in self.slots for x in slot)


def _pipeline(ray: Any, rows: list[dict[str, str]], payload: bytes, config: LabelConfig, workers: int) -> Any:
    """Rows of unit descriptions → one result row per unit, through an actor pool of teachers."""
    return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _LabelWorker,
        fn_constructor_args=(payload,),
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(rows))),
        num_cpus=config.cpus_per_worker,
        num_gpus=config.gpus_per_worker,
        max_restarts=-1,
        max_task_retries=MAX_RETRIES,
    )


def _run(ray: Any, plan: _Plan, payload: bytes, config: LabelConfig, workers: int, writer: DatasetWriter,
         spec: str, total: int) -> None:
    """Stream the units through the actor pool and commit each result as it comes back."""
    import logging

    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its start/finish lines; errors still show
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours below counts committed images
    ctx.execution_options.preserve_order = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    rows = [{"task": json.dumps(t)} for t in plan.tasks]
    with warnings.catch_warnings():
        # Ray >= 2.60 deprecates passing max_restarts / max_task_retries this way (gone in 2.64) but names
        # no replacement for them; without them a unit that kills every worker would be retried forever.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = _pipeline(ray, rows, payload, config, workers)
    already = len(writer.done)
    committed: set[int] = set()
    with ProgressBar(total=max(total, already), desc="labeling", enabled=config.progress, initial=already,
                     unit="img") as bar:
        try:
            for row in ds.iter_rows():
                result = json.loads(str(row["result"]))
                if result["n"] in committed:  # a unit handed back twice: its first copy is in
                    continue
                if result["spec"] != spec:
                    raise ConfigError(
                        f"a Ray worker labels with teacher '{result['spec']}', the others with '{spec}': every "
                        "node needs the same autolabel version and weights"
                    )
                n = writer.commit([EncodedFrame.from_json(d) for d in result["items"]], staged=result["stage"])
                shutil.rmtree(result["stage"], ignore_errors=True)
                committed.add(result["n"])
                task = plan.tasks[result["n"]]
                plan.record(result)
                if task["kind"] == "video" and result["span"]["opened"]:  # an unreadable file is tried again
                    writer.mark_unit(task["key"], {"span": result["span"], "sampled": result["sampled"],
                                                   "deduplicated": result["deduplicated"]})
                bar.update(n)
                bar.set_postfix(boxes=writer.stats.boxes, units=f"{len(committed)}/{len(plan.tasks)}")
        except AutolabelError:
            raise
        except Exception as e:  # noqa: BLE001  (Ray's wrappers around a worker's error)
            raise _unwrap(e) from None


# ------------------------------------------------------------------------------------------------ worker


class _LabelWorker:
    """One teacher in one Ray worker process; ``__call__`` labels work units into staged shards."""

    def __init__(self, payload: bytes) -> None:
        import ray.cloudpickle as cloudpickle

        from autolabel.labeling.label import build_rescorer, build_teacher
        from autolabel.teachers import TEACHERS

        p = cloudpickle.loads(payload)
        for name, (obj, help_, weights) in p["plugins"].items():
            if name not in TEACHERS:
                TEACHERS.register(name, help=help_, default_weights=weights)(obj)
        self.onto: Ontology = p["ontology"]
        self.config: LabelConfig = p["config"]
        self.out = Path(p["out"])
        with warnings.catch_warnings():  # the driver's probe already showed the teacher's warnings once
            warnings.simplefilter("ignore")
            self.teacher = build_teacher(p["teacher"], self.onto, self.config)
            self.rescorer = build_rescorer(self.onto, self.config)
        self.hard_floor = min(self.onto.thresholds)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [json.dumps(self.label_unit(json.loads(str(t)))) for t in batch["task"]]
        return {"result": np.array(results, dtype=object)}

    def label_unit(self, task: dict[str, Any]) -> dict[str, Any]:
        from autolabel.labeling.label import predict_batch, prefetch_batches
        from autolabel.sources import image_frame, video_span_frames

        cfg = self.config
        stage = self.out / SHARDS_DIR / f"{task['n']:07d}-{uuid.uuid4().hex[:8]}"  # one per attempt
        stage.mkdir(parents=True, exist_ok=True)
        report = SourceReport()
        span = VideoSpan()
        if task["kind"] == "images":
            def image_frames() -> Iterator[Any]:
                for d in task["items"]:
                    f = image_frame(MediaItem(path=Path(d["path"]), kind=IMAGE, id=d["id"]), cfg.sources, report)
                    if f is not None:
                        yield f

            frames: Iterator[Any] = image_frames()
        else:
            done = set(task["done"])
            item = MediaItem(path=Path(task["path"]), kind="video", id=task["id"])
            frames = video_span_frames(item, cfg.sources, report, lambda _id, _p, i: i in done,
                                       lo=task["lo"], hi=task["hi"], span=span)
        items: list[dict[str, Any]] = []
        for batch in prefetch_batches(frames, cfg.batch_size, cfg.prefetch, cfg.prefetch_bytes):
            labels, uncertain = predict_batch(batch, self.teacher, self.rescorer, self.onto, cfg, self.hard_floor)
            for k, (frame, det) in enumerate(zip(batch, labels)):
                enc = encode_frame(frame, det, None if uncertain is None else uncertain[k])
                name = f"{len(items):06d}"
                enc.image_file, enc.label_file = name + enc.suffix, name + ".txt"
                if enc.image_bytes is None:
                    shutil.copyfile(enc.source_path, stage / enc.image_file)
                else:
                    (stage / enc.image_file).write_bytes(enc.image_bytes)
                (stage / enc.label_file).write_text(enc.label_text)
                items.append(enc.to_json())
        return {
            "n": task["n"], "stage": str(stage), "items": items, "spec": self.teacher.spec,
            "skipped": report.skipped, "sampled": report.frames_sampled,
            "deduplicated": report.frames_deduplicated, "span": asdict(span),
        }
