"""bundle.json is validated completely before a model is opened: one clear BundleError line per problem.

The bundles here are hand-made: a two-class "detector" built with onnx.helper (one 32x32 convolution to
``(1, 4 + 2, 1)``), so the table runs in well under a second and needs no torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from autolabel.core.errors import AutolabelError  # noqa: E402
from autolabel.runtime import BundleError, load_bundle, validate_meta  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


def _tiny_detector(path: Path, imgsz: int = 32, classes: int = 2) -> Path:
    """A valid ONNX of the runtime's contract: (1, 3, imgsz, imgsz) -> (1, 4 + classes, 1)."""
    from onnx import TensorProto, helper, numpy_helper

    c = 4 + classes
    w = numpy_helper.from_array(np.full((c, 3, imgsz, imgsz), 1e-3, np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, c, 1], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["y"], kernel_shape=[imgsz, imgsz], strides=[imgsz, imgsz]),
         helper.make_node("Reshape", ["y", "shape"], ["output0"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, c, 1])],
        [w, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _meta() -> dict[str, Any]:
    return {
        "format": "autolabel-bundle", "version": 1, "task": "detect", "names": ["a", "b"],
        "models": {"fp32": "model.onnx"},
        "preprocessing": {"imgsz": 32, "letterbox": True, "pad_value": 114, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "postprocessing": {"thresholds": {"a": 0.4, "b": 0.6}, "conf": 0.25, "iou": 0.7, "max_det": 300},
    }


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[[Callable[[dict], Any] | None], Path]:
    """A bundle folder whose bundle.json is a valid one changed by ``edit``; a valid model lies outside it."""
    _tiny_detector(tmp_path / "outside.onnx")

    def make(edit: Callable[[dict], Any] | None = None) -> Path:
        b = tmp_path / "bundle"
        b.mkdir(exist_ok=True)
        _tiny_detector(b / "model.onnx")
        meta = _meta()
        if edit is not None:
            edit(meta)
        if isinstance(meta.get("models"), dict) and meta["models"].get("fp32") == "ABSOLUTE":
            meta["models"]["fp32"] = str(tmp_path / "outside.onnx")  # the valid model outside, by absolute path
        (b / "bundle.json").write_text(json.dumps(meta))
        return b

    return make


def test_a_valid_bundle_loads_and_predicts(make_bundle):
    det = load_bundle(make_bundle())
    assert det.names == ["a", "b"] and det.imgsz == 32 and det.thresholds.tolist() == pytest.approx([0.4, 0.6])
    d = det.predict(np.zeros((20, 40, 3), np.uint8), conf=0.0)
    assert d.class_scores.shape[1] == 2


def _set(section: str | None, key: str, value: Any) -> Callable[[dict], None]:
    def edit(meta: dict) -> None:
        (meta if section is None else meta[section])[key] = value

    return edit


def _drop(section: str | None, key: str) -> Callable[[dict], None]:
    return lambda meta: (meta if section is None else meta[section]).pop(key)


OUTSIDE = "outside the bundle folder"


@pytest.mark.parametrize(
    "edit, match",
    [
        # model files must lie inside the bundle
        (_set("models", "fp32", "../outside.onnx"), OUTSIDE),
        (_set("models", "fp32", "sub/../../outside.onnx"), OUTSIDE),
        (_set("models", "fp32", "..\\outside.onnx"), OUTSIDE),
        (_set("models", "fp32", "ABSOLUTE"), OUTSIDE),
        (_set("models", "fp32", "C:\\models\\model.onnx"), OUTSIDE),
        (_set("models", "int8", "../outside.onnx"), OUTSIDE),  # a model this run would not even open
        (_set(None, "extra_models", {"openvino": "/etc"}), OUTSIDE),
        (_set("models", "fp32", 5), r"models\.fp32 must be a file name inside the bundle folder"),
        (_set("models", "fp32", ""), r"models\.fp32 must be a file name"),
        (_set(None, "models", {}), "models must map a model kind"),
        (_set(None, "models", "model.onnx"), "models must map a model kind"),
        (_set(None, "extra_models", ["x"]), "extra_models must map names to files"),
        # format, version, task
        (_set(None, "format", "other"), "format is 'other', expected 'autolabel-bundle'"),
        (_drop(None, "version"), "version must be a whole number from 1 to 1, found None"),
        (_set(None, "version", "1"), "version must be a whole number from 1 to 1, found '1'"),
        (_set(None, "version", 0), "version must be a whole number"),
        (_set(None, "version", 1.5), "version must be a whole number"),
        (_set(None, "version", True), "version must be a whole number"),
        (_set(None, "version", 7), "bundle version 7 is newer than this runtime"),
        (_set(None, "task", "segment"), r"task must be one of \['detect', 'classify'\], found 'segment'"),
        # class names
        (_drop(None, "names"), "names must be a non-empty list of class names, found nothing"),
        (_set(None, "names", []), "names must be a non-empty list"),
        (_set(None, "names", "a,b"), "names must be a non-empty list"),
        (_set(None, "names", ["a", 3]), "names must be a non-empty list"),
        (_set(None, "names", ["a", "a"]), r"names repeats \['a'\]"),
        (lambda m: (m.update(names=["a"]), m["postprocessing"].update(thresholds={"a": 0.4})),
         "names lists 1 class but model.onnx outputs 2"),
        (_set(None, "names", ["a", "b", "c"]), "names lists 3 classes but model.onnx outputs 2"),
        # preprocessing
        (_drop(None, "preprocessing"), "preprocessing must be an object with imgsz"),
        (_drop("preprocessing", "imgsz"), "preprocessing.imgsz must be a positive whole number, found None"),
        (_set("preprocessing", "imgsz", 0), "preprocessing.imgsz must be a positive whole number, found 0"),
        (_set("preprocessing", "imgsz", -32), "preprocessing.imgsz must be a positive whole number"),
        (_set("preprocessing", "imgsz", "32"), "preprocessing.imgsz must be a positive whole number, found '32'"),
        (_set("preprocessing", "imgsz", 32.0), "preprocessing.imgsz must be a positive whole number"),
        (_set("preprocessing", "imgsz", 64), "preprocessing.imgsz is 64 but model.onnx takes 32x32 images"),
        (_set("preprocessing", "pad_value", 300), r"pad_value must be a whole number in \[0, 255\]"),
        (_set("preprocessing", "letterbox", "yes"), "letterbox must be true, false or 'square'"),
        (_set("preprocessing", "mean", [0, 0]), "mean must be 3 numbers"),
        (_set("preprocessing", "std", [1, 0, 1]), "std must be 3 numbers > 0"),
        # postprocessing
        (_set(None, "postprocessing", [0.25]), "postprocessing must be an object"),
        (_set("postprocessing", "conf", "0.25"), r"postprocessing\.conf must be a number in \[0, 1\], found '0.25'"),
        (_set("postprocessing", "conf", 1.5), r"postprocessing\.conf must be a number in \[0, 1\]"),
        (_set("postprocessing", "conf", float("nan")), r"postprocessing\.conf must be a number"),
        (_set("postprocessing", "iou", 0), r"postprocessing\.iou must be a number in \(0, 1\]"),
        (_set("postprocessing", "iou", None), r"postprocessing\.iou must be a number"),
        (_set("postprocessing", "max_det", 0), "max_det must be a whole number >= 1"),
        (_set("postprocessing", "max_det", "300"), "max_det must be a whole number >= 1"),
        (_set("postprocessing", "thresholds", [0.4, 0.6]), "thresholds must map class names to scores"),
        (_set("postprocessing", "thresholds", {"a": "high"}), r"thresholds\['a'\] must be a number in \[0, 1\]"),
        (_set("postprocessing", "thresholds", {"a": -0.1}), r"thresholds\['a'\] must be a number in \[0, 1\]"),
        (_set("postprocessing", "thresholds", {"zebra": 0.3}), "thresholds names class 'zebra', which is not in names"),
    ],
)
def test_bad_bundle_json_is_one_clear_error(make_bundle, tmp_path, monkeypatch, edit, match):
    opened: list[str] = []
    real = ort.InferenceSession

    def spy(path, *a, **k):
        opened.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    b = make_bundle(edit)
    with pytest.raises(BundleError, match=match) as info:
        load_bundle(b)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, AutolabelError)  # the CLI prints it as one line and exits 2
    assert not any("outside" in p for p in opened), opened  # the file outside the bundle is never opened


def test_a_symlink_out_of_the_bundle_is_refused(make_bundle, tmp_path, monkeypatch):
    b = make_bundle()
    (b / "model.onnx").unlink()
    os.symlink(tmp_path / "outside.onnx", b / "model.onnx")
    opened: list[str] = []
    monkeypatch.setattr(ort, "InferenceSession", lambda p, *a, **k: opened.append(str(p)))
    with pytest.raises(BundleError, match="a link that leads outside the bundle folder"):
        load_bundle(b)
    assert opened == []


def test_validate_meta_takes_what_export_writes(make_bundle):
    b = make_bundle()
    meta = json.loads((b / "bundle.json").read_text())
    assert validate_meta(meta, b) is meta
    with pytest.raises(BundleError, match="expected a JSON object, found list"):
        validate_meta([meta], b)


def test_cli_predict_refuses_an_escaping_bundle_in_one_line(make_bundle, tmp_path, capsys):
    from PIL import Image

    from autolabel.app.cli import main

    b = make_bundle(_set("models", "fp32", "../outside.onnx"))
    Image.new("RGB", (40, 30)).save(tmp_path / "x.jpg")
    assert main(["predict", str(b), str(tmp_path / "x.jpg"), "--out", str(tmp_path / "pred"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and OUTSIDE in err and len(err.splitlines()) == 1, err


def test_the_bundles_own_runtime_copy_refuses_too(make_bundle, tmp_path):
    """The copy export writes into the bundle runs without autolabel; it checks bundle.json the same way."""
    from PIL import Image

    b = make_bundle(_set("models", "fp32", "../outside.onnx"))
    (b / "autolabel_runtime.py").write_text((ROOT / "autolabel" / "runtime.py").read_text())
    Image.new("RGB", (40, 30)).save(tmp_path / "x.jpg")
    block = ("import sys\n"
             "class _Block:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in {'autolabel', 'torch', 'ultralytics'}:\n"
             "            raise ImportError(name)\n"
             "sys.meta_path.insert(0, _Block())\n"
             f"sys.argv = ['autolabel_runtime.py', '.', {str(tmp_path / 'x.jpg')!r}]\n"
             "import runpy; runpy.run_path('autolabel_runtime.py', run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120, cwd=b, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout.startswith("error:") and OUTSIDE in proc.stdout and "Traceback" not in proc.stderr
    # and a good bundle still runs from its own folder
    meta = json.loads((b / "bundle.json").read_text())
    meta["models"]["fp32"] = "model.onnx"
    (b / "bundle.json").write_text(json.dumps(meta))
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120, cwd=b, env=env)
    assert proc.returncode == 0 and "detections" in proc.stdout, proc.stderr[-2000:]


def test_runtime_detections_use_supervision_names_and_keep_the_old_ones():
    from autolabel.runtime import Detections

    d = Detections(np.zeros((2, 4), np.float32), np.array([0.9, 0.4], np.float32), np.array([1, 0]),
                   np.zeros((2, 2), np.float32))
    assert len(d) == 2 and d.confidence is d.scores and d.class_id is d.class_ids
    assert d.class_id.tolist() == [1, 0]
