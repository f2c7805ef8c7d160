"""Ensembles of teachers fused with weighted boxes fusion (WBF), soft scores included.

:func:`weighted_boxes_fusion` follows Solovyev et al., "Weighted boxes fusion: ensembling boxes from
different object detection models" (2021), with the semantics of the ``ensemble-boxes`` package's
``weighted_boxes_fusion``:

1. boxes below ``skip_box_thr`` (raw confidence) or with zero area are dropped; the rest are clipped to the
   image;
2. per **hard class**, boxes are visited in decreasing ``confidence * model_weight``; each joins the cluster
   whose *running fused box* it overlaps most when that IoU is ``> iou_thr``, else it starts a new cluster;
3. a cluster's fused box is the ``confidence * model_weight``-weighted mean of its members' coordinates;
4. its fused confidence depends on ``conf_type`` (``s`` member confidences, ``w`` their model weights,
   ``n`` members, ``W`` the sum of all model weights, ``N`` the number of models):

   * ``avg``: ``sum(s*w) / n * min(n, N) / W`` — a box found by one model out of two is halved;
   * ``max``: ``max(s*w) / max(weights)``;
   * ``box_and_model_avg``: ``sum(s*w) / sum(w) * W_present / W`` (``W_present``: the weights of the
     distinct models in the cluster);
   * ``absent_model_aware_avg``: ``sum(s*w) / (sum(w) + W_absent)``.

**Soft scores.** ``ensemble-boxes`` only carries one score per box; here every member also has an (C,) soft
row. The fused soft row applies the *same* confidence formula column by column, with the member's soft
score for class ``c`` in place of its confidence (e.g. for ``avg``: ``sum(soft[:, c]*w) / n * min(n, N) / W``).
So the absent-model rescale that lowers a confidence lowers the whole soft row by the same factor, and
whenever members' confidences equal their soft score of the hard class (the usual argmax case), the fused
soft score of the hard class equals the fused confidence. Soft rows are *not* weighted by confidence like
coordinates are: a score averaged by itself would be biased upwards (``sum(s^2)/sum(s)``). Values are clipped
to [0, 1] (``avg`` can exceed 1 when a heavily weighted model puts several boxes in one cluster).

Example:
    >>> import numpy as np
    >>> from autolabel.core.detections import make_detections
    >>> a = make_detections(np.array([[10, 10, 50, 50.]]), np.array([[0.8, 0.1]]))
    >>> b = make_detections(np.array([[12, 12, 52, 52.]]), np.array([[0.6, 0.3]]))
    >>> fused = weighted_boxes_fusion([a, b], image_wh=(100, 100))
    >>> round(float(fused.confidence[0]), 3), [round(float(x), 3) for x in fused.data["soft_scores"][0]]
    (0.7, [0.7, 0.2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.core.detections import SOFT_SCORES, empty_detections, make_detections
from autolabel.core.errors import ConfigError
from autolabel.core.ontology import Ontology
from autolabel.teachers import create_teacher, register_teacher
from autolabel.teachers.base import Teacher

if TYPE_CHECKING:
    import supervision as sv

__all__ = ["CONF_TYPES", "EnsembleTeacher", "create_ensemble", "weighted_boxes_fusion"]

CONF_TYPES: tuple[str, ...] = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
"""Supported ways of computing a fused confidence (see the module docs)."""

_BASE_KWARGS = ("device", "min_score", "batch_size")


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of (K, 4) boxes."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def _fused_box(boxes: np.ndarray, sw: np.ndarray) -> np.ndarray:
    """Coordinates weighted by ``confidence * model_weight`` (plain mean if every weight is 0)."""
    total = sw.sum()
    if total <= 0:
        return boxes.mean(0)
    return (sw[:, None] * boxes).sum(0) / total


def _fuse_scores(
    values: np.ndarray,
    member_w: np.ndarray,
    member_model: np.ndarray,
    weights: np.ndarray,
    conf_type: str,
    allows_overflow: bool,
) -> np.ndarray:
    """Fuse the (n, K) score columns of one cluster into (K,) with the WBF confidence formula.

    Column 0 is the confidence, the other columns the soft scores; each column is fused independently.
    """
    n = len(values)
    sw = values * member_w[:, None]  # score * model weight, as ensemble-boxes stores it
    if conf_type == "max":
        return sw.max(0) / weights.max()
    mean = sw.sum(0) / n  # ensemble-boxes: "avg" confidence before the rescale
    if conf_type == "avg":
        factor = n if allows_overflow else min(len(weights), n)
        return mean * factor / weights.sum()
    if conf_type == "box_and_model_avg":
        present = np.unique(member_model)
        return mean * n / member_w.sum() * weights[present].sum() / weights.sum()
    # absent_model_aware_avg
    absent = np.ones(len(weights), dtype=bool)
    absent[np.unique(member_model)] = False
    return mean * n / (member_w.sum() + weights[absent].sum())


def weighted_boxes_fusion(
    dets_per_model: Sequence[sv.Detections],
    image_wh: tuple[int, int],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
    conf_type: str = "avg",
    allows_overflow: bool = False,
) -> sv.Detections:
    """Fuse the detections of several models on one image with weighted boxes fusion.

    Args:
        dets_per_model: one Detections per model, each following the soft-score contract with the same C.
        image_wh: ``(width, height)`` of the image; boxes are clipped to it.
        weights: one positive weight per model (default: all 1).
        iou_thr: a box joins a cluster when its IoU with the cluster's fused box is greater than this.
        skip_box_thr: boxes with a lower confidence are ignored.
        conf_type: how the fused confidence is computed, one of :data:`CONF_TYPES` (see module docs).
        allows_overflow: ``avg`` only: rescale by ``n`` instead of ``min(n, N)`` (as ``ensemble-boxes``).

    Returns:
        Fused Detections sorted by decreasing confidence, with fused soft scores (module docs).

    Raises:
        ConfigError: bad ``weights`` or ``conf_type``.
        ValueError: a Detections lacks soft scores or they have a different number of classes.

    Example:
        >>> fused = weighted_boxes_fusion([dets_a, dets_b], image_wh=(1920, 1080), weights=[2, 1])  # doctest: +SKIP
    """
    n_models = len(dets_per_model)
    if n_models == 0:
        raise ValueError("weighted_boxes_fusion needs detections of at least one model")
    if conf_type not in CONF_TYPES:
        raise ConfigError(f"conf_type must be one of {list(CONF_TYPES)}, found {conf_type!r}")
    w = np.ones(n_models) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != n_models or not np.isfinite(w).all() or (w <= 0).any():
        raise ConfigError(f"weights must be {n_models} positive numbers (one per model), found {weights!r}")

    num_classes: int | None = None
    parts: list[tuple[np.ndarray, ...]] = []
    width, height = float(image_wh[0]), float(image_wh[1])
    for t, d in enumerate(dets_per_model):
        soft = d.data.get(SOFT_SCORES)
        if soft is None:
            raise ValueError(f"detections of model {t} lack data['{SOFT_SCORES}']")
        soft = np.asarray(soft, dtype=np.float64)
        if soft.ndim != 2 or soft.shape[0] != len(d):
            raise ValueError(
                f"data['{SOFT_SCORES}'] of model {t} has shape {soft.shape}, expected ({len(d)}, C)"
            )
        if num_classes is None:
            num_classes = soft.shape[1]
        elif soft.shape[1] != num_classes:
            raise ValueError(f"model {t} has {soft.shape[1]} soft score columns, model 0 has {num_classes}")
        if len(d) == 0:
            continue
        xyxy = np.asarray(d.xyxy, dtype=np.float64)
        # Like ensemble-boxes: order the corners, clip to the image, skip empty boxes and low scores.
        x1 = np.clip(np.minimum(xyxy[:, 0], xyxy[:, 2]), 0, width)
        x2 = np.clip(np.maximum(xyxy[:, 0], xyxy[:, 2]), 0, width)
        y1 = np.clip(np.minimum(xyxy[:, 1], xyxy[:, 3]), 0, height)
        y2 = np.clip(np.maximum(xyxy[:, 1], xyxy[:, 3]), 0, height)
        boxes = np.stack([x1, y1, x2, y2], 1)
        conf = np.asarray(d.confidence, dtype=np.float64)
        keep = (conf >= skip_box_thr) & (x2 > x1) & (y2 > y1)
        if keep.any():
            cls = np.asarray(d.class_id, dtype=int)[keep]
            parts.append((boxes[keep], conf[keep], cls, np.full(int(keep.sum()), t), soft[keep]))
    assert num_classes is not None
    if not parts:
        return empty_detections(num_classes)

    boxes, conf, cls, model, soft = (np.concatenate(p) for p in zip(*parts, strict=True))
    member_w = w[model]
    # Column 0 is the confidence, 1.. the soft row: both are fused by the same formula.
    scores = np.concatenate([conf[:, None], soft], 1)

    out_boxes: list[np.ndarray] = []
    out_scores: list[np.ndarray] = []
    out_cls: list[int] = []
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        idx = idx[np.argsort(-(conf[idx] * member_w[idx]), kind="stable")]
        clusters: list[list[int]] = []
        fused = np.zeros((len(idx), 4))  # running fused box of each cluster
        for j in idx:
            k = len(clusters)
            if k:
                ious = _iou_one_to_many(boxes[j], fused[:k])
                best = int(ious.argmax())
                if ious[best] > iou_thr:
                    clusters[best].append(j)
                    members = np.asarray(clusters[best])
                    fused[best] = _fused_box(boxes[members], conf[members] * member_w[members])
                    continue
            clusters.append([j])
            fused[k] = boxes[j]
        for k, members_list in enumerate(clusters):
            members = np.asarray(members_list)
            out_boxes.append(fused[k])
            out_scores.append(
                _fuse_scores(
                    scores[members], member_w[members], model[members], w, conf_type, allows_overflow
                )
            )
            out_cls.append(int(c))

    fused_scores = np.clip(np.stack(out_scores), 0.0, 1.0)
    order = np.argsort(-fused_scores[:, 0], kind="stable")
    return make_detections(
        np.stack(out_boxes)[order],
        fused_scores[order, 1:],
        class_id=np.asarray(out_cls)[order],
        confidence=fused_scores[order, 0],
    )


@register_teacher("fuse several teachers with weighted boxes fusion")
class EnsembleTeacher(Teacher):
    """Several teachers on the same images, their boxes fused per image with :func:`weighted_boxes_fusion`.

    Args:
        ontology: the classes to label; every member must use an ontology with the same classes.
        teachers: the member teachers.
        weights: one fusion weight per member (default: all 1), **or**, as from
            ``create_teacher("ensemble:yolo:a.pt+yolo:b.pt")``, the member specs joined by ``+`` (members are
            then built with ``device``, ``min_score`` and ``batch_size``).
        iou_thr: WBF clustering IoU.
        conf_type: WBF confidence type, one of :data:`CONF_TYPES`.
        skip_box_thr: member boxes below this confidence are ignored by the fusion.
        device, min_score, batch_size: as :class:`~autolabel.teachers.base.Teacher`; fused boxes below
            ``min_score`` are dropped (fusion lowers the confidence of boxes some members missed).

    Example:
        >>> ens = EnsembleTeacher(onto, teachers=[yolo_a, yolo_b], weights=[2, 1])  # doctest: +SKIP
        >>> ens.spec                                                                 # doctest: +SKIP
        'ensemble(yolo:a.pt+yolo:b.pt;weights=2,1)'
    """

    name = "ensemble"

    def __init__(
        self,
        ontology: Ontology,
        teachers: Sequence[Teacher] | None = None,
        weights: Sequence[float] | str | None = None,
        iou_thr: float = 0.55,
        conf_type: str = "avg",
        skip_box_thr: float = 0.0,
        device: str = "auto",
        min_score: float | None = None,
        batch_size: int = 8,
    ) -> None:
        super().__init__(ontology, weights=None, device=device, min_score=min_score, batch_size=batch_size)
        members = list(teachers or [])
        fusion_weights: Sequence[float] | None
        if isinstance(weights, str):
            # The registry passes what follows "ensemble:" as weights: here the members' specs.
            specs = [s for s in weights.split("+") if s.strip()]
            kw: dict[str, Any] = {"device": device, "batch_size": batch_size}
            if min_score is not None:
                kw["min_score"] = min_score
            members += [create_teacher(s, ontology=ontology, **kw) for s in specs]
            fusion_weights = None
        else:
            fusion_weights = weights
        if not members:
            raise ConfigError(
                "ensemble needs member teachers, e.g. --teacher 'ensemble:yolo:a.pt+yolo-world:b.pt'"
            )
        for t in members:
            if t.ontology.names != ontology.names:
                raise ConfigError(
                    f"ensemble member '{t.spec}' labels {t.ontology.names}, the ensemble {ontology.names}"
                )
        if conf_type not in CONF_TYPES:
            raise ConfigError(f"conf_type must be one of {list(CONF_TYPES)}, found {conf_type!r}")
        if fusion_weights is not None and (
            len(fusion_weights) != len(members) or any(float(x) <= 0 for x in fusion_weights)
        ):
            raise ConfigError(
                f"ensemble weights must be {len(members)} positive numbers (one per member), "
                f"found {list(fusion_weights)}"
            )
        self.teachers = members
        self.fusion_weights = None if fusion_weights is None else [float(x) for x in fusion_weights]
        self.iou_thr = float(iou_thr)
        self.conf_type = conf_type
        self.skip_box_thr = float(skip_box_thr)

    @property
    def spec(self) -> str:
        inner = "+".join(t.spec for t in self.teachers)
        if self.fusion_weights is not None:
            inner += ";weights=" + ",".join(f"{x:g}" for x in self.fusion_weights)
        return f"ensemble({inner})"

    def _members(self, images: Sequence[np.ndarray]) -> list[list[sv.Detections]]:
        per_member = [t.predict(images) for t in self.teachers]
        for t, dets in zip(self.teachers, per_member, strict=True):
            if len(dets) != len(images):
                raise ValueError(f"teacher '{t.spec}' returned {len(dets)} results for {len(images)} images")
        return per_member

    def _fuse(self, dets: Sequence[sv.Detections], image: np.ndarray, floor: float) -> sv.Detections:
        h, w = image.shape[:2]
        fused = weighted_boxes_fusion(
            list(dets),
            image_wh=(w, h),
            weights=self.fusion_weights,
            iou_thr=self.iou_thr,
            skip_box_thr=self.skip_box_thr,
            conf_type=self.conf_type,
        )
        return fused[fused.confidence >= floor] if len(fused) else fused

    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        per_member = self._members(images)
        return [self._fuse([d[i] for d in per_member], im, self.min_score) for i, im in enumerate(images)]

    def predict_split(self, images: Sequence[np.ndarray], hard_floor: float) -> list[tuple[sv.Detections, sv.Detections]]:
        """Hard candidates fused from the members' boxes at ``hard_floor`` (exactly :meth:`predict` at that floor:
        WBF averages a cluster's confidences, so low boxes joining it would change the hard labels); uncertain
        candidates fused from all their boxes (down to ``min_score``), minus those overlapping a hard box of the
        same class (IoU ≥ ``iou_thr``)."""
        per_member = self._members(images)
        out = []
        for i, im in enumerate(images):
            mine = [d[i] for d in per_member]
            hard = self._fuse([d[d.confidence >= hard_floor] if len(d) else d for d in mine], im, hard_floor)
            every = self._fuse(mine, im, self.min_score)
            if len(every) and len(hard):
                import supervision as sv

                iou = sv.box_iou_batch(every.xyxy, hard.xyxy)
                same = every.class_id[:, None] == hard.class_id[None, :]
                every = every[~((iou >= self.iou_thr) & same).any(1)]
            out.append((hard, every))
        return out


def create_ensemble(
    specs: Sequence[str],
    ontology: Ontology,
    *,
    fusion_weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    conf_type: str = "avg",
    skip_box_thr: float = 0.0,
    **kwargs: Any,
) -> Teacher:
    """Build one teacher per spec with :func:`~autolabel.teachers.create_teacher` and fuse them.

    A single spec returns just that teacher (no fusion). ``kwargs`` (``device``, ``min_score``,
    ``batch_size``, teacher options) go to every member; ``device``/``min_score``/``batch_size`` also to the
    ensemble.

    Example:
        >>> t = create_ensemble(["yolo:yolov8n.pt", "yolo:yolo11n.pt"], onto, device="cpu")  # doctest: +SKIP
        >>> t.spec                                                                          # doctest: +SKIP
        'ensemble(yolo:yolov8n.pt+yolo:yolo11n.pt)'
    """
    specs = list(specs)
    if not specs:
        raise ConfigError("no teacher given; expected at least one NAME[:WEIGHTS]")
    if len(specs) == 1:
        return create_teacher(specs[0], ontology=ontology, **kwargs)
    members = [create_teacher(s, ontology=ontology, **kwargs) for s in specs]
    base = {k: kwargs[k] for k in _BASE_KWARGS if k in kwargs}
    return EnsembleTeacher(
        ontology,
        teachers=members,
        weights=fusion_weights,
        iou_thr=iou_thr,
        conf_type=conf_type,
        skip_box_thr=skip_box_thr,
        **base,
    )
