"""Train an Ultralytics detection student on an autolabel dataset, distilling the teacher's soft scores.

Example:
    >>> from autolabel.students import TrainConfig, train
    >>> res = train("datasets/cam1", student="yolov8n.pt", out="runs/cam1",
    ...             config=TrainConfig(epochs=50, imgsz=640))                      # doctest: +SKIP
    >>> res.metrics["mAP50-95"], res.best                                         # doctest: +SKIP

What is distilled
-----------------
* **Soft labels** (offline, from the dataset's ``autolabel.jsonl``): for every anchor Ultralytics'
  TaskAlignedAssigner assigns to a box, the class target is

  ``t = norm_align · (α · onehot(cls) + (1 − α) · soften(soft, T))``

  where ``soft`` is the teacher's score vector of that box, ``soften(p, T) = σ(logit(p) / T)``
  (:func:`autolabel.distill.losses.soften_probs`) and ``norm_align`` is the assigner's normalized
  alignment metric, applied exactly where Ultralytics multiplies its one-hot. Box and DFL losses and the
  normalization (``Σ`` of the hard targets) are Ultralytics' own, so ``α = 1`` *is* Ultralytics' loss.
  ``conf_weight`` additionally scales the class and box losses of each box's anchors by the teacher's
  confidence. The soft rows follow their boxes through mosaic, affine, flips and out-of-frame dropping:
  see :mod:`autolabel.students.yolo.trainer`.
* **Online KD** (``kd_teacher``: a larger YOLO checkpoint, or the same model before pruning): on every
  training batch the frozen teacher sees the same augmented images; dense class-logit KD on all anchors
  (:class:`~autolabel.distill.losses.SoftTargetBCE` against the teacher's temperature-softened sigmoid
  scores, teacher classes mapped to the student's by name / ontology aliases, normalized like
  Ultralytics' class loss by the sum of the teacher's scores) plus FitNets hints
  (:class:`~autolabel.distill.losses.MultiLevelHint`, one learned 1×1 projection per level) on the
  feature maps entering the Detect head (P3/P4/P5). The projections are optimized with the student but
  live outside it: they are saved next to the weights (``weights/distill_state.pt``, for ``resume``)
  and never in ``last.pt`` / ``best.pt``.

Output folder: ``OUT/weights/{last,best}.pt`` (Ultralytics checkpoints; ``resume=True`` continues from
``last.pt``), ``OUT/weights/metrics.json`` (mAP of ``best.pt`` on the val split, against the teacher's
labels), ``OUT/autolabel_train.json`` (the distillation settings, re-read on resume) and Ultralytics'
``results.csv`` / ``args.yaml``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.config import TrainConfig
from autolabel.core.errors import ConfigError, DatasetError, WeightsNotFoundError
from autolabel.core.registry import Registry
from autolabel.data.dataset import META_FILE, SIDECAR_FILE, read_meta, read_records
from autolabel.data.record import DatasetMeta, Record

if TYPE_CHECKING:
    from autolabel.core.ontology import Ontology

__all__ = [
    "SETTINGS_FILE",
    "STUDENTS",
    "YOLO_MODELS",
    "SoftTable",
    "TrainConfig",
    "TrainResult",
    "load_soft_table",
    "teacher_class_index",
    "tiny_yolo_yaml",
    "train",
]

SETTINGS_FILE = "autolabel_train.json"
METRICS_FILE = "metrics.json"
DISTILL_STATE_FILE = "distill_state.pt"


# ----------------------------------------------------------------------------------------------------------
# registered student configurations
# ----------------------------------------------------------------------------------------------------------


def tiny_yolo_yaml(nc: int = 80, depth: float = 0.33, width: float = 0.0625, max_channels: int = 256) -> dict[str, Any]:
    """A YOLOv8-layout model config with very small width (8–16 channels): trains in seconds on a CPU.

    Not useful for accuracy; it exists so that training, resume and distillation can be exercised
    quickly (like timm's ``test_*`` models).
    """
    c = [64, 128, 256, 512, 1024]
    return {
        "nc": nc,
        "depth_multiple": depth,
        "width_multiple": width,
        "max_channels": max_channels,
        "backbone": [
            [-1, 1, "Conv", [c[0], 3, 2]],
            [-1, 1, "Conv", [c[1], 3, 2]],
            [-1, 3, "C2f", [c[1], True]],
            [-1, 1, "Conv", [c[2], 3, 2]],
            [-1, 6, "C2f", [c[2], True]],
            [-1, 1, "Conv", [c[3], 3, 2]],
            [-1, 6, "C2f", [c[3], True]],
            [-1, 1, "Conv", [c[4], 3, 2]],
            [-1, 3, "C2f", [c[4], True]],
            [-1, 1, "SPPF", [c[4], 5]],
        ],
        "head": [
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 6], 1, "Concat", [1]],
            [-1, 3, "C2f", [c[3]]],
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]],
            [-1, 3, "C2f", [c[2]]],
            [-1, 1, "Conv", [c[2], 3, 2]],
            [[-1, 12], 1, "Concat", [1]],
            [-1, 3, "C2f", [c[3]]],
            [-1, 1, "Conv", [c[3], 3, 2]],
            [[-1, 9], 1, "Concat", [1]],
            [-1, 3, "C2f", [c[4]]],
            [[15, 18, 21], 1, "Detect", ["nc"]],
        ],
    }


YOLO_MODELS: Registry[Any] = Registry("student")
"""Named YOLO model configurations a student can be built from (``train(student="test-yolo-tiny")``)."""
STUDENTS = YOLO_MODELS  # its former name (it lived in autolabel.students)

if "test-yolo-tiny" not in YOLO_MODELS:
    YOLO_MODELS.register("test-yolo-tiny", help="test/smoke only: YOLOv8 layout at 1/16 width (~0.1M parameters)")(
        tiny_yolo_yaml
    )


# ----------------------------------------------------------------------------------------------------------
# configuration and result
# ----------------------------------------------------------------------------------------------------------


#: Ultralytics arguments autolabel trains with unless ``TrainConfig.ultralytics`` sets them, with ``nbs`` (the
#: nominal batch gradients accumulate to) equal to the batch: one AdamW step per batch, cosine decay, bias
#: warm-up from 0. Ultralytics' own defaults (``nbs`` 64, ``optimizer=auto`` → AdamW at 0.01 / (4 + classes),
#: three warm-up epochs) give a few-hundred-image auto-labeled dataset ~2.5 steps an epoch: 12 epochs then
#: barely move a COCO model (best.pt was epoch 1's), and the student stays below its teacher. Measured on
#: cctv_clinic (bench/students_kd.py): hard labels 0.354 → 0.376 mAP50-95 against human labels.
FINE_TUNE: dict[str, Any] = {"optimizer": "AdamW", "lr0": 0.001, "cos_lr": True, "warmup_bias_lr": 0.0}


@dataclass
class TrainResult:
    """What a training run produced."""

    out: Path
    best: Path
    last: Path
    metrics: dict[str, Any]
    metrics_path: Path
    settings: dict[str, Any]


# ----------------------------------------------------------------------------------------------------------
# dataset: soft-score table
# ----------------------------------------------------------------------------------------------------------


@dataclass
class SoftTable:
    """Per image (real path): its label-file rows ``(N, 5)`` in file order, soft scores ``(N, C)`` and
    confidences ``(N,)`` from the sidecar (row ``i`` = line ``i`` of the label file).

    ``uncertain``: per image, the teacher's boxes below their class threshold (the record's ``uncertain``
    field, written with ``LabelConfig.uncertain_conf``) in the same form — rows ``(M, 5)`` of
    ``class cx cy w h`` (normalized), soft scores ``(M, C)``, confidences ``(M,)``.
    """

    names: list[str]
    images: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    uncertain: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def num_uncertain(self) -> int:
        return sum(len(v[0]) for v in self.uncertain.values())

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def get(self, image: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        return self.images.get(os.path.realpath(image))

    def get_uncertain(self, image: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        return self.uncertain.get(os.path.realpath(image))


def _read_label_rows(path: Path) -> np.ndarray:
    try:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
        rows = np.array(lines, dtype=np.float32).reshape(len(lines), -1) if lines else np.zeros((0, 5), np.float32)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a YOLO label file ({type(e).__name__}: {str(e)[:80]})") from None
    if rows.shape[1] != 5:
        raise DatasetError(f"{path}: expected 5 numbers per line (class cx cy w h), found {rows.shape[1]}")
    return rows


def load_soft_table(root: str | Path) -> SoftTable:
    """Read the sidecar and every label file it names; check that they agree row by row.

    Records that are not valid (:meth:`~autolabel.data.record.Record.from_json`, e.g. a soft-score row without
    one score per class) are skipped with a warning by :func:`~autolabel.data.dataset.read_records`.

    Raises:
        DatasetError: a label file's line count or classes do not match its sidecar record.
    """
    root = Path(root)
    names = list(read_meta(root).names)
    nc = len(names)
    images: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    uncertain: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for rec in read_records(root, nc):  # records checked there: (N, C) soft scores in [0, 1], N confidences
        img, lbl = root / rec.image, root / rec.label
        cls = np.asarray(rec.boxes.class_id, dtype=np.int64).reshape(-1)
        soft = np.asarray(rec.boxes.soft_scores, dtype=np.float32).reshape(-1, nc)
        if not lbl.is_file():
            raise DatasetError(f"'{root}': label file {rec.label} of record {rec.id} is missing")
        rows = _read_label_rows(lbl)
        if len(rows) != len(soft) or len(rows) != len(cls):
            raise DatasetError(
                f"{lbl}: {len(rows)} label lines but its autolabel.jsonl record has {len(soft)} soft-score rows "
                f"({len(cls)} class ids); the label file was edited after labeling: re-label, or use --hard-only"
            )
        if len(rows) and not np.array_equal(rows[:, 0].astype(np.int64), cls):
            raise DatasetError(
                f"{lbl}: classes {rows[:, 0].astype(int).tolist()} differ from its autolabel.jsonl record "
                f"{cls.tolist()}; re-label, or use --hard-only"
            )
        conf = np.asarray(rec.boxes.confidence, dtype=np.float32).reshape(-1)
        images[os.path.realpath(img)] = (rows, soft, np.clip(conf, 0.0, 1.0))
        if rec.uncertain:
            unc = _uncertain_rows(rec, nc)
            if len(unc[0]):
                uncertain[os.path.realpath(img)] = unc
    return SoftTable(names=names, images=images, uncertain=uncertain)


def _uncertain_rows(rec: Record, nc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A record's ``uncertain`` boxes as (rows ``class cx cy w h`` normalized, soft (M, C), conf (M,))."""
    u = rec.uncertain
    assert u is not None
    xyxy = np.asarray(u.xyxy, dtype=np.float64).reshape(-1, 4)
    cls = np.asarray(u.class_id, dtype=np.float64).reshape(-1)
    conf = np.asarray(u.confidence, dtype=np.float32).reshape(-1)
    soft = np.asarray(u.soft_scores, dtype=np.float32).reshape(-1, nc)
    w, h = float(rec.width), float(rec.height)
    xyxy = xyxy.clip(0, [w, h, w, h])
    rows = np.stack([cls, (xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h,
                     (xyxy[:, 2] - xyxy[:, 0]) / w, (xyxy[:, 3] - xyxy[:, 1]) / h], 1).astype(np.float32)
    keep = (rows[:, 3] > 0) & (rows[:, 4] > 0)
    return rows[keep], np.clip(soft[keep], 0.0, 1.0), np.clip(conf[keep], 0.0, 1.0)


def _data_names(data_yaml: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load(data_yaml.read_text()) or {}
    except yaml.YAMLError as e:
        raise DatasetError(f"{data_yaml}: invalid YAML ({str(e).splitlines()[0]})") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{data_yaml}: expected a non-empty 'names' list or mapping")
    for key in ("train", "val"):
        if not data.get(key):
            raise DatasetError(f"{data_yaml}: no '{key}' split")
    return [str(n) for n in names]


def _resolve_dataset(dataset: str | Path, hard_only: bool) -> tuple[Path, Path, list[str], DatasetMeta | None]:
    """(root, data.yaml, class names, sidecar header or None)."""
    p = Path(dataset).expanduser()
    root, data_yaml = (p.parent, p) if p.suffix in {".yaml", ".yml"} else (p, p / "data.yaml")
    if not root.is_dir():
        raise DatasetError(f"dataset folder '{root}' not found")
    if not data_yaml.is_file():
        raise DatasetError(f"'{root}' has no data.yaml; expected a dataset folder written by `autolabel label`")
    names = _data_names(data_yaml)
    if hard_only:
        return root.resolve(), data_yaml.resolve(), names, None
    for f in (META_FILE, SIDECAR_FILE):
        if not (root / f).is_file():
            raise DatasetError(
                f"'{root}' has no {f} (the soft-score sidecar written by `autolabel label`); re-label the images "
                f"with `autolabel label`, or train on the hard labels alone with --hard-only"
            )
    meta = read_meta(root)
    if list(meta.names) != names:
        raise DatasetError(f"'{root}': data.yaml classes {names} differ from {META_FILE} classes {list(meta.names)}")
    return root.resolve(), data_yaml.resolve(), names, meta


# ----------------------------------------------------------------------------------------------------------
# students and KD teachers
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Student:
    model_arg: str  # what Ultralytics gets as `model`
    spec: str  # how the user named it (for the settings file)
    keep_architecture: bool  # train the module as it is (pruned / custom): no re-heading to the dataset's classes
    pretrained: bool


def _is_detection_model(model: Any) -> bool:
    from ultralytics.nn.modules.head import Detect

    seq = getattr(model, "model", None)
    try:
        return isinstance(seq[-1], Detect) and type(seq[-1]).__name__ in {"Detect", "v10Detect", "YOLOEDetect"}
    except (TypeError, IndexError, KeyError):
        return False


def _architecture_modified(model: Any) -> bool:
    """True when a checkpoint's weights do not fit the model its own YAML builds (e.g. pruned channels)."""
    from copy import deepcopy

    from ultralytics.nn.tasks import DetectionModel

    yaml_cfg = getattr(model, "yaml", None)
    if not isinstance(yaml_cfg, dict):
        return True
    try:
        ref = DetectionModel(deepcopy(yaml_cfg), ch=yaml_cfg.get("channels", 3), nc=yaml_cfg.get("nc"), verbose=False)
    except Exception:  # a YAML Ultralytics cannot rebuild: keep the module as it is
        return True
    a, b = model.state_dict(), ref.state_dict()
    return a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a)


def _check_student_classes(model: Any, names: list[str], what: str) -> None:
    nc = int(getattr(model.model[-1], "nc", -1))
    if nc != len(names):
        mnames = getattr(model, "names", None)
        mnames = list(mnames.values()) if isinstance(mnames, dict) else mnames
        raise DatasetError(
            f"student {what} has {nc} classes {list(mnames or [])[:8]} but the dataset has {len(names)} {names}; "
            "a modified (e.g. pruned) model keeps its head, so it cannot be adapted: train it on a dataset "
            "with the same classes, or start from its unpruned checkpoint / YAML"
        )


def _load_checkpoint_model(path: Path, role: str, flag: str) -> Any:
    from autolabel.core.checkpoints import load_yolo

    model = load_yolo(path, what=role).model
    if not _is_detection_model(model):
        raise ConfigError(f"{role} '{path}' is a {getattr(model, 'task', type(model).__name__)} model; expected a detection model")
    return model


def _local_or_download(spec: str, role: str, flag: str) -> Path:
    from autolabel.core.weights import ultralytics_hint, ultralytics_weights

    return ultralytics_weights(spec, role, ultralytics_hint(spec, flag))


def _resolve_student(student: Any, out: Path, names: list[str]) -> _Student:
    """Turn a checkpoint / YAML / registered name / module into what the trainer loads."""
    import torch

    if isinstance(student, torch.nn.Module):
        if not _is_detection_model(student):
            raise ConfigError(f"student {type(student).__name__} is not an Ultralytics detection model")
        _check_student_classes(student, names, f"module {type(student).__name__}")
        from copy import deepcopy

        path = out / "student_init.pt"
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"model": deepcopy(student).float().cpu(), "train_args": {}}, path)
        return _Student(str(path), f"<{type(student).__name__}>", True, True)
    spec = str(student).strip()
    if not spec:
        raise ConfigError("student is empty; expected a .pt checkpoint, a model .yaml or a registered name")
    if spec in YOLO_MODELS:
        import yaml

        cfg = YOLO_MODELS.get(spec)()
        cfg["nc"] = len(names)
        path = out / "student.yaml"
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# student '{spec}' written by autolabel\n" + yaml.safe_dump(cfg, sort_keys=False))
        return _Student(str(path), spec, False, False)
    suffix = Path(spec).suffix.lower()
    if suffix in {".yaml", ".yml"}:
        from ultralytics.nn.tasks import yaml_model_load

        p = Path(spec).expanduser()
        try:
            cfg = yaml_model_load(str(p) if p.is_file() else spec)
        except Exception as e:
            raise ConfigError(
                f"student model YAML '{spec}' not found or invalid ({type(e).__name__}); pass a file path or an "
                "Ultralytics config name such as yolov8n.yaml"
            ) from None
        if not isinstance(cfg, dict) or "backbone" not in cfg or "head" not in cfg:
            raise ConfigError(f"student '{spec}' is not an Ultralytics model YAML (no backbone/head)")
        return _Student(str(p.resolve()) if p.is_file() else spec, spec, False, False)
    if suffix not in {".pt", ""}:
        raise ConfigError(
            f"unknown student '{spec}'; expected a .pt checkpoint, a model .yaml or one of {YOLO_MODELS.names()}"
        )
    try:
        path = _local_or_download(spec if suffix else spec + ".pt", "student", "--student")
    except WeightsNotFoundError as e:
        if suffix:
            raise
        raise WeightsNotFoundError(f"{e} (or name a registered student: {', '.join(YOLO_MODELS.names())})") from None
    model = _load_checkpoint_model(path, "student", "--student")
    keep = _architecture_modified(model)
    if keep:
        _check_student_classes(model, names, f"'{path}'")
    return _Student(str(path.resolve()), spec, keep, True)


def _norm(name: str) -> str:
    return str(name).strip().lower().replace("_", " ")


def teacher_class_index(
    teacher_names: Mapping[int, str] | Sequence[str],
    student_names: Sequence[str],
    ontology: Ontology | None = None,
) -> list[int]:
    """For every teacher class, the student class it feeds (or -1): by the ontology's aliases, else by name.

    Raises:
        ConfigError: no teacher class matches any student class.
    """
    if not isinstance(teacher_names, Mapping):
        teacher_names = dict(enumerate(teacher_names))
    n_t = max(int(k) for k in teacher_names) + 1 if teacher_names else 0
    index = [-1] * n_t
    if ontology is not None and list(ontology.names) == list(student_names):
        for mid, cid in ontology.map_model_classes(teacher_names).items():
            index[mid] = cid
    by_name = {_norm(n): i for i, n in enumerate(student_names)}
    for mid, name in teacher_names.items():
        if index[int(mid)] < 0 and _norm(name) in by_name:
            index[int(mid)] = by_name[_norm(name)]
    if all(i < 0 for i in index):
        shown = list(teacher_names.values())
        raise ConfigError(
            f"kd teacher classes {shown[:8]}{'...' if len(shown) > 8 else ''} match none of the student classes "
            f"{list(student_names)}; use a teacher that knows them (or add 'aliases' to the ontology classes)"
        )
    return index


def _load_kd_teacher(kd_teacher: Any) -> tuple[Any, str]:
    """(frozen float detection model, description)."""
    import torch

    if isinstance(kd_teacher, torch.nn.Module):
        if not _is_detection_model(kd_teacher):
            raise ConfigError(f"kd teacher {type(kd_teacher).__name__} is not an Ultralytics detection model")
        from copy import deepcopy

        return deepcopy(kd_teacher).float(), f"<{type(kd_teacher).__name__}>"
    spec = str(kd_teacher)
    path = _local_or_download(spec if Path(spec).suffix else spec + ".pt", "kd teacher", "--kd-teacher")
    return _load_checkpoint_model(path, "kd teacher", "--kd-teacher"), str(path.resolve())


# ----------------------------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------------------------


def _auto_amp(device: str, amp: bool | None) -> bool | str:
    if amp is not None:
        return bool(amp)
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16"  # no GradScaler, and Ultralytics skips its AMP check (which downloads a model)
    return False


def _ultra_device(device: str) -> str:
    return "cpu" if device == "cpu" else device.split(":", 1)[1] if device.startswith("cuda:") else device


def train(
    dataset: str | Path,
    student: Any = "yolov8n.pt",
    out: str | Path = "runs/student",
    config: TrainConfig | None = None,
) -> TrainResult:
    """Train a detection student on a labeled dataset (soft-label distillation, optional online KD).

    Args:
        dataset: a folder written by ``autolabel label`` (or, with ``soft=False``, any YOLO dataset folder or
            ``data.yaml``).
        student: an Ultralytics detection checkpoint (``yolov8n.pt``; its head is adapted to the dataset's
            classes as Ultralytics does), a model YAML (``yolov8n.yaml`` or a path), a registered name
            (``test-yolo-tiny``) or a ``DetectionModel`` (e.g. pruned; trained as it is). Ignored on resume.
        out: output folder (``weights/``, ``metrics.json`` …).
        config: :class:`TrainConfig`.

    Raises:
        DatasetError: missing/inconsistent dataset or sidecar, classes that cannot be adapted.
        WeightsNotFoundError: student or KD teacher weights not available offline.
        ConfigError: invalid options, nothing to resume, a KD teacher sharing no class with the student.
    """
    config = config or TrainConfig()
    config.check()
    if config.recipe == "born-again":  # generations of the hinton recipe, each taught online by the previous one
        from autolabel.distill.recipes import born_again

        return born_again(lambda run, c: train(dataset, student, run, c), out, config)
    from autolabel.core.checkpoints import import_ultralytics
    from autolabel.core.weights import resolve_device

    import_ultralytics()  # checkpoints (student, kd teacher, resume) load with restricted unpickling

    out = Path(out).expanduser().resolve()
    device = resolve_device(config.device)
    settings_path = out / SETTINGS_FILE
    last = out / "weights" / "last.pt"
    saved: dict[str, Any] | None = None
    if config.resume:
        if not last.is_file() or not settings_path.is_file():
            raise ConfigError(f"nothing to resume in '{out}' (no weights/last.pt or {SETTINGS_FILE}); drop --resume")
        saved = json.loads(settings_path.read_text())
        hard_only = bool(saved["hard_only"])
    else:
        if last.is_file() and not config.overwrite:
            raise ConfigError(f"'{out}' already holds a training run; use --resume to continue it or a new --out")
        hard_only = not config.soft
    root, data_yaml, names, meta = _resolve_dataset(dataset, hard_only)
    if config.gt is not None:
        _records_with_gt(root, config.gt)  # fail before training, not after it
    table = None if hard_only else load_soft_table(root)

    ontology = None
    if meta is not None and meta.ontology:
        from autolabel.core.ontology import Ontology

        try:
            ontology = Ontology.from_dict(meta.ontology)
        except Exception:  # an old/odd header: fall back to name matching
            ontology = None

    if saved is not None:  # resume: distillation settings come from the run itself
        settings = dict(saved)
        kd_spec = config.kd_teacher if config.kd_teacher is not None else saved.get("kd_teacher")
        if isinstance(kd_spec, str) and kd_spec.startswith("<"):
            raise ConfigError(
                f"the run in '{out}' distilled from an in-memory teacher {kd_spec}; pass it again as kd_teacher to resume"
            )
        student_info = _Student(str(last), saved["student"], bool(saved["keep_architecture"]), True)
    else:
        student_info = _resolve_student(student, out, names)
        kd_spec = config.kd_teacher
        settings = {
            "dataset": str(root),
            "student": student_info.spec,
            "keep_architecture": student_info.keep_architecture,
            "hard_only": hard_only,
            "alpha": float(config.alpha),
            "temperature": float(config.temperature),
            "conf_weight": bool(config.conf_weight),
            "uncertain": bool(config.uncertain) and table is not None and table.num_uncertain > 0,
            "kd_teacher": None,
            "kd_weight": float(config.kd_weight),
            "hint_weight": float(config.hint_weight),
            "names": names,
        }

    teacher = None
    class_index = None
    if kd_spec is not None and (settings["kd_weight"] > 0 or settings["hint_weight"] > 0):
        teacher, kd_desc = _load_kd_teacher(kd_spec)
        class_index = teacher_class_index(dict(teacher.names), names, ontology)
        if saved is None:
            settings["kd_teacher"] = kd_desc
    elif saved is None:
        settings["kd_weight"] = settings["hint_weight"] = 0.0

    out.mkdir(parents=True, exist_ok=True)
    if saved is None:
        settings_path.write_text(json.dumps(settings, indent=2))

    from autolabel.students.yolo.trainer import Plan, run_training

    overrides: dict[str, Any] = {
        "model": student_info.model_arg,
        "data": str(data_yaml),
        "epochs": int(config.epochs),
        "imgsz": int(config.imgsz),
        "batch": int(config.batch),
        "device": _ultra_device(device),
        "workers": int(config.workers),
        "seed": int(config.seed),
        "amp": _auto_amp(device, config.amp),
        "patience": int(config.patience),
        "close_mosaic": int(config.close_mosaic),
        "cache": config.cache,
        "plots": False,
        "save_dir": str(out),
        "exist_ok": True,
        "pretrained": student_info.pretrained,
        "verbose": bool(config.progress),
        **FINE_TUNE,
        "nbs": int(config.batch),
        **dict(config.ultralytics),
    }
    if saved is not None:
        overrides = {k: overrides[k] for k in ("data", "batch", "device", "workers", "save_dir", "cache", "plots")}
        overrides["resume"] = str(last)
    plan = Plan(
        soft=None if settings["hard_only"] else table,
        alpha=settings["alpha"],
        temperature=settings["temperature"],
        conf_weight=settings["conf_weight"],
        uncertain=bool(settings.get("uncertain", False)),
        keep_architecture=settings["keep_architecture"],
        teacher=teacher,
        class_index=class_index,
        kd_weight=settings["kd_weight"] if teacher is not None else 0.0,
        hint_weight=settings["hint_weight"] if teacher is not None else 0.0,
    )
    trainer = run_training(overrides, plan, quiet=not config.progress)

    wdir = out / "weights"
    best = wdir / "best.pt"
    metrics = _metrics(trainer, names, settings, best if best.is_file() else wdir / "last.pt")
    if config.gt is not None:
        metrics["against_human_labels"] = evaluate_student(best if best.is_file() else wdir / "last.pt", root,
                                                           config.gt, imgsz=int(config.imgsz))
    metrics_path = wdir / METRICS_FILE
    metrics_path.write_text(json.dumps(metrics, indent=2))
    if not best.is_file():
        warnings.warn(f"training in '{out}' wrote no best.pt (no validation fitness); use weights/last.pt", stacklevel=2)
    return TrainResult(out=out, best=best, last=wdir / "last.pt", metrics=metrics, metrics_path=metrics_path,
                       settings=settings)


def _records_with_gt(root: Path, gt: str | Path, split: str = "val") -> list[Record]:
    """The dataset's ``split`` records whose original file has a human label in ``gt`` (one clear line if none)."""
    from autolabel.metrics import load_ground_truth

    g = load_ground_truth(gt)  # missing / malformed ground truth fails here, before any work
    recs = [r for r in read_records(root) if r.split == split and Path(r.source).stem in g.sizes]
    if not recs:
        raise DatasetError(f"none of the {split} images of '{root}' has a human label in '{gt}' (matched by file name)")
    return recs


def evaluate_student(weights: str | Path, dataset: str | Path, gt: str | Path, imgsz: int = 640,
                     split: str = "val", class_map: Mapping[str, str] | None = None) -> dict[str, Any]:
    """mAP of a trained student on a dataset split against human labels (matched by original file name).

    The student predicts at conf 0.001 through the ``yolo`` teacher code (the same inference as labeling);
    its predictions are scored by :func:`autolabel.metrics.evaluate` (pycocotools).
    """
    import tempfile

    from autolabel.core.ontology import Ontology
    from autolabel.metrics import evaluate
    from autolabel.sources import load_image
    from autolabel.teachers import create_teacher

    root = Path(dataset)
    names = list(read_meta(root).names)
    recs = _records_with_gt(root, gt, split)
    teacher = create_teacher(f"yolo:{weights}", Ontology.from_names(names), imgsz=imgsz, min_score=0.001)
    images, anns = [], []
    for i, r in enumerate(recs):
        det = teacher.predict([load_image(root / r.image)[0]])[0]
        images.append({"id": i, "file_name": Path(r.source).name, "width": r.width, "height": r.height})
        for (x1, y1, x2, y2), c, sc in zip(det.xyxy.tolist(), det.class_id.tolist(), det.confidence.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "score": float(sc),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "pred.json"
        pred.write_text(json.dumps({"images": images, "annotations": anns,
                                    "categories": [{"id": k, "name": n} for k, n in enumerate(names)]}))
        r = evaluate(pred, gt, class_map=class_map, images=[Path(r.source).stem for r in recs])
    return {"split": split, "images": len(recs), "mAP50-95": round(float(r.map50_95), 5),
            "mAP50": round(float(r.map50), 5),
            "per_class": {k: {"mAP50-95": round(float(v["map50_95"]), 5), "mAP50": round(float(v["map50"]), 5)}
                          for k, v in r.per_class.items()}}


def _metrics(trainer: Any, names: list[str], settings: dict[str, Any], weights: Path) -> dict[str, Any]:
    """mAP of the trained student on the dataset's val split, against the teacher's labels."""
    m = dict(getattr(trainer, "metrics", None) or {})
    maps = None
    try:
        maps = trainer.validator.metrics.box.maps
    except AttributeError:
        pass
    out = {
        "weights": str(weights),
        "split": "val",
        "against": "teacher labels (the dataset's label files)",
        "mAP50-95": float(m.get("metrics/mAP50-95(B)", 0.0)),
        "mAP50": float(m.get("metrics/mAP50(B)", 0.0)),
        "precision": float(m.get("metrics/precision(B)", 0.0)),
        "recall": float(m.get("metrics/recall(B)", 0.0)),
        "epochs": int(getattr(trainer, "epochs", 0)),
        "distillation": {k: settings.get(k) for k in ("hard_only", "alpha", "temperature", "conf_weight",
                                                      "uncertain", "kd_teacher", "kd_weight", "hint_weight")},
    }
    if maps is not None and len(maps) == len(names):
        out["per_class_mAP50-95"] = {n: round(float(v), 5) for n, v in zip(names, maps)}
    return out

