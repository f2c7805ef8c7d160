"""The bundle's operating point: per-class score thresholds chosen for the *student* on labeled frames.

The ontology's thresholds are the teacher's labeling thresholds (the confidence a teacher box needed to
become a label); they say nothing about the student's own confidences. Here the student's predictions (at
a low confidence, e.g. 0.001) are matched to labeled boxes and each class gets the threshold that

* maximizes F1 (the default),
* or is the **lowest** one whose precision reaches ``target_precision`` (the most people caught at "no more
  than 1 false alarm in 20"),
* or is the **highest** one whose recall reaches ``target_recall`` (the fewest false alarms at "catch 90 %").

Targets are one value for all classes or ``{class name: value}``. A class with fewer than ``min_boxes``
labeled boxes keeps its fallback threshold (the ontology's) and the record says so.

Matching: per image and class, predictions by descending score, each to the unmatched labeled box it
overlaps most (IoU >= 0.5, :func:`supervision.box_iou_batch`), as COCO does. A prediction's match does not
depend on the threshold (higher-scored predictions are matched first), so one pass gives the whole curve.
Candidate thresholds are the predictions' scores rounded *down* to 4 decimals, and the numbers at each are
counted with the runtime's own comparison (``float32 score >= float32 threshold``), so the precision and
recall written to ``bundle.json`` are those the runtime gives on these frames.

Example:
    >>> import numpy as np
    >>> from autolabel.compress.operating_point import ImagePreds, choose_thresholds
    >>> preds = [ImagePreds(np.array([[0, 0, 10, 10.]]), np.array([0.8], np.float32), np.array([0]))]
    >>> gts = [(np.array([[0, 0, 10, 10.]]), np.array([0]))]
    >>> choose_thresholds(preds, gts, ["person"], {"person": 0.35}, min_boxes=1)["person"]["threshold"]
    0.8
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from autolabel.config import check_targets
from autolabel.core.errors import ConfigError
from autolabel.data.record import Record

__all__ = ["CURVE_GRID", "MATCH_IOU", "MIN_BOXES", "ClassCurve", "ImagePreds", "build_curves", "check_targets",
           "choose_thresholds", "pick"]

MATCH_IOU = 0.5
"""A prediction is a true positive when it overlaps an unmatched labeled box of its class by this IoU."""

MIN_BOXES = 10
"""Fewest labeled boxes of a class to choose its threshold from; below, the fallback (ontology) threshold stays:
with 9 boxes one box moves recall by 11 points, and the chosen threshold would follow that noise."""

CURVE_GRID = tuple(round(0.001 if i == 0 else i / 100, 3) for i in range(100))
"""Thresholds at which curves are kept for the report (0.001, 0.01 … 0.99)."""

Target = float | Mapping[str, float] | None


class ImagePreds(NamedTuple):
    """One image's predictions: ``xyxy`` (N, 4), ``scores`` (N,), ``class_ids`` (N,)."""

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass
class ClassCurve:
    """One class's predictions over a set of frames: scores, whether each matched a labeled box, box count."""

    scores: np.ndarray  # (N,) float32, ascending
    tp: np.ndarray  # (N,) bool, same order
    boxes: int  # labeled boxes of the class

    def at(self, thresholds: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
        """Kept predictions, true positives, precision, recall and F1 at each threshold (runtime comparison)."""
        t = np.asarray(thresholds, np.float64).astype(np.float32)
        first = np.searchsorted(self.scores, t, side="left")  # scores[first:] >= t
        kept = len(self.scores) - first
        tp_before = np.concatenate([[0], np.cumsum(self.tp)])
        tp = tp_before[-1] - tp_before[first]
        precision = np.where(kept > 0, tp / np.maximum(kept, 1), 1.0)  # nothing kept: no false alarm
        recall = tp / self.boxes if self.boxes else np.zeros(len(t))
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
        return {"kept": kept, "tp": tp, "precision": precision, "recall": recall, "f1": f1}

    def candidates(self) -> np.ndarray:
        """Candidate thresholds, descending: every score rounded to 4 decimals, down where rounding would
        lift it above the score (a prediction stays kept at its own candidate, the number survives JSON
        unchanged, and a float32 0.7 reads 0.7, not 0.6999)."""
        q = np.round(self.scores.astype(np.float64), 4)
        q = np.where(q.astype(np.float32) <= self.scores, q, np.round(q - 1e-4, 4))
        q = np.unique(q)[::-1]
        return q[q > 0]


def _match_image(p: ImagePreds, gt_xyxy: np.ndarray, gt_cls: np.ndarray, iou: float) -> np.ndarray:
    """True-positive flag of each prediction of one image (greedy, by descending score, per class)."""
    import supervision as sv

    tp = np.zeros(len(p.scores), bool)
    for c in np.unique(p.class_ids):
        gi = np.flatnonzero(gt_cls == c)
        if not len(gi):
            continue
        pi = np.flatnonzero(p.class_ids == c)
        order = pi[np.argsort(-p.scores[pi], kind="stable")]
        ious = sv.box_iou_batch(np.asarray(p.xyxy, np.float64)[order], np.asarray(gt_xyxy, np.float64)[gi])
        taken = np.zeros(len(gi), bool)
        for k, row in enumerate(ious):
            row = np.where(taken, -1.0, row)
            j = int(row.argmax())
            if row[j] >= iou:
                taken[j] = True
                tp[order[k]] = True
    return tp


def build_curves(preds: Sequence[ImagePreds], gts: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int,
                 iou: float = MATCH_IOU) -> list[ClassCurve]:
    """Per class: every prediction's score and match over all images, and the labeled box count.

    Args:
        preds: per image, the model's predictions at a low confidence (e.g. 0.001).
        gts: per image (same order), labeled boxes ``(xyxy (M, 4), class_ids (M,))``.
        num_classes: number of classes (class ids are 0 … num_classes - 1).
    """
    assert len(preds) == len(gts), "one ground-truth entry per image"
    scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    tps: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    boxes = np.zeros(num_classes, int)
    for p, (gx, gc) in zip(preds, gts):
        gc = np.asarray(gc, int).reshape(-1)
        gx = np.asarray(gx, np.float64).reshape(-1, 4)
        boxes += np.bincount(gc[(gc >= 0) & (gc < num_classes)], minlength=num_classes)
        cid = np.asarray(p.class_ids, int).reshape(-1)
        p = ImagePreds(np.asarray(p.xyxy, np.float64).reshape(-1, 4), np.asarray(p.scores, np.float32).reshape(-1), cid)
        tp = _match_image(p, gx, gc, iou)
        for c in np.unique(cid):
            if 0 <= c < num_classes:
                scores[c].append(p.scores[cid == c])
                tps[c].append(tp[cid == c])
    out = []
    for c in range(num_classes):
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0, np.float32)
        t = np.concatenate(tps[c]) if tps[c] else np.zeros(0, bool)
        order = np.argsort(s, kind="stable")
        out.append(ClassCurve(s[order].astype(np.float32), t[order], int(boxes[c])))
    return out


def _point(curve: ClassCurve, t: float) -> dict[str, Any]:
    m = curve.at([t])
    return {"threshold": round(float(t), 4), "precision": round(float(m["precision"][0]), 4),
            "recall": round(float(m["recall"][0]), 4), "f1": round(float(m["f1"][0]), 4)}


def pick(curve: ClassCurve, fallback: float, target_precision: float | None = None,
         target_recall: float | None = None, min_boxes: int = MIN_BOXES) -> dict[str, Any]:
    """One class's operating point: threshold, precision, recall, F1, labeled boxes, the rule, a note.

    ``fallback`` is kept (``rule: "fallback"``) when the class has fewer than ``min_boxes`` labeled boxes or
    no prediction; ``at_fallback`` always gives the numbers at the fallback threshold for comparison.
    """
    if target_precision is not None and target_recall is not None:
        raise ConfigError("a class takes a target precision or a target recall, not both")
    at_fallback = _point(curve, fallback)
    rec: dict[str, Any]
    cand = curve.candidates()
    if curve.boxes < min_boxes or not curve.tp.any():  # no match: every threshold gives F1 0, none is better
        why = (f"only {curve.boxes} labeled box{'es' if curve.boxes != 1 else ''} (fewer than {min_boxes})"
               if curve.boxes < min_boxes else "no prediction matches a labeled box" if len(cand)
               else "no prediction above 0.001")
        rec = {**at_fallback, "rule": "fallback", "note": f"{why}: kept the fallback threshold {fallback:g}"}
        return {**rec, "boxes": curve.boxes, "at_fallback": at_fallback}
    m = curve.at(cand)  # cand descending: index 0 is the highest threshold
    note = None
    if target_precision is not None:
        ok = np.flatnonzero(m["precision"] >= target_precision - 1e-12)
        rule = f"precision >= {target_precision:g}"
        if len(ok):
            i = int(ok[-1])  # the lowest threshold that still meets it: the most recall
        else:
            i = int(np.argmax(m["precision"]))
            note = f"no threshold reaches precision {target_precision:g}; took the most precise one"
    elif target_recall is not None:
        ok = np.flatnonzero(m["recall"] >= target_recall - 1e-12)
        rule = f"recall >= {target_recall:g}"
        if len(ok):
            i = int(ok[0])  # the highest threshold that still meets it: the fewest false alarms
        else:
            i = len(cand) - 1
            note = f"no threshold reaches recall {target_recall:g}; took the lowest (most recall)"
    else:
        i, rule = int(np.argmax(m["f1"])), "max F1"  # ties: the highest threshold
    rec = {**_point(curve, float(cand[i])), "rule": rule}
    if note:
        rec["note"] = note
    return {**rec, "boxes": curve.boxes, "at_fallback": at_fallback}


def _per_class(target: Target, names: Sequence[str], what: str) -> dict[str, float | None]:
    if target is None:
        return dict.fromkeys(names)
    if isinstance(target, Mapping):
        unknown = sorted(set(target) - set(names))
        if unknown:
            raise ConfigError(f"{what} names {unknown}, which are not classes of the model {list(names)}")
        return {n: (None if target.get(n) is None else float(target[n])) for n in names}
    return dict.fromkeys(names, float(target))


def choose_thresholds(preds: Sequence[ImagePreds], gts: Sequence[tuple[np.ndarray, np.ndarray]],
                      names: Sequence[str], fallback: Mapping[str, float], *, target_precision: Target = None,
                      target_recall: Target = None, min_boxes: int = MIN_BOXES, iou: float = MATCH_IOU,
                      curves: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each class's operating point (:func:`pick`) from predictions and labeled boxes of the same images.

    Args:
        preds: per image, the model's predictions at a low confidence.
        gts: per image, labeled ``(xyxy, class_ids)`` in the model's class ids.
        names: the model's class names.
        fallback: class name -> threshold kept for classes with too few labeled boxes.
        target_precision, target_recall: one value for all classes, ``{name: value}``, or None (max F1).
        curves: when given, filled with each class's precision / recall / F1 at :data:`CURVE_GRID` (for plots).

    Returns:
        class name -> operating point record.
    """
    check_targets(target_precision, target_recall)
    tp_ = _per_class(target_precision, names, "target_precision")
    tr_ = _per_class(target_recall, names, "target_recall")
    out = {}
    for n, curve in zip(names, build_curves(preds, gts, len(names), iou)):
        out[n] = pick(curve, float(fallback[n]), tp_[n], tr_[n], min_boxes)
        if curves is not None and curve.boxes:
            m = curve.at(CURVE_GRID)
            curves[n] = {k: [round(float(x), 4) for x in m[k]] for k in ("precision", "recall", "f1")}
    return out


# ----------------------------------------------------------------------------------------------------------
# labeled boxes for the scored images, and the bundle.json record
# ----------------------------------------------------------------------------------------------------------

CURVES_FILE = "operating_curves.json"
"""Bundle file with each model's per-class precision / recall / F1 at :data:`CURVE_GRID` (for the report)."""


def record_stem(rec: Record) -> str:
    """The file-name stem a dataset record is matched to human labels by (as ``autolabel evaluate`` does):
    the original image's stem, or the frame's id for a video frame."""
    return rec.stem


def _xywh_to_xyxy(b: Sequence[float]) -> list[float]:
    return [b[0], b[1], b[0] + b[2], b[1] + b[3]]


def human_boxes(gt: Any, names: Sequence[str]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Human labels (a YOLO folder / data.yaml or a COCO JSON) per image stem, in the model's class ids.

    Returns (stem -> (xyxy, class_ids), number of labeled classes that are model classes).

    Raises:
        DatasetError: the labels are missing or malformed.
        ConfigError: no labeled class is a class of the model.
    """
    from autolabel.metrics import load_ground_truth

    g = load_ground_truth(gt)
    index = {n: i for i, n in enumerate(names)}
    shared = [n for n in g.names if n in index]
    if not shared:
        raise ConfigError(f"no class of the human labels {g.names} is a class of the model {list(names)[:10]}"
                          f"{' …' if len(names) > 10 else ''}; the labels' names must be the model's")
    per: dict[str, tuple[list[list[float]], list[int]]] = {s: ([], []) for s in g.sizes}
    for stem, name, xywh, _ in g.boxes:
        if name in index and stem in per:
            per[stem][0].append(_xywh_to_xyxy(xywh))
            per[stem][1].append(index[name])
    return {s: (np.asarray(b, np.float64).reshape(-1, 4), np.asarray(c, int)) for s, (b, c) in per.items()}, len(shared)


def dataset_boxes(recs: Sequence[Record], names: Sequence[str],
                  dataset_names: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The dataset's (teacher's) boxes of each record, in the model's class ids (matched by class name)."""
    to_model = {i: names.index(n) for i, n in enumerate(dataset_names) if n in names}
    out = []
    for r in recs:
        keep = [(b, to_model[int(c)]) for b, c in zip(r.boxes.xyxy, r.boxes.class_id) if int(c) in to_model]
        out.append((np.asarray([b for b, _ in keep], np.float64).reshape(-1, 4), np.asarray([c for _, c in keep], int)))
    return out


def default_fallback(meta: Mapping[str, Any], model: str) -> dict[str, float]:
    """The thresholds a bundle model uses now: its own chosen ones, else the bundle's, else ``conf``."""
    post = meta.get("postprocessing") or {}
    th = {**(post.get("thresholds") or {}), **((post.get("model_thresholds") or {}).get(model) or {})}
    return {n: float(th.get(n, post.get("conf", 0.25))) for n in meta["names"]}


def write_record(meta: dict[str, Any], points: Mapping[str, Mapping[str, Mapping[str, Any]]], *, source: str,
                 images: int, min_boxes: int, target_precision: Target, target_recall: Target) -> dict[str, Any]:
    """Put chosen operating points into a bundle's metadata (in place) and return it.

    ``postprocessing.model_thresholds[model]`` holds each model's thresholds (the runtime uses the loaded
    model's); ``postprocessing.thresholds`` the shipped (default) model's; ``operating_point`` how they were
    chosen, with each class's precision / recall / F1 at the chosen and at the fallback threshold.
    """
    from autolabel.runtime import default_model

    models = meta["models"]
    shipped = default_model(models)
    post = meta.setdefault("postprocessing", {})
    chosen = {m: {n: p["threshold"] for n, p in pts.items()} for m, pts in points.items() if m in models}
    post["model_thresholds"] = chosen
    if shipped in chosen:
        post["thresholds"] = dict(chosen[shipped])
    meta["operating_point"] = {
        "source": source, "images": int(images), "iou": MATCH_IOU, "min_boxes": int(min_boxes),
        "target_precision": dict(target_precision) if isinstance(target_precision, Mapping) else target_precision,
        "target_recall": dict(target_recall) if isinstance(target_recall, Mapping) else target_recall,
        "shipped_model": shipped,
        "models": {m: {n: dict(p) for n, p in pts.items()} for m, pts in points.items() if m in models},
    }
    return meta


def format_points(meta: Mapping[str, Any]) -> str:
    """A plain-text table of each model's chosen thresholds and what they give, against the fallback's."""
    op = meta.get("operating_point") or {}
    rows = [f"operating point: {op.get('source')}, {op.get('images')} images, IoU {op.get('iou')}",
            f"{'model':<6}{'class':<16}{'boxes':>6}  {'threshold':>9}{'P':>7}{'R':>7}{'F1':>7}   "
            f"{'was':>6}{'P':>7}{'R':>7}{'F1':>7}  rule"]
    for m, pts in (op.get("models") or {}).items():
        for n, p in pts.items():
            if not p.get("boxes"):
                continue
            f = p.get("at_fallback") or {}
            rows.append(f"{m:<6}{n[:15]:<16}{p['boxes']:>6}  {p['threshold']:>9.4f}{p['precision']:>7.3f}"
                        f"{p['recall']:>7.3f}{p['f1']:>7.3f}   {f.get('threshold', float('nan')):>6.3f}"
                        f"{f.get('precision', float('nan')):>7.3f}{f.get('recall', float('nan')):>7.3f}"
                        f"{f.get('f1', float('nan')):>7.3f}  {p['rule']}" + (f" ({p['note']})" if p.get("note") else ""))
    skipped = sorted({n for pts in (op.get("models") or {}).values() for n, p in pts.items() if not p.get("boxes")})
    if skipped:
        rows.append(f"{len(skipped)} class(es) without labeled boxes keep their thresholds: "
                    f"{', '.join(skipped[:8])}{' …' if len(skipped) > 8 else ''}")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------------------
# re-picking a bundle's thresholds on the user's own labeled frames
# ----------------------------------------------------------------------------------------------------------

_IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jfif"}


def _gt_images(gt: Any) -> dict[str, Any]:
    """Image files of human labels by stem: under ``images/`` of a YOLO folder (or beside its data.yaml), or
    the COCO JSON's ``file_name`` relative to the JSON's folder (or its ``images/``)."""
    import json
    from pathlib import Path

    p = Path(gt).expanduser()
    if p.is_file() and p.suffix == ".json":
        data = json.loads(p.read_text())
        out = {}
        for im in data.get("images", []):
            for cand in (p.parent / im["file_name"], p.parent / "images" / im["file_name"],
                         p.parent / "images" / Path(im["file_name"]).name):
                if cand.is_file():
                    out[Path(im["file_name"]).stem] = cand
                    break
        return out
    base = p.parent if p.is_file() else p
    return {f.stem: f for f in sorted((base / "images").rglob("*")) if f.suffix.lower() in _IMG_EXT}


def retune_bundle(bundle: Any, gt: Any, *, target_precision: Target = None, target_recall: Target = None,
                  min_boxes: int = MIN_BOXES, threads: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Re-pick a bundle's per-class thresholds on human-labeled frames and rewrite its bundle.json in place.

    Every model of the bundle runs (through :mod:`autolabel.runtime`: no torch) at conf 0.001 on each labeled
    image; each model gets its own thresholds (:func:`choose_thresholds`); classes with fewer than
    ``min_boxes`` labeled boxes keep the threshold the model uses now. ``bundle.json`` is replaced atomically
    (a bundle on a camera never holds a half-written file), the curves file too.

    Example:
        >>> meta = retune_bundle("bundle/", "my_frames/", target_precision=0.95)     # doctest: +SKIP
        >>> meta["postprocessing"]["thresholds"]                                        # doctest: +SKIP

    Returns:
        The new bundle metadata.

    Raises:
        BundleError: the bundle is unreadable. DatasetError: no labeled image found. ConfigError: bad targets
        or label classes that are not the model's.
    """
    import json
    import os
    import tempfile
    from pathlib import Path

    from autolabel.core.errors import DatasetError
    from autolabel.core.progress import progress as prog
    from autolabel.runtime import BUNDLE_FILE, load_bundle, read_image

    check_targets(target_precision, target_recall)
    if int(min_boxes) < 1:
        raise ConfigError(f"min_boxes must be >= 1, found {min_boxes}")
    root = Path(bundle).expanduser()
    first = load_bundle(root, threads=threads)  # validates bundle.json
    meta = json.loads((root / BUNDLE_FILE).read_text())
    if first.task != "detect":
        raise ConfigError(f"bundle '{root}' is a {first.task} model; thresholds are for detection bundles")
    names = list(meta["names"])
    human, _ = human_boxes(gt, names)
    files = _gt_images(gt)
    stems = [s for s in sorted(human) if s in files]
    if not stems:
        raise DatasetError(f"no image of the human labels '{gt}' was found (looked under its images/ folder)")
    dets = {m: (first if m == first.model else load_bundle(root, model=m, threads=threads)) for m in meta["models"]}
    preds: dict[str, list[ImagePreds]] = {m: [] for m in dets}
    for s in prog(stems, desc="predicting", enabled=progress):
        im = read_image(files[s])
        for m, det in dets.items():
            d = det.predict(im, conf=0.001)
            preds[m].append(ImagePreds(d.xyxy, d.scores, d.class_ids))
    gts = [human[s] for s in stems]
    points, curves = {}, {}
    for m in dets:
        curves[m] = {}
        points[m] = choose_thresholds(preds[m], gts, names, default_fallback(meta, m), target_precision=target_precision,
                                      target_recall=target_recall, min_boxes=int(min_boxes), curves=curves[m])
    source = f"human labels ({Path(gt).name})"
    write_record(meta, points, source=source, images=len(stems), min_boxes=int(min_boxes),
                 target_precision=target_precision, target_recall=target_recall)
    from autolabel.runtime import validate_meta

    validate_meta(meta, root)  # what is written must load
    for name, text in ((CURVES_FILE, json.dumps({"grid": list(CURVE_GRID), "source": source, "models": curves})),
                       (BUNDLE_FILE, json.dumps(meta, indent=2))):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=root)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return meta
