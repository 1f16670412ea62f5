"""The book's DNA language model: the offline default checkpoint, and fitting it per assay.

No model hub is reachable from the book's machines, so the default model is built here and saved as a normal
checkpoint directory, then loaded back through the same code path as a published DNABERT-2 checkpoint
(:func:`allelic.models.load_model`):

1. a BPE tokenizer trained on the available sequence (:func:`allelic.tokenize.train_bpe_tokenizer`);
2. the DNABERT-2 architecture at small size (:class:`allelic.models.DNABert2Config`), pretrained by masked-language
   modelling on windows of that sequence (:func:`allelic.train.pretrain_mlm`);
3. ``save_pretrained`` with a ``model_card.json`` saying what the checkpoint is, so every number the book reports
   can name the model that produced it.

:func:`fit_assays` fine-tunes one classifier per assay on leak-free splits and scores the held-out SNVs.
A user with a real DNABERT-2 checkpoint passes its directory instead of the offline one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config

MODEL_CARD = "model_card.json"


@dataclass(frozen=True)
class OfflineModelSpec:
    """Size and pretraining budget of the offline default model (defaults: the smoke profile's CPU budget)."""

    vocab_size: int = 512
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    window: int = 200
    n_windows: int = 4000
    mlm_epochs: int = 1
    learning_rate: float = 5e-4
    batch_size: int = 32
    random_state: int = 0

    def key(self, source: str) -> str:
        blob = json.dumps({**dataclasses.asdict(self), "source": source}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def genome_windows(fasta, n: int, window: int = 200, *, random_state=0, max_n_frac: float = 0.1) -> list[str]:
    """``n`` windows of ``window`` bp drawn uniformly from an indexed FASTA (contigs weighted by length); windows with
    more than ``max_n_frac`` N bases are redrawn. Deterministic for a ``random_state``."""
    import pysam

    rng = np.random.default_rng(random_state)
    with pysam.FastaFile(str(fasta)) as fa:
        names = [c for c, ln in zip(fa.references, fa.lengths) if ln > window]
        if not names:
            raise ValueError(f"{fasta}: no contig longer than the window ({window} bp)")
        lengths = np.array([fa.get_reference_length(c) for c in names], float)
        out, tries = [], 0
        while len(out) < n:
            tries += 1
            if tries > 20 * n + 100:
                raise ValueError(f"{fasta}: could not draw {n} windows with <= {max_n_frac:.0%} N")
            c = names[rng.choice(len(names), p=lengths / lengths.sum())]
            s = int(rng.integers(0, fa.get_reference_length(c) - window))
            seq = fa.fetch(c, s, s + window).upper()
            if seq.count("N") <= max_n_frac * window:
                out.append(seq)
    return out


def training_windows(examples: pd.DataFrame, *, seq_col: str = "seq_ref") -> list[str]:
    """The windows of the ``split == "train"`` examples: what a model may be pretrained on (tokenizer included)
    without ever seeing held-out sequence."""
    if "split" not in examples.columns:
        raise ValueError("examples are not split: pretraining on them would leak held-out windows")
    return examples.loc[examples["split"] == "train", seq_col].tolist()


def build_offline_model(sequences=None, *, fasta=None, spec: OfflineModelSpec | None = None, out_dir=None,
                        source: str = "", device: str = "auto", progress=None, force: bool = False) -> Path:
    """Train the tokenizer and MLM-pretrain the small DNABERT-2-architecture model; returns its checkpoint directory.

    The sequence comes from ``sequences`` (e.g. EN-TEx windows) or ``n_windows`` windows of ``fasta``. The directory
    (default ``<data_dir>/models/offline-<key>``) is reused when its card holds the same key (``force`` rebuilds)."""
    from .models import DNABert2Config, DNABert2ForMaskedLM
    from .tokenize import train_bpe_tokenizer
    from .train import TrainConfig, pretrain_mlm, seed_everything

    spec = spec or OfflineModelSpec()
    if sequences is None and fasta is None:
        raise ValueError("build_offline_model needs sequences or a fasta")
    src = source or (f"fasta:{Path(fasta).name}" if fasta is not None else f"{len(sequences)} sequences")
    key = spec.key(src)
    out = Path(out_dir) if out_dir else config.data_dir() / "models" / f"offline-{key}"
    card = out / MODEL_CARD
    if not force and card.is_file() and json.loads(card.read_text()).get("key") == key:
        return out
    if sequences is None:
        sequences = genome_windows(fasta, spec.n_windows, spec.window, random_state=spec.random_state)
    sequences = [s.upper() for s in sequences]
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tok = train_bpe_tokenizer(sequences, vocab_size=spec.vocab_size, out_dir=tmp)
    seed_everything(spec.random_state)
    cfg = DNABert2Config(vocab_size=len(tok), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_hidden_layers,
                         num_attention_heads=spec.num_attention_heads, intermediate_size=spec.intermediate_size,
                         pad_token_id=tok.pad_token_id)
    model = DNABert2ForMaskedLM(cfg)
    res = pretrain_mlm(model, tok, sequences, config=TrainConfig(learning_rate=spec.learning_rate, batch_size=spec.batch_size,
                                                                 epochs=spec.mlm_epochs, early_stopping_patience=None,
                                                                 device=device, random_state=spec.random_state, progress=progress))
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bars in the executed notebooks
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    hist = res.history
    card_data = {
        "key": key, "model": "DNABERT-2 architecture (native allelic.models), trained here: not the published DNABERT-2-117M",
        "pretraining": f"masked-language modelling, {spec.mlm_epochs} epoch(s) over {len(sequences)} windows of {spec.window} bp ({src})",
        "spec": dataclasses.asdict(spec), "source": src, "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "mlm_loss_first": float(hist["loss"].iloc[0]) if len(hist) else None,
        "mlm_loss_last": float(hist["loss"].iloc[-1]) if len(hist) else None, "pretrain_seconds": res.seconds,
    }
    (tmp / MODEL_CARD).write_text(json.dumps(card_data, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def describe_checkpoint(path) -> dict:
    """What a checkpoint directory is: its model card when present (offline models), else its config's essentials."""
    p = Path(path)
    if (p / MODEL_CARD).is_file():
        return json.loads((p / MODEL_CARD).read_text())
    cfgf = p / "config.json"
    if not cfgf.is_file():
        raise FileNotFoundError(f"{p}: no config.json — not a model checkpoint directory")
    c = json.loads(cfgf.read_text())
    return {"model": f"checkpoint {p.name} ({c.get('model_type', '?')}, {c.get('num_hidden_layers', '?')} layers)",
            "pretraining": "as published (loaded from disk)", "source": str(p)}


@dataclass
class AssayFit:
    """Fine-tuning of one assay: held-out ``scores`` (example_id, assay, label, score), ``metrics`` (one row:
    assay, auroc, auprc, n_train, n_test, best_step, seconds), the training ``history``, and the model."""

    assay: str
    scores: pd.DataFrame
    metrics: dict
    history: pd.DataFrame
    model: object = field(repr=False, default=None)


def fit_assays(examples: pd.DataFrame, checkpoint, *, train_config=None, assays=None, seq_col: str = "seq_ref",
               out_dir=None, resume: bool = False, keep_models: bool = False) -> list[AssayFit]:
    """Fine-tune ``checkpoint`` once per assay on ``split == "train"`` (early stopping on ``"val"``), score ``"test"``.

    ``examples`` has the columns of :mod:`allelic.datasets` (``example_id, assay, label, seq_ref, seq_alt, split``).
    Each assay's run writes its checkpoint and ``metrics.json`` under ``out_dir/<assay>/``."""
    from .evaluate import binary_metrics
    from .models import load_model
    from .tokenize import load_tokenizer
    from .train import TrainConfig, finetune, predict

    cfg = train_config or TrainConfig()
    tok = load_tokenizer(checkpoint)
    fits = []
    for assay in assays or sorted(examples["assay"].unique()):
        ex = examples[examples["assay"] == assay]
        parts = {s: ex[ex["split"] == s] for s in ("train", "val", "test")}
        if parts["train"]["label"].nunique() < 2 or parts["test"]["label"].nunique() < 2:
            raise ValueError(f"assay {assay}: train and test splits need both classes "
                             f"(train {parts['train']['label'].value_counts().to_dict()}, test {parts['test']['label'].value_counts().to_dict()})")
        model = load_model(checkpoint, task="classification", num_labels=2)
        res = finetune(model, tok, parts["train"], parts["val"], config=cfg, seq_col=seq_col, resume=resume,
                       out_dir=Path(out_dir) / assay if out_dir else None)
        score = predict(res.model, tok, parts["test"][seq_col], device=cfg.device)
        m = binary_metrics(parts["test"]["label"], score)
        metrics = {"assay": assay, "auroc": m["auroc"], "auprc": m["auprc"], "n_train": len(parts["train"]),
                   "n_val": len(parts["val"]), "n_test": len(parts["test"]), "test_pos_frac": m["n_pos"] / max(m["n"], 1),
                   "best_step": res.best_step, "seconds": res.seconds}
        scores = parts["test"][["example_id", "assay", "label"]].assign(score=score)
        fits.append(AssayFit(assay, scores, metrics, res.history, res.model if keep_models else None))
    return fits
