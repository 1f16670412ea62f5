"""Masked-language-model pretraining of the DNABERT-2 architecture on a real corpus of unlabelled DNA.

The pipeline, one call (:func:`pretrain`) or one command (``allelic pretrain``):

1. **read** the corpus (:func:`allelic.corpus.iter_corpus`): FASTA or TSV files, or folders of them, streamed
   record by record;
2. **cut windows** (:func:`allelic.corpus.corpus_windows`): ``window``-bp chunks, filtered (too short, too many N,
   sharing a k-mer with an ``exclude`` set: the leak guard), split into train and held-out by source sequence,
   subsampled to ``n_windows``, each on a seeded strand; every chunk removed is a ledger row (the rules and their
   randomness: :mod:`allelic.corpus`);
3. **tokenizer**: the published DNABERT-2 tokenizer (a folder, e.g. ``$ALLELIC_TOKENIZER_DIR``) or a BPE tokenizer
   trained on the training windows (:func:`allelic.tokenize.train_bpe_tokenizer`);
4. **train** :class:`allelic.models.DNABert2ForMaskedLM` with :func:`allelic.train.pretrain_mlm` (exact resume);
5. **evaluate** masked-token accuracy on the held-out windows (:func:`mlm_accuracy`) next to a trivial baseline;
6. **save** a checkpoint directory in the published layout (``config.json``, ``model.safetensors``, tokenizer files)
   plus ``model_card.json`` and ``history.tsv``; it loads with :func:`allelic.models.load_model` and
   :func:`allelic.tokenize.load_tokenizer`.

The corpus functions (:func:`iter_corpus`, :func:`corpus_windows`, :func:`assert_no_overlap`, ...) live in
:mod:`allelic.corpus` and are importable from here too.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, distributed
from .corpus import (  # the corpus's public names, re-exported: ``from allelic.pretrain import ...`` still works
    FASTA_SUFFIXES,
    HOLDOUT_BLOCK,
    STEP,
    TSV_SUFFIXES,
    CorpusWindows,
    LeakError,
    assert_no_overlap,
    corpus_files,
    corpus_stamp,
    corpus_windows,
    iter_corpus,
)
from .distributed import resolve_device
from .tokenize import encode, load_tokenizer, train_bpe_tokenizer
from .train import _batch_order, mask_tokens, pretrain_mlm, seed_everything, TrainConfig

MODEL_CARD = "model_card.json"
HISTORY = "history.tsv"
WORK = "train"  # pretrain_mlm's checkpoint folder inside the .partial directory
#: ``PretrainSpec.tokenizer`` value meaning "the folder named by ``$ALLELIC_TOKENIZER_DIR``" (the GPU preset's).
ENV_TOKENIZER = "$ALLELIC_TOKENIZER_DIR"
#: bumped when a change of this module or of :mod:`allelic.corpus` changes what a checkpoint holds for the same spec
#: and corpus (cache key)
FORMAT_VERSION = 2


# ---------------------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------------------
def _heldout_masks(tokenizer, sequences, mlm_probability: float, random_state: int):
    """``(masked ids, attention mask, labels)`` of ``sequences``, masked once with a generator seeded by
    ``random_state`` (BERT 80/10/10, :func:`allelic.train.mask_tokens`)."""
    import torch

    enc = encode(tokenizer, list(sequences))
    g = torch.Generator().manual_seed(int(random_state))
    masked, labels = mask_tokens(enc["input_ids"], enc["attention_mask"], tokenizer, mlm_probability=mlm_probability,
                                 generator=g)
    return masked, enc["attention_mask"], labels


def mlm_accuracy(model, tokenizer, sequences, *, mlm_probability: float = 0.15, batch_size: int = 256,
                 device: str = "auto", random_state: int = 0) -> dict:
    """Masked-token accuracy of an MLM on ``sequences`` with one fixed, seeded mask.

    ``mlm_probability`` of the real tokens are chosen (80 % ``[MASK]``, 10 % random, 10 % unchanged, seeded by
    ``random_state``); the model predicts every chosen token from the corrupted input. Returns ``{"accuracy":
    fraction of chosen tokens whose arg-max logit is the true token, "loss": mean cross-entropy (nats) over them,
    "n_masked": number of chosen tokens}``; NaN accuracy and loss when nothing is chosen. Float32, no autocast."""
    import torch
    import torch.nn.functional as F

    masked, mask, labels = _heldout_masks(tokenizer, sequences, mlm_probability, random_state)
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    correct, loss_sum, n = 0, 0.0, 0
    with torch.no_grad():
        for s in range(0, len(masked), batch_size):
            lab = labels[s:s + batch_size]
            sel = lab != -100
            if not sel.any():
                continue
            logits = model(input_ids=masked[s:s + batch_size].to(dev), attention_mask=mask[s:s + batch_size].to(dev)).logits
            lg, y = logits.float()[sel.to(dev)], lab[sel].to(dev)
            loss_sum += float(F.cross_entropy(lg, y, reduction="sum"))
            correct += int((lg.argmax(-1) == y).sum())
            n += int(sel.sum())
    model.train(was_training)
    return {"accuracy": correct / n if n else math.nan, "loss": loss_sum / n if n else math.nan, "n_masked": n}


def _token_stats(tokenizer, sequences, chunk: int = 50_000):
    """Real tokens per sequence (int64 (n,), [CLS]/[SEP] included) and the count of each token id (int64 (vocab,))."""
    lengths, counts = [], np.zeros(len(tokenizer), np.int64)
    for s in range(0, len(sequences), chunk):
        enc = encode(tokenizer, sequences[s:s + chunk])
        m = enc["attention_mask"].bool()
        lengths.append(m.sum(1).numpy())
        counts += np.bincount(enc["input_ids"][m].numpy(), minlength=len(tokenizer))[:len(tokenizer)]
    return np.concatenate(lengths) if lengths else np.zeros(0, np.int64), counts


def _baseline(tokenizer, counts, holdout, mlm_probability: float, random_state: int) -> dict:
    """Accuracy of always predicting the most frequent non-special training token, on the held-out mask."""
    c = counts.copy()
    c[list(tokenizer.all_special_ids)] = -1
    top = int(c.argmax())
    _, _, labels = _heldout_masks(tokenizer, holdout, mlm_probability, random_state)
    y = labels[labels != -100]
    return {"token": tokenizer.convert_ids_to_tokens(top), "token_id": top,
            "accuracy": float((y == top).float().mean()) if len(y) else math.nan}


def _tokens_seen(lengths: np.ndarray, batch_size: int, grad_accum: int, random_state: int, steps: int) -> int:
    """Real tokens fed to the model in the first ``steps`` optimiser steps of :func:`allelic.train.pretrain_mlm`,
    replaying its batch order (``allelic.train._batch_order``) and its step rule (a step after every ``grad_accum``
    micro-batches and at the end of an epoch)."""
    n = len(lengths)
    micro = max(1, math.ceil(n / batch_size))
    per_epoch = math.ceil(micro / grad_accum)
    seen, done, epoch = 0, 0, 0
    while done < steps:
        if done + per_epoch <= steps:
            seen, done, epoch = seen + int(lengths.sum()), done + per_epoch, epoch + 1
            continue
        order = _batch_order(n, epoch, random_state)
        for b in range(1, micro + 1):
            seen += int(lengths[order[(b - 1) * batch_size:b * batch_size]].sum())
            if b % grad_accum == 0 or b == micro:
                done += 1
                if done >= steps:
                    break
    return seen


# ---------------------------------------------------------------------------------------------------------------------
# the spec and the run
# ---------------------------------------------------------------------------------------------------------------------
_NOT_IN_KEY = ("checkpoint_every",)


@dataclass(frozen=True)
class PretrainSpec:
    """Model size, tokenizer, windows and optimisation of one pretraining run (defaults: the ``"cpu"`` preset).

    ``tokenizer``: a tokenizer folder (``vocab_size`` is then the tokenizer's), :data:`ENV_TOKENIZER` (the folder in
    ``$ALLELIC_TOKENIZER_DIR``), or None to train a BPE tokenizer of ``vocab_size`` on the training windows.
    ``n_windows``: windows kept (train + held-out; None: all). ``max_steps`` (optimiser steps) overrides ``epochs``.
    ``leak_k``: k of the leak check. ``checkpoint_every``: optimiser steps between resumable checkpoints (not part
    of the cache key)."""

    vocab_size: int = 512
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    tokenizer: str | None = None
    window: int = 200
    min_length: int = 50
    max_n_frac: float = 0.1
    n_windows: int | None = 30_000
    holdout_frac: float = 0.02
    epochs: int = 1
    max_steps: int | None = None
    learning_rate: float = 5e-4
    batch_size: int = 64
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    mlm_probability: float = 0.15
    reverse_complement: bool = True
    leak_k: int = 32
    bf16: str | bool = "auto"
    checkpoint_every: int | None = 200
    random_state: int = 0

    def key(self, stamp: dict, tokenizer_sha: str | None = None, exclude_sha: str | None = None) -> str:
        """12 hex digits identifying (spec, corpus stamp, tokenizer content, exclude set)."""
        spec = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NOT_IN_KEY}
        spec["tokenizer"] = tokenizer_sha
        if tokenizer_sha is not None:
            spec["vocab_size"] = None  # the tokenizer's own
        blob = json.dumps({"spec": spec, "corpus": stamp, "exclude": exclude_sha, "format": FORMAT_VERSION},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


#: ``"cpu"``: a small model for 2 CPU cores (610 k parameters, BPE vocabulary 512). Measured once on the real corpus
#: (``../shared/data/pretrain_corpus``, 272,268 sequences): 29,414 training + 586 held-out windows, 460 steps,
#: 1.25 M tokens; 293 s wall with ``OMP_NUM_THREADS=1`` but 670 s with torch's default 2 threads (the 2 cores were
#: shared with other jobs, load ~4: spinning threads cost more than they give), of which 4 s reading and cutting the
#: corpus; MLM loss 6.26 -> 5.29, held-out masked-token accuracy 0.099 vs 0.015 for always predicting the most
#: frequent token (same numbers in both runs). ``"dnabert2-117m"``: the published DNABERT-2-117M architecture and tokenizer
#: (``$ALLELIC_TOKENIZER_DIR``), every window of the corpus, 2 epochs, batch 256, bf16 autocast on CUDA: for a GPU.
PRESETS = {
    "cpu": PretrainSpec(),
    "dnabert2-117m": PretrainSpec(vocab_size=4096, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                  intermediate_size=3072, tokenizer=ENV_TOKENIZER, n_windows=None, epochs=2,
                                  learning_rate=5e-4, batch_size=256, warmup_ratio=0.06, checkpoint_every=500),
}

@dataclass
class PretrainResult:
    """``checkpoint``: the checkpoint directory; ``card``: its ``model_card.json``; ``history``: one row per
    optimiser step (``step, epoch, loss, lr``); ``windows``: the :class:`CorpusWindows` (None when the checkpoint
    was reused from the cache)."""

    checkpoint: Path
    card: dict
    history: pd.DataFrame
    windows: CorpusWindows | None = field(default=None, repr=False)


def _tokenizer_dir(spec: PretrainSpec) -> Path | None:
    if spec.tokenizer is None:
        return None
    if spec.tokenizer == ENV_TOKENIZER:
        d = config.tokenizer_dir()
        if d is None:
            raise ValueError("this spec uses the published tokenizer: set ALLELIC_TOKENIZER_DIR to its folder "
                             "(e.g. ../shared/models/dnabert2-117m-tokenizer) or pass --tokenizer DIR")
        return d
    return config.tokenizer_dir(spec.tokenizer)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _exclude_sha(exclude, k: int) -> str | None:
    if not exclude:
        return None
    h = hashlib.sha256(f"k={k}\n".encode())
    for s in sorted({str(s).upper() for s in exclude}):
        h.update(s.encode() + b"\n")
    return h.hexdigest()[:16]


def _cached(out: Path, key: str) -> PretrainResult | None:
    card = out / MODEL_CARD
    if not card.is_file():
        return None
    data = json.loads(card.read_text())
    if data.get("key") != key:
        return None
    hist = pd.read_csv(out / HISTORY, sep="\t") if (out / HISTORY).is_file() else pd.DataFrame()
    return PretrainResult(out, data, hist)


def _start(tmp: Path, key: str, resume: bool) -> bool:
    """Prepare the ``.partial`` directory; True when a checkpoint of the same key is there to resume from."""
    ckpt = tmp / WORK / "checkpoint.pt"
    if resume and ckpt.is_file():
        old = (tmp / "key").read_text().strip() if (tmp / "key").is_file() else None
        if old != key:
            raise ValueError(f"{tmp} holds a checkpoint of another run (key {old}, this run {key}); "
                             f"pass force without resume, or remove the folder")
        return True
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "key").write_text(key)
    return False


def _tokenizer(spec: PretrainSpec, tok_dir: Path | None, train: list[str], tmp: Path):

    if tok_dir is not None:
        return load_tokenizer(tok_dir)
    if (tmp / "tokenizer.json").is_file():  # resuming: the tokenizer trained before the interruption
        return load_tokenizer(tmp)
    return train_bpe_tokenizer(train, vocab_size=spec.vocab_size, out_dir=tmp, random_state=spec.random_state)


def _model(spec: PretrainSpec, tok):
    from .dnabert2 import DNABert2Config, DNABert2ForMaskedLM

    seed_everything(spec.random_state)
    cfg = DNABert2Config(vocab_size=len(tok), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_hidden_layers,
                         num_attention_heads=spec.num_attention_heads, intermediate_size=spec.intermediate_size,
                         pad_token_id=tok.pad_token_id)
    return DNABert2ForMaskedLM(cfg)


def _curve(hist: pd.DataFrame, max_points: int = 200) -> dict:
    if hist.empty:
        return {"step": [], "loss": []}
    i = np.unique(np.linspace(0, len(hist) - 1, min(len(hist), max_points)).round().astype(int))
    return {"step": hist["step"].iloc[i].astype(int).tolist(), "loss": hist["loss"].iloc[i].astype(float).round(5).tolist()}


def pretrain(corpus, *, spec: PretrainSpec | None = None, out_dir=None, exclude=None, resume: bool = False,
             device: str = "auto", progress=None, force: bool = False) -> PretrainResult:
    """MLM-pretrain the DNABERT-2 architecture on ``corpus``; returns the checkpoint directory, its card and history.

    ``corpus``: a corpus file or folder, a list of them, or a list of DNA sequences. ``spec``: a
    :class:`PretrainSpec` (or one of :data:`PRESETS`). ``exclude``: sequences (e.g. test windows of a
    classification task) no pretraining window may share a ``spec.leak_k``-mer with (either strand). The directory
    (default ``<data_dir>/models/pretrained-<key>``, key = spec + corpus stamp + tokenizer + exclude set) is reused
    when its card holds the same key, unless ``force``. Work happens in ``<dir>.partial`` (renamed at the end);
    ``resume=True`` continues an interrupted run from its last checkpoint (every ``spec.checkpoint_every`` steps)
    exactly, and starts afresh when there is none. The card (``model_card.json``) records the corpus, windows,
    tokens seen, the loss curve, held-out masked-token accuracy and loss next to a most-frequent-token baseline,
    the ledger summary and ``excluded`` (windows removed by the leak check)."""
    t0 = time.perf_counter()
    distributed.setup()
    spec = spec or PretrainSpec()
    corpus = corpus if isinstance(corpus, (str, Path)) else list(corpus)
    tok_dir = _tokenizer_dir(spec)
    stamp = corpus_stamp(corpus)
    key = spec.key(stamp, _sha(tok_dir / "tokenizer.json") if tok_dir else None, _exclude_sha(exclude, spec.leak_k))
    out = (Path(out_dir) if out_dir else config.data_dir() / "models" / f"pretrained-{key}").expanduser().resolve()
    if not force and (hit := _cached(out, key)) is not None:
        return hit
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / MODEL_CARD).is_file()):
        raise ValueError(f"output {out} exists and is not a pretraining checkpoint (no {MODEL_CARD}): "
                         f"refusing to replace it; pass another out_dir / --out")
    cw = corpus_windows(corpus, window=spec.window, max_n_frac=spec.max_n_frac, min_length=spec.min_length,
                        n_windows=spec.n_windows, holdout_frac=spec.holdout_frac,
                        reverse_complement=spec.reverse_complement, exclude=exclude, k=spec.leak_k,
                        random_state=spec.random_state, progress=progress if distributed.is_main() else False)
    if not cw.train:
        raise ValueError(f"no training windows left from {stamp}: {cw.ledger.summary().to_dict('records')}")
    tmp = out.with_name(out.name + ".partial")
    main = distributed.is_main()  # under torchrun: rank 0 prepares the folder and the tokenizer, the others read them
    resumed = distributed.broadcast_object(_start(tmp, key, resume) if main else None)
    tok = _tokenizer(spec, tok_dir, cw.train, tmp) if main else None
    distributed.barrier()
    tok = tok or _tokenizer(spec, tok_dir, cw.train, tmp)
    model = _model(spec, tok)
    cfg = TrainConfig(learning_rate=spec.learning_rate, batch_size=spec.batch_size, epochs=spec.epochs,
                      max_steps=spec.max_steps, warmup_ratio=spec.warmup_ratio, weight_decay=spec.weight_decay,
                      grad_accum=spec.grad_accum, early_stopping_patience=None, checkpoint_every=spec.checkpoint_every,
                      bf16=spec.bf16, device=device, random_state=spec.random_state, progress=progress)
    res = pretrain_mlm(model, tok, cw.train, config=cfg, out_dir=tmp / WORK, mlm_probability=spec.mlm_probability,
                       resume=resumed)
    if main:
        card = _card(spec, key, tok, tok_dir, model, res, cw, device, resumed)
        _save(model, tok, res.history, card, tmp, out, t0)
    distributed.barrier()
    if not main:
        card = json.loads((out / MODEL_CARD).read_text())
    return PretrainResult(out, card, res.history, cw)


def _card(spec, key, tok, tok_dir, model, res, cw: CorpusWindows, device, resumed: bool) -> dict:
    from .model_size import model_summary

    lengths, counts = _token_stats(tok, cw.train)
    steps = int(res.history["step"].max()) if len(res.history) else 0
    held = (mlm_accuracy(model, tok, cw.holdout, mlm_probability=spec.mlm_probability, device=device,
                         random_state=spec.random_state) if cw.holdout else None)
    base = _baseline(tok, counts, cw.holdout, spec.mlm_probability, spec.random_state) if cw.holdout else None
    hist = res.history
    return {
        "key": key,
        "model": ("DNABERT-2 architecture (allelic.models.DNABert2ForMaskedLM) pretrained here by masked-language "
                  "modelling on the corpus below: NOT the published DNABERT-2-117M weights"),
        "tokenizer": (f"published/provided tokenizer {tok_dir.name} (tokenizer.json sha256 {_sha(tok_dir / 'tokenizer.json')})"
                      if tok_dir else "BPE trained here on the training windows (allelic.tokenize.train_bpe_tokenizer)"),
        "vocab_size": len(tok),
        "spec": dataclasses.asdict(spec),
        "corpus": cw.stamp,
        "n_sequences": cw.n_sequences, "n_bases": cw.n_bases, "n_chunks": cw.n_chunks,
        "n_windows_train": len(cw.train), "n_windows_holdout": len(cw.holdout),
        "n_bases_train": int(sum(map(len, cw.train))),
        "tokens_per_window": float(lengths.mean()),
        "steps": steps,
        "tokens_seen": _tokens_seen(lengths, spec.batch_size, spec.grad_accum, spec.random_state, steps),
        "mlm_loss_curve": _curve(hist),
        "mlm_loss_first": float(hist["loss"].iloc[0]) if len(hist) else None,
        "mlm_loss_last": float(hist["loss"].iloc[-1]) if len(hist) else None,
        "heldout": held,
        "baseline": base,
        "train_seconds": res.seconds,
        "n_parameters": model_summary(model)["n_parameters"],
        "device": str(resolve_device(device)),
        "resumed": resumed,
        "ledger": cw.ledger.summary().to_dict("records"),
        "excluded": cw.n_excluded,
    }


def _save(model, tok, history: pd.DataFrame, card: dict, tmp: Path, out: Path, t0: float) -> None:
    """Write the published layout into ``tmp`` and rename it to ``out``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    history.to_csv(tmp / HISTORY, sep="\t", index=False)
    card["seconds"] = time.perf_counter() - t0
    (tmp / MODEL_CARD).write_text(json.dumps(card, indent=1, default=_jsonable))
    shutil.rmtree(tmp / WORK, ignore_errors=True)
    (tmp / "key").unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)


# ---------------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------------
def read_exclude(paths) -> list[str]:
    """Sequences to exclude from pretraining, from TSV files with a ``seq_ref`` or ``sequence`` column (and
    ``seq_alt`` when present). ValueError names a file with neither column."""
    out = []
    for p in paths or []:
        t = pd.read_csv(p, sep="\t")
        cols = [c for c in ("seq_ref", "sequence", "seq_alt") if c in t.columns]
        if not cols or cols == ["seq_alt"]:
            raise ValueError(f"{p}: no 'seq_ref' or 'sequence' column (columns: {', '.join(map(str, t.columns))})")
        for c in cols:
            out += t[c].dropna().astype(str).tolist()
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="allelic pretrain",
                                 description="MLM-pretrain the DNABERT-2 architecture on a corpus of unlabelled DNA.")
    ap.add_argument("--corpus", nargs="+", help="FASTA/TSV files or folders (default: $ALLELIC_PRETRAIN_CORPUS)")
    ap.add_argument("--preset", default="cpu", choices=list(PRESETS))
    ap.add_argument("--tokenizer", help="tokenizer folder (default: $ALLELIC_TOKENIZER_DIR when set, "
                                        "else a BPE tokenizer trained on the corpus)")
    for name, typ in (("n-windows", int), ("epochs", int), ("max-steps", int), ("learning-rate", float),
                      ("batch-size", int), ("window", int), ("random-state", int)):
        ap.add_argument(f"--{name}", type=typ, help="override the preset" + (" (0: all windows)" if name == "n-windows" else ""))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--exclude", nargs="+", metavar="FILE.tsv",
                    help="TSV(s) with a seq_ref or sequence column: windows never to pretrain on (k-mer leak check)")
    ap.add_argument("--out", help="checkpoint directory (default: <data_dir>/models/pretrained-<key>)")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run")
    ap.add_argument("--force", action="store_true", help="retrain even when the checkpoint exists")
    return ap


def _spec_from_args(a) -> PretrainSpec:
    spec = PRESETS[a.preset]
    tok = config.tokenizer_dir(a.tokenizer)
    if tok is not None:
        spec = dataclasses.replace(spec, tokenizer=str(tok))
    over = {f: getattr(a, f) for f in ("epochs", "max_steps", "learning_rate", "batch_size", "window", "random_state")
            if getattr(a, f) is not None}
    if a.n_windows is not None:
        over["n_windows"] = a.n_windows or None
    return dataclasses.replace(spec, **over)


def main(argv=None) -> int:
    """``allelic pretrain``: prints the checkpoint directory and the card's key numbers; exit 2 without a corpus,
    1 on bad input."""
    a = _parser().parse_args(argv)
    try:
        corpus = a.corpus or config.pretrain_corpus()
        if corpus is None:
            print("error: no pretraining corpus: pass --corpus PATH [PATH ...] or set ALLELIC_PRETRAIN_CORPUS "
                  "(a FASTA/TSV file or a folder of them)", file=sys.stderr)
            return 2
        res = pretrain(corpus, spec=_spec_from_args(a), out_dir=a.out, exclude=read_exclude(a.exclude),
                       resume=a.resume, device=a.device, force=a.force)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not distributed.is_main():
        return 0
    c = res.card
    print(res.checkpoint)
    held, base = c.get("heldout") or {}, c.get("baseline") or {}
    print(f"windows: {c['n_windows_train']} train, {c['n_windows_holdout']} held out, {c['excluded']} excluded (leak); "
          f"tokens seen: {c['tokens_seen']}; steps: {c['steps']}; parameters: {c['n_parameters']}")
    print(f"MLM loss {c['mlm_loss_first']:.3f} -> {c['mlm_loss_last']:.3f}; held-out masked-token accuracy "
          f"{held.get('accuracy', float('nan')):.3f} (baseline {base.get('accuracy', float('nan')):.3f}); "
          f"{c['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())