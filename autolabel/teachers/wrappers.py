"""Teacher wrappers: test-time augmentation (:class:`TTATeacher`) and sliced inference (:class:`TiledTeacher`).

Both wrap any :class:`~autolabel.teachers.base.Teacher`, return detections in the pixels of the images they
were given and keep the soft scores aligned with the boxes (the :mod:`autolabel.core.detections` contract).

* **TTA** runs the base teacher on the image, its horizontal mirror and rescaled copies, maps every box back
  and fuses them with :func:`~autolabel.teachers.ensemble.weighted_boxes_fusion`, each augmentation acting
  as one model. Boxes seen in every view keep their score; boxes seen in few views are down-weighted
  (``conf_type="avg"``), which removes many one-off false positives.
* **Tiling** (SAHI, Akyon et al. 2022) cuts wide frames (CCTV) into overlapping tiles so that small objects are
  seen at the detector's native resolution, plus the whole frame for large objects. Tile boxes are shifted
  back, boxes cut by an inner tile edge are dropped when a complete box covers them, and the rest are merged
  with class-aware NMS.

Example:
    >>> from autolabel.teachers import create_teacher
    >>> teacher = with_tiling(with_tta(create_teacher("yolo:yolov8n.pt", onto)), tile=640)  # doctest: +SKIP
    >>> teacher.spec                                                                       # doctest: +SKIP
    'yolo:yolov8n.pt+tta(flip)+tiles(640,0.2,full)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from autolabel.core.detections import SOFT_SCORES, empty_detections, make_detections, nms
from autolabel.core.errors import ConfigError
from autolabel.teachers.base import Teacher
from autolabel.teachers.ensemble import CONF_TYPES, weighted_boxes_fusion

if TYPE_CHECKING:
    import supervision as sv

__all__ = ["TTATeacher", "TiledTeacher", "tile_windows", "with_tiling", "with_tta"]


class _Wrapper(Teacher):
    """A teacher that delegates to ``base`` and shares its ontology, weights, device and batch size."""

    def __init__(self, base: Teacher) -> None:
        if not isinstance(base, Teacher):
            raise ConfigError(f"expected a Teacher to wrap, found {type(base).__name__}")
        super().__init__(
            base.ontology,
            weights=base.weights,
            device=base.device_spec,
            min_score=base.min_score,
            batch_size=base.batch_size,
        )
        self.base = base

    @property
    def name(self) -> str:  # type: ignore[override]  # the wrapped teacher's registry name
        return self.base.name


def _soft(d: sv.Detections, num_classes: int) -> np.ndarray:
    soft = d.data.get(SOFT_SCORES)
    if soft is None:
        raise ValueError(f"teacher detections lack data['{SOFT_SCORES}']")
    return np.asarray(soft, dtype=np.float32).reshape(len(d), num_classes)


def _resize(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    shrink = size_wh[0] < image.shape[1]
    # INTER_AREA avoids aliasing when shrinking; bilinear is the usual choice when enlarging.
    return cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class TTATeacher(_Wrapper):
    """Test-time augmentation: original + horizontal flip + rescaled copies, fused with WBF.

    Args:
        base: the teacher to run on each view.
        flip: add the horizontally mirrored image.
        scales: image scales to run (1.0, the original, always runs once; e.g. ``(0.83, 1.2)``).
        iou_thr: WBF clustering IoU.
        conf_type: WBF confidence type (``avg`` down-weights boxes found in few views).

    Example:
        >>> tta = TTATeacher(teacher, flip=True, scales=(0.83, 1.2))  # doctest: +SKIP
        >>> tta.spec                                                   # doctest: +SKIP
        'yolo:yolov8n.pt+tta(flip,0.83,1.2)'
    """

    def __init__(
        self,
        base: Teacher,
        flip: bool = True,
        scales: Sequence[float] = (1.0,),
        iou_thr: float = 0.55,
        conf_type: str = "avg",
    ) -> None:
        super().__init__(base)
        extra = []
        for s in scales:
            s = float(s)
            if not math.isfinite(s) or s <= 0:
                raise ConfigError(f"TTA scales must be positive numbers, found {list(scales)}")
            if abs(s - 1.0) > 1e-6 and s not in extra:
                extra.append(s)
        if conf_type not in CONF_TYPES:
            raise ConfigError(f"conf_type must be one of {list(CONF_TYPES)}, found {conf_type!r}")
        self.flip = bool(flip)
        self.scales = tuple(extra)
        self.iou_thr = float(iou_thr)
        self.conf_type = conf_type
        # (flip, scale) of each view; the original first.
        self.views: list[tuple[bool, float]] = [(False, 1.0)]
        if self.flip:
            self.views.append((True, 1.0))
        self.views += [(False, s) for s in self.scales]

    @property
    def spec(self) -> str:
        parts = (["flip"] if self.flip else []) + [f"{s:g}" for s in self.scales]
        return f"{self.base.spec}+tta({','.join(parts)})"

    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        c = self.num_classes
        per_view: list[list[sv.Detections]] = []
        for flip, scale in self.views:
            batch = []
            for im in images:
                h, w = im.shape[:2]
                v = im[:, ::-1] if flip else im
                if scale != 1.0:
                    v = _resize(v, (max(1, round(w * scale)), max(1, round(h * scale))))
                batch.append(np.ascontiguousarray(v))
            dets = self.base.predict(batch)
            mapped = []
            for im, v, d in zip(images, batch, dets, strict=True):
                h, w = im.shape[:2]
                if len(d) == 0:
                    mapped.append(empty_detections(c))
                    continue
                # Back to original pixels: undo the resize (exact per-axis ratio), then the mirror.
                xyxy = np.asarray(d.xyxy, dtype=np.float64) * [
                    w / v.shape[1],
                    h / v.shape[0],
                    w / v.shape[1],
                    h / v.shape[0],
                ]
                if flip:
                    xyxy = np.stack([w - xyxy[:, 2], xyxy[:, 1], w - xyxy[:, 0], xyxy[:, 3]], 1)
                mapped.append(make_detections(xyxy, _soft(d, c), d.class_id, d.confidence))
            per_view.append(mapped)
        out = []
        for i, im in enumerate(images):
            h, w = im.shape[:2]
            fused = weighted_boxes_fusion(
                [view[i] for view in per_view], (w, h), iou_thr=self.iou_thr, conf_type=self.conf_type
            )
            out.append(fused[fused.confidence >= self.min_score] if len(fused) else fused)
        return out


def tile_windows(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping ``(x1, y1, x2, y2)`` windows of at most ``tile`` pixels covering the image.

    Along each axis the number of tiles is the smallest giving at least ``overlap * tile`` of overlap, and
    the tiles are spread evenly so that the last one ends at the image border (no thin leftover tile).

    >>> tile_windows(1000, 500, 500, 0.2)
    [(0, 0, 500, 500), (250, 0, 750, 500), (500, 0, 1000, 500)]
    """

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        step = tile * (1.0 - overlap)
        n = math.ceil((size - tile) / step - 1e-9) + 1
        return sorted({round(i * (size - tile) / (n - 1)) for i in range(n)})

    return [
        (x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)
    ]


class TiledTeacher(_Wrapper):
    """Sliced inference for small objects in large frames (SAHI-style).

    Each image is cut into overlapping ``tile`` x ``tile`` windows (:func:`tile_windows`), plus the full
    image when ``include_full``; all views of a batch run through the base teacher in chunks of its
    ``batch_size``. Boxes are shifted back to full-image pixels. A tile box touching an inner tile edge
    (within ``edge_margin`` px; image borders do not count) is a cut-off object: it is dropped when a complete
    box of the same class covers at least ``cover_ioa`` of it (usually the same object seen whole in the
    neighbouring tile or the full image); otherwise it is kept. Then class-aware NMS (``iou``) merges
    duplicates from overlaps.

    Why NMS and not WBF: tiles are not independent models. An object is seen by 1 to 4 tiles depending only on
    where it lies, so WBF's "found by few models" down-weighting would penalise objects outside the overlaps.
    NMS keeps the best view's box and soft row unchanged.

    Args:
        base: the teacher to run on tiles.
        tile: tile size in pixels (use the base detector's input size).
        overlap: fraction of a tile shared with its neighbour, in [0, 1).
        include_full: also run the whole image (finds objects larger than a tile).
        iou: NMS IoU for merging.
        edge_margin: pixels from an inner tile edge within which a box counts as cut.
        cover_ioa: fraction of a cut box that a complete box must cover for the cut box to be dropped.

    Example:
        >>> tiled = TiledTeacher(teacher, tile=640, overlap=0.2)  # doctest: +SKIP
        >>> tiled.spec                                           # doctest: +SKIP
        'yolo:yolov8n.pt+tiles(640,0.2,full)'
    """

    def __init__(
        self,
        base: Teacher,
        tile: int = 640,
        overlap: float = 0.2,
        include_full: bool = True,
        iou: float = 0.5,
        edge_margin: float = 2.0,
        cover_ioa: float = 0.6,
    ) -> None:
        super().__init__(base)
        if int(tile) < 32:
            raise ConfigError(f"tile must be at least 32 pixels, found {tile}")
        if not 0 <= overlap < 1:
            raise ConfigError(f"tile overlap must be in [0, 1), found {overlap}")
        self.tile = int(tile)
        self.overlap = float(overlap)
        self.include_full = bool(include_full)
        self.iou = float(iou)
        self.edge_margin = float(edge_margin)
        self.cover_ioa = float(cover_ioa)

    @property
    def spec(self) -> str:
        return f"{self.base.spec}+tiles({self.tile},{self.overlap:g}{',full' if self.include_full else ''})"

    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        # Every view of the batch: (image index, window or None for the full image).
        views: list[tuple[int, tuple[int, int, int, int] | None]] = []
        for i, im in enumerate(images):
            h, w = im.shape[:2]
            wins = tile_windows(w, h, self.tile, self.overlap)
            if len(wins) == 1:  # the image fits in one tile: the tile *is* the full image
                views.append((i, None))
                continue
            if self.include_full:
                views.append((i, None))
            views += [(i, win) for win in wins]

        results: list[sv.Detections] = []
        bs = max(1, self.base.batch_size)
        for k in range(0, len(views), bs):
            chunk = views[k : k + bs]
            crops = [
                images[i]
                if win is None
                else np.ascontiguousarray(images[i][win[1] : win[3], win[0] : win[2]])
                for i, win in chunk
            ]
            results += self.base.predict(crops)

        per_image: list[list[tuple[sv.Detections, np.ndarray]]] = [[] for _ in images]
        for (i, win), d in zip(views, results, strict=True):
            if len(d) == 0:
                continue
            h, w = images[i].shape[:2]
            xyxy = np.asarray(d.xyxy, dtype=np.float64).copy()
            cut = np.zeros(len(d), dtype=bool)
            if win is not None:
                x1, y1, x2, y2 = win
                m = self.edge_margin
                # Only edges inside the image cut objects; a tile edge on the image border does not.
                if x1 > 0:
                    cut |= xyxy[:, 0] <= m
                if y1 > 0:
                    cut |= xyxy[:, 1] <= m
                if x2 < w:
                    cut |= xyxy[:, 2] >= (x2 - x1) - m
                if y2 < h:
                    cut |= xyxy[:, 3] >= (y2 - y1) - m
                xyxy += [x1, y1, x1, y1]
            shifted = make_detections(xyxy, _soft(d, self.num_classes), d.class_id, d.confidence)
            per_image[i].append((shifted, cut))

        return [self._merge(parts) for parts in per_image]

    def _merge(self, parts: list[tuple[sv.Detections, np.ndarray]]) -> sv.Detections:
        import supervision as sv

        if not parts:
            return empty_detections(self.num_classes)
        dets = sv.Detections.merge([d for d, _ in parts])
        cut = np.concatenate([c for _, c in parts])
        if cut.any() and (~cut).any():
            drop = np.zeros(len(dets), dtype=bool)
            whole = np.flatnonzero(~cut)
            for j in np.flatnonzero(cut):
                same = whole[dets.class_id[whole] == dets.class_id[j]]
                if len(same) and _ioa(dets.xyxy[j], dets.xyxy[same]).max() >= self.cover_ioa:
                    drop[j] = True
            dets = dets[~drop]
        dets = nms(dets, iou=self.iou)
        return dets[np.argsort(-dets.confidence, kind="stable")] if len(dets) > 1 else dets


def _ioa(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection of ``box`` with each of ``boxes``, over the area of ``box``."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-12)
    return iw * ih / area


def with_tta(
    teacher: Teacher, flip: bool = True, scales: Sequence[float] = (1.0,), **kwargs: float | str
) -> TTATeacher:
    """Wrap ``teacher`` in test-time augmentation (see :class:`TTATeacher`).

    Example:
        >>> tta = with_tta(teacher, flip=True, scales=(0.83, 1.2))  # doctest: +SKIP
    """
    return TTATeacher(teacher, flip=flip, scales=scales, **kwargs)  # type: ignore[arg-type]


def with_tiling(
    teacher: Teacher, tile: int = 640, overlap: float = 0.2, include_full: bool = True, **kwargs: float
) -> TiledTeacher:
    """Wrap ``teacher`` in sliced inference (see :class:`TiledTeacher`).

    Example:
        >>> tiled = with_tiling(teacher, tile=640, overlap=0.2)  # doctest: +SKIP
    """
    return TiledTeacher(teacher, tile=tile, overlap=overlap, include_full=include_full, **kwargs)
