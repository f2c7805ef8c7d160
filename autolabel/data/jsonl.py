"""Files that a killed process never leaves half-written: atomic writes, and append-only JSON lines.

* :func:`write_atomic` / :func:`atomic_open`: write ``.NAME.tmp`` beside the destination, then rename it over
  the destination; a reader sees the old file or the new one, never a part. (The ``.tmp`` name starts with a
  dot, so the dataset writer's clean-up of image and label folders removes one left by a killed run.)
* :class:`JsonlAppender` / :func:`append_jsonl`: one JSON object a line, a batch per write; with ``fsync``
  the write is the commit point of the batch.
* :func:`iter_jsonl`: the tolerant reader: a torn last line (a killed writer) ends the file; a line that is
  not JSON, or that the caller's ``parse`` refuses, is handed back as a :class:`BadLine` instead of failing.
* :func:`recover_jsonl`: what a writer does before appending again: cut the torn tail, move bad lines aside
  (``NAME.corrupt``), drop the lines the caller refuses (duplicates).

Example:
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> append_jsonl(p, [{"a": 1}, {"a": 2}])
    2
    >>> bad: list[BadLine] = []
    >>> [v for _, _, v in iter_jsonl(p, bad=bad)], bad
    ([{'a': 1}, {'a': 2}], [])
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

from autolabel.core.errors import DatasetError

__all__ = [
    "BadLine",
    "JsonlAppender",
    "Recovery",
    "append_jsonl",
    "atomic_open",
    "dumps_line",
    "iter_jsonl",
    "read_json",
    "recover_jsonl",
    "write_atomic",
]

T = TypeVar("T")


# ----------------------------------------------------------------------------------------------------------
# whole files
# ----------------------------------------------------------------------------------------------------------


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open ``.NAME.tmp`` beside ``path`` for writing; on success it replaces ``path``, on an error it is removed.

    For writes that stream (a large JSON file, a copied image, ``torch.save(obj, f)``)::

        with atomic_open(out / "annotations.coco.json", "w") as f:
            f.write(...)
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open writes a new file: mode must contain 'w', found {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file.

    Raises:
        DatasetError: the file is not valid JSON (one line with the position).
    """
    p = Path(path)
    try:
        return json.loads(p.read_bytes())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{p}: not valid JSON (not UTF-8 text)") from None


# ----------------------------------------------------------------------------------------------------------
# JSON lines: writing
# ----------------------------------------------------------------------------------------------------------


def dumps_line(obj: Any) -> bytes:
    """One compact JSON line, newline included."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class JsonlAppender:
    """Appends JSON lines to a file, a batch per :meth:`append` (one write, flushed, fsync'ed with ``fsync``).

    A process killed mid-write leaves at most a torn last line, which :func:`iter_jsonl` ignores and
    :func:`recover_jsonl` cuts.
    """

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._f: BinaryIO = self.path.open("ab")

    def append(self, objs: Iterable[Any]) -> int:
        """Append one line per object; returns how many."""
        lines = [dumps_line(o) for o in objs]
        if lines:
            self._f.write(b"".join(lines))
            self._f.flush()
            if self.fsync:
                os.fsync(self._f.fileno())
        return len(lines)

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_jsonl(path: str | Path, objs: Iterable[Any], fsync: bool = False) -> int:
    """Append one JSON line per object to ``path`` (created if missing); returns how many."""
    with JsonlAppender(path, fsync=fsync) as f:
        return f.append(objs)


# ----------------------------------------------------------------------------------------------------------
# JSON lines: reading and recovery
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    """A line that is not JSON or that the reader's ``parse`` refused."""

    number: int
    raw: bytes
    reason: str


def _complete_lines(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(1-based number, line) of every line that ends with its newline: a torn last line is not one."""
    for n, line in enumerate(f, 1):
        if not line.endswith(b"\n"):
            return
        yield n, line


def _decode(line: bytes, parse: Callable[[Any], T]) -> tuple[T | None, str | None]:
    try:
        value = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as e:
        return None, f"not valid JSON ({getattr(e, 'msg', e)})"
    try:
        return parse(value), None
    except DatasetError as e:
        return None, str(e)


def _identity(value: Any) -> Any:
    return value


def iter_jsonl(path: str | Path, parse: Callable[[Any], T] = _identity, *,
               bad: list[BadLine]) -> Iterator[tuple[int, bytes, T]]:
    """``(line number, raw line, parse(value))`` of every complete, non-blank line of a JSON-lines file.

    A torn last line (no newline: a killed writer) is not read. A line that is not JSON, or whose value
    ``parse`` refuses by raising :class:`DatasetError`, is appended to ``bad`` and skipped: the caller
    decides whether that is a warning or an error.
    """
    with Path(path).open("rb") as f:
        for n, line in _complete_lines(f):
            if not line.strip():
                continue
            item, reason = _decode(line, parse)
            if reason is None:
                yield n, line, item  # type: ignore[misc]
            else:
                bad.append(BadLine(n, line, reason))


@dataclass
class Recovery:
    """What :func:`recover_jsonl` found and did."""

    kept: int = 0
    dropped: int = 0
    bad: list[BadLine] = field(default_factory=list)
    torn: bool = False


def recover_jsonl(path: str | Path, parse: Callable[[Any], T], keep: Callable[[T], bool],
                  corrupt: str | Path) -> Recovery:
    """Make an append-only JSON-lines file safe to append to again, after any crash.

    Cuts a torn last line; appends bad lines (see :func:`iter_jsonl`) to ``corrupt``; drops the lines for
    which ``keep(item)`` is False (``keep`` is called once per good line, in order, and may record the item).
    The file is rewritten (atomically, after ``corrupt`` is written) only when a line is removed; a torn tail
    alone is truncated. A missing file is created empty.
    """
    path = Path(path)
    out = Recovery()
    if not path.exists():
        path.touch()
        return out
    remove: set[int] = set()
    complete = 0
    with path.open("rb") as f:
        for n, line in _complete_lines(f):
            complete += len(line)
            if not line.strip():
                remove.add(n)
                continue
            item, reason = _decode(line, parse)
            if reason is not None:
                out.bad.append(BadLine(n, line, reason))
                remove.add(n)
            elif keep(item):  # type: ignore[arg-type]
                out.kept += 1
            else:
                out.dropped += 1
                remove.add(n)
    out.torn = complete != path.stat().st_size
    if remove:
        if out.bad:
            with Path(corrupt).open("ab") as c:
                c.writelines(b.raw for b in out.bad)
        with path.open("rb") as f, atomic_open(path, "wb") as w:
            w.writelines(line for n, line in _complete_lines(f) if n not in remove)
    elif out.torn:
        with path.open("r+b") as f:
            f.truncate(complete)
    return out
