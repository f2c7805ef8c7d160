"""YOLO-World (Cheng et al., CVPR 2024) through Ultralytics: a real-time open-vocabulary detector.

Every ontology *prompt* becomes one YOLO-World class (``model.set_classes(ontology.prompts)``), so the
detector scores each box against each prompt with its own sigmoid. The soft score of an ontology class is the
**maximum over its prompts** (the best-matching description wins: "pedestrian" and "security guard" are
alternative names for "person", not independent evidence, so averaging would dilute a match and summing could
exceed 1). Prompts are merged *before* NMS, so two prompts of one class never keep two copies of one object.

Ultralytics' predictor only returns the argmax class of each box. To keep the full per-class score vector,
:meth:`YoloWorldTeacher.predict` letterboxes the batch itself, runs the torch model's forward to get the raw
``(B, 4 + prompts, anchors)`` output (xywh in letterboxed pixels, sigmoid scores), keeps anchors whose best
class score reaches ``min_score``, applies class-aware NMS (``torchvision.ops.batched_nms``) and gathers the
score rows of the kept anchors.

Weights: a local ``.pt`` or an Ultralytics name that Ultralytics downloads when online (both through
:func:`~autolabel.core.weights.ultralytics_weights`). ``set_classes`` also needs CLIP ViT-B/32 as text
encoder (the ``clip`` package and ``ViT-B-32.pt`` in Ultralytics' weights folder); offline, a missing encoder
raises one :class:`~autolabel.core.errors.WeightsNotFoundError` line saying what to provide. Nothing is ever
pip-installed: Ultralytics' auto-install is switched off while the encoder loads.

Example:
    >>> from autolabel.teachers import create_teacher
    >>> t = create_teacher("yolo-world:/models/yolov8s-worldv2.pt", ontology=onto)  # doctest: +SKIP
    >>> t.predict([rgb])[0].data["soft_scores"].shape                              # doctest: +SKIP
    (7, 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from autolabel.core.errors import TeacherError, WeightsNotFoundError
from autolabel.core.weights import resolve_local_weights, ultralytics_hint, ultralytics_weights
from autolabel.teachers import register_teacher
from autolabel.teachers.yolo import UltralyticsTeacher

__all__ = ["YoloWorldTeacher"]

CLIP_VARIANT = "ViT-B/32"
"""The text encoder Ultralytics' ``WorldModel.set_classes`` builds (``build_text_model("clip:ViT-B/32")``)."""
CLIP_FILE = "ViT-B-32.pt"
"""The file ``clip.load("ViT-B/32", download_root=WEIGHTS_DIR / "clip")`` reads or downloads."""


@contextmanager
def _no_autoinstall() -> Iterator[None]:
    """Switch off Ultralytics' pip auto-install (importing its text model pip-installs ``clip`` otherwise)."""
    from ultralytics.utils import checks

    old = checks.AUTOINSTALL
    checks.AUTOINSTALL = False
    try:
        yield
    finally:
        checks.AUTOINSTALL = old


@register_teacher("YOLO-World open-vocabulary detector (Ultralytics); every prompt is a class")
class YoloWorldTeacher(UltralyticsTeacher):
    """Open-vocabulary YOLO-World teacher with per-class soft scores.

    Args:
        ontology: the classes; all their prompts become YOLO-World classes.
        weights: a local ``*-world*.pt`` file or an Ultralytics name (default ``yolov8s-worldv2.pt``); a model
            ``.yaml`` builds the architecture with random weights (tests only).
        device, min_score, batch_size, imgsz, iou, max_det: see
            :class:`~autolabel.teachers.yolo.UltralyticsTeacher`; the network runs in fp32.

    Example:
        >>> t = YoloWorldTeacher(onto, weights="yolov8s-worldv2.pt", device="cpu")  # doctest: +SKIP
    """

    name = "yolo-world"
    default_weights = "yolov8s-worldv2.pt"

    def _load(self) -> tuple[Any, np.ndarray]:
        """Load the checkpoint, set the prompts as classes; the torch ``WorldModel`` in eval mode and the
        ontology class of each prompt column."""
        import torch

        from autolabel.core.checkpoints import import_ultralytics

        import_ultralytics()  # restricted unpickling of the checkpoint, no run-time installs
        from ultralytics import YOLOWorld
        from ultralytics.nn.tasks import WorldModel

        spec = str(self.weights)
        if spec.endswith((".yaml", ".yml")):  # architecture only (random weights): for tests
            source = str(resolve_local_weights(spec) or spec)
        else:  # a local file, or an Ultralytics name downloaded when online
            hint = ultralytics_hint(spec, "--teacher yolo-world:")
            source = str(ultralytics_weights(spec, "teacher 'yolo-world':", hint))
        try:
            model = YOLOWorld(source)
        except Exception as e:  # corrupt files
            raise WeightsNotFoundError(
                f"teacher 'yolo-world': could not load '{spec}' ({_first_line(e)}); "
                f"pass a local file with --teacher yolo-world:/path/yolov8s-worldv2.pt"
            ) from None
        if not isinstance(model.model, WorldModel):
            raise TeacherError(
                f"teacher 'yolo-world': '{spec}' is a {type(model.model).__name__}, not a YOLO-World model; "
                "use a *-world*.pt checkpoint (or --teacher yolo for closed-set YOLO)"
            )

        prompts = self.ontology.prompts
        try:
            with _no_autoinstall():
                model.set_classes(prompts)
        except Exception as e:  # no `clip` package, or ViT-B-32.pt cannot be downloaded
            raise WeightsNotFoundError(_clip_error(e)) from None

        net = model.model
        net.to(self.device).eval()
        net.fuse(verbose=False)  # fold BatchNorm into convs, as Ultralytics' own predictor does
        for p in net.parameters():
            p.requires_grad_(False)
        # txt_feats is a plain attribute, not a buffer: .to() does not move it, so move it once here.
        net.txt_feats = net.txt_feats.to(self.device, torch.float32)
        # Column j of the raw scores is prompt j; this maps it to its ontology class.
        return net, np.asarray(self.ontology.prompt_class)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


def _clip_error(e: BaseException) -> str:
    """One line saying which text-encoder file Ultralytics wanted and how to provide it."""
    from ultralytics.utils import WEIGHTS_DIR

    target = Path(WEIGHTS_DIR) / "clip" / CLIP_FILE
    head = f"teacher 'yolo-world': set_classes() needs the CLIP {CLIP_VARIANT} text encoder"
    if isinstance(e, ImportError):
        return (
            f"{head}, but the 'clip' package is not installed (autolabel never pip-installs at run time); "
            "on a connected machine run `pip install git+https://github.com/ultralytics/CLIP.git` "
            f"and put {CLIP_FILE} in {target.parent}"
        )
    return (
        f"{head}; Ultralytics could not load or download {target} ({_first_line(e)}); fetch {CLIP_FILE} on a "
        f"connected machine (clip.load('{CLIP_VARIANT}') downloads it) and copy it to {target}"
    )
