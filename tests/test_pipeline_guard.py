"""The accuracy guard of the export stage: a pruned or INT8 model past ``export.max_drop`` below the unpruned
FP32 student (val split, bundle runtime) is not shipped, and the artifacts say what was dropped and why.

The exports are stand-ins with set scores, so every branch runs in milliseconds; tests/test_pipeline.py runs
the guard end to end on real (tiny) models."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest

from autolabel.app import stages
from autolabel.app.pipeline import DEFAULTS

STUDENT, PRUNED = "/run/train/weights/best.pt", "/run/prune/weights/best.pt"


def _ctx(tmp_path, prune=True, int8=True, max_drop=0.02, task="detect"):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["task"] = task
    cfg["prune"]["enabled"] = prune
    cfg["export"].update(int8=int8, max_drop=max_drop)
    state = {"stages": {"label": {"artifacts": {"dataset": str(tmp_path / "dataset")}},
                        "train": {"artifacts": {"best": STUDENT}},
                        "prune": {"artifacts": {"pruned": "/run/prune/pruned.pt", "recovered": PRUNED}}}}
    return {"config": cfg, "run": tmp_path, "progress": False, "state": state}


def _fake_exports(monkeypatch, scores):
    """scores[(model, 'fp32'|'int8')] -> mAP50-95; records every export as (model, folder name, int8)."""
    calls = []

    def fake(ctx, model, out, int8):
        calls.append((model, Path(out).name, int8))
        keys = ["fp32", "int8"] if int8 else ["fp32"]
        return SimpleNamespace(bundle=Path(out), files={k: Path(out) / f"{k}.onnx" for k in keys},
                               metrics={k: {"mAP50-95": scores[(model, k)], "top1": scores[(model, k)],
                                            "against": "the dataset's labels (val split)"} for k in keys})

    monkeypatch.setattr(stages, "_export_model", fake)
    return calls


def test_pruned_model_past_the_tolerance_is_replaced_by_the_student(tmp_path, monkeypatch):
    calls = _fake_exports(monkeypatch, {(STUDENT, "fp32"): 0.60, (STUDENT, "int8"): 0.595,
                                        (PRUNED, "fp32"): 0.45, (PRUNED, "int8"): 0.44})
    art = stages.run_export(_ctx(tmp_path), resume=False)
    assert calls == [(STUDENT, ".guard_reference", False), (PRUNED, "bundle", True), (STUDENT, "bundle", True)]
    g = art["guard"]
    assert [d["model"] for d in g["dropped"]] == ["pruned"] and g["shipped_model"] == "unpruned student"
    assert "0.4500" in g["dropped"][0]["reason"] and "0.6000" in g["dropped"][0]["reason"]
    assert g["shipped"] == {"model": "unpruned student INT8 ONNX", "mAP50-95": 0.595}
    assert any("shipping the unpruned student" in n for n in art["notes"])
    assert not (tmp_path / ".guard_reference").exists()


def test_int8_past_the_tolerance_ships_fp32(tmp_path, monkeypatch):
    calls = _fake_exports(monkeypatch, {(STUDENT, "fp32"): 0.60, (PRUNED, "fp32"): 0.59, (PRUNED, "int8"): 0.50})
    art = stages.run_export(_ctx(tmp_path), resume=False)
    assert calls[-1] == (PRUNED, "bundle", False)  # re-exported without the INT8 model
    g = art["guard"]
    assert [d["model"] for d in g["dropped"]] == ["int8"] and "0.1000 below" in g["dropped"][0]["reason"]
    assert g["shipped"] == {"model": "pruned + recovery FP32 ONNX", "mAP50-95": 0.59}
    assert set(art["files"]) == {"fp32"}


def test_both_dropped_ships_the_unpruned_fp32_student(tmp_path, monkeypatch):
    _fake_exports(monkeypatch, {(STUDENT, "fp32"): 0.60, (STUDENT, "int8"): 0.30,
                                (PRUNED, "fp32"): 0.30, (PRUNED, "int8"): 0.20})
    art = stages.run_export(_ctx(tmp_path), resume=False)
    g = art["guard"]
    assert [d["model"] for d in g["dropped"]] == ["pruned", "int8"]
    assert g["shipped"] == {"model": "unpruned student FP32 ONNX", "mAP50-95": 0.60}
    summary = stages.final_summary({**_ctx(tmp_path), "state": {"stages": {"export": {"artifacts": art}}}})
    assert summary["reference_accuracy"] == 0.60 and len(summary["dropped"]) == 2


def test_within_tolerance_ships_what_was_asked(tmp_path, monkeypatch):
    calls = _fake_exports(monkeypatch, {(STUDENT, "fp32"): 0.60, (PRUNED, "fp32"): 0.585, (PRUNED, "int8"): 0.581})
    art = stages.run_export(_ctx(tmp_path), resume=False)
    assert [c[1] for c in calls] == [".guard_reference", "bundle"]
    assert art["guard"]["dropped"] == [] and art["guard"]["shipped"]["model"] == "pruned + recovery INT8 ONNX"
    assert any("within export.max_drop" in n for n in art["notes"])


def test_without_pruning_the_student_is_its_own_reference(tmp_path, monkeypatch):
    calls = _fake_exports(monkeypatch, {(STUDENT, "fp32"): 0.60, (STUDENT, "int8"): 0.50})
    art = stages.run_export(_ctx(tmp_path, prune=False), resume=False)
    assert calls == [(STUDENT, "bundle", True), (STUDENT, "bundle", False)]
    assert [d["model"] for d in art["guard"]["dropped"]] == ["int8"]


def test_guard_off_exports_once(tmp_path, monkeypatch):
    calls = _fake_exports(monkeypatch, {(PRUNED, "fp32"): 0.1, (PRUNED, "int8"): 0.0})
    art = stages.run_export(_ctx(tmp_path, max_drop=None), resume=False)
    assert calls == [(PRUNED, "bundle", True)] and "off" in art["guard"]["note"]


def test_classification_uses_top1(tmp_path, monkeypatch):
    _fake_exports(monkeypatch, {(STUDENT, "fp32"): 0.9, (STUDENT, "int8"): 0.7})
    art = stages.run_export(_ctx(tmp_path, prune=False, task="classify"), resume=False)
    assert art["guard"]["metric"] == "top1" and [d["model"] for d in art["guard"]["dropped"]] == ["int8"]


@pytest.mark.parametrize("value", [0, 0.05, None])
def test_max_drop_values(value):
    from autolabel.app.pipeline import load_pipeline_config

    assert load_pipeline_config(None, [f"export.max_drop={'null' if value is None else value}"])["export"]["max_drop"] == value
