"""Tests of allelic.pwm, the one PWM scorer: hand PWMs, a naive loop, memelite's FIMO, exact thresholds, SNV score
changes, and the torch bank against the lookup tables."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from allelic.motifs import ALPHABET, load_jaspar, one_hot, reverse_complement
from allelic.pwm import PwmBank, max_score, scan, score_pvalue, score_threshold, snv_score_change

from conftest import random_dna

# consensus of MA0139.1 as printed by Biopython / the JASPAR web site
CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"


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
    seqs = random_dna(rng, 7, 40)
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
    bg = random_dna(rng, 2, 200)
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
    seqs = random_dna(rng, 4, 80)
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
    (left, right) = random_dna(rng, 2, 20)
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


def test_pwm_bank_equals_scan_for_every_width():
    torch = pytest.importorskip("torch")

    motifs = load_jaspar()[:60]                       # several widths
    rng = np.random.default_rng(8)
    seqs = random_dna(rng, 5, 60)
    seqs[0] = seqs[0][:20] + "N" * 5 + seqs[0][25:]     # N scores 0 in both engines
    bank = PwmBank(motifs)
    x = torch.as_tensor(one_hot(seqs).transpose(0, 2, 1).copy())
    assert sum(len(idx) for _, idx in bank.groups) == len(motifs)
    for g, (w, idx) in enumerate(bank.groups):
        got = bank.best_strand(x, g).numpy()             # (5, m, 60 - w + 1)
        for j, i in enumerate(idx):
            want = scan(seqs, motifs[i]).max(axis=2)     # better strand, float64
            np.testing.assert_allclose(got[:, j], want, atol=1e-4)
