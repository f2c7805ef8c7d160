"""Lazy public names for a package's ``__init__``: the module that defines a name is imported on first use.

This keeps ``import autolabel`` (and ``autolabel --help``) free of torch, ultralytics and onnx. One helper for
every package instead of a copy of ``__getattr__``/``__dir__`` in each ``__init__.py``::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"train": "autolabel.students.yolo.train"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], eager: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``exports`` (public name → defining module).

    A name is looked up in its module on first access and cached in the package's namespace, so it then
    shadows any submodule of the same name (``from autolabel import label`` is the function, even after
    ``import autolabel.labeling.label``). ``eager``: names the package defines itself, listed in ``__all__``.
    """
    names = sorted({*exports, *eager})

    def __getattr__(name: str) -> Any:
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(mod), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__, names
