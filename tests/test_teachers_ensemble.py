"""Weighted boxes fusion, the ensemble teacher, test-time augmentation and tiling (fast, no real models)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from autolabel.core.detections import SOFT_SCORES, empty_detections, make_detections, validate_soft_scores
from autolabel.core.errors import ConfigError
from autolabel.core.ontology import Ontology
from autolabel.teachers import TEACHERS, create_teacher
from autolabel.teachers.base import Teacher
from autolabel.teachers.ensemble import EnsembleTeacher, create_ensemble, weighted_boxes_fusion
from autolabel.teachers.wrappers import TiledTeacher, TTATeacher, tile_windows, with_tiling, with_tta

ONTO = Ontology.from_names(["person", "car"], threshold=0.1)


def dets(boxes: list[list[float]], soft: list[list[float]], cls: list[int] | None = None, conf=None):
    return make_detections(
        np.array(boxes, dtype=float).reshape(-1, 4), np.array(soft, dtype=float), cls, conf
    )


# -- weighted boxes fusion ------------------------------------------------------------------------------
def test_wbf_fuses_overlapping_boxes_by_hand() -> None:
    a = dets([[10, 10, 50, 50]], [[0.8, 0.1]])
    b = dets([[12, 12, 52, 52]], [[0.6, 0.3]])  # IoU = 1444 / 1756 = 0.82 > 0.55
    fused = weighted_boxes_fusion([a, b], image_wh=(100, 100), weights=[2, 1])
    assert len(fused) == 1
    # Coordinates: weighted by conf * weight = 1.6 and 0.6.
    expected_box = (1.6 * np.array([10, 10, 50, 50]) + 0.6 * np.array([12, 12, 52, 52])) / 2.2
    np.testing.assert_allclose(fused.xyxy[0], expected_box, rtol=1e-6)
    # avg: sum(s*w) / n * min(n, N) / sum(weights) = 2.2 / 2 * 2 / 3.
    assert fused.confidence[0] == pytest.approx(2.2 / 2 * 2 / 3, abs=1e-6)
    # Soft rows fused by the same formula, column by column.
    soft = fused.data[SOFT_SCORES][0]
    np.testing.assert_allclose(soft, [(2 * 0.8 + 0.6) / 2 * 2 / 3, (2 * 0.1 + 0.3) / 2 * 2 / 3], atol=1e-6)
    assert soft[0] == pytest.approx(fused.confidence[0], abs=1e-6)  # hard-class soft score == confidence
    assert fused.class_id[0] == 0
    validate_soft_scores(fused, 2)


def test_wbf_lone_boxes_stay_separate_and_are_rescaled() -> None:
    a = dets([[10, 10, 50, 50]], [[0.8, 0.1]])
    b = dets([[12, 12, 52, 52], [100, 100, 140, 140]], [[0.6, 0.3], [0.9, 0.2]])
    fused = weighted_boxes_fusion([a, b], image_wh=(200, 200))
    assert len(fused) == 2
    lone = int(np.argmin(np.abs(fused.xyxy[:, 0] - 100)))
    np.testing.assert_allclose(fused.xyxy[lone], [100, 100, 140, 140])
    # Found by one model of two: avg halves the confidence and the soft row.
    assert fused.confidence[lone] == pytest.approx(0.45)
    np.testing.assert_allclose(fused.data[SOFT_SCORES][lone], [0.45, 0.1], atol=1e-6)
    assert list(fused.confidence) == sorted(fused.confidence, reverse=True)


def test_wbf_max_and_other_conf_types() -> None:
    a = dets([[10, 10, 50, 50]], [[0.8, 0.1]])
    b = dets([[12, 12, 52, 52], [100, 100, 140, 140]], [[0.6, 0.3], [0.9, 0.2]])
    m = weighted_boxes_fusion([a, b], image_wh=(200, 200), conf_type="max", weights=[1, 2])
    by_x = np.argsort(m.xyxy[:, 0])
    # max: max(s*w) / max(weights); the fused pair: max(0.8*1, 0.6*2) / 2 = 0.6, soft columnwise.
    assert m.confidence[by_x[0]] == pytest.approx(0.6)
    np.testing.assert_allclose(m.data[SOFT_SCORES][by_x[0]], [0.6, 0.3], atol=1e-6)
    assert m.confidence[by_x[1]] == pytest.approx(0.9)
    aw = weighted_boxes_fusion(
        [a, b], image_wh=(200, 200), conf_type="absent_model_aware_avg", weights=[1, 2]
    )
    by_x = np.argsort(aw.xyxy[:, 0])
    assert aw.confidence[by_x[0]] == pytest.approx((0.8 + 1.2) / 3)
    assert aw.confidence[by_x[1]] == pytest.approx(1.8 / (2 + 1))  # model a (weight 1) absent
    bm = weighted_boxes_fusion([a, b], image_wh=(200, 200), conf_type="box_and_model_avg", weights=[1, 2])
    by_x = np.argsort(bm.xyxy[:, 0])
    assert bm.confidence[by_x[0]] == pytest.approx(2.0 / 3 * 3 / 3)
    assert bm.confidence[by_x[1]] == pytest.approx(1.8 / 2 * 2 / 3)
    with pytest.raises(ConfigError, match="conf_type"):
        weighted_boxes_fusion([a, b], image_wh=(200, 200), conf_type="median")
    with pytest.raises(ConfigError, match="weights"):
        weighted_boxes_fusion([a, b], image_wh=(200, 200), weights=[1])


def test_wbf_does_not_fuse_different_classes() -> None:
    a = dets([[10, 10, 50, 50]], [[0.8, 0.1]])  # person
    b = dets([[10, 10, 50, 50]], [[0.1, 0.7]])  # car, same box
    fused = weighted_boxes_fusion([a, b], image_wh=(100, 100))
    assert sorted(fused.class_id.tolist()) == [0, 1]
    np.testing.assert_allclose(sorted(fused.confidence), [0.35, 0.4], atol=1e-6)


def test_wbf_running_box_and_skip_and_clipping() -> None:
    # Three models agree -> one cluster, fused box is the confidence-weighted mean of all three.
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [2, 0, 12, 10]]
    ms = [dets([b], [[s, 0.0]]) for b, s in zip(boxes, [0.9, 0.6, 0.3], strict=True)]
    fused = weighted_boxes_fusion(ms, image_wh=(100, 100))
    assert len(fused) == 1
    x1 = (0.9 * 0 + 0.6 * 1 + 0.3 * 2) / 1.8
    assert fused.xyxy[0, 0] == pytest.approx(x1, abs=1e-5)
    assert fused.confidence[0] == pytest.approx(0.6)
    # skip_box_thr drops the weakest before fusing; boxes are clipped to the image.
    fused = weighted_boxes_fusion(ms, image_wh=(11, 100), skip_box_thr=0.5)
    assert fused.confidence[0] == pytest.approx((0.9 + 0.6) / 2 * 2 / 3)
    assert fused.xyxy[:, 2].max() <= 11
    empty = weighted_boxes_fusion([empty_detections(2), empty_detections(2)], image_wh=(10, 10))
    assert len(empty) == 0 and empty.data[SOFT_SCORES].shape == (0, 2)


# -- ensemble teacher --------------------------------------------------------------------------------
class FixedTeacher(Teacher):
    """Returns the same detections for every image."""

    name = "fixed"

    def __init__(self, ontology: Ontology, result=None, weights: str = "x", **kw) -> None:
        super().__init__(ontology, weights=weights, **kw)
        self.result = empty_detections(len(ontology)) if result is None else result
        self.calls = 0

    def predict(self, images: Sequence[np.ndarray]) -> list:
        self.calls += 1
        return [self.result for _ in images]


if "fixed-test" not in TEACHERS:

    @TEACHERS.register("fixed-test", help="test only: returns no boxes")
    class RegisteredFixed(FixedTeacher):
        name = "fixed-test"


def test_ensemble_teacher_fuses_members() -> None:
    a = FixedTeacher(ONTO, dets([[10, 10, 50, 50]], [[0.8, 0.1]]), weights="a.pt")
    b = FixedTeacher(
        ONTO, dets([[12, 12, 52, 52], [60, 60, 90, 90]], [[0.6, 0.3], [0.1, 0.45]]), weights="b.pt"
    )
    ens = EnsembleTeacher(ONTO, teachers=[a, b], weights=[2, 1])
    assert "ensemble" in TEACHERS and TEACHERS.get("ensemble") is EnsembleTeacher
    assert ens.spec == "ensemble(fixed:a.pt+fixed:b.pt;weights=2,1)"
    images = [np.zeros((100, 120, 3), np.uint8)] * 3
    out = ens.predict(images)
    assert len(out) == 3 and a.calls == 1 and b.calls == 1
    d = out[0]
    validate_soft_scores(d, 2)
    # The lone car box (0.45 * 1 / 3 = 0.15) survives min_score 0.1; the fused person box as computed by hand.
    assert len(d) == 2
    assert d.confidence[0] == pytest.approx(2.2 / 3, abs=1e-6)
    assert d.class_id.tolist() == [0, 1]
    assert d.confidence[1] == pytest.approx(0.15, abs=1e-6)
    np.testing.assert_allclose(d.data[SOFT_SCORES][1], [0.1 / 3, 0.15], atol=1e-6)
    high = EnsembleTeacher(ONTO, teachers=[a, b], min_score=0.3).predict(images[:1])[0]
    assert len(high) == 1


def test_ensemble_validation_and_create_ensemble() -> None:
    a = FixedTeacher(ONTO, empty_detections(2))
    with pytest.raises(ConfigError, match="member"):
        EnsembleTeacher(ONTO, teachers=[])
    with pytest.raises(ConfigError, match="weights"):
        EnsembleTeacher(ONTO, teachers=[a, a], weights=[1])
    other = FixedTeacher(Ontology.from_names(["dog"]), empty_detections(1))
    with pytest.raises(ConfigError, match="labels"):
        EnsembleTeacher(ONTO, teachers=[a, other])
    assert EnsembleTeacher(ONTO, teachers=[a]).predict([np.zeros((8, 8, 3), np.uint8)])[0].data[
        SOFT_SCORES
    ].shape == (0, 2)

    single = create_ensemble(["fixed-test:one.pt"], ONTO)
    assert isinstance(single, FixedTeacher) and not isinstance(single, EnsembleTeacher)
    ens = create_ensemble(["fixed-test:one.pt", "fixed-test:two.pt"], ONTO, fusion_weights=[1, 3])
    assert isinstance(ens, EnsembleTeacher) and len(ens.teachers) == 2 and ens.fusion_weights == [1.0, 3.0]
    # Through the registry: what follows "ensemble:" is the members' specs.
    via_registry = create_teacher("ensemble:fixed-test:one.pt+fixed-test:two.pt", ONTO)
    assert isinstance(via_registry, EnsembleTeacher)
    assert via_registry.spec == "ensemble(fixed-test:one.pt+fixed-test:two.pt)"


# -- test-time augmentation -----------------------------------------------------------------------------
class SquareTeacher(Teacher):
    """Detects bright pixels: one box per connected bright blob (by thresholding), class 0."""

    name = "square"

    def __init__(self, ontology: Ontology, score: float = 0.9, **kw) -> None:
        super().__init__(ontology, weights="thr", **kw)
        self.score = score
        self.seen: list[tuple[int, int]] = []

    def predict(self, images: Sequence[np.ndarray]) -> list:
        import cv2

        out = []
        for im in images:
            self.seen.append(im.shape[:2])
            mask = (im[..., 0] > 127).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:n].tolist()]
            soft = [[self.score, 0.05]] * len(boxes)
            out.append(dets(boxes, soft) if boxes else empty_detections(2))
        return out


def test_tta_flip_and_scale_map_boxes_back() -> None:
    im = np.zeros((100, 160, 3), np.uint8)
    im[20:40, 10:50] = 255  # an off-centre square: a wrong flip would move it
    base = SquareTeacher(ONTO)
    tta = with_tta(base, flip=True, scales=(0.5, 2.0))
    assert isinstance(tta, TTATeacher)
    assert tta.spec == "square:thr+tta(flip,0.5,2)"
    out = tta.predict([im, im[:, ::-1].copy()])
    assert len(out) == 2
    assert (100, 160) in base.seen and (50, 80) in base.seen and (200, 320) in base.seen
    d = out[0]
    validate_soft_scores(d, 2)
    assert len(d) == 1  # all four views agree -> one box with the full score
    np.testing.assert_allclose(d.xyxy[0], [10, 20, 50, 40], atol=1.0)
    assert d.confidence[0] == pytest.approx(0.9, abs=1e-5)
    np.testing.assert_allclose(d.data[SOFT_SCORES][0], [0.9, 0.05], atol=1e-5)
    np.testing.assert_allclose(out[1].xyxy[0], [110, 20, 150, 40], atol=1.0)
    # A flip-only TTA reports "flip" and leaves the original unchanged.
    assert with_tta(base, flip=True).spec == "square:thr+tta(flip)"


# -- tiling ---------------------------------------------------------------------------------------------
def test_tile_windows_cover_the_image() -> None:
    wins = tile_windows(1000, 300, 256, 0.25)
    assert all(x2 - x1 <= 256 and y2 - y1 <= 256 for x1, y1, x2, y2 in wins)
    assert max(w[2] for w in wins) == 1000 and max(w[3] for w in wins) == 300
    xs = sorted({w[0] for w in wins})
    assert all(
        b - a <= 256 * 0.75 for a, b in zip(xs, xs[1:], strict=False)
    )  # at least the requested overlap
    assert tile_windows(200, 100, 256, 0.2) == [(0, 0, 200, 100)]


def test_tiling_returns_full_image_coordinates_without_duplicates() -> None:
    im = np.zeros((300, 1000, 3), np.uint8)
    squares = [(20, 30), (240, 20), (470, 200), (700, 50), (960, 260)]  # (x, y) of 12 px squares
    for x, y in squares:
        im[y : y + 12, x : x + 12] = 255
    im[100:220, 200:330] = 255  # one large object, cut by several tile edges
    base = SquareTeacher(ONTO, batch_size=3)
    tiled = with_tiling(base, tile=256, overlap=0.25)
    assert isinstance(tiled, TiledTeacher)
    assert tiled.spec == "square:thr+tiles(256,0.25,full)"
    d = tiled.predict([im])[0]
    validate_soft_scores(d, 2)
    expected = [[x, y, x + 12, y + 12] for x, y in squares] + [[200, 100, 330, 220]]
    assert len(d) == len(expected)  # no duplicates from overlaps, no cut-off pieces
    got = sorted(d.xyxy.tolist())
    np.testing.assert_allclose(got, sorted(expected), atol=1e-4)
    # Tiles went through the base in chunks of its batch size (plus the full image).
    n_views = len(tile_windows(1000, 300, 256, 0.25)) + 1
    assert len(base.seen) == n_views and (300, 1000) in base.seen

    # Without the full image, the tile that holds the large object whole wins over the cut pieces.
    no_full = with_tiling(SquareTeacher(ONTO), tile=256, overlap=0.25, include_full=False).predict([im])[0]
    np.testing.assert_allclose(sorted(no_full.xyxy.tolist()), sorted(expected), atol=1e-4)


def test_tiling_keeps_cut_pieces_when_nothing_covers_them() -> None:
    im = np.zeros((200, 600, 3), np.uint8)
    im[50:150, 20:580] = 255  # wider than any tile: every tile sees a piece
    d = with_tiling(SquareTeacher(ONTO), tile=200, overlap=0.2, include_full=False).predict([im])[0]
    assert len(d) >= 2  # pieces are kept (then NMS merges what overlaps enough)
    assert d.xyxy[:, 0].min() == pytest.approx(20) and d.xyxy[:, 2].max() == pytest.approx(580)
    full = with_tiling(SquareTeacher(ONTO), tile=200, overlap=0.2).predict([im])[0]
    assert full.xyxy.tolist() == [[20, 50, 580, 150]]  # the full image covers every piece


def test_ensemble_predict_split_keeps_hard_boxes_as_at_the_hard_floor() -> None:
    """Uncertain candidates come from fusing every member box; the hard ones exactly as if the members had
    stopped at the hard floor (WBF averages a cluster: a low duplicate joining it would lower the hard box)."""
    a = FixedTeacher(ONTO, dets([[10, 10, 50, 50], [60, 60, 90, 90]], [[0.8, 0.0], [0.2, 0.0]]), weights="a.pt")
    b = FixedTeacher(ONTO, dets([[12, 12, 52, 52], [10, 10, 44, 50]], [[0.6, 0.0], [0.15, 0.0]]), weights="b.pt")
    ens = EnsembleTeacher(ONTO, teachers=[a, b], min_score=0.05)
    images = [np.zeros((100, 120, 3), np.uint8)]
    (hard, unc), = ens.predict_split(images, hard_floor=0.3)
    assert len(hard) == 1 and hard.confidence[0] == pytest.approx((0.8 + 0.6) / 2)
    every = ens.predict(images)[0]  # all boxes fused: the low duplicate lowers the person box
    assert every.confidence.max() < hard.confidence[0] - 0.05
    # the uncertain part: the lone low box (0.2 of 2 members), not the person cluster again
    assert len(unc) == 1 and unc.confidence[0] == pytest.approx(0.1)
    np.testing.assert_allclose(unc.xyxy[0], [60, 60, 90, 90])
    # a single teacher splits one prediction by confidence
    (h1, u1), = a.predict_split(images, hard_floor=0.3)
    assert h1.confidence.tolist() == pytest.approx([0.8]) and u1.confidence.tolist() == pytest.approx([0.2])
