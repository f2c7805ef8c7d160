"""The generic channel-pruning machinery on torch-pruning, whatever the network family.

* :func:`count_flops_params`: FLOPs (MACs-based, as torch-pruning counts them) and parameters.
* :func:`input_stats`, :class:`ActivationImportance`, :func:`compensate`: rank channels by what they carry on the
  user's images, and fold a removed channel's mean into its consumers so the pruned network starts close to
  the unpruned one.
* :func:`recalibrate_batchnorm`: BatchNorm statistics recomputed after pruning.
* :func:`bisect_channel_ratio`: the channel ratio that meets a FLOPs / parameters goal.

The family specifics (which layers to keep whole, how the network is rewritten first, how it recovers) are in
:mod:`autolabel.compress.prune_yolo` and :mod:`autolabel.compress.prune_classifier`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from autolabel.config import PruneConfig

__all__ = ["ActivationImportance", "bisect_channel_ratio", "compensate", "count_flops_params", "input_stats",
           "recalibrate_batchnorm"]


def count_flops_params(model: Any, imgsz: int) -> tuple[int, int]:
    """(MACs-based FLOPs as torch-pruning counts them, parameters) at ``imgsz``."""
    import torch_pruning as tp

    p = next(model.parameters())
    was = model.training
    model.eval()
    try:
        ops, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, imgsz, imgsz, device=p.device, dtype=p.dtype))
    finally:
        model.train(was)
    return int(ops), int(params)



def input_stats(model: Any, images: torch.Tensor | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per input channel, (mean, std) of the activations entering every Conv2d of ``model`` on ``images``."""
    sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            def hook(_m: nn.Module, args: tuple, name: str = name) -> None:
                a = args[0].detach().float()
                sums[name] = (a.mean((0, 2, 3)), a.std((0, 2, 3)))
            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        if images is not None and len(images):
            with torch.no_grad():
                model(images)
    finally:
        for h in hooks:
            h.remove()
    return sums


class ActivationImportance:
    """Channel importance from data: ``std_j · ‖W[:, j]‖`` summed over the consumers of channel ``j``.

    After :func:`compensate` folds a removed channel's mean into its consumers, what is lost is its
    variation around that mean, seen through the consumers' weights. Weight magnitude alone ranks badly on
    YOLO checkpoints whose BN scales were folded into the convolutions (a small-norm channel can still carry
    a large, informative signal). Falls back to L2 magnitude for groups without measured consumers.
    """

    def __init__(self, model: Any, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        import torch_pruning as tp

        self.stats = stats
        self.names = {id(m): n for n, m in model.named_modules()}
        self.fallback = tp.importance.GroupMagnitudeImportance(p=2)

    @torch.no_grad()
    def __call__(self, group: Any) -> torch.Tensor | None:
        import torch_pruning as tp

        imps, roots = [], []
        for i, (dep, idxs) in enumerate(group):
            layer = dep.layer
            if dep.pruning_fn != tp.prune_conv_in_channels or not isinstance(layer, nn.Conv2d) or layer.groups != 1:
                continue
            st = self.stats.get(self.names.get(id(layer), ""))
            if st is None or st[1].numel() != layer.in_channels:
                continue
            w = layer.weight.data.transpose(0, 1).flatten(1).norm(dim=1)
            imps.append((w * st[1].to(w.device))[list(idxs)])
            roots.append(group[i].root_idxs)
        if not imps:
            return self.fallback(group)
        n = len(group[0][1])  # the root layer's channels
        imp = torch.zeros(n)
        for v, r in zip(imps, roots):
            if any(x is None for x in r) or max(r) >= n:
                continue
            imp.scatter_add_(0, torch.as_tensor(list(r), dtype=torch.long), v.float().cpu())
        return imp / imp.mean().clamp(min=1e-12)


def compensate(model: Any, group: Any, means: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Fold the mean of each removed input channel into its consumer's BN mean (or bias) before pruning.

    Narrow YOLO channels often carry a large constant (their BN bias) through SiLU: dropping one shifts every
    consumer's output by ``W[:, j] · mean_j``. Moving that constant into the consumer keeps the network's
    outputs close to the unpruned ones, so recovery starts from a working model.
    """
    import torch_pruning as tp

    names = {id(m): n for n, m in model.named_modules()}
    parents = {n: m for n, m in model.named_modules()}
    removed: dict[str, tuple[nn.Conv2d, set[int]]] = {}
    for dep, idxs in group:  # one consumer may appear in several dependencies of a group: merge them
        mod = dep.target.module
        if dep.handler != tp.prune_conv_in_channels or not isinstance(mod, nn.Conv2d) or mod.groups != 1:
            continue
        name = names.get(id(mod), "")
        removed.setdefault(name, (mod, set()))[1].update(int(i) for i in idxs)
    for name, (mod, idx_set) in removed.items():
        st = means.get(name)
        if st is None or st[0].numel() != mod.in_channels or max(idx_set) >= mod.in_channels:
            continue
        mean, std = st
        idx = torch.as_tensor(sorted(idx_set), dtype=torch.long)
        with torch.no_grad():
            delta = mod.weight[:, idx].float().sum((2, 3)) @ mean[idx].to(mod.weight.device)
            bn = getattr(parents.get(name.rsplit(".", 1)[0]), "bn", None) if "." in name else None
            if isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None:
                bn.running_mean.sub_(delta.to(bn.running_mean.dtype))
            elif mod.bias is not None:
                mod.bias.add_(delta.to(mod.bias.dtype))
        keep = torch.ones(mean.numel(), dtype=torch.bool)
        keep[idx] = False
        means[name] = (mean[keep], std[keep])  # stays aligned with the conv's inputs for the next group


def recalibrate_batchnorm(model: Any, images: torch.Tensor, batch: int = 8) -> None:
    """Recompute every BatchNorm's running mean/variance on ``images`` (cumulative average, no gradients).

    Pruning changes the statistics every later layer sees; stale running statistics are a large part of
    the accuracy a pruned network loses before any training (the "BN recalibration" of pruning work).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    was = model.training
    model.train()
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                if len(images[i : i + batch]) >= 2:
                    model(images[i : i + batch])
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.train(was)


def bisect_channel_ratio(pruned_copy: Any, config: PruneConfig, ops0: int, params0: int) -> tuple[Any, float, int]:
    """``(best, channel_ratio, trials)``: the smallest channel ratio whose pruned copy meets the FLOPs/params goal.

    ``pruned_copy(r)`` returns ``(model, flops, params)`` of a copy pruned at channel ratio ``r``; ``best`` is
    that tuple for the ratio found (None when even 0.9 misses the goal). Stops early within 2 % of the goal.
    """
    goal = 1.0 - float(config.ratio)
    share = (lambda ops, params: ops / ops0) if config.target == "flops" else (lambda ops, params: params / params0)
    lo, hi, best, trials = 0.0, 0.9, None, 0
    for _ in range(int(config.steps)):
        mid = (lo + hi) / 2
        m, ops, params = pruned_copy(mid)
        trials += 1
        if share(ops, params) <= goal:
            best, hi = (m, ops, params), mid
        else:
            lo = mid
        if best is not None and goal - 0.02 <= share(best[1], best[2]):
            break
    return best, hi, trials

