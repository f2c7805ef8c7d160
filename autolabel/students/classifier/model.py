"""Classification students, the model: torchvision architectures, their input contract, checkpoints.

* **Architectures**: :func:`build_classifier` — any name of ``torchvision.models.list_models(module=torchvision.models)``
  (``mobilenet_v3_small`` by default), from scratch, ImageNet weights or a local state dict, with the last
  layer sized to the classes; :func:`fit_to_state_dict` rebuilds a channel-pruned one from its state dict.
* **Input contract** (stored in every checkpoint as ``preprocessing``): letterbox to a square of ``imgsz``,
  RGB, /255, ImageNet mean/std, NCHW — :func:`preprocess`.
* **Checkpoints**: plain ``weights_only`` dicts (``format`` ``autolabel-classifier``): model name, class
  names, preprocessing, state dict, settings. :func:`load_checkpoint` / :func:`save_checkpoint` read and
  write them; :func:`load_classifier` returns a model ready for inference or export.

Example:
    >>> from autolabel.students.classifier.model import load_classifier
    >>> clf = load_classifier("runs/cls/weights/best.pt"); probs = clf.predict([crop_rgb])  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from autolabel.core.errors import ConfigError, WeightsNotFoundError

__all__ = [
    "CKPT_FORMAT",
    "CKPT_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAD_VALUE",
    "LoadedClassifier",
    "build_classifier",
    "check_model_name",
    "classifier_names",
    "default_preprocessing",
    "fit_to_state_dict",
    "image_tensor",
    "letterbox_square",
    "load_checkpoint",
    "load_classifier",
    "logits_of",
    "preprocess",
    "save_checkpoint",
]

CKPT_FORMAT = "autolabel-classifier"
CKPT_VERSION = 1

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_VALUE = 114  # letterbox gray, as Ultralytics
_FEW_MODELS = ("mobilenet_v3_small", "mobilenet_v3_large", "resnet18", "efficientnet_b0", "regnet_y_400mf",
               "shufflenet_v2_x1_0", "convnext_tiny")


# ----------------------------------------------------------------------------------------------------------
# preprocessing (shared by training, evaluation and load_classifier)
# ----------------------------------------------------------------------------------------------------------


def letterbox_square(image: np.ndarray, size: int, pad: int = PAD_VALUE) -> np.ndarray:
    """Resize an ``HxWx3`` uint8 image to fit ``size``² keeping its aspect ratio, centered on gray padding.

    Letterboxing keeps a tall person or a long car whole, where resize + center crop would cut it.

    Example:
        >>> letterbox_square(np.zeros((10, 40, 3), np.uint8), 32).shape
        (32, 32, 3)
    """
    import cv2

    h, w = image.shape[:2]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        image = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    out = np.full((size, size, 3), pad, np.uint8)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    out[oy : oy + nh, ox : ox + nw] = image
    return out


def default_preprocessing(imgsz: int, context: float | None) -> dict[str, Any]:
    """The ``preprocessing`` a checkpoint stores: letterbox to ``imgsz``, RGB, /255, ImageNet mean/std, NCHW."""
    return {
        "imgsz": int(imgsz),
        "resize": "letterbox",
        "pad_value": PAD_VALUE,
        "color": "RGB",
        "scale": 1 / 255,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "layout": "NCHW",
        "crop_context": context,  # crop margin used for crop datasets; None for whole images
    }


def image_tensor(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """A letterboxed ``SxSx3`` uint8 RGB image → a normalized ``(3, S, S)`` float tensor."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def preprocess(images: Sequence[np.ndarray], preprocessing: Mapping[str, Any]) -> Tensor:
    """``HxWx3`` uint8 RGB images (whole images or crops already cut) → a ``(B, 3, S, S)`` float tensor.

    Example:
        >>> preprocess([np.zeros((20, 10, 3), np.uint8)], default_preprocessing(32, 0.1)).shape
        torch.Size([1, 3, 32, 32])
    """
    size, pad = int(preprocessing["imgsz"]), int(preprocessing.get("pad_value", PAD_VALUE))
    mean, std = preprocessing.get("mean", IMAGENET_MEAN), preprocessing.get("std", IMAGENET_STD)
    if not images:
        return torch.zeros(0, 3, size, size)
    return torch.stack([image_tensor(letterbox_square(im, size, pad), mean, std) for im in images])


# ----------------------------------------------------------------------------------------------------------
# architectures
# ----------------------------------------------------------------------------------------------------------


def classifier_names() -> list[str]:
    """Every torchvision classification model name (``torchvision.models.list_models``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_model_name(name: str) -> None:
    """Raise a one-line :class:`ConfigError` (with close matches) unless ``name`` is a torchvision classifier."""
    valid = classifier_names()
    if name not in valid:
        close = difflib.get_close_matches(str(name), valid, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(
            f"unknown torchvision classifier '{name}'; {hint}valid names include {', '.join(_FEW_MODELS)} "
            f"({len(valid)} in torchvision.models.list_models(module=torchvision.models))"
        )


def _replace_head(model: nn.Module, n_old: int, n_new: int) -> int:
    """Replace every final layer with ``n_old`` outputs (Linear, or SqueezeNet's 1x1 conv) by ``n_new`` outputs."""
    targets = [
        (name, m) for name, m in model.named_modules()
        if (isinstance(m, nn.Linear) and m.out_features == n_old)
        or (isinstance(m, nn.Conv2d) and m.out_channels == n_old and m.kernel_size == (1, 1))
    ]
    for name, m in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(m, nn.Linear):
            new: nn.Module = nn.Linear(m.in_features, n_new, bias=m.bias is not None)
        else:
            new = nn.Conv2d(m.in_channels, n_new, 1, bias=m.bias is not None)
        setattr(parent, attr, new)
    return len(targets)


def build_classifier(name: str, num_classes: int, pretrained: bool | str = False) -> tuple[nn.Module, str | None]:
    """A torchvision classifier with ``num_classes`` outputs, and which weights it started from.

    Args:
        name: a torchvision classification model name (``mobilenet_v3_small``, ``resnet18`` …).
        num_classes: outputs of the new last layer.
        pretrained: ``False`` — random init; ``True`` / ``"DEFAULT"`` — torchvision's default ImageNet
            weights (downloaded into the torch hub cache on a connected machine); a weights name of that
            model (``"IMAGENET1K_V1"``); ``"auto"`` — the default weights when they can be had, random init
            otherwise; or the path of a local state dict (a torchvision ``.pth`` or an autolabel classifier
            checkpoint). With ImageNet weights the last layer is replaced by a new ``num_classes`` one.

    Returns:
        ``(model, weights)`` where ``weights`` names the pretrained weights used, or None (random init).

    Raises:
        ConfigError: unknown model or weights name, or a state dict that does not fit the model.
        WeightsNotFoundError: pretrained weights were asked for but are not cached and cannot be downloaded.

    Example:
        >>> model, used = build_classifier("mobilenet_v3_small", 3)   # doctest: +SKIP
    """
    from torchvision.models import get_model, get_model_weights

    check_model_name(name)
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, found {num_classes}")
    if pretrained is False or pretrained is None or (isinstance(pretrained, str) and pretrained.lower() in ("", "none", "false")):
        return get_model(name, weights=None, num_classes=num_classes), None
    if not isinstance(pretrained, (bool, str)):
        raise ConfigError(f"pretrained must be a bool, a weights name or a file path, found {pretrained!r}")
    if isinstance(pretrained, str) and (Path(pretrained).expanduser().is_file() or os.sep in pretrained
                                        or pretrained.endswith((".pt", ".pth"))):
        return _from_state_dict(name, num_classes, Path(pretrained).expanduser()), str(pretrained)
    auto = isinstance(pretrained, str) and pretrained.lower() == "auto"
    key = "DEFAULT" if pretrained is True or auto else str(pretrained)
    enum = get_model_weights(name)
    try:
        weights = enum[key] if key != "DEFAULT" else enum.DEFAULT
    except (KeyError, AttributeError):
        raise ConfigError(
            f"unknown weights '{key}' for '{name}'; valid: DEFAULT, {', '.join(w.name for w in enum)}"
        ) from None
    try:
        model = get_model(name, weights=weights, progress=False)
    except Exception as e:  # offline: URLError / OSError / HTTPError / hash mismatch … come in many types
        if auto:
            return get_model(name, weights=None, num_classes=num_classes), None
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise WeightsNotFoundError(
            f"torchvision weights {type(weights).__name__}.{weights.name} for '{name}' are not in the torch hub "
            f"cache ({cache}) and could not be downloaded ({type(e).__name__}); download them on a connected "
            f"machine, or use pretrained=False, pretrained='auto' or pretrained='/path/to/weights.pth'"
        ) from None
    n_old = len(weights.meta.get("categories") or []) or 1000
    if n_old != num_classes and _replace_head(model, n_old, num_classes) == 0:
        raise ConfigError(f"cannot find the classification layer of '{name}' to replace")
    return model, f"{type(weights).__name__}.{weights.name}"


def _from_state_dict(name: str, num_classes: int, path: Path) -> nn.Module:
    from torchvision.models import get_model

    if not path.is_file():
        raise WeightsNotFoundError(f"pretrained weights file '{path}' not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"'{path}' is not a loadable state dict ({type(e).__name__})") from None
    if isinstance(sd, dict) and sd.get("format") == CKPT_FORMAT:
        n_old, sd = int(sd["num_classes"]), sd["model"]
    else:
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        n_old = None
    if not isinstance(sd, dict):
        raise ConfigError(f"'{path}' does not hold a state dict")
    model = get_model(name, weights=None, **({"num_classes": n_old} if n_old else {}))
    n_old = n_old or _num_outputs(model)
    fit_to_state_dict(model, sd)  # e.g. a pruned autolabel checkpoint
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ConfigError(f"'{path}' does not fit torchvision '{name}': {str(e).splitlines()[0][:160]}") from None
    if n_old != num_classes and _replace_head(model, n_old, num_classes) == 0:
        raise ConfigError(f"cannot find the classification layer of '{name}' to replace")
    return model


def fit_to_state_dict(model: nn.Module, sd: Mapping[str, Tensor]) -> int:
    """Resize ``model``'s Conv2d / BatchNorm / Linear layers to the shapes in ``sd``; how many were resized.

    A channel-pruned classifier (:func:`autolabel.compress.pruning.prune_classifier`) is saved as a plain
    state dict of its torchvision architecture with fewer channels; this rebuilds that architecture from
    the name, so checkpoints stay ``weights_only`` loadable. Depthwise convolutions keep ``groups`` equal to
    their channel count.
    """
    n = 0
    for name, m in list(model.named_modules()):
        w = sd.get(f"{name}.weight" if name else "weight")
        if w is None or not hasattr(m, "weight") or m.weight is None or tuple(w.shape) == tuple(m.weight.shape):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(m, nn.Conv2d):
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            out_c = int(w.shape[0])
            groups = out_c if depthwise else m.groups
            new: nn.Module = nn.Conv2d(int(w.shape[1]) * groups, out_c, m.kernel_size, m.stride, m.padding,
                                       m.dilation, groups, bias=m.bias is not None, padding_mode=m.padding_mode)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            new = type(m)(int(w.shape[0]), eps=m.eps, momentum=m.momentum, affine=m.affine,
                          track_running_stats=m.track_running_stats)
        elif isinstance(m, nn.Linear):
            new = nn.Linear(int(w.shape[1]), int(w.shape[0]), bias=m.bias is not None)
        else:
            continue
        setattr(parent, attr, new)
        n += 1
    return n


def _num_outputs(model: nn.Module) -> int:
    for m in reversed(list(model.modules())):
        if isinstance(m, nn.Linear):
            return m.out_features
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
            return m.out_channels
    return 1000


def logits_of(out: Any) -> Tensor:
    """Plain logits from a model output (Inception/GoogLeNet return named tuples in train mode)."""
    if isinstance(out, Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    return out[0]


# ----------------------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------------------


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A classifier checkpoint (``weights_only`` load) after checking its format and version.

    Raises:
        ConfigError: the file is missing, unreadable, or not a classifier checkpoint of a supported version.
    """
    from autolabel.core.checkpoints import load_format

    return load_format(path, CKPT_FORMAT, CKPT_VERSION, "classifier", "train_classifier")


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a killed run leaves the previous file whole)."""
    from autolabel.data.jsonl import atomic_open

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


# ----------------------------------------------------------------------------------------------------------
# loading for inference / export
# ----------------------------------------------------------------------------------------------------------


@dataclass
class LoadedClassifier:
    """A trained classifier ready for inference or export.

    Attributes:
        model: the torchvision module, in eval mode.
        names: class names, index = output position.
        preprocessing: how inputs are made (letterbox to ``imgsz``, RGB, /255, ImageNet mean/std, NCHW;
            ``crop_context`` = margin used around boxes for crop-trained models).
        model_name: torchvision model name.
        info: the rest of the checkpoint (epoch, val metrics, config, teacher, loss).
    """

    model: nn.Module
    names: list[str]
    preprocessing: dict[str, Any]
    model_name: str
    info: dict[str, Any]

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(B, C)`` class probabilities of ``HxWx3`` uint8 RGB images (or crops already cut)."""
        device = next(self.model.parameters()).device
        x = preprocess(images, self.preprocessing).to(device)
        return logits_of(self.model(x)).float().softmax(-1).cpu().numpy()


def load_classifier(path: str | Path, device: str = "cpu") -> LoadedClassifier:
    """Load a classifier checkpoint (``best.pt`` / ``last.pt`` of :func:`train_classifier`, a pruned one) or a
    run folder (``weights/best.pt``; the old ``best.pt`` layout too): model (eval), class names, preprocessing.

    Raises:
        ConfigError: the file is missing or is not a classifier checkpoint.

    Example:
        >>> clf = load_classifier("runs/cls/weights/best.pt")         # doctest: +SKIP
        >>> clf.names, clf.preprocessing["imgsz"]                      # doctest: +SKIP
    """
    from torchvision.models import get_model

    from autolabel.core.weights import resolve_device
    from autolabel.students.base import resolve_checkpoint

    path = resolve_checkpoint(path)
    ckpt = load_checkpoint(path)
    name = ckpt["model_name"]
    check_model_name(name)
    model = get_model(name, weights=None, num_classes=int(ckpt["num_classes"]))
    fit_to_state_dict(model, ckpt["model"])  # pruned checkpoints have fewer channels
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    # pretrained GoogLeNet/Inception drop their auxiliary heads; nothing else may differ
    if unexpected or any(not k.startswith(("aux", "AuxLogits")) for k in missing):
        raise ConfigError(f"'{path}': weights do not fit '{name}' (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(resolve_device(device)).eval()
    info = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "rng", "peers")}
    return LoadedClassifier(model=model, names=list(ckpt["names"]), preprocessing=dict(ckpt["preprocessing"]),
                            model_name=name, info=info)
