"""Pretraining on a corpus: reading, windows, the leak check, MLM accuracy, checkpoints, exact resume, the command."""
from __future__ import annotations

import gzip
import inspect
import itertools
import json
import math
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from allelic import cli, config
from allelic.motifs import reverse_complement as rc
from allelic.pretrain import (HOLDOUT_BLOCK, LeakError, PretrainSpec, assert_no_overlap, corpus_windows, iter_corpus, mlm_accuracy,
                              pretrain)

#: hidden 32, 2 layers: seconds per run on 2 CPU cores
TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            learning_rate=3e-3, batch_size=32)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on 2 cores shared with other jobs, two spinning threads make tiny models 10-40x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _dna(rng, n, length):
    return ["".join(s) for s in rng.choice(list("ACGT"), size=(n, length))]


def _structured(rng, n, length):
    """Concatenations of a few random 8-mers: masked tokens are predictable from their context."""
    words = _dna(rng, 6, 8)
    return ["".join(rng.choice(words, length // 8)) for _ in range(n)]


# ---------------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------------
def test_iter_corpus_reads_fasta_gz_and_tsv_from_a_folder(tmp_path):
    (tmp_path / "a.fa").write_text(">r1 first record\nACGTac\ngtNN\n\n>r2\nTTTT\n")
    with gzip.open(tmp_path / "b.fasta.gz", "wt") as fh:
        fh.write(">g1\nGG\nCC\n")
    (tmp_path / "c.tsv").write_text("source\tsequence\textra\nsrcA\tacgt\tx\nsrcB\tNNAC\ty\n")
    with gzip.open(tmp_path / "d.tsv.gz", "wt") as fh:
        fh.write("sequence\nCCCA\n")
    (tmp_path / "notes.txt").write_text("not a corpus file\n")
    assert list(iter_corpus(tmp_path)) == [("r1", "ACGTACGTNN"), ("r2", "TTTT"), ("g1", "GGCC"), ("srcA", "ACGT"),
                                           ("srcB", "NNAC"), ("d.tsv.gz", "CCCA")]
    assert list(iter_corpus([tmp_path / "d.tsv.gz", tmp_path / "a.fa"]))[0] == ("d.tsv.gz", "CCCA")


def test_bad_corpus_files_are_named_with_the_line(tmp_path, monkeypatch):
    cases = {"nocol.tsv": ("source\tseq\nx\tACGT\n", r"nocol.tsv:1: no 'sequence' column"),
             "early.fa": ("ACGT\n>r\nACGT\n", r"early.fa:1: sequence line before the first '>' header"),
             "char.fa": (">r\nACGT\nACXT\n", r"char.fa:3: character 'X' at column 3"),
             "char.tsv": ("sequence\nACGT\nAC-T\n", r"char.tsv:3: character '-'")}
    for name, (text, msg) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=msg):
            list(iter_corpus(tmp_path / name))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(iter_corpus(tmp_path / "missing.fa"))
    monkeypatch.delenv("ALLELIC_PRETRAIN_CORPUS", raising=False)
    assert config.pretrain_corpus() is None
    monkeypatch.setenv("ALLELIC_PRETRAIN_CORPUS", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="ALLELIC_PRETRAIN_CORPUS"):
        config.pretrain_corpus()
    assert config.pretrain_corpus(tmp_path / "char.fa") == (tmp_path / "char.fa").resolve()
    monkeypatch.setenv("ALLELIC_TOKENIZER_DIR", str(tmp_path))  # a folder without tokenizer.json
    with pytest.raises(FileNotFoundError, match="ALLELIC_TOKENIZER_DIR.*lacks tokenizer.json"):
        config.tokenizer_dir()


# ---------------------------------------------------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------------------------------------------------
def test_chunk_counts_and_the_ledger_add_up():
    rng = np.random.default_rng(0)
    lengths = [450, 430, 40, 120, 200]  # -> 200+200+50 | 200+200+(30 short) | (40 short) | 120 | 200
    seqs = [s[:n] for s, n in zip(_dna(rng, 5, 450), lengths)]
    seqs.append("N" * 30 + _dna(rng, 1, 170)[0])  # 15 % N > 10 %
    cw = corpus_windows(seqs, window=200, min_length=50, holdout_frac=0, reverse_complement=False)
    assert sorted(map(len, cw.train)) == [50, 120, 200, 200, 200, 200, 200] and cw.holdout == []
    assert cw.n_chunks == 10 and cw.n_sequences == 6 and cw.n_bases == sum(lengths) + 200
    assert len(cw.train) + len(cw.ledger) == cw.n_chunks
    led = cw.ledger.table()
    assert led["reason"].value_counts().to_dict() == {"too_short": 2, "too_many_n": 1}
    assert set(led["record"]) == {"sequence 1 window 2", "sequence 2 window 0", "sequence 5 window 0"}
    assert seqs[0][400:] in cw.train and all(any(w in s for s in seqs) for w in cw.train)


def _source_of(w, seqs):
    hits = {i for i, s in enumerate(seqs) if w in s or rc(w) in s}
    assert len(hits) == 1
    return hits.pop()


def test_holdout_by_source_subsampling_and_determinism():
    seqs = _dna(np.random.default_rng(1), 200, 1000)  # 5 chunks each, 1000 in all
    cw = corpus_windows(seqs, window=200, n_windows=300, holdout_frac=0.2, random_state=3)
    assert len(cw.train) + len(cw.holdout) == 300
    assert cw.ledger.summary().set_index("reason")["n"].to_dict() == {"subsampled": 700}
    tr, ho = {_source_of(w, seqs) for w in cw.train}, {_source_of(w, seqs) for w in cw.holdout}
    assert not tr & ho and 0.1 < len(ho) / len(tr | ho) < 0.3
    again = corpus_windows(seqs[::-1], window=200, n_windows=300, holdout_frac=0.2, random_state=3)  # order-free
    assert (again.train, again.holdout) == (cw.train, cw.holdout)
    other = corpus_windows(seqs, window=200, n_windows=300, holdout_frac=0.2, random_state=4)
    assert set(other.train) != set(cw.train)


def test_reverse_complement_augmentation_puts_windows_on_both_strands():
    seqs = _dna(np.random.default_rng(2), 100, 1000)
    chunks = {s[i:i + 200] for s in seqs for i in range(0, 1000, 200)}
    cw = corpus_windows(seqs, window=200, holdout_frac=0, reverse_complement=True)
    n_rc = sum(w not in chunks and rc(w) in chunks for w in cw.train)
    n_fwd = sum(w in chunks for w in cw.train)
    assert n_rc + n_fwd == len(cw.train) == 500 and 200 < n_rc < 300


# ---------------------------------------------------------------------------------------------------------------------
# leak check
# ---------------------------------------------------------------------------------------------------------------------
def test_windows_sharing_a_kmer_with_excluded_sequences_are_dropped():
    rng = np.random.default_rng(3)
    seqs, (a, b) = _dna(rng, 20, 600), _dna(rng, 2, 200)
    seqs[3] = seqs[3][:250] + a[50:90] + seqs[3][290:]           # 40 bp of a in window 1 (200-400) of sequence 3
    seqs[7] = seqs[7][:20] + rc(b[100:140]) + seqs[7][60:]       # the reverse complement of 40 bp of b, window 0
    cw = corpus_windows(seqs, window=200, holdout_frac=0, exclude=[a, b])
    led = cw.ledger.table()
    assert cw.n_excluded == 2 and len(cw.train) == 58
    assert led.set_index("record")["reason"].to_dict() == {"sequence 3 window 1": "overlaps_excluded",
                                                            "sequence 7 window 0": "overlaps_excluded"}
    assert led["detail"].str.contains("excluded sequence 0").sum() == 1
    assert led["detail"].str.contains("excluded sequence 1").sum() == 1


def test_leak_check_of_sampling_candidates_only_keeps_the_same_sample(monkeypatch):
    """With n_windows, only windows that could still enter the bottom-k sample are checked for shared k-mers; the
    sample is the one a check of every window gives (a brute-force filter first, then the same sampler), and every
    chunk is still one ledger row."""
    import allelic.corpus as P

    rng = np.random.default_rng(5)
    seqs, excl = _dna(rng, 300, 600), _dna(rng, 40, 200)
    for i in range(0, 300, 3):  # a third of the sequences carry 40 bp of an excluded sequence
        e = excl[i % 40]
        seqs[i] = seqs[i][:100] + e[30:70] + seqs[i][140:]
    monkeypatch.setattr(P, "_BATCH", 60)  # many flushes, as on a real corpus
    lazy = corpus_windows(seqs, window=200, n_windows=150, holdout_frac=0, exclude=excl, random_state=2)
    chunks = [(s[j:j + 200], f"sequence {i} window {j // 200}") for i, s in enumerate(seqs) for j in range(0, 600, 200)]
    km = {e[p:p + 32] for e in excl for p in range(len(e) - 31)}
    km |= {rc(x) for x in km}
    clean = [(w, r) for w, r in chunks if not any(w[p:p + 32] in km for p in range(len(w) - 31))]
    ref = P._Sampler(150, 2, P.Ledger())
    for w, r in clean:
        ref.offer(w, r, False, "corpus")
    want = sorted(x[2] for x in ref.kept())
    got = sorted((w if any(w in s for s in seqs) else rc(w)) for w in lazy.train)
    assert got == want and len(clean) < len(chunks) - 50
    assert len(lazy.train) + len(lazy.ledger) == lazy.n_chunks == 900
    assert 0 < lazy.n_excluded < len(chunks) - len(clean)  # fewer windows checked (and dropped) than exist


def test_assert_no_overlap_names_the_windows_and_the_kmer():
    rng = np.random.default_rng(4)
    pre, test = _dna(rng, 100, 200), _dna(rng, 50, 200)
    assert_no_overlap(pre, test)  # disjoint: no error
    pre[60] = pre[60][:100] + rc(test[30][0:40]) + pre[60][140:]
    pre[42] = pre[42][:10] + test[17][10:50] + pre[42][50:]
    with pytest.raises(LeakError, match="pretraining window 42 .* test window 17") as e:
        assert_no_overlap(pre, test)
    assert (e.value.pretrain_index, e.value.test_index, e.value.kmer) == (42, 17, test[17][10:42])
    pre[42] = _dna(rng, 1, 200)[0]
    with pytest.raises(LeakError) as e:
        assert_no_overlap(pre, test, k=32)
    assert (e.value.pretrain_index, e.value.test_index, e.value.kmer) == (60, 30, rc(test[30][0:40])[:32])


# ---------------------------------------------------------------------------------------------------------------------
# masked-token accuracy
# ---------------------------------------------------------------------------------------------------------------------
class _FixedLogits(torch.nn.Module):
    """A stand-in MLM: logits 50 x one-hot of the *true* tokens (an oracle), or all zeros."""

    def __init__(self, true_ids, vocab, oracle):
        super().__init__()
        self.true_ids, self.vocab, self.oracle, self.offset = true_ids, vocab, oracle, 0

    def forward(self, input_ids, attention_mask):
        b, n = input_ids.shape
        logits = torch.zeros(b, n, self.vocab)
        if self.oracle:
            logits = 50.0 * torch.nn.functional.one_hot(self.true_ids[self.offset:self.offset + b], self.vocab).float()
        self.offset += b
        return types.SimpleNamespace(logits=logits)


def test_mlm_accuracy_of_an_oracle_is_one_and_of_uniform_logits_log_vocab():
    from allelic.tokenize import encode, train_bpe_tokenizer

    seqs = _dna(np.random.default_rng(5), 60, 200)
    tok = train_bpe_tokenizer(seqs, vocab_size=64)
    ids = encode(tok, seqs)["input_ids"]
    oracle = mlm_accuracy(_FixedLogits(ids, len(tok), True), tok, seqs, batch_size=16, device="cpu")
    uniform = mlm_accuracy(_FixedLogits(ids, len(tok), False), tok, seqs, batch_size=16, device="cpu")
    assert oracle["accuracy"] == 1.0 and oracle["loss"] < 1e-6
    assert uniform["accuracy"] == 0.0  # arg-max of equal logits is id 0, [UNK], never a label
    assert uniform["loss"] == pytest.approx(math.log(len(tok)), rel=1e-6)
    n_real = int((encode(tok, seqs)["attention_mask"].sum() - 2 * len(seqs)))  # without [CLS] and [SEP]
    assert oracle["n_masked"] == uniform["n_masked"] and abs(oracle["n_masked"] / n_real - 0.15) < 0.03


# ---------------------------------------------------------------------------------------------------------------------
# pretraining
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    seqs = _structured(np.random.default_rng(6), 100, 600)  # 300 windows of 200 bp
    spec = PretrainSpec(**TINY, n_windows=None, holdout_frac=0.1, epochs=2, random_state=1)
    return seqs, spec, pretrain(seqs, spec=spec, out_dir=tmp_path_factory.mktemp("pt") / "ckpt", progress=False)


def test_pretrain_writes_a_loadable_checkpoint_with_a_card(tiny_run):
    from allelic.models import DNABert2ForMaskedLM, DNABert2ForSequenceClassification, load_model
    from allelic.tokenize import encode, load_tokenizer

    seqs, spec, res = tiny_run
    d, card = res.checkpoint, res.card
    for f in ("config.json", "model.safetensors", "tokenizer.json", "model_card.json", "history.tsv"):
        assert (d / f).is_file(), f
    assert not d.with_name(d.name + ".partial").exists() and not (d / "train").exists()
    assert json.loads((d / "model_card.json").read_text()) == card
    assert "NOT the published" in card["model"]
    assert (card["n_sequences"], card["n_bases"], card["n_chunks"]) == (100, 60_000, 300)
    assert card["n_windows_train"] + card["n_windows_holdout"] == 300 and card["excluded"] == 0
    tok = load_tokenizer(d)
    assert len(tok) == card["vocab_size"] <= 64
    train = res.windows.train
    # 2 full epochs: every real token ([CLS], [SEP] included) of every training window, twice
    assert card["tokens_seen"] == 2 * int(encode(tok, train)["attention_mask"].sum())
    assert card["steps"] == 2 * math.ceil(len(train) / 32) == len(res.history) == len(card["mlm_loss_curve"]["loss"])
    assert card["mlm_loss_last"] < card["mlm_loss_first"]
    mlm = load_model(d, task="mlm")
    assert isinstance(mlm, DNABert2ForMaskedLM)
    again = mlm_accuracy(mlm, tok, res.windows.holdout, device="cpu", random_state=spec.random_state)
    assert again == pytest.approx(card["heldout"])  # the saved weights are the evaluated ones
    assert 0 < card["heldout"]["n_masked"] and 0 <= card["baseline"]["accuracy"] <= 1
    clf = load_model(d, task="classification")
    assert isinstance(clf, DNABert2ForSequenceClassification)
    assert torch.equal(clf.state_dict()["bert.encoder.layer.0.attention.self.Wqkv.weight"],
                       mlm.state_dict()["bert.encoder.layer.0.attention.self.Wqkv.weight"])


def test_same_key_is_reused_without_training(tiny_run, monkeypatch, tmp_path):
    import allelic.train

    seqs, spec, res = tiny_run
    mtime = (res.checkpoint / "model_card.json").stat().st_mtime_ns

    def no_training(*a, **k):
        raise AssertionError("pretrain_mlm called for a cached checkpoint")

    monkeypatch.setattr(allelic.pretrain, "pretrain_mlm", no_training)
    hit = pretrain(seqs, spec=spec, out_dir=res.checkpoint)
    assert hit.checkpoint == res.checkpoint and hit.card == res.card and hit.windows is None
    assert (res.checkpoint / "model_card.json").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(hit.history, res.history, check_dtype=False)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not a pretraining checkpoint"):  # never overwrites an unrelated folder
        pretrain(seqs, spec=spec, out_dir=tmp_path)
    stamp = {"sequences": 1}
    assert len({spec.key(stamp), PretrainSpec(**{**TINY, "random_state": 2}).key(stamp), spec.key(stamp, None, "x"),
                spec.key(stamp, "tok")}) == 4


class _Killed(Exception):
    pass


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from allelic.models import DNABert2ForMaskedLM

    seqs = _structured(np.random.default_rng(7), 16, 400)  # 32 windows -> 4 steps of 8
    spec = PretrainSpec(**{**TINY, "batch_size": 8}, n_windows=None, holdout_frac=0.0, epochs=1, checkpoint_every=1,
                        random_state=2)
    full = pretrain(seqs, spec=spec, out_dir=tmp_path / "full")
    forward, calls = DNABert2ForMaskedLM.forward, []

    def dies_at_three(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:  # killed in step 3, after the checkpoint of step 2
            raise _Killed
        return forward(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(DNABert2ForMaskedLM, "forward", dies_at_three)
        with pytest.raises(_Killed):
            pretrain(seqs, spec=spec, out_dir=tmp_path / "cut")
    assert (tmp_path / "cut.partial" / "train" / "checkpoint.pt").is_file()
    resumed = pretrain(seqs, spec=spec, out_dir=tmp_path / "cut", resume=True)
    assert resumed.card["resumed"] and not full.card["resumed"]
    a, b = load_file(full.checkpoint / "model.safetensors"), load_file(resumed.checkpoint / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(full.history, resumed.history)
    assert resumed.card["tokens_seen"] == full.card["tokens_seen"]


_HAS_STOP = "stop_after" in inspect.signature(__import__("allelic.train").train.pretrain_mlm).parameters


@pytest.mark.xfail(not _HAS_STOP, strict=False, reason="allelic.train.pretrain_mlm has no stop_after parameter yet")
def test_pretrain_mlm_stop_after_and_resume_is_exact(tmp_path):
    from allelic.models import DNABert2Config, DNABert2ForMaskedLM
    from allelic.tokenize import train_bpe_tokenizer
    from allelic.train import TrainConfig, pretrain_mlm

    seqs = _structured(np.random.default_rng(8), 32, 200)
    tok = train_bpe_tokenizer(seqs, vocab_size=64)

    def model():
        torch.manual_seed(0)
        return DNABert2ForMaskedLM(DNABert2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                                  num_attention_heads=4, intermediate_size=64,
                                                  pad_token_id=tok.pad_token_id))

    cfg = TrainConfig(learning_rate=2e-3, batch_size=8, epochs=2, checkpoint_every=1, early_stopping_patience=None,
                      progress=False, random_state=3)
    full = pretrain_mlm(model(), tok, seqs, config=cfg, out_dir=tmp_path / "a")
    pretrain_mlm(model(), tok, seqs, config=cfg, out_dir=tmp_path / "b", stop_after=3)
    resumed = pretrain_mlm(model(), tok, seqs, config=cfg, out_dir=tmp_path / "b", resume=True)
    for (name, x), y in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(x, y), name


# ---------------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------------
def test_cli_pretrains_a_tiny_corpus_and_excludes_a_test_window(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(9)
    seqs = _dna(rng, 30, 400)
    (tmp_path / "corpus.fa").write_text("".join(f">s{i}\n{s[:200]}\n{s[200:]}\n" for i, s in enumerate(seqs)))
    pd.DataFrame({"seq_ref": [seqs[4][150:350]]}).to_csv(tmp_path / "test.tsv", sep="\t", index=False)
    monkeypatch.delenv("ALLELIC_TOKENIZER_DIR", raising=False)
    monkeypatch.setenv("ALLELIC_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["pretrain", "--corpus", str(tmp_path / "corpus.fa"), "--n-windows", "0", "--epochs", "1",
                     "--batch-size", "32", "--exclude", str(tmp_path / "test.tsv")]) == 0
    out = capsys.readouterr().out
    ckpt = Path(out.splitlines()[0])
    assert ckpt.parent == tmp_path / "data" / "models" and ckpt.name.startswith("pretrained-")
    card = json.loads((ckpt / "model_card.json").read_text())
    assert card["excluded"] == 2 and card["n_windows_train"] + card["n_windows_holdout"] == 58  # both windows of s4
    assert "held-out masked-token accuracy" in out and (ckpt / "model.safetensors").is_file()


def test_cli_without_a_corpus_says_how_to_give_one(monkeypatch, capsys):
    monkeypatch.delenv("ALLELIC_PRETRAIN_CORPUS", raising=False)
    assert cli.main(["pretrain"]) == 2
    err = capsys.readouterr().err
    assert "--corpus" in err and "ALLELIC_PRETRAIN_CORPUS" in err


# ---------------------------------------------------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_corpus_with_the_published_tokenizer(real_corpus, published_tokenizer):
    from allelic.tokenize import encode, load_tokenizer

    tok = load_tokenizer(published_tokenizer)
    assert [tok.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]")] == [1, 2, 3, 4]
    assert len(tok) == 4096
    windows = [s[:200] for _, s in itertools.islice(iter_corpus(real_corpus), 3000) if len(s) >= 200][:2000]
    assert len(windows) == 2000
    n_tok = encode(tok, windows)["attention_mask"].sum(1).float()
    # DNABERT-2's BPE averages ~4-5 bp per token: 200 bp -> ~40-50 tokens plus [CLS] and [SEP]
    assert 30 < n_tok.mean() < 60 and n_tok.min() >= 10 and n_tok.max() <= 100


@pytest.mark.realdata
def test_real_corpus_counts_match_its_description(real_corpus):
    cw = corpus_windows(real_corpus, window=200, n_windows=2000, random_state=0)
    assert cw.n_sequences == 272_268  # SOURCE.md
    assert round(cw.n_bases / 1e6, 1) == 83.1
    assert len(cw.train) + len(cw.holdout) == 2000 and len(cw.train) + len(cw.holdout) + len(cw.ledger) == cw.n_chunks
    assert 0.01 < len(cw.holdout) / 2000 < 0.03


def test_holdout_of_a_chromosome_is_by_10kb_blocks():
    """A genome has few, long sequences: the held-out windows are whole 10-kb blocks of them, not whole chromosomes
    (a 2-chromosome genome would otherwise hold out nothing or half)."""
    rng = np.random.default_rng(3)
    chrom = "".join(rng.choice(list("ACGT"), 200_000))
    cw = corpus_windows([chrom], holdout_frac=0.2, reverse_complement=False, random_state=1)
    assert len(cw.train) + len(cw.holdout) == 1000 and 0 < len(cw.holdout) < 1000
    blocks = {chrom.index(w) // HOLDOUT_BLOCK for w in cw.holdout}
    assert len(cw.holdout) == 50 * len(blocks)  # every window of a held-out block (10 kb = 50 windows) is held out
