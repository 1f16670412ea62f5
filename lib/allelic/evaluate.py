"""Scoring calls against a truth: confusion counts, precision, recall and false discovery proportion."""
from __future__ import annotations

import numpy as np
import pandas as pd


def confusion(called, truth) -> dict:
    """Counts ``tp, fp, fn, tn`` and ``precision``, ``recall``, ``fdp`` (= 1 - precision) and ``accuracy``
    for two boolean arrays of the same length. Precision and FDP are NaN when nothing is called."""
    called, truth = np.asarray(called, bool), np.asarray(truth, bool)
    if called.shape != truth.shape:
        raise ValueError(f"called and truth differ in length: {called.shape} vs {truth.shape}")
    tp = int((called & truth).sum())
    fp = int((called & ~truth).sum())
    fn = int((~called & truth).sum())
    tn = int((~called & ~truth).sum())
    n_called = tp + fp
    precision = tp / n_called if n_called else np.nan
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision,
            "recall": tp / (tp + fn) if tp + fn else np.nan,
            "fdp": 1 - precision if n_called else np.nan, "accuracy": (tp + tn) / max(len(called), 1)}


def call_metrics(calls: pd.DataFrame, truth: pd.DataFrame, call_cols, *, on=("sample", "chrom", "pos"),
                 truth_col: str = "is_as", by=None) -> pd.DataFrame:
    """Score boolean call columns of ``calls`` against ``truth[truth_col]``, joined on ``on``.

    Truth rows without a matching call row (not tested: no reads or too few) count as not called, so recall is over
    all true measurements. Call rows without a truth row are ignored (their number is reported as ``n_no_truth``).
    Returns one row per call column (and per ``by`` group when given) with :func:`confusion`'s fields."""
    on = list(on)
    call_cols = [call_cols] if isinstance(call_cols, str) else list(call_cols)
    missing = [c for c in on + call_cols if c not in calls.columns] + [c for c in on + [truth_col] if c not in truth.columns]
    if missing:
        raise ValueError(f"missing column(s) for call_metrics: {', '.join(missing)}")
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    keep = on + [c for c in by if c not in on and c in truth.columns] + [truth_col]
    m = truth[keep].merge(calls[on + call_cols], on=on, how="left", indicator=True)
    n_no_truth = int(len(calls) - (m["_merge"] == "both").sum())
    rows = []
    groups = m.groupby(by, sort=True) if by else [((), m)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for c in call_cols:
            rec = dict(zip(by, key))
            rec.update({"call": c, "n_true": int(g[truth_col].sum()), "n_tested": int((g["_merge"] == "both").sum()),
                        **confusion(g[c].eq(True).to_numpy(), g[truth_col].astype(bool).to_numpy())})
            rows.append(rec)
    out = pd.DataFrame(rows)
    out.attrs["n_no_truth"] = n_no_truth
    return out
