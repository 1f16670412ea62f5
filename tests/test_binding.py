"""Binding data sets: GC content and matching, the dinucleotide shuffle, the leak guard, the simulator's peaks."""
from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from allelic import binding as bd
from allelic.corpus import LeakError
from allelic.ledger import Ledger
from allelic.motifs import reverse_complement
from allelic.pwm import max_score

from conftest import random_dna

POS_SOURCE = "EntexExpress:regression_exp/input"


def _dinucleotides(s: str) -> Counter:
    return Counter(s[i:i + 2] for i in range(len(s) - 1))


# -- GC content and matching ---------------------------------------------------------------------------------------
def test_gc_content_hand_computed():
    gc = bd.gc_content(["GGCC", "ATAT", "ACGN", "NNNN", "acgt", "", "GATTACA"])
    np.testing.assert_allclose(gc[[0, 1, 2, 4, 6]], [1.0, 0.0, 2 / 3, 0.5, 2 / 7])
    assert np.isnan(gc[3]) and np.isnan(gc[5])
    assert bd.gc_content("GC").tolist() == [1.0]


def test_gc_matched_matches_histogram_and_is_deterministic():
    rng = np.random.default_rng(0)
    target = rng.beta(8, 6, 400)            # mean 0.57
    pool = rng.beta(4, 6, 20_000)           # mean 0.40: a mismatched pool
    assert stats.ks_2samp(target, pool).pvalue < 1e-6
    m = bd.gc_matched(target, pool, random_state=1)
    assert len(m.index) == 400 and len(np.unique(m.index)) == 400 and m.shortfall == 0
    bins = lambda x: np.bincount(np.minimum((x * 20).astype(int), 19), minlength=20)  # noqa: E731
    np.testing.assert_array_equal(bins(pool[m.index]), bins(target))
    assert stats.ks_2samp(target, pool[m.index]).pvalue > 0.05
    np.testing.assert_array_equal(m.index, bd.gc_matched(target, pool, random_state=1).index)
    assert not np.array_equal(m.index, bd.gc_matched(target, pool, random_state=2).index)
    assert bins(pool[bd.gc_matched(target, pool, 200, random_state=1).index]).sum() == 200


def test_gc_matched_records_the_shortfall():
    target = np.array([0.91, 0.92, 0.93, 0.94, 0.5, 0.5])
    pool = np.r_[np.full(2, 0.925), np.full(50, 0.52)]  # bin [0.90, 0.95) holds 2 of the 4 wanted
    m = bd.gc_matched(target, pool, random_state=0)
    row = m.bins.set_index("bin").loc[18]
    assert (row["n_wanted"], row["n_available"], row["n_taken"], row["shortfall"]) == (4, 2, 2, 2)
    assert m.shortfall == 2 and len(m.index) == 4 and {0, 1} <= set(m.index.tolist())


# -- dinucleotide shuffle ------------------------------------------------------------------------------------------
def test_dinucleotide_shuffle_preserves_dinucleotides():
    rng = np.random.default_rng(3)
    for seq in random_dna(rng, 20, 200) + ["ACGTNNACGGTTAACN" * 5]:
        out = bd.dinucleotide_shuffle(seq, rng)
        assert _dinucleotides(out) == _dinucleotides(seq)
        assert (out[0], out[-1], len(out)) == (seq[0], seq[-1], len(seq))
        if "N" not in seq:
            assert out != seq
    assert bd.dinucleotide_shuffle("ACGT" * 50, rng) == "ACGT" * 50  # a cycle: the only Eulerian path


def test_shuffled_background_is_seeded():
    seqs = random_dna(np.random.default_rng(4), 5, 100)
    a = bd.shuffled_background(seqs, random_state=7)
    assert a == bd.shuffled_background(seqs, random_state=7) != bd.shuffled_background(seqs, random_state=8)
    assert all(_dinucleotides(x) == _dinucleotides(s) for x, s in zip(a, seqs))


# -- leak guard on a synthetic fold with a planted corpus ------------------------------------------------------------
def _examples(rng, n=40):
    ref = random_dna(rng, n, 200)
    alt = [s[:100] + {"A": "C", "C": "G", "G": "T", "T": "A"}[s[100]] + s[101:] for s in ref]
    split = ["train"] * 28 + ["val"] * 6 + ["test"] * (n - 34)
    return pd.DataFrame({"example_id": [f"chr{i % 5 + 1}:{1000 + i}:X:Y" for i in range(n)],
                         "chrom": [f"chr{i % 5 + 1}" for i in range(n)], "assay": "CTCF",
                         "seq_ref": ref, "seq_alt": alt, "split": split})


@pytest.fixture
def planted(tmp_path):
    """Examples (28 train, 6 val, 6 test) and a corpus TSV: 8 random 456-bp CTCF-peak windows, two more holding a
    40-bp piece of a test window (one as the reverse complement of a seq_alt piece), one holding a piece of a val
    window, one too short; 30 random 200-bp background records, two more holding test pieces."""
    rng = np.random.default_rng(11)
    ex = _examples(rng)
    test = ex[ex["split"] == "test"]
    piece = test["seq_ref"].iat[0][20:60]
    alt_piece = reverse_complement(test["seq_alt"].iat[1][80:120])  # spans the SNV
    val_piece = ex.loc[ex["split"] == "val", "seq_ref"].iat[0][130:180]
    pos = random_dna(rng, 8, 456)
    flank = random_dna(rng, 6, 208)
    pos += [flank[0] + piece + flank[1], flank[2] + alt_piece + flank[3], flank[4][:203] + val_piece + flank[5][:203]]
    pos.append(random_dna(rng, 1, 150)[0])
    bg = random_dna(rng, 30, 200)
    bg += [bg[0][:100] + piece + bg[0][140:], bg[1][:150] + reverse_complement(piece)[:40] + bg[1][190:]]
    rows = [(POS_SOURCE, s) for s in pos] + [("DNA-Diffusion:DHS", s) for s in bg]
    path = tmp_path / "corpus.tsv"
    pd.DataFrame(rows, columns=["source", "sequence"]).to_csv(path, sep="\t", index=False)
    lines = {"pos_leak": [2 + 8, 2 + 9], "pos_val": 2 + 10, "pos_short": 2 + 11, "bg_leak": [2 + 12 + 30, 2 + 12 + 31]}
    return ex, path, lines


def test_entex_binding_set_drops_test_overlaps(planted):
    ex, path, lines = planted
    bs = bd.entex_binding_set(ex, path, n_bins=1, random_state=0)  # one GC bin: every background record is needed
    led = bs.ledger.table()
    leaks = set(led.loc[led["reason"] == "overlaps_test_window", "record"])
    assert {f"corpus.tsv:{i}" for i in lines["pos_leak"]} <= leaks
    assert {f"corpus.tsv:{i} window 0" for i in lines["bg_leak"]} <= leaks
    assert led.loc[led["record"] == f"corpus.tsv:{lines['pos_short']}", "reason"].tolist() == ["too_short"]
    t = bs.table
    assert set(t.columns) >= {"sequence", "bound", "source", "split", "gc"} and set(t["split"]) == {"train", "val"}
    assert (t["sequence"].str.len() == 200).all() and t["bound"].dtype == np.int64
    ex_pos = t[t["source"] == "examples:CTCF"]
    assert len(ex_pos) == 34 and ex_pos.groupby("split").size().to_dict() == {"train": 28, "val": 6}
    assert (ex_pos["record"].str.split(":").str[0] == ex_pos["chrom"]).all()
    assert t.loc[t["record"] == f"corpus.tsv:{lines['pos_val']}", "split"].tolist() == ["val"]  # follows its example
    assert (t["bound"] == 1).sum() == 34 + 9 and (t["bound"] == 0).sum() == 30
    assert bs.params["gc_shortfall"] == 43 - 30
    np.testing.assert_allclose(t["gc"], bd.gc_content(t["sequence"].tolist()))
    bd.assert_binding_leak_free(bs, ex)
    comp = bs.composition()
    assert comp["n"].sum() == len(t) and set(comp.columns) >= {"split", "bound", "source", "n", "gc_mean"}
    assert bs.key() == bd.entex_binding_set(ex, path, n_bins=1, random_state=0).key()

    bad = t.copy()
    bad.loc[len(bad)] = [ex["seq_alt"].iat[-1], 0, "planted", "train", 0.5, None, "leaky row"]
    with pytest.raises(LeakError, match="leaky row"):
        bd.assert_binding_leak_free(bd.BindingSet(bad, Ledger(), {}), ex)


def test_entex_binding_set_shuffled_and_errors(planted):
    ex, path, _ = planted
    bs = bd.entex_binding_set(ex, negatives="shuffled", random_state=0)
    pos, neg = bs.table[bs.table["bound"] == 1], bs.table[bs.table["bound"] == 0]
    assert len(pos) == len(neg) == 34
    of = dict(zip(pos["record"], pos["sequence"]))
    for rec, seq, split in zip(neg["record"], neg["sequence"], neg["split"]):
        orig = of[rec.removeprefix("shuffle of ")]
        assert _dinucleotides(seq) == _dinucleotides(orig) and seq != orig
    assert bs.composition().groupby(["split", "bound"])["n"].sum().to_dict() == {
        ("train", 0): 28, ("train", 1): 28, ("val", 0): 6, ("val", 1): 6}
    small = bd.entex_binding_set(ex, path, max_positives=10, random_state=0)
    assert (small.table["bound"] == 1).sum() == 10 and (small.ledger.table()["reason"] == "subsampled").any()
    only = bd.entex_binding_set(ex, path, negative_sources="^GUE:", random_state=0)  # no such background
    assert (only.table["bound"] == 0).sum() == 0 and only.params["gc_shortfall"] == (only.table["bound"] == 1).sum()
    assert (only.ledger.table()["reason"] == "not_background_source").sum() == 32
    with pytest.raises(ValueError, match="needs a corpus"):
        bd.entex_binding_set(ex)
    with pytest.raises(ValueError, match="split"):
        bd.entex_binding_set(ex.drop(columns="split"), negatives="shuffled")


# -- the simulator -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_examples(small_sim):
    from allelic import datasets, splits

    calls = small_sim.truth()[["chrom", "pos", "ref", "alt", "assay", "is_as"]]
    ex = datasets.examples_from_calls(calls, small_sim.fasta, label_col="is_as")
    return splits.split_examples(ex, test_chroms=["chr2"], val_chroms=[])


def _bed(paths) -> pd.DataFrame:
    return pd.concat([pd.read_csv(p, sep="\t", header=None, usecols=[0, 1, 2], names=["chrom", "start", "end"])
                      for p in paths])


def test_simulation_binding_set_peaks_and_motifs(small_sim, sim_examples, ctcf):
    bs = bd.simulation_binding_set(small_sim, sim_examples, random_state=0)
    t = bs.table
    assert set(t["chrom"]) == {"chr1"}  # chr2 holds the test examples
    s = small_sim.samples()
    peaks = _bed(s.loc[s["assay"] == "CTCF", "peaks"])
    every = _bed(s["peaks"])
    centres = set(((peaks["start"] + peaks["end"]) // 2).loc[peaks["chrom"] == "chr1"])
    pos, neg = t[t["bound"] == 1], t[t["bound"] == 0]
    starts = pos["record"].str.split(":").str[1].str.split("-").str[0].astype(int)
    assert set(starts + 100) == centres and len(pos) == len(centres) > 5
    assert len(neg) == len(pos)
    e = every[every["chrom"] == "chr1"]
    for r in neg["record"]:
        a = int(r.split(":")[1].split("-")[0])
        assert not ((e["start"] < a + 200) & (e["end"] > a)).any(), r
    ps, ns = max_score(pos["sequence"].tolist(), ctcf), max_score(neg["sequence"].tolist(), ctcf)
    assert (ps > 10).mean() >= 0.8 and (ns > 10).mean() <= 0.2 and ps.mean() > ns.mean() + 5
    led = bs.ledger.table()
    n_chr2 = len(peaks[peaks["chrom"] == "chr2"].drop_duplicates())  # every sample's BED repeats an active element
    assert (led["reason"] == "test_chromosome").sum() == n_chr2 > 0
    assert stats.ks_2samp(pos["gc"], neg["gc"]).pvalue > 0.05
    bd.assert_binding_leak_free(bs, sim_examples)

    shuf = bd.simulation_binding_set(small_sim, sim_examples, negatives="shuffled")
    assert (shuf.table["bound"] == 0).sum() == len(pos) and set(shuf.table["split"]) == {"train"}


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (os.environ.get("ALLELIC_PRETRAIN_CORPUS") and os.environ.get("ALLELIC_ENTEX_DIR")),
                    reason="set ALLELIC_PRETRAIN_CORPUS and ALLELIC_ENTEX_DIR to build the real EN-TEx binding set")
def test_real_entex_binding_set():
    from allelic import datasets, splits

    ex = datasets.examples_from_entex(os.environ["ALLELIC_ENTEX_DIR"])
    fold = splits.chromosome_folds(ex, 6, random_state=0)[0]
    bs = bd.entex_binding_set(fold, os.environ["ALLELIC_PRETRAIN_CORPUS"], max_positives=500, random_state=0)
    comp = bs.composition()
    by = comp.groupby("bound")["n"].sum()
    assert by[1] == 500 and by[0] == 500 - bs.params["gc_shortfall"]
    assert {"examples:CTCF", "EntexExpress:regression_exp/input"} <= set(comp.loc[comp["bound"] == 1, "source"])
    assert not comp.loc[comp["bound"] == 0, "source"].str.startswith("EntexExpress:regression_exp").any()
    gc = comp.groupby("bound").apply(lambda g: np.average(g["gc_mean"], weights=g["n"]), include_groups=False)
    assert abs(gc[0] - gc[1]) < 0.01
    bd.assert_binding_leak_free(bs, fold)
    assert (bs.ledger.table()["reason"] == "overlaps_test_window").any()


def test_composition_by_source_family():
    t = pd.DataFrame({"sequence": ["ACGT"] * 5, "bound": [1, 1, 0, 0, 0],
                      "source": ["examples:CTCF", "EntexExpress:regression_exp0/input", "EntexExpress:exp01/input",
                                 "EntexExpress:exp02/input", "GUE:GUE/prom/prom_300_all"],
                      "split": "train", "gc": [0.5, 0.5, 0.25, 0.75, 0.5], "chrom": None, "record": list("abcde")})
    c = bd.BindingSet(t).composition(coarse=True).set_index("source")
    assert c.loc["corpus EN-TEx promoters and windows", "n"] == 2
    assert c.loc["corpus EN-TEx promoters and windows", "gc_mean"] == pytest.approx(0.5)
    assert set(c.index) == {"labelled windows (examples)", "corpus CTCF-peak windows",
                            "corpus EN-TEx promoters and windows", "corpus promoters (GUE)"}
