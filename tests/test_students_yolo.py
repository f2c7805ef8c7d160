"""Detection students: soft scores through augmentation, the soft loss, online KD, training, resume, errors.

Everything runs on the CPU with the registered ``test-yolo-tiny`` model at imgsz 64 (no weights, no network);
the KD step on real COCO weights is skipped without AUTOLABEL_WEIGHTS_DIR.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.core.ontology import Ontology
from autolabel.data.dataset import SIDECAR_FILE, DatasetWriter, read_records
from autolabel.labeling.label import LabelConfig, label
from autolabel.sources import Frame
from tests import fakes
from tests.conftest import weights_path

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")

from autolabel.students import STUDENTS, TrainConfig, load_soft_table, teacher_class_index, train  # noqa: E402
from autolabel.students.yolo.train import DISTILL_STATE_FILE, tiny_yolo_yaml  # noqa: E402

ONTO = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})
FAST = {"warmup_epochs": 0, "val": True, "mosaic": 1.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, imgsz=64, batch=8, device="cpu", workers=0, close_mosaic=0, progress=False,
                ultralytics=FAST)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def squares_ds(tmp_path_factory) -> Path:
    """16 images of red/blue squares labeled by the test teacher (soft scores 0.9/0.1 with per-box tweaks)."""
    tmp = tmp_path_factory.mktemp("squares")
    fakes.make_square_images(tmp / "src", 16, seed=3)
    label(tmp / "src", ONTO, "test-squares", tmp / "ds", LabelConfig(progress=False, val_fraction=0.25))
    return tmp / "ds"


def _copy(ds: Path, dst: Path) -> Path:
    shutil.copytree(ds, dst, ignore=shutil.ignore_patterns("*.cache"))
    return dst


@pytest.fixture(scope="module")
def color_ds(tmp_path_factory) -> Path:
    """Every box is a square of its own colour (G channel unique) and its soft row encodes that colour."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("colors")
    onto = Ontology.from_dict({"classes": [{"name": "a"}, {"name": "b"}]})
    frames, dets = [], []
    k = 0
    for i in range(10):
        im = np.full((96, 96, 3), 60, np.uint8)
        boxes, soft, cls = [], [], []
        for x0, y0 in ((6, 10 + 5 * (i % 4)), (58 - 3 * (i % 3), 50)):
            g = 40 + 10 * k  # 40, 50, ... 230: one colour per box
            im[y0 : y0 + 30, x0 : x0 + 30] = (200, g, 30)
            boxes.append([x0, y0, x0 + 30, y0 + 30])
            soft.append([g / 255.0, 1.0 - g / 255.0])
            cls.append(k % 2)
            k += 1
        src = tmp / "src" / f"c{i:02d}.png"
        src.parent.mkdir(exist_ok=True)
        Image.fromarray(im).save(src)
        frames.append(Frame(id=f"c{i:02d}", image=im, source=str(src), group=f"c{i:02d}", copyable=True, suffix=".png"))
        from autolabel.core.detections import make_detections

        dets.append(make_detections(np.array(boxes, float), np.array(soft), class_id=np.array(cls)))
    with DatasetWriter(tmp / "ds", onto, teacher="test-colors", val_fraction=0.0) as w:
        w.write_batch(frames, dets)
        w.finalize(preview_count=0)
    return tmp / "ds"


def _hyp(**kw):
    from ultralytics.cfg import get_cfg

    return get_cfg(overrides={"imgsz": 64, **kw})


def _soft_dataset(root: Path, augment: bool = True, **hyp):
    from autolabel.students.yolo.trainer import SoftLabelDataset

    table = load_soft_table(root)
    data = {"names": dict(enumerate(table.names)), "nc": table.num_classes, "channels": 3}
    return SoftLabelDataset(img_path=str(root / "images" / "train"), imgsz=64, batch_size=4, augment=augment,
                            hyp=_hyp(**hyp), data=data, soft_table=table, prefix="test: "), table


def _tiny_model(nc: int = 2, width: float = 0.0625, names=("red", "blue")):
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    m = DetectionModel(tiny_yolo_yaml(nc=nc, width=width), nc=nc, verbose=False)
    m.args = get_cfg()
    m.names = dict(enumerate(names))
    return m


# --------------------------------------------------------------------------------------------------------------
# soft scores through augmentation
# --------------------------------------------------------------------------------------------------------------


def test_soft_rows_follow_their_boxes_through_mosaic_affine_flips(color_ds, monkeypatch):
    from ultralytics.data import augment

    drops: list[tuple[int, int]] = []
    orig = augment.RandomPerspective.__call__

    def counting(self, labels):
        n_in = len(labels["cls"])
        out = orig(self, labels)
        drops.append((n_in, len(out["cls"])))
        return out

    monkeypatch.setattr(augment.RandomPerspective, "__call__", counting)
    ds, table = _soft_dataset(color_ds, mosaic=1.0, fliplr=1.0, flipud=1.0, degrees=0.0, translate=0.2,
                              scale=0.5, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)
    sidecar = {}  # box id -> (class, soft row) in sidecar order, by hand
    for rec in sorted(read_records(color_ds), key=lambda r: str((color_ds / r.image).resolve())):
        for c, s in zip(rec.boxes.class_id, rec.boxes.soft_scores):
            sidecar[len(sidecar)] = (c, s)
    assert len(sidecar) == 20 and len(ds.box_soft) == 20

    checked, samples = 0, [ds[i % len(ds)] for i in range(24)]
    for out in samples:
        img = out["img"].numpy()  # (3, H, W); channel 1 is G in BGR and RGB alike
        h, w = img.shape[1:]
        assert out["soft"].shape == (len(out["cls"]), 2) == (len(out["bboxes"]), 2)
        for (cx, cy, bw, bh), soft, c, bid in zip(out["bboxes"].tolist(), out["soft"].tolist(),
                                                  out["cls"].view(-1).tolist(), out["box_id"].tolist()):
            assert sidecar[bid][0] == c and np.allclose(sidecar[bid][1], soft)
            if bw * w < 4 or bh * h < 4:
                continue  # too thin to sample an interior pixel
            g = int(img[1, min(int(cy * h), h - 1), min(int(cx * w), w - 1)])
            # the pixel at the box centre has the colour its soft row encodes: the row came with its box
            assert abs(g - soft[0] * 255) <= 3, (g, soft)
            checked += 1
    assert checked >= 20
    assert any(n_out < n_in for n_in, n_out in drops), "the affine crop should have dropped some boxes"

    batch = ds.collate_fn(samples[:4])
    n = sum(len(s["cls"]) for s in samples[:4])
    assert batch["soft"].shape == (n, 2) and batch["cls"].shape == (n, 1) and batch["batch_idx"].shape == (n,)
    # batch order = cls order = soft order
    np.testing.assert_allclose(batch["soft"].numpy(), ds.box_soft[batch["box_id"].numpy()])
    np.testing.assert_array_equal(batch["cls"].view(-1).numpy(), ds.box_cls[batch["box_id"].numpy()])


def test_label_rows_keep_file_order_even_with_duplicates(squares_ds, tmp_path):
    """Ultralytics de-duplicates label rows (which re-sorts them); soft rows must still match file order."""
    ds_dir = _copy(squares_ds, tmp_path / "dup")
    recs = [r.to_json() for r in read_records(ds_dir)]
    rec = next(r for r in recs if len(r["class_id"]) >= 2 and r["split"] == "train")
    lbl = ds_dir / rec["label"]
    lines = sorted(lbl.read_text().splitlines(), reverse=True)  # np.unique would sort them the other way
    order = [float(ln.split()[1]) for ln in lines]
    lines.append(lines[0])  # plus an exact duplicate row
    lbl.write_text("\n".join(lines) + "\n")
    rec["class_id"] = [int(ln.split()[0]) for ln in lines]
    rec["soft_scores"] = [[0.11 * (j + 1), 0.05 * (j + 1)] for j in range(len(lines))]  # distinct rows
    rec["confidence"] = [0.5] * len(lines)
    w, h = rec["width"], rec["height"]
    rec["xyxy"] = [[(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
                   for cx, cy, bw, bh in (map(float, ln.split()[1:]) for ln in lines)]  # one box per row
    (ds_dir / SIDECAR_FILE).write_text("".join(json.dumps(r) + "\n" for r in recs))
    ds, _ = _soft_dataset(ds_dir, augment=False)
    out = ds[next(j for j, f in enumerate(ds.im_files) if Path(f).stem == rec["id"])]
    np.testing.assert_allclose(out["soft"].numpy(), np.array(rec["soft_scores"], np.float32), atol=1e-6)
    assert out["cls"].view(-1).tolist() == rec["class_id"]
    # letterboxing 128x96 -> 64 keeps normalized x: the boxes are in file order too
    np.testing.assert_allclose(out["bboxes"][:, 0].numpy(), [*order, order[0]], atol=1e-3)


# --------------------------------------------------------------------------------------------------------------
# the soft loss
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch_and_model(squares_ds):
    import random

    # mosaic draws its partner images and affine from Python's and numpy's generators: seed them too, or the batch
    # depends on whatever ran before (a training seeds them; the quick run trains nothing)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    ds, _ = _soft_dataset(squares_ds, mosaic=1.0)
    batch = ds.collate_fn([ds[i] for i in range(4)])
    batch["img"] = batch["img"].float() / 255
    model = _tiny_model()
    return batch, model


def _unit_alignment(crit):
    """An untrained model's boxes barely overlap anything, so the assigner's alignment weights are ~1e-9 and
    every class target is ~0. Keep its assignment but give assigned anchors weight 1 (same for all criteria)."""
    orig = crit.assigner

    def assign(*args, **kw):
        labels, bboxes, scores, fg, idx = orig(*args, **kw)
        onehot = torch.nn.functional.one_hot(labels.long(), scores.shape[-1]).to(scores.dtype)
        return labels, bboxes, onehot * fg[..., None], fg, idx

    crit.assigner = assign
    return crit


def test_soft_loss_alpha1_is_ultralytics_and_alpha0_uses_the_soft_rows(batch_and_model):
    from ultralytics.utils.loss import v8DetectionLoss

    from autolabel.students.yolo.trainer import SoftDetectionLoss

    batch, model = batch_and_model
    assert len(batch["cls"]) > 0
    model.train()
    preds = model(batch["img"])
    hard_batch = {k: v for k, v in batch.items() if k not in ("soft", "conf", "box_id")}
    for wrap in (lambda c: c, _unit_alignment):  # Ultralytics' own assigner, and visible alignment weights
        hard, hard_items = wrap(v8DetectionLoss(model))(preds, hard_batch)
        a1, a1_items = wrap(SoftDetectionLoss(model, alpha=1.0, temperature=3.0))(preds, batch)
        assert torch.equal(a1, hard), (a1, hard)
        assert all(torch.equal(a1_items[k], hard_items[k]) for k in hard_items)

    a0, _ = _unit_alignment(SoftDetectionLoss(model, alpha=0.0))(preds, batch)
    changed = dict(batch, soft=1.0 - batch["soft"])
    a0b, _ = _unit_alignment(SoftDetectionLoss(model, alpha=0.0))(preds, changed)
    assert torch.equal(a0[[0, 2]], a0b[[0, 2]]) and torch.equal(a0[[0, 2]], hard[[0, 2]])  # box/DFL untouched
    assert abs((a0[1] - a0b[1]).item()) > 1e-3 and abs((a0[1] - hard[1]).item()) > 1e-3  # class loss follows soft
    # confidence weighting: uncertain boxes count less (class and box losses of their anchors)
    cw, _ = _unit_alignment(SoftDetectionLoss(model, alpha=0.5, conf_weight=True))(
        preds, dict(batch, conf=batch["conf"] * 0.1))
    nw, _ = _unit_alignment(SoftDetectionLoss(model, alpha=0.5))(preds, batch)
    assert cw[0] < nw[0] and cw[1] < nw[1]


def test_soft_targets_formula(batch_and_model):
    """target = α·onehot·align + (1 − α)·soften(soft, T)·align on assigned anchors, 0 elsewhere."""
    from autolabel.distill.losses import soften_probs
    from autolabel.students.yolo.trainer import SoftDetectionLoss

    _, model = batch_and_model
    crit = SoftDetectionLoss(model, alpha=0.25, temperature=2.0)
    align = torch.tensor([[0.8, 0.0, 0.3]])  # anchor 1 is background
    target_scores = torch.tensor([[[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]]) * align[..., None]
    gt_soft = torch.tensor([[[0.9, 0.2], [0.3, 0.6]]])  # two boxes
    gt_idx = torch.tensor([[1, 0, 0]])  # anchor 0 -> box 1 (class 1), anchor 2 -> box 0 (class 0)
    t = crit.soft_targets(target_scores, gt_soft, gt_idx)
    s = soften_probs(gt_soft[0], 2.0)
    expect = torch.stack([0.8 * (0.25 * torch.tensor([0.0, 1.0]) + 0.75 * s[1]), torch.zeros(2),
                          0.3 * (0.25 * torch.tensor([1.0, 0.0]) + 0.75 * s[0])])[None]
    torch.testing.assert_close(t, expect)


def test_soft_loss_falls_with_a_few_optimizer_steps(batch_and_model):
    from copy import deepcopy

    from autolabel.students.yolo.trainer import SoftDetectionLoss

    batch, model = batch_and_model
    model = deepcopy(model).train()
    crit = SoftDetectionLoss(model, alpha=0.5, temperature=2.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(6):
        loss, _ = crit(model(batch["img"]), batch)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        losses.append(float(loss.detach().sum()))
    assert losses[-1] < losses[0] * 0.97, losses


@pytest.fixture(scope="module")
def uncertain_ds(tmp_path_factory) -> Path:
    """Blue squares are hard labels; red ones fall below red's threshold (0.95) and are kept as uncertain boxes."""
    tmp = tmp_path_factory.mktemp("uncertain")
    fakes.make_square_images(tmp / "src", 16, seed=3)
    strict = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.95}, {"name": "blue", "threshold": 0.5}]})
    label(tmp / "src", strict, "test-squares", tmp / "ds", LabelConfig(progress=False, val_fraction=0.25, uncertain_conf=0.5))
    return tmp / "ds"


def _uncertain_dataset(root: Path, uncertain: bool = True, **hyp):
    from autolabel.students.yolo.trainer import SoftLabelDataset

    table = load_soft_table(root)
    data = {"names": dict(enumerate(table.names)), "nc": table.num_classes, "channels": 3}
    return SoftLabelDataset(img_path=str(root / "images" / "train"), imgsz=64, batch_size=4, augment=True,
                            hyp=_hyp(**hyp), data=data, soft_table=table, uncertain=uncertain, prefix="test: "), table


def test_uncertain_boxes_join_the_samples_flagged_through_mosaic(uncertain_ds):
    ds, table = _uncertain_dataset(uncertain_ds, mosaic=1.0, fliplr=0.5, translate=0.2, scale=0.5)
    assert table.num_uncertain > 0 and not ds.box_hard[ds.box_cls == 0].any() and ds.box_hard[ds.box_cls == 1].all()
    seen = 0
    for i in range(24):
        out = ds[i % len(ds)]
        # red (class 0) boxes are exactly the uncertain ones, after mosaic / affine / flips
        assert out["hard"].tolist() == (out["cls"].view(-1) == 1).tolist()
        assert (out["conf"][~out["hard"]] < 0.95).all()
        seen += int((~out["hard"]).sum())
    assert seen > 0
    batch = ds.collate_fn([ds[i] for i in range(4)])
    assert batch["hard"].shape == batch["conf"].shape == (len(batch["cls"]),)
    plain, _ = _uncertain_dataset(uncertain_ds, uncertain=False, mosaic=1.0)
    assert plain.box_hard.all() and not (plain.box_cls == 0).any()  # without: only the label files' boxes


def test_uncertain_boxes_are_soft_only_targets(uncertain_ds):
    """An uncertain box's class target is its soft row (no one-hot, whatever α); with confidence 1 and a
    one-hot soft row it is exactly an Ultralytics hard box."""
    from ultralytics.utils.loss import v8DetectionLoss

    from autolabel.students.yolo.trainer import SoftDetectionLoss

    torch.manual_seed(0)
    ds, _ = _uncertain_dataset(uncertain_ds, mosaic=1.0)
    samples = [ds[i % len(ds)] for i in range(40)]  # mosaic crops are random: pick 4 with both kinds of box
    mixed = [s for s in samples if s["hard"].any() and (~s["hard"]).any()]
    assert len(mixed) >= 4
    batch = ds.collate_fn(mixed[:4])
    batch["img"] = batch["img"].float() / 255
    unc = ~batch["hard"]
    assert unc.any() and batch["hard"].any()
    model = _tiny_model().train()
    preds = model(batch["img"])
    crit = _unit_alignment(SoftDetectionLoss(model, alpha=1.0))
    base, _ = crit(preds, batch)
    other_hard = batch["soft"].clone()
    other_hard[~unc] = 1.0 - other_hard[~unc]
    same, _ = crit(preds, dict(batch, soft=other_hard))  # α 1: hard boxes ignore their soft rows
    torch.testing.assert_close(same, base)
    other_unc = batch["soft"].clone()
    other_unc[unc] = 1.0 - other_unc[unc]
    moved, _ = crit(preds, dict(batch, soft=other_unc))  # ... uncertain boxes do not
    assert abs(float((moved[1] - base[1]).detach())) > 1e-3 and torch.equal(moved[[0, 2]], base[[0, 2]])
    # box losses of uncertain boxes scale with the teacher's confidence
    low, _ = crit(preds, dict(batch, conf=torch.where(unc, batch["conf"] * 0.1, batch["conf"])))
    assert not torch.allclose(low[0], base[0])
    onehot = torch.nn.functional.one_hot(batch["cls"].view(-1).long(), 2).float()
    as_hard = dict(batch, soft=onehot, conf=torch.ones_like(batch["conf"]))
    hard_batch = {k: v for k, v in batch.items() if k not in ("soft", "conf", "box_id", "hard")}
    ref, _ = _unit_alignment(v8DetectionLoss(model))(preds, hard_batch)
    got, _ = _unit_alignment(SoftDetectionLoss(model, alpha=0.3))(preds, as_hard)
    torch.testing.assert_close(got, ref)


@pytest.mark.slow
def test_train_with_uncertain_boxes_records_it(uncertain_ds, tmp_path):
    res = train(uncertain_ds, "test-yolo-tiny", tmp_path / "run", _cfg(epochs=1))
    assert json.loads((res.out / "autolabel_train.json").read_text())["uncertain"] is True
    assert res.metrics["distillation"]["uncertain"] is True
    off = train(uncertain_ds, "test-yolo-tiny", tmp_path / "off", _cfg(epochs=1, uncertain=False))
    assert json.loads((off.out / "autolabel_train.json").read_text())["uncertain"] is False


# --------------------------------------------------------------------------------------------------------------
# online KD
# --------------------------------------------------------------------------------------------------------------


def test_online_kd_step_trains_projections_and_student(batch_and_model):
    from copy import deepcopy

    from autolabel.distill.losses import MultiLevelHint
    from autolabel.students.yolo.trainer import OnlineKD, Plan, StudentCriterion, neck_channels

    batch, model = batch_and_model
    student = deepcopy(model).train()
    teacher = _tiny_model(width=0.125).eval()
    s_ch, t_ch = neck_channels(student), neck_channels(teacher)
    assert s_ch != t_ch and len(s_ch) == 3
    hints = MultiLevelHint(s_ch, t_ch)
    kd = OnlineKD(teacher, hints, teacher_class_index(teacher.names, ["red", "blue"]), 2, 2.0, 1.0, 1.0)
    crit = StudentCriterion(student, Plan(soft=load_soft_table_stub(), alpha=0.5), kd)
    loss, items = crit(student(batch["img"]), batch)
    assert set(items) == {"box_loss", "cls_loss", "dfl_loss", "kd_loss", "hint_loss"}
    assert items["kd_loss"] > 0 and items["hint_loss"] > 0
    loss.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hints.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert student.model[-1].cv3[0][-1].weight.grad.abs().sum() > 0


def load_soft_table_stub():
    from autolabel.students.yolo.train import SoftTable

    return SoftTable(names=["red", "blue"], images={})


@pytest.mark.slow
def test_kd_from_real_coco_yolo_maps_classes_by_name(batch_and_model):
    from ultralytics.nn.tasks import load_checkpoint

    from autolabel.distill.losses import MultiLevelHint
    from autolabel.students.yolo.trainer import OnlineKD, Plan, StudentCriterion, neck_channels

    teacher, _ = load_checkpoint(str(weights_path("yolov8n.pt")))
    batch, _ = batch_and_model
    student = _tiny_model(nc=1, names=("person",)).train()
    index = teacher_class_index(teacher.names, ["person"])
    assert index[0] == 0 and sum(i >= 0 for i in index) == 1
    hints = MultiLevelHint(neck_channels(student), neck_channels(teacher))
    kd = OnlineKD(teacher.eval(), hints, index, 1, 2.0, 1.0, 1.0)
    hard = {k: v for k, v in batch.items() if k not in ("soft", "conf", "box_id")}
    hard["cls"] = torch.zeros_like(hard["cls"])
    loss, items = StudentCriterion(student, Plan(), kd)(student(batch["img"]), hard)
    loss.sum().backward()
    assert items["kd_loss"] > 0 and all(p.grad is not None for p in hints.parameters())


def test_teacher_class_mapping():
    coco = {0: "person", 1: "bicycle", 2: "car", 7: "truck"}
    assert teacher_class_index(coco, ["car", "person"]) == [1, -1, 0, -1, -1, -1, -1, -1]
    onto = Ontology.from_dict({"classes": [{"name": "vehicle", "aliases": ["car", "truck"]}, {"name": "person"}]})
    assert teacher_class_index(coco, ["vehicle", "person"], onto) == [1, -1, 0, -1, -1, -1, -1, 0]
    with pytest.raises(ConfigError, match="match none of the student classes"):
        teacher_class_index(coco, ["red", "blue"])


# --------------------------------------------------------------------------------------------------------------
# training end to end
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_tiny_student_writes_weights_and_metrics(squares_ds, tmp_path):
    assert "test-yolo-tiny" in STUDENTS
    res = train(squares_ds, "test-yolo-tiny", tmp_path / "run", _cfg(epochs=2))
    assert res.last.is_file() and res.best.is_file() and res.metrics_path.is_file()
    assert res.metrics_path.parent == res.best.parent  # metrics.json next to the weights
    m = json.loads(res.metrics_path.read_text())
    assert {"mAP50-95", "mAP50", "per_class_mAP50-95"} <= set(m) and m["split"] == "val"
    assert set(m["per_class_mAP50-95"]) == {"red", "blue"}
    from ultralytics.nn.tasks import load_checkpoint

    model, ckpt = load_checkpoint(str(res.best))
    assert model.model[-1].nc == 2 and list(model.names.values()) == ["red", "blue"]
    rows = list(csv.DictReader((res.out / "results.csv").open()))
    assert len(rows) == 2 and all(float(r["train/cls_loss"]) > 0 for r in rows)
    settings = json.loads((res.out / "autolabel_train.json").read_text())
    assert settings["alpha"] == 0.5 and settings["hard_only"] is False
    used = yaml.safe_load((res.out / "args.yaml").read_text())  # autolabel's fine-tuning schedule by default
    assert (used["nbs"], used["optimizer"], used["lr0"], used["cos_lr"]) == (8, "AdamW", 0.001, True)
    with pytest.raises(ConfigError, match="--resume"):
        train(squares_ds, "test-yolo-tiny", tmp_path / "run", _cfg(epochs=2))


@pytest.mark.slow  # two trainings, ~11 s on 2 cores
def test_born_again_generation_1_distills_generation_0_online(squares_ds, tmp_path):
    """recipe born-again: gen1 is a fresh student whose online KD teacher is gen0's best.pt; the run folder
    ends with the last generation's weights in the layout of every family."""
    out = tmp_path / "ban"
    res = train(squares_ds, "test-yolo-tiny", out, _cfg(epochs=1, recipe="born-again", generations=2))
    gen0 = json.loads((out / "gen0" / "autolabel_train.json").read_text())
    gen1 = json.loads((out / "gen1" / "autolabel_train.json").read_text())
    teacher = str((out / "gen0" / "weights" / "best.pt").resolve())
    assert gen0["kd_teacher"] is None and gen1["kd_teacher"] == teacher and gen1["kd_weight"] > 0
    assert gen1["student"] == gen0["student"] == "test-yolo-tiny"  # same architecture, fresh start
    assert res.best == out / "weights" / "best.pt" and res.best.read_bytes() == (out / "gen1" / "weights" / "best.pt").read_bytes()
    assert [g["kd_teacher"] for g in res.metrics["born_again"]] == [None, teacher]
    assert json.loads(res.metrics_path.read_text())["recipe"] == "born-again"


@pytest.mark.slow
def test_training_progress_is_one_epoch_bar_and_its_checkpoint_loads_restricted(squares_ds, tmp_path, capfd):
    """Ultralytics stays quiet (no argument dump, no layer table) and autolabel draws an epoch bar instead;
    the checkpoint it writes loads with weights_only (no code can run from it)."""
    from autolabel.core.checkpoints import load_yolo

    res = train(squares_ds, "test-yolo-tiny", tmp_path / "run", _cfg(epochs=2, progress=True))
    err = capfd.readouterr().err
    assert "training" in err and "2/2" in err and "epoch" in err, err[-500:]
    assert "engine/trainer:" not in err and "params  module" not in err
    assert load_yolo(res.best).task == "detect"


@pytest.mark.slow
def test_kd_training_resumes_and_keeps_projections_out_of_the_checkpoint(squares_ds, tmp_path, monkeypatch):
    from ultralytics.nn.tasks import load_checkpoint

    from autolabel.students.yolo.trainer import AutolabelTrainer

    teacher_pt = tmp_path / "teacher.pt"
    torch.save({"model": _tiny_model(width=0.125), "train_args": {}}, teacher_pt)
    orig = AutolabelTrainer.save_model

    def save_then_die(self):
        ok = orig(self)
        if self.epoch == 0:
            raise KeyboardInterrupt  # killed right after epoch 1's checkpoint
        return ok

    monkeypatch.setattr(AutolabelTrainer, "save_model", save_then_die)
    cfg = _cfg(epochs=2, kd_teacher=str(teacher_pt), kd_weight=1.0, hint_weight=1.0, temperature=2.0)
    with pytest.raises(KeyboardInterrupt):
        train(squares_ds, "test-yolo-tiny", tmp_path / "kd", cfg)
    out = tmp_path / "kd"
    state = torch.load(out / "weights" / DISTILL_STATE_FILE)
    assert state["epoch"] == 0 and len(state["hints"]) == 6  # 3 levels x (weight, bias)
    _, ck = load_checkpoint(str(out / "weights" / "last.pt"))
    # the optimizer trains the projections (their own group) ...
    assert any(g.get("param_group") == "hint" for g in ck["optimizer"]["param_groups"])
    monkeypatch.setattr(AutolabelTrainer, "save_model", orig)

    res = train(squares_ds, "ignored-on-resume", out, TrainConfig(resume=True, device="cpu", workers=0, progress=False))
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]
    assert all(float(r["train/kd_loss"]) > 0 and float(r["train/hint_loss"]) > 0 for r in rows)
    state2 = torch.load(out / "weights" / DISTILL_STATE_FILE)
    assert state2["epoch"] == 1
    assert any(not torch.equal(state["hints"][k], state2["hints"][k]) for k in state["hints"])  # trained on
    # ... but the student checkpoint holds the student only: same parameters as a fresh tiny model
    model, _ = load_checkpoint(str(res.best))
    fresh = _tiny_model()
    assert model.state_dict().keys() == fresh.state_dict().keys()
    assert not any("hint" in k or "proj" in k for k in model.state_dict())
    assert getattr(model, "criterion", None) is None
    assert json.loads(res.metrics_path.read_text())["distillation"]["kd_teacher"] == str(teacher_pt.resolve())


@pytest.mark.slow
def test_pruned_student_module_keeps_its_architecture_with_kd_from_the_unpruned_model(squares_ds, tmp_path):
    """The compression use: a pruned model (weights no longer match its YAML) recovers from its unpruned self."""
    from ultralytics.nn.tasks import load_checkpoint

    unpruned = _tiny_model(width=0.125)
    pruned = _tiny_model(width=0.0625)
    pruned.yaml = dict(unpruned.yaml)  # as after channel pruning: the YAML would rebuild the unpruned widths
    shapes = {k: v.shape for k, v in pruned.state_dict().items()}
    res = train(squares_ds, pruned, tmp_path / "pruned", _cfg(epochs=1, kd_teacher=unpruned, temperature=2.0))
    assert res.settings["keep_architecture"] is True and res.settings["kd_teacher"] == "<DetectionModel>"
    model, _ = load_checkpoint(str(res.best))
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert res.metrics["distillation"]["kd_weight"] == 1.0


@pytest.mark.slow
def test_cli_hard_only_trains_on_a_plain_yolo_dataset(squares_ds, tmp_path, capsys):
    from autolabel.app.cli import main

    ds = _copy(squares_ds, tmp_path / "plain")
    (ds / "autolabel.json").unlink()
    (ds / SIDECAR_FILE).unlink()
    args = ["train", str(ds), "--student", "test-yolo-tiny", "--out", str(tmp_path / "hard"), "--epochs", "1",
            "--imgsz", "64", "--batch", "8", "--device", "cpu", "--workers", "0", "--quiet"]
    assert main(["train", str(ds), "--student", "test-yolo-tiny", "--out", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--hard-only" in err and "\n" not in err
    assert main([*args, "--hyp", "nbs"]) == 2  # --hyp needs KEY=VALUE
    assert "--hyp expects KEY=VALUE" in capsys.readouterr().err
    assert main([*args, "--hard-only", "--hyp", "nbs=4", "--hyp", "lr0=0.003"]) == 0
    assert "mAP50-95" in capsys.readouterr().out
    m = json.loads((tmp_path / "hard" / "weights" / "metrics.json").read_text())
    assert m["distillation"]["hard_only"] is True and (tmp_path / "hard" / "weights" / "best.pt").is_file()
    used = yaml.safe_load((tmp_path / "hard" / "args.yaml").read_text())  # --hyp reached Ultralytics, typed
    assert used["nbs"] == 4 and used["lr0"] == 0.003
    # the rest of autolabel's fine-tuning schedule stays (AdamW stepped every batch, cosine, bias warm-up from 0)
    assert (used["optimizer"], used["cos_lr"], used["warmup_bias_lr"]) == ("AdamW", True, 0.0)


# --------------------------------------------------------------------------------------------------------------
# bad input: one clear line
# --------------------------------------------------------------------------------------------------------------


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_missing_sidecar_suggests_hard_only(squares_ds, tmp_path):
    ds = _copy(squares_ds, tmp_path / "nosidecar")
    (ds / SIDECAR_FILE).unlink()
    with pytest.raises(DatasetError) as e:
        train(ds, "test-yolo-tiny", tmp_path / "o1", _cfg())
    assert "--hard-only" in _one_line(e) and SIDECAR_FILE in str(e.value)
    with pytest.raises(DatasetError) as e:
        train(tmp_path / "nope", "test-yolo-tiny", tmp_path / "o1b", _cfg())
    _one_line(e)


def test_label_lines_not_matching_sidecar_rows(squares_ds, tmp_path):
    ds = _copy(squares_ds, tmp_path / "edited")
    rec = next(r for r in read_records(ds) if len(r.boxes) >= 2)
    lbl = ds / rec.label
    lbl.write_text("".join(lbl.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DatasetError) as e:
        train(ds, "test-yolo-tiny", tmp_path / "o2", _cfg())
    assert "soft-score rows" in _one_line(e)


def test_student_with_other_classes_that_cannot_be_adapted(squares_ds, tmp_path):
    pruned_like = _tiny_model(nc=3, names=("a", "b", "c"))
    with pytest.raises(DatasetError) as e:
        train(squares_ds, pruned_like, tmp_path / "o3", _cfg())
    assert "3 classes" in _one_line(e) and "cannot be adapted" in str(e.value)


def test_missing_student_weights_offline(squares_ds, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as e:
        train(squares_ds, "yolov8-does-not-exist.pt", tmp_path / "o4", _cfg())
    assert "--student" in _one_line(e)
    with pytest.raises(WeightsNotFoundError, match="test-yolo-tiny"):  # a bare name: weights, or a registered name
        train(squares_ds, "no-such-student", tmp_path / "o5", _cfg())
    with pytest.raises(ConfigError):
        train(squares_ds, "student.onnx", tmp_path / "o6", _cfg())


@pytest.mark.slow
def test_student_is_scored_against_human_labels_next_to_the_model(squares_ds, tmp_path, capsys):
    from autolabel.app.cli import main

    gt = tmp_path / "human"
    (gt / "images").mkdir(parents=True)
    (gt / "labels").mkdir()
    (gt / "data.yaml").write_text("train: images\nval: images\nnames:\n  0: red\n  1: blue\n")
    recs = list(read_records(squares_ds))
    for r in recs:  # the teacher's boxes stand in for human ones, under the original file names
        stem = Path(r.source).stem
        shutil.copy(squares_ds / r.image, gt / "images" / f"{stem}.png")
        shutil.copy(squares_ds / r.label, gt / "labels" / f"{stem}.txt")
    out = tmp_path / "run"
    args = ["train", str(squares_ds), "--student", "test-yolo-tiny", "--out", str(out), "--epochs", "1",
            "--imgsz", "64", "--batch", "8", "--device", "cpu", "--workers", "0", "--gt", str(gt), "-q"]
    assert main(args) == 0, capsys.readouterr().err
    assert "against human labels" in capsys.readouterr().out
    h = json.loads((out / "weights" / "metrics.json").read_text())["against_human_labels"]
    assert h["images"] == sum(r.split == "val" for r in recs) and 0.0 <= h["mAP50-95"] <= 1.0
    assert set(h["per_class"]) <= {"red", "blue"}
    # human labels that cover none of the val images: one clear line
    for p in (gt / "images").iterdir():
        p.rename(p.with_name("other_" + p.name))
    assert main([*args, "--overwrite"]) == 2
    assert "has a human label" in capsys.readouterr().err
