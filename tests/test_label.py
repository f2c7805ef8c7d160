"""The labeling stage end to end with the test teacher: layout, sidecar, resume, kill -9, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from autolabel.app.cli import main
from autolabel.core.errors import DatasetError, SourceError
from autolabel.core.ontology import Ontology
from autolabel.data.dataset import SIDECAR_FILE, check_dataset, read_meta, read_records
from autolabel.labeling.label import LabelConfig, label
from tests import fakes

ONTO = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.5}, {"name": "blue", "threshold": 0.5}]})
CFG = LabelConfig(batch_size=4, progress=False, val_fraction=0.3)


def _label_lines(root: Path, rec: dict) -> list[list[float]]:
    return [list(map(float, ln.split())) for ln in (root / rec.label).read_text().splitlines()]


def test_layout_sidecar_and_coco_agree(tmp_path):
    truth = fakes.make_square_images(tmp_path / "src", 12)
    out = tmp_path / "ds"
    res = label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    s = res.summary
    assert s["images"] == 12 and s["train"] + s["val"] == 12 and s["train"] > 0 and s["val"] > 0
    assert s["boxes"] == sum(len(t) for t in truth)
    assert s["boxes_per_class"] == {"red": sum(b[0] == 0 for t in truth for b in t),
                                    "blue": sum(b[0] == 1 for t in truth for b in t)}
    for f in ("data.yaml", "autolabel.json", SIDECAR_FILE, "annotations.coco.json", "preview.jpg", "summary.json"):
        assert (out / f).is_file(), f
    meta = check_dataset(out, num_classes=2)
    assert meta.teacher == "test-squares" and meta.names == ("red", "blue")
    recs = list(read_records(out))
    assert len(recs) == 12
    for rec in recs:
        lines = _label_lines(out, rec)
        b = rec.boxes
        assert len(lines) == len(b.soft_scores) == len(b.confidence)
        assert (out / rec.image).is_file() and rec.image.startswith(f"images/{rec.split}/")
        for ln, (x1, y1, x2, y2), c, soft in zip(lines, b.xyxy, b.class_id, b.soft_scores):
            # same row order: YOLO line i <-> sidecar box i
            assert int(ln[0]) == c == int(np.argmax(soft))
            assert ln[1] == pytest.approx((x1 + x2) / 2 / rec.width, abs=1e-4)
            assert ln[4] == pytest.approx((y2 - y1) / rec.height, abs=1e-4)
            assert len(soft) == 2 and sum(soft) == pytest.approx(1.0, abs=0.01)
    coco = json.loads((out / "annotations.coco.json").read_text())
    assert len(coco["images"]) == 12 and len(coco["annotations"]) == s["boxes"]
    assert all("score" in a and 0 < a["score"] <= 1 for a in coco["annotations"])
    assert [c["name"] for c in coco["categories"]] == ["red", "blue"]


def test_thresholds_and_conf_override(tmp_path):
    fakes.make_square_images(tmp_path / "src", 4)
    strict = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.95}, {"name": "blue", "threshold": 0.5}]})
    s = label(tmp_path / "src", strict, "test-squares", tmp_path / "a", CFG).summary
    assert s["boxes_per_class"]["red"] == 0 and s["boxes_per_class"]["blue"] > 0
    s2 = label(tmp_path / "src", strict, "test-squares", tmp_path / "b",
               LabelConfig(batch_size=4, progress=False, conf=0.05)).summary
    assert s2["boxes_per_class"]["red"] > 0


def test_split_is_deterministic_and_seeded(tmp_path):
    fakes.make_square_images(tmp_path / "src", 20)
    a = {r.id: r.split for r in read_records(label(tmp_path / "src", ONTO, "test-squares", tmp_path / "a", CFG).out)}
    b = {r.id: r.split for r in read_records(label(tmp_path / "src", ONTO, "test-squares", tmp_path / "b", CFG).out)}
    c = {r.id: r.split for r in read_records(label(tmp_path / "src", ONTO, "test-squares", tmp_path / "c",
                                                         LabelConfig(batch_size=4, progress=False, val_fraction=0.3, seed=7)).out)}
    assert a == b and a != c


def test_resume_skips_done_images_without_running_the_teacher(tmp_path):
    fakes.make_square_images(tmp_path / "src", 10)
    out = tmp_path / "ds"
    label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    fakes.CALLS.clear()
    again = label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    assert fakes.CALLS == [] and again.summary["labeled_this_run"] == 0 and again.summary["images"] == 10
    fakes.make_square_images(tmp_path / "src" / "more", 3, seed=5)
    more = label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    assert sum(fakes.CALLS) == 3 and more.summary["labeled_this_run"] == 3 and more.summary["images"] == 13
    assert len({r.id for r in read_records(out)}) == 13


def test_torn_sidecar_line_and_orphans_are_repaired(tmp_path):
    fakes.make_square_images(tmp_path / "src", 6)
    out = tmp_path / "ds"
    label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    side = out / SIDECAR_FILE
    lines = side.read_bytes().splitlines(keepends=True)
    side.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # killed mid-write of the last record
    assert len(list(read_records(out))) == 5
    res = label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    assert res.summary["labeled_this_run"] == 1 and res.summary["images"] == 6
    assert len(list(read_records(out))) == 6
    check_dataset(out)


def test_resume_with_other_settings_is_refused(tmp_path):
    fakes.make_square_images(tmp_path / "src", 3)
    out = tmp_path / "ds"
    label(tmp_path / "src", ONTO, "test-squares", out, CFG)
    other = Ontology.from_names(["red", "green"])
    with pytest.raises(DatasetError, match="labeled with a different ontology classes"):
        label(tmp_path / "src", other, "test-squares", out, CFG)
    with pytest.raises(DatasetError, match=r"different split"):
        label(tmp_path / "src", ONTO, "test-squares", out, LabelConfig(progress=False, seed=3, val_fraction=0.3))
    res = label(tmp_path / "src", other, "test-squares", out, LabelConfig(progress=False, overwrite=True))
    assert read_meta(out).names == ("red", "green") and res.summary["images"] == 3
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="is not empty and is not an autolabel dataset"):
        label(tmp_path / "src", ONTO, "test-squares", tmp_path / "busy", CFG)


def test_bad_inputs_are_listed_never_silent(tmp_path):
    src = tmp_path / "src"
    fakes.make_square_images(src, 3)
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    good = (src / "img0000.png").read_bytes()
    (src / "truncated.png").write_bytes(good[: len(good) // 2])
    res = label(src, ONTO, "test-squares", tmp_path / "ds", CFG)
    assert res.summary["images"] == 3
    reasons = {Path(s["path"]).name: s["reason"] for s in res.summary["skipped"]}
    assert set(reasons) == {"empty.jpg", "text.png", "truncated.png"}
    assert "0 bytes" in reasons["empty.jpg"]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.jpg").write_text("nope")
    with pytest.raises(SourceError, match=r"no image could be read .*2 input\(s\) skipped"):
        label(bad, ONTO, "test-squares", tmp_path / "ds2", CFG)
    with pytest.raises(SourceError, match="not found"):
        label(tmp_path / "missing", ONTO, "test-squares", tmp_path / "ds3", CFG)
    (tmp_path / "void").mkdir()
    with pytest.raises(SourceError, match="no images or videos found"):
        label(tmp_path / "void", ONTO, "test-squares", tmp_path / "ds4", CFG)


def test_video_frames_are_sampled_and_grouped(tmp_path):
    import cv2

    path = tmp_path / "cam.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 96))
    for i in range(50):
        im = np.full((96, 128, 3), 120, np.uint8)
        im[20:44, 5 + 2 * i : 29 + 2 * i] = (20, 20, 230)  # a red square moving right (BGR)
        vw.write(im)
    vw.release()
    res = label(path, ONTO, "test-squares", tmp_path / "ds", LabelConfig(batch_size=2, progress=False))
    recs = list(read_records(res.out))
    assert len(recs) == 5  # 5 s of video at 1 fps
    assert [r.frame_index for r in recs] == [0, 10, 20, 30, 40]
    assert all(r.boxes.class_id == (0,) for r in recs)
    assert len({r.split for r in recs}) == 1  # one 60-s group: no near-duplicate leaks into val


def test_cli_label_one_line_errors(tmp_path, capsys):
    fakes.make_square_images(tmp_path / "src", 2)
    onto = tmp_path / "o.yaml"
    onto.write_text("classes:\n  - name: red\n  - name: blue\n")
    assert main(["label", str(tmp_path / "src"), "-o", str(onto), "-t", "test-squares", "--out", str(tmp_path / "ds"), "-q"]) == 0
    assert "labeled 2 images" in capsys.readouterr().out
    strict = tmp_path / "strict.yaml"
    strict.write_text("classes:\n  - name: red\n    threshold: 0.95\n  - name: blue\n")
    assert main(["label", str(tmp_path / "src"), "-o", str(strict), "-t", "test-squares", "--out", str(tmp_path / "u"),
                 "--uncertain-conf", "0.5", "-q"]) == 0
    assert "uncertain boxes (below their class threshold" in capsys.readouterr().out
    for args, msg in [
        (["-o", str(tmp_path / "none.yaml"), "-t", "test-squares"], "ontology file"),
        (["-o", str(onto), "-t", "nosuch"], "unknown teacher 'nosuch'"),
        (["-o", str(onto), "-t", "test-squares", "--batch-size", "0"], "batch_size must be >= 1"),
        (["-o", str(onto), "-t", "test-squares", "--fps", "0"], "fps"),
        (["-o", str(onto), "-t", "test-squares", "--uncertain-conf", "1.5"], "uncertain_conf must be in (0, 1]"),
    ]:
        code = main(["label", str(tmp_path / "src"), *args, "--out", str(tmp_path / "x"), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and msg in err and err.count("\n") == 1, (args, err)


@pytest.mark.slow
def test_kill_9_loses_at_most_the_batch_in_flight(tmp_path):
    fakes.make_square_images(tmp_path / "src", 24)
    out = tmp_path / "ds"
    script = fakes.label_script(tmp_path / "src", out, 'test-squares:0.15')
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    side = out / SIDECAR_FILE
    deadline = time.time() + 60
    while time.time() < deadline and (not side.exists() or side.read_bytes().count(b"\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = list(read_records(out))
    assert 3 <= len(partial) < 24
    res = label(tmp_path / "src", Ontology.from_names(["red", "blue"]), "test-squares:0.15", out,
                LabelConfig(batch_size=2, progress=False))
    assert res.summary["images"] == 24 and res.summary["labeled_this_run"] == 24 - len(partial)
    ids = [r.id for r in read_records(out)]
    assert len(ids) == len(set(ids)) == 24
    check_dataset(out)
    n_files = sum(len(list((out / "labels" / s).iterdir())) for s in ("train", "val"))
    assert n_files == 24


@pytest.mark.slow
def test_dataset_trains_one_tiny_epoch_in_ultralytics(tmp_path):
    from autolabel.core.checkpoints import import_ultralytics

    import_ultralytics()  # as autolabel runs it: Ultralytics' font check would download Arial.ttf
    from ultralytics import YOLO

    fakes.make_square_images(tmp_path / "src", 16)
    res = label(tmp_path / "src", ONTO, "test-squares", tmp_path / "ds", CFG)
    model = YOLO("yolov8n.yaml")  # built from its YAML: random weights, nothing downloaded
    model.train(data=str(res.data_yaml), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", amp=False,
                plots=False, project=str(tmp_path / "runs"), name="t", verbose=False, exist_ok=True)
    assert (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()


def test_uncertain_boxes_go_to_the_sidecar_not_the_labels(tmp_path):
    """Boxes below their class threshold (red needs 0.95; the test teacher gives ~0.9) but above
    uncertain_conf are kept as the record's 'uncertain' boxes; the label files are unchanged."""
    truth = fakes.make_square_images(tmp_path / "src", 6)
    strict = Ontology.from_dict({"classes": [{"name": "red", "threshold": 0.95}, {"name": "blue", "threshold": 0.5}]})
    plain = label(tmp_path / "src", strict, "test-squares", tmp_path / "a", replace(CFG, uncertain_conf=None)).summary
    cfg = LabelConfig(batch_size=4, progress=False, val_fraction=0.3, uncertain_conf=0.5)
    s = label(tmp_path / "src", strict, "test-squares", tmp_path / "b", cfg).summary
    n_red = sum(b[0] == 0 for t in truth for b in t)
    assert n_red > 0 and s["boxes_per_class"] == plain["boxes_per_class"] and s["boxes_per_class"]["red"] == 0
    assert s["uncertain_boxes"] == n_red and s["uncertain_per_class"] == {"red": n_red, "blue": 0}
    for f in sorted((tmp_path / "a" / "labels").rglob("*.txt")):  # hard labels identical
        assert f.read_text() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_text()
    check_dataset(tmp_path / "b", num_classes=2)
    recs = list(read_records(tmp_path / "b"))
    assert all(r.uncertain is not None for r in recs)
    assert all(r.uncertain is None for r in read_records(tmp_path / "a"))
    for r in recs:
        u = r.uncertain
        assert len(u.xyxy) == len(u.class_id) == len(u.confidence) == len(u.soft_scores)
        assert all(c == 0 and 0.5 <= p < 0.95 for c, p in zip(u.class_id, u.confidence))
    coco = json.loads((tmp_path / "b" / "annotations.coco.json").read_text())
    assert len(coco["annotations"]) == s["boxes"]  # uncertain boxes are not labels
    with pytest.raises(Exception, match="uncertain_conf"):
        LabelConfig(uncertain_conf=1.5)
    assert LabelConfig(uncertain_conf=0.0).uncertain_conf is None  # 0: none (the command line cannot say null)
    # a record whose uncertain fields disagree is reported with one line
    side = tmp_path / "b" / SIDECAR_FILE
    bad = [json.loads(ln) for ln in side.read_text().splitlines()]
    r = next(r for r in bad if r["uncertain"]["xyxy"])
    r["uncertain"]["confidence"] = r["uncertain"]["confidence"][1:]
    side.write_text("".join(json.dumps(x) + "\n" for x in bad))
    with pytest.raises(DatasetError, match="'uncertain' boxes"):
        check_dataset(tmp_path / "b")
