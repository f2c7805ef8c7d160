"""autolabel evaluate: numbers checked by hand on tiny hand-made label sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from autolabel.app.cli import main
from autolabel.core.errors import ConfigError, DatasetError
from autolabel.metrics import evaluate


def _yolo_gt(root: Path, boxes: dict[str, list[tuple[int, float, float, float, float]]], names=("person", "car")):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
    for stem, bs in boxes.items():
        Image.new("RGB", (200, 100)).save(root / "images" / f"{stem}.jpg")
        (root / "labels" / f"{stem}.txt").write_text(
            "".join(f"{c} {x1 / 200 + (x2 - x1) / 400} {y1 / 100 + (y2 - y1) / 200} {(x2 - x1) / 200} {(y2 - y1) / 100}\n"
                    for c, x1, y1, x2, y2 in bs))
    return root


def _results(path: Path, dets: list[tuple[str, int, list[float], float]]) -> Path:
    path.write_text(json.dumps([{"image_id": s, "category_id": c, "category_name": ["person", "car"][c],
                                 "bbox": b, "score": sc} for s, c, b, sc in dets]))
    return path


def test_perfect_and_shifted_boxes(tmp_path):
    gt = _yolo_gt(tmp_path / "gt", {"a": [(0, 10, 10, 60, 90)], "b": [(1, 100, 20, 180, 80)]})
    perfect = _results(tmp_path / "p.json", [("a", 0, [10, 10, 50, 80], 0.9), ("b", 1, [100, 20, 80, 60], 0.8)])
    r = evaluate(perfect, gt)
    assert r.map50_95 == pytest.approx(1.0) and r.map50 == pytest.approx(1.0)
    # person box shifted right by 10 px: IoU = 40*80 / (60*80) = 0.667 -> true positive at IoU
    # thresholds 0.50, 0.55, 0.60, 0.65 only: AP50-95 = 4/10
    shifted = _results(tmp_path / "s.json", [("a", 0, [20, 10, 50, 80], 0.9)])
    r = evaluate(shifted, gt)
    assert r.per_class["person"]["map50"] == pytest.approx(1.0)
    assert r.per_class["person"]["map50_95"] == pytest.approx(0.4, abs=1e-6)
    assert r.per_class["car"]["map50_95"] == 0.0 and r.per_class["car"]["pred"] == 0
    assert r.map50_95 == pytest.approx(0.2, abs=1e-6)


def test_false_positive_ranked_first_halves_precision(tmp_path):
    gt = _yolo_gt(tmp_path / "gt", {"a": [(0, 10, 10, 60, 90)]})
    p = _results(tmp_path / "p.json", [("a", 0, [120, 10, 50, 80], 0.95), ("a", 0, [10, 10, 50, 80], 0.5)])
    r = evaluate(p, gt)
    # precision at recall 1 is 1/2 -> COCO 101-point AP = 0.5
    assert r.per_class["person"]["map50"] == pytest.approx(0.5, abs=0.01)


def test_class_map_and_errors(tmp_path):
    gt = _yolo_gt(tmp_path / "gt", {"a": [(0, 10, 10, 60, 90)]})
    p = tmp_path / "p.json"
    p.write_text(json.dumps([{"image_id": "a", "category_id": 3, "category_name": "human",
                              "bbox": [10, 10, 50, 80], "score": 0.9}]))
    with pytest.raises(ConfigError, match=r"no prediction class \['human'\] matches"):
        evaluate(p, gt)
    assert evaluate(p, gt, class_map={"human": "person"}).map50 == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="not ground-truth classes"):
        evaluate(p, gt, class_map={"human": "people"})
    with pytest.raises(DatasetError, match="ground truth '.*nope' not found"):
        evaluate(p, tmp_path / "nope")
    other = _results(tmp_path / "o.json", [("zzz", 0, [1, 1, 5, 5], 0.5)])
    with pytest.raises(DatasetError, match="no predicted image matches a ground-truth image"):
        evaluate(other, gt)


def test_cli_evaluate_prints_table_and_json(tmp_path, capsys):
    gt = _yolo_gt(tmp_path / "gt", {"a": [(0, 10, 10, 60, 90)]})
    p = _results(tmp_path / "p.json", [("a", 0, [10, 10, 50, 80], 0.9)])
    assert main(["evaluate", str(p), "--gt", str(gt), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "person" in out and "1.000" in out
    assert json.loads((tmp_path / "r.json").read_text())["map50"] == pytest.approx(1.0)
    assert main(["evaluate", str(p), "--gt", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ground truth") and err.count("\n") == 1
    assert main(["evaluate", str(p), "--gt", str(gt), "--map", "oops"]) == 2
    assert "--map expects PRED=GT" in capsys.readouterr().err


def test_images_restrict_the_ground_truth(tmp_path):
    """Scoring a split: ground-truth images outside it must not count as misses."""
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},
                     {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100}],
          "categories": [{"id": 0, "name": "person"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
                          {"id": 2, "image_id": 2, "category_id": 0, "bbox": [50, 50, 30, 30], "area": 900, "iscrowd": 0}]}
    pred = {**gt, "images": gt["images"][:1],
            "annotations": [{**gt["annotations"][0], "score": 0.9}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    full = evaluate(tmp_path / "pred.json", tmp_path / "gt.json")
    split = evaluate(tmp_path / "pred.json", tmp_path / "gt.json", images=["a"])
    assert split.map50 == pytest.approx(1.0) and full.map50 < 0.6 and split.images == 1
    with pytest.raises(DatasetError, match="none of the 1 images"):
        evaluate(tmp_path / "pred.json", tmp_path / "gt.json", images=["zzz"])


def test_in_memory_detections_score_like_the_json_file(tmp_path):
    """evaluate() takes supervision / runtime detections directly: the same numbers as the JSON route."""
    import numpy as np
    import supervision as sv

    from autolabel.runtime import Detections

    gt = _yolo_gt(tmp_path / "gt", {"a": [(0, 10, 10, 60, 90)], "b": [(1, 100, 20, 180, 80)]})
    as_file = evaluate(_results(tmp_path / "s.json", [("a", 0, [20, 10, 50, 80], 0.9)]), gt)
    mem = {"a": sv.Detections(xyxy=np.array([[20, 10, 70, 90]], float), confidence=np.array([0.9]),
                              class_id=np.array([0])),
           "b": Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int),
                           np.zeros((0, 2), np.float32))}
    r = evaluate(mem, gt, names=["person", "car"])
    assert r.to_dict() == as_file.to_dict() and r.per_class["person"]["map50_95"] == pytest.approx(0.4, abs=1e-6)
    with pytest.raises(ConfigError, match="names="):
        evaluate(mem, gt)
    with pytest.raises(ConfigError, match="outside names"):
        evaluate(mem, gt, names=["person"][:0])
