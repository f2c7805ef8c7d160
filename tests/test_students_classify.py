"""Classification students: crop / image datasets, KD vs CE training, checkpoints, resume, bad input.

Everything runs on tiny inputs (32 px, a few dozen crops) with random init; no network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.core.ontology import Ontology
from autolabel.data.dataset import SIDECAR_FILE, read_records
from autolabel.distill.losses import HintonKD
from autolabel.labeling.classify import ClassLabelConfig, label_classification
from autolabel.students.classifier import train as classify
from autolabel.students.classifier.dataset import CLS_SIDECAR_FILE, CropDataset, ImageClassDataset, crop_key
from autolabel.students.classifier.model import build_classifier, load_classifier
from autolabel.students.classifier.train import ClassifierConfig, train_classifier
from tests import fakes

ONTO = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})
TINY = dict(model="mobilenet_v3_small", pretrained=False, imgsz=32, batch=8, lr=3e-3, warmup_epochs=0.0,
            device="cpu", progress=False, seed=0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def squares(red_blue_squares) -> Path:
    return red_blue_squares  # conftest: one labeling for the classifier and recipe tests


@pytest.fixture(scope="module")
def tiny_classifier(squares, tmp_path_factory) -> tuple[Path, object]:
    """The run folder and result of mobilenet_v3_small trained one epoch (TINY) on the squares' crops, trained
    once for the module; a test that trains on from it copies the folder first."""
    out = tmp_path_factory.mktemp("tiny_cls") / "run"
    return out, train_classifier(squares, out, ClassifierConfig(**TINY, epochs=1))


def _boxes(root: Path, split: str) -> list[tuple[str, int, int, list[float]]]:
    return [(r.id, j, c, list(s)) for r in read_records(root) if r.split == split
            for j, (c, s) in enumerate(zip(r.boxes.class_id, r.boxes.soft_scores))]


# ------------------------------------------------------------------------------------------- datasets


def test_crop_dataset_items(squares):
    for split in ("train", "val"):
        boxes = _boxes(squares, split)
        ds = CropDataset(squares, split, imgsz=32)
        assert len(ds) == len(boxes) > 0 and ds.names == ["red", "blue"]
        assert ds.keys == [crop_key(i, j) for i, j, _, _ in boxes]
        for k in (0, len(ds) - 1):
            x, y, p = ds[k]
            assert x.shape == (3, 32, 32) and x.dtype == torch.float32
            assert y == boxes[k][2] == int(p.argmax())
            assert float(p.sum()) == pytest.approx(1.0, abs=1e-5)
            # sigmoid-style rows are renormalized, not replaced
            s = np.asarray(boxes[k][3])
            assert p.numpy() == pytest.approx(s / s.sum(), abs=1e-5)
    aug = CropDataset(squares, "train", imgsz=32, augment=True, seed=3)
    aug.set_epoch(1)
    a = aug[0][0]
    assert torch.equal(a, aug[0][0])  # augmentation is a function of (seed, epoch, index)
    aug.set_epoch(2)
    assert not torch.equal(a, aug[0][0])


def test_crop_dataset_filters_and_zero_rows(squares, tmp_path):
    full = CropDataset(squares, "train", imgsz=32)
    capped = CropDataset(squares, "train", imgsz=32, max_per_class=2)
    assert len(capped) == 4 and sorted(np.bincount(capped.labels).tolist()) == [2, 2]
    assert capped.stats["over_max_per_class"] == len(full) - 4
    small = CropDataset(squares, "train", imgsz=32, min_box=20)
    assert 0 < len(small) < len(full) and small.stats["too_small"] == len(full) - len(small)

    # a teacher row of zeros: one-hot on the hard label (default), uniform, or skipped
    ds = tmp_path / "zero"
    shutil.copytree(squares, ds)
    recs = [r.to_json() for r in read_records(ds)]
    first = next(r for r in recs if r["split"] == "train" and r["class_id"])
    first["soft_scores"][0] = [0.0, 0.0]
    (ds / SIDECAR_FILE).write_text("".join(json.dumps(r) + "\n" for r in recs))
    c = first["class_id"][0]
    onehot = CropDataset(ds, "train", imgsz=32)
    i = onehot.keys.index(crop_key(first["id"], 0))
    assert onehot[i][2].tolist() == np.eye(2)[c].tolist() and onehot.stats["zero_rows"] == 1
    assert CropDataset(ds, "train", imgsz=32, zero_rows="uniform")[i][2].tolist() == [0.5, 0.5]
    skip = CropDataset(ds, "train", imgsz=32, zero_rows="skip")
    assert len(skip) == len(onehot) - 1 and crop_key(first["id"], 0) not in skip.keys


class ColorTeacher:
    """Image-level test teacher: P(red), P(blue) from the share of saturated red/blue pixels."""

    spec = "test-colors"
    ontology = ONTO

    def classify(self, images):
        out = []
        for im in images:
            r = ((im[..., 0] > 200) & (im[..., 2] < 60)).sum() + 1.0
            b = ((im[..., 2] > 200) & (im[..., 0] < 60)).sum() + 1.0
            out.append([r / (r + b), b / (r + b)])
        return np.asarray(out, np.float32)


@pytest.mark.slow
def test_label_classification_layout_and_training(tmp_path):
    fakes.make_square_images(tmp_path / "src", 12, seed=2)
    out = tmp_path / "cls"
    res = label_classification(tmp_path / "src", ColorTeacher(), out,
                               config=ClassLabelConfig(val_fraction=0.3, progress=False, batch_size=5))
    s = res.summary
    assert s["images"] == 12 and s["train"] > 0 and s["val"] > 0
    recs = [json.loads(line) for line in (out / CLS_SIDECAR_FILE).read_text().splitlines()]
    assert len(recs) == 12
    for r in recs:
        cls = ["red", "blue"][r["class_id"]]
        assert r["image"].startswith(f"{r['split']}/{cls}/") and (out / r["image"]).is_file()
        assert sum(r["probs"]) == pytest.approx(1, abs=1e-4) and int(np.argmax(r["probs"])) == r["class_id"]
    ds = ImageClassDataset(out, "train", imgsz=32, augment=True)
    x, y, p = ds[0]
    assert x.shape == (3, 32, 32) and len(ds) == s["train"] and float(p.sum()) == pytest.approx(1, abs=1e-5)
    # resume: nothing new is written
    again = label_classification(tmp_path / "src", ColorTeacher(), out,
                                 config=ClassLabelConfig(val_fraction=0.3, progress=False))
    assert again.summary["written_this_run"] == 0 and again.summary["images"] == 12
    r = train_classifier(out, tmp_path / "run", ClassifierConfig(**TINY, epochs=1))
    assert r.metrics["kind"] == "images" and r.metrics["final"]["n"] == s["val"]


# ------------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_train_from_scratch_writes_checkpoints_and_metrics(squares, tmp_path):
    val = CropDataset(squares, "val", imgsz=32)
    human = {k: int(y) for k, y in zip(val.keys, val.labels)}
    human[val.keys[0]] = 1 - int(val.labels[0])  # one disagreement with the teacher
    human["not-a-sample:0"] = "red"
    res = train_classifier(squares, tmp_path / "run", ClassifierConfig(**TINY, epochs=2), human_labels=human)
    for f in ("last.pt", "best.pt", "metrics.json"):
        assert (tmp_path / "run" / "weights" / f).is_file(), f
    m = json.loads((tmp_path / "run" / "weights" / "metrics.json").read_text())
    assert m == res.metrics and m["epoch"] == 2 and len(m["history"]) == 2
    assert m["history"][1]["train_loss"] < m["history"][0]["train_loss"]  # loss falls
    assert m["loss"].startswith("hinton_kd") and m["train_samples"] == len(CropDataset(squares, "train"))
    for part in ("final", "best"):
        v = m[part]
        assert v["n"] == len(val) and 0 <= v["top1_teacher"] <= 1
        assert v["n_human"] == len(val) and 0 <= v["top1_human"] <= 1
    assert m["human_labels_not_in_val"] == 1
    clf = load_classifier(res.best)
    assert clf.names == ["red", "blue"] and clf.model_name == "mobilenet_v3_small"
    assert clf.preprocessing["imgsz"] == 32 and clf.preprocessing["crop_context"] == 0.1
    probs = clf.predict([np.zeros((20, 30, 3), np.uint8)])
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1, abs=1e-5)


class _Spy(torch.nn.Module):
    """Wraps the trainer's loss and records the first batch it sees."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, logits, teacher_logits=None, targets=None, teacher_probs=None):
        loss = self.inner(logits, targets=targets, teacher_probs=teacher_probs)
        if not self.seen:
            self.seen.append((logits.detach().clone(), targets.clone(), teacher_probs.clone(), loss.item()))
        return loss


@pytest.mark.slow
@pytest.mark.parametrize("kd", [True, False])
def test_kd_and_hard_label_training_use_different_losses(squares, tmp_path, monkeypatch, kd):
    spies = []
    real = classify.classification_loss

    def spy_loss(cfg):
        spies.append(_Spy(real(cfg)))
        return spies[-1]

    monkeypatch.setattr(classify, "classification_loss", spy_loss)
    cfg = ClassifierConfig(**TINY, epochs=1, kd=kd, temperature=3.0, alpha=0.3)
    res = train_classifier(squares, tmp_path / "run", cfg)
    logits, y, p, loss = spies[0].seen[0]
    kd_value = HintonKD(temperature=3.0, alpha=0.3)(logits, targets=y, teacher_probs=p).item()
    ce_value = torch.nn.functional.cross_entropy(logits, y).item()
    assert abs(kd_value - ce_value) > 1e-3  # the two losses really differ on this batch
    assert loss == pytest.approx(kd_value if kd else ce_value, rel=1e-5)
    assert res.metrics["loss"].startswith("hinton_kd" if kd else "cross_entropy")
    assert not (p == 0).all(1).any() and torch.allclose(p.sum(1), torch.ones(len(p)))


@pytest.mark.slow
def test_resume_continues_at_next_epoch(squares, tiny_classifier, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_classifier[0], run)  # one epoch of TINY, as train_classifier(squares, run, ...) left it
    first = tiny_classifier[1]
    assert first.start_epoch == 1 and first.epochs_run == 1
    assert torch.load(run / "weights" / "last.pt", weights_only=True)["epoch"] == 1
    res = train_classifier(squares, run, ClassifierConfig(**TINY, epochs=2, resume=True))
    assert res.start_epoch == 2 and res.epochs_run == 1
    assert [h["epoch"] for h in res.metrics["history"]] == [1, 2]
    assert res.metrics["history"][0] == first.metrics["history"][0]
    assert torch.load(run / "weights" / "last.pt", weights_only=True)["epoch"] == 2
    done = train_classifier(squares, run, ClassifierConfig(**TINY, epochs=2, resume=True))
    assert done.epochs_run == 0 and done.metrics["epoch"] == 2
    with pytest.raises(ConfigError, match="cannot resume .*imgsz=32 .now 48"):
        train_classifier(squares, run, ClassifierConfig(**{**TINY, "imgsz": 48}, epochs=3, resume=True))


# ------------------------------------------------------------------------------------------- models


def test_pretrained_weights_offline_and_local_file(tmp_path, monkeypatch):
    from torchvision.models import get_model
    from torchvision.models._api import WeightsEnum

    def offline(self, *a, **k):
        raise OSError("no network in tests")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(WeightsNotFoundError, match=r"MobileNet_V3_Small_Weights\.IMAGENET1K_V1 .* pretrained=False"):
        build_classifier("mobilenet_v3_small", 3, pretrained=True)
    model, used = build_classifier("mobilenet_v3_small", 3, pretrained="auto")
    assert used is None and model.classifier[-1].out_features == 3
    with pytest.raises(ConfigError, match="unknown weights 'NOPE'.*IMAGENET1K_V1"):
        build_classifier("mobilenet_v3_small", 3, pretrained="NOPE")

    torch.manual_seed(0)
    imagenet = get_model("mobilenet_v3_small", weights=None)  # stands in for a downloaded .pth (1000 classes)
    torch.save(imagenet.state_dict(), tmp_path / "mnv3.pth")
    model, used = build_classifier("mobilenet_v3_small", 3, pretrained=str(tmp_path / "mnv3.pth"))
    assert used == str(tmp_path / "mnv3.pth") and model.classifier[-1].out_features == 3
    assert torch.equal(model.features[0][0].weight, imagenet.features[0][0].weight)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "mobilenet_v9_tiny"}, ConfigError, "unknown torchvision classifier 'mobilenet_v9_tiny'.*mobilenet_v3_small"),
        ({"min_box": 1000}, DatasetError, "no box crops in its train split"),
        ({"dataset": "missing"}, DatasetError, "not found"),
        ({"dataset": "empty"}, DatasetError, "is not an autolabel dataset"),
    ],
)
def test_bad_input_one_line(squares, tmp_path, kwargs, error, match):
    dataset = {"missing": tmp_path / "nope", "empty": tmp_path}.get(kwargs.pop("dataset", None), squares)
    with pytest.raises(error, match=match) as e:
        train_classifier(dataset, tmp_path / "run", ClassifierConfig(**{**TINY, **kwargs}, epochs=1))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 0}, "epochs must be >= 1"), ({"alpha": 1.5}, "alpha must be in"),
     ({"temperature": 0}, "temperature must be > 0"), ({"zero_rows": "drop"}, "zero_rows must be one of"),
     ({"bn_momentum": 0}, "bn_momentum must be")],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ClassifierConfig(**kwargs)


def test_load_classifier_rejects_other_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_classifier(tmp_path / "best.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not an autolabel classifier checkpoint"):
        load_classifier(tmp_path / "other.pt")


@pytest.mark.slow
def test_cli_train_classifier_with_and_without_kd(squares, tmp_path, capsys):
    from autolabel.app.cli import main

    base = ["train-classifier", str(squares), "--epochs", "1", "--imgsz", "32", "--batch", "16", "--device", "cpu", "-q"]
    assert main([*base, "--out", str(tmp_path / "kd")]) == 0, capsys.readouterr().err
    assert "top-1" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "ce"), "--no-kd"]) == 0
    kd = json.loads((tmp_path / "kd" / "weights" / "metrics.json").read_text())
    ce = json.loads((tmp_path / "ce" / "weights" / "metrics.json").read_text())
    assert (tmp_path / "kd" / "weights" / "best.pt").is_file() and (tmp_path / "ce" / "weights" / "best.pt").is_file()
    assert json.dumps(kd) != json.dumps(ce)
    assert main([*base, "--out", str(tmp_path / "x"), "--model", "not_a_model"]) == 2
    assert "not_a_model" in capsys.readouterr().err
    # the classifier through prune and export, as a user types it
    assert main(["prune", str(tmp_path / "kd"), "--ratio", "0.3", "--data", str(squares), "--out", str(tmp_path / "p"),
                 "--recover-epochs", "1", "--device", "cpu", "-q"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "val top-1" in out and "recovered" in out
    assert main(["export", str(tmp_path / "p" / "recover"), "--int8", "--data", str(squares), "--calib-images", "4",
                 "--out", str(tmp_path / "b"), "-q"]) == 0, capsys.readouterr().err
    assert "int8" in capsys.readouterr().out and (tmp_path / "b" / "model_int8.onnx").is_file()


@pytest.mark.slow
def test_prune_classifier_shrinks_keeps_classes_recovers_with_online_kd_and_exports(squares, tiny_classifier, tmp_path,
                                                                                   monkeypatch):
    from autolabel.compress.bundle import export_classifier
    from autolabel.compress.pruning import PruneConfig, prune
    from autolabel.runtime import load_bundle

    cls_run, trained = tiny_classifier  # one epoch of TINY; pruning writes to tmp_path
    seen = []  # the recovery's KD term gets the unpruned model's logits (online), not the dataset's scores
    real = HintonKD.forward

    def spy(self, student_logits, teacher_logits=None, targets=None, teacher_probs=None):
        seen.append((teacher_logits is not None, teacher_probs is None))
        return real(self, student_logits, teacher_logits, targets, teacher_probs)

    monkeypatch.setattr(HintonKD, "forward", spy)
    cfg = PruneConfig(ratio=0.4, recover_epochs=1, device="cpu", progress=False)
    res = prune(cls_run, tmp_path / "p", data=squares, config=cfg)  # the run folder works, like YOLO's
    rep = json.loads((tmp_path / "p" / "prune_report.json").read_text())
    assert rep["task"] == "classify" and rep["pruned"]["flops"] <= 0.62 * rep["original"]["flops"]
    assert rep["pruned"]["params"] < rep["original"]["params"]
    for k in ("original", "pruned"):
        assert 0 <= rep[k]["val_top1_teacher"] <= 1
    assert seen and all(a and b for a, b in seen)
    assert rep["recovered"]["kd_from_unpruned"] is True and res.recovered.is_file()
    small, big = load_classifier(res.recovered), load_classifier(trained.best)  # rebuilt with fewer channels
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(small.model) == rep["pruned"]["params"] < n(big.model)
    img = [np.full((20, 30, 3), 90, np.uint8)]
    assert small.predict(img).shape == (1, 2)
    b = export_classifier(res.recovered, tmp_path / "bundle", data=squares, int8=True, calib_images=4, progress=False)
    for m in ("fp32", "int8"):
        assert load_bundle(b.bundle, model=m).classify(img).shape == (1, 2)
    with pytest.raises(ConfigError, match="kd_teacher needs kd=True"):
        train_classifier(squares, tmp_path / "x", ClassifierConfig(**TINY, epochs=1, kd=False, kd_teacher=str(trained.best)))
