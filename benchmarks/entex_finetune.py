"""Chapter 04's real-data step on its own (for a GPU machine without the notebook toolchain).

Runs exactly the library calls of chapter 04's EN-TEx section, with the parameters of a profile in
notebooks/profiles.yml: pretrain the offline DNABERT-2-architecture model on the EN-TEx *training* windows, fine-tune
it on CTCF with early stopping on the validation chromosomes, score the held-out chromosomes, and report AUROC/AUPRC
on all held-out SNVs and on balanced held-out sets (the paper's setting), with bootstrap intervals.

    python benchmarks/entex_finetune.py --examples results/03/entex_examples.tsv.gz --profile full --out entex_full.json

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

    from allelic import config, evaluate
    from allelic import language_model as lm
    from allelic.train import TrainConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", required=True)
    ap.add_argument("--profile", default="full")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    p = config.profile_parameters(a.profile, "04")
    spec_keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    defaults = lm.OfflineModelSpec()
    spec = lm.OfflineModelSpec(**{k: p.get(k, getattr(defaults, k)) for k in spec_keys},
                               mlm_epochs=p.get("entex_pretrain_epochs", defaults.mlm_epochs),
                               learning_rate=p.get("pretrain_lr", defaults.learning_rate), random_state=p.get("random_state", 0))
    cfg = TrainConfig(learning_rate=p.get("learning_rate", 5e-4), batch_size=p.get("batch_size", 32),
                      epochs=p.get("entex_epochs", 2), early_stopping_patience=p.get("early_stopping_patience", 3),
                      random_state=p.get("random_state", 0))
    real = pd.read_csv(a.examples, sep="\t")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = lm.build_offline_model(lm.training_windows(real), spec=spec,
                                      source="EN-TEx CTCF training windows", out_dir=Path(tmp) / "model")
        card = lm.describe_checkpoint(ckpt)
        fit = lm.fit_assays(real, ckpt, train_config=cfg, out_dir=Path(tmp) / "runs")[0]
    bal = evaluate.balanced_metrics(fit.scores["label"], fit.scores["score"], random_state=0)
    ci = evaluate.bootstrap_metrics(fit.scores["label"], fit.scores["score"], n_boot=p.get("n_boot", 1000), random_state=0)
    report = {"profile": a.profile, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "model_card": card, "fine_tuning": cfg.__dict__, "metrics": fit.metrics,
              "balanced": bal, "bootstrap": ci.to_dict("records"),
              "history": fit.history.dropna(subset=["val_auprc"]).to_dict("records"), "wall_seconds": time.perf_counter() - t0}
    print(json.dumps({k: report[k] for k in ("metrics", "balanced", "wall_seconds")}, indent=1, default=str))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
