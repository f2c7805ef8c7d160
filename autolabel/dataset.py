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

Example:
    >>> for rec in read_records("out/"):          # doctest: +SKIP
    ...     rec["soft_scores"]                     # (N, C) nested list, rows match labels/…/ID.txt
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.detections import SOFT_SCORES
from autolabel.errors import DatasetError
from autolabel.ontology import Ontology

if TYPE_CHECKING:
    import supervision as sv

    from autolabel.sources import Frame

__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "SIDECAR_FILE",
    "DatasetWriter",
    "assign_split",
    "check_dataset",
    "read_meta",
    "read_records",
]

FORMAT_VERSION = 1
META_FILE = "autolabel.json"
SIDECAR_FILE = "autolabel.jsonl"
FORMAT_NAME = "autolabel-dataset"


def assign_split(group: str, val_fraction: float, seed: int) -> str:
    """Deterministic train/val split of a group key (stable across runs, orders and resumes)."""
    h = int(hashlib.sha1(f"{seed}:{group}".encode()).hexdigest()[:8], 16) / 2**32
    return "val" if h < val_fraction else "train"


def read_meta(root: str | Path) -> dict[str, Any]:
    """Read and check the sidecar header ``autolabel.json`` of a labeled dataset."""
    p = Path(root) / META_FILE
    if not Path(root).is_dir():
        raise DatasetError(f"dataset folder '{root}' not found")
    if not p.is_file():
        raise DatasetError(
            f"'{root}' has no {META_FILE}; expected a folder written by `autolabel label` (soft-score sidecar)"
        )
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{p}: not an autolabel dataset header (format={meta.get('format')!r})")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise DatasetError(
            f"{p}: dataset format version {meta.get('version')} is newer than this autolabel supports "
            f"({FORMAT_VERSION}); upgrade autolabel"
        )
    return meta


def read_records(root: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the sidecar records (one per labeled image), skipping a torn last line."""
    p = Path(root) / SIDECAR_FILE
    if not p.is_file():
        raise DatasetError(f"'{root}' has no {SIDECAR_FILE}; expected a folder written by `autolabel label`")
    with p.open("rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn write of a killed run; not committed
            if line.strip():
                yield json.loads(line)


def check_dataset(root: str | Path, num_classes: int | None = None) -> dict[str, Any]:
    """Validate a labeled dataset (header, sidecar, label files, class count) and return its header.

    Raises:
        DatasetError: one line naming the first problem found.
    """
    meta = read_meta(root)
    names = meta.get("names", [])
    if num_classes is not None and len(names) != num_classes:
        raise DatasetError(f"'{root}' has {len(names)} classes {names}, expected {num_classes}")
    for i, rec in enumerate(read_records(root)):
        soft = rec.get("soft_scores", [])
        if len(soft) != len(rec.get("class_id", [])) or any(len(r) != len(names) for r in soft):
            raise DatasetError(
                f"{Path(root) / SIDECAR_FILE}: record {i} ({rec.get('id')}) soft scores do not match its "
                f"boxes × {len(names)} classes"
            )
        unc = rec.get("uncertain")
        if unc is not None:
            n = len(unc.get("xyxy", []))
            if any(len(unc.get(k, [])) != n for k in ("class_id", "confidence", "soft_scores")) or any(
                len(r) != len(names) for r in unc.get("soft_scores", [])
            ):
                raise DatasetError(
                    f"{Path(root) / SIDECAR_FILE}: record {i} ({rec.get('id')}) 'uncertain' boxes, classes, "
                    f"confidences and soft scores (× {len(names)} classes) do not match"
                )
        if not (Path(root) / rec["label"]).is_file():
            raise DatasetError(f"'{root}': label file {rec['label']} of record {rec.get('id')} is missing")
    return meta


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class WriteStats:
    """Counts for this run of the writer."""

    images: int = 0
    boxes: int = 0
    uncertain: int = 0
    per_split: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})


class DatasetWriter:
    """Writes labeled frames into a dataset folder, batch by batch, resumably.

    Args:
        root: output folder (created).
        ontology: the classes (their order fixes class ids).
        teacher: the teacher spec recorded in the header; a resumed run must use the same teacher.
        config: settings recorded in the header (for provenance).
        val_fraction, seed: split settings (split is by the frame's group key).
        overwrite: delete an existing dataset in ``root`` first.
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
    ) -> None:
        self.root = Path(root)
        self.ontology = ontology
        self.teacher = teacher
        self.val_fraction, self.seed = float(val_fraction), int(seed)
        self.stats = WriteStats()
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"output '{self.root}' exists and is not a folder")
        meta_path = self.root / META_FILE
        if overwrite and meta_path.is_file():
            for sub in ("images", "labels"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
            for f in (META_FILE, SIDECAR_FILE, "data.yaml", "annotations.coco.json", "summary.json", "preview.jpg"):
                (self.root / f).unlink(missing_ok=True)
        if meta_path.is_file():
            self._check_resumable(read_meta(self.root))
        elif self.root.is_dir() and any(self.root.iterdir()):
            raise DatasetError(
                f"output folder '{self.root}' is not empty and is not an autolabel dataset; choose a new --out"
            )
        for split in ("train", "val"):
            (self.root / "images" / split).mkdir(parents=True, exist_ok=True)
            (self.root / "labels" / split).mkdir(parents=True, exist_ok=True)
        if not meta_path.is_file():
            meta = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "names": ontology.names,
                "ontology": ontology.to_dict(),
                "ontology_fingerprint": ontology.fingerprint(),
                "teacher": teacher,
                "split": {"val_fraction": self.val_fraction, "seed": self.seed, "by": "group"},
                "config": config or {},
                "sidecar": SIDECAR_FILE,
                "soft_scores": (
                    "per record: soft_scores[i][c] is the teacher's score in [0,1] for class c of box i; "
                    "box i is line i of the record's label file"
                ),
            }
            _atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode())
        self.done: set[str] = self._recover_sidecar()
        self._sidecar = (self.root / SIDECAR_FILE).open("ab")

    # -- resume ---------------------------------------------------------------------------------
    def _check_resumable(self, meta: dict[str, Any]) -> None:
        problems = []
        if meta.get("ontology_fingerprint") != self.ontology.fingerprint() or meta.get("names") != self.ontology.names:
            problems.append(f"ontology classes {meta.get('names')} (now {self.ontology.names})")
        if meta.get("teacher") != self.teacher:
            problems.append(f"teacher '{meta.get('teacher')}' (now '{self.teacher}')")
        split = meta.get("split", {})
        if split.get("val_fraction") != self.val_fraction or split.get("seed") != self.seed:
            problems.append(f"split {split} (now val_fraction={self.val_fraction}, seed={self.seed})")
        if problems:
            raise DatasetError(
                f"'{self.root}' was labeled with a different " + "; ".join(problems)
                + ": use a new --out, or --overwrite to relabel from scratch"
            )

    def _recover_sidecar(self) -> set[str]:
        """Truncate a torn last line left by a killed run; return the ids already committed."""
        p = self.root / SIDECAR_FILE
        done: set[str] = set()
        if not p.exists():
            p.touch()
            return done
        good = 0
        with p.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    done.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError):
                    break
                good += len(line)
        if good != p.stat().st_size:
            with p.open("r+b") as f:
                f.truncate(good)
        return done

    def is_done(self, frame_id: str) -> bool:
        return frame_id in self.done

    # -- writing --------------------------------------------------------------------------------
    def write_batch(self, frames: Sequence[Frame], detections: Sequence[sv.Detections],
                    uncertain: Sequence[sv.Detections] | None = None) -> None:
        """Write images and labels of a batch, then commit their sidecar records.

        ``uncertain``: per frame, the teacher's boxes below their class threshold; they go into the record's
        ``uncertain`` field (same keys as the hard boxes) and not into the label file.
        """
        import cv2

        lines: list[bytes] = []
        for k, (frame, det) in enumerate(zip(frames, detections)):
            if frame.id in self.done:
                continue
            split = assign_split(frame.group, self.val_fraction, self.seed)
            h, w = frame.image.shape[:2]
            suffix = frame.suffix if frame.copyable else ".jpg"
            img_rel = f"images/{split}/{frame.id}{suffix}"
            lbl_rel = f"labels/{split}/{frame.id}.txt"
            img_path = self.root / img_rel
            if frame.copyable:
                tmp = img_path.with_name(f".{img_path.name}.tmp")
                shutil.copyfile(frame.source, tmp)
                os.replace(tmp, img_path)
            else:
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                if not ok:
                    raise DatasetError(f"could not encode image {frame.source} as JPEG")
                _atomic_write_bytes(img_path, buf.tobytes())

            xyxy = det.xyxy.astype(np.float64)
            cls = det.class_id.astype(int)
            conf = det.confidence.astype(float)
            soft = np.asarray(det.data[SOFT_SCORES], dtype=float)
            cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
            bw, bh = (xyxy[:, 2] - xyxy[:, 0]) / w, (xyxy[:, 3] - xyxy[:, 1]) / h
            text = "".join(
                f"{c} {a:.6f} {b:.6f} {d:.6f} {e:.6f}\n" for c, a, b, d, e in zip(cls, cx, cy, bw, bh)
            )
            _atomic_write_bytes(self.root / lbl_rel, text.encode())
            rec = {
                "id": frame.id,
                "split": split,
                "image": img_rel,
                "label": lbl_rel,
                "source": str(Path(frame.source).resolve()),
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
                u = uncertain[k]
                rec["uncertain"] = {
                    "xyxy": np.round(u.xyxy.astype(np.float64), 2).tolist(),
                    "class_id": u.class_id.astype(int).tolist(),
                    "confidence": np.round(u.confidence.astype(float), 5).tolist(),
                    "soft_scores": np.round(np.asarray(u.data[SOFT_SCORES], dtype=float), 5).tolist(),
                }
                self.stats.uncertain += len(u)
            lines.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
            self.done.add(frame.id)
            self.stats.images += 1
            self.stats.boxes += len(cls)
            self.stats.per_split[split] += 1
        if lines:
            self._sidecar.write(b"".join(lines))
            self._sidecar.flush()
            os.fsync(self._sidecar.fileno())

    def close(self) -> None:
        if not self._sidecar.closed:
            self._sidecar.close()

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
        self.close()
        names = self.ontology.names
        counts = {"train": 0, "val": 0}
        boxes_per_class = dict.fromkeys(names, 0)
        uncertain_per_class = dict.fromkeys(names, 0)
        preview_recs: list[dict[str, Any]] = []
        coco_path = self.root / "annotations.coco.json"
        tmp_coco = coco_path.with_name(".annotations.coco.json.tmp")
        ann_id = 0
        with tmp_coco.open("w") as f:
            f.write(f'{{"info":{{"description":"autolabel","teacher":{json.dumps(self.teacher)}}},"licenses":[],')
            f.write('"categories":{},'.format(json.dumps([{"id": i, "name": n, "supercategory": "object"} for i, n in enumerate(names)])))
            f.write('"images":[')
            first = True
            for img_id, rec in enumerate(read_records(self.root)):
                counts[rec["split"]] += 1
                for c in rec["class_id"]:
                    boxes_per_class[names[c]] += 1
                for c in (rec.get("uncertain") or {}).get("class_id", []):
                    uncertain_per_class[names[c]] += 1
                if rec["class_id"] and len(preview_recs) < preview_count:
                    preview_recs.append(rec)
                f.write(("" if first else ",") + json.dumps(
                    {"id": img_id, "file_name": rec["image"], "width": rec["width"], "height": rec["height"]}))
                first = False
            f.write('],"annotations":[')
            first = True
            for img_id, rec in enumerate(read_records(self.root)):
                for (x1, y1, x2, y2), c, s, soft in zip(rec["xyxy"], rec["class_id"], rec["confidence"], rec["soft_scores"]):
                    ann = {"id": ann_id, "image_id": img_id, "category_id": c,
                           "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                           "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0, "score": s, "soft_scores": soft}
                    f.write(("" if first else ",") + json.dumps(ann, separators=(",", ":")))
                    first = False
                    ann_id += 1
            f.write("]}")
        os.replace(tmp_coco, coco_path)
        self._remove_orphans()

        # Ultralytics needs a val set; a tiny run may put every group in one split.
        train = "images/train" if counts["train"] else "images/val"
        val = "images/val" if counts["val"] else "images/train"
        import yaml

        data_yaml = {"train": train, "val": val, "nc": len(names), "names": dict(enumerate(names))}
        _atomic_write_bytes(
            self.root / "data.yaml",
            ("# written by autolabel; soft scores in autolabel.jsonl\n" + yaml.safe_dump(data_yaml, sort_keys=False)).encode(),
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
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
            **(extra or {}),
        }
        _atomic_write_bytes(self.root / "summary.json", json.dumps(summary, indent=2).encode())
        return summary

    def _remove_orphans(self) -> None:
        for split in ("train", "val"):
            for sub, ok_ids in (("labels", self.done), ("images", self.done)):
                d = self.root / sub / split
                for entry in os.scandir(d):
                    stem = entry.name.rsplit(".", 1)[0]
                    if entry.name.startswith(".") or stem not in ok_ids:
                        os.unlink(entry.path)

    def _write_preview(self, recs: list[dict[str, Any]], width: int = 480) -> None:
        """A grid of up to 4 columns of annotated samples; tiles keep the first sample's aspect ratio."""
        import cv2
        import supervision as sv

        tiles: list[np.ndarray] = []
        tile_h = None
        for rec in recs:
            img = cv2.imread(str(self.root / rec["image"]))
            if img is None:
                continue
            h, w = img.shape[:2]
            tile_h = tile_h or max(1, round(width * h / w))
            det = sv.Detections(
                xyxy=np.asarray(rec["xyxy"], dtype=np.float32).reshape(-1, 4),
                class_id=np.asarray(rec["class_id"], dtype=int),
                confidence=np.asarray(rec["confidence"], dtype=np.float32),
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
            _atomic_write_bytes(self.root / "preview.jpg", buf.tobytes())
