"""The report: user text as text (a '$' in a class name is not math), a row for its own time, the accuracy
chart's two kinds of score kept apart, and what the accuracy guard did."""

from __future__ import annotations

import json

import pytest

from autolabel.app.pipeline import DEFAULTS
from autolabel.app.report import accuracy_rows, write_report

pytest.importorskip("matplotlib")


def _config(**report):
    import copy

    cfg = copy.deepcopy(DEFAULTS)
    cfg["name"] = "money$ run"
    cfg["report"].update(report)
    cfg["train"]["pretrained"] = True
    return cfg


GUARD = {
    "metric": "mAP50-95", "max_drop": 0.02, "against": "teacher labels (val split), bundle runtime",
    "reference": {"model": "unpruned student FP32 ONNX", "mAP50-95": 0.62},
    "candidates": [{"model": "pruned + recovery FP32 ONNX", "mAP50-95": 0.41},
                   {"model": "pruned + recovery INT8 ONNX", "mAP50-95": 0.40}],
    "dropped": [{"model": "pruned", "mAP50-95": 0.41, "reference": 0.62,
                 "reason": "the pruned + recovered model scored mAP50-95 0.4100, 0.2100 below the unpruned student's 0.6200"}],
    "shipped_model": "unpruned student", "shipped": {"model": "unpruned student INT8 ONNX", "mAP50-95": 0.61},
}


def _art(tmp_path):
    return {
        "label": {"images": 4, "boxes": 7, "boxes_per_class": {"cash$box": 3, "a$^$b": 2, "$$": 2}, "skipped": []},
        "train": {}, "prune": {},
        "export": {"bundle": str(tmp_path / "bundle"), "files": {}, "metrics": {}, "guard": GUARD},
    }


def test_dollar_signs_in_class_names_do_not_break_the_report(tmp_path):
    # matplotlib parses "$...$" as math text: "a$^$b" and "$$" raised ValueError after train and export had run
    path = write_report(tmp_path, _config(), _art(tmp_path), {"label": 1.0, "train": 2.0})
    html = path.read_text()
    assert "cash$box" in html and "a$^$b" in html and "data:image/png;base64" in html


def test_stage_table_has_a_row_for_the_report(tmp_path):
    import time

    path = write_report(tmp_path, _config(), _art(tmp_path), {"label": 1.0, "train": 2.0, "prune": None},
                        started=time.perf_counter())
    html = path.read_text()
    table = html.split("Stage wall times (s)</h2>")[1].split("</table>")[0]
    assert "<td>report</td>" in table and "<td>label</td>" in table and "total" in table
    assert "<td>prune</td>" not in table  # did not run
    seconds = json.loads((tmp_path / "report.json").read_text())["seconds"]
    assert seconds["report"] is not None and seconds["report"] >= 0


def test_report_shows_the_configuration_it_was_given(tmp_path):
    html = write_report(tmp_path, _config(), _art(tmp_path), {}).read_text()
    assert "pretrained: true" in html.split("Configuration</h2>")[1]


def test_guard_section_says_what_was_dropped_and_why(tmp_path):
    html = write_report(tmp_path, _config(), _art(tmp_path), {}).read_text()
    assert "Accuracy guard" in html and "pruned model not shipped" in html and "0.2100 below" in html
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    models = [r["model"] for r in rows]
    assert "guard reference: unpruned student FP32 ONNX" in models
    assert "pruned + recovery FP32 ONNX (dropped)" in models


def test_accuracy_chart_keeps_human_and_teacher_scores_apart(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autolabel.app import report

    rows = [{"model": "teacher: yolo", "kind": "labels", "against": "human labels", "mAP50-95": 0.45},
            {"model": "student: yolov8n.pt", "kind": "PyTorch", "against": "teacher labels (val)", "mAP50-95": 0.8,
             "human mAP50-95": 0.4},
            {"model": "bundle INT8 ONNX", "kind": "onnxruntime", "against": "teacher labels", "mAP50-95": 0.7}]
    fig, ax = plt.subplots()
    report._accuracy_plot(ax, rows, "mAP50-95")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["against the teacher's labels (val split)", "against human labels (report.gt)"]
    teacher_bars, human_bars = ax.containers
    assert [b.get_width() for b in teacher_bars] == [0, 0.8, 0.7]  # the teacher's score is against humans
    assert [b.get_width() for b in human_bars] == [0.45, 0.4, 0]
    plt.close(fig)


def test_accuracy_rows_without_artifacts(tmp_path):
    rows = accuracy_rows(tmp_path, _config(), {}, {})
    assert [r["model"] for r in rows] == ["teacher: yolo:yolov8n.pt"]
