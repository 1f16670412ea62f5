"""A tiny training run for tests/test_distributed.py, started as one process or under torchrun.

    python tests/scripts/ddp_worker.py --task finetune --tokenizer DIR --out DIR
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/scripts/ddp_worker.py --task mlm ...

The data, the model's initial weights and the settings depend on nothing but the arguments; dropout is 0, so runs in
any world size follow the same trajectory up to float rounding. Rank 0 writes ``history.json`` and ``weights.pt``,
every rank ``rows-<rank>.json`` (the rows of each training forward pass).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from allelic import distributed
from allelic.models import DNABert2Config, DNABert2ForMaskedLM, DNABert2ForSequenceClassification
from allelic.tokenize import load_tokenizer
from allelic.train import TrainConfig, finetune, pretrain_mlm


def data(n, seed):
    rng = np.random.default_rng(seed)
    seqs = ["".join(s) for s in rng.choice(list("ACGT"), size=(n, 120))]
    y = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):  # a planted site
        seqs[i] = seqs[i][:50] + "CCGCGAGGGGGCGC" + seqs[i][64:]
    import pandas as pd

    return pd.DataFrame({"seq_ref": seqs, "label": y})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["finetune", "mlm"], required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-after", type=int)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    tok = load_tokenizer(a.tokenizer)
    cfg = DNABert2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, pad_token_id=tok.pad_token_id, num_labels=2, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    torch.manual_seed(0 if not a.resume else 123)  # a resumed run must not depend on its initial weights
    # 97 windows in micro-batches of 16: the last holds one row, so in two processes rank 1 gets none
    tc = TrainConfig(learning_rate=2e-3, batch_size=16, epochs=2, grad_accum=2, early_stopping_patience=None,
                     checkpoint_every=1, eval_every=2, progress=False, random_state=7, device="cpu")
    model = DNABert2ForSequenceClassification(cfg) if a.task == "finetune" else DNABert2ForMaskedLM(cfg)
    rows = []  # windows this process ran forward in training (validation runs in eval mode)
    model.register_forward_pre_hook(lambda m, args, kw: rows.append(len(kw["input_ids"])) if m.training else None,
                                    with_kwargs=True)
    if a.task == "finetune":
        res = finetune(model, tok, data(97, 1), data(40, 2), config=tc,
                       out_dir=Path(a.out) / "work", stop_after=a.stop_after, resume=a.resume)
    else:
        res = pretrain_mlm(model, tok, data(97, 3)["seq_ref"].tolist(), config=tc,
                           out_dir=Path(a.out) / "work", stop_after=a.stop_after, resume=a.resume)
    (Path(a.out) / f"rows-{distributed.rank()}.json").write_text(json.dumps(rows))
    if distributed.is_main():
        (Path(a.out) / "history.json").write_text(res.history.to_json(orient="records"))
        torch.save(res.model.state_dict(), Path(a.out) / "weights.pt")
        (Path(a.out) / "world.json").write_text(json.dumps({"world_size": distributed.world_size()}))


if __name__ == "__main__":
    main()
