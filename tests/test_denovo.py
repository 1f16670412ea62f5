"""Tests of allelic.denovo against hand-made regions, hand-computed hypergeometric p-values, statsmodels' BH,
brute-force substring counts, a planted JASPAR motif and memelite's MEME reader."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from allelic.attention import AttentionProfiles
from allelic.denovo import (
    DeNovoResult,
    enrichment,
    find_motifs,
    high_score_regions,
    read_meme,
    tomtom_matches,
    write_meme,
)
from allelic.motifs import Motif, load_jaspar, reverse_complement

REST_ID = "MA0138.3"     # REST, 20 bp; not one of the simulator's motifs (CTCF, NRF1, SP1, YY1, TBP, ...)
GATA1_ID = "MA0035.5"    # GATA1, 7 bp, CTAATCT with A 0.69 / T 0.29 at its third base (the latest GATA1 in JASPAR2024)


def _regions(df: pd.DataFrame) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in r) for r in df[["window", "start", "end"]].itertuples(index=False)]


def _random_dna(rng, n: int, L: int) -> list[str]:
    return ["".join("ACGT"[i] for i in row) for row in rng.integers(0, 4, size=(n, L))]


def _hypergeom_sf_by_hand(k: int, M: int, K: int, N: int) -> float:
    """P(X >= k) for X ~ Hypergeometric(population M, K successes in it, N draws), summed with math.comb."""
    return sum(math.comb(K, x) * math.comb(M - K, N - x) for x in range(k, min(K, N) + 1)) / math.comb(M, N)


# ----------------------------------------------------------------------------- high_score_regions
def test_regions_hand_made_vector():
    #            0  1  2  3   4   5   6   7   8  9  10  11  12  13  14  15  16  17
    s = np.array([1, 1, 1, 20, 20, 20, 20, 20, 1, 1, 30, 30, 30, 30, 1, 25, 25, 25], float)
    # mean = 286 / 18 = 15.9, 10 x min = 10: high bases are 3-7, 10-13, 15-17
    assert _regions(high_score_regions(s, min_length=3)) == [(0, 3, 8), (0, 10, 14), (0, 15, 18)]
    assert _regions(high_score_regions(s, min_length=4)) == [(0, 3, 8), (0, 10, 14)]
    assert _regions(high_score_regions(s, min_length=5)) == [(0, 3, 8)]          # a run of exactly 5 is kept
    assert _regions(high_score_regions(s, min_length=6)) == []


def test_regions_both_conditions_are_needed():
    s = np.array([2, 2, 2, 2, 5, 5, 5, 5, 5, 2], float)    # mean 3.5, min 2
    assert _regions(high_score_regions(s)) == []                         # 5 is not > 10 x 2
    assert _regions(high_score_regions(s, min_ratio=2.0)) == [(0, 4, 9)]  # 5 > 4 and > 3.5
    flat = np.full(12, 7.0)                                               # nothing above the mean
    assert _regions(high_score_regions(flat, min_ratio=0.0)) == []


def test_regions_nan_never_in_a_region_and_ignored_by_mean_and_min():
    nan = np.nan
    s = np.array([nan, 1, 1, 30, 30, 30, nan, 30, 30, 30, 30, 30, 1, 1], float)
    # finite: 4 ones and 8 thirties: mean 20.5, min 1; the NaN at 6 splits the run
    assert _regions(high_score_regions(s, min_length=3)) == [(0, 3, 6), (0, 7, 12)]
    assert _regions(high_score_regions(s, min_length=4)) == [(0, 7, 12)]
    # a NaN minimum would disable the ratio rule and a NaN mean every base: neither happens
    assert _regions(high_score_regions(np.full(8, nan))) == []


def test_regions_several_windows_and_attention_like_object():
    m = np.ones((3, 10))
    m[0, 2:7] = 50
    m[2, 5:10] = 50                                                       # run touching the end
    out = high_score_regions(m)
    assert _regions(out) == [(0, 2, 7), (2, 5, 10)]
    assert list(out.columns) == ["window", "start", "end"] and out["start"].dtype == np.int64

    profiles = AttentionProfiles(values=m.astype(np.float32), layers=(0,), heads=(0,), reduction="cls",
                                 normalised=False, length=10, model_name="test")
    assert _regions(high_score_regions(profiles)) == [(0, 2, 7), (2, 5, 10)]


def test_regions_reject_bad_input():
    with pytest.raises(ValueError, match="window 1 is infinite at base 3"):
        high_score_regions(np.array([[1.0] * 6, [1, 1, 1, np.inf, 1, 1]]))
    with pytest.raises(ValueError, match="min_length"):
        high_score_regions(np.ones(6), min_length=0)


# ----------------------------------------------------------------------------- enrichment
def test_enrichment_pvalue_is_the_hand_computed_hypergeometric():
    as_seqs = ["AAGATTAGCC", "GATTAGTTTT", "CCCCCTAATC", "TTTTTTTTTT"]   # CTAATC = revcomp(GATTAG)
    other = ["GGGGGGGGGG", "CCGATTAGGG", "ACACACACAC", "TGTGTGTGTG", "AAAAAAAAAA"]
    res = enrichment(["GATTAG", "gggggg"], as_seqs, other)
    row = res.iloc[0]
    assert (row.candidate, row.length, row.n_as, row.n_other) == ("GATTAG", 6, 3, 1)
    # 9 windows, 4 of them contain GATTAG (either strand), 4 AS windows drawn: P(X >= 3)
    p = _hypergeom_sf_by_hand(3, M=9, K=4, N=4)
    assert p == pytest.approx((math.comb(4, 3) * math.comb(5, 1) + math.comb(4, 4)) / math.comb(9, 4))
    assert row.pvalue == pytest.approx(p, rel=1e-12)
    assert res.iloc[1].candidate == "GGGGGG"
    assert (res.iloc[1].n_as, res.iloc[1].n_other) == (0, 1)
    assert res.iloc[1].pvalue == pytest.approx(1.0)
    fwd = enrichment(["GATTAG"], as_seqs, other, both_strands=False).iloc[0]
    assert (fwd.n_as, fwd.n_other) == (2, 1)
    assert fwd.pvalue == pytest.approx(_hypergeom_sf_by_hand(2, M=9, K=3, N=4), rel=1e-12)


@pytest.mark.parametrize("chunk", [None, 100])
def test_enrichment_counts_match_brute_force_and_bh_matches_statsmodels(chunk, monkeypatch):
    if chunk is not None:                                                 # many chunks of k-mer positions
        monkeypatch.setattr("allelic.kmer_enrichment._CHUNK_POSITIONS", chunk)
    rng = np.random.default_rng(3)
    as_seqs = _random_dna(rng, 60, 80)
    other = _random_dna(rng, 70, 80)
    as_seqs[5] = as_seqs[5][:10] + "NNNN" + as_seqs[5][14:]              # N matches nothing
    as_seqs[7] = as_seqs[7][:30].lower() + as_seqs[7][30:]                # lower case is fine
    other[3] = other[3][:50]                                              # unequal lengths are fine
    long_site = as_seqs[0][20:60]                                         # 40 bp: the substring fallback
    cands, seen = [], set()
    for s in as_seqs[:25]:
        for k in (5, 6, 8, 12):
            c = s[3: 3 + k].upper()
            key = min(c, reverse_complement(c)) if "N" not in c else None
            if key and key not in seen:
                seen.add(key)
                cands.append(c)
    cands.append(long_site.upper())
    res = enrichment(cands, as_seqs, other)

    def brute(c, seqs):
        rc = reverse_complement(c)
        return sum(1 for s in seqs if c in s.upper() or rc in s.upper())

    assert res["n_as"].tolist() == [brute(c, as_seqs) for c in cands]
    assert res["n_other"].tolist() == [brute(c, other) for c in cands]
    assert res["n_as"].iloc[-1] >= 1
    np.testing.assert_allclose(res["qvalue"], multipletests(res["pvalue"], method="fdr_bh")[1], rtol=1e-12)


def test_enrichment_rejects_duplicate_and_invalid_candidates():
    with pytest.raises(ValueError, match="reverse complement of candidate 0"):
        enrichment(["AACGT", "ACGTT"], ["ACGTACGT"], ["TTTT"])
    with pytest.raises(ValueError, match="same as candidate 0"):
        enrichment(["AACGT", "aacgt"], ["ACGTACGT"], ["TTTT"])
    with pytest.raises(ValueError, match="candidate 1"):
        enrichment(["AACGT", "ACNGT"], ["ACGTACGT"], ["TTTT"])
    with pytest.raises(ValueError, match="invalid character 'X' in other window 1 at position 2"):
        enrichment(["AACGT"], ["ACGTACGT"], ["TTTT", "ACXT"])


# ----------------------------------------------------------------------------- planted motif
def _planted(seed: int, motifs, n_as: int = 150, n_other: int = 150, L: int = 200):
    """Random windows; AS window ``i`` carries one site sampled from ``motifs[i % len(motifs)]`` (random strand and
    position) under a bump of synthetic attention; 30% of all windows get a decoy bump on random sequence. Returns
    ``(seqs, scores, labels, sites)`` with ``sites[i] = (start, end)`` of the planted site of AS window i."""
    motifs = [] if motifs is None else [motifs] if isinstance(motifs, Motif) else list(motifs)
    rng = np.random.default_rng(seed)
    seqs = _random_dna(rng, n_as + n_other, L)
    scores = rng.uniform(1.0, 2.0, size=(n_as + n_other, L))
    sites = {}
    for i in range(n_as if motifs else 0):
        motif = motifs[i % len(motifs)]
        w = motif.width
        s = motif.sample(1, random_state=rng)[0]
        s = s if rng.random() < 0.5 else reverse_complement(s)
        p = int(rng.integers(0, L - w + 1))
        seqs[i] = seqs[i][:p] + s + seqs[i][p + w:]
        lo, hi = max(0, p - int(rng.integers(0, 3))), min(L, p + w + int(rng.integers(0, 3)))
        scores[i, lo:hi] += 30.0
        sites[i] = (p, p + w)
    for i in range(n_as + n_other):
        if rng.random() < 0.3:
            p = int(rng.integers(0, L - 12))
            scores[i, p: p + int(rng.integers(5, 12))] += 30.0
    scores /= scores.sum(axis=1, keepdims=True)          # attention-like: rows sum to 1
    labels = np.r_[np.ones(n_as, int), np.zeros(n_other, int)]
    return seqs, scores.astype(np.float32), labels, sites


@pytest.fixture(scope="module")
def rest() -> Motif:
    return load_jaspar(ids=[REST_ID])[0]


@pytest.fixture(scope="module")
def gata1() -> Motif:
    return load_jaspar(ids=[GATA1_ID])[0]


@pytest.fixture(scope="module")
def jaspar() -> list[Motif]:
    return load_jaspar()


@pytest.fixture(scope="module")
def planted(rest):
    seqs, scores, labels, sites = _planted(0, rest)
    # jaspar=None: the default, the whole JASPAR CORE vertebrates collection
    return seqs, scores, labels, sites, find_motifs(seqs, scores, labels, random_state=0, progress=False)


def test_planted_rest_is_recovered_and_matched_to_jaspar(planted):
    *_, res = planted
    assert isinstance(res, DeNovoResult)
    top = res.table.head(3)
    hit = top[(top["jaspar_id"] == REST_ID) & (top["tomtom_qvalue"] < 0.05)]
    assert len(hit) >= 1, res.table
    assert hit["known"].all()
    assert res.table["motif_id"].tolist() == [f"denovo_{i}" for i in range(1, len(res.table) + 1)]
    assert res.table["pvalue"].is_monotonic_increasing


def test_planted_instances_sit_on_the_planted_sites(planted):
    seqs, _, labels, sites, res = planted
    mid = res.table.loc[res.table["jaspar_id"] == REST_ID, "motif_id"].iloc[0]
    ins = res.instances[res.instances["motif_id"] == mid]
    on_site = [w in sites and s < sites[w][1] and sites[w][0] < e for w, s, e in
               ins[["window", "start", "end"]].itertuples(index=False)]
    assert np.mean(on_site) >= 0.9
    assert len(ins) >= 0.8 * len(sites)                     # most planted sites become instances
    # the instance sequences are the windows' bases (reverse-complemented on "-") and make the motif's counts
    for w, s, e, strand, sq in ins[["window", "start", "end", "strand", "sequence"]].itertuples(index=False):
        piece = seqs[w][s:e]
        assert sq == (piece if strand == "+" else reverse_complement(piece))
    motif = res.motifs[res.table.index[res.table["motif_id"] == mid][0]]
    assert motif.matrix_id == mid and motif.width == int(res.table.set_index("motif_id").loc[mid, "width"])
    counts = np.array([[sum(q[j] == b for q in ins["sequence"]) for j in range(motif.width)] for b in "ACGT"])
    np.testing.assert_array_equal(motif.counts, counts)


def test_planted_summary_and_ledger_account_for_everything(planted):
    *_, labels, _, res = planted
    summ = res.summary.set_index("step")["n"]
    led = res.ledger
    assert summ["as_windows"] == labels.sum() and summ["other_windows"] == (labels == 0).sum()
    assert summ["candidates"] == len(res.candidates)
    assert summ["enriched"] == res.candidates["enriched"].sum()
    assert (led["reason"] == "not_enriched").sum() == summ["candidates"] - summ["enriched"]
    assert (led["reason"] == "no_high_score_region").sum() == summ["as_windows_without_region"]
    assert (led["reason"] == "weak_placement").sum() == summ["weak_placements"]
    assert (led["reason"] == "window_out_of_bounds").sum() == summ["instances_out_of_bounds"]
    assert (led["reason"] == "too_few_instances").sum() == summ["groups_too_few_instances"]
    assert summ["groups"] - summ["groups_merged_by_sites"] - summ["groups_merged_by_similarity"] == \
        summ["motifs"] + summ["groups_too_few_instances"]
    assert summ["motifs"] == len(res.table) == len(res.motifs)
    assert res.table["n_instances"].sum() == len(res.instances)
    assert (res.table["n_as_group"] >= res.table["n_as"]).all()
    assert (res.table["n_other_group"] >= res.table["n_other"]).all()
    enriched = res.candidates[res.candidates["enriched"]]
    assert enriched["group"].notna().all() and res.candidates.loc[~res.candidates["enriched"], "group"].isna().all()
    assert set(enriched["group"]) <= set(res.table["motif_id"]) | {"dropped"}
    assert (res.regions["window"].map(dict(enumerate(labels))) == 1).all()


def test_find_motifs_is_deterministic(planted):
    seqs, scores, labels, _, res = planted
    again = find_motifs(seqs, scores, labels, random_state=0, progress=False)
    pd.testing.assert_frame_equal(res.table, again.table)
    pd.testing.assert_frame_equal(res.instances, again.instances)
    pd.testing.assert_frame_equal(res.candidates, again.candidates)
    assert [m.counts.tolist() for m in res.motifs] == [m.counts.tolist() for m in again.motifs]


def test_variants_of_a_pwm_sampled_motif_make_one_motif(gata1, jaspar):
    # GATA1 sites read CTAATCT (69%) or CTTATCT (29%): the two never share a 7-bp block, yet are one motif
    seqs, scores, labels, _ = _planted(2, gata1)
    res = find_motifs(seqs, scores, labels, jaspar=jaspar, progress=False)
    assert res.table["jaspar_id"].tolist() == [GATA1_ID]
    assert res.table["tomtom_qvalue"].iloc[0] < 0.05
    fwd = [q if "AATC" in q or "TTATC" in q else reverse_complement(q) for q in res.instances["sequence"]]
    n_major = sum("CTAATC" in q for q in fwd)
    n_minor = sum("CTTATC" in q for q in fwd)
    assert n_major >= 30 and n_minor >= 10


def test_two_planted_motifs_stay_apart(rest, gata1, jaspar):
    seqs, scores, labels, sites = _planted(0, [rest, gata1])
    res = find_motifs(seqs, scores, labels, jaspar=jaspar, progress=False)
    assert sorted(res.table["jaspar_id"]) == sorted([REST_ID, GATA1_ID])
    assert (res.table["tomtom_qvalue"] < 0.05).all()
    # each motif's instances lie in the windows of its own planted motif (even AS windows: REST, odd: GATA1)
    for mid, jid in res.table[["motif_id", "jaspar_id"]].itertuples(index=False):
        w = res.instances.loc[res.instances["motif_id"] == mid, "window"]
        assert ((w % 2) == (0 if jid == REST_ID else 1)).mean() >= 0.95


def test_no_planted_motif_gives_no_motif():
    seqs, scores, labels, _ = _planted(1, None)
    res = find_motifs(seqs, scores, labels, jaspar=[], progress=False)
    assert res.table.empty and res.instances.empty and res.motifs == []
    assert not res.candidates["enriched"].any()
    assert len(res.candidates) > 0


def test_find_motifs_validates_input():
    seqs = ["ACGTACGTAC", "TTTTGGGGCC", "ACGTTTTTAA"]
    scores = np.ones((3, 10))
    with pytest.raises(ValueError, match="scores has 2 rows but there are 3 sequences"):
        find_motifs(seqs, scores[:2], [1, 0, 0], jaspar=[])
    with pytest.raises(ValueError, match="window 0 has 10 bases but scores has only 8 columns"):
        find_motifs(seqs, scores[:, :8], [1, 0, 0], jaspar=[])
    with pytest.raises(ValueError, match="labels must be 0 or 1; window 2 has label 2"):
        find_motifs(seqs, scores, [1, 0, 2], jaspar=[])
    with pytest.raises(ValueError, match="one 0/1 label per window"):
        find_motifs(seqs, scores, [1, 0], jaspar=[])
    with pytest.raises(ValueError, match="no window has label 1"):
        find_motifs(seqs, scores, [0, 0, 0], jaspar=[])
    with pytest.raises(ValueError, match="needs label-0 windows"):
        find_motifs(seqs, scores, [1, 1, 1], jaspar=[])
    with pytest.raises(ValueError, match="invalid character 'Z' in window 1 at position 4"):
        find_motifs([seqs[0], "TTTTZGGGCC", seqs[2]], scores, [1, 0, 0], jaspar=[])
    with pytest.raises(TypeError, match="list of str"):
        find_motifs("ACGT", scores, [1, 0, 0], jaspar=[])
    with pytest.raises(ValueError, match="max_length"):
        find_motifs(seqs, scores, [1, 0, 0], max_length=40, jaspar=[])


def test_windows_shorter_than_the_score_matrix_ignore_the_padding():
    # zero padding past a window's end (as AttentionProfiles pads) must not make the "minimum" 0
    seqs = ["ACGTACGTACGTAAAA", "ACGTACGTAC"]
    scores = np.ones((2, 16))
    scores[1, 10:] = 0.0
    res = find_motifs(seqs, scores, [1, 0], jaspar=[], progress=False)
    assert res.regions.empty


# ----------------------------------------------------------------------------- TOMTOM
def test_tomtom_finds_a_jaspar_motif_itself_on_both_strands(rest, jaspar):
    from memelite import tomtom

    db = jaspar
    res = tomtom_matches([rest, rest.reverse_complement()], db)
    assert res["jaspar_id"].tolist() == [REST_ID, REST_ID]
    assert res["strand"].tolist() == ["+", "-"]
    assert (res["tomtom_qvalue"] < 1e-10).all()
    # q-values: BH over the query's p-values against the whole database
    shifted = Motif("shifted", "x", rest.counts[:, 3:17])
    out = tomtom_matches([shifted], db).iloc[0]
    p = tomtom([shifted.probabilities()], [m.probabilities() for m in db])[0][0]
    q = multipletests(np.clip(p, 0, 1), method="fdr_bh")[1]
    j = int(np.argmin(p))
    assert out["jaspar_id"] == db[j].matrix_id == REST_ID
    assert out["tomtom_pvalue"] == pytest.approx(p[j])
    assert out["tomtom_qvalue"] == pytest.approx(q[j])
    assert out["tomtom_evalue"] == pytest.approx(p[j] * len(db))


# ----------------------------------------------------------------------------- MEME files
def test_write_read_meme_round_trip(tmp_path, rest):
    from memelite.io import read_meme as memelite_read_meme

    # columns (A, C, G, T counts) each summing to 10
    a = Motif("denovo_1", "CGAT", np.array([[0, 8, 1, 1], [1, 0, 9, 0], [9, 0, 0, 1], [0, 0, 1, 9]]).T)
    b = Motif("denovo_2", "", np.array([[3, 3, 3, 3, 3], [0, 6, 0, 6, 0], [6, 0, 6, 0, 6], [3, 3, 3, 3, 3]]))
    path = write_meme([a, b], tmp_path / "m.meme")
    text = path.read_text()
    for line in ["MEME version 4", "ALPHABET= ACGT", "strands: + -", "Background letter frequencies",
                 "A 0.250000 C 0.250000 G 0.250000 T 0.250000", "MOTIF denovo_1 CGAT", "MOTIF denovo_2",
                 "letter-probability matrix: alength= 4 w= 4 nsites= 10 E= 0",
                 "letter-probability matrix: alength= 4 w= 5 nsites= 12 E= 0"]:
        assert line in text.splitlines()
    back = read_meme(path)
    assert [(m.matrix_id, m.name, m.width) for m in back] == [("denovo_1", "CGAT", 4), ("denovo_2", "", 5)]
    for m, orig in zip(back, [a, b]):
        np.testing.assert_allclose(m.counts, orig.counts, atol=1e-5 * orig.counts.sum(axis=0).max())
    # memelite (an independent reader) sees the same probabilities
    mm = memelite_read_meme(str(path))
    assert list(mm) == ["denovo_1 CGAT", "denovo_2"]
    np.testing.assert_allclose(mm["denovo_1 CGAT"], a.probabilities(0.0), atol=1e-6)
    # a JASPAR motif with unequal column totals keeps its probabilities
    j = read_meme(write_meme([rest], tmp_path / "rest.meme"))[0]
    np.testing.assert_allclose(j.probabilities(0.0), rest.probabilities(0.0), atol=1e-6)


def test_read_meme_full_format_and_errors(tmp_path):
    text = """MEME version 4

ALPHABET= ACGT

strands: + -

Background letter frequencies
A 0.3 C 0.2 G 0.2 T 0.3

MOTIF M1 first
log-odds matrix: alength= 4 w= 2 n= 100 bayes= 1 E= 1e-5
 1.0 -1.0 -1.0 -1.0
-1.0 -1.0 -1.0  1.0

letter-probability matrix: alength= 4 w= 2 nsites= 20 E= 1e-5
 0.5  0.25 0.25 0
 0    0    0    1.0

URL http://example.org

MOTIF M2
letter-probability matrix: alength=4 w=1
0.1 0.2 0.3 0.4
"""
    p = tmp_path / "full.meme"
    p.write_text(text)
    m1, m2 = read_meme(p)
    assert (m1.matrix_id, m1.name, m2.matrix_id, m2.name) == ("M1", "first", "M2", "")
    np.testing.assert_allclose(m1.counts, [[10, 0], [5, 0], [5, 0], [0, 20]])
    np.testing.assert_allclose(m2.counts, [[0.1], [0.2], [0.3], [0.4]])
    bad = tmp_path / "bad.meme"
    bad.write_text(text.replace(" 0    0    0    1.0", " 0    0    1.0"))
    with pytest.raises(ValueError, match=r"bad\.meme:17: motif 'M1': expected a row of 4"):
        read_meme(bad)
    short = tmp_path / "short.meme"
    short.write_text(text.replace("w= 2 nsites= 20", "w= 3 nsites= 20"))
    with pytest.raises(ValueError, match="motif 'M1' has 2 rows, its header says w= 3"):
        read_meme(short)
    with pytest.raises(ValueError, match="whitespace"):
        write_meme([Motif("a b", "x", np.ones((4, 2)))], tmp_path / "x.meme")


def test_permutation_control_finds_nothing_where_the_real_labels_find_the_motif():
    from allelic.denovo import find_motifs, permutation_control
    from allelic.simulate import planted_windows

    df = planted_windows("MA0138.3", 400, random_state=3)
    rng = np.random.default_rng(0)
    scores = rng.random((400, 200)) * 0.1 + 0.01
    for i, (s0, ok) in enumerate(zip(df["site_start"], df["site_start"] >= 0)):
        if ok:
            scores[i, s0:s0 + 20] += 3.0           # attention on the planted site
    real = find_motifs(df["sequence"].tolist(), scores, df["label"], jaspar=[])
    null = permutation_control(df["sequence"].tolist(), scores, df["label"], n_permutations=3, random_state=1)
    assert len(real.table) >= 1
    assert null["n_motifs"].max() < len(real.table) and null["n_enriched"].max() < real.summary.set_index("step").loc["enriched", "n"]
    pd.testing.assert_frame_equal(null, permutation_control(df["sequence"].tolist(), scores, df["label"],
                                                            n_permutations=3, random_state=1))
