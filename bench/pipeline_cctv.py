"""The CCTV pipeline end to end on ../shared/data/cctv_clinic/images: wall time per stage, the report's table,
and a screenshot of the HTML report in headless Chromium (when /usr/bin/chromium exists).

    python bench/pipeline_cctv.py [--epochs 10] [--recover-epochs 5] [--imgsz 640]

pipelines/cctv.yaml with its two COCO teachers from ../shared/weights (WBF ensemble), yolov8n student, 50 %
FLOPs pruning with KD recovery and an INT8 bundle; epochs lowered for a 2-core CPU (the file's defaults are
for a GPU). report.gt points at the frames' human labels, so the teacher row is scored against them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time

from _common import OUT, ROOT, SHARED, need, table

from autolabel.app.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--recover-epochs", type=int, default=5)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--fresh", action="store_true", help="delete the run folder first")
    args = ap.parse_args()
    data = need(SHARED / "data" / "cctv_clinic", "cctv_clinic")
    w = SHARED / "weights"
    run = OUT / "pipeline_cctv"
    if args.fresh:
        shutil.rmtree(run, ignore_errors=True)
    overrides = [f"label.teacher=[yolo:{need(w / 'yolov8n.pt', 'yolov8n.pt')}, yolo:{w / 'yolo11n.pt'}]",
                 f"train.student={w / 'yolov8n.pt'}", f"train.epochs={args.epochs}", f"train.imgsz={args.imgsz}",
                 f"prune.recover_epochs={args.recover_epochs}", f"report.gt={data}", "train.workers=2"]
    logs: list[str] = []

    def log(m: str) -> None:
        logs.append(f"{time.strftime('%H:%M:%S')} {m}")
        print(logs[-1], flush=True)

    t0 = time.perf_counter()
    res = Pipeline.from_yaml(ROOT / "pipelines" / "cctv.yaml", overrides=overrides, log=log).run(
        [data / "images"], run, progress=False)
    total = time.perf_counter() - t0
    stages = [[k, v.get("status"), v.get("seconds")] for k, v in res.stages.items()]
    print("\n`autolabel run " + str(data / "images") + " --pipeline pipelines/cctv.yaml " +
          " ".join(f"--set '{o}'" for o in overrides) + f" --out {run}`\n")
    print(table(["stage", "status", "wall s"], stages + [["total (this invocation)", "", round(total, 1)]]))
    rows = json.loads((run / "report.json").read_text())["rows"]
    cols = ["model", "against", "mAP50-95", "mAP50", "size_mb", "ms_per_image"]
    print()
    print(table(cols, [[r.get(c) if r.get(c) is not None else "—" for c in cols] for r in rows]))
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if chrome:
        shot = run / "report.png"
        subprocess.run([chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={run / '.chromium'}", "--window-size=1280,2600", f"--screenshot={shot}",
                        (run / "report.html").as_uri()], check=False, capture_output=True, timeout=120)
        print(f"\nscreenshot: {shot if shot.is_file() else 'failed'}")
    print(f"report: {res.report}\nbundle: {res.bundle}")


if __name__ == "__main__":
    main()
