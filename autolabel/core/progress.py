"""One progress helper for every long loop (labeling, training, calibration).

Stages never print; they wrap their loops in :func:`progress`, which draws a tqdm bar on stderr when
enabled and is silent otherwise (tests, ``--quiet``, non-interactive logs can turn it off).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["ProgressBar", "progress"]


class ProgressBar:
    """A manual progress bar (``update(n)``, ``set_postfix``), a no-op when disabled."""

    def __init__(self, total: int | None = None, desc: str = "", enabled: bool = True, initial: int = 0,
                 unit: str = "it") -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, initial=initial, unit=unit, dynamic_ncols=True, leave=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, **kw: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**kw, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Iterate with a progress bar when ``enabled``."""
    with ProgressBar(total=total, desc=desc, enabled=enabled) as bar:
        for item in iterable:
            yield item
            bar.update()
