"""Distillation recipes: which losses a student trains with, chosen by name (``--recipe``, ``train.recipe``).

=====================  ===========================================================  ==========================
recipe                 what a training step minimizes                               needs
=====================  ===========================================================  ==========================
``hinton``             Hinton KD ``α·CE(y) + (1−α)·T²·KL(p_T ‖ p_S)`` (YOLO: the     —
                       soft-target BCE of :mod:`autolabel.students.yolo.train`)
``dml``                two peer students, each Hinton KD + KL to the other peer;     — (classifiers)
                       the better peer on val is kept (Zhang et al. 2018)
``sp``                 Hinton KD + similarity-preserving loss between the teacher    ``kd_teacher`` (classifiers)
                       network's and the student's penultimate features (Tung &
                       Mori 2019)
``rkd``                Hinton KD + relational KD (distance + angle) on the same      ``kd_teacher`` (classifiers)
                       features (Park et al. 2019)
``class-specialized``  Hinton KD from a teacher network with *more* classes, its     ``kd_teacher`` (classifiers)
                       logits restricted to the dataset's (by name / aliases)
``born-again``         generations of the same student, generation k taught by       — (classifiers, YOLO)
                       generation k−1's ``best.pt`` (Furlanello et al. 2018)
=====================  ===========================================================  ==========================

The teacher of ``hinton`` is the dataset's teacher scores unless a teacher *network* is given
(``kd_teacher``: a trained classifier for classifiers, a YOLO checkpoint for YOLO). The step losses of the
classifier recipes are built in :mod:`autolabel.students.classifier.objective`; :func:`born_again` runs the
generations for any family whose settings have ``kd_teacher``. Nothing here imports torch.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["CLASSIFIER_RECIPES", "DETECTOR_RECIPES", "TEACHER_NETWORK_RECIPES", "born_again", "recipe_problem"]

CLASSIFIER_RECIPES: dict[str, str] = {
    "hinton": "Hinton KD from the dataset's teacher scores (or kd_teacher's logits)",
    "dml": "deep mutual learning: two peer students, each also matching the other; the better one is kept",
    "sp": "Hinton KD + similarity-preserving KD on the penultimate features of kd_teacher",
    "rkd": "Hinton KD + relational KD (distance + angle) on the penultimate features of kd_teacher",
    "class-specialized": "Hinton KD from a kd_teacher with more classes, restricted to the dataset's",
    "born-again": "generations of the same student, each taught by the previous one's best.pt",
}
DETECTOR_RECIPES: dict[str, str] = {k: CLASSIFIER_RECIPES[k] for k in ("hinton", "born-again")}
TEACHER_NETWORK_RECIPES = ("sp", "rkd", "class-specialized")
PROGRESS_FILE = "born_again.json"


def recipe_problem(recipe: str, *, kd_teacher: Any, generations: int, detector: bool = False) -> str | None:
    """Why ``recipe`` cannot run with these settings, in one line (None: it can).

    >>> recipe_problem("sp", kd_teacher=None, generations=2)[:42]
    "recipe 'sp' distills a teacher network: gi"
    """
    recipes = DETECTOR_RECIPES if detector else CLASSIFIER_RECIPES
    if recipe not in recipes:
        other = " (a classifier recipe: train-classifier)" if recipe in CLASSIFIER_RECIPES else ""
        return f"recipe must be one of {', '.join(recipes)}, found {recipe!r}{other}"
    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        return f"generations must be >= 1, found {generations!r}"
    if recipe in TEACHER_NETWORK_RECIPES and kd_teacher is None:
        return (f"recipe {recipe!r} distills a teacher network: give kd_teacher (a trained classifier checkpoint "
                f"or run folder, e.g. a mobilenet_v3_large run)")
    return None


def _describe(teacher: Any) -> str | None:
    """A teacher for the record: its path, or ``<DetectionModel>`` for one given in memory."""
    return None if teacher is None else str(teacher) if isinstance(teacher, (str, Path)) else f"<{type(teacher).__name__}>"


C = TypeVar("C")
R = TypeVar("R")


def born_again(train_one: Callable[[Path, C], R], out: str | Path, config: C) -> R:
    """Born-again networks: ``config.generations`` students of the same architecture, one after another.

    Furlanello, Lipton, Tschannen, Itti & Anandkumar, "Born-Again Neural Networks", ICML 2018
    (arXiv:1805.04770): generation 0 is trained as usual (here: from the dataset's teacher, or
    ``config.kd_teacher`` when set); generation ``k >= 1`` is a *fresh* student of the same architecture and
    initialization whose teacher network (``kd_teacher``) is generation ``k − 1``'s ``best.pt``. The paper's
    students often beat their equally sized teacher: the previous generation's dark knowledge on the
    training images (how similar each sample is to the other classes) regularizes the next. It helps when
    the student can fit the labels but generalizes poorly (few or noisy labels, long training); each
    generation costs a full training run.

    Each generation is a run folder ``OUT/gen{k}/`` of the family's layout; the last generation's
    ``weights/best.pt``, ``last.pt`` and ``metrics.json`` are copied to ``OUT/weights/`` (the layout of every
    family), its ``metrics.json`` extended with ``born_again`` (one entry per generation: folder, KD
    teacher, result). ``OUT/born_again.json`` records the finished generations: with ``config.resume``
    those are kept and the run continues at the first unfinished one.

    Args:
        train_one: ``train_one(run_folder, config) -> result`` trains one generation (the family's own
            training function); ``result`` has ``out``, ``best``, ``last``, ``metrics`` and ``metrics_path``.
        out: the run folder.
        config: the family's settings (``generations``, ``kd_teacher``, ``resume``, ``recipe``); each
            generation gets ``recipe="hinton"`` and its ``kd_teacher``.

    Returns:
        The last generation's result, its paths pointing at ``OUT/weights/``.

    Example:
        >>> from autolabel.students.classifier import ClassifierConfig, train_classifier
        >>> res = train_classifier("datasets/cam1", "runs/ban", ClassifierConfig(recipe="born-again", generations=3))  # doctest: +SKIP
        >>> res.metrics["born_again"][2]["kd_teacher"]   # runs/ban/gen1/weights/best.pt   # doctest: +SKIP
    """
    cfg: Any = config
    n = int(cfg.generations)
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    progress = run / PROGRESS_FILE
    done: list[dict[str, Any]] = []
    if cfg.resume and progress.is_file():
        done = [g for g in json.loads(progress.read_text()).get("done", []) if Path(g["best"]).is_file()]
    elif progress.exists():
        progress.unlink()
    teacher = cfg.kd_teacher
    gens: list[dict[str, Any]] = []
    result: Any = None
    for k in range(n):
        if k < n - 1 and k < len(done) and done[k]["generation"] == k:  # finished before: its best.pt teaches k+1
            gens.append(done[k])
            teacher = done[k]["best"]
            continue
        gen_out = run / f"gen{k}"
        resume = bool(cfg.resume) and (gen_out / "weights" / "last.pt").is_file()
        result = train_one(gen_out, replace(cfg, recipe="hinton", kd_teacher=teacher, resume=resume))
        best = Path(result.best) if Path(result.best).is_file() else Path(result.last)
        m = result.metrics
        gens.append({"generation": k, "out": str(gen_out), "kd_teacher": _describe(teacher),
                     "best": str(best.resolve()),
                     "val": m.get("best") if isinstance(m.get("best"), dict) else
                     {key: m[key] for key in ("mAP50-95", "mAP50") if key in m}})
        teacher = str(best.resolve())
        progress.write_text(json.dumps({"generations": n, "done": gens}, indent=2))
    wdir = run / "weights"
    wdir.mkdir(exist_ok=True)
    best_p, last_p, metrics_p = wdir / "best.pt", wdir / "last.pt", wdir / Path(result.metrics_path).name
    shutil.copyfile(teacher, best_p)
    if Path(result.last).is_file():
        shutil.copyfile(result.last, last_p)
    metrics = {**result.metrics, "recipe": "born-again", "born_again": gens}
    metrics_p.write_text(json.dumps(metrics, indent=2))
    return replace(result, out=run, best=best_p, last=last_p, metrics_path=metrics_p, metrics=metrics)
