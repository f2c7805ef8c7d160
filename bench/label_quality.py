"""Label quality of the closed-set teachers on cctv_clinic, scored against its human labels.

    python bench/label_quality.py [--weights yolov8n.pt yolo11n.pt]

The human labels are not read while labeling; `autolabel evaluate` scores the dataset afterwards.
Prints person mAP50-95 / mAP50 at the ontology's default thresholds and at thresholds lowered to 0.001.
"""

from __future__ import annotations

import argparse
import time

from _common import OUT, ROOT, SHARED, need, table

from autolabel.labeling.label import LabelConfig, label
from autolabel.metrics import evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", nargs="+", default=["yolov8n.pt", "yolo11n.pt"])
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    data = need(SHARED / "data" / "cctv_clinic", "cctv_clinic")
    rows = []
    for w in args.weights:
        weights = need(SHARED / "weights" / w, w)
        for conf in (None, 0.001):
            out = OUT / f"quality_{w.split('.')[0]}_{'default' if conf is None else conf}"
            t0 = time.perf_counter()
            res = label(data / "images", ROOT / "ontologies" / "security.yaml", f"yolo:{weights}", out,
                        LabelConfig(conf=conf, overwrite=True, batch_size=args.batch_size, progress=False))
            secs = time.perf_counter() - t0
            r = evaluate(out, data, classes=["person"])
            p = r.per_class["person"]
            rows.append([f"yolo:{w}", "ontology default (person 0.35)" if conf is None else str(conf),
                         res.summary["images"], p["pred"], p["gt"], p["map50_95"], p["map50"], round(secs, 1)])
    print(table(["teacher", "thresholds", "images", "person boxes", "human boxes", "mAP50-95", "mAP50", "label s"], rows))


if __name__ == "__main__":
    main()
