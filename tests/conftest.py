"""Shared fixtures. The offline environment, the network guard and the ``slow`` selection live in the
repository's root conftest.py (they apply to the doctests of autolabel/ too).

Expensive artefacts (a trained student, its exported bundle) are built once per session, lazily (only when a
selected test asks for them), in a tmp_path_factory folder; they are read-only for tests: a test that
changes one copies it first. A test that asks for one is slow and must say so (checked at collection).
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def _torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------------------
# expensive artefacts, one each per session
# ----------------------------------------------------------------------------------------------------------

# The squares dataset of the tiny student: red / blue thresholds that differ from the default 0.5 so that a
# bundle's thresholds can be traced back to the dataset's ontology.
TINY_ONTOLOGY = {"classes": [{"name": "red", "threshold": 0.4}, {"name": "blue", "threshold": 0.6}]}
TINY_IMAGES, TINY_SEED = 12, 5  # tests that rebuild human labels of these images draw the same squares


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> dict[str, Path]:
    """12 square images (``src``), labeled by ``test-squares`` (``ds``, val 30 %), and a ``test-yolo-tiny``
    student trained on them for one epoch at 64 px (``pt``; ``run`` is its run folder).

    Shared by the export, prune and runtime tests (it was trained once per module before)."""
    from autolabel.core.ontology import Ontology
    from autolabel.labeling.label import LabelConfig, label
    from autolabel.students import TrainConfig, train
    from tests import fakes

    tmp = tmp_path_factory.mktemp("tiny_student")
    fakes.make_square_images(tmp / "src", TINY_IMAGES, seed=TINY_SEED)
    ds = tmp / "ds"
    label(tmp / "src", Ontology.from_dict(TINY_ONTOLOGY), "test-squares", ds,
          LabelConfig(progress=False, val_fraction=0.3))
    with _torch_threads(1):
        run = train(ds, student="test-yolo-tiny", out=tmp / "run",
                    config=TrainConfig(epochs=1, imgsz=64, batch=8, device="cpu", workers=0, close_mosaic=0,
                                       progress=False, ultralytics={"warmup_epochs": 0}))
    return {"src": tmp / "src", "ds": ds, "pt": run.best if run.best.is_file() else run.last, "run": tmp / "run"}


@pytest.fixture(scope="session")
def tiny_bundle(tiny_student, tmp_path_factory) -> Path:
    """The tiny student exported at 64 px: FP32, FP16 and INT8 (8 calibration images), scored on the val split."""
    from autolabel.compress.bundle import ExportConfig, export

    bundle = tmp_path_factory.mktemp("tiny_bundle") / "bundle"
    with _torch_threads(1):
        export(tiny_student["run"], bundle, data=tiny_student["ds"],
               config=ExportConfig(imgsz=64, int8=True, fp16=True, calib_images=8, progress=False))
    return bundle


SLOW_FIXTURES = {"tiny_student", "tiny_bundle", "tiny_classifier"}


def pytest_collection_modifyitems(config, items):
    """A test that asks for a trained or exported artefact is slow: say so, or the quick run would build it."""
    unmarked = [it.nodeid for it in items
                if SLOW_FIXTURES & set(getattr(it, "fixturenames", ())) and not it.get_closest_marker("slow")]
    if unmarked:
        raise pytest.UsageError("these tests train or export through a fixture (" + ", ".join(sorted(SLOW_FIXTURES))
                                + "); mark them @pytest.mark.slow:\n  " + "\n  ".join(unmarked))


@pytest.fixture(scope="session")
def red_blue_squares(tmp_path_factory) -> Path:
    """A labeled detection dataset, read-only: 24 images of red/blue squares labeled by the test-squares teacher
    (val 0.3); the classifier and recipe tests train on its crops."""
    from autolabel.config import LabelConfig
    from autolabel.core.ontology import Ontology
    from autolabel.labeling.label import label
    from tests import fakes

    tmp = tmp_path_factory.mktemp("red_blue_squares")
    fakes.make_square_images(tmp / "src", 24, seed=1)
    onto = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})
    label(tmp / "src", onto, "test-squares", tmp / "ds", LabelConfig(batch_size=8, progress=False, val_fraction=0.3))
    return tmp / "ds"
