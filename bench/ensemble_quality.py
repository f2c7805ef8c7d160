"""Ensemble + TTA of the two COCO teachers versus each alone, on cctv_clinic against its human labels.

    python bench/ensemble_quality.py [--conf 0.001] [--limit N]

Labels ../shared/data/cctv_clinic/images with each configuration (human labels unused), then scores the
dataset with autolabel's evaluate (pycocotools), person class. Thresholds are lowered to --conf so mAP
sees the whole precision/recall curve.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings

from _common import OUT, ROOT, SHARED, need, table

from autolabel.labeling.label import LabelConfig, label
from autolabel.metrics import evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conf", type=float, default=0.001)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (quick runs)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = need(SHARED / "data" / "cctv_clinic", "cctv_clinic")
    v8 = f"yolo:{need(SHARED / 'weights' / 'yolov8n.pt', 'yolov8n.pt')}"
    v11 = f"yolo:{need(SHARED / 'weights' / 'yolo11n.pt', 'yolo11n.pt')}"
    src = data / "images"
    if args.limit:
        src = OUT / f"clinic_first_{args.limit}"
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        for p in sorted((data / "images").glob("*.jpg"))[: args.limit]:
            (src / p.name).symlink_to(p)
    configs = [
        ("yolov8n", [v8], False),
        ("yolo11n", [v11], False),
        ("yolov8n + TTA (flip)", [v8], True),
        ("yolo11n + TTA (flip)", [v11], True),
        ("ensemble WBF (yolov8n, yolo11n)", [v8, v11], False),
        ("ensemble WBF + TTA (flip)", [v8, v11], True),
    ]
    rows = []
    for name, teachers, tta in configs:
        out = OUT / f"ens_{name.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}"
        t0 = time.perf_counter()
        res = label(src, ROOT / "ontologies" / "security.yaml", teachers, out,
                    LabelConfig(conf=args.conf, tta=tta, overwrite=True, progress=False))
        secs = time.perf_counter() - t0
        r = evaluate(out, data, classes=["person"]).per_class["person"]
        rows.append([name, res.summary["images"], r["map50_95"], r["map50"], round(secs / res.summary["images"], 3)])
        print(rows[-1], flush=True)
    print(f"\nperson class, thresholds {args.conf}, {rows[0][1]} cctv_clinic images, 2-core CPU\n")
    print(table(["teacher", "images", "mAP50-95", "mAP50", "s/image"], rows))


if __name__ == "__main__":
    main()
