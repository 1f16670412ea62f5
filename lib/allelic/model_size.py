"""Size and training cost of a model: parameter counts and a summary of its shape (:func:`model_summary`, any
``transformers`` model with a BERT-like config), and training FLOPs per token (:func:`flops_per_token`, for MFU)."""
from torch import nn

from .dnabert2 import DNABert2Config

__all__ = ["model_summary", "flops_per_token"]


def _unique_params(model: nn.Module) -> int:
    seen, n = set(), 0
    for p in model.parameters():  # parameters() already skips tied duplicates; keep the check explicit
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def model_summary(model) -> dict:
    """``{n_parameters (unique, tied counted once), n_trainable, hidden, layers, heads, vocab, intermediate,
    model_type, class}`` of a model (ours or any ``transformers`` model with a BERT-like config)."""
    cfg = getattr(model, "config", None)

    def get(*names):
        for n in names:
            v = getattr(cfg, n, None)
            if v is not None:
                return int(v)
        return None

    return {
        "n_parameters": _unique_params(model),
        "n_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "hidden": get("hidden_size", "d_model", "n_embd"),
        "layers": get("num_hidden_layers", "n_layer", "num_layers"),
        "heads": get("num_attention_heads", "n_head", "num_heads"),
        "vocab": get("vocab_size"),
        "intermediate": get("intermediate_size", "ffn_dim"),
        "model_type": getattr(cfg, "model_type", None),
        "class": type(model).__name__,
    }


def _nonembedding_params(config) -> int:
    """Parameters of the transformer blocks (embeddings, pooler and heads excluded), from the config."""
    h, i, n = int(config.hidden_size), int(config.intermediate_size), int(config.num_hidden_layers)
    attn = 3 * h * h + 3 * h + h * h + h + 2 * h           # qkv (+bias), output dense (+bias), LayerNorm
    if getattr(config, "model_type", None) == DNABert2Config.model_type:
        mlp = h * 2 * i + i * h + h + 2 * h                # gated_layers (no bias), wo (+bias), LayerNorm
    else:
        mlp = h * i + i + i * h + h + 2 * h                # BERT intermediate + output (+biases), LayerNorm
    return n * (attn + mlp)


def flops_per_token(config, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token, the PaLM model-FLOPs-utilisation formula (Chowdhery et al. 2022,
    appendix B)::

        6 * N + 12 * L * H * T

    ``N``: non-embedding parameters (the transformer blocks: attention projections, MLP, LayerNorms; not the
    embeddings, pooler or heads), ``L`` layers, ``H`` hidden size, ``T = seq_len`` tokens per sequence. ``6N``: a
    multiply-add (2 FLOPs) per parameter per token forward, twice that backward; ``12 L H T``: the attention logits
    ``QK^T`` and the weighted sum ``AV`` (2 x 2 L H T forward), times 3 for forward + backward. The DNABERT-2 gated MLP
    (``model_type "dnabert2"``) has ``3 H I`` weights per layer, a standard BERT MLP ``2 H I``. Inference is a third of
    this. ``config``: a config, or a model (its ``.config`` is used).

    MFU = tokens/s x flops_per_token / peak FLOP/s of the device. DNABERT-2-117M at 128 tokens: ~6.94e8."""
    config = getattr(config, "config", config)
    L, H = int(config.num_hidden_layers), int(config.hidden_size)
    return float(6 * _nonembedding_params(config) + 12 * L * H * int(seq_len))
