"""The standard set of baselines for an assay (:func:`all_baselines`) and their evaluation on an example table's
train/val/test split (:func:`evaluate_models`) or on every fold (:func:`evaluate_folds`).
"""
from __future__ import annotations

import inspect
import time
from typing import Sequence

import numpy as np
import pandas as pd

from ..evaluate import binary_metrics
from ..motifs import Motif
from .base import Baseline
from .cnn import CNN
from .kmer import GkmSVM, KmerLogistic
from ..motifs import ASSAY_MOTIFS, resolve_motifs
from .motif import MotifGBT, MotifLogistic, MotifScanLogistic


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
        resolve_motifs(factors)
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
        Example table (:mod:`allelic.baselines`). An assay without train or test rows raises ValueError.
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
    ``splits.chromosome_folds(ex, 5)``. A list of models is cloned afresh for every fold and assay (the given
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
