"""Example tables checked and encoded, and the in-memory cache of their feature rows.

:func:`check_examples` validates an example table (see :mod:`allelic.baselines`) and returns its base codes;
``_local`` and ``_onehot_cl`` are the window encodings the models share. The motif-scan, k-mer and gapped k-mer
feature rows go through ``_features``, which remembers them by ``(settings, seq_ref, seq_alt)`` in one store
(``_STORE``, at most :data:`FEATURE_CACHE_BYTES`; :func:`clear_feature_cache` empties it), so the models, splits
and folds of one table featurise each window once.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..motifs import N_CODE, encode

#: upper bound on the memory held by the feature cache (bytes)
FEATURE_CACHE_BYTES = 1 << 30

_N = N_CODE


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
