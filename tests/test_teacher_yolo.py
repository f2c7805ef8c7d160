"""The closed-set teacher on real COCO weights (skipped without AUTOLABEL_WEIGHTS_DIR)."""

from __future__ import annotations

import numpy as np
import pytest

from autolabel.core.detections import SOFT_SCORES, apply_class_thresholds, validate_soft_scores
from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology, load_ontology
from autolabel.teachers import create_teacher
from tests.conftest import ROOT, weights_path

pytestmark = pytest.mark.slow  # real COCO models on real images


@pytest.fixture(scope="module")
def security():
    return load_ontology(ROOT / "ontologies" / "security.yaml")


@pytest.mark.parametrize("weights", ["yolov8n.pt", "yolo11n.pt"])
def test_bus_jpg_four_persons_and_a_bus(weights, security, bus_image):
    with pytest.warns(UserWarning, match=r"\['package'\] have no class"):
        teacher = create_teacher(f"yolo:{weights_path(weights)}", ontology=security, device="cpu")
    dets = teacher.predict([bus_image])
    assert len(dets) == 1
    d = apply_class_thresholds(dets[0], security.thresholds)
    soft = validate_soft_scores(d, len(security))
    names = [security.names[c] for c in d.class_id]
    assert names.count("person") == 4 and names.count("bus") == 1, names
    # soft scores keep every class, not only the argmax: the bus box also scores car/truck a little
    bus_row = soft[names.index("bus")]
    assert bus_row.argmax() == security.class_id("bus")
    assert np.count_nonzero(bus_row > 1e-5) >= 2
    np.testing.assert_allclose(d.confidence, soft.max(1), atol=1e-6)
    assert (soft[:, security.class_id("package")] == 0).all()  # COCO has no 'package'
    h, w = bus_image.shape[:2]
    assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= w).all() and (d.xyxy[:, [1, 3]] <= h).all()
    # the big bus box spans most of the image width
    bx = d.xyxy[names.index("bus")]
    assert bx[2] - bx[0] > 0.8 * w


def test_batch_of_different_sizes_matches_single_images(security, bus_image):
    teacher = create_teacher(f"yolo:{weights_path('yolov8n.pt')}", ontology=security, device="cpu")
    small = bus_image[::2, ::2].copy()
    wide = np.ascontiguousarray(np.concatenate([bus_image, bus_image], axis=1))
    batch = teacher.predict([bus_image, small, wide])
    for img, d in zip([bus_image, small, wide], batch):
        single = teacher.predict([img])[0]
        assert len(single) == len(d)
        np.testing.assert_allclose(single.xyxy, d.xyxy, atol=0.5)
        np.testing.assert_allclose(single.data[SOFT_SCORES], d.data[SOFT_SCORES], atol=1e-4)
    # scaled image: same boxes in its own pixel frame
    full = apply_class_thresholds(batch[0], security.thresholds)
    half = apply_class_thresholds(batch[1], security.thresholds)
    assert len(full) == len(half)


def test_merged_aliases_and_min_score(bus_image):
    onto = Ontology.from_dict({"classes": [
        {"name": "vehicle", "prompts": ["vehicle"], "aliases": ["car", "bus", "truck"]},
        {"name": "human", "prompts": ["human"], "aliases": ["person"]},
    ]})
    w = weights_path("yolov8n.pt")
    low = create_teacher(f"yolo:{w}", ontology=onto, device="cpu", min_score=0.01).predict([bus_image])[0]
    high = create_teacher(f"yolo:{w}", ontology=onto, device="cpu", min_score=0.5).predict([bus_image])[0]
    assert len(low) > len(high) >= 4
    assert (high.confidence >= 0.5).all()
    assert set(high.class_id.tolist()) == {0, 1}


def test_ontology_without_coco_classes_is_an_error():
    onto = Ontology.from_names(["ladder", "open door"])
    with pytest.raises(TeacherError, match=r"none of the ontology classes \['ladder', 'open door'\]"):
        create_teacher(f"yolo:{weights_path('yolov8n.pt')}", ontology=onto, device="cpu")
