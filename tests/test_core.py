"""Registry, detection contract, weights lookup."""

from __future__ import annotations

import numpy as np
import pytest

from autolabel.core.detections import (
    SOFT_SCORES,
    apply_class_thresholds,
    empty_detections,
    make_detections,
    nms,
    validate_soft_scores,
)
from autolabel.core.errors import ConfigError, WeightsNotFoundError
from autolabel.core.ontology import Ontology
from autolabel.core.registry import Registry
from autolabel.teachers import create_teacher, list_teachers, parse_teacher_spec


def test_registry_lists_valid_names_on_typo():
    reg: Registry[type] = Registry("widget")

    @reg.register("alpha", help="first")
    class A: ...

    assert reg.get("alpha") is A and "alpha" in reg and reg.names() == ["alpha"]
    with pytest.raises(ConfigError, match=r"unknown widget 'alpah'; valid widgets are \['alpha'\]"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(A)


def test_teacher_registry_and_spec_parsing():
    names = [e.name for e in list_teachers()]
    assert "yolo" in names
    assert parse_teacher_spec("yolo") == ("yolo", None)
    assert parse_teacher_spec("grounding-dino:/models/gd") == ("grounding-dino", "/models/gd")
    with pytest.raises(ConfigError, match="weights after ':' are empty"):
        parse_teacher_spec("yolo:")
    with pytest.raises(ConfigError, match=r"unknown teacher 'yollo'; valid teachers are \[.*'yolo'"):
        create_teacher("yollo", ontology=Ontology.from_names(["person"]))


def test_missing_weights_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLABEL_WEIGHTS_DIR", str(tmp_path))
    onto = Ontology.from_names(["person"])
    with pytest.raises(WeightsNotFoundError) as e:
        create_teacher("yolo:yolov8x-missing.pt", ontology=onto)
    msg = str(e.value)
    assert "yolov8x-missing.pt" in msg and str(tmp_path) in msg and "--teacher yolo:/path/to/" in msg
    assert "\n" not in msg
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match="is not a loadable Ultralytics checkpoint"):
        create_teacher(f"yolo:{bad}", ontology=onto)


def test_make_detections_argmax_and_contract():
    d = make_detections(np.array([[0, 0, 10, 10], [5, 5, 20, 20]]), np.array([[0.1, 0.7], [0.6, 0.2]]))
    assert d.class_id.tolist() == [1, 0]
    np.testing.assert_allclose(d.confidence, [0.7, 0.6])
    assert validate_soft_scores(d, 2).shape == (2, 2)
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(2, 3\)"):
        validate_soft_scores(d, 3)
    d.data[SOFT_SCORES][0, 0] = 1.5
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        validate_soft_scores(d, 2)
    assert empty_detections(4).data[SOFT_SCORES].shape == (0, 4)


def test_thresholds_and_nms_keep_soft_rows_aligned():
    soft = np.array([[0.9, 0.05], [0.8, 0.1], [0.1, 0.3], [0.05, 0.5]])
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], float)
    d = make_detections(xyxy, soft)
    kept = apply_class_thresholds(d, [0.85, 0.4])
    assert kept.class_id.tolist() == [0, 1]
    np.testing.assert_allclose(kept.data[SOFT_SCORES], soft[[0, 3]])
    per_class = nms(d, iou=0.5)
    assert len(per_class) == 3  # box 1 suppressed by box 0 (same class); box 3 is another class
    agnostic = nms(d, iou=0.5, class_agnostic=True)
    assert len(agnostic) == 2
    np.testing.assert_allclose(agnostic.data[SOFT_SCORES][agnostic.class_id == 0], soft[[0]])
