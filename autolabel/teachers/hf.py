"""What the Hugging Face ``transformers`` teachers (Grounding DINO, OWLv2/OWL-ViT, CLIP) share.

:class:`HFTeacher` loads the processor and the model from ``weights`` — a Hugging Face id or a folder saved
with ``save_pretrained`` — through :func:`~autolabel.core.weights.hf_from_pretrained`, whose one-line
:class:`~autolabel.core.errors.WeightsNotFoundError` says how to point at local weights when the hub cannot be
reached; or wraps an already-built pair (:meth:`HFTeacher.from_model`). The model runs in fp16 on CUDA (half
the memory, about twice the speed) and fp32 elsewhere (CPUs have no fast fp16 kernels), in eval mode.
:meth:`HFTeacher.predict` checks the images and runs them ``batch_size`` at a time through the subclass's
``_predict_batch``.

Example:
    >>> teacher = OwlV2Teacher.from_model(model, processor, onto, device="cpu")  # doctest: +SKIP
    >>> teacher.dtype, teacher.tokenizer is processor.tokenizer                   # doctest: +SKIP
    (torch.float32, True)
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology
from autolabel.core.weights import hf_from_pretrained, resolve_device
from autolabel.teachers.base import Teacher, check_images

if TYPE_CHECKING:
    import supervision as sv

__all__ = ["HFTeacher", "cxcywh_to_xyxy"]

H = TypeVar("H", bound="HFTeacher")


class HFTeacher(Teacher):
    """A teacher over a ``transformers`` model and its processor (which must have a tokenizer).

    Args:
        ontology, weights, device, min_score, batch_size: see :class:`~autolabel.teachers.base.Teacher`;
            ``weights`` is a Hugging Face id or a folder saved with ``save_pretrained`` (model + processor).
        model, processor: an already-built model and processor (see :meth:`from_model`); ``weights`` is
            then only recorded.

    Attributes:
        device, dtype: where and in which precision the model runs.
        model, processor, image_processor, tokenizer: the model in eval mode and the processor's parts.

    Subclasses set :attr:`model_class` (the ``transformers`` class, by name) and implement
    ``_predict_batch``.
    """

    model_class: ClassVar[str]

    def __init__(self, ontology: Ontology, *args: Any, model: Any = None, processor: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(ontology, *args, **kwargs)
        if model is None or processor is None:
            import transformers

            assert self.weights is not None
            processor = hf_from_pretrained(transformers.AutoProcessor, self.weights, self.name)
            model = hf_from_pretrained(getattr(transformers, self.model_class), self.weights, self.name)
        import torch

        self.device = resolve_device(self.device_spec)
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.model = model.to(self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.image_processor = getattr(processor, "image_processor", processor)
        self.tokenizer = getattr(processor, "tokenizer", None)
        if self.tokenizer is None:
            raise TeacherError(f"{self.name}: the processor has no tokenizer")

    @classmethod
    def from_model(cls: type[H], model: Any, processor: Any, ontology: Ontology, **kwargs: Any) -> H:
        """Wrap an already-built model and processor (tests, custom checkpoints, fine-tuned models).

        Example:
            >>> teacher = GroundingDinoTeacher.from_model(model, processor, onto, device="cpu")  # doctest: +SKIP
        """
        kwargs.setdefault("weights", getattr(model, "name_or_path", None) or "in-memory")
        return cls(ontology, model=model, processor=processor, **kwargs)

    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """Detect every ontology class in a batch of HxWx3 uint8 RGB images (one Detections per image)."""
        images = check_images(images, self.name)
        out: list[sv.Detections] = []
        for i in range(0, len(images), self.batch_size):
            out.extend(self._predict_batch(images[i : i + self.batch_size]))
        return out

    @abstractmethod
    def _predict_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        """One Detections per image of a batch of at most ``batch_size`` checked images."""


def cxcywh_to_xyxy(boxes: np.ndarray, width: int, height: int, pad_square: bool = False) -> np.ndarray:
    """Normalized ``cxcywh`` → pixel ``xyxy`` of a ``width`` × ``height`` image, clipped to it.

    ``pad_square``: the model saw the image padded at the bottom/right to a square of side ``max(H, W)``
    (OWLv2), so both axes scale by that side; otherwise the image was stretched and x scales by W, y by H.

    >>> cxcywh_to_xyxy(np.array([[0.5, 0.5, 1.0, 1.0]]), 200, 100, pad_square=True)
    array([[  0.,   0., 200., 100.]], dtype=float32)
    """
    cx, cy, bw, bh = np.asarray(boxes).reshape(-1, 4).T
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    xyxy = xyxy * max(width, height) if pad_square else xyxy * [width, height, width, height]
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    return xyxy.astype(np.float32)
