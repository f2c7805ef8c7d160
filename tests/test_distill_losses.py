"""Distillation losses against hand-written references (plain loops / math), plus behaviour checks.

References never call the torch function under test: they loop over rows, classes, pairs and triplets
with :mod:`math`, on fixed small float64 tensors.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autolabel.distill import (
    RKD,
    ClassSpecializedKD,
    DMLLoss,
    FitNetsHint,
    HintonKD,
    MultiLevelHint,
    RKDAngle,
    RKDDistance,
    SimilarityPreserving,
    SoftTargetBCE,
    kd_kl_div,
    soften_probs,
)

# 3/4·ln(3/2) + 1/4·ln(1/2): KL((3/4, 1/4) ‖ (1/2, 1/2)), derived on paper below.
KL_34_VS_UNIFORM = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------------------
# plain-math references
# ---------------------------------------------------------------------------------------------------------


def ref_softmax(row: list[float], t: float = 1.0) -> list[float]:
    m = max(row)
    e = [math.exp((x - m) / t) for x in row]
    s = sum(e)
    return [x / s for x in e]


def ref_kd(student: np.ndarray, teacher_p_tau: np.ndarray, t: float) -> float:
    """T²·mean_rows Σ_c p_T(c)·(log p_T(c) − log p_S(c)), with explicit loops."""
    total = 0.0
    for s_row, p_row in zip(student.tolist(), teacher_p_tau.tolist()):
        q = ref_softmax(s_row, t)
        total += sum(p * (math.log(p) - math.log(qc)) for p, qc in zip(p_row, q) if p > 0)
    return t * t * total / len(student)


def ref_ce(student: np.ndarray, targets: list[int]) -> float:
    return sum(-math.log(ref_softmax(row)[y]) for row, y in zip(student.tolist(), targets)) / len(targets)


def ref_bce(z: float, t: float) -> float:
    s = 1.0 / (1.0 + math.exp(-z))
    return -(t * math.log(s) + (1.0 - t) * math.log(1.0 - s))


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def dist(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def teacher_soft(z: np.ndarray, t: float) -> np.ndarray:
    return np.array([ref_softmax(row, t) for row in z.tolist()])


# ---------------------------------------------------------------------------------------------------------
# Hinton KD
# ---------------------------------------------------------------------------------------------------------


def test_kd_two_class_hand_computed() -> None:
    # Student logits (0, 0) → p_S = (1/2, 1/2). Teacher logits (2 ln 3, 0) at T = 2 → (ln 3, 0) → p_T = (3/4, 1/4).
    # KL = 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2) = 0.75·0.405465 − 0.25·0.693147 = 0.130812; × T² = 0.523248.
    s = torch.zeros(1, 2)
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    assert kd_kl_div(s, t, temperature=2.0).item() == pytest.approx(0.5232481438, rel=1e-6)
    assert kd_kl_div(s, t / 2, temperature=1.0).item() == pytest.approx(0.1308120359, rel=1e-6)
    # With label 0 and α = 0.5: CE((0, 0), 0) = ln 2 → 0.5·0.693147 + 0.5·0.523248 = 0.608198.
    loss = HintonKD(temperature=2.0, alpha=0.5)(s, t, targets=torch.tensor([0]))
    assert loss.item() == pytest.approx(0.6081976622, rel=1e-6)
    # Probabilities (0.9, 0.1) at T = 2: (√0.9, √0.1) / (√0.9 + √0.1) = (3/4, 1/4) exactly → the same 0.523248.
    loss_p = HintonKD(temperature=2.0)(s, teacher_probs=torch.tensor([[0.9, 0.1]]))
    assert loss_p.item() == pytest.approx(4 * KL_34_VS_UNIFORM, rel=1e-6)


def test_kd_matches_loop_reference() -> None:
    s = torch.randn(5, 4, dtype=torch.float64)
    t = torch.randn(5, 4, dtype=torch.float64) * 2
    y = [0, 3, 1, 1, 2]
    temp, alpha = 3.0, 0.3
    got = HintonKD(temp, alpha)(s, t, targets=torch.tensor(y)).item()
    kd = ref_kd(s.numpy(), teacher_soft(t.numpy(), temp), temp)
    assert got == pytest.approx(alpha * ref_ce(s.numpy(), y) + (1 - alpha) * kd, rel=1e-10)
    assert HintonKD(temp, alpha)(s, t).item() == pytest.approx(kd, rel=1e-10)  # targets None: α ignored


def test_kd_teacher_probs_path_matches_reference() -> None:
    s = torch.randn(4, 3, dtype=torch.float64)
    p = torch.tensor(
        [[0.7, 0.2, 0.1], [0.5, 0.5, 0.0], [0.9, 0.05, 0.3], [1.0, 0.0, 0.0]], dtype=torch.float64
    )
    temp = 2.5
    # Reference: p^(1/T) normalized per row (a row need not sum to 1; zeros stay zero).
    pt = []
    for row in p.tolist():
        w = [x ** (1 / temp) for x in row]
        pt.append([x / sum(w) for x in w])
    got = kd_kl_div(s, teacher_probs=p, temperature=temp).item()
    assert got == pytest.approx(ref_kd(s.numpy(), np.array(pt), temp), rel=1e-9)


def test_kd_probs_equal_logits_and_leading_dims() -> None:
    s, z = torch.randn(2, 6, 5), torch.randn(2, 6, 5)
    kd = HintonKD(temperature=4.0, reduction="none")
    per_row = kd(s, z)
    assert per_row.shape == (2, 6)
    torch.testing.assert_close(per_row, kd(s, teacher_probs=z.softmax(-1)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(HintonKD(4.0)(s, z), per_row.mean())
    torch.testing.assert_close(HintonKD(4.0, reduction="sum")(s, z), per_row.sum())


def test_kd_zero_when_student_equals_teacher() -> None:
    z = torch.randn(6, 5)
    assert HintonKD(temperature=3.0)(z.clone(), z).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_gradient_reaches_student_only() -> None:
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    HintonKD(2.0, 0.5)(s, t, targets=torch.tensor([0, 1, 2, 0])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


# ---------------------------------------------------------------------------------------------------------
# soft-target BCE
# ---------------------------------------------------------------------------------------------------------


def test_soften_probs() -> None:
    # logit(0.9) = ln 9; / 2 = ln 3; σ(ln 3) = 3/(3+1) = 0.75. logit(0.5) = 0 stays 0.5 for every T.
    got = soften_probs(torch.tensor([0.9, 0.5, 0.0, 1.0]), 2.0)
    torch.testing.assert_close(got, torch.tensor([0.75, 0.5, 0.0, 1.0]))
    p = torch.rand(3, 4)
    assert torch.equal(soften_probs(p, 1.0), p)  # T = 1 keeps the teacher's scores
    assert torch.isfinite(soften_probs(torch.tensor([0.0, 1.0, 1e-30]), 0.5)).all()


def test_soft_target_bce_hand_computed() -> None:
    # z = ln 3 → σ(z) = 3/4. Target = 0.5·1 + 0.5·0.75 = 0.875.
    # BCE = −(0.875·ln 0.75 + 0.125·ln 0.25) = 0.875·0.287682 + 0.125·1.386294 = 0.425009.
    loss = SoftTargetBCE(temperature=2.0, alpha=0.5)(
        torch.tensor([[math.log(3.0)]]), torch.tensor([[0.9]]), targets=torch.tensor([0])
    )
    assert loss.item() == pytest.approx(0.4250086085, rel=1e-6)


def test_soft_target_bce_matches_loop_reference() -> None:
    z = torch.randn(3, 4, dtype=torch.float64)
    p = torch.rand(3, 4, dtype=torch.float64)
    y = [2, -1, 0]  # -1: a background row (all-zero one-hot)
    w = torch.rand(3, 1, dtype=torch.float64)
    temp, alpha = 1.5, 0.25
    got = SoftTargetBCE(temp, alpha)(z, p, targets=torch.tensor(y), weight=w).item()
    total = 0.0
    for i in range(3):
        for c in range(4):
            pc = p[i, c].item()
            soft = 1 / (1 + math.exp(-math.log(pc / (1 - pc)) / temp))
            tgt = alpha * (1.0 if y[i] == c else 0.0) + (1 - alpha) * soft
            total += w[i, 0].item() * ref_bce(z[i, c].item(), tgt)
    assert got == pytest.approx(total / 12, rel=1e-9)


def test_soft_target_bce_alpha_one_is_hard_bce() -> None:
    z = torch.randn(4, 3, dtype=torch.float64)
    y = [1, 0, 2, 2]
    got = SoftTargetBCE(temperature=3.0, alpha=1.0)(
        z, torch.rand(4, 3, dtype=torch.float64), targets=torch.tensor(y)
    )
    ref = sum(ref_bce(z[i, c].item(), float(y[i] == c)) for i in range(4) for c in range(3)) / 12
    assert got.item() == pytest.approx(ref, rel=1e-10)
    # Multi-hot targets given as a (..., C) tensor are used as they are.
    onehot = F.one_hot(torch.tensor(y), 3).double()
    assert SoftTargetBCE(alpha=1.0)(
        z, torch.rand(4, 3, dtype=torch.float64), targets=onehot
    ).item() == pytest.approx(ref)


def test_soft_target_bce_teacher_logits_path_and_gradient() -> None:
    s = torch.randn(2, 5, 3, requires_grad=True)
    tz = torch.randn(2, 5, 3, requires_grad=True)
    bce = SoftTargetBCE(temperature=2.0)
    a = bce(s, teacher_logits=tz)
    b = bce(s, tz.sigmoid())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    a.backward()
    assert s.grad is not None and tz.grad is None


# ---------------------------------------------------------------------------------------------------------
# FitNets
# ---------------------------------------------------------------------------------------------------------


def test_fitnets_matches_reference_same_size() -> None:
    hint = FitNetsHint(3, 2).double()
    s = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    t = torch.randn(2, 2, 2, 2, dtype=torch.float64)
    w = hint.proj.weight.detach()[:, :, 0, 0].numpy()
    bias = hint.proj.bias.detach().numpy()
    total = 0.0
    for n in range(2):
        for o in range(2):
            for i in range(2):
                for j in range(2):
                    v = bias[o] + sum(w[o, c] * s[n, c, i, j].item() for c in range(3))
                    total += (v - t[n, o, i, j].item()) ** 2
    assert hint(s, t).item() == pytest.approx(total / 16, rel=1e-10)


def test_fitnets_resizes_student_to_teacher_size() -> None:
    hint = FitNetsHint(1, 1).double()
    with torch.no_grad():
        hint.proj.weight.fill_(1.0)
        hint.proj.bias.zero_()
    x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    t = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    # Bilinear 2 → 4 with half-pixel centres: sources −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    r = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    up = r @ x.numpy() @ r.T
    ref = float(((up - t[0, 0].numpy()) ** 2).mean())
    assert hint(x[None, None], t).item() == pytest.approx(ref, rel=1e-10)


def test_fitnets_projection_learns() -> None:
    hint = FitNetsHint(4, 6, batch_norm=True)
    s = torch.randn(3, 4, 5, 5)
    t = torch.randn(3, 6, 10, 10, requires_grad=True)
    opt = torch.optim.SGD(hint.parameters(), lr=0.5)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = hint(s, t)
        loss.backward()
        assert hint.proj.weight.grad is not None and hint.proj.weight.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert t.grad is None


def test_multi_level_hint_is_mean_of_levels() -> None:
    multi = FitNetsHint.multi([2, 3], [4, 5])
    assert isinstance(multi, MultiLevelHint) and len(multi.hints) == 2
    s = [torch.randn(2, 2, 8, 8), torch.randn(2, 3, 4, 4)]
    t = [torch.randn(2, 4, 8, 8), torch.randn(2, 5, 2, 2)]
    expected = (multi.hints[0](s[0], t[0]) + multi.hints[1](s[1], t[1])) / 2
    torch.testing.assert_close(multi(s, t), expected)


# ---------------------------------------------------------------------------------------------------------
# similarity preserving
# ---------------------------------------------------------------------------------------------------------


def ref_sp_gram(a: list[list[float]]) -> list[list[float]]:
    g = [[sum(x * y for x, y in zip(ai, aj)) for aj in a] for ai in a]
    return [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in g]


def test_similarity_preserving_matches_reference() -> None:
    s = torch.randn(3, 2, 2, dtype=torch.float64)
    t = torch.randn(3, 5, dtype=torch.float64)
    gs = ref_sp_gram(s.reshape(3, -1).tolist())
    gt = ref_sp_gram(t.tolist())
    ref = sum((gs[i][j] - gt[i][j]) ** 2 for i in range(3) for j in range(3)) / 9
    assert SimilarityPreserving()(s, t).item() == pytest.approx(ref, rel=1e-10)


def test_similarity_preserving_scale_invariant_and_teacher_detached() -> None:
    s = torch.randn(4, 3, 2, 2, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    sp = SimilarityPreserving()
    base = sp(s, t)
    torch.testing.assert_close(sp(s * 7.5, t * 0.1), base, rtol=1e-4, atol=1e-6)
    base.backward()
    assert s.grad is not None and t.grad is None
    torch.testing.assert_close(sp([s, s], [t, t]), 2 * base)


# ---------------------------------------------------------------------------------------------------------
# relational KD
# ---------------------------------------------------------------------------------------------------------


def ref_rkd_distance(s: list[list[float]], t: list[list[float]]) -> float:
    b = len(s)
    pairs = [(i, j) for i in range(b) for j in range(b) if i != j]
    mu_s = sum(dist(s[i], s[j]) for i, j in pairs) / len(pairs)
    mu_t = sum(dist(t[i], t[j]) for i, j in pairs) / len(pairs)
    return sum(huber(dist(s[i], s[j]) / mu_s - dist(t[i], t[j]) / mu_t) for i, j in pairs) / len(pairs)


def ref_cos(a: list[float], j: list[float], k: list[float]) -> float:
    u = [x - y for x, y in zip(a, j)]
    v = [x - y for x, y in zip(k, j)]
    return sum(x * y for x, y in zip(u, v)) / (
        math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(x * x for x in v))
    )


def ref_rkd_angle(s: list[list[float]], t: list[list[float]]) -> float:
    b = len(s)
    trip = [(i, j, k) for i in range(b) for j in range(b) for k in range(b) if len({i, j, k}) == 3]
    return sum(huber(ref_cos(s[i], s[j], s[k]) - ref_cos(t[i], t[j], t[k])) for i, j, k in trip) / len(trip)


def test_rkd_matches_reference() -> None:
    s = torch.randn(5, 3, dtype=torch.float64)
    t = torch.randn(5, 4, dtype=torch.float64) * 3  # scale > 1 so some Huber terms use the linear branch
    d_ref, a_ref = ref_rkd_distance(s.tolist(), t.tolist()), ref_rkd_angle(s.tolist(), t.tolist())
    assert RKDDistance()(s, t).item() == pytest.approx(d_ref, rel=1e-8)
    assert RKDAngle()(s, t).item() == pytest.approx(a_ref, rel=1e-8)
    assert RKD()(s, t).item() == pytest.approx(25 * d_ref + 50 * a_ref, rel=1e-8)


def test_rkd_hand_computed_angle() -> None:
    # Student triangle s0 = (0,0), s1 = (1,0), s2 = (0,1); teacher points 0, 1, 2 on a line. For each apex j
    # the two ordered triplets (i, j, k), (k, j, i) give the same cosines:
    # j=0: student cos 90° = 0, teacher (end point) cos 0° = 1 → diff −1 → Huber |x| − 0.5 = 0.5
    # j=1: student cos 45° = 0.70711, teacher (middle) cos 180° = −1 → diff 1.70711 → 1.20711
    # j=2: student cos 45° = 0.70711, teacher (end) 1 → diff −0.29289 → 0.5·0.29289² = 0.04289
    # Mean over the 6 triplets = 2·(0.5 + 1.20711 + 0.04289)/6 = 0.583333.
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    c = math.sqrt(0.5)
    expected = 2 * (0.5 + (c + 1 - 0.5) + 0.5 * (1 - c) ** 2) / 6
    assert expected == pytest.approx(0.5833333, rel=1e-6)
    assert RKDAngle()(s, t).item() == pytest.approx(expected, rel=1e-10)


def test_rkd_scale_invariance_and_gradients() -> None:
    s = torch.randn(6, 4, requires_grad=True)
    t = torch.randn(6, 8, requires_grad=True)
    base = RKDDistance()(s, t)
    torch.testing.assert_close(RKDDistance()(s * 10, t * 0.3), base, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(RKDAngle()(s * 10, t * 0.3), RKDAngle()(s, t), rtol=1e-4, atol=1e-6)
    RKD()(s, t).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and t.grad is None
    # Coincident embeddings must not produce NaN gradients.
    d = torch.zeros(4, 3, requires_grad=True)
    RKD()(d + torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]]), t[:4]).backward()
    assert torch.isfinite(d.grad).all()


# ---------------------------------------------------------------------------------------------------------
# deep mutual learning
# ---------------------------------------------------------------------------------------------------------


def test_dml_matches_reference() -> None:
    zs = [torch.randn(3, 4, dtype=torch.float64) for _ in range(3)]
    y = [1, 0, 3]
    temp = 2.0
    out = DMLLoss(temperature=temp)(zs, torch.tensor(y))
    for k in range(3):
        others = [ref_kd(zs[k].numpy(), teacher_soft(zs[j].numpy(), temp), temp) for j in range(3) if j != k]
        ref = ref_ce(zs[k].numpy(), y) + sum(others) / 2
        assert out.per_student[k].item() == pytest.approx(ref, rel=1e-10)
    assert out.total.item() == pytest.approx(sum(v.item() for v in out.per_student), rel=1e-12)


def test_dml_gradients_reach_own_student_only() -> None:
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 1])
    losses, total = DMLLoss()([a, b], y)
    (ga,) = torch.autograd.grad(losses[0], [a], retain_graph=True)
    assert torch.autograd.grad(losses[0], [b], retain_graph=True, allow_unused=True)[0] is None
    assert torch.autograd.grad(losses[1], [a], retain_graph=True, allow_unused=True)[0] is None
    (gb,) = torch.autograd.grad(losses[1], [b], retain_graph=True)
    total.backward()  # one backward gives each student the gradient of its own loss
    torch.testing.assert_close(a.grad, ga)
    torch.testing.assert_close(b.grad, gb)


# ---------------------------------------------------------------------------------------------------------
# class-specialized KD
# ---------------------------------------------------------------------------------------------------------


def test_class_specialized_all_classes_equals_plain_kd() -> None:
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(
        ClassSpecializedKD(list(range(4)), temperature=3.0, alpha=0.4)(s, t, targets=y),
        HintonKD(temperature=3.0, alpha=0.4)(s, t, targets=y),
    )
    torch.testing.assert_close(
        ClassSpecializedKD([[0], [1], [2], [3]], 3.0)(s, t), HintonKD(3.0)(s, t), rtol=1e-6, atol=1e-7
    )


def test_class_specialized_matches_reference() -> None:
    s = torch.randn(3, 3, dtype=torch.float64)
    t = torch.randn(3, 7, dtype=torch.float64)
    indices = [4, [0, 2], [6, 5, 1]]
    temp = 2.0
    pt = []
    for row in t.tolist():
        p = ref_softmax(row)  # teacher probabilities at T = 1, all 7 classes
        merged = [p[4], p[0] + p[2], p[6] + p[5] + p[1]]  # groups add their probability
        w = [m / sum(merged) for m in merged]  # renormalize over the ontology's classes
        w = [x ** (1 / temp) for x in w]  # temper: normalize(p^(1/T))
        pt.append([x / sum(w) for x in w])
    ref = ref_kd(s.numpy(), np.array(pt), temp)
    assert ClassSpecializedKD(indices, temperature=temp)(s, t).item() == pytest.approx(ref, rel=1e-9)
    got_p = ClassSpecializedKD(indices, temperature=temp)(s, teacher_probs=t.softmax(-1))
    assert got_p.item() == pytest.approx(ref, rel=1e-8)
    sub = ClassSpecializedKD(indices).restrict(t).softmax(-1)
    assert sub[0, 1].item() == pytest.approx(pt[0][1] ** temp / sum(x**temp for x in pt[0]), rel=1e-9)


# ---------------------------------------------------------------------------------------------------------
# recipes (trained end to end in tests/test_distill_recipes.py)
# ---------------------------------------------------------------------------------------------------------


def test_import_is_lazy() -> None:
    code = ("import sys, autolabel.distill as d; d.born_again; d.recipe_problem; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: HintonKD(alpha=1.5), "alpha must be in"),
        (lambda: HintonKD(alpha=-0.1), "alpha must be in"),
        (lambda: HintonKD(temperature=0.0), "temperature must be"),
        (lambda: HintonKD(temperature=-2.0), "temperature must be"),
        (lambda: HintonKD(reduction="mean"), "reduction must be"),
        (lambda: SoftTargetBCE(alpha=2.0), "alpha must be in"),
        (lambda: SoftTargetBCE(temperature=0), "temperature must be"),
        (lambda: DMLLoss(temperature=-1), "temperature must be"),
        (lambda: ClassSpecializedKD([0, 1], alpha=1.1), "alpha must be in"),
        (lambda: ClassSpecializedKD([]), "empty"),
        (lambda: ClassSpecializedKD([0, []]), "empty"),
        (lambda: ClassSpecializedKD([0, -1]), "ints >= 0"),
        (lambda: MultiLevelHint([1, 2], [3]), "teacher channel count"),
        (lambda: RKD(w_dist=-1), "weights must be"),
        (lambda: soften_probs(torch.tensor([0.5]), 0.0), "temperature must be"),
    ],
)
def test_bad_constructor_arguments(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: HintonKD()(torch.randn(2, 3), torch.randn(2, 4)), "same shape"),
        (lambda: HintonKD()(torch.randn(2, 3)), "exactly one"),
        (
            lambda: HintonKD()(torch.randn(2, 3), torch.randn(2, 3), teacher_probs=torch.rand(2, 3)),
            "exactly one",
        ),
        (
            lambda: HintonKD()(torch.randn(2, 3), torch.randn(2, 3), targets=torch.tensor([0, 1, 2])),
            "targets",
        ),
        (lambda: HintonKD()(torch.randn(2, 3), torch.randn(2, 3), targets=torch.rand(2)), "integer"),
        (lambda: HintonKD()(torch.randn(2, 3), teacher_probs=torch.full((2, 3), 1.5)), r"\[0, 1\]"),
        (lambda: kd_kl_div(torch.randn(2, 3), torch.randn(2, 3), temperature=0.0), "temperature"),
        (lambda: SoftTargetBCE()(torch.randn(2, 3), torch.rand(3, 2)), "same shape"),
        (lambda: SoftTargetBCE()(torch.randn(2, 3), torch.rand(2, 3), weight=torch.rand(4)), "broadcast"),
        (
            lambda: SoftTargetBCE()(torch.randn(2, 3), torch.rand(2, 3), targets=torch.tensor([0, 3])),
            "class index",
        ),
        (lambda: FitNetsHint(3, 4)(torch.randn(1, 2, 4, 4), torch.randn(1, 4, 4, 4)), "channels"),
        (lambda: FitNetsHint(3, 4)(torch.randn(1, 3, 4, 4), torch.randn(2, 4, 4, 4)), "batch sizes"),
        (lambda: FitNetsHint(3, 4)(torch.randn(3, 4), torch.randn(3, 4)), r"\(N, C, H, W\)"),
        (lambda: SimilarityPreserving()(torch.randn(3, 4), torch.randn(2, 4)), "batch size"),
        (lambda: RKDDistance()(torch.randn(3, 4), torch.randn(4, 4)), "batch sizes"),
        (lambda: RKDDistance()(torch.randn(1, 4), torch.randn(1, 4)), "b >= 2"),
        (lambda: RKDAngle()(torch.randn(2, 4), torch.randn(2, 4)), "b >= 3"),
        (lambda: DMLLoss()([torch.randn(2, 3)]), "at least 2"),
        (lambda: DMLLoss()([torch.randn(2, 3), torch.randn(2, 4)]), "same shape"),
        (lambda: ClassSpecializedKD([0, 9])(torch.randn(2, 2), torch.randn(2, 5)), "teacher has 5 classes"),
        (lambda: ClassSpecializedKD([0, 1])(torch.randn(2, 3), torch.randn(2, 5)), "student_logits"),
    ],
)
def test_bad_call_arguments(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
