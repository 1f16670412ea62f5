"""De novo motifs from per-base importance scores (attention, ISM), in the manner of DNABERT's motif analysis.

DNABERT (Ji et al. 2021, ``motif/motif_utils.py``) turns a model's attention into motifs in six steps; this
module keeps the steps and makes the brittle ones robust:

1. **High-score regions** (:func:`high_score_regions`): in each allele-specific window (label 1), the contiguous
   runs of at least ``min_length`` bases whose score is above the window's mean *and* above ``min_ratio`` times the
   window's minimum (DNABERT's rule, which assumes non-negative scores such as attention or ISM). NaN scores, ``N``
   bases and positions past a window's end are never part of a region.
2. **Candidates**: DNABERT takes each whole region sequence as a candidate, so a 14-bp region around a site sampled
   from a PWM almost never recurs exactly and is never enriched. Here the candidates are the *k-mers inside the
   regions*, for every ``k`` from ``min_length`` to ``max_length`` (at most 31: k-mers are 2-bit coded in a uint64);
   a k-mer and its reverse complement are one candidate (reported in its lexicographically smaller, *canonical*,
   form).
3. **Enrichment** (:func:`enrichment`): for each candidate, ``n_as`` label-1 and ``n_other`` label-0 windows contain
   it, counted by exact match on either strand (as DNABERT counts, with Aho-Corasick there, 2-bit k-mer codes here);
   ``pvalue = P(X >= n_as)`` for ``X ~ Hypergeometric(M = n_as_windows + n_other_windows, K = n_as + n_other,
   N = n_as_windows)`` and ``qvalue`` is Benjamini-Hochberg over all candidates (:func:`allelic.stats.bh_fdr`).
   Candidates with ``qvalue < alpha`` are kept.
4. **Merging by sequence**: enriched candidates, most significant first, are placed in groups on a common
   coordinate frame. A candidate of length ``k`` joins the earliest group one of whose members shares an exact block
   of ``min(min_overlap, k)`` bases with it, on either strand, placed where the block aligns; else it starts a group.
   Sharing a block (not requiring the whole overlap to match) lets overlapping k-mers of one site and many variants
   of a PWM-sampled motif meet; a short member never bridges to a longer candidate, so a promiscuous 5-mer found in
   two motifs does not join them. (DNABERT's rule, an alignment score >= ``min_len`` with free mismatches and end
   gaps, joins about 22% of pairs of random 10-mers and half of pairs of random 12-mers, and each candidate is
   compared with every group.)
5. **Sites**: every occurrence of a member inside a high-score region of a label-1 window says where the group's
   frame lies in that window; in each window the placement backed by the most occurrences wins and absorbs the
   overlapping ones (one site, however many k-mers found it), and it becomes a *site* only if its backing members
   cover at least ``min_overlap`` bases of the frame. Groups are then merged when they are one motif: when at
   least ``min_shared_sites`` of the smaller group's sites lie on the other's sites (pieces of one long motif, such
   as REST's two halves), or when their site matrices align, on either strand, with an information-weighted mean
   column correlation of at least ``min_similarity`` (variants in different windows, such as ``AGATTAG`` and
   ``AGATAAG`` of GATA1).
6. **Instances and PWMs**: each site is extended to a fixed ``window``-bp stretch centred on the frame (DNABERT
   centres a ``window_size`` stretch on each region), stretches running off a window's end are dropped (as in
   DNABERT), groups with fewer than ``min_instances`` instances are dropped, and the instances' base counts form each
   motif, flanks with information content below ``trim_ic`` bits trimmed. Motifs are compared with JASPAR by TOMTOM
   (:func:`tomtom_matches`, memelite's implementation).

Nothing is dropped silently: :class:`DeNovoResult` carries a step-by-step ``summary`` and a record-level ``ledger``
(:class:`allelic.ledger.Ledger` table) of every region-less window, non-enriched candidate, weak placement,
clipped instance and dropped group. :func:`write_meme` / :func:`read_meme` exchange motifs with the MEME suite.

The steps live beside this module: regions, k-mer keys and the enrichment test (steps 1-3) in
:mod:`allelic.kmer_enrichment`, the assembly of enriched k-mers into motifs (steps 4-6) in
:mod:`allelic.motif_assembly`, TOMTOM and MEME files in :mod:`allelic.meme`. This module runs them
(:func:`find_motifs`, :class:`DeNovoResult`, :func:`permutation_control`) and re-exports their public names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .fdr import bh_fdr
from .kmer_enrichment import (MAX_KMER, _as_list_of_str, _as_score_matrix, _check_int, _containing, _decode_kmer,
                              _hypergeom_pvalue, _kmer_codes, enrichment, high_score_regions)
from .ledger import Ledger
from .meme import _as_motif_list, read_meme, tomtom_matches, write_meme
from .motif_assembly import (_counts_of, _merge, _merge_groups, _occurrences_by_candidate, _site_stretch,
                             _stretch_of, _trim_bounds)
from .motifs import N_CODE, Motif, encode, load_jaspar, reverse_complement
from .profiles import check_binary_labels
from .progress import bar as progress_bar

__all__ = [
    "DeNovoResult",
    "high_score_regions",
    "enrichment",
    "find_motifs",
    "permutation_control",
    "tomtom_matches",
    "write_meme",
    "read_meme",
]

_TABLE_COLUMNS = ["motif_id", "consensus", "width", "n_instances", "n_candidates", "seed", "n_as", "n_other",
                  "pvalue", "qvalue", "n_as_group", "n_other_group", "jaspar_id", "jaspar_name", "tomtom_pvalue",
                  "tomtom_qvalue", "known"]
_INSTANCE_COLUMNS = ["motif_id", "window", "start", "end", "strand", "sequence", "candidate"]


# ---------------------------------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------------------------------
def _check_fraction(x, name: str) -> float:
    x = float(x)
    if not (0 < x <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {x}")
    return x


# ---------------------------------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class DeNovoResult:
    """Result of :func:`find_motifs`.

    Attributes
    ----------
    table
        One row per de novo motif, most enriched first: ``motif_id`` (``"denovo_1"``, ...), ``consensus``, ``width``
        (bases), ``n_instances`` (sites whose counts make the motif), ``n_candidates`` (enriched k-mers merged into
        it), ``seed`` (its most significant k-mer, canonical form), ``n_as`` / ``n_other`` / ``pvalue`` / ``qvalue``
        (the seed's enrichment test: windows containing the seed, hypergeometric p, BH q over all candidates),
        ``n_as_group`` / ``n_other_group`` (windows containing any member k-mer; descriptive), ``jaspar_id``,
        ``jaspar_name``, ``tomtom_pvalue``, ``tomtom_qvalue`` (best TOMTOM match, see :func:`tomtom_matches`; None /
        NaN without a database) and ``known`` (``tomtom_qvalue < tomtom_alpha``). Sorted by ``pvalue``, then
        ``n_instances`` (descending), then ``seed``.
    motifs
        :class:`allelic.motifs.Motif` per row of ``table`` (same order): ``matrix_id`` = ``motif_id``, ``name`` =
        consensus, ``counts`` = (4, width) base counts of the instances (rows A, C, G, T; an N counts nowhere).
    instances
        One row per instance: ``motif_id``, ``window`` (index into the input), ``start``, ``end`` (0-based, end
        exclusive, on the window's forward strand; ``end - start == width``), ``strand`` (``"+"``/``"-"``),
        ``sequence`` (read on the motif's strand, so it aligns with the counts), ``candidate`` (the k-mer that placed
        it).
    candidates
        Every candidate k-mer: ``candidate`` (canonical), ``length``, ``n_regions`` (occurrences inside regions of
        label-1 windows), ``n_as``, ``n_other``, ``pvalue``, ``qvalue``, ``enriched`` (``qvalue < alpha``),
        ``group`` (``motif_id`` of the motif it was merged into; ``"dropped"`` for a group below ``min_instances``;
        None when not enriched).
    regions
        The high-score regions of label-1 windows (:func:`high_score_regions` columns, ``window`` indexing the
        input), with ``sequence``.
    summary
        Counts at each step: ``step``, ``n``, ``description`` (windows, regions, candidates, enriched, groups,
        instances kept / dropped, groups dropped, motifs, known motifs).
    ledger
        Record-level removals (:data:`allelic.ledger.LEDGER_COLUMNS`: ``step``, ``source``, ``record``, ``reason``,
        ``detail``): label-1 windows without a region (``no_high_score_region``), candidates not enriched
        (``not_enriched``), placements too weakly backed to be sites (``weak_placement``), instances whose stretch
        runs off the window (``window_out_of_bounds``), groups with too few instances (``too_few_instances``).
        Occurrences absorbed into a site are not losses and are only counted in ``summary``.
    params
        The parameters used.
    """

    table: pd.DataFrame
    motifs: list
    instances: pd.DataFrame
    candidates: pd.DataFrame
    regions: pd.DataFrame
    summary: pd.DataFrame
    ledger: pd.DataFrame
    params: dict

    def __len__(self) -> int:
        return len(self.motifs)



# ---------------------------------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------------------------------
def _validate_inputs(sequences, scores, labels):
    seqs = _as_list_of_str(sequences, "window")
    n = len(seqs)
    if n == 0:
        raise ValueError("no windows given")
    codes, _ = encode(seqs, what="window", ragged=True)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    a = _as_score_matrix(scores)
    if a.shape[0] != n:
        raise ValueError(f"scores has {a.shape[0]} rows but there are {n} sequences (one row per window)")
    short = lengths > a.shape[1]
    if short.any():
        i = int(np.argmax(short))
        raise ValueError(f"window {i} has {int(lengths[i])} bases but scores has only {a.shape[1]} columns")
    lab = check_binary_labels(labels, n, require_both=True)
    return seqs, codes, lengths, a, lab


def find_motifs(sequences: Sequence[str], scores, labels, *, min_length: int = 5, max_length: int = 10,
                min_ratio: float = 10.0, alpha: float = 0.05, min_overlap: int | None = None,
                min_shared_sites: float = 0.5, min_similarity: float = 0.75, min_instances: int = 3,
                window: int = 24, trim_ic: float | None = 0.5, pseudocount: float = 0.8,
                jaspar=None, tomtom_alpha: float = 0.05, random_state=0, n_jobs: int = -1,
                progress=None) -> DeNovoResult:
    """De novo motifs from per-base scores of allele-specific windows (DNABERT's motif analysis, made robust; the
    module docstring describes each step).

    Parameters
    ----------
    sequences
        ``n`` windows (list of str of A, C, G, T, N; any case; lengths may differ).
    scores
        ``(n, length)`` per-base scores with ``length`` >= the longest window (attention from
        :func:`allelic.attention.attention_profiles`, whose object may be passed as is; ISM from
        :func:`allelic.attention.ism_scores`). NaN = unscored; columns past a window's end and ``N`` bases are
        ignored. Only label-1 rows are used.
    labels
        ``(n,)`` 0/1 (or bool): 1 = allele-specific.
    min_length, min_ratio
        Region rule of :func:`high_score_regions` (DNABERT: 5 and 10); ``min_length`` is also the shortest
        candidate k-mer.
    max_length
        Longest candidate k-mer (<= 31).
    alpha
        BH q-value cut-off of the candidates' enrichment.
    min_overlap
        Length of the exact shared block that merges a candidate into a group (a shorter candidate must be contained
        whole in a member), and the number of frame bases a site's backing members must cover; default
        ``min_length + 2``.
    min_shared_sites
        Merge two groups when at least this fraction of the smaller one's sites lie on the other's sites.
    min_similarity
        Merge two groups when their site matrices align with at least this information-weighted mean column
        Pearson correlation (on random pairs of JASPAR CORE vertebrate motifs, about 5% reach 0.75, mostly motifs
        of one family).
    min_instances
        Groups with fewer instances are dropped (DNABERT: 3).
    window
        Width, in bases, of the stretch taken around each instance (DNABERT: 24); widened to the group's frame when
        its members span more.
    trim_ic
        Flank columns with information content below this (bits, from probabilities with ``pseudocount``) are
        trimmed; None keeps the whole window.
    pseudocount
        Pseudocount for information content and TOMTOM probabilities (:meth:`Motif.probabilities` convention).
    jaspar
        Motifs to compare with (list of :class:`Motif`); default ``load_jaspar()`` (CORE vertebrates). An empty list
        skips TOMTOM (match columns None / NaN, ``known`` False).
    tomtom_alpha
        A motif is ``known`` when its best match's TOMTOM q-value is below this.
    random_state
        Accepted for the library's uniform signature; no step draws random numbers (every tie is broken by a fixed
        order: p-value, then longer candidate, then sequence), so results do not depend on it.
    n_jobs
        Numba threads for TOMTOM (-1: all).
    progress
        Progress bars (None: when stderr is a terminal).

    Returns
    -------
    :class:`DeNovoResult`.

    Raises
    ------
    ValueError
        Scores with a different number of rows than sequences, or fewer columns than a window's length; labels not
        0/1 or of the wrong length; no label-1 or no label-0 window; an invalid character (naming the window and
        position); invalid parameters.
    """
    min_length = _check_int(min_length, "min_length", 1)
    max_length = _check_int(max_length, "max_length", min_length, MAX_KMER)
    min_overlap = min_length + 2 if min_overlap is None else _check_int(min_overlap, "min_overlap", min_length)
    min_instances = _check_int(min_instances, "min_instances", 1)
    min_shared_sites = _check_fraction(min_shared_sites, "min_shared_sites")
    min_similarity = float(min_similarity)
    if not (-1 <= min_similarity <= 1):
        raise ValueError(f"min_similarity must be in [-1, 1], got {min_similarity}")
    window = _check_int(window, "window", 1)
    alpha = _check_fraction(alpha, "alpha")
    tomtom_alpha = _check_fraction(tomtom_alpha, "tomtom_alpha")
    if trim_ic is not None:
        trim_ic = float(trim_ic)
    np.random.default_rng(random_state)     # validates random_state; nothing is drawn
    params = dict(min_length=min_length, max_length=max_length, min_ratio=float(min_ratio), alpha=alpha,
                  min_overlap=min_overlap, min_shared_sites=min_shared_sites,
                  min_similarity=min_similarity, min_instances=min_instances, window=window, trim_ic=trim_ic,
                  pseudocount=pseudocount, tomtom_alpha=tomtom_alpha, random_state=random_state)

    seqs, codes, lengths, a, lab = _validate_inputs(sequences, scores, labels)
    n, L = codes.shape
    ledger = Ledger()
    summary: list[tuple[str, int, str]] = []
    as_idx = np.flatnonzero(lab)
    other_idx = np.flatnonzero(~lab)
    summary += [("windows", n, "windows given"), ("as_windows", len(as_idx), "label-1 (allele-specific) windows"),
                ("other_windows", len(other_idx), "label-0 windows")]

    # ---- 1. regions (label-1 windows; N bases and bases past the end unscored)
    s_as = a[as_idx, :L].copy()
    c_as = codes[as_idx]
    s_as[(c_as >= N_CODE)] = np.nan
    s_as[np.arange(L)[None, :] >= lengths[as_idx][:, None]] = np.nan
    reg = high_score_regions(s_as, min_length=min_length, min_ratio=min_ratio)
    reg["window"] = as_idx[reg["window"].to_numpy()]
    reg["sequence"] = [seqs[w][s:e].upper() for w, s, e in reg[["window", "start", "end"]].itertuples(index=False)]
    no_region = np.setdiff1d(as_idx, reg["window"].to_numpy())
    ledger.extend("regions", "label-1 windows", no_region, "no_high_score_region",
                  f"no run of >= {min_length} bases above the mean and {min_ratio:g} x the minimum")
    summary += [("regions", len(reg), "high-score regions in label-1 windows"),
                ("as_windows_without_region", len(no_region), "label-1 windows with no region (ledger)")]

    # ---- 2. candidates: canonical k-mers inside regions, k = min_length..max_length
    region_id = np.full((len(as_idx), L), -1, dtype=np.int64)
    row_of = {int(w): r for r, w in enumerate(as_idx)}
    for rid, (w, s, e) in enumerate(reg[["window", "start", "end"]].itertuples(index=False)):
        region_id[row_of[int(w)], s:e] = rid
    cand_keys, cand_len, occ = [], [], []     # occ: per k, (cand key, window, pos, orientation)
    for k in range(min_length, max_length + 1):
        m = L - k + 1
        if m <= 0:
            break
        fwd, rc, valid = _kmer_codes(c_as, k)
        inside = (region_id[:, :m] >= 0) & (region_id[:, :m] == region_id[:, k - 1: k - 1 + m]) & valid
        r, p = np.nonzero(inside)
        f, b = fwd[r, p], rc[r, p]
        key = np.minimum(f, b)
        uk = np.unique(key)
        cand_keys.append(uk)
        cand_len.append(np.full(uk.size, k, dtype=np.int64))
        occ.append((k, key, as_idx[r], p.astype(np.int64), np.where(f <= b, 1, -1)))
    keys_all = np.concatenate(cand_keys) if cand_keys else np.zeros(0, np.uint64)
    len_all = np.concatenate(cand_len) if cand_len else np.zeros(0, np.int64)
    cand_seq = [_decode_kmer(c, k) for c, k in zip(keys_all.tolist(), len_all.tolist())]
    starts = np.concatenate([[0], np.cumsum([u.size for u in cand_keys])]).astype(np.int64)
    summary.append(("candidates", len(cand_seq), f"distinct k-mers (k = {min_length}..{max_length}, both strands "
                                                  "as one) inside regions"))

    # ---- 3. enrichment: windows containing each candidate, hypergeometric, BH
    n_as = np.zeros(len(cand_seq), dtype=np.int64)
    n_other = np.zeros(len(cand_seq), dtype=np.int64)
    n_regions = np.zeros(len(cand_seq), dtype=np.int64)
    c_other = codes[other_idx]
    for j, uk in enumerate(progress_bar(cand_keys, desc="counting k-mers", progress=progress)):
        k = int(len_all[starts[j]]) if uk.size else 0
        if not uk.size:
            continue
        sl = slice(starts[j], starts[j + 1])
        n_as[sl] = _containing(uk, k, c_as, True)
        n_other[sl] = _containing(uk, k, c_other, True)
        n_regions[sl] = np.bincount(np.searchsorted(uk, occ[j][1]), minlength=uk.size)
    pval = _hypergeom_pvalue(n_as, n_other, len(as_idx), len(other_idx))
    qval = bh_fdr(pval) if len(cand_seq) else np.zeros(0)
    enriched = qval < alpha
    cands = pd.DataFrame({"candidate": cand_seq, "length": len_all, "n_regions": n_regions, "n_as": n_as,
                          "n_other": n_other, "pvalue": pval, "qvalue": qval, "enriched": enriched,
                          "group": pd.Series([None] * len(cand_seq), dtype=object)})
    not_enr = np.flatnonzero(~enriched)
    ledger.rows.extend(("enrichment", "candidates", cand_seq[i], "not_enriched",
                        f"q={qval[i]:.3g} >= alpha={alpha:g} (n_as={n_as[i]}, n_other={n_other[i]})")
                       for i in not_enr)
    summary.append(("enriched", int(enriched.sum()), f"candidates with BH q < {alpha:g}"))

    # ---- 4. merge enriched candidates (most significant first; ties: longer, then sequence)
    enr = np.flatnonzero(enriched)
    order = sorted(enr.tolist(), key=lambda i: (pval[i], -len_all[i], cand_seq[i]))
    groups = _merge(order, cand_seq, min_length, min_overlap, progress)
    summary.append(("groups", len(groups), f"groups of enriched candidates (shared exact block >= {min_overlap})"))

    # windows containing any member (group-level counts): unique (candidate, window) pairs of enriched candidates
    cand_windows: dict[int, np.ndarray] = {}
    for j, uk in enumerate(cand_keys):
        sl_idx = np.arange(starts[j], starts[j + 1])
        e_local = np.flatnonzero(enriched[sl_idx])
        if not e_local.size:
            continue
        k = int(len_all[starts[j]])
        _, pc, pw = _containing(uk[e_local], k, codes, True, pairs=True)
        for t, gi in enumerate(sl_idx[e_local]):
            cand_windows[int(gi)] = pw[pc == t]

    # ---- 5. sites of each group; groups that sit on the same sites are merged
    occ_by_cand = _occurrences_by_candidate(occ, cand_keys, starts, enriched)
    groups, n_by_sites, n_by_sim, n_dup, n_weak = _merge_groups(
        groups, occ_by_cand, cand_seq, seqs, lengths, min_shared=min_shared_sites, min_similarity=min_similarity,
        min_overlap=min_overlap, window=window, trim_ic=trim_ic, pseudocount=pseudocount, progress=progress)
    summary += [("groups_merged_by_sites", n_by_sites,
                 f"groups merged into another: >= {min_shared_sites:g} of the smaller group's sites coincide"),
                ("groups_merged_by_similarity", n_by_sim,
                 f"groups merged into another: site matrices align with mean column correlation >= "
                 f"{min_similarity:g}"),
                ("site_occurrences_collapsed", n_dup,
                 "member occurrences absorbed into a site placed by more occurrences (the same site, not a loss)"),
                ("weak_placements", n_weak,
                 f"placements dropped: backing members cover < {min_overlap} bases of the frame (ledger)")]
    for grp in groups:
        for w, strand, c0, c1, ci, cov in grp.weak:
            ledger.add("sites", f"group of {cand_seq[grp.members[0][0]]}",
                       f"window {w} at {c0}..{c1} ({'+' if strand == 1 else '-'}) via {cand_seq[ci]}",
                       "weak_placement", f"backing members cover {cov} < {min(min_overlap, c1 - c0)} frame bases")

    built = []   # (group, instance rows, counts)
    n_oob = 0
    for gi, grp in enumerate(groups):
        a0, W = _site_stretch(grp, cand_seq, window)
        seed = cand_seq[grp.members[0][0]]
        rows = []
        for site in grp.sites:
            w, strand, ci = site[0], site[1], site[5]
            start, end = _stretch_of(site, a0, W)
            if start < 0 or end > lengths[w]:
                n_oob += 1
                ledger.add("instances", f"group of {seed}", f"window {w} at {start}..{end} "
                           f"({'+' if strand == 1 else '-'}) via {cand_seq[ci]}", "window_out_of_bounds",
                           f"the {W}-bp stretch runs past the window's {int(lengths[w])} bases")
                continue
            sq = seqs[w][start:end].upper()
            rows.append((w, start, end, "+" if strand == 1 else "-",
                         sq if strand == 1 else reverse_complement(sq), cand_seq[ci]))
        built.append((gi, rows, _counts_of([r[4] for r in rows], W)))
    summary += [("instances", sum(len(r) for _, r, _ in built), "instances kept (before the min_instances filter)"),
                ("instances_out_of_bounds", n_oob, "instances dropped: stretch runs off the window (ledger)")]

    # ---- min_instances, trimming
    kept = []
    n_small = 0
    for gi, rows, counts in built:
        seed = cand_seq[groups[gi].members[0][0]]
        if len(rows) < min_instances:
            n_small += 1
            ledger.add("groups", "merged groups", f"group of {seed}", "too_few_instances",
                       f"{len(rows)} instances < min_instances={min_instances}")
            for ci, _, _ in groups[gi].members:
                cands.at[ci, "group"] = "dropped"
            continue
        left, right = _trim_bounds(counts, trim_ic, pseudocount)
        trimmed = []
        for w, start, end, strand, s, ci in rows:
            if strand == "+":
                ns, ne = start + left, start + right
            else:
                ns, ne = end - right, end - left
            trimmed.append((w, ns, ne, strand, s[left:right], ci))
        kept.append((gi, seed, trimmed, counts[:, left:right]))
    summary.append(("groups_too_few_instances", n_small, f"groups dropped with < {min_instances} instances (ledger)"))

    # ---- table, sorted by the seed's enrichment
    recs = []
    for gi, seed, rows, counts in kept:
        members = [ci for ci, _, _ in groups[gi].members]
        s0 = members[0]
        win_any = np.unique(np.concatenate([cand_windows.get(ci, np.zeros(0, np.int64)) for ci in members]))
        recs.append(dict(gi=gi, seed=seed, rows=rows, counts=counts, members=members,
                         n_instances=len(rows), n_candidates=len(members), n_as=int(n_as[s0]),
                         n_other=int(n_other[s0]), pvalue=float(pval[s0]), qvalue=float(qval[s0]),
                         n_as_group=int(lab[win_any].sum()), n_other_group=int((~lab[win_any]).sum())))
    recs.sort(key=lambda r: (r["pvalue"], -r["n_instances"], r["seed"]))
    motifs, inst_rows = [], []
    for i, r in enumerate(recs, start=1):
        mid = f"denovo_{i}"
        r["motif_id"] = mid
        mot = Motif(mid, "", r["counts"])
        mot = Motif(mid, mot.consensus(), r["counts"])
        r["consensus"] = mot.name
        r["width"] = mot.width
        motifs.append(mot)
        for ci in r["members"]:
            cands.at[ci, "group"] = mid
        inst_rows += [(mid,) + row for row in r["rows"]]

    table = pd.DataFrame([{c: r.get(c) for c in _TABLE_COLUMNS} for r in recs], columns=_TABLE_COLUMNS)
    if jaspar is not None:
        jaspar = _as_motif_list(jaspar, "jaspar motif")
    elif motifs:
        jaspar = load_jaspar()
    if motifs and jaspar:
        mt = tomtom_matches(motifs, jaspar, pseudocount=pseudocount, n_jobs=n_jobs)
        table["jaspar_id"] = mt["jaspar_id"].to_numpy()
        table["jaspar_name"] = mt["jaspar_name"].to_numpy()
        table["tomtom_pvalue"] = mt["tomtom_pvalue"].to_numpy()
        table["tomtom_qvalue"] = mt["tomtom_qvalue"].to_numpy()
    else:
        table["tomtom_pvalue"] = np.nan
        table["tomtom_qvalue"] = np.nan
    table["known"] = (table["tomtom_qvalue"] < tomtom_alpha).to_numpy(dtype=bool)
    for c in ("width", "n_instances", "n_candidates", "n_as", "n_other", "n_as_group", "n_other_group"):
        table[c] = table[c].astype(np.int64)
    for c in ("pvalue", "qvalue", "tomtom_pvalue", "tomtom_qvalue"):
        table[c] = table[c].astype(np.float64)

    instances = pd.DataFrame(inst_rows, columns=_INSTANCE_COLUMNS)
    for c in ("window", "start", "end"):
        instances[c] = instances[c].astype(np.int64)
    summary += [("motifs", len(motifs), f"motifs with >= {min_instances} instances"),
                ("known", int(table["known"].sum()), f"motifs whose best TOMTOM match has q < {tomtom_alpha:g}")]
    return DeNovoResult(table=table, motifs=motifs, instances=instances, candidates=cands,
                        regions=reg.reset_index(drop=True),
                        summary=pd.DataFrame(summary, columns=["step", "n", "description"]),
                        ledger=ledger.table(), params=params)



# ---------------------------------------------------------------------------------------------------------------------
# the permutation control
# ---------------------------------------------------------------------------------------------------------------------
def permutation_control(sequences, scores, labels, *, n_permutations: int = 5, random_state: int = 0,
                        **find_kw) -> pd.DataFrame:
    """How many motifs :func:`find_motifs` reports when the labels carry no information.

    The k-mers are picked from the label-1 windows they are then tested on (as in DNABERT), so the enrichment
    p-values are optimistic. This control runs the same search ``n_permutations`` times with the labels shuffled
    across windows (same number of label-1 windows; sequences and scores untouched) and counts what passes: the
    motifs found with the real labels should clearly outnumber these. ``find_kw`` go to :func:`find_motifs`
    (use the same settings as the real run; TOMTOM is skipped unless ``jaspar`` is given).

    Returns one row per permutation: ``permutation``, ``n_enriched`` (k-mers with q < alpha), ``n_motifs``,
    ``n_known`` (with a JASPAR match; 0 without ``jaspar``). Deterministic for ``random_state``."""
    y = np.asarray(labels)
    rng = np.random.default_rng(random_state)
    find_kw.setdefault("jaspar", [])
    rows = []
    for i in range(int(n_permutations)):
        res = find_motifs(sequences, scores, rng.permutation(y), **find_kw)
        counts = res.summary.set_index("step")["n"]
        rows.append({"permutation": i, "n_enriched": int(counts["enriched"]), "n_motifs": len(res.table),
                     "n_known": int(res.table["known"].astype(bool).sum())})
    return pd.DataFrame(rows, columns=["permutation", "n_enriched", "n_motifs", "n_known"])
