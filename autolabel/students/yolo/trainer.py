"""The Ultralytics side of student training: soft scores through augmentation, the soft loss, online KD.

Imported only when training starts (it imports torch and ultralytics at module level).

How the soft scores follow their boxes
--------------------------------------
Ultralytics' augmentations (Mosaic, CopyPaste, RandomPerspective, MixUp, CutMix, Albumentations, flips)
filter and concatenate exactly two per-box things: the ``Instances`` (boxes) and the ``cls`` array. Any
extra per-box array would be left behind. So :class:`SoftLabelDataset`

1. loads and verifies labels as Ultralytics does (its cache, its checks: ``cls < nc``), then re-reads each
   label file's rows **in file order** (Ultralytics' duplicate-removal sorts rows) so that box ``i`` is the
   sidecar's soft row ``i``; ``self.labels`` keeps the real classes (class counts, plots);
2. in :meth:`update_labels_info` — called for *every* image an augmentation loads, including the other
   three tiles of a mosaic — swaps ``cls`` for each box's **global box id** (unique across the dataset);
3. after the whole pipeline (:meth:`__getitem__`) maps the surviving ids back: ``cls`` ← the box's real
   class, ``soft`` ← its sidecar row, ``conf`` ← its confidence, ``box_id`` ← the id; and
   :meth:`collate_fn` concatenates ``soft`` / ``conf`` / ``box_id`` in the same order as ``cls`` and
   ``bboxes``, so ``batch["soft"][k]`` belongs to box ``k`` of the batch.

The loss
--------
:class:`SoftDetectionLoss` is Ultralytics' ``v8DetectionLoss`` with one change: the class target of each
anchor the TaskAlignedAssigner assigns to a box is
``norm_align · (α · onehot + (1 − α) · soften(soft_box, T))`` instead of ``norm_align · onehot`` (box
and DFL losses and the normalization are unchanged; α = 1 reproduces Ultralytics exactly). An *uncertain*
box (``batch["hard"]`` False: the teacher's boxes below their class threshold) gets α = 0 — its class target
is ``norm_align · soft`` — and its box/DFL losses and its share of the normalization are scaled by the
teacher's confidence; with confidence 1 and a one-hot soft row it is exactly a hard box. Online KD adds
dense class-logit KD on all anchors and FitNets hints on the Detect head's inputs (:class:`OnlineKD`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from autolabel.core.checkpoints import import_ultralytics

import_ultralytics()  # before Ultralytics' own imports: safe checkpoint loading, no run-time installs

from ultralytics.data.dataset import YOLODataset  # noqa: E402
from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402
from ultralytics.nn.tasks import load_checkpoint  # noqa: E402
from ultralytics.utils import DEFAULT_CFG, LOGGER, colorstr  # noqa: E402
from ultralytics.utils.loss import E2ELoss, v8DetectionLoss  # noqa: E402
from ultralytics.utils.tal import make_anchors  # noqa: E402
from ultralytics.utils.torch_utils import unwrap_model  # noqa: E402

from autolabel.core.errors import AutolabelError, ConfigError, DatasetError  # noqa: E402
from autolabel.distill.losses import MultiLevelHint, SoftTargetBCE, soften_probs  # noqa: E402
from autolabel.students.yolo.train import DISTILL_STATE_FILE, SoftTable  # noqa: E402

__all__ = [
    "AutolabelTrainer",
    "OnlineKD",
    "Plan",
    "SoftDetectionLoss",
    "SoftLabelDataset",
    "StudentCriterion",
    "neck_channels",
    "run_training",
]

SOFT_KEYS = ("soft", "conf", "box_id", "hard")


@dataclass
class Plan:
    """What the trainer distills (built by :func:`autolabel.students.yolo.train.train`)."""

    soft: SoftTable | None = None  # None: hard labels only
    alpha: float = 0.5
    temperature: float = 1.0
    conf_weight: bool = False
    uncertain: bool = False  # append the table's uncertain boxes as soft-only targets
    keep_architecture: bool = False
    teacher: nn.Module | None = None
    class_index: list[int] | None = None
    kd_weight: float = 0.0
    hint_weight: float = 0.0


# ----------------------------------------------------------------------------------------------------------
# dataset
# ----------------------------------------------------------------------------------------------------------


class SoftLabelDataset(YOLODataset):
    """A ``YOLODataset`` whose samples and batches also carry each box's teacher soft scores.

    Extra keys per sample / batch: ``soft`` (N, C) float32, ``conf`` (N,) float32, ``box_id`` (N,) int64,
    ``hard`` (N,) bool — row ``k`` belongs to box ``k`` (same order as ``cls`` and ``bboxes``). With
    ``uncertain``, each image's uncertain boxes (:attr:`SoftTable.uncertain`) follow its label-file boxes,
    with ``hard`` False.
    """

    def __init__(self, *args: Any, soft_table: SoftTable, uncertain: bool = False, **kwargs: Any) -> None:
        self.soft_table = soft_table
        self.use_uncertain = bool(uncertain)
        super().__init__(*args, **kwargs)

    def get_labels(self) -> list[dict]:
        labels = super().get_labels()  # Ultralytics' cache and checks, with the real classes
        nc = self.soft_table.num_classes
        if len(self.data["names"]) != nc:
            raise DatasetError(f"data.yaml has {len(self.data['names'])} classes but the sidecar rows have {nc} scores")
        cls_all, soft_all, conf_all, hard_all = [], [], [], []
        n_total = 0
        for lb in labels:
            entry = self.soft_table.get(lb["im_file"])
            if entry is None:
                if len(lb["cls"]):
                    raise DatasetError(
                        f"{lb['im_file']}: has {len(lb['cls'])} boxes but no record in autolabel.jsonl; re-label, "
                        "or use --hard-only"
                    )
                entry = (np.zeros((0, 5), np.float32), np.zeros((0, nc), np.float32), np.zeros(0, np.float32))
            rows, soft, conf = entry
            hard = np.ones(len(rows), bool)
            unc = self.soft_table.get_uncertain(lb["im_file"]) if self.use_uncertain else None
            if unc is not None and len(unc[0]):
                rows, soft, conf = (np.concatenate([a, b]) for a, b in zip((rows, soft, conf), unc))
                hard = np.concatenate([hard, np.zeros(len(unc[0]), bool)])
            n = len(rows)
            lb["cls"] = rows[:, :1].copy()  # file order (Ultralytics' de-duplication sorts rows)
            lb["bboxes"] = rows[:, 1:5].copy()
            lb["segments"] = []
            lb["box_ids"] = np.arange(n_total, n_total + n, dtype=np.float64)  # exact in float64
            cls_all.append(rows[:, 0])
            soft_all.append(soft)
            conf_all.append(conf)
            hard_all.append(hard)
            n_total += n
        self.box_cls = np.concatenate(cls_all).astype(np.float32) if cls_all else np.zeros(0, np.float32)
        self.box_soft = np.concatenate(soft_all).astype(np.float32) if soft_all else np.zeros((0, nc), np.float32)
        self.box_conf = np.concatenate(conf_all).astype(np.float32) if conf_all else np.zeros(0, np.float32)
        self.box_hard = np.concatenate(hard_all) if hard_all else np.zeros(0, bool)
        return labels

    def update_labels_info(self, label: dict) -> dict:
        ids = label.pop("box_ids", None)
        if ids is not None:
            label["cls"] = ids.reshape(-1, 1)  # augmentations filter/concatenate ids exactly like classes
        return super().update_labels_info(label)

    def __getitem__(self, index: int) -> dict[str, Any]:
        out = super().__getitem__(index)
        ids = torch.as_tensor(out["cls"]).reshape(-1).double().round().long()
        idx = ids.numpy()
        out["box_id"] = ids
        out["cls"] = torch.from_numpy(self.box_cls[idx]).reshape(-1, 1)
        out["soft"] = torch.from_numpy(self.box_soft[idx]).reshape(-1, self.box_soft.shape[1])
        out["conf"] = torch.from_numpy(self.box_conf[idx]).reshape(-1)
        out["hard"] = torch.from_numpy(self.box_hard[idx]).reshape(-1)
        return out

    @staticmethod
    def collate_fn(batch: list[dict]) -> dict:
        extra = {k: [b.pop(k) for b in batch] for k in SOFT_KEYS if k in batch[0]}
        new = YOLODataset.collate_fn(batch)
        for k, v in extra.items():
            new[k] = torch.cat(v, 0)
        return new


# ----------------------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------------------


class SoftDetectionLoss(v8DetectionLoss):
    """``v8DetectionLoss`` whose assigned class targets mix the one-hot with the teacher's soft scores.

    ``target = α·target_scores + (1 − α)·soften(soft, T)·norm_align`` where ``target_scores`` is
    Ultralytics' ``onehot·norm_align``. With ``conf_weight`` the class and box/DFL losses of each box's
    anchors are scaled by the teacher's confidence. Batches without ``soft`` get the plain loss.
    """

    def __init__(
        self,
        model: nn.Module,
        tal_topk: int = 10,
        tal_topk2: int | None = None,
        *,
        alpha: float = 0.5,
        temperature: float = 1.0,
        conf_weight: bool = False,
    ) -> None:
        super().__init__(model, tal_topk=tal_topk, tal_topk2=tal_topk2)
        self.alpha, self.temperature, self.conf_weight = float(alpha), float(temperature), bool(conf_weight)

    def soft_targets(self, target_scores: torch.Tensor, gt_soft: torch.Tensor, target_gt_idx: torch.Tensor,
                     gt_alpha: torch.Tensor | None = None) -> torch.Tensor:
        """(b, A, C) class targets from the assigner's ``target_scores`` and the padded (b, n, C) soft rows.

        ``gt_alpha`` (b, n, 1): a per-box weight of the one-hot instead of ``self.alpha`` (0 for uncertain boxes).
        """
        b, n = gt_soft.shape[:2]
        if n == 0:
            return target_scores.float()
        align = target_scores.sum(-1, keepdim=True)  # the normalized alignment metric (0 off the foreground)
        flat = target_gt_idx.long() + torch.arange(b, device=gt_soft.device)[:, None] * n
        soft = soften_probs(gt_soft.reshape(b * n, -1).clamp(0.0, 1.0), self.temperature)[flat]  # (b, A, C)
        a = self.alpha if gt_alpha is None else gt_alpha.reshape(b * n)[flat][..., None].to(soft.dtype)
        return a * target_scores + (1.0 - a) * soft * align

    def get_assigned_targets_and_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any], **assign_kwargs: Any) -> tuple:
        if "soft" not in batch:
            return super().get_assigned_targets_and_loss(preds, batch, **assign_kwargs)
        loss = torch.zeros(3, device=self.device)  # box, cls, dfl
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)
        dtype = pred_scores.dtype
        batch_size = pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=dtype) * self.stride[0]

        # Targets: Ultralytics' (batch_idx, cls, xywh) plus the soft row, confidence and hard flag of each box
        nb = batch["cls"].shape[0]
        soft = batch["soft"].to(self.device, torch.float32).reshape(nb, self.nc)
        conf = batch["conf"].to(self.device, torch.float32).reshape(nb, 1) if "conf" in batch else soft.new_ones(nb, 1)
        hard = batch["hard"].to(self.device, torch.float32).reshape(nb, 1) if "hard" in batch else soft.new_ones(nb, 1)
        targets = torch.cat(
            (batch["batch_idx"].view(-1, 1).to(self.device), batch["cls"].view(-1, 1).to(self.device),
             batch["bboxes"].to(self.device), soft, conf, hard), 1
        )
        targets = self.preprocess(targets, batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes, gt_soft, gt_conf, gt_hard = targets.split((1, 4, self.nc, 1, 1), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)

        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)  # xyxy, (b, h*w, 4)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = self.assigner(
            pred_scores.detach().sigmoid(),
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
            **assign_kwargs,
        )
        b, n = gt_conf.shape[:2]
        is_hard = gt_hard > 0.5  # (padding rows are never assigned)
        any_uncertain = bool(n) and bool((~is_hard & (mask_gt > 0)).any())
        gt_alpha = torch.where(is_hard, torch.full_like(gt_conf, self.alpha), torch.zeros_like(gt_conf)) if any_uncertain else None
        cls_target = self.soft_targets(target_scores, gt_soft, target_gt_idx, gt_alpha)
        bce_loss = self.bce(pred_scores, cls_target.to(dtype))
        if self.class_weights is not None:
            bce_loss *= self.class_weights
        box_scores = target_scores
        target_scores_sum = target_scores.sum().clamp_(min=1)  # hard normalization, as Ultralytics
        if n and (self.conf_weight or any_uncertain):
            flat = target_gt_idx.long() + torch.arange(b, device=gt_conf.device)[:, None] * n
            one = torch.ones_like(gt_conf)

            def at_anchors(per_box: torch.Tensor) -> torch.Tensor:  # (b, n, 1) box weights -> (b, A, 1), 1 off fg
                w = torch.where(fg_mask, per_box.reshape(-1)[flat], torch.ones_like(fg_mask, dtype=per_box.dtype))
                return w[..., None]

            # hard boxes: 1 (or the confidence with conf_weight); uncertain boxes: box losses × confidence
            hard_w = gt_conf if self.conf_weight else one
            bce_loss = bce_loss * at_anchors(torch.where(is_hard, hard_w, one)).to(bce_loss.dtype)
            box_scores = target_scores * at_anchors(torch.where(is_hard, hard_w, gt_conf))
            if any_uncertain:  # an uncertain box adds to the normalization as much as it weighs
                target_scores_sum = (target_scores * at_anchors(torch.where(is_hard, one, gt_conf))).sum().clamp_(min=1)
        loss[1] = bce_loss.sum() / target_scores_sum

        loss[0], loss[2] = self.bbox_loss(
            pred_distri,
            pred_bboxes,
            anchor_points,
            target_bboxes / stride_tensor,
            box_scores,
            target_scores_sum,
            fg_mask,
            imgsz,
            stride_tensor,
        )
        loss[0] *= self.hyp.box
        loss[1] *= self.hyp.cls
        loss[2] *= self.hyp.dfl
        return (
            (fg_mask, target_gt_idx, target_bboxes, anchor_points, stride_tensor),
            loss,
            dict(zip(self.loss_names, loss.detach())),
        )


def neck_channels(model: nn.Module) -> list[int]:
    """Channels of the feature maps entering the model's Detect head (P3/P4/P5), via a dummy forward."""
    head = model.model[-1]
    got: dict[str, list[int]] = {}

    def hook(_m: nn.Module, args: tuple) -> None:
        got.setdefault("ch", [int(t.shape[1]) for t in args[0]])

    ch = int(getattr(model, "yaml", {}).get("channels", 3))
    size = max(int(max(getattr(model, "stride", torch.tensor([32.0])).tolist())) * 2, 64)
    p = next(model.parameters())
    h = head.register_forward_pre_hook(hook)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, ch, size, size, device=p.device, dtype=p.dtype))
    finally:
        h.remove()
        model.train(was)
    return got["ch"]


class OnlineKD:
    """Online distillation from a frozen detection teacher on the student's own training batches.

    * dense class-logit KD on **all** anchors: :class:`SoftTargetBCE` of the student's class logits against
      the teacher's temperature-softened sigmoid scores (teacher columns mapped to student classes by
      ``class_index``; several columns → their max), summed and normalized by the sum of the softened
      teacher scores (as Ultralytics normalizes its class loss by the sum of its targets);
    * FitNets hints: :class:`MultiLevelHint` (a learned 1×1 projection per level + MSE) from the student's to
      the teacher's Detect-head inputs.

    Not an ``nn.Module``: neither the teacher nor the projections become part of the student.
    """

    def __init__(
        self,
        teacher: nn.Module,
        hints: MultiLevelHint | None,
        class_index: list[int],
        num_classes: int,
        temperature: float,
        kd_weight: float,
        hint_weight: float,
    ) -> None:
        self.teacher, self.hints = teacher, hints
        idx = torch.as_tensor(class_index, dtype=torch.long)
        self.cols = torch.nonzero(idx >= 0).reshape(-1)
        self.target = idx[self.cols]
        self.mask = torch.zeros(num_classes, dtype=torch.bool)
        self.mask[self.target] = True
        self.temperature = float(temperature)
        self.bce = SoftTargetBCE(temperature=temperature, reduction="none")
        self.kd_weight, self.hint_weight = float(kd_weight), float(hint_weight)

    def teacher_outputs(self, img: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad():
            out = self.teacher(img)
        raw = out[1] if isinstance(out, (tuple, list)) else out
        return raw.get("one2many", raw)

    def map_teacher_logits(self, t: torch.Tensor, num_classes: int) -> torch.Tensor:
        """(B, C_T, A) teacher logits → (B, A, C) in the student's classes (-inf where none maps)."""
        t = t.detach().float().permute(0, 2, 1)
        b, a, _ = t.shape
        dev = t.device
        out = torch.full((b, a, num_classes), float("-inf"), device=dev)
        src = t.index_select(2, self.cols.to(dev))
        out.scatter_reduce_(2, self.target.to(dev).expand(b, a, -1), src, reduce="amax", include_self=True)
        return out

    def __call__(self, student: dict[str, Any], img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weighted KD loss, weighted hint loss) for the student's raw training outputs on ``img``."""
        tp = self.teacher_outputs(img)
        s = student["scores"].permute(0, 2, 1)  # (B, A, C) logits
        zero = s.sum() * 0.0
        kd, hint = zero, zero
        if self.kd_weight > 0:
            if tp["scores"].shape[-1] != s.shape[1]:
                raise ConfigError(
                    f"kd teacher predicts {tp['scores'].shape[-1]} anchors and the student {s.shape[1]}: their "
                    "detection strides differ; use a teacher with the same P3/P4/P5 strides"
                )
            t = self.map_teacher_logits(tp["scores"], s.shape[-1])
            w = self.mask.to(s.device).float().expand_as(s)
            el = self.bce(s.float(), teacher_logits=t, weight=w)
            denom = (torch.sigmoid(t / self.temperature) * w).sum().clamp(min=1.0)
            kd = el.sum() / denom * self.kd_weight
        if self.hint_weight > 0 and self.hints is not None:
            hint = self.hints(list(student["feats"]), [f.detach().float() for f in tp["feats"]]) * self.hint_weight
        return kd, hint


class StudentCriterion:
    """The student's criterion: (soft-label) detection loss, plus online KD when a teacher is given.

    Installed as ``model.criterion`` after the EMA copy is made, so neither the teacher nor the hint
    projections are copied into the EMA or saved (Ultralytics also strips ``criterion`` when saving).
    """

    def __init__(self, model: nn.Module, plan: Plan, kd: OnlineKD | None) -> None:
        fn: Any = v8DetectionLoss
        if plan.soft is not None:
            fn = partial(SoftDetectionLoss, alpha=plan.alpha, temperature=plan.temperature, conf_weight=plan.conf_weight)
        e2e = getattr(model.model[-1], "one2one_cv2", None) is not None
        self.det = E2ELoss(model, loss_fn=fn) if e2e else fn(model)
        self.kd = kd

    def update(self) -> None:
        if hasattr(self.det, "update"):
            self.det.update()

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, items = self.det(preds, batch)
        if self.kd is None:
            return loss, items
        raw = preds[1] if isinstance(preds, tuple) else preds
        raw = raw.get("one2many", raw)
        kd, hint = self.kd(raw, batch["img"])
        bs = batch["img"].shape[0]
        loss = torch.cat([loss.reshape(-1), (kd * bs).reshape(1).to(loss.dtype), (hint * bs).reshape(1).to(loss.dtype)])
        return loss, {**items, "kd_loss": kd.detach(), "hint_loss": hint.detach()}


# ----------------------------------------------------------------------------------------------------------
# trainer
# ----------------------------------------------------------------------------------------------------------


class AutolabelTrainer(DetectionTrainer):
    """``DetectionTrainer`` + soft-score dataset, soft loss, online KD, and kept architectures.

    Resumable as Ultralytics (``resume=last.pt``): the model, EMA, optimizer (including the hint
    projections' group) come from ``last.pt``; the projections' weights from ``weights/distill_state.pt``.
    """

    def __init__(self, cfg: Any = DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None,
                 plan: Plan | None = None) -> None:
        self.plan = plan or Plan()
        self.hints: MultiLevelHint | None = None
        self.kd: OnlineKD | None = None
        super().__init__(cfg, overrides, _callbacks)

    # model ------------------------------------------------------------------------------------------------
    def setup_model(self):
        if not self.plan.keep_architecture:
            return super().setup_model()
        if isinstance(self.model, nn.Module):
            return None
        model, ckpt = load_checkpoint(self.model)  # the module as saved: no rebuild from its YAML
        for p in model.parameters():
            p.requires_grad_(True)
        self.model = model.train()
        return ckpt

    # data -------------------------------------------------------------------------------------------------
    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        if mode != "train" or self.plan.soft is None:
            return super().build_dataset(img_path, mode, batch)
        gs = max(int(unwrap_model(self.model).stride.max()), 32)
        cfg = self.args
        return SoftLabelDataset(
            img_path=img_path,
            imgsz=cfg.imgsz,
            batch_size=batch,
            augment=True,
            hyp=cfg,
            rect=bool(cfg.rect),
            cache=cfg.cache or None,
            single_cls=False,
            stride=gs,
            pad=0.0,
            prefix=colorstr("train: "),
            task=cfg.task,
            classes=None,
            data=self.data,
            fraction=cfg.fraction,
            soft_table=self.plan.soft,
            uncertain=self.plan.uncertain,
        )

    # distillation -----------------------------------------------------------------------------------------
    def _setup_kd(self) -> None:
        plan = self.plan
        model = unwrap_model(self.model)
        teacher = plan.teacher.to(self.device).float().eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        hints = None
        if plan.hint_weight > 0:
            s_ch, t_ch = neck_channels(model), neck_channels(teacher)
            if len(s_ch) != len(t_ch):
                raise ConfigError(f"kd teacher has {len(t_ch)} detection levels and the student {len(s_ch)}")
            hints = MultiLevelHint(s_ch, t_ch).to(self.device)
            state = self.wdir / DISTILL_STATE_FILE
            if self.resume and state.is_file():
                hints.load_state_dict(torch.load(state, map_location=self.device, weights_only=True)["hints"])
        self.hints = hints
        self.kd = OnlineKD(teacher, hints, plan.class_index or [], int(model.model[-1].nc), plan.temperature,
                           plan.kd_weight, plan.hint_weight)

    def _build_train_pipeline(self):
        if self.plan.teacher is not None and self.kd is None:
            self._setup_kd()  # before the optimizer is built: the projections join it
        super()._build_train_pipeline()

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        opt = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        if self.hints is not None:
            ref = next((g for g in opt.param_groups if g.get("param_group") in {"weight", "muon"}), opt.param_groups[0])
            group = {k: v for k, v in ref.items() if k not in {"params", "initial_lr"}}
            if "use_muon" in group:
                group["use_muon"] = False
            group.update(params=list(self.hints.parameters()), param_group="hint")
            opt.add_param_group(group)
        return opt

    def save_model(self):
        ok = super().save_model()  # last.pt / best.pt: the student (EMA) only
        if ok and self.hints is not None:  # the hint projections go next to it, for resume
            state = {"hints": self.hints.state_dict(), "epoch": self.epoch}
            tmp = self.wdir / f".{DISTILL_STATE_FILE}.tmp"
            torch.save(state, tmp)
            tmp.replace(self.wdir / DISTILL_STATE_FILE)
        return ok

    def _setup_train(self):
        super()._setup_train()  # model, EMA (a copy without our criterion), optimizer, resume state
        if self.plan.soft is not None or self.kd is not None:
            model = unwrap_model(self.model)
            crit = StudentCriterion(model, self.plan, self.kd)
            if self.resume and self.start_epoch > 0 and hasattr(crit.det, "update"):  # E2E heads' loss schedule
                crit.det.updates = self.start_epoch - 1
                crit.det.update()
            model.criterion = crit


def run_training(overrides: dict[str, Any], plan: Plan, quiet: bool = False) -> AutolabelTrainer:
    """Build an :class:`AutolabelTrainer` and train; Ultralytics' dataset errors become one-line ``DatasetError``."""
    import ultralytics.utils as ul_utils

    level = LOGGER.level
    if quiet:
        LOGGER.setLevel(logging.WARNING)  # also silences Ultralytics' tqdm bars
    bars: list[Any] = []
    try:
        try:
            trainer = AutolabelTrainer(overrides=overrides, plan=plan)
        except AutolabelError:
            raise
        except (RuntimeError, FileNotFoundError) as e:
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise DatasetError(f"Ultralytics cannot use dataset '{overrides.get('data')}': {first[:200]}") from None
        if not quiet and not ul_utils.VERBOSE:  # Ultralytics is silent (its logs need --verbose): one bar of ours
            _epoch_bar(trainer, bars)
        trainer.train()
    finally:
        LOGGER.setLevel(level)
        for bar in bars:
            bar.close()
    return trainer


def _epoch_bar(trainer: DetectionTrainer, bars: list[Any]) -> None:
    """A progress bar of epochs with the loss and val mAP50-95, drawn by autolabel's progress helper."""
    from autolabel.core.progress import ProgressBar

    def start(tr: DetectionTrainer) -> None:
        bars.append(ProgressBar(total=int(tr.epochs), desc="training", initial=int(tr.start_epoch), unit="epoch"))

    def epoch_end(tr: DetectionTrainer) -> None:
        if not bars:
            return
        m = getattr(tr, "metrics", None) or {}
        loss = getattr(tr, "tloss", None)
        post = {}
        try:  # a tensor of the loss parts, or a dict of them, by Ultralytics version
            parts = loss.values() if isinstance(loss, dict) else [loss]
            post["loss"] = f"{sum(float(torch.as_tensor(v).float().sum()) for v in parts):.3f}"
        except (TypeError, ValueError, RuntimeError):
            pass
        if "metrics/mAP50-95(B)" in m:
            post["val_mAP50-95"] = f"{float(m['metrics/mAP50-95(B)']):.3f}"
        bars[0].set_postfix(**post)
        bars[0].update(1)

    trainer.add_callback("on_train_start", start)
    trainer.add_callback("on_fit_epoch_end", epoch_end)
