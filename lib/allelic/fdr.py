"""False discovery rate: Benjamini-Hochberg q-values (:func:`bh_fdr`) and the AlleleSeq-style threshold from
simulated null data (:func:`empirical_fdr_threshold`).
"""
from __future__ import annotations

from dataclasses import dataclass


import numpy as np
import pandas as pd

from .pvalues import _as_count_array, _check_param, _first_bad, _rho_to_ab, betabinom_test, binomial_test

# --------------------------------------------------------------------------- FDR


def bh_fdr(pvalues) -> np.ndarray:
    """Benjamini-Hochberg q-values, NaN-aware.

    Parameters
    ----------
    pvalues : array_like of float, any shape
        p-values in ``[0, 1]``; NaN marks untested entries.

    Returns
    -------
    np.ndarray, same shape
        q-values; NaN where the input is NaN (NaNs are not counted in ``m``).
        On NaN-free input identical to
        ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]``.
    """
    a = np.asarray(pvalues, dtype=float)
    flat = a.ravel()
    ok = ~np.isnan(flat)
    bad = ok & ~((flat >= 0) & (flat <= 1))
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN); index {i} is {flat[i]}")
    out = np.full(flat.shape, np.nan)
    pv = flat[ok]
    m = pv.size
    if m:
        order = np.argsort(pv)
        ecdf = np.arange(1, m + 1) / float(m)
        q = np.minimum.accumulate((pv[order] / ecdf)[::-1])[::-1]
        q[q > 1] = 1.0
        res = np.empty(m)
        res[order] = q
        out[ok] = res
    return out.reshape(a.shape)


@dataclass
class EmpiricalFDR:
    """Result of :func:`empirical_fdr_threshold`.

    Attributes
    ----------
    threshold : float
        Largest candidate p-value threshold ``t`` with ``FDR(t) <= target_fdr``
        (call sites with ``p <= threshold``); 0.0 when no candidate qualifies.
    fdr_curve : DataFrame
        One row per candidate ``t`` (ascending): ``t``; ``n_observed`` (#observed
        p <= t); ``n_null_mean`` (mean over simulations of #null p <= t); ``fdr``
        (``n_null_mean / n_observed``, NaN where ``n_observed == 0``).
    n_sims : int
        Number of simulated null data sets.
    target_fdr : float
        The requested FDR level.
    n_called : int
        Observed p-values ``<= threshold`` (0 when no candidate qualified).
    """

    threshold: float
    fdr_curve: pd.DataFrame
    n_sims: int
    target_fdr: float = 0.1
    n_called: int = 0

    def calls(self, pvalues) -> np.ndarray:
        """The call rule: ``p <= threshold`` when some candidate threshold reached the target FDR, else nothing is
        called (a threshold of 0.0 must not call p-values that underflowed to 0); NaN p-values are not called."""
        p = np.asarray(pvalues, dtype=float)
        if self.n_called == 0:
            return np.zeros(p.shape, bool)
        return p <= self.threshold


def empirical_fdr_threshold(pvalues, n, p, *, rho=0.0, fdr=0.1, n_sims=5, test="auto",
                            thresholds=None, random_state=None) -> EmpiricalFDR:
    """AlleleSeq-style empirical FDR: p-value threshold calibrated on simulated null data sets.

    Each simulation draws, for every site, ``k ~ Binomial(n, q)`` with ``q = p``
    (``rho == 0``) or ``q ~ Beta(p (1-rho)/rho, (1-p)(1-rho)/rho)`` (beta-binomial),
    keeping the observed totals, and scores it with the same test that produced
    ``pvalues``. For candidate ``t``, ``FDR(t) = mean_sims #{null p <= t} / #{observed p <= t}``.

    Parameters
    ----------
    pvalues : array_like (N,)
        Observed p-values (NaN = untested, ignored with its ``n``).
    n : array_like of int (N,)
        Total reads per site.
    p, rho : float or array_like (N,)
        Null ratio and over-dispersion of the simulated null.
    fdr : float
        Target FDR.
    n_sims : int
        Number of null data sets.
    test : {"auto", "binomial", "betabinomial"}
        Test that produced ``pvalues`` and scores the simulations. ``"auto"``:
        beta-binomial if any ``rho > 0`` else binomial. (Binomial p-values with a
        beta-binomial null, ``rho > 0``, is AlleleSeq's calibration of the
        binomial test for over-dispersion.)
    thresholds : array_like, optional
        Candidate thresholds; default all distinct observed p-values.
    random_state : None, int or numpy Generator

    Returns
    -------
    EmpiricalFDR
    """
    pv = np.asarray(pvalues, dtype=float).ravel()
    nn = _as_count_array(n, "n (total)").ravel()
    if pv.shape != nn.shape:
        raise ValueError(f"pvalues shape {pv.shape} and n shape {nn.shape} differ")
    pp = np.broadcast_to(_check_param(p, "p (null ratio)", 0.0, 1.0), pv.shape)
    rr = np.broadcast_to(_check_param(rho, "rho (over-dispersion)", 0.0, 1.0, hi_open=True), pv.shape)
    if not (0 < fdr < 1):
        raise ValueError(f"fdr must lie in (0, 1), got {fdr}")
    if int(n_sims) < 1:
        raise ValueError(f"n_sims must be >= 1, got {n_sims}")
    ok = ~np.isnan(pv)
    bad = ok & ~((pv >= 0) & (pv <= 1))
    if bad.any():
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN); index {_first_bad(bad)} is {pv[_first_bad(bad)]}")
    pv, nn, pp, rr = pv[ok], nn[ok], pp[ok], rr[ok]
    if test == "auto":
        test = "betabinomial" if (rr > 0).any() else "binomial"
    if test not in ("binomial", "betabinomial"):
        raise ValueError(f"test must be 'auto', 'binomial' or 'betabinomial', got {test!r}")
    rng = np.random.default_rng(random_state)
    over = rr > 0
    a = b = None
    if over.any():
        a, b = _rho_to_ab(pp[over], rr[over])

    obs = np.sort(pv)
    t = np.unique(obs) if thresholds is None else np.sort(np.asarray(thresholds, dtype=float).ravel())
    n_obs = np.searchsorted(obs, t, side="right")
    n_null = np.zeros(t.shape)
    for _ in range(int(n_sims)):
        q = pp.copy()
        if a is not None:
            q[over] = rng.beta(a, b)
        ks = rng.binomial(nn, q)
        ps = binomial_test(ks, nn, pp) if test == "binomial" else betabinom_test(ks, nn, pp, rr)
        n_null += np.searchsorted(np.sort(ps[~np.isnan(ps)]), t, side="right")
    n_null /= int(n_sims)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(n_obs > 0, n_null / np.maximum(n_obs, 1), np.nan)
    curve = pd.DataFrame({"t": t, "n_observed": n_obs, "n_null_mean": n_null, "fdr": f})
    good = f <= fdr
    thr = float(t[good].max()) if good.any() else 0.0
    called = int(np.searchsorted(obs, thr, side="right")) if good.any() else 0
    return EmpiricalFDR(threshold=thr, fdr_curve=curve, n_sims=int(n_sims), target_fdr=float(fdr),
                        n_called=called)
