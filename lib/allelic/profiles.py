"""Motif profiles along windows: where a motif occurs, how much more often in label-1 windows, and whether another
per-base profile (attention, ISM) follows it; and the one check of 0/1 window labels.

Chapter 06 (paper figure 9C) compares, position by position along the window, allele-specific windows (label 1)
with the others (label 0): :func:`occurrence` marks the bases a motif covers (scanned with :mod:`allelic.pwm`),
:func:`enrichment_profile` tests each position for enrichment in label-1 windows and :func:`profile_correlation`
correlates two profiles with a circular-shift null. :func:`check_binary_labels` is the validator of 0/1 labels that
these comparisons share (also :func:`allelic.attention.profile_by_label` and :func:`allelic.denovo.find_motifs`).
:mod:`allelic.motifs` re-exports every public name here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st
from scipy.stats import rankdata

from .fdr import bh_fdr
from .motifs import _UNIFORM, _as_background
from .pwm import PwmLike, SeqsLike, _as_pwm, _prepare, _scan_chunks, score_threshold

__all__ = ["check_binary_labels", "occurrence", "enrichment_profile", "ProfileCorrelation", "profile_correlation"]


# --------------------------------------------------------------------------- labels
def check_binary_labels(labels, n: int, *, what: str = "window", require_both: bool = False) -> np.ndarray:
    """One 0/1 label per ``what`` (a window by default), checked: a new ``(n,)`` bool array, True for label 1.

    ``labels``: booleans, or numbers equal to 0 or 1 (ints, floats ``0.0``/``1.0``, Python objects of either), in
    anything :func:`numpy.asarray` takes (list, array, pandas Series). With ``require_both``, at least one ``what`` of
    each label is needed (the comparisons of label-1 with label-0 windows: :func:`enrichment_profile`,
    :func:`allelic.attention.profile_by_label`, :func:`allelic.denovo.find_motifs`).

    Raises
    ------
    ValueError
        Labels of another shape than ``(n,)``; a label other than 0/1, naming the first (its index and value);
        labels that are not numbers or booleans (strings); with ``require_both``, no label-1 or no label-0 ``what``.
    """
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must be a vector of one 0/1 label per {what} ({n}), got shape {y.shape}")
    if y.dtype == bool:
        out = y.copy()
    else:
        f = None
        if y.dtype.kind in "iufO":                    # numbers, or Python objects that may be numbers
            try:
                f = y.astype(np.float64)
            except (TypeError, ValueError):
                pass
        if f is None:
            raise ValueError(f"labels must be 0 or 1 (numbers or booleans), got dtype {y.dtype}")
        bad = ~((f == 0) | (f == 1))
        if bad.any():
            i = int(np.argmax(bad))
            value = y[i].item() if hasattr(y[i], "item") else y[i]
            raise ValueError(f"labels must be 0 or 1; {what} {i} has label {value!r}")
        out = f == 1
    if require_both:
        n1 = int(out.sum())
        if n1 == 0 or n1 == n:
            missing, present = (1, 0) if n1 == 0 else (0, 1)
            raise ValueError(f"no {what} has label {missing} ({n} {what}s, all of label {present}); this needs "
                             f"label-{missing} {what}s too: {what}s of both labels")
    return out


# --------------------------------------------------------------------------- profiles along windows
def occurrence(
    seqs: SeqsLike,
    motif_or_pwm: PwmLike,
    *,
    pvalue: float = 1e-4,
    both_strands: bool = True,
    pseudocount: float = 0.8,
    background=_UNIFORM,
) -> np.ndarray:
    """Where a motif occurs along each window: ``(n, L)`` bool, True at every base covered by a hit.

    A hit is a motif-wide window whose score (either strand with ``both_strands``) reaches
    :func:`allelic.pwm.score_threshold` at ``pvalue`` (exact, for the same ``background``); the ``w`` bases it spans are
    marked. Windows are scanned in chunks (:func:`allelic.pwm.scan`'s engine), so memory is the ``(n, L)`` result plus
    one chunk. This is the per-window input of :func:`enrichment_profile`.
    """
    bg = _as_background(background)
    pwm = _as_pwm(motif_or_pwm, pseudocount, bg)
    thr = score_threshold(pwm, pvalue, background=bg)
    prepared = _prepare(seqs)
    n, L, _ = prepared
    w = pwm.shape[1]
    out = np.zeros((n, L), dtype=bool)
    for a, b, s in _scan_chunks(prepared, pwm, both_strands):
        start = (s >= thr - 1e-9).any(axis=2)                    # (m, L-w+1) hit starts
        # a base is covered when a hit starts in [p-w+1, p]: a running sum over the starts
        c = np.zeros((b - a, L + 1), dtype=np.int32)
        np.cumsum(start, axis=1, out=c[:, 1 : L - w + 2])
        c[:, L - w + 2 :] = c[:, L - w + 1 : L - w + 2]
        lo = np.clip(np.arange(L) - w + 1, 0, None)
        out[a:b] = (c[:, np.arange(L) + 1] - c[:, lo]) > 0
    return out


def enrichment_profile(hits, labels, *, alternative: str = "greater") -> pd.DataFrame:
    """Per position, how much more often a motif covers the base in label-1 (AS) windows than in the others.

    ``hits``: ``(n, L)`` bool (:func:`occurrence`); ``labels``: ``n`` values 0/1 or booleans. For each position,
    ``k`` of the ``n_1`` AS windows and ``K`` of all ``n`` windows have a hit there; under no enrichment ``k`` is
    hypergeometric (``n`` windows, ``K`` with a hit, ``n_1`` drawn), which is Fisher's exact test of the 2 x 2
    table. ``alternative``: ``"greater"`` (enriched in AS, ``P(X >= k)``), ``"less"`` (``P(X <= k)``) or
    ``"two-sided"`` (Fisher's, as :func:`scipy.stats.fisher_exact`). q-values: Benjamini-Hochberg over positions.

    Returns one row per position: ``position`` (0-based), ``frac_as``, ``frac_other`` (fraction of windows of each
    label with a hit), ``difference`` (``frac_as - frac_other``), ``log2_ratio``
    (``log2((k + 0.5) / (n_1 + 1)) - log2((K - k + 0.5) / (n_0 + 1))``), ``pvalue``, ``qvalue``;
    ``.attrs["n_as"]`` / ``["n_other"]`` hold the window counts. Raises ValueError for mismatched shapes, labels
    other than 0/1, or a label without windows."""
    h = np.asarray(hits)
    if h.ndim != 2:
        raise ValueError(f"hits must be (windows, positions), got shape {h.shape}")
    h = h.astype(bool)
    y = check_binary_labels(labels, h.shape[0], require_both=True)
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    n1, n0 = int(y.sum()), int((~y).sum())
    k = h[y].sum(axis=0)
    K = h.sum(axis=0)
    M = n1 + n0
    if alternative == "greater":
        p = st.hypergeom.sf(k - 1, M, K, n1)
    elif alternative == "less":
        p = st.hypergeom.cdf(k, M, K, n1)
    else:
        p = np.array([st.fisher_exact([[a, n1 - a], [b - a, n0 - b + a]])[1] for a, b in zip(k, K)])
    p = np.clip(p, 0.0, 1.0)
    df = pd.DataFrame({
        "position": np.arange(h.shape[1]),
        "frac_as": k / n1,
        "frac_other": (K - k) / n0,
    })
    df["difference"] = df["frac_as"] - df["frac_other"]
    df["log2_ratio"] = np.log2((k + 0.5) / (n1 + 1)) - np.log2((K - k + 0.5) / (n0 + 1))
    df["pvalue"] = p
    df["qvalue"] = bh_fdr(p)
    df.attrs.update(n_as=n1, n_other=n0)
    return df


@dataclass(frozen=True)
class ProfileCorrelation:
    """Correlation of two profiles along the window and its circular-shift permutation p-value.

    ``r``: Pearson (or Spearman) correlation; ``pvalue``: two-sided, ``(1 + #{|r_s| >= |r|}) / (1 + n_shifts)``
    over the ``n_shifts`` non-zero circular shifts of one profile; ``n_positions``: positions used (both finite)."""

    r: float
    pvalue: float
    n_shifts: int
    n_positions: int
    method: str


def profile_correlation(x, y, *, method: str = "pearson") -> ProfileCorrelation:
    """Does profile ``x`` (e.g. mean attention per base) follow profile ``y`` (e.g. a motif's enrichment)?

    The statistic is the correlation across positions. Neighbouring positions of both profiles are strongly
    correlated (a motif hit spans ``w`` bases, a token several), so shuffling positions would give far too small
    p-values; the null distribution here is exact over every non-zero circular shift of ``x`` against ``y``
    (which keeps each profile's own smoothness and only breaks their alignment). The smallest attainable
    p-value is ``1 / L`` for ``L`` positions. Positions where either profile is NaN are left out before
    shifting. ``method``: ``"pearson"`` or ``"spearman"`` (ranks, then Pearson)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"profiles must have the same length, got {a.size} and {b.size}")
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    L = a.size
    if L < 3 or a.std() == 0 or b.std() == 0:
        raise ValueError(f"need at least 3 positions with varying values in both profiles (have {L})")
    if method == "spearman":
        a, b = rankdata(a), rankdata(b)
    za = (a - a.mean()) / a.std()
    zb = (b - b.mean()) / b.std()
    # r for every circular shift at once: shift s pairs za[i - s] with zb[i]
    rs = np.array([np.dot(np.roll(za, s), zb) for s in range(L)]) / L
    r = float(rs[0])
    n_ge = int(np.sum(np.abs(rs[1:]) >= abs(r) - 1e-12))
    return ProfileCorrelation(r=r, pvalue=(1 + n_ge) / L, n_shifts=L - 1, n_positions=L, method=method)
