"""The sidecar format of a labeled dataset: its header (:class:`DatasetMeta`) and its records (:class:`Record`).

``autolabel.json`` holds the header; ``autolabel.jsonl`` one record per labeled image, one JSON object a line::

    {"id": "cam1_f0000120", "split": "train", "image": "images/train/cam1_f0000120.jpg",
     "label": "labels/train/cam1_f0000120.txt", "source": "/data/cam1.mp4", "frame_index": 120,
     "timestamp": 4.8, "width": 1280, "height": 720,
     "xyxy": [[x1, y1, x2, y2], ...], "class_id": [c, ...], "confidence": [p, ...],
     "soft_scores": [[s_0, ..., s_C-1], ...],
     "uncertain": {"xyxy": [...], "class_id": [...], "confidence": [...], "soft_scores": [...]}}

Box ``i`` is line ``i`` of the record's label file. ``soft_scores[i][c]`` is the teacher's score in
``[0, 1]`` for class ``c`` of box ``i`` (:mod:`autolabel.core.detections`). ``uncertain`` (only with
``LabelConfig.uncertain_conf``) holds the teacher's boxes below their class threshold, which are not in the
label file. ``frame_index`` and ``timestamp`` are null for an image file.

:meth:`Record.from_json` and :meth:`DatasetMeta.from_json` are the one place a record or a header is checked;
every reader goes through them, so a bad line is reported (and repaired) the same way whoever reads it.

Example:
    >>> r = Record.from_json({"id": "a", "split": "val", "image": "images/val/a.jpg", "label": "labels/val/a.txt",
    ...                       "source": "/in/a.jpg", "width": 64, "height": 48, "xyxy": [[1, 2, 30, 40]],
    ...                       "class_id": [1], "confidence": [0.8], "soft_scores": [[0.1, 0.8]]})
    >>> len(r.boxes), r.boxes.soft_scores, r.stem
    (1, ((0.1, 0.8),), 'a')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel.core.errors import DatasetError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "META_FILE", "SIDECAR_FILE", "SPLITS", "Boxes", "DatasetMeta", "Record"]

FORMAT_NAME = "autolabel-dataset"
FORMAT_VERSION = 1
META_FILE = "autolabel.json"
SIDECAR_FILE = "autolabel.jsonl"
SPLITS = ("train", "val")
SOFT_SCORES_DOC = (
    "per record: soft_scores[i][c] is the teacher's score in [0,1] for class c of box i; "
    "box i is line i of the record's label file"
)
BOX_KEYS = ("xyxy", "class_id", "confidence", "soft_scores")


class _Invalid(ValueError):
    """What is wrong with a record or header (no location: the caller adds it)."""


def _deprecated_key(kind: str, key: str) -> None:
    warnings.warn(f"{kind}[{key!r}] is deprecated: use the attribute (autolabel.data.record)",
                  DeprecationWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------------------
# boxes
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boxes:
    """The boxes of one image, in pixels and in label-file order.

    Attributes:
        xyxy: (N, 4) corners ``x1, y1, x2, y2``.
        class_id: (N,) hard class, an index into the dataset's class names.
        confidence: (N,) confidence of the hard class.
        soft_scores: (N, C) the teacher's score of every class for every box, in ``[0, 1]``.
    """

    xyxy: tuple[tuple[float, float, float, float], ...] = ()
    class_id: tuple[int, ...] = ()
    confidence: tuple[float, ...] = ()
    soft_scores: tuple[tuple[float, ...], ...] = ()

    def __len__(self) -> int:
        return len(self.class_id)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of these boxes (keys in the sidecar's order)."""
        return {"xyxy": [list(b) for b in self.xyxy], "class_id": list(self.class_id),
                "confidence": list(self.confidence), "soft_scores": [list(r) for r in self.soft_scores]}


def _is_number(x: Any) -> bool:
    return (type(x) is float and math.isfinite(x)) or type(x) is int


def _numbers(v: Any, key: str, what: str) -> tuple[Any, ...]:
    if not isinstance(v, list):
        raise _Invalid(f"{what}'{key}' is missing or not a list")
    if not all(_is_number(x) for x in v):
        raise _Invalid(f"{what}'{key}' holds a value that is not a finite number")
    return tuple(v)


def _rows(v: Any, key: str, what: str, width: int | None) -> tuple[tuple[Any, ...], ...]:
    if not isinstance(v, list):
        raise _Invalid(f"{what}'{key}' is missing or not a list")
    rows = []
    for row in v:
        if not isinstance(row, list) or (width is not None and len(row) != width):
            raise _Invalid(f"{what}'{key}' rows must be lists of {width} numbers" if width is not None
                           else f"{what}'{key}' rows must be lists of numbers")
        if width is None:
            width = len(row)
        if not all(_is_number(x) for x in row):
            raise _Invalid(f"{what}'{key}' holds a value that is not a finite number")
        rows.append(tuple(row))
    return tuple(rows)


def _boxes(d: Mapping[str, Any], num_classes: int | None, what: str = "") -> Boxes:
    """Boxes of a record (``what`` = "" ) or of its ``uncertain`` field (``what`` = "'uncertain' ")."""
    xyxy = _rows(d.get("xyxy"), "xyxy", what, 4)
    class_id = _numbers(d.get("class_id"), "class_id", what)
    confidence = _numbers(d.get("confidence"), "confidence", what)
    soft = _rows(d.get("soft_scores"), "soft_scores", what, num_classes)
    if not len(xyxy) == len(class_id) == len(confidence) == len(soft):
        raise _Invalid(f"{what}boxes, classes, confidences and soft scores do not match ({len(xyxy)} xyxy, "
                       f"{len(class_id)} class_id, {len(confidence)} confidence, {len(soft)} soft_scores rows)")
    c = num_classes if num_classes is not None else len(soft[0]) if soft else None
    if any(type(k) is not int or k < 0 or (c is not None and k >= c) for k in class_id):
        raise _Invalid(f"{what}'class_id' holds a value that is not a class index in 0..{'C' if c is None else c - 1}")
    if any(not 0.0 <= x <= 1.0 for row in soft for x in row):
        raise _Invalid(f"{what}'soft_scores' holds a value outside [0, 1]")
    return Boxes(xyxy, class_id, confidence, soft)


# ----------------------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------------------

_RECORD_KEYS = ("id", "split", "image", "label", "source", "frame_index", "timestamp", "width", "height",
                *BOX_KEYS, "uncertain")


@dataclass(frozen=True)
class Record:
    """One labeled image of a dataset: one line of ``autolabel.jsonl``.

    Attributes:
        id: the image's id (its file names under ``images/`` and ``labels/`` are ``ID.*``).
        split: ``"train"`` or ``"val"``.
        image, label: the image and its YOLO label file, relative to the dataset folder.
        source: the input the image came from (resolved path of the image or video file).
        frame_index, timestamp: the frame of a video (index, seconds); None for an image file.
        width, height: the image size in pixels.
        boxes: the labels (the lines of the label file, in order), with their soft scores.
        uncertain: the teacher's boxes below their class threshold (not labels), or None when the dataset
            was labeled without ``uncertain_conf``.
        extra: keys of the JSON record this version does not know, written back unchanged.
    """

    id: str
    split: str
    image: str
    label: str
    source: str
    width: int
    height: int
    boxes: Boxes = field(default_factory=Boxes)
    frame_index: int | None = None
    timestamp: float | None = None
    uncertain: Boxes | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The name the record is matched to human labels by: the original file's stem, or the id of a
        video frame."""
        return self.id if self.frame_index is not None else Path(self.source).stem

    @classmethod
    def from_json(cls, d: Any, *, num_classes: int | None = None, where: str | None = None) -> Record:
        """Check one JSON record and return it typed.

        Args:
            d: the parsed JSON line.
            num_classes: the dataset's class count, when known: every soft-score row must have this many
                scores and every class id be below it (otherwise rows must just agree with each other).
            where: the location for the message, e.g. ``"ds/autolabel.jsonl: line 7"``.

        Raises:
            DatasetError: one line naming ``where``, the record and what is wrong with it.
        """
        try:
            return cls._parse(d, num_classes)
        except _Invalid as e:
            raise DatasetError(f"{where}: {e}" if where else str(e)) from None

    @classmethod
    def _parse(cls, d: Any, num_classes: int | None) -> Record:
        if not isinstance(d, dict):
            raise _Invalid(f"not a record (a JSON {type(d).__name__}, expected an object)")
        rid = d.get("id")
        if not isinstance(rid, str) or not rid:
            raise _Invalid("not a record (no 'id' string)")
        try:
            for key in ("image", "label", "source"):
                if not isinstance(d.get(key), str):
                    raise _Invalid(f"'{key}' is missing or not a string")
            if d.get("split") not in SPLITS:
                raise _Invalid(f"'split' is {d.get('split')!r}, expected one of {list(SPLITS)}")
            for key in ("width", "height"):
                if type(d.get(key)) is not int or d[key] < 1:
                    raise _Invalid(f"'{key}' is {d.get(key)!r}, expected a positive integer")
            frame_index, timestamp = d.get("frame_index"), d.get("timestamp")
            if frame_index is not None and (type(frame_index) is not int or frame_index < 0):
                raise _Invalid(f"'frame_index' is {frame_index!r}, expected null or an integer >= 0")
            if timestamp is not None and not _is_number(timestamp):
                raise _Invalid(f"'timestamp' is {timestamp!r}, expected null or a number")
            boxes = _boxes(d, num_classes)
            unc = d.get("uncertain")
            if unc is not None and not isinstance(unc, dict):
                raise _Invalid("'uncertain' is not an object")
            width = num_classes if num_classes is not None or not boxes.soft_scores else len(boxes.soft_scores[0])
            uncertain = None if unc is None else _boxes(unc, width, "'uncertain' ")
        except _Invalid as e:
            raise _Invalid(f"record '{rid}': {e}") from None
        return cls(id=rid, split=d["split"], image=d["image"], label=d["label"], source=d["source"],
                   width=d["width"], height=d["height"], boxes=boxes, frame_index=frame_index,
                   timestamp=timestamp, uncertain=uncertain,
                   extra={k: v for k, v in d.items() if k not in _RECORD_KEYS})

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this record, keys in the sidecar's order (what :class:`DatasetWriter` writes)."""
        out: dict[str, Any] = {
            "id": self.id, "split": self.split, "image": self.image, "label": self.label, "source": self.source,
            "frame_index": self.frame_index, "timestamp": self.timestamp, "width": self.width, "height": self.height,
            **self.boxes.to_json(),
        }
        if self.uncertain is not None:
            out["uncertain"] = self.uncertain.to_json()
        out.update(self.extra)
        return out

    # -- deprecated: the dict records of earlier versions ---------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        """Deprecated: ``rec["soft_scores"]`` is ``rec.boxes.soft_scores`` (as lists, like the JSON)."""
        _deprecated_key("Record", key)
        j = self.to_json()
        if key not in j:
            raise KeyError(key)
        return j[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: the JSON value of ``key`` (see :meth:`__getitem__`), or ``default``."""
        _deprecated_key("Record", key)
        return self.to_json().get(key, default)

    def __contains__(self, key: str) -> bool:
        """Deprecated: whether the JSON record has ``key`` (``"uncertain" in rec`` is ``rec.uncertain is not None``)."""
        _deprecated_key("Record", key)
        return key in self.to_json()


# ----------------------------------------------------------------------------------------------------------
# header
# ----------------------------------------------------------------------------------------------------------

_META_KEYS = ("format", "version", "names", "ontology", "ontology_fingerprint", "teacher", "split", "config",
              "sidecar", "soft_scores")


@dataclass(frozen=True)
class DatasetMeta:
    """The header ``autolabel.json`` of a labeled dataset.

    Attributes:
        names: the class names; class id ``c`` is ``names[c]``.
        teacher: the teacher spec that labeled the dataset (a resumed run must use the same).
        ontology: the ontology as a dict (:meth:`Ontology.to_dict`), and its fingerprint.
        split: how images were split (``val_fraction``, ``seed``, ``by``).
        config: the labeling settings, for provenance.
        version: the format version the dataset was written with.
        extra: keys this version does not know, written back unchanged.
    """

    names: tuple[str, ...]
    teacher: str | None = None
    ontology: Mapping[str, Any] | None = None
    ontology_fingerprint: str | None = None
    split: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @classmethod
    def from_json(cls, d: Any, *, where: str | None = None) -> DatasetMeta:
        """Check a parsed header and return it typed.

        Raises:
            DatasetError: one line naming ``where`` (the header file) and the problem: not an autolabel
                header, a newer format version, no class names.
        """
        try:
            return cls._parse(d)
        except _Invalid as e:
            raise DatasetError(f"{where}: {e}" if where else str(e)) from None

    @classmethod
    def _parse(cls, d: Any) -> DatasetMeta:
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            fmt = d.get("format") if isinstance(d, dict) else None
            raise _Invalid(f"not an autolabel dataset header (format={fmt!r})")
        try:
            version = int(d.get("version", 0))
        except (TypeError, ValueError):
            raise _Invalid(f"dataset format version {d.get('version')!r} is not a number") from None
        if version > FORMAT_VERSION:
            raise _Invalid(f"dataset format version {d.get('version')} is newer than this autolabel supports "
                           f"({FORMAT_VERSION}); upgrade autolabel")
        names = d.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise _Invalid(f"'names' is {names!r}, expected a non-empty list of class names")
        for key, kind in (("teacher", str), ("ontology", dict), ("ontology_fingerprint", str),
                          ("split", dict), ("config", dict)):
            if d.get(key) is not None and not isinstance(d[key], kind):
                raise _Invalid(f"'{key}' is not a {'string' if kind is str else 'JSON object'}")
        return cls(names=tuple(names), teacher=d.get("teacher"), ontology=d.get("ontology"),
                   ontology_fingerprint=d.get("ontology_fingerprint"), split=d.get("split") or {},
                   config=d.get("config") or {}, version=version,
                   extra={k: v for k, v in d.items() if k not in _META_KEYS})

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this header (what :class:`DatasetWriter` writes to ``autolabel.json``)."""
        out: dict[str, Any] = {"format": FORMAT_NAME, "version": self.version, "names": list(self.names)}
        for key in ("ontology", "ontology_fingerprint", "teacher"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(split=self.split, config=self.config, sidecar=SIDECAR_FILE, soft_scores=SOFT_SCORES_DOC)
        out.update(self.extra)
        return out

    # -- deprecated: the dict header of earlier versions ---------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        """Deprecated: ``meta["names"]`` is ``meta.names`` (as a list, like the JSON)."""
        _deprecated_key("DatasetMeta", key)
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: the JSON value of ``key``, or ``default``."""
        _deprecated_key("DatasetMeta", key)
        return self.to_json().get(key, default)
