"""Exact two-sided binomial and beta-binomial tests of allelic imbalance, the dosage-aware test, and the allelic
ratio's confidence interval (the tests of :mod:`allelic.stats`).

All tests are exact and two-sided with the definition used by :func:`scipy.stats.binomtest`: the p-value is the
total probability of the outcomes that are no more likely than the observed one, with a relative tolerance of
``1 + 1e-7`` on "no more likely". With ``alpha = p (1 - rho) / rho`` and ``beta = (1 - p)(1 - rho) / rho`` the
beta-binomial's variance of ``k`` is ``n p (1 - p) (1 + (n - 1) rho)``; ``rho -> 0`` is the binomial.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special
from scipy.stats import beta as _beta_dist
from scipy.stats import binom as _binom
from scipy.stats import norm as _norm


#: relative tolerance on "no more likely than observed" (scipy.stats.binomtest's value)
_RERR = 1.0 + 1e-7
_LOG_RERR = np.log(_RERR)
#: elements per chunk of the (keys x (n + 1)) beta-binomial pmf matrix
_CHUNK_ELEMENTS = 1 << 20


# --------------------------------------------------------------------------- validation


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(np.ravel(mask))[0])


def _as_count_array(x, name: str) -> np.ndarray:
    """``x`` as an int64 array of non-negative integer counts; ValueError naming the first bad entry."""
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.number) or a.dtype == object):
        raise ValueError(f"{name} must be numeric counts, got dtype {a.dtype}")
    if not np.issubdtype(a.dtype, np.integer):
        try:
            f = a.astype(float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric counts: {exc}") from None
        bad = ~np.isfinite(f)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"{name} has a missing or non-finite value at index {i} ({f.ravel()[i]})")
        bad = f != np.round(f)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(f"{name} must be whole numbers of reads; index {i} is {f.ravel()[i]}")
        a = f
    a = a.astype(np.int64)
    bad = a < 0
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"negative counts in {name} at index {i} ({a.ravel()[i]})")
    return a


def _check_counts(k, n, k_name: str = "k (ref count)", n_name: str = "n (total)"):
    """Validated, broadcast int64 arrays ``k``, ``n`` with ``0 <= k <= n``."""
    k = _as_count_array(k, k_name)
    n = _as_count_array(n, n_name)
    try:
        k, n = np.broadcast_arrays(k, n)
    except ValueError:
        raise ValueError(f"{k_name} shape {k.shape} and {n_name} shape {n.shape} do not broadcast") from None
    bad = k > n
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(
            f"{k_name} exceeds {n_name} at index {i}: k={k.ravel()[i]} > n={n.ravel()[i]}")
    return k, n


def _check_param(x, name: str, lo: float, hi: float, *, lo_open=False, hi_open=False) -> np.ndarray:
    """Float array of a parameter in [lo, hi] (or open ends); ValueError naming the first bad entry."""
    a = np.asarray(x, dtype=float)
    bad = ~np.isfinite(a) | (a <= lo if lo_open else a < lo) | (a >= hi if hi_open else a > hi)
    if bad.any():
        i = _first_bad(bad)
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {lb}{lo}, {hi}{rb}; index {i} is {a.ravel()[i]}")
    return a


def _unique_rows(*cols: np.ndarray):
    """Group ids of identical rows across 1-D ``cols``.

    Returns ``(ids, first)``: ``ids`` (N,) int64 in 0..G-1 and ``first`` (G,) the
    index of one representative row per group (so ``col[first][ids] == col``).
    """
    N = len(cols[0])
    if N == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort(cols[::-1])
    change = np.zeros(N - 1, dtype=bool)
    for c in cols:
        cs = c[order]
        change |= cs[1:] != cs[:-1]
    grp = np.concatenate([[0], np.cumsum(change)])
    ids = np.empty(N, np.int64)
    ids[order] = grp
    first = order[np.concatenate([[0], np.flatnonzero(change) + 1])]
    return ids, first


# --------------------------------------------------------------------------- binomial


def _vec_binary_search(a, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Element-wise copy of ``scipy.stats._binomtest._binary_search_for_binom_tst``.

    ``a(x, idx)`` evaluates the (ascending) function at integer points ``x`` for
    the elements ``idx``. Returns, per element, ``i`` with ``a(i) <= d < a(i+1)``
    exactly as scipy's scalar search does (including its end-point quirks), so
    the p-values match ``binomtest`` bit for bit in the search step.
    """
    lo = lo.astype(np.int64).copy()
    hi = hi.astype(np.int64).copy()
    idx = np.flatnonzero(lo < hi)
    while idx.size:
        l, h = lo[idx], hi[idx]
        mid = l + (h - l) // 2
        mv = a(mid, idx)
        dd = d[idx]
        less = mv < dd
        greater = mv > dd
        equal = ~(less | greater)
        lo[idx[less]] = mid[less] + 1
        hi[idx[greater]] = mid[greater] - 1
        lo[idx[equal]] = mid[equal]          # scipy returns mid; a(mid) <= d below keeps it
        hi[idx[equal]] = mid[equal]
        idx = idx[lo[idx] < hi[idx]]
    all_idx = np.arange(lo.size)
    return np.where(a(lo, all_idx) <= d, lo, lo - 1)


def _binom_two_sided(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Two-sided exact binomial p-values, 1-D arrays, ``n >= 1`` (vectorised binomtest)."""
    pval = np.ones(k.shape, dtype=float)
    d = _binom.pmf(k, n, p)
    pn = p * n
    lt = k < pn
    gt = k > pn
    if lt.any():
        kk, nn, pp, dd = k[lt], n[lt], p[lt], d[lt]
        ix = _vec_binary_search(lambda x, i: -_binom.pmf(x, nn[i], pp[i]), -dd * _RERR,
                                np.ceil(pp * nn), nn)
        y = nn - ix + (dd * _RERR == _binom.pmf(ix, nn, pp)).astype(np.int64)
        pval[lt] = _binom.cdf(kk, nn, pp) + _binom.sf(nn - y, nn, pp)
    if gt.any():
        kk, nn, pp, dd = k[gt], n[gt], p[gt], d[gt]
        ix = _vec_binary_search(lambda x, i: _binom.pmf(x, nn[i], pp[i]), dd * _RERR,
                                np.zeros_like(nn), np.floor(pp * nn))
        y = ix + 1
        pval[gt] = _binom.cdf(y - 1, nn, pp) + _binom.sf(kk - 1, nn, pp)
    return np.minimum(1.0, pval)


def binomial_test(k, n, p=0.5, *, min_count: int = 0) -> np.ndarray:
    """Exact two-sided binomial test of ``k`` successes out of ``n`` against ratio ``p``.

    Parameters
    ----------
    k, n : array_like of int, broadcastable
        Successes (e.g. reference reads) and trials (total reads), ``0 <= k <= n``.
    p : float or array_like, broadcastable with ``k``
        Null success probability in ``[0, 1]``.

    Returns
    -------
    np.ndarray of float, the broadcast shape of ``(k, n, p)`` (0-d for scalars)
        ``scipy.stats.binomtest(k, n, p).pvalue`` element-wise: the total
        probability of outcomes whose pmf is ``<= pmf(k) * (1 + 1e-7)``. Sites
        with ``n == 0`` (no reads, nothing to test) get NaN. With ``min_count`` > 0: the binomial truncated to
        ``[min_count, n - min_count]`` (see :func:`betabinom_test`).

    Notes
    -----
    The p-values are computed like scipy (same binary search on the far side of
    the mode, same ``binom.cdf``/``binom.sf`` calls) but on arrays; identical
    ``(k, n, p)`` triples are evaluated once. Cost ~ ``log2(n)`` pmf evaluations
    per distinct triple.
    """
    if min_count:
        return betabinom_test(k, n, p, 0.0, min_count=min_count)
    k, n = _check_counts(k, n)
    p = _check_param(p, "p (null ratio)", 0.0, 1.0)
    k, n, p = np.broadcast_arrays(k, n, p)
    shape = k.shape
    k, n, p = k.ravel(), n.ravel(), p.ravel()
    out = np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        kk, nn, pp = k[ok], n[ok], p[ok]
        ids, first = _unique_rows(kk, nn, pp)
        out[ok] = _binom_two_sided(kk[first], nn[first], pp[first])[ids]
    return out.reshape(shape)


# --------------------------------------------------------------------------- beta-binomial


def _rising_log(base: np.ndarray, rho: np.ndarray, width: int) -> np.ndarray:
    """``R[:, j] = sum_{i<j} log(base (1 - rho) + i rho)`` for ``j = 0..width-1``; shape (m, width).

    ``exp(R[:, j] - j log rho)`` is the rising factorial ``alpha (alpha+1) ... (alpha+j-1)``
    of ``alpha = base (1 - rho) / rho``; the ``log rho`` terms cancel in the beta-binomial pmf,
    which keeps it accurate for tiny ``rho`` (and makes ``rho == 0`` exactly binomial).
    """
    steps = np.arange(width - 1, dtype=float)[None, :]
    terms = np.log(base * (1.0 - rho) + steps * rho)
    out = np.zeros((base.shape[0], width))
    np.cumsum(terms, axis=1, out=out[:, 1:])
    return out


def _betabinom_logpmf_matrix(n: np.ndarray, p: np.ndarray, rho: np.ndarray, logfact: np.ndarray):
    """Log pmf of BetaBinom(n_i, p_i, rho_i) at ``j = 0..max(n)``; shape (m, max(n)+1), -inf for j > n_i.

    The rising-factorial tables depend on ``(p, rho)`` only, so they are built once
    per distinct pair and gathered for every ``n``.
    """
    width = int(n.max()) + 1
    cid, cfirst = _unique_rows(p, rho)
    pc, rc = p[cfirst][:, None], rho[cfirst][:, None]
    A = _rising_log(pc, rc, width)
    B = _rising_log(1.0 - pc, rc, width)
    C = _rising_log(np.ones_like(pc), rc, width)
    nc = n[:, None]
    j = np.arange(width)[None, :]
    valid = j <= nc
    nmj = np.where(valid, nc - j, 0)
    ci = cid[:, None]
    L = logfact[nc] - logfact[j] - logfact[nmj]
    L += A[ci, j]
    L += B[ci, nmj]
    L -= C[ci, nc]
    L[~valid] = -np.inf
    return L


def _kept(L: np.ndarray, n: np.ndarray, min_count: int) -> np.ndarray:
    """A log-pmf matrix (rows: totals ``n``) with -inf outside ``min_count <= j <= n - min_count``."""
    j = np.arange(L.shape[1])[None, :]
    return np.where((j >= min_count) & (j <= n[:, None] - min_count), L, -np.inf)


def _truncate_rows(L: np.ndarray, n: np.ndarray, min_count: int) -> np.ndarray:
    """Rows of a log-pmf matrix (totals ``n``) conditioned on ``min_count <= j <= n - min_count``: -inf outside,
    renormalised inside (the left- and right-truncated beta-binomial of tables that keep only sites where both alleles
    have at least ``min_count`` reads)."""
    if min_count <= 0:
        return L
    L = _kept(L, n, min_count)
    with np.errstate(divide="ignore"):
        return L - special.logsumexp(L, axis=1, keepdims=True)


def _check_floor(k, n, min_count: int) -> None:
    """Every ``k`` within ``[min_count, n - min_count]`` (the support of the truncated distribution)."""
    if min_count < 0 or int(min_count) != min_count:
        raise ValueError(f"min_count must be a non-negative integer, got {min_count!r}")
    k, n = np.ravel(k), np.ravel(n)
    bad = (k < min_count) | (n - k < min_count)
    if min_count and bad.any():
        i = _first_bad(bad)
        raise ValueError(f"min_count={min_count}: index {i} has k={k[i]} of n={n[i]}, below the floor on one allele "
                         f"(a table filtered with this floor cannot hold it)")


def _count_le_sorted_rows(S: np.ndarray, rows: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Per query, the number of entries of the ascending row ``S[rows[q]]`` that are ``<= thr[q]``."""
    lo = np.zeros(rows.shape, np.int64)
    hi = np.full(rows.shape, S.shape[1], np.int64)
    idx = np.arange(rows.size)
    while idx.size:
        mid = (lo[idx] + hi[idx]) // 2
        cond = S[rows[idx], mid] <= thr[idx]
        lo[idx[cond]] = mid[cond] + 1
        hi[idx[~cond]] = mid[~cond]
        idx = idx[lo[idx] < hi[idx]]
    return lo


def _betabinom_two_sided(k: np.ndarray, n: np.ndarray, p: np.ndarray, rho: np.ndarray,
                         min_count: int = 0) -> np.ndarray:
    """Two-sided exact beta-binomial p-values, 1-D arrays, ``n >= 1``, ``0 < p < 1``, ``0 < rho < 1``.

    For each distinct ``(n, p, rho)`` the whole pmf ``j = 0..n`` is computed (in
    chunks of ~``_CHUNK_ELEMENTS`` numbers), sorted and cumulatively summed from
    the smallest term; each site's p-value is then the cumulative sum up to the
    last term ``<= pmf(k) * (1 + 1e-7)``. This is valid whatever the shape of the
    pmf (bell, U or J shaped for large ``rho``). Cost ~ sum over distinct keys of ``n``.
    """
    out = np.empty(k.shape, dtype=float)
    key, first = _unique_rows(n, p, rho)
    kn, kp, kr = n[first], p[first], rho[first]
    korder = np.argsort(kn, kind="stable")
    rank = np.empty_like(korder)
    rank[korder] = np.arange(korder.size)
    kn, kp, kr = kn[korder], kp[korder], kr[korder]
    key = rank[key]                                   # keys now numbered by ascending n
    qorder = np.argsort(key, kind="stable")
    qstart = np.searchsorted(key[qorder], np.arange(kn.size + 1))
    logfact = special.gammaln(np.arange(kn[-1] + 1, dtype=float) + 1.0)
    K = kn.size
    i = 0
    while i < K:
        sizes = np.arange(1, K - i + 1) * (kn[i:] + 1)
        j = i + max(1, int(np.searchsorted(sizes, _CHUNK_ELEMENTS, side="right")))
        L = _truncate_rows(_betabinom_logpmf_matrix(kn[i:j], kp[i:j], kr[i:j], logfact), kn[i:j], min_count)
        qs = qorder[qstart[i]:qstart[j]]
        rows = key[qs] - i
        thr = L[rows, k[qs]] + _LOG_RERR
        L.sort(axis=1)
        cs = np.cumsum(np.exp(L), axis=1)
        cnt = _count_le_sorted_rows(L, rows, thr)
        out[qs] = np.minimum(1.0, cs[rows, cnt - 1])
        i = j
    return out


def betabinom_test(k, n, p=0.5, rho=0.0, *, min_count: int = 0) -> np.ndarray:
    """Exact two-sided beta-binomial test of ``k`` out of ``n`` against mean ratio ``p``.

    Parameters
    ----------
    k, n : array_like of int, broadcastable
        Reference reads and total reads, ``0 <= k <= n``.
    p : float or array_like
        Mean (null) ratio of the beta-binomial, in ``(0, 1)`` (``[0, 1]`` where ``rho == 0``).
    rho : float or array_like
        Over-dispersion in ``[0, 1)``: ``alpha = p (1 - rho) / rho``,
        ``beta = (1 - p)(1 - rho) / rho``. Where ``rho == 0`` the result is
        exactly :func:`binomial_test`.
    min_count : int
        The floor the data were filtered with: only sites where both alleles have at least ``min_count`` reads were
        kept (e.g. 5 in HEK293's VCFs). The test then uses the truncated distribution ``f(j) / sum_{min_count <= i <=
        n - min_count} f(i)`` on that support, as MIXALIME does; a site outside it is a ValueError. 0 (default): the
        untruncated test.

    Returns
    -------
    np.ndarray of float, the broadcast shape of ``(k, n, p, rho)``
        Total beta-binomial probability of outcomes whose pmf is
        ``<= pmf(k) * (1 + 1e-7)`` (the binomtest definition). NaN where ``n == 0``.

    Notes
    -----
    The pmf is evaluated as ``C(n, j) prod_{i<j}(p(1-rho)+i rho) prod_{i<n-j}((1-p)(1-rho)+i rho)
    / prod_{i<n}((1-rho)+i rho)`` in logs, which is accurate down to ``rho ~ 1e-12``
    (``scipy.special.betaln`` loses ~1e-5 in the log at ``rho = 1e-8``). Work is
    proportional to the sum of ``n + 1`` over distinct ``(n, p, rho)``, so for
    one sample (one ``p`` and ``rho``) to the sum over distinct totals.
    """
    k, n = _check_counts(k, n)
    p = _check_param(p, "p (null ratio)", 0.0, 1.0)
    rho = _check_param(rho, "rho (over-dispersion)", 0.0, 1.0, hi_open=True)
    k, n, p, rho = np.broadcast_arrays(k, n, p, rho)
    shape = k.shape
    k, n, p, rho = k.ravel(), n.ravel(), p.ravel(), rho.ravel()
    bad = (rho > 0) & ((p <= 0) | (p >= 1))
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"p (null ratio) must lie in (0, 1) when rho > 0; index {i} is p={p[i]}, rho={rho[i]}")
    _check_floor(k, n, min_count)
    out = np.full(k.shape, np.nan)
    zero = (rho == 0) & (min_count == 0)   # truncated binomials go through the pmf matrix (rho = 0 is exact there)
    if zero.any():
        out[zero] = binomial_test(k[zero], n[zero], p[zero])
    sel = (~zero) & (n > 0)
    if sel.any():
        kk, nn, pp, rr = k[sel], n[sel], p[sel], rho[sel]
        ids, first = _unique_rows(kk, nn, pp, rr)
        out[sel] = _betabinom_two_sided(kk[first], nn[first], pp[first], rr[first], min_count)[ids]
    return out.reshape(shape)


def summed_betabinom_test(k, n, p, rho) -> float:
    """Exact two-sided test of the summed reference reads ``T = sum(k)`` of independent replicates, replicate ``i``
    beta-binomial(``n[i]``, mean ``p[i]``, over-dispersion ``rho[i]``; binomial where ``rho[i] = 0``) under the null.

    ``T``'s null pmf is the convolution of the replicates' pmfs; the p-value sums the terms no more likely than
    ``T`` (the rule of :func:`betabinom_test`, so one replicate gives exactly its p-value). Used by
    :func:`allelic.stats.combine_replicates`."""
    from scipy import stats as st

    k, n = np.atleast_1d(np.asarray(k, np.int64)), np.atleast_1d(np.asarray(n, np.int64))
    p, rho = np.broadcast_to(p, k.shape).astype(float), np.broadcast_to(rho, k.shape).astype(float)
    pmf = np.ones(1)
    for ki, ni, pi, ri in zip(k, n, p, rho):
        j = np.arange(ni + 1)
        pmf = np.convolve(pmf, st.binom.pmf(j, ni, pi) if ri <= 0 else st.betabinom.pmf(j, ni, *_rho_to_ab(pi, ri)))
    t = int(k.sum())
    return float(min(1.0, pmf[pmf <= pmf[t] * _RERR].sum()))


def _rho_to_ab(p, rho):
    """Beta parameters ``(alpha, beta)`` of mean ``p`` and over-dispersion ``rho > 0``."""
    s = (1.0 - rho) / rho
    return p * s, (1.0 - p) * s


# --------------------------------------------------------------------------- effect sizes


def allelic_ratio_ci(k, n, *, level=0.95, method="wilson") -> pd.DataFrame:
    """Allelic ratio, log2 ratio and a confidence interval for the ratio.

    Parameters
    ----------
    k, n : array_like of int, shape (N,)
        Reference and total reads.
    level : float
        Confidence level in (0, 1).
    method : {"wilson", "exact"}
        Wilson score interval, or Clopper-Pearson ("exact", also accepted as "beta").

    Returns
    -------
    DataFrame with N rows (RangeIndex) and columns
        ``ratio`` = k/n (NaN if n == 0); ``log2_ratio`` = log2((k+0.5)/(n-k+0.5))
        (ref over alt, pseudocount 0.5); ``ci_low``, ``ci_high`` bounds on the
        ratio (NaN if n == 0). Equal to statsmodels ``proportion_confint`` with
        ``method="wilson"`` / ``"beta"``.
    """
    k, n = _check_counts(k, n)
    k, n = k.ravel().astype(float), n.ravel().astype(float)
    if not (0 < level < 1):
        raise ValueError(f"level must lie in (0, 1), got {level}")
    alpha = 1.0 - level
    has = n > 0
    ns = np.where(has, n, 1.0)
    ratio = np.where(has, k / ns, np.nan)
    if method == "wilson":
        z = _norm.isf(alpha / 2.0)
        z2 = z * z
        denom = 1.0 + z2 / ns
        center = (ratio + z2 / (2.0 * ns)) / denom
        half = z * np.sqrt(ratio * (1.0 - ratio) / ns + z2 / (4.0 * ns * ns)) / denom
        lo, hi = center - half, center + half
    elif method in ("exact", "beta", "clopper-pearson"):
        with np.errstate(invalid="ignore"):
            lo = np.where(k > 0, _beta_dist.ppf(alpha / 2.0, k, n - k + 1), 0.0)
            hi = np.where(k < n, _beta_dist.isf(alpha / 2.0, k + 1, n - k), 1.0)
    else:
        raise ValueError(f"allelic_ratio_ci: unknown method {method!r} (use 'wilson' or 'exact')")
    lo = np.where(has, lo, np.nan)
    hi = np.where(has, hi, np.nan)
    log2r = np.log2((k + 0.5) / (n - k + 0.5))
    return pd.DataFrame({"ratio": ratio, "log2_ratio": log2r, "ci_low": lo, "ci_high": hi})


def _component_tails(k: np.ndarray, n: np.ndarray, p: np.ndarray, rho: np.ndarray, min_count: int = 0):
    """``P(X >= k)``, ``P(X <= k)`` and the kept mass ``P(min_count <= X <= n - min_count)`` of a binomial
    (``rho = 0``) or beta-binomial at mean ``p``; with ``min_count`` the tails count only the kept outcomes (divide
    by the mass for the truncated distribution's)."""
    from scipy.stats import betabinom, binom

    ge, le, z = np.empty(k.shape), np.empty(k.shape), np.ones(k.shape)
    m = min_count
    for sel, dist in ((rho <= 0, lambda s: binom(n[s], p[s])),
                      (rho > 0, lambda s: betabinom(n[s], *_rho_to_ab(p[s], rho[s])))):
        if sel.any():
            d = dist(sel)
            ge[sel] = d.sf(k[sel] - 1) - (d.sf(n[sel] - m) if m else 0.0)
            le[sel] = d.cdf(k[sel]) - (d.cdf(m - 1) if m else 0.0)
            if m:
                z[sel] = d.cdf(n[sel] - m) - d.cdf(m - 1)
    return np.clip(ge, 0.0, 1.0), np.clip(le, 0.0, 1.0), np.clip(z, 0.0, 1.0)


def null_ratios(bad, null_ratio=0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(1 / (b + 1), b / (b + 1))``: the two reference-allele ratios a site without allele-specific activity can
    have under BAD ``b`` (``b >= 1``; BAD 1 gives 0.5 twice). With a reference mapping bias (``null_ratio`` ``p0``,
    the ratio at BAD 1; odds ``w = p0 / (1 - p0)``) the reference odds are ``w / b`` and ``w b``:
    ``(w / (w + b), w b / (w b + 1))``. Raises ValueError for a BAD below 1 or not finite."""
    b = np.asarray(bad, dtype=float)
    if not np.all(np.isfinite(b)) or np.any(b < 1):
        raise ValueError(f"BAD must be a finite number >= 1 (got {b[~np.isfinite(b) | (b < 1)][:3].tolist()})")
    w = np.asarray(null_ratio, dtype=float) / (1 - np.asarray(null_ratio, dtype=float))
    return w / (w + b), w * b / (w * b + 1.0)


def dosage_test(k, n, bad=1.0, rho=0.0, more=0.5, null_ratio=0.5, *, min_count: int = 0) -> pd.DataFrame:
    """Allelic imbalance beyond background allelic dosage (BAD): under BAD ``b`` a site without allele-specific
    activity has reference ratio ``b / (b + 1)`` when the reference allele is on the haplotype with more copies and
    ``1 / (b + 1)`` when it is on the other; the null is the mixture of the two binomials (``rho = 0``) or
    beta-binomials (over-dispersion ``rho``) with weight ``more`` on the first. ``more = 0.5`` (phase unknown, the
    even mixture MIXALIME uses); with phased haplotypes and a segment whose extra copies are known to be on one
    haplotype, ``more`` is the probability of that (:func:`allelic.dosage.segment`, ``p_hap1_more``) and the test
    sharpens to one component. BAD 1 is the usual test at ``null_ratio`` (0.5, or the reference mapping bias
    :func:`fit_dosage_null` estimates; :func:`null_ratios`).

    Returns a DataFrame (one row per site): ``p_ref`` = ``P(X >= k)`` (more reference reads than dosage explains),
    ``p_alt`` = ``P(X <= k)``, ``pvalue`` = ``min(1, 2 min(p_ref, p_alt))`` (two-sided) and ``preferred``
    (``"ref"`` or ``"alt"``, the side of the smaller one-sided p). ``k``, ``n``, ``bad``, ``rho``, ``more``,
    ``null_ratio`` broadcast. ``min_count``: the data kept only sites where both alleles have at least this many
    reads; the null is then the mixture conditioned on that (each component's tails over the kept outcomes, divided
    by the mixture's kept mass: the floor is applied after the reads are drawn, whatever the phase)."""
    k, n = _check_counts(k, n)
    bad = np.asarray(bad, dtype=float)
    rho = np.asarray(_check_param(rho, "rho", 0.0, 1.0, hi_open=True), dtype=float)
    more = np.asarray(_check_param(more, "more", 0.0, 1.0), dtype=float)
    p0 = np.asarray(_check_param(null_ratio, "null_ratio", 0.0, 1.0, lo_open=True, hi_open=True), dtype=float)
    k, n, bad, rho, more, p0 = np.broadcast_arrays(k, n, bad, rho, more, p0)
    lo, hi = null_ratios(bad, p0)
    _check_floor(k, n, min_count)
    k, n = k.astype(float), n.astype(float)
    ge_lo, le_lo, z_lo = _component_tails(k, n, lo, rho, min_count)
    ge_hi, le_hi, z_hi = _component_tails(k, n, hi, rho, min_count)
    z = (1 - more) * z_lo + more * z_hi
    p_ref, p_alt = ((1 - more) * ge_lo + more * ge_hi) / z, ((1 - more) * le_lo + more * le_hi) / z
    p_ref, p_alt = np.clip(p_ref, 0.0, 1.0), np.clip(p_alt, 0.0, 1.0)
    return pd.DataFrame({"p_ref": p_ref.ravel(), "p_alt": p_alt.ravel(),
                         "pvalue": np.minimum(1.0, 2 * np.minimum(p_ref, p_alt)).ravel(),
                         "preferred": np.where(p_ref <= p_alt, "ref", "alt").ravel()})


def randomized_pvalues(k, n, p=0.5, rho=0.0, *, bad=1.0, min_count: int = 0, random_state=None) -> np.ndarray:
    """Randomized one-sided p-values ``P(X > k) + U P(X = k)`` (``U`` uniform) under the null of
    :func:`dosage_test` (BAD ``bad``, even phase mixture; ``bad = 1`` is the beta-binomial at ``p``, the binomial
    for ``rho = 0``), truncated to ``[min_count, n - min_count]`` when ``min_count`` is set.

    A calibration check, not a test to call with: a discrete null's p-values are not uniform, but these are exactly
    U(0, 1) when the records follow the null (the randomized probability integral transform; Dunn and Smyth's
    randomized quantile residuals are their normal quantiles), so a Kolmogorov-Smirnov test per depth bin asks
    whether a fitted null describes the data at every depth. ``random_state`` seeds ``U``."""
    t = dosage_test(k, n, bad, rho, 0.5, p, min_count=min_count)
    p_ref, p_alt = t["p_ref"].to_numpy(), t["p_alt"].to_numpy()
    u = np.random.default_rng(random_state).random(len(t))
    return np.clip(1.0 - p_alt + u * (p_ref + p_alt - 1.0), 0.0, 1.0)
