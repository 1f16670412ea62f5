"""Tests of allelic.profiles: motif hits along windows, their per-position enrichment, profile correlation, and the
one check of 0/1 labels."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allelic.motifs import reverse_complement
from allelic.profiles import check_binary_labels, enrichment_profile, occurrence, profile_correlation
from allelic.pwm import scan, score_threshold

from conftest import random_dna



# ---------------------------------------------------------------- profiles along windows
def test_occurrence_marks_every_base_of_every_hit(ctcf):

    rng = np.random.default_rng(3)
    seqs = random_dna(rng, 30, 80)
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


def test_profile_correlation_is_exact_over_circular_shifts():

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
