"""SSDLite student: soft-label loss against a hand-written reference, flips, training, resume, predict, ONNX.

Everything runs on a tiny generated dataset (red/blue squares labeled by the ``test-squares`` teacher) at
a small input size, from scratch (no COCO download).
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.core.ontology import Ontology
from autolabel.data.dataset import SIDECAR_FILE, read_records
from autolabel.labeling.label import LabelConfig, label
from autolabel.students.ssdlite import train as ssdlite
from autolabel.students.ssdlite.train import (
    SoftLabelSSD,
    SSDLiteConfig,
    SSDLiteExport,
    augment_sample,
    build_ssdlite,
    load_ssdlite,
    predict_ssdlite,
    train_ssdlite,
)
from tests import fakes

ONTO = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})
SIZE = 96


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ssd")
    fakes.make_square_images(tmp / "src", 14, seed=3)
    out = tmp / "ds"
    label(tmp / "src", ONTO, "test-squares", out, LabelConfig(batch_size=8, progress=False, val_fraction=0.25))
    splits = [r.split for r in read_records(out)]
    assert splits.count("train") >= 6 and splits.count("val") >= 1, splits
    return out


@pytest.fixture(scope="module")
def batch(dataset):
    """A fixed batch through the model's transform, backbone, head, anchors and matcher."""
    names = ["red", "blue"]
    samples = ssdlite._read_samples(dataset, len(names))["train"][:4]
    data = ssdlite._Data(samples, train=False, seed=0, hflip=0.0, photometric=False)
    images, targets = ssdlite._collate([data[i] for i in range(len(data))])
    torch.manual_seed(0)
    model, _ = build_ssdlite(2, SIZE, soft=True, alpha=0.5, temperature=2.0)
    model.train()
    with torch.no_grad():
        im, tg = model.transform(images, targets)
        feats = list(model.backbone(im.tensors).values())
        head = model.head(feats)
        anchors = model.anchor_generator(im, feats)
        matched = [model.proposal_matcher(box_iou(t["boxes"], a)) for t, a in zip(tg, anchors)]
    assert all("soft" in t for t in tg)  # the transform carries the soft rows
    return model, images, targets, tg, head, anchors, matched


# ----------------------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha,temperature", [(0.5, 2.0), (0.0, 1.0), (0.3, 4.0)])
def test_soft_loss_equals_hand_written_reference(batch, alpha, temperature):
    model, _, _, tg, head, anchors, matched = batch
    model.soft_alpha, model.soft_temperature = alpha, temperature
    got = model.compute_loss(tg, head, anchors, matched)
    hard = SSD.compute_loss(model, tg, head, anchors, matched)  # torchvision's own loss

    # reference: positive anchors' KD term by hand, in float64
    n_pos, ce_pos, kl = 0, 0.0, 0.0
    for t, z, m in zip(tg, head["cls_logits"].double(), matched):
        fg = m >= 0
        n_pos += int(fg.sum())
        rows, lab, zi = t["soft"][m[fg]].double(), t["labels"][m[fg]], z[fg]
        p = torch.cat([1 - rows.max(1, keepdim=True).values, rows], 1)  # (background, classes)
        q = p ** (1 / temperature)
        q = q / q.sum(1, keepdim=True)
        log_s = zi / temperature - torch.logsumexp(zi / temperature, 1, keepdim=True)
        kl += float((q * (q.log() - log_s)).sum())
        ce_pos += float(-(zi.gather(1, lab[:, None]) - torch.logsumexp(zi, 1, keepdim=True)).sum())
    assert n_pos > 0
    neg = float(hard["classification"]) * n_pos - ce_pos  # torchvision's mined negatives (unchanged)
    expected = (alpha * ce_pos + (1 - alpha) * temperature**2 * kl + neg) / n_pos
    assert float(got["classification"]) == pytest.approx(expected, rel=1e-5)
    assert torch.equal(got["bbox_regression"], hard["bbox_regression"])
    assert abs(float(got["classification"]) - float(hard["classification"])) > 1e-3


def test_alpha_one_is_torchvision_loss(batch):
    model, images, targets, tg, head, anchors, matched = batch
    model.soft_alpha, model.soft_temperature = 1.0, 2.0
    got = model.compute_loss(tg, head, anchors, matched)
    hard = SSD.compute_loss(model, tg, head, anchors, matched)
    assert torch.equal(got["classification"], hard["classification"])
    assert torch.equal(got["bbox_regression"], hard["bbox_regression"])
    # the full forward: soft rows through targets (α = 1) == no soft rows (torchvision's path) …
    # (train mode: BatchNorm uses batch statistics, so equal inputs give equal losses)
    with torch.no_grad():
        a = model(images, targets)
        b = model(images, [{k: v for k, v in t.items() if k != "soft"} for t in targets])
        model.soft_alpha = 0.5  # … and α < 1 changes it
        c = model(images, targets)
    assert torch.equal(a["classification"], b["classification"])
    assert float(c["classification"]) != pytest.approx(float(b["classification"]), rel=1e-4)


def test_soft_class_target_definition():
    soft = torch.tensor([[0.8, 0.2], [0.0, 0.0], [1.0, 0.0]])
    t = ssdlite.soft_class_target(soft, 1.0, labels=torch.tensor([1, 2, 1]))
    assert torch.allclose(t[0], torch.tensor([0.2, 0.8, 0.2]) / 1.2)
    assert torch.allclose(t[1], torch.tensor([0.0, 0.0, 1.0]))  # no teacher score: the hard one-hot
    assert torch.allclose(t[2], torch.tensor([0.0, 1.0, 0.0]))  # a certain teacher: no background mass
    t2 = ssdlite.soft_class_target(soft[:1], 2.0)
    q = torch.tensor([0.2, 0.8, 0.2]).sqrt()
    assert torch.allclose(t2[0], q / q.sum())


# ----------------------------------------------------------------------------------------------------------
# augmentation
# ----------------------------------------------------------------------------------------------------------


def test_soft_rows_follow_horizontal_flip():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, :10] = 255
    target = {
        "boxes": np.array([[0, 0, 10, 10], [20, 5, 50, 30], [60, 0, 60.5, 10], [90, 20, 130, 35]], np.float32),
        "classes": np.array([0, 1, 0, 1]),
        "soft": np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.3], [0.05, 0.55]], np.float32),
    }
    out, t = augment_sample(img, target, np.random.default_rng(0), hflip=1.0, photometric=False)
    assert out.shape == (40, 100, 3) and out[:, -10:].min() == 1.0 and out[:, :10].max() == 0.0
    # the sub-pixel box is dropped with its soft row; the last box is clipped at the image border first
    np.testing.assert_allclose(t["boxes"], [[90, 0, 100, 10], [50, 5, 80, 30], [0, 20, 10, 35]])
    np.testing.assert_array_equal(t["classes"], [0, 1, 1])
    np.testing.assert_allclose(t["soft"], [[0.9, 0.1], [0.2, 0.7], [0.05, 0.55]])
    same, t0 = augment_sample(img, target, np.random.default_rng(0), hflip=0.0, photometric=True)
    np.testing.assert_allclose(t0["boxes"][0], [0, 0, 10, 10])
    assert 0.0 <= same.min() and same.max() <= 1.0


def test_dataset_flip_keeps_rows_with_boxes(dataset):
    s = max(ssdlite._read_samples(dataset, 2)["train"], key=lambda s: len(s.boxes))
    assert len(s.boxes) >= 1
    data = ssdlite._Data([s], train=True, seed=0, hflip=1.0, photometric=False)
    img, t = data[0]
    w = s.width
    flipped = np.stack([w - s.boxes[:, 2], s.boxes[:, 1], w - s.boxes[:, 0], s.boxes[:, 3]], 1)
    np.testing.assert_allclose(t["boxes"].numpy(), flipped, atol=1e-4)
    np.testing.assert_allclose(t["soft"].numpy(), s.soft)
    np.testing.assert_array_equal(t["labels"].numpy(), s.classes + 1)
    orig = np.asarray(ssdlite._read_rgb(s.image), np.float32) / 255
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), orig[:, ::-1], atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# training, resume, predict
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    """3 epochs, interrupted after the first checkpoint, then resumed."""
    out = tmp_path_factory.mktemp("run") / "ssd"
    cfg = SSDLiteConfig(epochs=3, batch=4, lr=3e-3, device="cpu", pretrained=False, min_size=SIZE, progress=False)
    real_save = ssdlite._save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        if path.name == "last.pt" and payload["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ssdlite, "_save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            train_ssdlite(dataset, out, cfg)
    first = torch.load(out / "weights" / "last.pt", weights_only=True)
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_ssdlite(dataset, out, cfg)
    res = train_ssdlite(dataset, out, SSDLiteConfig(resume=True, device="cpu", progress=False))
    return out, first, res


@pytest.mark.slow
def test_training_writes_files_and_loss_falls(run):
    out, _, res = run
    for p in (res.best, res.last, res.metrics_path, out / "val_labels.coco.json", out / "val_predictions.json"):
        assert p.is_file(), p
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < losses[0], losses
    m = json.loads(res.metrics_path.read_text())
    assert m["split"] == "val" and m["pretrained"] == "scratch" and m["soft"] is True
    assert 0.0 <= m["mAP50-95"] <= m["mAP50"] <= 1.0 and set(m["per_class"]) <= {"red", "blue"}
    assert m["best_epoch"] in (1, 2, 3) and len(m["history"]) == 3
    ckpt = torch.load(res.best, weights_only=True)
    assert ckpt["names"] == ["red", "blue"] and ckpt["config"]["min_size"] == SIZE


@pytest.mark.slow
def test_resume_continues_from_last(run):
    _, first, res = run
    assert first["epoch"] == 1 and res.history[0] == first["history"][0]  # epoch 1 was not retrained
    last = torch.load(res.last, weights_only=True)
    assert last["epoch"] == 3 and last["config"]["lr"] == 3e-3  # settings read back from the run
    assert any(not torch.equal(last["model"][k], first["model"][k]) for k in first["model"])


@pytest.mark.slow
def test_load_and_predict_boxes_in_image_pixels(run):
    model, names = load_ssdlite(run[2].best)
    assert names == ["red", "blue"] and not model.training and type(model) is SSD
    # deterministic outputs: zero box regression (boxes = anchors), every anchor scores class 1 ("red")
    with torch.no_grad():
        for block in model.head.regression_head.module_list:
            block[-1].weight.zero_()
            block[-1].bias.zero_()
        for block in model.head.classification_head.module_list:
            block[-1].weight.zero_()
            block[-1].bias.copy_(torch.tensor([0.0, 6.0, 0.0]).repeat(block[-1].bias.numel() // 3))
    wide = np.full((100, 300, 3), 120, np.uint8)
    dets = predict_ssdlite(model, [wide, wide[:, :150, 0]], conf=0.3)
    assert len(dets) == 2
    for d, (h, w) in zip(dets, [(100, 300), (100, 150)]):
        assert len(d) > 0 and set(d.class_id.tolist()) == {0}
        assert d.xyxy.min() >= 0 and (d.xyxy[:, [0, 2]] <= w).all() and (d.xyxy[:, [1, 3]] <= h).all()
        # the largest anchors span the whole image: boxes are in its pixels, not the 96×96 input
        assert d.xyxy[:, 2].max() > 0.9 * w and d.xyxy[:, 3].max() > 0.9 * h
    with pytest.raises(ConfigError, match="RGB image"):
        predict_ssdlite(model, [np.zeros((4, 4, 5), np.uint8)])


def test_precise_bn_recomputes_running_statistics(dataset):
    samples = ssdlite._read_samples(dataset, 2)["train"][:4]
    model, _ = build_ssdlite(2, SIZE, soft=False)
    bn = model.backbone.features[0][0][1]  # the stem's BatchNorm
    seen: list[torch.Tensor] = []
    hook = bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().mean((0, 2, 3))))
    model.eval()
    assert ssdlite._precise_bn(model, samples, batch=2, limit=4, seed=0) == 2
    hook.remove()
    assert len(seen) == 2 and not model.training and bn.momentum == 0.03  # mode and momentum restored
    torch.testing.assert_close(bn.running_mean, (seen[0] + seen[1]) / 2)  # equal-weight average of batches


def test_val_map_of_teacher_boxes_is_one(dataset, tmp_path, monkeypatch):
    import supervision as sv

    val = ssdlite._read_samples(dataset, 2)["val"]
    queue = list(val)

    def teacher_as_student(model, images, conf=0.25, batch_size=8):
        out = []
        for _ in images:
            s = queue.pop(0)
            out.append(sv.Detections(xyxy=s.boxes, class_id=s.classes, confidence=np.full(len(s.boxes), 0.9)))
        return out

    monkeypatch.setattr(ssdlite, "predict_ssdlite", teacher_as_student)
    m = ssdlite._evaluate_split(None, val, ["red", "blue"], tmp_path, batch=2)
    assert m["mAP50-95"] == pytest.approx(1.0) and m["mAP50"] == pytest.approx(1.0) and m["images"] == len(val)


@pytest.mark.slow
def test_onnx_export_of_backbone_and_head(run):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, _ = load_ssdlite(run[2].best)
    core = SSDLiteExport(model).eval()
    x = torch.rand(1, 3, SIZE, SIZE)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(core, (x,), buf, dynamo=False, opset_version=17, input_names=["images"],
                          output_names=["boxes", "scores"])
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        tb, ts = core(x)
        head = model.head(list(model.backbone((x - 0.5) / 0.5).values()))
        ref = model.box_coder.decode_single(head["bbox_regression"][0], core.anchors)
    np.testing.assert_allclose(boxes, tb.numpy(), atol=5e-3)  # pixels: exp() in the box decode differs in float
    np.testing.assert_allclose(scores, ts.numpy(), atol=1e-4)
    np.testing.assert_allclose(tb[0].numpy(), ref.numpy(), atol=1e-4)
    assert scores.shape[-1] == 3 and boxes.shape[:2] == scores.shape[:2]


# ----------------------------------------------------------------------------------------------------------
# pretrained weights
# ----------------------------------------------------------------------------------------------------------


def test_pretrained_offline(monkeypatch):
    def offline(progress):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(ssdlite, "_download_coco_state_dict", offline)
    with pytest.raises(WeightsNotFoundError) as e:
        build_ssdlite(2, SIZE, pretrained=True)
    assert "\n" not in str(e.value) and "pretrained=False" in str(e.value)
    with pytest.warns(UserWarning, match="training from scratch") as w:
        _, source = build_ssdlite(2, SIZE, pretrained="auto")
    assert source == "scratch" and len(w) == 1 and "\n" not in str(w[0].message)


def test_pretrained_keeps_backbone_and_regression_reinits_class_head(monkeypatch):
    torch.manual_seed(1)
    coco, _ = build_ssdlite(90, SIZE, soft=False)  # stands in for the 91-class COCO checkpoint
    monkeypatch.setattr(ssdlite, "_download_coco_state_dict", lambda progress: coco.state_dict())
    model, source = build_ssdlite(2, SIZE, pretrained=True)
    assert source == "coco" and isinstance(model, SoftLabelSSD)
    sd, ref = model.state_dict(), coco.state_dict()
    for k, v in sd.items():
        if k.startswith("head.classification_head."):
            continue
        assert torch.equal(v, ref[k]), k
    last = model.head.classification_head.module_list[0][-1]
    assert last.out_channels == 6 * 3  # 6 anchors per location × (2 classes + background)


# ----------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------


def test_bad_input_is_one_line(dataset, tmp_path):
    with pytest.raises(DatasetError, match="autolabel.json"):
        train_ssdlite(tmp_path, tmp_path / "o1", SSDLiteConfig(progress=False, pretrained=False))
    nosidecar = tmp_path / "nosidecar"
    shutil.copytree(dataset, nosidecar)
    (nosidecar / SIDECAR_FILE).unlink()
    with pytest.raises(DatasetError, match="autolabel.jsonl"):
        train_ssdlite(nosidecar, tmp_path / "o2", SSDLiteConfig(progress=False, pretrained=False))
    allval = tmp_path / "allval"
    shutil.copytree(dataset, allval)
    recs = [replace(r, split="val") for r in read_records(allval)]
    (allval / SIDECAR_FILE).write_text("".join(json.dumps(r.to_json()) + "\n" for r in recs))
    with pytest.raises(DatasetError, match="no training images"):
        train_ssdlite(allval, tmp_path / "o3", SSDLiteConfig(progress=False, pretrained=False))
    with pytest.raises(ConfigError, match="nothing to resume"):
        train_ssdlite(dataset, tmp_path / "o4", SSDLiteConfig(resume=True))
    for bad in ({"batch": 1}, {"pretrained": "yes"}, {"alpha": 1.5}, {"temperature": 0}, {"min_size": 32}):
        with pytest.raises(ConfigError):
            SSDLiteConfig(**bad)
    with pytest.raises(ConfigError, match="not found"):
        load_ssdlite(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        load_ssdlite(tmp_path / "junk.pt")


@pytest.mark.slow
def test_cli_trains_ssdlite_through_the_train_command(dataset, tmp_path, capsys, monkeypatch):
    from autolabel.app.cli import main

    def offline(progress):  # the CLI's default pretrained="auto" would try torchvision's COCO download
        raise OSError("offline")

    monkeypatch.setattr(ssdlite, "_download_coco_state_dict", offline)

    out = tmp_path / "cli"
    args = ["train", str(dataset), "--student", "ssdlite320_mobilenet_v3_large", "--out", str(out),
            "--epochs", "1", "--batch", "4", "--imgsz", "96", "--device", "cpu", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "ssdlite320_mobilenet_v3_large" in printed and "mAP50-95" in printed
    assert (out / "weights" / "last.pt").is_file()
    metrics = json.loads((out / "weights" / "metrics.json").read_text())
    assert metrics["soft"] is True and metrics["temperature"] == 1.0
    # online KD is a YOLO feature: one line, exit 2
    assert main([*args[:-1], "--kd-teacher", "yolov8n.pt", "--overwrite", "-q"]) == 2
    assert "YOLO students" in capsys.readouterr().err


@pytest.mark.slow
def test_bundle_of_a_trained_ssdlite_runs_in_the_runtime(run, dataset, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from autolabel.app.cli import main
    from autolabel.runtime import load_bundle

    best = run[2].best
    out = tmp_path / "bundle"
    assert main(["export", str(best), "--out", str(out), "--int8", "--data", str(dataset), "--calib-images", "4",
                 "-q"]) == 0, capsys.readouterr().err
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["preprocessing"]["letterbox"] is False and set(meta["models"]) == {"fp32", "int8"}
    assert "mAP50-95" in meta["metrics"]["fp32"]
    # its own operating point, per model, as for YOLO students (issue 16)
    op = meta["operating_point"]
    assert "teacher labels" in op["source"], op
    assert set(meta["postprocessing"]["model_thresholds"]) == {"fp32", "int8"}
    model, names = load_ssdlite(best)
    img = np.asarray(Image.open(next(iter(sorted((dataset / "images" / "train").glob("*"))))).convert("RGB"))
    ref = predict_ssdlite(model, [img], conf=0.05)[0]
    got = load_bundle(out, model="fp32").predict(img, conf=0.05, iou=0.55)
    assert load_bundle(out).names == names == ["red", "blue"]
    # the best detections are torchvision's own (resize, decode, per-class NMS); torchvision also keeps a
    # second class of the same anchor, the runtime one class per anchor, so only the top of the lists agree
    assert len(got) > 10 and len(ref) > 10
    np.testing.assert_allclose(np.sort(got.scores)[::-1][:10], np.sort(ref.confidence)[::-1][:10], atol=0.02)
    for b, c in zip(ref.xyxy[:10], ref.class_id[:10]):
        near = np.abs(got.xyxy - b).max(1) if len(got) else np.array([np.inf])
        assert near.min() < 1.0 and c in got.class_ids[near < 1.0], (b, c)
