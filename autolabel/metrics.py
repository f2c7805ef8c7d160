"""Scoring labels against human labels: COCO mAP50-95 and mAP50 per class.

Predictions: an autolabel dataset folder (its sidecar confidences are the scores) or a COCO results JSON
(a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``; ``image_id`` may be the COCO
image id of the ground truth or the image's file name / stem). Ground truth: a YOLO dataset (``data.yaml``,
or a folder with ``images/`` and ``labels/``) or a COCO annotations JSON.

Images are matched by file stem (the sidecar's original source file name for autolabel datasets), classes
by name, or through ``class_map`` (``{"pred name": "gt name"}``) when names differ. Ground-truth images
without predictions count as misses; predicted images absent from the ground truth are ignored and
counted. The numbers are pycocotools' (maxDets 100, area all), so they agree with published COCO tools.

Example:
    >>> r = evaluate("datasets/clinic", gt="../shared/data/cctv_clinic")     # doctest: +SKIP
    >>> r.per_class["person"]["map50_95"], r.map50                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.core.errors import ConfigError, DatasetError

__all__ = ["EvalResult", "evaluate", "format_table", "load_ground_truth", "load_predictions"]

_IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jfif"}


@dataclass
class _Set:
    """Images keyed by stem: (width, height), boxes as (stem, class name, xywh, score)."""

    names: list[str]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: list[tuple[str, str, list[float], float]] = field(default_factory=list)


@dataclass
class EvalResult:
    """mAP numbers. ``per_class[name]`` holds ``map50_95``, ``map50``, ``gt`` and ``pred`` counts."""

    per_class: dict[str, dict[str, float]]
    map50_95: float
    map50: float
    images: int
    unmatched_pred_images: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "map50_95": self.map50_95,
            "map50": self.map50,
            "images": self.images,
            "unmatched_pred_images": self.unmatched_pred_images,
            "per_class": self.per_class,
        }


def _yolo_names(data_yaml: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as e:
        raise DatasetError(f"{data_yaml}: invalid YAML ({str(e).splitlines()[0]})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise DatasetError(f"{data_yaml}: expected a 'names' list or mapping")


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        # YOLO labels are relative to the EXIF-upright image, as Ultralytics reads it
        orient = im.getexif().get(0x0112, 1)
        w, h = im.size
        return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def _load_yolo(root: Path) -> _Set:
    """YOLO ground truth: a data.yaml (its train/val folders), or a folder with images/ and labels/."""
    if root.is_file() and root.suffix in {".yaml", ".yml"}:
        yaml_path, base = root, root.parent
    else:
        yaml_path, base = root / "data.yaml", root
    if not yaml_path.is_file():
        raise DatasetError(f"'{root}' has no data.yaml; expected a YOLO dataset (data.yaml, images/, labels/)")
    names = _yolo_names(yaml_path)
    image_dirs = sorted({p.parent for p in (base / "images").rglob("*") if p.suffix.lower() in _IMG_EXT})
    if not image_dirs:
        raise DatasetError(f"'{base / 'images'}' holds no images")
    s = _Set(names=names)
    for d in image_dirs:
        rel = d.relative_to(base / "images")
        for img in sorted(d.iterdir()):
            if img.suffix.lower() not in _IMG_EXT:
                continue
            w, h = _image_size(img)
            s.sizes[img.stem] = (w, h)
            lbl = base / "labels" / rel / f"{img.stem}.txt"
            if not lbl.is_file():
                continue
            for line in lbl.read_text().splitlines():
                parts = line.split()
                if len(parts) < 5:
                    continue
                c, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:5])
                if not 0 <= c < len(names):
                    raise DatasetError(f"{lbl}: class {c} outside the {len(names)} names of {yaml_path}")
                s.boxes.append((img.stem, names[c], [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h], 1.0))
    return s


def _load_coco_gt(path: Path) -> tuple[_Set, dict[int, str]]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise DatasetError(f"{path}: expected COCO annotations with 'images', 'annotations', 'categories'")
    cats = {c["id"]: c["name"] for c in data["categories"]}
    s = _Set(names=[cats[k] for k in sorted(cats)])
    id2stem = {}
    for im in data["images"]:
        stem = Path(im["file_name"]).stem
        id2stem[im["id"]] = stem
        s.sizes[stem] = (int(im["width"]), int(im["height"]))
    for a in data["annotations"]:
        if a.get("iscrowd", 0):
            continue
        s.boxes.append((id2stem[a["image_id"]], cats[a["category_id"]], list(map(float, a["bbox"])), float(a.get("score", 1.0))))
    return s, id2stem


def load_ground_truth(gt: str | Path) -> _Set:
    """Load human labels from a YOLO dataset or a COCO JSON file."""
    p = Path(gt)
    if not p.exists():
        raise DatasetError(f"ground truth '{gt}' not found (expected a YOLO dataset folder, data.yaml or COCO JSON)")
    if p.is_file() and p.suffix == ".json":
        return _load_coco_gt(p)[0]
    return _load_yolo(p)


def load_predictions(pred: str | Path | Mapping[str, Any], gt_coco: Path | None = None,
                     names: Sequence[str] | None = None) -> _Set:
    """Load predictions from an autolabel dataset folder, a COCO results / annotations JSON, or memory.

    In memory, ``pred`` maps an image (its file name stem, as in the ground truth) to detections with
    ``xyxy``, ``confidence`` and ``class_id`` (a ``supervision.Detections``, an
    ``autolabel.runtime.Detections``), and ``names`` gives the class names of ``class_id``.
    """
    if isinstance(pred, Mapping):
        return _from_memory(pred, names)
    p = Path(pred)
    if not p.exists():
        raise DatasetError(f"predictions '{pred}' not found (expected an autolabel dataset folder or a COCO JSON)")
    if p.is_dir():
        from autolabel.data.dataset import META_FILE, read_meta, read_records

        if not (p / META_FILE).is_file():
            return _load_yolo(p)  # a plain YOLO dataset: every box scores 1.0
        names = list(read_meta(p).names)
        s = _Set(names=names)
        for rec in read_records(p, len(names)):
            s.sizes[rec.stem] = (rec.width, rec.height)
            for (x1, y1, x2, y2), c, sc in zip(rec.boxes.xyxy, rec.boxes.class_id, rec.boxes.confidence):
                s.boxes.append((rec.stem, names[c], [x1, y1, x2 - x1, y2 - y1], float(sc)))
        return s
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: not valid JSON ({e})") from None
    if isinstance(data, dict):
        return _load_coco_gt(p)[0]
    if not isinstance(data, list):
        raise DatasetError(f"{p}: expected a COCO results list or a COCO annotations file")
    id2stem: dict[Any, str] = {}
    cats: dict[int, str] = {}
    if gt_coco is not None:
        _, id2stem = _load_coco_gt(gt_coco)
        cats = {c["id"]: c["name"] for c in json.loads(gt_coco.read_text())["categories"]}
    s = _Set(names=sorted(set(cats.values())))
    for r in data:
        if not {"image_id", "category_id", "bbox", "score"} <= set(r):
            raise DatasetError(f"{p}: result {r} lacks image_id, category_id, bbox or score")
        stem = id2stem.get(r["image_id"], Path(str(r["image_id"])).stem)
        name = cats.get(r["category_id"], r.get("category_name", str(r["category_id"])))
        s.boxes.append((stem, name, list(map(float, r["bbox"])), float(r["score"])))
    s.names = sorted({b[1] for b in s.boxes} | set(s.names))
    return s


def _from_memory(pred: Mapping[str, Any], names: Sequence[str] | None) -> _Set:
    if names is None:
        raise ConfigError("evaluate: in-memory predictions need names= (the class names of class_id)")
    s = _Set(names=list(names))
    for stem, d in pred.items():
        try:
            xyxy, conf, cid = (np.asarray(d.xyxy, float).reshape(-1, 4), np.asarray(d.confidence, float).reshape(-1),
                               np.asarray(d.class_id, int).reshape(-1))
        except AttributeError:
            raise ConfigError(f"evaluate: predictions for '{stem}' are a {type(d).__name__}; expected detections "
                              "with xyxy, confidence and class_id (supervision.Detections)") from None
        for (x1, y1, x2, y2), sc, c in zip(xyxy.tolist(), conf.tolist(), cid.tolist()):
            if not 0 <= c < len(names):
                raise ConfigError(f"evaluate: class_id {c} of '{stem}' is outside names ({len(names)} classes)")
            s.boxes.append((str(stem), names[c], [x1, y1, x2 - x1, y2 - y1], float(sc)))
        s.sizes.setdefault(str(stem), (0, 0))
    return s


def evaluate(
    pred: str | Path | Mapping[str, Any],
    gt: str | Path,
    class_map: Mapping[str, str] | None = None,
    classes: list[str] | None = None,
    images: Collection[str] | None = None,
    names: Sequence[str] | None = None,
) -> EvalResult:
    """COCO mAP of ``pred`` against human labels ``gt``, per class and averaged over scored classes.

    Args:
        pred: autolabel dataset folder, YOLO dataset, COCO results/annotations JSON, or predictions in memory:
            ``{image stem: detections}`` (``supervision.Detections`` or ``autolabel.runtime.Detections``)
            with ``names``, so no file needs writing.
        gt: YOLO dataset folder / data.yaml, or COCO annotations JSON.
        class_map: prediction class name → ground-truth class name, for names that differ.
        classes: ground-truth classes to score (default: those that appear in the ground truth).
        images: score only these ground-truth images (file name stems), e.g. a val split; default all.
        names: class names of the in-memory detections' ``class_id``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gtp = Path(gt)
    g = load_ground_truth(gt)
    if images is not None:
        keep = set(images) & set(g.sizes)
        if not keep:
            raise DatasetError(f"none of the {len(set(images))} images to score is in the ground truth '{gt}'")
        g.sizes = {k: v for k, v in g.sizes.items() if k in keep}
        g.boxes = [b for b in g.boxes if b[0] in keep]
    p = load_predictions(pred, gt_coco=gtp if gtp.suffix == ".json" else None, names=names)
    cmap = dict(class_map or {})
    bad = [k for k in cmap if k not in p.names]
    if bad:
        raise ConfigError(f"class map names {bad} are not prediction classes {p.names}")
    bad = [v for v in cmap.values() if v not in g.names]
    if bad:
        raise ConfigError(f"class map targets {bad} are not ground-truth classes {g.names}")
    present = sorted({b[1] for b in g.boxes}, key=g.names.index)
    scored = classes or present
    unknown = [c for c in scored if c not in g.names]
    if unknown:
        raise ConfigError(f"classes {unknown} are not ground-truth classes {g.names}")
    mapped_pred = {cmap.get(n, n) for n in p.names}
    if not mapped_pred & set(scored):
        raise ConfigError(
            f"no prediction class {p.names} matches a ground-truth class {scored}; pass a class map "
            "(--map PRED=GT)"
        )
    cat_ids = {n: i + 1 for i, n in enumerate(scored)}
    stems = sorted(g.sizes)
    img_ids = {s: i + 1 for i, s in enumerate(stems)}
    gt_dict: dict[str, Any] = {
        "images": [{"id": img_ids[s], "width": g.sizes[s][0], "height": g.sizes[s][1]} for s in stems],
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
        "annotations": [],
    }
    for k, (stem, name, xywh, _) in enumerate(b for b in g.boxes if b[1] in cat_ids):
        gt_dict["annotations"].append(
            {"id": k + 1, "image_id": img_ids[stem], "category_id": cat_ids[name], "bbox": xywh,
             "area": xywh[2] * xywh[3], "iscrowd": 0}
        )
    dets = []
    unmatched = {b[0] for b in p.boxes if b[0] not in img_ids} | {s for s in p.sizes if s not in img_ids}
    for stem, name, xywh, score in p.boxes:
        name = cmap.get(name, name)
        if stem in img_ids and name in cat_ids:
            dets.append({"image_id": img_ids[stem], "category_id": cat_ids[name], "bbox": xywh, "score": score})
    matched = len(set(p.sizes) & set(img_ids)) if p.sizes else len({b[0] for b in p.boxes} & set(img_ids))
    if matched == 0:
        raise DatasetError(
            f"no predicted image matches a ground-truth image by file name (e.g. prediction "
            f"{next(iter(p.sizes or {b[0]: 0 for b in p.boxes}), None)!r} vs ground truth {stems[0]!r})"
        )
    per_class: dict[str, dict[str, float]] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval(coco_gt, coco_dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            prec = ev.eval["precision"]  # [T, R, K, A, M]
    for name, cid in cat_ids.items():
        k = cid - 1
        n_gt = sum(1 for b in g.boxes if b[1] == name)
        n_pred = sum(1 for d in dets if d["category_id"] == cid)
        if dets:
            pk = prec[:, :, k, 0, -1]
            ap = float(np.mean(pk[pk > -1])) if (pk > -1).any() else 0.0
            p50 = prec[0, :, k, 0, -1]
            ap50 = float(np.mean(p50[p50 > -1])) if (p50 > -1).any() else 0.0
        else:
            ap = ap50 = 0.0
        per_class[name] = {"map50_95": ap, "map50": ap50, "gt": n_gt, "pred": n_pred}
    return EvalResult(
        per_class=per_class,
        map50_95=float(np.mean([v["map50_95"] for v in per_class.values()])),
        map50=float(np.mean([v["map50"] for v in per_class.values()])),
        images=len(stems),
        unmatched_pred_images=len(unmatched),
    )


def format_table(result: EvalResult) -> str:
    """A plain-text table of per-class and mean mAP."""
    rows = [f"{'class':<16}{'gt':>7}{'pred':>8}{'mAP50-95':>10}{'mAP50':>8}"]
    for name, v in result.per_class.items():
        rows.append(f"{name:<16}{v['gt']:>7}{v['pred']:>8}{v['map50_95']:>10.3f}{v['map50']:>8.3f}")
    rows.append(f"{'all':<16}{'':>7}{'':>8}{result.map50_95:>10.3f}{result.map50:>8.3f}")
    rows.append(f"images: {result.images}" + (
        f" (+{result.unmatched_pred_images} predicted images not in the ground truth, ignored)"
        if result.unmatched_pred_images else ""))
    return "\n".join(rows)
