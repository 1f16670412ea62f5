"""Training loops for DNA language models: masked-language-model pretraining and fine-tuning to predict AS SNVs.

What users of Hugging Face models expect, in a small explicit loop (no ``Trainer``):

* AdamW with linear warm-up and linear decay (paper-like defaults: ``learning_rate=3e-5``, ``batch_size=32``),
  gradient accumulation, gradient clipping;
* bf16 autocast on a GPU, float32 on the CPU; the device is chosen automatically (``device="auto"``);
* early stopping on validation AUPRC, the best weights kept;
* checkpoints every ``checkpoint_every`` optimiser steps holding model, optimiser, scheduler and RNG states, and
  ``resume=True`` that continues exactly (same final weights as an uninterrupted run);
* determinism from ``random_state`` (batch order per epoch, dropout, masking);
* a progress bar, and the history and metrics written as JSON;
* several processes under ``torchrun`` / ``accelerate launch`` (DistributedDataParallel; :mod:`allelic.distributed`):
  ``batch_size`` is the global micro-batch and each optimiser step sees the examples, masks and gradient of one
  process, rank 0 writes, checkpoints resume in any world size.

Sequences are tokenised once up front (:func:`tokenize_all`), so an epoch is pure tensor work.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import distributed
from .distributed import resolve_device
from .evaluate import binary_metrics
from .progress import bar as progress_bar
from .tokenize import centre_mask, encode, nucleotide_ids, token_spans

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Optimisation settings shared by :func:`finetune` and :func:`pretrain_mlm`."""

    learning_rate: float = 3e-5
    batch_size: int = 32
    epochs: int = 3
    max_steps: int | None = None  # optimiser steps; overrides epochs when set
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    eval_every: int | None = None  # optimiser steps between validations (default: once per epoch)
    early_stopping_patience: int | None = 3  # validations without AUPRC improvement before stopping
    checkpoint_every: int | None = None  # optimiser steps between checkpoints (default: at each validation)
    bf16: str | bool = "auto"  # autocast to bfloat16 on CUDA
    device: str = "auto"
    freeze_layers: int = 0  # freeze the embeddings and the first N encoder layers (large checkpoints)
    random_state: int = 0
    progress: bool | None = None


@dataclass
class TrainResult:
    """``history``: one row per logged step (``step, epoch, loss, lr`` and, at validations, ``val_auroc``,
    ``val_auprc``, ``val_loss``); ``best_step`` and ``best`` metrics; ``out_dir`` holds ``metrics.json``."""

    model: object
    history: pd.DataFrame
    best_step: int
    best: dict
    out_dir: Path | None
    seconds: float
    extra: dict = field(default_factory=dict)


def seed_everything(random_state: int) -> None:
    import torch

    random.seed(random_state)
    np.random.seed(random_state % 2**32)
    torch.manual_seed(random_state)


def tokenize_all(tokenizer, sequences, *, max_length: int | None = None):
    """Tokenise sequences once: ``(input_ids, attention_mask)`` int64 tensors of shape (n, tokens), padded to the
    longest (or ``max_length``, truncating longer encodings). The one encoder of the project,
    :func:`allelic.tokenize.encode`, does the work, so a k-mer tokenizer gets overlapping k-mers and a BPE tokenizer
    the raw window. Raises ValueError naming the first sequence with a character other than A, C, G, T, N."""
    enc = encode(tokenizer, list(sequences), max_length=max_length, truncation=max_length is not None)
    return enc["input_ids"], enc["attention_mask"]


def _autocast(device, bf16):
    import torch

    use = (bf16 == "auto" and device.type == "cuda") or bf16 is True
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use else contextlib.nullcontext()


def _freeze(model, n_layers: int) -> None:
    if n_layers <= 0:
        return
    base = getattr(model, "bert", None) or getattr(model, "base_model", model)
    for p in base.embeddings.parameters():
        p.requires_grad_(False)
    for layer in base.encoder.layer[:n_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def _optimizer(model, cfg: TrainConfig, total_steps: int):
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layernorm" in name else decay).append(p)
    on_cuda = any(p.is_cuda for p in decay + no_decay)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, fused=on_cuda or None)
    warm = int(round(cfg.warmup_ratio * total_steps))

    def schedule(step):
        if step < warm:
            return (step + 1) / max(warm, 1)
        return max(0.0, (total_steps - step) / max(total_steps - warm, 1))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def _batch_order(n: int, epoch: int, random_state: int) -> np.ndarray:
    return np.random.default_rng([random_state, epoch]).permutation(n)


def _rng_state():
    import torch

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class _Loop:
    """State of one training run; saved whole in checkpoints."""

    step: int = 0  # optimiser steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of the current epoch done
    best_step: int = -1
    best_score: float = -math.inf
    bad_evals: int = 0
    history: list = field(default_factory=list)
    stopped: bool = False


def _save_checkpoint(path: Path, model, opt, sched, loop: _Loop, best_state) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "loop": asdict(loop), "rng": _rng_state(), "best_state": best_state}, tmp)
    tmp.replace(path)


def _run(model, n_examples: int, micro_loss, evaluate_fn, cfg: TrainConfig, out_dir, resume: bool, desc: str,
         stop_after: int | None = None) -> TrainResult:
    """The shared optimisation loop. ``micro_loss(net, idx, part, device, key)`` returns ``(loss_sum, count)``: the
    summed loss of the rows ``idx[part]`` (``idx``: the global micro-batch, ``part``: this process's share of it,
    :func:`allelic.distributed.share`) through ``net`` and how many items (examples, masked tokens) it sums over;
    ``key`` identifies the micro-batch, for reproducible random masking. ``evaluate_fn()`` returns validation
    metrics (dict with ``val_auprc``) or None; every process evaluates, so early stopping agrees."""
    import torch

    t0 = time.perf_counter()
    distributed.setup()
    world, main = distributed.world_size(), distributed.is_main()
    seed_everything(cfg.random_state)
    device = resolve_device(cfg.device)
    model.to(device)
    _freeze(model, cfg.freeze_layers)
    micro_per_epoch = max(1, math.ceil(n_examples / cfg.batch_size))
    # the last, possibly short, accumulation of an epoch is an optimiser step of its own
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.grad_accum)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    eval_every = cfg.eval_every or steps_per_epoch
    ckpt_every = cfg.checkpoint_every or eval_every
    opt, sched = _optimizer(model, cfg, total)
    loop, best_state = _Loop(), None
    out = Path(out_dir) if out_dir else None
    if out and main:
        out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT if out else None
    if resume:
        if ckpt is None or not ckpt.is_file():
            raise FileNotFoundError(f"resume=True but no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        loop = _Loop(**state["loop"])
        best_state = state["best_state"]
        _set_rng_state(state["rng"])
    net = distributed.wrap(model, device)
    bar = progress_bar(total=total, desc=desc, progress=cfg.progress if main else False, leave=False)
    bar.update(loop.step)
    model.train()
    running, n_run = 0.0, 0
    while loop.step < total and not loop.stopped:
        order = _batch_order(n_examples, loop.epoch, cfg.random_state)
        while loop.batch_in_epoch < micro_per_epoch and loop.step < total and not loop.stopped:
            b = loop.batch_in_epoch
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            part = distributed.share(len(idx))
            empty = part.start == part.stop  # a process without rows still joins DDP's gradient all-reduce
            last_micro = (b + 1) % cfg.grad_accum == 0 or b + 1 >= micro_per_epoch
            sync = contextlib.nullcontext() if last_micro or net is model else net.no_sync()
            with sync:
                with _autocast(device, cfg.bf16):
                    loss_sum, count = micro_loss(net, idx, slice(0, 1) if empty else part, device,
                                                 loop.epoch * 10_000_000 + b)
                if empty:
                    loss_sum, count = loss_sum * 0.0, 0
                totals = distributed.all_sum(torch.tensor([float(loss_sum.detach()), float(count)], dtype=torch.float64))
                n_items = max(float(totals[1]), 1.0)
                (loss_sum * (world / n_items) / cfg.grad_accum).backward()
            running += float(totals[0]) / n_items
            n_run += 1
            loop.batch_in_epoch += 1
            if not last_micro:
                continue
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loop.step += 1
            bar.update(1)
            rec = {"step": loop.step, "epoch": loop.epoch, "loss": running / max(n_run, 1), "lr": sched.get_last_lr()[0]}
            running, n_run = 0.0, 0
            if loop.step % eval_every == 0 or loop.step == total:
                metrics = evaluate_fn()
                model.train()
                if metrics:
                    rec.update(metrics)
                    score = metrics.get("val_auprc", -math.inf)
                    if score > loop.best_score:
                        loop.best_score, loop.best_step, loop.bad_evals = score, loop.step, 0
                        best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
                    else:
                        loop.bad_evals += 1
                        if cfg.early_stopping_patience is not None and loop.bad_evals >= cfg.early_stopping_patience:
                            loop.stopped = True
                bar.set_postfix({k: round(v, 4) for k, v in rec.items() if k in ("loss", "val_auprc")})
            loop.history.append(rec)
            if main and ckpt is not None and (loop.step % ckpt_every == 0 or loop.step == total or loop.stopped):
                _save_checkpoint(ckpt, model, opt, sched, loop, best_state)
            if stop_after is not None and loop.step >= stop_after:  # simulate an interruption (tests)
                distributed.barrier()  # the checkpoint is written before any process leaves
                bar.close()
                return TrainResult(model, pd.DataFrame(loop.history), loop.best_step, {}, out, time.perf_counter() - t0)
        if loop.batch_in_epoch >= micro_per_epoch:
            loop.epoch += 1
            loop.batch_in_epoch = 0
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    hist = pd.DataFrame(loop.history)
    best = {}
    if loop.best_step > 0 and "val_auprc" in hist:
        best = hist.loc[hist["step"] == loop.best_step].iloc[-1].dropna().to_dict()
    res = TrainResult(model, hist, loop.best_step, best, out, time.perf_counter() - t0)
    if out and main:
        (out / "metrics.json").write_text(json.dumps({"best_step": loop.best_step, "best": best, "config": asdict(cfg),
                                                      "seconds": res.seconds, "history": loop.history}, indent=1, default=float))
    return res


def model_inputs(model, tokenizer, sequences, alt_sequences=None, *, max_length: int | None = None) -> dict:
    """Everything ``model`` reads for these windows, tokenised once: ``input_ids`` and ``attention_mask`` (n, L);
    for a siamese model (``classifier_head "siamese"``) the alternative windows' ``alt_input_ids`` and
    ``alt_attention_mask`` (``alt_sequences`` required); for ``classifier_pooling "centre"`` the ``pool_mask`` (and
    ``alt_pool_mask``) of the tokens around the window centre (the SNV: windows are centred on it); for a
    nucleotide convolution (``nucleotide_conv_width > 0``) the bases ``nucleotide_ids`` (n, bases) and each token's
    ``token_spans`` (n, L, 2) (and ``alt_*``)."""
    import torch

    from .models import is_pair_model

    cfg = getattr(model, "config", None)
    centre = getattr(cfg, "classifier_pooling", "cls") == "centre"
    conv = bool(getattr(cfg, "nucleotide_conv_width", 0))

    def one(seqs, prefix):
        ids, mask = tokenize_all(tokenizer, seqs, max_length=max_length)
        x = {f"{prefix}input_ids": ids, f"{prefix}attention_mask": mask}
        if centre:
            x[f"{prefix}pool_mask"] = centre_mask(tokenizer, ids, centre=len(seqs[0]) // 2,
                                                  flank=int(getattr(cfg, "classifier_centre_flank", 4)))
        if conv:
            x[f"{prefix}nucleotide_ids"] = nucleotide_ids(seqs)
            x[f"{prefix}token_spans"] = torch.stack(token_spans(tokenizer, ids), dim=-1)
        return x

    seqs = list(sequences)
    x = one(seqs, "")
    if is_pair_model(model):
        if alt_sequences is None:
            raise ValueError("a siamese model scores SNVs from both alleles: pass alt_sequences")
        alt = list(alt_sequences)
        if len(alt) != len(seqs):
            raise ValueError(f"{len(seqs)} reference but {len(alt)} alternative windows")
        x.update(one(alt, "alt_"))
    return x


def _batch(x: dict, i, device) -> dict:
    """The rows ``i`` (an index tensor or a slice) of every input tensor, on ``device``."""
    return {k: v[i].to(device) for k, v in x.items()}


def finetune(model, tokenizer, train: pd.DataFrame, val: pd.DataFrame | None = None, *, config: TrainConfig | None = None,
             out_dir=None, seq_col: str = "seq_ref", alt_col: str = "seq_alt", label_col: str = "label",
             resume: bool = False, max_length: int | None = None, stop_after: int | None = None) -> TrainResult:
    """Fine-tune a sequence-classification model (``num_labels=2``) on ``train[seq_col]`` -> ``train[label_col]``.

    A siamese model (``config.classifier_head == "siamese"``) also reads the alternative-allele windows
    ``train[alt_col]``. Validation AUROC/AUPRC are computed on ``val`` at each evaluation; the weights with the best
    validation AUPRC are returned (early stopping with ``config.early_stopping_patience``). With ``out_dir`` a
    checkpoint is written every ``config.checkpoint_every`` steps and ``resume=True`` continues from it exactly.
    ``stop_after`` stops after that many optimiser steps (to test interruption)."""
    import torch

    from .models import is_pair_model

    cfg = config or TrainConfig()
    pair = is_pair_model(model)

    def tensors(df):
        return model_inputs(model, tokenizer, df[seq_col], _alt_column(df, alt_col) if pair else None,
                            max_length=max_length)

    x = tensors(train)
    y = torch.as_tensor(train[label_col].to_numpy().astype(np.int64))
    if val is not None and len(val):
        v_x = tensors(val)
        v_y = val[label_col].to_numpy().astype(int)

    def micro_loss(net, idx, part, device, key):
        i = torch.as_tensor(idx[part])
        logits = net(**_batch(x, i, device)).logits
        return torch.nn.functional.cross_entropy(logits.float(), y[i].to(device), reduction="sum"), len(i)

    def evaluate_fn():
        if val is None or not len(val):
            return None
        p = score_inputs(model, v_x, batch_size=max(cfg.batch_size, 64), device=resolve_device(cfg.device),
                         bf16=cfg.bf16)
        m = binary_metrics(v_y, p)
        return {"val_auroc": m["auroc"], "val_auprc": m["auprc"]}

    return _run(model, len(train), micro_loss, evaluate_fn, cfg, out_dir, resume, "fine-tune", stop_after)


def _alt_column(df: pd.DataFrame, alt_col: str):
    if alt_col not in df.columns:
        raise ValueError(f"a siamese model needs the alternative-allele windows: no column {alt_col!r} "
                         f"(columns: {', '.join(map(str, df.columns))})")
    return df[alt_col]


def mask_tokens(input_ids, attention_mask, tokenizer, *, mlm_probability: float = 0.15, generator=None):
    """BERT masking: ``mlm_probability`` of the real (non-special) tokens are chosen; 80 % become ``[MASK]``,
    10 % a random token, 10 % stay. Returns ``(masked_ids, labels)`` with labels -100 where not chosen."""
    import torch

    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for tid in tokenizer.all_special_ids:
        special |= input_ids == tid
    prob = torch.full(input_ids.shape, mlm_probability)
    prob[special | (attention_mask == 0)] = 0.0
    chosen = torch.bernoulli(prob, generator=generator).bool()
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    masked = input_ids.clone()
    to_mask = chosen & torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool()
    masked[to_mask] = tokenizer.mask_token_id
    to_random = chosen & ~to_mask & torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
    n_special = len(tokenizer.all_special_ids)
    masked[to_random] = torch.randint(n_special, len(tokenizer), (int(to_random.sum()),), generator=generator)
    return masked, labels


def pretrain_mlm(model, tokenizer, sequences, *, config: TrainConfig | None = None, out_dir=None,
                 mlm_probability: float = 0.15, resume: bool = False, max_length: int | None = None,
                 stop_after: int | None = None) -> TrainResult:
    """Masked-language-model pretraining on ``sequences`` (e.g. windows of the genome). Masks are drawn per micro-batch
    from a generator seeded by ``(random_state, epoch, batch)``, so runs and resumed runs are reproducible
    (``out_dir`` + ``resume=True``; ``stop_after`` stops after that many optimiser steps, to test interruption)."""
    import torch

    cfg = config or TrainConfig(learning_rate=5e-4, early_stopping_patience=None)
    ids, mask = tokenize_all(tokenizer, sequences, max_length=max_length)

    def micro_loss(net, idx, part, device, key):
        g = torch.Generator().manual_seed(cfg.random_state * 1_000_003 + key)
        i = torch.as_tensor(idx)  # masks drawn over the global micro-batch, as one process draws them
        masked, labels = mask_tokens(ids[i], mask[i], tokenizer, mlm_probability=mlm_probability, generator=g)
        masked, labels, att = masked[part], labels[part].to(device), mask[i][part]
        logits = net(input_ids=masked.to(device), attention_mask=att.to(device)).logits
        loss_sum = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1),
                                                     ignore_index=-100, reduction="sum")
        return loss_sum, int((labels != -100).sum())

    return _run(model, len(ids), micro_loss, lambda: None, cfg, out_dir, resume, "MLM pretraining", stop_after)


def score_inputs(model, x: dict, *, batch_size: int = 256, device=None, bf16="auto", logit: bool = False) -> np.ndarray:
    """Positive-class probability (n,) float32 of inputs already built by :func:`model_inputs`, ``batch_size`` at a
    time under ``torch.no_grad()`` in eval mode on ``device`` (default: where the model is), with bfloat16 autocast
    on CUDA when ``bf16`` says so (``"auto"``: on CUDA; :func:`allelic.attention.ism_scores` passes False).
    ``logit=True``: the log-odds ``logits[:, 1] - logits[:, 0]`` instead (no saturation near 0 and 1: differences of
    log-odds between two alleles are what allele effects compare)."""
    import torch

    device = device or next(model.parameters()).device
    model.to(device).eval()
    out = []
    with torch.no_grad(), _autocast(device, bf16):
        for s in range(0, len(x["input_ids"]), batch_size):
            logits = model(**_batch(x, slice(s, s + batch_size), device)).logits
            logits = logits.float()
            out.append((logits[:, 1] - logits[:, 0] if logit else torch.softmax(logits, dim=-1)[:, 1]).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def predict(model, tokenizer, sequences, alt_sequences=None, *, batch_size: int = 256, device: str = "auto",
            max_length: int | None = None, logit: bool = False) -> np.ndarray:
    """Probability of the positive class (allele-specific, or bound for a binding model) for each sequence, shape
    (n,); batched, on ``device``; ``logit=True``: its log-odds. A siamese model needs ``alt_sequences`` (the
    alternative-allele windows, same order)."""
    x = model_inputs(model, tokenizer, sequences, alt_sequences, max_length=max_length)
    return score_inputs(model, x, batch_size=batch_size, device=resolve_device(device), logit=logit)
