"""Leak-free training examples: windows, label aggregation, splits, balance, and the real EN-TEx tables."""
import warnings

import numpy as np
import pandas as pd
import pytest

from allelic import datasets as ds
from allelic.ledger import Ledger

W = 200


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """A tiny indexed FASTA: chr1 1,000 bp, chr2 500 bp (60-bp lines, soft-masked stretch on chr2)."""
    import pysam

    rng = np.random.default_rng(0)
    seqs = {"chr1": "".join(rng.choice(list("ACGT"), 1000)), "chr2": "".join(rng.choice(list("ACGT"), 500))}
    fa = tmp_path_factory.mktemp("fa") / "tiny.fa"
    text = {"chr1": seqs["chr1"], "chr2": seqs["chr2"][:200] + seqs["chr2"][200:260].lower() + seqs["chr2"][260:]}
    fa.write_text("".join(f">{c}\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n" for c, s in text.items()))
    pysam.faidx(str(fa))
    return fa, seqs


def _calls(rows, seqs=None, label="called"):
    """rows: (chrom, pos, alt, assay, call[, ref]); ref taken from the genome when not given."""
    out = []
    for r in rows:
        chrom, pos, alt, assay, call = r[:5]
        ref = r[5] if len(r) > 5 else seqs[chrom][pos - 1]
        out.append({"sample": f"s{len(out)}", "chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "assay": assay, label: call})
    return pd.DataFrame(out)


def _other(base):
    return {"A": "G", "C": "T", "G": "A", "T": "C"}[base.upper()]


# -- windows ----------------------------------------------------------------------------------------------------
def test_windows_equal_hand_slices(genome):
    fa, seqs = genome
    sites = [("chr1", 101), ("chr1", 500), ("chr1", 901), ("chr2", 250), ("chr2", 230)]
    calls = _calls([(c, p, _other(seqs[c][p - 1]), "CTCF", True) for c, p in sites], seqs)
    ex = ds.examples_from_calls(calls, fa, window=W, label_col="called")
    assert list(ex.table.columns) == ds.EXAMPLE_COLUMNS
    assert len(ex) == len(sites) and len(ex.ledger) == 0
    for r in ex.table.itertuples():
        want = seqs[r.chrom][r.pos - 1 - 100: r.pos - 1 + 100].upper()
        assert r.seq_ref == want and len(r.seq_ref) == W and r.seq_ref[100] == r.ref
        assert r.seq_alt[100] == r.alt and r.seq_alt[:100] == want[:100] and r.seq_alt[101:] == want[101:]
        assert r.example_id == f"{r.chrom}:{r.pos}:{r.ref}:{r.alt}"
    assert list(ex.table["example_id"].str.split(":").str[:2].str.join(":")) == [
        "chr1:101", "chr1:500", "chr1:901", "chr2:230", "chr2:250"]  # sorted by chromosome and position
    odd = ds.examples_from_calls(calls.iloc[[1]], fa, window=51, label_col="called").table.iloc[0]
    assert odd.seq_ref == seqs["chr1"][499 - 25: 499 + 26] and odd.seq_ref[25] == odd.ref


def test_window_off_contig_goes_to_ledger(genome):
    fa, seqs = genome
    # chr1 is 1,000 bp: a 200-bp window around pos p spans [p - 101, p + 99) 0-based
    sites = [("chr1", 100), ("chr1", 101), ("chr1", 901), ("chr1", 902), ("chr2", 401), ("chr2", 402)]
    calls = _calls([(c, p, _other(seqs[c][p - 1]), "CTCF", 1) for c, p in sites], seqs)
    ex = ds.examples_from_calls(calls, fa, window=W, label_col="called")
    assert list(zip(ex.table["chrom"], ex.table["pos"])) == [("chr1", 101), ("chr1", 901), ("chr2", 401)]
    led = ex.ledger.table()
    assert (led["reason"] == "window_off_contig").sum() == 3
    assert sorted(led["record"].str.split(":").str[:2].str.join(":")) == ["chr1:100", "chr1:902", "chr2:402"]


def test_ref_mismatch_raises_or_drops(genome):
    fa, seqs = genome
    wrong = _other(seqs["chr1"][299])
    rows = [("chr1", 300, _other(wrong), "CTCF", 1, wrong), ("chr1", 500, _other(seqs["chr1"][499]), "CTCF", 0)]
    calls = _calls(rows, seqs)
    with pytest.raises(ValueError, match=r"tiny\.fa.*chr1:300.*wrong genome build"):
        ds.examples_from_calls(calls, fa, label_col="called")
    ex = ds.examples_from_calls(calls, fa, label_col="called", on_ref_mismatch="drop")
    assert list(ex.table["pos"]) == [500]
    assert ex.ledger.table()[["reason"]].squeeze() == "ref_mismatch"


def test_contigs_not_snvs_and_missing_calls(genome):
    fa, seqs = genome
    calls = _calls([("chr1", 300, _other(seqs["chr1"][299]), "CTCF", 1), ("chrUn", 300, "A", "CTCF", 1, "C"),
                    ("chr1", 400, "AT", "CTCF", 1), ("chr1", 410, seqs["chr1"][409], "CTCF", 1),
                    ("chr1", 420, _other(seqs["chr1"][419]), "CTCF", None),
                    ("chr1", 430, _other(seqs["chr1"][429]), "POL2", 1)], seqs)
    ex = ds.examples_from_calls(calls, fa, label_col="called", assays=["CTCF"])
    assert list(ex.table["pos"]) == [300]
    assert ex.ledger.summary().set_index("reason")["n"].to_dict() == {
        "assay_not_selected": 1, "contig_not_in_fasta": 1, "no_call": 1, "not_snv": 2}
    with pytest.raises(ValueError, match="none of the calls' contigs"):
        ds.examples_from_calls(_calls([("1", 300, "A", "CTCF", 1, "C")]), fa, label_col="called")
    with pytest.raises(ValueError, match="missing column.*called"):
        ds.examples_from_calls(calls.drop(columns="called"), fa, label_col="called")
    with pytest.raises(FileNotFoundError, match="nope.fa"):
        ds.examples_from_calls(calls, fa.parent / "nope.fa", label_col="called")


# -- aggregation -----------------------------------------------------------------------------------------------
def test_aggregation_any_majority_all(genome):
    fa, seqs = genome
    table = {  # (pos, assay): calls over measurements (donors x tissues)
        (300, "CTCF"): [1, 0, 0], (400, "CTCF"): [1, 1, 0], (500, "CTCF"): [1, 1], (600, "CTCF"): [0, 0],
        (700, "CTCF"): [1, 0], (700, "POL2"): [0], (800, "CTCF"): [1],
    }
    rows = [("chr1", p, _other(seqs["chr1"][p - 1]), a, bool(c)) for (p, a), cs in table.items() for c in cs]
    calls = _calls(rows, seqs)
    expect = {"any": [1, 1, 1, 0, 1, 0, 1], "majority": [0, 1, 1, 0, 0, 0, 1], "all": [0, 0, 1, 0, 0, 0, 1]}
    for agg, labels in expect.items():
        t = ds.examples_from_calls(calls, fa, label_col="called", aggregate=agg).table
        got = dict(zip(zip(t["pos"], t["assay"]), t["label"]))
        assert [got[k] for k in table] == labels, agg
        assert dict(zip(zip(t["pos"], t["assay"]), zip(t["n_as"], t["n_measurements"]))) == {
            k: (sum(v), len(v)) for k, v in table.items()}
    t = ds.examples_from_calls(calls, fa, label_col="called").table
    assert len(t) == len(table) and t.duplicated(["example_id", "assay"]).sum() == 0  # one example per SNV x assay
    assert (t["example_id"].value_counts() == 2).sum() == 1  # pos 700 in two assays: two examples, one SNV
    ints = calls.assign(called=calls["called"].astype(int))
    assert ds.examples_from_calls(ints, fa, label_col="called").table["label"].tolist() == t["label"].tolist()
    few = ds.examples_from_calls(calls, fa, label_col="called", min_measurements=2)
    assert sorted(few.table["pos"].unique()) == [300, 400, 500, 600, 700] and len(few) == 5
    assert (few.ledger.table()["reason"] == "too_few_measurements").sum() == 2
    with pytest.raises(ValueError, match="aggregate"):
        ds.examples_from_calls(calls, fa, label_col="called", aggregate="mean")
    with pytest.raises(ValueError, match="not a 0/1"):
        ds.examples_from_calls(calls.assign(called=2), fa, label_col="called")


# -- random example tables for the leak properties ---------------------------------------------------------------
def _rc(s):
    return s.translate(str.maketrans("ACGT", "TGCA"))[::-1]


def _random_examples(seed, window=W):
    """Positions clustered so that windows overlap, SNVs measured in several assays, repeated sequences (same strand
    and reverse complement) on other chromosomes."""
    rng = np.random.default_rng(seed)
    n_chroms = int(rng.integers(3, 9))
    rows = []
    for c in range(n_chroms):
        chrom = f"chr{c + 1}"
        for _ in range(int(rng.integers(1, 8))):  # clusters
            centre = int(rng.integers(1_000, 3_000_000))
            for p in centre + rng.integers(-400, 400, size=int(rng.integers(1, 6))):
                for assay in rng.choice(["CTCF", "POL2", "H3K27ac"], size=int(rng.integers(1, 4)), replace=False):
                    rows.append((chrom, int(p), assay))
    t = pd.DataFrame(rows, columns=["chrom", "pos", "assay"]).drop_duplicates(["chrom", "pos", "assay"])
    seq_of = {k: "".join(rng.choice(list("ACGT"), window)) for k in set(zip(t["chrom"], t["pos"]))}
    snvs = sorted(seq_of)
    for _ in range(int(rng.integers(0, 5))):  # a window repeated elsewhere, maybe on the other strand
        a, b = (snvs[i] for i in rng.choice(len(snvs), 2, replace=False))
        seq_of[b] = seq_of[a] if rng.random() < 0.5 else _rc(seq_of[a])
    t["ref"] = [seq_of[k][window // 2] for k in zip(t["chrom"], t["pos"])]
    t["alt"] = t["ref"].map(_other)
    t["seq_ref"] = [seq_of[k] for k in zip(t["chrom"], t["pos"])]
    t["seq_alt"] = [s[:window // 2] + a + s[window // 2 + 1:] for s, a in zip(t["seq_ref"], t["alt"])]
    t["example_id"] = t["chrom"] + ":" + t["pos"].astype(str) + ":" + t["ref"] + ":" + t["alt"]
    t["label"] = rng.integers(0, 2, len(t))
    t["n_measurements"] = 1
    t["n_as"] = t["label"]
    return ds.Examples(t[ds.EXAMPLE_COLUMNS].reset_index(drop=True), Ledger(), window, {"seed": seed})


def _independent_leak_check(t, window):
    """Brute force over all pairs, written without the module's code."""
    split = t["split"].to_numpy()
    differ = split[:, None] != split[None, :]
    chrom, pos = t["chrom"].to_numpy(), t["pos"].to_numpy()
    same_chrom = chrom[:, None] == chrom[None, :]
    assert not (same_chrom & (np.abs(pos[:, None] - pos[None, :]) < window) & differ).any(), "overlap/SNV leak"
    keys = []
    for s in list(t["seq_ref"]) + list(t["seq_alt"]):
        keys.append(min(s, _rc(s)))
    keys = np.array(keys, dtype=object)
    both = np.concatenate([split, split])
    same_seq = keys[:, None] == keys[None, :]
    assert not (same_seq & (both[:, None] != both[None, :])).any(), "duplicate-sequence leak"


def _key(t):
    return sorted(zip(t["example_id"], t["assay"]))


@pytest.mark.parametrize("seed", range(32))
def test_splits_are_leak_free_on_random_tables(seed):
    ex = _random_examples(seed)
    rng = np.random.default_rng(seed + 1000)
    n = len(ex)
    for scheme, kw in [("chromosome", {}), ("chromosome", {"test_frac": 0.3, "val_frac": 0.2}),
                       ("bins", {"bin_size": int(rng.choice([1_000, 100_000, 1_000_000]))})]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a table on 3 chromosomes can leave val empty
            sp = ds.split_examples(ex, scheme=scheme, random_state=seed, **kw)
        ds.assert_leak_free(sp)
        _independent_leak_check(sp.table, W)
        assert _key(sp.table) == _key(ex.table) and set(sp.table["split"]) <= set(ds.SPLITS)
        assert (sp.table["split"] == "train").any()
        assert sp.table.groupby("leak_group")["split"].nunique().max() == 1
    n_folds = int(rng.integers(2, 4))
    folds = ds.chromosome_folds(ex, n_folds, random_state=seed)
    assert len(folds) == n_folds
    seen = []
    for f in folds:
        ds.assert_leak_free(f)
        _independent_leak_check(f.table, W)
        assert _key(f.table) == _key(ex.table)
        seen += _key(f.table[f.table["split"] == "test"])
    assert len(seen) == n and sorted(seen) == _key(ex.table)  # test sets disjoint and covering


def test_planted_leaks_are_detected():
    ex = _random_examples(3)
    sp = ds.split_examples(ex, scheme="bins", bin_size=1_000, random_state=0)
    t = sp.table
    other = {"train": "test", "val": "train", "test": "train"}
    # 1. the same SNV in two assays on two sides
    multi = t[t.duplicated(["chrom", "pos"], keep=False)].index[0]
    bad = t.copy()
    bad.loc[multi, "split"] = other[bad.loc[multi, "split"]]
    with pytest.raises(AssertionError, match="leak: SNV"):
        ds.assert_leak_free(bad, window=W)
    # 2. overlapping windows
    a = t.iloc[0]
    near = pd.DataFrame([a, a.copy()]).reset_index(drop=True)
    near.loc[1, ["pos", "split", "seq_ref", "seq_alt"]] = [a["pos"] + W - 1, other[a["split"]], "A" * W, "C" * W]
    with pytest.raises(AssertionError, match="overlapping windows"):
        ds.assert_leak_free(near, window=W)
    near.loc[1, "pos"] = a["pos"] + W  # just apart: fine
    ds.assert_leak_free(near, window=W)
    # 3. the same window, other strand, on another chromosome
    dup = near.copy()
    dup.loc[1, ["chrom", "seq_ref", "seq_alt"]] = ["chrZ", _rc(a["seq_ref"]), _rc(a["seq_alt"])]
    with pytest.raises(AssertionError, match="duplicate window sequence"):
        ds.assert_leak_free(dup, window=W)
    with pytest.raises(AssertionError, match="not split"):
        ds.assert_leak_free(ex)


def test_chromosome_split_choices():
    ex = _random_examples(5)
    a = ds.split_examples(ex, random_state=1)
    b = ds.split_examples(ex, random_state=1)
    assert a.table["split"].tolist() == b.table["split"].tolist()
    assert a.params["split"]["test_chroms"] and set(a.params["split"]["test_chroms"]).isdisjoint(a.params["split"]["val_chroms"])
    fixed = ds.split_examples(ex, test_chroms=["chr1"], val_chroms="chr2")
    t = fixed.table
    moved = fixed.params["split"]["n_reassigned"]
    assert ((t["chrom"] == "chr1") & (t["split"] != "test")).sum() == 0  # test wins over the others
    assert ((t["chrom"] == "chr2") & (t["split"] == "train")).sum() == 0
    assert ((~t["chrom"].isin(["chr1", "chr2"])) & (t["split"] != "train")).sum() <= moved
    with pytest.raises(ValueError, match="chr99"):
        ds.split_examples(ex, test_chroms=["chr99"])
    with pytest.raises(ValueError, match="both"):
        ds.split_examples(ex, test_chroms=["chr1"], val_chroms=["chr1"])
    with pytest.raises(ValueError, match="scheme"):
        ds.split_examples(ex, scheme="random")
    with pytest.raises(ValueError, match="nothing to train"):
        ds.split_examples(ex, test_frac=0.6, val_frac=0.4)
    assert "split" not in ex.table.columns  # the input is not modified


def test_fractions_close_to_targets():
    rng = np.random.default_rng(0)
    n = 4000
    t = pd.DataFrame({"chrom": [f"chr{c}" for c in rng.integers(1, 23, n)], "pos": rng.integers(1, 50_000_000, n),
                      "assay": "CTCF", "label": rng.integers(0, 2, n)})
    t = t.drop_duplicates(["chrom", "pos"]).reset_index(drop=True)
    t["example_id"] = t["chrom"] + ":" + t["pos"].astype(str)
    ex = ds.Examples(t, Ledger(), W, {})  # no sequences: rules 1-2 only
    for scheme in ("chromosome", "bins"):
        fr = ds.split_examples(ex, scheme=scheme).params["split"]["fractions"]
        assert abs(fr["test"] - 0.2) < 0.05 and abs(fr["val"] - 0.1) < 0.05, (scheme, fr)
    folds = ds.chromosome_folds(ex, 5)
    sizes = [f.params["split"]["fractions"]["test"] for f in folds]
    assert abs(sum(sizes) - 1) < 1e-3 and max(sizes) < 0.3


def test_split_summary_counts():
    t = pd.DataFrame({"example_id": list("abcdefg"), "chrom": ["chr1", "chr1", "chr2", "chr3", "chr3", "chr4", "chr4"],
                      "pos": [1, 500, 1, 1, 900, 1, 1], "assay": ["CTCF"] * 6 + ["POL2"],
                      "label": [1, 0, 0, 1, 1, 0, 1], "split": ["train", "train", "train", "test", "test", "val", "val"]})
    s = ds.split_summary(ds.Examples(t, Ledger(), W, {}))
    assert s[["split", "assay", "n", "n_pos", "n_chroms", "n_snvs"]].values.tolist() == [
        ["train", "CTCF", 3, 1, 2, 3], ["val", "CTCF", 1, 0, 1, 1], ["val", "POL2", 1, 1, 1, 1],
        ["test", "CTCF", 2, 2, 1, 2]]
    assert s["frac_pos"].round(3).tolist() == [0.333, 0.0, 1.0, 1.0]
    overall = ds.split_summary(t, by_assay=False)
    assert overall[["split", "n", "n_pos", "n_snvs"]].values.tolist() == [["train", 3, 1, 3], ["val", 2, 1, 1],
                                                                         ["test", 2, 2, 2]]


def test_balance_gives_50_50():
    ex = ds.split_examples(_random_examples(11), scheme="bins", bin_size=1_000)
    t = ex.table
    size = t.groupby(["split", "assay"])["label"].transform("size")
    t = t[size >= 2].reset_index(drop=True)
    size = size[size >= 2].to_numpy()
    t["label"] = (t.groupby(["split", "assay"]).cumcount() < np.ceil(0.7 * (size - 1))).astype(int)  # skewed, 2 classes
    ex = ds.Examples(t, ex.ledger, ex.window, ex.params)
    b = ds.balance(ex, random_state=4)
    s = ds.split_summary(b)
    assert (s["frac_pos"] == 0.5).all() and (s["n"] % 2 == 0).all()
    removed = b.ledger.table()
    assert len(removed) == len(ex) - len(b) and set(removed["reason"]) == {"balance_downsampled"}
    assert ds.balance(ex, random_state=4).table.equals(b.table)
    ds.assert_leak_free(b)
    lonely = ds.Examples(pd.DataFrame({"example_id": ["a", "b"], "assay": "CTCF", "label": [1, 1], "chrom": "chr1",
                                       "pos": [1, 1000]}), Ledger(), W, {})
    with pytest.warns(UserWarning, match="all removed"):
        assert len(ds.balance(lonely)) == 0


# -- real EN-TEx -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def entex_examples(entex_dir):
    return ds.examples_from_entex(entex_dir)


@pytest.mark.realdata
def test_entex_examples_split_leak_free(entex_examples, capsys):
    ex = entex_examples
    t = ex.table
    n_snvs = t.groupby(["chrom", "pos"]).ngroups
    assert abs(n_snvs - 7253) <= 73  # SOURCE.md: 7,253 unique SNVs
    assert t.duplicated(["example_id", "assay"]).sum() == 0 and set(t["assay"]) == {"CTCF"}
    assert (t["seq_ref"].str.len() == W).all() and (t["seq_ref"].str[100] == t["ref"]).all()
    assert (t["seq_alt"].str[100] == t["alt"]).all()
    assert (t["seq_ref"].str[:100] == t["seq_alt"].str[:100]).all()
    sp = ds.split_examples(ex)
    ds.assert_leak_free(sp)
    summary = ds.split_summary(sp)
    assert summary["frac_pos"].between(0.15, 0.6).all()
    bins = ds.split_examples(ex, scheme="bins")
    ds.assert_leak_free(bins)
    folds = ds.chromosome_folds(ex, 5)
    assert sum((f.table["split"] == "test").sum() for f in folds) == len(t)
    with capsys.disabled():
        print(f"\n[datasets] EN-TEx: {len(t)} examples, {n_snvs} unique SNVs, {t['label'].mean():.3f} AS (aggregate=any); "
              f"largest leak group {int(np.bincount(sp.table['leak_group']).max())} examples; "
              f"chromosome split {sp.params['split']}\n{summary.to_string(index=False)}")


def test_missing_sequences_link_nothing():
    ex = _random_examples(7)
    t = ex.table.assign(seq_ref=None, seq_alt="")
    groups = ds.leak_groups(ds.Examples(t, Ledger(), W, {}))
    no_seq = ds.leak_groups(ds.Examples(t.drop(columns=["seq_ref", "seq_alt"]), Ledger(), W, {}))
    assert (groups == no_seq).all() and groups.max() + 1 > 1
