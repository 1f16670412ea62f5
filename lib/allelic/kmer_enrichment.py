"""Steps 1 to 3 of the de novo motif search (:mod:`allelic.denovo`): high-score regions of per-base scores, k-mer
keys, and the hypergeometric enrichment of candidate k-mers in allele-specific windows.

* :func:`high_score_regions`: DNABERT's rule for the contiguous runs of high attention (or ISM) in a window.
* k-mer keys: every k-mer (``k <= MAX_KMER``) 2-bit coded in a uint64 (first base most significant, so numeric order
  is lexicographic order), with the code of its reverse complement; a k-mer and its reverse complement are one
  candidate, keyed by the smaller code (its *canonical* form). Windows containing a set of candidates are found by
  sorted search over these keys, in chunks of ``_CHUNK_POSITIONS`` k-mer positions.
* :func:`enrichment`: ``P(X >= n_as)`` for ``X ~ Hypergeometric`` (DNABERT's ``motifs_hypergeom_test``), with
  Benjamini-Hochberg q-values over all candidates.

Also the input checks that the de novo search shares (sequences as a list of str, score matrices, integer
parameters). :mod:`allelic.denovo` re-exports the public names.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .fdr import bh_fdr
from .motifs import ALPHABET, N_CODE, encode, reverse_complement
from .progress import bar as progress_bar

__all__ = ["MAX_KMER", "high_score_regions", "enrichment"]

#: Longest k-mer counted with 2-bit codes (a 31-mer fits a uint64 with room for a sentinel).
MAX_KMER = 31

_SENTINEL = np.uint64(np.iinfo(np.uint64).max)   # never a valid code of a k <= 31 k-mer
_CHUNK_POSITIONS = 1 << 22                          # k-mer positions hashed per chunk


# ---------------------------------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------------------------------
def _check_int(x, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    x = int(x)
    if x < lo or (hi is not None and x > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, got {x}")
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
    as_codes, _ = encode(as_seqs, what="AS window", ragged=True)
    other_codes, _ = encode(other_seqs, what="other window", ragged=True)
    n_as = _count_candidates(cands, as_codes, [s.upper() for s in as_seqs], both_strands, progress)
    n_other = _count_candidates(cands, other_codes, [s.upper() for s in other_seqs], both_strands, progress)
    p = _hypergeom_pvalue(n_as, n_other, len(as_seqs), len(other_seqs))
    return pd.DataFrame({"candidate": cands, "length": np.array([len(c) for c in cands], dtype=np.int64),
                         "n_as": n_as, "n_other": n_other, "pvalue": p,
                         "qvalue": bh_fdr(p) if len(cands) else np.zeros(0)})
