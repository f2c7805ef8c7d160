"""The edge runtime: run an exported autolabel bundle with numpy + onnxruntime only (no torch, no ultralytics).

A *bundle* is a folder written by ``autolabel export``::

    bundle/
      bundle.json          # format, class names, input size, preprocessing, thresholds, model files, metrics
      model.onnx           # FP32 (always)
      model_int8.onnx      # INT8 QDQ (with --int8), model_fp16.onnx (with --fp16)
      autolabel_runtime.py # a copy of this file: the camera needs only the bundle folder
      ontology.yaml        # the classes and prompts the teacher labeled with
      README.md

Example:
    >>> from autolabel.runtime import load_bundle                                  # doctest: +SKIP
    >>> det = load_bundle("bundle/")             # picks model_int8.onnx when present   # doctest: +SKIP
    >>> out = det.predict(rgb)                   # HxWx3 uint8 RGB                       # doctest: +SKIP
    >>> out.xyxy, out.confidence, out.class_id, [det.names[i] for i in out.class_id]   # doctest: +SKIP

Model output contract (YOLOv8 / YOLO11 detection heads as Ultralytics exports them, and SSDLite as
autolabel exports it): one tensor ``(B, 4 + C, A)``: per anchor ``cx, cy, w, h`` in input-tensor pixels,
then ``C`` per-class scores.
Preprocessing: RGB, letterbox to ``imgsz × imgsz`` (aspect kept, grey 114 padding, centered), ``/ 255``,
NCHW float32. Post-processing: per-class thresholds (the loaded model's own operating point,
``postprocessing.model_thresholds[model]``, when export chose one; else ``postprocessing.thresholds``),
class-aware NMS (numpy), boxes mapped back to the original image. This module imports only the
standard library, numpy, onnxruntime and (for decoding and resizing) pillow or opencv, whichever is installed.

``bundle.json`` is checked completely before any model is opened (:func:`validate_meta`): a bundle may come
from anywhere, so model files must lie inside the bundle folder, and every value the runtime reads is checked
for type and range; the loaded model must take ``imgsz`` images and output one score per class in ``names``.
Each problem is one :class:`BundleError` line (a ``ValueError`` in the standalone copy).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np

try:  # inside the autolabel package; the copy in a bundle works without it
    from autolabel.core.errors import ConfigError as _BundleErrorBase
except ImportError:  # pragma: no cover - standalone copy
    _BundleErrorBase = ValueError

__all__ = ["BUNDLE_FILE", "BundleError", "Detections", "Detector", "default_model", "letterbox", "load_bundle",
           "nms", "validate_meta"]

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "autolabel-bundle"
BUNDLE_VERSION = 1
TASKS = ("detect", "classify")


class BundleError(_BundleErrorBase):
    """A bundle folder is missing, incomplete, or of an unknown format."""


@dataclass
class Detections:
    """Detections of one image, in original-image pixels; the field names of ``supervision.Detections``.

    ``scores`` and ``class_ids`` are the older names of ``confidence`` and ``class_id`` (still readable).
    """

    xyxy: np.ndarray  # (N, 4) float32
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int64
    class_scores: np.ndarray  # (N, C) float32: every class's score of each box (the student's soft output)

    def __len__(self) -> int:
        return len(self.confidence)

    @property
    def scores(self) -> np.ndarray:
        return self.confidence

    @property
    def class_ids(self) -> np.ndarray:
        return self.class_id


def _resize(image: np.ndarray, w: int, h: int) -> np.ndarray:
    if image.shape[1] == w and image.shape[0] == h:
        return image
    try:
        import cv2

        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    except ImportError:  # pragma: no cover - exercised where opencv is absent
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def letterbox(image: np.ndarray, size: int, pad_value: int = 114) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size × size`` (centered), as Ultralytics' LetterBox.

    Returns:
        (padded HxWx3 uint8 image, scale ratio, (pad_x, pad_y) of the top-left corner).
    """
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    if (nw, nh) != (w, h):
        image = _resize(image, nw, nh)
    px, py = (size - nw) / 2, (size - nh) / 2
    top, left = round(py - 0.1), round(px - 0.1)
    out = np.full((size, size, 3), pad_value, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = image
    return out, r, (left, top)


def letterbox_square(image: np.ndarray, size: int, pad_value: int = 114) -> np.ndarray:
    """Classification preprocessing: fit into ``size × size`` keeping the aspect, centered (as training did)."""
    h, w = image.shape[:2]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    if (nh, nw) != (h, w):
        try:
            import cv2

            image = cv2.resize(np.ascontiguousarray(image), (nw, nh),
                               interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
        except ImportError:  # pragma: no cover
            image = _resize(image, nw, nh)
    out = np.full((size, size, 3), pad_value, np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    out[oy : oy + nh, ox : ox + nw] = image
    return out


def nms(xyxy: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes by descending score.

    Written here (not taken from torchvision or supervision) because the runtime must not need either.
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = xyxy.T
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        ovl = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ovl <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode(raw: np.ndarray, thresholds: np.ndarray, iou: float, max_det: int = 300,
           agnostic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image's ``(4 + C, A)`` head output → (xyxy, scores, class_ids, class_scores) in input pixels."""
    raw = np.asarray(raw, dtype=np.float32)
    boxes, cls = raw[:4].T, raw[4:].T  # (A, 4), (A, C)
    cid = cls.argmax(1)
    score = cls[np.arange(len(cls)), cid]
    ok = score >= thresholds[cid]
    boxes, cls, cid, score = boxes[ok], cls[ok], cid[ok], score[ok]
    if len(score) > 30000:  # like Ultralytics' max_nms: bound the NMS work
        top = np.argsort(-score)[:30000]
        boxes, cls, cid, score = boxes[top], cls[top], cid[top], score[top]
    xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    offset = 0.0 if agnostic else cid[:, None].astype(np.float32) * 7680.0  # class-aware NMS by offset
    keep = nms(xyxy + offset, score, iou)[:max_det]
    return xyxy[keep], score[keep], cid[keep].astype(np.int64), cls[keep]


def default_model(models: dict) -> str:
    """The model a bundle runs unless told otherwise: int8, else fp32, else fp16, else the first listed."""
    return next((k for k in ("int8", "fp32", "fp16") if k in models), next(iter(models)))


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _inside(root: Path, rel: object, where: str) -> Path:
    """``root / rel`` for a file name written in bundle.json, refused unless it lies inside ``root``.

    Checked before anything is opened: an absolute path, a ``..`` part (POSIX or Windows spelling) or a
    symbolic link that leads out of the bundle would otherwise make the runtime load a file chosen by
    whoever wrote bundle.json.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise BundleError(f"{where} must be a file name inside the bundle folder, found {rel!r}")
    win = PureWindowsPath(rel)
    if Path(rel).is_absolute() or win.is_absolute() or win.drive or ".." in win.parts:
        raise BundleError(f"{where} is '{rel}', outside the bundle folder; model files must lie inside it")
    path = root / rel
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise BundleError(f"{where} is '{rel}', a link that leads outside the bundle folder; model files must "
                          f"lie inside it") from None
    return path


def validate_meta(meta: object, root: Path, where: str = BUNDLE_FILE) -> dict:
    """Check a parsed ``bundle.json`` completely; raise :class:`BundleError` (one line) at the first problem.

    Everything the runtime reads is checked here, before any model file is opened: format and version,
    task, class names, model file names (they must lie inside ``root``), preprocessing and post-processing
    values (types and ranges). That the model matches ``imgsz`` and ``names`` is checked once it is loaded.

    Example:
        >>> validate_meta({"format": "autolabel-bundle", "version": 1, "names": []}, Path("b"))  # doctest: +SKIP
        BundleError: bundle.json: names must be a non-empty list of class names, found []
    """
    if not isinstance(meta, dict):
        raise BundleError(f"{where}: expected a JSON object, found {type(meta).__name__}")
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: format is {meta.get('format')!r}, expected '{BUNDLE_FORMAT}'")
    version = meta.get("version")
    if not _is_int(version) or version < 1:
        raise BundleError(f"{where}: version must be a whole number from 1 to {BUNDLE_VERSION}, found {version!r}")
    if version > BUNDLE_VERSION:
        raise BundleError(f"{where}: bundle version {version} is newer than this runtime ({BUNDLE_VERSION}); "
                          "update autolabel")
    task = meta.get("task", "detect")
    if task not in TASKS:
        raise BundleError(f"{where}: task must be one of {list(TASKS)}, found {task!r}")
    names = meta.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise BundleError(f"{where}: names must be a non-empty list of class names, found "
                          f"{'nothing' if names is None else repr(names)[:80]}")
    if len(set(names)) != len(names):
        raise BundleError(f"{where}: names repeats {sorted({n for n in names if names.count(n) > 1})}")
    models = meta.get("models")
    if not isinstance(models, dict) or not models:
        raise BundleError(f"{where}: models must map a model kind (fp32, int8, fp16) to its file, found {models!r}")
    for key in ("models", "extra_models"):  # every file named, including those this run will not open
        files = meta.get(key) or {}
        if not isinstance(files, dict):
            raise BundleError(f"{where}: {key} must map names to files inside the bundle, found {files!r}")
        for k, rel in files.items():
            _inside(root, rel, f"{where}: {key}.{k}")
    pre = meta.get("preprocessing")
    if not isinstance(pre, dict):
        raise BundleError(f"{where}: preprocessing must be an object with imgsz, found {pre!r}")
    imgsz = pre.get("imgsz")
    if not _is_int(imgsz) or imgsz <= 0:
        raise BundleError(f"{where}: preprocessing.imgsz must be a positive whole number, found {imgsz!r}")
    pad = pre.get("pad_value", 114)
    if not _is_int(pad) or not 0 <= pad <= 255:
        raise BundleError(f"{where}: preprocessing.pad_value must be a whole number in [0, 255], found {pad!r}")
    if pre.get("letterbox", True) not in (True, False, "square"):
        raise BundleError(f"{where}: preprocessing.letterbox must be true, false or 'square', "
                          f"found {pre.get('letterbox')!r}")
    for k, default in (("mean", [0, 0, 0]), ("std", [1, 1, 1])):
        v = pre.get(k, default)
        if not isinstance(v, list) or len(v) != 3 or not all(_is_number(x) for x in v) or (
                k == "std" and min(v) <= 0):
            raise BundleError(f"{where}: preprocessing.{k} must be 3 numbers{' > 0' if k == 'std' else ''}, "
                              f"found {v!r}")
    post = meta.get("postprocessing", {})
    if not isinstance(post, dict):
        raise BundleError(f"{where}: postprocessing must be an object, found {post!r}")
    for k, lo, lo_open in (("conf", 0.0, False), ("iou", 0.0, True)):
        v = post.get(k, 0.25 if k == "conf" else 0.7)
        if not _is_number(v) or not (lo < v if lo_open else lo <= v) or v > 1:
            raise BundleError(f"{where}: postprocessing.{k} must be a number in {'(' if lo_open else '['}0, 1], "
                              f"found {v!r}")
    max_det = post.get("max_det", 300)
    if not _is_int(max_det) or max_det < 1:
        raise BundleError(f"{where}: postprocessing.max_det must be a whole number >= 1, found {max_det!r}")
    _check_thresholds(post.get("thresholds", {}), "postprocessing.thresholds", names, where)
    per_model = post.get("model_thresholds", {})
    if not isinstance(per_model, dict):
        raise BundleError(f"{where}: postprocessing.model_thresholds must map a model kind to its thresholds, "
                          f"found {per_model!r}")
    for m, th in per_model.items():
        if m not in models:
            raise BundleError(f"{where}: postprocessing.model_thresholds names model {m!r}, which is not in models "
                              f"{sorted(models)}")
        _check_thresholds(th, f"postprocessing.model_thresholds.{m}", names, where)
    _validate_operating_point(meta.get("operating_point"), names, models, where)
    return meta


def _check_thresholds(th: object, key: str, names: list, where: str) -> None:
    """``key`` maps class names of ``names`` to scores in [0, 1]."""
    if not isinstance(th, dict):
        raise BundleError(f"{where}: {key} must map class names to scores, found {th!r}")
    for n, v in th.items():
        if n not in names:
            raise BundleError(f"{where}: {key} names class {n!r}, which is not in names")
        if not _is_number(v) or not 0 <= v <= 1:
            raise BundleError(f"{where}: {key}[{n!r}] must be a number in [0, 1], found {v!r}")


def _validate_operating_point(op: object, names: list, models: dict, where: str) -> None:
    """``operating_point`` (how the thresholds were chosen) is informative, but what it says must be well formed:
    per model and class, threshold / precision / recall / F1 in [0, 1] and a labeled box count."""
    if op is None:
        return
    if not isinstance(op, dict):
        raise BundleError(f"{where}: operating_point must be an object, found {op!r}")
    per_model = op.get("models", {})
    if not isinstance(per_model, dict):
        raise BundleError(f"{where}: operating_point.models must map a model kind to its classes, found {per_model!r}")
    for m, pts in per_model.items():
        if m not in models:
            raise BundleError(f"{where}: operating_point.models names model {m!r}, which is not in models "
                              f"{sorted(models)}")
        if not isinstance(pts, dict):
            raise BundleError(f"{where}: operating_point.models.{m} must map class names to points, found {pts!r}")
        for n, p in pts.items():
            at = f"{where}: operating_point.models.{m}[{n!r}]"
            if n not in names:
                raise BundleError(f"{at}: class {n!r} is not in names")
            if not isinstance(p, dict):
                raise BundleError(f"{at} must be an object, found {p!r}")
            for k in ("threshold", "precision", "recall", "f1"):
                v = p.get(k)
                if not _is_number(v) or not 0 <= v <= 1:
                    raise BundleError(f"{at}.{k} must be a number in [0, 1], found {v!r}")
            if not _is_int(p.get("boxes")) or p["boxes"] < 0:
                raise BundleError(f"{at}.boxes must be a whole number >= 0, found {p.get('boxes')!r}")


def _check_model_io(session: object, meta: dict, path: Path, where: str = BUNDLE_FILE) -> None:
    """The loaded model's input size and class count must be those bundle.json promises."""
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    imgsz, n = meta["preprocessing"]["imgsz"], len(meta["names"])
    shape = list(inp.shape)
    if len(shape) != 4:
        raise BundleError(f"{path.name}: expected an NCHW image input, found shape {shape}")
    hw = [d for d in shape[2:] if isinstance(d, int)]
    if any(d != imgsz for d in hw):
        raise BundleError(f"{where}: preprocessing.imgsz is {imgsz} but {path.name} takes "
                          f"{shape[2]}x{shape[3]} images")
    dims = list(out.shape)
    task = meta.get("task", "detect")
    classes = None
    if task == "detect" and len(dims) == 3 and isinstance(dims[1], int):
        classes = dims[1] - 4
    elif task == "classify" and len(dims) == 2 and isinstance(dims[1], int):
        classes = dims[1]
    if classes is not None and classes != n:
        raise BundleError(f"{where}: names lists {n} class{'es' if n != 1 else ''} but {path.name} "
                          f"outputs {classes}")


class Detector:
    """An ONNX detection model and its bundle settings."""

    def __init__(self, bundle: str | os.PathLike, model: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None) -> None:
        root = Path(bundle)
        if root.is_file() and root.name == BUNDLE_FILE:
            root = root.parent
        meta_path = root / BUNDLE_FILE
        if not root.is_dir():
            raise BundleError(f"bundle folder '{root}' not found; expected a folder written by `autolabel export`")
        if not meta_path.is_file():
            raise BundleError(f"'{root}' has no {BUNDLE_FILE}; expected a folder written by `autolabel export`")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{meta_path}: not valid JSON ({e})") from None
        meta = validate_meta(meta, root, str(meta_path))
        models = meta["models"]
        if model is None:
            model = default_model(models)
        if model not in models:
            raise BundleError(f"bundle '{root}' has no '{model}' model; it has {sorted(models)}")
        path = _inside(root, models[model], f"{meta_path}: models.{model}")
        if not path.is_file():
            raise BundleError(f"bundle '{root}': model file {models[model]} is missing")
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError("the runtime needs onnxruntime: pip install onnxruntime") from None
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise BundleError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:160]})") from None
        _check_model_io(self.session, meta, path, str(meta_path))
        self.root, self.meta, self.model = root, meta, model
        self.names: list[str] = list(meta["names"])
        pre = meta["preprocessing"]
        self.imgsz = pre["imgsz"]
        self.pad_value = int(pre.get("pad_value", 114))
        self.letterbox = pre.get("letterbox", True)  # False: plain resize to imgsz x imgsz (SSD)
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.fixed_batch = int(shape[0]) if isinstance(shape[0], int) else None
        self.input_dtype = np.float16 if "float16" in self.session.get_inputs()[0].type else np.float32
        self.task = meta.get("task", "detect")
        self.mean = np.asarray(pre.get("mean", [0, 0, 0]), np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(pre.get("std", [1, 1, 1]), np.float32).reshape(1, 3, 1, 1)
        post = meta.get("postprocessing", {})
        # each model's own operating point when export chose one (INT8 scores differ slightly from FP32)
        th = {**post.get("thresholds", {}), **post.get("model_thresholds", {}).get(model, {})}
        default = float(post.get("conf", 0.25))
        self.thresholds = np.array([float(th.get(n, default)) for n in self.names], dtype=np.float32)
        self.iou = float(post.get("iou", 0.7))
        self.max_det = int(post.get("max_det", 300))

    def preprocess(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, tuple[int, int]]]]:
        """RGB uint8 images → (NCHW float tensor, per image (ratio, pad))."""
        batch, params = [], []
        for im in images:
            im = np.asarray(im)
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise BundleError(f"expected an HxWx3 uint8 RGB image, found shape {im.shape} dtype {im.dtype}")
            if self.task == "classify":
                lb, r, pad = letterbox_square(im, self.imgsz, self.pad_value), 1.0, (0, 0)
            elif self.letterbox is False:
                h, w = im.shape[:2]
                lb, r, pad = _resize(im, self.imgsz, self.imgsz), (self.imgsz / w, self.imgsz / h), (0, 0)
            else:
                lb, r, pad = letterbox(im, self.imgsz, self.pad_value)
            batch.append(lb)
            params.append((r, pad))
        x = np.stack(batch).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        x = (x - self.mean) / self.std
        return np.ascontiguousarray(x.astype(self.input_dtype)), params

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed batch (split to the model's fixed batch size if it has one)."""
        if self.fixed_batch and len(x) != self.fixed_batch:
            outs = []
            for i in range(0, len(x), self.fixed_batch):
                chunk = x[i : i + self.fixed_batch]
                n = len(chunk)
                if n < self.fixed_batch:
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.fixed_batch - n, 0)])
                outs.append(self.session.run(None, {self.input_name: chunk})[0][:n])
            return np.concatenate(outs).astype(np.float32)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float32)

    def classify(self, images: list[np.ndarray]) -> np.ndarray:
        """``(B, C)`` class probabilities of RGB images (a classification bundle)."""
        if self.task != "classify":
            raise BundleError(f"bundle '{self.root}' is a {self.task} model; use predict()")
        if not len(images):
            return np.zeros((0, len(self.names)), np.float32)
        logits = self.forward(self.preprocess(list(images))[0])
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)

    def predict_batch(self, images: list[np.ndarray], conf: float | None = None, iou: float | None = None,
                      agnostic: bool = False) -> list[Detections]:
        """Detections of each RGB image (boxes in its own pixels)."""
        if self.task != "detect":
            raise BundleError(f"bundle '{self.root}' is a {self.task} model; use classify()")
        if not len(images):
            return []
        x, params = self.preprocess(list(images))
        raw = self.forward(x)
        th = self.thresholds if conf is None else np.full(len(self.names), float(conf), np.float32)
        out = []
        for im, r_p, o in zip(images, params, raw):
            xyxy, s, c, cs = decode(o, th, self.iou if iou is None else float(iou), self.max_det, agnostic)
            r, (px, py) = r_p
            rx, ry = r if isinstance(r, tuple) else (r, r)
            xyxy = (xyxy - np.array([px, py, px, py], np.float32)) / np.array([rx, ry, rx, ry], np.float32)
            h, w = np.asarray(im).shape[:2]
            xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
            out.append(Detections(xyxy, s.astype(np.float32), c, cs.astype(np.float32)))
        return out

    def predict(self, image: np.ndarray, conf: float | None = None, iou: float | None = None) -> Detections:
        """Detections of one HxWx3 uint8 RGB image."""
        return self.predict_batch([image], conf=conf, iou=iou)[0]


def load_bundle(bundle: str | os.PathLike, model: str | None = None, threads: int | None = None) -> Detector:
    """Load a bundle folder (``model``: ``int8``, ``fp32`` or ``fp16``; default: int8 if present, else fp32)."""
    return Detector(bundle, model=model, threads=threads)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (pillow, EXIF orientation applied)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import time

    ap = argparse.ArgumentParser(description="Run an autolabel bundle on images (numpy + onnxruntime only).")
    ap.add_argument("bundle")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default=None, help="int8, fp32 or fp16 (default: int8 if present)")
    ap.add_argument("--conf", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    try:
        det = load_bundle(a.bundle, a.model, a.threads)
    except BundleError as e:
        print(f"error: {e}")
        return 2
    for p in a.images:
        t0 = time.perf_counter()
        if det.task == "classify":
            probs = det.classify([read_image(p)])[0]
            top = np.argsort(-probs)[:3]
            print(f"{p}: " + ", ".join(f"{det.names[i]} {probs[i]:.2f}" for i in top))
            continue
        d = det.predict(read_image(p), conf=a.conf)
        ms = (time.perf_counter() - t0) * 1000
        items = [f"{det.names[c]} {s:.2f} [{', '.join(f'{v:.0f}' for v in b)}]" for b, s, c in zip(d.xyxy, d.confidence, d.class_id)]
        print(f"{p}: {len(d)} detections in {ms:.0f} ms" + ("".join(f"\n  {t}" for t in items)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
