"""A small generic registry, in the spirit of detectron2's ``Registry`` and timm's ``@register_model``.

Example:
    >>> TEACHERS = Registry("teacher")
    >>> @TEACHERS.register("yolo", help="Ultralytics closed-set detector")
    ... class YoloTeacher: ...
    >>> TEACHERS.get("yolo") is YoloTeacher
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from autolabel.core.errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry", "RegistryEntry"]


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered object with a one-line description and its default weights (if any)."""

    name: str
    obj: T
    help: str = ""
    default_weights: str | None = None


class Registry(Generic[T]):
    """Maps names to classes or factories; unknown names raise a :class:`ConfigError` listing valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(
        self, name: str, *, help: str = "", default_weights: str | None = None
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = RegistryEntry(name, obj, help, default_weights)
            return obj

        return deco

    def entry(self, name: str) -> RegistryEntry[T]:
        """The entry for ``name``; raises ``ConfigError`` naming the valid choices when unknown."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}'; valid {self.kind}s are {sorted(self._entries)}"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[RegistryEntry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: Any) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
