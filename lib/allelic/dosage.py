"""Background allelic dosage (BAD): copy number seen through allelic ratios, so that allele-specific tests in
aneuploid samples (cell lines, tumours) do not mistake copy number for allele-specific activity.

In a region where one haplotype has ``b`` times the copies of the other (BAD ``b``: 1 diploid, 2 e.g. 2:1 in a
triploid region, 3/2 in 3:2, ...), a site with no allele-specific activity shows the reference allele in a fraction
``b / (b + 1)`` or ``1 / (b + 1)`` of its reads, depending on which haplotype carries it; without phasing across the
region either is possible, so the null is the even mixture of the two (as MIXALIME models it).

* :data:`BADS` the candidate dosages (BABACHI's set); :func:`null_ratios` the two ratios of a BAD (with a reference
  mapping bias when given).
* :func:`component_loglik` the log-likelihood of counts under each BAD's two ratios; :func:`site_loglik` their even
  mixture per site; :func:`snv_loglik` per SNV over all its samples (which share its phase), phased or not.
* :func:`segment` BAD segments along each chromosome: an exact dynamic programme over blocks of consecutive SNVs
  maximising the summed log-likelihood minus a penalty per segment (:class:`Segmentation`); with haplotype counts
  (``phased=True``) a segment's extra copies sit on one haplotype at every SNV.
* :func:`read_bad_map` reads a user's BAD map (BED-like: chrom, start, end, BAD; errors name the file and line);
  :func:`assign` gives every site the BAD and segment of the map interval containing it.
* :func:`test_imbalance_with_dosage` tests a counts table against the dosage null (BAD from a map or a
  segmentation; over-dispersion and mapping bias per sample, fitted on the sites that look null
  (:func:`allelic.stats.fit_dosage_null`); :func:`allelic.stats.dosage_test`; BH); :func:`combine_samples` one exact
  test per SNV over its samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .fdr import bh_fdr
from .ledger import Ledger
from .nullfit import fit_dosage_null
from .pvalues import _rho_to_ab, dosage_test, null_ratios

__all__ = ["BADS", "null_ratios", "component_loglik", "site_loglik", "snv_loglik", "Segmentation", "segment",
           "RHO_GRID", "read_bad_map", "assign", "DosageResult", "test_imbalance_with_dosage", "combine_samples"]

#: candidate background allelic dosages (BABACHI's set)
BADS = (1.0, 4 / 3, 3 / 2, 2.0, 5 / 2, 3.0, 4.0, 5.0, 6.0)


def _logpmf(k, n, p, rho, min_count: int = 0):
    """log pmf of a binomial (``rho = 0``) or beta-binomial at mean ``p``; with ``min_count`` > 0, conditional on
    both alleles having at least ``min_count`` reads (``min_count <= k <= n - min_count``), as in tables that keep
    only such sites."""
    from scipy.stats import betabinom, binom

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


def component_loglik(k, n, *, bads=BADS, rho: float = 0.0, min_count: int = 0, null_ratio=0.5) -> np.ndarray:
    """``(n_sites, n_bads, 2)`` log-likelihood of counts ``k`` of totals ``n`` under each BAD's two null ratios:
    ``[..., 0]`` the counted allele on the haplotype with fewer copies (ratio ``1 / (b + 1)``), ``[..., 1]`` on the
    one with more (``b / (b + 1)``); binomial (``rho = 0``) or beta-binomial (over-dispersion ``rho``), conditioned on
    both alleles having at least ``min_count`` reads when the table kept only such sites (HEK293's VCFs: 5; ignoring
    the truncation makes balanced ratios look likelier, and the BAD lower). ``null_ratio``: :func:`null_ratios`."""
    k = np.asarray(k, dtype=float)[:, None]
    n = np.asarray(n, dtype=float)[:, None]
    lo, hi = null_ratios(np.asarray(bads, dtype=float), null_ratio)
    return np.stack([_logpmf(k, n, lo[None, :], rho, min_count), _logpmf(k, n, hi[None, :], rho, min_count)], -1)


def _log_uniform(n, min_count: int = 0) -> np.ndarray:
    """log pmf of a count drawn uniformly from its possible values (the outlier component)."""
    return -np.log(np.maximum(np.asarray(n, dtype=float) + 1 - 2 * min_count, 1))


def _with_outlier(ll, log_u, outlier: float):
    """``log((1 - outlier) exp(ll) + outlier exp(log_u))`` (``log_u`` broadcast over the trailing axes of ``ll``)."""
    if outlier <= 0:
        return ll
    log_u = np.asarray(log_u, dtype=float).reshape(log_u.shape + (1,) * (ll.ndim - np.ndim(log_u)))
    return np.logaddexp(ll + np.log1p(-outlier), np.log(outlier) + log_u)


def site_loglik(k, n, *, bads=BADS, rho: float = 0.0, outlier: float = 0.0, min_count: int = 0) -> np.ndarray:
    """``(n_sites, n_bads)`` log-likelihood of reference counts ``k`` of totals ``n`` under each BAD when the phase
    is unknown: the even mixture of the two components of :func:`component_loglik`. With ``outlier`` > 0 a site is,
    with that probability, drawn uniformly from the possible counts instead: an allele-specific site then costs a
    segment little, so strongly imbalanced sites do not pass for copy number."""
    ll = np.logaddexp.reduce(component_loglik(k, n, bads=bads, rho=rho, min_count=min_count), axis=-1) + np.log(0.5)
    return _with_outlier(ll, np.atleast_1d(_log_uniform(n, min_count)), outlier)


def snv_loglik(t: pd.DataFrame, *, bads=BADS, rho: float = 0.0, outlier: float = 0.0, min_count: int = 0,
               phased: bool = False, count_cols=("ref_count", "alt_count")) -> tuple[pd.DataFrame, np.ndarray]:
    """Log-likelihood of each SNV's counts under each BAD, over all its rows (samples) at once.

    Samples of one genome share its copy number and its phase, so at a SNV the counted allele is on the haplotype
    with more copies in every sample or in none: the two components of :func:`component_loglik` are summed over
    the SNV's rows before they are mixed (side-by-side samples treated as independent would let over-dispersion
    pass for dosage). ``t`` is sorted by ``chrom, pos``; ``count_cols`` are the counted allele and the other.

    * ``phased=False``: the SNV's even mixture of the two components, shape ``(n_snvs, n_bads)``.
    * ``phased=True`` (``count_cols`` are haplotype counts, e.g. ``hap1_count, hap2_count`` from a personal diploid
      genome): the phase is known, so the component is a property of the segment, not of the SNV; shape
      ``(n_snvs, n_bads, 2)``, ``[..., 1]`` haplotype 1 the one with more copies.

    ``outlier``: each SNV is, with that probability, allele-specific (its counts uniform) instead. Returns the SNVs
    (``chrom, pos``) and the array."""
    k = t[count_cols[0]].to_numpy(dtype=float)
    n = k + t[count_cols[1]].to_numpy(dtype=float)
    chrom, pos = t["chrom"].astype(str).to_numpy(), t["pos"].to_numpy()
    first = np.flatnonzero(np.r_[True, (chrom[1:] != chrom[:-1]) | (pos[1:] != pos[:-1])])
    comp = np.add.reduceat(component_loglik(k, n, bads=bads, rho=rho, min_count=min_count), first, axis=0)
    log_u = np.add.reduceat(_log_uniform(n, min_count), first)
    ll = comp if phased else np.logaddexp(comp[..., 0], comp[..., 1]) + np.log(0.5)
    snvs = pd.DataFrame({"chrom": chrom[first], "pos": pos[first], "n_rows": np.diff(np.r_[first, len(t)])})
    return snvs, _with_outlier(ll, log_u, outlier)


@dataclass
class Segmentation:
    """Result of :func:`segment`. ``segments``: one row per segment (``chrom, start, end`` (0-based, half-open,
    from the first to one past the last site), ``bad``, ``n_snvs``, ``loglik``; phased: ``p_hap1_more``, the
    posterior probability that haplotype 1 carries the extra copies); ``sites``: the input rows with ``bad``,
    ``segment`` (row of ``segments``) and, phased, ``p_hap1_more``; ``params``: the settings."""

    segments: pd.DataFrame
    sites: pd.DataFrame
    params: dict


def _segment_scores(cum_i: np.ndarray, cum: np.ndarray, phased: bool) -> np.ndarray:
    """Log-likelihoods of the segments ending at block ``i`` (cumulative sums ``cum_i`` there) and starting at
    every earlier block: ``(i, B)``; phased, the even mixture of the segment's two phases."""
    seg = cum_i[None] - cum
    return np.logaddexp(seg[..., 0], seg[..., 1]) + np.log(0.5) if phased else seg


def _best_path(cum: np.ndarray, penalty: float, phased: bool = False) -> list[tuple[int, int, int]]:
    """Exact optimal partition of ``M`` blocks given cumulative log-likelihoods ``cum`` (``(M + 1, B)``, phased
    ``(M + 1, B, 2)``): segments ``(first block, one past the last, BAD index)`` maximising the sum of segment
    log-likelihoods minus ``penalty`` per segment (O(M^2 B))."""
    m = cum.shape[0] - 1
    best = np.full(m + 1, -np.inf)
    best[0] = 0.0
    back = np.zeros((m + 1, 2), dtype=np.int64)
    for i in range(1, m + 1):
        seg = _segment_scores(cum[i], cum[:i], phased)            # (i, B): segments j..i-1 for every start j
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


def _segment_once(t, bads, penalty, rho, block, outlier, min_count, phased, count_cols):
    """One segmentation of sorted rows at a fixed ``rho``: (segment rows, SNV table with its segment, score)."""
    snvs, ll = snv_loglik(t, bads=bads, rho=rho, outlier=outlier, min_count=min_count, phased=phased,
                          count_cols=count_cols)
    seg_rows, snv_seg, score = [], np.empty(len(snvs), dtype=np.int64), 0.0
    chroms, pos = snvs["chrom"].to_numpy(), snvs["pos"].to_numpy()
    starts = np.flatnonzero(np.r_[True, chroms[1:] != chroms[:-1]])
    ends = np.r_[starts[1:], len(snvs)]
    for s, e in zip(starts, ends):
        m = e - s
        pen = 2.0 * np.log(max(m, 2)) if penalty is None else float(penalty)
        edges = np.r_[np.arange(0, m, block), m]                  # block boundaries in SNVs
        blk = np.add.reduceat(ll[s:e], edges[:-1], axis=0)
        cum = np.concatenate([np.zeros((1,) + blk.shape[1:]), np.cumsum(blk, axis=0)])
        for j, i, b in _best_path(cum, pen, phased):
            a, z = s + edges[j], s + edges[i]
            snv_seg[a:z] = len(seg_rows)
            part = ll[a:z, b].sum(0)
            row = {"chrom": chroms[s], "start": int(pos[a]) - 1, "end": int(pos[z - 1]), "bad": float(bads[b]),
                   "n_snvs": int(z - a)}
            if phased:
                lik = float(np.logaddexp(*part) + np.log(0.5))
                row["p_hap1_more"] = float(np.exp(part[1] - np.logaddexp(*part))) if bads[b] > 1 else 0.5
            else:
                lik = float(part)
            score += lik - pen
            seg_rows.append({**row, "loglik": lik})
    return seg_rows, snvs.assign(segment=snv_seg), score


def segment(sites: pd.DataFrame, *, bads=BADS, penalty: float | None = None, rho="auto", block: int = 10,
            outlier: float = 0.05, min_count: int = 0, phased: bool = False, ref_col: str = "ref_count",
            alt_col: str = "alt_count", hap_cols=("hap1_count", "hap2_count")) -> Segmentation:
    """BAD segments along each chromosome from the allelic counts of many SNVs of one genome (a donor or cell
    line: all its samples, one row per SNV and sample).

    SNVs are sorted along each chromosome, scored under every BAD by :func:`snv_loglik` (all of a SNV's samples
    together) and grouped into blocks of ``block`` consecutive SNVs (a segment boundary falls between blocks); the
    partition of each chromosome into segments, each with one BAD of ``bads``, that maximises the summed
    log-likelihood minus ``penalty`` per segment is found exactly by dynamic programming. ``penalty`` defaults to
    ``2 log(n)`` for a chromosome of ``n`` SNVs, twice the BIC's price for a segment's boundary and its BAD (chosen on
    simulated segments: see the tests).

    ``phased=True`` uses the haplotype counts ``hap_cols`` (a personal diploid genome phases every SNV): within a
    segment one haplotype carries the extra copies at every SNV, which over-dispersion cannot mimic, so dosage and
    over-dispersion no longer trade off; each segment also says which haplotype that is (``p_hap1_more``).
    ``rho``: over-dispersion of the counts; ``"auto"`` profiles it over :data:`RHO_GRID` and keeps the value with
    the best penalised likelihood; ``outlier``: the share of SNVs allowed to be allele-specific
    (:func:`snv_loglik`; 0.05 keeps planted segments of BAD 4/3 apart from 1 where 0.2 and 0.3 merge them; on the
    simulated aneuploid donor, where a fifth of the measurements are allele-specific, 0.3 gave unphased
    segmentations the planted BAD more often; profiling it like ``rho`` did not help; ``benchmarks/README.md``);
    ``min_count``: the table keeps only rows whose alleles both have at least this many reads. Raises ValueError
    for missing columns or an empty table."""
    count_cols = tuple(hap_cols) if phased else (ref_col, alt_col)
    need = ["chrom", "pos", *count_cols]
    missing = [c for c in need if c not in sites.columns]
    if missing:
        raise ValueError(f"sites: missing columns {missing}"
                         + (" (phased=True needs haplotype counts)" if phased else ""))
    if sites.empty:
        raise ValueError("sites: no rows to segment")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    bads = np.asarray(bads, dtype=float)
    t = sites.sort_values(["chrom", "pos"], kind="stable")
    t = t.assign(chrom=t["chrom"].astype(str))
    grid = RHO_GRID if isinstance(rho, str) and rho == "auto" else (float(rho),)
    chosen, seg_rows, snvs, _ = max(
        ((r, *_segment_once(t, bads, penalty, r, block, outlier, min_count, phased, count_cols)) for r in grid),
        key=lambda x: x[3])
    segs = pd.DataFrame(seg_rows)
    seg_of = np.repeat(snvs["segment"].to_numpy(), snvs["n_rows"].to_numpy())     # t's rows, SNV by SNV
    out = t.assign(bad=segs["bad"].to_numpy()[seg_of], segment=seg_of)
    if phased:
        out["p_hap1_more"] = segs["p_hap1_more"].to_numpy()[seg_of]
    return Segmentation(segments=segs, sites=out, params={"bads": bads.tolist(), "penalty": penalty, "rho": chosen,
                                                          "block": block, "outlier": outlier,
                                                          "min_count": min_count, "phased": phased})


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


def _fit_class(g: pd.DataFrame, bad: float, null_ratio, min_count: int = 0):
    """:func:`allelic.stats.fit_dosage_null` of the rows of one sample and BAD class."""
    return fit_dosage_null(g["ref_count"], g["total"], bad, null_ratio=null_ratio, min_count=min_count)


@dataclass
class DosageResult:
    """Result of :func:`test_imbalance_with_dosage`. ``table``: the tested rows with ``bad``, ``segment``,
    ``rho_dosage`` (over-dispersion of the row's group and BAD class), ``null_ratio_dosage`` (the group's reference
    ratio at BAD 1), ``p_ref_dosage``, ``p_alt_dosage``,
    ``p_dosage`` (two-sided), ``q_dosage`` (Benjamini-Hochberg over the table), ``as_dosage`` (``q <= fdr``) and
    ``preferred_allele`` (``ref``/``alt``); ``params``: one row per group x BAD class (``n_sites``, ``rho``,
    ``null_ratio``, ``n_kept``, ``rho_from``, ``n_as``); ``segmentation``: the :class:`Segmentation` per
    ``segment_by`` group (None with a BAD map);
    ``ledger``: rows not tested (``low_total``, ``below_min_count``, ``outside_bad_map``); ``min_count``: the read
    floor the tests conditioned on."""

    table: pd.DataFrame
    params: pd.DataFrame
    segmentation: dict | None
    ledger: Ledger
    min_count: int = 0  # the read floor the table was filtered with (combine_samples truncates to it too)


def test_imbalance_with_dosage(table: pd.DataFrame, *, bad_map: pd.DataFrame | None = None, segment_by=("donor",),
                               group_cols=("sample",), min_total: int = 6, fdr: float = 0.1, null_ratio="fit",
                               min_fit_sites: int = 30, phased: bool = False, min_count: int = 0,
                               ledger: Ledger | None = None, **segment_kw) -> DosageResult:
    """Allelic imbalance beyond background allelic dosage, for a counts table (``chrom, pos, ref_count,
    alt_count`` and the ``group_cols``).

    1. Rows with fewer than ``min_total`` reads go to the ledger.
    2. Every site gets a BAD: from ``bad_map`` (:func:`read_bad_map`; sites outside it are ledgered), or by
       :func:`segment` of each ``segment_by`` group (copy number belongs to a genome: a donor or cell line, all its
       samples together; ``segment_kw`` go to :func:`segment`). ``min_count``: the floor the table was filtered
       with (both alleles at least that many reads, 5 for HEK293's VCFs): the segmentation, the null fit and the
       tests all use the distributions truncated to it.
       ``phased=True`` (counts from a personal diploid genome: ``hap1_count, hap2_count``) segments with the
       haplotype counts. The test keeps the even mixture even then: a site given the wrong BAD would otherwise be
       tested against one wrong ratio (on the simulated aneuploid donor, testing with the segment's phase too put
       the false-discovery proportion at 0.031-0.071 over five seeds, against 0.012-0.045 without;
       ``benchmarks/README.md``).
    3. Per ``group_cols`` group (a sample: samples differ in over-dispersion and mapping bias): the null of its
       largest BAD class by :func:`allelic.stats.fit_dosage_null` (over-dispersion and reference ratio at BAD 1,
       unless ``null_ratio`` fixes it, on the sites that look null, so allele-specific sites do not inflate the
       over-dispersion); then each other class's over-dispersion with that ratio, or, for a class of
       fewer than ``min_fit_sites`` sites, the largest class's (``params['rho_from']``).
    4. :func:`allelic.stats.dosage_test` p-values; Benjamini-Hochberg over the table; calls at ``fdr``.

    The result's rows keep the input order, re-indexed from 0."""
    need = ["chrom", "pos", "ref_count", "alt_count", *group_cols] + ([] if bad_map is not None else list(segment_by))
    need += ["hap1_count", "hap2_count"] if phased and bad_map is None else []
    missing = [c for c in dict.fromkeys(need) if c not in table.columns]
    if missing:
        raise ValueError(f"counts table: missing columns {missing}" + (" (phased=True)" if phased else ""))
    ledger = Ledger() if ledger is None else ledger
    t = table.reset_index(drop=True)           # rows are addressed by position: a repeated index would mix groups
    t["total"] = t["ref_count"] + t["alt_count"]
    low = t["total"] < min_total
    floor = ~low & ((t["ref_count"] < min_count) | (t["alt_count"] < min_count))
    for mask, reason, detail in ((low, "low_total", f"ref+alt < min_total={min_total}"),
                                 (floor, "below_min_count", f"an allele has fewer than min_count={min_count} reads")):
        records = (t.loc[mask, "chrom"].astype(str) + ":" + t.loc[mask, "pos"].astype(str)).tolist()
        ledger.extend("test_imbalance_with_dosage", "counts table", records, reason, detail)
    t = t[~low & ~floor]
    segs = None
    if bad_map is not None:
        t = assign(t, bad_map, ledger=ledger)
    else:
        segs, parts = {}, []
        for key, g in t.groupby(list(segment_by), sort=True):
            final = segment(g, phased=phased, min_count=min_count, **segment_kw)
            parts.append(final.sites)
            segs[key if len(segment_by) > 1 else key[0]] = final
        t = pd.concat(parts).sort_index()
        if phased:
            t = t.drop(columns="p_hap1_more")
    rows, t["rho_dosage"], t["null_ratio_dosage"] = [], np.nan, np.nan
    for gkey, grp in t.groupby(list(group_cols), sort=True):
        classes = dict(tuple(grp.groupby("bad", sort=True)))
        largest = max(classes, key=lambda b: len(classes[b]))
        fits = {largest: _fit_class(classes[largest], largest, null_ratio, min_count)}
        p0 = fits[largest].null_ratio
        for b, g in classes.items():
            if b != largest and len(g) >= min_fit_sites:
                fits[b] = _fit_class(g, b, p0, min_count)
            f = fits.get(b, fits[largest])
            rows.append({**dict(zip(group_cols, gkey if isinstance(gkey, tuple) else (gkey,))), "bad": b,
                         "n_sites": len(g), "rho": f.rho, "null_ratio": p0, "n_kept": f.n_kept,
                         "rho_from": "own" if b in fits else f"BAD {largest:.3g}"})
            t.loc[g.index, "rho_dosage"], t.loc[g.index, "null_ratio_dosage"] = f.rho, p0
    res = dosage_test(t["ref_count"].to_numpy(), t["total"].to_numpy(), t["bad"].to_numpy(),
                      t["rho_dosage"].to_numpy(), null_ratio=t["null_ratio_dosage"].to_numpy(), min_count=min_count)
    t["p_ref_dosage"] = res["p_ref"].to_numpy()
    t["p_alt_dosage"] = res["p_alt"].to_numpy()
    t["p_dosage"] = res["pvalue"].to_numpy()
    t["q_dosage"] = bh_fdr(t["p_dosage"].to_numpy())
    t["as_dosage"] = t["q_dosage"] <= fdr
    t["preferred_allele"] = np.where(t["as_dosage"], res["preferred"].to_numpy(), "")
    params = pd.DataFrame(rows)
    params["n_as"] = params.merge(t.groupby([*group_cols, "bad"], as_index=False)["as_dosage"].sum(),
                                  on=[*group_cols, "bad"], how="left")["as_dosage"].to_numpy()
    return DosageResult(table=t.reset_index(drop=True), params=params, segmentation=segs, ledger=ledger,
                        min_count=min_count)


def _component_pmf(n: int, p: float, rho: float) -> np.ndarray:
    """pmf over ``0..n`` of a binomial (``rho = 0``) or beta-binomial at mean ``p``."""
    return np.exp(_logpmf(np.arange(n + 1), n, p, rho))


def combine_samples(result: DosageResult, *, by=("chrom", "pos"), fdr: float = 0.1,
                    min_count: int | None = None) -> pd.DataFrame:
    """One exact test per SNV over all its samples (replicates, tissues, assays of one genome), from
    :func:`test_imbalance_with_dosage`'s rows: more power than testing each sample alone, as MIXALIME gains by
    combining replicates.

    The samples of a SNV share its phase, so their p-values under the even-mixture null lean the same way and may
    not be combined as independent (Fisher's method on them is anticonservative). Instead the statistic is the
    SNV's summed reference reads ``T``, whose null distribution is exact: given the phase, the samples are
    independent beta-binomials (each with its own over-dispersion and mapping bias, at the SNV's BAD), so ``T``'s
    pmf is their convolution; the null mixes the two phases once per SNV. ``p_ref = P(T' >= T)``,
    ``p_alt = P(T' <= T)``, ``pvalue = min(1, 2 min)``; with one sample it is :func:`allelic.stats.dosage_test`.
    Benjamini-Hochberg over the SNVs, calls at ``fdr``. ``by``: the columns naming a SNV of one genome (add the
    donor or cell line when the table holds several). ``min_count`` (default: the result's, the floor its tests
    conditioned on): every record was kept only where both alleles have at least that many reads; each record's pmf
    is then truncated to that support, and the two phases are weighted by how likely each makes all the records'
    survival of the floor. Returns one row per SNV: ``by``, ``n_samples``, ``bad``, ``ref_count``, ``total``,
    ``p_ref``, ``p_alt``, ``pvalue``, ``qvalue``, ``as_snv``, ``preferred_allele``.
    Raises ValueError when a SNV's samples disagree on its BAD."""
    min_count = result.min_count if min_count is None else min_count
    t = result.table.sort_values(list(by), kind="stable")
    keys = t[list(by)].astype(str).agg("\t".join, axis=1).to_numpy() if len(by) > 1 else t[by[0]].astype(str).to_numpy()
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[first[1:], len(t)]
    k, n = t["ref_count"].to_numpy(np.int64), t["total"].to_numpy(np.int64)
    bad, rho, p0 = (t[c].to_numpy(float) for c in ("bad", "rho_dosage", "null_ratio_dosage"))
    out = np.empty((len(first), 2))
    for j, (a, z) in enumerate(zip(first, ends)):
        if not np.allclose(bad[a:z], bad[a]):
            raise ValueError(f"SNV {keys[a]!r}: its samples have different BADs {sorted(set(bad[a:z]))}; "
                             f"combine within one genome (add the donor to `by`)")
        tails, log_kept = [], []
        for comp in (0, 1):                                   # the reference allele on the fewer / more copies
            pmf, lz = np.ones(1), 0.0
            for i in range(a, z):
                f = _component_pmf(int(n[i]), float(null_ratios(bad[i], p0[i])[comp]), rho[i])
                if min_count:
                    f[:min_count], f[len(f) - min_count:] = 0.0, 0.0
                    kept = max(f.sum(), 1e-300)
                    lz, f = lz + np.log(kept), f / kept
                pmf = np.convolve(pmf, f)
            tot = int(k[a:z].sum())
            tails.append((pmf[tot:].sum(), pmf[:tot + 1].sum()))
            log_kept.append(lz)
        w1 = 1.0 / (1.0 + np.exp(log_kept[0] - log_kept[1]))  # P(phase | every record passed the floor), even prior
        out[j] = ((1 - w1) * tails[0][0] + w1 * tails[1][0], (1 - w1) * tails[0][1] + w1 * tails[1][1])
    out = np.clip(out, 0.0, 1.0)
    res = t.iloc[first][list(by)].reset_index(drop=True)
    res["n_samples"] = ends - first
    res["bad"] = bad[first]
    res["ref_count"] = np.add.reduceat(k, first)
    res["total"] = np.add.reduceat(n, first)
    res["p_ref"], res["p_alt"] = out[:, 0], out[:, 1]
    res["pvalue"] = np.minimum(1.0, 2 * out.min(1))
    res["qvalue"] = bh_fdr(res["pvalue"].to_numpy())
    res["as_snv"] = res["qvalue"] <= fdr
    res["preferred_allele"] = np.where(res["as_snv"], np.where(out[:, 0] <= out[:, 1], "ref", "alt"), "")
    return res
