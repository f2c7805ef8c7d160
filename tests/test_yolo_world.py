"""YOLO-World teacher on a randomly initialised model built from its YAML (no weights, no CLIP, offline)."""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: never reach the network

import numpy as np
import pytest

import autolabel.teachers.yolo_world  # noqa: F401  (registers "yolo-world" until it is in _BUILTIN)
from autolabel.core.detections import SOFT_SCORES, validate_soft_scores
from autolabel.core.errors import WeightsNotFoundError
from autolabel.core.ontology import Ontology
from autolabel.teachers import create_teacher

pytest.importorskip("ultralytics")

ONTO = Ontology.from_dict(
    {
        "classes": [
            {"name": "person", "prompts": ["person", "pedestrian"]},  # two prompts -> one class
            {"name": "car", "prompts": ["car"]},
        ],
        "default_threshold": 0.0,
    }
)
YAML = "yolov8n-worldv2.yaml"  # architecture only; Ultralytics builds it offline with random weights


@pytest.fixture
def fake_text_encoder(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the CLIP text encoder call with random unit embeddings of the model's embedding size.

    ``WorldModel.set_classes`` stores ``get_text_pe(text)`` — a (1, len(text), D) tensor — as ``txt_feats``
    and sets the head's ``nc``; only the CLIP call is replaced, the model itself runs unchanged.
    """
    import torch
    from ultralytics.nn.tasks import WorldModel

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    torch.manual_seed(0)  # the YAML model's random weights
    calls: list[list[str]] = []

    def get_text_pe(self, text, batch=80, cache_clip_model=False):
        calls.append(list(text))
        g = torch.Generator().manual_seed(0)
        feats = torch.randn(1, len(text), self.txt_feats.shape[-1], generator=g)
        return torch.nn.functional.normalize(feats, dim=-1)

    monkeypatch.setattr(WorldModel, "get_text_pe", get_text_pe)
    return calls


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 255, (120, 200, 3), dtype=np.uint8),
        rng.integers(0, 255, (90, 60, 3), dtype=np.uint8),
    ]


@pytest.mark.slow
def test_predict_returns_per_class_soft_scores(fake_text_encoder: list[list[str]]) -> None:
    teacher = create_teacher(f"yolo-world:{YAML}", ONTO, device="cpu", imgsz=160, min_score=0.0, batch_size=1)
    assert fake_text_encoder == [["person", "pedestrian", "car"]]  # every prompt is a YOLO-World class
    assert teacher.spec == f"yolo-world:{YAML}"
    images = _images()
    out = teacher.predict(images)
    assert len(out) == 2
    for im, d in zip(images, out, strict=True):
        soft = validate_soft_scores(d, 2)  # C = ontology classes, not prompts
        assert len(d) > 0 and soft.shape == (len(d), 2)
        h, w = im.shape[:2]
        assert (d.xyxy[:, [0, 2]] >= 0).all() and (d.xyxy[:, [0, 2]] <= w).all()
        assert (d.xyxy[:, [1, 3]] >= 0).all() and (d.xyxy[:, [1, 3]] <= h).all()
        np.testing.assert_array_equal(d.class_id, soft.argmax(1))
        np.testing.assert_allclose(d.confidence, soft.max(1), atol=1e-6)


def test_prompt_scores_merge_by_max() -> None:
    import torch

    from autolabel.teachers.yolo import yolo_candidates

    # two far-apart anchors (xywh), three prompts -> classes [0, 0, 1] as in ONTO's prompt_class
    boxes = torch.tensor([[50.0, 300.0], [50.0, 300.0], [20.0, 20.0], [20.0, 20.0]])
    prompt_scores = torch.tensor([[0.2, 0.9], [0.7, 0.1], [0.5, 0.3]])  # (P=3, A=2)
    raw = torch.cat([boxes, prompt_scores])[None]  # (B=1, 4 + P, A)
    (xyxy, soft), = yolo_candidates(raw, np.array([0, 0, 1]), 2, min_score=0.0, iou=0.7, max_det=10)
    order = np.argsort(xyxy[:, 0])
    np.testing.assert_allclose(soft[order], [[0.7, 0.5], [0.9, 0.3]])
    np.testing.assert_allclose(xyxy[order], [[40, 40, 60, 60], [290, 290, 310, 310]])


@pytest.mark.slow
def test_min_score_filters_candidates(fake_text_encoder: list[list[str]]) -> None:
    images = _images()[:1]

    # One model (random weights differ between builds); min_score is read at predict time.
    teacher = create_teacher(f"yolo-world:{YAML}", ONTO, device="cpu", imgsz=160, min_score=0.0)

    def run(min_score: float):
        teacher.min_score = min_score
        return teacher.predict(images)[0]

    low = run(0.0)
    cut = float(np.median(low.confidence))
    high = run(cut)
    assert (high.confidence >= cut - 1e-6).all()
    assert 0 < len(high) <= len(low)
    assert high.data[SOFT_SCORES].shape == (len(high), 2)
    none = run(1.0)
    assert len(none) == 0 and none.data[SOFT_SCORES].shape == (0, 2)


def test_missing_weights_error_names_places(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOLABEL_WEIGHTS_DIR", str(tmp_path))
    missing = tmp_path / "nope" / "yolov8s-worldv2.pt"
    with pytest.raises(WeightsNotFoundError) as e:
        create_teacher(f"yolo-world:{missing}", ONTO, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "--teacher yolo-world:/path/" in msg
    # A bare name while offline: nothing to download from, and it says where it looked.
    import ultralytics.utils

    monkeypatch.setattr(ultralytics.utils, "ONLINE", False)
    with pytest.raises(WeightsNotFoundError, match="AUTOLABEL_WEIGHTS_DIR") as e:
        create_teacher("yolo-world", ONTO, device="cpu")
    assert "yolov8s-worldv2.pt" in str(e.value)


@pytest.mark.skipif(
    importlib.util.find_spec("clip") is not None, reason="clip installed: would try a download"
)
def test_missing_text_encoder_is_one_line() -> None:
    # No fake encoder: set_classes needs CLIP, whose package is absent here and must not be pip-installed.
    with pytest.raises(WeightsNotFoundError) as e:
        create_teacher(f"yolo-world:{YAML}", ONTO, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "ViT-B-32.pt" in msg and "clip" in msg
    assert importlib.util.find_spec("clip") is None  # nothing was installed


def test_not_a_world_model(tmp_path) -> None:
    from autolabel.core.errors import TeacherError

    weights = "/work/shared/weights/yolov8n.pt"
    if not os.path.exists(weights):
        pytest.skip("no closed-set YOLO weights here")
    with pytest.raises(TeacherError, match="not a YOLO-World model"):
        create_teacher(f"yolo-world:{weights}", ONTO, device="cpu")
