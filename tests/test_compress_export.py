"""Export → bundle → runtime: ONNX FP32/FP16/INT8, parity with PyTorch, the runtime without torch, predict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from tests import fakes
from tests.conftest import ROOT, TINY_IMAGES, TINY_SEED, weights_path

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from autolabel.compress.bundle import ExportConfig, export  # noqa: E402
from autolabel.compress.quantize import decode_nodes  # noqa: E402
from autolabel.runtime import BundleError, decode, letterbox, load_bundle, nms  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def tiny(tiny_student, tiny_bundle) -> dict[str, Path]:
    """The session's squares dataset, tiny student and its FP32/FP16/INT8 bundle (tests/conftest.py)."""
    return {**tiny_student, "bundle": tiny_bundle}


@pytest.mark.slow
def test_bundle_layout_and_metadata(tiny):
    b = tiny["bundle"]
    meta = json.loads((b / "bundle.json").read_text())
    assert meta["format"] == "autolabel-bundle" and meta["names"] == ["red", "blue"]
    assert meta["models"] == {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}
    assert meta["preprocessing"]["imgsz"] == 64 and meta["preprocessing"]["letterbox"] is True
    # per-class thresholds come from the dataset's ontology
    assert meta["postprocessing"]["thresholds"] == {"red": 0.4, "blue": 0.6}
    for f in ("model.onnx", "model_int8.onnx", "autolabel_runtime.py", "README.md", "ontology.yaml"):
        assert (b / f).is_file(), f
    # every model was scored on the val split against the dataset's labels
    assert set(meta["metrics"]) == {"fp32", "fp16", "int8"}
    assert all(0.0 <= m["mAP50-95"] <= 1.0 for m in meta["metrics"].values())
    assert meta["export"]["int8"]["calibration_images"] == 8 and meta["export"]["int8"]["float_nodes"] > 0
    assert not list(b.parent.glob(".bundle.partial"))
    # the README names the bundle, not the temporary folder it was built in
    assert (b / "README.md").read_text().splitlines()[0] == "# bundle: an autolabel detection bundle"


@pytest.mark.slow
def test_fp32_onnx_matches_pytorch(tiny):
    from ultralytics import YOLO
    from ultralytics.utils.nms import non_max_suppression

    det = load_bundle(tiny["bundle"], model="fp32")
    from PIL import Image

    img = np.asarray(Image.open(sorted(tiny["src"].glob("*.png"))[0]).convert("RGB"))
    x, _ = det.preprocess([img])
    raw = det.forward(x)
    model = YOLO(str(tiny["pt"])).model.float().eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()
    assert raw.shape == ref.shape and raw.shape[:2] == (1, 4 + 2)
    np.testing.assert_allclose(raw, ref, rtol=1e-3, atol=1e-3)
    # the runtime's decode + NMS keeps the same boxes as Ultralytics' NMS on the same output (fed the ONNX
    # output, not PyTorch's: a barely trained model has near-tied huge boxes whose IoU sits at the threshold,
    # and the 1e-4 float difference between the two flipped which one survived)
    th = np.full(2, 0.001, np.float32)
    xyxy, scores, cls, soft = decode(raw[0], th, iou=0.7)
    u = non_max_suppression(torch.from_numpy(raw), conf_thres=0.001, iou_thres=0.7, max_det=300)[0].numpy()
    assert len(xyxy) == len(u) > 0
    np.testing.assert_allclose(np.sort(scores)[::-1], u[:, 4], atol=1e-3)
    # every runtime box has an Ultralytics box at the same place with the same class (order may differ on ties)
    for b, c in zip(xyxy, cls):
        near = np.abs(u[:, :4] - b).max(1)
        assert (near < 0.05).any() and c in u[near < 0.05, 5].astype(int), (b, c)
    assert soft.shape == (len(xyxy), 2) and np.allclose(soft.max(1), scores)


@pytest.mark.slow
def test_int8_and_fp16_are_smaller_and_the_decode_stays_float(tiny):
    b = tiny["bundle"]
    fp32, int8, fp16 = ((b / f).stat().st_size for f in ("model.onnx", "model_int8.onnx", "model_fp16.onnx"))
    assert fp16 < 0.7 * fp32
    import onnx

    g = onnx.load(str(b / "model_int8.onnx")).graph
    ops = {n.op_type for n in g.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # no Q/DQ pair feeds the head's decode: its Sigmoid / Softmax see float tensors from float producers
    producers = {o: n for n in g.node for o in n.output}
    for n in g.node:
        if n.op_type in {"Softmax"}:
            assert producers[n.input[0]].op_type != "DequantizeLinear", n.name
    assert decode_nodes(b / "model.onnx")
    assert int8 < fp32 or fp32 < 200_000  # a ~0.1M-parameter model is dominated by graph overhead


def test_runtime_letterbox_nms_and_threshold_contract():
    img = np.zeros((50, 100, 3), np.uint8)
    out, r, (px, py) = letterbox(img, 64)
    assert out.shape == (64, 64, 3) and r == pytest.approx(0.64) and px == 0 and py == 16
    assert (out[:16] == 114).all() and (out[16:48] == 0).all()
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.5).tolist() == [0, 2]
    # (4 + C, A) head output: the per-class threshold applies to each box's best class
    raw = np.array([[10, 30], [10, 30], [4, 4], [4, 4], [0.5, 0.1], [0.1, 0.55]], np.float32)
    xyxy, s, c, _ = decode(raw, np.array([0.4, 0.6], np.float32), 0.7)
    assert c.tolist() == [0] and s.tolist() == [0.5] and xyxy.tolist() == [[8, 8, 12, 12]]


@pytest.mark.slow
def test_runtime_imports_and_runs_without_torch(tiny, tmp_path):
    img = sorted(tiny["src"].glob("*.png"))[0]
    blocker = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'torchvision', 'ultralytics', 'transformers', 'supervision'}:\n"
        "            raise ImportError('blocked for this test: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    code = blocker + (
        "import numpy as np\n"
        "from autolabel.runtime import load_bundle, read_image\n"
        f"det = load_bundle({str(tiny['bundle'])!r})\n"
        f"d = det.predict(read_image({str(img)!r}), conf=0.001)\n"
        "assert det.model == 'int8' and d.xyxy.shape[1] == 4 and len(d) > 0\n"
        "assert 'torch' not in sys.modules and 'ultralytics' not in sys.modules\n"
        "print('ok', len(d))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-2000:]
    # the copy inside the bundle runs on its own, from the bundle folder, without the autolabel package
    standalone = tmp_path / "camera"
    shutil.copytree(tiny["bundle"], standalone)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code2 = blocker + (
        "sys.meta_path.insert(0, type('B', (), {'find_spec': lambda s, n, p=None, t=None: "
        "(_ for _ in ()).throw(ImportError(n)) if n.split('.')[0] == 'autolabel' else None})())\n"
        "sys.argv = ['autolabel_runtime.py', '.', " + repr(str(img)) + ", '--conf', '0.001', '--model', 'fp32']\n"
        "import runpy; runpy.run_path('autolabel_runtime.py', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, timeout=120,
                          cwd=standalone, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "detections" in proc.stdout


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda p: None, "not found"),
        (lambda p: p.mkdir(), "has no bundle.json"),
        (lambda p: (p.mkdir(), (p / "bundle.json").write_text("{oops")), "not valid JSON"),
        (lambda p: (p.mkdir(), (p / "bundle.json").write_text('{"format": "other"}')), "expected 'autolabel-bundle'"),
        (lambda p: (p.mkdir(), (p / "bundle.json").write_text(
            '{"format": "autolabel-bundle", "version": 1, "names": ["a"], "models": {"fp32": "model.onnx"}, '
            '"preprocessing": {"imgsz": 64}}')),
         "model.onnx is missing"),
    ],
)
def test_bad_bundle_paths(tmp_path, setup, match):
    p = tmp_path / "b"
    setup(p)
    with pytest.raises(BundleError, match=match):
        load_bundle(p)


@pytest.mark.slow
def test_bad_model_and_export_options(tiny, tmp_path):
    with pytest.raises(BundleError, match="has no 'int16' model"):
        load_bundle(tiny["bundle"], model="int16")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        export(tmp_path / "missing.pt", tmp_path / "b")
    with pytest.raises(ConfigError, match="needs your own images"):
        export(tiny["pt"], tmp_path / "b", config=ExportConfig(imgsz=64, int8=True))
    with pytest.raises(ConfigError, match="multiple of 32"):
        ExportConfig(imgsz=100)
    with pytest.raises(ConfigError, match="calib_method"):
        ExportConfig(calib_method="magic")
    with pytest.raises(ConfigError, match="valid extra formats"):
        ExportConfig(formats=("coreml",))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a bundle"):
        export(tiny["pt"], tmp_path / "busy", config=ExportConfig(imgsz=64))
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(DatasetError, match="not found"):
        export(tiny["pt"], tmp_path / "b", data=tmp_path / "nodata", config=ExportConfig(imgsz=64))


@pytest.mark.slow
def test_cli_export_and_predict_on_images_and_video(tiny, tmp_path, capsys):
    import cv2

    from autolabel.app.cli import main
    from autolabel.metrics import load_predictions

    vid = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 96))
    for i in range(6):
        frame = np.full((96, 128, 3), 90, np.uint8)
        frame[20:50, 10 + 5 * i : 40 + 5 * i] = (40, 40, 230)  # BGR red square moving right
        w.write(frame)
    w.release()
    src = tmp_path / "imgs"
    shutil.copytree(tiny["src"], src)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    bundle = tmp_path / "bundle"
    assert main(["export", str(tiny["pt"]), "--out", str(bundle), "--imgsz", "64", "-q"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    out = tmp_path / "pred"
    assert main(["predict", str(bundle), str(src), str(vid), "--out", str(out), "--conf", "0.01", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "fps" in printed and "broken.jpg" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 12 + 6 and summary["model"] == "fp32"
    assert len(list((out / "images").glob("*.jpg"))) == 12
    cap = cv2.VideoCapture(str(out / "clip_annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    coco = json.loads((out / "detections.coco.json").read_text())
    assert len(coco["images"]) == 18 and [c["name"] for c in coco["categories"]] == ["red", "blue"]
    assert load_predictions(out / "detections.coco.json").names == ["red", "blue"]
    # user errors: one line, exit 2
    assert main(["predict", str(tmp_path / "nobundle"), str(src), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["predict", str(bundle), str(tmp_path / "nothing_here"), "--out", str(out), "-q"]) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert main(["export", str(tiny["pt"]), "--out", str(tmp_path / "b2"), "--imgsz", "64", "--int8"]) == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.slow
def test_int8_of_real_coco_weights_still_detects(tmp_path, bus_image, assets_dir):
    w = weights_path("yolov8n.pt")
    res = export(w, tmp_path / "b", data=assets_dir, config=ExportConfig(imgsz=320, int8=True, calib_images=4,
                                                                          progress=False))
    size = res.meta["files_bytes"]
    assert size["int8"] < 0.5 * size["fp32"]
    names = res.meta["names"]
    found = {}
    for m in ("fp32", "int8"):
        d = load_bundle(res.bundle, model=m).predict(bus_image, conf=0.3)
        found[m] = sorted(names[c] for c in d.class_ids)
        assert found[m].count("person") >= 3 and "bus" in found[m], (m, found[m])
    assert abs(len(found["int8"]) - len(found["fp32"])) <= 2, found
    assert (ROOT / "autolabel" / "runtime.py").read_text() == (res.bundle / "autolabel_runtime.py").read_text()


def test_int8_calibration_survives_a_near_constant_activation(tmp_path):
    """onnxruntime's histogram calibrators raise on a tensor spanning fewer float32 steps than their bins."""
    import torch

    from autolabel.compress.quantize import quantize_qdq

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(x * 1e-5 + 5.0)  # the input of the conv is ~constant

    src = tmp_path / "flat.onnx"
    torch.onnx.export(Flat().eval(), (torch.rand(1, 3, 16, 16),), str(src), input_names=["images"], opset_version=17,
                      dynamo=False)
    rng = np.random.default_rng(0)

    def feeds():
        return ({"images": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(4))

    with pytest.warns(UserWarning, match="calibrated with minmax"):
        used = quantize_qdq(src, tmp_path / "int8.onnx", feeds, "percentile")
    assert used == "minmax" and (tmp_path / "int8.onnx").is_file()
    assert quantize_qdq(src, tmp_path / "int8b.onnx", feeds, "minmax") == "minmax"


class _Net(torch.nn.Module):
    """A few convolutions with activations of different ranges (what the calibrator sees in a detector)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c = torch.nn.Conv2d(8, 6, 1)

    def forward(self, x):
        return self.c(torch.nn.functional.silu(self.b(torch.relu(self.a(x)) * 3.0)))


def _scales(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    return {t.name: numpy_helper.to_array(t) for t in g.initializer if t.name.endswith(("_scale", "_zero_point"))}


@pytest.mark.parametrize("method", ["percentile", "minmax", "entropy"])
def test_int8_calibration_is_fed_in_chunks_and_matches_one_pass(tmp_path, monkeypatch, method):
    """Histogram calibrators hold every image's activations until the feed ends (the CCTV run died of it at
    24 GB): the feed is cut into chunks of bounded bytes, and the ranges stay those of one pass."""
    from onnxruntime.quantization.calibrate import HistogramCalibrater, MinMaxCalibrater

    import autolabel.compress.quantize as Q

    src = tmp_path / "net.onnx"
    torch.onnx.export(_Net().eval(), (torch.rand(1, 3, 32, 32),), str(src), input_names=["images"], opset_version=17,
                      dynamo=False)
    rng = np.random.default_rng(0)
    data = [rng.random((1, 3, 32, 32), dtype=np.float32) * (1 + i % 3) for i in range(12)]

    def feeds():
        return ({"images": x} for x in data)

    held: list[int] = []  # feeds each collect_data call took in (each held at once by the calibrator)
    for cls in (MinMaxCalibrater, HistogramCalibrater):  # Percentile / Entropy inherit HistogramCalibrater's

        def spy(self, reader, _real=cls.collect_data):
            items = []
            while (x := reader.get_next()) is not None:
                items.append(x)
            held.append(len(items))
            it = iter(items)
            reader.get_next = lambda: next(it, None)
            return _real(self, reader)

        monkeypatch.setattr(cls, "collect_data", spy)
    extra = {"CalibPercentile": 99.99} if method == "percentile" else {}
    from onnxruntime.quantization import CalibrationMethod

    enum = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy}[method]
    _, per_image_chunk = Q.calibrate_in_chunks(src, feeds, enum, extra, tmp_path, chunk_bytes=1)
    assert per_image_chunk == 1
    held.clear()
    one = Q.calibrate_in_chunks(src, feeds, enum, extra, tmp_path, chunk_bytes=1 << 40)[0]
    assert held == [12] * (2 if method == "entropy" else 1)  # one pass: every image at once, as before
    held.clear()
    chunked = Q.calibrate_in_chunks(src, feeds, enum, extra, tmp_path, chunk_bytes=1)[0]
    assert held == [1] * 12 * (2 if method == "entropy" else 1)  # entropy: a minmax pass, then the histograms
    assert set(one) == set(chunked) and set(one)
    for name in one:
        r1 = np.asarray(one[name].range_value, np.float64).reshape(2, -1)
        r2 = np.asarray(chunked[name].range_value, np.float64).reshape(2, -1)
        tol = (1e-6 if method != "percentile" else 0.02) * max(np.abs(r1).max(), 1e-6)  # entropy: exact
        np.testing.assert_allclose(r2, r1, atol=tol, rtol=0, err_msg=name)
    # the quantizer itself runs on the chunked ranges: the QDQ scales of the two models agree
    held.clear()
    assert Q.quantize_qdq(src, tmp_path / "a.onnx", feeds, method, extra=extra, chunk_bytes=1) == method
    assert held and max(held) == 1
    monkeypatch.setattr(Q, "CALIB_CHUNK_BYTES", 1 << 40)
    Q.quantize_qdq(src, tmp_path / "b.onnx", feeds, method, extra=extra)
    sa, sb = _scales(tmp_path / "a.onnx"), _scales(tmp_path / "b.onnx")
    assert sa.keys() == sb.keys() and sa
    for k in sa:
        if k.endswith("_scale"):
            np.testing.assert_allclose(sa[k], sb[k], rtol=0.02, err_msg=k)


# ----------------------------------------------------------------------------------------------------------
# the operating point (the threshold math itself: test_operating_point.py)
# ----------------------------------------------------------------------------------------------------------


def _yolo_gt(folder: Path) -> Path:
    """Human labels of the fixture's images (the same seed draws the same squares), as a YOLO folder."""
    truth = fakes.make_square_images(folder / "images", TINY_IMAGES, seed=TINY_SEED)
    (folder / "labels").mkdir()
    (folder / "data.yaml").write_text("names: [red, blue]\n")
    for i, boxes in enumerate(truth):
        (folder / "labels" / f"img{i:04d}.txt").write_text("".join(
            f"{c} {(x1 + x2) / 256} {(y1 + y2) / 192} {(x2 - x1) / 128} {(y2 - y1) / 96}\n" for c, x1, y1, x2, y2 in boxes))
    return folder


@pytest.mark.slow
def test_export_records_the_operating_point_and_keeps_the_fallback_on_few_boxes(tiny):
    meta = json.loads((tiny["bundle"] / "bundle.json").read_text())
    op = meta["operating_point"]
    assert op["source"] == "teacher labels, val split" and op["shipped_model"] == "int8" and op["min_boxes"] == 10
    assert set(op["models"]) == {"fp32", "fp16", "int8"}
    for pts in op["models"].values():  # a handful of val boxes: every class keeps the ontology's threshold
        assert {n: p["threshold"] for n, p in pts.items()} == {"red": 0.4, "blue": 0.6}
        assert all(p["rule"] == "fallback" and "fewer than 10" in p["note"] for p in pts.values())
    assert meta["postprocessing"]["model_thresholds"]["int8"] == meta["postprocessing"]["thresholds"]
    curves = json.loads((tiny["bundle"] / "operating_curves.json").read_text())
    assert set(curves["models"]) == {"fp32", "fp16", "int8"}


@pytest.mark.slow
def test_export_chooses_thresholds_against_human_labels_and_the_thresholds_command_repicks(tiny, tmp_path, capsys):
    from autolabel.app.cli import main
    from autolabel.compress.operating_point import ImagePreds, choose_thresholds, human_boxes
    from autolabel.runtime import read_image

    gt = _yolo_gt(tmp_path / "gt")
    b = tmp_path / "b"
    assert main(["export", str(tiny["pt"]), "--out", str(b), "--imgsz", "64", "--data", str(tiny["ds"]),
                 "--gt", str(gt), "--min-boxes", "1", "--target-recall", "0.5", "-q"]) == 0
    assert "operating point: human labels (gt), val split" in capsys.readouterr().out
    meta = json.loads((b / "bundle.json").read_text())
    pts = meta["operating_point"]["models"]["fp32"]
    assert meta["operating_point"]["target_recall"] == 0.5
    assert meta["postprocessing"]["thresholds"] == {n: p["threshold"] for n, p in pts.items()}
    assert all(p["rule"] in ("recall >= 0.5", "fallback") for p in pts.values())
    # the fixture's bundle (FP32, FP16, INT8) re-picked on all 12 labeled frames: each model its own thresholds
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny["bundle"], bundle)
    assert main(["thresholds", str(bundle), "--gt", str(gt), "--min-boxes", "1", "-q"]) == 0
    assert "bundle.json updated" in capsys.readouterr().out
    meta = json.loads((bundle / "bundle.json").read_text())
    op = meta["operating_point"]
    assert op["images"] == 12 and op["source"] == "human labels (gt)" and set(op["models"]) == {"fp32", "fp16", "int8"}
    assert not list(bundle.glob(".bundle.json.*"))  # the atomic write left no temporary file
    human, _ = human_boxes(gt, ["red", "blue"])
    for m in ("fp32", "int8"):
        det = load_bundle(bundle, model=m)
        want = meta["postprocessing"]["model_thresholds"][m]
        assert det.thresholds.tolist() == pytest.approx([want["red"], want["blue"]])  # the runtime uses them
        # the recorded numbers are what the runtime's predictions give against the labels
        stems = sorted(human)
        preds = [det.predict(read_image(gt / "images" / f"{s}.png"), conf=0.001) for s in stems]
        again = choose_thresholds([ImagePreds(d.xyxy, d.scores, d.class_ids) for d in preds], [human[s] for s in stems],
                                  ["red", "blue"], {"red": 0.4, "blue": 0.6}, min_boxes=1)
        for n in ("red", "blue"):
            assert {k: again[n][k] for k in ("threshold", "precision", "recall", "f1")} == \
                {k: op["models"][m][n][k] for k in ("threshold", "precision", "recall", "f1")}
    assert meta["postprocessing"]["thresholds"] == meta["postprocessing"]["model_thresholds"]["int8"]
    # --conf still overrides the bundle's thresholds
    low = load_bundle(bundle).predict(read_image(gt / "images" / "img0000.png"), conf=0.001)
    assert len(low) >= len(load_bundle(bundle).predict(read_image(gt / "images" / "img0000.png")))
    # user errors: one line, exit 2
    assert main(["thresholds", str(bundle), "--gt", str(gt), "--target-precision", "0.9", "--target-recall", "0.9"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["thresholds", str(bundle), "--gt", str(gt), "--target-precision", "dog=0.9", "-q"]) == 2
    assert "not classes of the model" in capsys.readouterr().err
    assert main(["thresholds", str(tmp_path / "nobundle"), "--gt", str(gt)]) == 2
