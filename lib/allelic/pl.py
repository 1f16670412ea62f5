"""Plots of what the other modules computed (scanpy's ``pl`` convention).

Each function takes the computed table and an optional matplotlib ``ax``, draws, and returns the figure.
Nothing here computes statistics or saves files: saving is the notebook's job."""
from __future__ import annotations

import numpy as np
import pandas as pd


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
    return fig


def coverage(counts: pd.DataFrame, *, hue: str | None = "assay", ax=None, min_total: int | None = None):
    """Distribution of reads per SNV (``ref_count + alt_count``), log-scaled, one line per ``hue`` group."""
    import seaborn as sns

    fig, ax = _ax(ax)
    t = counts.assign(total=counts["ref_count"] + counts["alt_count"])
    t = t[t["total"] > 0]
    sns.histplot(t, x="total", hue=hue, element="step", fill=False, log_scale=True, stat="density", common_norm=False, ax=ax)
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
