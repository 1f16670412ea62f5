"""DNABERT-2 in native PyTorch: the configuration, ALiBi, the layers, the heads and the model classes.

DNABERT-2 (Zhou et al. 2023, ``zhihan1996/DNABERT-2-117M``) is a MosaicBERT: a BERT encoder over a 4096-token BPE
vocabulary with

* no position embeddings: an ALiBi bias ``-slope_h * |i - j|`` (symmetric) is added to the attention logits of head
  ``h``, with the standard ALiBi head slopes (MosaicBERT ``_get_alibi_head_slopes``, non-power-of-2 rule included);
* a fused ``Wqkv`` projection, post-LayerNorm blocks, and a gated-GELU MLP (``gated_layers``: hidden -> 2 x
  intermediate without bias; ``GELU(first half) * second half``; ``wo`` back to hidden);
* the published weights named as in MosaicBERT (``bert.encoder.layer.N.attention.self.Wqkv`` ...).

The published remote code (``bert_layers.py``) needs ``trust_remote_code``, breaks on recent ``transformers`` and
ignores ``output_attentions``. This module re-implements the same arithmetic with the same module names, so a published
checkpoint directory loads into it without remote code (:func:`allelic.checkpoints.load_dnabert2`), and it returns
attention maps:

* ``output_attentions=False``: :func:`torch.nn.functional.scaled_dot_product_attention` with the ALiBi bias plus the
  padding mask as a float ``attn_mask`` (fast path, any device, any dtype);
* ``output_attentions=True``: an explicit (eager) path, softmax in float32, returning the probabilities
  ``(batch, heads, tokens, tokens)``; rows sum to 1 and padded keys get probability exactly 0.

Padded positions are dropped from attention as keys; their own outputs are set to zero in the returned hidden states
(as MosaicBERT's unpadding does), so the hidden states of real tokens do not depend on how much padding follows.

Loading checkpoints (published, ours, or other architectures) is :mod:`allelic.checkpoints`; parameter counts and
training FLOPs are :mod:`allelic.model_size`; :mod:`allelic.models` names all of them.
"""
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.activations import ACT2FN
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndCrossAttentions,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

try:  # transformers >= 4.50: gradient checkpointing through model.gradient_checkpointing_enable()
    from transformers.modeling_layers import GradientCheckpointingLayer as _LayerBase
except ImportError:  # pragma: no cover - older transformers
    _LayerBase = nn.Module

logger = logging.getLogger(__name__)

__all__ = [
    "DNABert2Config", "DNABert2PreTrainedModel", "DNABert2Model", "DNABert2ForMaskedLM",
    "DNABert2ForSequenceClassification", "alibi_slopes", "alibi_bias", "is_pair_model", "POOLINGS", "HEADS",
]


# ---------------------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------------------
class DNABert2Config(PretrainedConfig):
    """Configuration of the DNABERT-2 (MosaicBERT) architecture; the defaults are DNABERT-2-117M's.

    ``alibi_starting_size`` is the size of the cached ALiBi bias; it grows when a longer input comes (no limit on the
    input length). ``max_position_embeddings`` is kept for compatibility only: there are no position embeddings.
    ``classifier_dropout`` (None: ``hidden_dropout_prob``) is the dropout before the classification layer.

    Classification heads (not in the published config; its defaults are the published behaviour):

    * ``classifier_pooling``: ``"cls"`` (the pooler: ``tanh(dense(h[CLS]))``, as DNABERT-2), ``"mean"`` (the same
      dense + tanh on the mean of the real tokens' last hidden states) or ``"centre"`` (the mean over the tokens
      that overlap the window's centre +- ``classifier_centre_flank`` bases (default 4, chosen on the validation
      chromosomes of the default simulator's CTCF among 4, 12 and 24), i.e. the variant and its immediate
      neighbourhood: an inductive bias towards what the variant changes; the caller passes that token mask,
      :func:`allelic.tokenize.centre_mask`);
    * ``classifier_head``: ``"reference"`` (one window, the SNV's reference allele) or ``"siamese"`` (the shared
      encoder reads the reference and the alternative window; the classifier sees ``[e_ref, e_alt, e_alt - e_ref]``,
      as entexBERT-2 does), so the model sees what the alternative allele changes.

    Nucleotide convolution (not in the published architecture; off by default):

    * ``nucleotide_conv_width``: 0 (off, DNABERT-2 as published) or the width *w* of a convolution over the one-hot
      bases of the window (``hidden_size`` filters, ReLU), averaged over each token's bases and added to its word
      embedding before the LayerNorm. A BPE token hides where in it a base sits and which bases its neighbours hold;
      *w*-base filters are position-weight matrices, so a motif is learnable from few labels and every token knows
      the motifs around its bases. The caller passes ``nucleotide_ids`` (b, L) and ``token_spans`` (b, s, 2)
      (:func:`allelic.train.model_inputs` does). A checkpoint without these weights (any pretrained one) gets them
      newly initialised.
    """

    model_type = "dnabert2"

    vocab_size: int = 4096
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None
    alibi_starting_size: int = 512
    tie_word_embeddings: bool = True
    classifier_pooling: str = "cls"
    classifier_head: str = "reference"
    classifier_centre_flank: int = 4
    nucleotide_conv_width: int = 0


# ---------------------------------------------------------------------------------------------------------------------
# ALiBi
# ---------------------------------------------------------------------------------------------------------------------
def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi head slopes, the rule of Press et al. as in MosaicBERT ``_get_alibi_head_slopes``.

    A power of two ``n``: the geometric sequence ``start * start**i`` with ``start = 2**(-8/n)`` (8 heads: 2^-1 .. 2^-8;
    4 heads: 2^-2, 2^-4, 2^-6, 2^-8). Otherwise: the slopes of the closest lower power of two ``p``, followed by every
    other slope of ``2p`` heads (12 heads: 2^-1 .. 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5)."""
    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def alibi_bias(n_heads: int, size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The ALiBi bias ``(1, heads, size, size)``: ``bias[0, h, i, j] = -slope_h * |i - j|``."""
    pos = torch.arange(size, device=device)
    rel = (pos[None, :] - pos[:, None]).abs().to(torch.float32)
    slopes = torch.tensor(alibi_slopes(n_heads), dtype=torch.float32, device=device)
    return (-slopes[:, None, None] * rel[None]).unsqueeze(0).to(dtype)


# ---------------------------------------------------------------------------------------------------------------------
# modules (names as in MosaicBERT / DNABERT-2 bert_layers.py, so that state dicts match)
# ---------------------------------------------------------------------------------------------------------------------
class DNABert2Embeddings(nn.Module):
    """Word + token-type embeddings (+ the optional nucleotide convolution), LayerNorm, dropout; no position
    embeddings (ALiBi)."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        pad = config.pad_token_id if config.pad_token_id is not None and 0 <= config.pad_token_id < config.vocab_size else None
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=pad)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        w = int(getattr(config, "nucleotide_conv_width", 0) or 0)
        self.nucleotide_conv = nn.Conv1d(4, config.hidden_size, w, padding=w // 2) if w else None
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def nucleotide_features(self, nucleotide_ids: torch.Tensor, token_spans: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """(b, s, hidden): the ReLU of the convolution over the bases (codes A, C, G, T = 0..3; N and padding: 4,
        an all-zero column), averaged over each token's bases ``token_spans[..., 0] <= base < token_spans[..., 1]``
        (zero for special and padding tokens)."""
        if token_spans.shape[1] != n_tokens:
            raise ValueError(f"token_spans has {token_spans.shape[1]} tokens, input_ids {n_tokens}")
        onehot = F.one_hot(nucleotide_ids.long().clamp(0, 4), 5)[..., :4].to(self.nucleotide_conv.weight.dtype)
        conv = F.relu(self.nucleotide_conv(onehot.transpose(1, 2)))[..., :nucleotide_ids.shape[1]]  # (b, h, L)
        base = torch.arange(nucleotide_ids.shape[1], device=conv.device)
        span = ((base >= token_spans[..., :1]) & (base < token_spans[..., 1:])).to(conv.dtype)  # (b, s, L)
        return torch.bmm(span / span.sum(-1, keepdim=True).clamp(min=1), conv.transpose(1, 2))

    def forward(self, input_ids=None, token_type_ids=None, inputs_embeds=None, nucleotide_ids=None,
                token_spans=None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        x = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if self.nucleotide_conv is not None:
            if nucleotide_ids is None or token_spans is None:
                raise ValueError("nucleotide_conv_width > 0: pass nucleotide_ids and token_spans "
                                 "(allelic.train.model_inputs builds them)")
            x = x + self.nucleotide_features(nucleotide_ids, token_spans, x.shape[1])
        return self.dropout(self.LayerNorm(x))


class DNABert2SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``Wqkv`` projection and an additive bias (ALiBi + padding)."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
                             f"{config.num_attention_heads}")
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.p_dropout = float(config.attention_probs_dropout_prob)
        self.dropout = nn.Dropout(self.p_dropout)
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, bias: torch.Tensor, output_attentions: bool = False):
        """``hidden_states`` (b, s, hidden); ``bias`` (b, heads, s, s) additive, in the attention dtype.

        Returns ``(context (b, s, hidden), probabilities (b, heads, s, s) or None)``."""
        b, s, _ = hidden_states.shape
        h, d = self.num_attention_heads, self.attention_head_size
        qkv = self.Wqkv(hidden_states).view(b, s, 3, h, d)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(dim=2))  # each (b, h, s, d)
        if output_attentions:
            # eager path: logits and softmax in float32 (attention maps for analysis), then back to the value dtype
            scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(d) + bias.float()
            probs = torch.softmax(scores, dim=-1)
            context = torch.matmul(self.dropout(probs).to(v.dtype), v)
        else:
            probs = None
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype),
                dropout_p=self.p_dropout if self.training else 0.0, is_causal=False)
        return context.transpose(1, 2).reshape(b, s, h * d), probs


class DNABert2SelfOutput(nn.Module):
    """Attention output: dense, dropout, post-LayerNorm with the residual."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class DNABert2Attention(nn.Module):
    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.self = DNABert2SelfAttention(config)
        self.output = DNABert2SelfOutput(config)

    def forward(self, hidden_states, bias, output_attentions=False):
        context, probs = self.self(hidden_states, bias, output_attentions)
        return self.output(context, hidden_states), probs


class DNABert2GatedMLP(nn.Module):
    """Gated-GELU MLP (MosaicBERT ``BertGatedLinearUnitMLP``): ``LN(x + wo(drop(GELU(g) * u)))``, ``[g, u] =
    gated_layers(x)``."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = nn.GELU(approximate="none")
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gated, non_gated = self.gated_layers(hidden_states).split(self.intermediate_size, dim=-1)
        x = self.wo(self.dropout(self.act(gated) * non_gated))
        return self.layernorm(x + hidden_states)


class DNABert2Layer(_LayerBase):
    """One post-LN block: attention then gated MLP."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.attention = DNABert2Attention(config)
        self.mlp = DNABert2GatedMLP(config)

    def forward(self, hidden_states, bias, output_attentions=False):
        attention_output, probs = self.attention(hidden_states, bias, output_attentions)
        return self.mlp(attention_output), probs


class DNABert2Encoder(nn.Module):
    """The stack of layers plus the cached ALiBi bias (a plain attribute, not a buffer: rebuilt lazily on the input's
    device, grown when a longer input comes)."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.layer = nn.ModuleList([DNABert2Layer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False
        self._alibi: torch.Tensor | None = None
        self._alibi_size = int(config.alibi_starting_size)

    def alibi(self, seq_len: int, device) -> torch.Tensor:
        """The cached float32 ALiBi bias, ``(1, heads, seq_len, seq_len)``."""
        if seq_len > self._alibi_size:
            logger.info("growing the ALiBi bias from %d to %d tokens", self._alibi_size, seq_len)
            self._alibi_size = seq_len
            self._alibi = None
        if self._alibi is None or self._alibi.device != torch.device(device) or self._alibi.shape[-1] < self._alibi_size:
            self._alibi = alibi_bias(self.num_attention_heads, self._alibi_size, device=device)
        return self._alibi[:, :, :seq_len, :seq_len]

    def attention_bias(self, attention_mask: torch.Tensor, seq_len: int, dtype: torch.dtype, device) -> torch.Tensor:
        """ALiBi + padding bias ``(b, heads, s, s)`` in ``dtype``: padded keys get ``finfo(dtype).min``.

        The last dimension is allocated padded to a multiple of 8 (then sliced) so that the memory-efficient SDPA
        kernels on CUDA can take the mask without copying it."""
        b = attention_mask.shape[0]
        s_pad = -(-seq_len // 8) * 8
        out = torch.empty(b, self.num_attention_heads, seq_len, s_pad, dtype=dtype, device=device)[..., :seq_len]
        neg = torch.finfo(dtype).min
        key_bias = torch.zeros(b, 1, 1, seq_len, dtype=torch.float32, device=device)
        key_bias.masked_fill_(~attention_mask.bool()[:, None, None, :], neg)
        out.copy_((self.alibi(seq_len, device) + key_bias).clamp_min(neg))
        return out

    def forward(self, hidden_states, attention_mask, output_attentions=False, output_hidden_states=False):
        b, s, _ = hidden_states.shape
        dtype = hidden_states.dtype  # the dtype attention runs in (autocast's when on); the eager path uses float32
        if output_attentions:
            dtype = torch.float32
        elif torch.is_autocast_enabled(hidden_states.device.type):
            dtype = torch.get_autocast_dtype(hidden_states.device.type)
        bias = self.attention_bias(attention_mask, s, dtype, hidden_states.device)
        keep = attention_mask.to(hidden_states.dtype)[:, :, None]
        all_hidden = (hidden_states * keep,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        for layer in self.layer:
            hidden_states, probs = layer(hidden_states, bias, output_attentions)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states * keep.to(hidden_states.dtype),)
            if output_attentions:
                all_attn = all_attn + (probs,)
        return hidden_states * keep.to(hidden_states.dtype), all_hidden, all_attn


class DNABert2Pooler(nn.Module):
    """tanh(dense(first token))."""

    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class DNABert2PredictionHeadTransform(nn.Module):
    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class DNABert2LMPredictionHead(nn.Module):
    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.transform = DNABert2PredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)  # weight tied to the word embeddings

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class DNABert2OnlyMLMHead(nn.Module):
    def __init__(self, config: DNABert2Config):
        super().__init__()
        self.predictions = DNABert2LMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


# ---------------------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------------------
class DNABert2PreTrainedModel(PreTrainedModel):
    """Weight initialisation (normal(0, initializer_range), LayerNorm 1/0, padding row 0) and the HF plumbing."""

    config_class = DNABert2Config
    base_model_prefix = "bert"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DNABert2Layer"]

    def _flags(self, output_attentions, output_hidden_states, return_dict):
        cfg = self.config
        oa = output_attentions if output_attentions is not None else bool(getattr(cfg, "output_attentions", False))
        oh = output_hidden_states if output_hidden_states is not None else bool(getattr(cfg, "output_hidden_states", False))
        rd = return_dict if return_dict is not None else getattr(cfg, "return_dict", True) is not False
        return oa, oh, rd


class DNABert2Model(DNABert2PreTrainedModel):
    """The encoder: embeddings, layers, and (``add_pooling_layer``) the pooler."""

    def __init__(self, config: DNABert2Config, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = DNABert2Embeddings(config)
        self.encoder = DNABert2Encoder(config)
        self.pooler = DNABert2Pooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, nucleotide_ids=None,
                token_spans=None):
        """``position_ids`` is accepted and ignored (ALiBi). ``attention_mask`` (b, s): 1 real token, 0 padding.
        ``nucleotide_ids`` / ``token_spans``: the bases and each token's base span (``nucleotide_conv_width > 0``).

        Returns :class:`BaseModelOutputWithPoolingAndCrossAttentions` (``last_hidden_state`` (b, s, hidden), zero at
        padded positions; ``pooler_output`` (b, hidden) or None; ``hidden_states``: embeddings + one per layer;
        ``attentions``: one (b, heads, s, s) tensor per layer)."""
        oa, oh, rd = self._flags(output_attentions, output_hidden_states, return_dict)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if attention_mask is None:
            attention_mask = torch.ones(shape, dtype=torch.long, device=device)
        x = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds,
                            nucleotide_ids=nucleotide_ids, token_spans=token_spans)
        seq, hidden, attn = self.encoder(x, attention_mask, output_attentions=oa, output_hidden_states=oh)
        pooled = self.pooler(seq) if self.pooler is not None else None
        out = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=seq, pooler_output=pooled, hidden_states=hidden, attentions=attn)
        return out if rd else out.to_tuple()


class DNABert2ForMaskedLM(DNABert2PreTrainedModel):
    """Encoder (no pooler) + MLM head whose decoder weight is tied to the word embeddings (decoder has its own bias)."""

    _tied_weights_keys = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}

    def __init__(self, config: DNABert2Config):
        super().__init__(config)
        if getattr(config, "nucleotide_conv_width", 0):
            raise ValueError("nucleotide_conv_width > 0 is for fine-tuning only: in masked-language-model training "
                             "the convolution would see the masked bases")
        self.bert = DNABert2Model(config, add_pooling_layer=False)
        self.cls = DNABert2OnlyMLMHead(config)
        if getattr(config, "tie_word_embeddings", True):
            self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """``labels`` (b, s): token ids to predict, ``-100`` where no loss is taken. Returns :class:`MaskedLMOutput`
        with ``logits`` (b, s, vocab) at every position (loss: cross-entropy in float32 over labelled positions)."""
        oa, oh, rd = self._flags(output_attentions, output_hidden_states, return_dict)
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        inputs_embeds=inputs_embeds, output_attentions=oa, output_hidden_states=oh, return_dict=True)
        logits = self.cls(out.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.to(logits.device).view(-1),
                                   ignore_index=-100)
        res = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return res if rd else res.to_tuple()


POOLINGS = ("cls", "mean", "centre")
HEADS = ("reference", "siamese")


class DNABert2ForSequenceClassification(DNABert2PreTrainedModel):
    """Encoder + pooling, dropout (``classifier_dropout`` or ``hidden_dropout_prob``), linear classifier.

    ``config.classifier_pooling`` and ``config.classifier_head`` choose the pooling (CLS or masked mean) and the head
    (reference window only, or siamese over the reference and alternative windows: ``alt_input_ids`` and
    ``alt_attention_mask`` are then required and the classifier reads ``[e_ref, e_alt, e_alt - e_ref]``, 3 x hidden).

    Loss: MSE for ``num_labels == 1`` (regression), cross-entropy for integer labels, BCE-with-logits for float
    labels of shape (b, num_labels) (multi-label); ``config.problem_type`` overrides the choice."""

    def __init__(self, config: DNABert2Config):
        super().__init__(config)
        pooling = getattr(config, "classifier_pooling", "cls") or "cls"
        head = getattr(config, "classifier_head", "reference") or "reference"
        if pooling not in POOLINGS:
            raise ValueError(f"classifier_pooling must be one of {POOLINGS}, got {pooling!r}")
        if head not in HEADS:
            raise ValueError(f"classifier_head must be one of {HEADS}, got {head!r}")
        self.pooling, self.siamese = pooling, head == "siamese"
        self.num_labels = config.num_labels
        self.bert = DNABert2Model(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size * (3 if self.siamese else 1), config.num_labels)
        self.post_init()

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
              output_attentions=False, output_hidden_states=False, pool_mask=None, nucleotide_ids=None,
              token_spans=None):
        """The pooled embedding of one window, (b, hidden), and the encoder output. ``pool_mask`` (b, s): the tokens
        to average for ``"centre"`` pooling (required there); ``nucleotide_ids`` / ``token_spans``: see
        :class:`DNABert2Config` ``nucleotide_conv_width``."""
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                        output_hidden_states=output_hidden_states, return_dict=True,
                        nucleotide_ids=nucleotide_ids, token_spans=token_spans)
        if self.pooling == "cls":
            return out.pooler_output, out
        h = out.last_hidden_state  # zero at padded positions
        if self.pooling == "centre":
            if pool_mask is None:
                raise ValueError("centre pooling needs pool_mask (allelic.tokenize.centre_mask of the input ids)")
            m = pool_mask
        else:
            m = attention_mask if attention_mask is not None else torch.ones(h.shape[:2], device=h.device)
        m = m.to(h.dtype).unsqueeze(-1)
        mean = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return self.bert.pooler.activation(self.bert.pooler.dense(mean)), out

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                alt_input_ids=None, alt_attention_mask=None, pool_mask=None, alt_pool_mask=None, nucleotide_ids=None,
                token_spans=None, alt_nucleotide_ids=None, alt_token_spans=None):
        """``alt_input_ids`` / ``alt_attention_mask`` (b, s'): the alternative-allele windows (siamese head only);
        ``pool_mask`` / ``alt_pool_mask``: the tokens to average for ``"centre"`` pooling; ``nucleotide_ids`` /
        ``token_spans`` (and ``alt_*``): the bases and token spans for ``nucleotide_conv_width > 0``. Attentions
        and hidden states returned are those of the reference window."""
        oa, oh, rd = self._flags(output_attentions, output_hidden_states, return_dict)
        pooled, out = self.embed(input_ids, attention_mask, token_type_ids, inputs_embeds, oa, oh, pool_mask,
                                 nucleotide_ids, token_spans)
        if self.siamese:
            if alt_input_ids is None:
                raise ValueError("a siamese classifier needs alt_input_ids (the alternative-allele windows)")
            alt, _ = self.embed(alt_input_ids, alt_attention_mask, pool_mask=alt_pool_mask,
                                nucleotide_ids=alt_nucleotide_ids, token_spans=alt_token_spans)
            pooled = torch.cat([pooled, alt, alt - pooled], dim=-1)
        elif alt_input_ids is not None:
            raise ValueError("alt_input_ids given to a reference-only classifier (classifier_head='reference')")
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            problem = self.config.problem_type
            if problem is None:
                if self.num_labels == 1:
                    problem = "regression"
                elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
                    problem = "single_label_classification"
                else:
                    problem = "multi_label_classification"
            lf = logits.float()
            if problem == "regression":
                loss = (F.mse_loss(lf.view(-1), labels.float().view(-1)) if self.num_labels == 1
                        else F.mse_loss(lf, labels.float()))
            elif problem == "single_label_classification":
                loss = F.cross_entropy(lf.view(-1, self.num_labels), labels.long().view(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(lf, labels.float())
        res = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                       attentions=out.attentions)
        return res if rd else res.to_tuple()


def is_pair_model(model) -> bool:
    """True for a classifier that reads both alleles (``classifier_head == "siamese"``)."""
    return getattr(getattr(model, "config", None), "classifier_head", "reference") == "siamese"


def _register_auto_classes() -> None:
    """Register with the Auto classes (idempotent: a second import, or a reload, does not fail)."""
    try:
        AutoConfig.register(DNABert2Config.model_type, DNABert2Config, exist_ok=True)
    except (ValueError, TypeError):
        try:
            AutoConfig.register(DNABert2Config.model_type, DNABert2Config)
        except ValueError:
            pass
    for auto_cls, model_cls in ((AutoModel, DNABert2Model), (AutoModelForMaskedLM, DNABert2ForMaskedLM),
                                (AutoModelForSequenceClassification, DNABert2ForSequenceClassification)):
        try:
            auto_cls.register(DNABert2Config, model_cls, exist_ok=True)
        except (ValueError, TypeError):
            try:
                auto_cls.register(DNABert2Config, model_cls)
            except ValueError:
                pass


_register_auto_classes()
