"""What every pytest run of this repository shares: the tests under tests/ and the doctests of autolabel/.

* Offline: the hubs are forced offline before anything imports ultralytics / transformers, and a fixture
  fails any test or doctest that tries to reach the network.
* ``slow``: tests that train, label with real models, export / quantize, start Ray or run the CLI in a
  subprocess are marked ``@pytest.mark.slow`` and left out of a plain ``pytest -q`` (about a minute);
  ``pytest -q --runslow`` (or ``AUTOLABEL_SLOW=1``) runs everything, as CI does. An explicit ``-m`` that
  names ``slow`` (``-m slow``) is obeyed as written.
* Doctests print numpy arrays with numpy's default options (Ultralytics changes them when it is imported).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# Offline before anything imports ultralytics / transformers / huggingface_hub.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo_config"))
os.environ.setdefault("YOLO_VERBOSE", "False")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (training, real models, export, Ray, CLI subprocesses); "
                          "AUTOLABEL_SLOW=1 does the same")


def _run_slow(config: pytest.Config) -> bool:
    return bool(config.getoption("--runslow")) or os.environ.get("AUTOLABEL_SLOW", "") not in ("", "0")


def pytest_report_header(config: pytest.Config) -> str:
    if _run_slow(config):
        return "slow tests: included"
    if "slow" in (config.option.markexpr or ""):
        return f"slow tests: as -m {config.option.markexpr!r} says"
    return "slow tests: left out (--runslow or AUTOLABEL_SLOW=1 runs them)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _run_slow(config) or "slow" in (config.option.markexpr or ""):
        return
    slow = [it for it in items if it.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [it for it in items if not it.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _numpy_default_printoptions(request):
    """Doctests show arrays as numpy prints them by default; importing Ultralytics sets a global formatter."""
    if type(request.node).__name__ != "DoctestItem":
        yield
        return
    import numpy as np

    with np.printoptions(edgeitems=3, threshold=1000, floatmode="maxprec", precision=8, suppress=False,
                         linewidth=75, nanstr="nan", infstr="inf", sign="-", formatter=None, legacy=False):
        yield


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never touch the network: any connection to a non-loopback address fails the test.

    Libraries often catch the error of a refused download and carry on (a warning, a fallback), so the
    attempts are recorded and checked after the test, not only raised.
    """
    import socket

    attempts: list[object] = []
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        local = self.family == getattr(socket, "AF_UNIX", None) or (
            isinstance(host, str) and (host.startswith("127.") or host in {"localhost", "::1"})
        )
        if not local:
            import traceback

            attempts.append(f"{address} from\n{''.join(traceback.format_stack(limit=25)[:-1])}")
            raise OSError(f"tests never touch the network (tried {address})")
        return real(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or host in {"localhost", "::1"} or str(host).startswith("127."):
            return real_getaddrinfo(host, *args, **kwargs)
        import traceback

        attempts.append(f"{host} from\n{''.join(traceback.format_stack(limit=25)[:-1])}")
        raise socket.gaierror(f"tests never touch the network (looked up {host})")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    yield
    assert not attempts, "the test tried to reach the network: " + "\n".join(map(str, attempts))
