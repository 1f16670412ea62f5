"""Training examples: windows, label aggregation, reference checks, and the real EN-TEx tables (split leak-free)."""
import numpy as np
import pandas as pd
import pytest

from allelic import datasets as ds
from allelic import splits

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
    sp = splits.split_examples(ex)
    splits.assert_leak_free(sp)
    summary = splits.split_summary(sp)
    assert summary["frac_pos"].between(0.15, 0.6).all()
    bins = splits.split_examples(ex, scheme="bins")
    splits.assert_leak_free(bins)
    folds = splits.chromosome_folds(ex, 5)
    assert sum((f.table["split"] == "test").sum() for f in folds) == len(t)
    with capsys.disabled():
        print(f"\n[datasets] EN-TEx: {len(t)} examples, {n_snvs} unique SNVs, {t['label'].mean():.3f} AS (aggregate=any); "
              f"largest leak group {int(np.bincount(sp.table['leak_group']).max())} examples; "
              f"chromosome split {sp.params['split']}\n{summary.to_string(index=False)}")
