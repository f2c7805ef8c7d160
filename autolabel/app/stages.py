"""The pipeline's stage adapters: each maps its section of the pipeline configuration onto one public stage
function (``label``, ``train``, ``prune``, ``export``, the report) and returns the artifacts it wrote.

Each stage's settings are the stage's own frozen config dataclass (``LabelConfig``, ``TrainConfig``,
``PruneConfig``, ``ExportConfig`` …): :func:`stage_configs` builds all of them from a pipeline configuration,
so a pipeline value is checked (type from the dataclass field's annotation, range from the dataclass' own
checks) before the first stage starts, and the adapters build their configs with the same functions.
:func:`resolve_models` finds every model file (teachers, student, KD teacher) up front.

Used by :class:`autolabel.app.pipeline.Pipeline`; each adapter is small on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autolabel.core.errors import ConfigError, WeightsNotFoundError
from autolabel.core.settings import build as _build
from autolabel.core.settings import check_value as _typed
from autolabel.core.settings import section_fields
from autolabel.core.weights import find_ultralytics_weights

__all__ = ["final_summary", "label_config", "prune_config", "resolve_models", "run_export", "run_label",
           "run_prune", "run_report", "run_train", "stage_configs", "student_family", "student_spec", "train_config",
           "export_config"]

DEFAULT_MAX_DROP = 0.02
"""Default ``export.max_drop``: the shipped model may score at most this much mAP50-95 (classify: top-1)
below the unpruned FP32 student on the val split; past it the better model ships."""


def _done(ctx: dict[str, Any], stage: str) -> dict[str, Any]:
    return (ctx["state"]["stages"].get(stage) or {}).get("artifacts") or {}


# ----------------------------------------------------------------------------------------------------------
# settings: pipeline values -> the stages' config dataclasses
# ----------------------------------------------------------------------------------------------------------


def _source_config(c: Mapping[str, Any]) -> Any:
    from autolabel.config import SourceConfig

    return _build(SourceConfig, section_fields(SourceConfig, c, "label"))


def label_config(cfg: Mapping[str, Any], *, resume: bool = False, progress: bool = False) -> Any:
    """The label stage's ``LabelConfig`` (classify: ``ClassLabelConfig``) from the pipeline's ``label`` section."""
    c = cfg["label"]
    src = _source_config(c)
    if cfg["task"] == "classify":
        from autolabel.labeling.classify import ClassLabelConfig

        if c.get("engine", "local") != "local":
            raise ConfigError(f"label.engine {c['engine']!r} labels detection datasets; a classify pipeline "
                              "labels in one process (label.engine: local)")
        common = {"val_fraction": ("label.val_fraction", c["val_fraction"]), "seed": ("label.seed", c["seed"]),
                  "batch_size": ("label.batch_size", c["batch_size"]), "device": ("label.device", c["device"])}
        return _build(ClassLabelConfig, {**common, "min_confidence": ("label.min_confidence", c["min_confidence"])},
                      {"sources": src, "overwrite": not resume, "progress": progress})
    from autolabel.config import LabelConfig

    return _build(LabelConfig, section_fields(LabelConfig, c, "label"),
                  {"sources": src, "overwrite": not resume, "progress": progress})


def _temperature(cfg: Mapping[str, Any]) -> Any:
    t = cfg["train"]["temperature"]
    return (4.0 if cfg["task"] == "classify" else 1.0) if t is None else t


_PIPELINE_FAMILY = {"detect": "yolo", "classify": "classifier"}
"""The student family each pipeline task trains."""


def student_spec(cfg: Mapping[str, Any]) -> str:
    """``train.student``, or the task's default student (``yolov8n.pt``; classify: ``mobilenet_v3_small``)."""
    from autolabel.students.base import default_student

    spec = cfg["train"]["student"]
    return default_student(cfg["task"]) if spec is None else _typed("train.student", spec, str)


def student_family(cfg: Mapping[str, Any]) -> str:
    """The family of ``train.student`` (:func:`autolabel.students.identify_student`), which must be the one the
    pipeline's task trains: one line naming the key otherwise (never another student in its place)."""
    from autolabel.students.base import STUDENT_FAMILIES, default_student, identify_student

    spec, task = student_spec(cfg), cfg["task"]
    try:
        family = identify_student(spec)
    except ConfigError as e:
        raise ConfigError(f"train.student: {e}") from None
    if family != _PIPELINE_FAMILY[task]:
        kind = STUDENT_FAMILIES.get(family).task
        raise ConfigError(
            f"train.student '{spec}' is a {family} ({kind}) student; a {task} pipeline trains "
            f"{_PIPELINE_FAMILY[task]} students (e.g. --set train.student={default_student(task)})"
            + (f", or train it on its own with `autolabel train --student {spec}`" if family == "ssdlite" else ""))
    return family


def train_config(cfg: Mapping[str, Any], *, resume: bool = False, progress: bool = False) -> Any:
    """The train stage's ``TrainConfig`` (classify: ``ClassifierConfig``) from the ``train`` section."""
    from autolabel.config import ClassifierConfig, TrainConfig

    c = cfg["train"]
    student = student_spec(cfg)
    student_family(cfg)
    fields = section_fields(TrainConfig, {**c, "temperature": _temperature(cfg)}, "train")
    if cfg["task"] == "classify":  # the train section's keys a classifier has, and its model
        shared = ("epochs", "imgsz", "batch", "alpha", "temperature", "device", "workers", "soft", "recipe",
                  "generations")
        pretrained = False if c["pretrained"] is None else c["pretrained"]
        return _build(ClassifierConfig, {
            **{k: fields[k] for k in shared}, "model": ("train.student", student),
            "pretrained": ("train.pretrained", pretrained),
        }, {"resume": resume, "progress": progress})
    _typed("train.pretrained", c["pretrained"], bool | None)
    return _build(TrainConfig, fields, lambda: {
        "resume": resume, "overwrite": True, "close_mosaic": max(1, min(10, int(c["epochs"]) // 3)),
        "progress": progress, "ultralytics": {} if c["ultralytics"] is None else c["ultralytics"]})


def prune_config(cfg: Mapping[str, Any], *, progress: bool = False) -> Any:
    """The prune stage's ``PruneConfig`` from the ``prune`` section (and the training settings it reuses)."""
    from autolabel.config import PruneConfig

    c, t = cfg["prune"], cfg["train"]
    return _build(PruneConfig, {
        **section_fields(PruneConfig, {**c, "keep": [] if c["keep"] is None else c["keep"]}, "prune"),
        "imgsz": ("train.imgsz", t["imgsz"]), "batch": ("train.batch", t["batch"]),
        "device": ("train.device", t["device"]), "workers": ("train.workers", t["workers"]),
        "alpha": ("train.alpha", t["alpha"]), "temperature": ("train.temperature", _temperature(cfg)),
        "ultralytics": ("train.ultralytics", dict(t["ultralytics"] or {}) if isinstance(t["ultralytics"], Mapping)
                        else t["ultralytics"]),
    }, lambda: {"keep": tuple(c["keep"] or ()), "progress": progress})


def export_config(cfg: Mapping[str, Any], *, progress: bool = False) -> Any:
    """The export stage's ``ExportConfig`` from the ``export`` section (``imgsz`` defaults to ``train.imgsz``;
    the bundle's thresholds are chosen against ``report.gt`` when it is set).

    A classification export takes only ``int8``, ``calib_images`` and ``calib_method`` of it.
    """
    from autolabel.config import ExportConfig

    c = cfg["export"]
    if cfg["task"] == "classify":  # its input size is the classifier's own; 640 is a placeholder that passes
        imgsz = ("export.imgsz", 640)
    else:
        imgsz = ("export.imgsz", c["imgsz"]) if c["imgsz"] is not None else ("train.imgsz", cfg["train"]["imgsz"])
    return _build(ExportConfig, {
        **section_fields(ExportConfig, c, "export"), "imgsz": imgsz,
        # the operating point: thresholds chosen for the student on val, against the human labels when given
        "target_precision": ("export.target_precision", c.get("target_precision")),
        "target_recall": ("export.target_recall", c.get("target_recall")),
        "gt": ("report.gt", cfg["report"].get("gt")),
    }, {"progress": progress})


def _max_drop(cfg: Mapping[str, Any]) -> float | None:
    v = _typed("export.max_drop", cfg["export"].get("max_drop", DEFAULT_MAX_DROP), float | None)
    if v is not None and not 0 <= v <= 1:
        raise ConfigError(f"export.max_drop must be in [0, 1] (mAP50-95 / top-1 points as a fraction) or null "
                          f"(no accuracy guard), found {v!r}")
    return None if v is None else float(v)


def stage_configs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Every enabled stage's config dataclass, built from the pipeline configuration: the up-front check.

    Raises:
        ConfigError: a value of the wrong type or out of range, named by its pipeline key.
    """
    _typed("name", cfg["name"], str)
    out: dict[str, Any] = {}
    for section in ("prune", "export", "report"):
        _typed(f"{section}.enabled", cfg[section]["enabled"], bool)
    out["label"] = label_config(cfg)
    out["train"] = train_config(cfg)
    if cfg["prune"]["enabled"]:
        out["prune"] = prune_config(cfg)
    if cfg["export"]["enabled"]:
        out["export"] = export_config(cfg)
        out["max_drop"] = _max_drop(cfg)
    gt = _typed("report.gt", cfg["report"]["gt"], str | None)
    if cfg["report"]["enabled"] and gt is not None and not Path(gt).expanduser().exists():
        raise ConfigError(f"report.gt '{gt}' not found; expected a YOLO dataset folder / data.yaml or a COCO JSON "
                          "of human labels (or null)")
    from autolabel.core.weights import resolve_device

    for key in ("label.device", "train.device"):
        section, name = key.split(".")
        resolve_device(_typed(key, cfg[section][name], str))
    return out


# ----------------------------------------------------------------------------------------------------------
# models: every file the stages will load, found before the first stage
# ----------------------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}


def _offline(env: str) -> bool:
    return os.environ.get(env, "").strip().lower() in _TRUE


def _hf_weights(spec: str, what: str, hint: str) -> None:
    """Check that a Hugging Face id or folder can be had: a local folder, the cache, or (online) the hub."""
    p = Path(spec).expanduser()
    if p.exists():
        return
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise WeightsNotFoundError(f"{what}: local folder '{spec}' does not exist; {hint}")
    if not (_offline("HF_HUB_OFFLINE") or _offline("TRANSFORMERS_OFFLINE")):
        return  # the hub may still have it; the stage downloads it through the library's cache
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(spec, "config.json")
    except Exception:  # an id huggingface_hub rejects: the teacher's own loader says what is wrong
        return
    if not isinstance(cached, str):
        raise WeightsNotFoundError(
            f"{what}: '{spec}' is not in the Hugging Face cache and the hub is offline (HF_HUB_OFFLINE); download "
            f"it on a connected machine with `huggingface-cli download {spec} --local-dir DIR`, then {hint}")


def _teacher_hint(name: str, spec: str, folder: bool = False) -> str:
    if folder:  # Hugging Face weights: a save_pretrained() folder, not found through AUTOLABEL_WEIGHTS_DIR
        return f"point the pipeline at it: --set 'label.teacher=[{name}:/path/to/{Path(spec).name}]'"
    return (f"point the pipeline at a local copy: --set 'label.teacher=[{name}:/path/to/{Path(spec).name}]' "
            "(or set AUTOLABEL_WEIGHTS_DIR to the folder holding it)")


def _student_hint(key: str, spec: str) -> str:
    return (f"point the pipeline at a local copy: --set {key}=/path/to/{Path(spec).name} "
            "(or set AUTOLABEL_WEIGHTS_DIR to the folder holding it)")


def _check_checkpoint(path: Path, what: str) -> None:
    """Load an Ultralytics checkpoint once (restricted unpickling) so a bad or unsafe file fails up front."""
    from autolabel.core.checkpoints import load_yolo

    y = load_yolo(path, what=what)
    task = getattr(y, "task", "detect")
    if task != "detect":
        raise ConfigError(f"{what} '{path}' is a {task} model; a detect pipeline needs a detection model")


def resolve_models(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Find every model the stages will load — teachers, student, KD teacher — before the first stage.

    Local files are found as the stages find them (a path, ``AUTOLABEL_WEIGHTS_DIR``, Ultralytics' weights
    folder); the student's and KD teacher's Ultralytics checkpoints are loaded once (restricted unpickling),
    so a missing, unreadable or unsafe file fails before labeling. Names that a connected machine downloads
    are left to the stage.

    Returns:
        ``{"teachers": {spec: path or None}, "student": path or None, "student_pretrained": bool,
        "kd_teacher": path or None}``.

    Raises:
        WeightsNotFoundError: a model that cannot be had; the hint names the ``--set`` that fixes it.
        ConfigError: an unknown teacher or student, or a checkpoint of the wrong task.
    """
    from autolabel.teachers import TEACHERS, list_teachers, parse_teacher_spec

    list_teachers()  # registers the built-in teachers
    out: dict[str, Any] = {"teachers": {}, "student": None, "student_pretrained": False, "kd_teacher": None}
    for spec in cfg["label"]["teacher"]:
        if not isinstance(spec, str):
            raise ConfigError(f"label.teacher must be a list of NAME[:WEIGHTS], found {spec!r}")
        name, weights = parse_teacher_spec(spec)
        w = weights or TEACHERS.entry(name).default_weights
        found: Path | None = None
        if w is not None:
            what = f"teacher '{name}'"
            if w.endswith((".yaml", ".yml")):
                pass  # an architecture (random weights, tests) or an Ultralytics config name
            elif w.endswith(".pt") or name.startswith("yolo"):
                found = find_ultralytics_weights(w, what, _teacher_hint(name, w))
            else:
                _hf_weights(w, what, _teacher_hint(name, w, folder=True))
        out["teachers"][spec] = str(found) if found else None
    t = cfg["train"]
    if student_family(cfg) != "yolo":  # a classifier: torchvision builds it (its weights: train.pretrained)
        return out
    from autolabel.students.yolo.train import YOLO_MODELS

    student = student_spec(cfg).strip()
    suffix = Path(student).suffix.lower()
    if student in YOLO_MODELS or suffix in {".yaml", ".yml"}:
        out["student_pretrained"] = False  # built from an architecture: random weights
    elif suffix in {".pt", ""}:
        spec = student if suffix else student + ".pt"
        path = find_ultralytics_weights(spec, "student", _student_hint("train.student", spec))
        if path is not None:
            _check_checkpoint(path, "train.student")
        out["student"] = str(path) if path else None
        out["student_pretrained"] = True
    else:
        raise ConfigError(f"train.student '{student}': expected a YOLO .pt checkpoint, a model .yaml or one of "
                          f"{YOLO_MODELS.names()}")
    if t["pretrained"] is not None and bool(t["pretrained"]) != out["student_pretrained"]:
        raise ConfigError(
            f"train.pretrained is {t['pretrained']} but train.student '{student}' "
            + ("is a checkpoint: its weights are the starting point; name a model .yaml (e.g. yolov8n.yaml) to "
               "train from scratch" if out["student_pretrained"] else
               "is an architecture without weights; name a .pt checkpoint to start from trained weights")
            + " (or leave train.pretrained unset)")
    kd = t["kd_teacher"]
    if isinstance(kd, str) and kd.strip():
        path = find_ultralytics_weights(kd, "train.kd_teacher", _student_hint("train.kd_teacher", kd))
        if path is not None:
            _check_checkpoint(path, "train.kd_teacher")
        out["kd_teacher"] = str(path) if path else None
    return out


def effective_config(cfg: Mapping[str, Any], models: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as the stages will use it: ``train.student`` is the student trained (the task's default
    when unset); ``train.pretrained`` says whether it starts from trained weights (a detect student does exactly
    when it is a ``.pt`` checkpoint); classify keeps its value (``False`` when unset)."""
    import copy

    out = copy.deepcopy(dict(cfg))
    out["train"]["student"] = student_spec(cfg)
    if cfg["task"] == "classify":
        out["train"]["pretrained"] = False if cfg["train"]["pretrained"] is None else cfg["train"]["pretrained"]
    else:
        out["train"]["pretrained"] = bool(models.get("student_pretrained"))
    return out


# ----------------------------------------------------------------------------------------------------------
# the stages
# ----------------------------------------------------------------------------------------------------------


def run_label(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    c = ctx["config"]["label"]
    out = ctx["run"] / "dataset"
    cfg = label_config(ctx["config"], resume=resume, progress=ctx["progress"])
    if ctx["config"]["task"] == "classify":
        from autolabel.labeling.classify import label_classification

        if len(c["teacher"]) > 1:
            raise ConfigError("a classification pipeline takes one image-level teacher (e.g. clip), found "
                              f"{c['teacher']}")
        res = label_classification(ctx["sources"], c["teacher"][0], out, ontology=ctx["ontology"], config=cfg)
        return {"dataset": str(res.out), "summary": res.summary}
    from autolabel.labeling.label import label

    res = label(ctx["sources"], ctx["ontology"], c["teacher"], out, cfg)
    s = res.summary
    return {"dataset": str(res.out), "images": s["images"], "boxes": s["boxes"],
            "boxes_per_class": s["boxes_per_class"], "uncertain_boxes": s.get("uncertain_boxes", 0),
            "skipped": s["skipped"]}


def run_train(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    from autolabel.students.base import train

    data = Path(_done(ctx, "label")["dataset"])
    out = ctx["run"] / "train"
    started = (out / "weights" / "last.pt").is_file() or (out / "last.pt").is_file()  # (older classifier layout)
    cfg = train_config(ctx["config"], resume=resume and started, progress=ctx["progress"])
    res = train(data, student=student_spec(ctx["config"]), out=out, config=cfg)
    if ctx["config"]["task"] == "classify":
        return {"best": str(res.best), "metrics": str(res.metrics_path), "top1_teacher": res.top1_teacher}
    best = res.best if res.best.is_file() else res.last
    return {"best": str(best), "metrics": res.metrics, "results_csv": str(out / "results.csv")}


def run_prune(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    from autolabel.compress.pruning import prune

    cfg = prune_config(ctx["config"], progress=ctx["progress"])
    res = prune(_done(ctx, "train")["best"], ctx["run"] / "prune", data=_done(ctx, "label")["dataset"], config=cfg)
    return {"pruned": str(res.pruned), "recovered": str(res.recovered) if res.recovered else None,
            "report": res.report, "results_csv": str(ctx["run"] / "prune" / "results.csv")}


def _pruned_model(ctx: dict[str, Any]) -> str | None:
    p = _done(ctx, "prune") if ctx["config"]["prune"]["enabled"] else {}
    return p.get("recovered") or p.get("pruned")


def _export_model(ctx: dict[str, Any], model: str, out: Path, int8: bool) -> Any:
    from dataclasses import replace

    from autolabel.compress.bundle import export  # any student family: export says which one it is

    cfg = replace(export_config(ctx["config"], progress=ctx["progress"]), int8=int8)
    return export(model, out, data=_done(ctx, "label")["dataset"], config=cfg)


def _score(res: Any, key: str, metric: str) -> float | None:
    v = ((res.metrics or {}).get(key) or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) else None


def run_export(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    """Export the final model to the bundle, guarded: the shipped model may score at most ``export.max_drop``
    below the unpruned FP32 student on the val split (through the bundle runtime, the same evaluator for all).

    A pruned + recovered model past the tolerance is replaced by the unpruned student; an INT8 model past it
    is left out of the bundle (the FP32 model ships). What was dropped and why is in ``guard``.
    """
    cfg = ctx["config"]
    int8 = bool(export_config(cfg).int8)
    tol = _max_drop(cfg)
    metric = "top1" if cfg["task"] == "classify" else "mAP50-95"
    student, pruned = _done(ctx, "train")["best"], _pruned_model(ctx)
    out = ctx["run"] / "bundle"
    guard: dict[str, Any] = {"metric": metric, "max_drop": tol, "against": "teacher labels (val split), bundle runtime",
                             "reference": None, "candidates": [], "dropped": []}
    notes: list[str] = []
    if tol is None:
        res = _export_model(ctx, pruned or student, out, int8)
        guard["note"] = "accuracy guard off (export.max_drop: null)"
        return _export_artifacts(res, guard, notes)
    chosen = student
    if pruned:
        ref_dir = ctx["run"] / ".guard_reference"
        try:
            ref = _score(_export_model(ctx, student, ref_dir, int8=False), "fp32", metric)
        finally:
            shutil.rmtree(ref_dir, ignore_errors=True)
        res = _export_model(ctx, pruned, out, int8)
        p32 = _score(res, "fp32", metric)
        guard["candidates"].append({"model": "pruned + recovery FP32 ONNX", metric: p32})
        if int8:
            guard["candidates"].append({"model": "pruned + recovery INT8 ONNX", metric: _score(res, "int8", metric)})
        if ref is not None and p32 is not None and p32 < ref - tol:
            why = (f"the pruned + recovered model scored {metric} {p32:.4f}, {ref - p32:.4f} below the unpruned "
                   f"student's {ref:.4f} (tolerance export.max_drop {tol})")
            guard["dropped"].append({"model": "pruned", metric: p32, "reference": ref, "reason": why})
            notes.append(f"accuracy guard: shipping the unpruned student instead: {why}")
            res = _export_model(ctx, student, out, int8)
        else:
            chosen = pruned
    else:
        res = _export_model(ctx, student, out, int8)
        ref = _score(res, "fp32", metric)
    guard["reference"] = {"model": "unpruned student FP32 ONNX", metric: ref}
    guard["shipped_model"] = "pruned + recovery" if pruned and chosen == pruned else "unpruned student"
    if ref is None:
        guard["note"] = f"not checked: no val-split {metric} (no val images or no labeled boxes in val)"
        notes.append(f"accuracy guard: {guard['note']}")
    q = _score(res, "int8", metric) if "int8" in (res.files or {}) else None
    if ref is not None and q is not None and q < ref - tol:
        why = (f"INT8 scored {metric} {q:.4f}, {ref - q:.4f} below the unpruned FP32 student's {ref:.4f} "
               f"(tolerance export.max_drop {tol})")
        name = f"{guard['shipped_model']} INT8 ONNX"
        if not any(c["model"] == name for c in guard["candidates"]):
            guard["candidates"].append({"model": name, metric: q})
        guard["dropped"].append({"model": "int8", metric: q, "reference": ref, "reason": why})
        notes.append(f"accuracy guard: shipping FP32 without the INT8 model: {why}")
        res = _export_model(ctx, chosen, out, int8=False)
    shipped = _score(res, "int8" if "int8" in (res.files or {}) else "fp32", metric)
    guard["shipped"] = {"model": f"{guard['shipped_model']} {'INT8' if 'int8' in (res.files or {}) else 'FP32'} ONNX",
                        metric: shipped}
    if ref is not None and shipped is not None and not guard["dropped"]:
        notes.append(f"accuracy guard: {guard['shipped']['model']} {metric} {shipped:.4f} vs unpruned FP32 student "
                     f"{ref:.4f} (within export.max_drop {tol})")
    return _export_artifacts(res, guard, notes)


def _export_artifacts(res: Any, guard: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    return {"bundle": str(res.bundle), "files": {k: str(v) for k, v in res.files.items()}, "metrics": res.metrics,
            "guard": guard, "notes": notes}


def run_report(ctx: dict[str, Any], resume: bool) -> dict[str, Any]:
    import time

    from autolabel.app.report import write_report

    t0 = time.perf_counter()
    seconds = {k: (v or {}).get("seconds") for k, v in ctx["state"]["stages"].items() if k != "report"}
    path = write_report(ctx["run"], ctx["config"], {k: _done(ctx, k) for k in ("label", "train", "prune", "export")},
                        seconds, started=t0)
    return {"report": str(path), "json": str(path.with_suffix(".json"))}


def final_summary(ctx: dict[str, Any]) -> dict[str, Any]:
    """Where the bundle and the report are, the bundle's size, its measured accuracy and speed, and what the
    accuracy guard did (``guard``: reference score, dropped models and why)."""
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
    if exp.get("guard"):
        g = exp["guard"]
        out["guard"] = g
        out["reference_accuracy"] = (g.get("reference") or {}).get(g.get("metric"))
        out["dropped"] = [d["reason"] for d in g.get("dropped") or []]
    if rep.get("json") and Path(rep["json"]).is_file():
        out["table"] = json.loads(Path(rep["json"]).read_text()).get("rows")
    return out
