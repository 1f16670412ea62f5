"""Motif baselines: the assayed factor's motif(s) at the SNV (:func:`motif_snv_features`, :class:`MotifLogistic`:
baseline (a)) and all JASPAR CORE vertebrate motifs scanned over the whole window (:class:`MotifScanner`;
:class:`MotifScanLogistic`: baseline (b); :class:`MotifGBT`: gradient-boosted trees on the same features).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..distributed import resolve_device
from ..motifs import Motif, load_jaspar, resolve_motifs
from ..pwm import PwmBank, scan, score_threshold
from .base import DEFAULT_CS, Baseline, _auprc, _LinearFeatureModel, thread_limit
from .features import _features, _has_both, _labels, _local, _onehot_cl, check_examples


def _motif_pwms(motifs, pseudocount):
    return [np.ascontiguousarray(m.log_odds(pseudocount=pseudocount), dtype=np.float64) for m in motifs]


def _overlap_best(codes: np.ndarray, c: int, pwm: np.ndarray) -> np.ndarray:
    """Best log-odds (bits, both strands) over the windows of width ``w`` that contain offset ``c``: ``(n,)``,
    scored by :func:`allelic.pwm.scan` on the ``2w - 1`` bases around ``c``.

    Windows reaching past the sequence ends are N-padded (N scores 0); a window that overlaps the SNV but does
    not fit inside the sequence therefore scores its in-sequence part only."""
    loc = _local(codes, c, pwm.shape[1] - 1)               # (n, 2w-1); SNV at column w-1
    return scan(np.eye(5, 4, dtype=np.float32)[loc], pwm).max(axis=(1, 2))


def motif_snv_features(df: pd.DataFrame, motifs: Sequence[Motif], *, pvalue: float = 1e-4,
                       pseudocount: float = 0.8) -> pd.DataFrame:
    """Features of baseline (a): for each motif (columns prefixed ``"<matrix_id>_<name>:"``)

    * ``ref_score`` / ``alt_score``: the best PWM log-odds (bits, either strand) of a motif-wide window that
      contains the SNV, in the ref / alt window;
    * ``delta = alt_score - ref_score`` and ``abs_delta``;
    * ``hit_ref`` / ``hit_alt`` / ``hit``: that score reaches :func:`allelic.pwm.score_threshold` at
      ``pvalue`` on the ref / alt / either allele (0/1).
    """
    ref, alt, c = check_examples(df)
    cols = {}
    for m, pwm in zip(motifs, _motif_pwms(motifs, pseudocount)):
        thr = _threshold(m, pvalue, pseudocount)
        r, a = _overlap_best(ref, c, pwm), _overlap_best(alt, c, pwm)
        p = f"{m.matrix_id}_{m.name}:"
        cols[p + "hit"] = ((r >= thr) | (a >= thr)).astype(float)
        cols[p + "hit_ref"] = (r >= thr).astype(float)
        cols[p + "hit_alt"] = (a >= thr).astype(float)
        cols[p + "ref_score"] = r
        cols[p + "alt_score"] = a
        cols[p + "delta"] = a - r
        cols[p + "abs_delta"] = np.abs(a - r)
    return pd.DataFrame(cols, index=df.index)


class MotifLogistic(_LinearFeatureModel):
    """Paper baseline (a): logistic regression on the assayed factor's motif(s) at the SNV.

    Parameters
    ----------
    factor
        A factor name (``"CTCF"`` -> MA0139.1; see :data:`FACTOR_MOTIF_IDS`, else ``load_jaspar(names=[...])``),
        an assay name (expanded with :data:`ASSAY_MOTIFS`), a JASPAR id, a :class:`~allelic.motifs.Motif`, or a
        sequence of those.
    pvalue
        Hit threshold (:func:`~allelic.pwm.score_threshold`, uniform background).
    C, Cs
        Fixed inverse L2 strength, or ``C=None`` (default) to choose among ``Cs`` on val / by CV.

    Features: :func:`motif_snv_features` (7 per motif), standardised."""

    name = "motif_logistic"

    def __init__(self, factor="CTCF", *, pvalue: float = 1e-4, pseudocount: float = 0.8, C: float | None = None,
                 Cs: Sequence[float] = DEFAULT_CS, n_jobs: int | None = 1, random_state=0,
                 progress: bool = False):
        self.factor, self.pvalue, self.pseudocount, self.C, self.Cs = factor, pvalue, pseudocount, C, Cs
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    @property
    def motifs(self) -> list[Motif]:
        return resolve_motifs(self.factor)

    def features(self, df):
        f = motif_snv_features(df, self.motifs, pvalue=self.pvalue, pseudocount=self.pseudocount)
        self.feature_names_ = list(f.columns)
        return f.to_numpy()


# --------------------------------------------------------------------------- whole-window motif scan (torch)
class MotifScanner:
    """Vectorised scan of many motifs over fixed-length windows: the features of baseline (b).

    The scores come from :class:`allelic.pwm.PwmBank` (one ``conv1d`` per motif width over the one-hot
    windows, both strands, float32 without TF32 so GPU and CPU features agree). The ref window is scanned whole; the
    alt window only where it differs (the ``w`` windows of each width that contain the SNV), since everything
    else is shared with the ref window. Throughput: ~1 ms per 200-bp window pair for all 879 motifs on one CPU
    thread (17x the loop over :func:`allelic.pwm.scan`; ``benchmarks/bench_baselines.py``).

    Per motif (column names ``"<matrix_id>_<name>:<feature>"``):

    * ``count``: hit windows in the ref window (a window is a hit when its better strand reaches the motif's
      ``score_threshold(pvalue)``; a palindrome counts once per position);
    * ``max``: best log-odds over windows and strands of the ref window (bits);
    * ``d_count``, ``d_max``: alt - ref of both; ``abs_d_max = |d_max|``.
    """

    FEATURES = ("count", "max", "d_count", "d_max", "abs_d_max")

    def __init__(self, motifs: Sequence[Motif] | None = None, *, pvalue: float = 1e-4, pseudocount: float = 0.8,
                 batch_size: int = 64, device: str = "cpu", n_jobs: int | None = 1):
        self.motifs = list(load_jaspar() if motifs is None else motifs)
        self.pvalue, self.pseudocount, self.batch_size, self.device = pvalue, pseudocount, batch_size, device
        self.n_jobs = n_jobs
        self.widths = np.array([m.width for m in self.motifs])
        self.thresholds = np.array([_threshold(m, pvalue, pseudocount) for m in self.motifs])

    def feature_names(self) -> list[str]:
        return [f"{m.matrix_id}_{m.name}:{f}" for f in self.FEATURES for m in self.motifs]

    def key(self):
        return ("scan", tuple(m.matrix_id for m in self.motifs), hash(tuple(self.motifs)), self.pvalue,
                self.pseudocount)

    def transform(self, ref: np.ndarray, alt: np.ndarray, c: int) -> np.ndarray:
        """``(n, 5 * n_motifs)`` float32 features (blocks in the order of :attr:`FEATURES`) of ``(n, L)`` codes
        (:func:`check_examples`), under :func:`thread_limit` ``(n_jobs)``."""
        import torch  # noqa: F401

        with thread_limit(self.n_jobs):
            return self._transform(ref, alt, c)

    def _transform(self, ref, alt, c):
        import torch

        n, L = ref.shape
        M = len(self.motifs)
        if n and L < self.widths.max():
            raise ValueError(f"windows of {L} bp are shorter than the widest motif ({self.widths.max()} bp)")
        dev = resolve_device(self.device)
        bank = PwmBank(self.motifs, pseudocount=self.pseudocount, device=dev)
        thresholds = [torch.as_tensor(self.thresholds[idx], dtype=torch.float32, device=dev) for _, idx in bank.groups]
        out = np.empty((n, 5 * M), dtype=np.float32)
        onehot_alt_base = np.eye(5, 4, dtype=np.float32)             # row 4 (N) = zeros
        with torch.no_grad():
            for a in range(0, n, self.batch_size):
                b = min(n, a + self.batch_size)
                x = torch.as_tensor(_onehot_cl(ref[a:b]), device=dev)    # (bs, 4, L)
                xa_col = torch.as_tensor(onehot_alt_base[alt[a:b, c]], device=dev)   # (bs, 4)
                for g, ((w, idx), thr) in enumerate(zip(bank.groups, thresholds)):
                    s = bank.best_strand(x, g)                           # (bs, m, L-w+1), better strand
                    lo, hi = max(0, c - w + 1), min(c, L - w)            # window starts containing c
                    hit = s >= thr[None, :, None]
                    r_max = s.amax(-1)
                    r_cnt = hit.sum(-1)
                    ov_cnt = hit[:, :, lo:hi + 1].sum(-1)
                    rest = torch.cat([s[:, :, :lo], s[:, :, hi + 1:]], dim=-1)
                    rest_max = rest.amax(-1) if rest.shape[-1] else torch.full_like(r_max, -torch.inf)
                    xl = x[:, :, lo:hi + w].clone()                      # the alt windows containing c
                    xl[:, :, c - lo] = xa_col
                    sa = bank.best_strand(xl, g)                         # (bs, m, hi-lo+1)
                    a_max = torch.maximum(rest_max, sa.amax(-1))
                    a_cnt = r_cnt - ov_cnt + (sa >= thr[None, :, None]).sum(-1)
                    blk = torch.stack([r_cnt.float(), r_max, (a_cnt - r_cnt).float(), a_max - r_max,
                                       (a_max - r_max).abs()], dim=0)     # (5, bs, m)
                    res = out[a:b].reshape(b - a, 5, M)
                    res[:, :, idx] = blk.permute(1, 0, 2).cpu().numpy()
        return out


def _threshold(m: Motif, pvalue: float, pseudocount: float) -> float:
    key = (m, float(pvalue), float(pseudocount))
    if key not in _THRESHOLDS:
        _THRESHOLDS[key] = score_threshold(m, pvalue, pseudocount=pseudocount)
    return _THRESHOLDS[key]


_THRESHOLDS: dict = {}


class _ScanFeatures:
    """Mixin: MotifScanner features, cached."""

    _uses_torch = True

    def _scanner(self) -> MotifScanner:
        if getattr(self, "scanner_", None) is None:
            self.scanner_ = MotifScanner(self.motifs, pvalue=self.pvalue, batch_size=self.batch_size,
                                         device=self.device, n_jobs=self.n_jobs)
        return self.scanner_

    def features(self, df):
        sc = self._scanner()
        self.feature_names_ = sc.feature_names()

        def compute(d):
            return (sc.transform(*check_examples(d)),)

        return _features(sc.key(), df, compute, self.cache)[0]


class MotifScanLogistic(_ScanFeatures, _LinearFeatureModel):
    """Paper baseline (b): all JASPAR CORE vertebrate motifs scanned over the whole window.

    Features: :class:`MotifScanner` (hit count and max score of the ref window, alt - ref changes of both,
    ``|d_max|``; 5 per motif, 4,395 for the 879 JASPAR2024 CORE vertebrate matrices), standardised; L2 logistic
    regression with ``C`` chosen on val / by CV among ``Cs``. ``motifs=None`` means all of
    ``load_jaspar()``; ``device`` runs the scan (``"auto"``: CUDA when available)."""

    name = "motif_scan_logistic"

    def __init__(self, motifs: Sequence[Motif] | None = None, *, pvalue: float = 1e-4, C: float | None = None,
                 Cs: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0), batch_size: int = 64, device: str = "cpu",
                 cache: bool = True, n_jobs: int | None = 1, random_state=0, progress: bool = False):
        self.motifs, self.pvalue, self.C, self.Cs = motifs, pvalue, C, Cs
        self.batch_size, self.device, self.cache = batch_size, device, cache
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress


class MotifGBT(_ScanFeatures, Baseline):
    """Gradient-boosted trees (``HistGradientBoostingClassifier``) on the :class:`MotifScanner` features.

    Columns constant on ``train`` are dropped. Up to ``max_iter`` trees are grown on ``train``; with a ``val``
    table holding both classes, the number of trees used for prediction is the one with the best val AUPRC
    (staged predictions, no refit; ``n_trees_``, ``val_curve_``), otherwise all ``max_iter``. ``max_features``
    (fraction of features tried per split) and ``max_bins`` keep the ~4,000-column fit fast."""

    name = "motif_gbt"

    def __init__(self, motifs: Sequence[Motif] | None = None, *, pvalue: float = 1e-4, max_iter: int = 150,
                 learning_rate: float = 0.1, max_leaf_nodes: int = 15, min_samples_leaf: int = 10,
                 l2_regularization: float = 1.0, max_features: float = 0.3, max_bins: int = 64,
                 batch_size: int = 64, device: str = "cpu", cache: bool = True,
                 n_jobs: int | None = 1, random_state=0, progress: bool = False):
        self.motifs, self.pvalue, self.max_iter, self.learning_rate = motifs, pvalue, max_iter, learning_rate
        self.max_leaf_nodes, self.min_samples_leaf = max_leaf_nodes, min_samples_leaf
        self.l2_regularization, self.max_features, self.max_bins = l2_regularization, max_features, max_bins
        self.batch_size, self.device, self.cache = batch_size, device, cache
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    def fit(self, train, val=None):
        from sklearn.ensemble import HistGradientBoostingClassifier

        check_examples(train, label=True)
        X, y = self.features(train), _labels(train)
        if not _has_both(y):
            raise ValueError(f"{self.name}: training labels hold a single class")
        self.columns_ = np.flatnonzero(X.min(axis=0) < X.max(axis=0))
        names = self.feature_names_
        self.used_features_ = [names[i] for i in self.columns_]
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            max_features=self.max_features, max_bins=self.max_bins, early_stopping=False,
            random_state=self.random_state).fit(X[:, self.columns_], y)
        self.n_trees_ = self.model_.n_iter_
        self.val_curve_ = None
        if val is not None and len(val) and _has_both(_labels(val)):
            check_examples(val, label=True)
            yv = _labels(val)
            Xv = self.features(val)[:, self.columns_]
            self.val_curve_ = np.array([_auprc(yv, s) for s in self.model_.staged_decision_function(Xv)])
            self.n_trees_ = int(np.argmax(self.val_curve_)) + 1
        self._log(f"{len(self.columns_)} non-constant features, {self.n_trees_} trees")
        return self

    def predict(self, df):
        check_examples(df)
        X = self.features(df)[:, self.columns_]
        if self.n_trees_ == self.model_.n_iter_:
            return self.model_.decision_function(X).astype(np.float64)
        for i, s in enumerate(self.model_.staged_decision_function(X), start=1):
            if i == self.n_trees_:
                return np.asarray(s, dtype=np.float64).ravel()
        raise RuntimeError("unreachable")
