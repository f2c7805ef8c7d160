"""The labeled dataset on disk: a YOLO layout Ultralytics trains on as it is, plus one versioned sidecar.

Layout of an output folder::

    DIR/
      data.yaml                 # Ultralytics dataset file (no 'path' key: resolved relative to this file)
      images/{train,val}/ID.jpg # copied originals (JPEG/PNG) or re-encoded decoded frames
      labels/{train,val}/ID.txt # YOLO boxes "class cx cy w h" (normalized), one line per box
      autolabel.json            # sidecar header: format version, ontology, teacher, class names, config
      autolabel.jsonl           # sidecar rows: one JSON record per image, boxes in the SAME ORDER as the
                                # lines of its label file, with confidences and (N, C) soft scores; with
                                # `uncertain_conf`, also the teacher's boxes below their class threshold
                                # ("uncertain": xyxy, class_id, confidence, soft_scores; not in the labels)
      annotations.coco.json     # the same labels in COCO format, each annotation with its 'score'
      preview.jpg               # annotated samples
      summary.json              # images per split, skipped inputs with reasons, boxes per class

The sidecar is append-only and is the commit point of each batch: images and label files are written
(atomically, by rename) first, then the batch's records are appended and fsync'ed. A run killed at any
moment loses at most the batch in flight; re-opening the folder truncates a torn last line and resumes.
A corrupt line elsewhere (not JSON, or not a valid record: :meth:`Record.from_json`) costs only its own
record: the writer moves it to ``autolabel.jsonl.corrupt`` (that image is labeled again) and says so;
readers skip it with a warning, :func:`check_dataset` fails on it. One writer at a time: the
folder is locked (``.autolabel.lock``) while a run writes it.

The header and the records are typed (:mod:`autolabel.data.record`); files are written with
:mod:`autolabel.data.jsonl`.

Example:
    >>> for rec in read_records("out/"):          # doctest: +SKIP
    ...     rec.boxes.soft_scores                  # (N, C) scores, rows match labels/…/ID.txt
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator, KeysView, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.core.detections import SOFT_SCORES
from autolabel.core.errors import DatasetError
from autolabel.core.ontology import Ontology
from autolabel.data.jsonl import (
    BadLine,
    JsonlAppender,
    append_jsonl,
    atomic_open,
    iter_jsonl,
    read_json,
    recover_jsonl,
    write_atomic,
)
from autolabel.data.record import FORMAT_VERSION, META_FILE, SIDECAR_FILE, DatasetMeta, Record

if TYPE_CHECKING:
    import supervision as sv

    from autolabel.sources import Frame

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "SIDECAR_FILE",
    "DatasetMeta",
    "DatasetWriter",
    "EncodedFrame",
    "Record",
    "assign_split",
    "check_dataset",
    "encode_frame",
    "read_meta",
    "read_records",
]

LOCK_FILE = ".autolabel.lock"
CORRUPT_FILE = SIDECAR_FILE + ".corrupt"
UNITS_FILE = ".autolabel.units"  # work units (video blocks) whose records are all committed: a rerun skips them
SHARDS_DIR = ".shards"  # workers' staged files, moved into place when the driver commits them


def assign_split(group: str, val_fraction: float, seed: int) -> str:
    """Deterministic train/val split of a group key (stable across runs, orders and resumes)."""
    h = int(hashlib.sha1(f"{seed}:{group}".encode()).hexdigest()[:8], 16) / 2**32
    return "val" if h < val_fraction else "train"


def read_meta(root: str | Path) -> DatasetMeta:
    """Read and check the sidecar header ``autolabel.json`` of a labeled dataset.

    Raises:
        DatasetError: the folder or the header is missing, not JSON, not an autolabel header or too new.
    """
    p = Path(root) / META_FILE
    if not Path(root).is_dir():
        raise DatasetError(f"dataset folder '{root}' not found")
    if not p.is_file():
        raise DatasetError(
            f"'{root}' has no {META_FILE}; expected a folder written by `autolabel label` (soft-score sidecar)"
        )
    return DatasetMeta.from_json(read_json(p), where=str(p))


def _sidecar(root: str | Path) -> Path:
    p = Path(root) / SIDECAR_FILE
    if not p.is_file():
        raise DatasetError(f"'{root}' has no {SIDECAR_FILE}; expected a folder written by `autolabel label`")
    return p


def _record_parser(num_classes: int | None) -> Any:
    return lambda d: Record.from_json(d, num_classes=num_classes)


def _corrupt_note(path: Path, bad: list[BadLine]) -> str:
    return f"{path}: {len(bad)} corrupt line(s) skipped (first at line {bad[0].number}): {bad[0].reason}"


def read_records(root: str | Path, num_classes: int | None = None) -> Iterator[Record]:
    """Stream the sidecar records (one per labeled image), skipping a torn last line.

    A line that is not a valid record (:meth:`Record.from_json`; with ``num_classes``, soft-score rows of
    that many classes) costs only its own record: it is skipped, and once the stream ends one warning says
    how many were (``autolabel label`` on the same folder repairs it and labels those images again).
    """
    p = _sidecar(root)
    bad: list[BadLine] = []
    for _, _, rec in iter_jsonl(p, _record_parser(num_classes), bad=bad):
        yield rec
    if bad:
        warnings.warn(
            _corrupt_note(p, bad) + f"; run `autolabel label` again with --out {root} to repair", stacklevel=2
        )


def check_dataset(root: str | Path, num_classes: int | None = None) -> DatasetMeta:
    """Validate a labeled dataset (header, every record, label files, class count) and return its header.

    Raises:
        DatasetError: one line naming the first problem found.
    """
    meta = read_meta(root)
    if num_classes is not None and meta.num_classes != num_classes:
        raise DatasetError(f"'{root}' has {meta.num_classes} classes {list(meta.names)}, expected {num_classes}")
    side = _sidecar(root)
    bad: list[BadLine] = []
    seen: set[str] = set()
    for line_no, _, rec in iter_jsonl(side, _record_parser(meta.num_classes), bad=bad):
        if rec.id in seen:
            raise DatasetError(f"{side}: line {line_no}: a second record of image '{rec.id}'")
        seen.add(rec.id)
        if not (Path(root) / rec.label).is_file():
            raise DatasetError(f"'{root}': label file {rec.label} of record {rec.id} is missing")
    if bad:
        raise DatasetError(
            _corrupt_note(side, bad) + f"; run `autolabel label` again with --out {root} to repair it"
        )
    return meta


class DatasetLock:
    """An exclusive lock on a dataset folder, so two runs never append to one sidecar at once.

    An ``flock`` on ``DIR/.autolabel.lock`` (holding the owner's pid, for the message): the kernel drops it
    when its process dies, so a lock left by a killed run is simply taken over. Removed on :meth:`release`.

    Raises:
        DatasetError: another process holds the lock, or ``root`` is a non-empty folder that is not a dataset.

    Example:
        >>> with DatasetLock("out/"):       # doctest: +SKIP
        ...     ...
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_FILE
        self._fd: int | None = None
        _check_output_folder(self.root)  # before creating anything in a folder that is not ours
        self._created = not self.root.exists()  # removed again on release if nothing was written
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking (documented limitation)
            return
        for _ in range(10):  # the file may be unlinked by a releasing owner between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise DatasetError(
                    f"'{self.root}' is being written by another autolabel run ({self._owner()}); wait for it to "
                    "finish or choose another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)
        raise DatasetError(f"could not lock '{self.root}': its lock file keeps changing")

    def _owner(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid.isdigit() else "pid unknown"

    def release(self) -> None:
        """Unlock and remove the lock file (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the inode
            if self._created and not any(os.scandir(self.root)):
                self.root.rmdir()  # e.g. the teacher failed to load: leave no empty --out behind
        except OSError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DatasetLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check_output_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise DatasetError(f"output '{root}' exists and is not a folder")
    if (root / META_FILE).is_file() or not root.is_dir():
        return
    if any(e.name != LOCK_FILE for e in os.scandir(root)):
        raise DatasetError(
            f"output folder '{root}' is not empty and is not an autolabel dataset; choose a new --out"
        )


def _input_key(source: str | Path) -> str:
    return str(Path(source).resolve())


def _other_id(frame_id: str, source: str, frame_index: int | None) -> str:
    """The id of an input whose own id is taken by a different input (a changed source list, a file added
    beside a same-stem one): its id plus ``___`` and a hash of the input; stable across runs."""
    digest = hashlib.sha1(f"{source}\0{frame_index}".encode("utf-8", "surrogatepass")).hexdigest()[:12]
    head = frame_id[: 200 - 15]
    return f"{head}___{digest}"


@dataclass
class WriteStats:
    """Counts for this run of the writer."""

    images: int = 0
    boxes: int = 0
    uncertain: int = 0
    per_split: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})


@dataclass
class EncodedFrame:
    """One labeled frame ready to commit: its record's fields, its label text and image, before the writer
    gives it an id and a split. :func:`encode_frame` makes one; :meth:`DatasetWriter.commit` commits it.

    Attributes:
        id: the frame's id (the writer may give another one when a different input holds it).
        source: the input key (resolved path) and ``frame_index`` (video) that identify the input.
        source_path: the file as given (copied as the image when ``image_bytes`` is None).
        group: the split group.
        suffix: the image file's suffix.
        image_bytes: the re-encoded image, or None to copy ``source_path``.
        label_text: the YOLO label file's text.
        fields: the record's fields after id / split / image / label.
        image_file, label_file: names of the files a worker wrote into its staging folder.
    """

    id: str
    source: str
    source_path: str
    frame_index: int | None
    group: str
    suffix: str
    label_text: str
    fields: dict[str, Any]
    image_bytes: bytes | None = None
    image_file: str = ""
    label_file: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict without the image bytes (those are staged as files)."""
        return {k: getattr(self, k) for k in ("id", "source", "source_path", "frame_index", "group", "suffix",
                                              "label_text", "fields", "image_file", "label_file")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EncodedFrame:
        return cls(**d)


def encode_frame(frame: Frame, det: sv.Detections, uncertain: sv.Detections | None = None) -> EncodedFrame:
    """The label text, record fields and (unless the file is copied as it is) JPEG bytes of one frame."""
    import cv2

    h, w = frame.image.shape[:2]
    image_bytes = None
    if not frame.copyable:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise DatasetError(f"could not encode image {frame.source} as JPEG")
        image_bytes = buf.tobytes()
    xyxy = det.xyxy.astype(np.float64)
    cls = det.class_id.astype(int)
    conf = det.confidence.astype(float)
    soft = np.asarray(det.data[SOFT_SCORES], dtype=float)
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
    bw, bh = (xyxy[:, 2] - xyxy[:, 0]) / w, (xyxy[:, 3] - xyxy[:, 1]) / h
    text = "".join(f"{c} {a:.6f} {b:.6f} {d:.6f} {e:.6f}\n" for c, a, b, d, e in zip(cls, cx, cy, bw, bh))
    source = _input_key(frame.source)
    fields: dict[str, Any] = {
        "source": source,
        "frame_index": frame.frame_index,
        "timestamp": frame.timestamp,
        "width": w,
        "height": h,
        "xyxy": np.round(xyxy, 2).tolist(),
        "class_id": cls.tolist(),
        "confidence": np.round(conf, 5).tolist(),
        "soft_scores": np.round(soft, 5).tolist(),
    }
    if uncertain is not None:
        u = uncertain
        fields["uncertain"] = {
            "xyxy": np.round(u.xyxy.astype(np.float64), 2).tolist(),
            "class_id": u.class_id.astype(int).tolist(),
            "confidence": np.round(u.confidence.astype(float), 5).tolist(),
            "soft_scores": np.round(np.asarray(u.data[SOFT_SCORES], dtype=float), 5).tolist(),
        }
    return EncodedFrame(
        id=frame.id, source=source, source_path=str(frame.source), frame_index=frame.frame_index,
        group=frame.group, suffix=frame.suffix if frame.copyable else ".jpg", label_text=text, fields=fields,
        image_bytes=image_bytes,
    )


class DatasetWriter:
    """Writes labeled frames into a dataset folder, batch by batch, resumably.

    Args:
        root: output folder (created).
        ontology: the classes (their order fixes class ids).
        teacher: the teacher spec recorded in the header; a resumed run must use the same teacher.
        config: settings recorded in the header (for provenance).
        val_fraction, seed: split settings (split is by the frame's group key).
        overwrite: delete an existing dataset in ``root`` first.
        lock: a :class:`DatasetLock` the caller holds on ``root`` (released by the caller); otherwise the
            writer takes one and releases it on :meth:`close`.
    """

    def __init__(
        self,
        root: str | Path,
        ontology: Ontology,
        teacher: str,
        config: dict[str, Any] | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        overwrite: bool = False,
        lock: DatasetLock | None = None,
    ) -> None:
        self.root = Path(root)
        self.ontology = ontology
        self.teacher = teacher
        self.val_fraction, self.seed = float(val_fraction), int(seed)
        self.stats = WriteStats()
        _check_output_folder(self.root)
        # label() locks before loading its teacher and passes the lock; a direct caller gets its own.
        self._lock = None if lock is not None else DatasetLock(self.root)
        try:
            self._open(config, overwrite)
        except BaseException:
            self._release()
            raise

    def _open(self, config: dict[str, Any] | None, overwrite: bool) -> None:
        meta_path = self.root / META_FILE
        if overwrite and meta_path.is_file():
            for sub in ("images", "labels"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
            for f in (META_FILE, SIDECAR_FILE, UNITS_FILE, "data.yaml", "annotations.coco.json", "summary.json",
                      "preview.jpg"):
                (self.root / f).unlink(missing_ok=True)
            shutil.rmtree(self.root / SHARDS_DIR, ignore_errors=True)
        if meta_path.is_file():
            self._check_resumable(read_meta(self.root))
        else:
            _check_output_folder(self.root)
        for split in ("train", "val"):
            (self.root / "images" / split).mkdir(parents=True, exist_ok=True)
            (self.root / "labels" / split).mkdir(parents=True, exist_ok=True)
        if not meta_path.is_file():
            meta = DatasetMeta(
                names=tuple(self.ontology.names),
                ontology=self.ontology.to_dict(),
                ontology_fingerprint=self.ontology.fingerprint(),
                teacher=self.teacher,
                split={"val_fraction": self.val_fraction, "seed": self.seed, "by": "group"},
                config=config or {},
            )
            write_atomic(meta_path, json.dumps(meta.to_json(), indent=2))
        # id -> (split, source); and (source, frame index) of every labeled input, so an input is found
        # again under a changed id (a source added on resume changes every id's prefix).
        self._records: dict[str, tuple[str, str]] = {}
        self._inputs: set[tuple[str, int | None]] = set()
        self.repairs: dict[str, Any] = {}
        self._frames_index: tuple[dict[str, set[int]], dict[str, list[tuple[int, str]]]] | None = None
        self._recover_sidecar()
        self._sidecar = JsonlAppender(self.root / SIDECAR_FILE, fsync=True)

    @property
    def done(self) -> KeysView[str]:
        """Ids of the committed records (a live view)."""
        return self._records.keys()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- resume ---------------------------------------------------------------------------------
    def _check_resumable(self, meta: DatasetMeta) -> None:
        problems = []
        if meta.ontology_fingerprint != self.ontology.fingerprint() or list(meta.names) != self.ontology.names:
            problems.append(f"ontology classes {list(meta.names)} (now {self.ontology.names})")
        if meta.teacher != self.teacher:
            problems.append(f"teacher '{meta.teacher}' (now '{self.teacher}')")
        split = meta.split
        if split.get("val_fraction") != self.val_fraction or split.get("seed") != self.seed:
            problems.append(f"split {split} (now val_fraction={self.val_fraction}, seed={self.seed})")
        if problems:
            raise DatasetError(
                f"'{self.root}' was labeled with a different " + "; ".join(problems)
                + ": use a new --out, or --overwrite to relabel from scratch"
            )

    def _recover_sidecar(self) -> None:
        """Load the committed records; drop a torn last line, move corrupt lines aside, drop duplicates.

        Corrupt lines (not JSON, or records :meth:`Record.from_json` refuses) go to
        ``autolabel.jsonl.corrupt`` (their images are labeled again); a second record of
        one id or of one input (left by runs before the folder lock and stable ids) is dropped, keeping the
        first. Anything but a torn last line is reported in ``self.repairs`` and one warning.
        """
        p = self.root / SIDECAR_FILE

        def keep(rec: Record) -> bool:
            key = (rec.source, rec.frame_index)
            if rec.id in self._records or key in self._inputs:
                return False
            self._records[rec.id] = (rec.split, rec.source)
            self._inputs.add(key)
            return True

        found = recover_jsonl(p, _record_parser(len(self.ontology.names)), keep, self.root / CORRUPT_FILE)
        bad, dropped = found.bad, found.dropped
        if not bad and not dropped:
            return
        self.repairs = {"corrupt_lines": len(bad), "duplicate_records": dropped,
                        **({"corrupt_moved_to": CORRUPT_FILE} if bad else {})}
        parts = [f"{len(bad)} corrupt line(s) (first at line {bad[0].number}) moved to {CORRUPT_FILE}, their "
                 f"images will be labeled again (line {bad[0].number}: {bad[0].reason})"] if bad else []
        parts += [f"{dropped} duplicate record(s) dropped"] if dropped else []
        warnings.warn(f"{p}: kept {len(self._records)} valid record(s); " + "; ".join(parts), stacklevel=3)

    def is_input_done(self, frame_id: str, source: str | Path, frame_index: int | None) -> bool:
        """Whether this input (file, and frame of a video) already has a record, whatever id it had then.

        An id already taken by a *different* existing file is not done: :meth:`write_batch` gives the
        newcomer another id. When the recorded file no longer exists where it was, the same id is taken
        to be the same input moved (a remounted or renamed folder).
        """
        src = _input_key(source)
        if (src, frame_index) in self._inputs:
            return True
        rec = self._records.get(frame_id)
        return rec is not None and not os.path.exists(rec[1])

    def done_frames(self, video_id: str, source: str | Path) -> set[int]:
        """Frame indices of a video that :meth:`is_input_done` would call done (for a worker that decodes
        the video away from the writer)."""
        if self._frames_index is None:  # built once: (source -> indices), (video id -> [(index, source)])
            by_source: dict[str, set[int]] = {}
            by_video: dict[str, list[tuple[int, str]]] = {}
            for src, idx in self._inputs:
                if idx is not None:
                    by_source.setdefault(src, set()).add(idx)
            for rid, (_split, src) in self._records.items():
                head, sep, tail = rid.rpartition("_f")
                if sep and len(tail) >= 7 and tail.isdigit():
                    by_video.setdefault(head, []).append((int(tail), src))
            self._frames_index = (by_source, by_video)
        by_source, by_video = self._frames_index
        done = set(by_source.get(_input_key(source), ()))
        done.update(i for i, src in by_video.get(video_id, ()) if not os.path.exists(src))  # a moved file
        return done

    def units_done(self) -> dict[str, dict[str, Any]]:
        """Work units committed by earlier runs (``mark_unit``), by key; none after a sidecar repair (a lost
        record must be labeled again)."""
        p = self.root / UNITS_FILE
        if self.repairs or not p.is_file():
            p.unlink(missing_ok=True)
            return {}
        out: dict[str, dict[str, Any]] = {}
        for _, _, d in iter_jsonl(p, bad=[]):  # an unreadable note only costs its unit being checked again
            if isinstance(d, dict) and isinstance(d.get("key"), str):
                out[d["key"]] = d
        return out

    def mark_unit(self, key: str, info: dict[str, Any]) -> None:
        """Record that every record of work unit ``key`` is committed (after :meth:`commit` returned)."""
        append_jsonl(self.root / UNITS_FILE, [{"key": key, **info}])

    def is_done(self, frame_id: str) -> bool:
        """Whether a record with this id exists (see :meth:`is_input_done` for resume)."""
        return frame_id in self._records

    # -- writing --------------------------------------------------------------------------------
    def write_batch(self, frames: Sequence[Frame], detections: Sequence[sv.Detections],
                    uncertain: Sequence[sv.Detections] | None = None) -> None:
        """Write images and labels of a batch, then commit their sidecar records.

        ``uncertain``: per frame, the teacher's boxes below their class threshold; they go into the record's
        ``uncertain`` field (same keys as the hard boxes) and not into the label file.

        An input that already has a record (the same file and frame) is not written twice; a frame whose id
        another input already holds is written under another id (:func:`_other_id`), never dropped.
        """
        items = [
            encode_frame(f, d, None if uncertain is None else uncertain[k])
            for k, (f, d) in enumerate(zip(frames, detections))
            if (_input_key(f.source), f.frame_index) not in self._inputs
        ]
        self.commit(items)

    def commit(self, items: Sequence[EncodedFrame], staged: str | Path | None = None) -> int:
        """Place the files of encoded frames and commit their records (one append, fsync'ed); returns how
        many were committed.

        ``staged``: the folder where a worker already wrote each item's ``image_file`` and ``label_file``
        (moved into place by rename); otherwise they are written here. Ids and splits are decided here, by
        the one writer, so a frame gets the same id whichever process labeled it.
        """
        records: list[Record] = []
        num_classes = len(self.ontology.names)
        for item in items:
            source = item.source
            key = (source, item.frame_index)
            if key in self._inputs:
                continue
            frame_id = item.id
            if frame_id in self._records:
                frame_id = _other_id(frame_id, source, item.frame_index)
                if frame_id in self._records:  # only on a hash collision: never overwrite a record
                    raise DatasetError(f"cannot give {item.source_path} an id of its own in '{self.root}'")
            split = assign_split(item.group, self.val_fraction, self.seed)
            img_rel = f"images/{split}/{frame_id}{item.suffix}"
            lbl_rel = f"labels/{split}/{frame_id}.txt"
            img_path = self.root / img_rel
            # checked by the reader's own rule: a record it would set aside is never written
            rec = Record.from_json({"id": frame_id, "split": split, "image": img_rel, "label": lbl_rel, **item.fields},
                                   num_classes=num_classes, where=f"labeling {item.source_path}")
            if staged is not None:
                os.replace(Path(staged) / item.image_file, img_path)
                os.replace(Path(staged) / item.label_file, self.root / lbl_rel)
            else:
                if item.image_bytes is None:
                    with open(item.source_path, "rb") as src, atomic_open(img_path, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                else:
                    write_atomic(img_path, item.image_bytes)
                write_atomic(self.root / lbl_rel, item.label_text)
            records.append(rec)
            self._records[frame_id] = (split, source)
            self._inputs.add(key)
            self.stats.images += 1
            self.stats.boxes += len(rec.boxes)
            self.stats.uncertain += len(rec.uncertain) if rec.uncertain is not None else 0
            self.stats.per_split[split] += 1
        return self._sidecar.append(r.to_json() for r in records)  # the commit point: one write, fsync'ed

    def close(self) -> None:
        """Close the sidecar and release the folder lock the writer took itself (idempotent)."""
        if not self._sidecar.closed:
            self._sidecar.close()
        self._release()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- finishing ------------------------------------------------------------------------------
    def finalize(self, skipped: Sequence[tuple[str, str]] = (), extra: dict[str, Any] | None = None,
                 preview_count: int = 16) -> dict[str, Any]:
        """Write data.yaml, annotations.coco.json, preview.jpg and summary.json from the sidecar.

        Streams the sidecar, so memory does not grow with the number of images. Also removes label and
        image files that no committed record refers to (left by a killed run).
        """
        if not self._sidecar.closed:
            self._sidecar.close()
        names = self.ontology.names
        counts = {"train": 0, "val": 0}
        boxes_per_class = dict.fromkeys(names, 0)
        uncertain_per_class = dict.fromkeys(names, 0)
        preview_recs: list[Record] = []
        ann_id = 0
        with atomic_open(self.root / "annotations.coco.json", "w") as f:
            f.write(f'{{"info":{{"description":"autolabel","teacher":{json.dumps(self.teacher)}}},"licenses":[],')
            f.write('"categories":{},'.format(json.dumps([{"id": i, "name": n, "supercategory": "object"} for i, n in enumerate(names)])))
            f.write('"images":[')
            first = True
            for img_id, rec in enumerate(read_records(self.root, len(names))):
                counts[rec.split] += 1
                for c in rec.boxes.class_id:
                    boxes_per_class[names[c]] += 1
                for c in rec.uncertain.class_id if rec.uncertain is not None else ():
                    uncertain_per_class[names[c]] += 1
                if len(rec.boxes) and len(preview_recs) < preview_count:
                    preview_recs.append(rec)
                f.write(("" if first else ",") + json.dumps(
                    {"id": img_id, "file_name": rec.image, "width": rec.width, "height": rec.height}))
                first = False
            f.write('],"annotations":[')
            first = True
            for img_id, rec in enumerate(read_records(self.root, len(names))):
                b = rec.boxes
                for (x1, y1, x2, y2), c, s, soft in zip(b.xyxy, b.class_id, b.confidence, b.soft_scores):
                    ann = {"id": ann_id, "image_id": img_id, "category_id": c,
                           "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                           "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0, "score": s, "soft_scores": soft}
                    f.write(("" if first else ",") + json.dumps(ann, separators=(",", ":")))
                    first = False
                    ann_id += 1
            f.write("]}")
        self._remove_orphans()

        # Ultralytics needs a val set; a tiny run may put every group in one split.
        train = "images/train" if counts["train"] else "images/val"
        val = "images/val" if counts["val"] else "images/train"
        import yaml

        data_yaml = {"train": train, "val": val, "nc": len(names), "names": dict(enumerate(names))}
        write_atomic(
            self.root / "data.yaml",
            "# written by autolabel; soft scores in autolabel.jsonl\n" + yaml.safe_dump(data_yaml, sort_keys=False),
        )
        if preview_recs:
            self._write_preview(preview_recs)
        summary = {
            "images": counts["train"] + counts["val"],
            "train": counts["train"],
            "val": counts["val"],
            "boxes": sum(boxes_per_class.values()),
            "boxes_per_class": boxes_per_class,
            **({"uncertain_boxes": sum(uncertain_per_class.values()), "uncertain_per_class": uncertain_per_class}
               if any(uncertain_per_class.values()) else {}),
            "teacher": self.teacher,
            "labeled_this_run": self.stats.images,
            **({"sidecar_repairs": self.repairs} if self.repairs else {}),
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
            **(extra or {}),
        }
        write_atomic(self.root / "summary.json", json.dumps(summary, indent=2))
        return summary

    def _remove_orphans(self) -> None:
        """Delete files no record refers to, split by split: a file of a record of the other split (left by
        a dropped duplicate record) goes too, so no image is in both train and val."""
        for split in ("train", "val"):
            for sub in ("labels", "images"):
                d = self.root / sub / split
                for entry in os.scandir(d):
                    stem = entry.name.rsplit(".", 1)[0]
                    rec = self._records.get(stem)
                    if entry.name.startswith(".") or rec is None or rec[0] != split:
                        os.unlink(entry.path)

    def _write_preview(self, recs: list[Record], width: int = 480) -> None:
        """A grid of up to 4 columns of annotated samples; tiles keep the first sample's aspect ratio."""
        import cv2
        import supervision as sv

        tiles: list[np.ndarray] = []
        tile_h = None
        for rec in recs:
            img = cv2.imread(str(self.root / rec.image))
            if img is None:
                continue
            h, w = img.shape[:2]
            tile_h = tile_h or max(1, round(width * h / w))
            det = sv.Detections(
                xyxy=np.asarray(rec.boxes.xyxy, dtype=np.float32).reshape(-1, 4),
                class_id=np.asarray(rec.boxes.class_id, dtype=int),
                confidence=np.asarray(rec.boxes.confidence, dtype=np.float32),
            )
            # draw at tile resolution so boxes and text stay legible whatever the source size
            r = min(width / w, tile_h / h)
            img = cv2.resize(img, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA)
            det.xyxy = det.xyxy * r
            labels = [f"{self.ontology.names[c]} {s:.2f}" for c, s in zip(det.class_id, det.confidence)]
            img = sv.BoxAnnotator(thickness=1).annotate(img, det)
            img = sv.LabelAnnotator(text_scale=0.35, text_padding=1, text_thickness=1).annotate(img, det, labels=labels)
            canvas = np.full((tile_h, width, 3), 40, np.uint8)
            canvas[: img.shape[0], : img.shape[1]] = img
            tiles.append(canvas)
        if not tiles or tile_h is None:
            return
        cols = min(4, len(tiles))
        rows = -(-len(tiles) // cols)
        tiles += [np.full((tile_h, width, 3), 40, np.uint8)] * (rows * cols - len(tiles))
        grid = np.vstack([np.hstack(tiles[r * cols : (r + 1) * cols]) for r in range(rows)])
        ok, buf = cv2.imencode(".jpg", grid, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            write_atomic(self.root / "preview.jpg", buf.tobytes())
