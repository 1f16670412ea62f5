"""Fine-tune a checkpoint on a user's own labelled SNV windows (``allelic finetune``).

    allelic finetune --base DIR --train train.tsv [--valid valid.tsv] --out DIR

The training table (TSV) has one row per SNV window: ``sequence`` (the reference window, A/C/G/T/N, all the same
length) and ``label`` (1: allele-specific, 0: not). The siamese head (``--head siamese``) also reads the alternative
window, given either as ``alt_sequence`` or as ``alt_allele`` + ``snv_offset`` (0-based position of the SNV in the
window; the reference base there must differ from the alternative). Other columns are carried along and ignored.

Validation: ``--valid`` when given; otherwise an internal split that keeps related windows on one side
(:func:`validation_split`: by ``chrom`` when the table has one, else identical sequences together), so early
stopping never sees a training window. The base is any checkpoint :func:`allelic.models.load_model` opens: one made
by ``allelic pretrain`` or chapter 04, or a published DNABERT-2 directory. The result is a checkpoint directory
(weights, tokenizer, ``model_card.json``) that ``allelic predict`` and ``allelic motifs`` read.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import distributed
from .language_model import save_finetuned
from .tokenize import load_tokenizer
from .train import finetune, seed_everything, TrainConfig

__all__ = ["read_windows", "validation_split", "finetune_windows", "main"]

_BASES = set("ACGTN")


def _fail(path, row: int | None, text: str) -> ValueError:
    where = f"{path}: row {row + 1}" if row is not None else str(path)
    return ValueError(f"{where}: {text}")


def read_windows(path, *, require_label: bool = True) -> pd.DataFrame:
    """Read and check a table of SNV windows (TSV, or a DataFrame for ``path``).

    Returns the table with ``sequence`` upper-cased, ``label`` as int (when present) and ``alt_sequence`` built from
    ``alt_allele`` + ``snv_offset`` when only those are given. Raises ValueError naming the file and the first
    offending row (1-based, header excluded): a missing column, an empty table, a window of another length than the
    first, a character other than A/C/G/T/N, a label other than 0/1, an ``snv_offset`` outside the window, an
    alternative allele that is not one base or equals the reference base."""
    if isinstance(path, pd.DataFrame):
        df, name = path.copy(), "windows"
    else:
        name = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            df = pd.read_csv(path, sep="\t", dtype={"sequence": str, "alt_sequence": str, "alt_allele": str})
        except pd.errors.EmptyDataError:
            raise _fail(name, None, "empty file (expected a TSV with a header and a 'sequence' column)") from None
    need = ["sequence"] + (["label"] if require_label else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise _fail(name, None, f"no {', '.join(map(repr, missing))} column (columns: {', '.join(map(str, df.columns))})")
    if not len(df):
        raise _fail(name, None, "no windows")
    seq = df["sequence"].fillna("").astype(str).str.upper()
    length = len(seq.iloc[0])
    for col, s in [("sequence", seq)] + ([("alt_sequence", df["alt_sequence"].fillna("").astype(str).str.upper())]
                                         if "alt_sequence" in df.columns else []):
        bad = (s.str.len() != length).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(name, i, f"{col} of {len(s.iloc[i])} bp; the first window has {length} bp (all windows must "
                                 f"have the same length)")
        bad = s.str.contains("[^ACGTN]", regex=True).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(name, i, f"{col} holds {sorted(set(s.iloc[i]) - _BASES)}, not A, C, G, T or N")
        df[col] = s
    if "label" in df.columns:
        lab = pd.to_numeric(df["label"], errors="coerce")
        bad = ~lab.isin([0, 1]).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(name, i, f"label {str(df['label'].iloc[i])!r}; labels must be 0 or 1")
        df["label"] = lab.astype(int)
    if "alt_sequence" not in df.columns and {"alt_allele", "snv_offset"} <= set(df.columns):
        off = pd.to_numeric(df["snv_offset"], errors="coerce")
        bad = (~off.between(0, length - 1) | (off % 1 != 0)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(name, i, f"snv_offset {df['snv_offset'].iloc[i]} is not a position in a {length}-bp window")
        off = off.astype(int).to_numpy()
        alt = df["alt_allele"].fillna("").astype(str).str.upper().to_numpy()
        ref = np.array([s[o] for s, o in zip(df["sequence"], off)])
        bad = ~np.isin(alt, list("ACGT")) | (alt == ref)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(name, i, f"alt_allele {str(alt[i])!r} at snv_offset {off[i]} (reference base {str(ref[i])!r}): expected "
                                 f"one base of A, C, G, T other than the reference")
        df["alt_sequence"] = [s[:o] + a + s[o + 1:] for s, o, a in zip(df["sequence"], off, alt)]
    return df


def validation_split(table: pd.DataFrame, *, valid_frac: float = 0.1, random_state: int = 0) -> np.ndarray:
    """Boolean mask (True: validation) that keeps related windows on one side.

    Groups are the ``chrom`` column when the table has one (whole chromosomes go to validation, so overlapping
    windows of neighbouring SNVs cannot straddle the split), else the window sequence itself (duplicates stay
    together). A group goes to validation when a keyed hash of (``random_state``, group), as a fraction of 2^64, is
    below ``valid_frac``; with few groups (chromosomes) the groups with the smallest hashes are taken until about
    ``valid_frac`` of the windows are in. Deterministic and independent of row order. Raises ValueError when the
    split leaves either side without both labels."""
    if not (0 < valid_frac < 1):
        raise ValueError(f"valid_frac must be in (0, 1), got {valid_frac}")
    by_chrom = "chrom" in table.columns
    groups = table["chrom" if by_chrom else "sequence"].astype(str)

    def h(g: str) -> float:
        d = hashlib.blake2b(f"{random_state}:{g}".encode(), digest_size=8).digest()
        return int.from_bytes(d, "little") / 2.0**64

    key = {g: h(g) for g in groups.unique()}
    if by_chrom:
        sizes = groups.value_counts()
        chosen, n = set(), 0
        for g in sorted(key, key=key.get):
            if n >= valid_frac * len(table):
                break
            chosen.add(g)
            n += sizes[g]
        mask = groups.isin(chosen).to_numpy()
    else:
        mask = groups.map(key).to_numpy() < valid_frac
    if "label" in table.columns:
        for side, m in (("validation", mask), ("training", ~mask)):
            if table.loc[m, "label"].nunique() < 2:
                raise ValueError(f"the internal {side} split has {int(m.sum())} windows without both labels; "
                                 f"give --valid or more windows")
    return mask


def finetune_windows(base, train: pd.DataFrame, valid: pd.DataFrame | None = None, *, out_dir, head: str = "reference",
                     pooling: str = "centre", centre_flank: int = 4, nucleotide_conv: int = 15,
                     learning_rate: float = 5e-4, epochs: int = 3, batch_size: int = 32, valid_frac: float = 0.1,
                     early_stopping_patience: int = 3, device: str = "auto", random_state: int = 0, progress=None,
                     name: str = "user windows") -> Path:
    """Fine-tune ``base`` on ``train`` (a table of :func:`read_windows`) and save the best model (validation AUPRC)
    to ``out_dir`` as a checkpoint directory with a model card (:func:`allelic.language_model.save_finetuned`).

    Defaults are the classifier chapter 04 selects on validation chromosomes for CTCF: reference head, pooling over
    the tokens within ``centre_flank`` bp of the window centre, a ``nucleotide_conv``-bp convolution over the bases
    (0: the published architecture), learning rate 5e-4. ``valid``: a separate table, else
    :func:`validation_split` of ``train``. Returns ``out_dir``."""
    from .models import is_dnabert2_checkpoint, load_model

    if head == "siamese" and "alt_sequence" not in train.columns:
        raise ValueError("the siamese head reads both alleles: give alt_sequence, or alt_allele and snv_offset")
    if valid is None:
        mask = validation_split(train, valid_frac=valid_frac, random_state=random_state)
        train, valid = train[~mask], train[mask]
    cfg = TrainConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, device=device,
                      early_stopping_patience=early_stopping_patience, random_state=random_state, progress=progress)
    tok = load_tokenizer(base)
    seed_everything(random_state)
    options = (dict(classifier_head=head, classifier_pooling=pooling, classifier_centre_flank=centre_flank,
                    nucleotide_conv_width=nucleotide_conv) if is_dnabert2_checkpoint(base) else {})
    model = load_model(base, task="classification", num_labels=2, **options)
    res = finetune(model, tok, train, valid, config=cfg, seq_col="sequence", alt_col="alt_sequence")
    window = len(train["sequence"].iloc[0])
    metrics = {"assay": name, "head": head, "pooling": pooling, "centre_flank": centre_flank,
               "nucleotide_conv": nucleotide_conv, "learning_rate": learning_rate,
               "val_auroc": res.best.get("val_auroc", np.nan), "val_auprc": res.best.get("val_auprc", np.nan),
               "n_train": len(train), "n_val": len(valid), "best_step": res.best_step, "seconds": res.seconds}
    if distributed.is_main():  # under torchrun: rank 0 writes the model folder
        save_finetuned(res.model, tok, out_dir, checkpoint=base, metrics=metrics, train_config=cfg, window=window,
                       data_name=name)
    distributed.barrier()
    return Path(out_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="allelic finetune",
                                 description="Fine-tune a DNA language model on labelled SNV windows (TSV).")
    ap.add_argument("--base", required=True, help="checkpoint directory to start from (allelic pretrain, chapter 04, "
                                                  "or a published DNABERT-2 folder)")
    ap.add_argument("--train", required=True, help="TSV: sequence, label [, alt_sequence | alt_allele + snv_offset]")
    ap.add_argument("--valid", help="TSV for early stopping (default: an internal split of --train)")
    ap.add_argument("--out", required=True, help="output checkpoint directory")
    ap.add_argument("--head", default="reference", choices=["reference", "siamese"])
    ap.add_argument("--pooling", default="centre", choices=["cls", "mean", "centre"])
    ap.add_argument("--centre-flank", type=int, default=4)
    ap.add_argument("--nucleotide-conv", type=int, default=15, help="convolution width over the bases (0: none)")
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--valid-frac", type=float, default=0.1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--random-state", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        train = read_windows(a.train)
        valid = read_windows(a.valid) if a.valid else None
        if valid is not None and len(valid["sequence"].iloc[0]) != len(train["sequence"].iloc[0]):
            raise ValueError(f"{a.valid}: windows of {len(valid['sequence'].iloc[0])} bp, but {a.train} has "
                             f"{len(train['sequence'].iloc[0])} bp")
        out = finetune_windows(a.base, train, valid, out_dir=a.out, head=a.head, pooling=a.pooling,
                               centre_flank=a.centre_flank, nucleotide_conv=a.nucleotide_conv,
                               learning_rate=a.learning_rate, epochs=a.epochs, batch_size=a.batch_size,
                               valid_frac=a.valid_frac, device=a.device, random_state=a.random_state,
                               progress=False if a.no_progress else None, name=Path(a.train).name)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if distributed.is_main():
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
