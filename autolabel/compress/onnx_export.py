"""The FP32 model files of a bundle, one function per kind of student.

* **YOLO**: Ultralytics' own exporter (opset ≥ 17, fixed or dynamic batch, no ``onnxslim`` so nothing is
  auto-installed), run on a copy of the checkpoint so nothing is written beside it. Its ``openvino`` /
  ``tflite`` targets go through the same exporter (:func:`write_ultralytics_format`).
* **Classifier**: ``torch.onnx`` with a dynamic batch, ``(B, C)`` logits.
* **SSDLite**: ``torch.onnx`` of the model wrapped to the runtime's contract (:func:`ssdlite_contract`).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ssdlite_contract", "write_classifier_onnx", "write_ssdlite_onnx", "write_ultralytics_format",
           "write_yolo_onnx"]


@contextmanager
def _detector_copy(pt: Path) -> Iterator[Any]:
    """The YOLO of a copy of ``pt`` in a temporary folder: Ultralytics writes its exports beside the ``.pt``."""
    from autolabel.compress.yolo_model import load_detector

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model.pt"
        shutil.copy2(pt, local)
        yield load_detector(local)


def write_yolo_onnx(pt: Path, dest: Path, imgsz: int, batch: int = 1, dynamic: bool = False, opset: int = 17) -> Path:
    """FP32 ONNX of a YOLO checkpoint through Ultralytics' exporter, written to ``dest``."""
    with _detector_copy(pt) as y:
        import logging

        from ultralytics.utils import LOGGER

        level = LOGGER.level
        LOGGER.setLevel(logging.WARNING)  # Ultralytics' exporter prints a banner even with verbose=False
        try:
            f = y.export(format="onnx", imgsz=int(imgsz), batch=int(batch), dynamic=bool(dynamic), opset=int(opset),
                         simplify=False, device="cpu", verbose=False)
        finally:
            LOGGER.setLevel(level)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), dest)
    return dest


def write_ultralytics_format(pt: Path, fmt: str, out: Path, imgsz: int, int8_data: Path | None = None) -> Path:
    """A YOLO checkpoint in Ultralytics' format ``fmt`` (``openvino``, ``tflite``), moved into ``out`` as
    ``model_FMT[_int8][.suffix]``; INT8 (calibrated by Ultralytics) when ``int8_data`` (a data.yaml) is given."""
    kw: dict[str, Any] = {"int8": int8_data is not None, "data": str(int8_data) if int8_data is not None else None}
    with _detector_copy(pt) as y:
        got = Path(y.export(format=fmt, imgsz=imgsz, device="cpu", verbose=False,
                            **{k: v for k, v in kw.items() if v is not None}))
        dest = out / f"model_{fmt}{'_int8' if kw['int8'] else ''}{'' if got.is_dir() else got.suffix}"
        shutil.move(str(got), dest)
    return dest


def write_classifier_onnx(net: Any, dest: Path, size: int, opset: int = 17) -> Path:
    """FP32 ONNX of a classifier network (``images`` -> ``logits``, dynamic batch) at ``size``²."""
    import torch

    torch.onnx.export(net, (torch.zeros(1, 3, size, size),), str(dest), input_names=["images"],
                      output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=int(opset), dynamo=False)
    return dest


def ssdlite_contract(ssd: Any) -> tuple[Any, int]:
    """``(module, input size)``: an SSDLite student wrapped to output the runtime's contract, ``(B, 4 + C, A)``
    (``cx cy w h`` in input pixels, then the per-class softmax scores without the background column), with
    normalization and the anchor decode inside; its backbone and head are under ``/core/`` in the graph."""
    import torch
    from torch import nn

    from autolabel.students.ssdlite.train import SSDLiteExport

    class _Contract(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.core = SSDLiteExport(ssd)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            boxes, scores = self.core(x)
            wh = boxes[..., 2:] - boxes[..., :2]
            return torch.cat([boxes[..., :2] + wh / 2, wh, scores[..., 1:]], -1).permute(0, 2, 1)

    net = _Contract().eval()
    return net, int(net.core.size[0])


def write_ssdlite_onnx(net: Any, size: int, dest: Path, opset: int = 17) -> Path:
    """FP32 ONNX (batch 1, ``images`` -> ``output0``) of an :func:`ssdlite_contract` module."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, size, size),), str(dest), input_names=["images"],
                          output_names=["output0"], opset_version=int(opset), dynamo=False)
    return dest
