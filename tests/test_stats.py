"""Tests of allelic.stats against independently known values (scipy, statsmodels, hand sums, planted truth)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from allelic import stats as _stats
from allelic.ledger import Ledger
from allelic.stats import (
    EmpiricalFDR,
    ImbalanceResult,
    allelic_ratio_ci,
    betabinom_test,
    bh_fdr,
    binomial_test,
    empirical_fdr_threshold,
    estimate_null_ratio,
    fit_betabinom_rho,
)
from allelic.stats import test_imbalance as run_test_imbalance


def _betabinom_draw(rng, n, mean, rho):
    """k ~ BetaBinomial(n, mean, rho) (mean may be an array)."""
    mean = np.broadcast_to(mean, np.shape(n))
    q = rng.beta(mean * (1 - rho) / rho, (1 - mean) * (1 - rho) / rho)
    return rng.binomial(n, q)


# ----------------------------------------------------------------------------- binomial


def test_binomial_matches_scipy_binomtest_on_grid():
    rng = np.random.default_rng(0)
    worst = 0.0
    for n in [1, 2, 3, 5, 10, 37, 100, 1000, 5000]:
        for p in [0.5, 0.3, 0.55, 0.9, 0.01, 1 / 3, 0.0, 1.0]:
            if n <= 100:
                ks = np.arange(n + 1)                              # includes k = 0 and k = n
            else:
                ks = np.unique(np.r_[0, n, int(p * n), min(n, int(p * n) + 1), rng.integers(0, n + 1, 60)])
            got = binomial_test(ks, n, p)
            want = np.array([st.binomtest(int(k), n, p).pvalue for k in ks])
            worst = max(worst, np.max(np.abs(got - want)))
    assert worst <= 1e-10


def test_binomial_array_p_and_shapes():
    k = np.array([[0, 3, 7], [10, 2, 5]])
    n = np.array([[5, 9, 7], [20, 2, 40]])
    p = np.array([[0.5, 0.3, 0.55], [0.6, 0.5, 0.2]])
    got = binomial_test(k, n, p)
    assert got.shape == (2, 3)
    want = np.array([[st.binomtest(int(a), int(b), c).pvalue for a, b, c in zip(r1, r2, r3)]
                     for r1, r2, r3 in zip(k, n, p)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.ndim(binomial_test(3, 10)) == 0
    assert np.isnan(binomial_test(0, 0))                           # nothing to test


def test_binomial_hand_computed_values():
    # k=0 of 5 at p=0.5: outcomes 0 and 5 are the least likely, each 1/32
    assert binomial_test(0, 5, 0.5) == pytest.approx(2 * (1 / 32), abs=1e-15)
    assert binomial_test(5, 5, 0.5) == pytest.approx(0.0625, abs=1e-15)
    # k=0 of 3 at p=0.3: pmf = .343, .441, .189, .027 -> outcomes {0, 2, 3} are no more likely than 0
    assert binomial_test(0, 3, 0.3) == pytest.approx(0.343 + 0.189 + 0.027, abs=1e-12)
    # the observation at the mean is not evidence of anything
    assert binomial_test(5, 10, 0.5) == 1.0


# ----------------------------------------------------------------------------- beta-binomial


def _direct_betabinom_pvalue(k, n, p, rho):
    """Two-sided p-value by summing scipy.stats.betabinom pmf terms no more likely than pmf(k)."""
    a = p * (1 - rho) / rho
    b = (1 - p) * (1 - rho) / rho
    pmf = st.betabinom.pmf(np.arange(n + 1), n, a, b)
    return min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum())


def test_betabinom_tiny_rho_is_binomial():
    ks = np.arange(0, 61)
    for p in (0.5, 0.55, 0.3):
        np.testing.assert_allclose(betabinom_test(ks, 60, p, 1e-8), binomial_test(ks, 60, p), rtol=0, atol=1e-6)
    # rho == 0 falls back to the binomial exactly
    assert np.array_equal(betabinom_test(ks, 60, 0.55, 0.0), binomial_test(ks, 60, 0.55))


def test_betabinom_large_rho_is_less_significant_for_extreme_counts():
    pb = binomial_test(2, 40, 0.5)
    pbb = betabinom_test(2, 40, 0.5, 0.2)
    assert pbb > pb
    assert pbb > 100 * pb


def test_betabinom_matches_direct_pmf_summation():
    # k=3 of 20 at p=0.5, rho=0.1: alpha = beta = 4.5
    a = b = 0.5 * 0.9 / 0.1
    pmf = st.betabinom.pmf(np.arange(21), 20, a, b)
    want = pmf[pmf <= pmf[3] * (1 + 1e-7)].sum()
    assert betabinom_test(3, 20, 0.5, 0.1) == pytest.approx(want, abs=1e-12)
    # a grid, including p != 0.5 and U-/J-shaped pmfs (rho = 0.8)
    for n in (1, 7, 30):
        for p in (0.5, 0.6, 0.2):
            for rho in (0.01, 0.2, 0.8):
                ks = np.arange(n + 1)
                want = [_direct_betabinom_pvalue(k, n, p, rho) for k in ks]
                np.testing.assert_allclose(betabinom_test(ks, n, p, rho), want, rtol=0, atol=1e-9)


def test_betabinom_vectorised_over_p_and_rho():
    k = np.array([1, 9, 4, 12])
    n = np.array([10, 10, 30, 12])
    p = np.array([0.5, 0.55, 0.3, 0.5])
    rho = np.array([0.05, 0.3, 0.01, 0.0])
    want = [_direct_betabinom_pvalue(*a) if a[3] > 0 else st.binomtest(a[0], a[1], a[2]).pvalue
            for a in zip(k, n, p, rho)]
    np.testing.assert_allclose(betabinom_test(k, n, p, rho), want, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- over-dispersion


def test_fit_rho_recovers_planted_value():
    rng = np.random.default_rng(1)
    n = rng.integers(10, 80, 20_000)
    k = _betabinom_draw(rng, n, 0.5, 0.05)
    assert fit_betabinom_rho(k, n, 0.5) == pytest.approx(0.05, abs=0.01)
    k2 = _betabinom_draw(rng, n, 0.6, 0.15)
    assert fit_betabinom_rho(k2, n, 0.6) == pytest.approx(0.15, abs=0.01)


def test_fit_rho_is_about_zero_on_binomial_data():
    rng = np.random.default_rng(2)
    n = rng.integers(10, 80, 20_000)
    k = rng.binomial(n, 0.5)
    rho = fit_betabinom_rho(k, n, 0.5)
    assert 0.0 <= rho < 0.003


def test_fit_rho_robust_resists_imbalanced_sites():
    rng = np.random.default_rng(3)
    n = rng.integers(20, 80, 20_000)
    is_as = rng.random(n.size) < 0.1
    mean = np.where(is_as, rng.choice([0.9, 0.15], n.size), 0.55)
    k = _betabinom_draw(rng, n, mean, 0.02)
    plain = fit_betabinom_rho(k, n, 0.55)
    robust = fit_betabinom_rho(k, n, 0.55, robust=True)
    assert plain > 0.05                      # imbalanced sites inflate the AlleleSeq2-style fit
    assert abs(robust - 0.02) < 0.01
    # without imbalanced sites both agree
    k0 = _betabinom_draw(rng, n, 0.55, 0.02)
    assert fit_betabinom_rho(k0, n, 0.55, robust=True) == pytest.approx(fit_betabinom_rho(k0, n, 0.55), abs=2e-3)


# ----------------------------------------------------------------------------- null ratio


def test_estimate_null_ratio_recovers_mapping_bias():
    rng = np.random.default_rng(4)
    n = rng.negative_binomial(2, 2 / 42, 20_000) + 6
    is_as = rng.random(n.size) < 0.1
    mean = np.where(is_as, rng.choice([0.9, 0.2], n.size), 0.55)
    k = _betabinom_draw(rng, n, mean, 0.02)
    assert estimate_null_ratio(k, n) == pytest.approx(0.55, abs=0.01)
    assert estimate_null_ratio(k, n, method="pooled") == pytest.approx(k[n >= 10].sum() / n[n >= 10].sum())
    # one-sided contamination: the median is pulled less than the pooled ratio
    mean1 = np.where(is_as, 0.9, 0.55)
    k1 = _betabinom_draw(rng, n, mean1, 0.02)
    med, pooled = estimate_null_ratio(k1, n), estimate_null_ratio(k1, n, method="pooled")
    assert abs(med - 0.55) < abs(pooled - 0.55)


def test_estimate_null_ratio_errors():
    with pytest.raises(ValueError, match="min_total"):
        estimate_null_ratio([1, 2], [3, 4], min_total=10)
    with pytest.raises(ValueError, match="unknown method"):
        estimate_null_ratio([10], [20], method="mode")


# ----------------------------------------------------------------------------- FDR


def test_bh_fdr_matches_statsmodels_and_keeps_nans():
    rng = np.random.default_rng(5)
    p = np.r_[rng.uniform(size=500), rng.uniform(0, 1e-4, size=50), [0.0, 1.0, 0.5, 0.5]]
    np.testing.assert_array_equal(bh_fdr(p), multipletests(p, method="fdr_bh")[1])
    pn = p.copy()
    pn[[3, 10, 100]] = np.nan
    q = bh_fdr(pn)
    assert np.isnan(q[[3, 10, 100]]).all()
    ok = ~np.isnan(pn)
    np.testing.assert_array_equal(q[ok], multipletests(pn[ok], method="fdr_bh")[1])
    assert bh_fdr(p.reshape(2, -1)).shape == (2, p.size // 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bh_fdr([0.1, 1.5])


def test_empirical_fdr_all_null_gives_few_discoveries():
    rng = np.random.default_rng(6)
    n = rng.integers(10, 100, 20_000)
    k = rng.binomial(n, 0.5)
    p = binomial_test(k, n, 0.5)
    res = empirical_fdr_threshold(p, n, 0.5, fdr=0.1, n_sims=5, random_state=7)
    assert isinstance(res, EmpiricalFDR)
    assert list(res.fdr_curve.columns) == ["t", "n_observed", "n_null_mean", "fdr"]
    assert res.n_called <= 20                        # out of 20 000 null sites
    if res.n_called:
        assert res.n_called == int((p <= res.threshold).sum())


def test_empirical_fdr_finds_planted_signal():
    rng = np.random.default_rng(8)
    n = rng.integers(20, 100, 10_000)
    is_as = rng.random(n.size) < 0.1
    mean = np.where(is_as, 0.85, 0.5)
    k = _betabinom_draw(rng, n, mean, 0.02)
    p = betabinom_test(k, n, 0.5, 0.02)
    res = empirical_fdr_threshold(p, n, 0.5, rho=0.02, fdr=0.1, n_sims=5, random_state=9)
    called = res.calls(p)
    assert called.sum() == res.n_called and (called == (p <= res.threshold)).all()
    assert (called & is_as).sum() >= 0.7 * is_as.sum()
    assert (called & ~is_as).sum() / called.sum() <= 0.15
    # deterministic under a seed
    again = empirical_fdr_threshold(p, n, 0.5, rho=0.02, fdr=0.1, n_sims=5, random_state=9)
    assert again.threshold == res.threshold


def test_empirical_calls_rule_when_no_threshold_qualifies():
    """The one call rule of an empirical FDR (used by test_imbalance and chapter 02): nothing is called when no
    candidate reached the target, even p-values that underflowed to 0.0; NaN is never called."""
    curve = pd.DataFrame({"t": [0.01], "n_observed": [3], "n_null_mean": [3.0], "fdr": [1.0]})
    none = EmpiricalFDR(threshold=0.0, fdr_curve=curve, n_sims=5, target_fdr=0.1, n_called=0)
    p = np.array([0.0, 1e-300, 0.2, np.nan])
    assert none.calls(p).tolist() == [False, False, False, False]
    some = EmpiricalFDR(threshold=0.01, fdr_curve=curve, n_sims=5, target_fdr=0.1, n_called=2)
    assert some.calls(p).tolist() == [True, True, False, False]


# ----------------------------------------------------------------------------- effect sizes


def test_allelic_ratio_ci_matches_statsmodels():
    k = np.array([0, 1, 5, 19, 20, 37])
    n = np.array([20, 20, 20, 20, 20, 50])
    w = allelic_ratio_ci(k, n, level=0.9)
    lo, hi = proportion_confint(k, n, alpha=0.1, method="wilson")
    np.testing.assert_allclose(w["ci_low"], lo, atol=1e-12)
    np.testing.assert_allclose(w["ci_high"], hi, atol=1e-12)
    e = allelic_ratio_ci(k, n, method="exact")
    lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
    np.testing.assert_allclose(e["ci_low"], lo, atol=1e-12)
    np.testing.assert_allclose(e["ci_high"], hi, atol=1e-12)
    np.testing.assert_allclose(w["ratio"], k / n)
    np.testing.assert_allclose(w["log2_ratio"], np.log2((k + 0.5) / (n - k + 0.5)))
    z = allelic_ratio_ci([0], [0])
    assert np.isnan(z["ratio"][0]) and np.isnan(z["ci_low"][0]) and z["log2_ratio"][0] == 0.0


# ----------------------------------------------------------------------------- all-in-one


def _simulated_table(seed=10, n_sites=8000, rho=0.02, nulls=(0.55, 0.5), frac_as=0.1):
    """Two samples with mapping bias (null ref ratio 0.55 / 0.5), 10% planted AS sites, beta-binomial noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for sample, p0 in zip(("S1", "S2"), nulls):
        n = rng.negative_binomial(2, 2 / 52, n_sites) + 2          # some totals < 6
        is_as = rng.random(n_sites) < frac_as
        mean = np.where(is_as, rng.choice([0.9, 0.15], n_sites), p0)
        k = _betabinom_draw(rng, n, mean, rho)
        parts.append(pd.DataFrame({"sample": sample, "chrom": "chr1", "pos": np.arange(n_sites) * 10 + 1,
                                   "ref_count": k, "alt_count": n - k, "is_as": is_as}))
    return pd.concat(parts, ignore_index=True)


def _fdp(t, col):
    called = t[col]
    return (called & ~t["is_as"]).sum() / max(called.sum(), 1)


def test_test_imbalance_betabinomial_controls_fdr_binomial_does_not():
    df = _simulated_table()
    res = run_test_imbalance(df, null="estimated", fdr=0.1)
    assert isinstance(res, ImbalanceResult)
    t = res.table
    for c in ["total", "ratio", "log2_ratio", "ci_low", "ci_high", "p_null", "rho", "p_binom", "q_binom",
              "p_betabinom", "q_betabinom", "as_binom", "as_betabinom"]:
        assert c in t.columns
    assert set(df.columns) <= set(t.columns)
    # the estimated null ratio recovers the planted mapping bias
    par = res.params.set_index("sample")
    assert par.loc["S1", "p_null"] == pytest.approx(0.55, abs=0.01)
    assert par.loc["S2", "p_null"] == pytest.approx(0.50, abs=0.01)
    # AlleleSeq2-style fit (all sites): conservative beta-binomial calls, anti-conservative binomial ones
    assert _fdp(t, "as_betabinom") <= 0.15
    assert _fdp(t, "as_binom") >= 0.3
    # robust rho: beta-binomial keeps the FDP near the target with real power
    rob = run_test_imbalance(df, null="estimated", fdr=0.1, robust_rho=True).table
    assert _fdp(rob, "as_betabinom") <= 0.15
    assert (rob["as_betabinom"] & rob["is_as"]).sum() >= 0.7 * rob["is_as"].sum()
    assert _fdp(rob, "as_binom") >= _fdp(rob, "as_betabinom") + 0.2
    # columns are consistent with the standalone functions
    s1 = t[t["sample"] == "S1"]
    np.testing.assert_array_equal(s1["p_binom"], binomial_test(s1["ref_count"], s1["total"], par.loc["S1", "p_null"]))
    np.testing.assert_array_equal(t["q_binom"], bh_fdr(t["p_binom"]))             # one BH family by default
    assert (t["as_betabinom"] == (t["q_betabinom"] <= 0.1)).all()


def test_test_imbalance_low_total_rows_go_to_ledger():
    df = _simulated_table(n_sites=2000)
    res = run_test_imbalance(df, min_total=6)
    low = df[df["ref_count"] + df["alt_count"] < 6]
    assert len(low) > 0
    assert len(res.table) + len(low) == len(df)
    assert not set(low.index) & set(res.table.index)
    led = res.ledger.table()
    assert (led["reason"] == "low_total").all() and len(led) == len(low)
    assert set(led["record"]) == set(low["chrom"] + ":" + low["pos"].astype(str))
    assert set(led["source"]) == {"sample=S1", "sample=S2"}
    par = res.params.set_index("sample")
    assert par["n_low_total"].sum() == len(low)
    assert par["n_sites"].sum() == len(res.table)
    # appending to a caller's ledger
    mine = Ledger()
    mine.add("het_snvs", "x.vcf", "chr1:5", "not_heterozygous")
    out = run_test_imbalance(df, ledger=mine)
    assert out.ledger is mine and len(mine) == len(low) + 1


def test_test_imbalance_options():
    df = _simulated_table(n_sites=3000)
    byg = run_test_imbalance(df, fdr_by_group=True, overdispersion="none", group_cols=["sample"]).table
    s2 = byg[byg["sample"] == "S2"]
    np.testing.assert_array_equal(s2["q_binom"], bh_fdr(s2["p_binom"]))
    np.testing.assert_array_equal(byg["p_betabinom"], byg["p_binom"])         # rho = 0
    one = run_test_imbalance(df, group_cols=(), overdispersion=0.05)
    assert len(one.params) == 1 and one.params["rho"].iloc[0] == 0.05
    emp = run_test_imbalance(df, fdr_method="empirical", n_sims=2, random_state=0)
    assert {"t_binom", "t_betabinom"} <= set(emp.params.columns)
    t = emp.table
    thr = emp.params["t_betabinom"].iloc[0]
    assert (t["as_betabinom"] == (t["p_betabinom"] <= thr)).all()


# ----------------------------------------------------------------------------- bad input


def test_bad_counts_raise_named_errors():
    with pytest.raises(ValueError, match="negative counts"):
        binomial_test([1, -2], [5, 5])
    with pytest.raises(ValueError, match=r"exceeds .* at index 1"):
        binomial_test([1, 6], [5, 5])
    with pytest.raises(ValueError, match="whole numbers"):
        betabinom_test([1.5], [5], 0.5, 0.1)
    with pytest.raises(ValueError, match=r"p \(null ratio\)"):
        binomial_test([1], [5], 1.5)
    with pytest.raises(ValueError, match="rho"):
        betabinom_test([1], [5], 0.5, 1.0)
    with pytest.raises(ValueError, match="exceeds"):
        fit_betabinom_rho([3, 7], [5, 5])


def test_bad_tables_raise_named_errors():
    good = pd.DataFrame({"sample": ["a", "a"], "ref_count": [3, 4], "alt_count": [5, 6]})
    with pytest.raises(ValueError, match=r"missing column.*alt_count"):
        run_test_imbalance(good.drop(columns="alt_count"))
    with pytest.raises(ValueError, match=r"missing column.*sample"):
        run_test_imbalance(good.drop(columns="sample"))
    bad = good.copy()
    bad.loc[1, "ref_count"] = -1
    with pytest.raises(ValueError, match=r"negative 'ref_count' at row 1"):
        run_test_imbalance(bad)
    bad = good.astype({"alt_count": float})
    bad.loc[0, "alt_count"] = np.nan
    with pytest.raises(ValueError, match=r"missing or non-finite 'alt_count' at row 0"):
        run_test_imbalance(bad)
    bad = good.assign(total=[8, 3])
    with pytest.raises(ValueError, match=r"'ref_count' exceeds 'total' at row 1"):
        run_test_imbalance(bad)
    bad = good.assign(total=[8, 11])
    with pytest.raises(ValueError, match=r"'total' != 'ref_count' \+ 'alt_count' at row 1"):
        run_test_imbalance(bad)
    ok = run_test_imbalance(good.assign(total=[8, 10]), min_total=1)
    assert list(ok.table["total"]) == [8, 10]
    with pytest.raises(ValueError, match="null must be"):
        run_test_imbalance(good, null="guess")


# --------------------------------------------------------------------------- trimmed joint fit (integrator)


def test_fit_null_trimmed_recovers_null_despite_allele_specific_sites():
    from allelic.stats import fit_betabinom_rho, fit_null_trimmed

    rng = np.random.default_rng(11)
    n = rng.integers(10, 80, 8000)
    p0, rho = 0.53, 0.03
    q = rng.beta(p0 * (1 - rho) / rho, (1 - p0) * (1 - rho) / rho, n.size)
    as_site = rng.random(n.size) < 0.2  # 20% AS sites, mostly favouring the reference allele
    q[as_site] = np.where(rng.random(as_site.sum()) < 0.7, 0.85, 0.2)
    k = rng.binomial(n, q)
    p_hat, rho_hat = fit_null_trimmed(k, n)
    assert abs(p_hat - p0) < 0.01
    assert rho <= rho_hat < rho + 0.015  # slightly conservative, never far below the truth
    assert fit_betabinom_rho(k, n, p0) > 0.08  # the fit on all sites is inflated by the AS sites
    # on null data alone it agrees with the plain maximum-likelihood fit
    k0 = rng.binomial(n, rng.beta(p0 * (1 - rho) / rho, (1 - p0) * (1 - rho) / rho, n.size))
    p1, r1 = fit_null_trimmed(k0, n)
    assert abs(p1 - p0) < 0.01 and abs(r1 - fit_betabinom_rho(k0, n, p1)) < 0.006
    with pytest.raises(ValueError, match="alpha"):
        fit_null_trimmed(k, n, alpha=0.7)


def test_simulator_beta_binomial_calls_control_fdp(tmp_path):
    """On the simulator, beta-binomial calls at FDR 0.1 keep the false discovery proportion near or below 0.1."""
    from allelic import evaluate, io, simulate

    sim = simulate.simulate("smoke", tmp_path / "sim", random_state=7)
    counts = io.simulation_counts(sim)
    res = run_test_imbalance(counts, group_cols=("assay",), null="trimmed", fdr=0.1)
    m = evaluate.call_metrics(res.table, sim.truth(), ["as_binom", "as_betabinom"]).set_index("call")
    bb = m.loc["as_betabinom"]
    n_called = bb["tp"] + bb["fp"]
    assert bb["tp"] > 100 and bb["recall"] > 0.4
    # BH bounds the expected FDP; allow two binomial standard errors of sampling noise around 0.1
    assert bb["fdp"] <= 0.1 + 2 * np.sqrt(0.1 * 0.9 / n_called)
    assert m.loc["as_binom", "fdp"] > 0.25  # the binomial test ignores over-dispersion and over-calls


def test_format_pvalue():
    from allelic.stats import format_pvalue

    assert format_pvalue(0.0) == "< 1e-300" and format_pvalue(0.012345) == "0.012"
    assert format_pvalue(3.2e-50) == "3.2e-50" and format_pvalue(float("nan")) == "n/a"
    assert format_pvalue(0.5, relation=True) == "= 0.5" and format_pvalue(0.0, relation=True) == "< 1e-300"


def test_empirical_fdr_calibrates_the_binomial_calls_for_over_dispersion():
    """Over-dispersed null sites (rho 0.05) and 5 % planted AS sites: BH on binomial p-values is far from its
    nominal FDR; the empirical threshold, simulated from the fitted beta-binomial null (AlleleSeq's calibration),
    brings the binomial calls' false-discovery proportion to the nominal level while still calling."""
    false, called, false_bh, called_bh = 0, 0, 0, 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = rng.integers(20, 120, 3000)
        k = rng.binomial(n, rng.beta(9.5, 9.5, n.size))  # beta-binomial null, ratio 0.5, rho = 1 / 20
        planted = rng.random(n.size) < 0.05
        k[planted] = rng.binomial(n[planted], 0.95)
        t = pd.DataFrame({"sample": "s", "ref_count": k, "alt_count": n - k})
        emp = run_test_imbalance(t, null="trimmed", fdr=0.1, fdr_method="empirical", random_state=seed).table
        bh = run_test_imbalance(t, null="trimmed", fdr=0.1).table
        assert emp["as_binom"].sum() >= 60
        false += int((emp["as_binom"] & ~planted).sum())
        called += int(emp["as_binom"].sum())
        false_bh += int((bh["as_binom"] & ~planted).sum())
        called_bh += int(bh["as_binom"].sum())
    assert false / called <= 0.13          # about the nominal 0.1 (0.06-0.14 per seed)
    assert false_bh / called_bh > 0.5      # the uncalibrated binomial test


def test_fit_null_trimmed_returns_a_named_result():
    from allelic.stats import fit_null_trimmed

    rng = np.random.default_rng(1)
    n = rng.integers(20, 80, 4000)
    k = rng.binomial(n, rng.beta(0.55 * 24, 0.45 * 24, n.size))  # ratio 0.55, rho = 1 / 25
    fit = fit_null_trimmed(k, n)
    p, rho = fit
    assert (fit.p_null, fit.rho) == (p, rho)
    assert abs(fit.p_null - 0.55) < 0.01 and abs(fit.rho - 0.04) < 0.008


def test_fit_null_trimmed_maximises_the_truncated_likelihood_scipy_computes():
    """Independent of the implementation: with the acceptance regions (two-sided beta-binomial p >= alpha, from
    scipy's pmf) at the fitted (p, rho), the truncated log-likelihood written with scipy.stats.betabinom is lower
    at every nearby point than at the fit."""
    from allelic.stats import fit_null_trimmed

    rng = np.random.default_rng(11)
    n = rng.integers(20, 400, 1500)
    p = np.where(rng.random(n.size) < 0.1, 0.8, 0.5)
    rho = 0.04
    k = rng.binomial(n, rng.beta(p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho))
    fit = fit_null_trimmed(k, n, tol=1e-6)

    def pmf(nn, pp, rr):
        return st.betabinom.pmf(np.arange(nn + 1), nn, pp * (1 - rr) / rr, (1 - pp) * (1 - rr) / rr)

    regions = {}
    for nn in np.unique(n):
        f = pmf(nn, *fit)
        pval = np.array([f[f <= v * (1 + 1e-7)].sum() for v in f])  # scipy's "no more likely" two-sided rule
        regions[nn] = pval >= 0.05

    def loglik(pp, rr):
        total = 0.0
        for nn in regions:
            f, acc = pmf(nn, pp, rr), regions[nn]
            ks = k[(n == nn)]
            ks = ks[acc[ks]]
            total += np.log(f[ks]).sum() - ks.size * np.log(f[acc].sum())
        return total

    best = loglik(*fit)
    for dp, dr in ((2e-3, 0), (-2e-3, 0), (0, 2e-3), (0, -2e-3), (2e-3, 2e-3), (-2e-3, -2e-3)):
        assert loglik(fit.p_null + dp, fit.rho + dr) < best, (dp, dr)
    assert abs(fit.p_null - 0.5) < 0.01 and abs(fit.rho - rho) < 0.01


def test_summed_betabinom_test_against_enumeration():
    """The summed reads' exact test: one replicate is betabinom_test; binomial replicates of one ratio are one
    binomial (scipy); beta-binomial replicates of different ratios match brute-force enumeration of all outcomes."""
    from scipy import stats as st

    from allelic.pvalues import summed_betabinom_test

    assert summed_betabinom_test([7], [20], 0.55, 0.04) == pytest.approx(
        float(_stats.betabinom_test(7, 20, 0.55, 0.04)), rel=1e-12)
    assert summed_betabinom_test([3, 9], [10, 14], 0.5, 0.0) == pytest.approx(
        st.binomtest(12, 24, 0.5).pvalue, rel=1e-9)
    k, n, p, rho = [2, 9, 4], [6, 12, 5], [0.5, 0.6, 0.45], [0.02, 0.1, 0.0]
    pmfs = [st.betabinom.pmf(np.arange(m + 1), m, q * (1 - r) / r, (1 - q) * (1 - r) / r) if r else
            st.binom.pmf(np.arange(m + 1), m, q) for m, q, r in zip(n, p, rho)]
    joint = {}
    for outcome in np.ndindex(*[m + 1 for m in n]):
        t = sum(outcome)
        joint[t] = joint.get(t, 0.0) + np.prod([f[o] for f, o in zip(pmfs, outcome)])
    observed = joint[sum(k)]
    expected = sum(v for v in joint.values() if v <= observed * (1 + 1e-7))
    assert summed_betabinom_test(k, n, p, rho) == pytest.approx(expected, rel=1e-9)


def test_combine_replicates_one_test_per_snv_and_bh():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        reps = 1 + i % 3
        for r in range(reps):
            n = int(rng.integers(8, 40))
            k = int(rng.binomial(n, 0.8 if i < 12 else 0.5))
            rows.append(("D1", "liver", "CTCF", "chr1", 100 + i, "A", "G", k, n - k, str(r + 1)))
    t = pd.DataFrame(rows, columns=["donor", "tissue", "assay", "chrom", "pos", "ref", "alt", "ref_count",
                                    "alt_count", "replicate"])
    res = _stats.test_imbalance(t, group_cols=("assay",), min_total=1, null="fixed", overdispersion=0.02)
    comb = _stats.combine_replicates(res.table, fdr=0.1)
    assert len(comb) == 60 and list(comb["n_replicates"]) == [1 + i % 3 for i in range(60)]
    one = comb["n_replicates"] == 1
    single = res.table.groupby("pos").filter(lambda g: len(g) == 1).set_index("pos")["p_betabinom"]
    np.testing.assert_allclose(comb.loc[one, "pvalue"], single.loc[comb.loc[one, "pos"]].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(comb["qvalue"], multipletests(comb["pvalue"], method="fdr_bh")[1], rtol=1e-10)
    assert comb["total"].sum() == res.table["total"].sum()
    assert (comb.loc[comb["as_call"], "preferred_allele"] == "ref").all()
    assert comb.loc[comb["pos"] < 112, "as_call"].mean() > 0.7 and comb.loc[comb["pos"] >= 112, "as_call"].mean() < 0.1
    assert comb.loc[comb["pos"] == 102, "replicates"].item() == "1,2,3"


# --------------------------------------------------------------------------- truncation at a read floor (issue 28)
def _truncated_brute(k, n, p, rho, m):
    j = np.arange(m, n - m + 1)
    f = st.binom.pmf(j, n, p) if rho == 0 else st.betabinom.pmf(j, n, p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho)
    f = f / f.sum()
    return f[f <= f[k - m] * (1 + 1e-7)].sum()


def test_truncated_tests_equal_brute_force_sums():
    from allelic.pvalues import binomial_test as binom_t

    cases = [(5, 12, 0.5, 0.03, 5), (7, 30, 0.55, 0.05, 5), (20, 30, 0.5, 0.0, 5), (3, 10, 0.4, 0.1, 3),
             (50, 80, 0.52, 0.02, 5), (5, 10, 0.5, 0.2, 5), (9, 40, 0.6, 0.01, 2)]
    k, n, p, rho, m = (np.array(c) for c in zip(*cases))
    for mm in np.unique(m):
        s = m == mm
        got = _stats.betabinom_test(k[s], n[s], p[s], rho[s], min_count=int(mm))
        want = [_truncated_brute(*c) for c in zip(k[s], n[s], p[s], rho[s], m[s])]
        np.testing.assert_allclose(got, want, rtol=1e-9)
    assert binom_t(20, 30, 0.5, min_count=5) == pytest.approx(_truncated_brute(20, 30, 0.5, 0.0, 5), rel=1e-9)
    assert _stats.betabinom_test(5, 10, 0.5, 0.2, min_count=5) == pytest.approx(1.0)  # the only outcome left
    # no floor: unchanged, still scipy's binomtest
    assert _stats.betabinom_test(3, 20, 0.5, 0.0) == pytest.approx(st.binomtest(3, 20, 0.5).pvalue, rel=1e-12)
    with pytest.raises(ValueError, match=r"min_count=5: index 0 has k=4 of n=20, below the floor"):
        _stats.betabinom_test([4], [20], 0.5, 0.03, min_count=5)


def _floor_filtered(rng, n_sites=30_000, rho=0.03, p=0.5, floor=5):
    """HEK293-like null records: beta-binomial reads at depths of median about 21, kept only where both alleles have
    at least ``floor`` reads (the VCFs' own filter)."""
    n = rng.negative_binomial(3, 3 / (3 + 22), n_sites) + 1
    k = rng.binomial(n, rng.beta(p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho, n_sites))
    keep = (k >= floor) & (n - k >= floor)
    return k[keep], n[keep]


def test_truncated_fit_recovers_rho_on_floor_filtered_data():
    from allelic.nullfit import fit_betabinom_rho, fit_null_trimmed

    k, n = _floor_filtered(np.random.default_rng(5))
    plain = fit_betabinom_rho(k, n, 0.5)
    assert plain < 0.8 * 0.03  # the floor removes the unbalanced tail: rho looks far smaller
    assert fit_betabinom_rho(k, n, 0.5, min_count=5) == pytest.approx(0.03, rel=0.1)
    p_null, rho = fit_null_trimmed(k, n, min_count=5)
    assert rho == pytest.approx(0.03, rel=0.1) and p_null == pytest.approx(0.5, abs=0.01)


def test_truncated_null_p_values_hold_their_level_in_every_depth_bin():
    """Null records filtered at a floor of 5 reads per allele, the null fitted and tested with and without the floor.
    Truncated: the rejection rate stays at most the level (plus 3 standard errors) in every depth bin, and near it
    from 20 reads on; below 20 reads only the discreteness of a few possible counts holds it back. Untruncated
    (rho fitted too small): records of 40-79 reads reject a true null too often, and shallow ones never."""
    k, n = _floor_filtered(np.random.default_rng(6), n_sites=60_000)
    counts = pd.DataFrame({"ref_count": k, "alt_count": n - k})
    fits = {m: _stats.test_imbalance(counts, group_cols=(), min_total=10, null="trimmed", min_count=m).table
            for m in (0, 5)}
    t = fits[5]
    assert t["rho"].iloc[0] == pytest.approx(0.03, rel=0.1)
    for alpha in (0.01, 0.05, 0.1):
        rate = {m: (f["p_betabinom"] <= alpha).groupby(pd.cut(f["total"], [9, 19, 39, 79, 10_000]), observed=True)
                .agg(["mean", "size"]) for m, f in fits.items()}
        se = np.sqrt(alpha * (1 - alpha) / rate[5]["size"])
        assert (rate[5]["mean"] <= alpha + 3 * se).all(), (alpha, rate[5])
        if alpha >= 0.05:
            assert (rate[5]["mean"].iloc[1:] >= alpha * 0.75).all(), (alpha, rate[5])
            assert rate[0]["mean"].iloc[2] > alpha + 3 * se.iloc[2], (alpha, rate[0])  # untruncated: too many
    assert (fits[0].loc[fits[0]["total"] < 20, "p_betabinom"] > 0.05).all()       # untruncated: shallow never rejects
    assert (t.loc[t["total"] < 20, "p_betabinom"] <= 0.1).mean() > 0.02


def test_randomized_pvalues_equal_hand_sums():
    from scipy.stats import betabinom

    a, b = 0.5 * (1 - 0.1) / 0.1, 0.5 * (1 - 0.1) / 0.1
    d = betabinom(12, a, b)
    kept = d.cdf(12 - 3) - d.cdf(2)
    u = np.random.default_rng(4).random(1)[0]
    want = (d.cdf(9) - d.cdf(7) + u * d.pmf(7)) / kept       # P(7 < X <= 9) + U P(X = 7), over the kept mass
    got = _stats.randomized_pvalues([7], [12], 0.5, 0.1, min_count=3, random_state=4)
    assert got[0] == pytest.approx(want, rel=1e-9)
    one = st.binom(10, 0.3)                                 # binomial, no floor
    assert _stats.randomized_pvalues([4], [10], 0.3, 0.0, random_state=4)[0] == pytest.approx(
        one.sf(4) + u * one.pmf(4), rel=1e-9)


def test_truncated_null_randomized_p_values_are_uniform_in_every_depth_bin():
    """Issue 28's must-show: on floor-filtered null records (planted rho 0.03), the truncated fit recovers rho within
    10 % and the randomized p-values under the fitted truncated null are uniform (Kolmogorov-Smirnov) in every depth
    bin; the untruncated fit (rho too small) fails the same check where the floor bites."""
    k, n = _floor_filtered(np.random.default_rng(6), n_sites=60_000)
    counts = pd.DataFrame({"ref_count": k, "alt_count": n - k})
    bins = [9, 19, 39, 79, 10_000]
    ks = {}
    for m in (0, 5):
        t = _stats.test_imbalance(counts, group_cols=(), min_total=10, null="trimmed", min_count=m).table
        if m:
            assert t["rho"].iloc[0] == pytest.approx(0.03, rel=0.1)
        u = _stats.randomized_pvalues(t["ref_count"], t["total"], t["p_null"], t["rho"], min_count=5, random_state=0)
        ks[m] = [st.kstest(u[(t["total"] > lo) & (t["total"] <= hi)], "uniform").pvalue
                 for lo, hi in zip(bins[:-1], bins[1:])]
    assert min(ks[5]) > 0.01, ks[5]
    assert min(ks[0]) < 1e-6, ks[0]


def test_test_imbalance_ledgers_rows_below_the_floor():
    t = pd.DataFrame({"ref_count": [3, 10, 12, 8], "alt_count": [20, 11, 4, 9]})
    res = _stats.test_imbalance(t, group_cols=(), min_total=6, null="fixed", overdispersion=0.02, min_count=5)
    assert len(res.table) == 2
    led = res.ledger.table()
    assert sorted(led.loc[led["reason"] == "below_min_count", "record"]) == ["0", "2"]
