"""Differential variant effects across tissues: SNVs x tissues in AnnData, nested logistic models asking whether a
sequence score adds to tissue epigenetic signals, and tissues embedded by their allelic profiles (chapter 07).

* :func:`to_anndata` turns chapter 02's long imbalance table (one row per SNV x sample) into an
  :class:`anndata.AnnData` of **SNVs x tissues** for one assay: ``obs`` one row per donor x SNV, ``var`` one row per
  tissue (with its metadata: SNVs measured, donors, AS fraction, median depth), layers with the allele counts, the
  allelic ratio, the AS call and its p-value (NaN where the SNV was not measured in that tissue), and, per signal
  assay, that assay's read depth at the same SNV in the same tissue (``signal_<assay>``: the tissue-specific
  epigenetic signal; 0 where that assay has no reads there).
* :func:`snv_features` gathers per-SNV features for ``obs``: out-of-fold sequence scores of chapter 05's models
  (the transformer and every baseline scored each SNV from a fold that held its chromosome out), the motif score
  change of the assay's factor, and the leak group of chapter 03 (SNVs whose windows overlap).
* :func:`pairs` lays the AnnData out as one row per measured SNV x tissue pair, the unit of the models;
  :func:`informative_signals` keeps the signals that vary at these SNVs (the others go to a ledger).
* :func:`nested_logit` fits, with statsmodels, logistic regressions of the AS call on the tissue signals, then
  + the sequence score, then + its interaction with the signals: likelihood-ratio tests between consecutive models,
  cluster-robust Wald tests of the same terms (pairs of one SNV, or of overlapping windows, are not independent),
  odds ratios per standard deviation with confidence intervals, and AUROC of each model on held-out chromosomes.
  :func:`per_tissue` asks the score question in each tissue separately (Benjamini-Hochberg across tissues).
* :func:`discordant_pairs` asks the differential question: when an SNV is AS in one tissue of a donor and not in
  another, do the signal differences (and their interaction with the score) tell which?
* :func:`sample_profiles` builds **samples (donor x tissue) x SNVs** of AS effects for scanpy; :func:`embed` adds
  the PCA and the tissue dendrogram; :func:`neighbour_agreement` measures how often a sample's nearest neighbour
  by AS profile is the same tissue in another donor (with a permutation p-value).
* :func:`analyse` runs all of it for one assay (:class:`TissueAnalysis`, :func:`compare_scores` over every score,
  :func:`score_bins` for the heatmap) and :func:`write` saves it (AnnData as ``.h5ad``, tables as TSV).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .baselines import motif_snv_features
from .evaluate import auroc_difference
from .fdr import bh_fdr
from .ledger import Ledger
from .motifs import resolve_motifs

__all__ = ["COUNT_LAYERS", "to_anndata", "snv_features", "pairs", "informative_signals", "NestedModels", "lrt",
           "nested_logit", "per_tissue", "null_calibration", "discordant_pairs", "sample_profiles", "embed",
           "neighbour_agreement",
           "score_quantiles", "score_bins", "compare_scores", "TissueAnalysis", "analyse", "write"]

#: layers of :func:`to_anndata` taken from the imbalance table as they are (column -> layer); the AS call and its
#: p-value come from the columns named by ``call`` and ``pvalue``
COUNT_LAYERS = {"hap1_count": "hap1_count", "hap2_count": "hap2_count", "ref_count": "ref_count",
                "alt_count": "alt_count", "total": "total", "ratio": "ratio"}
_SITE = ["chrom", "pos", "ref", "alt"]
_KEY = ["donor", *_SITE]


def _ids(df: pd.DataFrame, cols) -> pd.Series:
    out = df[cols[0]].astype(str)
    for c in cols[1:]:
        out = out + ":" + df[c].astype(str)
    return out


def _deepest(t: pd.DataFrame, key: list, ledger: Ledger, source: str) -> pd.DataFrame:
    """One row per ``key``: the replicate with the most reads (ties: the first); the others go to the ledger."""
    order = t.sort_values("total", ascending=False, kind="stable")
    dup = order.duplicated(key)
    gone = order[dup]
    ledger.extend("to_anndata", source, (gone["snv_id"] + " " + gone["tissue"].astype(str)).tolist(),
                  "replicate_measurement", "same SNV in the same donor and tissue; the deepest replicate kept")
    return order[~dup].sort_index()


def to_anndata(imbalance: pd.DataFrame, *, assay: str, signal_assays=(), snv_features: pd.DataFrame | None = None,
               call: str = "as_betabinom", pvalue: str = "p_betabinom", replicates: str = "error",
               source: str = "imbalance table"):
    """SNVs x tissues of one assay as AnnData.

    ``imbalance``: chapter 02's table (columns ``donor, tissue, assay, chrom, pos, ref, alt``, those of
    :data:`COUNT_LAYERS`, ``call`` (the AS call, bool or 0/1) and ``pvalue``). ``obs``: one row per donor x SNV
    measured in ``assay`` in any tissue (index ``donor:chrom:pos:ref:alt``; columns ``donor, chrom, pos, ref, alt``,
    ``snv`` (``chrom:pos:ref:alt``, shared across donors), ``n_tissues`` measured, then the columns of
    ``snv_features`` merged on ``chrom, pos, ref, alt``, e.g. a sequence score). ``var``: one row per tissue (index
    tissue; ``n_snvs`` measured, ``n_donors``, ``n_as``, ``frac_as``, ``median_total``). ``X``: the allelic ratio
    (float, NaN where not measured). Layers: :data:`COUNT_LAYERS`, ``as_call`` (1/0) and ``pvalue`` (float; NaN where
    not measured) and ``signal_<assay>`` = ``total`` reads of each signal assay at that donor, SNV and tissue (0 where
    it has none; several replicates: the deepest). ``uns``: ``assay``, ``signal_assays``, ``call``, ``ledger``
    (a DataFrame of the rows left out).

    ``replicates``: what to do with several rows of one SNV in one donor and tissue (EN-TEx lists replicates):
    ``"error"`` (raise ValueError naming the first), or ``"deepest"`` (keep the one with the most reads; the others go
    to the ledger). Raises ValueError naming missing columns or an unknown assay."""
    import anndata as ad

    if replicates not in ("error", "deepest"):
        raise ValueError(f"replicates must be 'error' or 'deepest', not {replicates!r}")
    need = set(_KEY) | {"tissue", "assay", call, pvalue} | set(COUNT_LAYERS)
    missing = sorted(need - set(imbalance.columns))
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    assays = sorted(imbalance["assay"].unique())
    for a in [assay, *signal_assays]:
        if a not in assays:
            raise ValueError(f"{source}: assay {a!r} is not in the table (assays: {assays})")
    ledger = Ledger()
    t = imbalance[imbalance["assay"] == assay].copy()
    t["snv_id"] = _ids(t, _KEY)
    dup = t.duplicated(["snv_id", "tissue"])
    if dup.any() and replicates == "error":
        r = t[dup].iloc[0]
        raise ValueError(f"{source}: SNV {r['snv_id']} appears twice in tissue {r['tissue']} for {assay} (one row per "
                         f"SNV x sample expected; replicates='deepest' keeps the deepest)")
    if dup.any():
        t = _deepest(t, ["snv_id", "tissue"], ledger, source)
    obs = t.drop_duplicates("snv_id").set_index("snv_id")[_KEY].sort_index()
    obs["snv"] = _ids(obs, _SITE)
    tissues = sorted(t["tissue"].unique())
    row, col = pd.Index(obs.index).get_indexer(t["snv_id"]), pd.Index(tissues).get_indexer(t["tissue"])
    shape = (len(obs), len(tissues))
    layers = {}
    for src, name in [*COUNT_LAYERS.items(), (call, "as_call"), (pvalue, "pvalue")]:
        m = np.full(shape, np.nan)
        m[row, col] = t[src].astype(float).to_numpy()
        layers[name] = m
    for a in signal_assays:
        s = imbalance[imbalance["assay"] == a]
        s = s.assign(snv_id=_ids(s, _KEY)).sort_values("total", kind="stable")   # the deepest replicate written last
        m = np.zeros(shape)
        r, c = pd.Index(obs.index).get_indexer(s["snv_id"]), pd.Index(tissues).get_indexer(s["tissue"])
        ok = (r >= 0) & (c >= 0)
        m[r[ok], c[ok]] = s["total"].astype(float).to_numpy()[ok]
        layers[f"signal_{a}"] = m
    measured = np.isfinite(layers["ratio"])
    obs = obs.assign(n_tissues=measured.sum(1))
    if snv_features is not None:
        feats = snv_features.drop_duplicates(_SITE).drop(columns=[c for c in ("snv",) if c in snv_features])
        obs = obs.reset_index().merge(feats, on=_SITE, how="left").set_index("snv_id")
        for c in feats.columns.difference(_SITE):        # a flag missing for some SNVs: nullable, so .h5ad keeps it
            if obs[c].dtype == object and obs[c].dropna().map(type).eq(bool).all():
                obs[c] = obs[c].astype("boolean")
    donors = obs["donor"].to_numpy()
    var = pd.DataFrame({
        "n_snvs": measured.sum(0),
        "n_donors": [len(set(donors[measured[:, j]])) for j in range(len(tissues))],
        "n_as": np.nansum(layers["as_call"], 0).astype(int),
        "frac_as": np.nanmean(np.where(measured, layers["as_call"], np.nan), 0),
        "median_total": np.nanmedian(np.where(measured, layers["total"], np.nan), 0)},
        index=pd.Index(tissues, name="tissue"))
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=layers["ratio"].copy(), obs=obs, var=var, layers=layers,
                      uns={"assay": assay, "signal_assays": list(signal_assays), "call": call,
                           "ledger": ledger.table()})


def snv_features(examples: pd.DataFrame, *, assay: str, fold_scores: pd.DataFrame | None = None,
                 motif_change: bool = True) -> pd.DataFrame:
    """Per-SNV features of one assay for :func:`to_anndata`'s ``obs``: ``chrom, pos, ref, alt``, ``leak_group``,
    ``split`` and ``held_out`` (chapter 03's leak groups and split; ``held_out`` is the test split), ``label`` (AS
    in any sample, chapter 03's training label), one ``score_<model>`` per model of
    ``fold_scores`` (chapter 05's out-of-fold scores: each SNV scored by a model fitted on folds that held its
    chromosome out; seeds averaged) and, with ``motif_change``, ``motif_abs_delta``: the largest change of the
    assay's factor motif score (bits, :func:`allelic.baselines.motif_snv_features`) between the alleles.

    ``examples``: chapter 03's table (``example_id, chrom, pos, ref, alt, assay, label, seq_ref, seq_alt``,
    optionally ``leak_group``). Raises ValueError for missing columns, an assay without examples, or fold scores that
    do not cover the assay's examples (a score for some SNVs only would bias the models towards them)."""
    need = {"example_id", *_SITE, "assay", "label", "seq_ref", "seq_alt"}
    missing = sorted(need - set(examples.columns))
    if missing:
        raise ValueError(f"examples: missing columns {missing}")
    ex = examples[examples["assay"] == assay]
    if ex.empty:
        raise ValueError(f"examples: no rows for assay {assay!r} (assays: {sorted(examples['assay'].unique())})")
    out = ex[["example_id", *_SITE, "label"] + [c for c in ("split", "leak_group") if c in ex]].copy()
    if "split" in out:
        out["held_out"] = out["split"] == "test"
    if fold_scores is not None:
        fs = fold_scores[fold_scores["assay"] == assay]
        wide = fs.groupby(["example_id", "model"])["score"].mean().unstack("model").add_prefix("score_")
        lost = ~out["example_id"].isin(wide.index)
        if lost.any():
            raise ValueError(f"fold scores: {int(lost.sum())} of {len(out)} {assay} examples have no out-of-fold score "
                             f"(first: {out.loc[lost, 'example_id'].iloc[0]}); were they scored by chapter 05?")
        out = out.merge(wide, left_on="example_id", right_index=True, how="left")
    if motif_change:
        f = motif_snv_features(ex, resolve_motifs(assay))
        out["motif_abs_delta"] = f.filter(like=":abs_delta").max(axis=1).to_numpy()
    return out.drop(columns="example_id").reset_index(drop=True)


def pairs(adata, *, obs_columns=()) -> pd.DataFrame:
    """One row per measured SNV x tissue pair: ``snv_id, snv, tissue, donor, chrom``, the layers ``as_call``,
    ``pvalue``, ``ratio``, ``total`` and every ``signal_*`` layer, and the ``obs_columns`` (e.g. a sequence score,
    ``leak_group``). Raises ValueError naming an unknown obs column."""
    unknown = [c for c in obs_columns if c not in adata.obs.columns]
    if unknown:
        raise ValueError(f"no obs column(s) {unknown} (obs: {list(adata.obs.columns)})")
    r, c = np.nonzero(np.isfinite(adata.layers["ratio"]))
    out = pd.DataFrame({"snv_id": adata.obs_names[r], "snv": adata.obs["snv"].to_numpy()[r],
                        "tissue": adata.var_names[c], "donor": adata.obs["donor"].to_numpy()[r],
                        "chrom": adata.obs["chrom"].to_numpy()[r]})
    for name in ["as_call", "pvalue", "ratio", "total"] + [k for k in adata.layers if k.startswith("signal_")]:
        out[name] = adata.layers[name][r, c]
    for col in obs_columns:
        out[col] = adata.obs[col].to_numpy()[r]
    return out


def informative_signals(data: pd.DataFrame, signals, *, min_frac: float = 0.05) -> tuple[list, pd.DataFrame]:
    """The ``signals`` with reads (> 0) in at least ``min_frac`` of the rows of ``data``, and a table of the others
    (``signal``, ``frac_nonzero``, ``reason``): a mark that is (almost) never measured at these SNVs — H3K27ac at
    CTCF sites of the simulator, for instance — carries no information and would only make the fit unstable."""
    kept, left = [], []
    for s in signals:
        frac = float((data[s] > 0).mean()) if len(data) else 0.0
        if frac >= min_frac:
            kept.append(s)
        else:
            left.append({"signal": s, "frac_nonzero": frac, "reason": f"reads at < {min_frac:.0%} of the pairs"})
    return kept, pd.DataFrame(left, columns=["signal", "frac_nonzero", "reason"])


def lrt(llf_reduced: float, llf_full: float, df: int) -> tuple[float, float]:
    """Likelihood-ratio test of nested models: ``(statistic, pvalue)``, ``2 (llf_full - llf_reduced)`` against a
    chi-squared with ``df`` degrees of freedom."""
    from scipy.stats import chi2

    stat = max(0.0, 2.0 * (float(llf_full) - float(llf_reduced)))
    return stat, float(chi2.sf(stat, df))


@dataclass
class NestedModels:
    """Result of :func:`nested_logit`.

    ``models``: one row per model (``model``, ``terms``, ``n_params``, ``llf``, ``aic``, ``auroc_test`` on the
    held-out rows, ``n_train``, ``n_test``, ``n_clusters``, ``converged``: False when the maximum-likelihood fit did
    not converge, e.g. under complete separation in a small tissue — read its tests with care); ``tests``: one row
    per comparison of a model with
    the one before (``model``, ``against``, ``statistic`` and ``pvalue`` of the likelihood-ratio test, ``df``, and
    ``wald_cluster`` / ``pvalue_cluster``: the cluster-robust Wald test of the same added terms, NaN without
    ``groups``); ``odds_ratios``: every coefficient of every model (``model``, ``term``, ``odds_ratio`` per standard
    deviation of the predictor when standardised, ``low``, ``high`` (95 %, cluster-robust when ``groups`` is given),
    ``pvalue``); ``test_predictions``: the held-out rows with each model's predicted probability (for AUROC
    confidence intervals); ``fits``: the statsmodels results by model name; ``scaling``: mean and sd of each
    predictor on the training rows."""

    models: pd.DataFrame
    tests: pd.DataFrame
    odds_ratios: pd.DataFrame
    test_predictions: pd.DataFrame
    fits: dict
    scaling: pd.DataFrame

    def odds_ratio(self, term: str, model: str = "signals + score") -> pd.Series:
        """The ``odds_ratios`` row of one term in one model (``odds_ratio``, ``low``, ``high``, ``pvalue``)."""
        return self.odds_ratios[(self.odds_ratios["model"] == model) & (self.odds_ratios["term"] == term)].iloc[0]


def _design(df: pd.DataFrame, signals, score, interaction: bool, train: pd.Series, standardize: bool,
            log1p_signals: bool, score_main: bool):
    """The nested design matrices (``const`` first) and the scaling of each predictor (training rows only)."""
    raw = df[list(signals)].astype(float)
    raw = np.log1p(raw).add_prefix("log1p_") if log1p_signals else raw.copy()
    if score is not None:
        raw[score] = df[score].astype(float)
    mean = raw[train].mean() if standardize else pd.Series(0.0, index=raw.columns)
    sd = raw[train].std(ddof=0) if standardize else pd.Series(1.0, index=raw.columns)
    z = (raw - mean) / sd
    sig = z[[c for c in z.columns if c != score]]
    steps = {"signals": pd.concat([pd.DataFrame({"const": 1.0}, index=df.index), sig], axis=1)}
    if score is not None:
        last = "signals"
        if score_main:
            steps["signals + score"] = steps["signals"].assign(**{score: z[score]})
            last = "signals + score"
        if interaction and sig.shape[1]:
            inter = sig.mul(z[score], axis=0).add_suffix(f":{score}")
            steps[f"{last} + interaction"] = pd.concat([steps[last], inter], axis=1)
    return steps, pd.DataFrame({"mean": mean, "sd": sd})


def _wald(fit, added: list) -> tuple[float, float]:
    """Wald chi-squared test that the ``added`` coefficients are all 0, with the fit's covariance."""
    from scipy.stats import chi2

    b = fit.params[added].to_numpy()
    cov = fit.cov_params().loc[added, added].to_numpy()
    stat = float(b @ np.linalg.solve(cov, b))
    return stat, float(chi2.sf(stat, len(added)))


def nested_logit(data: pd.DataFrame, *, signals, score: str | None, response: str = "as_call",
                 interaction: bool = True, test_chroms=None, held_out: str | None = None,
                 groups: str | None = None, standardize: bool = True, log1p_signals: bool = True,
                 score_main: bool = True) -> NestedModels:
    """Logistic regressions of ``response`` (0/1) on log1p tissue ``signals``, then + ``score``, then + the
    ``score`` x signal interactions, each fitted by maximum likelihood (``statsmodels.api.Logit``) on the training
    rows and scored by AUROC on the held-out ones: those whose ``chrom`` is in ``test_chroms``, or whose boolean
    column ``held_out`` is true (e.g. chapter 03's test split); all rows are training rows when neither is given.

    Consecutive models are compared by likelihood-ratio tests (:func:`lrt`) on the training rows. The LRT assumes
    independent rows; SNV x tissue pairs of one SNV (or of SNVs in overlapping windows) share the SNV's sequence and
    its effect, so with ``groups`` (a column, e.g. ``snv`` or ``leak_group``) the same added terms also get a
    cluster-robust (sandwich) Wald test, and the odds-ratio intervals are cluster-robust; the coefficients are the
    same maximum-likelihood estimates. The sandwich needs many clusters (hundreds); with a few dozen it is too
    liberal as well (:func:`null_calibration` measures both tests on the data at hand). With ``standardize`` each
    predictor is centred and scaled by its training-row mean and sd, so odds ratios are per standard deviation
    (interactions: products of the standardised terms).
    ``log1p_signals=False`` takes the signal columns as they are (e.g. the differences of :func:`discordant_pairs`);
    ``score_main=False`` leaves out the score's main effect (it cancels in within-SNV differences), so the models
    are ``signals`` and ``signals + interaction``.

    Rows with a missing value in any column used are dropped before fitting (their number is
    ``.attrs["n_dropped"]`` of ``models``). Raises ValueError for a response that is not 0/1, a missing column, a
    training set with one class, or a predictor that is constant on the training rows (e.g. a mark never measured
    at these SNVs)."""
    import statsmodels.api as sm
    from sklearn.metrics import roc_auc_score
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, HessianInversionWarning

    if test_chroms is not None and held_out is not None:
        raise ValueError("give test_chroms or held_out, not both")
    cols = [response, "chrom", *signals] + ([score] if score else []) + ([groups] if groups else []) + (
        [held_out] if held_out else [])
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"missing columns {missing} (have {list(data.columns)})")
    df = data.dropna(subset=cols)
    n_dropped = len(data) - len(df)
    y = df[response].astype(float)
    if not y.isin([0.0, 1.0]).all():
        raise ValueError(f"{response} must be 0/1")
    if held_out is not None:
        test = df[held_out].astype(bool)
    elif test_chroms is not None:
        test = df["chrom"].isin(list(test_chroms))
    else:
        test = pd.Series(False, index=df.index)
    train = ~test
    if y[train].nunique() < 2:
        raise ValueError(f"{response} has one class on the {int(train.sum())} training rows")
    for c in [*signals] + ([score] if score else []):
        if df.loc[train, c].nunique() < 2:
            raise ValueError(f"{c!r} is constant ({df.loc[train, c].iloc[0] if train.any() else 'no rows'}) on the "
                             f"{int(train.sum())} training rows: it carries no information; leave it out")
    steps, scaling = _design(df, signals, score, interaction, train, standardize, log1p_signals, score_main)
    fit_kw = {}
    n_clusters = np.nan
    if groups:
        codes = pd.factorize(df.loc[train, groups])[0]
        fit_kw = {"cov_type": "cluster", "cov_kwds": {"groups": codes}}
        n_clusters = int(codes.max() + 1)
    rows, tests, ors, fits = [], [], [], {}
    preds = df.loc[test, ["chrom", response] + ([groups] if groups else [])].copy()
    prev = None
    for name, X in steps.items():
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            # a model that does not converge (separation in a small tissue) is reported in `converged`, not printed
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", HessianInversionWarning)
            try:
                fit = sm.Logit(y[train], X[train]).fit(disp=0, maxiter=200, **fit_kw)
            except np.linalg.LinAlgError:  # singular information (separation): quasi-Newton, no inverse taken
                fit = sm.Logit(y[train], X[train]).fit(disp=0, maxiter=500, method="bfgs", **fit_kw)
        fits[name] = fit
        auroc = np.nan
        if test.any():
            with np.errstate(over="ignore"):
                preds[name] = fit.predict(X[test]).to_numpy()
            if y[test].nunique() == 2:
                auroc = float(roc_auc_score(y[test], preds[name]))
        rows.append({"model": name, "terms": " + ".join(X.columns[1:]), "n_params": X.shape[1], "llf": fit.llf,
                     "aic": fit.aic, "auroc_test": auroc, "n_train": int(train.sum()), "n_test": int(test.sum()),
                     "n_clusters": n_clusters, "converged": bool(fit.mle_retvals.get("converged", True))})
        with np.errstate(over="ignore"):     # a separated fit's odds ratio is inf, and shown as such
            ci = np.exp(fit.conf_int())
            odds = np.exp(fit.params)
        for term in X.columns:
            ors.append({"model": name, "term": term, "odds_ratio": float(odds[term]),
                        "low": float(ci.loc[term, 0]), "high": float(ci.loc[term, 1]),
                        "pvalue": float(fit.pvalues[term])})
        if prev is not None:
            added = [c for c in X.columns if c not in steps[prev].columns]
            stat, p = lrt(fits[prev].llf, fit.llf, len(added))
            wald, pw = _wald(fit, added) if groups else (np.nan, np.nan)
            tests.append({"model": name, "against": prev, "statistic": stat, "df": len(added), "pvalue": p,
                          "wald_cluster": wald, "pvalue_cluster": pw})
        prev = name
    models = pd.DataFrame(rows)
    models.attrs["n_dropped"] = n_dropped
    return NestedModels(models=models,
                        tests=pd.DataFrame(tests, columns=["model", "against", "statistic", "df", "pvalue",
                                                           "wald_cluster", "pvalue_cluster"]),
                        odds_ratios=pd.DataFrame(ors), test_predictions=preds, fits=fits, scaling=scaling)


def per_tissue(data: pd.DataFrame, *, signals, score: str, groups: str | None = None, min_pairs: int = 100,
               min_as: int = 10) -> pd.DataFrame:
    """The score question in each tissue: :func:`nested_logit` (signals vs signals + score, no interaction, all rows)
    on the pairs of that tissue. One row per tissue: ``tissue, n_pairs, n_as``, ``odds_ratio`` (per sd of the
    score) with ``low``/``high``, the likelihood-ratio ``statistic``/``pvalue``, ``pvalue_cluster`` (with
    ``groups``), and ``qvalue``: Benjamini-Hochberg over the tested tissues (of ``pvalue_cluster`` when there are
    groups, else of ``pvalue``). Tissues with fewer than ``min_pairs`` pairs or ``min_as`` AS pairs, or where a
    signal is constant, are listed with ``skipped`` saying why and no test."""
    rows = []
    for tissue, d in data.groupby("tissue", sort=True):
        row = {"tissue": tissue, "n_pairs": len(d), "n_as": int(d["as_call"].sum()), "skipped": ""}
        if len(d) < min_pairs or row["n_as"] < min_as or row["n_as"] == len(d):
            row["skipped"] = f"fewer than {min_pairs} pairs or {min_as} AS pairs (or no non-AS pair)"
        else:
            try:
                res = nested_logit(d, signals=signals, score=score, interaction=False, groups=groups)
            except ValueError as e:
                row["skipped"] = str(e)
            else:
                o, t = res.odds_ratio(score), res.tests.iloc[0]
                row.update(odds_ratio=o["odds_ratio"], low=o["low"], high=o["high"], statistic=t["statistic"],
                           pvalue=t["pvalue"], pvalue_cluster=t["pvalue_cluster"])
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=["tissue", "n_pairs", "n_as", "odds_ratio", "low", "high", "statistic",
                                              "pvalue", "pvalue_cluster", "qvalue", "skipped"])
    p = out["pvalue_cluster"] if groups else out["pvalue"]
    ok = p.notna()
    out.loc[ok, "qvalue"] = bh_fdr(p[ok].to_numpy())
    return out


def null_calibration(data: pd.DataFrame, *, signals, score: str, groups: str, unit: str = "snv",
                     n_permutations: int = 50, alpha: float = 0.05, random_state=0) -> pd.DataFrame:
    """How often the score test rejects when the score carries no information, on the data at hand: the per-``unit``
    (SNV) scores are shuffled among the SNVs (every pair of one SNV keeps one score, so the clustering stays), and
    signals vs signals + score (:func:`nested_logit`, all rows) is refitted ``n_permutations`` times. One row per
    test (``lrt``, ``cluster_wald``): ``rejection_rate`` at ``alpha``, its binomial standard error, and
    ``n_permutations``. A rate well above ``alpha`` means that test's p-values are too small on these data."""
    rng = np.random.default_rng(random_state)
    d = data.dropna(subset=[score, groups, *signals])
    units, inv = np.unique(d[unit].astype(str).to_numpy(), return_inverse=True)
    per_unit = pd.Series(d[score].to_numpy()).groupby(inv).first().to_numpy()
    hits = {"lrt": 0, "cluster_wald": 0}
    for _ in range(n_permutations):
        shuffled = d.assign(**{score: rng.permutation(per_unit)[inv]})
        t = nested_logit(shuffled, signals=signals, score=score, interaction=False, groups=groups).tests.iloc[0]
        hits["lrt"] += t["pvalue"] < alpha
        hits["cluster_wald"] += t["pvalue_cluster"] < alpha
    return pd.DataFrame([{"test": k, "rejection_rate": v / n_permutations,
                          "se": float(np.sqrt(alpha * (1 - alpha) / n_permutations)), "alpha": alpha,
                          "n_permutations": n_permutations} for k, v in hits.items()])


def discordant_pairs(data: pd.DataFrame, *, signals, obs_columns=(), random_state=0) -> pd.DataFrame:
    """Tissue pairs of one SNV in one donor where the SNV is AS in one tissue and not in the other: the
    differential-effect question as 1:1 matched case-control data (conditional logistic regression of matched pairs
    is a logistic regression on within-pair differences).

    For every ``snv_id`` (donor x SNV) measured in two or more tissues, every pair of tissues with different calls
    gives one row, oriented at random (``random_state``): ``response`` is 1 when the first tissue is the AS one;
    ``diff_<signal>`` is ``log1p(signal)`` in the first minus in the second; ``snv_id, snv, donor, chrom,
    tissue_a, tissue_b`` and the ``obs_columns`` (per-SNV, e.g. a score or ``leak_group``) are carried along. Features
    that do not vary between tissues of one SNV (the sequence score) cancel out of the differences, so the score can
    enter only through its interaction with the signal differences (:func:`nested_logit` with
    ``log1p_signals=False``)."""
    rng = np.random.default_rng(random_state)
    d = data[data.groupby("snv_id")["as_call"].transform("nunique") == 2]
    d = d.sort_values(["snv_id", "tissue"])
    logs = np.log1p(d[list(signals)].astype(float).to_numpy())
    as_call = d["as_call"].to_numpy()
    starts = np.flatnonzero(np.r_[True, d["snv_id"].to_numpy()[1:] != d["snv_id"].to_numpy()[:-1]])
    ends = np.r_[starts[1:], len(d)]
    ia, ib = [], []
    for s, e in zip(starts, ends):
        pos, neg = s + np.flatnonzero(as_call[s:e] == 1), s + np.flatnonzero(as_call[s:e] == 0)
        a, b = np.repeat(pos, len(neg)), np.tile(neg, len(pos))
        ia.append(a)
        ib.append(b)
    ia = np.concatenate(ia) if ia else np.array([], int)
    ib = np.concatenate(ib) if ib else np.array([], int)
    flip = rng.random(len(ia)) < 0.5
    first, second = np.where(flip, ib, ia), np.where(flip, ia, ib)
    keep = ["snv_id", "snv", "donor", "chrom", *obs_columns]
    out = d.iloc[first][keep].reset_index(drop=True)
    out.insert(4, "tissue_a", d["tissue"].to_numpy()[first])
    out.insert(5, "tissue_b", d["tissue"].to_numpy()[second])
    out["response"] = (~flip).astype(int)
    for k, sig in enumerate(signals):
        out[f"diff_{sig}"] = logs[first, k] - logs[second, k]
    return out


def sample_profiles(imbalance: pd.DataFrame, *, assay: str, value: str = "effect", call: str = "as_betabinom",
                    min_frac: float = 0.5, min_total: int = 0):
    """Samples (donor x tissue) x SNVs of one assay as AnnData, for embedding and clustering tissues by their
    allelic profiles with scanpy.

    ``value``: ``"effect"`` = ``|log2((hap1 + 0.5) / (hap2 + 0.5))|`` (the size of the allelic imbalance; its sign
    is a property of each donor's haplotypes, so it is dropped to compare donors) or ``"call"`` (the AS call of
    column ``call``, 0/1).
    SNVs are ``chrom:pos:ref:alt`` across donors, so a column compares the same SNV in every donor that carries it
    heterozygous. Only SNVs measured in at least ``min_frac`` of the samples are kept (the others are counted in
    ``uns["n_snvs_dropped"]``); a missing entry is imputed with that SNV's mean over the samples measuring it
    (layer ``measured`` says which entries are real). ``obs``: ``donor, tissue, n_measured``. Raises ValueError
    when fewer than two samples or no SNV remain."""
    import anndata as ad

    if value not in ("effect", "call"):
        raise ValueError(f"value must be 'effect' or 'call', not {value!r}")
    t = imbalance[(imbalance["assay"] == assay) & (imbalance["total"] >= min_total)].copy()
    t["snv"] = _ids(t, _SITE)
    t["sample_id"] = t["donor"].astype(str) + "_" + t["tissue"].astype(str)
    if value == "effect":
        t["v"] = np.abs(np.log2((t["hap1_count"] + 0.5) / (t["hap2_count"] + 0.5)))
    else:
        t["v"] = t[call].astype(float)
    m = t.pivot_table(index="sample_id", columns="snv", values="v", aggfunc="mean")
    keep = m.notna().mean(0) >= min_frac
    m = m.loc[:, keep]
    if m.shape[0] < 2 or m.shape[1] == 0:
        raise ValueError(f"{assay}: {m.shape[0]} samples x {m.shape[1]} SNVs measured in >= {min_frac:.0%} of the "
                         f"samples; nothing to embed")
    measured = m.notna()
    x = m.fillna(m.mean(0))
    first = t.drop_duplicates("sample_id").set_index("sample_id")
    obs = pd.DataFrame({"donor": first.loc[m.index, "donor"].astype(str),
                        "tissue": pd.Categorical(first.loc[m.index, "tissue"].astype(str)),
                        "n_measured": measured.sum(1).to_numpy()}, index=m.index.astype(str))
    return ad.AnnData(X=x.to_numpy(float), obs=obs, var=pd.DataFrame(index=m.columns.astype(str)),
                      layers={"measured": measured.to_numpy(float)},
                      uns={"assay": assay, "value": value, "min_frac": min_frac,
                           "n_snvs_dropped": int((~keep).sum())})


def embed(profiles, *, n_comps: int = 10, random_state=0):
    """PCA of :func:`sample_profiles` (scanpy: centred, ``n_comps`` components, at most samples - 1) and the
    tissue dendrogram (``sc.tl.dendrogram`` on the PCA, Pearson correlation, complete linkage); in place, returned."""
    import scanpy as sc

    n = int(min(n_comps, profiles.n_obs - 1, profiles.n_vars))
    sc.pp.pca(profiles, n_comps=n, zero_center=True, random_state=random_state, svd_solver="arpack" if n < min(
        profiles.shape) - 1 else "full")
    if profiles.obs["tissue"].nunique() > 1:
        sc.tl.dendrogram(profiles, groupby="tissue", use_rep="X_pca", cor_method="pearson", linkage_method="complete")
    return profiles


def neighbour_agreement(profiles, *, key: str = "tissue", across: str = "donor", n_permutations: int = 1000,
                        random_state=0) -> dict:
    """How often a sample's nearest neighbour by AS profile (Pearson correlation over the SNVs measured in both,
    at least 20) shares its ``key`` (tissue) among the samples of another ``across`` (donor). ``fraction`` observed,
    ``expected`` under random labels, and a permutation ``pvalue`` (``key`` labels shuffled among samples,
    ``(1 + #{perm >= obs}) / (1 + n)``); ``n_samples`` counted (those with at least one eligible neighbour)."""
    rng = np.random.default_rng(random_state)
    x = np.where(profiles.layers["measured"] > 0, profiles.X, np.nan)
    corr = pd.DataFrame(x.T).corr(min_periods=20).to_numpy()
    grp = profiles.obs[across].to_numpy()
    eligible = grp[:, None] != grp[None, :]
    c = np.where(eligible & np.isfinite(corr), corr, -np.inf)
    has = np.isfinite(c).any(1)
    nn = c.argmax(1)
    labels = profiles.obs[key].astype(str).to_numpy()

    if not has.any():
        return {"fraction": np.nan, "expected": np.nan, "n_samples": 0, "pvalue": np.nan}

    def frac(lab):
        return float(np.mean(lab[has] == lab[nn[has]]))

    obs = frac(labels)
    perms = np.array([frac(rng.permutation(labels)) for _ in range(n_permutations)])
    return {"fraction": obs, "expected": float(np.nanmean(perms)), "n_samples": int(has.sum()),
            "pvalue": float((1 + np.sum(perms >= obs)) / (1 + n_permutations))}


def score_quantiles(values, n_bins: int = 5) -> pd.Categorical:
    """Quantile bin (``Q1`` lowest .. ``Q<n_bins>``) of each value, ties broken by order; NaN stays NaN."""
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    codes = np.full(len(v), -1)
    codes[ok] = pd.qcut(pd.Series(v[ok]).rank(method="first"), n_bins, labels=False)
    return pd.Categorical.from_codes(codes, categories=[f"Q{i + 1}" for i in range(n_bins)])


def score_bins(adata, score: str, n_bins: int = 5) -> pd.DataFrame:
    """Fraction of SNVs called AS in each tissue (columns) by ``score`` quantile (rows, low to high; SNVs without a
    score left out): the variant-effect matrix that :func:`allelic.pl.tissue_heatmap` draws with scanpy.
    ``attrs["n"]`` holds the measured pairs per cell."""
    bins = score_quantiles(adata.obs[score], n_bins)
    call = pd.DataFrame(adata.layers["as_call"], columns=adata.var_names)
    frac = call.groupby(bins, observed=False).mean()
    frac.index.name = f"{score} quantile"
    frac.attrs["n"] = call.notna().astype(int).groupby(bins, observed=False).sum()
    return frac


def compare_scores(data: pd.DataFrame, *, signals, scores, test_chroms=None, held_out: str | None = None,
                   groups: str | None = None, n_boot: int = 500, random_state=0) -> pd.DataFrame:
    """Each per-SNV score in turn added to the same tissue signals (:func:`nested_logit`, no interaction): one row
    per score with the held-out AUROC of signals alone and with the score, the gain with a grouped paired bootstrap
    interval and p-value (:func:`allelic.evaluate.auroc_difference`), the odds ratio per sd of the score (95 %
    interval), and the likelihood-ratio and cluster-robust p-values of the score on the training rows. Every score
    is fitted on the same rows (those where no score is missing). Rows are sorted by the gain."""
    data = data.dropna(subset=list(scores))     # every score on the same rows, so the gains compare
    rows = []
    for k, score in enumerate(scores):
        res = nested_logit(data, signals=signals, score=score, interaction=False, test_chroms=test_chroms,
                           held_out=held_out, groups=groups)
        tp = res.test_predictions
        gain = auroc_difference(tp["as_call"], tp["signals"], tp["signals + score"],
                                groups=tp[groups] if groups else None, n_boot=n_boot, random_state=random_state + k)
        o, t = res.odds_ratio(score), res.tests.iloc[0]
        rows.append({"score": score, "auroc_signals": gain["auroc_a"], "auroc_with_score": gain["auroc_b"],
                     "auroc_gain": gain["difference"], "gain_low": gain["ci_low"], "gain_high": gain["ci_high"],
                     "gain_pvalue": gain["pvalue"], "odds_ratio": o["odds_ratio"], "or_low": o["low"],
                     "or_high": o["high"], "lrt": t["statistic"], "pvalue": t["pvalue"],
                     "pvalue_cluster": t["pvalue_cluster"], "n_train": int(res.models["n_train"].iloc[0]),
                     "n_test": int(res.models["n_test"].iloc[0])})
    return pd.DataFrame(rows).sort_values("auroc_gain", ascending=False, ignore_index=True)


@dataclass
class TissueAnalysis:
    """Result of :func:`analyse` for one assay: ``adata`` (SNVs x tissues), ``pairs``, the ``signals`` used and
    those left out (``signals_left_out``), ``nested`` (:class:`NestedModels` of the chosen score), ``scores``
    (:func:`compare_scores` over every score), ``tissues`` (:func:`per_tissue`), ``discordant`` (the differential
    question, :class:`NestedModels` on :func:`discordant_pairs`; None when there are too few), ``discordant_pairs``
    (the pairs themselves; ``n_discordant`` their number),
    ``profiles`` (samples x SNVs, embedded; None when too few samples) and ``neighbours``
    (:func:`neighbour_agreement`), and ``params``."""

    adata: object
    pairs: pd.DataFrame
    signals: list
    signals_left_out: pd.DataFrame
    nested: NestedModels
    scores: pd.DataFrame
    tissues: pd.DataFrame
    discordant: NestedModels | None
    discordant_pairs: pd.DataFrame
    profiles: object
    neighbours: dict | None
    params: dict

    @property
    def n_discordant(self) -> int:
        return len(self.discordant_pairs)

    def summary(self) -> pd.Series:
        """The headline numbers (what the chapter glues)."""
        m = self.nested.models.set_index("model")["auroc_test"]
        t = self.nested.tests.set_index("model")
        s = self.scores.set_index("score").loc[self.params["score"]]
        out = {"assay": self.params["assay"], "n_pairs": len(self.pairs),
               "n_pairs_without_features": int(self.nested.models.attrs.get("n_dropped", 0)),
               "n_snvs": self.adata.n_obs,
               "n_tissues": self.adata.n_vars, "frac_as": float(self.pairs["as_call"].mean()),
               "signals": ", ".join(self.signals), "auroc_signals": m["signals"],
               "auroc_with_score": m["signals + score"], "auroc_gain": s["auroc_gain"], "gain_low": s["gain_low"],
               "gain_high": s["gain_high"], "odds_ratio": s["odds_ratio"], "or_low": s["or_low"],
               "or_high": s["or_high"], "lrt_score": t.loc["signals + score", "statistic"],
               "p_score": t.loc["signals + score", "pvalue"],
               "p_score_cluster": t.loc["signals + score", "pvalue_cluster"]}
        if "signals + score + interaction" in t.index:
            out.update(lrt_interaction=t.loc["signals + score + interaction", "statistic"],
                       p_interaction=t.loc["signals + score + interaction", "pvalue"],
                       p_interaction_cluster=t.loc["signals + score + interaction", "pvalue_cluster"])
        if self.discordant is not None:
            d = self.discordant.models.set_index("model")["auroc_test"]
            dt = self.discordant.tests.iloc[0] if len(self.discordant.tests) else None
            out.update(n_discordant=self.n_discordant, auroc_discordant_signals=d["signals"],
                       auroc_discordant_interaction=d.iloc[-1],
                       p_discordant_interaction_cluster=np.nan if dt is None else dt["pvalue_cluster"])
        if self.neighbours is not None:
            out.update(neighbour_same_tissue=self.neighbours["fraction"],
                       neighbour_expected=self.neighbours["expected"], neighbour_p=self.neighbours["pvalue"])
        return pd.Series(out)


def analyse(imbalance: pd.DataFrame, features: pd.DataFrame, *, assay: str, signal_assays, score: str,
            held_out: str = "held_out", scores=None, groups: str = "leak_group", call: str = "as_betabinom",
            pvalue: str = "p_betabinom", replicates: str = "error", min_signal_frac: float = 0.05,
            min_discordant: int = 200, profile_min_frac: float = 0.5, n_boot: int = 500, random_state=0,
            source: str = "imbalance table") -> TissueAnalysis:
    """Chapter 07's analysis of one assay, from chapter 02's calls and :func:`snv_features`: the SNVs x tissues
    AnnData, the informative signals, the nested models of ``score`` (with interactions), every score of ``scores``
    (default: every ``score_*`` column and ``motif_abs_delta``) compared by held-out AUROC gain, the per-tissue
    tests, the differential (discordant tissue pairs) models when there are at least ``min_discordant`` pairs, and
    the samples' AS profiles embedded with scanpy (when too few SNVs are shared, ``params["profiles"]`` says why).
    Models are fitted on the SNVs whose boolean feature ``held_out`` is false and scored on the others (chapter 03's
    test split, never seen by the models that made the scores); pairs of SNVs without features (not among chapter
    03's examples) are counted in the summary's ``n_pairs_without_features``. Pairs are clustered by ``groups``
    (chapter 03's leak groups: SNVs whose windows overlap, so all tissues and donors of one SNV fall in one
    cluster)."""
    adata = to_anndata(imbalance, assay=assay, signal_assays=signal_assays, snv_features=features, call=call,
                       pvalue=pvalue, replicates=replicates, source=source)
    if scores is None:
        scores = [c for c in features.columns if c.startswith("score_")] + (
            ["motif_abs_delta"] if "motif_abs_delta" in features else [])
    cols = list(dict.fromkeys([score, *scores, groups, held_out]))
    p = pairs(adata, obs_columns=cols)
    signals, left = informative_signals(p, [f"signal_{a}" for a in signal_assays], min_frac=min_signal_frac)
    nested = nested_logit(p, signals=signals, score=score, held_out=held_out, groups=groups)
    compared = compare_scores(p, signals=signals, scores=scores, held_out=held_out, groups=groups, n_boot=n_boot,
                              random_state=random_state)
    by_tissue = per_tissue(p, signals=signals, score=score, groups=groups)
    disc = discordant_pairs(p, signals=signals, obs_columns=[score, groups, held_out], random_state=random_state)
    dmodels = None
    if len(disc) >= min_discordant and disc[held_out].any() and not disc[held_out].all():
        dmodels = nested_logit(disc, signals=[f"diff_{s}" for s in signals], score=score, response="response",
                               held_out=held_out, groups=groups, log1p_signals=False, score_main=False)
    profiles, near, profile_note = None, None, "embedded"
    try:
        profiles = embed(sample_profiles(imbalance, assay=assay, min_frac=profile_min_frac),
                         random_state=random_state)
        near = neighbour_agreement(profiles, random_state=random_state)
    except ValueError as e:                   # too few samples or shared SNVs: said in params, not raised
        profile_note = str(e)
    params = {"assay": assay, "signal_assays": list(signal_assays), "score": score, "scores": list(scores),
              "held_out": held_out, "groups": groups, "call": call, "replicates": replicates,
              "min_signal_frac": min_signal_frac, "min_discordant": min_discordant,
              "profile_min_frac": profile_min_frac, "profiles": profile_note, "n_boot": n_boot,
              "random_state": random_state}
    return TissueAnalysis(adata=adata, pairs=p, signals=signals, signals_left_out=left, nested=nested,
                          scores=compared, tissues=by_tissue, discordant=dmodels, discordant_pairs=disc,
                          profiles=profiles, neighbours=near, params=params)


def write(result: TissueAnalysis, out_dir) -> list:
    """Write an :func:`analyse` result: ``snvs_x_tissues.h5ad`` (the AnnData), ``models.tsv``, ``tests.tsv``,
    ``odds_ratios.tsv``, ``scores.tsv``, ``per_tissue.tsv``, ``discordant_models.tsv`` / ``discordant_tests.tsv``,
    ``profiles.h5ad`` and ``summary.tsv``; returns the paths."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    def tsv(df, name):
        df.to_csv(out / name, sep="\t", index=False)
        paths.append(out / name)

    a = result.adata.copy()
    a.uns["ledger"] = a.uns["ledger"].astype(str)
    a.write_h5ad(out / "snvs_x_tissues.h5ad", compression="gzip")
    paths.append(out / "snvs_x_tissues.h5ad")
    tsv(result.nested.models, "models.tsv")
    tsv(result.nested.tests, "tests.tsv")
    tsv(result.nested.odds_ratios, "odds_ratios.tsv")
    tsv(result.scores, "scores.tsv")
    tsv(result.tissues, "per_tissue.tsv")
    if result.discordant is not None:
        tsv(result.discordant.models, "discordant_models.tsv")
        tsv(result.discordant.tests, "discordant_tests.tsv")
    if result.profiles is not None:
        result.profiles.write_h5ad(out / "profiles.h5ad")
        paths.append(out / "profiles.h5ad")
    tsv(result.summary().to_frame("value").reset_index(names="key"), "summary.tsv")
    return paths
