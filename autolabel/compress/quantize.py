"""INT8 and FP16 versions of an exported ONNX model, and which of its nodes stay in float.

* **FP16** converts the graph's weights with onnxruntime's converter (inputs and outputs stay float32).
* **INT8** is onnxruntime's static QDQ quantization (int8 per-channel weights, uint8 activations),
  calibrated on images of the user's own dataset (:mod:`autolabel.compress.calibration`) with
  ``percentile`` (default), ``minmax`` or ``entropy``. Calibration is fed to onnxruntime's calibrator in
  chunks of at most :data:`CALIB_CHUNK_BYTES` of activations, so memory does not grow with the images.
* **Float nodes**: the YOLO Detect head's *decode* (DFL softmax, anchor arithmetic, concatenations, the
  final sigmoid) is kept in float via ``nodes_to_exclude``: quantizing it collapses box coordinates in the
  hundreds of pixels and class scores in [0, 1] onto one shared scale, which has been seen to destroy every
  detection. The head's last box/class convolutions and the stem convolution stay float too
  (:func:`float_nodes`); SSDLite keeps its normalization and anchor decode in float
  (:func:`ssdlite_float_nodes`); everything else is INT8.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.config import CALIB_METHODS
from autolabel.core.errors import DatasetError

__all__ = ["CALIB_CHUNK_BYTES", "CALIB_METHODS", "bundle_feeds", "calibrate_in_chunks", "decode_nodes", "export_fp16", "float_nodes",
           "quantize_int8", "quantize_qdq", "ssdlite_float_nodes"]



# ----------------------------------------------------------------------------------------------------------
# FP16 and the nodes INT8 leaves in float
# ----------------------------------------------------------------------------------------------------------


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



def ssdlite_float_nodes(onnx_path: Path) -> list[str]:
    """Nodes of an SSDLite bundle model (:func:`autolabel.compress.onnx_export.ssdlite_to_onnx`) INT8 leaves in
    float: all but the backbone and the head (the normalization and the anchor decode)."""
    import onnx

    g = onnx.load(str(onnx_path)).graph
    return [n.name for n in g.node if not n.name.startswith(("/core/backbone", "/core/head"))]


# ----------------------------------------------------------------------------------------------------------
# calibration and quantization
# ----------------------------------------------------------------------------------------------------------


def bundle_feeds(bundle: Path, images: Sequence[Path]) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """Calibration feeds for :func:`quantize_qdq`: each image preprocessed by the bundle's own FP32 runtime (its
    ``bundle.json`` written), one image a feed; each call starts a fresh pass."""
    from autolabel.images import read_rgb
    from autolabel.runtime import load_bundle

    det = load_bundle(bundle, model="fp32")
    return lambda: ({"images": det.preprocess([read_rgb(p)])[0]} for p in images)


class _Calibration:
    """onnxruntime ``CalibrationDataReader`` over the user's images, preprocessed like the runtime."""

    def __init__(self, images: list[Path], input_name: str, imgsz: int, batch: int, progress: bool) -> None:
        from autolabel.core.progress import ProgressBar

        self.images, self.input_name, self.imgsz, self.batch = images, input_name, imgsz, batch
        self._it = self._gen()
        self._bar = ProgressBar(total=len(images), desc="calibrating", enabled=progress, unit="img")

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        from autolabel.images import letterboxed_batch

        for i in range(0, len(self.images), self.batch):
            chunk = self.images[i : i + self.batch]
            x = letterboxed_batch(chunk, self.imgsz)
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


def calibrate_in_chunks(model: Path, feeds: Callable[[], Iterator[dict[str, np.ndarray]]], method: Any,
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
        seed, _ = calibrate_in_chunks(model, feeds, CalibrationMethod.MinMax, {}, workdir, chunk_bytes)
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


def quantize_qdq(src: Path, dest: Path, feeds: Callable[[], Iterator[dict[str, np.ndarray]]], method: str,
                  excluded: Sequence[str] = (), per_channel: bool = True,
                  extra: dict[str, Any] | None = None, chunk_bytes: int | None = None) -> str:
    """onnxruntime static QDQ quantization (int8 per-channel weights, uint8 activations) of ``src``.

    ``feeds()`` starts a fresh pass over the calibration inputs. Calibration runs in chunks of at most
    ``chunk_bytes`` (default :data:`CALIB_CHUNK_BYTES`) of activations (:func:`calibrate_in_chunks`); the
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
            ranges, _ = calibrate_in_chunks(Path(src), feeds, methods[name], extra, Path(tmp),
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
        used = quantize_qdq(pre, dest, feeds, method, excluded, per_channel, extra)
    finally:
        reader.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {"calibration_images": len(images), "method": used, "per_channel": per_channel,
            "float_nodes": len(excluded), "seconds": round(time.perf_counter() - t0, 1)}


