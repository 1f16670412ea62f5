"""Chapter 04's real-data step on its own (for a GPU machine without the notebook toolchain).

Runs exactly the library calls of chapter 04's EN-TEx section, with the parameters of a profile in
notebooks/profiles.yml: pretrain the DNABERT-2-architecture model on the corpus (``--corpus``, every EN-TEx window
excluded; with ``--tokenizer`` the published DNABERT-2 tokenizer) or else on the EN-TEx *training* windows, choose
head, pooling and learning rate on the validation chromosomes, score the held-out chromosomes, and report AUROC/AUPRC
on all held-out SNVs and on balanced held-out sets (the paper's setting), with bootstrap intervals.

    python benchmarks/entex_finetune.py --examples results/03/entex_examples.tsv.gz --profile full \
        --corpus ../shared/data/pretrain_corpus --tokenizer ../shared/models/dnabert2-117m-tokenizer --out entex_full.json

The examples file is chapter 03's output (derived from ALLELIC_ENTEX_DIR; it is not part of the repository).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd


def main(argv=None):
    import torch

    from allelic import config, evaluate, pretrain
    from allelic import language_model as lm
    from allelic.train import TrainConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", required=True)
    ap.add_argument("--profile", default="full")
    ap.add_argument("--corpus", help="pretraining corpus (default: $ALLELIC_PRETRAIN_CORPUS; none: training windows)")
    ap.add_argument("--tokenizer", help="tokenizer folder (default: $ALLELIC_TOKENIZER_DIR; none: BPE trained here)")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    p = config.profile_parameters(a.profile, "04")
    corpus, tok = config.pretrain_corpus(a.corpus), config.tokenizer_dir(a.tokenizer)
    size = {k: p[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size", "random_state") if k in p}
    spec = (pretrain.PretrainSpec(**size, tokenizer=str(tok) if tok else None, n_windows=p.get("corpus_windows", 30_000),
                                  epochs=p.get("corpus_epochs", 1), learning_rate=p.get("pretrain_lr", 5e-4))
            if corpus else pretrain.PretrainSpec(**size, n_windows=None, epochs=p.get("entex_pretrain_epochs", 1),
                                                 learning_rate=p.get("pretrain_lr", 5e-4)))
    cfg = TrainConfig(batch_size=p.get("batch_size", 32), epochs=p.get("entex_epochs", 2),
                      early_stopping_patience=p.get("early_stopping_patience", 3), random_state=p.get("random_state", 0))
    candidates = lm.candidate_grid(p.get("heads", ["reference", "siamese"]), p.get("poolings", ["cls", "mean"]),
                                   p.get("learning_rates", [5e-4]))
    real = pd.read_csv(a.examples, sep="\t")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = lm.pretrained_checkpoint(real, spec=spec, corpus=corpus)
        card = lm.describe_checkpoint(ckpt)
        sel = lm.select_and_fit(real, ckpt, candidates, train_config=cfg, out_dir=Path(tmp) / "runs")
        fit = sel.fits[0]
    bal = evaluate.balanced_metrics(fit.scores["label"], fit.scores["score"], random_state=0)
    ci = evaluate.bootstrap_metrics(fit.scores["label"], fit.scores["score"], n_boot=p.get("n_boot", 1000), random_state=0)
    report = {"profile": a.profile, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "model_card": card, "fine_tuning": cfg.__dict__, "metrics": fit.metrics,
              "selection": sel.search.to_dict("records"),
              "balanced": bal, "bootstrap": ci.to_dict("records"),
              "history": fit.history.dropna(subset=["val_auprc"]).to_dict("records"), "wall_seconds": time.perf_counter() - t0}
    print(json.dumps({k: report[k] for k in ("metrics", "balanced", "wall_seconds")}, indent=1, default=str))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
