"""Where a sequence classifier looks: attention maps mapped to nucleotides, and in-silico mutagenesis to cross-check.

Paper figure 9C plots, along the window, the attention that a fine-tuned model pays to each base, for windows of
allele-specific SNVs (label 1) and of the others (label 0). Three steps, each a function here:

* :func:`attention_profiles` runs the model with ``output_attentions=True`` in batches and reduces each batch's maps
  (layers x heads x tokens x tokens) at once to one score per token (the ``[CLS]`` row, or the mean over the real
  query tokens), averaged over the chosen layers and heads, then to one score per base
  (:func:`token_to_nucleotide`). Only one batch of attention maps exists at a time, so memory does not grow with the
  number of windows; the result is a (sequences x bases) matrix (:class:`AttentionProfiles`).
* :func:`ism_scores`: in-silico mutagenesis, an attribution that does not use attention: for each base, the largest
  absolute change of the positive-class probability over its substitutions. Attention says where the model routes
  information, not what changes its answer; the two should agree where a motif matters.
* :func:`profile_by_label`: the mean profile of label-1 and label-0 windows and their difference (what figure 9C
  draws; the plot itself belongs to :mod:`allelic.pl`).

Any classifier that :func:`allelic.models.load_model` opens works: the native DNABERT-2 classes (every pooling,
the siamese head, the nucleotide convolution; inputs come from :func:`allelic.train.model_inputs`) and
``transformers`` models loaded with eager attention (BPE or k-mer tokenizers; :func:`allelic.tokenize.token_spans`
gives each token's bases).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .distributed import resolve_device
from .profiles import check_binary_labels
from .progress import bar as progress_bar
from .tokenize import token_spans, validate_sequences
from .train import _batch, model_inputs, score_inputs

__all__ = ["AttentionProfiles", "REDUCTIONS", "ScoreAtMask", "attention_profiles", "ism_scores", "profile_by_label",
           "score_at_mask", "token_to_nucleotide"]

#: How a batch's (heads x queries x keys) maps become one score per key token.
REDUCTIONS = ("cls", "mean", "pooled")
_BASES = "ACGT"


@dataclass
class AttentionProfiles:
    """Nucleotide-level attention of ``n`` windows.

    ``values``: float32 array (n, length), **sequences x bases**: row *i* is window *i*'s attention per base (base
    0 first). Bases past the end of a window shorter than ``length`` are 0. With ``normalised`` each row sums to 1
    over the window's bases (a row of zeros stays zero). ``layers`` / ``heads``: the (non-negative) indices averaged;
    ``reduction``: ``"cls"`` or ``"mean"`` (see :func:`attention_profiles`); ``length``: the longest window, in
    bases; ``model_name``: the model's ``name_or_path`` (else its class name)."""

    values: np.ndarray
    layers: tuple
    heads: tuple
    reduction: str
    normalised: bool
    length: int
    model_name: str

    @property
    def n_sequences(self) -> int:
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n_sequences


# ---------------------------------------------------------------------------------------------------------------------
# tokens -> bases
# ---------------------------------------------------------------------------------------------------------------------
def token_to_nucleotide(scores, spans_start, spans_end, length: int):
    """Per-token scores to per-base scores.

    ``scores`` (n, s): one score per token; ``spans_start`` / ``spans_end`` (n, s): each token's bases
    ``start <= base < end`` (:func:`allelic.tokenize.token_spans`); ``length``: bases per row of the result.

    Every base of a token gets the token's score; where tokens overlap (k-mers) a base gets the mean of the scores of
    the tokens that cover it; bases no token covers get 0. Tokens with an empty span (``[CLS]``, ``[SEP]``,
    padding) contribute nothing, whatever their score. Spans are clipped to ``[0, length]``.

    Returns (n, length): a tensor on ``scores``' device when ``scores`` is a torch tensor, else a numpy array; float
    dtype of ``scores`` (float64 for integer input). Vectorised (difference arrays and a cumulative sum: O(n (s +
    length)) memory, not n x s x length)."""
    import torch

    as_numpy = not torch.is_tensor(scores)
    s = torch.as_tensor(np.asarray(scores) if as_numpy else scores)
    out_dtype = s.dtype if s.is_floating_point() else torch.float64
    device = s.device
    start = torch.as_tensor(spans_start, device=device).long()
    end = torch.as_tensor(spans_end, device=device).long()
    if s.ndim != 2 or start.shape != s.shape or end.shape != s.shape:
        raise ValueError(f"scores, spans_start and spans_end must be (n, tokens) arrays of one shape, got "
                         f"{tuple(s.shape)}, {tuple(start.shape)}, {tuple(end.shape)}")
    length = int(length)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    start = start.clamp(0, length)
    end = torch.maximum(end.clamp(0, length), start)
    real = end > start
    s = torch.where(real, s.to(torch.float64), torch.zeros((), dtype=torch.float64, device=device))
    n = s.shape[0]
    total = torch.zeros(n, length + 1, dtype=torch.float64, device=device)
    total.scatter_add_(1, start, s).scatter_add_(1, end, -s)
    ones = real.long()
    count = torch.zeros(n, length + 1, dtype=torch.long, device=device)
    count.scatter_add_(1, start, ones).scatter_add_(1, end, -ones)
    total, count = total.cumsum(1)[:, :length], count.cumsum(1)[:, :length]
    out = torch.where(count > 0, total / count.clamp(min=1), torch.zeros((), dtype=torch.float64, device=device))
    out = out.to(out_dtype)
    return out.cpu().numpy() if as_numpy else out


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------
def _check_sequences(sequences, alt_sequences):
    """Upper-cased windows (ValueError naming the index of a bad one; for ``alt_sequences`` it says so)."""
    seqs = validate_sequences(sequences)
    alt = None
    if alt_sequences is not None:
        try:
            alt = validate_sequences(alt_sequences)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"alt_sequences: {exc}") from None
        if len(alt) != len(seqs):
            raise ValueError(f"{len(seqs)} reference but {len(alt)} alternative windows")
    return seqs, alt


def _indices(chosen, n: int | None, what: str) -> tuple:
    """``chosen`` (None: all ``n``) as non-negative indices, in the order given; ValueError for out-of-range or
    repeated ones. ``n`` None (not known before the model runs): the indices are kept as given, checked later."""
    if chosen is None:
        return tuple(range(n)) if n is not None else None
    idx = [int(i) for i in ([chosen] if np.isscalar(chosen) else chosen)]
    if not idx:
        raise ValueError(f"{what}: an empty selection (None means all)")
    if n is not None:
        bad = [i for i in idx if not -n <= i < n]
        if bad:
            raise ValueError(f"{what} {bad[0]} is out of range: the model has {n} {what}")
        idx = [i % n for i in idx]
    if len(set(idx)) != len(idx):
        raise ValueError(f"{what}: an index is repeated in {idx}")
    return tuple(idx)


def _config_int(model, *names) -> int | None:
    cfg = getattr(model, "config", None)
    for name in names:
        v = getattr(cfg, name, None)
        if isinstance(v, int):
            return v
    return None


def _model_name(model) -> str:
    cfg = getattr(model, "config", None)
    return str(getattr(cfg, "name_or_path", "") or getattr(cfg, "_name_or_path", "") or type(model).__name__)


_NO_ATTENTIONS = ("{name} returned no attention maps with output_attentions=True: its attention implementation "
                  "({impl}) does not compute them (SDPA / flash attention). Load it with eager attention: "
                  "allelic.models.load_model does, or transformers' from_pretrained(..., "
                  "attn_implementation=\"eager\"), or model.set_attn_implementation(\"eager\").")


def _query_weights(model, xb: dict, mask, reduction: str):
    """(b, s) weights over the query tokens whose attention rows are averaged: [CLS] (``"cls"``), every real token
    (``"mean"``) or the tokens the classifier pools (``"pooled"``: the centre tokens of ``pool_mask``, [CLS] for CLS
    pooling, every real token for mean pooling)."""
    import torch

    if reduction == "pooled":
        if "pool_mask" in xb:
            q = xb["pool_mask"].to(mask.dtype) * mask
            return q / q.sum(1, keepdim=True).clamp(min=1)
        reduction = "mean" if getattr(getattr(model, "config", None), "classifier_pooling", "cls") == "mean" else "cls"
    if reduction == "cls":
        q = torch.zeros_like(mask)
        q[:, 0] = 1.0
        return q
    return mask / mask.sum(1, keepdim=True).clamp(min=1)


def _token_attention(model, xb: dict, layers, heads, reduction: str):
    """One batch: the model's attention reduced to (b, tokens) on the model's device, padding 0; the maps
    themselves are freed when this returns. Returns ``(scores, layers, heads)``, the selections resolved against the
    maps (non-negative indices)."""
    import torch

    out = model(**xb, output_attentions=True, return_dict=True)
    att = getattr(out, "attentions", None)
    if not att or any(a is None for a in att):
        impl = getattr(getattr(model, "config", None), "_attn_implementation", None) or "not eager"
        raise RuntimeError(_NO_ATTENTIONS.format(name=type(model).__name__, impl=impl))
    n_layers, n_heads = len(att), int(att[0].shape[1])
    layers = _indices(layers, n_layers, "layers")
    heads = _indices(heads, n_heads, "heads")
    mask = xb["attention_mask"].to(torch.float32)  # (b, s): real tokens
    queries = _query_weights(model, xb, mask, reduction)  # (b, s): which query rows are averaged, summing to 1
    h_idx = torch.tensor(heads, device=mask.device)
    acc = torch.zeros_like(mask)
    for layer in layers:
        a = att[layer] if heads == tuple(range(n_heads)) else att[layer].index_select(1, h_idx)
        acc += torch.einsum("bhqk,bq->bk", a.float(), queries) / len(heads)
    return acc / len(layers) * mask, layers, heads


# ---------------------------------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------------------------------
def attention_profiles(model, tokenizer, sequences, *, layers=None, heads=None, reduction: str = "cls",
                       batch_size: int = 64, device: str = "auto", normalise: bool = True, progress=None,
                       alt_sequences=None) -> AttentionProfiles:
    """Nucleotide-level attention of a sequence classifier over ``sequences`` (windows of A, C, G, T, N).

    ``layers`` / ``heads``: indices (negative ones count from the end) of the layers and heads to average; None:
    all. ``reduction``:

    * ``"cls"``: the attention that ``[CLS]`` (query token 0) pays to each token;
    * ``"mean"``: the attention each token receives, averaged over the real (non-padding) query tokens, ``[CLS]``
      and ``[SEP]`` included;
    * ``"pooled"``: averaged over the query tokens the classifier reads, i.e. the tokens within its centre flank for
      centre pooling (whose [CLS] row the classifier never uses), [CLS] for CLS pooling, all for mean pooling.

    Each is averaged over the chosen layers and heads, then spread over the bases (:func:`token_to_nucleotide`:
    each base gets its token's score, the mean where k-mers overlap; attention to ``[CLS]``, ``[SEP]`` and padding
    is left out). ``normalise``: each window's profile then sums to 1 over its bases.

    Windows are read ``batch_size`` at a time, with ``torch.no_grad()``, on ``device`` (``"auto"``: CUDA when
    available; the model is moved there and put in eval mode), in float32 attention; each batch's maps are reduced
    to (batch, bases) before the next batch is read, so memory is one batch of maps plus the (n, length) result.
    Padding does not change a window's profile (padded keys get no attention; padded queries are not averaged).

    A siamese model (``classifier_head "siamese"``) needs ``alt_sequences`` (:func:`allelic.train.model_inputs`);
    the profile is that of the reference window (the attentions the model returns).

    Returns :class:`AttentionProfiles` (``values``: sequences x bases). No sequences: an empty result (``values``
    of shape (0, 0)); the model is not run. Raises ValueError naming the index of a window with a character other
    than A, C, G, T, N (``alt_sequences: ...`` for the alternative windows), for an unknown ``reduction`` or for
    out-of-range ``layers`` / ``heads``; RuntimeError when the model returns no attention maps (SDPA-only
    ``transformers`` models: load them with ``attn_implementation="eager"``)."""
    import torch

    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    seqs, alt = _check_sequences(sequences, alt_sequences)
    # validate the selections against the config now (again against the maps themselves at the first batch)
    layer_idx = _indices(layers, _config_int(model, "num_hidden_layers", "n_layer", "num_layers"), "layers")
    head_idx = _indices(heads, _config_int(model, "num_attention_heads", "n_head", "num_heads"), "heads")
    n = len(seqs)
    length = max(map(len, seqs), default=0)
    values = np.zeros((n, length), dtype=np.float32)
    if n:
        dev = resolve_device(device)
        model.to(dev).eval()
        starts = range(0, n, batch_size)
        with torch.no_grad():
            for s0 in progress_bar(starts, total=len(starts), desc="attention", progress=progress, leave=False):
                sl = slice(s0, s0 + batch_size)
                # inputs built per batch (every tensor the model reads: pool_mask, nucleotide inputs, alt_*)
                x = model_inputs(model, tokenizer, seqs[sl], None if alt is None else alt[sl])
                scores, layer_idx, head_idx = _token_attention(model, _batch(x, slice(None), dev), layer_idx,
                                                               head_idx, reduction)
                start, end = token_spans(tokenizer, x["input_ids"])
                values[sl] = token_to_nucleotide(scores.cpu(), start, end, length).numpy()
        if normalise:
            total = values.sum(1, dtype=np.float64, keepdims=True)
            np.divide(values, total, out=values, where=total > 0)
    return AttentionProfiles(values=values, layers=tuple(layer_idx or ()), heads=tuple(head_idx or ()),
                             reduction=reduction, normalised=bool(normalise), length=int(length),
                             model_name=_model_name(model))


# ---------------------------------------------------------------------------------------------------------------------
# in-silico mutagenesis
# ---------------------------------------------------------------------------------------------------------------------
def ism_scores(model, tokenizer, sequences, *, positions=None, batch_size: int = 256, device: str = "auto",
               alt_sequences=None, progress=None) -> np.ndarray:
    """In-silico mutagenesis: how much each base matters to the model's answer, without attention.

    For each window and each base position *p* (every base, or only ``positions``: base indices from 0, the same
    for every window), the model's positive-class probability is computed for every single-base substitution at *p*
    (the three other bases of A, C, G, T; all four for an N) and compared with the window's own probability. The
    score is the largest absolute change, ``max_b |P(mutant_b) - P(window)|``, in [0, 1].

    Probabilities come from the same scoring as :func:`allelic.train.predict` (float32, no autocast, batches of
    ``batch_size`` on ``device``); mutants are built and scored a group of windows at a time (about
    ``4 * batch_size`` mutants per group), so memory stays bounded. A siamese model needs ``alt_sequences``: the
    **reference** window is mutated, the alternative window is kept as given (so the score is what each reference
    base contributes to the pair's prediction).

    Returns a float64 array (n, length), sequences x bases, ``length`` the longest window: NaN at bases not scored
    (outside ``positions``, or past the end of a shorter window). No sequences: an empty (0, 0) array. Raises
    ValueError naming the index of a window with a character other than A, C, G, T, N, or for a position outside
    ``[0, length)``."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    seqs, alt = _check_sequences(sequences, alt_sequences)
    n = len(seqs)
    length = max(map(len, seqs), default=0)
    if positions is None:
        pos = np.arange(length)
    else:
        pos = np.unique(np.asarray(positions, dtype=np.int64).ravel())
        bad = pos[(pos < 0) | (pos >= length)]
        if len(bad):
            raise ValueError(f"position {int(bad[0])} is outside the windows (0 .. {length - 1})")
    out = np.full((n, length), np.nan)
    if not n or not len(pos):
        return out
    dev = resolve_device(device)
    per_window = 3 * len(pos) + 1
    group = max(1, (4 * batch_size) // per_window)
    starts = range(0, n, group)
    for g0 in progress_bar(starts, total=len(starts), desc="in-silico mutagenesis", progress=progress, leave=False):
        batch, alt_batch, win, at = [], [], [], []  # mutants; the window and base each one belongs to (-1: none)
        for i in range(g0, min(g0 + group, n)):
            s = seqs[i]
            batch.append(s)
            win.append(i)
            at.append(-1)
            for p in pos[pos < len(s)]:
                for b in _BASES:
                    if b != s[p]:
                        batch.append(s[:p] + b + s[p + 1:])
                        win.append(i)
                        at.append(p)
        if alt is not None:
            alt_batch = [alt[i] for i in win]
        prob = score_inputs(model, model_inputs(model, tokenizer, batch, alt_batch if alt is not None else None),
                       batch_size=batch_size, device=dev, bf16=False).astype(np.float64)
        win, at = np.asarray(win), np.asarray(at)
        own = np.full(n, np.nan)
        own[win[at < 0]] = prob[at < 0]
        m = at >= 0
        np.fmax.at(out, (win[m], at[m]), np.abs(prob[m] - own[win[m]]))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------------------
def profile_by_label(profiles, labels) -> pd.DataFrame:
    """Mean profile of label-1 and label-0 windows and their difference (paper figure 9C).

    ``profiles``: :class:`AttentionProfiles` or any (n, length) array of per-base scores (e.g. :func:`ism_scores`;
    NaN entries are left out of the means); ``labels``: n values, 0/1 or booleans.

    Returns one row per base: ``position`` (0-based), ``label_1`` and ``label_0`` (mean over the windows of that
    label), ``difference`` (``label_1 - label_0``); ``.attrs["n_1"]`` / ``["n_0"]`` hold the window counts. Raises
    ValueError when the lengths differ, a label is not 0/1, or a label has no window."""
    values = profiles.values if isinstance(profiles, AttentionProfiles) else np.asarray(profiles, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"profiles must be (windows, bases), got shape {values.shape}")
    y = check_binary_labels(labels, values.shape[0], require_both=True)
    n1, n0 = int(y.sum()), int((~y).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-NaN column: NaN, as it should be
        m1 = np.nanmean(values[y].astype(np.float64), axis=0)
        m0 = np.nanmean(values[~y].astype(np.float64), axis=0)
    df = pd.DataFrame({"position": np.arange(values.shape[1]), "label_1": m1, "label_0": m0, "difference": m1 - m0})
    df.attrs.update(n_1=n1, n_0=n0)
    return df


@dataclass(frozen=True)
class ScoreAtMask:
    """How much more score the masked bases get than the same positions in other windows (:func:`score_at_mask`).

    ``ratio``: observed over expected score summed over the masked bases; ``pvalue``: one-sided permutation p-value,
    ``(1 + #{ratio_perm >= ratio}) / (1 + n_permutations)``; ``n_windows``: windows with at least one masked base;
    ``n_bases``: masked bases."""

    ratio: float
    pvalue: float
    n_windows: int
    n_bases: int
    n_permutations: int


def score_at_mask(scores, mask, *, n_permutations: int = 999, random_state: int = 0) -> ScoreAtMask:
    """Do the masked bases (e.g. motif hits, :func:`allelic.profiles.occurrence`) get more attention than their
    position alone explains?

    A model's attention depends strongly on position (centre pooling looks near the SNV, where motifs in AS windows
    also sit), so a base is compared with the **same position** in the windows where it is not masked:
    ``expected[p]`` is the mean score at position *p* over unmasked windows, and ``ratio = sum(scores[mask]) /
    sum(expected[p] over masked (i, p))`` (positions masked in every window have no reference and are left out).
    Under the null the mask carries no information beyond position: the
    permutation test shuffles the mask's rows (whole windows, so a hit keeps its width and position) and recomputes
    the ratio. ``scores``: (windows, bases), NaN bases ignored; ``mask``: bool, same shape. Deterministic for
    ``random_state``. Raises ValueError for mismatched shapes or an empty mask."""
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if s.shape != m.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and mask {m.shape} must be the same (windows, bases) shape")
    finite = np.isfinite(s)
    m = m & finite
    if not m.any():
        raise ValueError("the mask covers no scored base")
    s0 = np.where(finite, s, 0.0)

    def ratio(mm):
        un = finite & ~mm
        n_un = un.sum(0)
        mm = mm & (n_un > 0)                                             # a position masked everywhere: no reference
        expected = (s0 * un).sum(0) / np.maximum(n_un, 1)                # per position, over unmasked windows
        return (s0 * mm).sum() / max((expected * mm.sum(0)).sum(), 1e-300)

    obs = float(ratio(m))
    rng = np.random.default_rng(random_state)
    null = np.array([ratio(m[rng.permutation(len(m))] & finite) for _ in range(int(n_permutations))])
    p = (1 + int(np.sum(null >= obs - 1e-12))) / (1 + int(n_permutations))
    return ScoreAtMask(ratio=obs, pvalue=p, n_windows=int(m.any(1).sum()), n_bases=int(m.sum()),
                       n_permutations=int(n_permutations))
