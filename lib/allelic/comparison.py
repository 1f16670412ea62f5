"""The transformer against the baselines on the same leak-free folds (paper figure 9B).

One call runs the whole comparison of chapter 05: for every seed and chromosome fold, every assay's standard
baselines (:func:`allelic.baselines.all_baselines`) and the fine-tuned transformer
(:class:`allelic.baselines.FinetunedTransformer`, with the head, pooling and learning rate chosen on validation
chromosomes in chapter 04) are fitted on the fold's training rows and scored on its held-out chromosomes.

The pretrained checkpoint may differ per fold: a checkpoint pretrained on the windows of one split must not be
fine-tuned and scored on another split whose test windows it saw. ``checkpoint`` can therefore be a function of
the fold's example table (e.g. :func:`allelic.language_model.pretrained_checkpoint`, which pretrains on that fold's
training windows only, or returns a corpus checkpoint from which every labelled window was excluded).

:func:`against_published` is chapter 04's real-data check: the transformer chosen and fitted on one split of the
EN-TEx examples, beside the JASPAR-scan GBT baseline on the same split and the published results for the assay.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Callable

import pandas as pd
from joblib import Parallel, delayed

from . import cache, config
from .baselines import FinetunedTransformer, MotifGBT, all_baselines, evaluate_models
from .datasets import Examples
from .evaluate import score_table
from .labels import LABELS
from .language_model import Selection, conv_widths, fold_checkpoints, published_comparison, select_and_fit
from .splits import chromosome_folds
from .train import TrainConfig

#: the two kinds of fold task: every baseline of an assay, or the fine-tuned transformer
KINDS = ("baselines", "transformer")
#: bumped when a fold task returns other results for the same inputs (cache key)
TASK_FORMAT = 3  # 3: gapped k-mer columns hashed by their top bits (every column reachable)


def selected_candidates(search: pd.DataFrame, data: str | None = None) -> dict:
    """``{assay: {"head", "pooling", "learning_rate", "nucleotide_conv"[, "centre_flank"]}}`` of the rows marked
    ``selected`` in a model-selection table
    (:attr:`allelic.language_model.Selection.search`, chapter 04's ``selection.tsv``), for one ``data`` set."""
    t = search[search["selected"].astype(bool)]
    if data is not None:
        t = t[t["data"] == data]
    if t.empty:
        raise ValueError(f"no selected candidate{f' for data {data!r}' if data else ''} in the selection table")
    conv = conv_widths(t)
    return {r.assay: {"head": r.head, "pooling": r.pooling, "learning_rate": float(r.learning_rate),
                      "nucleotide_conv": int(w),
                      **({"centre_flank": int(r.centre_flank)} if r.pooling == "centre" else {})}
            for r, w in zip(t.itertuples(), conv)}


@dataclasses.dataclass
class ChapterInputs:
    """What chapter 05 compares on one data set: the chromosome ``folds`` (:class:`allelic.datasets.Examples`, each
    with its ``split`` column), the pretrained ``checkpoint`` (a path, or ``f(fold_table) -> path`` when chapter 04
    pretrained per fold) and chapter 04's ``selection`` (:func:`selected_candidates`)."""

    data: str
    folds: list
    checkpoint: Path | str | Callable
    selection: dict


def chapter_inputs(data: str, *, n_folds: int, random_state=0) -> ChapterInputs:
    """Chapter 05's inputs for ``data`` (``"simulator"`` or ``"entex"``), read from the results of chapters 03 (the
    example table, re-split into ``n_folds`` chromosome folds with :func:`allelic.splits.chromosome_folds`) and 04
    (``checkpoints.json``, ``selection.tsv``). The chapter and the workflow's fold steps (:mod:`allelic.steps`) both
    build their folds here, so a step's fold ``i`` is the chapter's fold ``i``. A missing input names the chapter
    that writes it."""
    if data not in ("simulator", "entex"):
        raise ValueError(f"data must be 'simulator' or 'entex', got {data!r}")
    table = config.results_dir("03") / ("examples.tsv.gz" if data == "simulator" else "entex_examples.tsv.gz")
    ch04 = config.results_dir("04")
    for path, chapter in ((table, "03"), (ch04 / "checkpoints.json", "04"), (ch04 / "selection.tsv", "04")):
        if not path.is_file():
            raise FileNotFoundError(f"{config.shown(path)} is missing: run chapter {chapter} first "
                                    f"(allelic run --chapters {chapter})")
    examples = pd.read_csv(table, sep="\t").drop(columns=["split", "leak_group"], errors="ignore")
    folds = chromosome_folds(Examples(examples), n_folds, random_state=random_state)
    checkpoints = json.loads((ch04 / "checkpoints.json").read_text())
    checkpoint = (checkpoints["simulator"] if data == "simulator"
                  else fold_checkpoints(checkpoints["entex"], checkpoints.get("entex_fold_spec")))
    selection = selected_candidates(pd.read_csv(ch04 / "selection.tsv", sep="\t"), data)
    return ChapterInputs(data, folds, checkpoint, selection)


@dataclasses.dataclass
class PublishedCheck:
    """Result of :func:`against_published`: ``selection`` (the candidates' search and the selected fit), ``scores``
    (held-out ``label``/``score`` rows of the transformer and the baseline, column ``model``) and ``table`` (one row
    per model with AUROC, its bootstrap interval and AUPRC — :func:`allelic.evaluate.score_table` — then the
    published rows, :func:`allelic.language_model.published_comparison`)."""

    selection: Selection
    scores: pd.DataFrame
    table: pd.DataFrame

    #: model names of the two scored rows, in this order
    MODELS = ("transformer (this book)", "JASPAR scan GBT (baseline)")


def against_published(examples: pd.DataFrame, checkpoint, candidates: list[dict], *, train_config=None,
                      assay: str = "CTCF", anchors: pd.DataFrame | None = None, n_boot: int = 200, random_state=0,
                      save_dir=None, out_dir=None, data_name: str = "entex") -> PublishedCheck:
    """Fine-tune ``candidates`` on split ``examples`` (chosen on validation,
    :func:`allelic.language_model.select_and_fit`), fit the JASPAR-scan GBT baseline
    (:class:`allelic.baselines.MotifGBT`) on the same training rows, score both on the test rows, and set them beside
    the published results for ``assay`` (``anchors``: default :func:`allelic.config.published_anchors`). ``n_boot``
    bootstrap resamples give the AUROC intervals. ``examples`` hold one assay, ``assay``."""
    found = sorted(set(examples["assay"]))
    if found != [assay]:
        raise ValueError(f"against_published compares one assay ({assay}); the examples hold {found}")
    sel = select_and_fit(examples, checkpoint, candidates, train_config=train_config, save_dir=save_dir,
                         data_name=data_name, out_dir=out_dir)
    gbt = evaluate_models([MotifGBT(random_state=random_state)], examples, return_scores=True)[1]
    ours, theirs = PublishedCheck.MODELS
    scores = pd.concat([sel.fits[0].scores.assign(model=ours), gbt.assign(model=theirs)], ignore_index=True)
    table = published_comparison(score_table(scores, n_boot=n_boot, random_state=random_state),
                                 config.published_anchors() if anchors is None else anchors, assay=assay)
    return PublishedCheck(sel, scores, table)


def transformer_vs_baselines(folds, checkpoint: Path | str | Callable, *, selection: dict | None = None,
                             train_config=None, seeds=(0,), quick: bool = False, device: str = "auto", n_jobs: int = 1,
                             cache_dir=None):
    """Fit the baselines and the transformer on every fold x seed; returns ``(metrics, scores)``.

    ``folds``: example tables or :class:`allelic.datasets.Examples` (e.g. :func:`allelic.splits.chromosome_folds`).
    ``checkpoint``: a pretrained checkpoint directory, or ``f(fold_table) -> directory`` called once per fold.
    ``selection``: per assay, the transformer's ``head``, ``pooling``, ``learning_rate`` (and ``centre_flank``,
    ``nucleotide_conv``) (default: reference head, CLS pooling, ``train_config``'s learning rate). ``n_jobs``:
    processes (joblib; -1: one per core), each taking one assay x seed through every fold, so the sequence features
    of an assay's windows are computed once per process; every fit is seeded on its own and runs on one thread
    (:func:`fold_task`), so the results do not depend on ``n_jobs``. ``metrics`` has the columns of
    :func:`allelic.baselines.evaluate_models` plus ``fold`` and ``seed``; ``scores`` one row per test example, model,
    fold and seed. ``cache_dir``: each fold task's results are kept there (:func:`fold_task`), where the workflow's
    ``finetune`` and ``baselines`` rules put them, and read back instead of refitted."""
    cfg = train_config or TrainConfig()
    selection = selection or {}
    tables = [getattr(fold, "table", fold) for fold in folds]
    if not tables:
        raise ValueError("no folds given")
    ckpts = [checkpoint(t) if callable(checkpoint) else checkpoint for t in tables]
    assays = sorted(set().union(*(t["assay"].unique() for t in tables)))
    # one task per assay x seed, the largest first (joblib hands tasks out in order)
    size = {a: sum(int((t["assay"] == a).sum()) for t in tables) for a in assays}
    tasks = sorted(((a, seed) for seed in seeds for a in assays), key=lambda t: -size[t[0]])
    with warnings.catch_warnings():
        # loky replaces a worker whose memory grew (the feature cache of its assay) between tasks: harmless here,
        # every task starts from its own inputs
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs", category=UserWarning)
        out = Parallel(n_jobs=n_jobs)(
            delayed(_assay_folds)([t[t["assay"] == a] for t in tables], ckpts, selection.get(a, {}), cfg, seed,
                                  quick, device, cache_dir)
            for a, seed in tasks)
    mets = pd.concat([m for m, _ in out], ignore_index=True)
    scs = pd.concat([s for _, s in out], ignore_index=True)
    order = ["fold", "seed", "assay"]
    mets = mets.sort_values(order, kind="stable").reset_index(drop=True)
    scs = scs.sort_values(order, kind="stable").reset_index(drop=True)
    return mets, scs


def _assay_folds(fold_rows: list, ckpts: list, cand: dict, cfg, seed: int, quick: bool, device: str, cache_dir):
    """The baselines and the transformer on one assay's rows of every fold (a joblib task)."""
    mets, scs = [], []
    for i, (rows, ckpt) in enumerate(zip(fold_rows, ckpts)):
        if rows.empty:
            continue
        for kind in KINDS:
            path = task_path(cache_dir, kind, rows["assay"].iloc[0], i, seed) if cache_dir is not None else None
            met, sc = fold_task(rows, ckpt, kind=kind, candidate=cand, train_config=cfg, seed=seed, quick=quick,
                                device=device, cache_path=path)
            mets.append(met.assign(fold=i, seed=seed))
            scs.append(sc.assign(fold=i, seed=seed))
    return pd.concat(mets, ignore_index=True), pd.concat(scs, ignore_index=True)


def task_path(cache_dir, kind: str, assay: str, fold: int, seed: int) -> Path:
    """Where a fold task's results live: ``<cache_dir>/<kind>-<assay>-fold<fold>-seed<seed>`` (+ ``.metrics.tsv``,
    ``.scores.tsv.gz``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return Path(cache_dir) / f"{kind}-{assay}-fold{int(fold)}-seed{int(seed)}"


def _checkpoint_id(checkpoint) -> str:
    """A pretrained checkpoint in a cache key: its card's key (pretraining spec, corpus and exclusions) when it has
    one, else its path."""
    card = Path(checkpoint) / "model_card.json"
    if card.is_file():
        k = json.loads(card.read_text()).get("key")
        if k:
            return f"key:{k}"
    return str(Path(checkpoint).resolve())


def fold_task(rows: pd.DataFrame, checkpoint, *, kind: str, candidate: dict | None = None, train_config=None,
              seed: int = 0, quick: bool = False, device: str = "auto", n_jobs: int | None = 1, cache_path=None):
    """One assay's rows of one fold (``split`` train/val/test): every baseline (``kind="baselines"``,
    :func:`allelic.baselines.all_baselines`) or the transformer fine-tuned from ``checkpoint`` with ``candidate``'s
    head, pooling and learning rate (``kind="transformer"``); returns ``(metrics, scores)`` of
    :func:`allelic.baselines.evaluate_models`.

    ``n_jobs``: threads of the transformer's fit (the baselines use one each). The default, one, makes the result a
    function of the inputs alone: with torch's default threads (``None``) the floating-point sums of a CPU fit, and
    so near-tied scores and the AUROC, change with the number of cores (measured: 0.7024 vs 0.7027 on the same fold
    with 2 threads and with 1).

    ``cache_path`` (a prefix, :func:`task_path`): the results are read from ``<prefix>.metrics.tsv`` and
    ``<prefix>.scores.tsv.gz`` when their key -- the rows' content, the kind, the seed, and the checkpoint,
    candidate and fine-tuning settings (transformer) or ``quick`` (baselines) -- matches, else computed and
    written there."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cand = candidate or {}
    base = train_config or TrainConfig()
    cfg = dataclasses.replace(base, learning_rate=cand.get("learning_rate", base.learning_rate))
    if kind == "transformer":
        settings = {"checkpoint": _checkpoint_id(checkpoint), "candidate": cand,
                    "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("device", "progress")}}
    else:
        settings = {"quick": quick}
    cols = ["example_id", "assay", "label", "seq_ref", "seq_alt", "split"]
    k = cache.key("fold_task", TASK_FORMAT, kind, seed, cache.table_digest(rows[cols]), settings)
    if cache_path is not None:
        met, sc = (cache.read(f"{cache_path}.metrics.tsv", k), cache.read(f"{cache_path}.scores.tsv.gz", k))
        if met is not None and sc is not None:
            return met, sc
    if kind == "transformer":
        models = [FinetunedTransformer.from_checkpoint(
            checkpoint, head=cand.get("head", "reference"), pooling=cand.get("pooling", "cls"),
            centre_flank=cand.get("centre_flank", 4), nucleotide_conv=cand.get("nucleotide_conv", 0), config=cfg,
            random_state=seed, device=device, n_jobs=n_jobs)]
    else:
        models = all_baselines(rows["assay"].iloc[0], random_state=seed, quick=quick)
    met, sc = evaluate_models(models, rows, random_state=seed, return_scores=True)
    if cache_path is not None:
        cache.write(f"{cache_path}.metrics.tsv", k, met)
        cache.write(f"{cache_path}.scores.tsv.gz", k, sc)
    return met, sc


def gap_to_best(metrics: pd.DataFrame, assay: str, *, reference: str = "transformer", metric: str = "auroc") -> str:
    """A plain sentence: the ``reference`` model's median ``metric`` for ``assay`` against the best other model's
    (medians over folds and seeds), with the difference."""
    med = metrics[metrics["assay"] == assay].groupby("model")[metric].median()
    if reference not in med or len(med) < 2:
        return f"no {reference} comparison for {assay}"
    others = med.drop(reference)
    best = others.idxmax()
    d = med[reference] - others[best]
    return (f"the {reference}'s median {metric.upper()} is {med[reference]:.3f}, the best baseline's "
            f"({LABELS.get(best, best)}) {others[best]:.3f}: {abs(d):.3f} {'above' if d >= 0 else 'below'} it")


def fold_summary(metrics: pd.DataFrame, scores: pd.DataFrame, *, assay: str = "CTCF", anchors: pd.DataFrame | None = None,
                 n_boot: int = 1000, random_state=0) -> pd.DataFrame:
    """One row per model of ``assay`` over chromosome folds, best first: ``folds``, the ``median`` fold AUROC with its
    ``fold_min``/``fold_max``, and the AUROC of the pooled out-of-fold scores with its 95 % bootstrap interval
    (``auroc``, ``auroc_low``, ``auroc_high``: :func:`allelic.evaluate.score_table`; each SNV is held out in exactly
    one fold), then the published results for the assay (``anchors``, default :func:`allelic.config.published_anchors`;
    their ``auroc`` is the range's midpoint). ``label`` gives each model's display name."""
    m = metrics[metrics["assay"] == assay]
    per = m.groupby("model")["auroc"].agg(folds="size", median="median", fold_min="min", fold_max="max")
    pooled = score_table(scores[scores["assay"] == assay], n_boot=n_boot, random_state=random_state).set_index("model")
    t = per.join(pooled[["auroc", "auroc_low", "auroc_high", "n"]]).sort_values("median", ascending=False)
    t = t.reset_index().assign(label=lambda d: d["model"].map(lambda x: LABELS.get(x, x)))
    anchors = config.published_anchors() if anchors is None else anchors
    return published_comparison(t, anchors, assay=assay).assign(
        label=lambda d: d["label"].fillna(d["model"]))
