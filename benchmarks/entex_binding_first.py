"""Chapter 05's EN-TEx CTCF comparison on its own, binding-first rows included (issue 25).

Runs the library calls of chapter 05's real-data section with a profile's parameters (default: ``default``): the
baselines and the transformer fine-tuned on AS labels from a corpus-pretrained checkpoint (chapter 04's EN-TEx
pretraining spec of the profile; every EN-TEx window excluded from the corpus), and the binding-first route
(:func:`allelic.binding_first.binding_first`: gkm-SVM, CNN and transformer binding models per fold, zero-shot,
stacked, binding then AS), over ``entex_folds`` chromosome folds; then the table beside the published range, which
allele wins, and the paired route tests. Writes the tables under ``--out`` and prints them as Markdown.

    python benchmarks/entex_binding_first.py --examples results/03/entex_examples.tsv.gz \
        --measurements results/02/entex_imbalance.tsv.gz --out benchmarks/entex_binding_first

The classifier's head, pooling, learning rate and convolution are chapter 04's choice for CTCF on validation
chromosomes (reference head, centre pooling, 15-bp convolution, 5e-4), given here rather than searched again.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd


def main(argv=None):
    from allelic import binding, binding_first, comparison, config, splits
    from allelic import language_model as lm
    from allelic.datasets import Examples
    from allelic.train import TrainConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", required=True)
    ap.add_argument("--measurements", required=True, help="chapter 02's entex_imbalance.tsv.gz")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--binders", nargs="+", help="binding models (default: the chapter's)")
    ap.add_argument("--binding-epochs", type=int, help="epochs of the transformer's binding head (default: the profile's)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    p4, p5 = config.chapter_parameters(a.profile, "04"), config.chapter_parameters(a.profile, "05")
    corpus, tok = config.pretrain_corpus(None), config.tokenizer_dir(None)
    times = {}
    t0 = time.perf_counter()
    examples = pd.read_csv(a.examples, sep="\t").drop(columns=["split", "leak_group"], errors="ignore")
    size = {k: p4[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                               "intermediate_size", "random_state")}
    spec = lm.chapter_pretrain_spec("entex", size=size, corpus=corpus, tokenizer=tok, **{
        k: p4[k] for k in ("pretrain_lr", "corpus_windows", "corpus_epochs", "entex_pretrain_epochs")})
    ckpt = lm.pretrained_checkpoint(examples, spec=spec, corpus=corpus)
    times["pretraining (or cached)"] = time.perf_counter() - t0
    cand = {"head": "reference", "pooling": "centre", "centre_flank": 4, "nucleotide_conv": 15, "learning_rate": 5e-4}
    folds = splits.chromosome_folds(Examples(examples), p5["entex_folds"], random_state=p5["random_state"])
    cfg = TrainConfig(batch_size=p5["batch_size"], epochs=p5["entex_epochs"], device=p5["device"])
    t0 = time.perf_counter()
    metrics, scores = comparison.transformer_vs_baselines(
        folds, ckpt, selection={"CTCF": cand}, train_config=cfg, seeds=[p5["random_state"]], quick=p5["quick"],
        n_jobs=a.n_jobs, cache_dir=out / "tasks")
    times["baselines and transformer, all folds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bf = binding_first.binding_first(
        folds, lambda t, negatives: binding.entex_binding_set(
            t, corpus, negatives=negatives, max_positives=p5["entex_binding_max_positives"],
            random_state=p5["random_state"]),
        checkpoint=ckpt, candidate=cand,
        train_config=dataclasses.replace(cfg, epochs=a.binding_epochs or p5["binding_epochs"]),
        binders=a.binders or p5["binders"], quick=p5["binding_quick"], seed=p5["random_state"], n_jobs=a.n_jobs,
        cache_dir=out / "binding")
    times["binding first, all folds"] = time.perf_counter() - t0
    metrics = pd.concat([metrics, bf.metrics], ignore_index=True)
    scores = pd.concat([scores, bf.scores.drop(columns="effect")], ignore_index=True)
    summary = comparison.fold_summary(metrics, scores, assay="CTCF", n_boot=1000, random_state=0)
    measured = binding_first.as_measurements(pd.read_csv(a.measurements, sep="\t"), call_col="as_label")
    direction = binding_first.direction(bf, folds[0].table, measured, random_state=0)
    routes = binding_first.route_comparison(metrics, assay="CTCF")
    metrics.to_csv(out / "entex_fold_metrics.tsv", sep="\t", index=False)
    for name, t in (("summary", summary), ("direction", direction), ("routes", routes), ("binding", bf.binding),
                    ("composition", bf.composition)):
        t.to_csv(out / f"{name}.tsv", sep="\t", index=False)
    (out / "times.json").write_text(json.dumps({k: round(v, 1) for k, v in times.items()}, indent=1))
    pd.set_option("display.width", 250)
    for name, t in (("summary", summary), ("binding models", bf.binding.groupby(["binder", "negatives"])[
            ["val_auroc", "n_train", "fit_seconds"]].median()), ("direction", direction), ("routes", routes)):
        print(f"\n## {name}\n")
        print(t.round(3).to_markdown())
    print("\n", binding_first.route_sentence(routes), "\n", json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
