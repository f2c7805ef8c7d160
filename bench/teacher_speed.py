"""Seconds per image of the transformers teachers on this machine, at full model size, without downloads.

Every model is built on its real architecture and size from its transformers config, with random weights
(``torch.manual_seed``), so speed is that of the released checkpoints while nothing is downloaded:

* Grounding DINO-T — ``GroundingDinoConfig()`` (Swin-T backbone: embed_dim 96, depths [2, 2, 6, 2];
  BERT-base text encoder), images resized to shortest edge 800 / longest 1333;
* OWLv2-B/16 — ``Owlv2Config()`` with ``vision_config.image_size=960`` (the released
  ``owlv2-base-patch16-ensemble``; the config class defaults to 768), images padded and resized to 960;
* OWL-ViT-B/32 — ``OwlViTConfig()``, 768;
* CLIP-B/32 — ``CLIPConfig()``, 224.

Tokenizers use made-up vocabularies of the real sizes (BERT 30522, CLIP 49408) holding the prompt words.
Prompts come from ``ontologies/security.yaml`` when present, else the 12 built-in security classes. Images
are 640x480 noise. Each (model, batch) is timed as the median of ``--repeats`` calls of ``teacher.predict``
(preprocessing, forward and postprocessing) after one warm-up call; random weights make box counts (and
so NMS time) unlike a trained model's, which a high ``--min-score`` keeps small.

Example:
    .venv/bin/python bench/teacher_speed.py --repeats 3
    .venv/bin/python bench/teacher_speed.py --models owlvit clip --batches 1 8 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autolabel.core.ontology import Ontology, load_ontology  # noqa: E402
from autolabel.teachers.base import Teacher  # noqa: E402

SECURITY_CLASSES = [
    "person", "car", "truck", "bus", "bicycle", "motorcycle",
    "dog", "cat", "backpack", "handbag", "suitcase", "package",
]  # fmt: skip
MODELS = ("grounding-dino", "owlv2", "owlvit", "clip")


def security_ontology() -> Ontology:
    """``ontologies/security.yaml`` if it exists, else the 12 classes with their names as prompts."""
    path = ROOT / "ontologies" / "security.yaml"
    return load_ontology(path) if path.is_file() else Ontology.from_names(SECURITY_CLASSES)


def _words(onto: Ontology) -> list[str]:
    words: dict[str, None] = {}
    for p in onto.prompts:
        for w in p.lower().replace(".", " ").split():
            words[w] = None
    return list(words)


def bert_tokenizer(words: list[str], folder: Path) -> Any:
    """A BertTokenizer with 30522 entries: BERT's special ids (Grounding DINO relies on them) + our words."""
    from transformers import BertTokenizer

    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 1012 - len(vocab))] + ["."]
    vocab += [f"[unused{i}]" for i in range(2000, 2000 + 1029 - len(vocab))] + ["?"]
    vocab += [w for w in words if w not in vocab]
    vocab += [f"tok{i}" for i in range(30522 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizer(str(folder / "vocab.txt"))


def clip_tokenizer(words: list[str], folder: Path) -> Any:
    """A CLIPTokenizer with 49408 entries (start 49406, end 49407) whose merges spell our words."""
    from transformers import CLIPTokenizer

    templates = "a photo of the blurry cropped low resolution".split()
    vocab: dict[str, int] = {}
    for c in "abcdefghijklmnopqrstuvwxyz.!-'0123456789":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges: dict[str, None] = {}
    for w in [*words, *templates, "."]:
        parts = [*w[:-1], w[-1] + "</w>"]
        while len(parts) > 1:
            merges[f"{parts[0]} {parts[1]}"] = None
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    for i in range(49406 - len(vocab)):
        vocab[f"tok{i}</w>"] = len(vocab)
    vocab["<|startoftext|>"] = 49406
    vocab["<|endoftext|>"] = 49407
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def build(name: str, onto: Ontology, folder: Path, device: str, min_score: float) -> Teacher:
    """Full-size model with random weights wrapped in its teacher."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    words = _words(onto)
    if name == "grounding-dino":
        from autolabel.teachers.grounding_dino import GroundingDinoTeacher

        cfg = tf.GroundingDinoConfig()
        bb = cfg.backbone_config
        # the defaults are Grounding DINO-T's Swin-T; fail loudly if a transformers release changes that
        assert (bb.model_type, bb.embed_dim, list(bb.depths)) == ("swin", 96, [2, 2, 6, 2]), bb
        tok = bert_tokenizer(words, folder)
        cfg.text_config.vocab_size = len(tok)
        proc = tf.GroundingDinoProcessor(image_processor=tf.GroundingDinoImageProcessor(), tokenizer=tok)
        model = tf.GroundingDinoForObjectDetection(cfg)
        return GroundingDinoTeacher.from_model(model, proc, onto, device=device, min_score=min_score)
    tok = clip_tokenizer(words, folder)
    if name == "owlv2":
        from autolabel.teachers.owl import OwlV2Teacher

        cfg = tf.Owlv2Config(vision_config={"image_size": 960})  # owlv2-base-patch16-ensemble: 960 px
        proc = tf.Owlv2Processor(image_processor=tf.Owlv2ImageProcessor(), tokenizer=tok)
        model = tf.Owlv2ForObjectDetection(cfg)
        return OwlV2Teacher.from_model(model, proc, onto, device=device, min_score=min_score)
    if name == "owlvit":
        from autolabel.teachers.owl import OwlViTTeacher

        proc = tf.OwlViTProcessor(image_processor=tf.OwlViTImageProcessor(), tokenizer=tok)
        model = tf.OwlViTForObjectDetection(tf.OwlViTConfig())
        return OwlViTTeacher.from_model(model, proc, onto, device=device, min_score=min_score)
    if name == "clip":
        from autolabel.teachers.clip import ClipTeacher

        proc = tf.CLIPProcessor(image_processor=tf.CLIPImageProcessor(), tokenizer=tok)
        model = tf.CLIPModel(tf.CLIPConfig())
        return ClipTeacher.from_model(model, proc, onto, device=device, min_score=min_score)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def _input_size(teacher: Any, image: np.ndarray) -> str:
    px = teacher.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    return f"{px.shape[-1]}x{px.shape[-2]}"


def _timed(teacher: Teacher, batch: list[np.ndarray], device: str) -> float:
    """Wall seconds of one ``teacher.predict(batch)`` (synchronized on CUDA)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    teacher.predict(batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4], help="batch sizes to time")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per (model, batch); the median is shown")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (fp16 on CUDA)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--min-score", type=float, default=0.3, help="teachers' candidate floor")
    ap.add_argument("--size", default="640x480", help="image WIDTHxHEIGHT")
    args = ap.parse_args(argv)

    import torch

    from autolabel.core.weights import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    onto = security_ontology()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(max(args.batches))]
    print(
        f"device: {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}; ontology "
        f"'{onto.name}': {len(onto)} classes, {len(onto.prompts)} prompts; images {w}x{h}; "
        f"median of {args.repeats} after 1 warm-up\n",
        flush=True,
    )
    rows = []
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            teacher = build(name, onto, Path(tmp), device, args.min_score)
        params = sum(p.numel() for p in teacher.model.parameters()) / 1e6
        size = _input_size(teacher, images[0])
        for bs in args.batches:
            teacher.batch_size = bs
            batch = images[:bs]
            _timed(teacher, batch, device)  # warm-up: allocator, kernels, cached text embeddings
            times = [_timed(teacher, batch, device) / bs for _ in range(args.repeats)]
            rows.append((name, params, size, bs, statistics.median(times)))
            print(f"  {name} batch {bs}: {statistics.median(times):.3f} s/image", file=sys.stderr, flush=True)
        del teacher  # free its memory before building the next model
    print("| model | params (M) | input size | batch | s/image (median) |")
    print("|---|---:|---|---:|---:|")
    for name, params, size, bs, sec in rows:
        print(f"| {name} | {params:.1f} | {size} | {bs} | {sec:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
