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
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .ledger import Ledger
from .motifs import ALPHABET, BAD_CODE, BASE_CODES, N_CODE, Motif, load_jaspar, reverse_complement
from .progress import bar as progress_bar
from .stats import bh_fdr

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

#: Longest k-mer counted with 2-bit codes (a 31-mer fits a uint64 with room for a sentinel).
MAX_KMER = 31



_SENTINEL = np.uint64(np.iinfo(np.uint64).max)   # never a valid code of a k <= 31 k-mer
_CHUNK_POSITIONS = 1 << 22                          # k-mer positions hashed per chunk


_TABLE_COLUMNS = ["motif_id", "consensus", "width", "n_instances", "n_candidates", "seed", "n_as", "n_other",
                  "pvalue", "qvalue", "n_as_group", "n_other_group", "jaspar_id", "jaspar_name", "tomtom_pvalue",
                  "tomtom_qvalue", "known"]
_INSTANCE_COLUMNS = ["motif_id", "window", "start", "end", "strand", "sequence", "candidate"]
_MATCH_COLUMNS = ["motif_id", "jaspar_id", "jaspar_name", "tomtom_pvalue", "tomtom_evalue", "tomtom_qvalue",
                  "offset", "overlap", "strand"]


# ---------------------------------------------------------------------------------------------------------------------
# validation and encoding
# ---------------------------------------------------------------------------------------------------------------------
def _check_int(x, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    x = int(x)
    if x < lo or (hi is not None and x > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, got {x}")
    return x


def _check_fraction(x, name: str) -> float:
    x = float(x)
    if not (0 < x <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {x}")
    return x


def _as_list_of_str(sequences, what: str) -> list[str]:
    if isinstance(sequences, (str, bytes)):
        raise TypeError(f"{what} must be a list of str (one per window), not a single {type(sequences).__name__}")
    if isinstance(sequences, pd.Series):
        sequences = sequences.to_list()
    seqs = list(sequences)
    for i, s in enumerate(seqs):
        if not isinstance(s, str):
            raise TypeError(f"{what} {i} is {type(s).__name__}, expected str")
    return seqs


def _encode(seqs: list[str], what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, lengths)``: ``codes`` (n, L_max) uint8 with A, C, G, T, N = 0..4 (windows shorter than ``L_max``
    padded with N); ``lengths`` (n,) int64. Raises ValueError naming the window and position of an invalid character."""
    n = len(seqs)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    L = int(lengths.max()) if n else 0
    codes = np.full((n, L), N_CODE, dtype=np.uint8)
    for i, s in enumerate(seqs):
        c = BASE_CODES[np.frombuffer(s.encode("ascii", errors="replace"), dtype=np.uint8)]
        if c.size and c.max() == BAD_CODE:
            p = int(np.argmax(c == BAD_CODE))
            raise ValueError(f"invalid character {s[p]!r} in {what} {i} at position {p} "
                             "(allowed: A, C, G, T, N, either case)")
        codes[i, : c.size] = c
    return codes, lengths


def _as_score_matrix(scores, what: str = "scores") -> np.ndarray:
    """float64 (n, L) copy of ``scores`` (an array, a 1-D vector for one window, or an object with ``.values`` such
    as :class:`allelic.attention.AttentionProfiles`). NaN allowed, infinities are not."""
    values = getattr(scores, "values", scores)
    a = np.array(values, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{what} must be a (windows, bases) matrix, got shape {a.shape}")
    inf = np.isinf(a)
    if inf.any():
        i, p = np.argwhere(inf)[0]
        raise ValueError(f"{what} of window {int(i)} is infinite at base {int(p)} (use NaN for unscored bases)")
    return a


def _as_labels(labels, n: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"labels must be a vector of one 0/1 label per window ({n}), got shape {lab.shape}")
    if lab.dtype == bool:
        return lab.copy()
    try:
        f = lab.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"labels must be 0 or 1, got dtype {lab.dtype}") from None
    bad = ~((f == 0) | (f == 1))
    if bad.any():
        i = int(np.argmax(bad))
        value = lab[i].item() if hasattr(lab[i], "item") else lab[i]
        raise ValueError(f"labels must be 0 or 1; window {i} has label {value!r}")
    return f == 1


# ---------------------------------------------------------------------------------------------------------------------
# step 1: regions
# ---------------------------------------------------------------------------------------------------------------------
def high_score_regions(scores, *, min_length: int = 5, min_ratio: float = 10.0) -> pd.DataFrame:
    """Contiguous high-score regions of each window (DNABERT's ``find_high_attention``).

    A base is *high* when its score is finite, above the window's mean score and above ``min_ratio`` times the
    window's minimum score (mean and minimum over the window's finite scores). Runs of at least ``min_length`` high
    bases are the regions.

    Parameters
    ----------
    scores
        ``(n_windows, length)`` float array of per-base scores (attention, ISM), or one ``(length,)`` vector (one
        window), or an object with ``.values`` (:class:`allelic.attention.AttentionProfiles`). NaN marks unscored
        bases: they never belong to a region and are ignored by the mean and minimum.
    min_length
        Shortest region, in bases (DNABERT: 5).
    min_ratio
        A high base's score must exceed ``min_ratio`` x the window's minimum (DNABERT: 10). The rule assumes
        non-negative scores; with a negative minimum it is weaker than the mean condition and has no effect.

    Returns
    -------
    DataFrame with int64 columns ``window`` (row of ``scores``), ``start``, ``end`` (0-based, end exclusive), one row
    per region, ordered by window then start. A window whose scores are all NaN has no region.
    """
    a = _as_score_matrix(scores)
    min_length = _check_int(min_length, "min_length", 1)
    min_ratio = float(min_ratio)
    if not np.isfinite(min_ratio):
        raise ValueError(f"min_ratio must be finite, got {min_ratio}")
    finite = np.isfinite(a)
    n_fin = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_fin > 0, np.where(finite, a, 0.0).sum(axis=1) / np.maximum(n_fin, 1), np.nan)
    mins = np.where(n_fin > 0, np.where(finite, a, np.inf).min(axis=1), np.nan)
    with np.errstate(invalid="ignore"):
        high = finite & (a > mean[:, None]) & (a > (min_ratio * mins)[:, None])
    n, L = high.shape
    padded = np.zeros((n, L + 2), dtype=np.int8)
    padded[:, 1:-1] = high
    d = np.diff(padded, axis=1)
    ws, starts = np.nonzero(d == 1)        # row-major: runs in order within each window
    _, ends = np.nonzero(d == -1)
    keep = (ends - starts) >= min_length
    return pd.DataFrame({"window": ws[keep].astype(np.int64), "start": starts[keep].astype(np.int64),
                         "end": ends[keep].astype(np.int64)})


# ---------------------------------------------------------------------------------------------------------------------
# k-mer codes
# ---------------------------------------------------------------------------------------------------------------------
def _kmer_codes(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-bit codes of every k-mer: ``(fwd, rc, valid)``, each ``(n, L-k+1)``.

    ``fwd`` is ``sum_j c[p+j] 4**(k-1-j)`` (first base most significant, so numeric order is lexicographic order);
    ``rc`` is the code of the k-mer's reverse complement, ``sum_j (3 - c[p+j]) 4**j``; ``valid`` is False for
    k-mers containing N (their codes are meaningless)."""
    n, L = codes.shape
    m = L - k + 1
    if m <= 0:
        e = np.zeros((n, 0), dtype=np.uint64)
        return e, e.copy(), np.zeros((n, 0), dtype=bool)
    isn = codes >= N_CODE
    cum = np.zeros((n, L + 1), dtype=np.int32)
    np.cumsum(isn, axis=1, out=cum[:, 1:])
    valid = (cum[:, k:] - cum[:, :m]) == 0
    c = np.where(isn, 0, codes).astype(np.uint64)
    fwd = np.zeros((n, m), dtype=np.uint64)
    rc = np.zeros((n, m), dtype=np.uint64)
    four, three = np.uint64(4), np.uint64(3)
    for j in range(k):
        col = c[:, j: j + m]
        fwd *= four
        fwd += col
        rc += (three - col) << np.uint64(2 * j)
    return fwd, rc, valid


def _encode_kmer(s: str) -> int:
    v = 0
    for ch in s:
        v = 4 * v + ALPHABET.index(ch)
    return v


def _decode_kmer(code: int, k: int) -> str:
    out = []
    code = int(code)
    for _ in range(k):
        out.append(ALPHABET[code & 3])
        code >>= 2
    return "".join(reversed(out))


def _window_keys(codes: np.ndarray, k: int, both_strands: bool) -> np.ndarray:
    """Per-position k-mer keys, canonical (min of both strands) or forward; invalid k-mers get the sentinel."""
    fwd, rc, valid = _kmer_codes(codes, k)
    key = np.minimum(fwd, rc) if both_strands else fwd
    key[~valid] = _SENTINEL
    return key


def _containing(cand_keys: np.ndarray, k: int, codes: np.ndarray, both_strands: bool, *,
                pairs: bool = False):
    """Windows (rows of ``codes``) that contain each candidate of length ``k``.

    ``cand_keys``: sorted unique uint64 keys (canonical codes if ``both_strands`` else forward codes). Returns the
    number of windows containing each candidate, ``(n_cand,)`` int64, and with ``pairs`` also the unique
    ``(candidate index, window)`` pairs as two int64 arrays."""
    n, L = codes.shape
    n_cand = cand_keys.size
    counts = np.zeros(n_cand, dtype=np.int64)
    out_c, out_w = [], []
    m = L - k + 1
    if n_cand == 0 or m <= 0 or n == 0:
        e = np.zeros(0, dtype=np.int64)
        return (counts, e, e.copy()) if pairs else counts
    step = max(1, _CHUNK_POSITIONS // m)
    for a in range(0, n, step):
        key = _window_keys(codes[a: a + step], k, both_strands)
        idx = np.searchsorted(cand_keys, key)
        np.minimum(idx, n_cand - 1, out=idx)
        hit = cand_keys[idx] == key
        w, _ = np.nonzero(hit)
        ci = idx[hit].astype(np.int64)
        u = np.unique(ci * n + (w + a))
        cu, wu = np.divmod(u, n)
        counts += np.bincount(cu, minlength=n_cand)
        if pairs:
            out_c.append(cu)
            out_w.append(wu)
    if pairs:
        return counts, np.concatenate(out_c), np.concatenate(out_w)
    return counts


# ---------------------------------------------------------------------------------------------------------------------
# step 3: enrichment
# ---------------------------------------------------------------------------------------------------------------------
def _hypergeom_pvalue(n_as: np.ndarray, n_other: np.ndarray, N_as: int, N_other: int) -> np.ndarray:
    """``P(X >= n_as)``, ``X ~ Hypergeom(M = N_as + N_other, K = n_as + n_other, draws = N_as)``."""
    n_as = np.asarray(n_as, dtype=np.int64)
    K = n_as + np.asarray(n_other, dtype=np.int64)
    p = sps.hypergeom.sf(n_as - 1, N_as + N_other, K, N_as)
    return np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)


def _clean_candidates(candidates, both_strands: bool) -> list[str]:
    if isinstance(candidates, str):
        candidates = [candidates]
    cands = _as_list_of_str(candidates, "candidate")
    seen: dict[str, int] = {}
    out = []
    for i, c in enumerate(cands):
        u = c.upper()
        if not u or set(u) - set(ALPHABET):
            raise ValueError(f"candidate {i} ({c!r}) must be a non-empty string of A, C, G, T")
        key = min(u, reverse_complement(u)) if both_strands else u
        if key in seen:
            j = seen[key]
            how = "the same as" if (u == cands[j].upper()) else "the reverse complement of"
            raise ValueError(f"candidate {i} ({c!r}) is {how} candidate {j} ({cands[j]!r}); with "
                             f"both_strands={both_strands} they are one test, give it once")
        seen[key] = i
        out.append(u)
    return out


def _count_candidates(cands: list[str], codes: np.ndarray, seqs_upper: list[str], both_strands: bool,
                      progress=None) -> np.ndarray:
    """Number of windows containing each candidate (exact match, either strand if ``both_strands``)."""
    counts = np.zeros(len(cands), dtype=np.int64)
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(cands):
        by_len.setdefault(len(c), []).append(i)
    for k in progress_bar(sorted(by_len), desc="counting k-mers", progress=progress):
        idx = np.array(by_len[k])
        if k <= MAX_KMER:
            keys = np.array([_encode_kmer(min(cands[i], reverse_complement(cands[i])) if both_strands
                                          else cands[i]) for i in idx], dtype=np.uint64)
            order = np.argsort(keys, kind="stable")
            counts[idx[order]] = _containing(keys[order], k, codes, both_strands)
        else:   # long candidates: plain substring search
            for i in idx:
                c = cands[i]
                rc = reverse_complement(c) if both_strands else c
                counts[i] = sum(1 for s in seqs_upper if c in s or rc in s)
    return counts


def enrichment(candidates: Sequence[str], as_sequences: Sequence[str], other_sequences: Sequence[str], *,
               both_strands: bool = True, progress=None) -> pd.DataFrame:
    """Hypergeometric enrichment of candidate motifs in allele-specific windows (DNABERT's
    ``motifs_hypergeom_test``).

    Parameters
    ----------
    candidates
        Candidate sequences (A, C, G, T; any case; any length). Each is one test: with ``both_strands`` a candidate
        and its reverse complement are the same test and may not both be given (ValueError), nor may duplicates.
    as_sequences, other_sequences
        Windows of the allele-specific (label 1) and other (label 0) sets: lists of str (A, C, G, T, N; any case;
        any lengths). ``N`` matches nothing.
    both_strands
        Count a window as containing a candidate when the candidate or its reverse complement occurs in it
        (exact substring, as DNABERT counts). Otherwise the forward strand only.

    Returns
    -------
    DataFrame, one row per candidate in the given order: ``candidate`` (upper case), ``length``, ``n_as`` /
    ``n_other`` (number of windows of each set containing it), ``pvalue`` = ``P(X >= n_as)`` for
    ``X ~ Hypergeometric(M = len(as) + len(other), K = n_as + n_other, N = len(as))`` (``scipy.stats.hypergeom.sf
    (n_as - 1, M, K, N)``), ``qvalue`` (Benjamini-Hochberg over all candidates, :func:`allelic.stats.bh_fdr`).
    """
    cands = _clean_candidates(candidates, both_strands)
    as_seqs = _as_list_of_str(as_sequences, "AS window")
    other_seqs = _as_list_of_str(other_sequences, "other window")
    if not as_seqs or not other_seqs:
        raise ValueError(f"enrichment needs windows of both sets; got {len(as_seqs)} AS and {len(other_seqs)} other")
    as_codes, _ = _encode(as_seqs, "AS window")
    other_codes, _ = _encode(other_seqs, "other window")
    n_as = _count_candidates(cands, as_codes, [s.upper() for s in as_seqs], both_strands, progress)
    n_other = _count_candidates(cands, other_codes, [s.upper() for s in other_seqs], both_strands, progress)
    p = _hypergeom_pvalue(n_as, n_other, len(as_seqs), len(other_seqs))
    return pd.DataFrame({"candidate": cands, "length": np.array([len(c) for c in cands], dtype=np.int64),
                         "n_as": n_as, "n_other": n_other, "pvalue": p,
                         "qvalue": bh_fdr(p) if len(cands) else np.zeros(0)})


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
# step 4: merging
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Group:
    """Enriched candidates on one coordinate frame: ``members`` are ``(candidate index, offset, orientation)``
    (the candidate, or its reverse complement for orientation -1, covers frame ``[offset, offset + k)``), most
    significant first; ``placed`` the sequence each member shows on the frame (kept up to date only while merging
    by sequence, :func:`_merge`); ``sites`` and ``weak`` filled by :func:`_place`."""

    members: list
    placed: list
    sites: list = field(default_factory=list)
    weak: list = field(default_factory=list)

    def span(self, cand_seq: list[str]) -> tuple[int, int]:
        """Frame interval ``[lo, hi)`` covered by the members."""
        return (min(off for _, off, _ in self.members),
                max(off + len(cand_seq[ci]) for ci, off, _ in self.members))


def _merge(order: list[int], seqs: list[str], min_length: int, min_overlap: int, progress=None) -> list[_Group]:
    """Greedy merge of candidates ``order`` (most significant first) into groups.

    A candidate of length ``k`` joins the earliest group with a member that shares an exact block of
    ``s = min(min_overlap, k)`` bases with it, on either strand (ties: earliest member, forward strand, leftmost
    block), placed where the block aligns; else it starts a group. The member must be at least ``s`` long, so a short
    member (a promiscuous 5-mer contained in two motifs) never bridges two motifs."""
    groups: list[_Group] = []
    index: dict[tuple[int, str], list[tuple[int, int, int]]] = {}   # (s, s-mer) -> [(group, member, position)]
    for ci in progress_bar(order, desc="merging candidates", progress=progress):
        c = seqs[ci]
        k = len(c)
        s = min(min_overlap, k)
        best = None   # ((group, member, orientation rank, pos in member, pos in oriented candidate), orientation)
        for orient_rank, (orient, oc) in enumerate(((1, c), (-1, reverse_complement(c)))):
            for q in range(k - s + 1):
                for g, mi, pm in index.get((s, oc[q: q + s]), ()):
                    key = (g, mi, orient_rank, pm, q)
                    if best is None or key < best[0]:
                        best = (key, orient)
        if best is None:
            g = len(groups)
            groups.append(_Group(members=[(ci, 0, 1)], placed=[c]))
            mi, placed = 0, c
        else:
            (g, mj, _, pm, q), orient = best
            _, off_j, _ = groups[g].members[mj]
            placed = c if orient == 1 else reverse_complement(c)
            groups[g].members.append((ci, off_j + pm - q, orient))
            groups[g].placed.append(placed)
            mi = len(groups[g].members) - 1
        for s2 in range(min_length, min(min_overlap, len(placed)) + 1):
            for p in range(len(placed) - s2 + 1):
                index.setdefault((s2, placed[p: p + s2]), []).append((g, mi, p))
    return groups


# ---------------------------------------------------------------------------------------------------------------------
# step 6: PWMs
# ---------------------------------------------------------------------------------------------------------------------
def _information_content(counts: np.ndarray, pseudocount: float) -> np.ndarray:
    p = Motif("_", "_", counts).probabilities(pseudocount)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=0)
    return 2.0 - h


def _counts_of(seqs: list[str], width: int) -> np.ndarray:
    counts = np.zeros((4, width))
    if not seqs:
        return counts
    codes, _ = _encode(seqs, "instance")
    for b in range(4):
        counts[b] = (codes == b).sum(axis=0)
    return counts


# ---------------------------------------------------------------------------------------------------------------------
# TOMTOM
# ---------------------------------------------------------------------------------------------------------------------
def _as_motif_list(motifs, what: str) -> list[Motif]:
    if isinstance(motifs, Motif):
        motifs = [motifs]
    out = list(motifs)
    for i, m in enumerate(out):
        if not isinstance(m, Motif):
            raise TypeError(f"{what} {i} is {type(m).__name__}, expected allelic.motifs.Motif")
    return out


def tomtom_matches(motifs, database=None, *, pseudocount: float = 0.8, n_jobs: int = -1) -> pd.DataFrame:
    """Best database match of each motif by TOMTOM (memelite's implementation, ``memelite.tomtom``).

    Parameters
    ----------
    motifs
        Query :class:`allelic.motifs.Motif` objects (or one).
    database
        Target motifs; default ``load_jaspar()`` (JASPAR CORE vertebrates, latest versions). TOMTOM's p-values use
        the target columns as background, so give a whole database (memelite warns below 25 targets).
    pseudocount
        Counts become letter probabilities with :meth:`Motif.probabilities` (``pseudocount``); TOMTOM compares
        probability columns (Euclidean distance), not counts.
    n_jobs
        Numba threads (-1: all).

    Returns
    -------
    DataFrame, one row per query in order: ``motif_id`` (query ``matrix_id``), ``jaspar_id``, ``jaspar_name``
    (target with the smallest p-value; ties go to the earlier target), ``tomtom_pvalue`` (best alignment over
    offsets and both strands, as memelite reports it), ``tomtom_evalue`` (p x number of targets), ``tomtom_qvalue``
    (Benjamini-Hochberg over that query's p-values against the whole database, as TOMTOM reports q-values),
    ``offset`` and ``overlap`` (memelite's alignment of the best match), ``strand`` (``"+"``, or ``"-"`` when the
    target's reverse complement matched).

    The first call in a fresh environment compiles memelite's numba kernels (about a minute on two cores; cached on
    disk afterwards).
    """
    queries = _as_motif_list(motifs, "motif")
    targets = load_jaspar() if database is None else _as_motif_list(database, "database motif")
    if not targets:
        raise ValueError("the database is empty")
    if not queries:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _MATCH_COLUMNS})
    from memelite import tomtom

    Q = [np.ascontiguousarray(m.probabilities(pseudocount), dtype=np.float64) for m in queries]
    T = [np.ascontiguousarray(m.probabilities(pseudocount), dtype=np.float64) for m in targets]
    p, _scores, offsets, overlaps, strands = tomtom(Q, T, reverse_complement=True, n_jobs=n_jobs)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    best = np.argmin(p, axis=1)            # first minimum: ties go to the earlier target
    rows = np.arange(len(queries))
    q = np.vstack([bh_fdr(p[i]) for i in rows])
    return pd.DataFrame({
        "motif_id": [m.matrix_id for m in queries],
        "jaspar_id": [targets[j].matrix_id for j in best],
        "jaspar_name": [targets[j].name for j in best],
        "tomtom_pvalue": p[rows, best],
        "tomtom_evalue": p[rows, best] * len(targets),
        "tomtom_qvalue": q[rows, best],
        "offset": offsets[rows, best].astype(np.int64),
        "overlap": overlaps[rows, best].astype(np.int64),
        "strand": np.where(strands[rows, best] > 0, "-", "+"),
    })


def _occurrences_by_candidate(occ, cand_keys, starts, enriched) -> dict:
    """Occurrences inside regions of each enriched candidate: ``{candidate index: (windows, positions,
    orientations)}``, sorted by window then position; orientation +1 when the window shows the canonical form."""
    out: dict[int, tuple] = {}
    for j, (_k, key, wins, pos, ori) in enumerate(occ):
        if not key.size:
            continue
        gidx = starts[j] + np.searchsorted(cand_keys[j], key)
        sel = enriched[gidx]
        if not sel.any():
            continue
        g, w, p, o = gidx[sel], wins[sel], pos[sel], ori[sel]
        srt = np.lexsort((p, w, g))
        g, w, p, o = g[srt], w[srt], p[srt], o[srt]
        cuts = np.flatnonzero(np.diff(g)) + 1
        for gs, ws, ps, os_ in zip(np.split(g, cuts), np.split(w, cuts), np.split(p, cuts), np.split(o, cuts)):
            out[int(gs[0])] = (ws.tolist(), ps.tolist(), os_.tolist())
    return out


def _place(grp: _Group, occ_by_cand: dict, cand_seq: list[str], min_support: int) -> tuple[int, int]:
    """Fill ``grp.sites`` with the group's sites (``(window, strand, t, core start, core end, candidate)``) and
    ``grp.weak`` with the placements too weakly backed to be sites; return ``(n_collapsed, n_weak)``: member
    occurrences absorbed into a site or weak placement beyond the first, and weak placements.

    An occurrence of a member at window position ``p`` says where the frame lies in the window: frame coordinate
    ``x`` is window position ``t + x`` (strand +1) or ``t - x`` (strand -1), with ``t = p - offset`` or
    ``p + k + offset`` (a palindromic member says both). A placement's *core* is the frame span ``[lo, hi)`` in
    window coordinates. In each window the placement backed by the most occurrences (ties: the most significant
    member, then strand +1, then leftmost) is taken and every occurrence whose core overlaps it is absorbed; repeated
    until none is left. Voting keeps a member seen in the "wrong" orientation (a near-palindrome) from misplacing a
    site. A placement becomes a site only when the members backing it cover at least ``min(min_support, span)``
    frame bases, so that a short k-mer shared with another motif does not make sites of this one in that motif's
    windows."""
    lo, hi = grp.span(cand_seq)
    need = min(min_support, hi - lo)
    per_window: dict[int, list] = {}
    occ_id = 0
    for rank, (ci, off, morient) in enumerate(grp.members):
        if ci not in occ_by_cand:
            continue
        c = cand_seq[ci]
        k = len(c)
        palindrome = c == reverse_complement(c)
        for w, p, o in zip(*occ_by_cand[ci]):
            strands = (1, -1) if palindrome else (morient * o,)
            opts = per_window.setdefault(w, [])
            for strand in strands:
                t = p - off if strand == 1 else p + k + off
                core = (t + lo, t + hi) if strand == 1 else (t - hi, t - lo)
                opts.append((strand, t, core, rank, ci, occ_id, off, off + k))
            occ_id += 1
    sites, weak = [], []
    for w in sorted(per_window):
        opts = per_window[w]
        while opts:
            support: dict[tuple[int, int], list] = {}
            for strand, t, core, rank, ci, _, f0, f1 in opts:
                sup = support.setdefault((strand, t), [0, rank, ci, core, set()])
                sup[0] += 1
                sup[4].update(range(f0, f1))
                if rank < sup[1]:
                    sup[1], sup[2] = rank, ci
            (strand, t), (_, _, ci, core, covered) = min(
                support.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0][0] != 1, kv[1][3][0]))
            if len(covered) >= need:
                sites.append((w, strand, t, core[0], core[1], ci))
            else:
                weak.append((w, strand, core[0], core[1], ci, len(covered)))
            gone = {x[5] for x in opts if x[2][0] < core[1] and core[0] < x[2][1]}
            opts = [x for x in opts if x[5] not in gone]
    grp.sites, grp.weak = sites, weak
    return occ_id - len(sites) - len(weak), len(weak)


def _relative_placement(a: _Group, b: _Group):
    """Sites of ``b`` lying on sites of ``a``: ``(n_shared, sigma, delta)``, where ``n_shared`` counts the sites of
    ``b`` whose core overlaps a core of ``a`` in the same window and ``x_a = delta + sigma * x_b`` is the most common
    placement of ``b``'s frame in ``a``'s among them; None when no site is shared."""
    by_window: dict[int, list] = {}
    for w, s, t, c0, c1, _ in a.sites:
        by_window.setdefault(w, []).append((s, t, c0, c1))
    votes: dict[tuple[int, int], int] = {}
    n_shared = 0
    for w, sb, tb, c0, c1, _ in b.sites:
        for sa, ta, d0, d1 in by_window.get(w, ()):
            if c0 < d1 and d0 < c1:
                key = (sa * sb, sa * (tb - ta))
                votes[key] = votes.get(key, 0) + 1
                n_shared += 1
                break
    if not votes:
        return None
    (sigma, delta), _ = min(votes.items(), key=lambda kv: (-kv[1], kv[0][0] != 1, abs(kv[0][1]), kv[0][1]))
    return n_shared, sigma, delta


def _site_stretch(grp: _Group, cand_seq: list[str], window: int) -> tuple[int, int]:
    """Frame interval ``[a0, a0 + W)`` taken around each site: ``W = max(window, span)``, centred on the span."""
    lo, hi = grp.span(cand_seq)
    W = max(window, hi - lo)
    return (lo + hi - W) // 2, W


def _stretch_of(site, a0: int, W: int) -> tuple[int, int]:
    """Window interval ``[start, end)`` of the frame stretch ``[a0, a0 + W)`` of one site."""
    _, strand, t, _, _, _ = site
    start = t + a0 if strand == 1 else t - a0 - W
    return start, start + W


def _site_matrix(grp: _Group, cand_seq: list[str], seqs: list[str], lengths: np.ndarray, window: int, trim_ic,
                 pseudocount):
    """``(probabilities (4, w), information content (w,), frame coordinate of column 0)`` of the group's sites
    (stretches of :func:`_site_stretch` that lie inside their windows), flanks below ``trim_ic`` bits trimmed; None
    when no stretch lies inside its window."""
    a0, W = _site_stretch(grp, cand_seq, window)
    rows = []
    for site in grp.sites:
        start, end = _stretch_of(site, a0, W)
        if start < 0 or end > lengths[site[0]]:
            continue
        sq = seqs[site[0]][start:end].upper()
        rows.append(sq if site[1] == 1 else reverse_complement(sq))
    if not rows:
        return None
    counts = _counts_of(rows, W)
    left, right = _trim_bounds(counts, trim_ic, pseudocount)
    counts = counts[:, left:right]
    return (Motif("_", "_", counts).probabilities(pseudocount), _information_content(counts, pseudocount),
            a0 + left)


def _trim_bounds(counts: np.ndarray, trim_ic, pseudocount) -> tuple[int, int]:
    """Columns ``[left, right)`` left after trimming flanks with information content below ``trim_ic`` bits (all of
    them when ``trim_ic`` is None or no column reaches it)."""
    if trim_ic is None:
        return 0, counts.shape[1]
    good = np.flatnonzero(_information_content(counts, pseudocount) >= trim_ic)
    if not good.size:
        return 0, counts.shape[1]
    return int(good[0]), int(good[-1]) + 1


def _column_correlations(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``A`` (4, wa) with every column of ``B`` (4, wb): ``(wa, wb)``, 0
    where a column is constant."""
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    na = np.sqrt((A * A).sum(axis=0))
    nb = np.sqrt((B * B).sum(axis=0))
    den = na[:, None] * nb[None, :]
    return np.where(den > 0, (A.T @ B) / np.where(den > 0, den, 1.0), 0.0)


def _best_alignment(ma, mb, min_overlap: int):
    """Best ungapped alignment of two group matrices (:func:`_site_matrix`), both strands:
    ``(similarity, sigma, delta)``. The similarity is the mean column Pearson correlation over the overlap, each
    column pair weighted by the geometric mean of the two columns' information content (so that uninformative
    columns of small groups count little); the overlap must have at least ``min(min_overlap, w_a, w_b)`` columns.
    Ties: larger overlap, same strand, smaller shift. ``x_a = delta + sigma * x_b`` maps frame coordinates of ``b``
    to ``a``'s; None when no alignment is long enough."""
    (PA, ia, xa0), (PB, ib, xb0) = ma, mb
    wa, wb = PA.shape[1], PB.shape[1]
    need = min(min_overlap, wa, wb)
    best = None
    for sigma, Q, iq in ((1, PB, ib), (-1, PB[::-1, ::-1], ib[::-1])):
        wt = np.sqrt(np.clip(ia, 1e-9, None)[:, None] * np.clip(iq, 1e-9, None)[None, :])
        rw = _column_correlations(PA, Q) * wt
        for shift in range(-(wb - 1), wa):      # Q column j faces A column j + shift
            i0, i1 = max(0, shift), min(wa, wb + shift)
            if i1 - i0 < need:
                continue
            sim = float(np.trace(rw, offset=-shift) / np.trace(wt, offset=-shift))
            key = (-sim, -(i1 - i0), sigma != 1, abs(shift))
            if best is None or key < best[0]:
                j0 = i0 - shift
                xa = xa0 + i0
                delta = xa - (xb0 + j0) if sigma == 1 else xa + (xb0 + wb - 1 - j0) + 1
                best = (key, sim, sigma, delta)
    return None if best is None else best[1:]


def _merge_groups(groups: list, occ_by_cand: dict, cand_seq: list[str], seqs: list[str], lengths: np.ndarray, *,
                  min_shared: float, min_similarity: float, min_overlap: int, window: int, trim_ic, pseudocount,
                  progress=None):
    """Merge groups that are one motif. Group ``b`` joins an earlier (more significant) group ``a`` when

    * at least ``min_shared`` of the smaller group's sites overlap sites of the other in the same windows (the two
      are pieces of one site, e.g. the two halves of a long motif), placed at their most common relative placement;
      or
    * their site matrices (``window``-wide stretches, trimmed) align, on either strand, with an information-weighted
      mean column Pearson correlation of at least ``min_similarity`` (:func:`_best_alignment`; variants of one motif
      in different windows, e.g. ``AGATTAG`` / ``AGATAAG``), placed by that alignment.

    ``b``'s members move into ``a``'s frame and ``a``'s sites are re-voted; passes repeat until nothing merges.
    Returns ``(groups, n_by_sites, n_by_similarity, n_collapsed, n_weak)`` (see :func:`_place`)."""
    for g in groups:
        _place(g, occ_by_cand, cand_seq, min_overlap)
    mats: dict[int, object] = {}

    def matrix(i):
        if i not in mats:
            mats[i] = _site_matrix(groups[i], cand_seq, seqs, lengths, window, trim_ic, pseudocount)
        return mats[i]

    alive = list(range(len(groups)))
    n_sites = n_sim = 0
    changed = True
    while changed:
        changed = False
        for j in progress_bar(list(alive), desc="merging groups", progress=progress):
            if j not in alive:
                continue
            for i in alive:
                if i >= j:
                    break
                a, b = groups[i], groups[j]
                small = min(len(a.sites), len(b.sites))
                rel = _relative_placement(a, b) if small else None
                if rel is not None and rel[0] >= min_shared * small:
                    _, sigma, delta = rel
                    n_sites += 1
                else:
                    ma, mb = matrix(i), matrix(j)
                    al = _best_alignment(ma, mb, min_overlap) if ma is not None and mb is not None else None
                    if al is None or al[0] < min_similarity:
                        continue
                    _, sigma, delta = al
                    n_sim += 1
                for ci, off, mo in b.members:
                    k = len(cand_seq[ci])
                    a.members.append((ci, delta + off, mo) if sigma == 1 else (ci, delta - off - k, -mo))
                _place(a, occ_by_cand, cand_seq, min_overlap)
                mats.pop(i, None)
                alive.remove(j)
                changed = True
                break
    out = [groups[i] for i in alive]
    placed = [_place(g, occ_by_cand, cand_seq, min_overlap) for g in out]
    return out, n_sites, n_sim, sum(p[0] for p in placed), sum(p[1] for p in placed)


# ---------------------------------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------------------------------
def _validate_inputs(sequences, scores, labels):
    seqs = _as_list_of_str(sequences, "window")
    n = len(seqs)
    if n == 0:
        raise ValueError("no windows given")
    codes, lengths = _encode(seqs, "window")
    a = _as_score_matrix(scores)
    if a.shape[0] != n:
        raise ValueError(f"scores has {a.shape[0]} rows but there are {n} sequences (one row per window)")
    short = lengths > a.shape[1]
    if short.any():
        i = int(np.argmax(short))
        raise ValueError(f"window {i} has {int(lengths[i])} bases but scores has only {a.shape[1]} columns")
    lab = _as_labels(labels, n)
    if not lab.any():
        raise ValueError("no window has label 1 (allele-specific); de novo motifs need label-1 windows")
    if lab.all():
        raise ValueError("every window has label 1; the enrichment test needs label-0 windows too")
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
# MEME minimal format
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


def write_meme(motifs, path, *, background=(0.25, 0.25, 0.25, 0.25), pseudocount: float = 0.0) -> Path:
    """Write motifs as a MEME minimal-format text file (readable by the MEME suite, memelite and :func:`read_meme`).

    Each motif is written as ``MOTIF <matrix_id> <name>`` and a ``letter-probability matrix: alength= 4 w= <w>
    nsites= <N> E= 0`` block of ``w`` rows (positions) x 4 columns (A, C, G, T), probabilities
    ``Motif.probabilities(pseudocount)`` to 6 decimals; ``N`` is the largest column total, rounded (at least 1).
    ``background``: the letter frequencies written in the header (A, C, G, T). Returns the path.

    Raises ValueError for an empty id, or an id or name with whitespace (MEME splits the MOTIF line on it).
    """
    ms = _as_motif_list(motifs, "motif")
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or np.any(bg <= 0) or abs(bg.sum() - 1) > 1e-6:
        raise ValueError(f"background must be 4 positive frequencies (A, C, G, T) summing to 1, got {bg.tolist()}")
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", " ".join(f"{b} {f:.6f}" for b, f in zip(ALPHABET, bg)), ""]
    for i, m in enumerate(ms):
        if not m.matrix_id or re.search(r"\s", m.matrix_id) or re.search(r"\s", m.name):
            raise ValueError(f"motif {i}: matrix_id {m.matrix_id!r} must be non-empty and, like name {m.name!r}, "
                             "free of whitespace")
        nsites = max(1, int(round(float(m.counts.sum(axis=0).max()))))
        prob = m.probabilities(pseudocount)
        lines.append(f"MOTIF {m.matrix_id} {m.name}".rstrip())
        lines.append(f"letter-probability matrix: alength= 4 w= {m.width} nsites= {nsites} E= 0")
        lines += [" ".join(f"{x:.6f}" for x in col) for col in prob.T]
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


_HEADER_FIELD = re.compile(r"(\w+)\s*=\s*(\S+)")


def read_meme(path) -> list[Motif]:
    """Motifs from a MEME (minimal or full) text file, in file order.

    Each ``MOTIF <id> [<name>]`` line starts a motif; its ``letter-probability matrix:`` line gives ``w`` (and
    ``nsites``, ``alength``), followed by ``w`` rows of 4 probabilities (A, C, G, T). Counts are
    ``probabilities x nsites`` (``nsites`` 1 when absent or 0), so a file written by :func:`write_meme` from
    integer counts with equal column totals reads back the same counts (to 6 decimals x nsites).

    Raises
    ------
    ValueError
        Naming the file and line: an alphabet other than ACGT, ``alength`` != 4, a row without 4 numbers, a row not
        summing to 1 (+-0.01), a matrix with fewer rows than ``w``, a matrix without a MOTIF line.
    """
    path = Path(path)
    motifs: list[Motif] = []
    cur = None   # the motif being read: dict(id, name, w, nsites, rows, line)
    lines = path.read_text().splitlines()

    def close(lineno):
        """Check the motif being read is complete and store it."""
        if cur is None:
            return
        if cur["w"] is None:
            raise ValueError(f"{path}:{cur['line']}: motif {cur['id']!r} has no letter-probability matrix")
        if len(cur["rows"]) < cur["w"]:
            raise ValueError(f"{path}:{lineno}: motif {cur['id']!r} has {len(cur['rows'])} rows, "
                             f"its header says w= {cur['w']}")
        probs = np.array(cur["rows"], dtype=np.float64).reshape(cur["w"], 4).T
        motifs.append(Motif(cur["id"], cur["name"], probs * cur["nsites"]))

    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        reading = cur is not None and cur["w"] is not None and len(cur["rows"]) < cur["w"]
        if line.startswith("ALPHABET"):
            alph = line.split("=", 1)[1].strip() if "=" in line else ""
            if alph.split()[0:1] != ["ACGT"]:
                raise ValueError(f"{path}:{lineno}: alphabet {alph!r} is not supported (only ACGT)")
        elif line.startswith("MOTIF"):
            close(lineno)
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: MOTIF line without an identifier")
            cur = dict(id=parts[1], name=" ".join(parts[2:]), w=None, nsites=1.0, rows=[], line=lineno)
        elif line.startswith("letter-probability matrix"):
            if cur is None:
                raise ValueError(f"{path}:{lineno}: letter-probability matrix before any MOTIF line")
            fields = dict(_HEADER_FIELD.findall(line.split(":", 1)[1] if ":" in line else ""))
            if "w" not in fields:
                raise ValueError(f"{path}:{lineno}: letter-probability matrix line without w=")
            if int(float(fields.get("alength", 4))) != 4:
                raise ValueError(f"{path}:{lineno}: alength= {fields['alength']} (only 4, ACGT, is supported)")
            cur["w"] = int(float(fields["w"]))
            ns = float(fields.get("nsites", 1))
            cur["nsites"] = ns if ns > 0 else 1.0
            cur["rows"] = []
        elif reading and line:
            try:
                row = [float(x) for x in line.split()]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: motif {cur['id']!r} has {len(cur['rows'])} rows, its header "
                                 f"says w= {cur['w']} (then {raw.strip()!r})") from None
            if len(row) != 4:
                raise ValueError(f"{path}:{lineno}: motif {cur['id']!r}: expected a row of 4 probabilities "
                                 f"(A, C, G, T), got {raw!r}")
            if not all(math.isfinite(x) and x >= 0 for x in row) or abs(sum(row) - 1) > 0.01:
                raise ValueError(f"{path}:{lineno}: motif {cur['id']!r}: probabilities {row} must be >= 0 and "
                                 "sum to 1")
            cur["rows"].append(row)
    close(len(lines))
    return motifs

