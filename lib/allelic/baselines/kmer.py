"""k-mer baselines: k-mer counts (:func:`kmer_counts`) with an L2 logistic regression (:class:`KmerLogistic`),
and gapped k-mer vectors (:func:`gapped_kmer_counts`) with a deltaSVM-like linear SVM (:class:`GkmSVM`).
"""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..motifs import N_CODE
from .base import Baseline, _LinearFeatureModel, _logistic
from .features import _codes, _features, _has_both, _labels, _local, check_examples

_BASES = "ACGT"
_N = N_CODE


# =========================================================================== k-mers
def _kmer_index(k: int, canonical: bool) -> tuple[np.ndarray, int]:
    """Map from the base-4 code of a k-mer (first base most significant) to its column, and the column count.
    Canonical: a k-mer and its reverse complement share the column of the smaller code (columns numbered in
    code order of the canonical k-mers)."""
    codes = np.arange(4**k)
    if not canonical:
        return codes, 4**k
    digits = (codes[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)).sum(axis=1)
    can = np.minimum(codes, rc)
    uniq, col = np.unique(can, return_inverse=True)
    return col, len(uniq)


def kmer_names(k: int, canonical: bool) -> list[str]:
    """Column names of :func:`kmer_counts` for one ``k`` (the canonical k-mer is the smaller code, i.e. the
    lexicographically smaller of a k-mer and its reverse complement)."""
    col, ncol = _kmer_index(k, canonical)
    names = [""] * ncol
    for code in range(4**k):
        j = col[code]
        if not names[j]:
            names[j] = "".join(_BASES[(code // 4 ** (k - 1 - i)) % 4] for i in range(k))
    return names


def kmer_counts(seqs, k: int, *, canonical: bool = False):
    """k-mer counts of each sequence: ``scipy.sparse.csr_matrix`` ``(n, 4**k)`` (canonical:
    ``(n, n_canonical)``), float64. Columns follow :func:`kmer_names`; k-mers holding an N are skipped.

    ``seqs``: strings or ``(n, L)`` integer codes."""
    from scipy import sparse

    codes = seqs if isinstance(seqs, np.ndarray) else _codes(seqs)
    n, L = codes.shape
    col, ncol = _kmer_index(k, canonical)
    if L < k or n == 0:
        return sparse.csr_matrix((n, ncol))
    Lk = L - k + 1
    key = np.zeros((n, Lk), dtype=np.int64)
    bad = np.zeros((n, Lk), dtype=bool)
    for j in range(k):
        part = codes[:, j:j + Lk]
        key = key * 4 + np.minimum(part, 3)
        bad |= part == _N
    rows = np.broadcast_to(np.arange(n)[:, None], key.shape)[~bad]
    cols = col[key[~bad]]
    m = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, ncol)).tocsr()
    m.sum_duplicates()
    return m


class KmerLogistic(_LinearFeatureModel):
    """k-mer counts + L2 logistic regression.

    Features, for each ``k`` in ``k`` (default 1..6): the k-mer counts of the ref window, then the alt - ref
    count changes (non-zero only for the k-mers that contain the SNV). ``canonical=True`` (default) pools each
    k-mer with its reverse complement (strand-symmetric binding; 2,772 columns per allele block for k = 1..6
    instead of 5,460). Sparse, scaled to unit variance (no centring); ``C`` chosen on val / by CV."""

    name = "kmer_logistic"

    def __init__(self, k: Sequence[int] | int = (1, 2, 3, 4, 5, 6), *, canonical: bool = True,
                 C: float | None = None, Cs: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1), cache: bool = True,
                 n_jobs: int | None = 1, random_state=0, progress: bool = False):
        self.k, self.canonical, self.C, self.Cs, self.cache = k, canonical, C, Cs, cache
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    @property
    def ks(self) -> list[int]:
        return [int(self.k)] if np.isscalar(self.k) else [int(x) for x in self.k]

    def features(self, df):
        from scipy import sparse

        ks = self.ks
        self.feature_names_ = ([f"ref:{s}" for k in ks for s in kmer_names(k, self.canonical)]
                               + [f"delta:{s}" for k in ks for s in kmer_names(k, self.canonical)])

        def compute(d):
            ref, alt, c = check_examples(d)
            blocks_ref, blocks_d = [], []
            for k in ks:
                blocks_ref.append(kmer_counts(ref, k, canonical=self.canonical))
                # only k-mers containing c differ: count them in the local (2k-1)-bp windows
                lr, la = _local(ref, c, k - 1), _local(alt, c, k - 1)
                blocks_d.append(kmer_counts(la, k, canonical=self.canonical)
                                - kmer_counts(lr, k, canonical=self.canonical))
            return (sparse.hstack(blocks_ref + blocks_d, format="csr"),)

        return _features(("kmer", tuple(ks), self.canonical), df, compute, self.cache)[0]


# =========================================================================== gapped k-mers
def gapped_patterns(l: int, k: int) -> list[tuple[int, ...]]:
    """The gapped k-mer patterns of gkm-SVM's ``(l, k)``, up to position: offset tuples
    ``(0, o_1, ..., o_{k-1})`` with ``o_{k-1} <= l - 1`` (first informative position at 0), ``C(l-1, k-1)`` of
    them (126 for l=10, k=6)."""
    if not (1 <= k <= l):
        raise ValueError(f"need 1 <= k <= l, got l={l}, k={k}")
    return [(0,) + rest for rest in itertools.combinations(range(1, l), k - 1)]


def _hash_cols(key: np.ndarray, n_features: int) -> np.ndarray:
    """Multiplicative (Knuth) hash of non-negative int64 keys into ``range(n_features)``: the top 32 bits of
    ``key * golden`` mapped to the range by their top bits (``(h * n_features) >> 32``, Lemire's reduction). Taking
    ``h % n_features`` instead, as before, kept only the low bits of ``h`` for a power of two: 11,921 of 16,384
    columns were reachable by the l=10, k=6 gapped k-mers."""
    h = (key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    return ((h * np.uint64(n_features)) >> np.uint64(32)).astype(np.int64)


def gapped_kmer_counts(seqs, l: int = 10, k: int = 6, *, canonical: bool = True, weighted: bool = True,
                       n_features: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Explicit gapped k-mer vectors (a feature map of the gkm kernel), dense float32 ``(n, n_features)``.

    Every occurrence of every pattern of :func:`gapped_patterns` (k informative bases, spans <= l, no N) adds
    ``sqrt(l - span + 1)`` (``weighted=True``) or 1 to the column of ``(pattern, bases)``. With the weights,
    the dot product of two vectors equals the (un-normalised, unfiltered) gkm kernel
    ``sum over l-mer pairs of C(l - mismatches, k)`` up to edge effects: an l-mer anchors a gapped k-mer of span
    ``s`` at ``l - s + 1`` offsets, and those l-mers near the ends of the window that gkm-SVM counts fewer times
    are counted as if the window went on.

    ``canonical`` pools a gapped k-mer with its reverse complement (same as summing both strands).
    ``n_features=None`` gives the exact index ``pattern * 4**k + code`` (``n_patterns * 4**k`` columns; careful:
    516,096 for l=10, k=6); an int hashes into that many columns (feature hashing: distinct gapped k-mers may
    share a column)."""
    codes = seqs if isinstance(seqs, np.ndarray) else _codes(seqs)
    pats = gapped_patterns(l, k)
    n, L = codes.shape
    n_exact = len(pats) * 4**k
    D = n_exact if n_features is None else int(n_features)
    out = np.zeros((n, D), dtype=np.float32)
    if n == 0 or L < 1:
        return out
    pat_index = {p: i for i, p in enumerate(pats)}
    spans = np.array([p[-1] + 1 for p in pats])
    wts = np.sqrt(l - spans + 1.0) if weighted else np.ones(len(pats))
    if canonical:
        # reverse complement of (pattern p, code x): pattern mirrored within its span, code reverse-complemented
        mirror = np.array([pat_index[tuple(sorted(p[-1] - o for o in p))] for p in pats])
        digits = (np.arange(4**k)[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4
        rc_code = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)).sum(axis=1)
    for a in range(0, n, batch_size):
        b = min(n, a + batch_size)
        cb = codes[a:b]
        m = b - a
        keys, vals, rows = [], [], []
        for pi, p in enumerate(pats):
            span = p[-1] + 1
            Ls = L - span + 1
            if Ls <= 0:
                continue
            x = np.zeros((m, Ls), dtype=np.int64)
            bad = np.zeros((m, Ls), dtype=bool)
            for o in p:
                part = cb[:, o:o + Ls]
                x = x * 4 + np.minimum(part, 3)
                bad |= part == _N
            key = pi * 4**k + x
            if canonical:
                key = np.minimum(key, mirror[pi] * 4**k + rc_code[x])
            ok = ~bad
            keys.append(key[ok])
            rows.append(np.broadcast_to(np.arange(m)[:, None], x.shape)[ok])
            vals.append(np.full(int(ok.sum()), wts[pi]))
        if not keys:
            continue
        key = np.concatenate(keys)
        col = key if n_features is None else _hash_cols(key, D)
        flat = np.concatenate(rows) * D + col
        out[a:b] = np.bincount(flat, weights=np.concatenate(vals), minlength=m * D).reshape(m, D)
    return out


def _l2_rows(X: np.ndarray) -> np.ndarray:
    nrm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(nrm > 0, nrm, 1)


class GkmSVM(Baseline):
    """Gapped k-mer linear SVM with a deltaSVM-like variant score.

    1. **Features**: :func:`gapped_kmer_counts` of the window (``l``, ``k``, reverse-complement canonical,
       gkm-kernel weights), hashed into ``n_features`` columns and L2-normalised per window (gkm-SVM's kernel
       normalisation). The approximation to gkm-SVM: an explicit, hashed feature map instead of the kernel
       (collisions; edge effects, see :func:`gapped_kmer_counts`), a linear SVM (``LinearSVC``, squared hinge)
       instead of the kernel SVM, and no mismatch-weighted kernels (wgkm).
    2. **SVM**: trained on the *ref* windows against the AS label; ``svm_score(window) = w . x(window) + b``.
    3. **delta** (:meth:`delta`) = ``svm_score(alt window) - svm_score(ref window)``, deltaSVM's variant score.
    4. **Final score**: a logistic regression on ``[svm_score(ref), delta, |delta|]`` (standardised). It is fitted
       on out-of-fold SVM scores of the train rows (``cv`` folds, so the stacker does not see the SVM's fit of its
       own training rows); the SVM used for prediction is then refitted on all of ``train``. ``val`` is not used.
    """

    name = "gkm_svm"

    def __init__(self, l: int = 10, k: int = 6, *, n_features: int = 1 << 14, C: float = 1.0, cv: int = 3,
                 cache: bool = True, n_jobs: int | None = 1, random_state=0, progress: bool = False):
        self.l, self.k, self.n_features, self.C, self.cv, self.cache = l, k, n_features, C, cv, cache
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    def _parts(self, df):
        """``(X_ref, norm_ref, change)``: the L2-normalised gapped k-mer vectors of the ref windows (dense float32
        ``(n, n_features)``), their norms before normalising ``(n, 1)``, and the alt - ref change of the raw
        vectors (sparse CSR: only gapped k-mers that read the SNV change). The alt vectors are never stored:
        ``x_alt = (norm_ref * X_ref + change) / ||norm_ref * X_ref + change||``."""
        from scipy import sparse

        def compute(d):
            ref, alt, c = check_examples(d)
            raw = gapped_kmer_counts(ref, self.l, self.k, n_features=self.n_features)
            # only gapped k-mers that hold the SNV differ; count them in the local (2l-1)-bp windows
            half = self.l - 1
            change = (gapped_kmer_counts(_local(alt, c, half), self.l, self.k, n_features=self.n_features)
                      - gapped_kmer_counts(_local(ref, c, half), self.l, self.k, n_features=self.n_features))
            norm = np.linalg.norm(raw, axis=1, keepdims=True)
            raw /= np.where(norm > 0, norm, 1)
            return raw, norm.astype(np.float32), sparse.csr_matrix(change)

        return _features(("gkm", self.l, self.k, self.n_features), df, compute, self.cache)

    @staticmethod
    def _alt_dot(Xr, norm, change, w) -> np.ndarray:
        """``w . x_alt`` per row without forming ``x_alt`` (see :meth:`_parts`)."""
        norm = norm[:, 0].astype(np.float64)
        cross = np.asarray(change.multiply(Xr).sum(axis=1)).ravel()            # X_ref . change
        sq = np.asarray(change.multiply(change).sum(axis=1)).ravel()            # ||change||^2
        alt_norm = np.sqrt(np.maximum(norm**2 + 2 * norm * cross + sq, 0))
        num = norm * (Xr @ w) + change @ w
        return num / np.where(alt_norm > 0, alt_norm, 1)

    def features(self, df) -> tuple[np.ndarray, np.ndarray]:
        """``(X_ref, X_alt)``: dense L2-normalised gapped k-mer vectors of both alleles (for inspection; the
        model itself never forms ``X_alt``)."""
        Xr, norm, change = self._parts(df)
        return Xr, _l2_rows(norm * Xr + change.toarray())

    def _svm_scores(self, svm, Xr, norm, change):
        w = svm.coef_.ravel().astype(np.float64)
        b = float(svm.intercept_[0])
        return Xr @ w + b, self._alt_dot(Xr, norm, change, w) + b

    def _svm(self):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C, dual=True, max_iter=5000, random_state=self.random_state)

    def fit(self, train, val=None):
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        check_examples(train, label=True)
        y = _labels(train)
        if not _has_both(y):
            raise ValueError(f"{self.name}: training labels hold a single class")
        Xr, norm, change = self._parts(train)
        oof_ref, oof_alt = np.zeros(len(y)), np.zeros(len(y))
        n_splits = int(min(self.cv, np.bincount(y, minlength=2).min()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if n_splits >= 2:
                skf = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
                for tr, te in skf.split(Xr, y):
                    svm = self._svm().fit(Xr[tr], y[tr])
                    oof_ref[te], oof_alt[te] = self._svm_scores(svm, Xr[te], norm[te], change[te])
            self.svm_ = self._svm().fit(Xr, y)
            if n_splits < 2:
                oof_ref, oof_alt = self._svm_scores(self.svm_, Xr, norm, change)
            self.stacker_ = make_pipeline(StandardScaler(), _logistic(1.0, self.random_state)).fit(
                self._stack(oof_ref, oof_alt), y)
        return self

    @staticmethod
    def _stack(s_ref, s_alt):
        d = s_alt - s_ref
        return np.column_stack([s_ref, d, np.abs(d)])

    def svm_scores(self, df) -> pd.DataFrame:
        """``ref_score``, ``alt_score`` (SVM decision values of each allele's window) and ``delta``."""
        check_examples(df)
        r, a = self._svm_scores(self.svm_, *self._parts(df))
        return pd.DataFrame({"ref_score": r, "alt_score": a, "delta": a - r}, index=df.index)

    def delta(self, df) -> np.ndarray:
        """deltaSVM-like variant score: ``svm_score(alt window) - svm_score(ref window)``, shape (n,)."""
        return self.svm_scores(df)["delta"].to_numpy()

    def predict(self, df):
        s = self.svm_scores(df)
        return self.stacker_.decision_function(self._stack(s["ref_score"].to_numpy(),
                                                           s["alt_score"].to_numpy())).astype(np.float64)
