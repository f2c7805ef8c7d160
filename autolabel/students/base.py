"""Student families: one interface, one registry, and the one place that says which family a model is.

A *student family* is a kind of small model autolabel trains from a teacher's labels — Ultralytics YOLO
detectors, torchvision's SSDLite320-MobileNetV3 detector, torchvision classifiers. Each family lives in its
own package ``autolabel/students/<family>/`` with its training code and a ``student.py`` whose class
implements :class:`Student` and registers itself in :data:`STUDENT_FAMILIES`:

==============  ========  =============================================  ==========================================
family          task      specs it builds                                checkpoints it reads
==============  ========  =============================================  ==========================================
``yolo``        detect    ``yolov8n.pt``, ``yolov8n.yaml``, a registered  Ultralytics ``.pt`` (pruned ones too)
                          name (``test-yolo-tiny``), a ``DetectionModel``
``ssdlite``     detect    ``ssdlite320_mobilenet_v3_large``, ``ssdlite``  ``format: autolabel-ssdlite``
``classifier``  classify  torchvision names (``mobilenet_v3_small`` …)     ``format: autolabel-classifier``
==============  ========  =============================================  ==========================================

:func:`identify_student` says which family a spec, a checkpoint file or a run folder is (a file is opened
with the weights-only loader of :mod:`autolabel.core.checkpoints`; autolabel's own checkpoints name their
family in ``format``, anything else is an Ultralytics checkpoint). :func:`create_student` builds the family's
:class:`Student` for a spec — as :func:`autolabel.teachers.create_teacher` does for teachers — and
:func:`train` trains any of them (``autolabel.train``); ``autolabel.prune`` and ``autolabel.export`` dispatch
through the same function.

Every family writes the same run layout: ``OUT/weights/best.pt``, ``OUT/weights/last.pt`` (resumable) and
``OUT/weights/metrics.json``; :func:`resolve_checkpoint` finds the weights in a run folder (including the
older ``OUT/best.pt`` layout of classifier runs). Every family's training settings have the same
distillation switch, ``soft`` (``True``: distill the teacher's scores; ``False``: hard labels only).

Adding a family: a package ``autolabel/students/<name>/`` with a ``student.py`` defining a :class:`StudentBase`
subclass decorated with ``@STUDENT_FAMILIES.register("<name>")``, and ``"<name>"`` in :data:`BUILTIN_FAMILIES`;
``config_from_train_options`` lets the ``autolabel train`` command build its settings.

Example:
    >>> from autolabel.students import create_student, identify_student
    >>> identify_student("ssdlite320_mobilenet_v3_large")
    'ssdlite'
    >>> s = create_student("mobilenet_v3_small")                                   # doctest: +SKIP
    >>> res = s.train("datasets/cam1", "runs/cls")                                 # doctest: +SKIP
    >>> create_student(res.best).export("bundles/cls", data="datasets/cam1")       # doctest: +SKIP

Everything heavy (torch, torchvision, Ultralytics) is imported inside the methods: importing this module
and building a :class:`Student` stays light.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from autolabel.core.errors import ConfigError
from autolabel.core.registry import Registry

__all__ = [
    "BUILTIN_FAMILIES",
    "RUN_CHECKPOINTS",
    "STUDENT_FAMILIES",
    "Student",
    "StudentBase",
    "checkpoint_format",
    "create_student",
    "default_student",
    "identify_student",
    "list_students",
    "resolve_checkpoint",
    "train",
]

STUDENT_FAMILIES: Registry[type[StudentBase]] = Registry("student family")
"""The student families by name (``yolo``, ``ssdlite``, ``classifier``); see :func:`list_students`."""

BUILTIN_FAMILIES: tuple[str, ...] = ("yolo", "ssdlite", "classifier")
"""Packages ``autolabel.students.<name>`` whose ``student`` module registers a family (imported on first use)."""

RUN_CHECKPOINTS: tuple[str, ...] = ("weights/best.pt", "weights/last.pt", "best.pt", "last.pt", "pruned.pt")
"""Where a run folder keeps its weights, in the order they are looked for: the layout of every family
(``weights/``), the older classifier layout, and a pruning run's ``pruned.pt``."""


@runtime_checkable
class Student(Protocol):
    """What every student family provides. ``spec`` is what the student was made from: a model name / file
    to train from, or a trained checkpoint (or run folder) to evaluate, prune, export or load.

    The methods delegate to the family's own functions (``train_classifier``, ``train_ssdlite``, the YOLO
    ``train``, ``prune_classifier``, ``export_ssdlite`` …), whose results they return unchanged: every training
    result has ``out``, ``best``, ``last``, ``metrics`` and ``metrics_path``.
    """

    name: ClassVar[str]  # family name in STUDENT_FAMILIES
    task: ClassVar[str]  # "detect" or "classify"
    spec: Any

    def train(self, dataset: str | Path, out: str | Path, config: Any = None) -> Any:
        """Train this student on an autolabel dataset into the run folder ``out``."""
        ...

    def evaluate(self, dataset: str | Path, **kwargs: Any) -> dict[str, Any]:
        """Score the trained student (``spec``) on the dataset's val split."""
        ...

    def prune(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        """Prune the trained student's channels and recover it (a ``PruneConfig``)."""
        ...

    def export(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        """Export the trained student to a bundle (an ``ExportConfig``)."""
        ...

    def load(self, device: str = "cpu") -> Any:
        """The trained student, ready for inference."""
        ...


class StudentBase:
    """The parts every family shares; families subclass it and implement the :class:`Student` methods.

    Class attributes a family sets:
        name, task: its registry name and ``"detect"`` / ``"classify"``.
        checkpoint_format: the ``format`` its own checkpoints carry (``None``: the family that reads every
            other checkpoint, Ultralytics').
        default_spec: what :func:`create_student` builds without a spec (``task_default``: the default
            student of its task, e.g. of a pipeline).
        config_type: ``"module:Class"`` of its training settings (imported on use).
        priority: :func:`identify_student` asks the families in ascending order; a family that accepts
            any bare name (YOLO downloads ``NAME.pt``) goes last.
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = "detect"
    checkpoint_format: ClassVar[str | None] = None
    default_spec: ClassVar[str] = ""
    task_default: ClassVar[bool] = False
    config_type: ClassVar[str] = ""
    priority: ClassVar[int] = 50

    def __init__(self, spec: Any = None) -> None:
        self.spec = self.default_spec if spec is None else spec

    # -- what the family recognizes ------------------------------------------------------------------------
    @classmethod
    def accepts(cls, spec: Any) -> bool:
        """Whether the family builds a model from ``spec`` (a name, a model file or an object; existing
        checkpoint files are recognized by :func:`identify_student` from their ``format``)."""
        return False

    @classmethod
    def config_class(cls) -> type:
        """Its training settings dataclass."""
        module, _, attr = cls.config_type.partition(":")
        return getattr(importlib.import_module(module), attr)

    @classmethod
    def spec_from_config(cls, config: Any) -> Any:
        """The student ``train(config=...)`` builds when no student is named (the classifier's ``model``)."""
        return cls.default_spec

    @classmethod
    def config_from_train_options(cls, options: dict[str, Any]) -> Any:
        """This family's settings from the ``autolabel train`` command's options: the settings of
        :class:`~autolabel.config.TrainConfig` by field name (``imgsz`` None = the family's own), plus
        ``progress`` and ``ultralytics``. A family the command cannot train raises a one-line ConfigError."""
        raise ConfigError(f"{cls.name} students are not trained by `autolabel train`")

    # -- shared helpers ------------------------------------------------------------------------------------
    def checked_config(self, config: Any) -> Any:
        """``config``, or the family's default settings; a config of another family is a one-line error."""
        cls = self.config_class()
        if config is None:
            return cls()
        if not isinstance(config, cls):
            raise ConfigError(
                f"student '{self.spec}' is a {self.name} student: its settings are a {cls.__name__}, "
                f"found a {type(config).__name__}"
            )
        return config

    def weights(self) -> Path:
        """The checkpoint file of a trained student (``spec`` may be a run folder)."""
        return resolve_checkpoint(self.spec)

    def export_onnx_only(self, export_fn: Any, what: str, out: str | Path, data: str | Path | None,
                         config: Any) -> Any:
        """Export with ``export_fn`` (``export_classifier`` / ``export_ssdlite``), for families that write ONNX
        only and take the INT8 settings of an :class:`~autolabel.config.ExportConfig`."""
        from autolabel.config import ExportConfig

        cfg = config or ExportConfig()
        if cfg.formats:
            raise ConfigError(f"{what} export to ONNX only (--format onnx)")
        return export_fn(self.weights(), out, data=data, int8=cfg.int8, calib_images=cfg.calib_images,
                         calib_method=cfg.calib_method, opset=cfg.opset, progress=cfg.progress)

    def unsupported(self, what: str, hint: str = "") -> ConfigError:
        return ConfigError(f"{what} is not supported for {self.name} students" + (f"; {hint}" if hint else ""))

    # -- the interface (families override) -----------------------------------------------------------------
    def train(self, dataset: str | Path, out: str | Path, config: Any = None) -> Any:
        raise self.unsupported("training")

    def evaluate(self, dataset: str | Path, **kwargs: Any) -> dict[str, Any]:
        raise self.unsupported("evaluation")

    def prune(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        raise self.unsupported("pruning")

    def export(self, out: str | Path, data: str | Path | None = None, config: Any = None) -> Any:
        raise self.unsupported("export")

    def load(self, device: str = "cpu") -> Any:
        raise self.unsupported("loading")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


# ----------------------------------------------------------------------------------------------------------
# the registry
# ----------------------------------------------------------------------------------------------------------


def _load_builtin() -> None:
    """Importing a family's ``student`` module registers it (each is light: heavy imports live in methods)."""
    for name in BUILTIN_FAMILIES:
        if name not in STUDENT_FAMILIES:
            importlib.import_module(f"autolabel.students.{name}.student")


def _families() -> list[type[StudentBase]]:
    _load_builtin()
    return sorted((e.obj for e in STUDENT_FAMILIES.entries()), key=lambda f: (f.priority, f.name))


def list_students() -> list[Any]:
    """The registered student families (name, one-line help, default spec)."""
    _load_builtin()
    return STUDENT_FAMILIES.entries()


def default_student(task: str) -> str:
    """The student a ``task`` (``detect`` / ``classify``) trains unless told otherwise."""
    for f in _families():
        if f.task == task and f.task_default:
            return f.default_spec
    raise ConfigError(f"no student family trains task '{task}'")


# ----------------------------------------------------------------------------------------------------------
# which family a model is
# ----------------------------------------------------------------------------------------------------------


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder's checkpoint (the first of :data:`RUN_CHECKPOINTS` it holds); a file path as it is."""
    p = Path(path).expanduser()
    if p.is_dir():
        for rel in RUN_CHECKPOINTS:
            if (p / rel).is_file():
                return p / rel
    return p


def checkpoint_format(path: str | Path) -> str | None:
    """The ``format`` an autolabel state-dict checkpoint declares, read with the weights-only loader
    (:func:`autolabel.core.checkpoints.load_state`); ``None`` for anything else (an Ultralytics checkpoint,
    whose pickled modules the weights-only loader refuses, or a file that is no checkpoint)."""
    from autolabel.core.checkpoints import load_state

    try:
        ckpt = load_state(path, what="student")
    except Exception:  # refused (pickled modules), unreadable or not a torch file: not one of autolabel's own
        return None
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    return fmt if isinstance(fmt, str) else None


def _split_family(spec: str) -> tuple[str | None, str]:
    """``FAMILY:SPEC`` (e.g. ``classifier:resnet18``) → (family, spec); anything else → (None, spec)."""
    head, sep, rest = spec.partition(":")
    if sep and rest and head in STUDENT_FAMILIES:
        return head, rest
    return None, spec


def _no_student(spec: Any) -> ConfigError:
    return ConfigError(
        f"'{spec}' is no student: expected a YOLO checkpoint (.pt), model YAML or name (yolov8n.pt, "
        "yolov8n.yaml, test-yolo-tiny), ssdlite320_mobilenet_v3_large, a torchvision classifier name "
        "(mobilenet_v3_small, resnet18 …), or a trained student's checkpoint or run folder"
    )


def identify_student(spec: Any) -> str:
    """The family (a :data:`STUDENT_FAMILIES` name) of a student spec, checkpoint file or run folder.

    * an existing file or folder: its checkpoint (:func:`resolve_checkpoint`) is opened weights-only and its
      ``format`` names the family; any other checkpoint is an Ultralytics one (``yolo``);
    * ``FAMILY:SPEC``: that family;
    * otherwise the first family (by priority) that accepts the spec: ``ssdlite320_mobilenet_v3_large``,
      torchvision classifier names, then YOLO files, names and modules.

    Raises:
        ConfigError: no family accepts it (one line listing what a student can be).

    Example:
        >>> identify_student("yolov8n.pt"), identify_student("ssdlite")
        ('yolo', 'ssdlite')
    """
    families = _families()
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        raise ConfigError("student is empty; expected a YOLO .pt checkpoint, a model .yaml, "
                          "ssdlite320_mobilenet_v3_large or a torchvision classifier name")
    if not isinstance(spec, (str, os.PathLike)):  # a model object (an Ultralytics DetectionModel …)
        for f in families:
            if f.accepts(spec):
                return f.name
        raise _no_student(type(spec).__name__)
    text = str(spec).strip()
    named, rest = _split_family(text)
    if named is not None:
        return named
    path = Path(text).expanduser()
    if path.exists():
        ckpt = resolve_checkpoint(path)
        fmt = checkpoint_format(ckpt) if ckpt.is_file() else None
        for f in families:
            if f.checkpoint_format is not None and f.checkpoint_format == fmt:
                return f.name
        for f in families:  # not one of autolabel's own formats: the family that reads the others
            if f.checkpoint_format is None:
                return f.name
    for f in families:
        if f.accepts(text):
            return f.name
    raise _no_student(text)


def create_student(spec: Any = None, *, family: str | None = None) -> Any:
    """The :class:`Student` of a spec, checkpoint or run folder (as :func:`autolabel.teachers.create_teacher`).

    Args:
        spec: ``yolov8n.pt``, ``yolov8n.yaml``, ``test-yolo-tiny``, a ``DetectionModel``,
            ``ssdlite320_mobilenet_v3_large``, ``mobilenet_v3_small`` (any torchvision classifier), a trained
            student's checkpoint or run folder, or ``FAMILY:SPEC``; ``None``: ``yolov8n.pt``.
        family: skip identification and build this family's student.

    Raises:
        ConfigError: a spec that is no student, or an unknown family.

    Example:
        >>> create_student("mobilenet_v3_small").name                                   # doctest: +SKIP
        'classifier'
    """
    _load_builtin()
    if spec is None and family is None:
        spec = default_student("detect")
    if isinstance(spec, str):
        named, rest = _split_family(spec.strip())
        if named is not None:
            family, spec = family or named, rest
    name = family or identify_student(spec)
    return STUDENT_FAMILIES.get(name)(spec)


def _spec_for_config(config: Any) -> Any:
    if config is None:
        return default_student("detect")
    kind = f"{type(config).__module__}:{type(config).__qualname__}"
    for f in _families():
        if f.config_type == kind:
            return f.spec_from_config(config)
    raise ConfigError(f"config {type(config).__name__} is not the training settings of a student family "
                      "(TrainConfig, SSDLiteConfig or ClassifierConfig)")


def train(dataset: str | Path, student: Any = None, out: str | Path = "runs/student", config: Any = None) -> Any:
    """Train a student of any family on a labeled dataset, distilling the teacher (``autolabel.train``).

    Args:
        dataset: a folder written by ``autolabel label`` (classifiers: or by ``label_classification``).
        student: what to train (see :func:`create_student`): ``yolov8n.pt`` (the default), a model YAML, a
            registered name or a ``DetectionModel`` for YOLO; ``ssdlite320_mobilenet_v3_large``; a torchvision
            classifier name. ``None`` with a ``ClassifierConfig`` / ``SSDLiteConfig``: that family's student.
        out: the run folder: ``weights/best.pt``, ``weights/last.pt``, ``weights/metrics.json``.
        config: the family's settings: :class:`~autolabel.students.yolo.train.TrainConfig`,
            :class:`~autolabel.students.ssdlite.train.SSDLiteConfig` or
            :class:`~autolabel.students.classifier.train.ClassifierConfig` (``None``: its defaults).

    Returns:
        The family's result (``TrainResult``, ``SSDLiteResult``, ``ClassifierResult``): ``out``, ``best``,
        ``last``, ``metrics``, ``metrics_path`` and the family's own fields.

    Raises:
        ConfigError: a student that is no student, settings of another family, invalid settings.
        DatasetError / WeightsNotFoundError: as the family's training function.

    Example:
        >>> from autolabel import train, ClassifierConfig
        >>> train("datasets/cam1", student="yolov8n.pt", out="runs/cam1")                          # doctest: +SKIP
        >>> train("datasets/cam1", "mobilenet_v3_small", "runs/cls", ClassifierConfig(epochs=20))  # doctest: +SKIP
    """
    if student is None:
        student = _spec_for_config(config)
    return create_student(student).train(dataset, out, config)
