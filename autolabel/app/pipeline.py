"""One command from a folder to a deployable model: label → train → prune → export → report.

The pipeline only composes the stages and records their artifacts in a run folder; it holds no logic of its
own. Example::

    from autolabel import Pipeline
    p = Pipeline.from_yaml("pipelines/cctv.yaml", overrides=["train.epochs=30"])
    res = p.run(["footage/"], out="runs/site1")
    res.bundle, res.report

Run folder::

    RUN/
      pipeline.yaml        # the fully resolved configuration
      pipeline_state.json  # per stage: status, fingerprint, artifacts, seconds
      dataset/  train/  prune/  bundle/      # each stage's own output (see the stage modules)
      report.html  report.json

Re-running resumes at the first unfinished stage (an interrupted labeling or training run continues where it
stopped). Each stage has a fingerprint of its settings and of the fingerprints before it: change a stage's
settings and that stage and every stage after it run again; the ones before are kept.

Pipeline files (``pipelines/*.yaml``) hold the sections below; a key that is not listed fails with the
list of valid keys. ``--set section.key=value`` overrides one value (parsed as YAML). Every value is checked
(type and range, through the stages' own config dataclasses) and every model file is found before the first
stage starts; nothing is written to the run folder until then.

Accuracy guard: the export stage compares the pruned + recovered model and the INT8 model with the unpruned
FP32 student on the val split; one that scores more than ``export.max_drop`` below it is not shipped (the
better model ships instead) and the summary, the log and the report say what was dropped and why.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolabel import config
from autolabel.core.errors import ConfigError
from autolabel.core.settings import section_defaults

__all__ = ["DEFAULTS", "STAGES", "Pipeline", "PipelineResult", "load_pipeline_config"]

STAGES = ("label", "train", "prune", "export", "report")
ENGINE_KEYS = ("engine", "address", "workers", "gpus_per_worker", "cpus_per_worker")  # label.*: where, not what
STATE_FILE = "pipeline_state.json"
RESOLVED_FILE = "pipeline.yaml"

DEFAULTS: dict[str, Any] = {
    "name": "autolabel",
    "task": "detect",  # detect | classify
    "ontology": None,
    "label": {
        "teacher": ["yolo:yolov8n.pt"],  # NAME[:WEIGHTS]; several = WBF ensemble
        # every other key: a setting of LabelConfig / SourceConfig (autolabel/config.py), default and help there
        **section_defaults(config.LabelConfig, config.SourceConfig),
        "min_confidence": 0.0,  # classify: images below this teacher confidence are left out
    },
    "train": {
        "student": None,  # detect: YOLO checkpoint / YAML / name (default yolov8n.pt); classify: torchvision model
                          # name (default mobilenet_v3_small); another family's student is an error
        "pretrained": None,  # classify: ImageNet weights (torchvision); detect: set from train.student (.pt = yes)
        # every other key: a setting of TrainConfig (autolabel/config.py); a classify pipeline passes epochs, imgsz,
        # batch, soft, alpha, temperature, device and workers on to ClassifierConfig
        **section_defaults(config.TrainConfig),
        "temperature": None,  # default per task: 1.0 (detect soft labels), 4.0 (classify, Hinton KD)
    },
    "prune": {
        "enabled": True,
        **section_defaults(config.PruneConfig),  # imgsz, batch, device, workers: the train section's
    },
    "export": {
        "enabled": True,
        **section_defaults(config.ExportConfig),
        "imgsz": None,  # default: train.imgsz
        "int8": True,  # a pipeline always has the dataset to calibrate on (`autolabel export` needs --data for it)
        "max_drop": 0.02,  # accuracy guard: ship a pruned / INT8 model only within this mAP50-95 (classify: top-1)
                           # of the unpruned FP32 student on the val split, else the better one; null = off
        "target_precision": None,  # bundle thresholds: per class the lowest meeting this val precision
        "target_recall": None,     # ... or the highest meeting this recall ({name: value} or one value); null: max F1
    },
    "report": {
        "enabled": True,
        "gt": None,  # human labels (YOLO folder or COCO JSON) to score the teacher against
    },
}


RENAMED = {"train.hard_only": ("soft", lambda v: not v if isinstance(v, bool) else v)}
"""Old pipeline keys still read: ``train.hard_only: true`` is ``train.soft: false``."""


def _merge(base: dict[str, Any], new: Mapping[str, Any], where: str, src: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in new.items():
        if f"{where}{k}" in RENAMED and k not in base:
            k, v = RENAMED[f"{where}{k}"][0], RENAMED[f"{where}{k}"][1](v)
        if k not in base:
            raise ConfigError(f"{src}: unknown key '{where}{k}'; valid keys{' of ' + where.rstrip('.') if where else ''} "
                              f"are {sorted(base)}")
        if isinstance(base[k], dict) and k != "ultralytics":
            if not isinstance(v, Mapping):
                raise ConfigError(f"{src}: '{where}{k}' must be a mapping of {sorted(base[k])}, found {v!r}")
            out[k] = _merge(base[k], v, f"{where}{k}.", src)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _parse_override(item: str) -> tuple[list[str], Any]:
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects SECTION.KEY=VALUE (e.g. train.epochs=30), found '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def load_pipeline_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Defaults ← pipeline YAML ← ``--set`` overrides; validated (unknown keys, types of the sections)."""
    import yaml

    cfg = copy.deepcopy(DEFAULTS)
    src = "<defaults>"
    if path is not None:
        p = Path(path)
        src = str(p)
        if not p.is_file():
            raise ConfigError(f"pipeline file '{p}' not found (see pipelines/*.yaml)")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{p}: expected a mapping of sections {sorted(DEFAULTS)}, found {type(data).__name__}")
        # paths in a pipeline file are relative to the file
        if isinstance(data.get("ontology"), str) and not Path(data["ontology"]).is_absolute():
            rel = (p.parent / data["ontology"]).resolve()
            data = {**data, "ontology": str(rel if rel.is_file() else Path(data["ontology"]).resolve())}
        gt = (data.get("report") or {}).get("gt") if isinstance(data.get("report"), Mapping) else None
        if isinstance(gt, str) and not Path(gt).is_absolute() and (p.parent / gt).exists():
            data = {**data, "report": {**data["report"], "gt": str((p.parent / gt).resolve())}}
        cfg = _merge(cfg, data, "", src)
    for item in overrides:
        keys, value = _parse_override(item)
        d: Any = {}
        cur = d
        for k in keys[:-1]:
            cur[k] = {}
            cur = cur[k]
        cur[keys[-1]] = value
        cfg = _merge(cfg, d, "", f"--set {item}")
    if cfg["task"] not in ("detect", "classify"):
        raise ConfigError(f"{src}: 'task' must be 'detect' or 'classify', found {cfg['task']!r}")
    t = cfg["label"]["teacher"]
    if t is not None and not isinstance(t, (str, list, tuple)):
        raise ConfigError(f"{src}: 'label.teacher' must be NAME[:WEIGHTS] or a list of them, found {t!r}")
    cfg["label"]["teacher"] = [t] if isinstance(t, str) else list(t or [])
    if not cfg["label"]["teacher"]:
        raise ConfigError(f"{src}: 'label.teacher' needs at least one NAME[:WEIGHTS]")
    from autolabel.app.stages import stage_configs

    stage_configs(cfg)  # every value's type and range, before anything runs
    return cfg


def _changed(cfg: Mapping[str, Any], section: str, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The section's values that differ from :data:`DEFAULTS` (what a stage's fingerprint covers)."""
    base = DEFAULTS[section]
    return {k: v for k, v in cfg[section].items() if k not in exclude and (k not in base or base[k] != v)}


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class PipelineResult:
    """What a pipeline run produced."""

    run_dir: Path
    bundle: Path | None
    report: Path | None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """label → train (distillation) → prune + KD recovery → INT8/ONNX bundle → HTML report, resumable.

    Args:
        config: a full or partial pipeline configuration (sections of :data:`DEFAULTS`).
        log: called with one line per stage event (the CLI prints them); stages show their own progress.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, log: Callable[[str], None] | None = None) -> None:
        self.config = _merge(DEFAULTS, config or {}, "", "<config>") if config is not None else copy.deepcopy(DEFAULTS)
        self.log = log or (lambda _msg: None)

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: Sequence[str] = (),
                  log: Callable[[str], None] | None = None) -> Pipeline:
        """A pipeline from a YAML file (``None``: the defaults) with ``--set``-style overrides."""
        p = cls(log=log)
        p.config = load_pipeline_config(path, overrides)
        return p

    # ------------------------------------------------------------------------------------------------------
    def run(self, sources: Sequence[str | Path] | str | Path, out: str | Path,
            ontology: str | Path | None = None, progress: bool = True) -> PipelineResult:
        """Run (or resume) every enabled stage on ``sources`` into the run folder ``out``."""
        import yaml

        from autolabel.app import stages
        from autolabel.core.errors import SourceError
        from autolabel.core.ontology import load_ontology

        cfg = copy.deepcopy(self.config)
        if ontology is not None:
            cfg["ontology"] = str(Path(ontology).resolve())
        if not cfg.get("ontology"):
            raise ConfigError("no ontology: pass --ontology FILE (or set 'ontology' in the pipeline file)")
        onto = load_ontology(cfg["ontology"])
        srcs = [sources] if isinstance(sources, (str, Path)) else list(sources)
        if not srcs:
            raise ConfigError("no sources: pass image files, video files or folders")
        src_abs = [str(Path(s).expanduser().resolve()) for s in srcs]
        missing = [s for s, a in zip(srcs, src_abs) if not Path(a).exists()]
        if missing:
            raise SourceError(f"source '{missing[0]}' not found; expected image files, video files or folders")
        # Everything a stage could reject is checked before the first one starts and before the run folder is
        # written: each stage's settings (its config dataclass) and every model file.
        stages.stage_configs(cfg)
        models = stages.resolve_models(cfg)
        cfg = stages.effective_config(cfg, models)
        run = Path(out).expanduser().resolve()
        run.mkdir(parents=True, exist_ok=True)
        (run / RESOLVED_FILE).write_text(yaml.safe_dump({**cfg, "sources": src_abs, "models": models},
                                                        sort_keys=False))
        state = self._read_state(run)

        # A stage's fingerprint holds the values that differ from the defaults, so a new setting (added at its
        # default) does not re-run stages that finished before it existed.
        prints = {
            # where labeling runs does not change the dataset: switching engines keeps a finished label stage
            "label": _fingerprint(cfg["task"], _changed(cfg, "label", ENGINE_KEYS), onto.to_dict(), src_abs),
        }
        prints["train"] = _fingerprint(prints["label"], _changed(cfg, "train"))
        prints["prune"] = _fingerprint(prints["train"], _changed(cfg, "prune"), cfg["train"]["imgsz"])
        prints["export"] = _fingerprint(prints["prune"], _changed(cfg, "export"), cfg["train"]["imgsz"])
        prints["report"] = _fingerprint(prints["export"], _changed(cfg, "report"))

        stage_fns = {
            "label": stages.run_label, "train": stages.run_train, "prune": stages.run_prune,
            "export": stages.run_export, "report": stages.run_report,
        }
        ctx: dict[str, Any] = {"config": cfg, "ontology": onto, "sources": src_abs, "run": run,
                               "progress": progress, "state": state}
        enabled = {s: (cfg[s].get("enabled", True) if isinstance(cfg.get(s), dict) else True) for s in STAGES}
        for i, name in enumerate(STAGES, 1):
            st = state["stages"].get(name, {})
            if not enabled[name]:
                state["stages"][name] = {"status": "disabled", "fingerprint": prints[name]}
                self.log(f"[{i}/{len(STAGES)}] {name}: disabled")
                continue
            if st.get("status") == "done" and st.get("fingerprint") == prints[name]:
                self.log(f"[{i}/{len(STAGES)}] {name}: done earlier, kept ({st.get('seconds', 0):.0f} s then)")
                continue
            resume = st.get("status") == "running" and st.get("fingerprint") == prints[name]
            self.log(f"[{i}/{len(STAGES)}] {name}: {'resuming' if resume else 'running'}")
            state["stages"][name] = {"status": "running", "fingerprint": prints[name]}
            for later in STAGES[i:]:  # everything after a re-run stage is stale
                if later in state["stages"] and state["stages"][later].get("status") == "done":
                    state["stages"][later]["status"] = "stale"
            self._write_state(run, state)
            t0 = time.perf_counter()
            artifacts = stage_fns[name](ctx, resume=resume)
            secs = time.perf_counter() - t0
            state["stages"][name] = {"status": "done", "fingerprint": prints[name], "seconds": round(secs, 1),
                                     "artifacts": artifacts}
            self._write_state(run, state)
            for note in artifacts.get("notes") or ():  # e.g. what the accuracy guard dropped and why
                self.log(f"[{i}/{len(STAGES)}] {name}: {note}")
            self.log(f"[{i}/{len(STAGES)}] {name}: done in {secs:.0f} s")
        summary = stages.final_summary(ctx)
        return PipelineResult(run_dir=run, bundle=Path(summary["bundle"]) if summary.get("bundle") else None,
                              report=Path(summary["report"]) if summary.get("report") else None,
                              stages=state["stages"], summary=summary)

    @staticmethod
    def _read_state(run: Path) -> dict[str, Any]:
        p = run / STATE_FILE
        if p.is_file():
            try:
                data = json.loads(p.read_text())
                if isinstance(data, dict) and isinstance(data.get("stages"), dict):
                    return data
            except ValueError:
                pass  # a torn state file: start the bookkeeping over (stage outputs resume on their own)
        return {"version": 1, "stages": {}}

    @staticmethod
    def _write_state(run: Path, state: dict[str, Any]) -> None:
        from autolabel.data.jsonl import write_atomic

        write_atomic(run / STATE_FILE, json.dumps(state, indent=2))
