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
