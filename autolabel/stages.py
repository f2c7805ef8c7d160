"""The pipeline's stage adapters: each maps its section of the pipeline configuration onto one public stage
function (``label``, ``train``, ``prune``, ``export``, the report) and returns the artifacts it wrote.

Used by :class:`autolabel.pipeline.Pipeline`; each adapter is small on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autolabel.errors import ConfigError

__all__ = ["final_summary", "run_export", "run_label", "run_prune", "run_report", "run_train"]


def _done(ctx: dict[str, Any], stage: str) -> dict[str, Any]:
    return (ctx["state"]["stages"].get(stage) or {}).get("artifacts") or {}


def run_label(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    from autolabel.sources import SourceConfig

    c = ctx["config"]["label"]
    out = ctx["run"] / "dataset"
    src = SourceConfig(video_fps=None if c["stride"] else float(c["fps"]), video_stride=c["stride"],
                       dedup_threshold=float(c["dedup"]), max_side=c["max_side"])
    if ctx["config"]["task"] == "classify":
        from autolabel.students.classify import ClassLabelConfig, label_classification

        teacher = c["teacher"][0]
        if len(c["teacher"]) > 1:
            raise ConfigError("a classification pipeline takes one image-level teacher (e.g. clip), found "
                              f"{c['teacher']}")
        res = label_classification(ctx["sources"], teacher, out, ontology=ctx["ontology"], config=ClassLabelConfig(
            val_fraction=c["val_fraction"], seed=c["seed"], min_confidence=c["min_confidence"],
            batch_size=c["batch_size"], device=c["device"], sources=src, overwrite=not resume,
            progress=ctx["progress"]))
        return {"dataset": str(res.out), "summary": res.summary}
    from autolabel.label import LabelConfig, label

    cfg = LabelConfig(batch_size=c["batch_size"], val_fraction=c["val_fraction"], seed=c["seed"], conf=c["conf"],
                      uncertain_conf=c["uncertain_conf"], agnostic_nms=c["agnostic_nms"], device=c["device"], tta=c["tta"], tile=c["tile"],
                      rescore=c["rescore"], sources=src, overwrite=not resume, progress=ctx["progress"])
    res = label(ctx["sources"], ctx["ontology"], c["teacher"], out, cfg)
    s = res.summary
    return {"dataset": str(res.out), "images": s["images"], "boxes": s["boxes"],
            "boxes_per_class": s["boxes_per_class"], "uncertain_boxes": s.get("uncertain_boxes", 0),
            "skipped": s["skipped"]}


def run_train(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    c = ctx["config"]["train"]
    data = Path(_done(ctx, "label")["dataset"])
    out = ctx["run"] / "train"
    if ctx["config"]["task"] == "classify":
        from autolabel.students.classify import ClassifierConfig, train_classifier

        student = c["student"] if not str(c["student"]).endswith(".pt") else "mobilenet_v3_small"
        res = train_classifier(data, out, ClassifierConfig(
            model=student, epochs=c["epochs"], imgsz=c["imgsz"], batch=c["batch"], kd=not c["hard_only"],
            alpha=c["alpha"], temperature=4.0 if c["temperature"] is None else float(c["temperature"]),
            pretrained=c["pretrained"], device=c["device"], resume=resume, progress=ctx["progress"]))
        return {"best": str(res.best), "metrics": str(res.metrics_path), "top1_teacher": res.top1_teacher}
    from autolabel.students.yolo import TrainConfig, train

    last = out / "weights" / "last.pt"
    cfg = TrainConfig(epochs=c["epochs"], imgsz=c["imgsz"], batch=c["batch"], device=c["device"],
                      workers=c["workers"], hard_only=c["hard_only"], alpha=c["alpha"],
                      temperature=1.0 if c["temperature"] is None else float(c["temperature"]),
                      conf_weight=c["conf_weight"], uncertain=c["uncertain"], kd_teacher=c["kd_teacher"], kd_weight=c["kd_weight"],
                      hint_weight=c["hint_weight"], resume=resume and last.is_file(), overwrite=True,
                      close_mosaic=max(1, min(10, int(c["epochs"]) // 3)), progress=ctx["progress"],
                      ultralytics=dict(c["ultralytics"] or {}))
    res = train(data, student=c["student"], out=out, config=cfg)
    best = res.best if res.best.is_file() else res.last
    return {"best": str(best), "metrics": res.metrics, "results_csv": str(out / "results.csv")}


def run_prune(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    from autolabel.compress.pruning import PruneConfig, prune

    c, t = ctx["config"]["prune"], ctx["config"]["train"]
    cfg = PruneConfig(ratio=c["ratio"], target=c["target"], keep=tuple(c["keep"] or ()), round_to=c["round_to"],
                      recover_epochs=c["recover_epochs"], rounds=c["rounds"], kd=c["kd"], lr0=c["lr0"], imgsz=t["imgsz"], batch=t["batch"],
                      device=t["device"], workers=t["workers"], alpha=t["alpha"],
                      temperature=1.0 if t["temperature"] is None else float(t["temperature"]),
                      progress=ctx["progress"], ultralytics=dict(t["ultralytics"] or {}))
    res = prune(_done(ctx, "train")["best"], ctx["run"] / "prune", data=_done(ctx, "label")["dataset"], config=cfg)
    return {"pruned": str(res.pruned), "recovered": str(res.recovered) if res.recovered else None,
            "report": res.report, "results_csv": str(ctx["run"] / "prune" / "results.csv")}


def _final_model(ctx: dict[str, Any]) -> str:
    p = _done(ctx, "prune") if ctx["config"]["prune"]["enabled"] else {}
    return p.get("recovered") or p.get("pruned") or _done(ctx, "train")["best"]


def run_export(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    c = ctx["config"]["export"]
    imgsz = int(c["imgsz"] or ctx["config"]["train"]["imgsz"])
    out = ctx["run"] / "bundle"
    if ctx["config"]["task"] == "classify":
        from autolabel.compress.bundle import export_classifier

        res = export_classifier(_final_model(ctx), out, data=_done(ctx, "label")["dataset"],
                                int8=c["int8"], calib_images=c["calib_images"], calib_method=c["calib_method"],
                                progress=ctx["progress"])
    else:
        from autolabel.compress.bundle import ExportConfig, export

        res = export(_final_model(ctx), out, data=_done(ctx, "label")["dataset"], config=ExportConfig(
            imgsz=imgsz, int8=c["int8"], fp16=c["fp16"], calib_images=c["calib_images"],
            calib_method=c["calib_method"], dynamic=c["dynamic"], progress=ctx["progress"]))
    return {"bundle": str(res.bundle), "files": {k: str(v) for k, v in res.files.items()}, "metrics": res.metrics}


def run_report(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    from autolabel.report import write_report

    path = write_report(ctx["run"], ctx["config"], {k: _done(ctx, k) for k in ("label", "train", "prune", "export")},
                        {k: (v or {}).get("seconds") for k, v in ctx["state"]["stages"].items()})
    return {"report": str(path), "json": str(path.with_suffix(".json"))}


def final_summary(ctx: dict[str, Any]) -> dict[str, Any]:
    """Where the bundle and the report are, the bundle's size and its measured accuracy and speed."""
    exp, rep = _done(ctx, "export"), _done(ctx, "report")
    out: dict[str, Any] = {"run": str(ctx["run"]), "bundle": exp.get("bundle"), "report": rep.get("report")}
    if exp.get("files"):
        key = "int8" if "int8" in exp["files"] else "fp32"
        f = Path(exp["files"][key])
        out["model"] = key
        out["model_file"] = str(f)
        out["model_mb"] = round(f.stat().st_size / 1e6, 2) if f.is_file() else None
        m = (exp.get("metrics") or {}).get(key) or {}
        out["accuracy"] = {k: m.get(k) for k in ("mAP50-95", "mAP50", "top1", "against") if k in m}
        out["ms_per_image"] = m.get("ms_per_image")
    if rep.get("json") and Path(rep["json"]).is_file():
        out["table"] = json.loads(Path(rep["json"]).read_text()).get("rows")
    return out
