"""The Ray engine of `autolabel label`: the same dataset as one process, resumable, a killed worker retried.

One local Ray (2 CPUs, loopback only) is shared by the whole module; the fake teacher of tests/fakes.py and
the ones defined here travel to the workers by value, so the workers need no test module on their path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from autolabel.core.errors import ConfigError
from autolabel.labeling.label import LabelConfig, label
from autolabel.sources import SourceConfig
from tests.conftest import ROOT
from tests.fakes import SquaresTeacher, make_square_images

pytestmark = pytest.mark.slow  # a local Ray cluster, worker processes, a killed driver

ONTOLOGY = {"classes": [{"name": "red", "prompts": ["red square"], "threshold": 0.5},
                        {"name": "blue", "prompts": ["blue square"], "threshold": 0.5}]}
# 2-s blocks so a 7-s test video spans 4 blocks (the engine's units), sampled at 3 fps with de-duplication
SOURCES = SourceConfig(video_fps=3.0, dedup_threshold=2.0, video_group_seconds=2.0)


class PidThenSleepTeacher(SquaresTeacher):
    """Squares, but the first call of all (marker file absent) writes the worker's pid and sleeps, for the
    test to kill that process mid-unit; later calls (the retry) label normally."""

    name = "test-pid-sleep"

    def __init__(self, ontology, weights=None, **kw):
        super().__init__(ontology, None, **kw)
        self.marker = str(weights)

    @property
    def spec(self) -> str:
        return "test-squares"  # labels exactly as test-squares: the same dataset header

    def predict(self, images):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(60)  # killed long before
        return super().predict(images)


from autolabel.teachers import TEACHERS  # noqa: E402

if "test-pid-sleep" not in TEACHERS:
    TEACHERS.register("test-pid-sleep", help="test only: sleeps once to be killed")(PidThenSleepTeacher)


def _write_video(path: Path, seconds: float = 7.0, fps: float = 10.0) -> None:
    """Squares that move for a while, stand still for a while (de-duplicated), then move again."""
    import cv2

    h, w = 96, 128
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    rng = np.random.default_rng(3)
    bg = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
    for i in range(int(seconds * fps)):
        im = bg.copy()
        x = 5 + (i if i < 25 or i > 45 else 25) * 1  # still between frames 25 and 45 (across a block edge)
        im[20:44, x : x + 24] = (20, 20, 230)  # BGR red
        im[60:80, 100 - x // 2 : 120 - x // 2] = (230, 20, 20)  # BGR blue
        vw.write(im)
    vw.release()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray_inputs")
    src = root / "src"
    make_square_images(src, 5, seed=4)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (src / "empty.mp4").write_bytes(b"")
    _write_video(src / "cam.mp4")
    onto = root / "onto.yaml"
    import yaml

    onto.write_text(yaml.safe_dump(ONTOLOGY))
    return src, onto


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray engine's tests need `pip install \"autolabel[ray]\"`")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR",
                 log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    """The single-process dataset every Ray run must reproduce."""
    src, onto = inputs
    out = tmp_path_factory.mktemp("ref") / "ds"
    label([src], onto, "test-squares", out, LabelConfig(batch_size=2, sources=SOURCES, progress=False))
    return out


def _cfg(**kw) -> LabelConfig:
    return LabelConfig(**{"batch_size": 2, "sources": SOURCES, "progress": False, "engine": "ray", **kw})


def _dataset(root: Path) -> dict:
    """Everything that must match, independent of record order: records, label files, images, COCO by file."""
    recs = [json.loads(line) for line in (root / "autolabel.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)), "a record twice"
    files = {str(p.relative_to(root)): p.read_bytes() for sub in ("images", "labels") for p in (root / sub).rglob("*")
             if p.is_file()}
    coco = json.loads((root / "annotations.coco.json").read_text())
    names = {im["id"]: im["file_name"] for im in coco["images"]}
    anns = sorted((names[a["image_id"]], a["category_id"], a["bbox"], a["score"], a["soft_scores"])
                  for a in coco["annotations"])
    summary = json.loads((root / "summary.json").read_text())
    keep = ("images", "train", "val", "boxes", "boxes_per_class", "uncertain_boxes", "skipped")
    report = {k: v for k, v in summary["source_report"].items()}
    return {"records": sorted(json.dumps(r, sort_keys=True) for r in recs), "files": files,
            "coco_images": sorted((im["file_name"], im["width"], im["height"]) for im in coco["images"]),
            "coco_anns": anns, "categories": coco["categories"],
            "summary": {k: summary.get(k) for k in keep}, "source_report": report}


def test_ray_same_dataset_as_local(ray_cluster, inputs, reference, tmp_path):
    """Images and a video split in 4 blocks over 2 workers: the very dataset one process writes, bad inputs
    reported the same; a rerun skips every committed unit without decoding it."""
    src, onto = inputs
    ref = _dataset(reference)
    assert len(ref["records"]) > 10 and any('"frame_index":null' not in r for r in ref["records"])
    skipped = {s["path"]: s["reason"] for s in ref["summary"]["skipped"]}
    assert set(skipped) == {str(src / "broken.jpg"), str(src / "empty.mp4")}
    assert ref["source_report"]["frames_deduplicated"] > 0  # the still stretch is de-duplicated

    res = label([src], onto, "test-squares", tmp_path / "ray", _cfg(workers=2))
    assert res.summary["engine"]["units_this_run"] >= 4 + 3  # 4 video blocks, 3 image units, empty video
    got = _dataset(tmp_path / "ray")
    for key in ref:
        assert got[key] == ref[key], key

    again = label([src], onto, "test-squares", tmp_path / "ray", _cfg(workers=2))
    assert again.summary["labeled_this_run"] == 0
    assert again.summary["engine"]["units_this_run"] == 2  # the two unreadable inputs are tried again
    assert again.summary["engine"]["units_skipped"] == 4
    assert _dataset(tmp_path / "ray") == got


@pytest.mark.slow
def test_ray_worker_killed_mid_unit(ray_cluster, inputs, reference, tmp_path):
    """The process of the actor labeling a unit is killed; Ray restarts it and retries the unit; the
    dataset holds each record exactly once and equals the single-process one."""
    src, onto = inputs
    marker = tmp_path / "pid"
    killed: list[int] = []

    def killer() -> None:
        for _ in range(1200):
            if marker.is_file() and marker.read_text().strip():
                pid = int(marker.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    res = label([src], onto, f"test-pid-sleep:{marker}", tmp_path / "ray", _cfg(workers=2))
    th.join(timeout=5)
    assert killed, "the teacher never started"
    got = _dataset(tmp_path / "ray")
    ref = _dataset(reference)
    for key in ref:
        assert got[key] == ref[key], key
    assert res.summary["labeled_this_run"] == res.summary["images"]
    assert not (tmp_path / "ray" / ".shards").exists()  # the killed attempt's staged files are gone


@pytest.mark.slow
def test_ray_resume_after_driver_killed(ray_cluster, inputs, reference, tmp_path):
    """The driver is killed (SIGKILL) mid-run; a rerun labels only what was not committed and the result
    is the single-process dataset."""
    src, onto = inputs
    out = tmp_path / "ray"
    address = ray_cluster.get_runtime_context().gcs_address
    code = (
        "import tests.fakes\n"
        "from autolabel.labeling.label import LabelConfig, label\n"
        "from autolabel.sources import SourceConfig\n"
        f"label([{str(src)!r}], {str(onto)!r}, 'test-squares:0.3', {str(out)!r}, LabelConfig(batch_size=2, "
        "progress=False, engine='ray', address=" + repr(address) + ", workers=2, "
        "sources=SourceConfig(video_fps=3.0, dedup_threshold=2.0, video_group_seconds=2.0)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    side = out / "autolabel.jsonl"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if side.is_file() and len(side.read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = len(side.read_bytes().splitlines())
    total = len(_dataset(reference)["records"])
    assert 3 <= first < total

    res = label([src], onto, "test-squares:0.3", out, _cfg(workers=2))
    assert res.summary["labeled_this_run"] == total - first
    got = _dataset(out)
    ref = _dataset(reference)
    for key in ref:
        assert got[key] == ref[key], key


def test_ray_gpus_without_gpus_is_one_line(ray_cluster, inputs, tmp_path):
    src, onto = inputs
    t = time.perf_counter()
    with pytest.raises(ConfigError, match=r"--gpus-per-worker 1 needs GPUs, but the Ray cluster .* has 0"):
        label([src], onto, "test-squares", tmp_path / "ds", _cfg(gpus_per_worker=1))
    assert time.perf_counter() - t < 10
    assert not (tmp_path / "ds").exists()  # nothing written


def test_ray_teacher_error_is_one_line(ray_cluster, inputs, tmp_path):
    src, onto = inputs
    with pytest.raises(ConfigError, match=r"unknown teacher 'no-such-teacher'"):
        label([src], onto, "no-such-teacher", tmp_path / "ds", _cfg(workers=1))


def test_ray_missing_extra(monkeypatch, capsys, inputs, tmp_path):
    """Without Ray, --engine ray fails with one line naming the extra, before anything is written."""
    src, onto = inputs
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r'pip install "autolabel\[ray\]"'):
        label([src], onto, "test-squares", tmp_path / "ds", _cfg())
    assert not (tmp_path / "ds").exists()

    from autolabel.app.cli import main

    code = main(["label", str(src), "-o", str(onto), "-t", "test-squares", "--out", str(tmp_path / "ds"),
                 "--engine", "ray", "-q"])
    assert code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'pip install "autolabel[ray]"' in lines[0], lines


@pytest.mark.parametrize(("kw", "match"), [
    ({"engine": "spark"}, r"engine must be one of \['local', 'ray'\], found 'spark'"),
    ({"engine": "ray", "workers": 0}, r"workers must be an integer >= 1"),
    ({"engine": "ray", "gpus_per_worker": -1}, r"gpus_per_worker must be >= 0"),
    ({"engine": "ray", "cpus_per_worker": 0}, r"cpus_per_worker must be > 0"),
    ({"address": "auto"}, r"settings of engine 'ray'"),
    ({"workers": 2}, r"settings of engine 'ray'"),
])
def test_engine_settings_checked(kw, match):
    with pytest.raises(ConfigError, match=match):
        LabelConfig(**kw)


def test_pipeline_label_engine_key():
    from autolabel.app.pipeline import load_pipeline_config as load_config
    from autolabel.app.stages import label_config

    cfg = load_config(None, ["label.engine=ray", "label.workers=2", "label.gpus_per_worker=0.5"])
    lc = label_config(cfg)
    assert (lc.engine, lc.workers, lc.gpus_per_worker) == ("ray", 2, 0.5)
    with pytest.raises(ConfigError, match=r"label\.engine must be one of"):
        load_config(None, ["label.engine=spark"])
    with pytest.raises(ConfigError, match=r"label\.workers must be an integer >= 1"):
        load_config(None, ["label.engine=ray", "label.workers=0"])
