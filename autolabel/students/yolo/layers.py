"""autolabel's own YOLO layers, which pruned students' checkpoints hold (and the weights-only loader allows).

:class:`C2fSplit` is Ultralytics' ``C2f`` / ``C3k2`` block with its first convolution split in two, so that
channel pruning can remove each half's channels on its own (:mod:`autolabel.compress.prune_yolo`).

Checkpoints pruned before this module existed pickled the class as ``autolabel.compress.pruning.C2fSplit``;
:data:`LEGACY_NAMES` lists those names, which still resolve to this class (see
:mod:`autolabel.core.checkpoints`).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import torch
from torch import nn

__all__ = ["LEGACY_NAMES", "C2fSplit"]


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


#: Where older checkpoints say the layers live (``module.qualname`` as pickled) -> the class.
LEGACY_NAMES: dict[str, type[nn.Module]] = {"autolabel.compress.pruning.C2fSplit": C2fSplit}


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
