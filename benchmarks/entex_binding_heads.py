"""Issue 25, eleventh-session levers for the binding-first transformer on EN-TEx CTCF (benchmarks/README.md).

Per chromosome fold of chapter 05 (six folds, ``random_state=0``, the default profile's corpus-pretrained
checkpoint): the transformer's binding head is trained once (as ``allelic.binding_first`` does: GC-matched corpus
background, 15-bp nucleotide convolution, 2 epochs, lr 5e-4), saved with and without its head, and then the AS
fine-tunings of :data:`VARIANTS` (start, head, seed) start from it. Each writes the held-out rows' scores to
``<out>/fold<i>/<variant>.tsv``; a rerun skips what exists, so variants can be added one at a time. At the end the
held-out AUROC of every variant present is printed per fold, beside the zero-shot ``|effect|`` of the binding head.

    ALLELIC_ENTEX_DIR=... ALLELIC_PRETRAIN_CORPUS=... ALLELIC_TOKENIZER_DIR=... HF_HUB_OFFLINE=1 \
    .venv/bin/python benchmarks/entex_binding_heads.py /tmp/exp25 ref_enc_s0,siam_enc_s0,ref_full_s0
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

#: name: (start: the binding encoder without its head / the whole binding model, AS head, seed)
VARIANTS = {"ref_enc_s0": ("enc", "reference", 0), "siam_enc_s0": ("enc", "siamese", 0),
            "ref_full_s0": ("full", "reference", 0), "ref_enc_s1": ("enc", "reference", 1),
            "ref_enc_s2": ("enc", "reference", 2)}


def fold(i: int, table: pd.DataFrame, ckpt, corpus, out: Path, want: list[str]) -> dict:
    import torch

    from allelic import binding
    from allelic.baselines import FinetunedTransformer
    from allelic.baselines.transformer import TransformerBinding
    from allelic.train import TrainConfig

    torch.set_num_threads(1)
    d = out / f"fold{i}"
    d.mkdir(exist_ok=True)
    rows = table[table["assay"] == "CTCF"]
    test = rows[rows["split"] == "test"]
    cfg = TrainConfig(batch_size=32, epochs=2, device="cpu", learning_rate=5e-4)
    log = {}
    if not (d / "enc" / "config.json").exists():
        t0 = time.perf_counter()
        bset = binding.entex_binding_set(table, corpus, negatives="genomic", random_state=0)
        b = TransformerBinding(ckpt, nucleotide_conv=15, config=cfg, device="cpu", random_state=0).fit(bset.table)
        b.save_checkpoint(d / "enc", encoder_only=True)
        b.save_checkpoint(d / "full")
        pd.DataFrame({"example_id": test["example_id"], "label": test["label"], "score_ref": b.score(test["seq_ref"]),
                      "score_alt": b.score(test["seq_alt"])}).to_csv(d / "binding_scores.tsv", sep="\t", index=False)
        log["binding"] = {"val_auroc": b.val_auroc_, "seconds": time.perf_counter() - t0}
    for name in want:
        if (d / f"{name}.tsv").exists():
            continue
        start, head, seed = VARIANTS[name]
        t0 = time.perf_counter()
        ft = FinetunedTransformer.from_checkpoint(d / start, head=head, pooling="centre", centre_flank=4,
                                                  nucleotide_conv=15, config=cfg, random_state=seed, device="cpu",
                                                  n_jobs=1)
        ft.fit(rows[rows["split"] == "train"], rows[rows["split"] == "val"])
        pd.DataFrame({"example_id": test["example_id"], "label": test["label"], "score": ft.predict(test)}).to_csv(
            d / f"{name}.tsv", sep="\t", index=False)
        log[name] = time.perf_counter() - t0
    return log


def summary(out: Path) -> pd.DataFrame:
    """Held-out AUROC per fold of every variant present, the binding head's zero-shot ``|effect|`` and, with several
    seeds of the reference head, their average (the rows of every file are the fold's test rows in one order)."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for d in sorted(out.glob("fold*")):
        b = d / "binding_scores.tsv"
        if not b.exists():
            continue
        b = pd.read_csv(b, sep="\t")
        zero_shot = roc_auc_score(b["label"], (b["score_alt"] - b["score_ref"]).abs())
        r = {"fold": int(d.name[4:]), "zero-shot |effect|": zero_shot}
        seeds = []
        for f in sorted(d.glob("*_s[0-9].tsv")):
            t = pd.read_csv(f, sep="\t")
            r[f.stem] = roc_auc_score(t["label"], t["score"])
            seeds += [t["score"].to_numpy()] if f.stem.startswith("ref_enc_s") else []
        if len(seeds) > 1:  # the reference-head fine-tunings of several seeds, their probabilities averaged
            r[f"ref_enc, {len(seeds)} seeds averaged"] = roc_auc_score(t["label"], sum(seeds) / len(seeds))
        rows.append(r)
    return pd.DataFrame(rows).set_index("fold")


def main(argv=None):
    from joblib import Parallel, delayed

    from allelic import config, splits
    from allelic import language_model as lm
    from allelic.datasets import Examples

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0])
    want = argv[1].split(",") if len(argv) > 1 else list(VARIANTS)
    out.mkdir(parents=True, exist_ok=True)
    p4 = config.chapter_parameters("default", "04")
    corpus, tok = config.pretrain_corpus(None), config.tokenizer_dir(None)
    examples = pd.read_csv(config.results_dir("03") / "entex_examples.tsv.gz", sep="\t").drop(
        columns=["split", "leak_group"], errors="ignore")
    size = {k: p4[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                               "intermediate_size", "random_state")}
    spec = lm.chapter_pretrain_spec("entex", size=size, corpus=corpus, tokenizer=tok, **{
        k: p4[k] for k in ("pretrain_lr", "corpus_windows", "corpus_epochs", "entex_pretrain_epochs")})
    ckpt = lm.pretrained_checkpoint(examples, spec=spec, corpus=corpus)
    folds = splits.chromosome_folds(Examples(examples), 6, random_state=0)
    logs = Parallel(n_jobs=2)(delayed(fold)(i, f.table, ckpt, corpus, out, want) for i, f in enumerate(folds))
    print(logs)
    t = summary(out)
    print(t.round(3).T.to_markdown())
    print(t.median().round(3).to_markdown())


if __name__ == "__main__":
    main()
