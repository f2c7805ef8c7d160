"""Classification students, what one training step minimizes under each distillation recipe.

:func:`make_objective` turns ``ClassifierConfig.recipe`` (the catalogue: :mod:`autolabel.distill.recipes`)
into an :class:`Objective`: the Hinton KD term (cross-entropy with ``soft=False``) against the dataset's
teacher scores or a teacher network's logits (``kd_teacher``), plus the recipe's own term — the mutual KL
between two peers (``dml``), a relation loss between the teacher network's and the student's penultimate
features (``sp``, ``rkd``), or the teacher's logits restricted to the dataset's classes
(``class-specialized``). ``born-again`` is not a step but a sequence of runs
(:func:`autolabel.distill.recipes.born_again`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autolabel.core.errors import ConfigError
from autolabel.students.classifier.model import LoadedClassifier, logits_of

__all__ = ["SP_WEIGHT", "Objective", "make_objective"]

#: Weight of the similarity-preserving loss at ``relation_weight=1``: γ = 3000, Tung & Mori's weight for
#: CIFAR-10 (the row-normalized b×b Gram difference is tiny: at most 4/b per batch).
SP_WEIGHT = 3000.0


class _FeatureTap:
    """Keeps the input of a classifier's last layer (its penultimate features) at every forward pass."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        head = None
        for m in model.modules():  # the last layer with one output per class: a Linear, or SqueezeNet's 1x1 conv
            if (isinstance(m, nn.Linear) and m.out_features == num_classes) or (
                    isinstance(m, nn.Conv2d) and m.out_channels == num_classes and m.kernel_size == (1, 1)):
                head = m
        if head is None:
            raise ConfigError(f"cannot find the classification layer of {type(model).__name__} to tap its features")
        self.value: Tensor | None = None
        head.register_forward_pre_hook(self._keep)

    def _keep(self, _module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self.value = inputs[0]

    def take(self) -> Tensor:
        v, self.value = self.value, None
        assert v is not None, "the tapped layer did not run"
        return v


def _class_groups(teacher_names: Sequence[str], names: Sequence[str], ontology: Mapping[str, Any] | None,
                  spec: str) -> list[list[int]]:
    """Per dataset class, the teacher classes that feed it (by name, or the ontology's aliases)."""
    from autolabel.core.ontology import Ontology
    from autolabel.students.yolo.train import teacher_class_index

    onto = None
    if ontology:
        try:
            onto = Ontology.from_dict(ontology)
        except Exception:  # an old/odd header: match by name
            onto = None
    index = teacher_class_index(list(teacher_names), list(names), onto)
    groups = [[k for k, c in enumerate(index) if c == s] for s in range(len(names))]
    missing = [n for n, g in zip(names, groups) if not g]
    if missing:
        raise ConfigError(f"kd_teacher '{spec}' has no class for {missing} (its classes: {list(teacher_names)[:8]}"
                          f"{' ...' if len(teacher_names) > 8 else ''}); add 'aliases' to the ontology classes")
    return groups


class Objective:
    """One training step's loss for a recipe: ``objective(students, x, y, p) -> (loss, terms)``.

    ``students`` are the trained model(s) (two for ``dml``), ``x, y, p`` a batch (images, hard labels, the
    dataset's teacher distributions). ``loss`` is the sum over students (each student's parameters get
    the gradient of its own loss only); ``terms`` holds, per named term (``base``: Hinton KD or CE;
    ``relation``: ``sp`` / ``rkd``; ``mutual``: ``dml``), one detached value per student.

    The teacher network (``kd_teacher``) sees the student's batch resized to its own input size; ``dml``'s
    mutual term is the paper's ``KL(p_other ‖ p_k)`` at ``T = 1``, the peer's prediction held fixed.
    """

    def __init__(self, base: nn.Module, *, teacher: nn.Module | None = None, teacher_imgsz: int | None = None,
                 teacher_classes: int = 0, relation: nn.Module | None = None, relation_weight: float = 0.0,
                 mutual: nn.Module | None = None, description: str = "",
                 class_map: dict[str, list[str]] | None = None) -> None:
        self.base, self.teacher, self.teacher_imgsz = base, teacher, teacher_imgsz
        self.teacher_classes = teacher_classes  # the teacher's outputs (its head is found by their number)
        self.relation, self.relation_weight, self.mutual = relation, float(relation_weight), mutual
        self.description, self.class_map = description, class_map
        self._taps: list[_FeatureTap] = []
        self._teacher_tap: _FeatureTap | None = None

    def attach(self, students: Sequence[nn.Module], num_classes: int) -> None:
        """Tap the penultimate features of the students (and the teacher) when the recipe matches them."""
        if self.relation is not None and self.teacher is not None:
            self._taps = [_FeatureTap(m, num_classes) for m in students]
            self._teacher_tap = _FeatureTap(self.teacher, self.teacher_classes or num_classes)

    def teacher_logits(self, x: Tensor) -> Tensor:
        """The teacher network's logits on a batch (at its own input size)."""
        assert self.teacher is not None
        if self.teacher_imgsz and self.teacher_imgsz != x.shape[-1]:
            x = nn.functional.interpolate(x, size=(self.teacher_imgsz,) * 2, mode="bilinear", align_corners=False)
        with torch.no_grad():
            return logits_of(self.teacher(x)).float()

    def __call__(self, students: Sequence[nn.Module], x: Tensor, y: Tensor, p: Tensor
                 ) -> tuple[Tensor, dict[str, list[float]]]:
        t_logits = self.teacher_logits(x) if self.teacher is not None else None
        t_feat = self._teacher_tap.take() if self._teacher_tap is not None else None
        logits = [logits_of(m(x)) for m in students]
        losses, terms = [], {}
        for k, z in enumerate(logits):
            if t_logits is not None:
                base = self.base(z, teacher_logits=t_logits, targets=y)
            else:
                base = self.base(z, targets=y, teacher_probs=p)
            terms.setdefault("base", []).append(float(base.detach()))
            loss = base
            if self._taps:
                s_feat = self._taps[k].take()
                if len(y) >= 3 and t_feat is not None:  # RKD's angles need 3 samples
                    rel = self.relation_weight * self.relation(s_feat.flatten(1), t_feat.flatten(1))
                    terms.setdefault("relation", []).append(float(rel.detach()))
                    loss = loss + rel
            losses.append(loss)
        if self.mutual is not None:
            mutual = self.mutual(logits).per_student  # KL(sg(p_other) ‖ p_k): reaches student k only
            terms["mutual"] = [float(m.detach()) for m in mutual]
            losses = [a + m for a, m in zip(losses, mutual)]
        return torch.stack(losses).sum(), terms


def make_objective(config: Any, names: Sequence[str], base: nn.Module, base_name: str,
                   teacher: LoadedClassifier | None, ontology: Mapping[str, Any] | None,
                   device: torch.device | str) -> Objective:
    """The :class:`Objective` of ``config.recipe`` (any but ``born-again``, which runs generations of ``hinton``).

    ``base`` is the Hinton KD (or, with ``soft=False``, cross-entropy) loss; ``teacher`` the loaded
    ``kd_teacher`` (None without one); ``ontology`` the dataset's (aliases map a teacher's classes).

    Raises:
        ConfigError: a teacher network whose classes do not fit the recipe.
    """
    from autolabel.distill.losses import RKD, ClassSpecializedKD, DMLLoss, SimilarityPreserving

    recipe = config.recipe
    if recipe == "born-again":
        raise ConfigError("born-again runs generations of the hinton recipe (autolabel.distill.recipes.born_again)")
    net = tnames = None
    if teacher is not None:
        net = teacher.model.float().eval()
        for q in net.parameters():
            q.requires_grad_(False)
        tnames = list(teacher.names)
    tkw: dict[str, Any] = {"teacher": net, "teacher_classes": len(tnames or ()),
                           "teacher_imgsz": int(teacher.preprocessing["imgsz"]) if teacher is not None else None}
    if recipe == "class-specialized":
        assert teacher is not None and tnames is not None
        groups = _class_groups(tnames, names, ontology, config.kd_teacher)
        cs = ClassSpecializedKD(groups, temperature=config.temperature, alpha=config.alpha).to(device)
        class_map = {n: [tnames[i] for i in g] for n, g in zip(names, groups)}
        return Objective(cs, **tkw, class_map=class_map,
                         description=f"class_specialized_kd(T={config.temperature}, alpha={config.alpha}, "
                                     f"{len(tnames)} teacher classes -> {len(names)})")
    if tnames is not None and tnames != list(names):
        hint = (" (a teacher with more classes: use recipe class-specialized)"
                if set(names) <= set(tnames) or len(tnames) > len(names) else "")
        raise ConfigError(f"kd_teacher '{config.kd_teacher}' predicts {tnames}, the dataset has {list(names)}{hint}")
    if recipe == "dml":
        return Objective(base, **tkw, mutual=DMLLoss(temperature=1.0),
                         description=f"{base_name} + kl(peer) [deep mutual learning, 2 peers]")
    if recipe in ("sp", "rkd"):
        w = config.relation_weight * (SP_WEIGHT if recipe == "sp" else 1.0)
        rel = SimilarityPreserving() if recipe == "sp" else RKD()
        what = "similarity_preserving" if recipe == "sp" else "rkd(25*distance + 50*angle)"
        return Objective(base, **tkw, relation=rel, relation_weight=w,
                         description=f"{base_name} + {w:g}*{what}(penultimate features)")
    return Objective(base, **tkw, description=base_name)
