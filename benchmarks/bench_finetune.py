"""Fine-tuning throughput of the DNABERT-2 architecture: allelic.train.finetune vs the Hugging Face Trainer default.

Both run the same model (allelic.models.DNABert2ForSequenceClassification, randomly initialised) on the same batches
of 200-bp windows tokenised with a 4,096-token BPE vocabulary. Each method runs twice, for `warmup` and for
`warmup + steps` optimiser steps, and the difference gives the time of `steps` steady-state steps (set-up,
tokenisation and compilation cancel out). Reported: sequences/s, tokens/s (real, unpadded tokens), peak GPU memory,
model FLOPs utilisation (training FLOPs per token from allelic.models.flops_per_token over the GPU's dense bf16 peak)
and the ratio ours / Trainer.

    python benchmarks/bench_finetune.py --size full --batch 32 --steps 100 --out benchmarks/finetune_h100.json   # GPU
    python benchmarks/bench_finetune.py --size small --batch 32 --steps 20                                      # CPU

"ours" is the book's loop (bf16 autocast on GPU, fused AdamW, SDPA attention); "hf_trainer" is
`transformers.Trainer` with `TrainingArguments` defaults except batch size, steps, seed and no saving/logging
(its default precision is float32).
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np
import pandas as pd
import torch

SIZES = {  # DNABERT-2-117M and smaller stand-ins for CPUs
    "full": dict(vocab_size=4096, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "small": dict(vocab_size=4096, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "tiny": dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
}
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}  # dense bf16 tensor-core FLOP/s


def _windows(n, rng, width=200):
    return ["".join(s) for s in rng.choice(list("ACGT"), size=(n, width), p=[0.29, 0.21, 0.21, 0.29])]


def _peak():
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def _model(size, tok, seed=0):
    from allelic.models import DNABert2Config, DNABert2ForSequenceClassification

    torch.manual_seed(seed)
    return DNABert2ForSequenceClassification(DNABert2Config(**SIZES[size], pad_token_id=tok.pad_token_id, num_labels=2))


def _run_ours(size, tok, df, steps, batch):
    from allelic.train import TrainConfig, finetune

    cfg = TrainConfig(learning_rate=3e-5, batch_size=batch, max_steps=steps, early_stopping_patience=None, progress=False)
    model = _model(size, tok)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    finetune(model, tok, df, None, config=cfg)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, (torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None)


class _Data(torch.utils.data.Dataset):
    def __init__(self, ids, mask, y):
        self.ids, self.mask, self.y = ids, mask, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.y[i]}


def _run_trainer(size, tok, df, steps, batch):
    from transformers import Trainer, TrainingArguments

    from allelic.train import tokenize_all

    ids, mask = tokenize_all(tok, df["seq_ref"])
    data = _Data(ids, mask, torch.as_tensor(df["label"].to_numpy()))
    model = _model(size, tok)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=batch, max_steps=steps, learning_rate=3e-5,
                                 report_to="none", save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0)
        trainer = Trainer(model=model, args=args, train_dataset=data)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        trainer.train()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - t0, (torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None)


def main(argv=None):
    from allelic.models import flops_per_token
    from allelic.models import DNABert2Config
    from allelic.tokenize import train_bpe_tokenizer
    from allelic.train import tokenize_all

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--methods", default="ours,hf_trainer")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    tok = train_bpe_tokenizer(_windows(4000, rng), vocab_size=SIZES[a.size]["vocab_size"])
    n = a.batch * (a.warmup + a.steps)
    df = pd.DataFrame({"seq_ref": _windows(n, rng), "label": rng.integers(0, 2, n)})
    ids, mask = tokenize_all(tok, df["seq_ref"])
    tokens_per_seq = float(mask.sum(1).float().mean())
    cfg = DNABert2Config(**SIZES[a.size])
    fpt = flops_per_token(cfg, int(ids.shape[1]))
    peak = _peak()
    report = {"size": a.size, "config": SIZES[a.size], "batch": a.batch, "steps_timed": a.steps, "warmup": a.warmup,
              "tokens_per_sequence": tokens_per_seq, "padded_length": int(ids.shape[1]),
              "n_parameters": int(sum(p.numel() for p in _model(a.size, tok).parameters())),
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
              "torch": torch.__version__, "results": {}}
    for method in a.methods.split(","):
        run = {"ours": _run_ours, "hf_trainer": _run_trainer}[method]
        t_warm, _ = run(a.size, tok, df.iloc[: a.batch * a.warmup], a.warmup, a.batch)
        t_all, mem = run(a.size, tok, df, a.warmup + a.steps, a.batch)
        dt = max(t_all - t_warm, 1e-9)
        seqs = a.steps * a.batch / dt
        r = {"seconds_per_step": dt / a.steps, "sequences_per_s": seqs, "tokens_per_s": seqs * tokens_per_seq,
             "peak_memory_gib": mem / 2**30 if mem else None,
             "mfu": seqs * ids.shape[1] * fpt / peak if peak else None}
        report["results"][method] = r
        print(method, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    if {"ours", "hf_trainer"} <= set(report["results"]):
        report["ratio_ours_over_trainer"] = report["results"]["ours"]["sequences_per_s"] / report["results"]["hf_trainer"]["sequences_per_s"]
        print("ratio ours / Trainer (sequences/s):", round(report["ratio_ours_over_trainer"], 2))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(report, fh, indent=1)
    return report


if __name__ == "__main__":
    main()
