"""Classification students with vs without Hinton KD, on crops of COCO objects scored against HUMAN labels.

    python bench/classify_kd.py [--epochs 30] [--imgsz 64] [--seeds 0 1 2] [--classes 6] [--relabel]

1. The closed-set teacher ``yolo:yolov8n.pt`` labels coco128 (human labels unused) with an ontology of the
   most frequent human classes (counted from coco128's labels); images are split train/val by image
   (seeded, ``--val-fraction``).
2. MobileNetV3-small is trained from scratch (no ImageNet weights offline) on the teacher's train-split box
   crops, once with KD (the teacher's soft rows, T=4, α=0.5) and once on its hard labels only (CE): same
   epochs, seed, size, schedule.
3. Test set = crops of the held-out (val) images whose teacher box overlaps a human box (IoU >= 0.5) of an
   ontology class; that human box's class is the truth. Teacher boxes matching no human box, or a human
   box outside the ontology, are not test crops (they still count for "vs teacher", over all val crops).
   Metrics are of the last epoch (no model selection on the held-out images).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _common import OUT, SHARED, need, table

from autolabel.core.ontology import Ontology
from autolabel.data.dataset import read_meta, read_records
from autolabel.labeling.label import LabelConfig, label
from autolabel.students.classifier import ClassifierConfig, crop_key, train_classifier


def coco_names(data: Path) -> list[str]:
    import yaml

    names = yaml.safe_load((data / "data.yaml").read_text())["names"]
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def human_boxes(data: Path, stem: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    p = data / "labels" / f"{stem}.txt"
    rows = np.loadtxt(p, ndmin=2) if p.is_file() and p.stat().st_size else np.zeros((0, 5))
    cls = rows[:, 0].astype(int)
    cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1), cls


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-9)


def mean_std(v: list[float]) -> str:
    return f"{statistics.mean(v):.3f}" + (f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="yolov8n.pt")
    ap.add_argument("--classes", type=int, default=6, help="the N most frequent human classes of coco128")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val-fraction", type=float, default=0.3)
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--relabel", action="store_true", help="label again (default: reuse bench/out/cls_kd_coco128)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a loaded 2-core box)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    data = need(SHARED / "data" / "coco128", "coco128")
    weights = need(SHARED / "weights" / args.weights, args.weights)
    all_names = coco_names(data)
    counts = Counter(int(line.split()[0]) for p in (data / "labels").glob("*.txt") for line in p.read_text().splitlines() if line.strip())
    names = [all_names[c] for c, _ in counts.most_common(args.classes)]
    onto = Ontology.from_dict({"name": "coco-top", "classes": [{"name": n, "aliases": [n]} for n in names]})

    ds = OUT / "cls_kd_coco128"
    t0 = time.perf_counter()
    res = label(data / "images", onto, f"yolo:{weights}", ds,
                LabelConfig(val_fraction=args.val_fraction, seed=args.split_seed, overwrite=args.relabel, progress=False,
                            device="cpu"))
    label_s = time.perf_counter() - t0
    assert list(read_meta(ds).names) == names

    # human truth for the val (held-out) crops: IoU >= 0.5 with a human box of an ontology class
    human: dict[str, str] = {}
    unmatched = outside = 0
    teacher_right = 0
    for rec in read_records(ds):
        if rec.split != "val" or not len(rec.boxes):
            continue
        hb, hc = human_boxes(data, Path(rec.source).stem, rec.width, rec.height)
        tb = np.asarray(rec.boxes.xyxy, float).reshape(-1, 4)
        m = iou(tb, hb) if len(hb) else np.zeros((len(tb), 0))
        for j in range(len(tb)):
            if m.shape[1] == 0 or m[j].max() < 0.5:
                unmatched += 1
                continue
            cname = all_names[int(hc[m[j].argmax()])]
            if cname not in names:
                outside += 1
                continue
            human[crop_key(rec.id, j)] = cname
            teacher_right += names[rec.boxes.class_id[j]] == cname
    n_test = len(human)
    majority = Counter(human.values()).most_common(1)[0]

    rows = []
    for kd in (True, False):
        runs = []
        for seed in args.seeds:
            cfg = ClassifierConfig(model="mobilenet_v3_small", pretrained=False, epochs=args.epochs, batch=args.batch,
                                   imgsz=args.imgsz, soft=kd, seed=seed, device="cpu", progress=False)
            t = time.perf_counter()
            r = train_classifier(ds, OUT / "cls_kd_runs" / f"{'kd' if kd else 'ce'}_s{seed}", cfg, human_labels=human)
            runs.append((r.metrics["final"], time.perf_counter() - t, r.metrics))
        m0 = runs[0][2]
        rows.append([
            "KD (T=4, α=0.5)" if kd else "hard labels (CE)", *(mean_std([f[k] for f, _, _ in runs]) for k in
                                                            ("top1_human", "balanced_top1_human", "top1_teacher")), n_test, runs[0][0]["n"], m0["train_samples"], args.epochs,
            f"{statistics.mean(s for _, s, _ in runs):.0f}",
        ])
    print(f"coco128, teacher yolo:{args.weights} → {len(names)} classes {names}; labeling {label_s:.0f} s (0 when reused), "
          f"{res.summary['boxes']} teacher boxes; mobilenet_v3_small from scratch, {args.imgsz} px, batch "
          f"{args.batch}, seeds {args.seeds} (mean ± std), last-epoch model\n")
    print(table(["student", "top-1 vs human", "balanced top-1 vs human", "top-1 vs teacher", "n test crops (human)",
                 "n val crops (teacher)", "n train crops", "epochs", "s / run"], rows))
    print(f"\nreference on the same {n_test} test crops: teacher's own label vs human {teacher_right / n_test:.3f}; "
          f"always '{majority[0]}' {majority[1] / n_test:.3f}. Val teacher boxes not used as test crops: "
          f"{unmatched} without a human box at IoU>=0.5, {outside} matched to a class outside the ontology.")


if __name__ == "__main__":
    main()
