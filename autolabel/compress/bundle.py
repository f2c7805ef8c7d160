"""Export a student to a deployable bundle: its ONNX models, the runtime, and ``bundle.json`` (schema + writer).

Example:
    >>> from autolabel.compress import ExportConfig, export
    >>> res = export("runs/cam1/weights/best.pt", "bundles/cam1", data="datasets/cam1",
    ...              config=ExportConfig(imgsz=640, int8=True, calib_images=200))    # doctest: +SKIP
    >>> res.metrics["int8"]["mAP50-95"], res.metrics["fp32"]["mAP50-95"]              # doctest: +SKIP

:func:`export` (YOLO), :func:`export_classifier` and :func:`export_ssdlite` each write one bundle folder:

* the FP32 ONNX model (:mod:`autolabel.compress.onnx_export`) and, on request, its FP16 and INT8 versions
  (:mod:`autolabel.compress.quantize`: INT8 calibrated on images of the user's own dataset, with the nodes
  that must stay float left in float);
* ``bundle.json``: format, classes, preprocessing, post-processing (per-class thresholds, NMS), the model
  files and, with a dataset, each model's val-split score (:mod:`autolabel.compress.score`: FP32 vs INT8 vs
  FP16 through :mod:`autolabel.runtime`, i.e. exactly what the camera runs) and the operating point chosen
  from it (:mod:`autolabel.compress.operating_point`);
* ``autolabel_runtime.py`` (a copy of :mod:`autolabel.runtime`), ``ontology.yaml``, ``README.md``.

Optional ``openvino`` / ``tflite`` targets of a YOLO student go through Ultralytics' exporter when their
packages are installed; otherwise a one-line :class:`ConfigError` says what to install.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autolabel.compress.quantize import CALIB_METHODS
from autolabel.config import EXTRA_FORMATS, ExportConfig
from autolabel.core.errors import ConfigError, DatasetError

__all__ = ["EXTRA_FORMATS", "ExportConfig", "ExportResult", "export", "export_classifier", "export_ssdlite",
           "is_ssdlite_checkpoint"]


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    bundle: Path
    files: dict[str, Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# the bundle folder: bundle.json's common keys, the files beside it
# ----------------------------------------------------------------------------------------------------------

_BUNDLE_README = """# {name}: an autolabel detection bundle

Classes: {names}
Input: RGB, letterboxed to {imgsz}x{imgsz} (aspect kept, grey 114 padding, centered), scaled to [0, 1], NCHW.
Models: {models}

Run it with only numpy, onnxruntime and pillow (or opencv) installed — no torch:

```bash
pip install numpy onnxruntime pillow
python autolabel_runtime.py . image.jpg            # prints the detections (INT8 model if present)
```

```python
from autolabel_runtime import load_bundle, read_image
det = load_bundle(".")                              # or load_bundle(".", model="fp32")
d = det.predict(read_image("image.jpg"))            # d.xyxy, d.scores, d.class_ids, d.class_scores
print([det.names[c] for c in d.class_ids])
```

Thresholds per class and the NMS IoU are in `bundle.json` (`postprocessing`); the measured accuracy and
speed are in its `metrics`.
"""



def _header(task: str, names: list[str]) -> dict[str, Any]:
    """The keys every ``bundle.json`` starts with: its format and version, the autolabel that wrote it, the
    task and the class names."""
    from autolabel import __version__
    from autolabel.runtime import BUNDLE_FORMAT, BUNDLE_VERSION

    return {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "autolabel": __version__, "task": task,
            "names": names}


def _write_meta(out: Path, meta: dict[str, Any]) -> None:
    from autolabel.runtime import BUNDLE_FILE

    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))


def _record_files(out: Path, meta: dict[str, Any], files: Mapping[str, Path], info: dict[str, Any]) -> None:
    """The bundle's model files, how they were made (``export``) and their sizes, into ``bundle.json``."""
    meta["models"] = {k: v.name for k, v in files.items()}
    meta["export"] = info
    meta["files_bytes"] = {k: v.stat().st_size for k, v in files.items()}
    _write_meta(out, meta)


def _copy_runtime(out: Path) -> None:
    """The runtime beside the models: the camera needs only the bundle folder."""
    shutil.copy2(Path(__file__).resolve().parents[1] / "runtime.py", out / "autolabel_runtime.py")


def _write_ontology(out: Path, onto: dict[str, Any] | None) -> None:
    if onto is not None:
        import yaml

        (out / "ontology.yaml").write_text(yaml.safe_dump(onto, sort_keys=False))


def _fresh_bundle_dir(out: str | Path) -> Path:
    """``out`` emptied (a previous bundle there is replaced; any other non-empty folder is refused) and created."""
    from autolabel.runtime import BUNDLE_FILE

    out = Path(out).expanduser()
    if out.exists():
        if any(out.iterdir()) and not (out / BUNDLE_FILE).is_file():
            raise ConfigError(f"'{out}' exists and is not a bundle; choose an empty or new --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _thresholds(data: Path | None, names: list[str], conf: float) -> tuple[dict[str, float], dict[str, Any] | None]:
    if data is None:
        return {n: conf for n in names}, None
    from autolabel.data.dataset import META_FILE, read_meta

    if not (data / META_FILE).is_file():
        return {n: conf for n in names}, None
    onto = read_meta(data).ontology
    try:
        from autolabel.core.ontology import Ontology

        o = Ontology.from_dict(onto)
        th = dict(zip(o.names, o.thresholds))
    except Exception:  # an odd header: one threshold for all
        return {n: conf for n in names}, None
    return {n: float(th.get(n, conf)) for n in names}, onto




def _score_and_choose(out: Path, meta: dict[str, Any], files: Mapping[str, Path], data: Path | None,
                      config: ExportConfig) -> dict[str, Any]:
    """With an autolabel dataset (and ``config.evaluate``): each detection model's val score and operating
    point, into ``bundle.json``; else the note that the ontology's thresholds ship. Returns the scores."""
    from autolabel.compress.score import score_bundle

    metrics: dict[str, Any] = {}
    if config.evaluate and data is not None and (data / "autolabel.json").is_file():
        preds: dict[str, list[Any]] = {}
        metrics = score_bundle(out, data, list(files), config.max_eval_images, config.progress, predictions=preds)
        meta["metrics"] = metrics
        _operating_point(out, meta, data, preds, config)
    else:
        meta["operating_point"] = {"note": "not chosen (no dataset scored): the ontology's thresholds"}
    _write_meta(out, meta)
    return metrics


def _operating_point(out: Path, meta: dict[str, Any], data: Path, preds: Mapping[str, list[Any]],
                     config: ExportConfig) -> None:
    """Each model's per-class thresholds chosen on the val predictions of the scoring pass (into ``meta``),
    against the human labels ``config.gt`` (val images matched by file name) or the dataset's val labels; the
    curves go to the bundle's :data:`~autolabel.compress.operating_point.CURVES_FILE`."""
    from autolabel.compress import operating_point as op
    from autolabel.compress.score import val_records
    from autolabel.data.dataset import read_meta

    names = list(meta["names"])
    recs = val_records(data, config.max_eval_images)
    if not recs or not preds:
        meta["operating_point"] = {"note": "not chosen (no val images): the ontology's thresholds"}
        return
    idx = list(range(len(recs)))
    if config.gt is not None:
        human, _ = op.human_boxes(Path(config.gt).expanduser(), names)
        idx = [i for i, r in enumerate(recs) if op.record_stem(r) in human]
        if not idx:
            raise DatasetError(f"none of the {len(recs)} val images of '{data}' is in the human labels '{config.gt}' "
                               f"(matched by file name, e.g. {op.record_stem(recs[0])!r})")
        gts = [human[op.record_stem(recs[i])] for i in idx]
        source = f"human labels ({Path(config.gt).name}), val split"
    else:
        gts = op.dataset_boxes(recs, names, list(read_meta(data).names))
        source = "teacher labels, val split"
    points, curves = {}, {}
    for m, p in preds.items():
        fallback = op.default_fallback(meta, m)
        curves[m] = {}
        points[m] = op.choose_thresholds([p[i] for i in idx], gts, names, fallback,
                                         target_precision=config.target_precision,
                                         target_recall=config.target_recall, min_boxes=int(config.min_boxes),
                                         curves=curves[m])
    op.write_record(meta, points, source=source, images=len(idx), min_boxes=int(config.min_boxes),
                    target_precision=config.target_precision, target_recall=config.target_recall)
    (out / op.CURVES_FILE).write_text(json.dumps({"grid": list(op.CURVE_GRID), "source": source, "models": curves}))



# ----------------------------------------------------------------------------------------------------------
# YOLO
# ----------------------------------------------------------------------------------------------------------


def export(model: str | Path, out: str | Path, data: str | Path | None = None,
           config: ExportConfig | None = None) -> ExportResult:
    """Export a YOLO student to a bundle folder: ONNX FP32 (+ FP16, INT8), runtime, metadata, metrics.

    Args:
        model: a YOLO ``.pt`` checkpoint (pruned ones included) or an ``autolabel train`` output folder.
        out: the bundle folder (replaced if it holds a bundle).
        data: the user's dataset (``autolabel label`` output) for INT8 calibration and val-split scoring; a
            plain image folder works for calibration only.
        config: :class:`ExportConfig`.

    Raises:
        WeightsNotFoundError: model missing or unreadable.
        ConfigError: bad settings, INT8 without data, an extra format whose package is missing.
        DatasetError: a dataset without images.
    """
    from autolabel.compress.yolo_model import resolve_checkpoint
    from autolabel.students.base import create_student

    config = config or ExportConfig()
    student = create_student(model)  # which family the checkpoint is: classifiers and SSDLite build their own bundles
    if student.name != "yolo":
        return student.export(out, data=data, config=config)
    pt = resolve_checkpoint(model)
    data_p = Path(data).expanduser() if data is not None else None
    if data_p is not None and not data_p.is_dir():
        raise DatasetError(f"dataset '{data}' not found; expected a folder written by `autolabel label` (or of images)")
    if config.int8 and data_p is None:
        raise ConfigError("INT8 calibration needs your own images: pass --data DATASET (an `autolabel label` folder)")
    for f in config.formats:
        import importlib.util

        if importlib.util.find_spec(EXTRA_FORMATS[f]) is None:
            raise ConfigError(f"export format '{f}' needs the '{EXTRA_FORMATS[f]}' package: pip install {EXTRA_FORMATS[f]}")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"ONNX export needs onnx and onnxruntime ({e.name} is missing): pip install onnx onnxruntime") from None

    final = Path(out).expanduser()
    from autolabel.runtime import BUNDLE_FILE

    if final.exists() and (not final.is_dir() or (any(final.iterdir()) and not (final / BUNDLE_FILE).is_file())):
        raise ConfigError(f"'{final}' exists and is not a bundle; choose an empty or new --out")
    # Built beside the destination and moved into place at the end: a failed export leaves no half bundle.
    out = final.with_name(f".{final.name}.partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        result = _export_into(pt, out, data_p, config, name=final.name)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    result.bundle = final
    result.files = {k: final / v.name for k, v in result.files.items()}
    return result




def _export_into(pt: Path, out: Path, data_p: Path | None, config: ExportConfig, name: str) -> ExportResult:
    """The bundle's files, written into ``out`` (a temporary folder that becomes the bundle ``name``)."""
    from autolabel.compress.calibration import calibration_images
    from autolabel.compress.onnx_export import write_ultralytics_format, write_yolo_onnx
    from autolabel.compress.quantize import export_fp16, quantize_int8
    from autolabel.compress.yolo_model import load_detector

    y = load_detector(pt)
    names = [str(y.names[i]) for i in sorted(y.names)]
    n_params = int(sum(p.numel() for p in y.model.parameters()))
    files: dict[str, Path] = {}
    info: dict[str, Any] = {}
    files["fp32"] = write_yolo_onnx(pt, out / "model.onnx", config.imgsz, config.batch, config.dynamic, config.opset)
    if config.fp16:
        files["fp16"] = export_fp16(files["fp32"], out / "model_fp16.onnx")
    if config.int8:
        imgs = calibration_images(data_p, config.calib_images, config.seed)
        info["int8"] = quantize_int8(files["fp32"], out / "model_int8.onnx", imgs, config.imgsz,
                                     1 if config.dynamic else config.batch, config.calib_method,
                                     config.per_channel, config.progress)
        files["int8"] = out / "model_int8.onnx"
    int8_data = None  # Ultralytics calibrates its own INT8 targets on the dataset's data.yaml
    if config.int8 and data_p is not None and (data_p / "data.yaml").is_file():
        int8_data = data_p / "data.yaml"
    extra_files = {f: write_ultralytics_format(pt, f, out, config.imgsz, int8_data).name for f in config.formats}

    thresholds, onto = _thresholds(data_p, names, config.conf)
    meta: dict[str, Any] = {
        **_header("detect", names),
        "source_model": str(pt.resolve()),
        "parameters": n_params,
        "models": {k: v.name for k, v in files.items()},
        "extra_models": extra_files,
        "output": "yolo: (B, 4 + C, A) cx cy w h in input pixels, then per-class sigmoid scores",
        "preprocessing": {"imgsz": int(config.imgsz), "letterbox": True, "pad_value": 114, "color": "RGB",
                          "layout": "NCHW", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1],
                          "batch": "dynamic" if config.dynamic else int(config.batch)},
        "postprocessing": {"thresholds": thresholds, "conf": float(config.conf), "iou": float(config.iou),
                           "max_det": 300, "nms": "class-aware"},
        "export": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
                   "dataset": str(data_p.resolve()) if data_p else None, **info},
        "files_bytes": {k: v.stat().st_size for k, v in files.items()},
        "metrics": {},
    }
    _write_meta(out, meta)
    _copy_runtime(out)
    _write_ontology(out, onto)
    (out / "README.md").write_text(_BUNDLE_README.format(name=name, names=", ".join(names), imgsz=config.imgsz,
                                                         models=", ".join(f"{k}: {v.name}" for k, v in files.items())))
    metrics = _score_and_choose(out, meta, files, data_p, config)
    return ExportResult(bundle=out, files=files, metrics=metrics, meta=meta)


# ----------------------------------------------------------------------------------------------------------
# classifiers
# ----------------------------------------------------------------------------------------------------------


def export_classifier(model: str | Path, out: str | Path, data: str | Path | None = None, *, int8: bool = False,
                      calib_images: int = 100, calib_method: str = "percentile", opset: int = 17,
                      progress: bool = True) -> ExportResult:
    """Export a :func:`~autolabel.students.classifier.train.train_classifier` checkpoint to a classification bundle.

    FP32 ONNX (``torch.onnx`` with a dynamic batch) and, with ``int8``, a QDQ model calibrated on the
    dataset's train images. With an image-level dataset (``label_classification``) the val split's top-1
    against the teacher's labels is measured through the runtime for each model.
    """
    import random

    from autolabel.compress.calibration import dataset_images
    from autolabel.compress.onnx_export import write_classifier_onnx
    from autolabel.compress.quantize import bundle_feeds, quantize_qdq
    from autolabel.compress.score import score_classifier_bundle
    from autolabel.students.classifier.dataset import CLS_META_FILE, read_cls_records
    from autolabel.students.classifier.model import load_classifier

    if calib_method not in CALIB_METHODS:
        raise ConfigError(f"calib_method must be one of {list(CALIB_METHODS)}, found '{calib_method}'")
    clf = load_classifier(model)
    data_p = Path(data).expanduser() if data is not None else None
    if int8 and data_p is None:
        raise ConfigError("INT8 calibration needs your own images: pass --data DATASET")
    out = _fresh_bundle_dir(out)
    pre = dict(clf.preprocessing)
    size = int(pre["imgsz"])
    files = {"fp32": out / "model.onnx"}
    m = clf.model.float().eval().cpu()
    write_classifier_onnx(m, files["fp32"], size, opset)
    recs: list[dict[str, Any]] = []
    if data_p is not None and (data_p / CLS_META_FILE).is_file():
        recs = list(read_cls_records(data_p))
    meta: dict[str, Any] = {
        **_header("classify", list(clf.names)),
        "source_model": str(Path(model).resolve()), "model_name": clf.model_name,
        "parameters": int(sum(p.numel() for p in m.parameters())), "models": {"fp32": "model.onnx"},
        "output": "(B, C) logits; softmax gives the class probabilities",
        "preprocessing": {"imgsz": size, "letterbox": "square", "pad_value": int(pre.get("pad_value", 114)),
                          "color": "RGB", "layout": "NCHW", "scale": 1 / 255, "mean": list(pre["mean"]),
                          "std": list(pre["std"]), "batch": "dynamic"},
        "postprocessing": {}, "metrics": {},
    }
    _write_meta(out, meta)
    info: dict[str, Any] = {}
    if int8:
        imgs = [data_p / r["image"] for r in recs if r.get("split") == "train"] or dataset_images(data_p, None)
        random.Random(0).shuffle(imgs)
        used = quantize_qdq(files["fp32"], out / "model_int8.onnx", bundle_feeds(out, imgs[: int(calib_images)]),
                            calib_method)
        files["int8"] = out / "model_int8.onnx"
        info["int8"] = {"calibration_images": min(len(imgs), int(calib_images)), "method": used}
    _record_files(out, meta, files, info)
    val = [r for r in recs if r.get("split") == "val"]
    metrics = score_classifier_bundle(out, data_p, val, list(files))
    meta["metrics"] = metrics
    _write_meta(out, meta)
    _copy_runtime(out)
    (out / "README.md").write_text(
        f"# {out.name}: an autolabel classification bundle\n\nClasses: {', '.join(clf.names)}\n\n"
        "```python\nfrom autolabel_runtime import load_bundle, read_image\n"
        "clf = load_bundle('.')\nprobs = clf.classify([read_image('image.jpg')])[0]\n```\n")
    return ExportResult(bundle=out, files=files, metrics=metrics, meta=meta)


# ----------------------------------------------------------------------------------------------------------
# SSDLite
# ----------------------------------------------------------------------------------------------------------


def is_ssdlite_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint (or run folder) written by :func:`autolabel.students.ssdlite.train.train_ssdlite`."""
    from autolabel.students.base import identify_student

    return Path(path).expanduser().exists() and identify_student(path) == "ssdlite"


def export_ssdlite(model: str | Path, out: str | Path, data: str | Path | None = None, *, int8: bool = False,
                   calib_images: int = 100, calib_method: str = "percentile", opset: int = 17,
                   progress: bool = True) -> ExportResult:
    """Export an SSDLite320-MobileNetV3 student to a detection bundle that the same runtime runs.

    The graph outputs the runtime's contract, ``(B, 4 + C, A)`` (``cx cy w h`` in input pixels, then the
    per-class softmax scores without the background column); normalization and the anchor decode are inside
    it, and stay in float in the INT8 model. Inputs are resized (not letterboxed) to the square size, as
    torchvision's SSD transform does; NMS IoU 0.55 as torchvision's SSDLite.
    """
    from autolabel.compress.calibration import calibration_images
    from autolabel.compress.onnx_export import ssdlite_contract, write_ssdlite_onnx
    from autolabel.compress.quantize import bundle_feeds, quantize_qdq, ssdlite_float_nodes
    from autolabel.students.ssdlite.train import load_ssdlite

    if calib_method not in CALIB_METHODS:
        raise ConfigError(f"calib_method must be one of {list(CALIB_METHODS)}, found '{calib_method}'")
    p = Path(model)
    pt = p / "weights" / "best.pt" if p.is_dir() else p
    ssd, names = load_ssdlite(pt)
    data_p = Path(data).expanduser() if data is not None else None
    if int8 and data_p is None:
        raise ConfigError("INT8 calibration needs your own images: pass --data DATASET")
    net, size = ssdlite_contract(ssd)
    out = _fresh_bundle_dir(out)
    files = {"fp32": write_ssdlite_onnx(net, size, out / "model.onnx", opset)}
    thresholds, onto = _thresholds(data_p, names, 0.25)
    meta: dict[str, Any] = {
        **_header("detect", names),
        "source_model": str(pt.resolve()), "model_name": "ssdlite320_mobilenet_v3_large",
        "parameters": int(sum(q.numel() for q in ssd.parameters())), "models": {"fp32": "model.onnx"},
        "output": "ssdlite: (B, 4 + C, A) cx cy w h in input pixels, then per-class softmax scores",
        "preprocessing": {"imgsz": size, "letterbox": False, "color": "RGB", "layout": "NCHW", "scale": 1 / 255,
                          "mean": [0, 0, 0], "std": [1, 1, 1], "batch": 1, "normalization": "inside the model"},
        "postprocessing": {"thresholds": thresholds, "conf": 0.25, "iou": 0.55, "max_det": 300, "nms": "class-aware"},
        "metrics": {},
    }
    _write_meta(out, meta)
    info: dict[str, Any] = {}
    if int8:
        imgs = calibration_images(data_p, calib_images)
        decode = ssdlite_float_nodes(files["fp32"])
        used = quantize_qdq(files["fp32"], out / "model_int8.onnx", bundle_feeds(out, imgs), calib_method, decode)
        files["int8"] = out / "model_int8.onnx"
        info["int8"] = {"calibration_images": len(imgs), "method": used, "float_nodes": len(decode)}
    _record_files(out, meta, files, info)
    _copy_runtime(out)
    _write_ontology(out, onto)
    readme = _BUNDLE_README.format(name=out.name, names=", ".join(names), imgsz=size,
                                   models=", ".join(f"{k}: {v.name}" for k, v in files.items()))
    (out / "README.md").write_text(readme.replace("letterboxed to", "resized to").replace(
        " (aspect kept, grey 114 padding, centered), scaled to [0, 1]", ", scaled to [0, 1]"))
    # the SSDLite student's own operating point, as for YOLO (max F1 on its val predictions per model)
    metrics = _score_and_choose(out, meta, files, data_p, ExportConfig(progress=progress))
    return ExportResult(bundle=out, files=files, metrics=metrics, meta=meta)
