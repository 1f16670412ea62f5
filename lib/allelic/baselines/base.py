"""The interface every baseline shares (:class:`Baseline`), the thread cap its ``fit`` and ``predict`` run under
(:func:`thread_limit`), and the shared feature + L2 logistic regression model with its choice of ``C``
(``_LinearFeatureModel``).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import sys
import time
import warnings

import numpy as np
import pandas as pd

from .features import _has_both, _labels, check_examples

#: the inverse L2 strengths tried when a logistic model's ``C`` is chosen on val / by CV
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


# =========================================================================== threads
def thread_limit(n_jobs: int | None):
    """Context manager capping the BLAS/OpenMP threads (``threadpoolctl``) and torch's intra-op threads at
    ``n_jobs`` (restored afterwards); a no-op for None.

    Why the models default to one thread: on a machine whose cores are busy with other work, spinning OpenMP
    threads make multi-threaded small kernels collapse — measured on the 2-core development machine while
    another 2-thread process ran: the toy set's JASPAR scan took 41 s with 2 torch threads and 2.5 s with 1, the
    CNN fit 108 s against 3.4 s. Pass ``n_jobs=None`` (library defaults) on a dedicated many-core machine."""
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
