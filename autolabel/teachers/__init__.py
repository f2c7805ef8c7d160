"""Teachers: models that label images from a text ontology. See :mod:`autolabel.teachers.base`.

``create_teacher("NAME[:WEIGHTS]", ontology=...)`` builds one; ``list_teachers()`` lists the registry.
Teacher modules import their heavy libraries (torch, ultralytics, transformers) inside their methods, so
importing this package stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from autolabel.core.errors import ConfigError
from autolabel.core.ontology import Ontology
from autolabel.core.registry import Registry, RegistryEntry
from autolabel.teachers.base import Teacher

__all__ = ["TEACHERS", "Teacher", "create_teacher", "list_teachers", "parse_teacher_spec", "register_teacher"]

TEACHERS: Registry[type[Teacher]] = Registry("teacher")

T = TypeVar("T", bound=type[Teacher])


def register_teacher(help: str) -> Callable[[T], T]:
    """Class decorator: register a teacher under its ``name``, with its ``default_weights`` (each said once).

    Example:
        >>> @register_teacher("a teacher that sees nothing")   # doctest: +SKIP
        ... class Blind(Teacher):
        ...     name = "blind"
        ...     def predict(self, images): return [empty_detections(self.num_classes) for _ in images]
    """

    def deco(cls: T) -> T:
        return TEACHERS.register(cls.name, help=help, default_weights=cls.default_weights)(cls)

    return deco


def parse_teacher_spec(spec: str) -> tuple[str, str | None]:
    """Split ``NAME[:WEIGHTS]`` into name and weights (``None`` when absent).

    >>> parse_teacher_spec("yolo:../shared/weights/yolo11n.pt")
    ('yolo', '../shared/weights/yolo11n.pt')
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"teacher must be NAME[:WEIGHTS], e.g. 'yolo:yolov8n.pt'; found {spec!r}")
    name, sep, weights = spec.strip().partition(":")
    if sep and not weights:
        raise ConfigError(f"teacher '{spec}': weights after ':' are empty; expected NAME[:WEIGHTS]")
    return name, (weights or None)


def create_teacher(spec: str, ontology: Ontology, **kwargs: Any) -> Teacher:
    """Build a registered teacher from ``NAME[:WEIGHTS]``; extra keyword arguments go to its constructor."""
    _load_builtin()
    name, weights = parse_teacher_spec(spec)
    cls = TEACHERS.get(name)
    if weights is not None:
        kwargs["weights"] = weights
    return cls(ontology=ontology, **kwargs)


def list_teachers() -> list[RegistryEntry[type[Teacher]]]:
    """Registered teachers with their one-line help and default weights."""
    _load_builtin()
    return TEACHERS.entries()


def _load_builtin() -> None:
    # Importing registers them; each module is light (heavy imports live inside methods).
    import importlib

    for mod in _BUILTIN:
        importlib.import_module(f"autolabel.teachers.{mod}")


_BUILTIN: tuple[str, ...] = ("yolo", "yolo_world", "grounding_dino", "owl", "clip", "ensemble")
