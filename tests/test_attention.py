"""Attention profiles and in-silico mutagenesis (allelic.attention): hand examples of the token -> base mapping,
attention known in closed form (zero queries and keys: softmax of the ALiBi bias), agreement with a naive
per-sequence loop, batching and streaming, ISM against train.predict on the mutants, every model variant."""
import math
import os
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from allelic.attention import (  # noqa: E402
    AttentionProfiles,
    attention_profiles,
    ism_scores,
    profile_by_label,
    token_to_nucleotide,
)
from allelic.models import DNABert2Config, DNABert2ForSequenceClassification, alibi_slopes  # noqa: E402
from allelic.tokenize import encode, kmer_tokenizer, token_spans, train_bpe_tokenizer  # noqa: E402
from allelic.train import model_inputs, predict  # noqa: E402


def _random_dna(n, length, rng):
    return ["".join(s) for s in rng.choice(list("ACGT"), size=(n, length))]


@pytest.fixture(scope="module")
def tok():
    return train_bpe_tokenizer(_random_dna(200, 200, np.random.default_rng(0)), vocab_size=256)


@pytest.fixture(scope="module")
def kmer_tok():
    return kmer_tokenizer(3)


def _model(tok, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = DNABert2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, hidden_dropout_prob=0.0, pad_token_id=tok.pad_token_id, num_labels=2,
                         **kw)
    return DNABert2ForSequenceClassification(cfg).eval()


def _hf_bert(tok, attn_implementation="eager"):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(5)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, hidden_dropout_prob=0.0, pad_token_id=tok.pad_token_id, num_labels=2)
    return BertForSequenceClassification._from_config(cfg, attn_implementation=attn_implementation).eval()


def _windows(tok, n, length, seed):
    """Random windows whose token counts differ (so a batch has padding)."""
    seqs = _random_dna(n, length, np.random.default_rng(seed))
    counts = encode(tok, seqs)["attention_mask"].sum(1)
    assert len(set(counts.tolist())) > 1
    return seqs


def _naive(model, tok, seq, *, layers=None, heads=None, reduction="cls", normalise=True, alt=None, encoder=False):
    """One window alone (no padding), plain loops: attention per token averaged over layers and heads, then each
    base the mean of the tokens covering it."""
    x = model_inputs(model, tok, [seq], None if alt is None else [alt])
    with torch.no_grad():
        if encoder:  # the siamese head's reference window: the encoder's own maps
            att = model.bert(x["input_ids"], attention_mask=x["attention_mask"], output_attentions=True).attentions
        else:
            att = model(**x, output_attentions=True).attentions
    n_layers, n_heads, s = len(att), att[0].shape[1], att[0].shape[-1]
    layers = range(n_layers) if layers is None else [i % n_layers for i in layers]
    heads = range(n_heads) if heads is None else [i % n_heads for i in heads]
    tok_score = np.zeros(s)
    for layer in layers:
        for h in heads:
            a = att[layer][0, h].double().numpy()
            if reduction == "pooled":  # the rows of the tokens the centre pooling reads
                q = x["pool_mask"][0].numpy().astype(bool)
                tok_score += a[q].mean(0)
            else:
                tok_score += a[0] if reduction == "cls" else a.mean(0)
    tok_score /= len(layers) * len(heads)
    start, end = (t[0].tolist() for t in token_spans(tok, x["input_ids"]))
    base = np.zeros(len(seq))
    for b in range(len(seq)):
        cover = [tok_score[t] for t in range(s) if start[t] <= b < end[t]]
        base[b] = np.mean(cover) if cover else 0.0
    return base / base.sum() if normalise else base


# ---------------------------------------------------------------------------------------------------------------------
# tokens -> bases
# ---------------------------------------------------------------------------------------------------------------------
def test_token_to_nucleotide_bpe_hand_example():
    # [CLS]=(0,0) (0,3) (3,4) (4,8) [SEP]=(8,8); second row: one 8-base token, then [SEP] and two padding tokens
    scores = np.array([[9, 1, 2, 3, 9], [5, 0.5, 5, 7, 7]])
    start = np.array([[0, 0, 3, 4, 8], [0, 0, 8, 8, 8]])
    end = np.array([[0, 3, 4, 8, 8], [0, 8, 8, 8, 8]])
    got = token_to_nucleotide(scores, start, end, 8)
    assert isinstance(got, np.ndarray) and got.shape == (2, 8)
    np.testing.assert_allclose(got[0], [1, 1, 1, 2, 3, 3, 3, 3])
    np.testing.assert_allclose(got[1], [0.5] * 8)  # scores of empty spans (specials, padding) are ignored
    # torch in, torch out; a longer result is zero past the last token
    t = token_to_nucleotide(torch.tensor(scores[:1], dtype=torch.float32), torch.tensor(start[:1]),
                            torch.tensor(end[:1]), 10)
    assert torch.is_tensor(t) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy()[0], [1, 1, 1, 2, 3, 3, 3, 3, 0, 0])


def test_token_to_nucleotide_kmer_overlaps_are_averaged(kmer_tok):
    # 6 bases, k = 3: [CLS] (empty), four overlapping 3-mers at bases 0-2, 1-3, 2-4, 3-5, [SEP] (empty)
    start, end = token_spans(kmer_tok, encode(kmer_tok, ["ACGTAC"])["input_ids"])
    assert start.tolist() == [[0, 0, 1, 2, 3, 4]] and end.tolist() == [[0, 3, 4, 5, 6, 4]]
    got = token_to_nucleotide(np.array([[9.0, 1, 2, 4, 8, 9]]), start.numpy(), end.numpy(), 6)
    by_hand = [1, (1 + 2) / 2, (1 + 2 + 4) / 3, (2 + 4 + 8) / 3, (4 + 8) / 2, 8]
    np.testing.assert_allclose(got[0], by_hand)


# ---------------------------------------------------------------------------------------------------------------------
# attention profiles
# ---------------------------------------------------------------------------------------------------------------------
def test_zero_query_key_attention_is_softmax_of_alibi(tok):
    """With q = k = 0 every layer's attention is softmax_j(-slope_h |i - j|) over the real tokens: the CLS row and
    the mean over queries are known in closed form."""
    model = _model(tok)
    h = model.config.hidden_size
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.attention.self.Wqkv.weight[:2 * h].zero_()
            layer.attention.self.Wqkv.bias[:2 * h].zero_()
    seqs = _windows(tok, 6, 50, seed=1)
    slopes = np.array(alibi_slopes(4))
    for reduction in ("cls", "mean"):
        got = attention_profiles(model, tok, seqs, reduction=reduction, device="cpu")
        assert got.values.shape == (6, 50) and got.layers == (0, 1) and got.heads == (0, 1, 2, 3)
        for i, seq in enumerate(seqs):
            ids = encode(tok, [seq])["input_ids"]
            s = ids.shape[1]
            dist = np.abs(np.arange(s)[:, None] - np.arange(s)[None, :])
            logits = -slopes[:, None, None] * dist  # (heads, queries, keys)
            p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
            tok_score = (p[:, 0] if reduction == "cls" else p.mean(1)).mean(0)
            start, end = (t[0].numpy() for t in token_spans(tok, ids))
            base = np.concatenate([np.full(e - b, tok_score[j]) for j, (b, e) in enumerate(zip(start, end))])
            np.testing.assert_allclose(got.values[i], base / base.sum(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["cls", "mean"])
def test_profiles_equal_a_naive_per_sequence_loop(tok, reduction):
    model = _model(tok, seed=1)
    seqs = _windows(tok, 7, 60, seed=2)
    for layers, heads in ((None, None), ([1], [0, -1])):
        got = attention_profiles(model, tok, seqs, layers=layers, heads=heads, reduction=reduction, device="cpu")
        want = np.stack([_naive(model, tok, s, layers=layers, heads=heads, reduction=reduction) for s in seqs])
        np.testing.assert_allclose(got.values, want, atol=1e-6)
        np.testing.assert_allclose(got.values.sum(1), 1.0, atol=1e-5)
    assert got.layers == (1,) and got.heads == (0, 3) and got.reduction == reduction and got.length == 60
    raw = attention_profiles(model, tok, seqs, reduction=reduction, normalise=False, device="cpu")
    want = np.stack([_naive(model, tok, s, reduction=reduction, normalise=False) for s in seqs])
    np.testing.assert_allclose(raw.values, want, atol=1e-6)
    assert not raw.normalised
    norm = attention_profiles(model, tok, seqs, reduction=reduction, device="cpu").values
    np.testing.assert_allclose(norm, raw.values / raw.values.sum(1, keepdims=True), rtol=1e-5)


def test_batch_size_does_not_change_profiles(tok):
    model = _model(tok, seed=2)
    seqs = _windows(tok, 20, 60, seed=3)
    for reduction in ("cls", "mean"):
        one = attention_profiles(model, tok, seqs, batch_size=1, reduction=reduction, device="cpu")
        many = attention_profiles(model, tok, seqs, batch_size=64, reduction=reduction, device="cpu")
        np.testing.assert_allclose(one.values, many.values, atol=1e-6)


def test_one_batch_of_maps_at_a_time(tok, monkeypatch):
    """500 windows in batches of 64: the model sees at most 64 windows per call, and the attention maps of a batch
    are gone (no reference kept) before the next batch runs."""
    model = _model(tok, seed=3)
    seqs = _random_dna(500, 40, np.random.default_rng(4))
    forward, sizes, alive = model.forward, [], []

    def spy(*args, **kwargs):
        assert all(r() is None for r in alive), "attention maps of the previous batch are still held"
        out = forward(*args, **kwargs)
        sizes.append(kwargs["input_ids"].shape[0])
        alive[:] = [weakref.ref(a) for a in out.attentions]
        return out

    monkeypatch.setattr(model, "forward", spy)
    got = attention_profiles(model, tok, seqs, batch_size=64, device="cpu")
    assert all(r() is None for r in alive)
    assert sizes == [64] * 7 + [500 - 7 * 64]
    assert isinstance(got, AttentionProfiles) and got.values.shape == (500, 40) and len(got) == 500
    assert got.values.dtype == np.float32


def test_centre_pooling_with_nucleotide_convolution(tok):
    model = _model(tok, seed=4, classifier_pooling="centre", nucleotide_conv_width=5)
    seqs = _windows(tok, 6, 60, seed=5)
    got = attention_profiles(model, tok, seqs, batch_size=4, device="cpu")  # two batches, padded differently
    want = np.stack([_naive(model, tok, s) for s in seqs])
    np.testing.assert_allclose(got.values, want, atol=1e-6)
    pooled = attention_profiles(model, tok, seqs, batch_size=4, device="cpu", reduction="pooled")
    want = np.stack([_naive(model, tok, s, reduction="pooled") for s in seqs])
    np.testing.assert_allclose(pooled.values, want, atol=1e-6)
    ism = ism_scores(model, tok, seqs[:1], positions=[30], device="cpu")
    s, p = seqs[0], 30
    probs = predict(model, tok, [s] + [s[:p] + b + s[p + 1:] for b in "ACGT" if b != s[p]], device="cpu")
    assert ism[0, p] == pytest.approx(np.abs(probs[1:] - probs[0]).max(), abs=1e-6)


@pytest.mark.parametrize("family", ["dnabert2", "hf_bert"])
def test_kmer_tokenizer_models(kmer_tok, family):
    model = _model(kmer_tok, seed=6) if family == "dnabert2" else _hf_bert(kmer_tok)
    seqs = _random_dna(5, 30, np.random.default_rng(6))
    seqs[1] = seqs[1][:24]  # a shorter window: zero past its end, still sums to 1
    for reduction in ("cls", "mean"):
        got = attention_profiles(model, kmer_tok, seqs, reduction=reduction, batch_size=2, device="cpu")
        assert got.values.shape == (5, 30)
        for i, s in enumerate(seqs):
            np.testing.assert_allclose(got.values[i, :len(s)], _naive(model, kmer_tok, s, reduction=reduction),
                                       atol=1e-6)
        assert (got.values[1, 24:] == 0).all()


def test_siamese_profile_is_the_reference_window(tok):
    model = _model(tok, seed=7, classifier_head="siamese")
    ref = _windows(tok, 4, 50, seed=8)
    alt = [s[:25] + ("A" if s[25] != "A" else "C") + s[26:] for s in ref]
    with pytest.raises(ValueError, match="alt_sequences"):
        attention_profiles(model, tok, ref, device="cpu")
    got = attention_profiles(model, tok, ref, alt_sequences=alt, device="cpu")
    want = np.stack([_naive(model, tok, r, alt=a, encoder=True) for r, a in zip(ref, alt)])
    np.testing.assert_allclose(got.values, want, atol=1e-6)
    # ISM mutates the reference window and keeps the alternative one
    ism = ism_scores(model, tok, ref[:2], positions=[10], alt_sequences=alt[:2], device="cpu")
    s, p = ref[1], 10
    mutants = [s] + [s[:p] + b + s[p + 1:] for b in "ACGT" if b != s[p]]
    probs = predict(model, tok, mutants, [alt[1]] * 4, device="cpu")
    assert ism[1, p] == pytest.approx(np.abs(probs[1:] - probs[0]).max(), abs=1e-6)


def test_model_without_attention_maps_says_load_eager(kmer_tok):
    model = _hf_bert(kmer_tok, attn_implementation="sdpa")
    with pytest.raises(RuntimeError, match='attn_implementation="eager"'):
        attention_profiles(model, kmer_tok, ["ACGTACGTAC"], device="cpu")


# ---------------------------------------------------------------------------------------------------------------------
# in-silico mutagenesis
# ---------------------------------------------------------------------------------------------------------------------
def test_ism_is_the_largest_change_over_the_three_substitutions(tok):
    model = _model(tok, seed=8)
    seqs = _random_dna(3, 40, np.random.default_rng(9))
    got = ism_scores(model, tok, seqs, positions=[7, 25], batch_size=16, device="cpu")
    assert got.shape == (3, 40)
    for i, s in enumerate(seqs):
        for p in (7, 25):
            mutants = [s[:p] + b + s[p + 1:] for b in "ACGT" if b != s[p]]
            probs = predict(model, tok, [s] + mutants, device="cpu")
            by_hand = np.abs(probs[1:] - probs[0]).max()
            assert by_hand > 0 and got[i, p] == pytest.approx(by_hand, abs=1e-6)
    others = np.ones(40, bool)
    others[[7, 25]] = False
    assert np.isnan(got[:, others]).all()  # not scored: NaN
    # every position (positions=None) on short windows, against the same hand computation
    short = [s[:12] for s in seqs[:2]]
    full = ism_scores(model, tok, short, batch_size=8, device="cpu")
    for i, s in enumerate(short):
        for p in range(12):
            probs = predict(model, tok, [s] + [s[:p] + b + s[p + 1:] for b in "ACGT" if b != s[p]], device="cpu")
            assert full[i, p] == pytest.approx(np.abs(probs[1:] - probs[0]).max(), abs=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# summaries and bad input
# ---------------------------------------------------------------------------------------------------------------------
def test_profile_by_label_hand_example():
    values = np.array([[1.0, 0.0, np.nan], [3.0, 2.0, 1.0], [0.0, 4.0, 2.0]])
    df = profile_by_label(values, [1, 1, 0])
    assert list(df.columns) == ["position", "label_1", "label_0", "difference"]
    np.testing.assert_allclose(df["label_1"], [2.0, 1.0, 1.0])  # NaN left out of the mean
    np.testing.assert_allclose(df["label_0"], [0.0, 4.0, 2.0])
    np.testing.assert_allclose(df["difference"], [2.0, -3.0, -1.0])
    assert df.attrs == {"n_1": 2, "n_0": 1}
    prof = AttentionProfiles(values[:, :2].astype(np.float32), (0,), (0,), "cls", False, 2, "m")
    np.testing.assert_allclose(profile_by_label(prof, [True, True, False])["difference"], [2.0, -3.0])
    with pytest.raises(ValueError, match="both labels"):
        profile_by_label(values, [1, 1, 1])
    with pytest.raises(ValueError, match="label 2"):
        profile_by_label(values, [1, 0, 2])


def test_bad_and_empty_input(tok):
    model = _model(tok, seed=9)
    seqs = ["ACGTACGTAC", "ACGTNACGTA", "ACGXACGTAC"]
    with pytest.raises(ValueError, match="sequence 2: character 'X'"):
        attention_profiles(model, tok, seqs, device="cpu")
    with pytest.raises(ValueError, match="sequence 2: character 'X'"):
        ism_scores(model, tok, seqs, device="cpu")
    siamese = _model(tok, seed=9, classifier_head="siamese")
    with pytest.raises(ValueError, match="alt_sequences: sequence 1"):
        attention_profiles(siamese, tok, seqs[:2], alt_sequences=["ACGTACGTAC", "ACG-ACGTAC"], device="cpu")
    with pytest.raises(ValueError, match="reduction"):
        attention_profiles(model, tok, seqs[:2], reduction="max", device="cpu")
    with pytest.raises(ValueError, match="layers 2 is out of range"):
        attention_profiles(model, tok, seqs[:2], layers=[2], device="cpu")
    with pytest.raises(ValueError, match="position 10"):
        ism_scores(model, tok, seqs[:2], positions=[10], device="cpu")
    empty = attention_profiles(model, tok, [], device="cpu")  # documented: an empty result, the model not run
    assert empty.values.shape == (0, 0) and len(empty) == 0 and empty.layers == (0, 1)
    assert ism_scores(model, tok, [], device="cpu").shape == (0, 0)
    # N is mutated to all four bases; lower case is accepted
    got = ism_scores(model, tok, [seqs[1].lower()], positions=[4], device="cpu")
    s = seqs[1]
    probs = predict(model, tok, [s] + [s[:4] + b + s[5:] for b in "ACGT"], device="cpu")
    assert got[0, 4] == pytest.approx(np.abs(probs[1:] - probs[0]).max(), abs=1e-6)
    assert math.isnan(got[0, 0])


def test_score_at_mask_controls_for_position_hand_example():
    from allelic.attention import score_at_mask

    # position 1 is always attended (position bias), the mask sits there in windows 0-1: no excess attention
    scores = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    mask = np.zeros((4, 3), bool)
    mask[:2, 1] = True
    res = score_at_mask(scores, mask, n_permutations=99)
    assert res.ratio == pytest.approx(1.0) and res.pvalue > 0.5 and (res.n_windows, res.n_bases) == (2, 2)
    # masked bases with twice the attention of the same position elsewhere: ratio 2 by hand
    scores = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.4, 0.5], [0.1, 0.4, 0.5]])
    res = score_at_mask(scores, mask, n_permutations=99, random_state=1)
    assert res.ratio == pytest.approx(0.8 / 0.4)
    # windows are exchangeable: 2 of 4 masked rows -> 6 distinct placements, the observed one is the largest
    assert res.pvalue == pytest.approx((1 + np.sum(_perm_ratios(scores, mask, 99, 1) >= 2.0 - 1e-12)) / 100)
    with pytest.raises(ValueError, match="no scored base"):
        score_at_mask(scores, np.zeros((4, 3), bool))


def _perm_ratios(scores, mask, n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        mm = mask[rng.permutation(len(mask))]
        un = ~mm
        expected = (scores * un).sum(0) / un.sum(0)
        out.append((scores * mm).sum() / (expected * mm.sum(0)).sum())
    return np.array(out)
