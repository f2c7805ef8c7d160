"""Shared fixtures. Tests never touch the network: hubs are forced offline here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Offline before anything imports ultralytics / transformers / huggingface_hub.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo_config"))
os.environ.setdefault("YOLO_VERBOSE", "False")


def weights_path(name: str) -> Path:
    """A real weights file from AUTOLABEL_WEIGHTS_DIR, or skip the test with the reason."""
    d = os.environ.get("AUTOLABEL_WEIGHTS_DIR")
    if not d:
        pytest.skip(f"real weights '{name}' need AUTOLABEL_WEIGHTS_DIR (CI sets it to ../shared/weights)")
    p = Path(d) / name
    if not p.is_file():
        pytest.skip(f"'{name}' not found in AUTOLABEL_WEIGHTS_DIR={d}")
    return p


def shared_data(*parts: str) -> Path:
    """A folder of ../shared/data, or skip with the reason."""
    base = Path(os.environ.get("AUTOLABEL_SHARED_DATA", ROOT.parent / "shared" / "data"))
    p = base.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data '{p}' is absent (set AUTOLABEL_SHARED_DATA)")
    return p


@pytest.fixture
def bus_image() -> np.ndarray:
    """Ultralytics' bus.jpg (4 persons and a bus) as RGB."""
    import cv2
    import ultralytics

    p = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    img = cv2.imread(str(p))
    assert img is not None, p
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture
def assets_dir() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for the module's tests: tiny models on 2 shared cores run far faster (no OpenMP
    contention), and results are deterministic."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
