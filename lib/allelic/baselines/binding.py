"""Binding-first models, deltaSVM-style: learn a factor's binding from bound against background sequences, then
score a SNV by how much its alternative allele changes the predicted binding.

A binding model (:class:`BindingModel`) reads a *binding table* — columns ``sequence`` (equal-length ``ACGTN``
strings), ``bound`` (0/1) and ``split`` (``"train"``/``"val"``; other values, e.g. ``"test"``, are ignored) — and
gives every sequence a binding logit with both strands averaged, ``f(seq) = (g(seq) + g(revcomp(seq))) / 2``::

    binder.fit(table) -> binder                 # trains on train, early-stops / chooses C on val
    binder.score(seqs) -> np.ndarray (n,)       # binding logit, both strands averaged
    binder.effect(seq_ref, seq_alt) -> (n,)     # score(alt) - score(ref); > 0: the alternative allele binds more

================================  ===========================================================================
:class:`GkmBinding`               gapped k-mer vectors (:func:`~allelic.baselines.kmer.gapped_kmer_counts`,
                                  gkm-kernel weights, both strands pooled, hashed, L2-normalised per sequence)
                                  and an L2 logistic regression, ``C`` chosen on val by AUROC
:class:`CNNBinding`               the trunk of the :class:`~allelic.baselines.cnn.CNN` baseline (conv, maxpool,
                                  conv, global max) with a dense head, one sequence in, one logit out
================================  ===========================================================================

Why not the kernel gkm-SVM: ``gkmsvm-lite`` 0.1.0 (a true gkm kernel with LIBSVM) computes one 200-bp kernel
value in about 130 us on one thread (l=10, k=6, either the estimated or the direct kernel; measured on the
2-core development machine), so the Gram matrix of 20,000 sequences takes about 7 hours and scoring 2,000
sequences against 1,000 support vectors 150 s; the explicit feature map here trains in about 90 s.

Two AS predictors turn a fitted binder into :class:`~allelic.baselines.base.Baseline` objects for
:func:`~allelic.baselines.harness.evaluate_models`: :class:`BindingEffect` (zero-shot, ``|effect|``) and
:class:`BindingStacked` (the :class:`~allelic.baselines.motif.MotifGBT` features plus the binder's, see
:func:`binding_features`). Their :meth:`clone` shares the fitted binder instead of copying it.
"""
from __future__ import annotations

import copy
import time
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..distributed import resolve_device
from ..motifs import Motif, encode
from ..progress import bar
from .base import Baseline, thread_limit
from .cnn import CNN, EarlyStopping, _make_cnn, stratified_holdout
from .features import _onehot_cl, check_examples
from .kmer import gapped_kmer_counts
from .motif import MotifGBT

#: the inverse L2 strengths :class:`GkmBinding` tries (features are L2-normalised per sequence)
GKM_CS = (0.1, 1.0, 10.0, 100.0)


def _auroc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _as_codes(seqs) -> np.ndarray:
    """``(n, L)`` uint8 codes (A, C, G, T, N = 0..4) of one string, a sequence of equal-length strings, or codes."""
    if isinstance(seqs, np.ndarray) and seqs.ndim == 2 and seqs.dtype.kind in "ui":
        return seqs.astype(np.uint8, copy=False)
    if isinstance(seqs, str):
        seqs = [seqs]
    return encode([str(s) for s in seqs])[0]


def _revcomp_codes(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of ``(n, L)`` codes (N stays N)."""
    return np.ascontiguousarray(np.where(codes < 4, 3 - codes, codes)[:, ::-1]).astype(np.uint8)


# =========================================================================== the interface
class BindingModel:
    """Common interface of the binding models (see the module docstring).

    Subclasses implement ``_fit(X, y, Xv, yv)`` on ``(n, L)`` base codes and ``_logits(codes)`` (one strand).
    Constructor arguments are stored as attributes of the same name (:meth:`get_params`). :meth:`fit` and
    :meth:`score` run under :func:`~allelic.baselines.base.thread_limit` ``(n_jobs)``.

    After :meth:`fit`: ``val_auroc_`` (bound-vs-background AUROC of :meth:`score` on the val rows), ``fit_seconds_``
    (wall clock), ``n_train_`` and ``n_val_`` (rows used), ``val_source_`` (``"val"``, or ``"holdout"`` when the
    table's val rows lack a class and ``val_fraction`` of train was held out, stratified, and not trained on)."""

    name = "binding"
    _uses_torch = False
    #: the features already pool both strands, so ``g(seq) == g(revcomp(seq))`` and one pass suffices
    _strand_symmetric = False
    val_fraction = 0.15

    def get_params(self) -> dict:
        return Baseline.get_params(self)

    def __repr__(self) -> str:
        return Baseline.__repr__(self)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "fit_seconds_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError(f"{self.name}: call fit(table) first")

    def _log(self, msg: str) -> None:
        if getattr(self, "progress", False):
            print(f"[{self.name}] {msg}", flush=True)

    def _threads(self):
        if self._uses_torch:
            import torch  # noqa: F401  (so that thread_limit caps its threads too)
        return thread_limit(self.n_jobs)

    # ----------------------------------------------------------------- fit / score
    def fit(self, table: pd.DataFrame) -> "BindingModel":
        """Train on the ``split == "train"`` rows of a binding table; the ``"val"`` rows early-stop / choose."""
        missing = [c for c in ("sequence", "bound", "split") if c not in table.columns]
        if missing:
            raise ValueError(f"{self.name}: binding table lacks column(s) {missing}")
        y_all = table["bound"].to_numpy()
        if not np.isin(y_all, (0, 1)).all():
            raise ValueError(f"{self.name}: bound must be 0/1")
        split = table["split"].astype(str).to_numpy()
        tr, va = split == "train", split == "val"
        X, y = _as_codes(table["sequence"][tr]), y_all[tr].astype(int)
        if not 0 < y.sum() < len(y):
            raise ValueError(f"{self.name}: the {len(y)} train rows hold a single class (or none)")
        Xv, yv = _as_codes(table["sequence"][va]), y_all[va].astype(int)
        self.val_source_ = "val"
        if not (len(yv) and 0 < yv.sum() < len(yv)):
            hold = stratified_holdout(y, self.val_fraction, self.random_state)
            X, y, Xv, yv = X[~hold], y[~hold], X[hold], y[hold]
            self.val_source_ = "holdout"
        if X.shape[1] != Xv.shape[1]:
            raise ValueError(f"{self.name}: train sequences are {X.shape[1]} bp, val sequences {Xv.shape[1]} bp")
        t0 = time.perf_counter()
        with self._threads():
            self._fit(X, y, Xv, yv)
        self.n_train_, self.n_val_ = len(y), len(yv)
        self.fit_seconds_ = time.perf_counter() - t0
        self.val_auroc_ = _auroc(yv, self.score(Xv))
        self._log(f"fitted on {len(y)} sequences in {self.fit_seconds_:.1f}s, val AUROC {self.val_auroc_:.4f}")
        return self

    def score(self, seqs) -> np.ndarray:
        """Binding logit of each sequence, both strands averaged: float64 ``(n,)``. ``seqs``: equal-length
        strings (or one string, or ``(n, L)`` codes)."""
        self._check_fitted()
        codes = _as_codes(seqs)
        if len(codes) == 0:
            return np.zeros(0)
        with self._threads():
            z = self._logits(codes)
            if not self._strand_symmetric:
                z = 0.5 * (z + self._logits(_revcomp_codes(codes)))
        return np.asarray(z, dtype=np.float64)

    def effect(self, seq_ref, seq_alt) -> np.ndarray:
        """``score(alt) - score(ref)`` per pair, float64 ``(n,)`` (> 0: the alternative allele binds more)."""
        ref, alt = _as_codes(seq_ref), _as_codes(seq_alt)
        if ref.shape != alt.shape:
            raise ValueError(f"{self.name}: {ref.shape} ref codes against {alt.shape} alt codes")
        s = self.score(np.concatenate([ref, alt]))
        return s[len(ref):] - s[:len(ref)]

    # ----------------------------------------------------------------- save / load
    def _state(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.endswith("_")}

    def _set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, path) -> None:
        """Write the parameters and the fitted state to ``path`` (joblib)."""
        import joblib

        self._check_fitted()
        joblib.dump({"class": type(self).__name__, "params": self.get_params(), "state": self._state()}, path)

    @staticmethod
    def load(path) -> "BindingModel":
        """A model written by :meth:`save` (a pickle: load trusted files only)."""
        import joblib

        d = joblib.load(path)
        classes = {c.__name__: c for c in (GkmBinding, CNNBinding)}
        if d.get("class") not in classes:
            raise ValueError(f"{path}: not a saved binding model (class {d.get('class')!r})")
        m = classes[d["class"]](**d["params"])
        m._set_state(d["state"])
        return m

    def _fit(self, X, y, Xv, yv):
        raise NotImplementedError

    def _logits(self, codes: np.ndarray) -> np.ndarray:
        raise NotImplementedError


# =========================================================================== gapped k-mers
class GkmBinding(BindingModel):
    """Gapped k-mer binding model: explicit gkm feature map + L2 logistic regression.

    Features: :func:`~allelic.baselines.kmer.gapped_kmer_counts` (``l``, ``k``; every gapped k-mer pooled with its
    reverse complement, gkm-kernel weights ``sqrt(l - span + 1)``), hashed into ``n_features`` columns and
    L2-normalised per sequence (gkm-SVM's kernel normalisation), so the dot product of two rows approximates the
    normalised gkm kernel. Because the features pool both strands, ``g(seq) == g(revcomp(seq))`` exactly and
    :meth:`score` needs one pass. ``n_features`` should be odd (the default 16,381 is prime): the feature hash
    of :mod:`~allelic.baselines.kmer` reaches only 11,921 columns when it is a power of two (1 << 14 or 1 << 16).

    Model: ``LogisticRegression`` (lbfgs) for each ``C`` in ``Cs`` (increasing, warm-started), the one with the
    best val AUROC kept (``C_``, ``val_scores_``; ties go to the smaller C); not refitted. Memory: the training
    matrix is dense float32, ``4 * n_features`` bytes per sequence (1.3 GB for 20,000 sequences).
    Measured on planted CTCF sites (2-core development machine, one thread; 16,000 train + 4,000 val 200-bp
    sequences, l=10, k=6): features 29 s, the whole fit with the four default ``Cs`` about 90 s, peak memory 2.1 GB,
    val AUROC 0.965; scoring 2,000 sequences 2.5 s. Deterministic (lbfgs). ``device`` is accepted for a uniform
    interface; it runs on the CPU."""

    name = "gkm_binding"
    _strand_symmetric = True

    def __init__(self, l: int = 10, k: int = 6, *, n_features: int = 16381, Cs: Sequence[float] = GKM_CS,
                 max_iter: int = 500, tol: float = 1e-6, batch_size: int = 1000, device: str = "cpu",
                 n_jobs: int | None = 1, random_state=0, progress: bool = False):
        self.l, self.k, self.n_features, self.Cs, self.max_iter, self.tol = l, k, n_features, Cs, max_iter, tol
        self.batch_size, self.device = batch_size, device
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    def features(self, seqs) -> np.ndarray:
        """``(n, n_features)`` float32 L2-normalised gapped k-mer vectors of ``seqs`` (strings or codes)."""
        codes = _as_codes(seqs)
        out = np.empty((len(codes), self.n_features), dtype=np.float32)
        steps = range(0, len(codes), self.batch_size)
        for a in bar(steps, desc=f"{self.name} features", progress=self.progress and len(steps) > 1):
            b = min(len(codes), a + self.batch_size)
            x = gapped_kmer_counts(codes[a:b], self.l, self.k, n_features=self.n_features)
            nrm = np.linalg.norm(x, axis=1, keepdims=True)
            out[a:b] = x / np.where(nrm > 0, nrm, 1)
        return out

    def _fit(self, X, y, Xv, yv):
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        F, Fv = self.features(X), self.features(Xv)
        self._log(f"features {F.shape} in {time.perf_counter() - t0:.1f}s")
        lr = LogisticRegression(max_iter=self.max_iter, tol=self.tol, warm_start=True,
                                random_state=self.random_state)
        fits, self.val_scores_ = {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # convergence warnings at large C
            for C in sorted(float(c) for c in self.Cs):
                lr.set_params(C=C).fit(F, y)
                fits[C] = (lr.coef_.ravel().astype(np.float64), float(lr.intercept_[0]))
                self.val_scores_[C] = _auroc(yv, Fv @ fits[C][0] + fits[C][1])
                self._log(f"C={C:g}: val AUROC {self.val_scores_[C]:.4f} ({time.perf_counter() - t0:.1f}s)")
        self.C_ = max(self.val_scores_, key=lambda C: (self.val_scores_[C], -C))
        self.coef_, self.intercept_ = fits[self.C_]

    def _logits(self, codes):
        out = np.empty(len(codes))
        for a in range(0, len(codes), self.batch_size):
            b = min(len(codes), a + self.batch_size)
            out[a:b] = self.features(codes[a:b]) @ self.coef_ + self.intercept_
        return out


# =========================================================================== CNN
class CNNBinding(BindingModel):
    """A small binding CNN: the :class:`~allelic.baselines.cnn.CNN` baseline's trunk (``conv(4 -> n_filters,
    kernel_size) -> ReLU -> maxpool(pool) -> conv(-> n_filters2, kernel_size2) -> ReLU -> global max``, built by
    :func:`~allelic.baselines.cnn._make_cnn`) and a dense head ``dense(hidden) -> ReLU -> dropout -> dense(1)`` on
    one one-hot sequence: a bound-vs-background classifier.

    Training as the CNN baseline's: BCE loss, AdamW, mini-batches, random reverse-complement augmentation, at most
    ``max_epochs`` epochs with early stopping on val AUROC of the strand-averaged logit (``patience``; the best
    epoch's weights are kept; ``history_``, ``best_epoch_``). Deterministic for a given ``random_state`` on a given
    device and thread count (``torch.manual_seed`` inside ``torch.random.fork_rng``, deterministic algorithms;
    the CNN baseline's context manager). ``device="auto"``: CUDA when available.

    ``quick=True`` (smoke profile) makes the unset sizes smaller: 32 + 32 filters and at most 4 epochs instead of
    64 + 64 and 8 (explicit values win). Measured on planted CTCF sites (2-core development machine, one thread;
    16,000 train + 4,000 val 200-bp sequences): 8 epochs in 43 s (about 5 s each), val AUROC 0.994; ``quick``
    4 epochs in 12 s, val AUROC 0.991; scoring 2,000 sequences 0.3 s."""

    name = "cnn_binding"
    _uses_torch = True

    def __init__(self, *, quick: bool = False, n_filters: int | None = None, kernel_size: int = 15,
                 n_filters2: int | None = None, kernel_size2: int = 5, pool: int = 4, hidden: int = 32,
                 dropout: float = 0.2, lr: float = 2e-3, weight_decay: float = 1e-2, batch_size: int = 64,
                 max_epochs: int | None = None, patience: int = 2, rc_augment: bool = True,
                 val_fraction: float = 0.15, device: str = "auto", n_jobs: int | None = 1, random_state=0,
                 progress: bool = False):
        small = 32 if quick else 64
        self.quick = quick
        self.n_filters = small if n_filters is None else n_filters
        self.n_filters2 = small if n_filters2 is None else n_filters2
        self.max_epochs = (4 if quick else 8) if max_epochs is None else max_epochs
        self.kernel_size, self.kernel_size2, self.pool, self.hidden = kernel_size, kernel_size2, pool, hidden
        self.dropout, self.lr, self.weight_decay, self.batch_size = dropout, lr, weight_decay, batch_size
        self.patience, self.rc_augment, self.val_fraction, self.device = patience, rc_augment, val_fraction, device
        self.n_jobs, self.random_state, self.progress = n_jobs, random_state, progress

    _deterministic = CNN._deterministic

    def _network(self):
        from torch import nn

        trunk = _make_cnn(self.n_filters, self.kernel_size, self.n_filters2, self.kernel_size2, self.pool,
                          self.hidden, self.dropout).trunk
        return nn.Sequential(trunk, nn.Linear(self.n_filters2, self.hidden), nn.ReLU(), nn.Dropout(self.dropout),
                             nn.Linear(self.hidden, 1), nn.Flatten(0))

    def _forward(self, model, codes, flip: bool = False) -> np.ndarray:
        import torch

        model.eval()
        out = []
        bs = max(256, 4 * self.batch_size)
        with torch.no_grad():
            for a in range(0, len(codes), bs):
                x = torch.as_tensor(_onehot_cl(codes[a:a + bs])).to(self.device_)
                out.append(model(x.flip((1, 2)) if flip else x).float().cpu())
        return torch.cat(out).numpy().astype(np.float64)

    def _logits(self, codes):
        with self._deterministic():
            return self._forward(self.model_, codes)

    def _fit(self, X, y, Xv, yv):
        import torch

        self.device_ = str(resolve_device(self.device))
        T = torch.as_tensor(_onehot_cl(X))
        Y = torch.as_tensor(y, dtype=torch.float32)
        with self._deterministic():
            model = self._network().to(self.device_)
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            gen = torch.Generator().manual_seed(int(self.random_state))
            stop, history = EarlyStopping(self.patience), []
            for epoch in range(self.max_epochs):
                t0 = time.perf_counter()
                model.train()
                order = torch.randperm(len(Y), generator=gen)
                flips = torch.rand(len(Y), generator=gen) < 0.5
                total = 0.0
                steps = range(0, len(Y), self.batch_size)
                for s in bar(steps, desc=f"epoch {epoch + 1}", progress=self.progress, leave=False):
                    i = order[s:s + self.batch_size]
                    x = T[i]
                    if self.rc_augment:
                        x = torch.where(flips[i][:, None, None], x.flip((1, 2)), x)
                    loss = loss_fn(model(x.to(self.device_)), Y[i].to(self.device_))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(i)
                zv = 0.5 * (self._forward(model, Xv) + self._forward(model, Xv, flip=True))
                score = _auroc(yv, zv)
                history.append({"epoch": epoch + 1, "train_loss": total / len(Y), "val_auroc": score,
                                "seconds": time.perf_counter() - t0})
                self._log(f"epoch {epoch + 1}: loss {total / len(Y):.4f} val AUROC {score:.4f} "
                          f"({history[-1]['seconds']:.1f}s)")
                if stop.update(score, model):
                    break
            stop.restore(model)
        self.model_ = model
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = int(self.history_.loc[self.history_["val_auroc"].idxmax(), "epoch"])

    def _state(self):
        state = super()._state()
        state["model_"] = {k: v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        return state

    def _set_state(self, state):
        import torch

        state = dict(state)
        weights = state.pop("model_")
        super()._set_state(state)
        self.device_ = str(resolve_device(self.device))
        self.model_ = self._network().to(self.device_)
        self.model_.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})


# =========================================================================== AS predictors
def binding_features(binder: BindingModel, df: pd.DataFrame) -> pd.DataFrame:
    """A fitted binder's view of an example table's SNVs: columns ``effect`` (``score_alt - score_ref``),
    ``abs_effect``, ``score_ref``, ``score_alt`` (binding logits of the two windows), indexed like ``df``."""
    ref, alt, _ = check_examples(df)
    s = binder.score(np.concatenate([ref, alt]))
    r, a = s[:len(ref)], s[len(ref):]
    return pd.DataFrame({"effect": a - r, "abs_effect": np.abs(a - r), "score_ref": r, "score_alt": a},
                        index=df.index)


def _check_binder(binder, who: str) -> None:
    if not isinstance(binder, BindingModel):
        raise TypeError(f"{who}: binder must be a BindingModel, got {type(binder).__name__}")
    if not binder.is_fitted:
        raise ValueError(f"{who}: the binder {binder.name!r} is not fitted; call binder.fit(binding_table) first")


class _SharesBinder:
    """Mixin: :meth:`clone` copies every parameter but the binder, which the copy shares (it is fitted once on
    its own binding data and only read afterwards; a deep copy would duplicate a model per fold and assay)."""

    def clone(self):
        params = self.get_params()
        binder = params.pop("binder")
        new = type(self)(binder, **copy.deepcopy(params))
        new.name = self.name
        return new


class BindingEffect(_SharesBinder, Baseline):
    """Zero-shot AS score of a fitted binding model: ``predict(df) = |binder.effect(seq_ref, seq_alt)|``.

    ``fit`` trains nothing (it checks that the binder is fitted and the table is valid), so the train rows are
    unused. :meth:`signed` gives the signed effect (``signed_`` keeps the last :meth:`predict`'s). ``name``
    defaults to ``"<binder name>_effect"``. The binder is fitted once, outside the harness, and shared by every
    fold: keep its binding data away from the regions of the AS test windows, or the comparison leaks."""

    def __init__(self, binder: BindingModel, *, name: str | None = None):
        self.binder = binder
        self.name = name or f"{getattr(binder, 'name', 'binder')}_effect"

    def fit(self, train, val=None):
        _check_binder(self.binder, self.name)
        check_examples(train)
        return self

    def signed(self, df: pd.DataFrame) -> np.ndarray:
        """``score(alt window) - score(ref window)`` per row, float64 ``(n,)``."""
        _check_binder(self.binder, self.name)
        return binding_features(self.binder, df)["effect"].to_numpy()

    def predict(self, df):
        """``|signed(df)|``; the signed effects of the last call stay in ``signed_``."""
        self.signed_ = self.signed(df)
        return np.abs(self.signed_)


class BindingStacked(_SharesBinder, MotifGBT):
    """The JASPAR-scan GBT (:class:`~allelic.baselines.motif.MotifGBT`, same settings) with a fitted binder's
    :func:`binding_features` (``effect``, ``abs_effect``, ``score_ref``, ``score_alt``) appended to its features.

    The scan features are cached as MotifGBT's; the binder's are recomputed on every call. ``quick=True`` grows
    60 trees instead of 150 (as :func:`~allelic.baselines.harness.all_baselines` does for MotifGBT) unless
    ``max_iter`` is given. ``name`` defaults to ``"motif_gbt+<binder name>"``."""

    def __init__(self, binder: BindingModel, motifs: Sequence[Motif] | None = None, *, quick: bool = False,
                 pvalue: float = 1e-4, max_iter: int | None = None, learning_rate: float = 0.1,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 10, l2_regularization: float = 1.0,
                 max_features: float = 0.3, max_bins: int = 64, batch_size: int = 64, device: str = "cpu",
                 cache: bool = True, n_jobs: int | None = 1, random_state=0, progress: bool = False,
                 name: str | None = None):
        super().__init__(motifs, pvalue=pvalue, max_iter=(60 if quick else 150) if max_iter is None else max_iter,
                         learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                         min_samples_leaf=min_samples_leaf, l2_regularization=l2_regularization,
                         max_features=max_features, max_bins=max_bins, batch_size=batch_size, device=device,
                         cache=cache, n_jobs=n_jobs, random_state=random_state, progress=progress)
        self.binder, self.quick = binder, quick
        self.name = name or f"motif_gbt+{binder.name}"

    def features(self, df):
        X = super().features(df)
        B = binding_features(self.binder, df)
        self.feature_names_ = list(self.feature_names_) + [f"{self.binder.name}:{c}" for c in B.columns]
        return np.hstack([X, B.to_numpy(dtype=X.dtype)])

    def fit(self, train, val=None):
        _check_binder(self.binder, self.name)
        return super().fit(train, val)
