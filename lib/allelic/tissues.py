"""Differential variant effects across tissues: SNVs x tissues in AnnData, and nested logistic models asking whether
a sequence score adds to tissue epigenetic signals (chapter 07, in progress).

* :func:`to_anndata` turns chapter 02's long imbalance table (one row per SNV x sample) into an
  :class:`anndata.AnnData` of **SNVs x tissues** for one assay: ``obs`` one row per donor x SNV, ``var`` one row per
  tissue, layers with the allele counts, the allelic ratio, the AS call and its p-value (NaN where the SNV was not
  measured in that tissue), and, per signal assay, that assay's read depth at the same SNV in the same tissue
  (``signal_<assay>``: the tissue-specific epigenetic signal; 0 where that assay has no reads there).
* :func:`pairs` lays the AnnData out as one row per measured SNV x tissue pair, the unit of the models.
* :func:`nested_logit` fits, with statsmodels, logistic regressions of the AS call on the tissue signals, then
  + the sequence score, then + its interaction with the signals; likelihood-ratio tests between consecutive models;
  odds ratios with Wald confidence intervals; AUROC of each model on held-out chromosomes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LAYERS", "to_anndata", "pairs", "NestedModels", "lrt", "nested_logit"]

#: layers of :func:`to_anndata` taken from the imbalance table (column -> layer)
LAYERS = {"hap1_count": "hap1_count", "hap2_count": "hap2_count", "ref_count": "ref_count",
          "alt_count": "alt_count", "total": "total", "ratio": "ratio", "p_betabinom": "pvalue",
          "as_betabinom": "as_call"}
_KEY = ["donor", "chrom", "pos", "ref", "alt"]


def _snv_ids(df: pd.DataFrame) -> pd.Series:
    return (df["donor"].astype(str) + ":" + df["chrom"].astype(str) + ":" + df["pos"].astype(str) + ":"
            + df["ref"].astype(str) + ":" + df["alt"].astype(str))


def to_anndata(imbalance: pd.DataFrame, *, assay: str, signal_assays=(), snv_features: pd.DataFrame | None = None):
    """SNVs x tissues of one assay as AnnData.

    ``imbalance``: chapter 02's table (columns ``donor, tissue, assay, chrom, pos, ref, alt`` and those of
    :data:`LAYERS`). ``obs``: one row per donor x SNV measured in ``assay`` in any tissue (index
    ``donor:chrom:pos:ref:alt``; columns ``donor, chrom, pos, ref, alt``, ``n_tissues`` measured, then the columns of
    ``snv_features`` merged on ``chrom, pos, ref, alt``, e.g. a sequence score). ``var``: one row per tissue (index
    tissue; ``n_snvs`` measured). ``X``: the allelic ratio (float, NaN where not measured). Layers: :data:`LAYERS`
    (float; ``as_call`` 1/0; NaN where not measured) and ``signal_<assay>`` = ``total`` reads of each signal assay at
    that donor, SNV and tissue (0 where it has none). Raises ValueError naming missing columns or an unknown assay,
    and for duplicated SNV x sample rows."""
    import anndata as ad

    need = set(_KEY) | {"tissue", "assay"} | set(LAYERS)
    missing = sorted(need - set(imbalance.columns))
    if missing:
        raise ValueError(f"imbalance table: missing columns {missing}")
    assays = sorted(imbalance["assay"].unique())
    for a in [assay, *signal_assays]:
        if a not in assays:
            raise ValueError(f"assay {a!r} is not in the imbalance table (assays: {assays})")
    t = imbalance[imbalance["assay"] == assay].copy()
    t["snv_id"] = _snv_ids(t)
    dup = t.duplicated(["snv_id", "tissue"])
    if dup.any():
        r = t[dup].iloc[0]
        raise ValueError(f"SNV {r['snv_id']} appears twice in tissue {r['tissue']} for {assay} (one row per SNV x "
                         f"sample expected)")
    obs = t.drop_duplicates("snv_id").set_index("snv_id")[_KEY].sort_index()
    tissues = sorted(t["tissue"].unique())
    row = pd.Index(obs.index).get_indexer(t["snv_id"])
    col = pd.Index(tissues).get_indexer(t["tissue"])
    layers = {}
    for src, name in LAYERS.items():
        m = np.full((len(obs), len(tissues)), np.nan)
        m[row, col] = t[src].astype(float).to_numpy()
        layers[name] = m
    for a in signal_assays:
        s = imbalance[imbalance["assay"] == a]
        s = s.assign(snv_id=_snv_ids(s))
        m = np.zeros((len(obs), len(tissues)))
        r, c = pd.Index(obs.index).get_indexer(s["snv_id"]), pd.Index(tissues).get_indexer(s["tissue"])
        ok = (r >= 0) & (c >= 0)
        m[r[ok], c[ok]] = s["total"].astype(float).to_numpy()[ok]
        layers[f"signal_{a}"] = m
    measured = np.isfinite(layers["ratio"])
    obs = obs.assign(n_tissues=measured.sum(1))
    if snv_features is not None:
        feats = snv_features.drop_duplicates(["chrom", "pos", "ref", "alt"])
        obs = obs.reset_index().merge(feats, on=["chrom", "pos", "ref", "alt"], how="left").set_index("snv_id")
    var = pd.DataFrame({"n_snvs": measured.sum(0)}, index=pd.Index(tissues, name="tissue"))
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=layers["ratio"].copy(), obs=obs, var=var, layers=layers,
                      uns={"assay": assay, "signal_assays": list(signal_assays)})


def pairs(adata, *, score: str | None = None) -> pd.DataFrame:
    """One row per measured SNV x tissue pair: ``snv_id, tissue`` and the obs columns ``donor, chrom``, the layers
    ``as_call``, ``ratio``, ``total`` and every ``signal_*`` layer, and ``score`` (an obs column) when given."""
    measured = np.isfinite(adata.layers["ratio"])
    r, c = np.nonzero(measured)
    out = pd.DataFrame({"snv_id": adata.obs_names[r], "tissue": adata.var_names[c],
                        "donor": adata.obs["donor"].to_numpy()[r], "chrom": adata.obs["chrom"].to_numpy()[r]})
    for name in ["as_call", "ratio", "total"] + [k for k in adata.layers if k.startswith("signal_")]:
        out[name] = adata.layers[name][r, c]
    if score is not None:
        if score not in adata.obs.columns:
            raise ValueError(f"no obs column {score!r} (obs: {list(adata.obs.columns)})")
        out[score] = adata.obs[score].to_numpy()[r]
    return out


def lrt(llf_reduced: float, llf_full: float, df: int) -> tuple[float, float]:
    """Likelihood-ratio test of nested models: ``(statistic, pvalue)``, ``2 (llf_full - llf_reduced)`` against a
    chi-squared with ``df`` degrees of freedom."""
    from scipy.stats import chi2

    stat = max(0.0, 2.0 * (float(llf_full) - float(llf_reduced)))
    return stat, float(chi2.sf(stat, df))


@dataclass
class NestedModels:
    """Result of :func:`nested_logit`. ``models``: one row per model (``model``, ``terms``, ``n_params``, ``llf``,
    ``aic``, ``auroc_test`` on the held-out chromosomes, ``n_train``, ``n_test``); ``tests``: one row per
    likelihood-ratio test of a model against the one before (``model``, ``against``, ``statistic``, ``df``,
    ``pvalue``); ``odds_ratios``: every coefficient of every model (``model``, ``term``, ``odds_ratio``, ``low``,
    ``high`` (Wald 95 %), ``pvalue``); ``fits``: the statsmodels results by model name."""

    models: pd.DataFrame
    tests: pd.DataFrame
    odds_ratios: pd.DataFrame
    fits: dict


def _design(df: pd.DataFrame, signals, score, interaction: bool) -> dict:
    base = pd.DataFrame({"const": 1.0}, index=df.index)
    sig = np.log1p(df[list(signals)].astype(float)).add_prefix("log1p_")
    steps = {"signals": pd.concat([base, sig], axis=1)}
    if score is not None:
        steps["signals + score"] = steps["signals"].assign(**{score: df[score].astype(float)})
        if interaction:
            inter = sig.mul(df[score].astype(float), axis=0).add_suffix(f":{score}")
            steps["signals + score + interaction"] = pd.concat([steps["signals + score"], inter], axis=1)
    return steps


def nested_logit(data: pd.DataFrame, *, signals, score: str | None, response: str = "as_call",
                 interaction: bool = True, test_chroms=None) -> NestedModels:
    """Logistic regressions of ``response`` (0/1) on log1p tissue ``signals``, then + ``score``, then + the
    ``score`` x signal interactions, each fitted by maximum likelihood (``statsmodels.api.Logit``) on the rows whose
    ``chrom`` is not in ``test_chroms`` (all rows when None) and scored by AUROC on the others. Consecutive models
    are compared by likelihood-ratio tests (:func:`lrt`) on the training rows. Rows with a missing value in any
    column used are dropped before fitting (their number is ``.attrs["n_dropped"]`` of ``models``). Raises
    ValueError for a response that is not 0/1, a missing column, or a predictor that is constant on the training
    rows (e.g. a mark never measured at these SNVs)."""
    import statsmodels.api as sm
    from sklearn.metrics import roc_auc_score

    cols = [response, "chrom", *signals] + ([score] if score else [])
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"missing columns {missing} (have {list(data.columns)})")
    df = data.dropna(subset=cols)
    n_dropped = len(data) - len(df)
    y = df[response].astype(float)
    if not y.isin([0.0, 1.0]).all():
        raise ValueError(f"{response} must be 0/1")
    test = df["chrom"].isin(list(test_chroms)) if test_chroms is not None else pd.Series(False, index=df.index)
    for c in [*signals] + ([score] if score else []):
        if df.loc[~test, c].nunique() < 2:
            raise ValueError(f"{c!r} is constant ({df.loc[~test, c].iloc[0] if (~test).any() else 'no rows'}) on the "
                             f"{int((~test).sum())} training rows: it carries no information; leave it out")
    steps = _design(df, signals, score, interaction)
    rows, tests, ors, fits = [], [], [], {}
    prev = None
    for name, X in steps.items():
        fit = sm.Logit(y[~test], X[~test]).fit(disp=0, maxiter=200)
        fits[name] = fit
        auroc = np.nan
        if test.any() and y[test].nunique() == 2:
            auroc = float(roc_auc_score(y[test], fit.predict(X[test])))
        rows.append({"model": name, "terms": " + ".join(X.columns[1:]), "n_params": X.shape[1], "llf": fit.llf,
                     "aic": fit.aic, "auroc_test": auroc, "n_train": int((~test).sum()), "n_test": int(test.sum())})
        ci = np.exp(fit.conf_int())
        for term in X.columns:
            ors.append({"model": name, "term": term, "odds_ratio": float(np.exp(fit.params[term])),
                        "low": float(ci.loc[term, 0]), "high": float(ci.loc[term, 1]),
                        "pvalue": float(fit.pvalues[term])})
        if prev is not None:
            stat, p = lrt(fits[prev].llf, fit.llf, X.shape[1] - steps[prev].shape[1])
            tests.append({"model": name, "against": prev, "statistic": stat, "df": X.shape[1] - steps[prev].shape[1],
                          "pvalue": p})
        prev = name
    models = pd.DataFrame(rows)
    models.attrs["n_dropped"] = n_dropped
    return NestedModels(models=models, tests=pd.DataFrame(tests, columns=["model", "against", "statistic", "df",
                                                                           "pvalue"]),
                        odds_ratios=pd.DataFrame(ors), fits=fits)
