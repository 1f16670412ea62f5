"""Rebuild the book's figures from saved chapter results, without recomputing (``make figures``).

    python -m allelic.figures [--out results/figures]

Each figure has one function that draws it from a results table with :mod:`allelic.pl`; the chapters call the same
functions on the tables they have just computed, and ``main`` calls them on the tables saved in ``results/``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import config, describe, pl


def _need(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the chapter that writes it first (make chapters)")
    return path


def overview(counts: pd.DataFrame, *, min_total: int = 6):
    """Chapter 01: SNVs per tissue and assay, coverage, allelic ratios (``results/01/counts.tsv.gz``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    pl.count_heatmap(describe.coverage_summary(counts, min_total=min_total), ax=axes[0])
    pl.coverage(counts, hue="assay", min_total=min_total, ax=axes[1])
    pl.ratio_distribution(counts, hue="assay", min_total=min_total, ax=axes[2])
    return fig


def imbalance_tests(t: pd.DataFrame):
    """Chapter 02: allelic ratio against coverage with the calls, and the QQ plot of both tests
    (``results/02/imbalance.tsv.gz``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    pl.ratio_vs_coverage(t, call="as_betabinom", ax=axes[0])
    pl.qq({"binomial": t["p_binom"], "beta-binomial": t["p_betabinom"]}, ax=axes[1])
    return fig


def figure_9b(metrics: pd.DataFrame, *, metric: str = "auroc"):
    """Chapter 05 (paper figure 9B): held-out AUROC per assay, one box per method over folds x seeds, the
    transformer highlighted (``results/05/fold_metrics.tsv``)."""
    from .baselines import LABELS

    return pl.method_boxplots(metrics, metric=metric, labels=LABELS)


#: figure name -> (results table it is drawn from, drawing function)
FIGURES = {"01_overview": ("01/counts.tsv.gz", overview), "02_imbalance_tests": ("02/imbalance.tsv.gz", imbalance_tests),
           "05_figure_9b": ("05/fold_metrics.tsv", figure_9b)}


def from_results(name: str, results=None):
    """Draw figure ``name`` from its saved results table."""
    table, draw = FIGURES[name]
    r = Path(results) if results else config.results_dir()
    return draw(pd.read_csv(_need(r / table), sep="\t"))


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    ap = argparse.ArgumentParser(prog="python -m allelic.figures", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="output folder (default results/figures)")
    a = ap.parse_args(argv)
    out = Path(a.out) if a.out else config.results_dir("figures")
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in FIGURES:
        try:
            fig = from_results(name)
        except FileNotFoundError as exc:
            print(f"skip {name}: {exc}", file=sys.stderr)
            status = 1
            continue
        fig.savefig(out / f"{name}.png", dpi=150)
        print(out / f"{name}.png")
    return status


if __name__ == "__main__":
    sys.exit(main())
