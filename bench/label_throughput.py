"""Labeling throughput and peak memory: `autolabel label` versus a plain one-image-at-a-time loop.

    python bench/label_throughput.py [--weights yolov8n.pt] [--sizes 500 2000]

Input: the frames of the two videos in ../shared/data/videos (1,771 frames, 768x432) followed by
cctv_clinic images (1920x1080) up to 2,000 images, extracted once to bench/out/frames/. Every
measurement runs in a fresh subprocess and reports its own peak RSS (ru_maxrss), so runs don't share
memory. The plain loop is what autodistill-style labelers do: read one file, run the teacher on it,
write its label file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import OUT, ROOT, SHARED, need, table


def prepare(n: int) -> Path:
    import cv2

    frames = OUT / "frames"
    if frames.is_dir() and len(list(frames.iterdir())) >= n:
        return frames
    shutil.rmtree(frames, ignore_errors=True)
    frames.mkdir(parents=True)
    k = 0
    for v in sorted((need(SHARED / "data" / "videos", "videos")).glob("*.mp4")):
        cap = cv2.VideoCapture(str(v))
        while k < n:
            ok, im = cap.read()
            if not ok:
                break
            cv2.imwrite(str(frames / f"{k:05d}_{v.stem}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, 95])
            k += 1
    for p in sorted((SHARED / "data" / "cctv_clinic" / "images").glob("*.jpg")):
        if k >= n:
            break
        shutil.copy(p, frames / f"{k:05d}_{p.name}")
        k += 1
    return frames


def subset(frames: Path, n: int) -> Path:
    d = OUT / f"subset_{n}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for p in sorted(frames.iterdir())[:n]:
        os.symlink(p, d / p.name)
    return d


def worker(mode: str, src: str, weights: str, out: str, batch: int) -> None:
    import cv2
    import numpy as np

    from autolabel.core.ontology import load_ontology
    from autolabel.labeling.label import LabelConfig, label

    onto = load_ontology(ROOT / "ontologies" / "security.yaml")
    t0 = time.perf_counter()
    if mode == "autolabel":
        res = label(src, onto, f"yolo:{weights}", out, LabelConfig(batch_size=batch, overwrite=True, progress=False))
        n = res.summary["images"]
    else:
        import warnings

        from autolabel.core.detections import apply_class_thresholds
        from autolabel.teachers import create_teacher

        warnings.simplefilter("ignore")
        teacher = create_teacher(f"yolo:{weights}", ontology=onto, device="cpu")
        Path(out).mkdir(parents=True, exist_ok=True)
        n = 0
        for p in sorted(Path(src).iterdir()):
            im = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            d = apply_class_thresholds(teacher.predict([im])[0], onto.thresholds)
            h, w = im.shape[:2]
            xyxy = d.xyxy / np.array([w, h, w, h])
            with open(Path(out) / f"{p.stem}.txt", "w") as f:
                for c, (x1, y1, x2, y2) in zip(d.class_id, xyxy):
                    f.write(f"{c} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}\n")
            n += 1
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": n, "seconds": secs, "peak_rss_mb": rss}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="yolov8n.pt")
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        mode, src, weights, out = args._worker
        return worker(mode, src, weights, out, args.batch_size)
    weights = need(SHARED / "weights" / args.weights, args.weights)
    frames = prepare(max(args.sizes))
    rows = []
    for n in args.sizes:
        src = subset(frames, n)
        for mode in ("plain loop (batch 1)", "autolabel label"):
            key = "plain" if mode.startswith("plain") else "autolabel"
            cmd = [sys.executable, __file__, "--batch-size", str(args.batch_size), "--_worker", key, str(src),
                   str(weights), str(OUT / f"thr_{key}_{n}")]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            rows.append([mode if key == "plain" else f"{mode} (batch {args.batch_size})", r["images"],
                         round(r["seconds"], 1), round(r["images"] / r["seconds"], 2), round(r["peak_rss_mb"])])
            print(rows[-1], flush=True)
    print(table(["method", "images", "seconds", "images/s", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
