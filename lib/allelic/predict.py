"""Score SNVs with a fine-tuned model from the command line.

    allelic predict --model DIR --windows windows.tsv --out scores.tsv
    allelic predict --model DIR --vcf variants.vcf.gz --fasta genome.fa [--sample NAME] --out scores.tsv

``--windows``: a TSV with a ``sequence`` column (other columns are carried to the output); every sequence must have
the model's window length (``--window``, default from the model card, else 200) and only A, C, G, T, N. A siamese
model (it reads both alleles) also needs an ``alt_sequence`` column.
``--vcf --fasta``: windows are cut around each biallelic SNV of the VCF (heterozygous ones of ``--sample`` when
given) with the SNV at the centre. A reference-only model scores both alleles and reports
``delta = score_alt - score_ref``; a siamese model gives one ``score`` per SNV from the pair.
The device is chosen automatically (GPU when present) and sequences are scored in batches.

The model must be a fine-tuned classifier: a checkpoint without trained classifier weights (a pretrained-only
encoder, e.g. the published DNABERT-2-117M) is refused, since its scores would come from a random head.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .ledger import Ledger
from .tokenize import load_tokenizer
from .train import predict
from .variants import read_het_snvs
from .windows import cut_windows


def _window_length(model_dir: Path, override: int | None) -> int:
    if override:
        return int(override)
    card = model_dir / "model_card.json"
    if card.is_file():
        return int(json.loads(card.read_text()).get("spec", {}).get("window", 200))
    return 200


def check_windows(seqs: pd.Series, window: int, source: str) -> None:
    """Raise ValueError naming the file and the first row whose sequence has the wrong length or characters."""
    s = seqs.astype(str).str.upper()
    bad_len = s.str.len() != window
    if bad_len.any():
        i = int(np.flatnonzero(bad_len.to_numpy())[0])
        raise ValueError(f"{source}: row {i + 1}: sequence of {len(s.iloc[i])} bp; the model expects windows of {window} bp")
    bad_chr = s.str.contains("[^ACGTN]", regex=True)
    if bad_chr.any():
        i = int(np.flatnonzero(bad_chr.to_numpy())[0])
        chars = sorted(set(s.iloc[i]) - set("ACGTN"))
        raise ValueError(f"{source}: row {i + 1}: characters {chars} are not A, C, G, T or N")


def windows_from_vcf(vcf, fasta, *, window: int = 200, sample=None, ledger: Ledger | None = None) -> pd.DataFrame:
    """Reference and alternative windows around the biallelic SNVs of a VCF: columns ``chrom, pos, ref, alt,
    seq_ref, seq_alt`` (:func:`allelic.windows.cut_windows`). SNVs too close to a contig end go to ``ledger``
    (``window_off_contig``); a REF that differs from the FASTA raises ValueError naming the FASTA and the record
    (wrong genome build)."""
    import pysam


    ledger = ledger if ledger is not None else Ledger()
    if sample is not None:
        v = read_het_snvs(vcf, sample)
        ledger.merge(v.ledger)
        t = v.table[["chrom", "pos", "ref", "alt"]]
    else:
        rows = []
        with pysam.VariantFile(str(vcf)) as vf:
            for r in vf:
                alts = r.alts or ()
                if len(r.ref) == 1 and len(alts) == 1 and len(alts[0]) == 1 and alts[0] in "ACGT":
                    rows.append((r.chrom, r.pos, r.ref, alts[0]))
                else:
                    ledger.add("windows_from_vcf", vcf, f"{r.chrom}:{r.pos}", "not_biallelic_snv")
        t = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])
    w = cut_windows(t, fasta, window=window, ledger=ledger, step="windows_from_vcf")
    return w[["chrom", "pos", "ref", "alt", "seq_ref", "seq_alt"]]


def load_classifier(model_dir):
    """The fine-tuned AS classifier in ``model_dir`` (:func:`allelic.models.load_model`). Raises ValueError naming
    the directory when it holds no trained classifier weights (a pretrained-only encoder would score at random)."""
    from .models import has_classifier, load_model

    model_dir = Path(model_dir)
    model = load_model(model_dir, task="classification")
    if not has_classifier(model_dir):
        raise ValueError(f"{model_dir}: no trained classifier weights (a pretrained-only checkpoint); its scores would "
                         f"come from a randomly initialised head. Fine-tune it first (allelic.language_model."
                         f"fit_assays, or chapter 04, which saves results/04/models/<data>_<assay>/)")
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="allelic predict", description="Score SNV windows with a fine-tuned model.")
    ap.add_argument("--model", required=True, help="checkpoint directory (model + tokenizer)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--windows", help="TSV with a 'sequence' column")
    src.add_argument("--vcf", help="VCF of SNVs (needs --fasta)")
    ap.add_argument("--fasta", help="indexed reference FASTA for --vcf")
    ap.add_argument("--sample", help="score the heterozygous SNVs of this VCF sample only")
    ap.add_argument("--window", type=int, help="window length (default: the model card's, else 200)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="-", help="output TSV (default stdout)")
    a = ap.parse_args(argv)
    try:
        from .models import is_pair_model

        model_dir = Path(a.model)
        window = _window_length(model_dir, a.window)
        model, tok = load_classifier(model_dir), load_tokenizer(model_dir)
        pair = is_pair_model(model)
        if a.windows:
            table = pd.read_csv(a.windows, sep="\t")
            need = ["sequence", "alt_sequence"] if pair else ["sequence"]
            missing = [c for c in need if c not in table.columns]
            if missing:
                raise ValueError(f"{a.windows}: no {', '.join(map(repr, missing))} column"
                                 f"{' (this siamese model reads both alleles)' if pair else ''} "
                                 f"(columns: {', '.join(table.columns)})")
            for c in need:
                check_windows(table[c], window, a.windows)
            alt = table["alt_sequence"].str.upper() if pair else None
            table["score"] = predict(model, tok, table["sequence"].str.upper(), alt, batch_size=a.batch_size,
                                     device=a.device)
        else:
            if not a.fasta:
                raise ValueError("--vcf needs --fasta")
            table = windows_from_vcf(a.vcf, a.fasta, window=window, sample=a.sample)
            if pair:
                table["score"] = predict(model, tok, table["seq_ref"], table["seq_alt"], batch_size=a.batch_size,
                                         device=a.device)
            else:
                table["score_ref"] = predict(model, tok, table["seq_ref"], batch_size=a.batch_size, device=a.device)
                table["score_alt"] = predict(model, tok, table["seq_alt"], batch_size=a.batch_size, device=a.device)
                table["delta"] = table["score_alt"] - table["score_ref"]
            table = table.drop(columns=["seq_ref", "seq_alt"])
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table.to_csv(sys.stdout if a.out == "-" else a.out, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
