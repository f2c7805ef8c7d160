"""Structured channel pruning of YOLO students with torch-pruning, and recovery by distillation.

Example:
    >>> from autolabel.compress import PruneConfig, prune
    >>> res = prune("runs/cam1/weights/best.pt", "runs/cam1_pruned", data="datasets/cam1",
    ...             config=PruneConfig(ratio=0.5, recover_epochs=20))              # doctest: +SKIP
    >>> res.report["pruned"]["flops"] / res.report["original"]["flops"]           # doctest: +SKIP

How
---
1. Ultralytics' ``C2f`` / ``C3k2`` blocks split one convolution's output with ``chunk``; torch-pruning's
   dependency graph cannot prune the two halves of one tensor independently (its importance indices then
   run past the conv). Each block is therefore rewritten, with identical outputs, as :class:`C2fSplit`: the
   first convolution becomes two (``cv0`` and ``cv1``, each one half of the original weights and BN), as in
   torch-pruning's YOLOv8 example.
2. ``torch_pruning.pruner.BasePruner`` with group L2-magnitude importance removes the same share of
   channels from every prunable layer in one shot; that share is found by bisection so that the FLOPs (or
   parameters) fall by ``ratio``. The Detect head and any attention block (``C2PSA``,
   ``PSA``, ``Attention``: their head split must stay intact) are ignored, so the head's outputs — boxes and
   classes — are never pruned; modules a user lists in ``keep`` (``model.9`` …) are kept whole too.
   The BatchNorm statistics are then recomputed on the user's images.
3. **Recovery by distillation**: the pruned model is fine-tuned on the auto-labeled dataset with the
   unpruned model as online teacher (dense class-logit KD + FitNets hints on the neck, see
   :mod:`autolabel.students.yolo.train`), plus the dataset's soft labels.

Output folder: ``pruned.pt`` (before recovery; Ultralytics checkpoint format), ``weights/best.pt`` (after
recovery), ``prune_report.json`` (params, FLOPs and val mAP of the original, pruned and recovered models).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autolabel.core.errors import ConfigError, DatasetError

__all__ = ["ActivationImportance", "C2fSplit", "PruneConfig", "PruneResult", "classifier_checkpoint", "count_flops_params",
           "prune", "prune_classifier", "prune_model", "split_c2f"]

REPORT_FILE = "prune_report.json"


@dataclass(frozen=True)
class PruneConfig:
    """Settings of the pruning stage.

    Attributes:
        ratio: fraction of the FLOPs (``target="flops"``) or parameters (``"params"``) to remove.
        target: ``flops`` or ``params``.
        imgsz: image size for FLOPs counting, validation and recovery training.
        keep: module names kept whole (e.g. ``["model.9"]``); the Detect head always is.
        round_to: keep channel counts multiples of this (8 suits many NPUs, but rounds YOLO-n's 16-channel
            layers down to 8 and costs accuracy; 1 = exact ratio).
        steps: at most this many bisection trials to find the channel ratio that meets the target.
        recover_epochs: fine-tuning epochs after pruning (0 = none), split over the rounds.
        rounds: prune gradually: ``rounds`` steps of ``ratio / rounds`` each followed by its share of the
            recovery epochs (small steps damage less than one big cut; 1 = one shot, then recover).
        kd: recover with the unpruned model as online teacher (else plain fine-tuning on the labels).
        kd_weight, hint_weight, alpha, temperature: see :class:`autolabel.students.yolo.train.TrainConfig`.
        lr0, optimizer: the recovery optimizer. Every batch is one optimizer step (``nbs = batch``) and the
            warm-up lasts at most one epoch, biases included (Ultralytics starts them at 0.1, harmless for
            SGD from scratch, a jolt for AdamW on a trained net; it zeroes that only when it picks AdamW
            itself). Ultralytics' defaults (gradients accumulated to a nominal batch
            of 64, three warm-up epochs, ``optimizer=auto`` picking AdamW at ``0.01 / (4 + nc)``) leave a
            few-hundred-image dataset a few dozen small steps in ten epochs, too few to recover a pruned net.
        batch, device, workers: recovery training and validation.
        evaluate: val-split mAP (against the dataset's labels) before and after.
        progress: progress bars and training logs.
        ultralytics: extra Ultralytics training arguments for the recovery.
    """

    ratio: float = 0.5
    target: str = "flops"
    imgsz: int = 640
    keep: Sequence[str] = ()
    round_to: int = 1
    steps: int = 12
    recover_epochs: int = 10
    rounds: int = 1
    kd: bool = True
    kd_weight: float = 1.0
    hint_weight: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    lr0: float = 0.002
    optimizer: str = "AdamW"
    batch: int = 16
    device: str = "auto"
    workers: int = 2
    evaluate: bool = True
    progress: bool = True
    ultralytics: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.ratio) < 0.95:
            raise ConfigError(f"ratio must be in (0, 0.95), found {self.ratio}")
        if self.target not in ("flops", "params"):
            raise ConfigError(f"target must be 'flops' or 'params', found '{self.target}'")
        if int(self.recover_epochs) < 0:
            raise ConfigError(f"recover_epochs must be >= 0, found {self.recover_epochs}")
        if int(self.rounds) < 1:
            raise ConfigError(f"rounds must be >= 1, found {self.rounds}")
        if int(self.rounds) > max(1, int(self.recover_epochs)):
            raise ConfigError(f"rounds ({self.rounds}) needs at least one recovery epoch each (recover_epochs "
                              f"{self.recover_epochs})")
        if not float(self.lr0) > 0:
            raise ConfigError(f"lr0 must be > 0, found {self.lr0}")
        if int(self.steps) < 1 or int(self.round_to) < 1:
            raise ConfigError(f"steps and round_to must be >= 1, found {self.steps}, {self.round_to}")


@dataclass
class PruneResult:
    """What :func:`prune` wrote."""

    out: Path
    pruned: Path
    recovered: Path | None
    report: dict[str, Any]


# ----------------------------------------------------------------------------------------------------------
# the model surgery
# ----------------------------------------------------------------------------------------------------------


class C2fSplit(nn.Module):
    """``C2f`` (and ``C3k2``) with ``cv1(x).chunk(2)`` computed by two convolutions ``cv0``, ``cv1``.

    Same outputs as the block it replaces; every convolution's outputs can then be pruned on their own.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.c = block.c
        self.cv0, self.cv1 = _halve(block.cv1, block.c)
        self.cv2, self.m = block.cv2, block.m
        for k in ("f", "i", "type", "np"):  # Ultralytics' routing attributes
            if hasattr(block, k):
                setattr(self, k, getattr(block, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv0(x), self.cv1(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


def _halve(conv: Any, c: int) -> tuple[Any, Any]:
    """Two Ultralytics ``Conv`` modules computing the first and second ``c`` output channels of ``conv``."""
    halves = []
    for sl in (slice(0, c), slice(c, 2 * c)):
        h = deepcopy(conv)
        h.conv.out_channels = c
        h.conv.weight = type(conv.conv.weight)(conv.conv.weight.data[sl].clone())
        if conv.conv.bias is not None:
            h.conv.bias = type(conv.conv.bias)(conv.conv.bias.data[sl].clone())
        bn = getattr(h, "bn", None)
        if bn is not None:
            bn.num_features = c
            bn.weight = type(bn.weight)(conv.bn.weight.data[sl].clone())
            bn.bias = type(bn.bias)(conv.bn.bias.data[sl].clone())
            bn.running_mean = conv.bn.running_mean[sl].clone()
            bn.running_var = conv.bn.running_var[sl].clone()
        halves.append(h)
    return halves[0], halves[1]


def split_c2f(model: Any) -> int:
    """Replace every ``C2f``/``C3k2`` block of a DetectionModel in place by :class:`C2fSplit`; the count."""
    from ultralytics.nn.modules.block import C2f

    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, C2f):
                setattr(parent, name, C2fSplit(child))
                n += 1
    return n


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


def _ignored(model: Any, keep: Sequence[str]) -> list[Any]:
    names = dict(model.named_modules())
    missing = [k for k in keep if k not in names]
    if missing:
        top = [n for n in names if n.count(".") == 1][:30]
        raise ConfigError(f"keep: modules {missing} not in the model; its blocks are {top}")
    ignored = [model.model[-1]] + [names[k] for k in keep]
    for m in model.modules():  # attention splits heads by channel count: keep it whole
        if type(m).__name__ in {"C2PSA", "PSA", "Attention", "AAttn", "A2C2f"}:
            ignored.append(m)
    return ignored


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

    After :func:`_compensate` folds a removed channel's mean into its consumers, what is lost is its
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


def _compensate(model: Any, group: Any, means: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
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


def _bisect_channel_ratio(pruned_copy: Any, config: PruneConfig, ops0: int, params0: int) -> tuple[Any, float, int]:
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


def prune_model(model: Any, config: PruneConfig, images: torch.Tensor | None = None,
                recalibrate_bn: bool = True) -> dict[str, Any]:
    """Prune a DetectionModel in place (C2f blocks split first) to ``config.ratio``; before/after counts.

    Args:
        images: a few preprocessed images ``(B, 3, imgsz, imgsz)`` in [0, 1] from the user's data, whose
            per-channel mean activations compensate the removed channels (random noise when ``None``), and
            on which the BatchNorm statistics are recomputed after pruning.
        recalibrate_bn: recompute the BatchNorm statistics on ``images`` after pruning.
    """
    import torch_pruning as tp

    model.float()
    for p in model.parameters():
        p.requires_grad_(True)
    split_c2f(model)
    model.eval()
    dev = next(model.parameters()).device
    x = torch.zeros(1, 3, config.imgsz, config.imgsz, device=dev)
    ops0, params0 = count_flops_params(model, config.imgsz)
    real = images is not None
    if images is None:  # no data: statistics of noise (poor); never recalibrate BatchNorm on it
        images = torch.rand(4, 3, config.imgsz, config.imgsz, generator=torch.Generator().manual_seed(0))
    stats = input_stats(model, images.to(dev))

    def pruned_copy(channel_ratio: float) -> tuple[Any, int, int]:
        m = deepcopy(model)
        live = dict(stats)  # this copy's view, trimmed as its channels go
        pruner = tp.pruner.BasePruner(
            m, x, importance=ActivationImportance(m, live), pruning_ratio=channel_ratio,
            iterative_steps=1, ignored_layers=_ignored(m, config.keep), round_to=int(config.round_to),
            output_transform=lambda out: out[0] if isinstance(out, (tuple, list)) else out,
        )
        for group in pruner.step(interactive=True):
            _compensate(m, group, live)
            group.prune()
        ops, params = count_flops_params(m, config.imgsz)
        return m, ops, params

    # One-shot pruning with the same channel ratio in every layer (iterating tiny steps with round_to would
    # strip round_to channels from every layer per step and gut the narrow early ones). The channel ratio
    # that meets the FLOPs / parameter target is found by bisection on copies.
    best, hi, steps = _bisect_channel_ratio(pruned_copy, config, ops0, params0)
    if best is None:
        raise ConfigError(f"cannot remove {config.ratio:.0%} of the {config.target} with the layers kept whole "
                          f"({list(config.keep)} and the Detect head); lower --ratio")
    pruned, ops, params = best
    for name, child in list(pruned.named_children()):  # into the caller's object (prune in place)
        setattr(model, name, child)
    if recalibrate_bn and real and len(images) >= 2:
        recalibrate_batchnorm(model, images.to(dev))
    with torch.no_grad():
        model(x)  # the pruned graph still runs end to end
    return {"flops_before": ops0, "params_before": params0, "flops_after": ops, "params_after": params,
            "channel_ratio": round(hi, 4), "trials": steps}


# ----------------------------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------------------------


def _calibration_batch(data: Path | None, imgsz: int, n: int = 32) -> torch.Tensor | None:
    """Up to ``n`` of the dataset's train images, letterboxed as the runtime does, for channel statistics."""
    if data is None or data.suffix in {".yaml", ".yml"}:
        return None
    from autolabel.compress.calibration import calibration_images
    from autolabel.core.images import letterboxed_batch

    imgs = calibration_images(data, n)
    if not imgs:
        return None
    return torch.from_numpy(letterboxed_batch(imgs, imgsz))


def _val(weights: Path, data_yaml: Path, config: PruneConfig) -> dict[str, float] | None:
    if not config.evaluate:
        return None
    import logging

    from autolabel.core.checkpoints import import_ultralytics, load_yolo
    from autolabel.core.weights import resolve_device

    import_ultralytics()
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        dev = resolve_device(config.device)
        m = load_yolo(weights).val(data=str(data_yaml), imgsz=config.imgsz, batch=config.batch, plots=False,
                                   device="cpu" if dev == "cpu" else dev.replace("cuda:", ""), verbose=False,
                                   workers=config.workers, conf=0.001,
                                   project=str(weights.parent), name="val", exist_ok=True)  # not ./runs/detect
    finally:
        LOGGER.setLevel(level)
    return {"mAP50-95": round(float(m.box.map), 5), "mAP50": round(float(m.box.map50), 5)}


def recovery_args(config: PruneConfig, epochs: int) -> dict[str, Any]:
    """Ultralytics training arguments of one recovery run (the user's ``config.ultralytics`` win)."""
    from autolabel.students.yolo.train import FINE_TUNE

    args: dict[str, Any] = {**FINE_TUNE, "optimizer": config.optimizer, "lr0": float(config.lr0), "nbs": int(config.batch),
                            "warmup_epochs": min(1.0, max(0.0, epochs - 1.0))}
    args.update(dict(config.ultralytics or {}))
    return args


def _save(model: Any, path: Path, names: dict[int, str], meta: dict[str, Any]) -> None:
    m = deepcopy(model).half().cpu().eval()  # half, as Ultralytics saves its checkpoints (loaders call .float())
    for p in m.parameters():
        p.requires_grad_(False)
    m.names = dict(names)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": m, "train_args": {"imgsz": meta.get("imgsz")}, "autolabel": meta}, tmp)
    tmp.replace(path)


def prune(model: str | Path, out: str | Path, data: str | Path | None = None,
          config: PruneConfig | None = None) -> PruneResult:
    """Prune a YOLO student to ``ratio`` fewer FLOPs/params, then recover it by distillation on ``data``.

    Args:
        model: a YOLO ``.pt`` checkpoint or an ``autolabel train`` output folder.
        out: output folder (``pruned.pt``, ``weights/best.pt``, ``prune_report.json``).
        data: the auto-labeled dataset (``autolabel label`` output) for recovery and val mAP.
        config: :class:`PruneConfig`.

    Raises:
        WeightsNotFoundError: model missing or unreadable. ConfigError: bad settings, recovery without data.
        DatasetError: a dataset without data.yaml.
    """
    config = config or PruneConfig()
    if classifier_checkpoint(model) is not None:  # a train-classifier checkpoint: its own path
        return prune_classifier(model, out, data=data, config=config)
    from autolabel.compress.yolo_model import load_detector, resolve_checkpoint
    from autolabel.core.checkpoints import load_yolo

    pt = resolve_checkpoint(model)
    data_p = Path(data).expanduser() if data is not None else None
    if data_p is None and config.recover_epochs > 0:
        raise ConfigError("recovery needs the dataset: pass --data DATASET (or --recover-epochs 0 to only prune)")
    data_yaml = None
    if data_p is not None:
        data_yaml = data_p if data_p.suffix in {".yaml", ".yml"} else data_p / "data.yaml"
        if not data_yaml.is_file():
            raise DatasetError(f"dataset '{data_p}' has no data.yaml; expected a folder written by `autolabel label`")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        raise ConfigError("pruning needs torch-pruning: pip install torch-pruning") from None

    from dataclasses import replace

    y = load_detector(pt)
    names = dict(y.names)
    original = deepcopy(y.model).float().eval()
    cal = _calibration_batch(data_p, config.imgsz)
    student = deepcopy(y.model).float()
    t0 = time.perf_counter()
    counts = prune_model(student, config, images=cal)  # one shot to the full ratio: the "no recovery" model
    prune_s = time.perf_counter() - t0
    pruned_pt = out / "pruned.pt"
    _save(student, pruned_pt, names, {"imgsz": config.imgsz, "pruned_from": str(pt.resolve()), **counts})

    report: dict[str, Any] = {
        "model": str(pt.resolve()),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "original": {"params": counts["params_before"], "flops": counts["flops_before"]},
        "pruned": {"params": counts["params_after"], "flops": counts["flops_after"], "seconds": round(prune_s, 1),
                   "weights": str(pruned_pt)},
        "against": "the dataset's labels (val split)" if data_yaml else None,
    }
    if data_yaml is not None:
        report["original"].update(_val(pt, data_yaml, config) or {})
        report["pruned"].update(_val(pruned_pt, data_yaml, config) or {})
    recovered = None
    if config.recover_epochs > 0 and data_p is not None:
        from autolabel.students.yolo.train import TrainConfig, train

        soft_ok = (data_p / "autolabel.jsonl").is_file()
        rounds = int(config.rounds)
        per_round = [int(config.recover_epochs) // rounds + (1 if i < int(config.recover_epochs) % rounds else 0)
                     for i in range(rounds)]
        if rounds > 1:
            student = deepcopy(y.model).float()
        t0 = time.perf_counter()
        history = []
        for r, epochs in enumerate(per_round, 1):
            if rounds > 1:  # cut to this round's share of the target, relative to what is left
                keep_now = count_flops_params(student, config.imgsz)[0] / counts["flops_before"]
                keep_goal = 1.0 - float(config.ratio) * r / rounds
                step = replace(config, ratio=min(0.9, max(0.01, 1.0 - keep_goal / keep_now)), target="flops")
                prune_model(student, step, images=cal)
            tcfg = TrainConfig(
                epochs=epochs, imgsz=config.imgsz, batch=config.batch, device=config.device,
                workers=config.workers, hard_only=not soft_ok, alpha=config.alpha, temperature=config.temperature,
                kd_teacher=original if config.kd else None, kd_weight=config.kd_weight,
                hint_weight=config.hint_weight, close_mosaic=max(1, epochs // 3), overwrite=True,
                progress=config.progress, ultralytics=recovery_args(config, epochs),
            )
            res = train(data_p, student=student, out=out, config=tcfg)
            recovered = res.best if res.best.is_file() else res.last
            history.append({"round": r, "epochs": epochs, "val_mAP50-95": res.metrics.get("mAP50-95")})
            if r < rounds:
                student = load_yolo(recovered).model.float()
        if rounds > 1:
            flops, params = count_flops_params(load_yolo(recovered).model.float(), config.imgsz)
        else:
            flops, params = counts["flops_after"], counts["params_after"]
        report["recovered"] = {"weights": str(recovered), "epochs": int(config.recover_epochs), "rounds": rounds,
                               "kd_from_unpruned": bool(config.kd), "seconds": round(time.perf_counter() - t0, 1),
                               "params": params, "flops": flops, "history": history}
        if data_yaml is not None:
            report["recovered"].update(_val(recovered, data_yaml, config) or {})
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return PruneResult(out=out, pruned=pruned_pt, recovered=recovered, report=report)


# ----------------------------------------------------------------------------------------------------------
# classifiers (torchvision MobileNetV3 and others trained by autolabel train-classifier)
# ----------------------------------------------------------------------------------------------------------


def classifier_checkpoint(model: str | Path) -> Path | None:
    """The path of an autolabel classifier checkpoint (file or ``train-classifier`` folder), else None."""
    p = Path(model).expanduser()
    if p.is_dir():
        p = next((c for c in (p / "best.pt", p / "last.pt", p / "pruned.pt") if c.is_file()), p)
    if not p.is_file():
        return None
    from autolabel.students.classifier.train import CKPT_FORMAT

    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # an Ultralytics checkpoint (pickled modules) or not a checkpoint at all
        return None
    return p if isinstance(ckpt, dict) and ckpt.get("format") == CKPT_FORMAT else None


def prune_classifier(model: str | Path, out: str | Path, data: str | Path | None = None,
                     config: PruneConfig | None = None) -> PruneResult:
    """Prune a classifier's channels to ``ratio`` fewer FLOPs/params, then recover it by online Hinton KD.

    Channels are ranked by group L2 magnitude (torch-pruning's dependency graph keeps MobileNetV3's
    depthwise and squeeze-excitation layers consistent); the last ``Linear`` (the class outputs) is never
    pruned. Recovery trains the pruned model on ``data`` with the unpruned one as online teacher
    (:class:`~autolabel.students.classifier.train.ClassifierConfig` ``kd_teacher``), or on the dataset's own teacher
    scores with ``kd=False``. Writes ``pruned.pt`` and ``recover/best.pt`` (classifier checkpoints that
    :func:`~autolabel.compress.bundle.export_classifier` exports) and ``prune_report.json``.
    """
    import torch_pruning as tp

    from autolabel.students.classifier.train import (
        CKPT_FORMAT,
        CKPT_VERSION,
        ClassifierConfig,
        evaluate_classifier,
        load_classifier,
        open_classification_dataset,
        train_classifier,
    )

    config = config or PruneConfig()
    src = classifier_checkpoint(model)
    if src is None:
        raise ConfigError(f"'{model}' is not an autolabel classifier checkpoint (best.pt of train-classifier)")
    if data is None and config.recover_epochs > 0:
        raise ConfigError("recovery needs the dataset: pass --data DATASET (or --recover-epochs 0 to only prune)")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    clf = load_classifier(src)
    size = int(clf.preprocessing["imgsz"])
    net = deepcopy(clf.model).float().cpu().eval()
    x = torch.zeros(1, 3, size, size)
    ops0, params0 = (int(v) for v in tp.utils.count_ops_and_params(net, x))
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1:]

    def pruned_copy(channel_ratio: float) -> tuple[nn.Module, int, int]:
        m = deepcopy(net)
        heads = [q for q in m.modules() if isinstance(q, nn.Linear)][-1:]
        tp.pruner.BasePruner(m, x, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=channel_ratio,
                             ignored_layers=heads, round_to=int(config.round_to)).step()
        ops, params = tp.utils.count_ops_and_params(m, x)
        return m, int(ops), int(params)

    best, hi, _ = _bisect_channel_ratio(pruned_copy, config, ops0, params0)
    if best is None or not head:
        raise ConfigError(f"cannot remove {config.ratio:.0%} of the {config.target} of '{src}'; lower --ratio")
    pruned, ops, params = best
    pruned_pt = out / "pruned.pt"
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    keep = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "rng", "history")}
    torch.save({**keep, "format": CKPT_FORMAT, "version": CKPT_VERSION,
                "model": {k: v.detach().clone() for k, v in pruned.state_dict().items()},
                "pruned_from": str(src.resolve()), "val": {}}, pruned_pt)
    report: dict[str, Any] = {
        "model": str(src.resolve()), "task": "classify",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "original": {"params": params0, "flops": ops0},
        "pruned": {"params": params, "flops": ops, "channel_ratio": round(hi, 4), "weights": str(pruned_pt)},
    }
    recovered = None
    base = dict(ckpt.get("config") or {})  # the classifier's own training settings
    if config.recover_epochs > 0 and data is not None:
        ccfg = ClassifierConfig(
            model=clf.model_name, pretrained=str(pruned_pt), epochs=int(config.recover_epochs), imgsz=size,
            batch=int(base.get("batch", 64)), lr=float(config.lr0), kd=True,
            temperature=float(base.get("temperature", 4.0)), alpha=float(base.get("alpha", 0.5)),
            context=float(base.get("context", 0.1)), device=config.device, progress=config.progress,
            kd_teacher=str(src) if config.kd else None,
        )
        t0 = time.perf_counter()
        res = train_classifier(data, out / "recover", ccfg)
        recovered = res.best
        report["recovered"] = {"weights": str(recovered), "epochs": int(config.recover_epochs),
                               "kd_from_unpruned": bool(config.kd), "seconds": round(time.perf_counter() - t0, 1),
                               "params": params, "flops": ops, "val_top1_teacher": res.top1_teacher}
    if data is not None and config.evaluate:  # val top-1 against the teacher's labels, before and after pruning
        val = open_classification_dataset(data, "val", imgsz=size, context=float(base.get("context", 0.1)))
        if len(val):
            for key, m in (("original", net), ("pruned", pruned)):
                report[key]["val_top1_teacher"] = evaluate_classifier(m, val, None, batch=64, device="cpu")["top1_teacher"]
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return PruneResult(out=out, pruned=pruned_pt, recovered=recovered, report=report)
