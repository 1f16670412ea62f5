"""The convolutional baseline: a small siamese DeepSEA/Basset-like CNN on the one-hot ref and alt windows
(:class:`CNN`).
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import pandas as pd

from ..distributed import resolve_device
from .base import Baseline, _auprc
from .features import _has_both, _labels, _onehot_cl, check_examples


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


def stratified_holdout(y: np.ndarray, fraction: float, random_state) -> np.ndarray:
    """Stratified boolean mask of ``fraction`` of each class of 0/1 labels ``y`` (at least one row per class),
    drawn with ``numpy.random.default_rng(random_state)``."""
    rng = np.random.default_rng(random_state)
    hold = np.zeros(len(y), bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        hold[rng.choice(idx, max(1, int(round(fraction * len(idx)))), replace=False)] = True
    return hold


class EarlyStopping:
    """Early stopping on a validation score (higher is better): :meth:`update` after each epoch keeps a copy of the
    weights of the best epoch so far and says whether ``patience`` epochs in a row have not improved on it;
    :meth:`restore` loads the best weights back."""

    def __init__(self, patience: int):
        self.patience, self.best, self.state, self.bad = patience, -math.inf, None, 0

    def update(self, score: float, model) -> bool:
        if score > self.best:
            self.best, self.bad = score, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, model) -> None:
        model.load_state_dict(self.state)


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
            hold = stratified_holdout(y, self.val_fraction, self.random_state)
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
            stop, history = EarlyStopping(self.patience), []
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
                if stop.update(score, model):
                    break
            stop.restore(model)
        self.model_ = model
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = int(self.history_.loc[self.history_["val_auprc"].idxmax(), "epoch"])
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def predict(self, df):
        R, A = self._tensors(df)
        with self._deterministic():
            return self._logits(self.model_, R, A)
