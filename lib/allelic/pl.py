"""Plots of what the other modules computed (scanpy's ``pl`` convention).

Each function takes the computed table and an optional matplotlib ``ax``, draws, and returns the figure.
Nothing here computes statistics or saves files: saving is the notebook's job."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dosage import null_ratios
from .reference import chrom_sort_key
from .tissues import score_quantiles


def _ax(ax, figsize=(5, 3.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def count_heatmap(summary: pd.DataFrame, *, row: str = "tissue", col: str = "assay", value: str = "n_snvs",
                  ax=None, cmap: str = "viridis"):
    """Heatmap of ``value`` summed over the other keys, ``row`` x ``col`` (e.g. het SNVs measured per tissue and assay)."""
    import seaborn as sns

    fig, ax = _ax(ax, (1.1 * summary[col].nunique() + 2, 0.35 * summary[row].nunique() + 1.5))
    mat = summary.pivot_table(index=row, columns=col, values=value, aggfunc="sum", fill_value=0)
    sns.heatmap(mat, annot=True, fmt=".0f", cmap=cmap, cbar_kws={"label": value}, ax=ax)
    ax.tick_params(axis="y", rotation=0)
    return fig


def coverage(counts: pd.DataFrame, *, hue: str | None = "assay", ax=None, min_total: int | None = None):
    """Distribution of reads per SNV (``ref_count + alt_count``), log-scaled, one line per ``hue`` group."""
    import seaborn as sns

    fig, ax = _ax(ax)
    t = counts.assign(total=counts["ref_count"] + counts["alt_count"])
    t = t[t["total"] > 0]
    sns.histplot(t, x="total", hue=hue, element="step", fill=False, log_scale=True, bins=24, stat="density",
                 common_norm=False, ax=ax)
    if min_total:
        ax.axvline(min_total, color="grey", ls="--", lw=1)
    ax.set_xlabel("reads at the SNV")
    return fig


def ratio_distribution(counts: pd.DataFrame, *, hue: str | None = "assay", min_total: int = 6, bins: int = 25, ax=None):
    """Distribution of the reference allele ratio at SNVs with at least ``min_total`` reads; 0.5 marked."""
    import seaborn as sns

    fig, ax = _ax(ax)
    t = counts.assign(total=counts["ref_count"] + counts["alt_count"])
    t = t[t["total"] >= min_total]
    t = t.assign(ref_ratio=t["ref_count"] / t["total"])
    sns.histplot(t, x="ref_ratio", hue=hue, bins=np.linspace(0, 1, bins + 1), element="step", fill=False,
                 stat="density", common_norm=False, ax=ax)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel(f"reference allele ratio (SNVs with ≥ {min_total} reads)")
    return fig


def qq(pvalues: dict, *, ax=None, max_points: int = 20_000):
    """QQ plot of -log10 p-values against the uniform expectation, one series per ``{label: p-values}``."""
    fig, ax = _ax(ax, (4.2, 4))
    top = 0.0
    for label, p in pvalues.items():
        p = np.sort(np.asarray(p, float)[np.isfinite(p)])
        if p.size == 0:
            continue
        exp = -np.log10((np.arange(1, p.size + 1) - 0.5) / p.size)
        obs = -np.log10(np.clip(p, 1e-300, 1))
        step = max(1, p.size // max_points)
        ax.scatter(exp[::step], obs[::step], s=6, label=label, alpha=0.7)
        top = max(top, exp.max())
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--")
    ax.set_xlabel("expected −log10 p")
    ax.set_ylabel("observed −log10 p")
    ax.legend(frameon=False)
    return fig


def ratio_vs_coverage(table: pd.DataFrame, *, call: str = "as_betabinom", ax=None, ratio: str = "ratio", total: str = "total"):
    """Reference allele ratio against reads per SNV (log), coloured by a boolean call column."""
    fig, ax = _ax(ax)
    for value, colour, label in ((False, "#9e9e9e", "not called"), (True, "#d62728", "allele-specific")):
        t = table[table[call].astype(bool) == value]
        ax.scatter(t[total], t[ratio], s=5, alpha=0.5, color=colour, label=f"{label} ({len(t):,})")
    ax.set_xscale("log")
    ax.axhline(0.5, color="black", lw=0.8, ls=":")
    ax.set_xlabel("reads at the SNV")
    ax.set_ylabel("reference allele ratio")
    ax.legend(frameon=False, loc="lower right")
    return fig


def metric_bars(metrics: pd.DataFrame, *, x: str = "call", y=("precision", "recall"), ax=None, target: float | None = None):
    """Grouped bars of metrics per method (e.g. precision and recall of binomial vs beta-binomial calls)."""
    fig, ax = _ax(ax, (4.5, 3.5))
    y = list(y)
    pos = np.arange(len(metrics))
    width = 0.8 / len(y)
    for i, col in enumerate(y):
        ax.bar(pos + i * width, metrics[col], width, label=col)
    ax.set_xticks(pos + width * (len(y) - 1) / 2, metrics[x])
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    return fig


def power_curve(power: pd.DataFrame, *, ax=None, title: str | None = None, labels: dict | None = None,
                xlabel: str = "reads at the measurement"):
    """Recall against depth, one line per true-effect bin, with Wilson intervals: one call column of
    :func:`allelic.evaluate.power_table` (filter ``power`` to it first). ``labels`` rename the effect bins."""
    fig, ax = _ax(ax, (5, 3.5))
    depths = list(dict.fromkeys(power["depth_bin"].astype(str)))
    x = {d: i for i, d in enumerate(depths)}
    for e, g in power.groupby("effect_bin", observed=True, sort=True):
        g = g[g["n_true"] > 0]
        xs = g["depth_bin"].astype(str).map(x).to_numpy()
        r, lo, hi = (g[c].to_numpy(float) for c in ("recall", "ci_low", "ci_high"))
        ax.errorbar(xs, r, yerr=np.clip(np.vstack([r - lo, hi - r]), 0, None), marker="o",
                    ms=4, capsize=2, label=(labels or {}).get(str(e), str(e)))
    ax.set_xticks(range(len(depths)), depths)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.02)
    ax.legend(title="|r - 0.5|", frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def split_balance(summary: pd.DataFrame, *, ax=None):
    """Examples per split (stacked: AS and not AS), one group of bars per assay when ``summary`` has an ``assay``
    column (the output of :func:`allelic.splits.split_summary`)."""
    fig, ax = _ax(ax, (6, 3.5))
    t = summary.copy()
    t["group"] = t["split"] + (" · " + t["assay"] if "assay" in t else "")
    pos = np.arange(len(t))
    ax.bar(pos, t["n"] - t["n_pos"], color="#9e9e9e", label="not AS")
    ax.bar(pos, t["n_pos"], bottom=t["n"] - t["n_pos"], color="#d62728", label="AS")
    ax.set_xticks(pos, t["group"], rotation=60, ha="right")
    ax.set_ylabel("examples")
    ax.legend(frameon=False)
    return fig


def roc_pr(curves: pd.DataFrame, *, by: str = "assay", axes=None):
    """ROC and precision-recall curves, one line per ``by`` group (AUROC / AUPRC in the legend), from the table of
    :func:`allelic.evaluate.roc_pr_curves`."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    fig = axes[0].figure
    for (name, kind), g in curves.groupby([by, "curve"], sort=True):
        ax = axes[0] if kind == "roc" else axes[1]
        ax.plot(g["x"], g["y"], label=f"{name} ({g['area'].iloc[0]:.2f})")
    axes[0].plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)")
    axes[1].set(xlabel="recall", ylabel="precision", title="precision-recall (AUPRC)", ylim=(0, 1.02))
    for ax in axes:
        ax.legend(frameon=False, fontsize=8)
    return fig


def method_boxplots(metrics: pd.DataFrame, *, metric: str = "auroc", by: str = "assay", model_col: str = "model",
                    highlight: str = "transformer", labels: dict | None = None, ax=None, chance: float | None = 0.5):
    """Paper figure 9B: one group of boxes per ``by`` value (assay), one box per model, over folds x seeds; the
    ``highlight`` model is drawn in red, the others in grey shades; individual evaluations as dots."""
    import seaborn as sns

    groups = sorted(metrics[by].unique())
    models = sorted(metrics[model_col].unique(), key=lambda m: (m != highlight, m))
    fig, ax = _ax(ax, (max(5.0, 1.6 * len(groups) + 2), 4))
    greys = sns.color_palette("Greys", len(models) + 1)[1:]
    palette = {m: ("#d62728" if m == highlight else greys[i]) for i, m in enumerate(models)}
    data = metrics
    sns.boxplot(data=data, x=by, y=metric, hue=model_col, order=groups, hue_order=models, palette=palette,
                showfliers=False, ax=ax)
    sns.stripplot(data=data, x=by, y=metric, hue=model_col, order=groups, hue_order=models, dodge=True,
                  palette={m: "black" for m in models}, size=2.5, alpha=0.6, legend=False, ax=ax)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1)
    handles, names = ax.get_legend_handles_labels()
    names = [(labels or {}).get(n, n) for n in names]
    ax.legend(handles[:len(models)], names[:len(models)], frameon=False, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_ylabel(metric.upper())
    ax.set_xlabel("")
    return fig


def route_boxplots(metrics: pd.DataFrame, *, route_of: dict, metric: str = "auroc", model_col: str = "model",
                   labels: dict | None = None, colors: dict | None = None, ax=None, chance: float | None = 0.5):
    """One horizontal box per model over folds x seeds, sorted by median ``metric`` (best on top), coloured by the
    route each model takes (``route_of``: model -> route name; ``colors``: route -> colour), evaluations as dots."""
    import seaborn as sns

    med = metrics.groupby(model_col)[metric].median().sort_values(ascending=False)
    order = med.index.tolist()
    routes = sorted({route_of.get(m, "other") for m in order})
    colors = colors or dict(zip(routes, sns.color_palette("Set2", len(routes))))
    fig, ax = _ax(ax, (7, 0.38 * len(order) + 1.2))
    palette = {m: colors[route_of.get(m, "other")] for m in order}
    sns.boxplot(data=metrics, y=model_col, x=metric, order=order, hue=model_col, hue_order=order, palette=palette,
                showfliers=False, legend=False, saturation=1, ax=ax)
    sns.stripplot(data=metrics, y=model_col, x=metric, order=order, color="black", size=2.5, alpha=0.6, ax=ax)
    if chance is not None:
        ax.axvline(chance, color="grey", ls=":", lw=1)
    ax.set_yticks(range(len(order)), [(labels or {}).get(m, m) for m in order])
    from matplotlib.patches import Patch

    ax.legend([Patch(color=colors[r]) for r in routes], routes, frameon=False, fontsize=8, loc="lower right")
    ax.set_xlabel(metric.upper())
    ax.set_ylabel("")
    return fig


def attention_motif_profiles(by_label: pd.DataFrame, enrichment: pd.DataFrame | None = None, *, snv: int | None = None,
                             score_label: str = "attention", axes=None):
    """Paper figure 9C: the mean per-base score (``by_label``: :func:`allelic.attention.profile_by_label`) of AS
    and non-AS windows along the window (top), and the motif enrichment profiles (``enrichment``: long table with
    ``motif``, ``position``, ``difference`` from :func:`allelic.profiles.enrichment_profile`, one line per motif) on a
    shared axis below. ``snv``: the SNV's position, marked in both panels."""
    import matplotlib.pyplot as plt

    if axes is None:
        n = 2 if enrichment is not None and len(enrichment) else 1
        fig, axes = plt.subplots(n, 1, figsize=(8, 2.6 * n + 0.6), sharex=True, layout="constrained", squeeze=False)
        axes = axes[:, 0]
    fig = axes[0].figure
    a = axes[0]
    n1, n0 = by_label.attrs.get("n_1"), by_label.attrs.get("n_0")
    a.plot(by_label["position"], by_label["label_1"], color="C3", label=f"AS SNVs{f' (n={n1})' if n1 else ''}")
    a.plot(by_label["position"], by_label["label_0"], color="C0", label=f"non-AS SNVs{f' (n={n0})' if n0 else ''}")
    a.set_ylabel(f"mean {score_label}")
    a.legend(frameon=False, fontsize=8)
    if len(axes) > 1 and enrichment is not None:
        b = axes[1]
        for i, (name, g) in enumerate(enrichment.groupby("motif", sort=False)):
            b.plot(g["position"], g["difference"], color=f"C{(i + 4) % 10}", label=name)
        b.axhline(0, color="grey", lw=0.8)
        b.set_ylabel("motif hits: AS − non-AS\n(fraction of windows)")
        b.legend(frameon=False, fontsize=8)
    for ax in axes:
        if snv is not None:
            ax.axvline(snv, color="grey", ls="--", lw=0.8)
    axes[-1].set_xlabel("position in the window (bp)")
    return fig


def logo(motif, *, ax=None, title: str | None = None):
    """Sequence logo (information content, bits) of a :class:`allelic.motifs.Motif` with logomaker."""
    import logomaker

    fig, ax = _ax(ax, (max(3.0, 0.35 * motif.width + 1), 1.8))
    probs = pd.DataFrame(motif.probabilities(0.8).T, columns=list("ACGT"))
    info = logomaker.transform_matrix(probs, from_type="probability", to_type="information")
    logomaker.Logo(info, ax=ax, color_scheme="classic")
    ax.set_ylabel("bits")
    ax.set_ylim(0, 2)
    ax.set_xticks([])
    ax.set_title(title if title is not None else f"{motif.matrix_id} {motif.name}", fontsize=9)
    return fig


def score_label(name: str, labels: dict | None = None) -> str:
    """The display name of a chapter 07 score column: ``labels`` (e.g. :data:`allelic.labels.LABELS`) keyed by
    the model name without its ``score_`` prefix, and readable names for the motif and oracle columns."""
    names = {"motif_abs_delta": "motif score change", "oracle_abs_delta": "true motif-score difference (oracle)"}
    names |= labels or {}
    return names.get(name, names.get(name.removeprefix("score_"), name.removeprefix("score_")))


def score_gains(scores: pd.DataFrame, *, highlight: str = "score_transformer", labels: dict | None = None,
                axes=None):
    """Chapter 07: the held-out AUROC gain of each per-SNV score over the tissue signals alone, with its bootstrap
    interval (:func:`allelic.tissues.compare_scores`); one panel per ``assay`` when the table has that column
    (scores ordered by their mean gain), the ``highlight`` score in red."""
    import matplotlib.pyplot as plt

    t = scores if "assay" in scores.columns else scores.assign(assay="")
    assays = list(dict.fromkeys(t["assay"]))
    names = t.groupby("score")["auroc_gain"].mean().sort_values(ascending=False).index.tolist()
    if axes is None:
        _, axes = plt.subplots(1, len(assays), figsize=(2.4 * len(assays) + 2.2, 0.32 * len(names) + 1.4),
                               sharey=True, layout="constrained", squeeze=False)
        axes = axes[0]
    axes = np.atleast_1d(axes)
    y = np.arange(len(names))
    for ax, assay in zip(axes, assays):
        d = t[t["assay"] == assay].set_index("score").reindex(names)
        colors = ["#d62728" if n == highlight else "0.3" for n in names]
        ax.errorbar(d["auroc_gain"], y, xerr=[d["auroc_gain"] - d["gain_low"], d["gain_high"] - d["auroc_gain"]],
                    fmt="none", ecolor="0.6", lw=1)
        ax.scatter(d["auroc_gain"], y, c=colors, s=28, zorder=3)
        ax.axvline(0, color="grey", ls=":", lw=1)
        ax.set_title(assay, fontsize=10)
        ax.set_xlabel("AUROC gain")
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([score_label(n, labels) for n in names])
    axes[0].invert_yaxis()
    fig = axes[0].figure
    fig.suptitle("held-out AUROC gain over tissue signals alone (95 % bootstrap interval)", fontsize=10)
    return fig


def tissue_heatmap(adata, *, score: str, n_bins: int = 5, layer: str = "as_call", title: str | None = None):
    """Chapter 07: scanpy's matrix plot of the fraction of SNVs called AS (``layer``) per tissue, by quantile of a
    per-SNV ``score`` (rows :func:`allelic.tissues.score_quantiles`; the same values as
    :func:`allelic.tissues.score_bins`). Returns the figure."""
    import scanpy as sc


    a = adata[np.isfinite(adata.obs[score].to_numpy(float))].copy()
    key = f"{score.removeprefix('score_')} quantile"
    a.obs[key] = score_quantiles(a.obs[score], n_bins)
    mp = sc.pl.matrixplot(a, var_names=list(a.var_names), groupby=key, layer=layer, show=False, return_fig=True,
                          colorbar_title="fraction AS", title=title, figsize=(0.7 * a.n_vars + 2.5, 0.4 * n_bins + 2))
    mp.make_figure()
    return mp.fig


def tissue_embedding(profiles, *, axes=None):
    """Chapter 07: samples (donor x tissue) embedded by their AS profiles (:func:`allelic.tissues.embed`): the PCA
    coloured by tissue and by donor (scanpy ``pl.pca``), and the correlation of the tissues' mean profiles ordered by
    the dendrogram (scanpy ``pl.correlation_matrix``)."""
    import matplotlib.pyplot as plt
    import scanpy as sc

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    fig = axes[0].figure
    sc.pl.pca(profiles, color="tissue", ax=axes[0], show=False, size=160)
    sc.pl.pca(profiles, color="donor", ax=axes[1], show=False, size=160)
    if "dendrogram_tissue" in profiles.uns:
        sc.pl.correlation_matrix(profiles, "tissue", ax=axes[2], show=False, show_correlation_numbers=True)
    else:
        axes[2].set_axis_off()
    return fig


def bad_segments(segmentation, *, max_points: int = 40_000, ax=None, random_state=0):
    """Background allelic dosage along the genome (:func:`allelic.dosage.segment`): each site's reference-allele
    fraction (grey dots; at most ``max_points``, drawn at random) with every segment's two expected fractions
    ``1 / (b + 1)`` and ``b / (b + 1)`` (coloured by BAD), chromosomes side by side in order."""
    import matplotlib.pyplot as plt


    sites, segs = segmentation.sites, segmentation.segments
    fig, ax = _ax(ax, (14, 3.6))
    chroms = sorted(segs["chrom"].unique(), key=chrom_sort_key)
    offset, ticks, start = {}, [], 0.0
    for c in chroms:
        length = float(max(sites.loc[sites["chrom"] == c, "pos"].max(), segs.loc[segs["chrom"] == c, "end"].max()))
        offset[c] = start
        ticks.append(start + length / 2)
        start += length
        ax.axvline(start, color="0.85", lw=0.6)
    s = sites.sample(n=min(max_points, len(sites)), random_state=random_state)
    x = s["pos"].to_numpy() + s["chrom"].map(offset).to_numpy()
    ratio = s["ref_count"] / (s["ref_count"] + s["alt_count"])
    ax.scatter(x, ratio, s=2, color="0.6", alpha=0.35, linewidths=0, rasterized=True)
    bads = sorted(segs["bad"].unique())
    cmap = plt.get_cmap("viridis", max(len(bads), 2))
    color = {b: cmap(i) for i, b in enumerate(bads)}
    for r in segs.itertuples():
        lo, hi = null_ratios(r.bad)
        x0, x1 = offset[r.chrom] + r.start, offset[r.chrom] + r.end
        for y in (float(lo), float(hi)):
            ax.plot([x0, x1], [y, y], color=color[r.bad], lw=2.2, solid_capstyle="butt")
    for b in bads:
        ax.plot([], [], color=color[b], lw=2.2, label=f"BAD {bad_label(b)}")
    ax.set_xticks(ticks)
    ax.set_xticklabels([c.removeprefix("chr") for c in chroms], fontsize=7)
    ax.set_xlim(0, start)
    ax.set_ylim(0, 1)
    ax.set_ylabel("reference-allele fraction")
    ax.legend(frameon=False, fontsize=8, ncol=len(bads), loc="upper center", bbox_to_anchor=(0.5, 1.16))
    return fig


def bad_label(b: float) -> str:
    """A BAD as a short fraction: 1, 4/3, 3/2, 2, 5/2, ..."""
    from fractions import Fraction

    f = Fraction(b).limit_denominator(6)
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def model_schematic(spec: dict, *, show_bp: int = 22, ax=None):
    """Paper figure 9A drawn from :func:`allelic.language_model.figure_9a_spec`: the window around the SNV (the
    central ``2 * show_bp`` bases spelled out, the SNV's two alleles marked), the tokenizer's pieces over those bases
    (the pooled ones filled), the encoder, the pooling and classifier, and the model's probability for this SNV."""
    from matplotlib.patches import FancyArrowPatch, Rectangle

    fig, ax = _ax(ax, (11, 5.6))
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    seq, snv = spec["sequence"].upper(), int(spec["snv"])
    lo, hi = max(0, snv - show_bp), min(len(seq), snv + show_bp)
    x0, x1 = 0.06, 0.94
    step = (x1 - x0) / (hi - lo)

    def bx(i):  # left edge of base i in axis coordinates
        return x0 + (i - lo) * step

    blue, grey, red = "#1f77b4", "#7f7f7f", "#d62728"
    # the whole window, and the zoomed stretch
    ax.plot([0.2, 0.8], [0.95, 0.95], color=grey, lw=3, solid_capstyle="butt")
    zl, zr = 0.2 + 0.6 * lo / len(seq), 0.2 + 0.6 * hi / len(seq)
    ax.plot([zl, zr], [0.95, 0.95], color=blue, lw=5, solid_capstyle="butt")
    ax.text(0.5, 0.985, f"{len(seq)}-bp window, SNV at offset {snv}", ha="center", va="center", fontsize=10)
    for a, b in ((zl, x0), (zr, x1)):
        ax.plot([a, b], [0.94, 0.86], color=blue, lw=0.8, ls=":")
    # the bases, the SNV's alleles
    for i in range(lo, hi):
        ax.text(bx(i) + step / 2, 0.83, seq[i], ha="center", va="center", family="monospace", fontsize=9,
                color=red if i == snv else "black", weight="bold" if i == snv else "normal")
    ax.text(bx(snv) + step / 2, 0.77, spec["alt"], ha="center", va="center", family="monospace", fontsize=9,
            color=red, weight="bold")
    ax.text(x0 - 0.01, 0.83, "ref", ha="right", va="center", fontsize=8, color=grey)
    ax.text(x0 - 0.01, 0.77, "alt", ha="right", va="center", fontsize=8, color=grey)
    # the tokens over those bases
    for t in spec["tokens"]:
        s, e = max(t["start"], lo), min(t["end"], hi)
        if e <= s:
            continue
        ax.add_patch(Rectangle((bx(s) + 0.001, 0.64), (e - s) * step - 0.002, 0.08, linewidth=0.8,
                               edgecolor=blue, facecolor=blue if t["pooled"] else "white", alpha=0.35 if t["pooled"] else 1))
        if (e - s) * step > 0.03:
            ax.text(bx(s) + (e - s) * step / 2, 0.68, t["piece"], ha="center", va="center", fontsize=6.5,
                    family="monospace", clip_on=True)
    ax.text(x0 - 0.01, 0.68, "tokens", ha="right", va="center", fontsize=8, color=grey)
    ax.text(0.5, 0.60, f"BPE tokenizer: {spec['n_tokens']} tokens for the window (vocabulary {spec['vocab_size']:,})",
            ha="center", va="center", fontsize=9)

    def box(x, y, w, h, text, fc="#eef3fa"):
        ax.add_patch(Rectangle((x, y), w, h, facecolor=fc, edgecolor=blue, linewidth=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9, wrap=True)

    def arrow(a, b):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=grey, lw=1))

    arrow((0.5, 0.575), (0.5, 0.50))
    conv = (f"+ a {spec['nucleotide_conv']}-bp convolution over the bases, added to the token embeddings\n"
            if spec.get("nucleotide_conv") else "")
    box(0.12, 0.34, 0.76, 0.16, f"DNABERT-2 encoder (MosaicBERT): {spec['layers']} layers × {spec['heads']} heads, "
                                f"hidden {spec['hidden_size']}, ALiBi attention, gated MLP\n{conv}"
                                f"{spec['parameters']:,} parameters"
                                + (f", pretrained on {spec['pretraining']}" if spec.get("pretraining") else ""))
    arrow((0.5, 0.34), (0.5, 0.29))
    pool = {"centre": f"mean of the tokens within\n±{spec['centre_flank']} bp of the SNV (filled above)",
            "mean": "mean of all tokens", "cls": "[CLS] token"}.get(spec["pooling"], spec["pooling"])
    head = ("both alleles' windows:\n[e_ref, e_alt, e_alt − e_ref]" if spec["head"] == "siamese"
            else "the reference window")
    box(0.04, 0.10, 0.40, 0.19, f"pooling: {pool}\nhead: {head}")
    arrow((0.44, 0.195), (0.52, 0.195))
    box(0.52, 0.10, 0.18, 0.19, "linear classifier\nsoftmax")
    arrow((0.70, 0.195), (0.76, 0.195))
    verdict = "P(allele-specific)" + (f"\n= {spec['score']:.3f}" if spec.get("score") is not None else "")
    box(0.76, 0.10, 0.20, 0.19, verdict, fc="#fbeaea")
    return fig
