"""Grounding DINO teacher (Hugging Face ``transformers``): open-vocabulary boxes with per-class soft scores.

Grounding DINO scores every (query box, text token) pair. This teacher

1. **packs** all ontology prompts into as few texts as the text encoder allows — ``"person. man. car."`` —
   instead of one forward per prompt (autodistill's way): the model's 256-token limit holds ~60 typical
   prompts, so the usual ontology needs a single pass (:func:`pack_prompts`);
2. maps **token logits → prompts → classes** (:func:`token_logits_to_class_scores`):
   a prompt's score is ``sigmoid`` of the *max* logit over the tokens of its phrase (``token_reduce="max"``,
   the model's own post-processing takes the max over tokens too; ``"mean"`` averages the token
   probabilities instead, stricter for multi-word prompts), and a class's score is the *max* over its
   prompts (a box is a "person" when it matches any person prompt; a sum or noisy-OR would grow with the
   number of prompts a class happens to have);
3. keeps the queries whose best class score reaches ``min_score`` (at most ``max_detections`` per image),
   boxes converted from normalized ``cxcywh`` to ``xyxy`` pixels of the input image.

When the prompts need several chunks, each chunk is a separate forward over the same images, so its 900
queries are unrelated to another chunk's: the per-chunk results are concatenated (no cross-chunk NMS; the
labeling stage's class-agnostic NMS, when enabled, removes duplicates) and a chunk's boxes score only the
classes whose prompts were in that chunk (0 elsewhere). Prompts are packed class by class, so a class's
prompts share a chunk unless the class alone overflows it.

Example:
    >>> from autolabel.teachers import create_teacher
    >>> teacher = create_teacher("grounding-dino", ontology=onto, min_score=0.2)   # doctest: +SKIP
    >>> dets = teacher.predict([rgb])[0]                                           # doctest: +SKIP
    >>> dets.data["soft_scores"].shape                                              # doctest: +SKIP
    (7, 12)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from autolabel.core.detections import empty_detections, make_detections
from autolabel.core.errors import TeacherError
from autolabel.core.ontology import Ontology
from autolabel.teachers import register_teacher
from autolabel.teachers.hf import HFTeacher, cxcywh_to_xyxy

if TYPE_CHECKING:
    import supervision as sv
    import torch

__all__ = ["GroundingDinoTeacher", "PromptChunk", "pack_prompts", "token_logits_to_class_scores"]

DEFAULT_WEIGHTS = "IDEA-Research/grounding-dino-tiny"


@dataclass(frozen=True)
class PromptChunk:
    """One text fed to the model: token ids and where each prompt's phrase lies in them.

    Attributes:
        input_ids: ``[CLS] p1 . p2 . ... [SEP]`` token ids.
        spans: for each packed prompt, the ``[start, end)`` token positions of its phrase.
        prompt_ids: for each packed prompt, its index in ``ontology.prompts``.
    """

    input_ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    prompt_ids: tuple[int, ...]


def pack_prompts(
    prompt_tokens: Sequence[Sequence[int]],
    prompt_class: Sequence[int],
    max_len: int,
    cls_id: int,
    sep_id: int,
    dot_id: int,
) -> list[PromptChunk]:
    """Pack tokenized prompts into as few ``[CLS] a . b . c . [SEP]`` texts of at most ``max_len`` tokens.

    Prompts are taken class by class; a class's prompts go to the current chunk when they all fit, else
    open a new chunk, so a class is split only when its prompts alone exceed ``max_len``. A single prompt
    longer than a chunk is truncated (its first tokens carry the noun in practice).

    Args:
        prompt_tokens: token ids of each prompt, without special tokens.
        prompt_class: class id of each prompt (prompts of a class are contiguous, as in ``Ontology.prompts``).
        max_len: the text encoder's limit, counting ``[CLS]`` and ``[SEP]``.
        cls_id, sep_id, dot_id: ids of ``[CLS]``, ``[SEP]`` and ``.``.

    Returns:
        The chunks, in prompt order.

    Example:
        >>> [c.prompt_ids for c in pack_prompts([[5], [6, 7], [8]], [0, 0, 1], 7, 101, 102, 1012)]
        [(0, 1), (2,)]
    """
    if len(prompt_tokens) != len(prompt_class):
        raise ValueError("prompt_tokens and prompt_class must have the same length")
    if max_len < 4:
        raise ValueError(f"max_len must allow [CLS] token . [SEP] (>= 4), found {max_len}")
    room = max_len - 2  # [CLS] ... [SEP]
    chunks: list[list[tuple[int, list[int]]]] = [[]]
    used = 0

    def add(pid: int, toks: list[int]) -> None:
        nonlocal used
        if used + len(toks) + 1 > room and chunks[-1]:
            chunks.append([])
            used = 0
        toks = toks[: room - 1]  # truncate a prompt that cannot fit even alone
        chunks[-1].append((pid, toks))
        used += len(toks) + 1

    # group prompt indices by class, keeping order
    groups: dict[int, list[int]] = {}
    for pid, cid in enumerate(prompt_class):
        groups.setdefault(int(cid), []).append(pid)
    for pids in groups.values():
        need = sum(len(prompt_tokens[p]) + 1 for p in pids)
        if used + need > room and chunks[-1] and need <= room:
            chunks.append([])  # keep the class's prompts together in a fresh chunk
            used = 0
        for p in pids:
            toks = list(prompt_tokens[p]) or [dot_id]  # an empty phrase would have no token to score
            add(p, toks)

    out: list[PromptChunk] = []
    for chunk in chunks:
        if not chunk:
            continue
        ids = [cls_id]
        spans: list[tuple[int, int]] = []
        for _, toks in chunk:
            spans.append((len(ids), len(ids) + len(toks)))
            ids.extend(toks)
            ids.append(dot_id)
        ids.append(sep_id)
        out.append(PromptChunk(tuple(ids), tuple(spans), tuple(p for p, _ in chunk)))
    return out


def token_logits_to_class_scores(
    logits: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    prompt_class: Sequence[int],
    num_classes: int,
    reduce: str = "max",
) -> torch.Tensor:
    """Turn per-token logits into per-class scores in ``[0, 1]``.

    Args:
        logits: ``(..., T)`` token logits (``-inf`` for masked tokens).
        spans: ``[start, end)`` token positions of each prompt's phrase.
        prompt_class: class id of each prompt in ``spans``.
        num_classes: C; classes with no prompt in ``spans`` score 0.
        reduce: ``"max"`` — prompt score = max over its tokens of ``sigmoid(logit)``; ``"mean"`` — mean
            of its tokens' probabilities. A class's score is the max over its prompts.

    Returns:
        ``(..., C)`` float32 scores.

    Example:
        >>> import torch
        >>> t = torch.tensor([[0.0, 2.0, -2.0, 0.0, float("-inf")]])
        >>> token_logits_to_class_scores(t, [(1, 3), (3, 4)], [0, 0], 2).round(decimals=3)
        tensor([[0.8810, 0.0000]])
    """
    import torch

    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', found {reduce!r}")
    if len(spans) != len(prompt_class):
        raise ValueError("spans and prompt_class must have the same length")
    probs = logits.float().sigmoid()  # sigmoid(-inf) = 0 for padding
    out = probs.new_zeros((*probs.shape[:-1], num_classes))
    if not spans:
        return out
    # P is small (tens of prompts): a loop over spans avoids a (..., P, T) temporary of ~100s of MB
    per_prompt = []
    for start, end in spans:
        seg = probs[..., start:end]
        per_prompt.append(seg.amax(-1) if reduce == "max" else seg.mean(-1))
    prompt_scores = torch.stack(per_prompt, -1)  # (..., P)
    pc = torch.as_tensor(list(prompt_class), dtype=torch.long, device=probs.device)
    for c in pc.unique().tolist():
        out[..., c] = prompt_scores[..., pc == c].amax(-1)
    return out


@register_teacher("Grounding DINO open-vocabulary detector (transformers); all prompts packed in one pass")
class GroundingDinoTeacher(HFTeacher):
    """Grounding DINO zero-shot detector with per-class soft scores.

    Args:
        ontology: the classes; every prompt of every class is scored.
        weights, device, min_score, batch_size, model, processor: see :class:`~autolabel.teachers.hf.HFTeacher`
            (fp16 on CUDA; ``min_score`` is the lowest best-class score of a kept box).
        token_reduce: ``"max"`` or ``"mean"`` over a prompt's tokens (see module docs).
        max_detections: most boxes kept per image (highest scores first).

    Example:
        >>> teacher = GroundingDinoTeacher(onto, device="cpu")     # doctest: +SKIP
        >>> teacher.chunks[0].prompt_ids                            # doctest: +SKIP
        (0, 1, 2)
    """

    name = "grounding-dino"
    default_weights = DEFAULT_WEIGHTS
    model_class = "GroundingDinoForObjectDetection"

    def __init__(self, ontology: Ontology, *args: Any, token_reduce: str = "max", max_detections: int = 300,
                 **kwargs: Any) -> None:
        if token_reduce not in ("max", "mean"):
            raise TeacherError(f"grounding-dino: token_reduce must be 'max' or 'mean', found {token_reduce!r}")
        self.token_reduce = token_reduce
        self.max_detections = int(max_detections)
        super().__init__(ontology, *args, **kwargs)
        tokenizer = self.tokenizer
        max_len = int(getattr(self.model.config, "max_text_len", 256))
        # the tokenizer may allow fewer tokens than the model (BERT: 512 > 256); use the smaller
        tok_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 4 <= tok_max < max_len:
            max_len = tok_max
        self.max_text_len = max_len
        cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        dot_id = tokenizer.convert_tokens_to_ids(".")
        if cls_id is None or sep_id is None or dot_id is None or dot_id == tokenizer.unk_token_id:
            raise TeacherError("grounding-dino: the tokenizer needs [CLS], [SEP] and '.' tokens (a BERT tokenizer)")
        # '.' separates phrases inside the model's text attention mask: a dot inside a prompt would split it
        prompts = [" ".join(p.replace(".", " ").lower().split()) for p in self.ontology.prompts]
        prompt_tokens = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        self.chunks = pack_prompts(prompt_tokens, self.ontology.prompt_class, max_len, cls_id, sep_id, dot_id)

    # -- inference ----------------------------------------------------------------------------
    def _predict_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        import torch

        C = self.num_classes
        pixels = self.image_processor(images=images, return_tensors="pt")
        pixel_values = pixels["pixel_values"].to(self.device, dtype=self.dtype)
        pixel_mask = pixels.get("pixel_mask")
        if pixel_mask is None:
            pixel_mask = torch.ones(pixel_values.shape[0], *pixel_values.shape[2:], dtype=torch.long)
        pixel_mask = pixel_mask.to(self.device)
        B = len(images)
        prompt_class = self.ontology.prompt_class
        per_chunk_scores: list[torch.Tensor] = []
        per_chunk_boxes: list[torch.Tensor] = []
        with torch.inference_mode():
            for chunk in self.chunks:
                ids = torch.tensor([chunk.input_ids], device=self.device).expand(B, -1)
                outputs = self.model(
                    pixel_values=pixel_values,
                    pixel_mask=pixel_mask,
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    token_type_ids=torch.zeros_like(ids),
                )
                logits = outputs.logits[..., : len(chunk.input_ids)]  # (B, Q, T); the rest is -inf padding
                scores = token_logits_to_class_scores(
                    logits, chunk.spans, [prompt_class[p] for p in chunk.prompt_ids], C, self.token_reduce
                )
                per_chunk_scores.append(scores)
                per_chunk_boxes.append(outputs.pred_boxes.float())
        scores_all = torch.cat(per_chunk_scores, 1).cpu().numpy()  # (B, K*Q, C)
        boxes_all = torch.cat(per_chunk_boxes, 1).cpu().numpy()  # (B, K*Q, 4) cxcywh in [0, 1]
        results = []
        for b, img in enumerate(images):
            h, w = img.shape[:2]
            soft = scores_all[b]
            best = soft.max(1) if C else np.zeros(len(soft), np.float32)
            keep = np.flatnonzero(best >= self.min_score)
            keep = keep[np.argsort(-best[keep], kind="stable")][: self.max_detections]
            if len(keep) == 0:
                results.append(empty_detections(C))
                continue
            xyxy = cxcywh_to_xyxy(boxes_all[b, keep], w, h)
            results.append(make_detections(xyxy, np.clip(soft[keep], 0.0, 1.0)))
        return results
