"""Baseline predictors of allele-specific (AS) SNVs from the sequence window around them (paper figure 9B).

Every model answers one question — *is this heterozygous SNV allele-specific?* — from the two alleles' windows
of one example, and all share one small interface, :class:`Baseline`::

    model.fit(train, val=None) -> model        # val: early stopping / choice of C, never fitted on
    model.predict(df) -> np.ndarray (n,)       # score, higher = more likely AS

so that :func:`evaluate_models` serves every model, the fine-tuned transformer included (wrap it in a
:class:`Baseline` subclass, e.g. :class:`FinetunedTransformer`).

Examples
--------
An *example table* is a DataFrame with columns ``example_id, assay, label`` (0/1), ``seq_ref, seq_alt`` and
``split`` (``"train"``/``"val"``/``"test"``); ``chrom``/``pos`` are carried along but not read. ``seq_ref`` and
``seq_alt`` are equal-length windows (upper or lower case ``ACGTN``; ``N`` scores 0 in motif scans and is
skipped by k-mer counts) whose SNV sits at offset ``c = len // 2``; the alt window differs from the ref window at
most there (checked: a difference elsewhere raises ValueError naming the example).

The models
----------
================================  ===========================================================================
:class:`MotifLogistic`            (a) the assayed factor's JASPAR motif(s) at the SNV: hit on either allele,
                                  best log-odds of a window overlapping the SNV per allele, delta, ``|delta|``;
                                  standardised, L2 logistic regression
:class:`MotifScanLogistic`        (b) all 879 JASPAR2024 CORE vertebrate motifs over the whole window: hit
                                  counts and max scores of the ref window, and the alt - ref changes;
                                  standardised, L2 logistic regression
:class:`MotifGBT`                 gradient-boosted trees on the features of (b)
:class:`KmerLogistic`             k-mer counts of the ref window and alt - ref count changes; L2 logistic
:class:`GkmSVM`                   gapped k-mer (gkm-SVM-like) linear SVM on the ref window, deltaSVM-like
                                  ``delta = score(alt) - score(ref)``, then a logistic stacker on
                                  ``[score(ref), delta, |delta|]``
:class:`CNN`                      siamese DeepSEA/Basset-like CNN on the one-hot ref and alt windows
================================  ===========================================================================

The regularisation strength ``C`` of the logistic models is chosen on ``val`` (AUPRC) when ``val`` has both
classes, else by 3-fold stratified cross-validation inside ``train``; the final model is always fitted on
``train`` only. Feature rows of the motif scans, k-mers and gapped k-mers are remembered in memory by
``(settings, seq_ref, seq_alt)`` (at most ``FEATURE_CACHE_BYTES``; ``cache=False`` turns it off,
:func:`clear_feature_cache` empties it), so the models, splits and folds of one table featurise each window once.

Threads: every model defaults to ``n_jobs=1`` (see :func:`thread_limit` for the measurement behind that).
"""
from __future__ import annotations

import copy
import inspect
import itertools
import math
import time
import warnings
from collections import OrderedDict
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .distributed import resolve_device
from .evaluate import binary_metrics
from .motifs import N_CODE, Motif, PwmBank, encode, load_jaspar, scan, score_threshold

__all__ = [
    "ASSAY_MOTIFS",
    "FACTOR_MOTIF_IDS",
    "Baseline",
    "MotifLogistic",
    "MotifScanLogistic",
    "MotifGBT",
    "KmerLogistic",
    "GkmSVM",
    "CNN",
    "FinetunedTransformer",
    "all_baselines",
    "evaluate_models",
    "evaluate_folds",
    "thread_limit",
    "clear_feature_cache",
    "motif_snv_features",
    "MotifScanner",
    "kmer_counts",
    "kmer_names",
    "gapped_kmer_counts",
    "gapped_patterns",
    "check_examples",
    "ExampleCodes",
]

#: assay -> the factors whose JASPAR motifs baseline (a) uses (the assayed factor itself for TF ChIP-seq; for
#: POL2, histone marks and RNA the promoter / enhancer factors that the simulator plants as well).
ASSAY_MOTIFS: dict[str, tuple[str, ...]] = {
    "CTCF": ("CTCF",),
    "POL2": ("TBP",),
    "H3K4me3": ("NRF1", "SP1", "YY1"),
    "H3K27ac": ("FOS::JUN", "CEBPB"),
    "RNA": ("NRF1", "SP1", "YY1", "TBP"),
}

#: factor name -> pinned JASPAR matrix id (the ones :mod:`allelic.simulate` plants). CTCF is the classic
#: 19-bp MA0139.1 rather than JASPAR2024's trimmed MA0139.2. Other names go through ``load_jaspar(names=...)``.
FACTOR_MOTIF_IDS: dict[str, str] = {
    "CTCF": "MA0139.1",
    "TBP": "MA0108.3",
    "NRF1": "MA0506.3",
    "SP1": "MA0079.5",
    "YY1": "MA0095.4",
    "FOS::JUN": "MA0099.4",
    "CEBPB": "MA0466.4",
}

#: upper bound on the memory held by the feature cache (bytes)
FEATURE_CACHE_BYTES = 1 << 30

_BASES = "ACGT"
_N = N_CODE

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


# =========================================================================== inputs
def _codes(seqs) -> np.ndarray:
    """``(n, L)`` uint8 codes A, C, G, T, N = 0..4 of equal-length strings (:func:`allelic.motifs.encode`);
    ValueError naming a bad character or length."""
    return encode([str(s) for s in seqs])[0]


class ExampleCodes(NamedTuple):
    """Result of :func:`check_examples`: ``ref`` and ``alt`` ``(n, L)`` uint8 base codes (A, C, G, T, N = 0..4)
    and ``snv = L // 2``, the SNV's offset (a tuple: ``ref, alt, c = check_examples(df)`` works)."""

    ref: np.ndarray
    alt: np.ndarray
    snv: int


def check_examples(df: pd.DataFrame, *, label: bool = False) -> ExampleCodes:
    """Validate an example table; return its base codes (:class:`ExampleCodes`).

    Raises ValueError for missing columns (``seq_ref``, ``seq_alt`` and, with ``label=True``, ``label``),
    unequal lengths, characters other than ACGTN, or an alt window that differs from the ref window anywhere but
    at ``c``."""
    need = ["seq_ref", "seq_alt"] + (["label"] if label else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"example table lacks column(s) {missing}")
    ref, alt = _codes(df["seq_ref"]), _codes(df["seq_alt"])
    if ref.shape != alt.shape:
        raise ValueError(f"seq_ref windows have length {ref.shape[1]}, seq_alt windows {alt.shape[1]}")
    L = ref.shape[1]
    c = L // 2
    diff = ref != alt
    if L:
        diff[:, c] = False
    if diff.any():
        i, p = np.argwhere(diff)[0]
        eid = df["example_id"].iloc[i] if "example_id" in df.columns else i
        raise ValueError(f"example {eid!r}: alt window differs from ref at offset {p}, "
                         f"not only at the SNV (offset {c})")
    if label:
        y = df["label"].to_numpy()
        if not np.isin(y, (0, 1)).all():
            raise ValueError("label must be 0/1")
    return ExampleCodes(ref, alt, c)


def _labels(df) -> np.ndarray:
    return df["label"].to_numpy().astype(int)


def _has_both(y) -> bool:
    return y is not None and len(y) > 0 and 0 < int(np.sum(y)) < len(y)


def _nbytes(m) -> int:
    if hasattr(m, "indptr"):   # scipy sparse
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    return int(getattr(m, "nbytes", 0))


def _gather(mats: list, loc: np.ndarray):
    """Rows ``loc[i] = (block, row)`` of a list of same-width matrices (dense arrays or scipy sparse)."""
    from scipy import sparse

    blocks = np.unique(loc[:, 0])
    if sparse.issparse(mats[0]):
        parts, order = [], []
        for b in blocks:
            sel = np.flatnonzero(loc[:, 0] == b)
            parts.append(mats[b][loc[sel, 1]])
            order.append(sel)
        stacked = sparse.vstack(parts, format="csr")
        inv = np.empty(len(loc), dtype=np.int64)
        inv[np.concatenate(order)] = np.arange(len(loc))
        return stacked[inv]
    out = np.empty((len(loc),) + mats[0].shape[1:], dtype=mats[0].dtype)
    for b in blocks:
        sel = loc[:, 0] == b
        out[sel] = mats[b][loc[sel, 1]]
    return out


class _FeatureStore:
    """Feature rows remembered by ``(settings, seq_ref, seq_alt)``.

    The splits and chromosome folds of one example table hold the same windows, so each window pair is
    featurised once per setting. ``compute(sub_df)`` returns a tuple of row-aligned matrices for the rows not seen
    yet; whole settings are forgotten least-recently-used first when the store holds more than
    ``FEATURE_CACHE_BYTES``."""

    def __init__(self):
        self.specs: OrderedDict = OrderedDict()

    def nbytes(self) -> int:
        return sum(e["nbytes"] for e in self.specs.values())

    def get(self, spec, df: pd.DataFrame, compute) -> tuple:
        entry = self.specs.setdefault(spec, {"index": {}, "blocks": [], "nbytes": 0})
        self.specs.move_to_end(spec)
        pairs = list(zip(df["seq_ref"].astype(str), df["seq_alt"].astype(str)))
        index = entry["index"]
        new = {}
        for i, p in enumerate(pairs):
            if p not in index and p not in new:
                new[p] = i
        if new:
            block = compute(df.iloc[list(new.values())])
            b = len(entry["blocks"])
            entry["blocks"].append(block)
            entry["nbytes"] += sum(_nbytes(m) for m in block)
            for r, p in enumerate(new):
                index[p] = (b, r)
        loc = np.array([index[p] for p in pairs], dtype=np.int64).reshape(-1, 2)
        out = tuple(_gather([blk[j] for blk in entry["blocks"]], loc) for j in range(len(entry["blocks"][0])))
        while self.nbytes() > FEATURE_CACHE_BYTES and len(self.specs) > 1:
            self.specs.popitem(last=False)
        if self.nbytes() > FEATURE_CACHE_BYTES:   # this setting alone is too big to keep
            self.specs.clear()
        return out

    def clear(self) -> None:
        self.specs.clear()


_STORE = _FeatureStore()


def _features(spec, df: pd.DataFrame, compute, cache: bool) -> tuple:
    """``compute(df)`` (a tuple of matrices), through the feature store when ``cache``."""
    if not cache or len(df) == 0:
        return compute(df)
    return _STORE.get(spec, df, compute)


def clear_feature_cache() -> None:
    """Forget all remembered feature rows."""
    _STORE.clear()


# =========================================================================== threads
def thread_limit(n_jobs: int | None):
    """Context manager capping the BLAS/OpenMP threads (``threadpoolctl``) and torch's intra-op threads at
    ``n_jobs`` (restored afterwards); a no-op for None.

    Why the models default to one thread: on a machine whose cores are busy with other work, spinning OpenMP
    threads make multi-threaded small kernels collapse — measured on the 2-core development machine while
    another 2-thread process ran: the toy set's JASPAR scan took 41 s with 2 torch threads and 2.5 s with 1, the
    CNN fit 108 s against 3.4 s. Pass ``n_jobs=None`` (library defaults) on a dedicated many-core machine."""
    import contextlib
    import sys

    if n_jobs is None:
        return contextlib.nullcontext()
    n = int(n_jobs)

    @contextlib.contextmanager
    def ctx():
        from threadpoolctl import threadpool_limits

        torch = sys.modules.get("torch")
        prev = torch.get_num_threads() if torch is not None else None
        try:
            with threadpool_limits(n):
                if torch is not None:
                    torch.set_num_threads(n)
                yield
        finally:
            if torch is not None and prev is not None:
                torch.set_num_threads(prev)

    return ctx()


def _thread_limited(method):
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if getattr(self, "_uses_torch", False):
            import torch  # noqa: F401  (so that thread_limit caps its threads too)
        with thread_limit(getattr(self, "n_jobs", None)):
            return method(self, *args, **kwargs)

    wrapper._thread_limited = True
    return wrapper


# =========================================================================== base class
class Baseline:
    """Common interface of the AS predictors.

    Subclasses implement :meth:`fit` (on the ``train`` rows; ``val`` only for early stopping / model selection)
    and :meth:`predict` (a float score per row, higher = more likely AS). Constructor arguments are stored as
    attributes of the same name, so :meth:`get_params` and :meth:`clone` work as in scikit-learn.

    Threads: a subclass's ``fit`` and ``predict`` run under :func:`thread_limit` ``(self.n_jobs)`` when the
    object has an ``n_jobs`` attribute that is not None (all models here default to ``n_jobs=1``)."""

    name: str = "baseline"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for meth in ("fit", "predict"):
            f = cls.__dict__.get(meth)
            if f is not None and not getattr(f, "_thread_limited", False):
                setattr(cls, meth, _thread_limited(f))

    def get_params(self) -> dict:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k, p in sig.parameters.items()
                if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def clone(self) -> "Baseline":
        """A fresh, unfitted copy with the same parameters (and name)."""
        new = type(self)(**copy.deepcopy(self.get_params()))
        new.name = self.name
        return new

    def fit(self, train: pd.DataFrame, val: pd.DataFrame | None = None) -> "Baseline":
        raise NotImplementedError

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _log(self, msg: str) -> None:
        if getattr(self, "progress", False):
            print(f"[{self.name}] {msg}", flush=True)

    def __repr__(self) -> str:
        def short(v):
            if isinstance(v, (list, tuple)) and len(v) > 6:
                return f"<{len(v)} items>"
            return repr(v)
        args = ", ".join(f"{k}={short(v)}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


# =========================================================================== linear-model helpers
def _logistic(C: float, random_state, max_iter: int = 2000):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, random_state=random_state)


def _auprc(y, s) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


def _choose_C(make, X, y, Xv, yv, Cs, random_state) -> tuple[float, dict]:
    """Best ``C`` by AUPRC on (Xv, yv) if it has both classes, else by 3-fold stratified CV on (X, y).

    ``make(C)`` returns an unfitted classifier with ``decision_function``. Ties go to the smallest C."""
    from sklearn.model_selection import StratifiedKFold

    Cs = list(Cs)
    if len(Cs) == 1:
        return float(Cs[0]), {}
    res = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # convergence warnings at extreme C
        if _has_both(yv):
            for C in Cs:
                res[C] = _auprc(yv, make(C).fit(X, y).decision_function(Xv))
        else:
            n_splits = int(min(3, np.bincount(y, minlength=2).min()))
            if n_splits < 2:
                return float(Cs[len(Cs) // 2]), {}
            folds = list(StratifiedKFold(n_splits, shuffle=True, random_state=random_state).split(np.zeros(len(y)), y))
            for C in Cs:
                res[C] = float(np.mean([_auprc(y[te], make(C).fit(X[tr], y[tr]).decision_function(X[te]))
                                        for tr, te in folds]))
    best = max(Cs, key=lambda C: (res[C], -C))
    return float(best), res


class _LinearFeatureModel(Baseline):
    """Shared fit/predict of the feature + (scaler) + L2 logistic regression models."""

    standardize = True

    def features(self, df: pd.DataFrame):
        raise NotImplementedError

    def fit(self, train, val=None):
        from sklearn.preprocessing import StandardScaler

        check_examples(train, label=True)
        if not _has_both(_labels(train)):
            raise ValueError(f"{self.name}: training labels hold a single class")
        t0 = time.perf_counter()
        X, y = self.features(train), _labels(train)
        Xv = yv = None
        if val is not None and len(val):
            check_examples(val, label=True)
            Xv, yv = self.features(val), _labels(val)
        self._log(f"features {X.shape} in {time.perf_counter() - t0:.2f}s")
        self.scaler_ = None
        if self.standardize:
            sparse = hasattr(X, "tocsr")
            self.scaler_ = StandardScaler(with_mean=not sparse).fit(X)
            X = self.scaler_.transform(X)
            Xv = None if Xv is None else self.scaler_.transform(Xv)
        Cs = [self.C] if self.C is not None else list(self.Cs)
        self.C_, self.cv_scores_ = _choose_C(lambda C: _logistic(C, self.random_state), X, y, Xv, yv, Cs,
                                             self.random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_ = _logistic(self.C_, self.random_state).fit(X, y)
        self._log(f"C={self.C_} (scores {self.cv_scores_})")
        return self

    def predict(self, df):
        check_examples(df)
        X = self.features(df)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        return self.model_.decision_function(X).astype(np.float64)

    def coefficients(self) -> pd.Series:
        """Logistic-regression weights per (standardised) feature, named."""
        return pd.Series(self.model_.coef_[0], index=self.feature_names_, name=self.name)


# =========================================================================== motifs
def _resolve_motifs(factor) -> list[Motif]:
    """Motifs of a factor spec: a Motif, a name, an assay name (via ASSAY_MOTIFS) or a sequence of those."""
    if isinstance(factor, Motif):
        return [factor]
    if isinstance(factor, str):
        key = factor.strip()
        if key.upper() in {k.upper() for k in FACTOR_MOTIF_IDS}:
            mid = next(v for k, v in FACTOR_MOTIF_IDS.items() if k.upper() == key.upper())
            return load_jaspar([mid])
        if key in ASSAY_MOTIFS:
            return _resolve_motifs(ASSAY_MOTIFS[key])
        if key[:2] == "MA" and "." in key:
            return load_jaspar([key])
        return load_jaspar(names=[key])
    out = []
    for f in factor:
        for m in _resolve_motifs(f):
            if m not in out:
                out.append(m)
    if not out:
        raise ValueError("no motifs given")
    return out


def _local(codes: np.ndarray, c: int, half: int) -> np.ndarray:
    """Columns ``c-half .. c+half`` of ``codes`` (N-padded beyond the window): ``(n, 2*half+1)``."""
    n, L = codes.shape
    out = np.full((n, 2 * half + 1), _N, dtype=np.uint8)
    a, b = c - half, c + half + 1
    sa, sb = max(a, 0), min(b, L)
    if sb > sa:
        out[:, sa - a:sb - a] = codes[:, sa:sb]
    return out


def _onehot_cl(codes: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``(n, 4, L)`` one-hot (channels first; N = zeros) of integer codes."""
    table = np.zeros((5, 4), dtype=dtype)
    table[np.arange(4), np.arange(4)] = 1
    return np.ascontiguousarray(table[codes].transpose(0, 2, 1))


def _motif_pwms(motifs, pseudocount):
    return [np.ascontiguousarray(m.log_odds(pseudocount=pseudocount), dtype=np.float64) for m in motifs]


def _overlap_best(codes: np.ndarray, c: int, pwm: np.ndarray) -> np.ndarray:
    """Best log-odds (bits, both strands) over the windows of width ``w`` that contain offset ``c``: ``(n,)``,
    scored by :func:`allelic.motifs.scan` on the ``2w - 1`` bases around ``c``.

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
    * ``hit_ref`` / ``hit_alt`` / ``hit``: that score reaches :func:`allelic.motifs.score_threshold` at
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
        Hit threshold (:func:`~allelic.motifs.score_threshold`, uniform background).
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
        return _resolve_motifs(self.factor)

    def features(self, df):
        f = motif_snv_features(df, self.motifs, pvalue=self.pvalue, pseudocount=self.pseudocount)
        self.feature_names_ = list(f.columns)
        return f.to_numpy()


# --------------------------------------------------------------------------- whole-window motif scan (torch)
class MotifScanner:
    """Vectorised scan of many motifs over fixed-length windows: the features of baseline (b).

    The scores come from :class:`allelic.motifs.PwmBank` (one ``conv1d`` per motif width over the one-hot
    windows, both strands, float32 without TF32 so GPU and CPU features agree). The ref window is scanned whole; the
    alt window only where it differs (the ``w`` windows of each width that contain the SNV), since everything
    else is shared with the ref window. Throughput: ~1 ms per 200-bp window pair for all 879 motifs on one CPU
    thread (17x the loop over :func:`allelic.motifs.scan`; ``benchmarks/bench_baselines.py``).

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
    """Multiplicative (Knuth) hash of non-negative int64 keys into ``range(n_features)``."""
    h = (key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    return (h % np.uint64(n_features)).astype(np.int64)


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


# =========================================================================== CNN
def _make_cnn(n_filters, kernel_size, n_filters2, kernel_size2, pool, hidden, dropout):
    import torch
    from torch import nn

    class GlobalMax(nn.Module):
        """Max over positions, ``(b, c, l) -> (b, c)`` (``amax``: its CUDA backward is deterministic, unlike
        ``AdaptiveMaxPool1d``'s)."""

        def forward(self, x):
            return x.amax(dim=-1)

    class SiameseCNN(nn.Module):
        """Shared trunk on each allele: conv -> relu -> maxpool -> conv -> relu -> global max; head on
        ``[h_ref, h_alt - h_ref]``: dense -> relu -> dropout -> dense (one logit)."""

        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(
                nn.Conv1d(4, n_filters, kernel_size, padding=kernel_size // 2), nn.ReLU(),
                nn.MaxPool1d(pool),
                nn.Conv1d(n_filters, n_filters2, kernel_size2, padding=kernel_size2 // 2), nn.ReLU(),
                GlobalMax())
            self.head = nn.Sequential(nn.Linear(2 * n_filters2, hidden), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(hidden, 1))

        def forward(self, ref, alt):
            h_r, h_a = self.trunk(ref), self.trunk(alt)
            return self.head(torch.cat([h_r, h_a - h_r], dim=1)).squeeze(1)

    return SiameseCNN()


class CNN(Baseline):
    """A small DeepSEA/Basset-like CNN, siamese over the two alleles.

    Architecture (:func:`_make_cnn`): one trunk with shared weights reads the one-hot ref window and the one-hot
    alt window separately — ``conv(4 -> n_filters, kernel_size) -> ReLU -> maxpool(pool) -> conv(n_filters ->
    n_filters2, kernel_size2) -> ReLU -> global max`` — and a dense head reads ``[h_ref, h_alt - h_ref]``
    (siamese rather than channel-stacked, so the same motif detectors see both alleles and their difference).

    Training: BCE loss, AdamW (``lr``, ``weight_decay``), mini-batches of ``batch_size``, random reverse-
    complement augmentation (``rc_augment``; prediction then averages both strands), at most ``max_epochs``
    epochs with early stopping on val AUPRC (``patience`` epochs; the best epoch's weights are kept). Without a
    ``val`` table holding both classes, ``val_fraction`` of ``train`` (stratified, from ``random_state``) is held
    out for early stopping and not trained on.

    Deterministic for a given ``random_state`` on a given device and thread count: weights, batch order,
    dropout and augmentation come from ``torch.manual_seed(random_state)`` inside ``torch.random.fork_rng``
    (the global RNG state is left untouched), with ``torch.use_deterministic_algorithms(True)`` during fit and
    predict. ``device="auto"``: CUDA when available."""

    name = "cnn"
    _uses_torch = True

    def __init__(self, *, n_filters: int = 64, kernel_size: int = 15, n_filters2: int = 64, kernel_size2: int = 5,
                 pool: int = 4, hidden: int = 32, dropout: float = 0.2, lr: float = 2e-3,
                 weight_decay: float = 1e-2, batch_size: int = 64, max_epochs: int = 30, patience: int = 5,
                 rc_augment: bool = True, val_fraction: float = 0.15, device: str = "auto",
                 n_jobs: int | None = 1, random_state=0, progress: bool = False):
        self.n_filters, self.kernel_size, self.n_filters2, self.kernel_size2 = (n_filters, kernel_size,
                                                                                n_filters2, kernel_size2)
        self.pool, self.hidden, self.dropout, self.lr, self.weight_decay = pool, hidden, dropout, lr, weight_decay
        self.batch_size, self.max_epochs, self.patience = batch_size, max_epochs, patience
        self.rc_augment, self.val_fraction, self.device = rc_augment, val_fraction, device
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    @staticmethod
    def _tensors(df):
        import torch

        ref, alt, _ = check_examples(df)
        return torch.as_tensor(_onehot_cl(ref)), torch.as_tensor(_onehot_cl(alt))

    def _deterministic(self):
        import contextlib

        import torch

        @contextlib.contextmanager
        def ctx():
            prev = torch.are_deterministic_algorithms_enabled()
            prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
            dev = torch.device(self.device_)
            devices = [dev.index or 0] if dev.type == "cuda" else []
            prev_cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
            try:
                with torch.random.fork_rng(devices=devices, device_type=dev.type if dev.type == "cuda" else "cuda"):
                    torch.use_deterministic_algorithms(True, warn_only=True)
                    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
                    torch.manual_seed(int(self.random_state))
                    yield
            finally:
                torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn

        return ctx()

    def _logits(self, model, R, A):
        import torch

        model.eval()
        out = []
        bs = max(256, 4 * self.batch_size)
        with torch.no_grad():
            for s in range(0, len(R), bs):
                r, a = R[s:s + bs].to(self.device_), A[s:s + bs].to(self.device_)
                z = model(r, a)
                if self.rc_augment:
                    z = 0.5 * (z + model(r.flip((1, 2)), a.flip((1, 2))))
                out.append(z.float().cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def fit(self, train, val=None):
        import torch

        self.device_ = str(resolve_device(self.device))
        y = _labels(train)
        if not _has_both(y):
            raise ValueError(f"{self.name}: training labels hold a single class")
        R, A = self._tensors(train)
        if val is not None and len(val) and _has_both(_labels(val)):
            Rv, Av = self._tensors(val)
            yv = _labels(val)
        else:   # hold out a stratified fraction of train for early stopping
            rng = np.random.default_rng(self.random_state)
            hold = np.zeros(len(y), bool)
            for cls in (0, 1):
                idx = np.flatnonzero(y == cls)
                hold[rng.choice(idx, max(1, int(round(self.val_fraction * len(idx)))), replace=False)] = True
            Rv, Av, yv = R[hold], A[hold], y[hold]
            R, A, y = R[~hold], A[~hold], y[~hold]
        Y = torch.as_tensor(y, dtype=torch.float32)
        t0 = time.perf_counter()
        with self._deterministic():
            model = _make_cnn(self.n_filters, self.kernel_size, self.n_filters2, self.kernel_size2, self.pool,
                              self.hidden, self.dropout).to(self.device_)
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            gen = torch.Generator().manual_seed(int(self.random_state))
            best, best_state, bad, history = -math.inf, None, 0, []
            for epoch in range(self.max_epochs):
                model.train()
                order = torch.randperm(len(Y), generator=gen)
                flips = torch.rand(len(Y), generator=gen) < 0.5
                total = 0.0
                for s in range(0, len(Y), self.batch_size):
                    i = order[s:s + self.batch_size]
                    r, a = R[i], A[i]
                    if self.rc_augment:
                        f = flips[i]
                        r = torch.where(f[:, None, None], r.flip((1, 2)), r)
                        a = torch.where(f[:, None, None], a.flip((1, 2)), a)
                    loss = loss_fn(model(r.to(self.device_), a.to(self.device_)), Y[i].to(self.device_))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(i)
                score = _auprc(yv, self._logits(model, Rv, Av))
                history.append({"epoch": epoch + 1, "train_loss": total / len(Y), "val_auprc": score})
                self._log(f"epoch {epoch + 1}: loss {total / len(Y):.4f} val AUPRC {score:.4f}")
                if score > best:
                    best, bad = score, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
            model.load_state_dict(best_state)
        self.model_ = model
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = int(self.history_.loc[self.history_["val_auprc"].idxmax(), "epoch"])
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def predict(self, df):
        R, A = self._tensors(df)
        with self._deterministic():
            return self._logits(self.model_, R, A)


# =========================================================================== transformer adapter
class FinetunedTransformer(Baseline):
    """Adapter putting a Hugging Face sequence classifier behind the :class:`Baseline` interface.

    ``model_factory()`` returns a fresh ``AutoModelForSequenceClassification``-like model (``num_labels=2``; a
    factory rather than a model so that :meth:`clone` and :func:`evaluate_models` fit from the same starting
    weights each time); ``fit`` runs :func:`allelic.train.finetune` with ``config`` (a
    :class:`~allelic.train.TrainConfig`, its ``random_state`` overridden by this object's) on ``seq_col`` (and
    ``alt_col`` for a siamese model, which reads both alleles), and ``predict`` returns
    :func:`allelic.train.predict`'s probability of the positive class."""

    name = "transformer"

    def __init__(self, model_factory: Callable, tokenizer, *, config=None, seq_col: str = "seq_ref",
                 alt_col: str = "seq_alt", max_length: int | None = None, out_dir=None, batch_size: int = 256,
                 device: str = "auto", n_jobs: int | None = None, random_state=0, progress: bool = False):
        self.model_factory, self.tokenizer, self.config, self.seq_col = model_factory, tokenizer, config, seq_col
        self.alt_col, self.max_length, self.out_dir, self.batch_size = alt_col, max_length, out_dir, batch_size
        self.device, self.n_jobs, self.random_state, self.progress = device, n_jobs, random_state, progress

    @classmethod
    def from_checkpoint(cls, checkpoint, *, head: str = "reference", pooling: str = "cls", centre_flank: int = 4,
                        nucleotide_conv: int = 0, **kwargs) -> "FinetunedTransformer":
        """Fine-tune a saved checkpoint (tokenizer beside it), as :func:`allelic.language_model.fit_assays`
        does: ``model_factory = lambda: load_model(checkpoint, task="classification", num_labels=2,
        classifier_head=head, classifier_pooling=pooling, classifier_centre_flank=centre_flank,
        nucleotide_conv_width=nucleotide_conv)``."""
        from .models import load_model
        from .tokenize import load_tokenizer

        def factory():
            return load_model(checkpoint, task="classification", num_labels=2, classifier_head=head,
                              classifier_pooling=pooling, classifier_centre_flank=centre_flank,
                              nucleotide_conv_width=nucleotide_conv)

        return cls(factory, load_tokenizer(checkpoint), **kwargs)

    def clone(self):
        new = type(self)(**self.get_params())   # factory and tokenizer are shared, not copied
        new.name = self.name
        return new

    def fit(self, train, val=None):
        import dataclasses

        from . import train as tr

        cfg = dataclasses.replace(self.config or tr.TrainConfig(), random_state=self.random_state,
                                  device=self.device)
        tr.seed_everything(self.random_state)
        self.model_ = self.model_factory()
        self.result_ = tr.finetune(self.model_, self.tokenizer, train, val, config=cfg, out_dir=self.out_dir,
                                   seq_col=self.seq_col, alt_col=self.alt_col, max_length=self.max_length)
        return self

    def predict(self, df):
        from . import train as tr
        from .models import is_pair_model

        alt = df[self.alt_col] if is_pair_model(self.model_) else None
        return tr.predict(self.model_, self.tokenizer, df[self.seq_col], alt, batch_size=self.batch_size,
                          device=self.device, max_length=self.max_length)


# =========================================================================== the standard set, evaluation
def all_baselines(assay: str, *, random_state=0, quick: bool = False, device: str = "cpu",
                  motifs: Sequence[Motif] | None = None, factor=None) -> list[Baseline]:
    """The standard baselines for one assay, in figure order: motif (a), JASPAR scan (b), JASPAR scan GBT,
    k-mer LR, gkm-SVM, CNN.

    ``factor`` overrides the motif(s) of baseline (a) (default ``ASSAY_MOTIFS[assay]``; an assay missing there
    raises ValueError unless ``factor`` is given or the assay is itself a JASPAR factor name). ``quick=True``
    (smoke profile): k = 1..4 k-mers, gkm l=8/k=4 with 4,096 hashed columns, 60 trees, a CNN of 32 filters and
    at most 10 epochs. ``motifs`` restricts the JASPAR scans (default: all CORE vertebrates). ``device`` is used
    by the CNN and the motif scan (``"auto"``: CUDA when available). Every model runs on one thread
    (``n_jobs=1``, see :func:`thread_limit`)."""
    factors = factor if factor is not None else ASSAY_MOTIFS.get(assay, assay)
    try:
        _resolve_motifs(factors)
    except ValueError as e:
        raise ValueError(f"no motif for assay {assay!r} ({e}); pass factor=... (a JASPAR name or id) or add it "
                         f"to ASSAY_MOTIFS") from None
    rs = random_state
    if quick:
        return [
            MotifLogistic(factors, random_state=rs),
            MotifScanLogistic(motifs, device=device, random_state=rs),
            MotifGBT(motifs, max_iter=60, learning_rate=0.1, device=device, random_state=rs),
            KmerLogistic(k=(1, 2, 3, 4), random_state=rs),
            GkmSVM(l=8, k=4, n_features=1 << 12, random_state=rs),
            CNN(n_filters=32, n_filters2=32, max_epochs=10, patience=3, device=device, random_state=rs),
        ]
    return [
        MotifLogistic(factors, random_state=rs),
        MotifScanLogistic(motifs, device=device, random_state=rs),
        MotifGBT(motifs, device=device, random_state=rs),
        KmerLogistic(random_state=rs),
        GkmSVM(random_state=rs),
        CNN(device=device, random_state=rs),
    ]


METRIC_COLUMNS = ["model", "assay", "auroc", "auprc", "n_test", "n_pos", "n_train", "n_val", "fit_seconds",
                  "predict_seconds"]


def evaluate_models(models, ex_table: pd.DataFrame, *, random_state=0, return_scores: bool = False):
    """Fit each model on ``split == "train"`` (``split == "val"`` passed as ``val``), score ``split == "test"``.

    Parameters
    ----------
    models
        A list of :class:`Baseline` objects, or a callable ``assay -> list[Baseline]`` (e.g.
        :func:`all_baselines`; called with ``random_state=`` when it accepts it). Rows are grouped by ``assay``.
        With a list and one assay in the table, the given objects are fitted in place (inspect them afterwards);
        with a list and several assays, each assay gets :meth:`Baseline.clone` copies and the given objects are
        left unfitted.
    ex_table
        Example table (module docstring). An assay without train or test rows raises ValueError.
    random_state
        Passed to a ``models`` callable.
    return_scores
        Also return the long table of test scores.

    Returns
    -------
    ``metrics``: one row per model x assay with :data:`METRIC_COLUMNS` (``model`` is the model's ``name``;
    AUROC/AUPRC from :func:`allelic.evaluate.binary_metrics`, NaN when the test rows hold one class; wall-clock
    ``fit_seconds``/``predict_seconds``). With ``return_scores=True``: ``(metrics, scores)``, ``scores`` having
    columns ``example_id, assay, model, label, score`` (one row per test example and model). The scores are not
    put in ``metrics.attrs`` on purpose: pandas compares ``attrs`` on ``concat``, which fails for DataFrames.
    """
    need = ["example_id", "assay", "label", "seq_ref", "seq_alt", "split"]
    missing = [c for c in need if c not in ex_table.columns]
    if missing:
        raise ValueError(f"example table lacks column(s) {missing}")
    bad = set(ex_table["split"].unique()) - {"train", "val", "test"}
    if bad:
        raise ValueError(f"split values must be train/val/test, got {sorted(map(str, bad))}")
    assays = sorted(ex_table["assay"].unique().tolist())
    rows, scores = [], []
    for assay in assays:
        g = ex_table[ex_table["assay"] == assay]
        if callable(models) and not isinstance(models, (list, tuple)):
            try:
                accepts = "random_state" in inspect.signature(models).parameters
            except (TypeError, ValueError):
                accepts = False
            ms = list(models(assay, random_state=random_state) if accepts else models(assay))
        else:
            ms = list(models) if len(assays) == 1 else [m.clone() for m in models]
        train, val, test = (g[g["split"] == s] for s in ("train", "val", "test"))
        if not len(train) or not len(test):
            raise ValueError(f"assay {assay!r} has {len(train)} train and {len(test)} test rows; need both")
        for m in ms:
            t0 = time.perf_counter()
            m.fit(train, val if len(val) else None)
            t1 = time.perf_counter()
            s = np.asarray(m.predict(test), dtype=np.float64).ravel()
            t2 = time.perf_counter()
            if s.shape != (len(test),):
                raise ValueError(f"{m.name}.predict returned {s.shape} scores for {len(test)} rows")
            met = binary_metrics(test["label"].to_numpy(), s)
            rows.append({"model": m.name, "assay": assay, "auroc": met["auroc"], "auprc": met["auprc"],
                         "n_test": met["n"], "n_pos": met["n_pos"], "n_train": len(train), "n_val": len(val),
                         "fit_seconds": t1 - t0, "predict_seconds": t2 - t1})
            scores.append(pd.DataFrame({"example_id": test["example_id"].to_numpy(), "assay": assay,
                                        "model": m.name, "label": test["label"].to_numpy(), "score": s}))
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    if return_scores:
        sc = (pd.concat(scores, ignore_index=True) if scores
              else pd.DataFrame(columns=["example_id", "assay", "model", "label", "score"]))
        return metrics, sc
    return metrics


def evaluate_folds(models, folds, *, random_state=0, return_scores: bool = False):
    """:func:`evaluate_models` on each fold, with a ``fold`` column (0, 1, ...) first in both tables.

    ``folds``: example tables or :class:`allelic.datasets.Examples` (their ``.table``), e.g.
    ``datasets.chromosome_folds(ex, 5)``. A list of models is cloned afresh for every fold and assay (the given
    objects stay unfitted); a callable is called per fold and assay. Feature rows are remembered across folds
    (same windows), so the JASPAR scans, k-mer and gapped k-mer counts are computed once per window."""
    mets, scs = [], []
    for i, fold in enumerate(folds):
        table = getattr(fold, "table", fold)
        ms = models if callable(models) and not isinstance(models, (list, tuple)) else [m.clone() for m in models]
        met, sc = evaluate_models(ms, table, random_state=random_state, return_scores=True)
        mets.append(met.assign(fold=i))
        scs.append(sc.assign(fold=i))
    if not mets:
        raise ValueError("no folds given")

    def first(t):
        return t[["fold"] + [c for c in t.columns if c != "fold"]]

    metrics = first(pd.concat(mets, ignore_index=True))
    return (metrics, first(pd.concat(scs, ignore_index=True))) if return_scores else metrics
