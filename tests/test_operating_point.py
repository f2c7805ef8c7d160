"""The operating point: greedy IoU matching and threshold picking, checked against hand-computed tables.

Fast (numpy only, no model): the bundle-level path (export, runtime, `autolabel thresholds`) is in
test_compress_export.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from autolabel.compress.operating_point import (
    CURVE_GRID,
    ImagePreds,
    build_curves,
    check_targets,
    choose_thresholds,
    record_stem,
)
from autolabel.core.errors import ConfigError
from autolabel.data.record import Record
from autolabel.runtime import BundleError, validate_meta


def _box(i: int) -> list[float]:
    return [i * 20.0, 0.0, i * 20.0 + 10, 10.0]  # ten disjoint 10x10 boxes in a row


# One class, 10 labeled boxes. Predictions (score, what it hits), by descending score:
#   0.90 box0, 0.85 nothing, 0.80 box1, 0.70 box2, 0.65 nothing, 0.60 box3, 0.55 box0 again (a duplicate:
#   box0 is taken, so a false positive), 0.50 box4, 0.45 nothing, 0.40 box5, 0.30 box6, 0.25 nothing,
#   0.20 box7, 0.15 nothing.  Boxes 8 and 9 are never found.
HITS = [(0.90, 0), (0.85, None), (0.80, 1), (0.70, 2), (0.65, None), (0.60, 3), (0.55, 0), (0.50, 4),
        (0.45, None), (0.40, 5), (0.30, 6), (0.25, None), (0.20, 7), (0.15, None)]
# threshold: (TP, FP) kept, worked by hand; P = TP / (TP + FP), R = TP / 10, F1 = 2PR / (P + R)
TABLE = {0.90: (1, 0), 0.85: (1, 1), 0.80: (2, 1), 0.70: (3, 1), 0.65: (3, 2), 0.60: (4, 2), 0.55: (4, 3),
         0.50: (5, 3), 0.45: (5, 4), 0.40: (6, 4), 0.30: (7, 4), 0.25: (7, 5), 0.20: (8, 5), 0.15: (8, 6)}


def _scene(shuffle: int = 0) -> tuple[list[ImagePreds], list[tuple[np.ndarray, np.ndarray]]]:
    xyxy = [(_box(b) if b is not None else [300.0 + 20 * k, 50.0, 310.0 + 20 * k, 60.0]) for k, (_, b) in enumerate(HITS)]
    scores = np.array([s for s, _ in HITS], np.float32)
    order = np.random.default_rng(shuffle).permutation(len(HITS)) if shuffle else np.arange(len(HITS))
    p = ImagePreds(np.array(xyxy)[order], scores[order], np.zeros(len(HITS), int))
    return [p], [(np.array([_box(i) for i in range(10)]), np.zeros(10, int))]


def _prf(t: float) -> tuple[float, float, float]:
    tp, fp = TABLE[t]
    p, r = tp / (tp + fp), tp / 10
    return p, r, 2 * p * r / (p + r)


def test_curve_matches_the_hand_table_in_any_prediction_order():
    for shuffle in (0, 3):
        preds, gts = _scene(shuffle)
        (curve,) = build_curves(preds, gts, 1)
        assert curve.boxes == 10 and curve.tp.sum() == 8  # the duplicate of box0 is a false positive
        m = curve.at(list(TABLE))
        for k, t in enumerate(TABLE):
            p, r, f = _prf(t)
            assert m["tp"][k] == TABLE[t][0] and m["kept"][k] == sum(TABLE[t])
            assert m["precision"][k] == pytest.approx(p) and m["recall"][k] == pytest.approx(r)
            assert m["f1"][k] == pytest.approx(f)


@pytest.mark.parametrize("kw, threshold, rule", [
    ({}, 0.20, "max F1"),                                  # F1 0.6957, the table's maximum
    ({"target_precision": 0.7}, 0.70, "precision >= 0.7"),  # lowest threshold with P >= 0.7 (0.75)
    ({"target_precision": 0.6}, 0.20, "precision >= 0.6"),  # P 0.615 at 0.20 still meets it
    ({"target_recall": 0.5}, 0.50, "recall >= 0.5"),        # highest threshold with R >= 0.5
    ({"target_recall": {"person": 0.3}}, 0.70, "recall >= 0.3"),
])
def test_pick_rules(kw, threshold, rule):
    preds, gts = _scene()
    curves: dict = {}
    pt = choose_thresholds(preds, gts, ["person"], {"person": 0.35}, curves=curves, **kw)["person"]
    p, r, f = _prf(threshold)
    assert pt["threshold"] == threshold and pt["rule"] == rule and "note" not in pt
    assert (pt["precision"], pt["recall"], pt["f1"]) == pytest.approx((p, r, f), abs=1e-4)
    assert pt["boxes"] == 10
    # the old threshold's numbers, for comparison: 0.35 keeps what 0.40 keeps
    assert pt["at_fallback"]["threshold"] == 0.35
    assert pt["at_fallback"]["f1"] == pytest.approx(_prf(0.40)[2], abs=1e-4)
    assert len(curves["person"]["f1"]) == len(CURVE_GRID)
    json.dumps(pt)  # plain JSON types


def test_unreachable_targets_say_so():
    preds, gts = _scene()
    pt = choose_thresholds(preds, gts, ["person"], {"person": 0.35}, target_recall=0.9)["person"]
    assert pt["threshold"] == 0.15 and "no threshold reaches recall 0.9" in pt["note"]
    pt = choose_thresholds(preds, gts, ["person"], {"person": 0.35}, target_precision=1.0)["person"]
    assert pt["threshold"] == 0.90 and pt["precision"] == 1.0 and "note" not in pt  # 0.90 alone is exact


def test_too_few_boxes_keep_the_fallback_and_classes_do_not_mix():
    preds, gts = _scene()
    # a second class "bag": 3 labeled boxes on image 2, one found; a "bag" prediction on a person box is wrong
    p2 = ImagePreds(np.array([[0, 100, 10, 110], _box(8)], float), np.array([0.9, 0.95], np.float32), np.array([1, 1]))
    g2 = (np.array([[0, 100, 10, 110], [20, 100, 30, 110], [40, 100, 50, 110], _box(8)]), np.array([1, 1, 1, 0]))
    out = choose_thresholds(preds + [p2], gts + [g2], ["person", "bag"], {"person": 0.35, "bag": 0.5})
    assert out["bag"]["rule"] == "fallback" and out["bag"]["threshold"] == 0.5 and out["bag"]["boxes"] == 3
    assert "only 3 labeled boxes (fewer than 10)" in out["bag"]["note"]
    assert out["bag"]["precision"] == 0.5 and out["bag"]["recall"] == pytest.approx(1 / 3, abs=1e-4)
    # person now has 11 boxes (box8 on image 2 unfound): recall is out of 11
    assert out["person"]["boxes"] == 11 and out["person"]["threshold"] == 0.20
    assert out["person"]["recall"] == pytest.approx(8 / 11, abs=1e-4)
    # min_boxes lowered: bag's own threshold, 0.9 (one true positive, nothing else)
    assert choose_thresholds(preds + [p2], gts + [g2], ["person", "bag"], {"person": 0.35, "bag": 0.5},
                             min_boxes=3)["bag"]["threshold"] == 0.9


def test_thresholds_are_exact_for_float32_scores():
    """A float32 0.7 (0.69999999) gives the threshold 0.7 and stays kept by the runtime's comparison."""
    preds = [ImagePreds(np.array([_box(0)]), np.array([0.7], np.float32), np.array([0]))]
    gts = [(np.array([_box(0), _box(1)]), np.array([0, 0]))]
    pt = choose_thresholds(preds, gts, ["a"], {"a": 0.35}, min_boxes=1)["a"]
    assert pt["threshold"] == 0.7 and pt["recall"] == 0.5
    preds = [ImagePreds(np.array([_box(0)]), np.array([0.21537], np.float32), np.array([0]))]
    assert choose_thresholds(preds, gts, ["a"], {"a": 0.35}, min_boxes=1)["a"]["threshold"] == 0.2153


@pytest.mark.parametrize("tp, tr, match", [
    (0.9, 0.8, "not both"),
    ({"a": 0.9}, {"a": 0.5}, r"classes \['a'\] have both"),
    (1.5, None, r"target_precision \(all classes\) must be a number in \(0, 1\]"),
    ({"a": 0}, None, r"target_precision \(a\) must be"),
    (None, "high", "target_recall"),
    (None, True, "target_recall"),
])
def test_bad_targets(tp, tr, match):
    with pytest.raises(ConfigError, match=match):
        check_targets(tp, tr)


def test_per_class_targets_and_unknown_class():
    preds, gts = _scene()
    check_targets({"a": 0.9}, {"b": 0.5})  # different classes, one rule each: fine
    with pytest.raises(ConfigError, match=r"names \['car'\], which are not classes"):
        choose_thresholds(preds, gts, ["person"], {"person": 0.35}, target_precision={"car": 0.9})


def test_record_stem():
    def rec(rid: str, source: str, frame_index: int | None) -> Record:
        return Record(id=rid, split="val", image="", label="", source=source, width=1, height=1,
                      frame_index=frame_index)

    assert record_stem(rec("x", "/a/b/cam1_0001.jpg", None)) == "cam1_0001"
    assert record_stem(rec("clip_f000010", "/a/clip.mp4", 10)) == "clip_f000010"


def _meta(**post):
    return {"format": "autolabel-bundle", "version": 1, "names": ["a", "b"], "models": {"fp32": "m.onnx"},
            "preprocessing": {"imgsz": 64}, "postprocessing": post}


@pytest.mark.parametrize("meta, match", [
    (_meta(model_thresholds=[0.3]), "model_thresholds must map"),
    (_meta(model_thresholds={"int8": {"a": 0.3}}), "names model 'int8', which is not in models"),
    (_meta(model_thresholds={"fp32": {"c": 0.3}}), "names class 'c'"),
    (_meta(model_thresholds={"fp32": {"a": 1.3}}), r"model_thresholds.fp32\['a'\] must be a number in \[0, 1\]"),
    ({**_meta(), "operating_point": []}, "operating_point must be an object"),
    ({**_meta(), "operating_point": {"models": {"fp32": {"a": {"threshold": 0.3, "precision": 2, "recall": 0.5,
                                                               "f1": 0.5, "boxes": 3}}}}},
     r"operating_point.models.fp32\['a'\].precision must be a number"),
    ({**_meta(), "operating_point": {"models": {"fp32": {"a": {"threshold": 0.3, "precision": 0.5, "recall": 0.5,
                                                               "f1": 0.5}}}}}, "boxes must be a whole number"),
])
def test_bundle_json_operating_point_keys_are_validated(tmp_path, meta, match):
    with pytest.raises(BundleError, match=match):
        validate_meta(meta, tmp_path)


def test_a_class_the_model_never_finds_keeps_the_fallback():
    preds = [ImagePreds(np.array([_box(5)]), np.array([0.9], np.float32), np.array([0]))]  # misses box 0
    gts = [(np.array([_box(0)]), np.array([0]))]
    pt = choose_thresholds(preds, gts, ["a"], {"a": 0.35}, min_boxes=1)["a"]
    assert pt["rule"] == "fallback" and pt["threshold"] == 0.35 and "no prediction matches" in pt["note"]
    empty = [ImagePreds(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, int))]
    pt = choose_thresholds(empty, gts, ["a"], {"a": 0.35}, min_boxes=1)["a"]
    assert pt["threshold"] == 0.35 and "no prediction above 0.001" in pt["note"]


def test_report_plots_each_models_curves_with_the_chosen_point(tmp_path):
    import matplotlib

    from autolabel.app.report import _operating_point_data, _operating_point_html
    from autolabel.compress.operating_point import CURVES_FILE, write_record

    matplotlib.use("Agg")
    preds, gts = _scene()
    names = ["cash$box"]  # '$' is text, not math
    meta = {"format": "autolabel-bundle", "version": 1, "names": names, "models": {"fp32": "m.onnx", "int8": "q.onnx"},
            "preprocessing": {"imgsz": 64}, "postprocessing": {"thresholds": {names[0]: 0.35}}}
    points, curves = {}, {}
    for m in ("fp32", "int8"):
        curves[m] = {}
        points[m] = choose_thresholds(preds, gts, names, {names[0]: 0.35}, curves=curves[m])
    write_record(meta, points, source="teacher labels, val split", images=1, min_boxes=10, target_precision=None,
                 target_recall=None)
    validate_meta(meta, tmp_path)
    assert meta["postprocessing"]["thresholds"] == {names[0]: 0.2}  # the INT8 model's: it ships
    (tmp_path / "bundle.json").write_text(json.dumps(meta))
    (tmp_path / CURVES_FILE).write_text(json.dumps({"grid": list(CURVE_GRID), "models": curves}))
    with matplotlib.rc_context({"text.parse_math": False}):
        png, doc = _operating_point_html(_operating_point_data({"bundle": str(tmp_path)}))
    assert png.startswith("data:image/png;base64,")
    assert "<td>INT8</td><td>cash$box</td><td>10</td><td>0.2000</td>" in doc and "max F1" in doc
