"""Binomial / beta-binomial tests of allelic imbalance, over-dispersion, null ratio and FDR.

The question asked at every heterozygous site is whether the reads carrying the
reference allele (``k``, "ref count") out of all reads covering the site (``n``,
"total") are consistent with a null allelic ratio ``p``. ``p`` is 0.5 in an
ideal experiment; in practice reference mapping bias pushes it slightly above
0.5, so it can be estimated from the data (:func:`estimate_null_ratio`).

Counts over many sites are more variable than a binomial allows (PCR duplicates,
copy number, library effects), so -- as in AlleleSeq2 -- a beta-binomial with
mean ``p`` and over-dispersion ``rho`` is fitted across all sites of a sample
(:func:`fit_betabinom_rho`) and used for the test (:func:`betabinom_test`).
With ``alpha = p (1 - rho) / rho`` and ``beta = (1 - p)(1 - rho) / rho`` the
variance of ``k`` is ``n p (1 - p) (1 + (n - 1) rho)``; ``rho -> 0`` is the
binomial.

All tests are exact and two-sided with the definition used by
:func:`scipy.stats.binomtest`: the p-value is the total probability of the
outcomes that are no more likely than the observed one, with a relative
tolerance of ``1 + 1e-7`` on "no more likely".

Public functions (all vectorised with numpy; tables of 10^5-10^6 rows are fine):

- :func:`binomial_test`, :func:`betabinom_test` -- exact two-sided p-values
- :func:`fit_betabinom_rho` -- maximum-likelihood over-dispersion (optionally robust to AS sites)
- :func:`estimate_null_ratio` -- the null ratio that absorbs mapping bias
- :func:`bh_fdr` -- Benjamini-Hochberg q-values (NaN-aware)
- :func:`empirical_fdr_threshold` -- AlleleSeq-style simulated-null FDR
- :func:`allelic_ratio_ci` -- ratio, log2 ratio and Wilson / Clopper-Pearson CI
- :func:`test_imbalance` -- all of the above on a counts table, per group

The tests live in :mod:`allelic.pvalues`, the fitted null in :mod:`allelic.nullfit`, the FDR in :mod:`allelic.fdr`;
this module runs them together (:func:`test_imbalance`) and names them all, so ``from allelic.stats import ...``
reaches every one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .fdr import EmpiricalFDR, bh_fdr, empirical_fdr_threshold
from .ledger import Ledger
from .nullfit import DosageNull, NullFit, estimate_null_ratio, fit_betabinom_rho, fit_dosage_null, fit_null_trimmed
from .pvalues import (_check_param, _first_bad, allelic_ratio_ci, betabinom_test, binomial_test,
                      dosage_test, randomized_pvalues, summed_betabinom_test)

__all__ = [
    "combine_replicates",
    "format_pvalue",
    "dosage_test",
    "randomized_pvalues",
    "fit_dosage_null",
    "DosageNull",
    "binomial_test",
    "betabinom_test",
    "fit_betabinom_rho",
    "estimate_null_ratio",
    "fit_null_trimmed",
    "NullFit",
    "bh_fdr",
    "empirical_fdr_threshold",
    "EmpiricalFDR",
    "allelic_ratio_ci",
    "test_imbalance",
    "ImbalanceResult",
]


# --------------------------------------------------------------------------- all-in-one


@dataclass
class ImbalanceResult:
    """Result of :func:`test_imbalance`.

    Attributes
    ----------
    table : DataFrame
        The tested rows (``total >= min_total``) with the input columns and index, plus
        ``total`` (ref + alt), ``ratio`` (ref/total), ``log2_ratio``
        (log2((ref+0.5)/(alt+0.5))), ``ci_low``, ``ci_high`` (CI of ratio),
        ``p_null`` (null ratio of the row's group), ``rho`` (its over-dispersion),
        ``p_binom``, ``q_binom``, ``p_betabinom``, ``q_betabinom`` (BH q-values),
        ``as_binom``, ``as_betabinom`` (bool: called allele-specific).
    params : DataFrame
        One row per group: the group columns, ``p_null``, ``rho``, ``n_sites``
        (tested), ``n_low_total`` (sent to the ledger), ``n_as_binom``,
        ``n_as_betabinom``; with ``fdr_method="empirical"`` also ``t_binom``,
        ``t_betabinom`` (the p-value thresholds used).
    ledger : Ledger
        Rows not tested: step ``"test_imbalance"``, source the group (e.g.
        ``"sample=S1"``, or ``"table"``), record ``"chrom:pos"`` when the table
        has ``chrom`` and ``pos`` columns, else the index label, reason ``"low_total"``.
    settings : dict
        The arguments used.
    """

    table: pd.DataFrame
    params: pd.DataFrame
    ledger: Ledger
    settings: dict = field(default_factory=dict)


def _validate_table(table, ref_col, alt_col, group_cols):
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    need = [ref_col, alt_col, *group_cols]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table is missing column(s) {missing}; it has {list(table.columns)}")
    out = []
    for col in (ref_col, alt_col):
        s = table[col]
        if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
            raise ValueError(f"column {col!r} must hold numeric read counts, got dtype {s.dtype}")
        f = s.to_numpy(dtype=float, na_value=np.nan)
        for bad, what in ((~np.isfinite(f), "missing or non-finite"),
                          (np.isfinite(f) & (f != np.round(f)), "non-integer"),
                          (f < 0, "negative")):
            if bad.any():
                i = _first_bad(bad)
                raise ValueError(f"{what} {col!r} at row {i} (index {table.index[i]!r}): {f[i]}")
        out.append(f.astype(np.int64))
    if "total" in table.columns:     # the counts schema carries total = ref + alt; it must agree
        tot = pd.to_numeric(table["total"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        over = out[0] > tot
        if over.any():
            i = _first_bad(over)
            raise ValueError(f"{ref_col!r} exceeds 'total' at row {i} (index {table.index[i]!r}): "
                             f"{out[0][i]} > {tot[i]}")
        diff = ~(tot == out[0] + out[1])
        if diff.any():
            i = _first_bad(diff)
            raise ValueError(f"'total' != {ref_col!r} + {alt_col!r} at row {i} (index {table.index[i]!r}): "
                             f"{tot[i]} != {out[0][i]} + {out[1][i]}")
    return out


def test_imbalance(table, *, ref_col="ref_count", alt_col="alt_count", group_cols=("sample",),
                   min_total=6, null="fixed", p_null=0.5, null_method="median",
                   overdispersion="per_group", robust_rho=False, fdr=0.1, fdr_by_group=False, fdr_method="bh",
                   ci_level=0.95, ci_method="wilson", n_sims=5, trim_alpha=0.05, min_count=0, ledger=None,
                   random_state=None) -> ImbalanceResult:
    """Test every site of a counts table for allelic imbalance (binomial and beta-binomial).

    Per group (``group_cols``, e.g. sample or sample x assay): the null ratio is
    ``p_null`` (``null="fixed"``) or estimated with :func:`estimate_null_ratio`
    (``null="estimated"``, ``method=null_method``, on the group's tested sites);
    the over-dispersion ``rho`` is fitted by :func:`fit_betabinom_rho` on all of
    the group's tested sites (imbalanced ones included, as AlleleSeq2 does --
    slightly conservative); every site gets binomial and beta-binomial p-values
    and BH q-values.

    Parameters
    ----------
    table : DataFrame
        One row per (site, group); integer columns ``ref_col`` and ``alt_col``
        (the :mod:`allelic.io` counts schema). A ``total`` column, if present, must
        equal ``ref + alt`` (checked) and is overwritten with it.
    group_cols : sequence of str (may be empty)
        Columns defining groups that get their own ``p_null`` and ``rho``.
    min_total : int
        Rows with ``ref + alt < min_total`` are not tested: they are not in
        ``result.table`` but recorded in ``result.ledger`` with reason ``"low_total"``.
    null : {"fixed", "estimated", "trimmed"}
        ``"trimmed"``: null ratio and (with ``overdispersion="per_group"``) ``rho`` fitted jointly per group by
        :func:`fit_null_trimmed` on the sites that look null (level ``trim_alpha``) -- robust to allele-specific
        sites, which inflate a fit on all sites.
    p_null : float
        The null ratio when ``null="fixed"``.
    overdispersion : "per_group", "global", "none" or float
        Fit ``rho`` per group, once over the whole table (with per-group ``p_null``),
        use ``rho = 0`` (beta-binomial = binomial), or use the given value.
    robust_rho : bool
        Passed to :func:`fit_betabinom_rho` as ``robust``. False (default, AlleleSeq2):
        rho is fitted on all tested sites, imbalanced ones included, which inflates
        it and costs power (conservative). True: a uniform outlier component absorbs
        strongly imbalanced sites (more power; rho can be somewhat underestimated
        when many sites are imbalanced).
    fdr : float
        FDR level for the ``as_*`` calls.
    fdr_by_group : bool
        False (default): BH across all tested rows of the table (one family, the
        natural choice when groups are samples analysed together). True: BH
        within each group separately.
    fdr_method : {"bh", "empirical"}
        ``"bh"``: call ``q <= fdr``. ``"empirical"``: call ``p <= t`` with ``t`` from
        :func:`empirical_fdr_threshold`: both tests' p-values are set against null data
        simulated from the fitted beta-binomial (null ratio and ``rho`` of each row's
        group), so the binomial calls are calibrated for the over-dispersion they ignore
        (AlleleSeq's calibration); over the table, or per group with ``fdr_by_group``.
        ``q_*`` columns are BH either way.
    min_count : int
        The floor the table was filtered with (both alleles at least ``min_count`` reads, e.g. 5 in HEK293's VCFs):
        the null fit and both tests use the truncated distributions (:func:`betabinom_test`). Rows below the floor
        go to the ledger (``below_min_count``). Not with ``fdr_method="empirical"`` or ``robust_rho``.
    ci_level, ci_method : see :func:`allelic_ratio_ci`.
    n_sims, random_state : used only by ``fdr_method="empirical"``.
    ledger : Ledger, optional
        Append removals to this ledger (it is also returned); default a new one.

    Returns
    -------
    ImbalanceResult
    """
    group_cols = [] if group_cols is None else ([group_cols] if isinstance(group_cols, str) else list(group_cols))
    ref, alt = _validate_table(table, ref_col, alt_col, group_cols)
    if null not in ("fixed", "estimated", "trimmed"):
        raise ValueError(f"null must be 'fixed', 'estimated' or 'trimmed', got {null!r}")
    if fdr_method not in ("bh", "empirical"):
        raise ValueError(f"fdr_method must be 'bh' or 'empirical', got {fdr_method!r}")
    if not (0 < fdr < 1):
        raise ValueError(f"fdr must lie in (0, 1), got {fdr}")
    if isinstance(overdispersion, str):
        if overdispersion not in ("per_group", "global", "none"):
            raise ValueError(f"overdispersion must be 'per_group', 'global', 'none' or a number, got {overdispersion!r}")
    else:
        overdispersion = float(_check_param(overdispersion, "overdispersion (rho)", 0.0, 1.0, hi_open=True))
    p_fixed = float(_check_param(p_null, "p_null", 0.0, 1.0, lo_open=True, hi_open=True))
    ledger = Ledger() if ledger is None else ledger
    settings = dict(ref_col=ref_col, alt_col=alt_col, group_cols=tuple(group_cols), min_total=min_total,
                    min_count=min_count,
                    null=null, p_null=p_null, null_method=null_method, overdispersion=overdispersion, trim_alpha=trim_alpha,
                    robust_rho=robust_rho,
                    fdr=fdr, fdr_by_group=fdr_by_group, fdr_method=fdr_method, ci_level=ci_level,
                    ci_method=ci_method, n_sims=n_sims, random_state=random_state)

    total = ref + alt
    N = len(table)
    # group ids over the whole table (so groups with only low-total rows still get a params row)
    if group_cols:
        gb = table.groupby(group_cols, sort=True, dropna=False, observed=True)
        gid = gb.ngroup().to_numpy()
        keys = gb.size().reset_index()[group_cols]
    else:
        gid = np.zeros(N, np.int64)
        keys = pd.DataFrame(index=[0])
    G = len(keys)
    labels = (["table"] if not group_cols else
              [", ".join(f"{c}={v}" for c, v in zip(group_cols, row)) for row in keys.itertuples(index=False)])

    if min_count and (fdr_method == "empirical" or robust_rho):
        raise ValueError("min_count is not supported with fdr_method='empirical' or robust_rho=True")
    floor = (ref < min_count) | (alt < min_count)
    low = (total < min_total) | floor
    if low.any():
        if "chrom" in table.columns and "pos" in table.columns:
            rec = (table["chrom"].astype(str) + ":" + table["pos"].astype(str)).to_numpy()
        else:
            rec = table.index.astype(str).to_numpy()
        lo_idx = np.flatnonzero(low)
        lo_gid = gid[lo_idx]
        lo_floor = floor[lo_idx]
        for g in np.unique(lo_gid):
            ledger.extend("test_imbalance", labels[g], rec[lo_idx[(lo_gid == g) & ~lo_floor]], "low_total",
                          f"ref+alt < min_total={min_total}")
            ledger.extend("test_imbalance", labels[g], rec[lo_idx[(lo_gid == g) & lo_floor]], "below_min_count",
                          f"an allele has fewer than min_count={min_count} reads")

    tested = np.flatnonzero(~low)
    k, n, g = ref[tested], total[tested], gid[tested]
    order = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[order], np.arange(G + 1))
    members = [order[bounds[i]:bounds[i + 1]] for i in range(G)]   # positions in `tested`, per group

    pg = np.full(G, np.nan)
    r_trim = np.full(G, np.nan)
    for i, m in enumerate(members):
        if null == "fixed":
            pg[i] = p_fixed
        elif null == "trimmed" and m.size and (n[m] > 1).any():
            pg[i], r_trim[i] = fit_null_trimmed(k[m], n[m], alpha=trim_alpha, min_count=min_count)
        elif m.size:
            pg[i] = estimate_null_ratio(k[m], n[m], min_total=min_total, method=null_method)
    bad = (pg <= 0) | (pg >= 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"estimated null ratio of group {labels[i]} is {pg[i]}; cannot test against 0 or 1")
    p_row = pg[g]

    rg = np.full(G, np.nan)
    if null == "trimmed" and overdispersion == "per_group":
        rg[:] = r_trim
    elif overdispersion == "none":
        rg[:] = 0.0
    elif isinstance(overdispersion, float):
        rg[:] = overdispersion
    elif overdispersion == "global":
        rg[:] = fit_betabinom_rho(k, n, p_row, robust=robust_rho, min_count=min_count) if (n > 1).any() else np.nan
    else:
        for i, m in enumerate(members):
            if m.size and (n[m] > 1).any():
                rg[i] = fit_betabinom_rho(k[m], n[m], pg[i], robust=robust_rho, min_count=min_count)
    rho_row = rg[g]
    if np.isnan(rho_row).any():   # groups where rho could not be fitted (all totals <= 1)
        rho_row = np.where(np.isnan(rho_row), 0.0, rho_row)

    p_b = binomial_test(k, n, p_row, min_count=min_count) if k.size else np.zeros(0)
    p_bb = betabinom_test(k, n, p_row, rho_row, min_count=min_count) if k.size else np.zeros(0)
    if fdr_by_group:
        q_b, q_bb = np.empty_like(p_b), np.empty_like(p_bb)
        for m in members:
            q_b[m], q_bb[m] = bh_fdr(p_b[m]), bh_fdr(p_bb[m])
    else:
        q_b, q_bb = bh_fdr(p_b), bh_fdr(p_bb)

    params = keys.copy() if group_cols else pd.DataFrame(index=[0])
    if fdr_method == "bh":
        call_b, call_bb = q_b <= fdr, q_bb <= fdr
    else:
        rng = np.random.default_rng(random_state)
        call_b = np.zeros(k.size, bool)
        call_bb = np.zeros(k.size, bool)
        fams = members if fdr_by_group else [np.arange(k.size)]
        tb, tbb = np.full(G, np.nan), np.full(G, np.nan)
        for fi, m in enumerate(fams):
            if not m.size:
                continue
            # binomial p-values against the over-dispersed null the data have (AlleleSeq's calibration)
            eb = empirical_fdr_threshold(p_b[m], n[m], p_row[m], rho=rho_row[m], fdr=fdr, n_sims=n_sims,
                                         test="binomial", random_state=rng)
            ebb = empirical_fdr_threshold(p_bb[m], n[m], p_row[m], rho=rho_row[m], fdr=fdr, n_sims=n_sims,
                                          test="betabinomial", random_state=rng)
            call_b[m], call_bb[m] = eb.calls(p_b[m]), ebb.calls(p_bb[m])
            if fdr_by_group:
                tb[fi], tbb[fi] = eb.threshold, ebb.threshold
            else:
                tb[:], tbb[:] = eb.threshold, ebb.threshold
        params["t_binom"] = tb
        params["t_betabinom"] = tbb

    ci = allelic_ratio_ci(k, n, level=ci_level, method=ci_method)
    out = table.iloc[tested].copy()
    out["total"] = n
    for c in ("ratio", "log2_ratio", "ci_low", "ci_high"):
        out[c] = ci[c].to_numpy()
    out["p_null"] = p_row
    out["rho"] = rho_row
    out["p_binom"] = p_b
    out["q_binom"] = q_b
    out["p_betabinom"] = p_bb
    out["q_betabinom"] = q_bb
    out["as_binom"] = call_b
    out["as_betabinom"] = call_bb

    params.insert(len(group_cols), "p_null", pg)
    params.insert(len(group_cols) + 1, "rho", rg)
    params.insert(len(group_cols) + 2, "n_sites", np.bincount(g, minlength=G))
    params.insert(len(group_cols) + 3, "n_low_total", np.bincount(gid[low], minlength=G))
    params.insert(len(group_cols) + 4, "n_as_binom", np.bincount(g, weights=call_b, minlength=G).astype(int))
    params.insert(len(group_cols) + 5, "n_as_betabinom", np.bincount(g, weights=call_bb, minlength=G).astype(int))
    params = params.reset_index(drop=True)
    return ImbalanceResult(table=out, params=params, ledger=ledger, settings=settings)


test_imbalance.__test__ = False  # a library function, not a pytest test


#: one test unit: a SNV in one donor x tissue x assay (its replicates are combined)
UNIT_COLUMNS = ("donor", "tissue", "assay", "chrom", "pos")


def combine_replicates(table: pd.DataFrame, *, by=UNIT_COLUMNS, fdr: float = 0.1, fdr_by=None) -> pd.DataFrame:
    """One exact test per SNV over its replicates, from :func:`test_imbalance`'s rows (one per replicate, with
    ``p_null`` and ``rho`` of the replicate's group).

    The statistic is the SNV's summed reference reads; under the null each replicate is an independent
    beta-binomial with its own null ratio and over-dispersion, so the summed reads' pmf is their convolution
    (:func:`allelic.pvalues.summed_betabinom_test`) -- the combination :func:`allelic.dosage.combine_samples` makes
    for a diploid genome, more powerful than calling each replicate alone. With one replicate the p-value is that
    replicate's ``p_betabinom``. Benjamini-Hochberg over the SNVs (within each ``fdr_by`` group if given), calls at
    ``fdr``.

    Returns one row per ``by``: ``ref``, ``alt``, ``hap1_allele``, ``hap2_allele`` (when present),
    ``n_replicates``, ``replicates`` (their labels, or sample names), ``n_as_replicates`` (replicates called AS on
    their own, ``as_betabinom``), ``ref_count``, ``alt_count``, ``total``, ``ratio``, ``p_null`` (the expected
    reference ratio of the sum), ``pvalue``, ``qvalue``, ``as_call``, ``preferred_allele`` (``ref``/``alt`` when
    AS, else ``""``)."""
    by = list(by)
    need = [*by, "ref", "alt", "ref_count", "alt_count", "p_null", "rho", "p_betabinom"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"combine_replicates: missing column(s) {', '.join(missing)} (expected test_imbalance's rows)")
    t = table.sort_values(by, kind="stable").reset_index(drop=True)
    keys = t[by].astype(str).agg("\t".join, axis=1).to_numpy()
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(t) else np.zeros(0, np.int64)
    ends = np.r_[first[1:], len(t)].astype(np.int64)
    k, a = t["ref_count"].to_numpy(np.int64), t["alt_count"].to_numpy(np.int64)
    n, p0, rho = k + a, t["p_null"].to_numpy(float), t["rho"].to_numpy(float)
    pv = t["p_betabinom"].to_numpy(float)[first].copy()
    for j in np.flatnonzero(ends - first > 1):
        sl = slice(first[j], ends[j])
        pv[j] = summed_betabinom_test(k[sl], n[sl], p0[sl], rho[sl])
    res = t.iloc[first][[*by, "ref", "alt", *[c for c in ("hap1_allele", "hap2_allele") if c in t]]].reset_index(drop=True)
    label = t["replicate"] if "replicate" in t else t["sample"] if "sample" in t else pd.Series([""] * len(t))
    res["n_replicates"] = ends - first
    res["replicates"] = [",".join(map(str, label.iloc[s:e])) for s, e in zip(first, ends)]
    calls = t["as_betabinom"].to_numpy(bool) if "as_betabinom" in t else np.zeros(len(t), bool)
    res["n_as_replicates"] = np.add.reduceat(calls.astype(int), first) if len(t) else []
    res["ref_count"] = np.add.reduceat(k, first) if len(t) else []
    res["alt_count"] = np.add.reduceat(a, first) if len(t) else []
    res["total"] = res["ref_count"] + res["alt_count"]
    res["ratio"] = res["ref_count"] / res["total"].clip(lower=1)
    res["p_null"] = (np.add.reduceat(n * p0, first) / res["total"].clip(lower=1)) if len(t) else []
    res["pvalue"] = pv
    if fdr_by:
        res["qvalue"] = res.groupby(list(fdr_by), sort=False)["pvalue"].transform(lambda x: bh_fdr(x.to_numpy()))
    else:
        res["qvalue"] = bh_fdr(pv)
    res["as_call"] = res["qvalue"] <= fdr
    res["preferred_allele"] = np.where(res["as_call"], np.where(res["ratio"] >= res["p_null"], "ref", "alt"), "")
    return res


def format_pvalue(p, digits: int = 2, *, relation: bool = False) -> str:
    """A p-value as text: ``digits`` significant digits, ``"< 1e-300"`` when it underflowed to 0 (a double cannot
    hold it; printing 0 would claim certainty), ``"n/a"`` for NaN. With ``relation`` a value gets ``"= "`` in front,
    so ``f"p {format_pvalue(p, relation=True)}"`` reads ``p = 0.012`` or ``p < 1e-300``."""
    p = float(p)
    if np.isnan(p):
        return "n/a"
    if p <= 0:
        return "< 1e-300"
    return f"= {p:.{digits}g}" if relation else f"{p:.{digits}g}"
