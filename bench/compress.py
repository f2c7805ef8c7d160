"""Compress and ship, measured: FP32 / INT8 / pruned (with and without KD recovery) / pruned + INT8 ONNX,
against Ultralytics' own ONNX (and OpenVINO INT8 when installed), on held-out cctv_clinic frames.

    python bench/compress.py [--student PATH] [--ratio 0.45] [--recover-epochs 8] [--imgsz 640]

Needs ``bench/students_kd.py`` to have run (its pool dataset, test split and soft-label student); falls back
to ../shared/weights/yolov8n.pt as the student when that run is absent. For every model: mAP50-95 / mAP50
on the test frames against HUMAN labels (person, through autolabel.runtime, conf 0.001, at --imgsz), params,
FLOPs (at --imgsz), file size, and median latency of one forward pass (+ pre/post-processing) at 320 and
640 px with 1 and 2 onnxruntime threads (30 runs after 5 warm-up runs, one image). Results:
``bench/out/compress/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from _common import OUT, SHARED, need, table

from autolabel.compress.bundle import ExportConfig, export
from autolabel.compress.prune_engine import count_flops_params
from autolabel.compress.pruning import PruneConfig, prune
from autolabel.compress.score import score_bundle
from autolabel.runtime import load_bundle, read_image

WORK = OUT / "compress"
KD = OUT / "students_kd"


def latency(bundle: Path, model: str, image: np.ndarray, threads: int, runs: int = 30) -> float:
    det = load_bundle(bundle, model=model, threads=threads)
    for _ in range(5):
        det.predict(image)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        det.predict(image)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


class _OpenVINOSession:
    """Quacks like the onnxruntime session the runtime's Detector calls, running an OpenVINO model."""

    def __init__(self, xml: Path, threads: int) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": threads})

    def run(self, _names, feeds):
        return [self.compiled(list(feeds.values())[0])[self.compiled.output(0)]]


def score_detector(det, test_ds: Path) -> tuple[float, float]:
    """mAP of a runtime Detector on the test frames against the human labels (same code path as score_bundle)."""
    from autolabel.data.dataset import read_records
    from autolabel.metrics import evaluate

    recs = list(read_records(test_ds))
    cats = [{"id": i, "name": n} for i, n in enumerate(det.names)]
    imgs = [{"id": i, "file_name": Path(r.image).name, "width": r.width, "height": r.height}
            for i, r in enumerate(recs)]
    gt = [{"id": k + 1, "image_id": i, "category_id": 0, "iscrowd": 0, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
           "area": (b[2] - b[0]) * (b[3] - b[1])} for i, r in enumerate(recs) for k, b in enumerate(r.boxes.xyxy)]
    for k, a in enumerate(gt):
        a["id"] = k + 1
    pred = []
    for i, r in enumerate(recs):
        d = det.predict(read_image(r.image), conf=0.001)
        for b, sc, c in zip(d.xyxy.tolist(), d.scores.tolist(), d.class_ids.tolist()):
            pred.append({"id": len(pred) + 1, "image_id": i, "category_id": int(c), "score": sc,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])})
    (WORK / "ov_gt.json").write_text(json.dumps({"images": imgs, "annotations": gt, "categories": cats}))
    (WORK / "ov_pred.json").write_text(json.dumps({"images": imgs, "annotations": pred, "categories": cats}))
    r = evaluate(WORK / "ov_pred.json", WORK / "ov_gt.json")
    return round(float(r.map50_95), 5), round(float(r.map50), 5)


def human_map(bundle: Path, model: str, test_ds: Path) -> tuple[float | None, float | None]:
    m = score_bundle(bundle, test_ds, [model], progress=False).get(model) or {}
    return m.get("mAP50-95"), m.get("mAP50")


def prune_rows(args: argparse.Namespace, student: Path, pool_ds: Path) -> tuple:
    """The pruned student with KD recovery (and with plain recovery unless --skip-plain)."""
    t0 = time.perf_counter()
    pr = prune(student, WORK / "pruned", data=pool_ds, config=PruneConfig(
        ratio=args.ratio, imgsz=args.imgsz, recover_epochs=args.recover_epochs, rounds=args.rounds, kd=True, batch=16,
        workers=2, progress=False, round_to=args.round_to))
    print(f"pruned + KD recovery in {time.perf_counter() - t0:.0f} s", flush=True)
    pr_nokd = None
    if not args.skip_plain:
        t0 = time.perf_counter()
        pr_nokd = prune(student, WORK / "pruned_nokd", data=pool_ds, config=PruneConfig(
            ratio=args.ratio, imgsz=args.imgsz, recover_epochs=args.recover_epochs, rounds=args.rounds, kd=False,
            batch=16, workers=2, progress=False, round_to=args.round_to))
        print(f"pruned + plain recovery in {time.perf_counter() - t0:.0f} s", flush=True)
    return pr, pr_nokd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--student", default=None)
    ap.add_argument("--ratio", type=float, default=0.45)
    ap.add_argument("--recover-epochs", type=int, default=8)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--calib-images", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=1, help="gradual pruning: cut + recover rounds")
    ap.add_argument("--tag", default="", help="suffix of the output folder bench/out/compress<tag>")
    ap.add_argument("--round-to", type=int, default=1, help="channel counts multiples of this (8: faster kernels)")
    ap.add_argument("--skip-plain", action="store_true", help="no plain-recovery (no KD) comparison row")
    ap.add_argument("--int8-only", action="store_true",
                    help="only the student's FP32 and INT8 rows (and Ultralytics' exports): no pruning")
    args = ap.parse_args()
    global WORK
    WORK = OUT / f"compress{args.tag}"
    warnings.simplefilter("ignore")
    pool_ds = need(KD / "pool_labeled", "the pool dataset of bench/students_kd.py (run it first)")
    test_src = need(KD / "test", "the held-out frames of bench/students_kd.py")
    student = Path(args.student) if args.student else KD / "train_soft" / "weights" / "best.pt"
    if not student.is_file():
        student = need(SHARED / "weights" / "yolov8n.pt", "yolov8n.pt")
    WORK.mkdir(parents=True, exist_ok=True)

    # the test frames as an autolabel-style dataset of HUMAN labels, so score_bundle scores against them
    test_ds = WORK / "test_human"
    shutil.rmtree(test_ds, ignore_errors=True)
    test_ds.mkdir()
    # through the typed records: hand-written lines without 'label' / soft scores were skipped as corrupt
    from PIL import Image

    from autolabel.data.jsonl import append_jsonl, write_atomic
    from autolabel.data.record import META_FILE, SIDECAR_FILE, Boxes, DatasetMeta, Record

    write_atomic(test_ds / META_FILE, json.dumps(DatasetMeta(names=("person",)).to_json(), indent=2))
    recs = []
    for p in sorted((test_src / "images").iterdir()):
        w, h = Image.open(p).size
        lbl = test_src / "labels" / f"{p.stem}.txt"
        boxes = []
        for ln in lbl.read_text().splitlines():
            c, cx, cy, bw, bh = map(float, ln.split()[:5])
            boxes.append(((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h))
        n = len(boxes)
        recs.append(Record(id=p.stem, split="val", image=str(p.resolve()), label=str(lbl.resolve()),
                           source=str(p.resolve()), width=w, height=h,
                           boxes=Boxes(tuple(boxes), (0,) * n, (1.0,) * n, ((1.0,),) * n)).to_json())
    append_jsonl(test_ds / SIDECAR_FILE, recs)

    pr = pr_nokd = None
    if not args.int8_only:
        pr, pr_nokd = prune_rows(args, student, pool_ds)
    rounds = f" ({args.recover_epochs} ep, {args.rounds} rounds)" if args.rounds > 1 else f" ({args.recover_epochs} ep)"
    variants = [
        ("student FP32", student, "fp32"),
        ("student INT8", student, "int8"),
    ]
    if pr is not None:
        variants += [
            (f"pruned {args.ratio:.0%} FLOPs, no recovery, FP32", pr.pruned, "fp32"),
            (f"pruned {args.ratio:.0%} + KD recovery{rounds}, FP32", pr.recovered, "fp32"),
            (f"pruned {args.ratio:.0%} + KD recovery{rounds}, INT8", pr.recovered, "int8"),
        ]
    if pr_nokd is not None:
        variants.insert(3, (f"pruned {args.ratio:.0%} + plain recovery{rounds}, FP32", pr_nokd.recovered, "fp32"))
    image = read_image(sorted((test_src / "images").iterdir())[0])
    bundles: dict[tuple[str, int], Path] = {}
    rows, results = [], []
    for vi, (name, pt, kind) in enumerate(variants):
        for size in (320, 640):
            key = (str(pt), size)
            if key not in bundles:
                b = WORK / f"bundle_{vi}_{size}"
                needs_int8 = any(p2 == pt and k2 == "int8" for _, p2, k2 in variants)
                export(pt, b, data=pool_ds, config=ExportConfig(imgsz=size, int8=needs_int8, evaluate=False,
                                                               calib_images=args.calib_images, progress=False))
                bundles[key] = b
        b = bundles[(str(pt), args.imgsz)]
        meta = json.loads((b / "bundle.json").read_text())
        m5095, m50 = human_map(b, kind, test_ds)
        from ultralytics import YOLO

        flops, params = count_flops_params(YOLO(str(pt)).model.float(), args.imgsz)
        lat = {f"{s}px/{t}t": round(latency(bundles[(str(pt), s)], kind, image, t), 1) for s in (320, 640) for t in (1, 2)}
        r = {"model": name, "mAP50-95": m5095, "mAP50": m50, "params": params, "flops": flops,
             "mb": round(meta["files_bytes"][kind] / 1e6, 2), **lat}
        results.append(r)
        rows.append([name, m5095, m50, f"{params / 1e6:.2f}M", f"{flops / 1e9:.2f}G", r["mb"], *lat.values()])
        print(rows[-1], flush=True)

    # Ultralytics' own exporter, side by side (same model, same runtime and scoring)
    from ultralytics import YOLO

    for fmt in ("onnx", "openvino"):
        try:
            tmp = WORK / f"ultra_{fmt}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            shutil.copy2(student, tmp / "m.pt")
            kw = {"int8": True, "data": str(pool_ds / "data.yaml")} if fmt == "openvino" else {"simplify": False}
            f = YOLO(str(tmp / "m.pt")).export(format=fmt, imgsz=args.imgsz, device="cpu", verbose=False, **kw)
        except Exception as e:  # openvino / nncf missing, or their export failing
            print(f"Ultralytics export format={fmt}: not measured ({type(e).__name__}: {str(e)[:120]})")
            continue
        if fmt == "onnx":
            b = WORK / "ultra_onnx_bundle"
            shutil.rmtree(b, ignore_errors=True)
            shutil.copytree(bundles[(str(student), args.imgsz)], b)
            shutil.copy2(f, b / "model.onnx")
            m5095, m50 = human_map(b, "fp32", test_ds)
            lat = [round(latency(b, "fp32", image, t), 1) for t in (1, 2)]
            rows.append(["Ultralytics export(format='onnx')", m5095, m50, "", "", round(Path(f).stat().st_size / 1e6, 2),
                         "—", "—", *lat])
        else:
            xml = next(Path(f).glob("*.xml"))
            det = load_bundle(bundles[(str(student), args.imgsz)], model="fp32")
            det.session, det.fixed_batch = _OpenVINOSession(xml, 2), 1
            m5095, m50 = score_detector(det, test_ds)
            lat = []
            for t in (1, 2):
                det.session = _OpenVINOSession(xml, t)
                for _ in range(5):
                    det.predict(image)
                ts = []
                for _ in range(30):
                    t0 = time.perf_counter()
                    det.predict(image)
                    ts.append(time.perf_counter() - t0)
                lat.append(round(1000 * statistics.median(ts), 1))
            size = sum(p.stat().st_size for p in Path(f).iterdir() if p.suffix == ".bin") / 1e6
            rows.append(["Ultralytics export(format='openvino', int8=True), OpenVINO runtime", m5095, m50, "", "",
                         round(size, 2), "—", "—", *lat])
        print(rows[-1], flush=True)
    (WORK / "results.json").write_text(json.dumps({"args": vars(args), "student": str(student), "rows": results,
                                                   "prune_report": pr.report if pr else None,
                                                   "prune_nokd_report": pr_nokd.report if pr_nokd else None},
                                                  indent=2, default=str))
    print(f"\nperson class on {len(list((test_src / 'images').iterdir()))} held-out cctv_clinic frames vs human labels, "
          f"mAP at {args.imgsz} px; latency = median ms per image incl. pre/post-processing, onnxruntime CPU, "
          f"this 2-core machine\n")
    print(table(["model", "mAP50-95", "mAP50", "params", "FLOPs", "MB", "320px 1t", "320px 2t", "640px 1t", "640px 2t"],
                rows))


if __name__ == "__main__":
    main()
