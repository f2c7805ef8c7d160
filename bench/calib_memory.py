"""INT8 calibration memory: peak RSS and time of calibrating + quantizing the YOLOv8n student at 50, 200 and
500 calibration images (cctv_clinic frames, repeated when there are fewer).

    python bench/calib_memory.py [--images 50 200 500] [--method percentile] [--imgsz 640]
                                 [--before 50]   # also the one-pass calibration (the old path) at 50 images

Each run is a fresh subprocess, so its peak resident memory (``wait4``'s ``ru_maxrss``) is its own; the
parent builds the FP32 ONNX once (``../shared/weights/yolov8n.pt`` at ``--imgsz``, Ultralytics' exporter).
``chunked`` is what ``autolabel export --int8`` runs (activations held at most
``autolabel.compress.quantize.CALIB_CHUNK_BYTES`` at a time); ``one pass`` feeds every image to onnxruntime's
calibrator at once, as before: its memory grows with the images (about 240 MB per 640 px image), so keep
``--before`` small on a small machine. Results: ``bench/out/calib_memory/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import OUT, SHARED, need, table

WORK = OUT / "calib_memory"


def child(args: argparse.Namespace) -> None:
    """One calibration run (in its own process)."""
    import autolabel.compress.quantize as Q

    frames = sorted((SHARED / "data" / "cctv_clinic" / "images").glob("*.jpg"))
    images = [frames[i % len(frames)] for i in range(args.n)]
    if args.one_pass:
        Q.CALIB_CHUNK_BYTES = 1 << 62  # one chunk: every image's activations held at once, as before the fix
    t0 = time.perf_counter()
    info = Q.quantize_int8(Path(args.onnx), WORK / f"int8_{args.n}_{int(args.one_pass)}.onnx", images, args.imgsz,
                           1, args.method, True, False)
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "method": info["method"]}))


def measure(onnx: Path, n: int, one_pass: bool, method: str, imgsz: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--child", "--onnx", str(onnx), "--n", str(n), "--method", method,
           "--imgsz", str(imgsz)] + (["--one-pass"] if one_pass else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (kB on Linux)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    row: dict[str, object] = {"images": n, "calibration": "one pass (before)" if one_pass else "chunked",
                              "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}
    if proc.returncode:
        row.update(seconds=None, error=(err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:200])
    else:
        row.update(json.loads(out.strip().splitlines()[-1]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="*", default=[50, 200, 500])
    ap.add_argument("--before", type=int, nargs="*", default=[], help="image counts to also run in one pass")
    ap.add_argument("--method", default="percentile", choices=["percentile", "entropy", "minmax"])
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args)
        return
    need(SHARED / "data" / "cctv_clinic" / "images", "cctv_clinic frames")
    weights = need(Path(os.environ.get("AUTOLABEL_WEIGHTS_DIR", SHARED / "weights")) / "yolov8n.pt", "yolov8n.pt")
    onnx = WORK / f"yolov8n_{args.imgsz}.onnx"
    if not onnx.is_file():
        from autolabel.compress.onnx_export import write_yolo_onnx

        write_yolo_onnx(weights, onnx, args.imgsz)
    rows = []
    for n, one_pass in [(n, True) for n in args.before] + [(n, False) for n in args.images]:
        rows.append(measure(onnx, n, one_pass, args.method, args.imgsz))
        print(rows[-1], flush=True)
        (WORK / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"\nINT8 calibration ({args.method}) of yolov8n at {args.imgsz} px, one subprocess per row")
    print(table(["images", "calibration", "peak RSS (GB)", "seconds", "method used"],
                [[r["images"], r["calibration"], r["peak_rss_gb"], r.get("seconds"), r.get("method", r.get("error"))]
                 for r in rows]))


if __name__ == "__main__":
    main()
