"""Tests of the transformers teachers (Grounding DINO, OWLv2, OWL-ViT, CLIP) without network or weights.

Every model is built on its real architecture from a tiny random config, with tokenizers written here, so
the whole path (processor → model → logits → prompts → classes → boxes) runs as with real weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import autolabel.teachers as teachers_pkg  # noqa: E402
from autolabel.core.detections import SOFT_SCORES, validate_soft_scores  # noqa: E402
from autolabel.core.errors import WeightsNotFoundError  # noqa: E402
from autolabel.core.ontology import Ontology  # noqa: E402
from autolabel.teachers import create_teacher  # noqa: E402
from autolabel.teachers.clip import ClipTeacher, crop_boxes  # noqa: E402
from autolabel.teachers.grounding_dino import (  # noqa: E402
    GroundingDinoTeacher,
    pack_prompts,
    token_logits_to_class_scores,
)
from autolabel.teachers.owl import OwlV2Teacher, OwlViTTeacher, prompt_scores_to_class_scores  # noqa: E402

WORDS = ["person", "man", "car", "truck", "a", "photo", "of", "the", "blurry", "cropped", "low", "resolution"]
ONTO = Ontology.from_dict(
    {"classes": [{"name": "person", "prompts": ["person", "man"]}, {"name": "car", "prompts": ["car", "truck"]}]}
)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        rng.integers(0, 256, (300, 200, 3), dtype=np.uint8),
    ]


def _assert_contract(dets_list, imgs, num_classes: int, min_score: float = 0.0) -> None:
    assert len(dets_list) == len(imgs)
    for d, img in zip(dets_list, imgs, strict=True):
        soft = validate_soft_scores(d, num_classes)  # (N, C), finite, in [0, 1], class ids in range
        assert soft.shape == (len(d), num_classes)
        h, w = img.shape[:2]
        if len(d):
            assert (d.xyxy[:, [0, 2]] >= 0).all() and (d.xyxy[:, [0, 2]] <= w).all()
            assert (d.xyxy[:, [1, 3]] >= 0).all() and (d.xyxy[:, [1, 3]] <= h).all()
            assert (d.xyxy[:, 2] >= d.xyxy[:, 0]).all() and (d.xyxy[:, 3] >= d.xyxy[:, 1]).all()
            assert set(d.class_id.tolist()) <= set(range(num_classes))
            assert (d.confidence >= min_score - 1e-6).all()


# -- tokenizers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_tokenizer(tmp_path_factory):
    # Grounding DINO hard-codes BERT's ids of [CLS] 101, [SEP] 102, "." 1012 and "?" 1029 as phrase
    # delimiters, so the made-up vocab keeps them at those positions.
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 1012 - len(vocab))] + ["."]
    vocab += [f"[unused{i}]" for i in range(2000, 2000 + 1029 - len(vocab))] + ["?"]
    vocab += WORDS
    path = tmp_path_factory.mktemp("bert") / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizer(str(path))
    assert tok.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]) == [101, 102, 1012, 1029]
    return tok


@pytest.fixture(scope="module")
def clip_tokenizer(tmp_path_factory):
    # Byte-level BPE over letters with merges spelling our words; other words fall back to letters.
    letters = "abcdefghijklmnopqrstuvwxyz.!"
    vocab: dict[str, int] = {}
    for c in letters:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = []
    for w in [*WORDS, "."]:
        parts = [*w[:-1], w[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    # OWL pools the text at argmax(input_ids): the end token must have the highest id
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    d = tmp_path_factory.mktemp("clip")
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
    tok = transformers.CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    ids = tok("a photo of a person")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id == len(vocab) - 1
    return tok


def _clip_text_cfg(tok, max_pos: int) -> dict:
    return {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": max_pos,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


_VISION_CFG = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 4,
}


# -- Grounding DINO --------------------------------------------------------------------------------
def _gdino(bert_tokenizer, max_text_len: int = 256):
    torch.manual_seed(0)
    cfg = transformers.GroundingDinoConfig(
        backbone_config=transformers.SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=64,
            out_indices=[2, 3, 4],
        ),
        text_config=transformers.BertConfig(
            vocab_size=len(bert_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, max_position_embeddings=64,
        ),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, encoder_n_points=2,
        decoder_n_points=2, max_text_len=max_text_len,
    )
    model = transformers.GroundingDinoForObjectDetection(cfg).eval()
    ip = transformers.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    return model, transformers.GroundingDinoProcessor(image_processor=ip, tokenizer=bert_tokenizer)


def test_pack_prompts_by_token_length():
    # ids: CLS 1, SEP 2, "." 3; room for 10 - 2 = 8 tokens per chunk
    toks = [[10], [11, 12], [20, 21, 22], [30], [40] * 12]
    chunks = pack_prompts(toks, [0, 0, 1, 2, 3], max_len=10, cls_id=1, sep_id=2, dot_id=3)
    # class 1 (3 tokens + ".") does not fit after class 0 (5 tokens), so it opens the second chunk
    assert [c.prompt_ids for c in chunks] == [(0, 1), (2, 3), (4,)]
    assert chunks[0].input_ids == (1, 10, 3, 11, 12, 3, 2)
    assert chunks[0].spans == ((1, 2), (3, 5))
    assert all(len(c.input_ids) <= 10 for c in chunks)
    for c in chunks:
        for (s, e), pid in zip(c.spans, c.prompt_ids, strict=True):
            assert list(c.input_ids[s:e]) == toks[pid][: e - s]
            assert c.input_ids[e] == 3  # every phrase ends with "."
        assert c.input_ids[0] == 1 and c.input_ids[-1] == 2
    assert len(chunks[2].input_ids) == 10  # a too-long prompt is truncated to fit
    # everything fits in one chunk at the model's real length
    one = pack_prompts(toks, [0, 0, 1, 2, 3], max_len=256, cls_id=1, sep_id=2, dot_id=3)
    assert len(one) == 1 and one[0].prompt_ids == (0, 1, 2, 3, 4)


def test_pack_prompts_keeps_a_class_together():
    # class 0 fills 4 of 6 tokens; class 1's two prompts (4 tokens) move together to a new chunk
    chunks = pack_prompts([[5], [6], [7], [8]], [0, 0, 1, 1], max_len=8, cls_id=1, sep_id=2, dot_id=3)
    assert [c.prompt_ids for c in chunks] == [(0, 1), (2, 3)]
    with pytest.raises(ValueError):
        pack_prompts([[5]], [0], max_len=3, cls_id=1, sep_id=2, dot_id=3)


def test_token_logits_to_class_scores_by_hand():
    inf = float("inf")
    # tokens: [CLS] person . man . car . [SEP] pad    (prompt spans: person 1-2, man 3-4, "big car" 5-7)
    logits = torch.tensor([[[0.0, 1.0, 5.0, -1.0, 5.0, 2.0, -2.0, 5.0, -inf]]])  # (1, 1, 9)
    spans = [(1, 2), (3, 4), (5, 7)]
    got = token_logits_to_class_scores(logits, spans, [0, 0, 1], 3, reduce="max")
    sig = torch.sigmoid
    expect = torch.tensor([[[sig(torch.tensor(1.0)), sig(torch.tensor(2.0)), 0.0]]])
    assert got.shape == (1, 1, 3)
    assert torch.allclose(got, expect, atol=1e-6)  # class 0 = max(person, man); class 2 has no prompt
    mean = token_logits_to_class_scores(logits, spans, [0, 0, 1], 3, reduce="mean")
    car = (sig(torch.tensor(2.0)) + sig(torch.tensor(-2.0))) / 2
    assert torch.allclose(mean[0, 0, 1], car, atol=1e-6)
    assert torch.allclose(mean[0, 0, 0], sig(torch.tensor(1.0)), atol=1e-6)
    # delimiter tokens (the 5.0 logits at "." and [SEP]) never leak into a prompt
    assert got.max() < sig(torch.tensor(5.0))
    with pytest.raises(ValueError):
        token_logits_to_class_scores(logits, spans, [0, 0, 1], 3, reduce="sum")


@pytest.mark.slow
def test_grounding_dino_predict(bert_tokenizer, images):
    model, processor = _gdino(bert_tokenizer)
    teacher = GroundingDinoTeacher.from_model(model, processor, ONTO, device="cpu", min_score=0.0, batch_size=2)
    assert len(teacher.chunks) == 1  # all four prompts in one pass
    chunk = teacher.chunks[0]
    assert bert_tokenizer.decode(list(chunk.input_ids)) == "[CLS] person. man. car. truck. [SEP]"
    # the packed text is exactly what Grounding DINO's own processor makes of the label list
    native = processor(text=[ONTO.prompts], images=images[:1], return_tensors="pt")["input_ids"][0]
    assert tuple(native.tolist()) == chunk.input_ids
    dets = teacher.predict(images)
    _assert_contract(dets, images, 2)
    assert all(len(d) == 20 for d in dets)  # min_score 0 keeps all 20 queries
    d = dets[0]
    assert np.allclose(d.confidence, d.data[SOFT_SCORES].max(1))
    assert (d.class_id == d.data[SOFT_SCORES].argmax(1)).all()

    # min_score acts: a threshold at the median confidence keeps fewer boxes, all above it
    thr = float(np.median(d.confidence))
    strict = GroundingDinoTeacher.from_model(model, processor, ONTO, device="cpu", min_score=thr)
    fewer = strict.predict(images)
    _assert_contract(fewer, images, 2, min_score=thr)
    assert len(fewer[0]) < len(d)
    assert len(fewer[1]) <= len(dets[1])
    # one image per forward: same contract (numbers differ: batching pads images, and random weights are
    # sensitive to the padding)
    one_by_one = GroundingDinoTeacher.from_model(model, processor, ONTO, device="cpu", min_score=0.0, batch_size=1)
    _assert_contract(one_by_one.predict(images), images, 2)


@pytest.mark.slow
def test_grounding_dino_multi_chunk(bert_tokenizer, images):
    # a text limit of 6 tokens ([CLS] person . man . [SEP]) forces one chunk per class
    model, processor = _gdino(bert_tokenizer, max_text_len=6)
    teacher = GroundingDinoTeacher.from_model(model, processor, ONTO, device="cpu", min_score=0.0)
    assert [c.prompt_ids for c in teacher.chunks] == [(0, 1), (2, 3)]
    dets = teacher.predict(images)
    _assert_contract(dets, images, 2)
    soft = dets[0].data[SOFT_SCORES]
    assert len(soft) == 40  # 20 queries from each of the two passes
    # a chunk's boxes score only the classes whose prompts were in that chunk
    assert ((soft[:, 0] == 0) | (soft[:, 1] == 0)).all()
    assert (soft[:, 0] > 0).any() and (soft[:, 1] > 0).any()


# -- OWLv2 / OWL-ViT -------------------------------------------------------------------------------
def _owl(clip_tokenizer, v2: bool):
    torch.manual_seed(0)
    if v2:
        cfg = transformers.Owlv2Config(
            text_config=_clip_text_cfg(clip_tokenizer, 16), vision_config=_VISION_CFG, projection_dim=32
        )
        model = transformers.Owlv2ForObjectDetection(cfg).eval()
        ip = transformers.Owlv2ImageProcessor(size={"height": 32, "width": 32})
        return model, transformers.Owlv2Processor(image_processor=ip, tokenizer=clip_tokenizer)
    cfg = transformers.OwlViTConfig(
        text_config=_clip_text_cfg(clip_tokenizer, 16), vision_config=_VISION_CFG, projection_dim=32
    )
    model = transformers.OwlViTForObjectDetection(cfg).eval()
    ip = transformers.OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
    return model, transformers.OwlViTProcessor(image_processor=ip, tokenizer=clip_tokenizer)


def test_prompt_scores_to_class_scores():
    s = np.array([[0.2, 0.7, 0.4, 0.1], [0.9, 0.1, 0.0, 0.3]])
    got = prompt_scores_to_class_scores(s, [0, 0, 1, 1], 3)
    assert np.allclose(got, [[0.7, 0.4, 0.0], [0.9, 0.3, 0.0]])


@pytest.mark.parametrize("v2", [True, False], ids=["owlv2", "owlvit"])
def test_owl_box_geometry(clip_tokenizer, v2):
    model, processor = _owl(clip_tokenizer, v2)
    cls = OwlV2Teacher if v2 else OwlViTTeacher
    teacher = cls.from_model(model, processor, ONTO, device="cpu")
    boxes = np.array([[0.5, 0.25, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    got = teacher._to_pixels(boxes, width=640, height=480)
    if v2:  # normalized to the 640 x 640 padded square, then clipped to the image
        assert np.allclose(got, [[160, 0, 480, 320], [0, 0, 640, 480]])
    else:  # normalized to the stretched image
        assert np.allclose(got, [[160, 0, 480, 240], [0, 0, 640, 480]])


@pytest.mark.slow
@pytest.mark.parametrize("v2", [True, False], ids=["owlv2", "owlvit"])
def test_owl_matches_transformers_postprocessing(clip_tokenizer, images, v2):
    """The cached-text path equals the model's own forward + post_process_object_detection."""
    model, processor = _owl(clip_tokenizer, v2)
    onto = Ontology.from_names(["person", "car", "truck"])  # one prompt per class: class = prompt
    cls = OwlV2Teacher if v2 else OwlViTTeacher
    teacher = cls.from_model(model, processor, onto, device="cpu", min_score=0.0, nms_iou=None, max_detections=10**6)
    ours = teacher.predict(images)
    _assert_contract(ours, images, 3)
    for img, d in zip(images, ours, strict=True):
        h, w = img.shape[:2]
        inputs = processor(text=[onto.prompts], images=[img], return_tensors="pt")
        with torch.inference_mode():
            out = model(**inputs)
        ref = processor.image_processor.post_process_object_detection(out, threshold=-1.0, target_sizes=[(h, w)])[0]
        boxes = ref["boxes"].numpy().copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-ref["scores"].numpy()[valid], kind="stable")
        assert len(d) == valid.sum()
        assert np.allclose(d.confidence, ref["scores"].numpy()[valid][order], atol=1e-5)
        assert np.allclose(d.xyxy, boxes[valid][order], atol=1e-2)
        ref_soft = out.logits[0].sigmoid().numpy()[valid][order]  # every (box, prompt) score, not just the best
        assert np.allclose(d.data[SOFT_SCORES], ref_soft, atol=1e-4)
    if v2:  # the 480 x 640 image is padded at the bottom: no box lies wholly below row 480
        assert (ours[0].xyxy[:, 1] < 480).all()


@pytest.mark.slow
def test_owlv2_predict_merges_prompts_and_nms(clip_tokenizer, images):
    model, processor = _owl(clip_tokenizer, v2=True)
    with torch.no_grad():  # large boxes, so that neighbouring patches overlap and NMS has work to do
        model.box_head.dense2.bias[2:] += 4.0
    teacher = OwlV2Teacher.from_model(model, processor, ONTO, device="cpu", min_score=0.0, batch_size=2)
    assert teacher.spec.startswith("owlv2:")
    dets = teacher.predict(images)
    _assert_contract(dets, images, 2)  # 4 prompts → C == 2 classes
    # soft scores are the max over each class's prompts
    q = teacher.query_embeds
    assert q.shape[0] == 4 and teacher.query_embeds is q  # computed once, cached
    no_nms = OwlV2Teacher.from_model(model, processor, ONTO, device="cpu", min_score=0.0, nms_iou=None).predict(images)
    assert all(len(a) < len(b) for a, b in zip(dets, no_nms, strict=True))
    import supervision as sv

    for d in dets:  # after per-class NMS, no two boxes of a class overlap by more than 0.5
        for c in (0, 1):
            boxes = d.xyxy[d.class_id == c]
            if len(boxes) > 1:
                iou = sv.box_iou_batch(boxes, boxes)
                np.fill_diagonal(iou, 0)
                assert iou.max() <= 0.5 + 1e-6
    # min_score acts
    thr = float(np.median(no_nms[0].confidence))
    strict = OwlV2Teacher.from_model(model, processor, ONTO, device="cpu", min_score=thr, nms_iou=None)
    fewer = strict.predict(images)
    _assert_contract(fewer, images, 2, min_score=thr)
    assert len(fewer[0]) < len(no_nms[0])


# -- CLIP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_parts(clip_tokenizer):
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=_clip_text_cfg(clip_tokenizer, 32), vision_config=_VISION_CFG, projection_dim=32
    )
    model = transformers.CLIPModel(cfg).eval()
    ip = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, transformers.CLIPProcessor(image_processor=ip, tokenizer=clip_tokenizer)


@pytest.mark.slow
def test_clip_classify_and_prompt_ensemble(clip_parts, clip_tokenizer, images):
    model, processor = clip_parts
    clip = ClipTeacher.from_model(model, processor, ONTO, device="cpu", templates=("a photo of a {}.", "{}"))
    probs, logits = clip.classify(images, return_logits=True)
    assert probs.shape == logits.shape == (2, 2)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5) and (probs >= 0).all()
    e = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(probs, e / e.sum(1, keepdims=True), atol=1e-5)
    assert np.allclose(clip.classify(images), probs)

    # class embedding = renormalized mean of the normalized prompt × template embeddings
    emb = clip.class_embeds
    assert clip.class_embeds is emb  # cached
    texts = ["a photo of a person.", "person", "a photo of a man.", "man"]
    enc = clip_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        t = model.get_text_features(**enc)
    t = getattr(t, "pooler_output", t)
    t = t / t.norm(dim=-1, keepdim=True)
    person = t.mean(0) / t.mean(0).norm()
    assert torch.allclose(emb[0], person, atol=1e-5)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)

    # the detection interface: one whole-image box per image, soft scores = probabilities
    dets = clip.predict(images)
    _assert_contract(dets, images, 2)
    for d, img, p in zip(dets, images, probs, strict=True):
        assert len(d) == 1
        assert np.allclose(d.xyxy[0], [0, 0, img.shape[1], img.shape[0]])
        assert np.allclose(d.data[SOFT_SCORES][0], p, atol=1e-6)
    assert all(len(d) == 0 for d in ClipTeacher.from_model(model, processor, ONTO, min_score=0.99).predict(images))


def test_crop_boxes_context_and_letterbox():
    img = np.zeros((100, 200, 3), np.uint8)
    img[10:90, 10:30] = 255
    crop = crop_boxes(img, np.array([[10, 10, 30, 90.0]]), context=0.1)[0]
    assert crop.shape == (96, 96, 3)  # 24 x 96 crop with margin, letterboxed to a square
    assert (crop[:, :36] == 127).all() and (crop[:, 60:] == 127).all()
    # a box at the border is clipped, and a degenerate box still yields a pixel
    assert crop_boxes(img, np.array([[190, 95, 200, 100.0], [5, 5, 5, 5.0]]))[1].shape == (1, 1, 3)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["replace", "multiply"])
def test_clip_rescore(clip_parts, clip_tokenizer, images, mode):
    model, processor = clip_parts
    clip = ClipTeacher.from_model(model, processor, ONTO, device="cpu", batch_size=3)
    owl_model, owl_processor = _owl(clip_tokenizer, v2=True)
    dets = OwlV2Teacher.from_model(owl_model, owl_processor, ONTO, device="cpu", min_score=0.0).predict(images)
    for d in dets:
        d.data["track"] = np.arange(len(d))  # another aligned array must survive
    before = [d.data[SOFT_SCORES].copy() for d in dets]
    out = clip.rescore(images, dets, mode=mode)
    _assert_contract(out, images, 2)
    for d, o, b, img in zip(dets, out, before, images, strict=True):
        assert len(o) == len(d) > 0
        assert np.array_equal(o.xyxy, d.xyxy) and np.array_equal(o.data["track"], np.arange(len(d)))
        assert np.array_equal(d.data[SOFT_SCORES], b)  # input untouched
        assert not np.allclose(o.data[SOFT_SCORES], b)
        q = clip.classify(crop_boxes(img, d.xyxy, clip.context))
        soft = o.data[SOFT_SCORES]
        assert (o.class_id == soft.argmax(1)).all()
        if mode == "replace":
            assert np.allclose(soft, q, atol=1e-5)
            assert np.allclose(o.confidence, d.confidence * q[np.arange(len(d)), o.class_id], atol=1e-5)
        else:
            assert np.allclose(soft.sum(1), b.max(1), atol=1e-5)  # objectness kept, class posterior spread
            post = b * q / (b * q).sum(1, keepdims=True)
            assert np.allclose(soft, b.max(1, keepdims=True) * post, atol=1e-5)
            assert np.allclose(o.confidence, soft.max(1), atol=1e-6)
    with pytest.raises(Exception, match="mode"):
        clip.rescore(images, dets, mode="average")


# -- creation, offline errors, import cost ------------------------------------------------------------
@pytest.fixture
def offline(monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE once at import; patch the constant too so no request is retried
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(teachers_pkg, "_BUILTIN", ("grounding_dino", "owl", "clip"))


@pytest.mark.parametrize(
    "spec, named",
    [
        ("owlv2:/nonexistent/folder", "/nonexistent/folder"),
        ("grounding-dino", "IDEA-Research/grounding-dino-tiny"),
        ("owlvit", "google/owlvit-base-patch32"),
        ("clip", "openai/clip-vit-base-patch32"),
    ],
)
def test_missing_weights_offline_fail_fast(offline, spec, named):
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as err:
        create_teacher(spec, ontology=ONTO, device="cpu")
    assert time.perf_counter() - start < 10
    msg = str(err.value)
    assert named in msg and "\n" not in msg


def test_registered(offline):
    names = {e.name: e for e in teachers_pkg.list_teachers()}
    assert names["grounding-dino"].default_weights == "IDEA-Research/grounding-dino-tiny"
    assert names["owlv2"].default_weights == "google/owlv2-base-patch16-ensemble"
    assert names["owlvit"].default_weights == "google/owlvit-base-patch32"
    assert names["clip"].default_weights == "openai/clip-vit-base-patch32"


def test_import_is_light():
    code = (
        "import sys, autolabel.teachers.grounding_dino, autolabel.teachers.owl, autolabel.teachers.clip\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
