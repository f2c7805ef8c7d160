"""A tiny, deterministic teacher for tests: it finds saturated red and blue squares.

Registered as ``test-squares`` only when tests import this module (like timm's ``test_*`` models), so the
labeling stage, resume and training can be exercised without any model weights.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autolabel.core.detections import make_detections
from autolabel.teachers import TEACHERS, Teacher

CALLS: list[int] = []  # batch sizes seen, per process


class SquaresTeacher(Teacher):
    """Class 0 = red squares, class 1 = blue squares; soft scores 0.9 / 0.1 with a per-box tweak."""

    name = "test-squares"

    def __init__(self, ontology, weights=None, device="cpu", min_score=None, batch_size=8, delay: float = 0.0):
        super().__init__(ontology, weights, device, min_score, batch_size)
        self.delay = float(weights) if weights else delay

    def predict(self, images: Sequence[np.ndarray]):
        import cv2

        CALLS.append(len(images))
        if self.delay:
            time.sleep(self.delay)
        out = []
        for im in images:
            boxes, soft = [], []
            for cls, mask in enumerate([(im[..., 0] > 200) & (im[..., 2] < 60), (im[..., 2] > 200) & (im[..., 0] < 60)]):
                n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
                for x, y, w, h, area in stats[1:]:
                    if area < 20:
                        continue
                    boxes.append([x, y, x + w, y + h])
                    s = np.full(self.num_classes, 0.1 / max(self.num_classes - 1, 1), np.float32)
                    s[cls] = 0.9 - 0.001 * (len(boxes) % 7)
                    soft.append(s)
            out.append(make_detections(np.array(boxes, float).reshape(-1, 4), np.array(soft).reshape(-1, self.num_classes)))
        return out

    def classify(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Image-level probabilities: the share of red vs blue square pixels, softened (a CLIP stand-in)."""
        out = []
        for im in images:
            red = float(((im[..., 0] > 200) & (im[..., 2] < 60)).sum())
            blue = float(((im[..., 2] > 200) & (im[..., 0] < 60)).sum())
            p = np.array([red + 1.0, blue + 1.0], np.float64)[: self.num_classes]
            p = np.pad(p, (0, max(0, self.num_classes - len(p))), constant_values=1.0)
            out.append((0.1 / self.num_classes + 0.9 * p / p.sum()).astype(np.float32))
        return np.stack(out) if out else np.zeros((0, self.num_classes), np.float32)


if "test-squares" not in TEACHERS:
    TEACHERS.register("test-squares", help="test only: red/blue square finder")(SquaresTeacher)


def make_square_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (96, 128)) -> list[list[tuple[int, int, int, int, int]]]:
    """Write ``n`` JPEG-free PNG images with red/blue squares on a grey noisy background; return their boxes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(n):
        h, w = size
        im = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.integers(12, 28))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            if any(not (x + s < a or a2 < x or y + s < b or b2 < y) for _, a, b, a2, b2 in boxes):
                continue
            cls = int(rng.integers(0, 2))
            im[y : y + s, x : x + s] = (230, 20, 20) if cls == 0 else (20, 20, 230)
            boxes.append((cls, x, y, x + s, y + s))
        Image.fromarray(im).save(folder / f"img{i:04d}.png")
        truth.append(boxes)
    return truth


def label_script(src: Path, out: Path, teacher: str) -> str:
    """Python source that labels ``src`` into ``out`` with a test teacher (``NAME:DELAY``), for tests that run
    labeling in a subprocess they can kill or race."""
    root = Path(__file__).resolve().parents[1]
    return (
        f"import sys; sys.path.insert(0, {str(root)!r}); import tests.fakes; "
        "from autolabel.labeling.label import label, LabelConfig; from autolabel.core.ontology import Ontology; "
        f"label({str(src)!r}, Ontology.from_names(['red', 'blue']), {teacher!r}, {str(out)!r}, "
        "LabelConfig(batch_size=2, progress=False))"
    )
