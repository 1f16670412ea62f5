"""Binding first, then alleles: learn where a factor binds, then score each SNV by the change its allele makes.

The route the field takes for allele-specific (AS) binding (deltaSVM, DeepSEA, ChromBPNet): a model trained on bound
sequences against GC-matched background (:mod:`allelic.binding`) never sees an AS label, and the SNV's ``effect`` =
f(alternative window) - f(reference window) (both strands averaged) scores it. On each chromosome fold of chapter 05
(:func:`binding_first`), for one assay:

1. a **binding set** is built from the fold (its train/val windows as bound examples, never a test window:
   ``make_set(fold_table, negatives)``, e.g. :func:`allelic.binding.entex_binding_set`), with genomic background
   and, for the binders in ``shuffled``, dinucleotide-shuffled background as the second negative set;
2. the **binding models** (:data:`BINDERS`: the gapped k-mer SVM and CNN of :mod:`allelic.baselines.binding`, the
   transformer with a binding head :class:`allelic.baselines.transformer.TransformerBinding` fine-tuned from the
   fold's pretrained checkpoint) are fitted on it; each reports its bound-vs-background AUROC on the set's
   validation rows (held-out chromosomes' windows and held-out corpus records);
3. the AS rows of the fold are scored three ways, each a row of figure 9B: **zero-shot** ``|effect|``
   (:class:`~allelic.baselines.binding.BindingEffect`), **stacked** (the JASPAR-scan GBT with the binder's scores as
   features, :class:`~allelic.baselines.binding.BindingStacked`) and, for the transformer, **binding then AS**: its
   binding-trained encoder fine-tuned on the AS labels with chapter 04's head (against today's MLM-only start).

The signed effects of the held-out rows go with the scores (column ``effect``), so chapter 05 can ask which allele
wins (:func:`allelic.evaluate.direction_table`). Every fold's results are cached under ``cache_dir`` by the fold's
rows, the binding set's key and the settings (:mod:`allelic.cache`).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import cache
from .baselines import FinetunedTransformer, evaluate_models
from .baselines.binding import BindingEffect, BindingStacked, CNNBinding, GkmBinding
from .baselines.transformer import TransformerBinding
from .train import TrainConfig

#: the binding models, in figure order
BINDERS = ("gkm", "cnn", "transformer")
#: bumped when a fold returns other results for the same inputs (cache key)
FORMAT = 2  # 2: composition by source family
SCORE_COLUMNS = ["example_id", "assay", "model", "label", "score", "effect", "fold", "seed"]


@dataclasses.dataclass
class BindingFirst:
    """Results of :func:`binding_first`. ``metrics``: one row per fold x AS model (the columns of
    :func:`allelic.baselines.evaluate_models` plus ``fold``, ``seed``); ``scores``: held-out rows
    (:data:`SCORE_COLUMNS`; ``effect`` is the signed allele effect of the binder behind the model, NaN for models
    without one); ``binding``: one row per fold x binder x negatives (``val_auroc`` bound vs background, ``n_train``,
    ``fit_seconds``); ``composition``: each fold's binding sets by source family
    (:meth:`allelic.binding.BindingSet.composition` ``(coarse=True)`` with ``fold`` and ``negatives``)."""

    metrics: pd.DataFrame
    scores: pd.DataFrame
    binding: pd.DataFrame
    composition: pd.DataFrame


def model_names(binders=BINDERS, shuffled=("cnn",)) -> list[str]:
    """Names of the AS rows :func:`binding_first` adds, in figure order."""
    names = [f"{b}_binding" for b in binders] + [f"{b}_binding_shuffled" for b in shuffled if b in binders]
    names += ["cnn_binding_gbt"] if "cnn" in binders else []
    return names + (["transformer_binding_first"] if "transformer" in binders else [])


def make_binder(kind: str, *, checkpoint=None, candidate: dict | None = None, train_config=None, quick=False,
                random_state=0, device="auto"):
    """An unfitted binding model of ``kind`` (:data:`BINDERS`); the transformer starts from ``checkpoint`` with the
    nucleotide convolution and learning rate of chapter 04's ``candidate``, centre pooling (binding windows are
    centred on peaks as AS windows on SNVs) and ``train_config``'s other settings."""
    if kind == "gkm":
        return GkmBinding(random_state=random_state)
    if kind == "cnn":
        return CNNBinding(quick=quick, device=device, random_state=random_state)
    if kind == "transformer":
        if checkpoint is None:
            raise ValueError("the transformer binding model needs a pretrained checkpoint")
        cand, cfg = candidate or {}, train_config or TrainConfig()
        cfg = dataclasses.replace(cfg, learning_rate=cand.get("learning_rate", cfg.learning_rate))
        return TransformerBinding(checkpoint, nucleotide_conv=cand.get("nucleotide_conv", 0), config=cfg,
                                  device=device, random_state=random_state)
    raise ValueError(f"binder must be one of {BINDERS}, got {kind!r}")


def _fold(rows: pd.DataFrame, fold_table: pd.DataFrame, make_set: Callable, *, checkpoint, candidate, cfg, binders,
          shuffled, quick, seed, device, work_dir):
    """One fold: binding sets, binders, and the AS models scored on the fold's test rows."""
    sets = {"genomic": make_set(fold_table, "genomic")}
    if any(b in binders for b in shuffled):
        sets["shuffled"] = make_set(fold_table, "shuffled")
    comp = pd.concat([s.composition(coarse=True).assign(negatives=n) for n, s in sets.items()], ignore_index=True)
    fitted, brows = {}, []
    for neg, bset in sets.items():
        for kind in binders if neg == "genomic" else [b for b in shuffled if b in binders]:
            b = make_binder(kind, checkpoint=checkpoint, candidate=candidate, train_config=cfg, quick=quick,
                            random_state=seed, device=device).fit(bset.table)
            fitted[(kind, neg)] = b
            brows.append({"binder": kind, "negatives": neg, "val_auroc": b.val_auroc_, "n_train": b.n_train_,
                          "fit_seconds": b.fit_seconds_})
    models, signed = [], {}
    for (kind, neg), b in fitted.items():
        name = f"{kind}_binding" + ("" if neg == "genomic" else "_shuffled")
        models.append(BindingEffect(b, name=name))
        signed[name] = b
    if "cnn" in binders:
        models.append(BindingStacked(fitted[("cnn", "genomic")], quick=quick, random_state=seed, name="cnn_binding_gbt"))
        signed["cnn_binding_gbt"] = fitted[("cnn", "genomic")]
    if "transformer" in binders:
        enc = fitted[("transformer", "genomic")].save_checkpoint(Path(work_dir) / "binding_encoder", encoder_only=True)
        cand = candidate or {}
        ft = FinetunedTransformer.from_checkpoint(
            enc, head=cand.get("head", "reference"), pooling=cand.get("pooling", "cls"),
            centre_flank=cand.get("centre_flank", 4), nucleotide_conv=cand.get("nucleotide_conv", 0),
            config=dataclasses.replace(cfg, learning_rate=cand.get("learning_rate", cfg.learning_rate)),
            random_state=seed, device=device, n_jobs=1)
        ft.name = "transformer_binding_first"
        models.append(ft)
    met, sc = evaluate_models(models, rows, random_state=seed, return_scores=True)  # fits the models in place
    test_ids = rows.loc[rows["split"] == "test", "example_id"].to_numpy()
    eff = {m.name: m.signed_ for m in models if isinstance(m, BindingEffect)}  # the test rows' signed effects
    if "cnn" in binders:
        eff["cnn_binding_gbt"] = eff["cnn_binding"]                             # the stacked GBT's binder
    eff = {name: pd.Series(e, index=test_ids) for name, e in eff.items()}
    sc["effect"] = [eff[m].get(e, np.nan) if m in eff else np.nan for m, e in zip(sc["model"], sc["example_id"])]
    met["fit_seconds"] = met["fit_seconds"].astype(float)
    for name, b in signed.items():  # a zero-shot row's cost is its binder's training
        met.loc[met["model"] == name, "fit_seconds"] += b.fit_seconds_
    if "transformer" in binders:
        met.loc[met["model"] == "transformer_binding_first", "fit_seconds"] += fitted[("transformer", "genomic")].fit_seconds_
    return met, sc, pd.DataFrame(brows), comp


def binding_first(folds, make_set: Callable, *, assay: str = "CTCF", checkpoint=None, candidate: dict | None = None,
                  train_config=None, binders=BINDERS, shuffled=("cnn",), quick: bool = False, seed: int = 0,
                  device: str = "auto", n_jobs: int = 1, cache_dir=None) -> BindingFirst:
    """The binding-first route on every fold (module docstring); returns :class:`BindingFirst`.

    ``folds``: example tables or :class:`allelic.datasets.Examples` with a ``split`` column (chapter 05's chromosome
    folds); only ``assay``'s rows are scored. ``make_set(fold_table, negatives)`` returns the fold's
    :class:`allelic.binding.BindingSet` (``negatives``: ``"genomic"`` or ``"shuffled"``). ``checkpoint``: the
    pretrained checkpoint (a path, or ``f(fold_table) -> path`` when it differs per fold) the transformer's binding
    head and AS head start from; ``candidate``: chapter 04's choice for ``assay`` (head, pooling, learning rate,
    nucleotide convolution, :func:`allelic.comparison.selected_candidates`). ``shuffled``: binders also trained with
    dinucleotide-shuffled background. ``n_jobs``: processes over the folds (joblib); every model fits on one thread,
    so the results do not depend on it. ``cache_dir``: each fold's tables are kept there and read back when the
    fold's rows, binding set inputs and settings are unchanged."""
    from joblib import Parallel, delayed

    cfg = train_config or TrainConfig()
    binders = tuple(binders)
    bad = [b for b in binders if b not in BINDERS]
    if bad:
        raise ValueError(f"unknown binder(s) {bad}; choose from {BINDERS}")
    tables = [getattr(fold, "table", fold) for fold in folds]
    todo = [(i, t) for i, t in enumerate(tables) if (t["assay"] == assay).any()]
    if not todo:
        raise ValueError(f"no fold holds {assay} rows")
    kw = dict(make_set=make_set, assay=assay, candidate=candidate, cfg=cfg, binders=binders, shuffled=tuple(shuffled),
              quick=quick, seed=seed, device=device, cache_dir=cache_dir)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_cached_fold)(i, t, checkpoint(t) if callable(checkpoint) else checkpoint, **kw) for i, t in todo)
    return BindingFirst(*(pd.concat([p[k] for p in parts], ignore_index=True) for k in range(4)))


_PARTS = ("metrics", "scores", "binding", "composition")


def _cached_fold(i: int, table: pd.DataFrame, ckpt, *, make_set, assay, candidate, cfg, binders, shuffled, quick, seed,
                 device, cache_dir) -> list:
    """Fold ``i``'s four tables (:data:`_PARTS`), read from ``cache_dir`` when their key matches, else computed."""
    rows = table[table["assay"] == assay]
    settings = {"binders": binders, "shuffled": shuffled, "quick": quick, "candidate": candidate or {},
                "checkpoint": str(ckpt) if "transformer" in binders else None,
                "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("device", "progress")}}
    cols = ["example_id", "assay", "label", "seq_ref", "seq_alt", "split"]
    k = cache.key("binding_first", FORMAT, seed, cache.table_digest(rows[cols]),
                  cache.table_digest(table[["seq_ref", "split"]]), settings)
    prefix = None if cache_dir is None else Path(cache_dir) / f"{assay}-fold{i}-seed{seed}"
    if prefix is not None:
        parts = [cache.read(f"{prefix}.{name}.tsv.gz", k) for name in _PARTS]
        if all(p is not None for p in parts):
            return parts
    with tempfile.TemporaryDirectory() as work:  # the binding encoder, between its two fine-tunings
        met, sc, brows, comp = _fold(rows, table, make_set, checkpoint=ckpt, candidate=candidate, cfg=cfg,
                                     binders=binders, shuffled=shuffled, quick=quick, seed=seed, device=device,
                                     work_dir=work)
    parts = [met.assign(fold=i, seed=seed), sc.assign(fold=i, seed=seed), brows.assign(fold=i, seed=seed, assay=assay),
             comp.assign(fold=i, seed=seed)]
    if prefix is not None:
        for name, part in zip(_PARTS, parts):
            cache.write(f"{prefix}.{name}.tsv.gz", k, part)
    return parts


#: the signed scores of the direction table: display name -> binder model name in :attr:`BindingFirst.scores`
SIGNED = {"gkm-SVM binding (deltaSVM)": "gkm_binding", "CNN binding": "cnn_binding",
          "transformer binding": "transformer_binding"}


def as_measurements(imbalance: pd.DataFrame, *, call_col: str, assay: str = "CTCF") -> pd.DataFrame:
    """The AS measurements of ``assay`` in a per-measurement table (chapter 02's ``imbalance.tsv.gz`` or
    ``entex_imbalance.tsv.gz``: ``chrom, pos, ref, alt, assay, ref_count, total`` and the call column ``call_col``):
    ``example_id`` (``chrom:pos:ref:alt``, as :mod:`allelic.datasets` names SNVs), ``ref_ratio``, ``sample``."""
    need = ["chrom", "pos", "ref", "alt", "assay", "ref_count", "total", call_col]
    missing = [c for c in need if c not in imbalance.columns]
    if missing:
        raise ValueError(f"the measurements lack column(s) {missing}")
    m = imbalance[(imbalance["assay"] == assay) & imbalance[call_col].astype(bool) & (imbalance["total"] > 0)]
    return pd.DataFrame({"example_id": m["chrom"].astype(str) + ":" + m["pos"].astype(str) + ":" + m["ref"] + ":"
                                       + m["alt"],
                         "ref_ratio": m["ref_count"] / m["total"],
                         "sample": m["sample"] if "sample" in m.columns else ""}).reset_index(drop=True)


def direction(result: BindingFirst, examples: pd.DataFrame, measurements: pd.DataFrame, *, motif="MA0139.1",
              pvalue: float = 1e-4, n_boot: int = 1000, random_state=0) -> pd.DataFrame:
    """Which allele wins: :func:`allelic.evaluate.direction_table` of every signed score over the AS
    ``measurements`` (:func:`as_measurements`) of the SNVs in ``result``'s held-out rows (each SNV is held out in
    exactly one fold, so every score is out of fold): the JASPAR ``motif``'s score change (the best site of the
    alternative window minus the reference's, bits) and each binder's ``effect``. Subsets: all AS SNVs, and those
    that hit the motif (the best site of either allele passes ``pvalue`` and the SNV changes its score)."""
    from .evaluate import direction_table
    from .motifs import load_jaspar
    from .pwm import score_threshold, snv_score_change

    test = result.scores.drop_duplicates("example_id")[["example_id"]]
    ex = examples.drop_duplicates("example_id").set_index("example_id").loc[test["example_id"]]
    m = load_jaspar([motif])[0]
    pwm = snv_score_change(ex["seq_ref"].tolist(), ex["seq_alt"].tolist(), m)
    eff = pd.DataFrame({"example_id": test["example_id"].to_numpy(), f"{m.name} PWM score change": pwm["delta"].to_numpy()})
    for label, model in SIGNED.items():
        s = result.scores[result.scores["model"] == model].drop_duplicates("example_id")
        if len(s):
            eff = eff.merge(s[["example_id", "effect"]].rename(columns={"effect": label}), on="example_id", how="left")
    hit = (np.maximum(pwm["ref_score"], pwm["alt_score"]) >= score_threshold(m, pvalue)) & (pwm["delta"] != 0)
    subsets = {"all AS SNVs": None, f"{m.name} motif hit": eff.loc[hit.to_numpy(), "example_id"].tolist()}
    return direction_table(measurements, eff.dropna(), subsets=subsets, n_boot=n_boot, random_state=random_state)


#: the AS rows of each route: binding first (the rows this module adds) and AS labels first (chapter 05's methods)
BINDING_ROUTE = ("gkm_binding", "cnn_binding", "cnn_binding_shuffled", "transformer_binding", "cnn_binding_gbt",
                 "transformer_binding_first")


def route_comparison(metrics: pd.DataFrame, *, assay: str = "CTCF", metric: str = "auroc") -> pd.DataFrame:
    """"Binding first or AS labels first?" as paired tests over folds (:func:`allelic.evaluate.paired_comparison`,
    seeds averaged within a fold) of ``assay``'s rows, one row per pair: the transformer trained on binding then AS
    (``transformer_binding_first``) against the one fine-tuned on AS labels from the MLM checkpoint (``transformer``);
    the CNN binding model stacked into the JASPAR GBT against the GBT alone; the best binding-first row against the
    best AS-labels row (each chosen by median ``metric``; left out when it is one of the pairs above). Columns: ``question``, ``binding_first``,
    ``labels_first``, their medians, ``median_diff`` (binding first - labels first), ``n_pairs``, ``p_value``,
    ``effect_size`` and the median ``fit_seconds`` per fold of each (a zero-shot row's is its binder's training)."""
    from .evaluate import paired_comparison

    m = metrics[metrics["assay"] == assay]
    med = m.groupby("model")[metric].median()
    secs = m.groupby("model")["fit_seconds"].median()
    ours = [x for x in med.index if x in BINDING_ROUTE]
    theirs = [x for x in med.index if x not in BINDING_ROUTE]
    pairs = []
    if {"transformer_binding_first", "transformer"} <= set(med.index):
        pairs.append(("transformer: binding then AS vs AS labels only", "transformer_binding_first", "transformer"))
    if {"cnn_binding_gbt", "motif_gbt"} <= set(med.index):
        pairs.append(("JASPAR GBT with vs without the CNN binding score", "cnn_binding_gbt", "motif_gbt"))
    if ours and theirs and (best := (med[ours].idxmax(), med[theirs].idxmax())) not in [p[1:] for p in pairs]:
        pairs.append(("best binding-first row vs best AS-label row", *best))
    rows = []
    for question, a, b in pairs:
        p = paired_comparison(m[m["model"].isin([a, b])], reference=a, metric=metric).iloc[0]
        rows.append({"question": question, "binding_first": a, "labels_first": b,
                     "median_binding_first": p["median_reference"], "median_labels_first": p["median_model"],
                     "median_diff": p["median_diff"], "n_pairs": p["n_pairs"], "p_value": p["p_value"],
                     "effect_size": p["effect_size"], "seconds_binding_first": secs[a], "seconds_labels_first": secs[b]})
    return pd.DataFrame(rows)


def route_sentence(routes: pd.DataFrame) -> str:
    """The answer in words: for each row of :func:`route_comparison`, which route wins by how much, with the paired
    p-value and the CPU time of each."""
    from .labels import LABELS

    if routes.empty:
        return "no pair of routes to compare"
    out = []
    for r in routes.itertuples():
        side = "above" if r.median_diff > 0 else "below" if r.median_diff < 0 else "level with"
        out.append(f"{LABELS.get(r.binding_first, r.binding_first)} is {abs(r.median_diff):.3f} median AUROC {side} "
                   f"{LABELS.get(r.labels_first, r.labels_first)} ({r.median_binding_first:.3f} vs "
                   f"{r.median_labels_first:.3f}, paired p = {r.p_value:.3g} over {r.n_pairs} folds; "
                   f"{r.seconds_binding_first:.0f} s vs {r.seconds_labels_first:.0f} s per fold)")
    return "; ".join(out)


def keep_binding_model(binder, binding_set, out_dir, *, checkpoint, data_name: str, assay: str = "CTCF") -> Path:
    """Save a fitted :class:`~allelic.baselines.transformer.TransformerBinding` as a checkpoint directory that
    ``allelic predict`` scores (weights with the binding head, tokenizer, ``model_card.json``): its ``effect`` column
    is then the binding log-odds of the alternative window minus the reference's, and ``preferred_allele`` the more
    bound allele. The card names the pretrained checkpoint, the binding set's composition and parameters, and the
    validation AUROC (bound vs background). Returns ``out_dir``."""
    import json
    import shutil

    from .language_model import MODEL_CARD, describe_checkpoint

    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    binder.save_checkpoint(out)
    base = describe_checkpoint(checkpoint)
    window = len(binding_set.table["sequence"].iloc[0])
    comp = binding_set.composition()
    card = {"model": f"{assay} binding model (reference head, {binder.pooling} pooling) on {base.get('model', checkpoint)}",
            "task": f"is this window bound by {assay} ({data_name})? For a SNV: effect = log-odds(alternative window) "
                    f"- log-odds(reference window), > 0 when the alternative allele is predicted the more bound",
            "pretrained_from": {k: base.get(k) for k in ("model", "pretraining", "source", "key") if k in base},
            "spec": {"window": int(window), "snv_offset": int(window) // 2}, "head": "reference",
            "pooling": binder.pooling, "data": data_name,
            "binding_set": {"key": binding_set.key(), "params": binding_set.params,
                            "composition": comp.to_dict(orient="records")},
            "fine_tuning": dataclasses.asdict(binder.config) if binder.config is not None else None,
            "metrics": {"val_auroc": binder.val_auroc_, "n_train": binder.n_train_, "n_val": binder.n_val_,
                        "seconds": binder.fit_seconds_},
            "inputs": "one window (sequence); both alleles' windows for an allele effect"}
    (out / MODEL_CARD).write_text(json.dumps(card, indent=1, default=str))
    return out
