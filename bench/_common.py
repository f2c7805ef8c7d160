"""Helpers shared by the benchmark scripts (paths to ../shared, offline environment, tables)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "bench" / "out"

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".yolo_config"))
os.environ.setdefault("YOLO_VERBOSE", "False")
sys.path.insert(0, str(ROOT))


def need(path: Path, what: str) -> Path:
    """Exit with a clear reason when shared data or weights are absent."""
    if not path.exists():
        sys.exit(f"skipped: {what} not found at {path} (benchmarks read ../shared; set AUTOLABEL_SHARED)")
    return path


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub-markdown table."""
    fmt = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in fmt]
    return "\n".join(out)
