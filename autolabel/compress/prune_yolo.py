"""Structured channel pruning of YOLO students, and their recovery by distillation.

How
---
1. Ultralytics' ``C2f`` / ``C3k2`` blocks split one convolution's output with ``chunk``; torch-pruning's
   dependency graph cannot prune the two halves of one tensor independently (its importance indices then
   run past the conv). Each block is therefore rewritten, with identical outputs, as
   :class:`~autolabel.students.yolo.layers.C2fSplit`: the first convolution becomes two (``cv0`` and
   ``cv1``, each one half of the original weights and BN), as in torch-pruning's YOLOv8 example.
2. ``torch_pruning.pruner.BasePruner`` with activation importance (:mod:`autolabel.compress.prune_engine`)
   removes the same share of channels from every prunable layer in one shot; that share is found by
   bisection so that the FLOPs (or parameters) fall by ``ratio``. The Detect head and any attention block
   (``C2PSA``, ``PSA``, ``Attention``: their head split must stay intact) are ignored, so the head's outputs —
   boxes and classes — are never pruned; modules a user lists in ``keep`` (``model.9`` …) are kept whole too.
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from autolabel.compress.prune_engine import (
    ActivationImportance,
    bisect_channel_ratio,
    compensate,
    count_flops_params,
    input_stats,
    recalibrate_batchnorm,
)
from autolabel.compress.pruning import REPORT_FILE, PruneConfig, PruneResult
from autolabel.core.errors import ConfigError, DatasetError
from autolabel.students.yolo.layers import C2fSplit

__all__ = ["prune_model", "prune_yolo", "recovery_args", "split_c2f"]


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
            compensate(m, group, live)
            group.prune()
        ops, params = count_flops_params(m, config.imgsz)
        return m, ops, params

    # One-shot pruning with the same channel ratio in every layer (iterating tiny steps with round_to would
    # strip round_to channels from every layer per step and gut the narrow early ones). The channel ratio
    # that meets the FLOPs / parameter target is found by bisection on copies.
    best, hi, steps = bisect_channel_ratio(pruned_copy, config, ops0, params0)
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
    from autolabel.images import letterboxed_batch

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


def prune_yolo(model: str | Path, out: str | Path, data: str | Path | None = None,
               config: PruneConfig | None = None) -> PruneResult:
    """:func:`~autolabel.compress.pruning.prune` for a YOLO student (see there)."""
    from dataclasses import replace

    from autolabel.compress.yolo_model import load_detector, resolve_checkpoint
    from autolabel.core.checkpoints import load_yolo

    config = config or PruneConfig()
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
                workers=config.workers, soft=soft_ok, alpha=config.alpha, temperature=config.temperature,
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

