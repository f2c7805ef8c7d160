"""Distillation recipes end to end: each recipe trains a tiny classifier (32 px, random init, 1–2 epochs) and
shows its own behaviour — DML's two peers and the better one kept, SP / RKD relation terms reaching the
student, class-specialized KD restricting a bigger teacher, born-again generations teaching each other.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from autolabel.core.errors import ConfigError
from autolabel.core.ontology import Ontology
from autolabel.core.settings import settings_of
from autolabel.distill.losses import ClassSpecializedKD
from autolabel.students.classifier import train as classify
from autolabel.students.classifier.dataset import CropDataset
from autolabel.students.classifier.model import (
    build_classifier,
    load_checkpoint,
    load_classifier,
    save_checkpoint,
)
from autolabel.students.classifier.objective import Objective, _class_groups, make_objective
from autolabel.students.classifier.train import ClassifierConfig, classification_loss, train_classifier
from autolabel.students.yolo.train import TrainConfig

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
def teacher(squares, tmp_path_factory) -> Path:
    """A trained classifier run folder: the teacher network of sp / rkd / class-specialized."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    train_classifier(squares, out, ClassifierConfig(**TINY, epochs=2))
    return out


@pytest.fixture(scope="module")
def bigger_teacher(teacher, tmp_path_factory) -> Path:
    """The teacher with a third class in front: classes (green, blue, red), the head's rows moved along."""
    ckpt = load_checkpoint(teacher / "weights" / "best.pt")
    sd = dict(ckpt["model"])
    w, b = sd["classifier.3.weight"], sd["classifier.3.bias"]
    sd["classifier.3.weight"] = torch.cat([torch.randn(1, w.shape[1]) * 0.01, w[1:2], w[0:1]])
    sd["classifier.3.bias"] = torch.cat([torch.tensor([-5.0]), b[1:2], b[0:1]])
    path = tmp_path_factory.mktemp("big") / "big.pt"
    save_checkpoint(path, {**ckpt, "model": sd, "names": ["green", "blue", "red"], "num_classes": 3})
    return path


# ------------------------------------------------------------------------------------------- settings


def test_recipe_settings_are_options_and_pipeline_keys_and_are_checked():
    from typer.testing import CliRunner

    from autolabel.app.cli import app
    from autolabel.app.pipeline import DEFAULTS, load_pipeline_config

    cls = {s.key: s for s in settings_of(ClassifierConfig)}
    det = {s.key: s for s in settings_of(TrainConfig)}
    assert cls["recipe"].default == det["recipe"].default == DEFAULTS["train"]["recipe"] == "hinton"
    assert cls["generations"].default == det["generations"].default == DEFAULTS["train"]["generations"]
    help_cls = CliRunner().invoke(app, ["train-classifier", "--help"], terminal_width=400).output
    for option in ("--recipe", "--generations", "--relation-weight", "--kd-teacher"):
        assert option in help_cls, option
    help_det = CliRunner().invoke(app, ["train", "--help"], terminal_width=400).output
    assert "--recipe" in help_det and "--generations" in help_det
    with pytest.raises(ConfigError, match="train.generations must be an integer"):
        load_pipeline_config(None, ["train.generations=two"])
    with pytest.raises(ConfigError, match="recipe must be one of hinton, dml, sp, rkd, class-specialized, born-again"):
        ClassifierConfig(recipe="fitnets")
    with pytest.raises(ConfigError, match="recipe 'sp' distills a teacher network: give kd_teacher"):
        ClassifierConfig(recipe="sp")
    with pytest.raises(ConfigError, match="needs soft=True"):
        ClassifierConfig(recipe="born-again", soft=False)
    with pytest.raises(ConfigError, match="generations must be >= 1"):
        ClassifierConfig(recipe="born-again", generations=0)
    with pytest.raises(ConfigError, match="relation_weight must be >= 0"):
        ClassifierConfig(relation_weight=-1.0)
    with pytest.raises(ConfigError, match=r"recipe must be one of hinton, born-again, found 'dml' \(a classifier"):
        TrainConfig(recipe="dml").check()
    ClassifierConfig(recipe="dml", soft=False)  # DML needs no teacher: the paper's CE + mutual KL


@pytest.mark.slow
def test_cli_train_classifier_takes_a_recipe(squares, teacher, tmp_path, capsys):
    from autolabel.app.cli import main

    base = ["train-classifier", str(squares), "--epochs", "1", "--imgsz", "32", "--batch", "8", "--device", "cpu", "-q"]
    assert main([*base, "--out", str(tmp_path / "rkd"), "--recipe", "rkd", "--kd-teacher", str(teacher)]) == 0, \
        capsys.readouterr().err
    m = json.loads((tmp_path / "rkd" / "weights" / "metrics.json").read_text())
    assert m["recipe"] == "rkd" and m["history"][0]["terms"]["relation"][0] > 0
    assert main([*base, "--out", str(tmp_path / "sp"), "--recipe", "sp"]) == 2
    err = capsys.readouterr().err
    assert "recipe 'sp' distills a teacher network: give kd_teacher" in err and not (tmp_path / "sp").exists()


# ------------------------------------------------------------------------------------------- dml


@pytest.mark.slow
def test_dml_two_peers_learn_from_each_other_and_the_better_one_is_saved(squares, tmp_path):
    res = train_classifier(squares, tmp_path / "dml", ClassifierConfig(**TINY, epochs=2, recipe="dml"))
    m = res.metrics
    assert m["recipe"] == "dml" and "kl(peer)" in m["loss"]
    for rec in m["history"]:
        assert len(rec["terms"]["base"]) == len(rec["terms"]["mutual"]) == 2  # each peer: its own loss + KL
        assert all(v > 0 for v in rec["terms"]["mutual"])
        tops = [(v["top1_teacher"], -v["loss_teacher"]) for v in rec["peers_val"]]
        assert rec["peer"] == max(range(2), key=lambda k: tops[k]) and rec["val"] == rec["peers_val"][rec["peer"]]
    best = load_checkpoint(res.best)
    best_rec = m["history"][m["best_epoch"] - 1]
    assert best["peer"] == best_rec["peer"] and best["val"] == best_rec["val"] == m["best"]
    # the saved weights are that peer's: scoring best.pt again gives its val numbers
    clf = load_classifier(res.best)
    again = classify.evaluate_classifier(clf.model, CropDataset(squares, "val", imgsz=32))
    assert again["top1_teacher"] == m["best"]["top1_teacher"]
    assert "peers" not in clf.info and len(load_checkpoint(res.last)["peers"]) == 2
    # resume continues both peers
    more = train_classifier(squares, tmp_path / "dml", ClassifierConfig(**TINY, epochs=3, recipe="dml", resume=True))
    assert more.start_epoch == 3 and len(more.metrics["history"]) == 3


# ------------------------------------------------------------------------------------------- sp / rkd


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["sp", "rkd"])
def test_relation_recipes_log_their_term_and_it_reaches_the_student(squares, teacher, tmp_path, recipe):
    cfg = ClassifierConfig(**TINY, epochs=2, recipe=recipe, kd_teacher=str(teacher))
    res = train_classifier(squares, tmp_path / recipe, cfg)
    rel = [rec["terms"]["relation"][0] for rec in res.metrics["history"]]
    assert all(v > 0 for v in rel) and "penultimate features" in res.metrics["loss"]
    if recipe == "sp":
        assert rel[1] < rel[0]  # the student's batch similarities move towards the teacher's
    # one step on the relation term alone: its gradient reaches the student's backbone, not the teacher
    obj = make_objective(cfg, ["red", "blue"], classification_loss(cfg), "kd", load_classifier(teacher), None, "cpu")
    only_rel = Objective(lambda z, **_: z.sum() * 0.0, teacher=obj.teacher, teacher_classes=2, relation=obj.relation,
                         relation_weight=obj.relation_weight)
    student, _ = build_classifier("mobilenet_v3_small", 2)
    only_rel.attach([student], 2)
    x = torch.randn(6, 3, 32, 32)
    loss, terms = only_rel([student], x, torch.zeros(6, dtype=torch.long), torch.full((6, 2), 0.5))
    loss.backward()
    assert terms["relation"][0] > 0 and float(student.features[0][0].weight.grad.abs().sum()) > 0
    assert all(q.grad is None for q in obj.teacher.parameters())


@pytest.mark.slow
def test_relation_recipe_with_a_teacher_of_other_classes_points_to_class_specialized(squares, bigger_teacher, tmp_path):
    with pytest.raises(ConfigError, match="use recipe class-specialized"):
        train_classifier(squares, tmp_path / "x", ClassifierConfig(**TINY, epochs=1, recipe="rkd",
                                                                   kd_teacher=str(bigger_teacher)))


# ------------------------------------------------------------------------------------------- class-specialized


@pytest.mark.slow
def test_class_specialized_restricts_a_bigger_teacher_to_the_dataset_classes(squares, bigger_teacher, tmp_path,
                                                                            monkeypatch):
    seen = []
    real = ClassSpecializedKD.forward

    def spy(self, student_logits, teacher_logits=None, targets=None, teacher_probs=None):
        seen.append((teacher_logits.detach().clone(), self.restrict(teacher_logits)))
        return real(self, student_logits, teacher_logits, targets, teacher_probs)

    monkeypatch.setattr(ClassSpecializedKD, "forward", spy)
    cfg = ClassifierConfig(**TINY, epochs=1, recipe="class-specialized", kd_teacher=str(bigger_teacher))
    res = train_classifier(squares, tmp_path / "cs", cfg)
    assert res.metrics["class_map"] == {"red": ["red"], "blue": ["blue"]}
    assert seen and all(t.shape[1] == 3 and torch.equal(sub, t[:, [2, 1]]) for t, sub in seen)  # green dropped
    with pytest.raises(ConfigError, match="use recipe class-specialized"):  # plain Hinton KD needs the same classes
        train_classifier(squares, tmp_path / "h", replace(cfg, recipe="hinton"))


def test_class_specialized_maps_teacher_classes_by_the_ontology_aliases():
    onto = {"classes": [{"name": "vehicle", "aliases": ["car", "truck"]}, {"name": "person"}]}
    assert _class_groups(["person", "car", "dog", "truck"], ["vehicle", "person"], onto, "t") == [[1, 3], [0]]
    with pytest.raises(ConfigError, match=r"kd_teacher 't' has no class for \['person'\]"):
        _class_groups(["car", "dog"], ["vehicle", "person"], onto, "t")


# ------------------------------------------------------------------------------------------- born-again


@pytest.mark.slow
def test_born_again_generation_k_is_taught_by_k_minus_1(squares, tmp_path, monkeypatch):
    out = tmp_path / "ban"
    res = train_classifier(squares, out, ClassifierConfig(**TINY, epochs=1, recipe="born-again", generations=3))
    gens = res.metrics["born_again"]
    assert [g["generation"] for g in gens] == [0, 1, 2] and res.metrics["recipe"] == "born-again"
    assert gens[0]["kd_teacher"] is None
    for k in (1, 2):
        prev = str((out / f"gen{k - 1}" / "weights" / "best.pt").resolve())
        assert gens[k]["kd_teacher"] == prev
        ckpt = load_checkpoint(out / f"gen{k}" / "weights" / "best.pt")
        assert ckpt["config"]["kd_teacher"] == prev and ckpt["config"]["recipe"] == "hinton"
    assert res.best == out / "weights" / "best.pt"
    assert res.best.read_bytes() == (out / "gen2" / "weights" / "best.pt").read_bytes()
    assert json.loads((out / "weights" / "metrics.json").read_text())["born_again"] == gens
    assert load_classifier(out).names == ["red", "blue"]  # the run folder loads like every family's
    # resume: finished generations are kept, only the last one is visited again
    calls = []
    real = classify.train_classifier

    def counting(dataset, run, config=None, **kw):
        calls.append(Path(run).name)
        return real(dataset, run, config, **kw)

    monkeypatch.setattr(classify, "train_classifier", counting)
    again = real(squares, out, ClassifierConfig(**TINY, epochs=1, recipe="born-again", generations=3, resume=True))
    assert calls == ["gen2"] and again.metrics["born_again"] == gens


def test_born_again_drives_yolo_through_kd_teacher(tmp_path, monkeypatch):
    """The YOLO wiring: one training per generation, each with the previous generation's best.pt as
    kd_teacher (the training itself is the YOLO trainer's, tested in test_students_yolo.py)."""
    from autolabel.students.yolo import train as ytrain

    seen = []

    def fake_train(dataset, student, out, config):
        seen.append((student, Path(out).name, config.recipe, config.kd_teacher))
        w = Path(out) / "weights"
        w.mkdir(parents=True)
        for f in ("best.pt", "last.pt"):
            (w / f).write_text(f"{out}/{f}")
        (w / "metrics.json").write_text("{}")
        return ytrain.TrainResult(out=Path(out), best=w / "best.pt", last=w / "last.pt", metrics={"mAP50-95": 0.5},
                                  metrics_path=w / "metrics.json", settings={})

    real = ytrain.train
    monkeypatch.setattr(ytrain, "train", fake_train)
    cfg = TrainConfig(recipe="born-again", generations=3, kd_teacher="yolo11s.pt")
    res = real("ds", "yolov8n.pt", tmp_path / "ban", cfg)
    gen = [str((tmp_path / "ban" / f"gen{k}" / "weights" / "best.pt").resolve()) for k in range(2)]
    assert seen == [("yolov8n.pt", "gen0", "hinton", "yolo11s.pt"), ("yolov8n.pt", "gen1", "hinton", gen[0]),
                    ("yolov8n.pt", "gen2", "hinton", gen[1])]
    assert res.best.read_text().endswith("gen2/best.pt") and res.metrics["born_again"][2]["val"] == {"mAP50-95": 0.5}
