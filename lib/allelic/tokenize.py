"""DNA tokenizers: DNABERT-2-style byte-pair encoding (BPE) and DNABERT-style overlapping k-mers.

Both return a :class:`transformers.PreTrainedTokenizerFast` (in transformers 5 an alias of ``TokenizersBackend``)
that ``save_pretrained`` / ``AutoTokenizer.from_pretrained`` handle, with the special tokens of DNABERT-2 at ids 0..4:

=========  ===  ==============================================================
token      id   use
=========  ===  ==============================================================
``[UNK]``  0    unknown piece (never produced by the BPE tokenizer for ACGTN)
``[CLS]``  1    first token of every sequence (the classification token)
``[SEP]``  2    last token of every sequence
``[PAD]``  3    padding (``attention_mask`` 0)
``[MASK]`` 4    masked-language-model mask
=========  ===  ==============================================================

Provenance of that order: DNABERT-2's own ``tokenizer.json`` (hub model ``zhihan1996/DNABERT-2-117M``) could not be
read offline. What was found: the ``tokenizers`` recipe that DNABERT-2 follows trains ``BpeTrainer(special_tokens=
["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])`` (ids are given in list order), the post-processor template
``"[CLS] $A [SEP]"`` with ``[CLS]`` = 1 and ``[SEP]`` = 2, and public wrappers of the DNABERT-2 tokenizer that hard-code
``pad_token_id = 3``, ``mask_token_id = 4``, ``cls_token_id = 1``. DNABERT (v1, k-mers) uses another order
(``[PAD] [UNK] [CLS] [SEP] [MASK]``); :func:`kmer_tokenizer` keeps the DNABERT-2 order so both tokenizers here agree.

The BPE tokenizer works on upper-case DNA with no pre-tokenizer (a window is one "word"; DNABERT-2 style), an
upper-casing normalizer (lower-case input is accepted) and a decoder that joins pieces without spaces, so
``tokenizer.decode(ids, skip_special_tokens=True)`` gives the sequence back. The k-mer tokenizer follows DNABERT:
the model sees space-separated overlapping k-mers; :func:`encode` (and :func:`to_kmers`) do that conversion, so a raw
sequence of length L becomes L - k + 1 tokens (plus ``[CLS]`` and ``[SEP]``). K-mers containing N are ``[UNK]``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # transformers is heavy to import; functions import it when called
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
UNK, CLS, SEP, PAD, MASK = SPECIAL_TOKENS
ALPHABET = "ACGTN"
#: BPE training splits sequences at runs of N and into pieces of at most this many bases (merges never span pieces);
#: one multi-megabase "word" would make the trainer quadratic (a 300-kb word takes ~17 s, 1-kb pieces ~0.2 s).
TRAIN_PIECE = 1000

_BAD = re.compile(f"[^{ALPHABET}{ALPHABET.lower()}]")
_NRUN = re.compile("N+")


def _as_list(sequences) -> list:
    if isinstance(sequences, (str, bytes)):
        return [sequences]
    return list(sequences)


def validate_sequences(sequences) -> list[str]:
    """Upper-cased copies of ``sequences`` (a string or an iterable of strings).

    Raises ValueError naming the index and the first bad character when a sequence holds anything but A, C, G, T, N
    (any case), or is empty; TypeError naming the index when an item is not a string."""
    out = []
    for i, s in enumerate(_as_list(sequences)):
        if not isinstance(s, str):
            raise TypeError(f"sequence {i} is {type(s).__name__}, not str")
        if not s:
            raise ValueError(f"sequence {i} is empty")
        m = _BAD.search(s)
        if m:
            raise ValueError(f"sequence {i}: character {m.group()!r} at position {m.start()} is not one of "
                             f"{', '.join(ALPHABET)} (case-insensitive)")
        out.append(s.upper())
    return out


def _training_pieces(seqs: list[str], piece: int):
    for s in seqs:
        for part in _NRUN.split(s):
            for j in range(0, len(part), piece):
                if part[j:j + piece]:
                    yield part[j:j + piece]


def _wrap(backend) -> "PreTrainedTokenizerFast":
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=UNK, cls_token=CLS, sep_token=SEP,
                                   pad_token=PAD, mask_token=MASK)


def _post_processor():
    from tokenizers import processors

    return processors.TemplateProcessing(single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
                                         special_tokens=[(CLS, SPECIAL_TOKENS.index(CLS)), (SEP, SPECIAL_TOKENS.index(SEP))])


def _save(tok, out_dir) -> None:
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(out_dir))


def train_bpe_tokenizer(sequences, *, vocab_size: int = 512, min_frequency: int = 2, out_dir=None,
                        random_state=None) -> "PreTrainedTokenizerFast":
    """Train a DNABERT-2-style BPE tokenizer on DNA ``sequences`` (strings of ACGTN, any case).

    The vocabulary holds :data:`SPECIAL_TOKENS` (ids 0..4), the single bases A, C, G, N, T (ids 5..9, so every
    ACGTN sequence encodes without ``[UNK]``) and merges learned on the sequences split at runs of N and cut into
    :data:`TRAIN_PIECE`-bp pieces, up to ``vocab_size`` entries (fewer when no pair is seen ``min_frequency`` times).
    Encoding adds ``[CLS] ... [SEP]``. Saved with ``save_pretrained(out_dir)`` when ``out_dir`` is given.

    Deterministic: the same sequences give the same vocabulary and merges in any process and in any input order
    (the trainer breaks count ties by token ids), so ``random_state`` changes nothing; it is accepted so that callers
    can pass one seed to every step. Raises ValueError for bad characters (see :func:`validate_sequences`) or for a
    ``vocab_size`` too small to hold the special tokens and the alphabet."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers

    del random_state  # training is deterministic; see the docstring
    if vocab_size < len(SPECIAL_TOKENS) + len(ALPHABET):
        raise ValueError(f"vocab_size {vocab_size} is below {len(SPECIAL_TOKENS) + len(ALPHABET)} "
                         f"(special tokens + {ALPHABET})")
    seqs = validate_sequences(sequences)
    backend = Tokenizer(models.BPE(unk_token=UNK))
    backend.normalizer = normalizers.Sequence([normalizers.Replace(c.lower(), c) for c in ALPHABET])
    backend.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=list(ALPHABET), show_progress=False)
    backend.train_from_iterator(_training_pieces(seqs, TRAIN_PIECE), trainer=trainer)
    backend.post_processor = _post_processor()
    tok = _wrap(backend)
    _save(tok, out_dir)
    return tok


def kmer_tokenizer(k: int = 6, *, out_dir=None) -> "PreTrainedTokenizerFast":
    """DNABERT (v1)-style overlapping k-mer tokenizer: vocabulary = :data:`SPECIAL_TOKENS` (ids 0..4) then all 4^k
    k-mers in lexicographic order (``AAA...A`` = 5). The tokenizer itself reads space-separated k-mers (as DNABERT
    does); pass raw sequences through :func:`encode` or :func:`to_kmers`. Saved with ``save_pretrained(out_dir)``
    when given."""
    from itertools import product

    from tokenizers import Tokenizer, models, pre_tokenizers

    if not isinstance(k, int) or not 1 <= k <= 8:
        raise ValueError(f"k must be an integer from 1 to 8, got {k!r}")
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for km in product("ACGT", repeat=k):
        vocab["".join(km)] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = _post_processor()
    tok = _wrap(backend)
    _save(tok, out_dir)
    return tok


def to_kmers(sequence: str, k: int) -> str:
    """``"ACGTA", 3 -> "ACG CGT GTA"`` (overlapping k-mers, upper case). Sequences shorter than k give ``""``."""
    s = sequence.upper()
    return " ".join(s[i:i + k] for i in range(len(s) - k + 1))


def from_kmers(kmers) -> str:
    """Inverse of :func:`to_kmers`: a space-separated string (or list) of overlapping k-mers back to the sequence."""
    parts = kmers.split() if isinstance(kmers, str) else list(kmers)
    if not parts:
        return ""
    return parts[0] + "".join(p[-1] for p in parts[1:])


def kmer_size(tokenizer) -> int | None:
    """k of a tokenizer made by :func:`kmer_tokenizer` (a word-level vocabulary of equal-length ACGT words), else
    ``None`` (BPE and other subword tokenizers)."""
    cached = getattr(tokenizer, "_allelic_kmer_k", 0)
    if cached != 0:
        return cached
    k = None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and type(backend.model).__name__ == "WordLevel":
        words = [w for w in backend.get_vocab() if w not in SPECIAL_TOKENS]
        lengths = {len(w) for w in words}
        if len(lengths) == 1 and all(set(w) <= set("ACGT") for w in words):
            k = lengths.pop()
    try:
        tokenizer._allelic_kmer_k = k
    except AttributeError:
        pass
    return k


def load_tokenizer(path) -> "PreTrainedTokenizerFast":
    """A tokenizer saved by :func:`train_bpe_tokenizer` / :func:`kmer_tokenizer` (or any ``save_pretrained`` folder
    holding ``tokenizer.json``, or such a ``tokenizer.json`` file itself). FileNotFoundError names the path."""
    from transformers import PreTrainedTokenizerFast

    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".json":
        return PreTrainedTokenizerFast(tokenizer_file=str(p), unk_token=UNK, cls_token=CLS, sep_token=SEP,
                                       pad_token=PAD, mask_token=MASK)
    if not p.is_dir():
        raise FileNotFoundError(f"tokenizer {p}: no such folder (expected a save_pretrained folder with tokenizer.json)")
    if not (p / "tokenizer.json").is_file():
        raise FileNotFoundError(f"tokenizer {p}: folder lacks tokenizer.json (expected a save_pretrained folder)")
    return PreTrainedTokenizerFast.from_pretrained(str(p))


def encode(tokenizer, sequences, *, max_length: int | None = None, truncation: bool = False) -> dict:
    """Batch-encode DNA ``sequences`` (a string or a list of strings of ACGTN, any case) for a model.

    Returns ``{"input_ids": LongTensor (n, L), "attention_mask": LongTensor (n, L)}`` with ``[CLS] ... [SEP]`` around
    each sequence and ``[PAD]`` (mask 0) on the right, L = the longest encoding or ``max_length``. A k-mer tokenizer
    (:func:`kmer_tokenizer`) gets overlapping k-mers. Raises ValueError naming the index and the bad character for
    anything but ACGTN, and, unless ``truncation`` (cut at ``max_length``, losing the ends of the window), naming the
    first sequence whose encoding is longer than ``max_length``."""
    import numpy as np
    import torch

    seqs = validate_sequences(sequences)
    if not seqs:
        raise ValueError("no sequences to encode")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length {max_length} leaves no room for [CLS] and [SEP]")
    k = kmer_size(tokenizer)
    if k is not None:
        short = [i for i, s in enumerate(seqs) if len(s) < k]
        if short:
            raise ValueError(f"sequence {short[0]} is shorter than k = {k}")
        seqs = [to_kmers(s, k) for s in seqs]
    cut = {"truncation": True, "max_length": max_length} if truncation and max_length else {}
    enc = tokenizer(seqs, padding=False, return_token_type_ids=False, return_attention_mask=False, **cut)["input_ids"]
    lengths = [len(e) for e in enc]
    if max_length is not None:
        over = [i for i, n in enumerate(lengths) if n > max_length]
        if over:
            raise ValueError(f"sequence {over[0]} encodes to {lengths[over[0]]} tokens, above max_length {max_length} "
                             f"(pass truncation=True to cut, or a larger max_length)")
    width = max_length if max_length is not None else max(lengths)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else SPECIAL_TOKENS.index(PAD)
    ids = np.full((len(enc), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(enc), width), dtype=np.int64)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for i, e in enumerate(enc):
        sl = slice(width - len(e), width) if left else slice(0, len(e))
        ids[i, sl] = e
        mask[i, sl] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


def token_spans(tokenizer, input_ids):
    """Base offsets of each token in its sequence: ``(start, end)`` int64 tensors shaped like ``input_ids``
    (n, L). Special and padding tokens get empty spans (``start == end``). BPE pieces cover as many bases as they
    have letters (``[UNK]``: one), laid end to end after ``[CLS]``; a k-mer tokenizer's token *j* covers bases
    *j* .. *j* + k (overlapping). Left padding is not supported (the book pads on the right)."""
    import torch

    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    k = kmer_size(tokenizer)
    length = torch.zeros(max(vocab.values()) + 1, dtype=torch.long)
    for piece, i in vocab.items():
        if i not in special:
            length[i] = 1 if k is not None else len(piece)
    if tokenizer.unk_token_id is not None:
        length[tokenizer.unk_token_id] = 1
    step = length[input_ids]
    start = torch.cumsum(step, dim=1) - step
    end = start + step if k is None else torch.where(step > 0, start + k, start)
    return start, end


def nucleotide_ids(sequences, width: int | None = None):
    """(n, width) int64 base codes A, C, G, T, N = 0..4 of the windows (past a window's end: 4), the
    ``nucleotide_ids`` input of a model with a nucleotide convolution (:class:`allelic.models.DNABert2Config`
    ``nucleotide_conv_width``). Sequences are checked by :func:`validate_sequences`."""
    import numpy as np
    import torch

    seqs = validate_sequences(sequences)
    width = max(map(len, seqs), default=0) if width is None else int(width)
    lut = np.zeros(256, dtype=np.int64)
    for i, c in enumerate(ALPHABET):
        lut[ord(c)] = i
    out = np.full((len(seqs), width), 4, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, :min(len(s), width)] = lut[np.frombuffer(s[:width].encode("ascii"), dtype=np.uint8)]
    return torch.from_numpy(out)


def centre_mask(tokenizer, input_ids, *, centre: int, flank: int):
    """Boolean (n, L): the tokens whose bases overlap ``[centre - flank, centre + flank]`` (the variant and its
    neighbourhood, for :class:`allelic.models.DNABert2ForSequenceClassification` with ``classifier_pooling
    "centre"``). Every row holds at least one True when the sequence reaches ``centre``."""
    start, end = token_spans(tokenizer, input_ids)
    return (end > start) & (start <= centre + flank) & (end > centre - flank)
