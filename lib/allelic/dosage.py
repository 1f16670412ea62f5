"""Background allelic dosage (BAD): copy number seen through allelic ratios, so that allele-specific tests in
aneuploid samples (cell lines, tumours) do not mistake copy number for allele-specific activity.

In a region where one haplotype has ``b`` times the copies of the other (BAD ``b``: 1 diploid, 2 e.g. 2:1 in a
triploid region, 3/2 in 3:2, ...), a site with no allele-specific activity shows the reference allele in a fraction
``b / (b + 1)`` or ``1 / (b + 1)`` of its reads, depending on which haplotype carries it; without phasing across the
region either is possible, so the null is the even mixture of the two (as MIXALIME models it).

* :data:`BADS` the candidate dosages (BABACHI's set); :func:`null_ratios` the two ratios of a BAD.
* :func:`site_loglik` the log-likelihood of each site's counts under each BAD (binomial or beta-binomial mixture).
* :func:`segment` BAD segments along each chromosome: an exact dynamic programme over blocks of consecutive sites
  maximising the summed log-likelihood minus a penalty per segment (:class:`Segmentation`).
* :func:`read_bad_map` reads a user's BAD map (BED-like: chrom, start, end, BAD; errors name the file and line);
  :func:`assign` gives every site the BAD and segment of the map interval containing it.
* :func:`test_imbalance_with_dosage` tests a counts table against the dosage null (BAD from a map or a
  segmentation; over-dispersion per sample and BAD class; :func:`allelic.stats.dosage_test`; BH).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .ledger import Ledger

__all__ = ["BADS", "null_ratios", "site_loglik", "Segmentation", "segment", "RHO_GRID", "read_bad_map", "assign",
           "DosageResult", "test_imbalance_with_dosage"]

#: candidate background allelic dosages (BABACHI's set)
BADS = (1.0, 4 / 3, 3 / 2, 2.0, 5 / 2, 3.0, 4.0, 5.0, 6.0)


def null_ratios(bad) -> tuple[np.ndarray, np.ndarray]:
    """``(1 / (b + 1), b / (b + 1))``: the two reference-allele ratios a site without allele-specific activity can
    have under BAD ``b`` (``b >= 1``; BAD 1 gives 0.5 twice). Raises ValueError for a BAD below 1 or not finite."""
    b = np.asarray(bad, dtype=float)
    if not np.all(np.isfinite(b)) or np.any(b < 1):
        raise ValueError(f"BAD must be a finite number >= 1 (got {b[~np.isfinite(b) | (b < 1)][:3].tolist()})")
    return 1.0 / (b + 1.0), b / (b + 1.0)


def _logpmf(k, n, p, rho, min_count: int = 0):
    """log pmf of a binomial (``rho = 0``) or beta-binomial at mean ``p``; with ``min_count`` > 0, conditional on
    both alleles having at least ``min_count`` reads (``min_count <= k <= n - min_count``), as in tables that keep
    only such sites."""
    from scipy.stats import betabinom, binom

    from .stats import _rho_to_ab

    def dist(nn, pp):
        return binom(nn, pp) if rho <= 0 else betabinom(nn, *_rho_to_ab(pp, rho))

    k, n, p = np.broadcast_arrays(np.asarray(k, float), np.asarray(n, float), np.asarray(p, float))
    out = dist(n, p).logpmf(k)
    if min_count > 0:
        # the kept mass P(min_count <= X <= n - min_count), once per distinct (n, p): summed pmf over its support
        pairs, inv = np.unique(np.stack([n.ravel(), p.ravel()], 1), axis=0, return_inverse=True)
        kept = np.array([dist(nn, pp).pmf(np.arange(min_count, int(nn) - min_count + 1)).sum() for nn, pp in pairs])
        out = out - np.log(np.clip(kept[inv.ravel()].reshape(out.shape), 1e-300, None))
    return out


def site_loglik(k, n, *, bads=BADS, rho: float = 0.0, outlier: float = 0.0, min_count: int = 0) -> np.ndarray:
    """``(n_sites, n_bads)`` log-likelihood of reference counts ``k`` of totals ``n`` under each BAD: the even
    mixture of binomials (``rho = 0``) or beta-binomials (over-dispersion ``rho``) at :func:`null_ratios`. With
    ``outlier`` > 0 a site is, with that probability, drawn uniformly from the possible counts instead: an
    allele-specific site then costs a segment little, so strongly imbalanced sites do not pass for copy number.
    ``min_count``: the counts were kept only when both alleles have at least that many reads (HEK293's VCFs: 5);
    each component is then conditioned on it (ignoring the truncation makes balanced ratios look likelier, and
    the BAD lower)."""
    k = np.asarray(k, dtype=float)[:, None]
    n = np.asarray(n, dtype=float)[:, None]
    lo, hi = null_ratios(np.asarray(bads, dtype=float))
    ll = np.logaddexp(_logpmf(k, n, lo[None, :], rho, min_count),
                      _logpmf(k, n, hi[None, :], rho, min_count)) + np.log(0.5)
    if outlier > 0:
        n_possible = np.maximum(n + 1 - 2 * min_count, 1)
        ll = np.logaddexp(ll + np.log1p(-outlier), np.log(outlier) - np.log(n_possible))
    return ll


@dataclass
class Segmentation:
    """Result of :func:`segment`. ``segments``: one row per segment (``chrom, start, end`` (0-based, half-open,
    from the first to one past the last site), ``bad``, ``n_sites``, ``loglik``); ``sites``: the input sites with
    ``bad`` and ``segment`` (row of ``segments``); ``params``: the settings."""

    segments: pd.DataFrame
    sites: pd.DataFrame
    params: dict


def _best_path(cum: np.ndarray, penalty: float) -> list[tuple[int, int, int]]:
    """Exact optimal partition of ``M`` blocks given cumulative log-likelihoods ``cum`` (``(M + 1, B)``): segments
    ``(first block, one past the last, BAD index)`` maximising the sum of segment log-likelihoods minus ``penalty``
    per segment (O(M^2 B))."""
    m = cum.shape[0] - 1
    best = np.full(m + 1, -np.inf)
    best[0] = 0.0
    back = np.zeros((m + 1, 2), dtype=np.int64)
    for i in range(1, m + 1):
        seg = cum[i][None, :] - cum[:i]                          # (i, B): segments j..i-1 for every start j
        b = seg.argmax(1)
        score = best[:i] + seg[np.arange(i), b] - penalty
        j = int(score.argmax())
        best[i], back[i] = score[j], (j, b[j])
    out, i = [], m
    while i > 0:
        j, b = back[i]
        out.append((int(j), i, int(b)))
        i = int(j)
    return out[::-1]


#: over-dispersion values :func:`segment` profiles over with ``rho="auto"``
RHO_GRID = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)


def _segment_once(t, k, n, bads, penalty, rho, block, outlier, min_count):
    """One segmentation of sorted sites at a fixed ``rho``: (segment rows, site -> segment, penalised score)."""
    ll = site_loglik(k, n, bads=bads, rho=rho, outlier=outlier, min_count=min_count)
    seg_rows, site_seg, score = [], np.empty(len(t), dtype=np.int64), 0.0
    chroms = t["chrom"].astype(str).to_numpy()
    pos = t["pos"].to_numpy()
    starts = np.flatnonzero(np.r_[True, chroms[1:] != chroms[:-1]])
    ends = np.r_[starts[1:], len(t)]
    for s, e in zip(starts, ends):
        m = e - s
        pen = 2.0 * np.log(max(m, 2)) if penalty is None else float(penalty)
        edges = np.r_[np.arange(0, m, block), m]                  # block boundaries in sites
        blk = np.add.reduceat(ll[s:e], edges[:-1], axis=0)
        cum = np.vstack([np.zeros((1, len(bads))), np.cumsum(blk, axis=0)])
        for j, i, b in _best_path(cum, pen):
            a, z = s + edges[j], s + edges[i]
            site_seg[a:z] = len(seg_rows)
            lik = float(ll[a:z, b].sum())
            score += lik - pen
            seg_rows.append({"chrom": chroms[s], "start": int(pos[a]) - 1, "end": int(pos[z - 1]),
                             "bad": float(bads[b]), "n_sites": int(z - a), "loglik": lik})
    return seg_rows, site_seg, score


def segment(sites: pd.DataFrame, *, bads=BADS, penalty: float | None = None, rho="auto", block: int = 10,
            outlier: float = 0.05, min_count: int = 0, ref_col: str = "ref_count",
            alt_col: str = "alt_count") -> Segmentation:
    """BAD segments along each chromosome from the allelic counts of many sites (one sample, or one donor's pooled
    samples).

    Sites (``chrom``, ``pos`` and the count columns) are sorted along each chromosome and grouped into blocks of
    ``block`` consecutive sites (a segment boundary falls between blocks); the partition of each chromosome into
    segments, each with one BAD of ``bads``, that maximises the summed :func:`site_loglik` minus ``penalty`` per
    segment is found exactly by dynamic programming. ``penalty`` defaults to ``2 log(n)`` for a chromosome of ``n``
    sites, twice the BIC's price for the segment's boundary and its BAD (chosen on simulated segments: see the
    tests). ``rho``: over-dispersion of the counts; ``"auto"`` profiles it over :data:`RHO_GRID` and keeps the value
    with the best penalised likelihood (over-dispersed diploid counts would otherwise pass for BAD 4/3 or 3/2);
    ``outlier``: the share of sites allowed to be allele-specific (:func:`site_loglik`; 0.05 keeps BAD 4/3 apart
    from 1 on planted segments, 0.2 blurs them); ``min_count``: the table keeps only sites whose alleles both have
    at least this many reads (:func:`site_loglik`). Raises ValueError for missing columns or an empty table."""
    need = ["chrom", "pos", ref_col, alt_col]
    missing = [c for c in need if c not in sites.columns]
    if missing:
        raise ValueError(f"sites: missing columns {missing}")
    if sites.empty:
        raise ValueError("sites: no rows to segment")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    bads = np.asarray(bads, dtype=float)
    t = sites.sort_values(["chrom", "pos"], kind="stable")
    k = t[ref_col].to_numpy(dtype=float)
    n = k + t[alt_col].to_numpy(dtype=float)
    grid = RHO_GRID if isinstance(rho, str) and rho == "auto" else (float(rho),)
    best = max(((r, *_segment_once(t, k, n, bads, penalty, r, block, outlier, min_count)) for r in grid),
               key=lambda x: x[3])
    chosen, seg_rows, site_seg, _ = best
    segs = pd.DataFrame(seg_rows)
    out = t.assign(bad=segs["bad"].to_numpy()[site_seg], segment=site_seg)
    return Segmentation(segments=segs, sites=out, params={"bads": bads.tolist(), "penalty": penalty, "rho": chosen,
                                                          "block": block, "outlier": outlier,
                                                          "min_count": min_count})


def read_bad_map(path) -> pd.DataFrame:
    """A BAD map: a tab-separated file of ``chrom, start, end, BAD`` (0-based half-open, as BED; a header line
    starting with ``#`` or ``chr\\tstart`` is skipped; BABACHI's output with more columns is read by its first
    four). Raises ValueError naming the file and line for a row with fewer than 4 fields, coordinates that are not
    integers or with ``end <= start``, a BAD that is not a number >= 1, or intervals that overlap on a chromosome;
    FileNotFoundError for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BAD map {path} does not exist")
    rows = []
    with open(path) as fh:
        for line_no, line in enumerate(fh, 1):
            s = line.rstrip("\n\r")
            if not s.strip() or s.startswith("#") or (line_no == 1 and s.lower().split("\t")[:2] == ["chrom", "start"]):
                continue
            f = s.split("\t")
            if len(f) < 4:
                raise ValueError(f"{path}, line {line_no}: {len(f)} fields; expected chrom, start, end, BAD")
            try:
                start, end = int(f[1]), int(f[2])
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: start/end {f[1]!r}, {f[2]!r} are not integers") from None
            if start < 0 or end <= start:
                raise ValueError(f"{path}, line {line_no}: interval {start}-{end} is empty or negative")
            try:
                bad = float(f[3])
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: BAD {f[3]!r} is not a number") from None
            if not np.isfinite(bad) or bad < 1:
                raise ValueError(f"{path}, line {line_no}: BAD {f[3]!r} must be a number >= 1")
            rows.append((f[0], start, end, bad, line_no))
    if not rows:
        raise ValueError(f"{path}: no intervals")
    t = pd.DataFrame(rows, columns=["chrom", "start", "end", "bad", "line"]).sort_values(["chrom", "start"])
    prev_end = t.groupby("chrom")["end"].shift()
    over = t[t["start"] < prev_end]
    if len(over):
        r = over.iloc[0]
        raise ValueError(f"{path}, line {int(r['line'])}: interval {r['chrom']}:{r['start']}-{r['end']} overlaps the "
                         f"one before it")
    return t.drop(columns="line").reset_index(drop=True)


def assign(sites: pd.DataFrame, bad_map: pd.DataFrame, *, ledger: Ledger | None = None,
           source: str = "BAD map") -> pd.DataFrame:
    """``sites`` with ``bad`` and ``segment`` (row of ``bad_map``) of the interval containing each site (``pos``
    1-based inside ``start < pos <= end``). Sites outside every interval are removed and recorded in ``ledger``
    (``outside_bad_map``): their dosage is unknown, and testing them against BAD 1 would be a guess."""
    ledger = Ledger() if ledger is None else ledger
    out = sites.copy()
    bad = np.full(len(out), np.nan)
    seg = np.full(len(out), -1, dtype=np.int64)
    chrom = out["chrom"].astype(str).to_numpy()
    pos = out["pos"].to_numpy()
    for c, m in bad_map.reset_index(drop=True).groupby("chrom", sort=False):
        sel = np.flatnonzero(chrom == str(c))
        if not len(sel):
            continue
        starts, ends = m["start"].to_numpy(), m["end"].to_numpy()
        i = np.searchsorted(starts, pos[sel] - 1, side="right") - 1     # last interval starting at or before pos-1
        ok = (i >= 0) & (pos[sel] <= ends[np.clip(i, 0, None)])
        bad[sel[ok]] = m["bad"].to_numpy()[i[ok]]
        seg[sel[ok]] = m.index.to_numpy()[i[ok]]
    outside = np.isnan(bad)
    if outside.any():
        rec = (out.loc[outside, "chrom"].astype(str) + ":" + out.loc[outside, "pos"].astype(str)).tolist()
        ledger.extend("assign_bad", source, rec, "outside_bad_map", "no BAD interval contains the site")
    return out.assign(bad=bad, segment=seg)[~outside]


@dataclass
class DosageResult:
    """Result of :func:`test_imbalance_with_dosage`. ``table``: the tested rows with ``bad``, ``segment``,
    ``rho_dosage`` (over-dispersion of the row's group and BAD class), ``p_ref_dosage``, ``p_alt_dosage``,
    ``p_dosage`` (two-sided), ``q_dosage`` (Benjamini-Hochberg over the table), ``as_dosage`` (``q <= fdr``) and
    ``preferred_allele`` (``ref``/``alt``); ``params``: one row per group x BAD class (``n_sites``, ``rho``,
    ``n_as``); ``segmentation``: the :class:`Segmentation` per ``segment_by`` group (None with a BAD map);
    ``ledger``: rows not tested (``low_total``, ``outside_bad_map``)."""

    table: pd.DataFrame
    params: pd.DataFrame
    segmentation: dict | None
    ledger: Ledger


def test_imbalance_with_dosage(table: pd.DataFrame, *, bad_map: pd.DataFrame | None = None, segment_by=("donor",),
                               group_cols=("sample",), min_total: int = 6, fdr: float = 0.1, trim_alpha: float = 0.05,
                               penalty: float | None = None, block: int = 10, bads=BADS, min_count: int = 0,
                               pool_samples: bool = False, ledger: Ledger | None = None) -> DosageResult:
    """Allelic imbalance beyond background allelic dosage, for a counts table (``chrom, pos, ref_count,
    alt_count`` and the ``group_cols``).

    1. Rows with fewer than ``min_total`` reads go to the ledger.
    2. Every site gets a BAD: from ``bad_map`` (:func:`read_bad_map`; sites outside it are ledgered), or by
       :func:`segment` of each ``segment_by`` group (copy number belongs to a genome: a donor or cell line), its
       samples' rows side by side as separate events (BABACHI's ``SEP``), or with ``pool_samples`` summed per SNV
       first (on the simulator pooling made every diploid donor's segmentation right; on HEK293 it agreed far less
       with BABACHI: 11.5 % of sites with the same BAD against 65.6 %); ``min_count``: the table keeps only sites
       with both alleles at or above it (HEK293's VCFs: 5).
    3. Per ``group_cols`` group and BAD class: the over-dispersion ``rho`` under the BAD's null mixture
       (:func:`allelic.stats.fit_dosage_rho`), refitted once without the sites whose p-value is below
       ``trim_alpha`` (allele-specific sites would inflate it).
    4. :func:`allelic.stats.dosage_test` p-values; Benjamini-Hochberg over the table; calls at ``fdr``.

    The result's rows keep the input order, re-indexed from 0."""
    from .stats import bh_fdr, dosage_test, fit_dosage_rho

    need = ["chrom", "pos", "ref_count", "alt_count", *group_cols] + ([] if bad_map is not None else list(segment_by))
    missing = [c for c in dict.fromkeys(need) if c not in table.columns]
    if missing:
        raise ValueError(f"counts table: missing columns {missing}")
    ledger = Ledger() if ledger is None else ledger
    t = table.reset_index(drop=True)           # rows are addressed by position: a repeated index would mix groups
    t["total"] = t["ref_count"] + t["alt_count"]
    low = t["total"] < min_total
    ledger.extend("test_imbalance_with_dosage", "counts table",
                  (t.loc[low, "chrom"].astype(str) + ":" + t.loc[low, "pos"].astype(str)).tolist(), "low_total",
                  f"ref+alt < min_total={min_total}")
    t = t[~low]
    segs = None
    if bad_map is not None:
        t = assign(t, bad_map, ledger=ledger)
    else:
        segs, parts = {}, []
        for key, g in t.groupby(list(segment_by), sort=True):
            if pool_samples:
                pooled = g.groupby(["chrom", "pos"], as_index=False)[["ref_count", "alt_count"]].sum()
                final = segment(pooled, bads=bads, penalty=penalty, block=block, min_count=min_count)
                parts.append(g.merge(final.sites[["chrom", "pos", "bad", "segment"]], on=["chrom", "pos"],
                                     how="left").set_axis(g.index))
            else:
                final = segment(g, bads=bads, penalty=penalty, block=block, min_count=min_count)
                parts.append(final.sites)
            segs[key if len(segment_by) > 1 else key[0]] = final
        t = pd.concat(parts).sort_index()
    t["rho_dosage"] = np.nan
    rows = []
    for key, g in t.groupby([*group_cols, "bad"], sort=True):
        k, n, b = g["ref_count"].to_numpy(), g["total"].to_numpy(), float(g["bad"].iloc[0])
        rho = fit_dosage_rho(k, n, b)
        keep = dosage_test(k, n, b, rho)["pvalue"].to_numpy() >= trim_alpha
        if keep.sum() >= 10 and not keep.all():
            rho = fit_dosage_rho(k[keep], n[keep], b)
        t.loc[g.index, "rho_dosage"] = rho
        rows.append({**dict(zip([*group_cols, "bad"], key)), "n_sites": len(g), "rho": rho})
    res = dosage_test(t["ref_count"].to_numpy(), t["total"].to_numpy(), t["bad"].to_numpy(),
                      t["rho_dosage"].to_numpy())
    t["p_ref_dosage"] = res["p_ref"].to_numpy()
    t["p_alt_dosage"] = res["p_alt"].to_numpy()
    t["p_dosage"] = res["pvalue"].to_numpy()
    t["q_dosage"] = bh_fdr(t["p_dosage"].to_numpy())
    t["as_dosage"] = t["q_dosage"] <= fdr
    t["preferred_allele"] = np.where(t["as_dosage"], res["preferred"].to_numpy(), "")
    params = pd.DataFrame(rows)
    n_as = t.groupby([*group_cols, "bad"], sort=True)["as_dosage"].sum().to_numpy()
    params["n_as"] = n_as
    return DosageResult(table=t, params=params, segmentation=segs, ledger=ledger)
