"""Image-level labeling: an image-level teacher (CLIP) labels whole images into a classification dataset.

:func:`label_classification` is the classification counterpart of :func:`autolabel.labeling.label.label`:
sources (images, videos, folders) are decoded a batch ahead by the same prefetching reader
(:func:`~autolabel.labeling.label.prefetch_batches`), the teacher's ``classify(images)`` gives each image a
probability per class, and every image is written into the classification dataset format of
:mod:`autolabel.students.classifier.dataset` (``<split>/<class>/<id>.jpg`` + ``autolabel_cls.jsonl``),
which :func:`autolabel.students.classifier.train.train_classifier` trains on. Resumable: a re-run labels
only what is not committed yet.

Example:
    >>> from autolabel.labeling.classify import label_classification
    >>> label_classification("photos/", "clip", "datasets/photos_cls", ontology="animals.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.config import ClassLabelConfig
from autolabel.core.errors import ConfigError, DatasetError
from autolabel.core.progress import ProgressBar
from autolabel.data.dataset import assign_split

if TYPE_CHECKING:
    from autolabel.core.ontology import Ontology

__all__ = ["ClassLabelConfig", "ClassLabelResult", "label_classification"]


@dataclass
class ClassLabelResult:
    """What :func:`label_classification` produced."""

    out: Path
    summary: dict[str, Any]


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

    from autolabel.data.jsonl import JsonlAppender, atomic_open, write_atomic
    from autolabel.labeling.label import prefetch_batches
    from autolabel.sources import SourceReport, estimate_total_frames, iter_frames
    from autolabel.students.classifier.dataset import (
        CLS_META_FILE,
        CLS_SIDECAR_FILE,
        class_dirs,
        cls_meta,
        committed_ids,
        read_cls_meta,
        read_cls_records,
    )

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
    dirs = class_dirs(names)
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
        meta = cls_meta(names, dirs, spec, split_cfg, cfg.min_confidence)
        write_atomic(meta_path, json.dumps(meta, indent=2))
    done = committed_ids(root)
    report = SourceReport()
    low_conf: list[str] = []
    frames = iter_frames(sources, cfg.sources, report=report, skip=lambda i: i in done)
    written = 0
    with JsonlAppender(side_path, fsync=True) as side, ProgressBar(
            total=max(total, len(done)), desc="labeling (classify)", enabled=cfg.progress, initial=len(done),
            unit="img") as bar:
        for batch in prefetch_batches(frames, cfg.batch_size, 2):
            probs = np.asarray(teacher.classify([f.image for f in batch]), dtype=np.float64)
            if probs.shape != (len(batch), c) or not np.isfinite(probs).all():
                raise DatasetError(
                    f"teacher '{spec}' returned probabilities of shape {probs.shape} for {len(batch)} images "
                    f"and {c} classes (expected finite values)"
                )
            recs = []
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
                    with open(frame.source, "rb") as src, atomic_open(dst, "wb") as f:
                        shutil.copyfileobj(src, f)
                else:
                    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, 95])
                    if not ok:
                        raise DatasetError(f"could not encode image {frame.source} as JPEG")
                    write_atomic(dst, buf.tobytes())
                recs.append({"id": frame.id, "split": split, "image": rel, "class_id": k,
                             "confidence": round(float(p[k]), 5), "probs": np.round(p, 5).tolist(),
                             "source": str(Path(frame.source).resolve())})
                done.add(frame.id)
            written += side.append(recs)  # commit point of the batch: images first, then their records
            bar.update(len(batch))
    per_split = {"train": 0, "val": 0}
    per_class = {s: dict.fromkeys(names, 0) for s in per_split}
    for rec in read_cls_records(root):
        per_split[rec["split"]] += 1
        per_class[rec["split"]][names[rec["class_id"]]] += 1
    summary = {"images": sum(per_split.values()), **per_split, "per_class": per_class,
               "written_this_run": written, "low_confidence_this_run": len(low_conf),
               "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}
    write_atomic(root / "summary.json", json.dumps(summary, indent=2))
    if summary["images"] == 0:
        raise DatasetError(
            f"no image was labeled into '{root}': {len(low_conf)} below min_confidence={cfg.min_confidence}, "
            f"{len(report.skipped)} unreadable"
        )
    return ClassLabelResult(out=root, summary=summary)

