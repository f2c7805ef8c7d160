"""Student families: the registry, create_student, identify_student (specs, checkpoints, run folders), one-line
errors for what is no student, and autolabel.train dispatching to every family.

Tiny inputs (32-96 px, a dozen images), random init, CPU, no network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from autolabel.core.errors import ConfigError
from autolabel.core.ontology import Ontology
from autolabel.labeling.label import LabelConfig, label
from autolabel.students import (
    STUDENT_FAMILIES,
    Student,
    create_student,
    identify_student,
    list_students,
    train,
)
from autolabel.students.base import default_student, resolve_checkpoint
from tests import fakes
from tests.conftest import ROOT

ONTO = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fam")
    fakes.make_square_images(tmp / "src", 12, seed=4)
    out = tmp / "ds"
    label(tmp / "src", ONTO, "test-squares", out, LabelConfig(batch_size=8, progress=False, val_fraction=0.3))
    return out


# ------------------------------------------------------------------------------------------- registry


def test_registry_holds_the_three_families_and_each_is_a_student():
    assert [e.name for e in list_students()] == ["classifier", "ssdlite", "yolo"]
    assert sorted(STUDENT_FAMILIES.names()) == ["classifier", "ssdlite", "yolo"]
    for spec, family, task in [("yolov8n.pt", "yolo", "detect"), ("ssdlite320_mobilenet_v3_large", "ssdlite", "detect"),
                               ("mobilenet_v3_small", "classifier", "classify")]:
        s = create_student(spec)
        assert isinstance(s, Student) and s.name == family and s.task == task and s.spec == spec
        assert type(s) is STUDENT_FAMILIES.get(family)
    assert default_student("detect") == "yolov8n.pt" and default_student("classify") == "mobilenet_v3_small"
    assert create_student().spec == "yolov8n.pt"
    assert create_student("classifier:resnet18").name == "classifier"  # FAMILY:SPEC picks the family
    assert create_student("resnet18", family="classifier").spec == "resnet18"


@pytest.mark.parametrize(
    ("spec", "family"),
    [("yolov8n.pt", "yolo"), ("yolov8n.yaml", "yolo"), ("test-yolo-tiny", "yolo"), ("yolo11n", "yolo"),
     ("/no/such/dir/yolov8n.pt", "yolo"), ("ssdlite", "ssdlite"), ("ssdlite320_mobilenet_v3_large", "ssdlite"),
     ("mobilenet_v3_small", "classifier"), ("mobilenet_v3_large", "classifier"), ("resnet18", "classifier")],
)
def test_identify_specs(spec, family):
    assert identify_student(spec) == family


def test_identify_a_module_object():
    assert identify_student(torch.nn.Linear(2, 2)) == "yolo"  # train() then checks that it is a DetectionModel


def test_identify_checkpoints_and_run_folders(tmp_path):
    def save(rel: str, obj) -> Path:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, p)
        return p

    cls = save("cls/weights/best.pt", {"format": "autolabel-classifier", "version": 1, "model": {}})
    ssd = save("ssd/weights/best.pt", {"format": "autolabel-ssdlite", "version": 1, "model": {}})
    old = save("old_cls/best.pt", {"format": "autolabel-classifier", "version": 1, "model": {}})  # the older layout
    pickled = save("yolo/weights/best.pt", {"model": torch.nn.Linear(2, 2)})  # pickled modules, as Ultralytics'
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert identify_student(cls) == identify_student(tmp_path / "cls") == "classifier"
    assert identify_student(ssd) == identify_student(str(tmp_path / "ssd")) == "ssdlite"
    assert identify_student(tmp_path / "old_cls") == "classifier" and resolve_checkpoint(tmp_path / "old_cls") == old
    assert identify_student(pickled) == identify_student(tmp_path / "yolo") == "yolo"
    assert identify_student(tmp_path / "junk.pt") == "yolo"  # the YOLO loader then says what is wrong with it
    assert create_student(tmp_path / "cls").weights() == cls


@pytest.mark.parametrize("spec", ["model.onnx", "weights/student.txt", "", "   ", None])
def test_a_spec_that_is_no_student_is_one_line(spec):
    with pytest.raises(ConfigError) as e:
        identify_student(spec)
    assert "\n" not in str(e.value)
    if spec and spec.strip():
        assert f"'{spec}' is no student" in str(e.value) and "mobilenet_v3_small" in str(e.value)


def test_pipeline_student_of_the_wrong_task_is_an_error_not_a_swap():
    from autolabel.app.pipeline import load_pipeline_config
    from autolabel.app.stages import effective_config, train_config

    with pytest.raises(ConfigError) as e:  # was silently trained as mobilenet_v3_small
        load_pipeline_config(None, ["task=classify", "train.student=yolov8n.pt"])
    msg = str(e.value)
    assert "\n" not in msg and "train.student 'yolov8n.pt' is a yolo" in msg and "train.student=mobilenet_v3_small" in msg
    with pytest.raises(ConfigError, match="train.student 'resnet18' is a classifier .* a detect pipeline"):
        load_pipeline_config(None, ["train.student=resnet18"])
    with pytest.raises(ConfigError, match="train.student 'ssdlite' is a ssdlite .*autolabel train --student ssdlite"):
        load_pipeline_config(None, ["train.student=ssdlite"])
    with pytest.raises(ConfigError, match="train.student: 'a.onnx' is no student"):
        load_pipeline_config(None, ["train.student=a.onnx"])
    cfg = load_pipeline_config(None, ["task=classify"])  # unset: the task's own default student
    assert cfg["train"]["student"] is None and train_config(cfg).model == "mobilenet_v3_small"
    assert effective_config(cfg, {})["train"]["student"] == "mobilenet_v3_small"
    assert effective_config(load_pipeline_config(None), {})["train"]["student"] == "yolov8n.pt"


def test_deprecated_switch_names_still_work():
    from autolabel.students import ClassifierConfig, SSDLiteConfig, TrainConfig

    assert TrainConfig().soft and ClassifierConfig().soft and SSDLiteConfig().soft
    with pytest.warns(DeprecationWarning):
        old = TrainConfig(hard_only=True)
    assert old.soft is False and old == TrainConfig(soft=False) and replace(old, soft=True).soft is True
    with pytest.warns(DeprecationWarning):
        assert ClassifierConfig(kd=False) == ClassifierConfig(soft=False)


def test_import_autolabel_stays_free_of_torch():
    code = ("import sys, autolabel\n"
            "from autolabel import train, create_student, identify_student\n"
            "assert create_student('yolov8n.pt').name == 'yolo' and identify_student('ssdlite') == 'ssdlite'\n"
            "assert identify_student('yolov8n.yaml') == 'yolo'\n"
            "print([m for m in ('torch', 'torchvision', 'ultralytics') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
    import autolabel

    for name in ("train", "create_student", "identify_student", "train_classifier", "train_ssdlite", "ClassifierConfig",
                 "ClassifierResult", "SSDLiteConfig", "SSDLiteResult", "TrainResult", "label_classification"):
        assert name in autolabel.__all__, name


# ------------------------------------------------------------------------------------------- train() dispatch


@pytest.mark.slow
def test_train_dispatches_to_the_classifier(squares, tmp_path):
    from autolabel.students import ClassifierConfig, ClassifierResult

    cfg = ClassifierConfig(pretrained=False, imgsz=32, batch=8, epochs=1, warmup_epochs=0.0, device="cpu", progress=False)
    res = train(squares, student="mobilenet_v3_small", out=tmp_path / "cls", config=cfg)
    assert isinstance(res, ClassifierResult) and res.metrics["model"] == "mobilenet_v3_small"
    assert res.best == tmp_path / "cls" / "weights" / "best.pt" and res.metrics_path.parent == res.best.parent
    # no student named: the config's family; the spec names the model
    res2 = train(squares, out=tmp_path / "cls2", config=replace(cfg, model="shufflenet_v2_x0_5"))
    assert res2.metrics["model"] == "shufflenet_v2_x0_5"
    with pytest.raises(ConfigError, match="'yolov8n.pt' is a yolo student: its settings are a TrainConfig"):
        train(squares, student="yolov8n.pt", out=tmp_path / "x", config=cfg)
    # the trained run, whatever layout, is a classifier student
    s = create_student(tmp_path / "cls")
    assert s.name == "classifier" and s.load().names == ["red", "blue"]
    assert 0 <= s.evaluate(squares)["top1_teacher"] <= 1
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(res.best, old / "best.pt")  # a run of the layout before weights/
    assert create_student(old).load().model_name == "mobilenet_v3_small"


@pytest.mark.slow
def test_train_dispatches_to_ssdlite(squares, tmp_path):
    from autolabel.students import SSDLiteConfig, SSDLiteResult
    from autolabel.students.ssdlite.train import load_ssdlite

    cfg = SSDLiteConfig(epochs=1, batch=4, device="cpu", pretrained=False, min_size=96, precise_bn=0, progress=False)
    res = train(squares, student="ssdlite320_mobilenet_v3_large", out=tmp_path / "ssd", config=cfg)
    assert isinstance(res, SSDLiteResult) and res.best == tmp_path / "ssd" / "weights" / "best.pt"
    assert json.loads(res.metrics_path.read_text())["model"] == "ssdlite320_mobilenet_v3_large"
    assert load_ssdlite(res.best)[1] == ["red", "blue"]
    s = create_student(tmp_path / "ssd")
    assert s.name == "ssdlite" and s.load()[1] == ["red", "blue"]
    m = s.evaluate(squares)
    assert m["against"] == "teacher labels" and (m["mAP50-95"] is None or 0 <= m["mAP50-95"] <= 1)
    with pytest.raises(ConfigError, match="pruning is not supported for ssdlite students"):
        s.prune(tmp_path / "p", data=squares)
    with pytest.raises(ConfigError, match="its settings are a SSDLiteConfig, found a TrainConfig"):
        from autolabel.students import TrainConfig

        train(squares, student="ssdlite", out=tmp_path / "x", config=TrainConfig())


@pytest.mark.parametrize("spec, what", [("ssdlite", "SSDLite students"), ("mobilenet_v3_small", "classifiers")])
def test_onnx_only_families_refuse_other_export_formats(spec, what, tmp_path):
    from autolabel.config import ExportConfig

    with pytest.raises(ConfigError, match=rf"^{what} export to ONNX only \(--format onnx\)$"):
        create_student(spec).export(tmp_path / "b", config=ExportConfig(formats=("openvino",)))
