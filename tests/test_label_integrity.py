"""Nothing lost, nothing twice: id collisions, concurrent runs, changed source lists, dotfiles, truncated
videos, corrupt sidecar lines, decoded bytes in flight, and Pillow's own Image.open (issue 11)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from autolabel.app.cli import main
from autolabel.core.errors import ConfigError, DatasetError
from autolabel.core.ontology import Ontology
from autolabel.data.dataset import (
    CORRUPT_FILE,
    LOCK_FILE,
    SIDECAR_FILE,
    DatasetLock,
    check_dataset,
    read_records,
)
from autolabel.labeling.label import LabelConfig, label, prefetch_batches
from autolabel.sources import Frame, SourceConfig, SourceReport, discover, iter_frames
from tests import fakes

ONTO = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})
CFG = LabelConfig(batch_size=4, progress=False, val_fraction=0.3)
STRIDE = LabelConfig(batch_size=4, progress=False, val_fraction=0.3,
                     sources=SourceConfig(video_fps=None, video_stride=10, dedup_threshold=0))


def _square(path: Path, seed: int = 0) -> Path:
    """One test-squares image (a red square on grey) saved at ``path`` (format from the suffix)."""
    rng = np.random.default_rng(seed)
    im = rng.integers(90, 140, (48, 64, 3), dtype=np.uint8)
    x = int(rng.integers(0, 30))
    im[10:30, x : x + 20] = (230, 20, 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(im).save(path)
    return path


def _video(path: Path, n: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(n):
        im = np.full((48, 64, 3), 120, np.uint8)
        im[10:30, i : i + 20] = (20, 20, 230)  # BGR red, moving
        vw.write(im)
    vw.release()
    return path


def _files_by_split(out: Path) -> dict[str, set[str]]:
    return {s: {p.stem for p in (out / "images" / s).iterdir()} for s in ("train", "val")}


# ------------------------------------------------------------------------------------------ id collisions

COLLIDING = ["a__x.jpg", "a/x.jpg", "日本/x.jpg", "中国/x.jpg", "x_y/x.jpg", "x y/x.jpg", "cam_f0000000.jpg"]


def test_colliding_names_get_distinct_stable_ids(tmp_path):
    for i, name in enumerate(COLLIDING):
        _square(tmp_path / "src" / name, i)
    _video(tmp_path / "src" / "cam.avi", 30)
    items = list(discover([tmp_path / "src"]))
    ids = [m.id for m in items]
    assert len(ids) == len(set(ids)) == 8
    assert {"a__x", "x_y__x"} <= set(ids)  # plain names keep their id (existing datasets resume)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", i) and not i.startswith(".") for i in ids)
    frames = [f.id for f in iter_frames([tmp_path / "src"], STRIDE.sources)]
    assert len(frames) == len(set(frames)) == 7 + 3  # 7 images + frames 0, 10, 20 of cam.avi
    assert [m.id for m in discover([tmp_path / "src"])] == ids  # stable


def test_n_files_found_n_labeled(tmp_path):
    for i, name in enumerate(COLLIDING):
        _square(tmp_path / "src" / name, i)
    _video(tmp_path / "src" / "cam.avi", 30)
    res = label(tmp_path / "src", ONTO, "test-squares", tmp_path / "ds", STRIDE)
    assert res.summary["images"] == res.summary["labeled_this_run"] == 10 and not res.summary["skipped"]
    recs = list(read_records(res.out))
    assert len({r.id for r in recs}) == len({(r.source, r.frame_index) for r in recs}) == 10
    check_dataset(res.out)
    fakes.CALLS.clear()
    again = label(tmp_path / "src", ONTO, "test-squares", tmp_path / "ds", STRIDE)
    assert again.summary["labeled_this_run"] == 0 and again.summary["images"] == 10 and fakes.CALLS == []


# ------------------------------------------------------------------------------- concurrent runs, resume


def test_a_second_run_on_a_locked_folder_fails_with_one_line(tmp_path, capsys):
    fakes.make_square_images(tmp_path / "src", 3)
    out = tmp_path / "ds"
    with DatasetLock(out):
        with pytest.raises(DatasetError, match=r"being written by another autolabel run \(pid \d+\)"):
            label(tmp_path / "src", ONTO, "test-squares", out, CFG)
        onto = tmp_path / "o.yaml"
        onto.write_text("classes:\n  - name: red\n  - name: blue\n")
        code = main(["label", str(tmp_path / "src"), "-o", str(onto), "-t", "test-squares", "--out", str(out), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "another autolabel run" in err
    # A lock file left by a killed run (no process holds it) is taken over; the lock file is gone after.
    assert not out.exists()  # the test's own lock created the folder and removed it again
    out.mkdir()
    (out / LOCK_FILE).write_text("999999999\n")
    assert label(tmp_path / "src", ONTO, "test-squares", out, CFG).summary["images"] == 3
    assert not (out / LOCK_FILE).exists()
    # A failed run leaves no empty output folder behind.
    with pytest.raises(Exception, match="unknown teacher"):
        label(tmp_path / "src", ONTO, "nosuch", tmp_path / "never", CFG)
    assert not (tmp_path / "never").exists()


@pytest.mark.slow
def test_two_processes_on_one_folder_never_double_records(tmp_path):
    fakes.make_square_images(tmp_path / "src", 12)
    out = tmp_path / "ds"
    script = fakes.label_script(tmp_path / "src", out, 'test-squares:0.2')
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / SIDECAR_FILE).exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with pytest.raises(DatasetError, match="another autolabel run"):
            label(tmp_path / "src", Ontology.from_names(["red", "blue"]), "test-squares", out,
                  LabelConfig(batch_size=2, progress=False))
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    recs = list(read_records(out))
    assert len(recs) == len({r.id for r in recs}) == 12


def test_adding_a_source_on_resume_labels_only_the_new_files(tmp_path):
    fakes.make_square_images(tmp_path / "camA", 4)
    _square(tmp_path / "camA" / "camB" / "img0000.png", 9)  # id camB__img0000 in a run on camA alone
    fakes.make_square_images(tmp_path / "camB", 3, seed=5)
    out = tmp_path / "ds"
    first = label(tmp_path / "camA", ONTO, "test-squares", out, CFG)
    assert first.summary["images"] == 5
    fakes.CALLS.clear()
    res = label([tmp_path / "camA", tmp_path / "camB"], ONTO, "test-squares", out, CFG)
    assert res.summary["labeled_this_run"] == 3 and res.summary["images"] == 8 and sum(fakes.CALLS) == 3
    recs = list(read_records(out))
    assert len({r.id for r in recs}) == len({r.source for r in recs}) == 8
    by_split = _files_by_split(out)
    assert not by_split["train"] & by_split["val"]
    assert sum(len(v) for v in by_split.values()) == 8
    check_dataset(out)
    again = label([tmp_path / "camA", tmp_path / "camB"], ONTO, "test-squares", out, CFG)
    assert again.summary["labeled_this_run"] == 0 and again.summary["images"] == 8


def test_dotfile_named_on_the_command_line_is_labeled_and_kept(tmp_path):
    hidden = _square(tmp_path / "src" / ".hidden.jpg", 1)
    plain = _square(tmp_path / "src" / "b.jpg", 2)
    res = label([hidden, plain], ONTO, "test-squares", tmp_path / "ds", CFG)
    assert res.summary["images"] == 2
    recs = list(read_records(res.out))
    assert all(not r.id.startswith(".") and (res.out / r.image).is_file() for r in recs)
    check_dataset(res.out)
    assert label([hidden, plain], ONTO, "test-squares", tmp_path / "ds", CFG).summary["labeled_this_run"] == 0


# ------------------------------------------------------------------------------------- truncated video


def test_truncated_video_is_reported(tmp_path):
    path = _video(tmp_path / "full" / "cam.avi", 60)
    data = path.read_bytes()
    cut = tmp_path / "cut" / "cam.avi"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    report = SourceReport()
    frames = list(iter_frames([cut], STRIDE.sources, report))
    assert 0 < len(frames) < 6
    (p, reason), = report.skipped
    assert p == str(cut) and re.search(r"truncated or corrupt video: decoding stopped at frame \d+ of the 60", reason)
    res = label(cut, ONTO, "test-squares", tmp_path / "ds", STRIDE)
    assert any("truncated" in s["reason"] for s in res.summary["skipped"])
    whole = SourceReport()
    assert len(list(iter_frames([path], STRIDE.sources, whole))) == 6 and not whole.skipped


# ---------------------------------------------------------------------------------- corrupt sidecar lines


def test_corrupt_sidecar_line_costs_only_its_record(tmp_path):
    fakes.make_square_images(tmp_path / "src", 6)
    out = tmp_path / "ds"
    label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    side = out / SIDECAR_FILE
    lines = side.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"id": "img00\xff broken\n'
    side.write_bytes(b"".join(lines))
    with pytest.warns(UserWarning, match=r"1 corrupt line\(s\) skipped \(first at line 3\)"):
        assert len(list(read_records(out))) == 5
    with pytest.raises(DatasetError, match=r"1 corrupt line\(s\).*repair"):
        check_dataset(out)
    with pytest.warns(UserWarning, match=r"kept 5 valid record\(s\); 1 corrupt line\(s\) \(first at line 3\) moved"):
        res = label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    assert res.summary["labeled_this_run"] == 1 and res.summary["images"] == 6
    assert res.summary["sidecar_repairs"]["corrupt_lines"] == 1
    assert (out / CORRUPT_FILE).read_bytes() == b'{"id": "img00\xff broken\n'
    check_dataset(out)
    assert len(list(read_records(out))) == 6


def test_duplicate_records_of_older_runs_are_dropped(tmp_path):
    fakes.make_square_images(tmp_path / "src", 4)
    out = tmp_path / "ds"
    label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    side = out / SIDECAR_FILE
    side.write_bytes(side.read_bytes() * 2)  # what two concurrent runs used to leave
    with pytest.raises(DatasetError, match="a second record of image"):
        check_dataset(out)
    with pytest.warns(UserWarning, match=r"4 duplicate record\(s\) dropped"):
        res = label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    assert res.summary["images"] == 4 and res.summary["labeled_this_run"] == 0
    check_dataset(out)


# ---------------------------------------------------------------------------------- bytes in flight


def _peak_in_flight(max_bytes: int | None, n: int = 24, side: int = 300) -> tuple[int, int]:
    """(frames seen, peak bytes decoded and not yet finished by a slow consumer) through prefetch_batches."""
    lock = threading.Lock()
    alive, peak = [0], [0]

    def decoder():  # a fake that records its peak: bytes decoded minus bytes the consumer finished
        for i in range(n):
            img = np.zeros((side, side, 3), np.uint8)
            with lock:
                alive[0] += img.nbytes
                peak[0] = max(peak[0], alive[0])
            yield Frame(id=f"f{i}", image=img, source="x", group="g")

    seen = 0
    for batch in prefetch_batches(decoder(), size=4, depth=2, max_bytes=max_bytes):
        time.sleep(0.01)  # a slow teacher: the decoder runs ahead as far as it is allowed
        seen += len(batch)
        with lock:
            alive[0] -= sum(f.image.nbytes for f in batch)
    return seen, peak[0]


@pytest.mark.parametrize("budget_frames", [1, 3, 0.001])
def test_prefetch_bytes_bound_decoded_bytes_in_flight(budget_frames):
    frame_bytes = 300 * 300 * 3
    budget = max(1, int(budget_frames * frame_bytes))
    seen, peak = _peak_in_flight(budget)
    assert seen == 24  # a frame larger than the whole budget still gets through
    assert peak <= budget + frame_bytes, (peak, budget)


def test_frames_only_bound_lets_many_frames_through():
    seen, peak = _peak_in_flight(None)
    assert seen == 24 and peak >= 8 * 300 * 300 * 3  # what the byte budget above prevents


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "1G"])
def test_prefetch_bytes_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match="prefetch_bytes must be an integer >= 1"):
        LabelConfig(prefetch_bytes=value)


# ------------------------------------------------------------------------------ Ultralytics' Image.open


def test_text_named_jpg_never_triggers_an_install_after_importing_ultralytics(tmp_path, monkeypatch):
    import ultralytics.utils.checks as checks
    import ultralytics.utils.patches as patches

    if not hasattr(patches, "image_open"):
        pytest.skip("this Ultralytics does not patch PIL.Image.open")
    # as right after a user's script imported Ultralytics (autolabel's own import undoes it, so the patch is
    # put back here for the test; monkeypatch restores Pillow's afterwards)
    monkeypatch.setattr(Image, "open", patches.image_open)
    calls: list[object] = []
    monkeypatch.setattr(checks, "check_requirements", lambda *a, **k: calls.append(a) or True)
    for name in ("run", "Popen", "check_call", "check_output", "call"):
        monkeypatch.setattr(subprocess, name, lambda *a, **k: calls.append(a) or pytest.fail(f"ran {a}"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.jpg").write_text("this is not an image")
    _square(tmp_path / "src" / "y.png")
    report = SourceReport()
    ids = [f.id for f in iter_frames([tmp_path / "src"], report=report)]
    assert ids == ["y"] and calls == []
    (path, reason), = report.skipped
    assert path.endswith("x.jpg") and reason.startswith("not an image")


def test_shutil_copy_of_dataset_keeps_resuming(tmp_path):
    """A dataset folder moved elsewhere (or sources remounted) still resumes by id."""
    fakes.make_square_images(tmp_path / "src", 4)
    label(tmp_path / "src", ONTO, "test-squares", tmp_path / "ds", CFG)
    shutil.move(tmp_path / "src", tmp_path / "moved")
    res = label(tmp_path / "moved", ONTO, "test-squares", tmp_path / "ds", CFG)
    assert res.summary["labeled_this_run"] == 0 and res.summary["images"] == 4
    assert os.path.isdir(tmp_path / "ds")
