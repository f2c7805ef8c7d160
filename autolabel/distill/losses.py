"""Knowledge-distillation losses: small, documented ``torch.nn.Module`` s with functional twins.

Every loss takes the *student* tensors first and the *teacher* tensors second, and detaches the teacher:
gradients reach the student (and a loss's own parameters, e.g. the FitNets projection) only. Bad arguments
(a temperature <= 0, an ``alpha`` outside [0, 1], shapes that do not match) raise :class:`ValueError`
with a one-line message that says what was expected and what was found.

Logits keep their classes on the **last** dimension, ``(..., C)``, which is how detection heads lay them
out (``(N, anchors, C)``); a plain classifier's ``(N, C)`` is the special case. ``"batchmean"`` divides
by the number of class distributions (all leading dimensions together), which is what makes the KL term a
true mean KL divergence.

Where each is used (the recipes: :mod:`autolabel.distill.recipes`):

* :class:`HintonKD` — soft-target KD (Hinton et al. 2015) from teacher logits or probabilities: every
  classifier recipe; :func:`kd_kl_div` is its KL term (SSDLite's classification head);
* :class:`SoftTargetBCE` — its multi-label (per-class sigmoid) analogue for YOLO students;
* :class:`FitNetsHint`, :class:`MultiLevelHint` — feature hints through learned 1x1 projections (Romero et
  al. 2015): YOLO's online KD;
* :class:`SimilarityPreserving` — batch-similarity matching (Tung & Mori 2019): classifier recipe ``sp``;
* :class:`RKDDistance`, :class:`RKDAngle`, :class:`RKD` — relational KD (Park et al. 2019): recipe ``rkd``;
* :class:`DMLLoss` — deep mutual learning between peer students (Zhang et al. 2018): recipe ``dml``;
* :class:`ClassSpecializedKD` — KD from a teacher with more classes, restricted to the ontology's: recipe
  ``class-specialized``.

Example:
    >>> import torch
    >>> kd = HintonKD(temperature=4.0, alpha=0.5)
    >>> student, teacher = torch.randn(8, 3, requires_grad=True), torch.randn(8, 3)
    >>> loss = kd(student, teacher, targets=torch.randint(0, 3, (8,)))
    >>> loss.backward()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RKD",
    "ClassSpecializedKD",
    "DMLLoss",
    "DMLOutput",
    "FitNetsHint",
    "HintonKD",
    "MultiLevelHint",
    "RKDAngle",
    "RKDDistance",
    "SimilarityPreserving",
    "SoftTargetBCE",
    "hinton_kd",
    "kd_kl_div",
    "soften_probs",
]

_KD_REDUCTIONS = ("batchmean", "sum", "none")
_ELEMENT_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------------------------------------
# argument checks (ValueError with one clear line)
# ----------------------------------------------------------------------------------------------------------


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 <= a <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return a


def _check_reduction(reduction: str, allowed: tuple[str, ...]) -> str:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _check_same_shape(a: Tensor, b: Tensor, what_a: str, what_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what_a} and {what_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _check_logits(x: Tensor, what: str) -> None:
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(
            f"{what} must have shape (..., C) with C >= 1 classes on the last dim, got {tuple(x.shape)}"
        )


def _one_teacher(teacher_logits: Tensor | None, teacher_probs: Tensor | None) -> None:
    if (teacher_logits is None) == (teacher_probs is None):
        raise ValueError("give exactly one of teacher_logits and teacher_probs")


def _check_probs(p: Tensor, what: str = "teacher_probs") -> None:
    # One host sync per call; cheap next to a forward pass and it turns silent NaN losses into an error.
    if p.numel() and (not bool(torch.isfinite(p).all()) or float(p.min()) < 0 or float(p.max()) > 1):
        raise ValueError(f"{what} must hold finite probabilities in [0, 1]")


def _check_targets(targets: Tensor, logits: Tensor) -> None:
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"targets must hold one class index per logit row, shape {tuple(logits.shape[:-1])}, "
            f"got {tuple(targets.shape)}"
        )
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")


def _reduce_rows(per_row: Tensor, reduction: str) -> Tensor:
    """Reduce a per-distribution loss of shape (...) for the KD reductions."""
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    return per_row.sum() / max(per_row.numel(), 1)  # batchmean: mean over distributions


def _probs_to_log(p: Tensor) -> Tensor:
    # Clamp so a class the teacher cannot see (p = 0) is a very negative, finite log-probability: an exact
    # -inf would make a row of zeros (or 0 * -inf in the KL) produce NaN.
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))


# ----------------------------------------------------------------------------------------------------------
# Hinton KD
# ----------------------------------------------------------------------------------------------------------


def _teacher_log_probs(
    teacher_logits: Tensor | None, teacher_probs: Tensor | None, temperature: float
) -> Tensor:
    """log p_T^τ from logits (log_softmax(z/T)) or probabilities (log_softmax(log p / T))."""
    if teacher_probs is not None:
        _check_probs(teacher_probs)
        # normalize(p^(1/T)) == softmax(log p / T): the same tempered distribution as from logits, and it
        # also normalizes per-class sigmoid scores whose rows do not sum to 1.
        z = _probs_to_log(teacher_probs.detach())
    else:
        assert teacher_logits is not None
        z = teacher_logits.detach()
    return F.log_softmax(z / temperature, dim=-1)


def kd_kl_div(
    student_logits: Tensor,
    teacher_logits: Tensor | None = None,
    temperature: float = 4.0,
    reduction: str = "batchmean",
    *,
    teacher_probs: Tensor | None = None,
) -> Tensor:
    """The soft-target term of Hinton KD: ``T² · KL(softmax(z_T/T) ‖ softmax(z_S/T))``.

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015 (arXiv:1503.02531).

    .. math::
        \\mathcal{L}_{KD} = T^2 \\sum_c p_T^\\tau(c) \\,(\\log p_T^\\tau(c) - \\log p_S^\\tau(c)),
        \\quad p^\\tau = \\mathrm{softmax}(z / T)

    The ``T²`` factor keeps the gradient magnitude independent of ``T`` (the paper's recommendation), so it
    is part of this function. The teacher is detached.

    Args:
        student_logits: ``(..., C)`` student logits.
        teacher_logits: ``(..., C)`` teacher logits; or give ``teacher_probs`` instead.
        temperature: ``T > 0``; larger values soften both distributions.
        reduction: ``"batchmean"`` (mean over the ``(...)`` rows), ``"sum"`` or ``"none"`` (shape ``(...)``).
        teacher_probs: ``(..., C)`` teacher probabilities in ``[0, 1]``; tempered as
            ``normalize(p^(1/T)) = softmax(log p / T)``.

    Returns:
        The loss (a scalar unless ``reduction="none"``).

    Example:
        >>> import math, torch
        >>> s, t = torch.zeros(1, 2), torch.tensor([[math.log(3.0), 0.0]])  # p_T = (3/4, 1/4), p_S = (1/2, 1/2)
        >>> round(kd_kl_div(s, t, temperature=1.0).item(), 4)  # 3/4 ln(3/2) + 1/4 ln(1/2)
        0.1308
    """
    t = _check_temperature(temperature)
    _check_reduction(reduction, _KD_REDUCTIONS)
    _one_teacher(teacher_logits, teacher_probs)
    teacher = teacher_logits if teacher_logits is not None else teacher_probs
    assert teacher is not None
    _check_logits(student_logits, "student_logits")
    _check_same_shape(
        student_logits,
        teacher,
        "student_logits",
        "teacher_logits" if teacher_probs is None else "teacher_probs",
    )
    log_pt = _teacher_log_probs(teacher_logits, teacher_probs, t)
    log_ps = F.log_softmax(student_logits / t, dim=-1)
    per_row = (log_pt.exp() * (log_pt - log_ps)).sum(-1) * (t * t)
    return _reduce_rows(per_row, reduction)


def _hard_ce(student_logits: Tensor, targets: Tensor, reduction: str) -> Tensor:
    _check_targets(targets, student_logits)
    c = student_logits.shape[-1]
    per_row = F.cross_entropy(student_logits.reshape(-1, c), targets.reshape(-1).long(), reduction="none")
    return _reduce_rows(per_row.reshape(targets.shape), reduction)


def hinton_kd(
    student_logits: Tensor,
    teacher_logits: Tensor | None = None,
    targets: Tensor | None = None,
    temperature: float = 4.0,
    alpha: float = 0.5,
    reduction: str = "batchmean",
    *,
    teacher_probs: Tensor | None = None,
) -> Tensor:
    """Functional :class:`HintonKD`: ``α·CE(z_S, y) + (1−α)·T²·KL(p_T^τ ‖ p_S^τ)``; pure KD if ``targets`` is None."""
    a = _check_alpha(alpha)
    kd = kd_kl_div(student_logits, teacher_logits, temperature, reduction, teacher_probs=teacher_probs)
    if targets is None:
        return kd  # no labels: alpha is ignored and the loss is the KD term alone
    return a * _hard_ce(student_logits, targets, reduction) + (1.0 - a) * kd


class HintonKD(nn.Module):
    """Soft-target knowledge distillation (Hinton, Vinyals & Dean 2015, arXiv:1503.02531).

    .. math::
        \\mathcal{L} = \\alpha\\,\\mathrm{CE}(z_S, y) + (1-\\alpha)\\,T^2\\,
        \\mathrm{KL}\\big(\\mathrm{softmax}(z_T/T) \\,\\|\\, \\mathrm{softmax}(z_S/T)\\big)

    The teacher may be given as logits ``z_T`` or as probabilities ``p_T`` (autolabel's teachers usually
    give probabilities): then ``p_T^τ = normalize(p_T^(1/T)) = softmax(log p_T / T)``, identical to the
    logits path when ``p_T = softmax(z_T)``. Rows that do not sum to 1 (per-class sigmoid scores) are
    normalized; zeros are clamped to the smallest positive float so they stay finite.

    Hard ``targets`` are optional: when they are ``None`` the loss is the KD term alone and ``alpha`` is
    ignored (learning from the teacher only, e.g. on unlabeled frames).

    Args:
        temperature: ``T > 0``.
        alpha: weight of the hard-label cross-entropy, in ``[0, 1]``.
        reduction: ``"batchmean"``, ``"sum"`` or ``"none"`` (see :func:`kd_kl_div`).

    Example:
        >>> import torch
        >>> kd = HintonKD(temperature=2.0, alpha=0.5)
        >>> s = torch.zeros(1, 2, requires_grad=True)
        >>> loss = kd(s, teacher_probs=torch.tensor([[0.9, 0.1]]), targets=torch.tensor([0]))
        >>> round(loss.item(), 4)  # 0.5·ln 2 + 0.5·4·KL((3/4, 1/4) ‖ (1/2, 1/2))
        0.6082
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.5, reduction: str = "batchmean") -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        self.reduction = _check_reduction(reduction, _KD_REDUCTIONS)

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor | None = None,
        targets: Tensor | None = None,
        teacher_probs: Tensor | None = None,
    ) -> Tensor:
        """Loss for ``(..., C)`` student logits against teacher logits *or* probabilities (one of them)."""
        return hinton_kd(
            student_logits,
            teacher_logits,
            targets,
            self.temperature,
            self.alpha,
            self.reduction,
            teacher_probs=teacher_probs,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}, reduction={self.reduction!r}"


# ----------------------------------------------------------------------------------------------------------
# soft-target BCE (multi-label KD for sigmoid heads)
# ----------------------------------------------------------------------------------------------------------


def soften_probs(p: Tensor, temperature: float) -> Tensor:
    """Temperature-soften independent per-class probabilities: ``σ(logit(p) / T)``.

    The sigmoid analogue of ``softmax(z/T)``: each class is a two-way softmax over (class, not class), so
    dividing its logit by ``T > 1`` pulls the score towards 0.5 and ``T < 1`` sharpens it. ``T = 1`` returns
    ``p`` unchanged. The logit is computed on ``p`` clamped to ``[eps, 1 − eps]`` (no inf/NaN); exact 0 and 1
    are the formula's limits for every ``T`` and are kept exactly, so a class the teacher cannot see
    (score 0) stays 0. Returns a detached tensor.

    Example:
        >>> import torch
        >>> soften_probs(torch.tensor([0.9, 0.5, 0.0]), 2.0)  # logit(0.9)/2 = ln 3 -> 3/4
        tensor([0.7500, 0.5000, 0.0000])
    """
    t = _check_temperature(temperature)
    p = p.detach()
    _check_probs(p, "probabilities")
    if t == 1.0:
        return p
    eps = torch.finfo(p.dtype).eps if p.dtype.is_floating_point else 1e-7
    soft = torch.sigmoid(torch.logit(p.clamp(eps, 1.0 - eps)) / t)
    soft = torch.where(p <= 0, torch.zeros_like(soft), soft)
    return torch.where(p >= 1, torch.ones_like(soft), soft)


class SoftTargetBCE(nn.Module):
    """Soft-target binary cross-entropy: Hinton KD for per-class sigmoid heads (YOLO students).

    Detectors such as YOLOv8 score every class with an independent sigmoid, so the teacher's "dark
    knowledge" is a vector of per-class probabilities that need not sum to 1 — a softmax KL does not
    apply. This is the multi-label analogue of :class:`HintonKD` (Hinton et al. 2015, arXiv:1503.02531)
    that autolabel's YOLO students train with: the BCE target mixes the hard one-hot label with the
    temperature-softened teacher scores,

    .. math::
        t = \\alpha\\,y_{\\text{onehot}} + (1-\\alpha)\\,\\sigma(\\mathrm{logit}(p_T)/T), \\qquad
        \\mathcal{L} = \\mathrm{BCEWithLogits}(z_S, t)\\ (\\text{optionally weighted per element})

    When ``targets`` is ``None`` the target is the softened teacher alone (``alpha`` ignored). Unlike
    :class:`HintonKD` there is no ``T²`` factor and the student logits are *not* divided by ``T``: the
    student is asked to reproduce the softened scores themselves (at ``T = 1``, the teacher's scores).

    Args:
        temperature: ``T > 0`` for :func:`soften_probs`; ``1`` keeps the teacher's scores.
        alpha: weight of the hard one-hot target, in ``[0, 1]``.
        reduction: ``"mean"`` (over elements), ``"sum"`` or ``"none"``.

    Example:
        >>> import math, torch
        >>> bce = SoftTargetBCE(temperature=2.0, alpha=0.5)
        >>> z = torch.tensor([[math.log(3.0)]])  # σ(z) = 3/4
        >>> # target = 0.5·1 + 0.5·σ(logit(0.9)/2) = 0.875; loss = −(0.875 ln 3/4 + 0.125 ln 1/4)
        >>> round(bce(z, torch.tensor([[0.9]]), targets=torch.tensor([0])).item(), 4)
        0.425
    """

    def __init__(self, temperature: float = 1.0, alpha: float = 0.5, reduction: str = "mean") -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        self.reduction = _check_reduction(reduction, _ELEMENT_REDUCTIONS)

    def soft_target(
        self,
        student_logits: Tensor,
        teacher_probs: Tensor | None = None,
        targets: Tensor | None = None,
        teacher_logits: Tensor | None = None,
    ) -> Tensor:
        """The (detached) BCE target ``α·onehot + (1−α)·soften(p_T)``, shaped like ``student_logits``."""
        _one_teacher(teacher_logits, teacher_probs)
        _check_logits(student_logits, "student_logits")
        if teacher_probs is None:
            assert teacher_logits is not None
            _check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
            # σ(logit(σ(z))/T) = σ(z/T): no round trip through probabilities, no clamping needed.
            soft = torch.sigmoid(teacher_logits.detach().float() / self.temperature).to(student_logits.dtype)
        else:
            _check_same_shape(student_logits, teacher_probs, "student_logits", "teacher_probs")
            soft = soften_probs(teacher_probs, self.temperature).to(student_logits.dtype)
        if targets is None:
            return soft
        return self.alpha * self._hard(targets, student_logits) + (1.0 - self.alpha) * soft

    @staticmethod
    def _hard(targets: Tensor, logits: Tensor) -> Tensor:
        """Multi-hot float targets as given, or class indices → one-hot (index < 0 = background, all 0)."""
        if targets.shape == logits.shape:
            return targets.detach().to(logits.dtype)
        _check_targets(targets, logits)
        c = logits.shape[-1]
        if targets.numel() and int(targets.max()) >= c:
            raise ValueError(f"targets hold class index {int(targets.max())} but there are {c} classes")
        onehot = F.one_hot(targets.long().clamp_min(0), c).to(logits.dtype)
        return onehot * (targets >= 0).unsqueeze(-1).to(logits.dtype)

    def forward(
        self,
        student_logits: Tensor,
        teacher_probs: Tensor | None = None,
        targets: Tensor | None = None,
        weight: Tensor | None = None,
        teacher_logits: Tensor | None = None,
    ) -> Tensor:
        """BCE-with-logits of ``(..., C)`` student logits against the mixed soft target.

        Args:
            student_logits: ``(..., C)`` raw (pre-sigmoid) student scores.
            teacher_probs: ``(..., C)`` teacher scores in ``[0, 1]`` (or give ``teacher_logits``).
            targets: hard labels, either ``(...)`` integer class indices (``< 0`` = background: all-zero
                row) or a ``(..., C)`` multi-hot tensor; ``None`` for pure distillation.
            weight: optional per-element weights broadcastable to ``(..., C)`` (e.g. anchor quality).
            teacher_logits: ``(..., C)`` teacher pre-sigmoid scores instead of ``teacher_probs``.
        """
        target = self.soft_target(student_logits, teacher_probs, targets, teacher_logits)
        if weight is not None:
            try:
                torch.broadcast_shapes(weight.shape, student_logits.shape)
            except RuntimeError as e:
                raise ValueError(
                    f"weight of shape {tuple(weight.shape)} does not broadcast to {tuple(student_logits.shape)}"
                ) from e
            weight = weight.detach()
        return F.binary_cross_entropy_with_logits(
            student_logits, target, weight=weight, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, alpha={self.alpha}, reduction={self.reduction!r}"


# ----------------------------------------------------------------------------------------------------------
# FitNets hints
# ----------------------------------------------------------------------------------------------------------


class FitNetsHint(nn.Module):
    """FitNets hint loss (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, arXiv:1412.6550).

    A learned regressor maps the student's feature map to the teacher's channels and the result is
    regressed onto the teacher's feature map:

    .. math::
        \\mathcal{L}_{hint} = \\mathrm{MSE}\\big(\\mathrm{resize}(r(F_S)),\\ F_T\\big),
        \\quad r = \\text{1×1 conv (+ BatchNorm)}

    ``r`` is a 1×1 convolution (the paper's cheaper variant of its convolutional regressor), optionally
    followed by BatchNorm. When spatial sizes differ, the **student** (after projection) is bilinearly
    resized to the **teacher's** size, so the teacher's features are compared untouched. The teacher is
    detached; the projection's parameters are trainable and must be given to the student's optimizer.

    Args:
        student_channels: channels of the student feature map.
        teacher_channels: channels of the teacher feature map.
        batch_norm: add a BatchNorm2d after the projection.
        align_corners: passed to the bilinear resize.

    Example:
        >>> import torch
        >>> hint = FitNetsHint(16, 64)
        >>> loss = hint(torch.randn(2, 16, 20, 20), torch.randn(2, 64, 40, 40))  # student resized to 40x40
        >>> multi = FitNetsHint.multi([16, 32], [64, 128])  # one projection per pyramid level
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        batch_norm: bool = False,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if int(student_channels) < 1 or int(teacher_channels) < 1:
            raise ValueError(
                f"channel counts must be >= 1, got student_channels={student_channels}, "
                f"teacher_channels={teacher_channels}"
            )
        self.student_channels = int(student_channels)
        self.teacher_channels = int(teacher_channels)
        self.align_corners = align_corners
        # No bias before BatchNorm: BN's shift makes it redundant.
        self.proj = nn.Conv2d(self.student_channels, self.teacher_channels, 1, bias=not batch_norm)
        self.bn: nn.Module = nn.BatchNorm2d(self.teacher_channels) if batch_norm else nn.Identity()

    @classmethod
    def multi(
        cls,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        batch_norm: bool = False,
        level_weights: Sequence[float] | None = None,
    ) -> MultiLevelHint:
        """A :class:`MultiLevelHint` with one projection per ``(student, teacher)`` channel pair."""
        return MultiLevelHint(student_channels, teacher_channels, batch_norm, level_weights)

    def project(self, student_feat: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Projected student features, bilinearly resized to ``size`` (H, W) when given and different."""
        out = self.bn(self.proj(student_feat))
        if size is not None and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=self.align_corners)
        return out

    def forward(self, student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
        """MSE between projected ``(N, Cs, Hs, Ws)`` student and ``(N, Ct, Ht, Wt)`` teacher features."""
        if student_feat.dim() != 4 or teacher_feat.dim() != 4:
            raise ValueError(
                f"FitNetsHint expects (N, C, H, W) feature maps, got student {tuple(student_feat.shape)} "
                f"and teacher {tuple(teacher_feat.shape)}"
            )
        if student_feat.shape[1] != self.student_channels or teacher_feat.shape[1] != self.teacher_channels:
            raise ValueError(
                f"expected {self.student_channels} student and {self.teacher_channels} teacher channels, got "
                f"{student_feat.shape[1]} and {teacher_feat.shape[1]}"
            )
        if student_feat.shape[0] != teacher_feat.shape[0]:
            raise ValueError(
                f"batch sizes differ: student {student_feat.shape[0]}, teacher {teacher_feat.shape[0]}"
            )
        size = (int(teacher_feat.shape[-2]), int(teacher_feat.shape[-1]))
        return F.mse_loss(self.project(student_feat, size), teacher_feat.detach())

    def extra_repr(self) -> str:
        return f"student_channels={self.student_channels}, teacher_channels={self.teacher_channels}"


class MultiLevelHint(nn.Module):
    """FitNets hints on several feature levels (e.g. FPN P3/P4/P5): one :class:`FitNetsHint` per level.

    .. math:: \\mathcal{L} = \\sum_l w_l\\,\\mathcal{L}_{hint}(F_S^l, F_T^l), \\quad w_l = 1/L \\text{ by default}

    Equal default weights make the loss a mean over levels, so its scale does not grow with the number
    of levels (Romero et al. 2015 used a single hint; multi-level hints are the usual detector practice).

    Example:
        >>> import torch
        >>> hint = MultiLevelHint([8, 16], [32, 64])
        >>> s = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8)]
        >>> t = [torch.randn(2, 32, 16, 16), torch.randn(2, 64, 8, 8)]
        >>> loss = hint(s, t)
    """

    def __init__(
        self,
        student_channels: Sequence[int],
        teacher_channels: Sequence[int],
        batch_norm: bool = False,
        level_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(student_channels) != len(teacher_channels) or not student_channels:
            raise ValueError(
                f"need one teacher channel count per student level, got {len(student_channels)} student and "
                f"{len(teacher_channels)} teacher levels"
            )
        n = len(student_channels)
        if level_weights is None:
            level_weights = [1.0 / n] * n
        if len(level_weights) != n:
            raise ValueError(f"level_weights has {len(level_weights)} entries for {n} levels")
        self.level_weights = [float(w) for w in level_weights]
        self.hints = nn.ModuleList(
            FitNetsHint(s, t, batch_norm) for s, t in zip(student_channels, teacher_channels)
        )

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        """Weighted sum of the per-level hint losses."""
        if len(student_feats) != len(self.hints) or len(teacher_feats) != len(self.hints):
            raise ValueError(
                f"expected {len(self.hints)} feature levels, got {len(student_feats)} student and "
                f"{len(teacher_feats)} teacher maps"
            )
        losses = [
            w * h(s, t) for w, h, s, t in zip(self.level_weights, self.hints, student_feats, teacher_feats)
        ]
        return torch.stack(losses).sum()


# ----------------------------------------------------------------------------------------------------------
# similarity-preserving KD
# ----------------------------------------------------------------------------------------------------------


def _similarity(feat: Tensor) -> Tensor:
    """Row-L2-normalized batch Gram matrix ``normalize_rows(A Aᵀ)`` of flattened activations."""
    a = feat.reshape(feat.shape[0], -1)
    return F.normalize(a @ a.t(), p=2, dim=1)


class SimilarityPreserving(nn.Module):
    """Similarity-preserving KD (Tung & Mori, ICCV 2019, arXiv:1907.09682).

    Inputs that produce similar activations in the teacher should do so in the student; only the
    ``b × b`` pattern of pairwise similarities within the batch is matched, so student and teacher may
    have any (different) feature shapes:

    .. math::
        G = \\mathrm{normalize\\_rows}(A A^\\top),\\ A \\in \\mathbb{R}^{b \\times chw}, \\qquad
        \\mathcal{L}_{SP} = \\frac{1}{b^2} \\lVert G_S - G_T \\rVert_F^2

    Row normalization makes the loss invariant to scaling the activations. Lists of feature maps (pairs
    of layers) are summed, as in the paper. The teacher is detached.

    Example:
        >>> import torch
        >>> sp = SimilarityPreserving()
        >>> loss = sp(torch.randn(8, 16, 4, 4), torch.randn(8, 64, 2, 2))
    """

    def forward(
        self, student_feat: Tensor | Sequence[Tensor], teacher_feat: Tensor | Sequence[Tensor]
    ) -> Tensor:
        """``‖G_S − G_T‖²_F / b²`` for one pair of ``(b, ...)`` activations, or the sum over lists of pairs."""
        if isinstance(student_feat, Tensor) != isinstance(teacher_feat, Tensor):
            raise ValueError("give one tensor each or one list each for student_feat and teacher_feat")
        if isinstance(student_feat, Tensor):
            assert isinstance(teacher_feat, Tensor)
            return self._pair(student_feat, teacher_feat)
        if len(student_feat) != len(teacher_feat) or not student_feat:
            raise ValueError(
                f"need matching non-empty lists, got {len(student_feat)} and {len(teacher_feat)} maps"
            )
        return torch.stack([self._pair(s, t) for s, t in zip(student_feat, teacher_feat)]).sum()

    @staticmethod
    def _pair(s: Tensor, t: Tensor) -> Tensor:
        if s.dim() < 2 or t.dim() < 2 or s.shape[0] != t.shape[0]:
            raise ValueError(
                f"student and teacher activations need the same batch size b on dim 0 and >= 2 dims, got "
                f"{tuple(s.shape)} and {tuple(t.shape)}"
            )
        b = s.shape[0]
        diff = _similarity(s) - _similarity(t.detach())
        return diff.pow(2).sum() / (b * b)


# ----------------------------------------------------------------------------------------------------------
# relational KD
# ----------------------------------------------------------------------------------------------------------


def _flatten_embeddings(e: Tensor, what: str, min_batch: int) -> Tensor:
    if e.dim() < 2 or e.shape[0] < min_batch:
        raise ValueError(f"{what} must be (b, ...) embeddings with b >= {min_batch}, got {tuple(e.shape)}")
    return e.reshape(e.shape[0], -1)


def _pairwise_distances(e: Tensor) -> Tensor:
    """Euclidean distances of the b(b−1) ordered off-diagonal pairs, as a flat vector."""
    sq = e.pow(2).sum(1)
    # Gram form: b² memory instead of the b²·d of explicit differences. The clamp keeps sqrt's gradient
    # finite for coincident points (the clamp's own gradient is then 0).
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (e @ e.t())).clamp_min(1e-12)
    off = ~torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d2.sqrt()[off]


def _triplet_cosines(e: Tensor) -> Tensor:
    """cos ∠(e_i, e_j, e_k) (angle at e_j) for all triplets of distinct i, j, k, as a flat vector."""
    b = e.shape[0]
    v = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # v[j, i] = unit(e_i − e_j)
    cos = torch.bmm(v, v.transpose(1, 2))  # cos[j, i, k] = <v[j, i], v[j, k]>
    eye = torch.eye(b, dtype=torch.bool, device=e.device)
    distinct = ~(eye.unsqueeze(2) | eye.unsqueeze(1) | eye.unsqueeze(0))  # j≠i, j≠k, i≠k
    return cos[distinct]


class RKDDistance(nn.Module):
    """Distance-wise relational KD (Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019).

    .. math::
        \\psi_D(t_i, t_j) = \\frac{\\lVert t_i - t_j \\rVert_2}{\\mu}, \\quad
        \\mu = \\text{mean pairwise distance}, \\qquad
        \\mathcal{L}_{RKD\\text{-}D} = \\operatorname{mean}_{i \\neq j}\\, \\ell_\\delta(\\psi_D^S, \\psi_D^T)

    with ``ℓ_δ`` the Huber (smooth L1, δ = 1) loss. Normalizing by ``μ`` makes it invariant to a uniform
    scaling of either embedding space. The mean runs over the ``b(b−1)`` ordered pairs (the reference code
    also averages the zero diagonal, i.e. a constant factor ``(b−1)/b`` smaller). Embeddings are flattened
    to ``(b, d)``; student and teacher dimensions may differ; the teacher is detached.

    Example:
        >>> import torch
        >>> loss = RKDDistance()(torch.randn(8, 32), torch.randn(8, 128))
    """

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Huber loss between μ-normalized pairwise distances of ``(b, ...)`` embeddings, ``b >= 2``."""
        s = _flatten_embeddings(student, "student", 2)
        t = _flatten_embeddings(teacher.detach(), "teacher", 2)
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"batch sizes differ: student {s.shape[0]}, teacher {t.shape[0]}")
        ds, dt = _pairwise_distances(s), _pairwise_distances(t)
        return F.smooth_l1_loss(ds / ds.mean(), dt / dt.mean())


class RKDAngle(nn.Module):
    """Angle-wise relational KD (Park et al., CVPR 2019, arXiv:1904.05068).

    .. math::
        \\psi_A(t_i, t_j, t_k) = \\cos\\angle t_i t_j t_k =
        \\Big\\langle \\tfrac{t_i - t_j}{\\lVert t_i - t_j\\rVert}, \\tfrac{t_k - t_j}{\\lVert t_k - t_j\\rVert}\\Big\\rangle,
        \\qquad \\mathcal{L}_{RKD\\text{-}A} = \\operatorname{mean}_{i,j,k\\ \\text{distinct}}\\,
        \\ell_\\delta(\\psi_A^S, \\psi_A^T)

    Huber (smooth L1, δ = 1). Needs ``b >= 3``; costs ``b³`` memory in the batch size. Angles are invariant
    to scaling and translating the embeddings. The teacher is detached.

    Example:
        >>> import torch
        >>> loss = RKDAngle()(torch.randn(8, 32), torch.randn(8, 128))
    """

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Huber loss between the triplet angle cosines of ``(b, ...)`` embeddings, ``b >= 3``."""
        s = _flatten_embeddings(student, "student", 3)
        t = _flatten_embeddings(teacher.detach(), "teacher", 3)
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"batch sizes differ: student {s.shape[0]}, teacher {t.shape[0]}")
        return F.smooth_l1_loss(_triplet_cosines(s), _triplet_cosines(t))


class RKD(nn.Module):
    """Relational KD with both terms: ``w_dist · RKD-D + w_angle · RKD-A`` (Park et al. 2019).

    The defaults ``w_dist = 25, w_angle = 50`` are the paper's weights (λ_D, λ_A) for metric learning.

    Example:
        >>> import torch
        >>> loss = RKD()(torch.randn(8, 32), torch.randn(8, 128))
    """

    def __init__(self, w_dist: float = 25.0, w_angle: float = 50.0) -> None:
        super().__init__()
        if w_dist < 0 or w_angle < 0:
            raise ValueError(f"RKD weights must be >= 0, got w_dist={w_dist}, w_angle={w_angle}")
        self.w_dist = float(w_dist)
        self.w_angle = float(w_angle)
        self.distance = RKDDistance()
        self.angle = RKDAngle()

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Weighted sum of the distance and angle terms."""
        return self.w_dist * self.distance(student, teacher) + self.w_angle * self.angle(student, teacher)

    def extra_repr(self) -> str:
        return f"w_dist={self.w_dist}, w_angle={self.w_angle}"


# ----------------------------------------------------------------------------------------------------------
# deep mutual learning
# ----------------------------------------------------------------------------------------------------------


class DMLOutput(NamedTuple):
    """Per-student DML losses (each to backprop into its own student) and their sum."""

    per_student: list[Tensor]
    total: Tensor


class DMLLoss(nn.Module):
    """Deep mutual learning for K >= 2 peer students (Zhang, Xiang, Hospedales & Lu, CVPR 2018, arXiv:1706.00384).

    Each student learns from the labels and from the other students' current predictions:

    .. math::
        \\mathcal{L}_k = \\mathrm{CE}(z_k, y) + \\frac{T^2}{K-1} \\sum_{l \\neq k}
        \\mathrm{KL}\\big(\\mathrm{sg}(p_l^\\tau) \\,\\|\\, p_k^\\tau\\big), \\quad p^\\tau = \\mathrm{softmax}(z/T)

    ``sg`` is stop-gradient: the peers act as fixed teachers, so ``L_k`` reaches student ``k`` only, and
    ``total.backward()`` gives every student exactly the gradient of its own loss (one simultaneous
    update; the paper alternates updates, which needs a fresh forward pass between them). The ``T²``
    factor is 1 at the paper's ``T = 1``. Without ``targets`` the CE term is dropped.

    Example:
        >>> import torch
        >>> dml = DMLLoss()
        >>> a, b = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
        >>> losses, total = dml([a, b], torch.tensor([0, 1, 2, 0]))
        >>> total.backward()  # a gets ∂L_a/∂a only, b gets ∂L_b/∂b only
    """

    def __init__(self, temperature: float = 1.0, reduction: str = "batchmean") -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.reduction = _check_reduction(reduction, ("batchmean", "sum"))

    def forward(self, logits: Sequence[Tensor], targets: Tensor | None = None) -> DMLOutput:
        """Per-student losses for a list of ``(..., C)`` logits (same shape) and optional class indices."""
        if len(logits) < 2:
            raise ValueError(f"deep mutual learning needs at least 2 students, got {len(logits)}")
        for i, z in enumerate(logits[1:], 1):
            _check_same_shape(logits[0], z, "logits[0]", f"logits[{i}]")
        k = len(logits)
        losses = []
        for i, z in enumerate(logits):
            kl = torch.stack(
                [
                    kd_kl_div(z, other, self.temperature, self.reduction)
                    for j, other in enumerate(logits)
                    if j != i
                ]
            ).mean()  # kd_kl_div detaches the peer and includes T²
            losses.append(kl if targets is None else _hard_ce(z, targets, self.reduction) + kl)
        assert len(losses) == k
        return DMLOutput(losses, torch.stack(losses).sum())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


# ----------------------------------------------------------------------------------------------------------
# class-specialized KD (teacher with more classes than the ontology)
# ----------------------------------------------------------------------------------------------------------

ClassIndices = Sequence[int | Sequence[int]]


def _index_groups(class_indices: ClassIndices) -> tuple[Tensor, Tensor, bool]:
    """(S, G) padded teacher index matrix, its validity mask, and whether every group has one index."""
    if isinstance(class_indices, Tensor):
        class_indices = class_indices.tolist()
    if len(class_indices) == 0:
        raise ValueError("class_indices must name a teacher class for every student class, got an empty list")
    groups: list[list[int]] = []
    for c, entry in enumerate(class_indices):
        group = [entry] if isinstance(entry, int) else list(entry)
        if not group:
            raise ValueError(f"class_indices[{c}] is empty: every student class needs >= 1 teacher class")
        for i in group:
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise ValueError(f"class_indices[{c}] holds {i!r}; teacher class indices are ints >= 0")
        groups.append(group)
    width = max(len(g) for g in groups)
    index = torch.zeros(len(groups), width, dtype=torch.long)
    mask = torch.zeros(len(groups), width, dtype=torch.bool)
    for c, g in enumerate(groups):
        index[c, : len(g)] = torch.tensor(g)
        mask[c, : len(g)] = True
    return index, mask, width == 1


def _restrict(z: Tensor, index: Tensor, mask: Tensor, single: bool) -> Tensor:
    if single:
        return z.index_select(-1, index[:, 0])
    s, g = index.shape
    picked = z.index_select(-1, index.reshape(-1)).reshape(*z.shape[:-1], s, g)
    return picked.masked_fill(~mask, float("-inf")).logsumexp(-1)  # padding contributes exp(-inf) = 0


class ClassSpecializedKD(nn.Module):
    """Hinton KD from a teacher with more classes (1000 ImageNet or 80 COCO) into a C-class student.

    The teacher's output is restricted to the ontology's classes and renormalized, then distilled as in
    :class:`HintonKD` (Hinton et al. 2015, arXiv:1503.02531):

    .. math::
        \\tilde z_T(c) = \\log \\sum_{k \\in I_c} e^{z_T(k)}, \\qquad
        \\mathcal{L} = \\alpha\\,\\mathrm{CE}(z_S, y) + (1-\\alpha)\\,T^2\\,
        \\mathrm{KL}\\big(\\mathrm{softmax}(\\tilde z_T/T) \\,\\|\\, \\mathrm{softmax}(z_S/T)\\big)

    ``class_indices[c]`` is the teacher class index ``I_c = {k}`` of student class ``c`` (then
    ``z̃_T(c) = z_T(k)``) or a list of several teacher classes merged by ``logsumexp`` (their probabilities
    add up; see :meth:`restrict`). Teacher classes outside the ontology are dropped and the
    softmax over the subset renormalizes, so the student is not asked to put mass on classes it lacks.
    With ``class_indices = range(C)`` this is exactly :class:`HintonKD`. Teacher probabilities are
    accepted too (restricted in log space).

    Args:
        class_indices: one teacher index (or list of indices) per student class.
        temperature: ``T > 0``.
        alpha: hard-label CE weight in ``[0, 1]``; ignored when ``targets`` is ``None``.
        reduction: ``"batchmean"``, ``"sum"`` or ``"none"``.

    Example:
        >>> import torch
        >>> # student classes (person, car, vehicle) from COCO's person=0, car=2, {bus=5, truck=7}
        >>> kd = ClassSpecializedKD([0, 2, [5, 7]], temperature=2.0)
        >>> loss = kd(torch.randn(4, 3, requires_grad=True), torch.randn(4, 80))
    """

    def __init__(
        self,
        class_indices: ClassIndices | Tensor,
        temperature: float = 4.0,
        alpha: float = 0.5,
        reduction: str = "batchmean",
    ) -> None:
        super().__init__()
        index, mask, single = _index_groups(class_indices)
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_alpha(alpha)
        self.reduction = _check_reduction(reduction, _KD_REDUCTIONS)
        self.single = single
        # Buffers follow .to(device); not persistent because they are rebuilt from the constructor args.
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    @property
    def num_student_classes(self) -> int:
        return int(self.index.shape[0])

    def restrict(self, teacher_logits: Tensor) -> Tensor:
        """``(..., C_T)`` teacher logits → ``(..., S)`` logits of the student's classes.

        Entry ``c`` of ``class_indices`` is the teacher class of student class ``c``, or a list of teacher
        classes that all map to it (e.g. ImageNet's many dog breeds → "dog"); a list becomes the
        ``logsumexp`` of its logits, so that after the softmax over the subset the student class receives the
        *summed* probability of its teacher classes. Classes not listed are dropped, and the softmax over the
        kept ones renormalizes the distribution. Merging happens at ``T = 1``; the temperature is applied to
        the merged logits afterwards.

        Example:
            >>> import torch
            >>> z = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
            >>> ClassSpecializedKD([3, [0, 1]]).restrict(z).softmax(-1)  # p(3) ∝ e³, p([0,1]) ∝ e⁰ + e¹
            tensor([[0.8438, 0.1562]])
        """
        c_t = teacher_logits.shape[-1]
        if int(self.index.max()) >= c_t:
            raise ValueError(
                f"class_indices refer to teacher class {int(self.index.max())} but the teacher has {c_t} classes"
            )
        return _restrict(teacher_logits.detach(), self.index, self.mask, self.single)

    def forward(
        self,
        student_logits: Tensor,
        teacher_logits: Tensor | None = None,
        targets: Tensor | None = None,
        teacher_probs: Tensor | None = None,
    ) -> Tensor:
        """KD of ``(..., S)`` student logits from ``(..., C_T)`` teacher logits or probabilities."""
        _one_teacher(teacher_logits, teacher_probs)
        if teacher_probs is not None:
            _check_probs(teacher_probs)
            teacher_logits = _probs_to_log(teacher_probs.detach())
        assert teacher_logits is not None
        sub = self.restrict(teacher_logits)
        if student_logits.shape != sub.shape:
            raise ValueError(
                f"student_logits {tuple(student_logits.shape)} must be (..., {sub.shape[-1]}): one logit per "
                f"entry of class_indices and the teacher's leading dims {tuple(teacher_logits.shape[:-1])}"
            )
        return hinton_kd(student_logits, sub, targets, self.temperature, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        return f"num_student_classes={self.num_student_classes}, temperature={self.temperature}, alpha={self.alpha}"
