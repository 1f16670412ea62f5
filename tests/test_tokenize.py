"""DNA tokenizers: BPE (DNABERT-2 style) and overlapping k-mers (DNABERT style)."""
import numpy as np
import pytest

from allelic import tokenize as tk

pytest.importorskip("transformers")
pytest.importorskip("torch")

P_BASES = [0.29, 0.21, 0.21, 0.29]  # GC 0.42, like the simulator's genome


def _dna(rng, n, p=P_BASES):
    return "".join(rng.choice(list("ACGT"), size=n, p=p))


def _random_ish_genome(seed=0, n_pieces=300, piece=1000):
    """~300 kb of random DNA with a few planted repeats (motif-like words), in 1-kb pieces."""
    rng = np.random.default_rng(seed)
    words = [_dna(rng, int(rng.integers(6, 20))) for _ in range(30)]
    out = []
    for _ in range(n_pieces):
        s = list(_dna(rng, piece))
        for _ in range(5):
            w = words[int(rng.integers(len(words)))]
            at = int(rng.integers(0, piece - len(w)))
            s[at:at + len(w)] = w
        out.append("".join(s))
    return out


@pytest.fixture(scope="module")
def corpus():
    return _random_ish_genome()


@pytest.fixture(scope="module")
def bpe(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("bpe")
    tok = tk.train_bpe_tokenizer(corpus, vocab_size=512, out_dir=out)
    return tok, out


def test_special_token_ids(bpe):
    tok, _ = bpe
    vocab = tok.get_vocab()
    assert [vocab[t] for t in tk.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert all(b in vocab for b in "ACGTN")  # single bases always in the vocabulary: no [UNK] for ACGTN
    assert len(tok) == 512
    enc = tk.encode(tok, ["ACGTACGTAC", "ACG"])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert set(enc) == {"input_ids", "attention_mask"}
    assert ids.dtype == mask.dtype and str(ids.dtype) == "torch.int64"
    assert (ids[:, 0] == 1).all()
    for row, m in zip(ids, mask):
        n = int(m.sum())
        assert row[n - 1] == 2 and (row[n:] == 3).all() and (m[:n] == 1).all() and (m[n:] == 0).all()


def test_round_trip_random_dna_with_n(bpe):
    tok, _ = bpe
    rng = np.random.default_rng(1)
    seqs = []
    for i in range(60):
        s = list(_dna(rng, int(rng.integers(1, 400))))
        for j in rng.integers(0, len(s), size=int(rng.integers(0, 4))):
            s[j] = "N"
        if i % 3 == 0:
            s[: len(s) // 2] = [c.lower() for c in s[: len(s) // 2]]  # soft-masked input is accepted
        seqs.append("".join(s))
    seqs += ["N" * 30, "NNNNACGTNNNN", "A"]
    enc = tk.encode(tok, seqs)
    assert not (enc["input_ids"] == tok.unk_token_id).any()
    for s, row in zip(seqs, enc["input_ids"]):
        assert tok.decode(row, skip_special_tokens=True).replace(" ", "") == s.upper()


def test_save_and_load(bpe):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok, out = bpe
    seqs = ["ACGTTGCANNACGGT" * 5, "TTTTGGGGCCCCAAAA"]
    want = tk.encode(tok, seqs)["input_ids"]
    for loaded in (tk.load_tokenizer(out), AutoTokenizer.from_pretrained(str(out)),
                   PreTrainedTokenizerFast.from_pretrained(str(out)), tk.load_tokenizer(out / "tokenizer.json")):
        assert (tk.encode(loaded, seqs)["input_ids"] == want).all()
        assert loaded.pad_token_id == 3 and loaded.mask_token_id == 4


def test_load_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_tokenizer"):
        tk.load_tokenizer(tmp_path / "no_such_tokenizer")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks tokenizer.json"):
        tk.load_tokenizer(tmp_path / "empty")


def test_training_is_deterministic(corpus, bpe):
    tok, _ = bpe
    again = tk.train_bpe_tokenizer(corpus, vocab_size=512, random_state=123)
    reordered = tk.train_bpe_tokenizer(corpus[::-1], vocab_size=512)
    ref = tok.backend_tokenizer.to_str()
    assert again.backend_tokenizer.to_str() == ref
    assert reordered.backend_tokenizer.to_str() == ref


def test_tokens_per_200bp_window(bpe, capsys):
    tok, _ = bpe
    rng = np.random.default_rng(2)
    windows = [_dna(rng, 200) for _ in range(300)]
    n = tk.encode(tok, windows)["attention_mask"].sum(1).float()
    mean = float(n.mean())
    with capsys.disabled():
        print(f"\n[tokenize] BPE vocab 512 on 300 kb: {mean:.1f} tokens per 200-bp window incl. [CLS]/[SEP] "
              f"(range {int(n.min())}-{int(n.max())})")
    assert 45 <= mean <= 65  # DNABERT-2-like compression: ~4 bp per token


def test_small_vocabulary_and_min_frequency():
    tok = tk.train_bpe_tokenizer(["ACGT" * 10, "acgtacgt"], vocab_size=12, min_frequency=2)
    assert len(tok) <= 12
    with pytest.raises(ValueError, match="vocab_size"):
        tk.train_bpe_tokenizer(["ACGT"], vocab_size=8)


def test_kmer_tokenizer_hand_example(tmp_path):
    tok = tk.kmer_tokenizer(3, out_dir=tmp_path / "k3")
    assert len(tok) == 5 + 4 ** 3
    assert tok.get_vocab()["AAA"] == 5 and tok.get_vocab()["TTT"] == 5 + 63
    enc = tk.encode(tok, ["ACGTA", "acntac"])
    first = tok.convert_ids_to_tokens(enc["input_ids"][0])
    assert first == ["[CLS]", "ACG", "CGT", "GTA", "[SEP]", "[PAD]"]
    assert enc["input_ids"][0].tolist() == [1, 5 + 6, 5 + 27, 5 + 44, 2, 3]  # ACG = 0*16+1*4+2, CGT = 1*16+2*4+3 ...
    assert tok.convert_ids_to_tokens(enc["input_ids"][1]) == ["[CLS]", "[UNK]", "[UNK]", "[UNK]", "TAC", "[SEP]"]
    assert tk.to_kmers("ACGTA", 3) == "ACG CGT GTA"
    assert tk.from_kmers(tk.to_kmers("ACGTTGCA", 4)) == "ACGTTGCA"
    loaded = tk.load_tokenizer(tmp_path / "k3")
    assert tk.kmer_size(loaded) == 3
    assert (tk.encode(loaded, ["ACGTA"])["input_ids"] == enc["input_ids"][:1, :5]).all()
    six = tk.kmer_tokenizer()
    assert len(six) == 5 + 4 ** 6 and tk.kmer_size(six) == 6
    assert tk.encode(six, ["ACGTACGTAC"])["input_ids"].shape == (1, 2 + 10 - 6 + 1)
    with pytest.raises(ValueError, match="shorter than k"):
        tk.encode(six, ["ACG"])
    with pytest.raises(ValueError, match="k must be"):
        tk.kmer_tokenizer(0)


@pytest.mark.parametrize("bad, where", [(["ACGT", "ACXG"], "sequence 1: character 'X' at position 2"),
                                        (["ACGT", "AC-G"], "sequence 1: character '-'"),
                                        (["acgu"], "sequence 0: character 'u'"),
                                        (["ACGT", ""], "sequence 1 is empty")])
def test_bad_characters_rejected(bpe, bad, where):
    tok, _ = bpe
    with pytest.raises(ValueError, match=where):
        tk.encode(tok, bad)
    with pytest.raises(ValueError, match=where.split(":")[0]):
        tk.train_bpe_tokenizer(bad, vocab_size=20)


def test_encode_arguments(bpe):
    tok, _ = bpe
    with pytest.raises(TypeError, match="sequence 1 is int"):
        tk.encode(tok, ["ACGT", 5])
    with pytest.raises(ValueError, match="no sequences"):
        tk.encode(tok, [])
    one = tk.encode(tok, "ACGTACGT")  # a single string is one sequence, not a list of letters
    assert one["input_ids"].shape[0] == 1
    long = "ACGT" * 100
    fixed = tk.encode(tok, ["ACGT", "ACGTTT"], max_length=16)
    assert fixed["input_ids"].shape == (2, 16)
    with pytest.raises(ValueError, match="sequence 1 encodes to .* above max_length 10"):
        tk.encode(tok, ["ACGT", long], max_length=10)
    cut = tk.encode(tok, ["ACGT", long], max_length=10, truncation=True)
    assert cut["input_ids"].shape == (2, 10) and cut["input_ids"][1, -1] == tok.sep_token_id


def test_token_spans_and_centre_mask_bpe_and_kmer():
    """Hand-checked spans: BPE pieces laid end to end after [CLS]; overlapping k-mers start one base apart."""
    import torch

    from allelic.tokenize import centre_mask, kmer_tokenizer, token_spans, train_bpe_tokenizer

    bpe = train_bpe_tokenizer(["ACGTACGTTTGACCA" * 20], vocab_size=64)
    enc = tk.encode(bpe, ["ACGTACGTTTGACCA"])
    ids = enc["input_ids"]
    start, end = token_spans(bpe, ids)
    pieces = bpe.convert_ids_to_tokens(ids[0].tolist())
    real = [(p, int(s), int(e)) for p, s, e in zip(pieces, start[0], end[0]) if p not in ("[CLS]", "[SEP]")]
    assert "".join(p for p, _, _ in real) == "ACGTACGTTTGACCA"
    assert all(e - s == len(p) for p, s, e in real) and real[0][1] == 0 and real[-1][2] == 15
    m = centre_mask(bpe, ids, centre=7, flank=0)
    assert [p for p, keep in zip(pieces, m[0].tolist()) if keep] == [p for p, s, e in real if s <= 7 < e]
    k3 = kmer_tokenizer(3)
    ids = tk.encode(k3, ["ACGTAC", "ACG"])["input_ids"]  # the second is padded
    start, end = token_spans(k3, ids)
    assert start[0, 1:5].tolist() == [0, 1, 2, 3] and end[0, 1:5].tolist() == [3, 4, 5, 6]
    assert centre_mask(k3, ids, centre=3, flank=0)[0].tolist() == [False, False, True, True, True, False]
    assert not centre_mask(k3, ids, centre=3, flank=0)[1].any()  # "ACG" does not reach base 3
    assert torch.equal(start[1, 2:], end[1, 2:])  # [SEP] and padding: empty spans
