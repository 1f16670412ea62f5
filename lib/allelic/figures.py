"""Rebuild the book's figures from saved chapter results, without recomputing (``make figures``).

    python -m allelic.figures [--out results/figures]

Each figure has one function that draws it from a results table with :mod:`allelic.pl`; the chapters call the same
functions on the tables they have just computed, and ``main`` calls them on the tables saved in ``results/``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from . import config, describe, evaluate, pl
from .labels import LABELS


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


def figure_9a(spec: dict):
    """Chapter 04 (paper figure 9A): the model as a schematic drawn from one held-out window, its tokens and the
    model's probability (``results/04/figure_9a.json`` of :func:`allelic.language_model.figure_9a_spec`)."""
    return pl.model_schematic(spec)


def _figure_9a_from_file(path: Path):
    import json

    return figure_9a(json.loads(path.read_text()))


def roc_pr(scores: pd.DataFrame, *, by: str = "assay"):
    """Chapter 04: ROC and precision-recall curves of the held-out scores, one line per assay
    (``results/04/scores.tsv.gz``)."""
    return pl.roc_pr(evaluate.roc_pr_curves(scores, by=by), by=by)


def figure_9b(metrics: pd.DataFrame, *, metric: str = "auroc"):
    """Chapter 05 (paper figure 9B): held-out AUROC per assay, one box per method of the paper's comparison over
    folds x seeds, the transformer highlighted (``results/05/fold_metrics.tsv``; the binding-first rows are drawn by
    :func:`binding_routes`)."""
    from .binding_first import BINDING_ROUTE

    return pl.method_boxplots(metrics[~metrics["model"].isin(BINDING_ROUTE)], metric=metric, labels=LABELS)


def binding_routes(metrics: pd.DataFrame, *, assay: str = "CTCF", metric: str = "auroc"):
    """Chapter 05: every method of ``assay`` over folds, sorted by median, coloured by its route — binding first
    (:data:`allelic.binding_first.BINDING_ROUTE`), AS labels first, the transformer fine-tuned on AS labels
    (``results/05/fold_metrics.tsv`` or ``entex_fold_metrics.tsv``)."""
    from .binding_first import BINDING_ROUTE

    m = metrics[metrics["assay"] == assay]
    route_of = {x: ("binding first" if x in BINDING_ROUTE else "AS labels, transformer" if x == "transformer"
                    else "AS labels") for x in m["model"].unique()}
    colors = {"binding first": "#1f77b4", "AS labels": "#a6a6a6", "AS labels, transformer": "#d62728"}
    return pl.route_boxplots(m, route_of=route_of, metric=metric, labels=LABELS, colors=colors)


def figure_9c(profile: pd.DataFrame, enrichment: pd.DataFrame | None = None, *, score_label: str = "attention"):
    """Chapter 06 (paper figure 9C): mean attention along the window for AS and non-AS SNVs, above the per-position
    enrichment of motif hits in AS windows (``results/06/simulator/profile.tsv`` and ``enrichment.tsv`` of
    :func:`allelic.explain.write`); the SNV (window centre) marked."""
    profile = profile.copy()
    for k in ("n_1", "n_0"):
        if k in profile.columns:
            profile.attrs[k] = int(profile[k].iloc[0])
    return pl.attention_motif_profiles(profile, enrichment, snv=len(profile) // 2, score_label=score_label)


def logos(table: pd.DataFrame, motifs, *, top: int = 6):
    """Chapter 06: sequence logos of the ``top`` de novo motifs (``motifs.tsv`` and ``motifs.meme`` of
    :func:`allelic.explain.write`), titled with their consensus and best JASPAR match."""
    import matplotlib.pyplot as plt

    n = max(1, min(top, len(motifs)))
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n), layout="constrained", squeeze=False)
    for ax, m, (_, row) in zip(axes[:, 0], motifs, table.head(n).iterrows()):
        match = (f"{row['jaspar_name']} ({row['jaspar_id']}, TOMTOM q = {row['tomtom_qvalue']:.2g})"
                 if row["known"] else "no JASPAR match")
        pl.logo(m, ax=ax, title=f"{row['motif_id']}: {row['consensus']}, {int(row['n_instances'])} instances; {match}")
    if not len(motifs):
        axes[0, 0].set_axis_off()
        axes[0, 0].set_title("no de novo motif passed the filters")
    return fig


def tissue_effects(scores: pd.DataFrame):
    """Chapter 07: the held-out AUROC gain of each per-SNV score (the transformer's out-of-fold score, the baselines',
    the motif score change) over tissue signals alone, per assay (``results/07/scores.tsv``)."""
    return pl.score_gains(scores, labels=LABELS)


def _logos_from_files(table: pd.DataFrame, meme: Path):
    from .meme import read_meme

    return logos(table, read_meme(meme))


#: figure name -> (results table(s) it is drawn from, drawing function)
FIGURES = {"01_overview": ("01/counts.tsv.gz", overview), "02_imbalance_tests": ("02/imbalance.tsv.gz", imbalance_tests),
           "04_roc_pr": ("04/scores.tsv.gz", roc_pr), "04_figure_9a": ("04/figure_9a.json", _figure_9a_from_file), "05_figure_9b": ("05/fold_metrics.tsv", figure_9b),
           "05_binding_routes": ("05/fold_metrics.tsv", binding_routes),
           "06_figure_9c": (("06/simulator/profile.tsv", "06/simulator/enrichment.tsv"), figure_9c),
           "06_logos": (("06/simulator/motifs.tsv", "06/simulator/motifs.meme"), _logos_from_files),
           "07_tissue_effects": ("07/scores.tsv", tissue_effects)}


def from_results(name: str, results=None):
    """Draw figure ``name`` from its saved results table."""
    tables, draw = FIGURES[name]
    r = Path(results) if results else config.results_dir()
    paths = [_need(r / t) for t in ((tables,) if isinstance(tables, str) else tables)]
    return draw(*[pd.read_csv(p, sep="\t") if ".tsv" in p.name else p for p in paths])


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
