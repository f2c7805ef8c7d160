"""Structured pruning: C2f rewrite is exact, channels go, the head's outputs stay, KD recovery runs, export works."""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest

from autolabel.core.errors import ConfigError
from tests.conftest import weights_path

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from autolabel.compress.bundle import ExportConfig, export  # noqa: E402
from autolabel.compress.prune_engine import count_flops_params  # noqa: E402
from autolabel.compress.prune_yolo import prune_model, split_c2f  # noqa: E402
from autolabel.compress.pruning import PruneConfig, prune  # noqa: E402
from autolabel.runtime import load_bundle  # noqa: E402
from autolabel.students.yolo.layers import C2fSplit  # noqa: E402

pytestmark = pytest.mark.slow  # every test prunes a trained student or a real yolov8n


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def trained(tiny_student) -> dict[str, Path]:
    """The session's squares dataset and tiny student (tests/conftest.py); pruning writes elsewhere."""
    return tiny_student


def _tiny_model(pt: Path):
    from ultralytics import YOLO

    return YOLO(str(pt)).model.float().eval()


def test_c2f_split_is_exact_and_replaces_every_block(trained):
    m = _tiny_model(trained["pt"])
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)[0]
    m2 = deepcopy(m)
    n = split_c2f(m2)
    assert n == 8  # the YOLOv8 layout has 8 C2f blocks
    assert sum(isinstance(b, C2fSplit) for b in m2.modules()) == 8
    with torch.no_grad():
        out = m2(x)[0]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_prune_model_removes_channels_and_keeps_the_head_outputs(trained):
    m = _tiny_model(trained["pt"])
    head = m.model[-1]
    head_out = [(c[-1].weight.shape[0]) for c in (*head.cv2, *head.cv3)]
    flops0, params0 = count_flops_params(m, 64)
    counts = prune_model(m, PruneConfig(ratio=0.3, imgsz=64, round_to=2, keep=("model.9",)))
    flops1, params1 = count_flops_params(m, 64)
    assert counts["params_before"] == params0 and counts["params_after"] == params1
    assert params1 < params0 and flops1 <= 0.72 * flops0
    assert [(c[-1].weight.shape[0]) for c in (*head.cv2, *head.cv3)] == head_out  # boxes and classes intact
    sppf = m.model[9]  # kept whole
    assert sppf.cv1.conv.out_channels == _tiny_model(trained["pt"]).model[9].cv1.conv.out_channels
    with torch.no_grad():
        y = m(torch.rand(1, 3, 64, 64))[0]
    assert y.shape[:2] == (1, 4 + 2)


def test_prune_with_kd_recovery_writes_report_and_exports(trained, tmp_path):
    out = tmp_path / "pruned"
    cfg = PruneConfig(ratio=0.3, imgsz=64, round_to=2, recover_epochs=1, batch=8, device="cpu", workers=0,
                      progress=False, ultralytics={"warmup_epochs": 0})
    res = prune(trained["pt"], out, data=trained["ds"], config=cfg)
    rep = json.loads((out / "prune_report.json").read_text())
    assert rep["pruned"]["params"] < rep["original"]["params"]
    assert rep["recovered"]["kd_from_unpruned"] is True and res.recovered.is_file()
    for k in ("original", "pruned", "recovered"):
        assert 0.0 <= rep[k]["mAP50-95"] <= 1.0
    settings = json.loads((out / "autolabel_train.json").read_text())
    assert settings["keep_architecture"] is True and settings["kd_weight"] > 0 and settings["hint_weight"] > 0
    # recovery steps the optimizer on every batch at the recovery LR (no accumulation to Ultralytics' nbs 64);
    # the user's own Ultralytics arguments (warmup_epochs here) win
    import yaml

    args = yaml.safe_load((out / "args.yaml").read_text())
    assert (args["nbs"], args["optimizer"], args["lr0"], args["warmup_epochs"]) == (8, "AdamW", 0.002, 0)
    assert args["warmup_bias_lr"] == 0.0
    # the recovered (pruned) model is still an Ultralytics checkpoint that exports and runs without torch
    b = export(res.recovered, tmp_path / "bundle", data=trained["ds"],
               config=ExportConfig(imgsz=64, int8=True, calib_images=4, evaluate=False, progress=False))
    img = np.zeros((64, 80, 3), np.uint8)
    for m in ("fp32", "int8"):
        d = load_bundle(b.bundle, model=m).predict(img, conf=0.001)
        assert d.xyxy.shape[1:] == (4,)
    assert b.meta["parameters"] == rep["pruned"]["params"]


def test_gradual_rounds_reach_the_target_and_recover_each_round(trained, tmp_path):
    cfg = PruneConfig(ratio=0.3, imgsz=64, recover_epochs=2, rounds=2, batch=8, device="cpu", workers=0,
                      progress=False, ultralytics={"warmup_epochs": 0})
    res = prune(trained["pt"], tmp_path / "g", data=trained["ds"], config=cfg)
    rec = res.report["recovered"]
    assert rec["rounds"] == 2 and [h["epochs"] for h in rec["history"]] == [1, 1]
    assert rec["flops"] <= 0.72 * res.report["original"]["flops"]
    assert rec["params"] < res.report["original"]["params"]
    with pytest.raises(ConfigError, match="at least one recovery epoch each"):
        PruneConfig(rounds=3, recover_epochs=2)


def test_prune_errors(trained, tmp_path):
    with pytest.raises(ConfigError, match="ratio"):
        PruneConfig(ratio=1.0)
    with pytest.raises(ConfigError, match="target"):
        PruneConfig(target="latency")
    with pytest.raises(ConfigError, match="--data"):
        prune(trained["pt"], tmp_path / "x", config=PruneConfig(imgsz=64))
    with pytest.raises(ConfigError, match="not in the model"):
        prune(trained["pt"], tmp_path / "x", config=PruneConfig(imgsz=64, recover_epochs=0, keep=("model.99",)))


def test_cli_prune_only(trained, tmp_path, capsys):
    from autolabel.app.cli import main

    assert main(["prune", str(trained["pt"]), "--out", str(tmp_path / "p"), "--ratio", "0.2", "--imgsz", "64",
                 "--recover-epochs", "0", "--data", str(trained["ds"]), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "original" in printed and "pruned" in printed and "recovered" not in printed
    assert main(["prune", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "p2")]) == 2
    assert "not found" in capsys.readouterr().err


def test_real_yolov8n_prunes_to_half_the_flops():
    from ultralytics import YOLO

    m = YOLO(str(weights_path("yolov8n.pt"))).model.float().eval()
    x = torch.rand(1, 3, 160, 160)
    c = prune_model(m, PruneConfig(ratio=0.45, imgsz=160))
    assert 0.45 <= c["flops_after"] / c["flops_before"] <= 0.56, c
    with torch.no_grad():
        assert m(x)[0].shape == (1, 84, 525)


def test_pruning_keeps_a_real_model_working_where_magnitude_alone_breaks_it(bus_image):
    """Activation importance + mean compensation vs plain L2 magnitude, 10 % of yolov8n's FLOPs, no training."""
    import torch_pruning as tp
    from ultralytics import YOLO

    import autolabel.compress.prune_yolo as P
    from autolabel.runtime import letterbox

    w = weights_path("yolov8n.pt")
    x = torch.from_numpy(letterbox(bus_image, 320)[0].transpose(2, 0, 1)[None].astype(np.float32) / 255)

    def best_person(model) -> float:
        with torch.no_grad():
            return float(model.eval()(x)[0][0, 4].max())

    ref = best_person(YOLO(str(w)).model.float())
    ours = YOLO(str(w)).model.float()
    prune_model(ours, PruneConfig(ratio=0.1, imgsz=320), images=x)
    plain = YOLO(str(w)).model.float()
    orig_imp, orig_comp = P.ActivationImportance, P.compensate
    try:
        P.ActivationImportance = lambda m, st: tp.importance.GroupMagnitudeImportance(p=2)
        P.compensate = lambda *a: None
        prune_model(plain, PruneConfig(ratio=0.1, imgsz=320), images=x)
    finally:
        P.ActivationImportance, P.compensate = orig_imp, orig_comp
    assert ref > 0.7
    assert best_person(ours) > 0.3 > best_person(plain) + 0.1, (best_person(ours), best_person(plain))
