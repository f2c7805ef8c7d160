"""The sidecar's typed records and header (data/record.py) and the file helpers (data/jsonl.py): one
validator, lossless round trips, tolerant reading, recovery after a crash, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autolabel.core.errors import DatasetError
from autolabel.data.jsonl import (
    BadLine,
    append_jsonl,
    atomic_open,
    iter_jsonl,
    read_json,
    recover_jsonl,
    write_atomic,
)
from autolabel.data.record import DatasetMeta, Record

REC = {"id": "a", "split": "train", "image": "images/train/a.jpg", "label": "labels/train/a.txt",
       "source": "/in/a.jpg", "frame_index": None, "timestamp": None, "width": 64, "height": 48,
       "xyxy": [[1.5, 2.0, 30.25, 40.0], [0, 0, 10, 10]], "class_id": [1, 0], "confidence": [0.8, 0.6],
       "soft_scores": [[0.1, 0.8], [0.6, 0.0]],
       "uncertain": {"xyxy": [[3.0, 4.0, 5.0, 6.0]], "class_id": [0], "confidence": [0.3], "soft_scores": [[0.3, 0.1]]}}


def _line(d: dict) -> str:
    return json.dumps(d, separators=(",", ":"))


def test_record_round_trip_is_byte_identical():
    r = Record.from_json(json.loads(_line(REC)), num_classes=2)
    assert r.boxes.soft_scores == ((0.1, 0.8), (0.6, 0.0)) and r.boxes.class_id == (1, 0) and len(r.boxes) == 2
    assert r.uncertain is not None and r.uncertain.confidence == (0.3,) and r.stem == "a"
    assert _line(r.to_json()) == _line(REC)  # ints stay ints, key order is the sidecar's
    plain = {k: v for k, v in REC.items() if k != "uncertain"} | {"frame_index": 7, "timestamp": 0.28, "extra": 1}
    p = Record.from_json(plain)
    assert p.uncertain is None and p.stem == "a" and p.frame_index == 7 and p.extra == {"extra": 1}
    assert _line(p.to_json()) == _line(plain)
    with pytest.raises(AttributeError):
        r.split = "val"  # frozen


@pytest.mark.parametrize("change, match", [
    ({"soft_scores": [[0.1, 0.8]]}, r"boxes, classes, confidences and soft scores do not match"),
    ({"soft_scores": [[0.1, 0.8], [0.6]]}, r"'soft_scores' rows must be lists of 2"),
    ({"soft_scores": [[0.1, 1.8], [0.6, 0.0]]}, r"'soft_scores' holds a value outside \[0, 1\]"),
    ({"class_id": [2, 0]}, r"'class_id' holds a value that is not a class index in 0\.\.1"),
    ({"confidence": [0.8, "x"]}, r"'confidence' holds a value that is not a finite number"),
    ({"split": "test"}, r"'split' is 'test'"),
    ({"label": None}, r"'label' is missing"),
    ({"width": 0}, r"'width' is 0"),
    ({"uncertain": {"xyxy": [], "class_id": [0], "confidence": [], "soft_scores": []}},
     r"'uncertain' boxes, classes, confidences and soft scores do not match"),
])
def test_record_errors_are_one_line_naming_where_and_the_record(change, match):
    with pytest.raises(DatasetError, match=match) as e:
        Record.from_json({**REC, **change}, where="ds/autolabel.jsonl: line 7")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("ds/autolabel.jsonl: line 7: record 'a': ")


def test_record_checks_the_class_count_when_given():
    Record.from_json(REC)
    with pytest.raises(DatasetError, match="rows must be lists of 3 numbers"):
        Record.from_json(REC, num_classes=3)
    with pytest.raises(DatasetError, match=r"not a record \(no 'id' string\)"):
        Record.from_json({"label": "x"})
    with pytest.raises(DatasetError, match="not a record"):
        Record.from_json([1, 2])


def test_deprecated_dict_access_still_reads_the_json_values():
    r = Record.from_json(REC)
    with pytest.warns(DeprecationWarning, match="use the attribute"):
        assert r["soft_scores"] == REC["soft_scores"] and r.get("nope", 5) == 5
        assert "uncertain" in r and "nope" not in r
    m = DatasetMeta(names=("red", "blue"), teacher="t")
    with pytest.warns(DeprecationWarning):
        assert m["names"] == ["red", "blue"] and m.get("teacher") == "t"


def test_meta_round_trip_and_errors():
    m = DatasetMeta(names=("red", "blue"), teacher="t", ontology={"classes": []}, ontology_fingerprint="f",
                    split={"val_fraction": 0.2, "seed": 0, "by": "group"}, config={"batch_size": 4})
    j = m.to_json()
    assert list(j) == ["format", "version", "names", "ontology", "ontology_fingerprint", "teacher", "split",
                       "config", "sidecar", "soft_scores"]
    assert DatasetMeta.from_json(json.loads(json.dumps(j))) == m and m.num_classes == 2
    with pytest.raises(DatasetError, match=r"h\.json: not an autolabel dataset header \(format='x'\)"):
        DatasetMeta.from_json({**j, "format": "x"}, where="h.json")
    with pytest.raises(DatasetError, match="version 9 is newer than this autolabel supports"):
        DatasetMeta.from_json({**j, "version": 9})
    with pytest.raises(DatasetError, match="non-empty list of class names"):
        DatasetMeta.from_json({**j, "names": []})


def test_iter_jsonl_skips_a_torn_tail_and_hands_back_bad_lines(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"id": 1}\n\n{broken\n[1]\n{"id": 2}\n{"id": 3')

    def parse(v):
        if not isinstance(v, dict):
            raise DatasetError("not an object")
        return v["id"]

    bad: list[BadLine] = []
    assert [(n, v) for n, _, v in iter_jsonl(p, parse, bad=bad)] == [(1, 1), (5, 2)]
    assert [(b.number, b.raw) for b in bad] == [(3, b"{broken\n"), (4, b"[1]\n")]
    assert bad[0].reason.startswith("not valid JSON") and bad[1].reason == "not an object"


def test_recover_jsonl(tmp_path):
    p, corrupt = tmp_path / "s.jsonl", tmp_path / "s.jsonl.corrupt"
    p.write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": 3')  # a torn tail alone: truncated in place
    seen: list[int] = []
    r = recover_jsonl(p, lambda v: v["id"], lambda i: seen.append(i) is None, corrupt)
    assert r.torn and r.kept == 2 and not r.bad and not corrupt.exists() and seen == [1, 2]
    assert p.read_bytes() == b'{"id": 1}\n{"id": 2}\n'
    # a blank line, a corrupt line and a refused duplicate: rewritten, the corrupt line moved aside
    p.write_bytes(b'{"id": 1}\n\n{oops\n{"id": 1}\n{"id": 4}\n')
    ids: set[int] = set()

    def keep(i: int) -> bool:
        new = i not in ids
        ids.add(i)
        return new

    r = recover_jsonl(p, lambda v: v["id"], keep, corrupt)
    assert (r.kept, r.dropped, [b.number for b in r.bad], r.torn) == (2, 1, [3], False)
    assert p.read_bytes() == b'{"id": 1}\n{"id": 4}\n' and corrupt.read_bytes() == b"{oops\n"
    assert not list(tmp_path.glob(".*.tmp"))
    missing = tmp_path / "new.jsonl"
    assert recover_jsonl(missing, lambda v: v, lambda v: True, corrupt).kept == 0 and missing.read_bytes() == b""


def test_append_and_atomic_writes(tmp_path):
    p = tmp_path / "u.jsonl"
    assert append_jsonl(p, [{"key": "a"}]) == 1 and append_jsonl(p, []) == 0 and append_jsonl(p, [{"key": "b"}]) == 1
    assert p.read_bytes() == b'{"key":"a"}\n{"key":"b"}\n'
    out = tmp_path / "x.json"
    write_atomic(out, '{"a": "é"}')
    assert read_json(out) == {"a": "é"}
    write_atomic(out, b"[1]")
    assert read_json(out) == [1]
    with pytest.raises(RuntimeError), atomic_open(out, "w") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert out.read_bytes() == b"[1]" and not list(tmp_path.glob(".*"))  # the old file, no tmp left
    out.write_text("{nope")
    with pytest.raises(DatasetError, match=r"x\.json: not valid JSON"):
        read_json(out)


def test_importing_the_data_modules_imports_no_torch():
    code = ("import sys, autolabel, autolabel.data.dataset, autolabel.data.record, autolabel.data.jsonl; "
            "autolabel.read_records; autolabel.Record; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
