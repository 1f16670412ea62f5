"""DNABERT-2 in native PyTorch, and loading of the DNA language-model checkpoints users have.

The parts live in their own modules; this one names them all, so ``from allelic.models import ...`` reaches every one:

- :mod:`allelic.dnabert2`    — the DNABERT-2 (MosaicBERT) architecture: :class:`DNABert2Config`, ALiBi
  (:func:`alibi_slopes`, :func:`alibi_bias`), the layers and heads, the ``DNABert2*`` model classes (registered with
  the ``transformers`` Auto classes) and :func:`is_pair_model`;
- :mod:`allelic.checkpoints` — opening checkpoint directories: :func:`load_model` (any DNA language model),
  :func:`load_dnabert2`, :func:`is_dnabert2_checkpoint`, :func:`has_classifier`;
- :mod:`allelic.model_size`  — :func:`model_summary` (parameter counts, shape) and :func:`flops_per_token`.

.. warning::
   **Load DNABERT-2 checkpoints with** :func:`load_model`, **not** ``transformers.AutoModel.from_pretrained``, which
   initialises the whole encoder of a published DNABERT-2 checkpoint at random without an error (see
   :mod:`allelic.checkpoints`).
"""
from .checkpoints import TASKS, has_classifier, is_dnabert2_checkpoint, load_dnabert2, load_model
from .dnabert2 import (
    HEADS,
    POOLINGS,
    DNABert2Attention,
    DNABert2Config,
    DNABert2Embeddings,
    DNABert2Encoder,
    DNABert2ForMaskedLM,
    DNABert2ForSequenceClassification,
    DNABert2GatedMLP,
    DNABert2Layer,
    DNABert2LMPredictionHead,
    DNABert2Model,
    DNABert2OnlyMLMHead,
    DNABert2Pooler,
    DNABert2PredictionHeadTransform,
    DNABert2PreTrainedModel,
    DNABert2SelfAttention,
    DNABert2SelfOutput,
    alibi_bias,
    alibi_slopes,
    is_pair_model,
)
from .model_size import flops_per_token, model_summary

__all__ = [
    "DNABert2Config", "DNABert2PreTrainedModel", "DNABert2Model", "DNABert2ForMaskedLM",
    "DNABert2ForSequenceClassification", "alibi_slopes", "alibi_bias", "load_dnabert2", "load_model",
    "is_dnabert2_checkpoint", "is_pair_model", "has_classifier", "model_summary", "flops_per_token", "TASKS",
    "POOLINGS", "HEADS",
]
