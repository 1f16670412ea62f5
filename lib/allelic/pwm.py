"""PWM scanning: log2-odds window scores of whole sequences, many motifs at once, score thresholds and p-values.

The one place in the library where PWM scores are computed. Conventions (see :mod:`allelic.motifs` for the alphabet
and the count matrices):

* A *PWM* here always means a ``(4, w)`` array of **log2-odds** scores, ``log2(p_motif / p_background)``, in bits,
  rows A, C, G, T (:meth:`allelic.motifs.Motif.log_odds`).
* A window's score is the sum of the PWM entries of its bases, in bits. An ``N``
  contributes 0 (it is scored as "no information", not as a mismatch).
* The reverse strand of a window starting at ``l`` is scored with the
  reverse-complement PWM ``pwm[::-1, ::-1]`` at the same start ``l``; that is
  the score of the motif read on the minus strand over the same ``w`` bases.

Scans are vectorised: sequences are coded as integers (A, C, G, T, N = 0..4),
``k`` consecutive codes (``k <= 5``) are folded into one base-5 code per
position, and each block of ``k`` motif columns is scored with one table
lookup (``np.take``) per window. Work is done in chunks of sequences so that
memory besides the output stays near ``_CHUNK_POSITIONS`` positions.

:func:`scan` (tested against memelite's FIMO) is the reference, :class:`PwmBank` the same scores for hundreds of
motifs at once with torch (tested against :func:`scan`); the baselines' features, the simulator's planted-site scores
and chapter 06's motif profiles (:mod:`allelic.profiles`) all go through them. :mod:`allelic.motifs` re-exports
every public name here.
"""
from __future__ import annotations

import contextlib
from typing import Sequence, Union

import numpy as np
import pandas as pd

from .motifs import _UNIFORM, N_CODE, Motif, _as_background, encode

__all__ = ["scan", "max_score", "score_threshold", "score_pvalue", "snv_score_change", "PwmBank", "exact_fp32"]

_MAX_K = 5           # at most 5 bases per lookup: 5**5 = 3125-entry tables
_CHUNK_POSITIONS = 1 << 20   # sequence positions scored per chunk

PwmLike = Union[Motif, np.ndarray]
SeqsLike = Union[str, Sequence[str], np.ndarray]


# --------------------------------------------------------------------------- PWMs
def _as_pwm(motif_or_pwm, pseudocount: float = 0.8, background=_UNIFORM) -> np.ndarray:
    """A ``(4, w)`` float64 log2-odds matrix from a :class:`Motif` or an array.

    A Motif is converted with :meth:`Motif.log_odds` (``pseudocount``, ``background``);
    an array is used as given (it must already be log2-odds, rows A, C, G, T).
    """
    if isinstance(motif_or_pwm, Motif):
        pwm = motif_or_pwm.log_odds(pseudocount=pseudocount, background=background)
    else:
        pwm = np.asarray(motif_or_pwm, dtype=np.float64)
        if pwm.ndim != 2 or pwm.shape[0] != 4:
            raise ValueError(
                f"a PWM must be a (4, w) array with rows A, C, G, T; got shape {pwm.shape}"
            )
    if pwm.shape[1] < 1:
        raise ValueError("a PWM must have at least one column")
    if not np.all(np.isfinite(pwm)):
        raise ValueError(
            "PWM contains non-finite values (a zero count with pseudocount=0?); "
            "use a pseudocount > 0"
        )
    return pwm



# --------------------------------------------------------------------------- scanning
def _block_tables(pwm: np.ndarray, k: int) -> np.ndarray:
    """Lookup tables ``(n_blocks, 5**k)``: entry ``[b, c]`` is the summed PWM score of
    the ``k`` bases with base-5 code ``c`` (first base most significant, N = 4 scores 0)
    placed at motif columns ``b*k .. b*k+k-1`` (columns past ``w`` score 0)."""
    w = pwm.shape[1]
    nb = -(-w // k)
    ext = np.zeros((5, nb * k))
    ext[:4, :w] = pwm
    digits = (np.arange(5**k)[:, None] // 5 ** np.arange(k - 1, -1, -1)) % 5   # (5**k, k)
    cols = np.arange(k)
    return np.stack([ext[digits, b * k + cols].sum(axis=1) for b in range(nb)])


class _Scorer:
    """Scores code chunks (and dense one-hot chunks) against one PWM, optionally both strands."""

    def __init__(self, pwm: np.ndarray, both_strands: bool):
        self.pwm = pwm
        self.w = pwm.shape[1]
        self.k = min(_MAX_K, self.w)
        self.pwms = [pwm, pwm[::-1, ::-1]] if both_strands else [pwm]
        self.tables = [_block_tables(p, self.k) for p in self.pwms]

    def codes(self, codes: np.ndarray, out: np.ndarray) -> None:
        """``codes`` (m, L) uint8 -> ``out`` (m, L-w+1, n_strands) float64."""
        m, L = codes.shape
        k, w = self.k, self.w
        nb = self.tables[0].shape[0]
        pad = nb * k - w
        if pad:
            codes = np.concatenate([codes, np.full((m, pad), N_CODE, np.uint8)], axis=1)
        Lk = L + pad - k + 1                         # positions with a full k-mer
        kmer = codes[:, :Lk].astype(np.uint16)
        for i in range(1, k):
            kmer *= 5
            kmer += codes[:, i : i + Lk]
        Lw = L - w + 1
        tmp = np.empty((m, Lw))
        for s, tab in enumerate(self.tables):
            acc = np.take(tab[0], kmer[:, :Lw])
            for b in range(1, nb):
                np.take(tab[b], kmer[:, b * k : b * k + Lw], out=tmp)
                acc += tmp
            out[:, :, s] = acc

    def dense(self, X: np.ndarray, out: np.ndarray) -> None:
        """Soft one-hot ``X`` (m, L, 4) -> ``out`` (m, L-w+1, n_strands):
        ``sum_j X[l+j] . pwm[:, j]``."""
        w = self.w
        Lw = X.shape[1] - w + 1
        for s, p in enumerate(self.pwms):
            acc = X[:, 0:Lw] @ p[:, 0]               # (m, Lw)
            for j in range(1, w):
                acc += X[:, j : j + Lw] @ p[:, j]
            out[:, :, s] = acc


def _prepare(seqs):
    """Normalise ``seqs`` to ``(n, L, chunk)``, ``chunk(a, b)`` giving
    ``("codes", (b-a, L) uint8)`` or ``("dense", (b-a, L, 4) float64)``."""
    if isinstance(seqs, np.ndarray) and seqs.dtype.kind in "biuf":
        X = seqs
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[2] != 4:
            raise ValueError(
                f"a one-hot array must have shape (n, L, 4) or (L, 4), got {seqs.shape}"
            )
        if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
            raise ValueError("one-hot array contains non-finite values")

        # columns: base index (0..3) and row total, both exact for 0/1 entries
        weights = np.array([[0, 1], [1, 1], [2, 1], [3, 1]], dtype=np.float32)

        def chunk(a, b):
            x = X[a:b]
            if x.dtype == np.bool_:
                x = x.view(np.uint8)
            if np.all((x == 0) | (x == 1)):
                idx_tot = (x if x.dtype == np.float32 else x.astype(np.float32)) @ weights
                tot = idx_tot[:, :, 1]
                if np.all(tot <= 1):
                    return "codes", np.where(tot == 0, N_CODE, idx_tot[:, :, 0]).astype(np.uint8)
            return "dense", x.astype(np.float64)

        return X.shape[0], X.shape[1], chunk
    codes, _ = encode(seqs)
    return codes.shape[0], codes.shape[1], lambda a, b: ("codes", codes[a:b])


def _scan_chunks(prepared, pwm: np.ndarray, both_strands: bool, out: np.ndarray | None = None):
    """Yield ``(a, b, scores)`` with ``scores`` (b-a, L-w+1, n_strands) float64
    for ``prepared = _prepare(seqs)``; written into ``out[a:b]`` when ``out`` is given."""
    n, L, chunk = prepared
    w = pwm.shape[1]
    if n and L < w:
        raise ValueError(f"sequences of length {L} are shorter than the motif (width {w})")
    scorer = _Scorer(pwm, both_strands)
    step = max(1, _CHUNK_POSITIONS // max(L, 1))
    ns = len(scorer.pwms)
    for a in range(0, n, step):
        b = min(n, a + step)
        kind, data = chunk(a, b)
        res = np.empty((b - a, L - w + 1, ns)) if out is None else out[a:b]
        getattr(scorer, kind)(data, res)
        yield a, b, res


def scan(
    seqs: SeqsLike,
    motif_or_pwm: PwmLike,
    *,
    both_strands: bool = True,
    pseudocount: float = 0.8,
    background=_UNIFORM,
) -> np.ndarray:
    """Log2-odds score of every window of every sequence.

    Parameters
    ----------
    seqs
        One ``str``, a list of ``n`` equal-length strings, or a one-hot array
        ``(n, L, 4)`` / ``(L, 4)`` (rows A, C, G, T; all-zero rows are N). A non-binary
        ("soft") array is scored as the dot product ``sum_j X[l+j] . pwm[:, j]``.
    motif_or_pwm
        A :class:`Motif` (converted with ``log_odds(pseudocount, background)``) or a
        ``(4, w)`` log2-odds array used as is.
    both_strands
        Also score the reverse-complement motif.

    Returns
    -------
    float64 array in bits, ``(n, L-w+1)`` if not ``both_strands``, else
    ``(n, L-w+1, 2)`` with ``[..., 0]`` the forward and ``[..., 1]`` the reverse strand
    (reverse-complement PWM at the same window start). The ``n`` axis is kept for a
    single sequence (``n == 1``). ``N`` positions contribute 0.

    Raises
    ------
    ValueError
        Invalid characters / unequal lengths (see :func:`one_hot`), sequences shorter
        than the motif, a malformed PWM.
    """
    pwm = _as_pwm(motif_or_pwm, pseudocount, background)
    prepared = _prepare(seqs)
    n, L, _ = prepared
    ns = 2 if both_strands else 1
    out = np.empty((n, max(L - pwm.shape[1] + 1, 0), ns))
    for _ in _scan_chunks(prepared, pwm, both_strands, out):
        pass
    return out if both_strands else out[:, :, 0]


def max_score(
    seqs: SeqsLike, motif_or_pwm: PwmLike, *, both_strands: bool = True, **kw
) -> np.ndarray:
    """Best window score per sequence, ``(n,)`` float64 in bits (max over windows and,
    with ``both_strands``, strands). Keywords ``pseudocount``/``background`` go to
    :func:`scan`. Memory stays bounded (chunked), unlike ``scan(...).max(...)``."""
    unknown = set(kw) - {"pseudocount", "background"}
    if unknown:
        raise TypeError(f"max_score got unexpected keyword(s) {sorted(unknown)}")
    return _best(_prepare(seqs), _as_pwm(motif_or_pwm, **kw), both_strands)


def _best(prepared, pwm: np.ndarray, both_strands: bool) -> np.ndarray:
    """``(n,)`` max over windows and strands, chunk by chunk."""
    out = np.empty(prepared[0])
    for a, b, s in _scan_chunks(prepared, pwm, both_strands):
        out[a:b] = s.max(axis=(1, 2))
    return out


# --------------------------------------------------------------------------- many motifs at once (torch)
class PwmBank:
    """Many PWMs scanned at once: the same window scores as :func:`scan`, computed as one
    ``torch.nn.functional.conv1d`` per motif width over one-hot windows (channels first, ``(b, 4, L)``; an N is an
    all-zero column and scores 0), on CPU or GPU, in float32.

    :func:`scan` (lookup tables, float64) is the reference implementation and is tested against memelite's FIMO;
    this bank is the fast path for hundreds of motifs (all 879 JASPAR CORE vertebrate matrices over a 200-bp window
    in about 1 ms per window on one CPU thread, 17x a loop over :func:`scan`; ``benchmarks/bench_baselines.py``) and
    is tested against :func:`scan`. TF32 is switched off during :meth:`best_strand` so that CUDA and CPU scores agree
    (:func:`exact_fp32`).

    ``groups``: one ``(width, indices)`` per distinct motif width (indices into ``motifs``), in increasing width.
    """

    def __init__(self, motifs: Sequence[Motif], *, pseudocount: float = 0.8, background=_UNIFORM, device="cpu"):
        import torch

        self.motifs = list(motifs)
        if not self.motifs:
            raise ValueError("PwmBank needs at least one motif")
        self.widths = np.array([m.width for m in self.motifs])
        self.pwms = [np.ascontiguousarray(_as_pwm(m, pseudocount, background)) for m in self.motifs]
        self.device = device
        self.groups = [(w, np.flatnonzero(self.widths == w)) for w in sorted(set(self.widths.tolist()))]
        self._weights = []
        for w, idx in self.groups:
            fw = np.stack([self.pwms[i] for i in idx])                           # (m, 4, w)
            both = np.concatenate([fw, fw[:, ::-1, ::-1]])                       # forward, then reverse complement
            self._weights.append(torch.as_tensor(both, dtype=torch.float32, device=device))

    def best_strand(self, x, group: int):
        """Scores of the motifs of ``groups[group]`` on one-hot windows ``x`` (a ``(b, 4, L)`` float32 tensor on the
        bank's device): ``(b, m, L - w + 1)``, the better of the two strands at each window start (bits)."""
        import torch.nn.functional as F

        m = len(self.groups[group][1])
        with exact_fp32():
            s = F.conv1d(x, self._weights[group])                               # (b, 2m, L - w + 1)
        return s[:, :m].maximum(s[:, m:])


def exact_fp32():
    """Context manager: no TF32 in CUDA convolutions (restored afterwards). On Ampere/Hopper GPUs cuDNN otherwise
    rounds float32 convolution inputs to TF32 (10-bit mantissa): JASPAR scores then differ from the CPU's by up to
    ~0.05 bit and hit counts at the threshold change (measured on an H200: 345 count differences on the toy set's
    1,050 windows with TF32, none without)."""
    import torch

    @contextlib.contextmanager
    def ctx():
        conv = getattr(torch.backends.cudnn, "conv", None)
        if conv is not None and hasattr(conv, "fp32_precision"):
            prev = conv.fp32_precision
            conv.fp32_precision = "ieee"
            try:
                yield
            finally:
                conv.fp32_precision = prev
        else:
            prev = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cudnn.allow_tf32 = prev

    return ctx()


# --------------------------------------------------------------------------- p-values
def _score_survival(pwm: np.ndarray, background: np.ndarray, bin_size: float):
    """Exact distribution of the discretised score of a background sequence.

    Each PWM entry is rounded to an integer number of bins, ``round(pwm / bin_size)``;
    the score of a random sequence (bases i.i.d. from ``background``) is then a sum of
    independent integer variables, whose distribution is built column by column
    (dynamic programming, i.e. repeated convolution with a 4-point distribution).

    Returns ``(lo, pmf, sf)``: bin ``i`` is the discretised score ``(lo + i) * bin_size``,
    ``pmf[i]`` its probability and ``sf[i] = P(score >= (lo + i) * bin_size)``.
    """
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise ValueError(f"bin_size must be > 0, got {bin_size}")
    ip = np.rint(pwm / bin_size).astype(np.int64)       # (4, w)
    mins = ip.min(axis=0)
    span = int((ip.max(axis=0) - mins).sum())
    if span > 50_000_000:
        raise ValueError(f"score range of {span} bins is too large; use a larger bin_size")
    d = ip - mins
    pmf = np.zeros(span + 1)
    pmf[0] = 1.0
    top = 0                                               # highest bin in use so far
    for j in range(ip.shape[1]):
        new = np.zeros_like(pmf)
        for a in range(4):
            s = int(d[a, j])
            new[s : s + top + 1] += background[a] * pmf[: top + 1]
        top += int(d[:, j].max())
        pmf = new
    sf = np.cumsum(pmf[::-1])[::-1]                       # small tails summed first
    return int(mins.sum()), pmf, sf


def score_threshold(
    motif_or_pwm: PwmLike,
    pvalue: float = 1e-4,
    *,
    background=_UNIFORM,
    pseudocount: float = 0.8,
    bin_size: float = 1e-3,
) -> float:
    """Score threshold for a p-value, exact up to discretisation (as FIMO / MOODS).

    The distribution of the window score of a random sequence with bases drawn
    i.i.d. from ``background`` is computed exactly by dynamic programming over PWM
    entries rounded to multiples of ``bin_size`` bits (default 0.001 bit); see
    :func:`_score_survival`. The result is the smallest *attainable* discretised score
    ``s`` with ``P(score >= s) <= pvalue`` (compared with a relative tolerance of 1e-9,
    so that exact ties such as ``pvalue = 1/16`` count). Because each of the ``w``
    entries is rounded, ``s`` is within ``w * bin_size / 2`` bits of the real score of
    the sequences it stands for.

    ``background`` is both the background of the log-odds (when a Motif is given) and
    the base distribution of the random sequence. Returns ``inf`` when even the best
    score has a tail probability above ``pvalue``.
    """
    p = float(pvalue)
    if not (0 < p <= 1):
        raise ValueError(f"pvalue must be in (0, 1], got {pvalue}")
    bg = _as_background(background)
    pwm = _as_pwm(motif_or_pwm, pseudocount, bg)
    lo, pmf, sf = _score_survival(pwm, bg, bin_size)
    ok = (sf <= p * (1 + 1e-9)) & (pmf > 0)
    if not ok.any():
        return float("inf")
    return (lo + int(np.argmax(ok))) * bin_size


def score_pvalue(
    motif_or_pwm: PwmLike,
    scores,
    *,
    background=_UNIFORM,
    pseudocount: float = 0.8,
    bin_size: float = 1e-3,
) -> np.ndarray:
    """P(score >= s) for a random background window, for each score ``s`` (any shape),
    from the same discretised exact distribution as :func:`score_threshold`
    (``s`` is rounded to the nearest bin)."""
    bg = _as_background(background)
    pwm = _as_pwm(motif_or_pwm, pseudocount, bg)
    lo, _, sf = _score_survival(pwm, bg, bin_size)
    s = np.asarray(scores, dtype=np.float64)
    i = np.rint(s / bin_size).astype(np.int64) - lo
    sf_ext = np.concatenate([sf, [0.0]])
    return np.where(i < 0, 1.0, sf_ext[np.clip(i, 0, len(sf))])


# --------------------------------------------------------------------------- variants
def snv_score_change(
    ref_seqs: SeqsLike,
    alt_seqs: SeqsLike,
    motif_or_pwm: PwmLike,
    *,
    both_strands: bool = True,
    pseudocount: float = 0.8,
    background=_UNIFORM,
) -> pd.DataFrame:
    """Motif score change of a variant: best window score of each allele's sequence.

    ``ref_seqs`` and ``alt_seqs`` are paired (same number of sequences, same length;
    any form :func:`scan` accepts). Returns a DataFrame with one row per pair and float
    columns ``ref_score``, ``alt_score`` (max over windows and strands, bits) and
    ``delta = alt_score - ref_score``. The index is ``ref_seqs.index`` for a pandas
    Series, else ``0..n-1``.
    """
    pwm = _as_pwm(motif_or_pwm, pseudocount, background)
    index = ref_seqs.index if isinstance(ref_seqs, pd.Series) else None
    ref_p, alt_p = _prepare(ref_seqs), _prepare(alt_seqs)
    if ref_p[:2] != alt_p[:2]:
        raise ValueError(
            f"ref and alt sequences must pair up: ref has {ref_p[0]} of length {ref_p[1]}, "
            f"alt has {alt_p[0]} of length {alt_p[1]}"
        )
    ref = _best(ref_p, pwm, both_strands)
    alt = _best(alt_p, pwm, both_strands)
    return pd.DataFrame({"ref_score": ref, "alt_score": alt, "delta": alt - ref}, index=index)
