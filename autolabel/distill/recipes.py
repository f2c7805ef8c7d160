"""Distillation training recipes, kept generic: they orchestrate user callables and never build models.

:func:`born_again` implements born-again networks (Furlanello et al. 2018); :func:`average_probabilities`
is the matching "BAN ensemble" helper. Nothing here imports torch at module import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # torch is only needed by average_probabilities, imported there
    from torch import Tensor

__all__ = ["average_probabilities", "born_again"]

M = TypeVar("M")


def born_again(
    train_fn: Callable[[M | None], M],
    generations: int = 3,
    *,
    first_model: M | None = None,
    on_generation: Callable[[int, M], None] | None = None,
) -> list[M]:
    """Born-again networks: train a sequence of same-architecture models, each taught by the previous one.

    Furlanello, Lipton, Tschannen, Itti & Anandkumar, "Born-Again Neural Networks", ICML 2018
    (arXiv:1805.04770). Generation 0 is trained on labels alone; generation ``k >= 1`` is a *fresh*
    student of the same architecture trained with generation ``k − 1`` as its KD teacher
    (e.g. with :class:`~autolabel.distill.HintonKD`):

    .. math::
        M_0 = \\text{train}(\\varnothing), \\qquad M_k = \\text{train}(\\text{teacher} = M_{k-1})

    The paper finds the students often beat their equally sized teacher, and that averaging the
    generations' predictions (see :func:`average_probabilities`) helps further. The recipe is generic:
    ``train_fn`` builds, trains and returns a model, and decides how the teacher is used (loss, ``alpha``,
    temperature). It must create a *new* model on each call, not keep training the teacher.

    Args:
        train_fn: ``train_fn(teacher_or_None) -> model``; called with ``None`` for generation 0.
        generations: number of models in the result, generation 0 included (``>= 1``).
        first_model: an already trained generation 0 (e.g. the original teacher); when given, ``train_fn``
            is not called for generation 0 and this model is the first entry of the result.
        on_generation: optional ``callback(k, model)`` after each generation (logging, checkpoints).

    Returns:
        ``[M_0, M_1, ..., M_{generations-1}]``.

    Raises:
        ValueError: ``generations < 1``.

    Example:
        >>> def train_fn(teacher):
        ...     model = make_student()  # same architecture every time
        ...     fit(model, kd_teacher=teacher)  # labels only when teacher is None
        ...     return model
        >>> models = born_again(train_fn, generations=3)  # doctest: +SKIP
        >>> probs = average_probabilities(models[1:], images)  # BAN ensemble of the students  # doctest: +SKIP
    """
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise ValueError(f"generations must be an int >= 1, got {generations!r}")
    models: list[M] = []
    teacher: M | None = None
    for k in range(generations):
        model = first_model if (k == 0 and first_model is not None) else train_fn(teacher)
        if k > 0 and model is teacher:
            # A recipe bug that silently turns BAN into plain fine-tuning; fail loudly instead.
            raise ValueError(f"train_fn returned its teacher at generation {k}; it must build a fresh model")
        models.append(model)
        if on_generation is not None:
            on_generation(k, model)
        teacher = model
    return models


def average_probabilities(
    models: Sequence[Any],
    inputs: Any,
    predict: Callable[[Any, Any], Tensor] | None = None,
) -> Tensor:
    """Ensemble prediction: the mean of the models' class probabilities, ``(1/K) Σ_k p_k(x)``.

    Args:
        models: the models to average (e.g. the output of :func:`born_again`).
        inputs: passed to ``predict`` unchanged.
        predict: ``predict(model, inputs) -> probabilities``; defaults to ``softmax(model(inputs), dim=-1)``.
            Pass e.g. ``lambda m, x: m(x).sigmoid()`` for per-class sigmoid heads.

    Returns:
        The averaged probabilities. Gradients are not disabled here: wrap the call in
        ``torch.no_grad()`` for inference.

    Example:
        >>> import torch
        >>> models = [torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)]
        >>> average_probabilities(models, torch.randn(2, 4)).shape
        torch.Size([2, 3])
    """
    import torch

    if len(models) == 0:
        raise ValueError("average_probabilities needs at least one model")
    if predict is None:

        def predict(m: Any, x: Any) -> Tensor:
            return torch.softmax(m(x), dim=-1)

    probs = [predict(m, inputs) for m in models]
    return torch.stack(probs).mean(0)
