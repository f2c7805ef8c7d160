"""Scoring a bundle's models through the runtime (:mod:`autolabel.runtime`), i.e. exactly what the camera runs.

* Detection bundles: mAP of each model on the dataset's val split against the dataset's labels
  (:func:`score_bundle`), optionally keeping the predictions for the operating point.
* Classification bundles: top-1 of each model on the val records against the teacher's labels
  (:func:`score_classifier_bundle`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autolabel.data.record import Record
from autolabel.images import read_rgb

__all__ = ["score_bundle", "score_classifier_bundle", "val_records"]


def _coco(images: list[dict], names: list[str], anns: list[dict]) -> dict[str, Any]:
    return {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": "object"} for i, n in enumerate(names)]}


def val_records(data: Path, max_images: int | None) -> list[Record]:
    """The dataset's val-split records (every record when it has no val split), capped at ``max_images``."""
    from autolabel.data.dataset import read_records

    recs = [r for r in read_records(data) if r.split == "val"] or [r for r in read_records(data)]
    return recs[:max_images] if max_images else recs


def score_bundle(bundle: Path, data: Path, models: Sequence[str], max_images: int | None = None,
                 progress: bool = True, predictions: dict[str, list[Any]] | None = None) -> dict[str, dict[str, Any]]:
    """mAP of each bundle model on the dataset's val split, against the dataset's labels (via the runtime).

    ``predictions``: when given, filled with each model's predictions (conf 0.001) on the val images of
    :func:`val_records`, one :class:`~autolabel.compress.operating_point.ImagePreds` per image, so the
    operating point is chosen from this same pass instead of a second one.
    """
    from autolabel.compress.operating_point import ImagePreds
    from autolabel.core.progress import progress as prog
    from autolabel.metrics import evaluate
    from autolabel.runtime import load_bundle

    recs = val_records(data, max_images)
    if not recs:
        return {}
    names = load_bundle(bundle, model="fp32").names
    imgs = [{"id": i, "file_name": Path(r.image).name, "width": r.width, "height": r.height}
            for i, r in enumerate(recs)]
    gt_anns = []
    for i, r in enumerate(recs):
        for (x1, y1, x2, y2), c in zip(r.boxes.xyxy, r.boxes.class_id):
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": i, "category_id": int(c), "iscrowd": 0,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    work = Path(tempfile.mkdtemp())
    try:
        gt_path = work / "gt.json"
        gt_path.write_text(json.dumps(_coco(imgs, names, gt_anns)))
        out: dict[str, dict[str, Any]] = {}
        rgb = {}
        for m in models:
            det = load_bundle(bundle, model=m)
            anns = []
            t_total = 0.0
            for i, r in prog(list(enumerate(recs)), desc=f"scoring {m}", enabled=progress):
                im = rgb.get(i)
                if im is None:
                    im = read_rgb(data / r.image)
                    if len(recs) <= 400:  # decoded once for every model of a small val split
                        rgb[i] = im
                t0 = time.perf_counter()
                d = det.predict(im, conf=0.001)
                t_total += time.perf_counter() - t0
                if predictions is not None:
                    predictions.setdefault(m, []).append(ImagePreds(d.xyxy, d.scores, d.class_ids))
                for b, s, c in zip(d.xyxy.tolist(), d.scores.tolist(), d.class_ids.tolist()):
                    anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "score": float(s),
                                 "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])})
            pred_path = work / f"pred_{m}.json"
            pred_path.write_text(json.dumps(_coco(imgs, names, anns)))
            if not gt_anns:
                out[m] = {"images": len(recs), "mAP50-95": None, "mAP50": None, "note": "no labeled boxes in val"}
                continue
            r = evaluate(pred_path, gt_path)
            out[m] = {"images": len(recs), "against": "the dataset's labels (val split)",
                      "mAP50-95": round(float(r.map50_95), 5), "mAP50": round(float(r.map50), 5),
                      "ms_per_image": round(1000 * t_total / len(recs), 1)}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)




def score_classifier_bundle(bundle: Path, data: Path, val: Sequence[dict[str, Any]],
                            models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Top-1 of each classification bundle model on the ``val`` records (``image``, ``class_id``) of ``data``,
    against the teacher's labels; empty without val records."""
    from autolabel.runtime import load_bundle

    metrics: dict[str, Any] = {}
    for k in models:
        if not val:
            break
        det = load_bundle(bundle, model=k)
        t0, correct = time.perf_counter(), 0
        for r in val:
            correct += int(det.classify([read_rgb(data / r["image"])])[0].argmax() == int(r["class_id"]))
        metrics[k] = {"images": len(val), "against": "teacher labels (val)", "top1": round(correct / len(val), 5),
                      "ms_per_image": round(1000 * (time.perf_counter() - t0) / len(val), 1)}
    return metrics
