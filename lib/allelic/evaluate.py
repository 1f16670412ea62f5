"""Scoring calls and scores against a truth: confusion counts, precision, recall and false discovery proportion;
AUROC/AUPRC with intervals; paired comparisons over folds; how often a signed allele score picks the winning allele."""
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


#: depth bins of :func:`power_table` (reads at the measurement; 0 = not tested: no reads or below ``min_total``)
DEPTH_BINS = (0, 6, 10, 20, 40, 80, np.inf)
#: allelic-effect bins of :func:`power_table`: ``|r - 0.5|``, the planted imbalance of the activity (0.1: 60:40)
EFFECT_BINS = (0.0, 0.1, 0.2, 0.3, 0.5)


def power_table(calls: pd.DataFrame, truth: pd.DataFrame, call_cols, *, effect: str, on=("sample", "chrom", "pos"),
                depth: str = "total", truth_col: str = "is_as", depth_bins=DEPTH_BINS, effect_bins=EFFECT_BINS,
                level: float = 0.95) -> pd.DataFrame:
    """Recall of the call columns among the truly allele-specific rows of ``truth``, by the true effect
    (``truth[effect]``, binned by ``effect_bins``, right-closed) and the depth the measurement had (``calls[depth]``;
    a truth row without a call row counts as depth 0, not called): what a test can find at a given depth.

    Returns one row per call column x effect bin x depth bin with ``n_true``, ``n_called``, ``recall`` and its
    Wilson interval (``ci_low``, ``ci_high``); bins without a true row are left out. The bins are labelled
    ``"(lo, hi]"`` for effects and ``"lo-hi"`` reads (``"lo+"`` for the last) for depths."""
    on, call_cols = list(on), [call_cols] if isinstance(call_cols, str) else list(call_cols)
    missing = [c for c in on + call_cols + [depth] if c not in calls.columns] + \
        [c for c in on + [truth_col, effect] if c not in truth.columns]
    if missing:
        raise ValueError(f"missing column(s) for power_table: {', '.join(dict.fromkeys(missing))}")
    m = truth.loc[truth[truth_col].astype(bool), on + [effect]].merge(calls[on + call_cols + [depth]], on=on,
                                                                     how="left")
    m[depth] = m[depth].fillna(0)
    d_edges, e_edges = list(depth_bins), list(effect_bins)
    d_labels = [f"{lo:g}+" if np.isinf(hi) else f"{lo:g}-{hi - 1:g}" for lo, hi in zip(d_edges[:-1], d_edges[1:])]
    m["depth_bin"] = pd.cut(m[depth], d_edges, right=False, labels=d_labels)
    m["effect_bin"] = pd.cut(m[effect].abs(), e_edges, right=True, labels=[
        f"({lo:g}, {hi:g}]" for lo, hi in zip(e_edges[:-1], e_edges[1:])])
    rows = []
    for c in call_cols:
        hit = m[c].eq(True)
        g = hit.groupby([m["effect_bin"], m["depth_bin"]], observed=True).agg(["sum", "size"])
        for (e, d), r in g.iterrows():
            lo, hi = _wilson(r["sum"], r["size"], level)
            rows.append({"call": c, "effect_bin": e, "depth_bin": d, "n_true": int(r["size"]),
                         "n_called": int(r["sum"]), "recall": r["sum"] / r["size"], "ci_low": max(lo, 0.0),
                         "ci_high": min(hi, 1.0)})
    return pd.DataFrame(rows)


def binary_metrics(y, score) -> dict:
    """AUROC and AUPRC (average precision) of scores against 0/1 labels; NaN when only one class is present."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, score = np.asarray(y).astype(int), np.asarray(score, float)
    if y.shape != score.shape:
        raise ValueError(f"labels and scores differ in shape: {y.shape} vs {score.shape}")
    both = 0 < y.sum() < len(y)
    return {"auroc": float(roc_auc_score(y, score)) if both else np.nan,
            "auprc": float(average_precision_score(y, score)) if both else np.nan,
            "n": int(len(y)), "n_pos": int(y.sum())}


def bootstrap_metrics(y, score, *, n_boot: int = 1000, level: float = 0.95, random_state=None) -> pd.DataFrame:
    """Percentile bootstrap confidence intervals of AUROC and AUPRC (examples resampled with replacement).

    Returns one row per metric: ``metric, value, ci_low, ci_high, n_boot``."""
    y, score = np.asarray(y).astype(int), np.asarray(score, float)
    rng = np.random.default_rng(random_state)
    point = binary_metrics(y, score)
    draws = {"auroc": [], "auprc": []}
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        m = binary_metrics(y[i], score[i])
        for k in draws:
            draws[k].append(m[k])
    a = (1 - level) / 2
    rows = [(k, point[k], np.nanquantile(v, a), np.nanquantile(v, 1 - a), n_boot) for k, v in draws.items()]
    return pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "n_boot"])


def auroc_difference(y, score_a, score_b, *, groups=None, n_boot: int = 1000, level: float = 0.95,
                     random_state=None) -> dict:
    """AUROC of ``score_b`` minus AUROC of ``score_a`` on the same examples, with a paired percentile bootstrap
    interval and a two-sided bootstrap p-value (``2 min(P(diff* <= 0), P(diff* >= 0))``, at least ``1 / n_boot``).

    With ``groups`` the bootstrap resamples whole groups (e.g. all tissue measurements of one SNV), because examples
    of one group are not independent; resampling single examples would make the interval too narrow. Returns
    ``auroc_a, auroc_b, difference, ci_low, ci_high, pvalue, n, n_groups, n_boot``."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    if not (y.shape == a.shape == b.shape):
        raise ValueError(f"labels and scores differ in shape: {y.shape}, {a.shape}, {b.shape}")
    if not 0 < y.sum() < len(y):
        raise ValueError("auroc_difference needs both classes")
    g = pd.factorize(pd.Series(groups if groups is not None else np.arange(len(y))))[0]
    members = pd.Series(np.arange(len(y))).groupby(g).apply(np.asarray).to_list()
    rng = np.random.default_rng(random_state)
    point = (roc_auc_score(y, a), roc_auc_score(y, b))
    draws = []
    for _ in range(n_boot):
        i = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        if 0 < y[i].sum() < len(i):
            draws.append(roc_auc_score(y[i], b[i]) - roc_auc_score(y[i], a[i]))
    draws = np.asarray(draws)
    q = (1 - level) / 2
    p = 2 * min(np.mean(draws <= 0), np.mean(draws >= 0))
    return {"auroc_a": float(point[0]), "auroc_b": float(point[1]), "difference": float(point[1] - point[0]),
            "ci_low": float(np.quantile(draws, q)), "ci_high": float(np.quantile(draws, 1 - q)),
            "pvalue": float(min(1.0, max(p, 1 / len(draws)))), "n": int(len(y)), "n_groups": len(members),
            "n_boot": int(len(draws))}


def curves(y, score) -> dict:
    """ROC (``fpr, tpr``) and precision-recall (``recall, precision``) curve arrays for plotting."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    precision, recall, _ = precision_recall_curve(y, score)
    return {"fpr": fpr, "tpr": tpr, "recall": recall, "precision": precision}


def roc_pr_curves(scores: pd.DataFrame, *, by: str = "assay", label: str = "label", score: str = "score") -> pd.DataFrame:
    """Every group's ROC and precision-recall curve as one long table (``by, curve, x, y, area``): ``curve`` is
    ``"roc"`` (x false positive rate, y true positive rate, area AUROC) or ``"pr"`` (x recall, y precision, area
    AUPRC); groups holding one class only are left out."""
    parts = []
    for name, g in scores.groupby(by, sort=True):
        if g[label].nunique() < 2:
            continue
        c, m = curves(g[label], g[score]), binary_metrics(g[label], g[score])
        parts.append(pd.DataFrame({by: name, "curve": "roc", "x": c["fpr"], "y": c["tpr"], "area": m["auroc"]}))
        parts.append(pd.DataFrame({by: name, "curve": "pr", "x": c["recall"], "y": c["precision"], "area": m["auprc"]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[by, "curve", "x", "y", "area"])


def balanced_metrics(y, score, *, n_repeats: int = 20, random_state=None) -> dict:
    """AUROC and AUPRC on class-balanced test sets, as papers that report "balanced test sets" do: the majority class
    is downsampled at random to the size of the minority class, ``n_repeats`` times; returns the means
    (``auroc``, ``auprc``) and ``n`` (examples per balanced set)."""
    y, score = np.asarray(y).astype(int), np.asarray(score, float)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k = min(len(pos), len(neg))
    if k == 0:
        return {"auroc": np.nan, "auprc": np.nan, "n": 0}
    rng = np.random.default_rng(random_state)
    ms = []
    for _ in range(n_repeats):
        i = np.r_[rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)]
        ms.append(binary_metrics(y[i], score[i]))
    return {"auroc": float(np.mean([m["auroc"] for m in ms])), "auprc": float(np.mean([m["auprc"] for m in ms])), "n": 2 * k}


def paired_comparison(metrics: pd.DataFrame, *, reference: str = "transformer", metric: str = "auroc",
                      by=("assay",), pair_on=("fold",), average_over=("seed",), model_col: str = "model") -> pd.DataFrame:
    """Paired comparison of ``reference`` with every other model over matched, independent evaluations.

    The pairs are the independent units ``pair_on`` (chromosome folds: disjoint test chromosomes). Repeated runs
    within a unit (``average_over``: model seeds on the same fold) are not independent, so they are averaged first
    rather than counted as extra pairs (which would inflate the test's n). For each ``by`` group and model:
    ``n_pairs``, the medians of both, ``median_diff`` (reference - model), the
    two-sided Wilcoxon signed-rank test (``statistic``, ``p_value``; exact for small samples, ``zero_method="wilcox"``)
    and the matched-pairs rank-biserial correlation ``effect_size`` in [-1, 1] (positive: the reference is better),
    ``r = (W+ - W-) / (W+ + W-)`` over the non-zero differences. With fewer than 2 non-zero pairs the test is NaN."""
    from scipy.stats import rankdata, wilcoxon

    by, pair_on = list(by), [c for c in pair_on if c in metrics.columns]
    missing = [c for c in by + [model_col, metric] if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {', '.join(missing)}")
    if pair_on and any(c in metrics.columns for c in average_over):
        metrics = metrics.groupby(by + [model_col] + pair_on, as_index=False, sort=True)[metric].mean()
    rows = []
    for key, g in metrics.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ref = g[g[model_col] == reference].set_index(pair_on)[metric]
        if ref.empty:
            continue
        for model, h in g[g[model_col] != reference].groupby(model_col, sort=True):
            other = h.set_index(pair_on)[metric]
            both = pd.concat([ref.rename("a"), other.rename("b")], axis=1, join="inner").dropna()
            d = (both["a"] - both["b"]).to_numpy()
            nz = d[d != 0]
            rec = dict(zip(by, key))
            rec.update({"reference": reference, "model": model, "metric": metric, "n_pairs": len(d),
                        "median_reference": float(both["a"].median()) if len(d) else np.nan,
                        "median_model": float(both["b"].median()) if len(d) else np.nan,
                        "median_diff": float(np.median(d)) if len(d) else np.nan})
            if len(nz) >= 2:
                res = wilcoxon(nz, zero_method="wilcox", alternative="two-sided")
                ranks = rankdata(np.abs(nz))
                w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
                rec.update({"statistic": float(res.statistic), "p_value": float(res.pvalue),
                            "effect_size": float((w_plus - w_minus) / (w_plus + w_minus))})
            else:
                rec.update({"statistic": np.nan, "p_value": np.nan, "effect_size": np.nan})
            rows.append(rec)
    return pd.DataFrame(rows)


def score_table(scores: pd.DataFrame, *, by: str = "model", n_boot: int = 1000, level: float = 0.95,
                random_state=None) -> pd.DataFrame:
    """One row per ``by`` group of held-out scores (columns ``label``, ``score``): ``auroc`` with its percentile
    bootstrap interval (``auroc_low``, ``auroc_high``; :func:`bootstrap_metrics`), ``auprc``, the
    ``balanced_auroc`` of :func:`balanced_metrics` (class-balanced subsamples, comparable with results on balanced
    test sets), ``n`` and ``pos_frac``. Groups keep their order of first appearance."""
    rows = []
    for name, g in scores.groupby(by, sort=False):
        ci = bootstrap_metrics(g["label"], g["score"], n_boot=n_boot, level=level,
                               random_state=random_state).set_index("metric")
        bal = balanced_metrics(g["label"], g["score"], random_state=random_state)
        rows.append({by: name, "auroc": ci.at["auroc", "value"], "auroc_low": ci.at["auroc", "ci_low"],
                     "auroc_high": ci.at["auroc", "ci_high"], "auprc": ci.at["auprc", "value"],
                     "balanced_auroc": bal["auroc"], "n": len(g), "pos_frac": float(g["label"].mean())})
    return pd.DataFrame(rows)


def _wilson(k: float, n: int, level: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``k`` may hold half counts)."""
    from scipy.stats import norm

    z = norm.ppf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def direction_agreement(effect, alt_wins, *, groups=None, n_boot: int = 1000, level: float = 0.95,
                        random_state=0) -> dict:
    """How often a signed allele score points to the allele that won: the fraction of AS measurements whose
    ``effect`` (> 0: the alternative allele is predicted the more bound/active) has the sign of the observed
    imbalance (``alt_wins``: True where the alternative allele had more reads). A score of exactly 0 (a tie) counts
    one half, so a score that never decides agrees 0.5 of the time.

    The interval is the Wilson score interval of the proportion; with ``groups`` (e.g. the SNV of each measurement:
    the tissues and donors of one SNV share its score, so they are not independent) it is a percentile bootstrap over
    whole groups instead. Returns ``n``, ``n_groups``, ``agreement``, ``ci_low``, ``ci_high``; NaN agreement for
    no measurement. A NaN effect raises ValueError."""
    effect = np.asarray(effect, dtype=float)
    won = np.asarray(alt_wins, dtype=bool)
    if effect.shape != won.shape:
        raise ValueError(f"effect and alt_wins differ in shape: {effect.shape} vs {won.shape}")
    if np.isnan(effect).any():
        raise ValueError(f"{int(np.isnan(effect).sum())} effect(s) are NaN: score every measurement")
    hit = np.where(effect == 0, 0.5, ((effect > 0) == won).astype(float))
    n = len(hit)
    g = None if groups is None else pd.factorize(pd.Series(np.asarray(groups)))[0]
    out = {"n": n, "n_groups": n if g is None else int(g.max() + 1) if n else 0}
    if n == 0:
        return {**out, "agreement": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    agreement = float(hit.mean())
    if g is None:
        lo, hi = _wilson(hit.sum(), n, level)
    else:
        sums, sizes = np.bincount(g, weights=hit), np.bincount(g)
        rng = np.random.default_rng(random_state)
        pick = rng.integers(0, len(sums), (n_boot, len(sums)))
        draws = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
        q = (1 - level) / 2
        lo, hi = float(np.quantile(draws, q)), float(np.quantile(draws, 1 - q))
    return {**out, "agreement": agreement, "ci_low": lo, "ci_high": hi}


DIRECTION_COLUMNS = ["score", "subset", "n", "n_snvs", "agreement", "ci_low", "ci_high"]


def direction_table(measurements: pd.DataFrame, effects: pd.DataFrame, *, scores=None, subsets: dict | None = None,
                    n_boot: int = 1000, level: float = 0.95, random_state=0) -> pd.DataFrame:
    """:func:`direction_agreement` of every signed score over AS measurements, per subset of SNVs.

    ``measurements``: one row per AS measurement with ``example_id`` and ``ref_ratio`` (reference reads / total;
    a ratio of exactly 0.5 names no winner and is skipped). ``effects``: one row per ``example_id`` with one column per
    signed score (``scores``: which columns; default every other column). ``subsets``: ``{name: example ids}``
    (``None`` = every SNV), default ``{"all AS": None}``. The interval is a bootstrap over SNVs (a SNV's measurements
    share its score). Returns :data:`DIRECTION_COLUMNS`; ``n`` counts measurements, ``n_snvs`` SNVs."""
    for name, t, cols in (("measurements", measurements, ["example_id", "ref_ratio"]),
                          ("effects", effects, ["example_id"])):
        missing = [c for c in cols if c not in t.columns]
        if missing:
            raise ValueError(f"{name} lack column(s) {missing}")
    if effects["example_id"].duplicated().any():
        raise ValueError("effects hold an example_id twice: one row per SNV")
    scores = list(scores) if scores is not None else [c for c in effects.columns if c != "example_id"]
    m = measurements[measurements["ref_ratio"] != 0.5]
    m = m.merge(effects[["example_id", *scores]], on="example_id", how="inner", validate="many_to_one")
    rows = []
    for subset, ids in (subsets or {"all AS": None}).items():
        g = m if ids is None else m[m["example_id"].isin(set(ids))]
        for s in scores:
            r = direction_agreement(g[s], g["ref_ratio"] < 0.5, groups=g["example_id"], n_boot=n_boot, level=level,
                                    random_state=random_state)
            rows.append({"score": s, "subset": subset, "n": r["n"], "n_snvs": r["n_groups"],
                         "agreement": r["agreement"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
    return pd.DataFrame(rows, columns=DIRECTION_COLUMNS)
