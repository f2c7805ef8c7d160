"""One definition per setting: a stage's config dataclass field is the source of its CLI option, its pipeline
key, its default, its help text and its check.

A field becomes a user-facing *setting* by being declared with :func:`setting`::

    @dataclass(frozen=True)
    class LabelConfig:
        batch_size: int = setting(8, "Images per teacher forward pass.")
        val_fraction: float = setting(0.2, "Fraction of images in the val split.", flag="--val")

From there, without a second definition anywhere:

- the CLI command gets ``--batch-size`` (type, default and help from the field) through :func:`cli_settings`;
- the pipeline section gets the key ``batch_size`` with the field's default (:func:`section_defaults`);
- a pipeline value is checked against the field's annotation and then by the dataclass' own checks, with
  the message naming the pipeline key (:func:`build`).

Fields declared the plain way (``progress: bool = True``) are internal: neither an option nor a key.
The way Ultralytics feeds its CLI and its Python API from one defaults file, only here the file is the
dataclass itself, so adding a setting is one line in one place.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autolabel.core.errors import ConfigError

__all__ = ["Setting", "build", "check_value", "cli_settings", "conforms", "describe", "section_defaults",
           "setting", "settings_of"]

_META = "autolabel.setting"


@dataclasses.dataclass(frozen=True)
class Setting:
    """A user-facing setting: one field of a config dataclass, as the CLI and the pipeline see it."""

    name: str  # the dataclass field
    key: str  # the pipeline key (in its section) and the CLI option's name (``--key-with-dashes``)
    type: Any
    default: Any
    help: str
    flag: str | tuple[str, ...] | None  # the CLI option(s) when not ``--key`` (``"--soft/--hard-only"``, ``("--model", "-m")``)
    cli: bool  # offered as a CLI option
    pipeline: bool  # offered as a pipeline key
    cli_type: Any = None  # the option's type when the field's annotation is wider (a path or a model object)

    @property
    def option(self) -> tuple[str, ...]:
        if isinstance(self.flag, tuple):
            return self.flag
        if self.flag:
            return (self.flag,)
        name = self.key.replace("_", "-")
        return (f"--{name}/--no-{name}",) if self.type is bool else (f"--{name}",)


def setting(default: Any = dataclasses.MISSING, help: str = "", *, key: str | None = None,
            flag: str | tuple[str, ...] | None = None, cli: bool = True, pipeline: bool = True,
            cli_type: Any = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is a user-facing setting (see the module docstring).

    Args:
        default: the one default (CLI, pipeline and Python API alike).
        help: one line for ``--help`` and the pipeline reference.
        key: the pipeline key / option name when it is not the field's name (``fps`` for ``video_fps``).
        flag: the CLI option when it is not ``--key`` (e.g. ``--val`` for ``val_fraction``).
        cli, pipeline: offer the setting on the command line / in pipeline files (both by default).
        cli_type: the option's type where the field takes more in Python (e.g. ``str | None`` for a field that
            also takes a loaded model); pipeline values are checked against it too.
    """
    meta = {_META: {"help": help, "key": key, "flag": flag, "cli": cli, "pipeline": pipeline, "cli_type": cli_type}}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@functools.cache
def settings_of(cls: type) -> tuple[Setting, ...]:
    """The settings a config dataclass declares, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append(Setting(name=f.name, key=meta["key"] or f.name, type=hints[f.name], default=default,
                           help=meta["help"], flag=meta["flag"], cli=meta["cli"], pipeline=meta["pipeline"],
                           cli_type=meta["cli_type"]))
    return tuple(out)


def section_defaults(*classes: type, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``{key: default}`` of every pipeline setting of ``classes`` (a pipeline section's defaults).

    A key several classes share (``device`` of labeling and of classification labeling) must have one
    default; a second class may not contradict the first.
    """
    out: dict[str, Any] = {}
    skip = set(exclude)
    for cls in classes:
        for s in settings_of(cls):
            if not s.pipeline or s.key in skip:
                continue
            if s.key in out and out[s.key] != s.default:
                raise AssertionError(f"setting '{s.key}': {cls.__name__} default {s.default!r} contradicts "
                                     f"{out[s.key]!r} of an earlier class in the same section")
            out.setdefault(s.key, list(s.default) if isinstance(s.default, tuple) else s.default)  # YAML has lists
    return out


# ----------------------------------------------------------------------------------------------------------
# checking values against a field's annotation
# ----------------------------------------------------------------------------------------------------------


def conforms(value: Any, tp: Any) -> bool:
    """Whether ``value`` (parsed from YAML or given in Python) fits the type annotation ``tp``.

    >>> conforms(3, int), conforms(True, int), conforms(0.5, float | None), conforms("a", int | None)
    (True, False, True, False)
    """
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if tp is Path:
        return isinstance(value, (str, Path))
    base = origin or tp
    if base in (list, tuple, Sequence) or (isinstance(base, type) and issubclass(base, Sequence) and base is not str):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(conforms(v, args[0]) for v in value) if args else \
            isinstance(value, (list, tuple))
    if base in (dict, Mapping) or (isinstance(base, type) and issubclass(base, Mapping)):
        return isinstance(value, Mapping)
    return isinstance(value, base) if isinstance(base, type) else True


def describe(tp: Any) -> str:
    """A type annotation in words, for error messages.

    >>> describe(float | None)
    'a number or null'
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(parts)) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text", Path: "a path"}
    if tp in names:
        return names[tp]
    base = origin or tp
    if base in (dict, Mapping) or (isinstance(base, type) and issubclass(base, Mapping)):
        return "a mapping"
    if base in (list, tuple, Sequence) or (isinstance(base, type) and issubclass(base, Sequence)):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {describe(args[0])}" if args else "a list"
    return getattr(tp, "__name__", str(tp))


def check_value(key: str, value: Any, tp: Any) -> Any:
    """``value`` if it fits ``tp``, else a :class:`ConfigError` naming ``key``."""
    if not conforms(value, tp):
        raise ConfigError(f"{key} must be {describe(tp)}, found {value!r}")
    return value


def build(cls: type, fields: Mapping[str, tuple[str, Any]],
          extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] = ()) -> Any:
    """``cls(**values)`` where ``fields`` maps a dataclass field to (user-facing key, value).

    Every value is checked against the field's annotation first (a wrong type names the key, what was
    expected and what was found), then the dataclass checks ranges in ``__post_init__`` (or ``check()``); its
    message is re-worded with the user-facing keys. ``extra``: fields not set by the user (derived after the
    type check when a callable).
    """
    hints = typing.get_type_hints(cls)
    hints.update({s.name: s.cli_type for s in settings_of(cls) if s.cli_type is not None})
    for name, (key, value) in fields.items():
        check_value(key, value, hints[name])
    kwargs = {name: value for name, (_key, value) in fields.items()}
    kwargs.update(extra() if callable(extra) else dict(extra))
    try:
        obj = cls(**kwargs)
        check = getattr(obj, "check", None)
        if callable(check):
            check()
    except ConfigError as e:
        msg = str(e)
        for name, (key, _value) in sorted(fields.items(), key=lambda kv: -len(kv[0])):
            msg = re.sub(rf"(?<![\w.]){re.escape(name)}(?![\w])", key, msg)
        raise ConfigError(msg if any(k in msg for k, _ in fields.values()) else
                          f"{cls.__name__}: {msg}") from None
    except (TypeError, ValueError) as e:  # a check the dataclass has no friendly message for
        raise ConfigError(f"invalid {cls.__name__} settings ({e})") from None
    return obj


def section_fields(cls: type, section: Mapping[str, Any], where: str,
                   exclude: Iterable[str] = ()) -> dict[str, tuple[str, Any]]:
    """``{field: (where.key, value)}`` for every pipeline setting of ``cls`` found in ``section``."""
    skip = set(exclude)
    return {s.name: (f"{where}.{s.key}", section[s.key]) for s in settings_of(cls)
            if s.pipeline and s.key in section and s.key not in skip}


# ----------------------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------------------


def cli_settings(*classes: type, exclude: Iterable[str] = (), defaults: Mapping[str, Any] | None = None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add every CLI setting of ``classes`` to a typer command as an option.

    The command declares its own arguments plus a keyword ``settings``; it receives
    ``{class: {field name: value}}`` of the generated options, ready for ``cls(**settings[cls])``. A key two
    classes share is one option, given to both. ``defaults`` overrides a field's default for this command
    only, for a setting whose meaning differs between commands (say why where it is used).
    """
    skip = set(exclude)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        import typer

        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "settings"]
        taken = {p.name for p in own}
        added: dict[str, Setting] = {}
        owners: dict[str, list[tuple[type, str]]] = {}
        for cls in classes:
            for s in settings_of(cls):
                if not s.cli or s.key in skip or s.key in taken:
                    continue
                added.setdefault(s.key, s)
                owners.setdefault(s.key, []).append((cls, s.name))
        params = list(own)
        for key, s in added.items():
            default = (defaults or {}).get(s.name, s.default)
            params.append(inspect.Parameter(
                key, inspect.Parameter.KEYWORD_ONLY, default=default,
                annotation=typing.Annotated[s.cli_type or s.type, typer.Option(*s.option, help=s.help,
                                                                               show_default=True)]))

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values: dict[type, dict[str, Any]] = {cls: {} for cls in classes}
            for key in [k for k in kwargs if k in added]:
                value = kwargs.pop(key)
                for cls, name in owners[key]:
                    values[cls][name] = value
            return fn(**kwargs, settings=values)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must see the new signature, not the function's
        return command

    return deco
