"""Export a YOLO student to ONNX (FP32 / FP16 / INT8) and write a deployable bundle.

Example:
    >>> from autolabel.compress import ExportConfig, export
    >>> res = export("runs/cam1/weights/best.pt", "bundles/cam1", data="datasets/cam1",
    ...              config=ExportConfig(imgsz=640, int8=True, calib_images=200))    # doctest: +SKIP
    >>> res.metrics["int8"]["mAP50-95"], res.metrics["fp32"]["mAP50-95"]              # doctest: +SKIP

* **FP32** ONNX comes from Ultralytics' own exporter (opset ≥ 17, fixed or dynamic batch, no ``onnxslim``
  so nothing is auto-installed), from a copy of the checkpoint so nothing is written beside it.
* **FP16** converts that graph's weights with onnxruntime's converter (inputs and outputs stay float32).
* **INT8** is onnxruntime's static QDQ quantization (int8 per-channel weights, uint8 activations),
  calibrated on images of the user's own dataset (``calib_images`` of its train split, seeded) with
  ``percentile`` (default), ``minmax`` or ``entropy``. The Detect head's *decode* (DFL softmax, anchor
  arithmetic, concatenations, the final sigmoid) is kept in float via ``nodes_to_exclude``: quantizing it
  collapses box coordinates in the hundreds of pixels and class scores in [0, 1] onto one shared scale,
  which has been seen to destroy every detection. The head's last box/class convolutions and the stem
  convolution stay float too (see :func:`float_nodes`); everything else is INT8.
* With a dataset, every model is scored on its **val split** against the dataset's labels (FP32 vs INT8 vs
  FP16 mAP, through :mod:`autolabel.runtime`, i.e. exactly what the camera runs).
* Optional ``openvino`` / ``tflite`` targets go through Ultralytics' exporter when their packages are
  installed; otherwise a one-line :class:`ConfigError` says what to install.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.data.record import Record

__all__ = ["CALIB_METHODS", "ExportConfig", "ExportResult", "decode_nodes", "export", "export_classifier",
           "float_nodes",
           "export_onnx", "quantize_int8", "score_bundle"]

CALIB_METHODS = ("minmax", "entropy", "percentile")
EXTRA_FORMATS = {"openvino": "openvino", "tflite": "tensorflow"}


@dataclass(frozen=True)
class ExportConfig:
    """Settings of the export stage.

    Attributes:
        imgsz: square input size of the exported model (a multiple of 32).
        dynamic: dynamic batch dimension (``batch`` is then only the calibration batch).
        batch: fixed batch size of the exported model.
        opset: ONNX opset (>= 17).
        fp16: also write ``model_fp16.onnx``.
        int8: also write ``model_int8.onnx`` (needs ``data`` for calibration).
        calib_images: number of the dataset's images to calibrate on.
        calib_method: ``percentile`` (99.99 %, the default: minmax lost 2.5 points of mAP50-95 more on the CCTV
            student), ``minmax`` (fastest) or ``entropy``.
        per_channel: per-channel weight scales (recommended for depthwise/narrow convs).
        formats: extra targets through Ultralytics: ``openvino`` (INT8 when ``int8``), ``tflite``.
        conf: default score threshold written to the bundle (per-class thresholds win).
        target_precision: per class, ship the lowest threshold whose val precision reaches this (one value for
            all classes or ``{name: value}``); default (neither target): the threshold of maximum F1.
        target_recall: per class, ship the highest threshold whose val recall reaches this (value or mapping).
        gt: human labels (YOLO folder / data.yaml or COCO JSON) to choose the thresholds against, matched to the
            val images by file name; default: the dataset's (teacher's) val labels.
        min_boxes: fewest labeled val boxes of a class to choose its threshold from; fewer keep the ontology's.
        iou: NMS IoU of the bundle.
        evaluate: score each model on the dataset's val split (needs ``data``).
        max_eval_images: cap on val images scored (None = all).
        seed: calibration image sampling seed.
        progress: progress bars.
    """

    imgsz: int = 640
    dynamic: bool = False
    batch: int = 1
    opset: int = 17
    fp16: bool = False
    int8: bool = False
    calib_images: int = 100
    calib_method: str = "percentile"
    per_channel: bool = True
    formats: Sequence[str] = ()
    conf: float = 0.25
    target_precision: float | Mapping[str, float] | None = None
    target_recall: float | Mapping[str, float] | None = None
    gt: str | None = None
    min_boxes: int = 10
    iou: float = 0.7
    evaluate: bool = True
    max_eval_images: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if int(self.imgsz) < 32 or int(self.imgsz) % 32:
            raise ConfigError(f"imgsz must be a multiple of 32 (>= 32), found {self.imgsz}")
        if int(self.batch) < 1:
            raise ConfigError(f"batch must be >= 1, found {self.batch}")
        if int(self.opset) < 17:
            raise ConfigError(f"opset must be >= 17, found {self.opset}")
        if self.calib_method not in CALIB_METHODS:
            raise ConfigError(f"calib_method must be one of {list(CALIB_METHODS)}, found '{self.calib_method}'")
        if int(self.calib_images) < 1:
            raise ConfigError(f"calib_images must be >= 1, found {self.calib_images}")
        bad = [f for f in self.formats if f not in EXTRA_FORMATS]
        if bad:
            raise ConfigError(f"unknown export format(s) {bad}; valid extra formats are {sorted(EXTRA_FORMATS)} (onnx is always written)")
        if not 0 < float(self.conf) < 1 or not 0 < float(self.iou) <= 1:
            raise ConfigError(f"conf must be in (0, 1) and iou in (0, 1], found {self.conf}, {self.iou}")
        from autolabel.compress.operating_point import check_targets

        check_targets(self.target_precision, self.target_recall)
        if int(self.min_boxes) < 1:
            raise ConfigError(f"min_boxes must be >= 1, found {self.min_boxes}")
        if self.gt is not None and not Path(self.gt).expanduser().exists():
            raise ConfigError(f"gt '{self.gt}' not found; expected human labels: a YOLO dataset folder / data.yaml "
                              "or a COCO JSON")


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    bundle: Path
    files: dict[str, Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------------------


def _resolve_model(model: str | Path) -> Path:
    p = Path(model).expanduser()
    if p.is_dir():  # an `autolabel train` / `autolabel prune` output folder
        for cand in (p / "weights" / "best.pt", p / "weights" / "last.pt", p / "pruned.pt"):
            if cand.is_file():
                return cand
        raise WeightsNotFoundError(f"'{p}' holds no weights/best.pt, weights/last.pt or pruned.pt; pass a .pt file")
    if not p.is_file():
        raise WeightsNotFoundError(f"model '{model}' not found; pass a YOLO checkpoint (.pt) or a training output folder")
    if p.suffix != ".pt":
        raise ConfigError(f"model '{model}': expected an Ultralytics .pt checkpoint, found a '{p.suffix}' file")
    return p


def _load_yolo(path: Path) -> Any:
    from autolabel.core.checkpoints import load_yolo

    y = load_yolo(path, what="model")
    if y.task != "detect":
        raise ConfigError(f"'{path}' is a {y.task} model; export handles detection models")
    return y


def export_onnx(pt: Path, dest: Path, imgsz: int, batch: int = 1, dynamic: bool = False, opset: int = 17) -> Path:
    """FP32 ONNX of a YOLO checkpoint through Ultralytics' exporter, written to ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.pt"
        shutil.copy2(pt, local)  # Ultralytics writes the .onnx beside the .pt
        y = _load_yolo(local)
        import logging

        from ultralytics.utils import LOGGER

        level = LOGGER.level
        LOGGER.setLevel(logging.WARNING)  # Ultralytics' exporter prints a banner even with verbose=False
        try:
            f = y.export(format="onnx", imgsz=int(imgsz), batch=int(batch), dynamic=bool(dynamic), opset=int(opset),
                         simplify=False, device="cpu", verbose=False)
        finally:
            LOGGER.setLevel(level)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), dest)
    return dest


def export_fp16(src: Path, dest: Path) -> Path:
    """FP16 weights, float32 inputs/outputs (onnxruntime's converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(m, str(dest))
    return dest


def decode_nodes(onnx_path: Path) -> list[str]:
    """Names of the Detect head's decode nodes (all of its nodes but the branch convolutions ``cv2``/``cv3``)."""
    import re

    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    idx = [int(m.group(1)) for n in g.node if (m := re.match(r"/model\.(\d+)/", n.name))]
    if not idx:
        return []
    head = f"/model.{max(idx)}/"
    keep = ("/cv2.", "/cv3.", "/cv4.")
    return [n.name for n in g.node if n.name.startswith(head) and not any(k in n.name for k in keep)]


def float_nodes(onnx_path: Path) -> list[str]:
    """Nodes INT8 quantization leaves in float: the head's decode, its last (box / class) convolutions and
    the stem convolution. Measured on the CCTV student (percentile calibration): INT8 0.3464 mAP50-95 with
    only the decode in float, 0.3485 with these too, FP32 0.3512."""
    import re

    import onnx

    g = onnx.load(str(onnx_path), load_external_data=False).graph
    idx = [int(m.group(1)) for n in g.node if (m := re.match(r"/model\.(\d+)/", n.name))]
    if not idx:
        return []
    last = max(idx)
    head_out = [n.name for n in g.node if n.op_type == "Conv" and
                re.match(rf"/model\.{last}/cv[234]\.\d+/cv[234]\.\d+\.2/Conv", n.name)]
    stem = [n.name for n in g.node if n.name.startswith("/model.0/")]
    return decode_nodes(onnx_path) + head_out + stem


# ----------------------------------------------------------------------------------------------------------
# calibration and quantization
# ----------------------------------------------------------------------------------------------------------


def _dataset_images(data: Path, split: str | None) -> list[Path]:
    """Images of an autolabel dataset split, or every image under a plain folder."""
    from autolabel.data.dataset import META_FILE, read_records

    if (data / META_FILE).is_file():
        return [data / r.image for r in read_records(data) if split is None or r.split == split]
    from autolabel.sources import discover

    return [Path(m.path) for m in discover([data]) if m.kind == "image"]


def _read_rgb(path: Path) -> np.ndarray:
    from autolabel.sources import load_image

    return load_image(path)[0]


class _Calibration:
    """onnxruntime ``CalibrationDataReader`` over the user's images, preprocessed like the runtime."""

    def __init__(self, images: list[Path], input_name: str, imgsz: int, batch: int, progress: bool) -> None:
        from autolabel.core.progress import ProgressBar

        self.images, self.input_name, self.imgsz, self.batch = images, input_name, imgsz, batch
        self._it = self._gen()
        self._bar = ProgressBar(total=len(images), desc="calibrating", enabled=progress, unit="img")

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        from autolabel.runtime import letterbox

        for i in range(0, len(self.images), self.batch):
            chunk = self.images[i : i + self.batch]
            x = np.stack([letterbox(_read_rgb(p), self.imgsz)[0] for p in chunk]).transpose(0, 3, 1, 2)
            x = x.astype(np.float32) / 255.0
            if len(x) < self.batch:  # a fixed-batch model needs full batches
                x = np.concatenate([x, np.repeat(x[-1:], self.batch - len(x), 0)])
            self._bar.update(len(chunk))
            yield {self.input_name: np.ascontiguousarray(x)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._gen()

    def close(self) -> None:
        self._bar.close()


#: Bytes of activations the INT8 calibrator may hold at once. onnxruntime's histogram calibrators
#: (percentile, entropy) keep every activation of every image they are fed until the feed ends, ~240 MB
#: per 640 px image for YOLOv8n: 200 images took the 24 GB machine down. Fed in chunks of this size,
#: they merge each chunk into their histograms and drop it, so memory no longer grows with the images.
CALIB_CHUNK_BYTES = 1 << 30

# quantize_static's extra_options that configure the calibrator, and the calibrator's names for them
_CALIB_OPTION_KEYS = {"CalibTensorRangeSymmetric": "symmetric", "CalibMovingAverage": "moving_average",
                      "CalibMovingAverageConstant": "averaging_constant", "CalibPercentile": "percentile"}


def _calibrate_in_chunks(model: Path, feeds: Callable[[], Iterator[dict[str, np.ndarray]]], method: Any,
                         extra: dict[str, Any], workdir: Path, chunk_bytes: int) -> tuple[Any, int]:
    """Tensor ranges of ``model`` over every feed, holding at most ``chunk_bytes`` of activations at a time.

    onnxruntime's own calibrator does the work (same tensors, same histogram merging as ``quantize_static``);
    only the feed is cut into chunks, each a separate ``collect_data`` call. The chunk size comes from the
    activations of the first feed. Returns (``TensorsData``, feeds per chunk).
    """
    import contextlib
    import io

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import HistogramCollector, create_calibrator
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    class _Chunk(CalibrationDataReader):
        def __init__(self, items: list[dict[str, np.ndarray]]) -> None:
            self._items = iter(items)

        def get_next(self):  # noqa: D102
            return next(self._items, None)

    op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))  # what quantize_static calibrates
    options = {_CALIB_OPTION_KEYS[k]: v for k, v in extra.items() if k in _CALIB_OPTION_KEYS}
    seed = None
    if method == CalibrationMethod.Entropy:
        # The entropy calibrator sizes its histogram from the first data it sees and re-bins as later data
        # widens it, so its ranges would depend on the chunking (up to 60 % apart on a test net). A first,
        # cheap minmax pass gives each tensor's range over all images; the histograms start at that range,
        # every chunk then lands in the same bins as one pass would use, and the sum is one pass's histogram.
        seed, _ = _calibrate_in_chunks(model, feeds, CalibrationMethod.MinMax, {}, workdir, chunk_bytes)
    calibrator = create_calibrator(model, op_types, augmented_model_path=str(workdir / "augmented.onnx"),
                                   calibrate_method=method, extra_options=options)
    if seed is not None:
        calibrator.collector = HistogramCollector(method="entropy", symmetric=calibrator.symmetric,
                                                  num_bins=calibrator.num_bins,
                                                  num_quantized_bins=calibrator.num_quantized_bins,
                                                  percentile=calibrator.percentile, scenario=calibrator.scenario)
        for name in calibrator.tensors_to_calibrate:
            if name not in seed:
                continue
            lo, hi = (np.asarray(v, np.float32).reshape(-1)[0] for v in seed[name].range_value)
            t = np.array(max(abs(lo), abs(hi)), np.float32)
            edges = np.histogram(np.zeros(0, np.float32), calibrator.num_bins, range=(-t, t))[1]
            calibrator.collector.histogram_dict[name] = (np.zeros(calibrator.num_bins, np.int64), edges, lo, hi, t)
    quiet = contextlib.redirect_stdout(io.StringIO())  # onnxruntime's collector prints on every chunk
    try:
        it = feeds()
        first = next(it, None)
        if first is None:
            raise ValueError("No data is collected.")
        held = sum(np.asarray(o).nbytes for o in calibrator.infer_session.run(None, first))
        per_chunk = max(1, int(chunk_bytes) // max(held, 1))
        chunk = [first]
        for feed in it:
            if len(chunk) >= per_chunk:
                with quiet:
                    calibrator.collect_data(_Chunk(chunk))
                chunk = []
            chunk.append(feed)
        with quiet:
            calibrator.collect_data(_Chunk(chunk))
            return calibrator.compute_data(), per_chunk
    finally:
        del calibrator


def _quantize_qdq(src: Path, dest: Path, feeds: Callable[[], Iterator[dict[str, np.ndarray]]], method: str,
                  excluded: Sequence[str] = (), per_channel: bool = True,
                  extra: dict[str, Any] | None = None, chunk_bytes: int | None = None) -> str:
    """onnxruntime static QDQ quantization (int8 per-channel weights, uint8 activations) of ``src``.

    ``feeds()`` starts a fresh pass over the calibration inputs. Calibration runs in chunks of at most
    ``chunk_bytes`` (default :data:`CALIB_CHUNK_BYTES`) of activations (:func:`_calibrate_in_chunks`); the
    ranges go to ``quantize_static`` through its calibration cache, so the quantization itself is
    onnxruntime's, unchanged. Returns the calibration method used: onnxruntime's histogram methods
    (percentile, entropy) fail on a tensor whose values span fewer float32 steps than their 2048 bins (a
    near-constant activation); that model is then calibrated with minmax, with a warning.
    """
    import inspect

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.calibrate import save_tensors_data

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    extra = dict(extra or {})
    chunked = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    if not chunked:  # onnxruntime too old to take computed ranges: one pass, memory grows with the images
        warnings.warn("this onnxruntime cannot take precomputed calibration ranges; INT8 calibration holds every "
                      "image's activations in memory (upgrade onnxruntime to bound it)", stacklevel=3)

    class _Reader(CalibrationDataReader):  # onnxruntime checks the type
        def __init__(self) -> None:
            self._it = feeds()

        def get_next(self):  # noqa: D102
            return next(self._it, None)

        def rewind(self):  # noqa: D102
            self._it = feeds()

    def run(name: str) -> None:
        kw = dict(quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QUInt8,
                  weight_type=QuantType.QInt8, calibrate_method=methods[name], nodes_to_exclude=list(excluded),
                  extra_options=extra)
        if not chunked:
            quantize_static(str(src), str(dest), _Reader(), **kw)
            return
        with tempfile.TemporaryDirectory(prefix="autolabel-calib-") as tmp:
            ranges, _ = _calibrate_in_chunks(Path(src), feeds, methods[name], extra, Path(tmp),
                                             CALIB_CHUNK_BYTES if chunk_bytes is None else chunk_bytes)
            cache = Path(tmp) / "ranges.json"
            save_tensors_data(ranges, cache)
            del ranges
            quantize_static(str(src), str(dest), None, calibration_cache_path=str(cache), **kw)

    try:
        run(method)
    except ValueError as e:
        if method == "minmax" or "bins" not in str(e):
            raise
        warnings.warn(f"{method} calibration failed on a near-constant activation ({e}); calibrated with minmax",
                      stacklevel=2)
        run("minmax")
        return "minmax"
    return method


def quantize_int8(src: Path, dest: Path, images: list[Path], imgsz: int, batch: int = 1, method: str = "minmax",
                  per_channel: bool = True, progress: bool = True) -> dict[str, Any]:
    """Static QDQ INT8 quantization of ``src`` calibrated on ``images``; :func:`float_nodes` stay float."""
    import onnx

    if not images:
        raise DatasetError("no images to calibrate INT8 on; pass a dataset (or image folder) with --data")
    excluded = float_nodes(src)
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    reader = _Calibration(images, input_name, imgsz, batch, progress)

    def feeds() -> Iterator[dict[str, np.ndarray]]:
        reader.rewind()
        return iter(reader.get_next, None)

    pre = src
    tmpdir = tempfile.mkdtemp()
    try:
        try:  # symbolic shape inference + graph optimization, as onnxruntime recommends before quantizing
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmpdir) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
            excluded_pre = set(excluded)
            names = {n.name for n in onnx.load(str(pre), load_external_data=False).graph.node}
            excluded = sorted(excluded_pre & names) or excluded
        except Exception:  # pre-processing is an optimization; quantize the exported graph as it is
            pre = src
        extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
        if method == "percentile":
            extra["CalibPercentile"] = 99.99
        t0 = time.perf_counter()
        used = _quantize_qdq(pre, dest, feeds, method, excluded, per_channel, extra)
    finally:
        reader.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {"calibration_images": len(images), "method": used, "per_channel": per_channel,
            "float_nodes": len(excluded), "seconds": round(time.perf_counter() - t0, 1)}


# ----------------------------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------------------------


def _coco(images: list[dict], names: list[str], anns: list[dict]) -> dict[str, Any]:
    return {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": "object"} for i, n in enumerate(names)]}


def _val_records(data: Path, max_images: int | None) -> list[Record]:
    """The dataset's val-split records (every record when it has no val split), capped at ``max_images``."""
    from autolabel.data.dataset import read_records

    recs = [r for r in read_records(data) if r.split == "val"] or [r for r in read_records(data)]
    return recs[:max_images] if max_images else recs


def score_bundle(bundle: Path, data: Path, models: Sequence[str], max_images: int | None = None,
                 progress: bool = True, predictions: dict[str, list[Any]] | None = None) -> dict[str, dict[str, Any]]:
    """mAP of each bundle model on the dataset's val split, against the dataset's labels (via the runtime).

    ``predictions``: when given, filled with each model's predictions (conf 0.001) on the val images of
    :func:`_val_records`, one :class:`~autolabel.compress.operating_point.ImagePreds` per image, so the
    operating point is chosen from this same pass instead of a second one.
    """
    from autolabel.compress.operating_point import ImagePreds
    from autolabel.core.progress import progress as prog
    from autolabel.metrics import evaluate
    from autolabel.runtime import load_bundle

    recs = _val_records(data, max_images)
    if not recs:
        return {}
    names = load_bundle(bundle, model="fp32").names
    imgs = [{"id": i, "file_name": Path(r.image).name, "width": r.width, "height": r.height}
            for i, r in enumerate(recs)]
    gt_anns = []
    for i, r in enumerate(recs):
        for (x1, y1, x2, y2), c in zip(r.boxes.xyxy, r.boxes.class_id):
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": i, "category_id": int(c), "iscrowd": 0,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    work = Path(tempfile.mkdtemp())
    try:
        gt_path = work / "gt.json"
        gt_path.write_text(json.dumps(_coco(imgs, names, gt_anns)))
        out: dict[str, dict[str, Any]] = {}
        rgb = {}
        for m in models:
            det = load_bundle(bundle, model=m)
            anns = []
            t_total = 0.0
            for i, r in prog(list(enumerate(recs)), desc=f"scoring {m}", enabled=progress):
                im = rgb.get(i)
                if im is None:
                    im = _read_rgb(data / r.image)
                    if len(recs) <= 400:  # decoded once for every model of a small val split
                        rgb[i] = im
                t0 = time.perf_counter()
                d = det.predict(im, conf=0.001)
                t_total += time.perf_counter() - t0
                if predictions is not None:
                    predictions.setdefault(m, []).append(ImagePreds(d.xyxy, d.scores, d.class_ids))
                for b, s, c in zip(d.xyxy.tolist(), d.scores.tolist(), d.class_ids.tolist()):
                    anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "score": float(s),
                                 "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])})
            pred_path = work / f"pred_{m}.json"
            pred_path.write_text(json.dumps(_coco(imgs, names, anns)))
            if not gt_anns:
                out[m] = {"images": len(recs), "mAP50-95": None, "mAP50": None, "note": "no labeled boxes in val"}
                continue
            r = evaluate(pred_path, gt_path)
            out[m] = {"images": len(recs), "against": "the dataset's labels (val split)",
                      "mAP50-95": round(float(r.map50_95), 5), "mAP50": round(float(r.map50), 5),
                      "ms_per_image": round(1000 * t_total / len(recs), 1)}
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# the stage
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
    config = config or ExportConfig()
    pt = _resolve_model(model)
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
    y = _load_yolo(pt)
    names = [str(y.names[i]) for i in sorted(y.names)]
    n_params = int(sum(p.numel() for p in y.model.parameters()))
    files: dict[str, Path] = {}
    info: dict[str, Any] = {}
    files["fp32"] = export_onnx(pt, out / "model.onnx", config.imgsz, config.batch, config.dynamic, config.opset)
    if config.fp16:
        files["fp16"] = export_fp16(files["fp32"], out / "model_fp16.onnx")
    if config.int8:
        imgs = _dataset_images(data_p, "train") or _dataset_images(data_p, None)
        random.Random(config.seed).shuffle(imgs)
        imgs = imgs[: int(config.calib_images)]
        info["int8"] = quantize_int8(files["fp32"], out / "model_int8.onnx", imgs, config.imgsz,
                                     1 if config.dynamic else config.batch, config.calib_method,
                                     config.per_channel, config.progress)
        files["int8"] = out / "model_int8.onnx"
    extra_files = {}
    for f in config.formats:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "model.pt"
            shutil.copy2(pt, local)
            kw: dict[str, Any] = {"int8": bool(config.int8), "data": None}
            if config.int8 and data_p is not None and (data_p / "data.yaml").is_file():
                kw["data"] = str(data_p / "data.yaml")
            else:
                kw["int8"] = False
            got = Path(_load_yolo(local).export(format=f, imgsz=config.imgsz, device="cpu", verbose=False,
                                                **{k: v for k, v in kw.items() if v is not None}))
            dest = out / f"model_{f}{'_int8' if kw['int8'] else ''}{'' if got.is_dir() else got.suffix}"
            shutil.move(str(got), dest)
            extra_files[f] = dest.name

    thresholds, onto = _thresholds(data_p, names, config.conf)
    from autolabel import __version__
    from autolabel.runtime import BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_VERSION

    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "autolabel": __version__,
        "task": "detect",
        "names": names,
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
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    shutil.copy2(Path(__file__).resolve().parents[1] / "runtime.py", out / "autolabel_runtime.py")
    if onto is not None:
        import yaml

        (out / "ontology.yaml").write_text(yaml.safe_dump(onto, sort_keys=False))
    (out / "README.md").write_text(_BUNDLE_README.format(name=name, names=", ".join(names), imgsz=config.imgsz,
                                                         models=", ".join(f"{k}: {v.name}" for k, v in files.items())))
    metrics: dict[str, Any] = {}
    if config.evaluate and data_p is not None and (data_p / "autolabel.json").is_file():
        preds: dict[str, list[Any]] = {}
        metrics = score_bundle(out, data_p, list(files), config.max_eval_images, config.progress, predictions=preds)
        meta["metrics"] = metrics
        _operating_point(out, meta, data_p, preds, config)
        (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    else:
        meta["operating_point"] = {"note": "not chosen (no dataset scored): the ontology's thresholds"}
        (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    return ExportResult(bundle=out, files=files, metrics=metrics, meta=meta)


def _operating_point(out: Path, meta: dict[str, Any], data: Path, preds: Mapping[str, list[Any]],
                     config: ExportConfig) -> None:
    """Each model's per-class thresholds chosen on the val predictions of the scoring pass (into ``meta``),
    against the human labels ``config.gt`` (val images matched by file name) or the dataset's val labels; the
    curves go to the bundle's :data:`~autolabel.compress.operating_point.CURVES_FILE`."""
    from autolabel.compress import operating_point as op
    from autolabel.data.dataset import read_meta

    names = list(meta["names"])
    recs = _val_records(data, config.max_eval_images)
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
    import torch

    from autolabel import __version__
    from autolabel.runtime import BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_VERSION, load_bundle
    from autolabel.students.classifier.train import CLS_META_FILE, _iter_jsonl, load_classifier

    if calib_method not in CALIB_METHODS:
        raise ConfigError(f"calib_method must be one of {list(CALIB_METHODS)}, found '{calib_method}'")
    clf = load_classifier(model)
    data_p = Path(data).expanduser() if data is not None else None
    if int8 and data_p is None:
        raise ConfigError("INT8 calibration needs your own images: pass --data DATASET")
    out = Path(out).expanduser()
    if out.exists():
        if any(out.iterdir()) and not (out / BUNDLE_FILE).is_file():
            raise ConfigError(f"'{out}' exists and is not a bundle; choose an empty or new --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pre = dict(clf.preprocessing)
    size = int(pre["imgsz"])
    files = {"fp32": out / "model.onnx"}
    m = clf.model.float().eval().cpu()
    torch.onnx.export(m, (torch.zeros(1, 3, size, size),), str(files["fp32"]), input_names=["images"],
                      output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=int(opset), dynamo=False)
    recs: list[dict[str, Any]] = []
    if data_p is not None and (data_p / CLS_META_FILE).is_file():
        recs = list(_iter_jsonl(data_p / "autolabel_cls.jsonl"))
    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "autolabel": __version__, "task": "classify",
        "names": list(clf.names), "source_model": str(Path(model).resolve()), "model_name": clf.model_name,
        "parameters": int(sum(p.numel() for p in m.parameters())), "models": {"fp32": "model.onnx"},
        "output": "(B, C) logits; softmax gives the class probabilities",
        "preprocessing": {"imgsz": size, "letterbox": "square", "pad_value": int(pre.get("pad_value", 114)),
                          "color": "RGB", "layout": "NCHW", "scale": 1 / 255, "mean": list(pre["mean"]),
                          "std": list(pre["std"]), "batch": "dynamic"},
        "postprocessing": {}, "metrics": {},
    }
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    info: dict[str, Any] = {}
    if int8:
        imgs = [data_p / r["image"] for r in recs if r.get("split") == "train"] or _dataset_images(data_p, None)
        random.Random(0).shuffle(imgs)
        det = load_bundle(out, model="fp32")
        used = _quantize_qdq(files["fp32"], out / "model_int8.onnx",
                             lambda: ({"images": det.preprocess([_read_rgb(p)])[0]} for p in imgs[: int(calib_images)]),
                             calib_method)
        files["int8"] = out / "model_int8.onnx"
        info["int8"] = {"calibration_images": min(len(imgs), int(calib_images)), "method": used}
    meta["models"] = {k: v.name for k, v in files.items()}
    meta["export"] = info
    meta["files_bytes"] = {k: v.stat().st_size for k, v in files.items()}
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    val = [r for r in recs if r.get("split") == "val"]
    metrics: dict[str, Any] = {}
    for k in files:
        if not val:
            break
        det = load_bundle(out, model=k)
        t0, correct = time.perf_counter(), 0
        for r in val:
            correct += int(det.classify([_read_rgb(data_p / r["image"])])[0].argmax() == int(r["class_id"]))
        metrics[k] = {"images": len(val), "against": "teacher labels (val)", "top1": round(correct / len(val), 5),
                      "ms_per_image": round(1000 * (time.perf_counter() - t0) / len(val), 1)}
    meta["metrics"] = metrics
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    shutil.copy2(Path(__file__).resolve().parents[1] / "runtime.py", out / "autolabel_runtime.py")
    (out / "README.md").write_text(
        f"# {out.name}: an autolabel classification bundle\n\nClasses: {', '.join(clf.names)}\n\n"
        "```python\nfrom autolabel_runtime import load_bundle, read_image\n"
        "clf = load_bundle('.')\nprobs = clf.classify([read_image('image.jpg')])[0]\n```\n")
    return ExportResult(bundle=out, files=files, metrics=metrics, meta=meta)


# ----------------------------------------------------------------------------------------------------------
# SSDLite
# ----------------------------------------------------------------------------------------------------------


def is_ssdlite_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint written by :func:`autolabel.students.ssdlite.train.train_ssdlite`."""
    p = Path(path)
    if p.is_dir():
        p = p / "weights" / "best.pt"
    if not p.is_file() or p.suffix != ".pt":
        return False
    try:
        import torch

        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # an Ultralytics checkpoint (pickled modules) does not load with weights_only
        return False
    return isinstance(ckpt, dict) and ckpt.get("format") == "autolabel-ssdlite"


def export_ssdlite(model: str | Path, out: str | Path, data: str | Path | None = None, *, int8: bool = False,
                   calib_images: int = 100, calib_method: str = "percentile", opset: int = 17,
                   progress: bool = True) -> ExportResult:
    """Export an SSDLite320-MobileNetV3 student to a detection bundle that the same runtime runs.

    The graph outputs the runtime's contract, ``(B, 4 + C, A)`` (``cx cy w h`` in input pixels, then the
    per-class softmax scores without the background column); normalization and the anchor decode are inside
    it, and stay in float in the INT8 model. Inputs are resized (not letterboxed) to the square size, as
    torchvision's SSD transform does; NMS IoU 0.55 as torchvision's SSDLite.
    """
    import torch
    from torch import nn

    from autolabel import __version__
    from autolabel.runtime import BUNDLE_FILE, BUNDLE_FORMAT, BUNDLE_VERSION
    from autolabel.students.ssdlite.train import SSDLiteExport, load_ssdlite

    if calib_method not in CALIB_METHODS:
        raise ConfigError(f"calib_method must be one of {list(CALIB_METHODS)}, found '{calib_method}'")
    p = Path(model)
    pt = p / "weights" / "best.pt" if p.is_dir() else p
    ssd, names = load_ssdlite(pt)
    data_p = Path(data).expanduser() if data is not None else None
    if int8 and data_p is None:
        raise ConfigError("INT8 calibration needs your own images: pass --data DATASET")

    class _Contract(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.core = SSDLiteExport(ssd)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            boxes, scores = self.core(x)
            wh = boxes[..., 2:] - boxes[..., :2]
            return torch.cat([boxes[..., :2] + wh / 2, wh, scores[..., 1:]], -1).permute(0, 2, 1)

    net = _Contract().eval()
    size = int(net.core.size[0])
    out = Path(out).expanduser()
    if out.exists():
        if any(out.iterdir()) and not (out / BUNDLE_FILE).is_file():
            raise ConfigError(f"'{out}' exists and is not a bundle; choose an empty or new --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = {"fp32": out / "model.onnx"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, size, size),), str(files["fp32"]), input_names=["images"],
                          output_names=["output0"], opset_version=int(opset), dynamo=False)
    thresholds, onto = _thresholds(data_p, names, 0.25)
    meta: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "autolabel": __version__, "task": "detect",
        "names": names, "source_model": str(pt.resolve()), "model_name": "ssdlite320_mobilenet_v3_large",
        "parameters": int(sum(q.numel() for q in ssd.parameters())), "models": {"fp32": "model.onnx"},
        "output": "ssdlite: (B, 4 + C, A) cx cy w h in input pixels, then per-class softmax scores",
        "preprocessing": {"imgsz": size, "letterbox": False, "color": "RGB", "layout": "NCHW", "scale": 1 / 255,
                          "mean": [0, 0, 0], "std": [1, 1, 1], "batch": 1, "normalization": "inside the model"},
        "postprocessing": {"thresholds": thresholds, "conf": 0.25, "iou": 0.55, "max_det": 300, "nms": "class-aware"},
        "metrics": {},
    }
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    info: dict[str, Any] = {}
    if int8:
        import onnx

        from autolabel.runtime import load_bundle

        imgs = _dataset_images(data_p, "train") or _dataset_images(data_p, None)
        random.Random(0).shuffle(imgs)
        imgs = imgs[: int(calib_images)]
        det = load_bundle(out, model="fp32")
        g = onnx.load(str(files["fp32"])).graph
        decode = [n.name for n in g.node if not n.name.startswith(("/core/backbone", "/core/head"))]
        used = _quantize_qdq(files["fp32"], out / "model_int8.onnx",
                             lambda: ({"images": det.preprocess([_read_rgb(q)])[0]} for q in imgs), calib_method, decode)
        files["int8"] = out / "model_int8.onnx"
        info["int8"] = {"calibration_images": len(imgs), "method": used, "float_nodes": len(decode)}
    meta["models"] = {k: v.name for k, v in files.items()}
    meta["export"] = info
    meta["files_bytes"] = {k: v.stat().st_size for k, v in files.items()}
    (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    shutil.copy2(Path(__file__).resolve().parents[1] / "runtime.py", out / "autolabel_runtime.py")
    if onto is not None:
        import yaml

        (out / "ontology.yaml").write_text(yaml.safe_dump(onto, sort_keys=False))
    readme = _BUNDLE_README.format(name=out.name, names=", ".join(names), imgsz=size,
                                   models=", ".join(f"{k}: {v.name}" for k, v in files.items()))
    (out / "README.md").write_text(readme.replace("letterboxed to", "resized to").replace(
        " (aspect kept, grey 114 padding, centered), scaled to [0, 1]", ", scaled to [0, 1]"))
    metrics: dict[str, Any] = {}
    if data_p is not None and (data_p / "autolabel.json").is_file():
        preds: dict[str, list[Any]] = {}
        metrics = score_bundle(out, data_p, list(files), None, progress, predictions=preds)
        meta["metrics"] = metrics
        # the SSDLite student's own operating point, as for YOLO (max F1 on its val predictions per model)
        _operating_point(out, meta, data_p, preds, ExportConfig(progress=progress))
        (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    else:
        meta["operating_point"] = {"note": "not chosen (no dataset scored): the ontology's thresholds"}
        (out / BUNDLE_FILE).write_text(json.dumps(meta, indent=2))
    return ExportResult(bundle=out, files=files, metrics=metrics, meta=meta)
