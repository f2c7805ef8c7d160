"""The teacher interface: a batch of RGB images in, one :class:`supervision.Detections` per image out.

Every teacher — closed-set (a COCO YOLO) or zero-shot (Grounding DINO, OWLv2, CLIP, YOLO-World) — is built
from an :class:`~autolabel.core.ontology.Ontology` and returns detections that follow the contract in
:mod:`autolabel.core.detections`: boxes in input pixels, hard ``class_id`` (ontology index), ``confidence``, and
``data["soft_scores"]``, the (N, C) per-class scores of every kept box.

Teachers return *candidates*: everything above their low internal floor (``min_score``). The labeling stage
applies the ontology's per-class thresholds and optional class-agnostic NMS, so thresholds act the same for
every teacher. ``min_score`` defaults to the lowest ontology threshold.

Example:
    >>> from autolabel.teachers import create_teacher
    >>> teacher = create_teacher("yolo:yolov8n.pt", ontology=onto)      # doctest: +SKIP
    >>> dets = teacher.predict([rgb_image])[0]                          # doctest: +SKIP
    >>> dets.data["soft_scores"].shape                                  # doctest: +SKIP
    (5, 12)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology

if TYPE_CHECKING:
    import supervision as sv

__all__ = ["Teacher", "check_images"]


class Teacher(ABC):
    """Base class of all teachers.

    Args:
        ontology: the classes to label.
        weights: a local path, a Hugging Face id or an Ultralytics name; ``None`` for the teacher's default.
        device: ``auto`` (GPU when present), ``cpu``, ``cuda`` or ``cuda:N``.
        min_score: lowest confidence a candidate box may have; defaults to the lowest class threshold.
        batch_size: images per forward pass (the labeling stage passes batches of this size).

    Subclasses set :attr:`name`, may set :attr:`default_weights`, and implement :meth:`predict`. A subclass
    adds its own options as keyword-only arguments and passes these on, so they are declared here only::

        def __init__(self, ontology, *args, iou=0.7, **kwargs):
            super().__init__(ontology, *args, **kwargs)
    """

    name: ClassVar[str] = "teacher"
    default_weights: ClassVar[str | None] = None

    def __init__(
        self,
        ontology: Ontology,
        weights: str | None = None,
        device: str = "auto",
        min_score: float | None = None,
        batch_size: int = 8,
    ) -> None:
        self.ontology = ontology
        self.weights = weights or self.default_weights
        self.device_spec = device
        self.min_score = float(min(ontology.thresholds) if min_score is None else min_score)
        self.batch_size = int(batch_size)

    @property
    def num_classes(self) -> int:
        return len(self.ontology)

    @property
    def spec(self) -> str:
        """``NAME:WEIGHTS`` as it would be written on the command line (recorded in datasets)."""
        return f"{self.name}:{self.weights}" if self.weights else self.name

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """Label a batch of HxWx3 uint8 RGB images; one Detections (with soft scores) per image."""

    def predict_split(self, images: Sequence[np.ndarray], hard_floor: float) -> list[tuple[sv.Detections, sv.Detections]]:
        """Per image, (candidates for hard labels, *uncertain* candidates below ``hard_floor``).

        ``min_score`` is then the lower floor of the uncertain boxes. The hard candidates must be what
        :meth:`predict` returns with ``min_score = hard_floor``, so keeping uncertain boxes never changes the
        hard labels. Here: one prediction split by confidence (in per-class NMS a box below the floor never
        suppresses one above it); :class:`EnsembleTeacher` overrides it, because fusion averages. (TTA
        fuses its views the same way and does not override it: its hard boxes can shift slightly.)
        """
        out = []
        for d in self.predict(images):
            hard = d.confidence >= hard_floor if len(d) else np.zeros(0, bool)
            out.append((d[hard], d[~hard]))
        return out

    def __call__(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        return self.predict(images)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, classes={self.ontology.names})"


def check_images(images: Sequence[np.ndarray], teacher: str) -> list[np.ndarray]:
    """Validate a batch of HxWx3 uint8 RGB arrays (one line per problem).

    >>> check_images([np.zeros((2, 3, 3), np.uint8)], "clip")[0].shape
    (2, 3, 3)
    """
    out = []
    for i, img in enumerate(images):
        a = np.asarray(img)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 1:
            raise TeacherError(
                f"teacher '{teacher}': image {i} must be an HxWx3 uint8 RGB array, found shape {a.shape} "
                f"dtype {a.dtype}"
            )
        out.append(a)
    return out
