"""Classification students, the training: a torchvision classifier distilled from a teacher's class distributions.

:func:`train_classifier` trains a torchvision classifier (``mobilenet_v3_small`` by default, any name of
``torchvision.models.list_models(module=torchvision.models)``, see :mod:`~autolabel.students.classifier.model`)
on box crops of a detection dataset or on an image-level dataset (see
:mod:`~autolabel.students.classifier.dataset`) with Hinton KD
(``α·CE(hard) + (1−α)·T²·KL(p_T^τ ‖ p_S^τ)``) or, with ``soft=False``, on the hard labels alone. Other
distillation recipes (``recipe``: deep mutual learning, SP / RKD relation losses and class-specialized KD
from a teacher network, born-again generations) are listed in :mod:`autolabel.distill.recipes`.

Output folder (the layout of every student family): ``OUT/weights/last.pt`` (every epoch; resumable),
``OUT/weights/best.pt`` (best val top-1 against the teacher's labels) and ``OUT/weights/metrics.json``.
Runs written before this layout (``OUT/last.pt``, ``OUT/best.pt``) still load and resume.

Example:
    >>> from autolabel.students.classifier import ClassifierConfig, train_classifier, load_classifier
    >>> res = train_classifier("datasets/cam1", "runs/cls", ClassifierConfig(epochs=20))   # doctest: +SKIP
    >>> res.metrics["best"]["top1_teacher"]                                               # doctest: +SKIP
    >>> clf = load_classifier(res.best); probs = clf.predict([crop_rgb])                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from autolabel.config import ClassifierConfig
from autolabel.core.errors import ConfigError, DatasetError
from autolabel.core.progress import ProgressBar
from autolabel.data.jsonl import write_atomic
from autolabel.students.classifier.dataset import (
    SampleDataset,
    open_classification_dataset,
)
from autolabel.students.classifier.model import (
    CKPT_FORMAT,
    CKPT_VERSION,
    build_classifier,
    check_model_name,
    default_preprocessing,
    fit_to_state_dict,
    load_checkpoint,
    load_classifier,
    logits_of,
    save_checkpoint,
)
from autolabel.students.classifier.objective import make_objective

__all__ = [
    "METRICS_FILE",
    "ClassifierConfig",
    "ClassifierResult",
    "classification_loss",
    "evaluate_checkpoint",
    "evaluate_classifier",
    "train_classifier",
]

METRICS_FILE = "metrics.json"


@dataclass
class ClassifierResult:
    """What :func:`train_classifier` produced."""

    out: Path
    best: Path
    last: Path
    metrics_path: Path
    metrics: dict[str, Any]
    names: list[str]
    start_epoch: int
    epochs_run: int

    @property
    def top1_teacher(self) -> float | None:
        """Val top-1 of ``best.pt`` against the teacher's hard labels."""
        return self.metrics["best"].get("top1_teacher")

    @property
    def top1_human(self) -> float | None:
        """Val top-1 of ``best.pt`` against the human labels (None when none were given)."""
        return self.metrics["best"].get("top1_human")


class _HardCE(nn.Module):
    """Cross-entropy on the hard labels, with :class:`HintonKD`'s call signature (teacher ignored)."""

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None = None,
                targets: Tensor | None = None, teacher_probs: Tensor | None = None) -> Tensor:
        assert targets is not None
        return nn.functional.cross_entropy(student_logits, targets)

    def extra_repr(self) -> str:
        return "hard labels only"


def classification_loss(config: ClassifierConfig) -> nn.Module:
    """The trainer's loss: :class:`HintonKD` ``(T, α)`` when ``config.soft``, else plain cross-entropy.

    Called as ``loss(logits, targets=hard_labels, teacher_probs=teacher_rows)``.
    """
    if config.soft:
        from autolabel.distill.losses import HintonKD

        return HintonKD(temperature=config.temperature, alpha=config.alpha)
    return _HardCE()


def _loss_name(config: ClassifierConfig) -> str:
    return f"hinton_kd(T={config.temperature}, alpha={config.alpha})" if config.soft else "cross_entropy(hard labels)"


@torch.no_grad()
def evaluate_classifier(model: nn.Module, dataset: SampleDataset, human: Tensor | None = None, *,
                        batch: int = 128, device: str = "cpu", workers: int = 0) -> dict[str, Any]:
    """Top-1 of ``model`` on ``dataset`` against the teacher's hard labels and, where given, human labels.

    ``human`` holds one class index per sample (−1 = no human label). Returns ``n``, ``top1_teacher``,
    ``loss_teacher`` (CE against the teacher labels), ``n_human``, ``top1_human`` and
    ``balanced_top1_human`` (mean per-class recall over the human classes present).
    """
    was = model.training
    model.eval()
    preds, losses = [], []
    if len(dataset):
        for x, y, _ in DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers):
            z = logits_of(model(x.to(device))).float().cpu()
            losses.append(nn.functional.cross_entropy(z, y, reduction="sum"))
            preds.append(z.argmax(1))
    model.train(was)
    n = len(dataset)
    out: dict[str, Any] = {"n": n, "top1_teacher": None, "loss_teacher": None, "n_human": 0, "top1_human": None,
                           "balanced_top1_human": None}
    if n == 0:
        return out
    pred = torch.cat(preds)
    teacher = torch.from_numpy(dataset.labels)
    out["top1_teacher"] = round(float((pred == teacher).float().mean()), 5)
    out["loss_teacher"] = round(float(torch.stack(losses).sum()) / n, 5)
    if human is not None:
        m = human >= 0
        out["n_human"] = int(m.sum())
        if m.any():
            hp, ht = pred[m], human[m]
            out["top1_human"] = round(float((hp == ht).float().mean()), 5)
            recalls = [float((hp[ht == k] == k).float().mean()) for k in ht.unique().tolist()]
            out["balanced_top1_human"] = round(sum(recalls) / len(recalls), 5)
    return out


def evaluate_checkpoint(weights: str | Path, dataset: str | Path, human_labels: Mapping[str, int | str] | None = None,
                        *, split: str = "val", batch: int = 64, device: str = "cpu") -> dict[str, Any]:
    """:func:`evaluate_classifier` of a trained checkpoint (or run folder) on a dataset split, with the
    checkpoint's own input size and crop margin.

    Raises:
        ConfigError: not a classifier checkpoint, or human labels outside its classes.
        DatasetError: a dataset with other classes.
    """
    clf = load_classifier(weights, device=device)
    pre = clf.preprocessing
    ds = open_classification_dataset(dataset, split, imgsz=int(pre["imgsz"]),
                                     context=float(pre.get("crop_context") or 0.1))
    if list(ds.names) != list(clf.names):
        raise DatasetError(f"'{weights}' predicts {clf.names}, '{dataset}' has classes {ds.names}")
    human, unused = _human_targets(human_labels, ds, list(clf.names))
    out = evaluate_classifier(clf.model, ds, human, batch=batch, device=device)
    return {**out, "split": split, "human_labels_not_in_split": unused}


def _human_targets(human_labels: Mapping[str, int | str] | None, dataset: SampleDataset,
                   names: list[str]) -> tuple[Tensor | None, int]:
    if not human_labels:
        return None, 0
    index = {n: i for i, n in enumerate(names)}
    t = torch.full((len(dataset),), -1, dtype=torch.long)
    pos = {k: i for i, k in enumerate(dataset.keys)}
    unused = 0
    for key, v in human_labels.items():
        if isinstance(v, str):
            if v not in index:
                raise ConfigError(f"human label '{v}' of sample '{key}' is not one of the classes {names}")
            k = index[v]
        else:
            k = int(v)
            if not 0 <= k < len(names):
                raise ConfigError(f"human label {v!r} of sample '{key}' is outside 0..{len(names) - 1}")
        i = pos.get(str(key))
        if i is None:
            unused += 1
        else:
            t[i] = k
    return t, unused



def _build_student(cfg: ClassifierConfig, num_classes: int, state_dict: dict[str, Tensor] | None,
                   device: torch.device) -> tuple[nn.Module, str | None]:
    """A student in train mode on ``device`` (from ``cfg.pretrained``, or from a resumed state dict), and the
    weights it started from; a one-line error when the architecture cannot run at ``cfg.imgsz``."""
    if state_dict is None:
        model, pretrained_used = build_classifier(cfg.model, num_classes, cfg.pretrained)
    else:
        model, pretrained_used = build_classifier(cfg.model, num_classes, False)
        fit_to_state_dict(model, state_dict)
        model.load_state_dict(state_dict)
    if cfg.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = cfg.bn_momentum
    model.to(device)
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, cfg.imgsz, cfg.imgsz, device=device))
    except RuntimeError as e:
        raise ConfigError(
            f"'{cfg.model}' cannot run on {cfg.imgsz}x{cfg.imgsz} inputs ({str(e).splitlines()[0][:120]}); "
            f"try a larger imgsz"
        ) from None
    model.train()
    return model, pretrained_used


_RESUME_KEYS = ("model", "imgsz", "soft", "temperature", "alpha", "lr", "weight_decay", "batch", "seed",
                "context", "min_box", "max_per_class", "zero_rows", "augment", "warmup_epochs", "bn_momentum",
                "kd_teacher", "recipe", "relation_weight")


def train_classifier(
    dataset: str | Path,
    out: str | Path,
    config: ClassifierConfig | None = None,
    *,
    human_labels: Mapping[str, int | str] | None = None,
) -> ClassifierResult:
    """Train a torchvision classifier on a dataset's crops (or images) from its teacher, with Hinton KD.

    Args:
        dataset: a detection dataset (``autolabel label``; trained on its box crops) or an image-level
            dataset (:func:`~autolabel.labeling.classify.label_classification`). Train/val come from the records' ``split``.
        out: run folder: ``weights/last.pt``, ``weights/best.pt``, ``weights/metrics.json``.
        config: settings (``soft=False`` trains on hard labels only, for comparison).
        human_labels: optional ``{sample key: class name or index}``; val samples among them are also scored
            against these labels (keys: :func:`crop_key` for crops, the record id for images).

    Returns:
        A :class:`ClassifierResult` (paths and the ``metrics.json`` content).

    Raises:
        DatasetError: missing dataset, no training samples, unreadable image.
        ConfigError: unknown model name, bad settings, a ``last.pt`` trained with other settings.
        WeightsNotFoundError: pretrained weights asked for, not cached and not downloadable.

    Example:
        >>> res = train_classifier("datasets/cam1", "runs/cls", ClassifierConfig(epochs=20, imgsz=96))  # doctest: +SKIP
    """
    from autolabel.core.weights import resolve_device

    cfg = config or ClassifierConfig()
    check_model_name(cfg.model)  # fail fast, before reading the dataset
    if cfg.recipe == "born-again":  # generations of the hinton recipe, each taught by the previous one
        from autolabel.distill.recipes import born_again

        return born_again(lambda run, c: train_classifier(dataset, run, c, human_labels=human_labels), out, cfg)
    device = resolve_device(cfg.device)
    kw = dict(imgsz=cfg.imgsz, seed=cfg.seed, context=cfg.context, min_box=cfg.min_box, zero_rows=cfg.zero_rows)
    train_ds = open_classification_dataset(dataset, "train", augment=cfg.augment, max_per_class=cfg.max_per_class, **kw)
    val_ds = open_classification_dataset(dataset, "val", augment=False, **kw)
    names = train_ds.names
    if len(train_ds) == 0:
        what = "box crops" if train_ds.kind == "crops" else "images"
        detail = f" ({train_ds.stats})" if train_ds.kind == "crops" else ""
        raise DatasetError(f"'{dataset}' has no {what} in its train split to train on{detail}")
    human, human_unused = _human_targets(human_labels, val_ds, names)

    run = Path(out)
    if run.exists() and not run.is_dir():
        raise ConfigError(f"output '{run}' exists and is not a folder")
    run.mkdir(parents=True, exist_ok=True)
    wdir = run / "weights"
    wdir.mkdir(exist_ok=True)
    last_p, best_p, metrics_p = wdir / "last.pt", wdir / "best.pt", wdir / METRICS_FILE
    resume_from = last_p if last_p.is_file() else run / "last.pt"  # a run of the old layout resumes too
    state = load_checkpoint(resume_from) if cfg.resume and resume_from.is_file() else None
    if state is not None:
        old = dict(state.get("config", {}))
        if old.get("kd") is not None and "soft" not in old:  # written before the switch was named soft
            old["soft"] = old["kd"]
        old.setdefault("recipe", "hinton")  # written before recipes
        old.setdefault("relation_weight", 1.0)
        diff = [f"{k}={old.get(k)!r} (now {getattr(cfg, k)!r})" for k in _RESUME_KEYS if old.get(k) != getattr(cfg, k)]
        if state.get("names") != names:
            diff.append(f"classes {state.get('names')} (now {names})")
        if diff:
            raise ConfigError(f"cannot resume '{resume_from}': it was trained with " + ", ".join(diff)
                              + "; use resume=False to start over")

    n_peers = 2 if cfg.recipe == "dml" else 1  # deep mutual learning trains two peers together
    peer_states = [None] * n_peers if state is None else list(state.get("peers") or [state["model"]])
    models: list[nn.Module] = []
    for k in range(n_peers):
        torch.manual_seed(cfg.seed + k)
        model, used = _build_student(cfg, len(names), peer_states[k], device)
        models.append(model)
        if k == 0:
            pretrained_used = state.get("pretrained_used") if state is not None else used

    teacher = None
    if cfg.kd_teacher is not None:
        if not cfg.soft:
            raise ConfigError("kd_teacher needs kd=True / soft=True (it is distilled through the KD term)")
        teacher = load_classifier(cfg.kd_teacher, device=str(device))
    objective = make_objective(cfg, names, classification_loss(cfg), _loss_name(cfg), teacher, train_ds.ontology,
                               device)
    objective.attach(models, len(names))
    drop_last = len(train_ds) > cfg.batch  # a batch of 1 breaks BatchNorm in small feature maps
    steps = len(train_ds) // cfg.batch if drop_last else 1
    total_steps = steps * cfg.epochs
    warm = int(round(cfg.warmup_epochs * steps))

    def lr_factor(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / max(warm, 1)
        t = (step - warm) / max(total_steps - warm, 1)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    opt = torch.optim.AdamW([q for m in models for q in m.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    history: list[dict[str, Any]] = []
    best_key: tuple[float, float] | None = None
    best_epoch, best_val = 0, {}
    start_epoch, seconds_before = 1, 0.0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history = list(state.get("history", []))
        best_epoch, best_val = int(state.get("best_epoch", 0)), dict(state.get("best_val", {}))
        best_key = tuple(state["best_key"]) if state.get("best_key") is not None else None
        start_epoch = int(state["epoch"]) + 1
        seconds_before = float(state.get("seconds", 0.0))

    preprocessing = default_preprocessing(cfg.imgsz, cfg.context if train_ds.kind == "crops" else None)
    base = {"format": CKPT_FORMAT, "version": CKPT_VERSION, "model_name": cfg.model, "num_classes": len(names),
            "names": names, "preprocessing": preprocessing, "dataset": str(dataset), "kind": train_ds.kind,
            "teacher": train_ds.teacher, "config": asdict(cfg), "pretrained_used": pretrained_used,
            "loss": objective.description, "recipe": cfg.recipe,
            **({"class_map": objective.class_map} if objective.class_map else {})}
    t0 = time.perf_counter()
    final_val: dict[str, Any] = history[-1]["val"] if history else {}
    with ProgressBar(total=total_steps, desc=f"training {cfg.model}", enabled=cfg.progress,
                     initial=min((start_epoch - 1) * steps, total_steps), unit="batch") as bar:
        for epoch in range(start_epoch, cfg.epochs + 1):
            te = time.perf_counter()
            train_ds.set_epoch(epoch)
            g = torch.Generator()
            g.manual_seed(cfg.seed * 100_003 + epoch)
            loader = DataLoader(train_ds, batch_size=cfg.batch, shuffle=True, generator=g, drop_last=drop_last,
                                num_workers=cfg.workers)
            for m in models:
                m.train()
            total, count = 0.0, 0
            term_sums: dict[str, np.ndarray] = {}
            for x, y, p in loader:
                x, y, p = x.to(device), y.to(device), p.to(device)
                loss, terms = objective(models, x, y, p)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) / n_peers * len(y)
                count += len(y)
                for name, values in terms.items():
                    term_sums[name] = term_sums.get(name, 0.0) + np.asarray(values) * len(y)
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{total / count:.3f}")
            vals = [evaluate_classifier(m, val_ds, human, batch=max(cfg.batch, 64), device=device,
                                        workers=cfg.workers) for m in models]
            # best: highest val top-1 vs the teacher, then lowest val loss; without val, the latest epoch
            keys = [(v["top1_teacher"], -v["loss_teacher"]) if v["n"] else (float(epoch), 0.0) for v in vals]
            peer = max(range(n_peers), key=lambda k: keys[k])  # dml: the better peer of this epoch
            val, key = vals[peer], keys[peer]
            final_val = val
            rec = {"epoch": epoch, "train_loss": round(total / max(count, 1), 5),
                   "lr": round(opt.param_groups[0]["lr"], 8), "val": val,
                   "seconds": round(time.perf_counter() - te, 2)}
            if term_sums:  # the loss's terms, one mean per student (e.g. relation, mutual)
                rec["terms"] = {k: [round(float(v) / max(count, 1), 6) for v in vs] for k, vs in term_sums.items()}
            if n_peers > 1:
                rec["peer"], rec["peers_val"] = peer, vals
            history.append(rec)
            is_best = best_key is None or key > best_key
            if is_best:
                best_key, best_epoch, best_val = key, epoch, val
            sds = [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models]
            seconds = seconds_before + time.perf_counter() - t0
            common = {**base, "epoch": epoch, "model": sds[peer], "val": val, "seconds": round(seconds, 2),
                      **({"peer": peer} if n_peers > 1 else {})}
            if is_best:
                save_checkpoint(best_p, common)
            save_checkpoint(last_p, {**common, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                           "rng": torch.get_rng_state(), "history": history, "best_epoch": best_epoch,
                           "best_val": best_val, "best_key": list(best_key) if best_key else None,
                           **({"peers": sds} if n_peers > 1 else {})})
            bar.set_postfix(epoch=epoch, loss=f"{rec['train_loss']:.3f}", val_top1=val["top1_teacher"])
            metrics = _metrics(base, cfg, train_ds, val_ds, history, final_val, best_epoch, best_val,
                               human_unused, seconds)
            write_atomic(metrics_p, json.dumps(metrics, indent=2))
    epochs_run = max(0, cfg.epochs - start_epoch + 1)
    if epochs_run == 0:  # nothing left to train: report what last.pt holds
        metrics = _metrics(base, cfg, train_ds, val_ds, history, final_val, best_epoch, best_val, human_unused,
                           seconds_before)
        write_atomic(metrics_p, json.dumps(metrics, indent=2))
    else:
        metrics = json.loads(metrics_p.read_text())
    return ClassifierResult(out=run, best=best_p, last=last_p, metrics_path=metrics_p, metrics=metrics,
                            names=names, start_epoch=start_epoch, epochs_run=epochs_run)


def _metrics(base: dict[str, Any], cfg: ClassifierConfig, train_ds: SampleDataset, val_ds: SampleDataset,
             history: list[dict[str, Any]], final_val: dict[str, Any], best_epoch: int,
             best_val: dict[str, Any], human_unused: int, seconds: float) -> dict[str, Any]:
    return {
        "model": cfg.model, "pretrained": cfg.pretrained, "pretrained_used": base["pretrained_used"],
        "soft": cfg.soft, "kd": cfg.soft, "recipe": cfg.recipe, "loss": base["loss"],
        **({"class_map": base["class_map"]} if "class_map" in base else {}),
        "names": base["names"], "dataset": base["dataset"],
        "kind": base["kind"], "teacher": base["teacher"],
        "train_samples": len(train_ds), "val_samples": len(val_ds),
        "train_per_class": np.bincount(train_ds.labels, minlength=len(train_ds.names)).tolist(),
        "dataset_stats": {"train": train_ds.stats, "val": val_ds.stats},
        "epochs": cfg.epochs, "epoch": history[-1]["epoch"] if history else 0,
        "best_epoch": best_epoch,
        "final": final_val,  # val metrics of last.pt (the latest epoch)
        "best": best_val,  # val metrics of best.pt
        "human_labels_not_in_val": human_unused,
        "preprocessing": base["preprocessing"],
        "seconds": round(seconds, 2),
        "config": asdict(cfg),
        "history": history,
    }


