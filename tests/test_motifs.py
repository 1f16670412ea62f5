"""Tests of allelic.motifs against hand-computed values, brute force and FIMO."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from allelic.motifs import (
    ALPHABET,
    Motif,
    load_jaspar,
    max_score,
    one_hot,
    reverse_complement,
    scan,
    score_pvalue,
    score_threshold,
    snv_score_change,
)

CTCF_ID = "MA0139.1"
# consensus of MA0139.1 as printed by Biopython / the JASPAR web site
CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"


@pytest.fixture(scope="module")
def ctcf() -> Motif:
    return load_jaspar([CTCF_ID])[0]


def _random_dna(rng, n, L):
    idx = rng.integers(0, 4, size=(n, L))
    return ["".join(ALPHABET[i] for i in row) for row in idx]


def _naive_scan(seq: str, pwm: np.ndarray) -> np.ndarray:
    """Per-window python loop: (L-w+1, 2) forward and reverse-complement scores."""
    w = pwm.shape[1]
    comp = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}

    def score(s):
        return sum(0.0 if b == "N" else pwm["ACGT".index(b), j] for j, b in enumerate(s))

    out = []
    for l in range(len(seq) - w + 1):
        win = seq[l : l + w].upper()
        rc = "".join(comp[b] for b in reversed(win))
        out.append((score(win), score(rc)))
    return np.array(out)


# ---------------------------------------------------------------- one_hot / reverse_complement
def test_one_hot_hand_string():
    got = one_hot("ACgtNn")
    want = np.array(
        [
            [1, 0, 0, 0],  # A
            [0, 1, 0, 0],  # C
            [0, 0, 1, 0],  # g
            [0, 0, 0, 1],  # t
            [0, 0, 0, 0],  # N
            [0, 0, 0, 0],  # n
        ],
        dtype=np.float32,
    )
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_one_hot_list_and_dtype():
    got = one_hot(["AC", "TN"], dtype=np.uint8)
    want = np.array([[[1, 0, 0, 0], [0, 1, 0, 0]], [[0, 0, 0, 1], [0, 0, 0, 0]]], dtype=np.uint8)
    assert got.shape == (2, 2, 4) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert one_hot(["ACGT"] * 3, dtype=np.float64).dtype == np.float64


def test_one_hot_bad_character_names_index_and_position():
    with pytest.raises(ValueError, match=r"'X'.*sequence 2 at position 3"):
        one_hot(["ACGT", "ACGT", "ACGX"])
    with pytest.raises(ValueError, match=r"'-'.*sequence 0 at position 1"):
        one_hot("A-GT")
    with pytest.raises(ValueError, match=r"'é'.*sequence 1 at position 0"):
        one_hot(["AC", "éC"])


def test_one_hot_unequal_lengths():
    with pytest.raises(ValueError, match=r"sequence 1 has length 3"):
        one_hot(["ACGT", "ACG"])


def test_one_hot_large_is_vectorised():
    seqs = ["ACGTN" * 40] * 20_000
    X = one_hot(seqs)
    assert X.shape == (20_000, 200, 4)
    np.testing.assert_array_equal(X[-1, :5], one_hot("ACGTN"))


def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"
    assert reverse_complement("acgT") == "Acgt"
    assert reverse_complement("") == ""
    with pytest.raises(ValueError, match="position 2"):
        reverse_complement("ACXG")


# ---------------------------------------------------------------- Motif
HAND_COUNTS = np.array(
    [
        [3, 0],  # A
        [1, 0],  # C
        [0, 4],  # G
        [0, 0],  # T
    ],
    dtype=float,
)


def test_probabilities_hand():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    # (c + 0.8/4) / (4 + 0.8) per column: column totals are both 4
    want = np.array([[3.2, 0.2], [1.2, 0.2], [0.2, 4.2], [0.2, 0.2]]) / 4.8
    np.testing.assert_allclose(m.probabilities(), want, rtol=1e-12)
    np.testing.assert_allclose(m.probabilities().sum(axis=0), 1.0)
    np.testing.assert_allclose(m.probabilities(0.0)[:, 0], [0.75, 0.25, 0, 0])


def test_log_odds_hand_uniform_background():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    # log2(p / 0.25) = log2((c + 0.2) / 4.8 * 4) = log2((c + 0.2) / 1.2)
    want = np.array(
        [
            [math.log2(3.2 / 1.2), math.log2(0.2 / 1.2)],
            [math.log2(1.2 / 1.2), math.log2(0.2 / 1.2)],
            [math.log2(0.2 / 1.2), math.log2(4.2 / 1.2)],
            [math.log2(0.2 / 1.2), math.log2(0.2 / 1.2)],
        ]
    )
    np.testing.assert_allclose(m.log_odds(), want, rtol=0, atol=1e-12)
    assert m.log_odds()[2, 1] == pytest.approx(math.log2(3.5))
    assert m.log_odds()[0, 0] == pytest.approx(math.log2(8 / 3))


def test_log_odds_hand_nonuniform_background():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    bg = (0.1, 0.4, 0.4, 0.1)
    # A, column 0: (3 + 0.2) / 4.8 / 0.1 = 6.666..., C column 0: 1.2 / 4.8 / 0.4 = 0.625
    assert m.log_odds(background=bg)[0, 0] == pytest.approx(math.log2(3.2 / 4.8 / 0.1))
    assert m.log_odds(background=bg)[1, 0] == pytest.approx(math.log2(0.625))
    assert m.log_odds(pseudocount=4.0, background=bg)[3, 1] == pytest.approx(
        math.log2((0 + 1.0) / 8.0 / 0.1)
    )
    with pytest.raises(ValueError, match="sum to 1"):
        m.log_odds(background=(0.3, 0.3, 0.3, 0.3))


def test_consensus_and_width_hand():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    assert m.width == 2
    assert m.consensus() == "AG"
    rc = m.reverse_complement()
    assert rc.consensus() == "CT"
    np.testing.assert_array_equal(rc.counts, HAND_COUNTS[::-1, ::-1])


def test_motif_validation_and_immutability():
    with pytest.raises(ValueError, match="X2.1"):
        Motif("X2.1", "bad", np.ones((3, 5)))
    with pytest.raises(ValueError, match=">= 0"):
        Motif("X3.1", "neg", -np.ones((4, 2)))
    m = Motif("X1.1", "hand", HAND_COUNTS)
    with pytest.raises(ValueError):
        m.counts[0, 0] = 7.0
    assert m == Motif("X1.1", "hand", HAND_COUNTS.copy())
    assert hash(m) == hash(Motif("X1.1", "hand", HAND_COUNTS.copy()))
    assert m != Motif("X1.1", "hand", HAND_COUNTS + 1)


def test_sample_deterministic_and_frequencies(ctcf):
    a = ctcf.sample(5000, random_state=7)
    assert a == ctcf.sample(5000, random_state=7)
    assert a != ctcf.sample(5000, random_state=8)
    assert ctcf.sample(3, random_state=np.random.default_rng(7)) == a[:3]
    assert len(a) == 5000 and all(len(s) == 19 for s in a)
    freq = one_hot(a, dtype=np.float64).mean(axis=0).T  # (4, 19)
    np.testing.assert_allclose(freq, ctcf.probabilities(), atol=0.03)
    assert ctcf.sample(0) == []


# ---------------------------------------------------------------- JASPAR
def test_load_ctcf(ctcf):
    assert ctcf.matrix_id == CTCF_ID
    assert ctcf.name == "CTCF"
    assert ctcf.width == 19
    assert ctcf.counts.shape == (4, 19)
    assert ctcf.consensus() == CTCF_CONSENSUS


def test_ctcf_log_odds_match_biopython(ctcf):
    # Biopython adds its pseudocount to each base: 0.2 per base == 0.8 per column here
    from pyjaspar import jaspardb

    bio = jaspardb(release="JASPAR2024").fetch_motif_by_id(CTCF_ID)
    pssm = bio.counts.normalize(pseudocounts=0.2).log_odds()
    want = np.array([pssm[b] for b in "ACGT"])
    np.testing.assert_allclose(ctcf.log_odds(), want, atol=1e-9)


def test_load_jaspar_errors_names_and_collection():
    with pytest.raises(ValueError, match="MA9999.9"):
        load_jaspar(["MA0139.1", "MA9999.9"])
    (byname,) = load_jaspar(names=["CTCF"])
    assert byname.name == "CTCF" and byname.matrix_id.startswith("MA0139.")
    assert load_jaspar(names=["ctcf"])[0] == byname
    with pytest.raises(ValueError, match="NOT_A_TF"):
        load_jaspar(names=["NOT_A_TF"])
    allm = load_jaspar()
    ids = [m.matrix_id for m in allm]
    assert len(allm) > 500 and len(set(ids)) == len(ids)
    assert byname.matrix_id in ids
    assert len({i.split(".")[0] for i in ids}) == len(ids)  # one version per base id
    assert load_jaspar()[0] is allm[0]  # cached in-process


# ---------------------------------------------------------------- scan
# a hand PWM (rows A, C, G, T; 3 columns) with distinct entries
HAND_PWM = np.array(
    [
        [1.0, -2.0, 0.5],  # A
        [0.0, 3.0, -1.0],  # C
        [-1.0, 0.25, 2.0],  # G
        [2.0, -0.5, -3.0],  # T
    ]
)


def test_scan_hand():
    seq = "ACGTNA"
    # forward: pwm[base_j, j] summed; reverse: forward score of the window's reverse complement
    want = np.array(
        [
            # ACG: A0 + C1 + G2 = 1 + 3 + 2;        rc CGT: C0 + G1 + T2 = 0 + 0.25 - 3
            [6.0, -2.75],
            # CGT: 0 + 0.25 - 3;                    rc ACG: 6
            [-2.75, 6.0],
            # GTN: G0 + T1 + 0 = -1 - 0.5;          rc NAC: 0 + A1 + C2 = -2 - 1
            [-1.5, -3.0],
            # TNA: T0 + 0 + A2 = 2 + 0.5;           rc TNA: the same
            [2.5, 2.5],
        ]
    )
    got = scan(seq, HAND_PWM)
    assert got.shape == (1, 4, 2)
    np.testing.assert_allclose(got[0], want, atol=1e-12)
    np.testing.assert_allclose(scan(seq.lower(), HAND_PWM)[0], want, atol=1e-12)
    fwd = scan([seq, seq], HAND_PWM, both_strands=False)
    assert fwd.shape == (2, 4)
    np.testing.assert_allclose(fwd[1], want[:, 0], atol=1e-12)
    # one-hot array input, (n, L, 4) and (L, 4), bool and float
    np.testing.assert_allclose(scan(one_hot([seq]), HAND_PWM)[0], want, atol=1e-12)
    np.testing.assert_allclose(scan(one_hot(seq, dtype=bool), HAND_PWM)[0], want, atol=1e-12)
    np.testing.assert_allclose(max_score([seq], HAND_PWM), [6.0])
    np.testing.assert_allclose(max_score([seq], HAND_PWM, both_strands=False), [6.0])


@pytest.mark.parametrize("w", [1, 2, 5, 6, 11, 13])
def test_scan_matches_naive_loop(w):
    rng = np.random.default_rng(w)
    pwm = rng.normal(size=(4, w))
    seqs = _random_dna(rng, 7, 40)
    seqs[3] = seqs[3][:10] + "NNN" + seqs[3][13:]
    got = scan(seqs, pwm)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(got[i], _naive_scan(s, pwm), atol=1e-9)


def test_scan_soft_one_hot_is_dot_product():
    rng = np.random.default_rng(3)
    X = rng.dirichlet(np.ones(4), size=(2, 12))  # (2, 12, 4) soft "one-hot"
    pwm = rng.normal(size=(4, 4))
    got = scan(X, pwm)
    rc = pwm[::-1, ::-1]
    for i in range(2):
        for l in range(12 - 4 + 1):
            win = X[i, l : l + 4]  # (4 positions, 4 bases)
            assert got[i, l, 0] == pytest.approx(sum(win[j] @ pwm[:, j] for j in range(4)))
            assert got[i, l, 1] == pytest.approx(sum(win[j] @ rc[:, j] for j in range(4)))


def test_scan_errors():
    with pytest.raises(ValueError, match="shorter than the motif"):
        scan("ACG", np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\(4, w\)"):
        scan("ACGTACGT", np.zeros((5, 4)))
    with pytest.raises(ValueError, match="sequence 1 at position 0"):
        scan(["ACGT", "ZCGT"], HAND_PWM)
    with pytest.raises(ValueError, match="non-finite"):
        scan("ACGT", np.full((4, 2), -np.inf))


def test_ctcf_planted_site(ctcf):
    rng = np.random.default_rng(2024)
    bg = _random_dna(rng, 2, 200)
    fwd_site = bg[0][:57] + CTCF_CONSENSUS + bg[0][57 + 19 :]
    rev_site = bg[1][:120] + reverse_complement(CTCF_CONSENSUS) + bg[1][120 + 19 :]
    s = scan([fwd_site, rev_site], ctcf)
    assert s.shape == (2, 182, 2)
    best_possible = ctcf.log_odds().max(axis=0).sum()  # the consensus takes every column max
    assert np.unravel_index(s[0].argmax(), s[0].shape) == (57, 0)
    assert np.unravel_index(s[1].argmax(), s[1].shape) == (120, 1)
    assert s[0, 57, 0] == pytest.approx(best_possible, abs=1e-9)
    assert s[1, 120, 1] == pytest.approx(best_possible, abs=1e-9)
    np.testing.assert_allclose(max_score([fwd_site, rev_site], ctcf), best_possible, atol=1e-9)
    pwm = ctcf.log_odds()
    np.testing.assert_allclose(s[0], _naive_scan(fwd_site, pwm), atol=1e-9)
    np.testing.assert_allclose(s[1], _naive_scan(rev_site, pwm), atol=1e-9)


@pytest.mark.slow  # numba compiles memelite's kernels on first use (~10 s, cached afterwards)
def test_ctcf_scan_matches_memelite_fimo(ctcf):
    memelite = pytest.importorskip("memelite")
    rng = np.random.default_rng(5)
    seqs = _random_dna(rng, 4, 80)
    seqs[0] = seqs[0][:30] + CTCF_CONSENSUS + seqs[0][49:]
    X = one_hot(seqs).transpose(0, 2, 1)  # memelite wants (n, 4, L)
    # fimo scores log2(probability + eps) - log2(0.25): with eps=0 that is our log_odds
    hits = memelite.fimo({"CTCF": ctcf.probabilities(0.8)}, X, eps=0.0, threshold=1.0)[0]
    assert len(hits) > 200  # nearly every window (p < 1) is reported
    ours = scan(seqs, ctcf, pseudocount=0.8)
    strand = (hits["strand"] == "-").to_numpy().astype(int)
    got = ours[hits["sequence_name"].to_numpy(), hits["start"].to_numpy(), strand]
    np.testing.assert_allclose(got, hits["score"].to_numpy(), atol=1e-4)


# ---------------------------------------------------------------- thresholds
def test_score_threshold_brute_force_two_columns():
    pwm = np.array([[1.3, -0.7], [0.4, 2.1], [-1.2, 0.05], [0.0, -2.6]])
    bg = np.array([0.3, 0.2, 0.2, 0.3])
    # all 16 two-mers: score and background probability
    scores, probs = [], []
    for a, b in itertools.product(range(4), repeat=2):
        scores.append(pwm[a, 0] + pwm[b, 1])
        probs.append(bg[a] * bg[b])
    scores, probs = np.array(scores), np.array(probs)
    tail = np.array([probs[scores >= s - 1e-12].sum() for s in scores])
    # p-values exactly on and between the attainable tails
    for p in sorted(set(np.round(tail, 12))) + [0.01, 0.05, 0.1, 0.2, 0.5, 0.9]:
        ok = tail <= p * (1 + 1e-9)
        want = scores[ok].min() if ok.any() else np.inf
        got = score_threshold(pwm, p, background=bg)
        # each of the 2 entries is rounded to 0.001 bit
        assert got == pytest.approx(want, abs=2 * 0.0005 + 1e-9), p
    # P(score >= s) for each attainable score
    np.testing.assert_allclose(score_pvalue(pwm, scores, background=bg), tail, rtol=1e-9)
    assert score_threshold(pwm, 1e-6, background=bg) == np.inf  # best 2-mer has p = 0.2*0.2
    assert score_threshold(pwm, 1.0, background=bg) == pytest.approx(scores.min(), abs=1e-3)
    with pytest.raises(ValueError, match="pvalue"):
        score_threshold(pwm, 0.0)


def test_score_threshold_ctcf_empirical(ctcf):
    thr = score_threshold(ctcf, 1e-3)
    # 0.1% of uniform 19-mers score above ~2.2 bits (the median is ~ -32 bits)
    assert 0 < thr < ctcf.log_odds().max(axis=0).sum()
    rng = np.random.default_rng(11)
    n = 200_000
    seq = "".join(np.array(list(ALPHABET))[rng.integers(0, 4, n + 18)])  # n windows of 19 bp
    s = scan(seq, ctcf, both_strands=False)[0]
    assert s.shape == (n,)
    frac = np.mean(s >= thr)
    assert 0.6e-3 < frac < 1.4e-3, frac  # expected 1e-3, sd ~7e-5 (+ window overlap)
    # a tighter threshold selects fewer windows
    assert np.mean(s >= score_threshold(ctcf, 1e-4)) < 3e-4


# ---------------------------------------------------------------- SNVs
def test_snv_score_change_planted_ctcf(ctcf):
    pwm = ctcf.log_odds()
    j = int((pwm.max(axis=0) - pwm.min(axis=0)).argmax())  # most informative position
    ref_base = CTCF_CONSENSUS[j]
    alt_base = ALPHABET[int(pwm[:, j].argmin())]
    rng = np.random.default_rng(99)
    (left, right) = _random_dna(rng, 2, 20)
    site_alt = CTCF_CONSENSUS[:j] + alt_base + CTCF_CONSENSUS[j + 1 :]
    ref = [left + CTCF_CONSENSUS + right, left + CTCF_CONSENSUS + right]
    alt = [left + site_alt + right, left + CTCF_CONSENSUS + right]  # 2nd pair: no change
    df = snv_score_change(ref, alt, ctcf)
    assert list(df.columns) == ["ref_score", "alt_score", "delta"]
    best = pwm.max(axis=0).sum()
    want_delta = pwm[ALPHABET.index(alt_base), j] - pwm[ALPHABET.index(ref_base), j]
    assert want_delta < -5
    np.testing.assert_allclose(df["ref_score"], [best, best], atol=1e-9)
    assert df["delta"].iloc[0] == pytest.approx(want_delta, abs=1e-9)
    assert df["alt_score"].iloc[0] == pytest.approx(best + want_delta, abs=1e-9)
    assert df["delta"].iloc[1] == 0.0
    # pandas Series keep their index; mismatched pairs are refused
    sdf = snv_score_change(pd.Series(ref, index=["v1", "v2"]), alt, ctcf)
    assert list(sdf.index) == ["v1", "v2"]
    with pytest.raises(ValueError, match="pair up"):
        snv_score_change(ref, alt[:1], ctcf)


# ---------------------------------------------------------------- profiles along windows
def test_occurrence_marks_every_base_of_every_hit(ctcf):
    from allelic.motifs import occurrence

    rng = np.random.default_rng(3)
    seqs = _random_dna(rng, 30, 80)
    site = ctcf.sample(1, random_state=1)[0]
    seqs[0] = seqs[0][:10] + site + seqs[0][10 + ctcf.width:]
    seqs[1] = seqs[1][:60] + reverse_complement(site) + seqs[1][60 + ctcf.width:]
    thr = score_threshold(ctcf, 1e-4)
    s = scan(seqs, ctcf)                                       # brute force coverage from the scan
    want = np.zeros((30, 80), bool)
    for i, l in zip(*np.nonzero((s >= thr - 1e-9).any(axis=2))):
        want[i, l:l + ctcf.width] = True
    got = occurrence(seqs, ctcf, pvalue=1e-4)
    np.testing.assert_array_equal(got, want)
    assert got[0, 10:10 + ctcf.width].all() and got[1, 60:60 + ctcf.width].all()


def test_enrichment_profile_pvalue_is_the_hand_hypergeometric_tail():
    from allelic.motifs import enrichment_profile

    # position 0: 4 of 5 AS windows and 1 of 7 other windows have a hit; position 1: none anywhere
    hits = np.zeros((12, 2), bool)
    hits[[0, 1, 2, 3, 5], 0] = True
    labels = np.array([1] * 5 + [0] * 7)
    df = enrichment_profile(hits, labels)
    # P(X >= 4), X ~ hypergeometric(12 windows, 5 with a hit, 5 drawn)
    want = sum(math.comb(5, k) * math.comb(7, 5 - k) for k in (4, 5)) / math.comb(12, 5)
    assert df.loc[0, "pvalue"] == pytest.approx(want, rel=1e-12)
    assert df.loc[1, "pvalue"] == pytest.approx(1.0)
    assert df.loc[0, "frac_as"] == pytest.approx(0.8) and df.loc[0, "frac_other"] == pytest.approx(1 / 7)
    assert df.loc[0, "qvalue"] == pytest.approx(min(1.0, 2 * want))   # BH over 2 positions
    from scipy.stats import fisher_exact

    two = enrichment_profile(hits, labels, alternative="two-sided")
    assert two.loc[0, "pvalue"] == pytest.approx(fisher_exact([[4, 1], [1, 6]])[1], rel=1e-12)
    with pytest.raises(ValueError, match="both labels"):
        enrichment_profile(hits, np.ones(12))
    with pytest.raises(ValueError, match="window 3 has label 2"):
        enrichment_profile(hits, [0, 1, 0, 2] + [0] * 8)


def test_check_binary_labels_accepts_0_1_and_booleans_and_names_what_is_wrong():
    from allelic.profiles import check_binary_labels

    want = [True, False, True]
    for labels in ([True, False, True], [1, 0, 1], np.array([1.0, 0.0, 1.0]), np.array([1, 0, 1], dtype=np.uint8),
                   pd.Series([1, 0, 1]), np.array([1, 0, True], dtype=object)):
        got = check_binary_labels(labels, 3)
        assert got.dtype == bool and got.tolist() == want
    given = np.array(want)
    check_binary_labels(given, 3)[0] = False
    assert given[0]                                                   # a new array, never the caller's
    assert check_binary_labels([1, 1, 1], 3).tolist() == [True] * 3  # one label only is fine unless require_both
    with pytest.raises(ValueError, match="labels must be 0 or 1; window 2 has label 2"):
        check_binary_labels([1, 0, 2], 3)
    with pytest.raises(ValueError, match="window 1 has label 0.5"):
        check_binary_labels([1.0, 0.5, 0.0], 3)
    with pytest.raises(ValueError, match="window 1 has label nan"):
        check_binary_labels([1.0, np.nan, 0.0], 3)
    with pytest.raises(ValueError, match="got dtype <U"):
        check_binary_labels(["1", "0", "a"], 3)
    with pytest.raises(ValueError, match="window 1 has label None"):
        check_binary_labels(np.array([1, None, 0], dtype=object), 3)
    with pytest.raises(ValueError, match=r"one 0/1 label per window \(3\), got shape \(2,\)"):
        check_binary_labels([1, 0], 3)
    with pytest.raises(ValueError, match=r"got shape \(3, 1\)"):
        check_binary_labels([[1], [0], [1]], 3)
    with pytest.raises(ValueError, match=r"no window has label 0 \(3 windows, all of label 1\).*both labels"):
        check_binary_labels([1, 1, 1], 3, require_both=True)
    with pytest.raises(ValueError, match="no profile has label 1"):
        check_binary_labels([False] * 3, 3, what="profile", require_both=True)
    assert check_binary_labels([0, 1], 2, require_both=True).tolist() == [False, True]


def test_encode_ragged_pads_with_n_and_names_the_sequence():
    from allelic.motifs import N_CODE, encode

    codes, single = encode(["ACGT", "TG", ""], ragged=True)
    assert not single and codes.tolist() == [[0, 1, 2, 3], [3, 2, N_CODE, N_CODE], [N_CODE] * 4]
    with pytest.raises(ValueError, match="windows must all have the same length: window 0 has length 4"):
        encode(["ACGT", "TG"], what="window")
    with pytest.raises(ValueError, match="invalid character 'X' in window 1 at position 1"):
        encode(["ACGT", "TX"], what="window", ragged=True)


def test_profile_correlation_is_exact_over_circular_shifts():
    from allelic.motifs import profile_correlation

    pos = np.arange(100)
    bump = np.exp(-0.5 * ((pos - 50) / 4.0) ** 2)
    noisy = bump + np.random.default_rng(0).normal(0, 0.05, 100)
    res = profile_correlation(noisy, bump)
    rs = np.array([np.corrcoef(np.roll(noisy, s), bump)[0, 1] for s in range(100)])
    assert res.r == pytest.approx(rs[0], abs=1e-12)
    assert res.pvalue == pytest.approx((1 + np.sum(np.abs(rs[1:]) >= abs(rs[0]))) / 100)
    assert res.pvalue == pytest.approx(0.01) and res.n_shifts == 99
    # an unrelated profile: not significant
    other = np.exp(-0.5 * ((pos - 10) / 4.0) ** 2)
    assert profile_correlation(np.random.default_rng(1).normal(size=100), other).pvalue > 0.05
    with pytest.raises(ValueError, match="same length"):
        profile_correlation(bump, bump[:50])


def test_pwm_bank_equals_scan_for_every_width():
    torch = pytest.importorskip("torch")
    from allelic.motifs import PwmBank

    motifs = load_jaspar()[:60]                       # several widths
    rng = np.random.default_rng(8)
    seqs = _random_dna(rng, 5, 60)
    seqs[0] = seqs[0][:20] + "N" * 5 + seqs[0][25:]     # N scores 0 in both engines
    bank = PwmBank(motifs)
    x = torch.as_tensor(one_hot(seqs).transpose(0, 2, 1).copy())
    assert sum(len(idx) for _, idx in bank.groups) == len(motifs)
    for g, (w, idx) in enumerate(bank.groups):
        got = bank.best_strand(x, g).numpy()             # (5, m, 60 - w + 1)
        for j, i in enumerate(idx):
            want = scan(seqs, motifs[i]).max(axis=2)     # better strand, float64
            np.testing.assert_allclose(got[:, j], want, atol=1e-4)
