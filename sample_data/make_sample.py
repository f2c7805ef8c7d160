"""Render sample_data/: CCTV-like scenes composed from a photo Ultralytics ships, with known boxes.

    python sample_data/make_sample.py        # rewrites images/, labels/, videos/walkway.mp4 (seeded)

Nothing is downloaded and nothing comes from ../shared. The cut-outs are rectangles of ``bus.jpg``
(ultralytics/assets, AGPL-3.0) around boxes checked by eye; each is pasted, scaled and
sometimes mirrored, on a rendered floor-and-wall background with sensor noise, a timestamp bar and
vignetting. The box of a pasted cut-out is its known label (YOLO format in labels/, classes of
ontology.yaml), so ``autolabel evaluate`` can score a teacher or a student against it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
W, H = 640, 384
CLASSES = ["person", "bus"]
# Every object of bus.jpg, (class, x1, y1, x2, y2), checked by eye: four people and the bus. Cut-outs are
# rectangles around some of them; objects of the photo that fall inside a cut-out (the people in front of
# the bus) are labeled too, clipped, when at least a third of them is inside.
OBJECTS = [
    ("person", 48, 398, 242, 907),
    ("person", 222, 405, 346, 860),
    ("person", 668, 390, 810, 880),
    ("person", 0, 556, 69, 873),
    ("bus", 20, 230, 806, 736),
]
CUTOUTS = [0, 1, 2, 4]  # indices into OBJECTS


def _assets() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def background(rng: np.random.Generator) -> np.ndarray:
    """A grey wall over a tiled floor in perspective, lit from one side, as a fixed indoor camera sees it."""
    y = np.linspace(0, 1, H)[:, None, None]
    x = np.linspace(0, 1, W)[None, :, None]
    wall = np.array(rng.integers(150, 200, 3), np.float32)
    floor = np.array(rng.integers(90, 140, 3), np.float32)
    horizon = rng.uniform(0.3, 0.45)
    img = np.where(y < horizon, wall * (0.85 + 0.15 * x), floor * (0.7 + 0.3 * (y - horizon) / (1 - horizon)))
    img = np.broadcast_to(img, (H, W, 3)).copy()
    for k in range(-8, 9):  # floor tile lines converging to a vanishing point
        x0 = W / 2 + k * 60
        cv2.line(img, (int(W / 2 + k * 8), int(horizon * H)), (int(x0 * 1.8 - W * 0.4), H), (70, 70, 70), 1)
    for r in np.linspace(horizon, 1, 7)[1:]:
        yy = int(H * (horizon + (r - horizon) ** 1.6 * (1 - horizon) / (1 - horizon) ** 0.6))
        cv2.line(img, (0, yy), (W, yy), (75, 75, 75), 1)
    return img


def finish(img: np.ndarray, rng: np.random.Generator, t: int) -> np.ndarray:
    """Vignetting, sensor noise and an on-screen timestamp, as a CCTV frame has."""
    yy, xx = np.mgrid[0:H, 0:W]
    vig = 1 - 0.35 * (((xx - W / 2) / W) ** 2 + ((yy - H / 2) / H) ** 2)
    img = img * vig[..., None] + rng.normal(0, 4, img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.putText(out, f"2026-11-30 07:{t // 60:02d}:{t % 60:02d}  CAM 2", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (235, 235, 235), 1, cv2.LINE_AA)
    return out


def paste(img: np.ndarray, cut: np.ndarray, x: int, y: int) -> tuple[int, int, int, int] | None:
    h, w = cut.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    img[y1:y2, x1:x2] = cut[y1 - y : y2 - y, x1 - x : x2 - x]
    return x1, y1, x2, y2


def main(n_images: int = 32, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    photo = cv2.imread(str(_assets() / "bus.jpg"))
    cuts = []  # (class, pixels, inner objects as (class, box relative to the cut-out))
    for k in CUTOUTS:
        name, x1, y1, x2, y2 = OBJECTS[k]
        inner = []
        for j, (n2, a1, b1, a2, b2) in enumerate(OBJECTS):
            if j == k:
                continue
            ix1, iy1, ix2, iy2 = max(a1, x1), max(b1, y1), min(a2, x2), min(b2, y2)
            if ix2 > ix1 and iy2 > iy1 and (ix2 - ix1) * (iy2 - iy1) >= (a2 - a1) * (b2 - b1) / 3:
                inner.append((CLASSES.index(n2), (ix1 - x1, iy1 - y1, ix2 - x1, iy2 - y1)))
        cuts.append((CLASSES.index(name), photo[y1:y2, x1:x2].astype(np.float32), inner))
    for sub in ("images", "labels", "videos"):
        (HERE / sub).mkdir(exist_ok=True)
        for old in (HERE / sub).iterdir():
            old.unlink()
    for i in range(n_images):
        img = background(rng)
        boxes: list[tuple[int, tuple[int, int, int, int]]] = []
        owner = np.full((H, W), -1, np.int32)  # which paste each pixel shows
        paste_of: list[int] = []  # per box, its paste
        picks = rng.choice(len(cuts), size=int(rng.integers(1, 4)), replace=False)
        for k in sorted(picks, key=lambda j: cuts[j][0], reverse=True):  # the bus first, people in front
            cls, cut, inner = cuts[k]
            target_h = rng.uniform(0.45, 0.8) * H if cls == 0 else rng.uniform(0.5, 0.75) * H
            s = target_h / cut.shape[0]
            c = cv2.resize(cut, (max(8, int(cut.shape[1] * s)), max(8, int(cut.shape[0] * s))))
            sx, sy = c.shape[1] / cut.shape[1], c.shape[0] / cut.shape[0]
            flip = rng.random() < 0.5
            if flip:
                c = c[:, ::-1]
            c = c * rng.uniform(0.75, 1.1)  # exposure differs from the photo's
            for _ in range(20):  # find a place that overlaps earlier boxes little
                x = int(rng.integers(-c.shape[1] // 5, W - c.shape[1] * 4 // 5))
                y = int(rng.integers(int(0.15 * H), max(int(0.15 * H) + 1, H - int(c.shape[0] * 0.9))))
                bx = (x, y, x + c.shape[1], y + c.shape[0])
                if all(_iou(bx, b) < 0.2 for _, b in boxes):
                    break
            b = paste(img, c, x, y)
            if b is not None:
                owner[b[1] : b[3], b[0] : b[2]] = k
                boxes.append((cls, b))
                paste_of.append(k)
                for icls, (a1, b1, a2, b2) in inner:
                    a1, a2 = (c.shape[1] - a2 * sx, c.shape[1] - a1 * sx) if flip else (a1 * sx, a2 * sx)
                    ib = (max(int(x + a1), b[0]), max(int(y + b1 * sy), b[1]), min(int(x + a2), b[2]),
                          min(int(y + b2 * sy), b[3]))
                    if ib[2] - ib[0] >= 8 and ib[3] - ib[1] >= 8:
                        boxes.append((icls, ib))
                        paste_of.append(k)
        # an object mostly hidden behind a later cut-out is no longer labeled (as a human labeler would skip it)
        boxes = [(c, b) for (c, b), k in zip(boxes, paste_of)
                 if (owner[b[1] : b[3], b[0] : b[2]] == k).mean() >= 0.5]
        out = finish(img, rng, i)
        name = f"cam2_{i:03d}"
        cv2.imwrite(str(HERE / "images" / f"{name}.jpg"), out, [cv2.IMWRITE_JPEG_QUALITY, 85])
        lines = [f"{c} {(b[0] + b[2]) / 2 / W:.6f} {(b[1] + b[3]) / 2 / H:.6f} {(b[2] - b[0]) / W:.6f} "
                 f"{(b[3] - b[1]) / H:.6f}" for c, b in boxes]
        (HERE / "labels" / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    # a short clip: an empty scene for two seconds (a static camera repeats itself), then a person walks by
    bg = background(np.random.default_rng(seed + 1))
    writer = cv2.VideoWriter(str(HERE / "videos" / "walkway.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    cls, cut, _ = cuts[1]
    s = 0.7 * H / cut.shape[0]
    c = cv2.resize(cut, (int(cut.shape[1] * s), int(cut.shape[0] * s)))
    vrng = np.random.default_rng(seed + 2)
    for t in range(60):
        img = bg.copy()
        if t >= 20:
            paste(img, c, int(-c.shape[1] + (t - 20) * (W + c.shape[1]) / 40), int(0.25 * H))
        writer.write(finish(img, vrng, t // 10))
    writer.release()
    print(f"wrote {n_images} images with labels and videos/walkway.mp4 to {HERE}")


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / max(1, (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


if __name__ == "__main__":
    main()
