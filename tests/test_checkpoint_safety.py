"""A ``.pt`` is a pickle: autolabel never runs code from one unless the user opts in (--trust-checkpoint)."""

from __future__ import annotations

import os
import sys

import pytest

from autolabel.core.checkpoints import TRUST_ENV, import_ultralytics, load_state, load_yolo, trust_checkpoints
from autolabel.core.errors import UnsafeCheckpointError
from tests.conftest import ROOT, weights_path


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil_pt(tmp_path):
    import torch

    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil(str(marker)), "train_args": {}}, path)
    assert not marker.exists()
    return path, marker


@pytest.fixture(autouse=True)
def _untrusted(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    yield
    trust_checkpoints(False)


def test_evil_pickle_never_runs_through_load_yolo(evil_pt):
    path, marker = evil_pt
    with pytest.raises(UnsafeCheckpointError, match=r"was not loaded.*--trust-checkpoint"):
        load_yolo(path, what="teacher 'yolo'")
    assert not marker.exists()


def test_evil_pickle_never_runs_through_load_state(evil_pt):
    path, marker = evil_pt
    with pytest.raises(UnsafeCheckpointError, match="weights_only"):
        load_state(path)
    assert not marker.exists()


def test_evil_pickle_as_teacher_is_refused(evil_pt):
    from autolabel.core.ontology import Ontology
    from autolabel.teachers import create_teacher

    path, marker = evil_pt
    onto = Ontology.from_dict({"classes": [{"name": "person", "prompts": ["person"]}]})
    with pytest.raises(UnsafeCheckpointError, match="trust-checkpoint"):
        create_teacher(f"yolo:{path}", ontology=onto, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("argv", [["export", "{p}", "--out", "{o}"], ["prune", "{p}", "--out", "{o}", "--recover-epochs", "0"]])
def test_cli_refuses_evil_pickle_with_one_line(evil_pt, tmp_path, capsys, argv):
    from autolabel.app.cli import main

    path, marker = evil_pt
    code = main([a.format(p=path, o=tmp_path / "out") for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--trust-checkpoint" in err[0] and "Traceback" not in err[0]
    assert not marker.exists()


def test_trust_is_an_explicit_opt_in(evil_pt, monkeypatch):
    """With the opt-in the file is unpickled as the user asked (here: our harmless payload runs)."""
    path, marker = evil_pt
    trust_checkpoints(True)
    assert os.environ[TRUST_ENV] == "1"
    with pytest.raises(Exception):  # noqa: B017 - it is not a model, whatever Ultralytics says about it
        load_yolo(path)
    assert marker.exists()


def test_cli_flag_after_the_command_name_is_accepted(capsys):
    from autolabel.app.cli import _hoist_global_flags

    assert _hoist_global_flags(["export", "m.pt", "--trust-checkpoint"]) == ["--trust-checkpoint", "export", "m.pt"]
    assert _hoist_global_flags(["export", "m.pt"]) == ["export", "m.pt"]


def test_real_coco_checkpoints_load_restricted():
    for name in ("yolov8n.pt", "yolo11n.pt"):
        y = load_yolo(weights_path(name))
        assert len(y.names) == 80
    import ultralytics.nn.tasks as tasks

    assert tasks.SAFE_LOAD is True


def test_ultralytics_import_does_not_patch_pil_nor_install():
    from PIL import Image

    orig = Image.open
    ultralytics = import_ultralytics()
    import ultralytics.utils.checks as checks

    assert Image.open is orig or Image.open.__module__ != "ultralytics.utils.patches"
    assert checks.AUTOINSTALL is False
    assert ultralytics is sys.modules["ultralytics"]


def test_help_is_plain_without_bool_metavars():
    from typer.testing import CliRunner

    from autolabel.app.cli import app

    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    assert "<bool>" not in out and "--trust-checkpoint" in out
    out = CliRunner().invoke(app, ["label", "--help"], env={"COLUMNS": "80"}).output
    lines = [ln for ln in out.splitlines() if ln.strip()]
    # one option a line with its help beside it, not a rich box wrapped to a few words a line
    assert any(ln.strip().startswith("--batch-size") and "Images per teacher forward pass" in ln for ln in lines), out
    assert not any(ch in out for ch in "╭│╰")


def test_readme_mentions_the_opt_in():
    assert "--trust-checkpoint" in (ROOT / "README.md").read_text()


def test_a_student_pruned_before_its_layers_moved_still_loads(tmp_path):
    """Pruned students pickled ``C2fSplit`` as ``autolabel.compress.pruning.C2fSplit`` before the layer moved to
    ``autolabel.students.yolo.layers``: such a file loads, restricted and trusted, into the same class."""
    import zipfile

    import torch

    from autolabel.compress.prune_yolo import split_c2f
    from autolabel.students.yolo.layers import C2fSplit

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False)
    n = split_c2f(model)
    model.names = {0: "red", 1: "blue"}
    path = tmp_path / "pruned.pt"
    C2fSplit.__module__ = "autolabel.compress.pruning"  # where the class lived when older files were pickled
    try:
        torch.save({"model": model.half().eval(), "train_args": {"imgsz": 64}}, path)
    finally:
        C2fSplit.__module__ = "autolabel.students.yolo.layers"
    with zipfile.ZipFile(path) as z:
        pickled = z.read(next(f for f in z.namelist() if f.endswith("data.pkl")))
    assert b"autolabel.compress.pruning" in pickled and b"autolabel.students.yolo.layers" not in pickled
    for trust in (False, True):
        trust_checkpoints(trust)
        y = load_yolo(path)
        assert sum(type(m) is C2fSplit for m in y.model.modules()) == n > 0, trust
        with torch.no_grad():
            assert y.model.float().eval()(torch.zeros(1, 3, 64, 64))[0].shape[:2] == (1, 6)
