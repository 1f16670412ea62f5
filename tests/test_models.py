"""Tests of allelic.models: the native DNABERT-2 (MosaicBERT) implementation, ALiBi, checkpoint loading."""
import json
import math
import os

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from allelic.models import (  # noqa: E402
    DNABert2Config,
    DNABert2ForMaskedLM,
    DNABert2ForSequenceClassification,
    DNABert2Model,
    alibi_bias,
    alibi_slopes,
    flops_per_token,
    is_dnabert2_checkpoint,
    load_dnabert2,
    load_model,
    model_summary,
)

TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=3)

# DNABERT-2's config.json as published (zhihan1996/DNABERT-2-117M), with the sizes made tiny
PUBLISHED_CONFIG = {
    "_name_or_path": "zhihan1996/DNABERT-2-117M",
    "alibi_starting_size": 512,
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_bert.BertConfig",
        "AutoModel": "bert_layers.BertModel",
        "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
        "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification",
    },
    "classifier_dropout": None,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "position_embedding_type": "absolute",
    "torch_dtype": "float32",
    "transformers_version": "4.28.0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
}


def tiny(**kw):
    return DNABert2Config(**{**TINY, **kw})


def batch(b=3, s=10, vocab=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, s), generator=g)
    ids[:, 0] = 1  # [CLS]
    mask = torch.ones_like(ids)
    if b >= 3:
        mask[1, 6:] = 0
        mask[2, 3:] = 0
    ids[mask == 0] = 3  # [PAD]
    return ids, mask


@pytest.fixture(scope="module")
def cls_model():
    torch.manual_seed(0)
    return DNABert2ForSequenceClassification(tiny(num_labels=3)).eval()


@pytest.fixture(scope="module")
def mlm_model():
    torch.manual_seed(1)
    return DNABert2ForMaskedLM(tiny()).eval()


# --------------------------------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------------------------------
def test_forward_shapes_and_classification_loss(cls_model):
    ids, mask = batch()
    torch.manual_seed(2)
    base = DNABert2Model(tiny()).eval()
    out = base(ids, attention_mask=mask, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 10, 32)
    assert out.pooler_output.shape == (3, 32)
    assert len(out.hidden_states) == 3 and out.attentions is None
    assert torch.all(out.last_hidden_state[mask == 0] == 0)  # padded positions zeroed, as MosaicBERT's unpadding does

    labels = torch.tensor([0, 2, 1])
    res = cls_model(ids, attention_mask=mask, labels=labels)
    assert res.logits.shape == (3, 3)
    logp = res.logits - res.logits.logsumexp(-1, keepdim=True)
    by_hand = -logp[torch.arange(3), labels].mean()
    assert torch.allclose(res.loss, by_hand, atol=1e-6)

    tup = cls_model(ids, attention_mask=mask, labels=labels, return_dict=False)
    assert isinstance(tup, tuple) and torch.allclose(tup[0], res.loss) and torch.allclose(tup[1], res.logits)

    reg = DNABert2ForSequenceClassification(tiny(num_labels=1)).eval()
    y = torch.tensor([0.5, -1.0, 2.0])
    r = reg(ids, attention_mask=mask, labels=y)
    assert r.logits.shape == (3, 1)
    assert torch.allclose(r.loss, ((r.logits.view(-1) - y) ** 2).mean(), atol=1e-6)


def test_mlm_logits_loss_and_tied_decoder(mlm_model):
    ids, mask = batch()
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 4], labels[2, 1] = 7, 9, 11
    out = mlm_model(ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (3, 10, 64)
    sel = labels != -100
    by_hand = torch.nn.functional.cross_entropy(out.logits[sel], labels[sel])
    assert torch.allclose(out.loss, by_hand, atol=1e-6)
    dec, emb = mlm_model.cls.predictions.decoder, mlm_model.bert.embeddings.word_embeddings
    assert dec.weight is emb.weight and dec.bias is not None
    assert mlm_model.get_output_embeddings() is dec


def test_save_and_from_pretrained_roundtrip(cls_model, mlm_model, tmp_path):
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification

    ids, mask = batch()
    ref = cls_model(ids, attention_mask=mask).logits
    cls_model.save_pretrained(tmp_path / "cls")
    assert json.loads((tmp_path / "cls" / "config.json").read_text())["model_type"] == "dnabert2"
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "cls"), DNABert2Config)
    for loaded in (DNABert2ForSequenceClassification.from_pretrained(tmp_path / "cls"),
                   AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls"),
                   load_model(tmp_path / "cls", task="classification", num_labels=3),
                   load_model(tmp_path / "cls", task="classification", num_labels=None)):
        assert isinstance(loaded, DNABert2ForSequenceClassification)
        assert torch.equal(loaded.eval()(ids, attention_mask=mask).logits, ref)

    ref_mlm = mlm_model(ids, attention_mask=mask).logits
    mlm_model.save_pretrained(tmp_path / "mlm")
    via_auto = AutoModelForMaskedLM.from_pretrained(tmp_path / "mlm").eval()
    assert via_auto.cls.predictions.decoder.weight is via_auto.bert.embeddings.word_embeddings.weight
    assert torch.equal(via_auto(ids, attention_mask=mask).logits, ref_mlm)
    assert torch.equal(load_model(tmp_path / "mlm", task="mlm")(ids, attention_mask=mask).logits, ref_mlm)
    # fine-tuning start: an MLM checkpoint opened for classification keeps the encoder, adds pooler + classifier
    clf = load_model(tmp_path / "mlm", task="classification", num_labels=2)
    assert torch.equal(clf.bert.encoder.layer[1].mlp.wo.weight, mlm_model.bert.encoder.layer[1].mlp.wo.weight)
    assert clf(ids, attention_mask=mask).logits.shape == (3, 2)
    with pytest.raises(ValueError, match="classifier"):
        load_model(tmp_path / "cls", task="classification", num_labels=2)


# --------------------------------------------------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------------------------------------------------
def test_attentions_and_sdpa_equals_eager(cls_model):
    ids, mask = batch()
    fast = cls_model.bert(ids, attention_mask=mask)
    eager = cls_model.bert(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    assert len(eager.attentions) == 2
    for a in eager.attentions:
        assert a.shape == (3, 4, 10, 10)
        assert torch.allclose(a.sum(-1), torch.ones(3, 4, 10), atol=1e-6)
        assert torch.all(a.masked_select((mask == 0)[:, None, None, :].expand_as(a)) == 0)
    assert torch.allclose(fast.last_hidden_state, eager.last_hidden_state, atol=1e-5)
    assert torch.allclose(fast.pooler_output, eager.pooler_output, atol=1e-5)
    res = cls_model(ids, attention_mask=mask, output_attentions=True)
    assert len(res.attentions) == 2 and torch.allclose(res.logits, cls_model(ids, attention_mask=mask).logits, atol=1e-5)


def test_padding_invariance(cls_model):
    ids, _ = batch(b=1, s=7)
    short = cls_model.bert(ids)
    padded = torch.cat([ids, torch.full((1, 9), 3)], dim=1)
    pmask = torch.cat([torch.ones(1, 7, dtype=torch.long), torch.zeros(1, 9, dtype=torch.long)], dim=1)
    for oa in (False, True):
        long = cls_model.bert(padded, attention_mask=pmask, output_attentions=oa)
        assert torch.allclose(long.last_hidden_state[:, :7], short.last_hidden_state, atol=1e-5)
        assert torch.allclose(long.pooler_output, short.pooler_output, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# ALiBi
# --------------------------------------------------------------------------------------------------------------------
def test_alibi_slopes_hand_written():
    assert alibi_slopes(4) == pytest.approx([2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8])
    assert alibi_slopes(8) == pytest.approx([2 ** -k for k in range(1, 9)])
    # 12 heads (DNABERT-2): the 8-head slopes, then every other slope of 16 heads (2^-0.5, 2^-1, 2^-1.5, ...)[0::2]
    # as in MosaicBERT bert_layers.py `_get_alibi_head_slopes` (checked against that source)
    assert alibi_slopes(12) == pytest.approx([2 ** -k for k in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5])
    assert alibi_slopes(16) == pytest.approx([2 ** (-0.5 * k) for k in range(1, 17)])
    b = alibi_bias(12, 9)[0]
    i, j = torch.meshgrid(torch.arange(9), torch.arange(9), indexing="ij")
    for h, s in enumerate(alibi_slopes(12)):
        assert torch.allclose(b[h], -s * (i - j).abs().float())
    assert torch.equal(b, b.transpose(-1, -2))  # symmetric
    assert torch.equal(b[:, 2:, 2:], b[:, :-2, :-2])  # translation-invariant


def test_zero_qk_attention_is_softmax_of_alibi():
    torch.manual_seed(3)
    m = DNABert2Model(tiny()).eval()
    with torch.no_grad():
        for layer in m.encoder.layer:
            w, b = layer.attention.self.Wqkv.weight, layer.attention.self.Wqkv.bias
            w[:64].zero_()  # q and k rows of the fused projection
            b[:64].zero_()
    ids, _ = batch(b=2, s=8)
    att = m(ids, output_attentions=True).attentions
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    for h, s in enumerate(alibi_slopes(4)):
        expected = torch.softmax(-s * (i - j).abs().float(), dim=-1)
        for a in att:
            assert torch.allclose(a[:, h], expected.expand(2, 8, 8), atol=1e-6)


def test_attention_logits_depend_only_on_distance():
    # a run of one token: in layer 0 every position has the same q and k, so log p[i, j] - log p[i, i] = -slope |i-j|
    torch.manual_seed(4)
    m = DNABert2Model(tiny()).eval()
    ids = torch.full((1, 12), 17)
    a = m(ids, output_attentions=True).attentions[0][0]
    logit_diff = a.log() - a.diagonal(dim1=-2, dim2=-1).log()[:, :, None]
    i, j = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    for h, s in enumerate(alibi_slopes(4)):
        assert torch.allclose(logit_diff[h], -s * (i - j).abs().float(), atol=1e-4)


def test_alibi_grows_for_longer_inputs():
    torch.manual_seed(5)
    m = DNABert2Model(tiny(alibi_starting_size=8)).eval()
    ids, mask = batch(b=2, s=20)
    fast = m(ids, attention_mask=mask).last_hidden_state
    eager = m(ids, attention_mask=mask, output_attentions=True)
    assert m.encoder._alibi_size == 20 and eager.attentions[0].shape == (2, 4, 20, 20)
    assert torch.allclose(fast, eager.last_hidden_state, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------------------------
def write_published(model, d, *, drop=(), safetensors=False):
    """A DNABERT-2-format checkpoint directory: published config.json, MosaicBERT names."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(PUBLISHED_CONFIG | {"pad_token_id": 3}))
    sd = {k: v.clone() for k, v in model.state_dict().items() if k not in drop}
    if safetensors:
        from safetensors.torch import save_file
        save_file(sd, str(d / "model.safetensors"))
    else:
        torch.save(sd, d / "pytorch_model.bin")
    return d


def test_published_format_checkpoint_loads(mlm_model, tmp_path):
    d = write_published(mlm_model, tmp_path / "dnabert2")
    assert set(torch.load(d / "pytorch_model.bin")) >= {"bert.encoder.layer.0.attention.self.Wqkv.weight",
                                                         "bert.encoder.layer.1.mlp.gated_layers.weight",
                                                         "cls.predictions.decoder.bias"}
    assert is_dnabert2_checkpoint(d)
    ids, mask = batch()
    ref = mlm_model(ids, attention_mask=mask).logits
    for m in (load_dnabert2(d, task="mlm"), load_model(d, task="mlm")):
        assert isinstance(m, DNABert2ForMaskedLM) and not m.training
        assert torch.allclose(m(ids, attention_mask=mask).logits, ref, atol=1e-6)
    assert torch.allclose(load_model(d, task="base")(ids, attention_mask=mask).last_hidden_state,
                          mlm_model.bert(ids, attention_mask=mask).last_hidden_state, atol=1e-6)
    clf = load_model(d, task="classification", num_labels=2, hidden_dropout_prob=0.0)  # no pooler/classifier: new
    assert clf.config.hidden_dropout_prob == 0.0 and clf.config.alibi_starting_size == 512
    assert torch.equal(clf.bert.embeddings.word_embeddings.weight, mlm_model.bert.embeddings.word_embeddings.weight)
    # safetensors + weights-only detection (no auto_map, model_type "bert")
    d2 = write_published(mlm_model, tmp_path / "st", safetensors=True)
    cfg = json.loads((d2 / "config.json").read_text())
    cfg.pop("auto_map")
    (d2 / "config.json").write_text(json.dumps(cfg))
    assert is_dnabert2_checkpoint(d2)
    assert torch.allclose(load_model(d2, task="mlm")(ids, attention_mask=mask).logits, ref, atol=1e-6)


def test_missing_encoder_weight_raises(mlm_model, tmp_path):
    d = write_published(mlm_model, tmp_path / "broken", drop=("bert.encoder.layer.1.mlp.wo.weight",))
    with pytest.raises(ValueError, match=r"bert\.encoder\.layer\.1\.mlp\.wo\.weight") as e:
        load_dnabert2(d, task="mlm")
    assert str(d) in str(e.value)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)


def test_load_model_standard_bert(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(6)
    cfg = BertConfig(vocab_size=69, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=64)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "v1")
    m = load_model(tmp_path / "v1", task="classification", num_labels=2)
    assert isinstance(m, BertForSequenceClassification) and not is_dnabert2_checkpoint(tmp_path / "v1")
    ids, mask = batch(vocab=69)
    out = m(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert out.logits.shape == (3, 2) and len(out.attentions) == 2
    a = out.attentions[0]
    assert a.shape == (3, 4, 10, 10) and torch.allclose(a.sum(-1), torch.ones(3, 4, 10), atol=1e-5)
    s = model_summary(m)
    assert (s["hidden"], s["layers"], s["heads"], s["vocab"]) == (32, 2, 4, 69)


# --------------------------------------------------------------------------------------------------------------------
# training, size, cost
# --------------------------------------------------------------------------------------------------------------------
def test_one_optimizer_step_reduces_loss():
    torch.manual_seed(7)
    m = DNABert2ForSequenceClassification(tiny(num_labels=2)).train()
    ids, mask = batch(b=8, s=12)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    opt = torch.optim.SGD(m.parameters(), lr=0.1)  # a small plain-gradient step must descend
    loss0 = m(ids, attention_mask=mask, labels=y).loss
    loss0.backward()
    assert m.bert.encoder.layer[0].attention.self.Wqkv.weight.grad.abs().sum() > 0
    opt.step()
    assert m(ids, attention_mask=mask, labels=y).loss < loss0


def test_summary_and_flops():
    with torch.device("meta"):
        full = DNABert2Model(DNABert2Config())
    s = model_summary(full)
    assert s["n_parameters"] == 117_068_544  # DNABERT-2-117M
    assert (s["hidden"], s["layers"], s["heads"], s["vocab"]) == (768, 12, 12, 4096)
    n_nonemb = sum(p.numel() for p in full.encoder.parameters())
    assert flops_per_token(DNABert2Config(), 128) == 6 * n_nonemb + 12 * 12 * 768 * 128
    assert flops_per_token(full, 128) == flops_per_token(full.config, 128)
    assert math.isclose(flops_per_token(DNABert2Config(), 128), 6.94e8, rel_tol=1e-2)


# --------------------------------------------------------------------------------------------------------------------
# classification heads: pooling and the siamese head
# --------------------------------------------------------------------------------------------------------------------
def test_mean_pooling_is_the_masked_mean_through_the_pooler():
    torch.manual_seed(7)
    m = DNABert2ForSequenceClassification(tiny(num_labels=2, classifier_pooling="mean")).eval()
    ids, mask = batch()
    h = m.bert(ids, attention_mask=mask).last_hidden_state
    by_hand = torch.stack([h[i, mask[i].bool()].mean(0) for i in range(len(ids))])  # mean over real tokens only
    want = m.classifier(torch.tanh(m.bert.pooler.dense(by_hand)))
    assert torch.allclose(m(ids, attention_mask=mask).logits, want, atol=1e-6)
    # padding does not change a sequence's score
    short = m(ids[2:, :3], attention_mask=mask[2:, :3]).logits
    assert torch.allclose(short, m(ids, attention_mask=mask).logits[2:], atol=1e-5)
    with pytest.raises(ValueError, match="classifier_pooling"):
        DNABert2ForSequenceClassification(tiny(classifier_pooling="max"))


def test_siamese_head_reads_both_alleles_and_roundtrips(tmp_path):
    torch.manual_seed(8)
    m = DNABert2ForSequenceClassification(tiny(num_labels=2, classifier_head="siamese")).eval()
    ids, mask = batch()
    alt = ids.clone()
    alt[:, 2] = 5  # one token changed
    e_ref, e_alt = m.bert(ids, attention_mask=mask).pooler_output, m.bert(alt, attention_mask=mask).pooler_output
    want = m.classifier(torch.cat([e_ref, e_alt, e_alt - e_ref], -1))
    got = m(ids, attention_mask=mask, alt_input_ids=alt, alt_attention_mask=mask).logits
    assert m.classifier.in_features == 3 * 32 and torch.allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="alt_input_ids"):
        m(ids, attention_mask=mask)
    m.save_pretrained(tmp_path / "siamese")
    back = load_model(tmp_path / "siamese")
    assert back.config.classifier_head == "siamese" and back.siamese
    assert torch.allclose(back(ids, attention_mask=mask, alt_input_ids=alt, alt_attention_mask=mask).logits, got, atol=1e-6)


def test_has_classifier_tells_fine_tuned_from_pretrained(mlm_model, cls_model, tmp_path):
    from allelic.models import has_classifier

    mlm_model.save_pretrained(tmp_path / "mlm")
    cls_model.save_pretrained(tmp_path / "clf")
    assert not has_classifier(tmp_path / "mlm") and has_classifier(tmp_path / "clf")
    assert not has_classifier(write_published(mlm_model, tmp_path / "published"))


def test_auto_path_refuses_random_encoder_weights(mlm_model, tmp_path):
    """A checkpoint whose config.json builds transformers' BERT but whose tensors are not BERT's would load with a
    random encoder (what AutoModel.from_pretrained does silently): load_model raises instead."""
    from safetensors.torch import save_file

    d = tmp_path / "mismatch"
    d.mkdir()
    cfg = {k: v for k, v in PUBLISHED_CONFIG.items() if k != "auto_map"} | {"pad_token_id": 3}
    (d / "config.json").write_text(json.dumps(cfg))
    save_file({"something.else.weight": torch.zeros(2, 2)}, str(d / "model.safetensors"))
    assert not is_dnabert2_checkpoint(d)
    with pytest.raises(ValueError, match="would be random"):
        load_model(d, task="classification")


def test_centre_pooling_averages_the_given_tokens():
    torch.manual_seed(9)
    m = DNABert2ForSequenceClassification(tiny(num_labels=2, classifier_pooling="centre")).eval()
    ids, mask = batch()
    pool = torch.zeros_like(mask, dtype=torch.bool)
    pool[:, 1:3] = True
    h = m.bert(ids, attention_mask=mask).last_hidden_state
    want = m.classifier(torch.tanh(m.bert.pooler.dense(h[:, 1:3].mean(1))))
    assert torch.allclose(m(ids, attention_mask=mask, pool_mask=pool).logits, want, atol=1e-6)
    with pytest.raises(ValueError, match="pool_mask"):
        m(ids, attention_mask=mask)


def test_nucleotide_convolution_adds_each_tokens_base_composition(mlm_model, tmp_path):
    """A width-1 convolution whose filter j reads base j (ACGT) makes each token's feature the fraction of its bases
    that are A, C, G, T (hand-counted from the string); zero for special tokens; N contributes nothing."""
    torch.manual_seed(10)
    m = DNABert2ForSequenceClassification(tiny(num_labels=2, nucleotide_conv_width=1)).eval()
    emb = m.bert.embeddings
    with torch.no_grad():
        emb.nucleotide_conv.weight.zero_()
        emb.nucleotide_conv.bias.zero_()
        for j in range(4):
            emb.nucleotide_conv.weight[j, j, 0] = 1.0
    seq = "AACGTTTN"
    codes = torch.tensor([["ACGTN".index(c) for c in seq]])
    spans = torch.tensor([[[0, 0], [0, 3], [3, 4], [4, 8], [8, 8]]])  # [CLS], AAC, G, TTTN, [SEP]
    f = emb.nucleotide_features(codes, spans, 5)[0, :, :4]
    want = torch.tensor([[0, 0, 0, 0], [2 / 3, 1 / 3, 0, 0], [0, 0, 1, 0], [0, 0, 0, 3 / 4], [0, 0, 0, 0]])
    assert torch.allclose(f, want, atol=1e-6)
    assert torch.count_nonzero(emb.nucleotide_features(codes, spans, 5)[..., 4:]) == 0
    # with the convolution at zero the model is the plain one with the same weights
    with torch.no_grad():
        emb.nucleotide_conv.weight.zero_()
    plain = DNABert2ForSequenceClassification(tiny(num_labels=2)).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if "nucleotide_conv" not in k})
    ids = torch.tensor([[1, 7, 9, 11, 2]])
    assert torch.allclose(m(ids, nucleotide_ids=codes, token_spans=spans).logits, plain(ids).logits, atol=1e-6)
    with pytest.raises(ValueError, match="nucleotide_ids"):
        m(ids)
    with pytest.raises(ValueError, match="fine-tuning only"):
        DNABert2ForMaskedLM(tiny(nucleotide_conv_width=5))
    # a pretrained checkpoint has no convolution: it is newly initialised, the encoder loaded as saved
    mlm_model.save_pretrained(tmp_path / "mlm")
    loaded = load_model(tmp_path / "mlm", task="classification", nucleotide_conv_width=5)
    assert loaded.bert.embeddings.nucleotide_conv.weight.shape == (TINY["hidden_size"], 4, 5)
    assert torch.equal(loaded.bert.encoder.layer[1].mlp.wo.weight, mlm_model.bert.encoder.layer[1].mlp.wo.weight)


def test_save_checkpoint_roundtrip_encoder_only_and_replace(tmp_path):
    from allelic.checkpoints import save_checkpoint
    from allelic.models import has_classifier, load_model
    from allelic.tokenize import kmer_tokenizer

    torch.manual_seed(2)
    model = DNABert2ForSequenceClassification(tiny(num_labels=2)).eval()
    tok = kmer_tokenizer(3)
    ids, mask = batch()
    out = save_checkpoint(model, tok, tmp_path / "clf")
    assert has_classifier(out) and (out / "tokenizer.json").is_file()
    back = load_model(out, task="classification", num_labels=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids, attention_mask=mask).logits,
                                   model(input_ids=ids, attention_mask=mask).logits)
    enc = save_checkpoint(model, tok, tmp_path / "enc", encoder_only=True)
    assert not has_classifier(enc)
    enc_model = load_model(enc, task="base").eval()
    with torch.no_grad():                       # the encoder's weights are kept whole
        torch.testing.assert_close(enc_model(input_ids=ids, attention_mask=mask)[0],
                                   model.bert(input_ids=ids, attention_mask=mask)[0])
    (out / "stale.txt").write_text("x")
    save_checkpoint(model, tok, out, replace=True)
    assert not (out / "stale.txt").exists() and has_classifier(out)
