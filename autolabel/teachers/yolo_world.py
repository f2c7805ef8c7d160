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

Weights: a local ``.pt`` (looked for with :func:`~autolabel.core.weights.resolve_local_weights`), or an
Ultralytics name that Ultralytics downloads when online. ``set_classes`` also needs CLIP ViT-B/32 as text
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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.core.errors import TeacherError, WeightsNotFoundError
from autolabel.core.ontology import Ontology
from autolabel.core.weights import looked_in, resolve_device, resolve_local_weights
from autolabel.teachers import TEACHERS
from autolabel.teachers.base import Teacher

if TYPE_CHECKING:
    import supervision as sv

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


@TEACHERS.register(
    "yolo-world",
    help="YOLO-World open-vocabulary detector (Ultralytics); every prompt is a class",
    default_weights="yolov8s-worldv2.pt",
)
class YoloWorldTeacher(Teacher):
    """Open-vocabulary YOLO-World teacher with per-class soft scores.

    Args:
        ontology: the classes; all their prompts become YOLO-World classes.
        weights: a local ``*-world*.pt`` file or an Ultralytics name (default ``yolov8s-worldv2.pt``); a model
            ``.yaml`` builds the architecture with random weights (tests only).
        device, min_score, batch_size: see :class:`~autolabel.teachers.base.Teacher`.
        imgsz: square letterbox size of the forward pass.
        iou: IoU of the class-aware NMS.
        max_det: most boxes kept per image.

    Example:
        >>> t = YoloWorldTeacher(onto, weights="yolov8s-worldv2.pt", device="cpu")  # doctest: +SKIP
    """

    name = "yolo-world"
    default_weights = "yolov8s-worldv2.pt"

    def __init__(
        self,
        ontology: Ontology,
        weights: str | None = None,
        device: str = "auto",
        min_score: float | None = None,
        batch_size: int = 8,
        imgsz: int = 640,
        iou: float = 0.7,
        max_det: int = 300,
    ) -> None:
        super().__init__(ontology, weights=weights, device=device, min_score=min_score, batch_size=batch_size)
        self.imgsz = int(imgsz)
        self.iou = float(iou)
        self.max_det = int(max_det)
        self.device = resolve_device(device)
        self._model = self._load()

    # -- loading ------------------------------------------------------------------------------
    def _load(self) -> Any:
        """Load the checkpoint, set the prompts as classes and return the torch ``WorldModel`` in eval mode."""
        import torch

        from autolabel.core.checkpoints import import_ultralytics

        import_ultralytics()  # restricted unpickling of the checkpoint, no run-time installs
        from ultralytics import YOLOWorld
        from ultralytics.nn.tasks import WorldModel

        spec = str(self.weights)
        local = resolve_local_weights(spec)
        if local is not None:
            source = str(local)
        elif spec.endswith((".yaml", ".yml")):  # architecture only (random weights): for tests
            source = spec
        else:
            from ultralytics.utils import ONLINE

            hint = (
                f"download {Path(spec).name} on a connected machine and pass "
                f"--teacher yolo-world:/path/{Path(spec).name}"
            )
            if len(Path(spec).parts) > 1 or not ONLINE:  # a path that is not there, or nowhere to get it from
                raise WeightsNotFoundError(
                    f"teacher 'yolo-world': weights '{spec}' not found (looked in {looked_in(spec)}); {hint}"
                )
            source = spec  # an Ultralytics name: let Ultralytics download it into its weights folder
        try:
            model = YOLOWorld(source)
        except Exception as e:  # download failures, corrupt files
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
        self._stride = int(max(net.stride.max().item(), 32)) if hasattr(net, "stride") else 32
        # Column j of the raw scores is prompt j; this maps it to its ontology class.
        self._prompt_class = np.asarray(self.ontology.prompt_class)
        return net

    # -- inference ----------------------------------------------------------------------------
    def predict(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        from autolabel.teachers.yolo import predict_yolo

        out: list[sv.Detections] = []
        for start in range(0, len(images), self.batch_size):
            out += predict_yolo(
                self._model, images[start : start + self.batch_size], self.imgsz, self.device, False,
                self._prompt_class, self.num_classes, self.min_score, self.iou, self.max_det,
            )
        return out


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
