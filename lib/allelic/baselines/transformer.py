"""The fine-tuned transformer behind the :class:`~allelic.baselines.Baseline` interface
(:class:`FinetunedTransformer`), so that :func:`allelic.baselines.evaluate_models` serves it like the baselines.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from .. import train as tr
from ..tokenize import load_tokenizer
from .base import Baseline
from .binding import BindingModel


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


def _decode(codes) -> list[str]:
    """``(n, L)`` base codes (A, C, G, T, N = 0..4) back to strings."""
    import numpy as np

    codes = np.asarray(codes, dtype=np.uint8)
    return np.frombuffer(b"ACGTN", np.uint8)[codes].view(f"S{codes.shape[1]}").ravel().astype(str).tolist()


class TransformerBinding(BindingModel):
    """The transformer with a binding head: a pretrained checkpoint fine-tuned to tell bound sequences from
    background (a binding table: ``sequence``, ``bound`` 0/1, ``split`` train/val, e.g.
    :class:`allelic.binding.BindingSet`'s ``table``), a :class:`~allelic.baselines.binding.BindingModel` like the
    gapped k-mer SVM and the CNN: ``score(seqs)`` is the binding log-odds averaged over both strands,
    ``effect(ref, alt) = score(alt) - score(ref)`` (> 0: the alternative allele is predicted the more bound).

    The head is the reference head with ``pooling`` over the window (default the tokens around its centre, where
    peaks and SNVs sit) and the ``nucleotide_conv`` chapter 04 chose; ``config`` is the fine-tuning
    :class:`~allelic.train.TrainConfig` (early stopping on validation AUPRC). :meth:`save_checkpoint` writes the
    fitted model as a checkpoint directory; with ``encoder_only`` it is the start of an AS fine-tuning with any head
    (:meth:`FinetunedTransformer.from_checkpoint`: binding first, then AS labels). After ``fit``: ``model_``,
    ``tokenizer_`` and the attributes every binding model has."""

    name = "transformer_binding"
    _uses_torch = True

    def __init__(self, checkpoint, *, pooling: str = "centre", centre_flank: int = 4, nucleotide_conv: int = 0,
                 config=None, batch_size: int = 256, device: str = "auto", n_jobs: int | None = 1, random_state=0,
                 progress: bool = False):
        self.checkpoint, self.pooling, self.centre_flank = checkpoint, pooling, centre_flank
        self.nucleotide_conv, self.config, self.batch_size = nucleotide_conv, config, batch_size
        self.device, self.n_jobs, self.random_state, self.progress = device, n_jobs, random_state, progress

    def _fit(self, X, y, Xv, yv):
        import pandas as pd

        ft = FinetunedTransformer.from_checkpoint(
            self.checkpoint, head="reference", pooling=self.pooling, centre_flank=self.centre_flank,
            nucleotide_conv=self.nucleotide_conv, config=self.config, seq_col="sequence", alt_col="sequence",
            batch_size=self.batch_size, device=self.device, n_jobs=None, random_state=self.random_state)
        ft.fit(pd.DataFrame({"sequence": _decode(X), "label": y}), pd.DataFrame({"sequence": _decode(Xv), "label": yv}))
        self.model_, self.tokenizer_ = ft.model_, ft.tokenizer

    def _logits(self, codes):
        return tr.predict(self.model_, self.tokenizer_, _decode(codes), batch_size=self.batch_size,
                          device=self.device, logit=True)

    def save_checkpoint(self, out_dir, *, encoder_only: bool = False):
        """Write the fitted binding model (weights, config, tokenizer) to ``out_dir``; returns it. ``encoder_only``:
        without the binding head, a checkpoint to fine-tune with any other head next (binding first, then AS)."""
        from ..checkpoints import save_checkpoint

        self._check_fitted()
        return save_checkpoint(self.model_, self.tokenizer_, out_dir, encoder_only=encoder_only)
