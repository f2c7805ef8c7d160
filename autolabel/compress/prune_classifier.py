"""Structured channel pruning of autolabel's classifiers (torchvision MobileNetV3 and others trained by
``autolabel train-classifier``), and their recovery by online Hinton KD."""

from __future__ import annotations

import json
import time
from copy import deepcopy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autolabel.compress.prune_engine import bisect_channel_ratio
from autolabel.compress.pruning import REPORT_FILE, PruneConfig, PruneResult, classifier_checkpoint
from autolabel.core.errors import ConfigError

__all__ = ["prune_classifier"]


def prune_classifier(model: str | Path, out: str | Path, data: str | Path | None = None,
                     config: PruneConfig | None = None) -> PruneResult:
    """Prune a classifier's channels to ``ratio`` fewer FLOPs/params, then recover it by online Hinton KD.

    Channels are ranked by group L2 magnitude (torch-pruning's dependency graph keeps MobileNetV3's
    depthwise and squeeze-excitation layers consistent); the last ``Linear`` (the class outputs) is never
    pruned. Recovery trains the pruned model on ``data`` with the unpruned one as online teacher
    (:class:`~autolabel.students.classifier.train.ClassifierConfig` ``kd_teacher``), or on the dataset's own teacher
    scores with ``kd=False``. Writes ``pruned.pt`` and ``recover/weights/best.pt`` (classifier checkpoints that
    :func:`~autolabel.compress.bundle.export_classifier` exports) and ``prune_report.json``.
    """
    import torch_pruning as tp

    from autolabel.students.classifier.dataset import open_classification_dataset
    from autolabel.students.classifier.model import (
        CKPT_FORMAT,
        CKPT_VERSION,
        load_checkpoint,
        load_classifier,
    )
    from autolabel.students.classifier.train import ClassifierConfig, evaluate_classifier, train_classifier

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

    best, hi, _ = bisect_channel_ratio(pruned_copy, config, ops0, params0)
    if best is None or not head:
        raise ConfigError(f"cannot remove {config.ratio:.0%} of the {config.target} of '{src}'; lower --ratio")
    pruned, ops, params = best
    pruned_pt = out / "pruned.pt"
    ckpt = load_checkpoint(src)
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
            batch=int(base.get("batch", 64)), lr=float(config.lr0), soft=True,
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
