"""Leak-free splits (:mod:`allelic.splits`): random tables with planted leaks checked by an independent leak finder,
chromosome choices, fractions, summaries and class balance."""
import warnings

import numpy as np
import pandas as pd
import pytest

from allelic import datasets as ds
from allelic import splits
from allelic.ledger import Ledger

W = 200


def _other(base):
    return {"A": "G", "C": "T", "G": "A", "T": "C"}[base.upper()]

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
            sp = splits.split_examples(ex, scheme=scheme, random_state=seed, **kw)
        splits.assert_leak_free(sp)
        _independent_leak_check(sp.table, W)
        assert _key(sp.table) == _key(ex.table) and set(sp.table["split"]) <= set(ds.SPLITS)
        assert (sp.table["split"] == "train").any()
        assert sp.table.groupby("leak_group")["split"].nunique().max() == 1
    n_folds = int(rng.integers(2, 4))
    folds = splits.chromosome_folds(ex, n_folds, random_state=seed)
    assert len(folds) == n_folds
    seen = []
    for f in folds:
        splits.assert_leak_free(f)
        _independent_leak_check(f.table, W)
        assert _key(f.table) == _key(ex.table)
        seen += _key(f.table[f.table["split"] == "test"])
    assert len(seen) == n and sorted(seen) == _key(ex.table)  # test sets disjoint and covering


def test_planted_leaks_are_detected():
    ex = _random_examples(3)
    sp = splits.split_examples(ex, scheme="bins", bin_size=1_000, random_state=0)
    t = sp.table
    other = {"train": "test", "val": "train", "test": "train"}
    # 1. the same SNV in two assays on two sides
    multi = t[t.duplicated(["chrom", "pos"], keep=False)].index[0]
    bad = t.copy()
    bad.loc[multi, "split"] = other[bad.loc[multi, "split"]]
    with pytest.raises(AssertionError, match="leak: SNV"):
        splits.assert_leak_free(bad, window=W)
    # 2. overlapping windows
    a = t.iloc[0]
    near = pd.DataFrame([a, a.copy()]).reset_index(drop=True)
    near.loc[1, ["pos", "split", "seq_ref", "seq_alt"]] = [a["pos"] + W - 1, other[a["split"]], "A" * W, "C" * W]
    with pytest.raises(AssertionError, match="overlapping windows"):
        splits.assert_leak_free(near, window=W)
    near.loc[1, "pos"] = a["pos"] + W  # just apart: fine
    splits.assert_leak_free(near, window=W)
    # 3. the same window, other strand, on another chromosome
    dup = near.copy()
    dup.loc[1, ["chrom", "seq_ref", "seq_alt"]] = ["chrZ", _rc(a["seq_ref"]), _rc(a["seq_alt"])]
    with pytest.raises(AssertionError, match="duplicate window sequence"):
        splits.assert_leak_free(dup, window=W)
    with pytest.raises(AssertionError, match="not split"):
        splits.assert_leak_free(ex)


def test_chromosome_split_choices():
    ex = _random_examples(5)
    a = splits.split_examples(ex, random_state=1)
    b = splits.split_examples(ex, random_state=1)
    assert a.table["split"].tolist() == b.table["split"].tolist()
    assert a.params["split"]["test_chroms"] and set(a.params["split"]["test_chroms"]).isdisjoint(a.params["split"]["val_chroms"])
    fixed = splits.split_examples(ex, test_chroms=["chr1"], val_chroms="chr2")
    t = fixed.table
    moved = fixed.params["split"]["n_reassigned"]
    assert ((t["chrom"] == "chr1") & (t["split"] != "test")).sum() == 0  # test wins over the others
    assert ((t["chrom"] == "chr2") & (t["split"] == "train")).sum() == 0
    assert ((~t["chrom"].isin(["chr1", "chr2"])) & (t["split"] != "train")).sum() <= moved
    with pytest.raises(ValueError, match="chr99"):
        splits.split_examples(ex, test_chroms=["chr99"])
    with pytest.raises(ValueError, match="both"):
        splits.split_examples(ex, test_chroms=["chr1"], val_chroms=["chr1"])
    with pytest.raises(ValueError, match="scheme"):
        splits.split_examples(ex, scheme="random")
    with pytest.raises(ValueError, match="nothing to train"):
        splits.split_examples(ex, test_frac=0.6, val_frac=0.4)
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
        fr = splits.split_examples(ex, scheme=scheme).params["split"]["fractions"]
        assert abs(fr["test"] - 0.2) < 0.05 and abs(fr["val"] - 0.1) < 0.05, (scheme, fr)
    folds = splits.chromosome_folds(ex, 5)
    sizes = [f.params["split"]["fractions"]["test"] for f in folds]
    assert abs(sum(sizes) - 1) < 1e-3 and max(sizes) < 0.3


def test_split_summary_counts():
    t = pd.DataFrame({"example_id": list("abcdefg"), "chrom": ["chr1", "chr1", "chr2", "chr3", "chr3", "chr4", "chr4"],
                      "pos": [1, 500, 1, 1, 900, 1, 1], "assay": ["CTCF"] * 6 + ["POL2"],
                      "label": [1, 0, 0, 1, 1, 0, 1], "split": ["train", "train", "train", "test", "test", "val", "val"]})
    s = splits.split_summary(ds.Examples(t, Ledger(), W, {}))
    assert s[["split", "assay", "n", "n_pos", "n_chroms", "n_snvs"]].values.tolist() == [
        ["train", "CTCF", 3, 1, 2, 3], ["val", "CTCF", 1, 0, 1, 1], ["val", "POL2", 1, 1, 1, 1],
        ["test", "CTCF", 2, 2, 1, 2]]
    assert s["frac_pos"].round(3).tolist() == [0.333, 0.0, 1.0, 1.0]
    overall = splits.split_summary(t, by_assay=False)
    assert overall[["split", "n", "n_pos", "n_snvs"]].values.tolist() == [["train", 3, 1, 3], ["val", 2, 1, 1],
                                                                         ["test", 2, 2, 2]]


def test_balance_gives_50_50():
    ex = splits.split_examples(_random_examples(11), scheme="bins", bin_size=1_000)
    t = ex.table
    size = t.groupby(["split", "assay"])["label"].transform("size")
    t = t[size >= 2].reset_index(drop=True)
    size = size[size >= 2].to_numpy()
    t["label"] = (t.groupby(["split", "assay"]).cumcount() < np.ceil(0.7 * (size - 1))).astype(int)  # skewed, 2 classes
    ex = ds.Examples(t, ex.ledger, ex.window, ex.params)
    b = splits.balance(ex, random_state=4)
    s = splits.split_summary(b)
    assert (s["frac_pos"] == 0.5).all() and (s["n"] % 2 == 0).all()
    removed = b.ledger.table()
    assert len(removed) == len(ex) - len(b) and set(removed["reason"]) == {"balance_downsampled"}
    assert splits.balance(ex, random_state=4).table.equals(b.table)
    splits.assert_leak_free(b)
    lonely = ds.Examples(pd.DataFrame({"example_id": ["a", "b"], "assay": "CTCF", "label": [1, 1], "chrom": "chr1",
                                       "pos": [1, 1000]}), Ledger(), W, {})
    with pytest.warns(UserWarning, match="all removed"):
        assert len(splits.balance(lonely)) == 0


# -- real EN-TEx -------------------------------------------------------------------------------------------------
def test_missing_sequences_link_nothing():
    ex = _random_examples(7)
    t = ex.table.assign(seq_ref=None, seq_alt="")
    groups = splits.leak_groups(ds.Examples(t, Ledger(), W, {}))
    no_seq = splits.leak_groups(ds.Examples(t.drop(columns=["seq_ref", "seq_alt"]), Ledger(), W, {}))
    assert (groups == no_seq).all() and groups.max() + 1 > 1
