"""The fine-tuned transformer behind the :class:`~allelic.baselines.Baseline` interface
(:class:`FinetunedTransformer`), so that :func:`allelic.baselines.evaluate_models` serves it like the baselines.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from .. import train as tr
from ..tokenize import load_tokenizer
from .base import Baseline


class FinetunedTransformer(Baseline):
    """Adapter putting a Hugging Face sequence classifier behind the :class:`Baseline` interface.

    ``model_factory()`` returns a fresh ``AutoModelForSequenceClassification``-like model (``num_labels=2``; a
    factory rather than a model so that :meth:`clone` and :func:`evaluate_models` fit from the same starting
    weights each time); ``fit`` runs :func:`allelic.train.finetune` with ``config`` (a
    :class:`~allelic.train.TrainConfig`, its ``random_state`` overridden by this object's) on ``seq_col`` (and
    ``alt_col`` for a siamese model, which reads both alleles), and ``predict`` returns
    :func:`allelic.train.predict`'s probability of the positive class."""

    name = "transformer"

    def __init__(self, model_factory: Callable, tokenizer, *, config=None, seq_col: str = "seq_ref",
                 alt_col: str = "seq_alt", max_length: int | None = None, out_dir=None, batch_size: int = 256,
                 device: str = "auto", n_jobs: int | None = None, random_state=0, progress: bool = False):
        self.model_factory, self.tokenizer, self.config, self.seq_col = model_factory, tokenizer, config, seq_col
        self.alt_col, self.max_length, self.out_dir, self.batch_size = alt_col, max_length, out_dir, batch_size
        self.device, self.n_jobs, self.random_state, self.progress = device, n_jobs, random_state, progress

    @classmethod
    def from_checkpoint(cls, checkpoint, *, head: str = "reference", pooling: str = "cls", centre_flank: int = 4,
                        nucleotide_conv: int = 0, **kwargs) -> "FinetunedTransformer":
        """Fine-tune a saved checkpoint (tokenizer beside it), as :func:`allelic.language_model.fit_assays`
        does: ``model_factory = lambda: load_model(checkpoint, task="classification", num_labels=2,
        classifier_head=head, classifier_pooling=pooling, classifier_centre_flank=centre_flank,
        nucleotide_conv_width=nucleotide_conv)``."""
        from ..models import load_model

        def factory():
            return load_model(checkpoint, task="classification", num_labels=2, classifier_head=head,
                              classifier_pooling=pooling, classifier_centre_flank=centre_flank,
                              nucleotide_conv_width=nucleotide_conv)

        return cls(factory, load_tokenizer(checkpoint), **kwargs)

    def clone(self):
        new = type(self)(**self.get_params())   # factory and tokenizer are shared, not copied
        new.name = self.name
        return new

    def fit(self, train, val=None):
        cfg = dataclasses.replace(self.config or tr.TrainConfig(), random_state=self.random_state,
                                  device=self.device)
        tr.seed_everything(self.random_state)
        self.model_ = self.model_factory()
        self.result_ = tr.finetune(self.model_, self.tokenizer, train, val, config=cfg, out_dir=self.out_dir,
                                   seq_col=self.seq_col, alt_col=self.alt_col, max_length=self.max_length)
        return self

    def predict(self, df):
        from ..models import is_pair_model

        alt = df[self.alt_col] if is_pair_model(self.model_) else None
        return tr.predict(self.model_, self.tokenizer, df[self.seq_col], alt, batch_size=self.batch_size,
                          device=self.device, max_length=self.max_length)


class TransformerBinding:
    """The transformer with a binding head: a pretrained checkpoint fine-tuned to tell bound sequences from
    background (a binding table: ``sequence``, ``bound`` 0/1, ``split`` train/val, e.g.
    :class:`allelic.binding.BindingSet`'s ``table``), then used like the other binding models of
    :mod:`allelic.baselines.binding`: ``score(seqs)`` is the binding log-odds averaged over both strands,
    ``effect(ref, alt) = score(alt) - score(ref)`` (> 0: the alternative allele is predicted the more bound).

    The head is the reference head with ``pooling`` over the window (default the tokens around its centre, where
    peaks and SNVs sit) and the ``nucleotide_conv`` chapter 04 chose; ``config`` is the fine-tuning
    :class:`~allelic.train.TrainConfig` (early stopping on validation AUPRC). ``save(out_dir)`` writes the fitted model
    as a checkpoint directory whose encoder :meth:`FinetunedTransformer.from_checkpoint` can fine-tune on AS labels
    next (the binding-first start). After ``fit``: ``val_auroc_``, ``fit_seconds_``, ``n_train_``, ``model_``."""

    name = "transformer_binding"

    def __init__(self, checkpoint, *, pooling: str = "centre", centre_flank: int = 4, nucleotide_conv: int = 0,
                 config=None, batch_size: int = 256, device: str = "auto", n_jobs: int | None = 1, random_state=0):
        self.checkpoint, self.pooling, self.centre_flank = checkpoint, pooling, centre_flank
        self.nucleotide_conv, self.config, self.batch_size = nucleotide_conv, config, batch_size
        self.device, self.n_jobs, self.random_state = device, n_jobs, random_state

    def fit(self, table):
        import time

        from .base import thread_limit

        t0 = time.perf_counter()
        need = {"sequence", "bound", "split"}
        if not need <= set(table.columns):
            raise ValueError(f"a binding table needs columns {sorted(need)}; got {list(table.columns)}")
        rows = table.rename(columns={"bound": "label"})
        train, val = rows[rows["split"] == "train"], rows[rows["split"] == "val"]
        self._model = FinetunedTransformer.from_checkpoint(
            self.checkpoint, head="reference", pooling=self.pooling, centre_flank=self.centre_flank,
            nucleotide_conv=self.nucleotide_conv, config=self.config, seq_col="sequence", alt_col="sequence",
            batch_size=self.batch_size, device=self.device, n_jobs=self.n_jobs, random_state=self.random_state)
        with thread_limit(self.n_jobs):
            self._model.fit(train, val if len(val) else None)
        self.model_, self.tokenizer_ = self._model.model_, self._model.tokenizer
        self.n_train_ = len(train)
        self.val_auroc_ = float(self._model.result_.best.get("val_auroc", float("nan")))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def score(self, seqs):
        import numpy as np

        from ..motifs import reverse_complement
        from .base import thread_limit

        seqs = [str(s).upper() for s in seqs]
        with thread_limit(self.n_jobs):
            both = tr.predict(self.model_, self.tokenizer_, seqs + [reverse_complement(s) for s in seqs],
                              batch_size=self.batch_size, device=self.device, logit=True)
        return (both[:len(seqs)].astype(np.float64) + both[len(seqs):]) / 2

    def effect(self, seq_ref, seq_alt):
        return self.score(list(seq_alt)) - self.score(list(seq_ref))

    def save(self, out_dir, *, encoder_only: bool = False):
        """Write the fitted binding model (weights, config, tokenizer) to ``out_dir``; returns it. ``encoder_only``:
        without the binding head, a checkpoint to fine-tune with any other head next (binding first, then AS)."""
        from pathlib import Path

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = self.model_.state_dict()
        if encoder_only:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        self.model_.save_pretrained(out, state_dict=state)
        self.tokenizer_.save_pretrained(out)
        return out
