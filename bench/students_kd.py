"""Does distillation help? Detection students on cctv_clinic, scored on held-out frames against HUMAN labels.

    python bench/students_kd.py [--epochs 10] [--imgsz 320] [--rows teacher hard soft kd human]
                                [--hyp nbs=16 lr0=0.001 ...] [--tag _x]

``--hyp``: Ultralytics train arguments given to every student row alike (``autolabel train --hyp``);
``--tag``: write to ``bench/out/students_kd<tag>`` (the pool split and teacher labels are the same).

1. Split ``../shared/data/cctv_clinic`` by camera-frame name (seeded, stratified by camera prefix) into a
   *pool* (what a user would label) and held-out *test* frames.
2. Teacher = WBF ensemble of the two COCO models in ``../shared/weights`` (yolov8n + yolo11n), labeling
   the pool with ``ontologies/security.yaml`` at its default thresholds. The pool's human labels are not
   read, except by the ``human`` row (the ceiling).
3. Students: yolov8n (COCO-pretrained, ``../shared/weights/yolov8n.pt``) fine-tuned on the pool with the same
   epochs / image size / seed / schedule for every row:
   ``hard``  = teacher's hard labels only (``--hard-only``);
   ``soft``  = hard + soft scores (α = 0.5, T = 1);
   ``soft_low`` = soft scores of every teacher box down to confidence 0.1 (α = 0.25, box losses weighted by
   the teacher's confidence): what hard labels cannot use — an uncertain box becomes a weak target instead
   of background;
   ``soft_unc`` = ``soft`` plus the teacher's *uncertain* boxes (confidence 0.1 up to the class threshold,
   labeled with ``uncertain_conf=0.1``; the hard labels are identical) as soft-only targets: class target =
   the teacher's score, box losses × confidence — objects the hard labels leave as background;
   ``kd``    = soft + online KD (dense logit KD + FitNets hints) from yolo11n; ``kd_unc`` = both;
   ``human`` = the pool's human labels (ceiling).
4. Every model (teacher included) predicts the test frames at conf 0.001 through ``autolabel label`` with the
   ``yolo`` teacher (the same inference code for all rows) and is scored with ``autolabel evaluate``
   (pycocotools), person class.

Each row's command is printed beside it. Results: ``bench/out/students_kd/results.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
import warnings
from pathlib import Path

from _common import OUT, ROOT, SHARED, need, table

from autolabel.core.ontology import load_ontology
from autolabel.labeling.label import LabelConfig, label
from autolabel.metrics import evaluate
from autolabel.students.yolo.train import TrainConfig, train
from autolabel.teachers import create_teacher

WORK = OUT / "students_kd"
ONTOLOGY = ROOT / "ontologies" / "security.yaml"


def camera(name: str) -> str:
    stem = Path(name).stem
    return stem.split("_")[0] if stem.startswith("frame_") else stem.split("-")[0]


def split(data: Path, test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(pool, test) file names: per camera prefix, the frames with the smallest seeded hash go to test."""
    by_cam: dict[str, list[str]] = {}
    for p in sorted((data / "images").glob("*.jpg")):
        by_cam.setdefault(camera(p.name), []).append(p.name)
    pool, test = [], []
    for _, names in sorted(by_cam.items()):
        ranked = sorted(names, key=lambda n: hashlib.sha1(f"{seed}:{n}".encode()).hexdigest())
        k = round(len(ranked) * test_fraction) if len(ranked) >= 4 else 0
        test += ranked[:k]
        pool += ranked[k:]
    return sorted(pool), sorted(test)


def make_subset(data: Path, names: list[str], dest: Path, *, labels: bool) -> Path:
    """A YOLO folder of symlinks to the chosen frames (and, with ``labels``, their human labels)."""
    shutil.rmtree(dest, ignore_errors=True)
    for sub in ("images", "labels") if labels else ("images",):
        (dest / sub).mkdir(parents=True)
    for n in names:
        (dest / "images" / n).symlink_to(data / "images" / n)
        if labels:
            lbl = data / "labels" / (Path(n).stem + ".txt")
            (dest / "labels" / lbl.name).symlink_to(lbl) if lbl.is_file() else (dest / "labels" / lbl.name).touch()
    if labels:
        (dest / "data.yaml").write_text("train: images\nval: images\nnames:\n  0: person\n")  # relative to this file
    return dest


def score(teacher, test_dir: Path, gt: Path, tag: str) -> dict:
    """mAP of a teacher spec list / Teacher on the test frames (predicted at conf 0.001) against human labels."""
    out = WORK / f"pred_{tag}"
    label(test_dir / "images", ONTOLOGY, teacher, out,
          LabelConfig(conf=0.001, overwrite=True, progress=False, val_fraction=0.0))
    r = evaluate(out, gt, classes=["person"]).per_class["person"]
    return {"mAP50-95": r["map50_95"], "mAP50": r["map50"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0, help="split, labeling and (unless --train-seed) training seed")
    ap.add_argument("--train-seed", type=int, default=None, help="another training seed on the same split and labels")
    ap.add_argument("--rows", nargs="+", default=["teacher", "hard", "soft", "kd", "human"])
    ap.add_argument("--hyp", nargs="*", default=[], help="Ultralytics train arguments KEY=VALUE for every student")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    global WORK
    WORK = OUT / f"students_kd{args.tag}"
    import yaml

    hyp = {k: yaml.safe_load(v) for k, _, v in (h.partition("=") for h in args.hyp)}
    warnings.simplefilter("ignore")
    data = need(SHARED / "data" / "cctv_clinic", "cctv_clinic")
    v8 = str(need(SHARED / "weights" / "yolov8n.pt", "yolov8n.pt"))
    v11 = str(need(SHARED / "weights" / "yolo11n.pt", "yolo11n.pt"))
    WORK.mkdir(parents=True, exist_ok=True)
    pool, test = split(data, args.test_fraction, args.seed)
    print(f"pool {len(pool)} frames, test {len(test)} frames (held out)", flush=True)
    pool_dir = make_subset(data, pool, WORK / "pool", labels=True)  # labels only for the ceiling row
    test_dir = make_subset(data, test, WORK / "test", labels=True)
    teacher = [f"yolo:{v8}", f"yolo:{v11}"]

    ds = WORK / "pool_labeled"
    t0 = time.perf_counter()
    res = label(pool_dir / "images", ONTOLOGY, teacher, ds,
                LabelConfig(progress=False, val_fraction=0.2, seed=args.seed))
    print(f"teacher labeled the pool in {time.perf_counter() - t0:.0f} s: {res.summary['boxes_per_class']}", flush=True)

    ds_unc = WORK / "pool_labeled_unc0.1"
    if {"soft_unc", "kd_unc"} & set(args.rows):  # the same hard labels, plus the teacher's boxes from 0.1 up to the threshold
        label(pool_dir / "images", ONTOLOGY, teacher, ds_unc,
              LabelConfig(progress=False, val_fraction=0.2, seed=args.seed, uncertain_conf=0.1))
    ds_low = WORK / "pool_labeled_conf0.1"
    if "soft_low" in args.rows:  # the same teacher keeping its low-confidence boxes too (as soft targets)
        label(pool_dir / "images", ONTOLOGY, teacher, ds_low,
              LabelConfig(progress=False, val_fraction=0.2, seed=args.seed, conf=0.1))
    common = (f"--epochs {args.epochs} --imgsz {args.imgsz} --batch {args.batch} --student {v8}"
              f" --hyp close_mosaic={max(1, args.epochs // 3)}" + "".join(f" --hyp {h}" for h in args.hyp))
    tseed = args.seed if args.train_seed is None else args.train_seed
    if args.train_seed is not None:
        common += f" --hyp seed={tseed}"
    base = TrainConfig(epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=2, seed=tseed,
                       close_mosaic=max(1, args.epochs // 3), progress=False, overwrite=True, ultralytics=hyp)
    plans = {
        "hard": ("yolov8n on the teacher's hard labels", ds, {"soft": False}, f"autolabel train {ds} {common} --hard-only"),
        "soft": ("yolov8n on hard + soft labels (α 0.5, T 1)", ds, {}, f"autolabel train {ds} {common}"),
        "soft_low": ("yolov8n on soft labels incl. the teacher's boxes down to 0.1 (α 0.25, conf-weighted)", ds_low,
                     {"alpha": 0.25, "conf_weight": True},
                     f"autolabel label … --conf 0.1; autolabel train {ds_low} {common} --alpha 0.25 --conf-weight"),
        "soft_unc": ("yolov8n on hard + soft labels + the teacher's uncertain boxes (0.1 to threshold) as soft-only targets",
                     ds_unc, {}, f"autolabel label … --uncertain-conf 0.1; autolabel train {ds_unc} {common}"),
        "kd_unc": ("yolov8n, soft labels + uncertain boxes + online KD from yolo11n", ds_unc, {"kd_teacher": v11},
                   f"autolabel label … --uncertain-conf 0.1; autolabel train {ds_unc} {common} --kd-teacher {v11}"),
        "kd": ("yolov8n, soft labels + online KD from yolo11n", ds, {"kd_teacher": v11},
               f"autolabel train {ds} {common} --kd-teacher {v11}"),
        "human": ("yolov8n on the pool's human labels (ceiling)", pool_dir / "data.yaml", {"soft": False},
                  f"autolabel train {pool_dir / 'data.yaml'} {common} --hard-only"),
    }
    res_path = WORK / "results.json"
    results: dict[str, dict] = json.loads(res_path.read_text())["rows"] if res_path.is_file() else {}
    rows = []
    for key in args.rows:
        t0 = time.perf_counter()
        if key == "teacher":
            m = score(teacher, test_dir, test_dir, "teacher")
            desc, cmd = "teacher: WBF ensemble yolov8n + yolo11n (640 px)", f"autolabel label … -t yolo:{v8} -t yolo:{v11} --conf 0.001"
        else:
            desc, dset, extra, cmd = plans[key]
            from dataclasses import replace

            run = f"train_{key}" + (f"_s{tseed}" if args.train_seed is not None else "")
            r = train(dset, student=v8, out=WORK / run, config=replace(base, **extra))
            student = create_teacher(f"yolo:{r.best}", load_ontology(ONTOLOGY), imgsz=args.imgsz)  # at its train size
            m = score(student, test_dir, test_dir, key)
            m["val_vs_teacher_mAP50-95"] = r.metrics["mAP50-95"]
        m["seconds"] = round(time.perf_counter() - t0, 1)
        if args.train_seed is not None and key != "teacher":
            key, desc = f"{key}_s{tseed}", f"{desc} [train seed {tseed}]"
        results[key] = {"row": desc, "command": cmd, **m}
        rows.append([desc, m["mAP50-95"], m["mAP50"], m["seconds"]])
        print(rows[-1], flush=True)
        res_path.write_text(json.dumps({"args": vars(args), "pool": len(pool), "test": len(test),
                                        "rows": results}, indent=2))  # rows of earlier runs are kept
    print(f"\nperson class on {len(test)} held-out cctv_clinic frames vs human labels; students: {args.epochs} "
          f"epochs at {args.imgsz} px, batch {args.batch}, seed {args.seed}, 2-core CPU\n")
    print(table(["model", "mAP50-95", "mAP50", "wall s"], rows))
    print("\nall rows so far (results.json):\n")
    print(table(["model", "mAP50-95", "mAP50"], [[v["row"], v["mAP50-95"], v["mAP50"]] for v in results.values()]))
    for k, v in results.items():
        print(f"  {k}: {v['command']}")


if __name__ == "__main__":
    main()
