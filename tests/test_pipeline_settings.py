"""Fail before the work: every pipeline value and every model file is checked before the first stage starts,
and a bad one is one line (exit 2) with nothing written to the run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autolabel.app.pipeline import Pipeline, load_pipeline_config
from autolabel.core.errors import ConfigError, WeightsNotFoundError
from tests import fakes
from tests.conftest import ROOT, weights_path

TINY = {
    "name": "tiny",
    "label": {"teacher": "test-squares", "val_fraction": 0.3, "batch_size": 4},
    "train": {"student": "test-yolo-tiny", "epochs": 1, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0},
    "prune": {"ratio": 0.2, "round_to": 2, "recover_epochs": 1},
    "export": {"int8": True, "calib_images": 4},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("settings")
    fakes.make_square_images(tmp / "src", 3, seed=3)
    onto = tmp / "squares.yaml"
    onto.write_text(yaml.safe_dump({"name": "squares", "classes": [{"name": "red", "threshold": 0.5},
                                                                    {"name": "blue", "threshold": 0.5}]}))
    pipe = tmp / "tiny.yaml"
    pipe.write_text(yaml.safe_dump({**TINY, "ontology": str(onto)}))
    return {"src": tmp / "src", "pipe": pipe, "tmp": tmp}


@pytest.mark.parametrize(
    "item, match",
    [
        ("label.batch_size=abc", r"label\.batch_size must be an integer, found 'abc'"),
        ("label.fps=fast", r"label\.fps must be a number or null, found 'fast'"),
        ("train.epochs=abc", r"train\.epochs must be an integer, found 'abc'"),
        ("prune.ratio=lots", r"prune\.ratio must be a number, found 'lots'"),
        ("prune.ratio=1.5", r"prune\.ratio must be in \(0, 0\.95\), found 1\.5"),
        ("label.batch_size=0", r"label\.batch_size must be >= 1"),
        ("label.val_fraction=1", r"label\.val_fraction must be in \[0, 1\)"),
        ("label.tile=big", r"label\.tile must be an integer or null"),
        ("train.imgsz=16", r"train\.imgsz must be >= 32"),
        ("train.alpha=2", r"train\.alpha must be in \[0, 1\]"),
        ("train.temperature=hot", r"train\.temperature must be a number"),
        ("train.ultralytics=5", r"train\.ultralytics must be a mapping"),
        ("train.soft=maybe", r"train\.soft must be true or false"),
        ("prune.rounds=5", r"prune\.rounds \(5\) needs at least one recovery epoch each \(prune\.recover_epochs 1\)"),
        ("prune.keep=model.9", r"prune\.keep must be a list of text"),
        ("prune.enabled=1", r"prune\.enabled must be true or false"),
        ("export.calib_method=best", r"export\.calib_method must be one of"),
        ("export.imgsz=100", r"export\.imgsz must be a multiple of 32"),
        ("export.calib_images=none", r"export\.calib_images must be an integer"),
        ("export.max_drop=5", r"export\.max_drop must be in \[0, 1\]"),
        ("report.gt=/no/such/labels", r"report\.gt '/no/such/labels' not found"),
        ("train.device=cuda:7", r"device 'cuda:7' requested but no CUDA GPU"),
    ],
)
def test_bad_values_fail_when_the_config_is_loaded(files, item, match):
    if item.startswith("train.device"):
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match=match):
        load_pipeline_config(files["pipe"], [item])


@pytest.mark.parametrize("item", ["label.batch_size=abc", "label.fps=fast", "train.epochs=abc", "prune.ratio=lots"])
def test_cli_run_bad_value_is_one_line_and_writes_nothing(files, capsys, item):
    from autolabel.app.cli import main

    run = files["tmp"] / f"run_{item.split('=')[0]}"
    assert main(["run", str(files["src"]), "--pipeline", str(files["pipe"]), "--out", str(run), "--set", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and item.split("=")[0] in err[0] and "Traceback" not in err[0], err
    assert not run.exists()


def test_values_set_in_python_are_checked_before_the_run_folder(files):
    cfg = yaml.safe_load(files["pipe"].read_text())
    cfg["train"]["epochs"] = "abc"
    run = files["tmp"] / "run_py"
    with pytest.raises(ConfigError, match="train.epochs must be an integer"):
        Pipeline(cfg).run([files["src"]], run, progress=False)
    assert not run.exists()


@pytest.mark.parametrize(
    "item, match, hint",
    [
        ("label.teacher=[yolo:/no/such/dir/yolov8n.pt]", "teacher 'yolo' weights '/no/such/dir/yolov8n.pt' not found",
         "--set 'label.teacher=[yolo:/path/to/yolov8n.pt]'"),
        ("train.student=/no/such/dir/yolov8n.pt", "student weights '/no/such/dir/yolov8n.pt' not found",
         "--set train.student=/path/to/yolov8n.pt"),
        ("train.kd_teacher=/no/such/dir/yolov8s.pt", "train.kd_teacher weights", "--set train.kd_teacher=/path/to/yolov8s.pt"),
    ],
)
def test_missing_weights_fail_before_labeling_with_a_hint_for_run(files, capsys, item, match, hint):
    from autolabel.app.cli import main

    run = files["tmp"] / "run_weights"
    with pytest.raises(WeightsNotFoundError, match=match) as e:
        Pipeline.from_yaml(files["pipe"], overrides=[item]).run([files["src"]], run, progress=False)
    assert hint in str(e.value) and "AUTOLABEL_WEIGHTS_DIR" in str(e.value)
    assert "--teacher" not in str(e.value) and "--student" not in str(e.value)  # options `run` does not have
    assert not run.exists()
    assert main(["run", str(files["src"]), "--pipeline", str(files["pipe"]), "--out", str(run), "--set", item]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and hint in err[0]
    assert not run.exists()


def test_offline_missing_default_teacher_names_the_set_option(files, monkeypatch, tmp_path):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("AUTOLABEL_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    run = tmp_path / "run"
    with pytest.raises(WeightsNotFoundError, match=r"--set 'label\.teacher=\[yolo:/path/to/yolo26x\.pt\]'"):
        Pipeline.from_yaml(files["pipe"], overrides=["label.teacher=[yolo:yolo26x.pt]"]).run(
            [files["src"]], run, progress=False)
    assert not run.exists()


def test_missing_source_fails_before_the_run_folder(files):
    run = files["tmp"] / "run_nosrc"
    with pytest.raises(Exception, match="source .* not found"):
        Pipeline.from_yaml(files["pipe"]).run([files["tmp"] / "nope"], run, progress=False)
    assert not run.exists()


def test_pretrained_reflects_where_the_student_starts():
    from autolabel.app.stages import effective_config, resolve_models

    cfg = load_pipeline_config(None, ["train.student=test-yolo-tiny", "label.teacher=[test-squares]"])
    assert effective_config(cfg, resolve_models(cfg))["train"]["pretrained"] is False  # an architecture
    pt = weights_path("yolov8n.pt")
    cfg = load_pipeline_config(ROOT / "pipelines" / "quick.yaml", [f"train.student={pt}", f"label.teacher=[yolo:{pt}]"])
    assert cfg["train"]["pretrained"] is None  # unset: the student decides
    models = resolve_models(cfg)
    assert models["student"] == str(pt) and effective_config(cfg, models)["train"]["pretrained"] is True
    with pytest.raises(ConfigError, match="train.pretrained is False but train.student .* is a checkpoint"):
        resolve_models(load_pipeline_config(ROOT / "pipelines" / "quick.yaml",
                                            [f"train.student={pt}", "train.pretrained=false"]))


def test_missing_hugging_face_teacher_fails_up_front(files, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    run = tmp_path / "run"
    for spec, match in [("owlv2:/no/such/owl", r"local folder '/no/such/owl' does not exist"),
                        ("grounding-dino:someone/not-cached", r"not in the Hugging Face cache and the hub is offline")]:
        with pytest.raises(WeightsNotFoundError, match=match) as e:
            Pipeline.from_yaml(files["pipe"], overrides=[f"label.teacher=[{spec}]"]).run([files["src"]], run,
                                                                                       progress=False)
        assert f"--set 'label.teacher=[{spec.split(':')[0]}:/path/to/" in str(e.value) and "--teacher" not in str(e.value)
    assert not run.exists()
