"""Shared fixtures. The offline environment, the network guard and the ``slow`` selection live in the
repository's root conftest.py (they apply to the doctests of autolabel/ too).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


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
