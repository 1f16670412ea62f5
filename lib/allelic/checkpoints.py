"""Loading of the DNA language-model checkpoints users have: DNABERT-2 style ones into the native classes of
:mod:`allelic.dnabert2`, anything else through the ``transformers`` Auto classes.

:func:`load_model` opens any checkpoint directory: DNABERT-2 style ones (published or saved by us) with
:func:`load_dnabert2`, anything else (DNABERT v1 k-mer BERT, Nucleotide-Transformer-like models) with the
``transformers`` Auto classes (``local_files_only``, eager attention so that attentions can be returned).

.. warning::
   **Load DNABERT-2 checkpoints with** :func:`load_model`, **not** ``transformers.AutoModel.from_pretrained``. The
   published ``config.json`` says ``"model_type": "bert"``; without its remote code, the Auto classes build
   transformers' own ``BertModel``, find none of the MosaicBERT tensor names (``Wqkv``, ``gated_layers``) and
   initialise the whole encoder at random, with only a load report and no error. :func:`load_model` recognises the
   checkpoint and loads it into the native classes (:mod:`allelic.dnabert2`); for other architectures it goes
   through the Auto classes but raises when encoder weights would be left at random.
"""
import json
import logging
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, PreTrainedModel

from .dnabert2 import DNABert2Config, DNABert2ForMaskedLM, DNABert2ForSequenceClassification, DNABert2Model

logger = logging.getLogger(__name__)

__all__ = ["load_dnabert2", "load_model", "save_checkpoint", "is_dnabert2_checkpoint", "has_classifier", "TASKS"]

TASKS = ("classification", "mlm", "base")
_TASK_CLASSES = {"classification": DNABert2ForSequenceClassification, "mlm": DNABert2ForMaskedLM, "base": DNABert2Model}
_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id", "classifier_dropout",
                "alibi_starting_size", "tie_word_embeddings", "problem_type", "bos_token_id", "eos_token_id",
                "classifier_pooling", "classifier_head", "classifier_centre_flank", "nucleotide_conv_width")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _read_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    if not cfg.is_file():
        raise FileNotFoundError(f"{path} is not a model checkpoint directory: it has no config.json")
    return json.loads(cfg.read_text())


def _weight_file(path: Path) -> Path:
    for name in _WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path} has no weights ({', '.join(_WEIGHT_FILES)})")


def _load_one(f: Path) -> dict:
    if f.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(f), device="cpu")
    return torch.load(str(f), map_location="cpu", weights_only=True)


def _read_state_dict(path: Path) -> dict:
    f = _weight_file(path)
    if f.name.endswith(".index.json"):
        shards = sorted(set(json.loads(f.read_text())["weight_map"].values()))
        sd = {}
        for s in shards:
            sd.update(_load_one(path / s))
        return sd
    return _load_one(f)


def _weight_names(path: Path) -> list[str]:
    """The tensor names of a checkpoint without reading its tensors (where the format allows)."""
    try:
        f = _weight_file(path)
    except FileNotFoundError:
        return []
    if f.name.endswith(".index.json"):
        return list(json.loads(f.read_text()).get("weight_map", {}))
    if f.suffix == ".safetensors":
        from safetensors import safe_open
        with safe_open(str(f), framework="pt") as h:
            return list(h.keys())
    try:
        return list(torch.load(str(f), map_location="cpu", weights_only=True, mmap=True))
    except RuntimeError:  # legacy (non-zip) torch.save format cannot be memory-mapped
        return list(torch.load(str(f), map_location="cpu", weights_only=True))


def is_dnabert2_checkpoint(path, raw_config: dict | None = None) -> bool:
    """True for a DNABERT-2 style directory: ``model_type == "dnabert2"`` (ours), an ``auto_map`` to ``bert_layers``
    (published), or MosaicBERT ``Wqkv`` tensors in the weights."""
    path = Path(path)
    raw = raw_config if raw_config is not None else _read_config(path)
    if raw.get("model_type") == DNABert2Config.model_type:
        return True
    if any("bert_layers" in str(v) for v in (raw.get("auto_map") or {}).values()):
        return True
    return any(".Wqkv." in k for k in _weight_names(path))


def _config_from_raw(raw: dict, task: str, num_labels: int | None, overrides: dict) -> DNABert2Config:
    kw = {k: raw[k] for k in _CONFIG_KEYS if k in raw}
    if raw.get("id2label") and task == "classification":
        id2label = {int(k): v for k, v in raw["id2label"].items()}
        if num_labels is None or num_labels == len(id2label):
            kw["id2label"] = id2label
            if raw.get("label2id"):
                kw["label2id"] = raw["label2id"]
    if "id2label" not in kw:
        kw["num_labels"] = num_labels if num_labels is not None else int(raw.get("num_labels", 2) or 2)
    kw.update(overrides)
    return DNABert2Config(**kw)


def _normalise_keys(sd: dict, base: bool) -> dict:
    """Published/our names -> this module's names: strip a composer ``model.`` prefix, ``cls.predictions.bias`` ->
    ``cls.predictions.decoder.bias``, add (full models) or strip (``base``) the ``bert.`` prefix."""
    if sd and all(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items()}
    if "cls.predictions.bias" in sd and "cls.predictions.decoder.bias" not in sd:
        sd["cls.predictions.decoder.bias"] = sd.pop("cls.predictions.bias")
    roots = ("embeddings.", "encoder.", "pooler.")
    out = {}
    for k, v in sd.items():
        if base:
            k = k[len("bert."):] if k.startswith("bert.") else k
        elif k.startswith(roots):
            k = "bert." + k
        out[k] = v
    return out


def load_dnabert2(path, *, task: str = "classification", num_labels: int | None = 2, dtype: torch.dtype | None = None,
                  **config_overrides) -> PreTrainedModel:
    """Load a DNABERT-2 checkpoint directory into the native classes (no remote code).

    ``path``: a directory as published (``config.json`` with ``model_type "bert"`` and an ``auto_map`` to
    ``bert_layers``; MosaicBERT tensor names in ``pytorch_model.bin`` / ``model.safetensors``, sharded or not) or one
    saved by ``save_pretrained`` of these classes (``model_type "dnabert2"``). ``task``: ``"classification"``
    (:class:`DNABert2ForSequenceClassification`), ``"mlm"`` (:class:`DNABert2ForMaskedLM`) or ``"base"``
    (:class:`DNABert2Model`). ``num_labels``: classification outputs; None takes the checkpoint's (default 2).
    ``dtype``: cast the loaded model (e.g. ``torch.bfloat16``); default float32. ``config_overrides`` set config
    fields (e.g. ``hidden_dropout_prob=0.0``).

    Weights absent from the checkpoint: missing embedding/encoder weights raise :class:`ValueError` (naming the
    checkpoint and the first missing names); a missing pooler, classifier or MLM head is newly initialised and logged.
    Unexpected tensors are logged. The model is returned in eval mode (as ``from_pretrained`` does)."""
    _check_task(task)
    path = Path(path)
    raw = _read_config(path)
    config = _config_from_raw(raw, task, num_labels, config_overrides)
    config.name_or_path = str(path)
    model_cls = _TASK_CLASSES[task]
    model = model_cls(config)
    base = task == "base"
    sd = _normalise_keys(_read_state_dict(path), base=base)

    decoder_w, emb_w = "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"
    if task == "mlm" and getattr(config, "tie_word_embeddings", True) and decoder_w in sd and emb_w in sd:
        if not torch.equal(sd[decoder_w], sd[emb_w]):
            logger.warning("%s: decoder weight differs from the word embeddings; using the embeddings (tied)", path)
        sd.pop(decoder_w)
    # tensors that other tasks' heads carry are expected extras, not errors
    expected_extra = {"classification": ("cls.",), "mlm": ("classifier.", "bert.pooler."),
                      "base": ("cls.", "classifier.")}[task]
    dropped = [k for k in sd if k.startswith(expected_extra)]
    for k in dropped:
        sd.pop(k)
    # buffers of HF-style BERT embeddings (not used here)
    for k in [k for k in sd if k.endswith(("embeddings.position_ids", "embeddings.token_type_ids"))]:
        sd.pop(k)

    own = model.state_dict()
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items() if k in own and v.shape != own[k].shape]
    if bad:
        k, got, want = bad[0]
        raise ValueError(f"{path}: tensor {k} has shape {got} but the config gives {want}"
                         + (f" (and {len(bad) - 1} more mismatches)" if len(bad) > 1 else "")
                         + ("; pass num_labels and classifier_head matching the checkpoint's classifier"
                            if k.startswith("classifier.") else ""))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if task == "mlm" and getattr(config, "tie_word_embeddings", True):
        missing = [k for k in missing if k != decoder_w]
    enc_prefix = ("embeddings.", "encoder.") if base else ("bert.embeddings.", "bert.encoder.")
    # the nucleotide convolution is not part of a pretrained encoder: new, like a classifier
    missing_enc = [k for k in missing if k.startswith(enc_prefix) and ".nucleotide_conv." not in k]
    if missing_enc:
        raise ValueError(f"DNABERT-2 checkpoint {path} lacks {len(missing_enc)} encoder weight(s): "
                         f"{', '.join(missing_enc[:5])}{' ...' if len(missing_enc) > 5 else ''}")
    heads = [k for k in missing if k not in missing_enc]
    if heads:
        level = logging.WARNING if task == "mlm" and any(k.startswith("cls.") for k in heads) else logging.INFO
        logger.log(level, "%s: newly initialised (not in the checkpoint): %s", path, ", ".join(heads))
    if unexpected:
        logger.warning("%s: unexpected tensors ignored: %s", path, ", ".join(unexpected[:10]))
    if dropped:
        logger.info("%s: %d tensor(s) of other heads not used for task=%r", path, len(dropped), task)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


_AUTO = {"classification": AutoModelForSequenceClassification, "mlm": AutoModelForMaskedLM, "base": AutoModel}


def load_model(path, *, task: str = "classification", num_labels: int | None = 2, dtype: torch.dtype | None = None,
               **kw) -> PreTrainedModel:
    """Open any DNA language-model checkpoint directory a user has.

    DNABERT-2 style (``model_type "dnabert2"``, an ``auto_map`` to ``bert_layers``, or ``Wqkv`` tensors) ->
    :func:`load_dnabert2`; anything else (DNABERT v1 k-mer BERT, Nucleotide-Transformer-like models) ->
    ``transformers.AutoModelFor{SequenceClassification,MaskedLM}`` / ``AutoModel`` ``.from_pretrained(path,
    local_files_only=True, attn_implementation="eager", trust_remote_code=False)`` (eager so that
    ``output_attentions=True`` works). ``kw`` goes to the config (DNABERT-2) or to ``from_pretrained``.
    Raises :class:`FileNotFoundError` when ``path`` has no ``config.json``."""
    _check_task(task)
    path = Path(path)
    raw = _read_config(path)
    if is_dnabert2_checkpoint(path, raw):
        return load_dnabert2(path, task=task, num_labels=num_labels, dtype=dtype, **kw)
    kw = dict(kw)
    kw.setdefault("attn_implementation", "eager")
    kw.setdefault("local_files_only", True)
    kw["trust_remote_code"] = False
    if dtype is not None:
        kw["dtype"] = dtype
    if task == "classification" and num_labels is not None:
        kw["num_labels"] = num_labels
        if raw.get("id2label") and len(raw["id2label"]) != num_labels:
            logger.info("%s: id2label has %d labels, loading with num_labels=%d", path, len(raw["id2label"]), num_labels)
    model, info = _AUTO[task].from_pretrained(str(path), output_loading_info=True, **kw)
    heads = ("classifier.", "cls.", "pooler.", "lm_head.", "score.")
    random_body = [k for k in info.get("missing_keys", ()) if not any(h in k for h in heads)]
    if random_body:
        raise ValueError(f"{path}: {len(random_body)} encoder weight(s) of {type(model).__name__} are not in the "
                         f"checkpoint and would be random ({', '.join(sorted(random_body)[:3])} ...): the "
                         f"checkpoint's architecture does not match its config.json (model_type "
                         f"{raw.get('model_type')!r})")
    return model.eval()


def has_classifier(path) -> bool:
    """True when a checkpoint directory holds trained classifier weights (a fine-tuned model), False for a
    pretrained-only encoder, whose classification head :func:`load_model` would initialise at random."""
    return any(k.split(".")[0] in ("classifier", "score") or ".classifier." in k for k in _weight_names(Path(path)))


def save_checkpoint(model, tokenizer, out_dir, *, encoder_only: bool = False, replace: bool = False) -> Path:
    """Write ``model`` (``save_pretrained``: weights and config) and ``tokenizer`` to ``out_dir``, a checkpoint
    directory :func:`load_model` opens; returns it. ``encoder_only``: without the classifier head (``classifier.*``
    tensors), the start of a fine-tuning with another head. ``replace``: remove ``out_dir`` first."""
    import shutil

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out_dir)
    if replace:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    if encoder_only:
        model.save_pretrained(out, state_dict={k: v for k, v in model.state_dict().items()
                                               if not k.startswith("classifier.")})
    else:
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
