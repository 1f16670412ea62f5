"""The book's DNA language model per assay: leak-free pretraining, model selection, fine-tuned checkpoints.

No model hub is reachable from the book's machines, so the pretrained model is built here by
:func:`allelic.pretrain.pretrain` and saved as a normal checkpoint directory, then loaded back through the same code
path as a published DNABERT-2 checkpoint (:func:`allelic.models.load_model`). A user with a real DNABERT-2
checkpoint passes its directory instead.

* :func:`pretrained_checkpoint`: the checkpoint to fine-tune on a set of examples, pretrained so that it never saw
  their held-out windows; :func:`fold_checkpoints` does the same per chromosome fold.
* :func:`fit_assays`: one classifier per assay (reference-window or siamese head, CLS or mean pooling), early
  stopping on the validation split, scored on the test split; :func:`select_and_fit` chooses head, pooling and
  learning rate on the validation split only.
* :func:`save_finetuned`: a fine-tuned model as a checkpoint directory with a model card, which ``allelic predict``
  loads.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .evaluate import binary_metrics
from .pretrain import MODEL_CARD, PretrainSpec, pretrain
from .tokenize import centre_mask, encode, load_tokenizer, token_spans
from .train import finetune, predict, seed_everything, TrainConfig


def training_windows(examples: pd.DataFrame, *, seq_col: str = "seq_ref") -> list[str]:
    """The windows of the ``split == "train"`` examples: what a model may be pretrained on (tokenizer included)
    without ever seeing held-out sequence."""
    if "split" not in examples.columns:
        raise ValueError("examples are not split: pretraining on them would leak held-out windows")
    return examples.loc[examples["split"] == "train", seq_col].tolist()


def describe_checkpoint(path) -> dict:
    """What a checkpoint directory is: its model card when present (offline models), else its config's essentials."""
    p = Path(path)
    if (p / MODEL_CARD).is_file():
        return json.loads((p / MODEL_CARD).read_text())
    cfgf = p / "config.json"
    if not cfgf.is_file():
        raise FileNotFoundError(f"{p}: no config.json — not a model checkpoint directory")
    c = json.loads(cfgf.read_text())
    return {"model": f"checkpoint {p.name} ({c.get('model_type', '?')}, {c.get('num_hidden_layers', '?')} layers)",
            "pretraining": "as published (loaded from disk)", "source": str(p)}


@dataclass
class AssayFit:
    """Fine-tuning of one assay: held-out ``scores`` (example_id, assay, label, score), ``metrics`` (one row:
    assay, head, pooling, learning_rate, val_auroc, val_auprc, auroc, auprc, n_train, n_val, n_test, best_step,
    seconds), the training ``history``, the model (``keep_models``) and the saved checkpoint directory
    (set by :func:`select_and_fit` with ``save_dir``)."""

    assay: str
    scores: pd.DataFrame
    metrics: dict
    history: pd.DataFrame
    model: object = field(repr=False, default=None)
    model_dir: Path | None = None


def _parts(examples: pd.DataFrame, assay: str) -> dict:
    ex = examples[examples["assay"] == assay]
    parts = {s: ex[ex["split"] == s] for s in ("train", "val", "test")}
    if parts["train"]["label"].nunique() < 2 or parts["test"]["label"].nunique() < 2:
        raise ValueError(f"assay {assay}: train and test splits need both classes "
                         f"(train {parts['train']['label'].value_counts().to_dict()}, test {parts['test']['label'].value_counts().to_dict()})")
    return parts


def fit_assays(examples: pd.DataFrame, checkpoint, *, train_config=None, assays=None, head: str = "reference",
               pooling: str = "cls", centre_flank: int = 4, nucleotide_conv: int = 0, seq_col: str = "seq_ref",
               alt_col: str = "seq_alt", out_dir=None, resume: bool = False, keep_models: bool = False) -> list[AssayFit]:
    """Fine-tune ``checkpoint`` once per assay on ``split == "train"`` (early stopping on ``"val"``), score ``"test"``.

    ``examples`` has the columns of :mod:`allelic.datasets` (``example_id, assay, label, seq_ref, seq_alt, split``).
    ``head`` (``"reference"`` or ``"siamese"``: both alleles) and ``pooling`` (``"cls"``, ``"mean"`` or ``"centre"``:
    the tokens within ``centre_flank`` bp of the SNV) choose the classifier
    (:class:`allelic.models.DNABert2ForSequenceClassification`); ``nucleotide_conv`` > 0 adds a convolution of that
    width over the bases to the token embeddings (:class:`allelic.models.DNABert2Config` ``nucleotide_conv_width``). Each assay's training run writes its
    ``checkpoint.pt`` and ``metrics.json`` under ``out_dir/<assay>/``. :func:`select_and_fit` keeps the chosen models
    as checkpoint directories (:func:`save_finetuned`)."""
    from .models import load_model

    cfg = train_config or TrainConfig()
    tok = load_tokenizer(checkpoint)
    fits = []
    for assay in assays or sorted(examples["assay"].unique()):
        parts = _parts(examples, assay)
        seed_everything(cfg.random_state)  # the new head's initial weights: the same whatever ran before
        model = load_model(checkpoint, task="classification", num_labels=2, classifier_head=head,
                           classifier_pooling=pooling, classifier_centre_flank=centre_flank,
                           nucleotide_conv_width=nucleotide_conv)
        res = finetune(model, tok, parts["train"], parts["val"], config=cfg, seq_col=seq_col, alt_col=alt_col,
                       resume=resume, out_dir=Path(out_dir) / assay if out_dir else None)
        test = parts["test"]
        score = predict(res.model, tok, test[seq_col], test[alt_col] if head == "siamese" else None, device=cfg.device)
        m = binary_metrics(test["label"], score)
        metrics = {"assay": assay, "head": head, "pooling": pooling,
                   "centre_flank": centre_flank if pooling == "centre" else np.nan,
                   "nucleotide_conv": int(nucleotide_conv), "learning_rate": cfg.learning_rate,
                   "val_auroc": res.best.get("val_auroc", np.nan), "val_auprc": res.best.get("val_auprc", np.nan),
                   "auroc": m["auroc"], "auprc": m["auprc"], "n_train": len(parts["train"]),
                   "n_val": len(parts["val"]), "n_test": len(test), "test_pos_frac": m["n_pos"] / max(m["n"], 1),
                   "best_step": res.best_step, "best_epoch": int(res.best.get("epoch", -1)) + 1, "seconds": res.seconds}
        scores = test[["example_id", "assay", "label"]].assign(score=score)
        fits.append(AssayFit(assay, scores, metrics, res.history, res.model if keep_models else None))
    return fits


def save_finetuned(model, tokenizer, out_dir, *, checkpoint, metrics: dict, train_config, window: int,
                   data_name: str) -> Path:
    """Save a fine-tuned classifier as a checkpoint directory (``save_pretrained`` weights and config, tokenizer,
    ``model_card.json`` naming the pretrained checkpoint, the data, the head, the fine-tuning settings and the
    held-out metrics). Returns the directory."""
    from .checkpoints import save_checkpoint

    out = save_checkpoint(model, tokenizer, out_dir, replace=True)
    base = describe_checkpoint(checkpoint)
    card = {"model": f"fine-tuned AS classifier ({describe_candidate(metrics)}) on "
                     f"{base.get('model', checkpoint)}",
            "task": f"is the SNV at the window centre allele-specific in {metrics['assay']} ({data_name})?",
            "pretrained_from": {k: base.get(k) for k in ("model", "pretraining", "source", "key") if k in base},
            "spec": {"window": int(window), "snv_offset": int(window) // 2},
            "head": metrics["head"], "pooling": metrics["pooling"], "data": data_name,
            "fine_tuning": dataclasses.asdict(train_config), "metrics": metrics,
            "inputs": "reference window (sequence)" + (" and alternative window (alt_sequence)"
                                                        if metrics["head"] == "siamese" else "")}
    (out / MODEL_CARD).write_text(json.dumps(card, indent=1, default=float))
    return out


@dataclass
class Selection:
    """Model selection on validation chromosomes. ``search``: one row per assay x candidate (the metrics of
    :func:`fit_assays`; ``selected`` marks the choice, made on ``metric`` of the validation split only, test columns
    reported for the record); ``fits``: the selected fit of each assay."""

    search: pd.DataFrame
    fits: list


def candidate_grid(heads=("reference",), poolings=("cls",), learning_rates=(5e-4,), centre_flanks=(4,),
                   nucleotide_convs=(0,)) -> list[dict]:
    """Every combination of head, pooling, nucleotide convolution width (0: none) and learning rate (and, for centre
    pooling, flank in bp), as keyword dicts for :func:`select_and_fit`."""
    return [{"head": h, "pooling": p, "nucleotide_conv": w, "learning_rate": lr,
             **({"centre_flank": f} if p == "centre" else {})}
            for h in heads for p in poolings for f in (centre_flanks if p == "centre" else (None,))
            for w in nucleotide_convs for lr in learning_rates]


def select_and_fit(examples: pd.DataFrame, checkpoint, candidates: list[dict], *, train_config=None, assays=None,
                   select_on=None, metric: str = "val_auroc", seq_col: str = "seq_ref", save_dir=None,
                   data_name: str = "data", out_dir=None, **fit_kw) -> Selection:
    """Fine-tune candidates (``{"head", "pooling", "learning_rate"[, "centre_flank", "nucleotide_conv"]}``, e.g.
    :func:`candidate_grid`) and keep the one with the best ``metric`` on
    the validation split (ties: the earlier candidate). The number of epochs is chosen on the validation split too
    (early stopping keeps the best step). Test metrics are recorded, never used to choose.

    ``select_on=None``: every assay gets its own search. ``select_on=["CTCF"]``: the search runs on those assays only
    (the candidate with the best mean ``metric`` over them wins) and the other assays are fitted once with the
    winner, which saves the grid's cost where CPU time is short. Only the kept model of each assay is saved
    (``save_dir/<data_name>_<assay>/``)."""
    cfg = train_config or TrainConfig()
    assays = list(assays or sorted(examples["assay"].unique()))
    searched = [a for a in assays if select_on is None or a in select_on]
    if not searched:
        raise ValueError(f"select_on {select_on} names none of the assays {assays}")
    tok = load_tokenizer(checkpoint)

    def fit(assay, i):
        cand = candidates[i]
        c = dataclasses.replace(cfg, learning_rate=cand.get("learning_rate", cfg.learning_rate))
        f = fit_assays(examples, checkpoint, train_config=c, assays=[assay], head=cand.get("head", "reference"),
                       pooling=cand.get("pooling", "cls"), centre_flank=cand.get("centre_flank", 4),
                       nucleotide_conv=cand.get("nucleotide_conv", 0), seq_col=seq_col, keep_models=True,
                       out_dir=Path(out_dir) / f"candidate{i}" if out_dir else None, **fit_kw)[0]
        f.metrics["candidate"] = i
        return f, c

    fitted = {(a, i): fit(a, i) for a in searched for i in range(len(candidates))}  # (assay, candidate) -> fit, cfg
    rows = [dict(f.metrics) for f, _ in fitted.values()]
    table = pd.DataFrame(rows)
    score = table[metric].fillna(-np.inf)  # a validation split with one class scores NaN: never preferred
    if select_on is None:  # idxmax: the first best, so ties go to the earlier candidate
        winner = {a: int(table.loc[score[g.index].idxmax(), "candidate"]) for a, g in table.groupby("assay")}
    else:
        win = int(score.groupby(table["candidate"]).mean().idxmax())
        winner = dict.fromkeys(assays, win)
    kept = {}
    for assay in assays:
        kept[assay] = fitted.get((assay, winner[assay])) or fit(assay, winner[assay])
        if assay not in searched:
            rows.append(dict(kept[assay][0].metrics))
    fits = []
    for assay in assays:
        f, c = kept[assay]
        if save_dir is not None:
            f.model_dir = save_finetuned(f.model, tok, Path(save_dir) / f"{data_name}_{assay}", checkpoint=checkpoint,
                                         metrics=f.metrics, train_config=c, window=len(examples[seq_col].iloc[0]),
                                         data_name=data_name)
        f.model = None
        fits.append(f)
    search = pd.DataFrame(rows)
    search["searched"] = search["assay"].isin(searched)
    chosen = {(f.assay, f.metrics["candidate"]) for f in fits}
    search["selected"] = [(a, c) in chosen for a, c in zip(search["assay"], search["candidate"])]
    return Selection(search, fits)


# ---------------------------------------------------------------------------------------------------------------------
# pretraining without leaks, and the tables chapter 04 shows
# ---------------------------------------------------------------------------------------------------------------------
def pretrained_checkpoint(examples: pd.DataFrame, *, spec, corpus=None, model_dir=None,
                          seq_cols=("seq_ref", "seq_alt"), progress=None) -> Path:
    """The pretrained checkpoint to fine-tune on ``examples`` without its pretraining having seen held-out windows.

    * ``model_dir``: that checkpoint, as given (e.g. the published DNABERT-2; its pretraining is its authors').
    * ``corpus`` (files of unlabelled sequence): :func:`allelic.pretrain.pretrain` on the corpus with every window of
      ``examples`` (all splits, both alleles) excluded, i.e. every corpus window sharing a k-mer with one of them
      dropped; the result is valid for any split of these examples (chapter 05's folds included).
    * neither: pretraining on the ``split == "train"`` windows of ``examples`` only, with the validation and test
      windows excluded (a training window sharing a k-mer with a held-out one is dropped, not pretrained on).

    ``spec``: an :class:`allelic.pretrain.PretrainSpec`. Checkpoints are cached by spec, data and exclusions."""
    if model_dir is not None:
        return Path(model_dir)
    if corpus is not None:
        every = pd.unique(examples[list(seq_cols)].to_numpy().ravel()).tolist()
        return pretrain(corpus, spec=spec, exclude=every, progress=progress).checkpoint
    held = examples.loc[examples["split"] != "train", list(seq_cols)].to_numpy().ravel().tolist()
    return pretrain(training_windows(examples), spec=spec, exclude=held, progress=progress).checkpoint


def chapter_pretrain_spec(data: str, *, size: dict, pretrain_windows: int | None = None, pretrain_epochs: int = 1,
                          pretrain_lr: float = 5e-4, corpus=None, tokenizer=None, corpus_windows: int | None = None,
                          corpus_epochs: int = 1, entex_pretrain_epochs: int = 1, **_other_parameters) -> PretrainSpec:
    """The :class:`allelic.pretrain.PretrainSpec` chapter 04 pretrains with, from its parameters (other chapter
    parameters are ignored, so the workflow passes :func:`allelic.config.chapter_parameters` whole). ``size``: the
    model's ``vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, random_state``.

    ``data="simulator"``: ``pretrain_windows`` windows for ``pretrain_epochs`` (of the simulated genome).
    ``data="entex"``: with a ``corpus``, ``corpus_windows`` of it for ``corpus_epochs``, tokenised by ``tokenizer``
    when given (the published DNABERT-2 tokenizer); without one, every EN-TEx training window for
    ``entex_pretrain_epochs``."""
    if data == "simulator":
        return PretrainSpec(**size, n_windows=pretrain_windows, epochs=pretrain_epochs, learning_rate=pretrain_lr)
    if data != "entex":
        raise ValueError(f"data must be 'simulator' or 'entex', got {data!r}")
    if corpus is not None:
        return PretrainSpec(**size, tokenizer=str(tokenizer) if tokenizer else None, n_windows=corpus_windows,
                            epochs=corpus_epochs, learning_rate=pretrain_lr)
    return PretrainSpec(**size, n_windows=None, epochs=entex_pretrain_epochs, learning_rate=pretrain_lr)


def _pretrained_on(card: dict) -> str:
    """``"<n> windows of <corpus files or source>"`` from a pretraining card."""
    corpus = card.get("corpus", {})
    files = ", ".join(f.get("name", "?") for f in corpus.get("files", [])) if isinstance(corpus, dict) else ""
    return f"{card.get('n_windows_train', 0):,} windows of {files or card.get('source') or 'given sequences'}"


def pretraining_summary(card: dict) -> str:
    """One sentence on what a pretrained checkpoint saw and how well it fills in masked tokens (from its card)."""
    if "n_windows_train" not in card:  # not pretrained here (e.g. a published checkpoint)
        return card.get("pretraining", "pretraining unknown")
    seen = (f"MLM pretraining on {_pretrained_on(card)} "
            f"({card.get('tokens_seen', 0):,} tokens seen)")
    if not card.get("heldout"):
        return seen + ", no held-out windows"
    return (f"{seen}, held-out masked-token accuracy {card['heldout']['accuracy']:.3f} "
            f"(most frequent token: {card['baseline']['accuracy']:.3f})")


_CARD_ROWS = ("model", "tokenizer", "vocab_size", "n_parameters", "n_windows_train", "n_windows_holdout",
              "tokens_per_window", "tokens_seen", "mlm_loss_first", "mlm_loss_last", "excluded", "train_seconds",
              "device", "pretraining", "source")


def card_table(card: dict) -> pd.DataFrame:
    """The readable entries of a model card as a one-column table (held-out MLM accuracy and its trivial baseline
    included; long entries such as the loss curve and the ledger left out)."""
    rows = {k: card[k] for k in _CARD_ROWS if k in card}
    if card.get("heldout"):
        rows["held-out masked-token accuracy"] = card["heldout"].get("accuracy")
        rows["most-frequent-token accuracy"] = card.get("baseline", {}).get("accuracy")
    return pd.Series(rows, name="value", dtype=object).to_frame()


def conv_widths(search: pd.DataFrame) -> pd.Series:
    """The nucleotide convolution width of each row of a selection table (0: none; a table written before the
    ``nucleotide_conv`` column existed has none)."""
    if "nucleotide_conv" not in search:
        return pd.Series(0, index=search.index, dtype=int)
    return search["nucleotide_conv"].fillna(0).astype(int)


def candidate_table(search: pd.DataFrame) -> pd.DataFrame:
    """The searched candidates of a selection (:class:`Selection` ``.search``): per assay, head, pooling, nucleotide
    convolution and learning rate, the validation AUROC that chose, the held-out AUROC/AUPRC and epochs, and the
    choice."""
    cols = ["val_auroc", "auroc", "auprc", "best_epoch", "selected"]
    t = search[search["searched"]] if "searched" in search else search
    t = t.assign(pooling=[f"{p} ±{f:g} bp" if p == "centre" else p for p, f in zip(t["pooling"], t["centre_flank"])],
                 nucleotide_conv=[f"{w} bp" if w else "none" for w in conv_widths(t)])
    return t.set_index(["assay", "head", "pooling", "nucleotide_conv", "learning_rate"])[cols].round(3)


def head_gain(search: pd.DataFrame, assay: str) -> str:
    """A sentence comparing the siamese with the reference head (mean or centre with CLS pooling, and a nucleotide
    convolution with none) for ``assay``: each side is represented by its candidate with the best validation AUROC;
    the held-out AUROC difference is reported."""
    t = search[(search["assay"] == assay) & search.get("searched", True)].reset_index(drop=True)
    t = t.assign(convolution=np.where(conv_widths(t) > 0, "with", "without"))
    parts = []
    for col, a, b in (("head", "siamese", "reference"), ("pooling", "mean", "cls"), ("pooling", "centre", "cls"),
                      ("convolution", "with", "without")):
        best = {v: g.loc[g["val_auroc"].idxmax()] for v, g in t.groupby(col) if g["val_auroc"].notna().any()}
        if a in best and b in best:
            d = best[a]["auroc"] - best[b]["auroc"]
            parts.append(f"{a} vs {b} {col}: held-out AUROC {best[a]['auroc']:.3f} vs {best[b]['auroc']:.3f} ({d:+.3f})")
    return "; ".join(parts) if parts else f"no head or pooling comparison was run for {assay}"


def published_comparison(table: pd.DataFrame, anchors: pd.DataFrame, *, assay: str, data: str = "EN-TEx") -> pd.DataFrame:
    """Rows of :func:`allelic.evaluate.score_table` (``model`` column) followed by the published results for
    ``assay`` (``auroc_low``/``auroc_high`` the published range, ``auroc`` its midpoint)."""
    pub = anchors[(anchors["assay"] == assay) & anchors["data"].str.startswith(data) & (anchors["metric"] == "auroc")]
    rows = pd.DataFrame({"model": pub["model"] + " — " + pub["setting"], "auroc": (pub["low"] + pub["high"]) / 2,
                         "auroc_low": pub["low"], "auroc_high": pub["high"]})
    return pd.concat([table, rows], ignore_index=True)


def verdict(comparison: pd.DataFrame) -> str:
    """A plain sentence on where the first row (ours) stands against the second (the baseline) and the published
    range, by held-out AUROC and whether the 95 % intervals overlap."""
    ours, base = comparison.iloc[0], comparison.iloc[1]
    d = ours["auroc"] - base["auroc"]
    overlap = ours["auroc_low"] <= base["auroc_high"] and base["auroc_low"] <= ours["auroc_high"]
    side = "above" if d > 0 else "below"
    s = (f"the transformer is {abs(d):.3f} AUROC {side} the baseline "
         f"({'the 95 % intervals overlap' if overlap else 'the 95 % intervals do not overlap'})")
    if len(comparison) > 2:
        pub = comparison.iloc[2]
        s += f", and {pub['auroc_low'] - ours['auroc']:.3f} below the low end of the published {pub['auroc_low']:.2f}–{pub['auroc_high']:.2f}" \
            if ours["auroc"] < pub["auroc_low"] else f", and within or above the published {pub['auroc_low']:.2f}–{pub['auroc_high']:.2f}"
    return s + "."


def fold_checkpoints(checkpoint, fold_spec: dict | None = None):
    """``f(fold_table) -> checkpoint`` for :func:`allelic.comparison.transformer_vs_baselines`.

    ``fold_spec is None``: ``checkpoint`` serves every fold; right when it never saw a labelled window (built by
    :func:`pretrained_checkpoint` from a corpus with every window excluded, or given from outside). Otherwise
    ``fold_spec`` (the :class:`allelic.pretrain.PretrainSpec` fields the checkpoint was built with on one split's
    training windows) makes a checkpoint pretrained afresh on each fold's own training windows."""
    if fold_spec is None:
        return lambda table: Path(checkpoint)
    spec = PretrainSpec(**fold_spec)
    return lambda table: pretrained_checkpoint(table, spec=spec)


def describe_candidate(row) -> str:
    """``"reference head, centre pooling (±4 bp), 15-bp nucleotide convolution, learning rate 0.0005"`` for a row of
    a selection table (or a fit's metrics)."""
    pool = f"centre pooling (±{row['centre_flank']:g} bp)" if row["pooling"] == "centre" else f"{row['pooling']} pooling"
    w = row.get("nucleotide_conv", 0)
    conv = f", {int(w)}-bp nucleotide convolution" if w and w == w else ""
    return f"{row['head']} head, {pool}{conv}, learning rate {row['learning_rate']:g}"


def figure_9a_spec(model, tokenizer, sequence: str, alt_sequence: str, *, score: float | None = None,
                   card: dict | None = None) -> dict:
    """What paper figure 9A draws for one window (:func:`allelic.figures.figure_9a`): the window and its SNV, the
    tokenizer's pieces with their base spans, the tokens the classifier pools, the encoder's size, what it was
    pretrained on (from the pretraining ``card``, :func:`describe_checkpoint`) and the model's probability that the
    SNV is allele-specific (``score``). A plain dict, saved as JSON by chapter 04."""
    from .models import model_summary

    if len(sequence) != len(alt_sequence):
        raise ValueError(f"reference window has {len(sequence)} bases, alternative {len(alt_sequence)}")
    snv = len(sequence) // 2
    diff = [i for i, (a, b) in enumerate(zip(sequence.upper(), alt_sequence.upper())) if a != b]
    if diff != [snv]:
        raise ValueError(f"the windows must differ at the centre base {snv} only (they differ at {diff})")
    ids = encode(tokenizer, [sequence])["input_ids"]
    start, end = (t[0].tolist() for t in token_spans(tokenizer, ids))
    cfg = model.config
    pooling = getattr(cfg, "classifier_pooling", "cls")
    flank = int(getattr(cfg, "classifier_centre_flank", 4))
    pooled = (centre_mask(tokenizer, ids, centre=snv, flank=flank)[0].tolist() if pooling == "centre"
              else [False] * len(start))
    pieces = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    tokens = [{"start": s, "end": e, "piece": p, "pooled": bool(m)}
              for s, e, p, m in zip(start, end, pieces, pooled) if e > s]
    size = model_summary(model)
    return {"sequence": sequence, "alt": alt_sequence[snv], "snv": snv, "tokens": tokens,
            "n_tokens": len(tokens), "vocab_size": size["vocab"], "hidden_size": size["hidden"],
            "layers": size["layers"], "heads": size["heads"], "parameters": size["n_parameters"],
            "head": getattr(cfg, "classifier_head", "reference"), "pooling": pooling, "centre_flank": flank,
            "nucleotide_conv": int(getattr(cfg, "nucleotide_conv_width", 0) or 0),
            "score": None if score is None else float(score),
            "pretraining": _pretrained_on(card) if card and "n_windows_train" in card else None}
