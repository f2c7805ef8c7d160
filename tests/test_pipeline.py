"""The one-command pipeline: all stages on a tiny generated dataset, resume, re-runs after a change, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from autolabel.app.pipeline import DEFAULTS, STAGES, Pipeline, load_pipeline_config
from autolabel.core.errors import ConfigError
from autolabel.runtime import load_bundle
from tests import fakes
from tests.conftest import ROOT

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
pytest.importorskip("onnxruntime")

TINY = {
    "name": "tiny",
    "label": {"teacher": "test-squares", "val_fraction": 0.3, "batch_size": 4},
    "train": {"student": "test-yolo-tiny", "epochs": 1, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0,
              "ultralytics": {"warmup_epochs": 0}},
    "prune": {"ratio": 0.2, "round_to": 2, "recover_epochs": 1},
    "export": {"int8": True, "calib_images": 4, "max_drop": 1.0},  # the guard runs but never drops (random model)
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pipe")
    fakes.make_square_images(tmp / "src", 12, seed=11)
    (tmp / "src" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    onto = tmp / "squares.yaml"
    onto.write_text(yaml.safe_dump({"name": "squares", "classes": [{"name": "red", "threshold": 0.5},
                                                                    {"name": "blue", "threshold": 0.5}]}))
    pipe = tmp / "tiny.yaml"
    pipe.write_text(yaml.safe_dump({**TINY, "ontology": "squares.yaml"}))  # relative to the pipeline file
    return {"src": tmp / "src", "onto": onto, "pipe": pipe, "tmp": tmp}


@pytest.fixture(scope="module")
def first_run(files):
    logs: list[str] = []
    res = Pipeline.from_yaml(files["pipe"], log=logs.append).run([files["src"]], files["tmp"] / "run", progress=False)
    return res, logs


@pytest.mark.slow
def test_full_pipeline_produces_a_bundle_the_runtime_loads(first_run, files):
    res, logs = first_run
    assert all(res.stages[s]["status"] == "done" for s in STAGES), res.stages
    assert [ln.split(":")[0] for ln in logs if ln.endswith("running")] == [f"[{i}/5] {s}" for i, s in enumerate(STAGES, 1)]
    det = load_bundle(res.bundle)
    assert det.model == "int8" and det.names == ["red", "blue"]
    d = det.predict(np.zeros((96, 128, 3), np.uint8), conf=0.001)
    assert d.xyxy.shape[1:] == (4,)
    resolved = yaml.safe_load((res.run_dir / "pipeline.yaml").read_text())
    assert resolved["train"]["epochs"] == 1 and resolved["ontology"] == str(files["onto"])
    assert resolved["label"]["uncertain_conf"] == 0.1 and resolved["train"]["uncertain"] is True  # the defaults
    from autolabel.data.dataset import read_meta

    assert read_meta(res.run_dir / "dataset").config["uncertain_conf"] == 0.1
    html = res.report.read_text()
    for text in ("bundle INT8 ONNX", "pruned + KD recovery", "Training curves", "corrupt.jpg", "data:image/png;base64"):
        assert text in html, text
    rows = json.loads((res.run_dir / "report.json").read_text())["rows"]
    assert [r["model"].split(":")[0].split(" ")[0] for r in rows] == ["teacher", "student", "pruned", "pruned",
                                                                      "guard", "bundle", "bundle"]
    s = res.summary
    assert s["model"] == "int8" and s["model_mb"] > 0 and "mAP50-95" in s["accuracy"]
    # the accuracy guard scored the unpruned student through the runtime, kept the pruned INT8 model, and said so
    g = s["guard"]
    assert g["reference"]["mAP50-95"] is not None and g["dropped"] == [] and g["shipped_model"] == "pruned + recovery"
    assert any("export: accuracy guard:" in ln for ln in logs) and "Accuracy guard" in html
    assert resolved["train"]["pretrained"] is False  # test-yolo-tiny is an architecture: no pretrained weights
    assert not (res.run_dir / ".guard_reference").exists()


@pytest.mark.slow
def test_rerun_keeps_every_finished_stage(first_run, files):
    res, _ = first_run
    best = Path(res.stages["train"]["artifacts"]["best"])
    mtime = best.stat().st_mtime_ns
    logs: list[str] = []
    Pipeline.from_yaml(files["pipe"], log=logs.append).run([files["src"]], res.run_dir, progress=False)
    assert all("done earlier, kept" in ln for ln in logs), logs
    assert best.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_changed_setting_reruns_that_stage_and_the_ones_after(first_run, files):
    res, _ = first_run
    logs: list[str] = []
    p = Pipeline.from_yaml(files["pipe"], overrides=["export.int8=false"], log=logs.append)
    r2 = p.run([files["src"]], res.run_dir, progress=False)
    kept = [ln.split("] ")[1].split(":")[0] for ln in logs if "kept" in ln]
    ran = [ln.split("] ")[1].split(":")[0] for ln in logs if ln.endswith("running")]
    assert kept == ["label", "train", "prune"] and ran == ["export", "report"]
    assert load_bundle(r2.bundle).model == "fp32"
    logs.clear()
    Pipeline.from_yaml(files["pipe"], overrides=["export.int8=false", "train.alpha=0.7"],
                       log=logs.append).run([files["src"]], res.run_dir, progress=False)
    ran = [ln.split("] ")[1].split(":")[0] for ln in logs if ln.endswith("running")]
    assert ran == ["train", "prune", "export", "report"]


@pytest.mark.slow
def test_classification_pipeline(files, tmp_path):
    cfg = tmp_path / "cls.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "cls", "task": "classify", "ontology": str(files["onto"]),
        "label": {"teacher": "test-squares", "val_fraction": 0.3},
        "train": {"student": "mobilenet_v3_small", "epochs": 1, "imgsz": 32, "batch": 8, "device": "cpu"},
        "prune": {"ratio": 0.3, "recover_epochs": 1},
        "export": {"int8": True, "calib_images": 4},
    }))
    res = Pipeline.from_yaml(cfg).run([files["src"]], tmp_path / "run", progress=False)
    pr = json.loads((tmp_path / "run" / "prune" / "prune_report.json").read_text())
    assert pr["task"] == "classify" and pr["pruned"]["params"] < pr["original"]["params"]
    clf = load_bundle(res.bundle)
    assert clf.meta["parameters"] == pr["pruned"]["params"]  # the bundle holds the pruned, recovered model
    probs = clf.classify([np.zeros((40, 50, 3), np.uint8)])
    assert clf.task == "classify" and probs.shape == (1, 2) and np.isclose(probs.sum(), 1.0, atol=1e-4)
    assert "top1" in res.report.read_text()


@pytest.mark.parametrize(
    "text, match",
    [
        ("trian: {epochs: 3}\n", r"unknown key 'trian'; valid keys are \['export', 'label', 'name'"),
        ("train: {epoch: 3}\n", r"unknown key 'train.epoch'; valid keys of train are \['alpha'"),
        ("train: 5\n", "'train' must be a mapping"),
        ("label: {teacher: []}\n", "needs at least one"),
        ("task: segment\n", "'task' must be 'detect' or 'classify'"),
        ("{unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping of sections"),
    ],
)
def test_bad_pipeline_files(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_pipeline_config(p)


def test_bad_overrides_and_cli_one_line(tmp_path, files, capsys):
    from autolabel.app.cli import main

    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        load_pipeline_config(None, ["epochs"])
    with pytest.raises(ConfigError, match="unknown key 'prune.ratoi'"):
        load_pipeline_config(None, ["prune.ratoi=0.3"])
    assert load_pipeline_config(None, ["train.epochs=7", "export.int8=false"])["train"]["epochs"] == 7
    assert main(["run", str(files["src"]), "--out", str(tmp_path / "r"), "--pipeline", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["run", str(files["src"]), "--out", str(tmp_path / "r")]) == 2
    assert "no ontology" in capsys.readouterr().err


def test_shipped_pipelines_are_valid():
    names = sorted(p.name for p in (ROOT / "pipelines").glob("*.yaml"))
    assert {"cctv.yaml", "classify.yaml", "quick.yaml"} <= set(names)
    for n in names:
        cfg = load_pipeline_config(ROOT / "pipelines" / n)
        assert set(cfg) == set(DEFAULTS) and Path(cfg["ontology"]).is_file(), n


@pytest.mark.parametrize("cmd", ["label", "teachers", "evaluate", "train", "train-classifier", "prune", "export",
                                 "predict", "run"])
def test_every_command_has_help(cmd, capsys):
    from autolabel.app.cli import main

    assert main([cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out
