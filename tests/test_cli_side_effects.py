"""A command leaves nothing outside its output folder, and nothing at all when its settings are wrong."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # the CLI end to end, in a subprocess


def _run(args: list[str], tmp_path, **env_over: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"YOLO_CONFIG_DIR", "AUTOLABEL_WEIGHTS_DIR"}}
    env.update(HOME=str(tmp_path / "home"), YOLO_OFFLINE="1", HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path / "tmp"),
               **env_over)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "autolabel", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_missing_weights_leave_no_run_folder_no_settings_file_no_temp(tmp_path):
    out = tmp_path / "run"
    p = _run(["run", str(ROOT / "sample_data" / "images"), "--pipeline", str(ROOT / "pipelines" / "quick.yaml"),
              "--out", str(out)], tmp_path)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and "label.teacher=[yolo:" in err[0], p.stderr
    assert not out.exists()
    assert not (tmp_path / "home").exists()  # no ~/.config/Ultralytics/settings.json
    assert list((tmp_path / "tmp").iterdir()) == []  # its private settings folder is removed at exit
    assert not (tmp_path / "runs").exists()
