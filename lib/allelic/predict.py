"""Score SNVs with a fine-tuned model from the command line.

    allelic predict --model DIR --windows windows.tsv --out scores.tsv
    allelic predict --model DIR --vcf variants.vcf.gz --fasta genome.fa [--sample NAME] --out scores.tsv

``--windows``: a TSV with a ``sequence`` column (other columns are carried to the output) of A, C, G, T, N. The
alternative allele comes from an ``alt_sequence`` column or from ``alt_allele`` + ``snv_offset`` (0-based position of
the SNV in ``sequence``); without ``snv_offset`` the SNV is taken to sit at the window centre (``len // 2``). Windows
may be shorter than the model's (``--window``, default from the model card, else 200), e.g. 100 bp: each is scored
as the longest stretch centred on its SNV (so the SNV sits where the model was trained to look), at most the model's
window; a window longer than the model's is cut to it around the SNV when ``snv_offset`` is given and refused
otherwise. A siamese model (it reads both alleles) needs the alternative allele.
``--vcf --fasta``: windows are cut around each biallelic SNV of the VCF (heterozygous ones of ``--sample`` when
given) with the SNV at the centre.

Output: ``score`` (probability of the positive class of the reference window, or of the pair for a siamese model).
With both alleles and a single-sequence model: ``score_alt``, ``effect`` = log-odds(alt) - log-odds(ref), both
strands averaged (> 0: the alternative allele scores higher — for a binding model, e.g. chapter 04's
``entex_CTCF_binding``, it is predicted the more bound) and ``preferred_allele`` (the base of the allele with the
higher score; empty on a tie). The VCF path
also keeps ``score_ref`` and ``delta = score_alt - score_ref`` (probabilities). A siamese model's score has no
direction: no ``effect`` is written for it. The device is chosen automatically (GPU when present) and sequences are
scored in batches, one batch per window length.

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
from .motifs import reverse_complement
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


def _first_bad(mask, source: str, text) -> None:
    mask = np.asarray(mask)
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        raise ValueError(f"{source}: row {i + 1}: {text(i)}")


def allele_windows(table: pd.DataFrame, window: int, source: str, *, need_alt: bool = False) -> pd.DataFrame:
    """The windows of a ``--windows`` table as the model reads them: columns ``ref_window``, ``alt_window`` (empty
    without an alternative allele), ``ref_base``, ``alt_base``, one row per input row.

    Each window is centred on its SNV (``snv_offset``, else ``len // 2``): the longest stretch with the SNV at its
    ``len // 2``, at most ``window`` bp. Raises ValueError naming ``source`` and the first bad row (1-based, header
    excluded): characters other than A/C/G/T/N, an ``alt_sequence`` of another length, an ``snv_offset`` outside the
    window, an ``alt_allele`` that is not one base other than the reference, a window longer than ``window`` without
    ``snv_offset``, or (``need_alt``) no alternative allele."""
    seq = table["sequence"].fillna("").astype(str).str.upper()
    _first_bad(seq.str.contains("[^ACGTN]", regex=True) | (seq.str.len() == 0), source,
               lambda i: f"characters {sorted(set(seq.iloc[i]) - set('ACGTN'))} are not A, C, G, T or N")
    length = seq.str.len().to_numpy()
    has_off = "snv_offset" in table.columns
    if has_off:
        off = pd.to_numeric(table["snv_offset"], errors="coerce").to_numpy()
        _first_bad(~((off >= 0) & (off < length) & (off % 1 == 0)), source,
                   lambda i: f"snv_offset {table['snv_offset'].iloc[i]} is not a position in a {length[i]}-bp window")
        off = off.astype(int)
    else:
        _first_bad(length > window, source,
                   lambda i: f"sequence of {length[i]} bp; the model expects windows of at most {window} bp "
                             f"(give snv_offset to cut a longer one around its SNV)")
        off = length // 2
    ref_base = np.array([s[o] for s, o in zip(seq, off)])
    if "alt_sequence" in table.columns:
        alt_seq = table["alt_sequence"].fillna("").astype(str).str.upper()
        _first_bad(alt_seq.str.len().to_numpy() != length, source,
                   lambda i: f"alt_sequence of {len(alt_seq.iloc[i])} bp but sequence of {length[i]} bp")
        _first_bad(alt_seq.str.contains("[^ACGTN]", regex=True), source,
                   lambda i: f"characters {sorted(set(alt_seq.iloc[i]) - set('ACGTN'))} are not A, C, G, T or N")
        alt_base = np.array([s[o] for s, o in zip(alt_seq, off)])
    elif "alt_allele" in table.columns:
        alt_base = table["alt_allele"].fillna("").astype(str).str.upper().to_numpy()
        _first_bad(~np.isin(alt_base, list("ACGT")) | (alt_base == ref_base), source,
                   lambda i: f"alt_allele {str(alt_base[i])!r} at offset {off[i]} (reference base {str(ref_base[i])!r}): "
                             f"expected one base of A, C, G, T other than the reference")
        alt_seq = pd.Series([s[:o] + a + s[o + 1:] for s, o, a in zip(seq, off, alt_base)], index=seq.index)
    else:
        if need_alt:
            raise ValueError(f"{source}: no 'alt_sequence' column, nor 'alt_allele' (+ 'snv_offset') (this siamese "
                             f"model reads both alleles) (columns: {', '.join(map(str, table.columns))})")
        alt_seq, alt_base = None, np.full(len(seq), "")
    half = np.minimum(np.minimum(off, length - off), window // 2)
    _first_bad(half < 1, source, lambda i: f"the SNV at offset {off[i]} has no base on one side")
    cut = [(o - h, o + h) for o, h in zip(off, half)]
    return pd.DataFrame({"ref_window": [s[a:b] for s, (a, b) in zip(seq, cut)],
                         "alt_window": ([s[a:b] for s, (a, b) in zip(alt_seq, cut)] if alt_seq is not None
                                        else [""] * len(seq)),
                         "ref_base": ref_base, "alt_base": alt_base}, index=table.index)


def score_windows(model, tokenizer, ref, alt=None, *, batch_size: int = 256, device: str = "auto",
                  logit: bool = False) -> np.ndarray:
    """:func:`allelic.train.predict` over windows of several lengths: one call per length (the centre a model pools
    on is the window's ``len // 2``), results in input order."""
    ref = pd.Series(list(ref))
    out = np.zeros(len(ref), dtype=np.float64)
    for n, idx in ref.groupby(ref.str.len()).groups.items():
        idx = np.asarray(idx)
        a = None if alt is None else [alt[i] for i in idx]
        out[idx] = predict(model, tokenizer, ref.iloc[idx].tolist(), a, batch_size=batch_size, device=device,
                           logit=logit)
    return out


def allele_effects(model, tokenizer, ref, alt, ref_base, alt_base, *, batch_size: int = 256,
                   device: str = "auto") -> pd.DataFrame:
    """Columns ``score``, ``score_alt`` (probabilities of the windows as given), ``effect`` (log-odds(alt) -
    log-odds(ref), each averaged over both strands, as the binding models of :mod:`allelic.baselines.binding`
    define it) and ``preferred_allele`` (``alt_base`` where the effect is > 0, ``ref_base`` where < 0, empty on a
    tie) of a single-sequence model on each SNV's two windows."""
    ref, alt = list(ref), list(alt)
    rc = [reverse_complement(s) for s in ref + alt]
    lo = score_windows(model, tokenizer, ref + alt + rc, batch_size=batch_size, device=device, logit=True)
    n = len(ref)
    lo_ref, lo_alt = lo[:n], lo[n:2 * n]
    effect = (lo_alt + lo[3 * n:]) / 2 - (lo_ref + lo[2 * n:3 * n]) / 2
    return pd.DataFrame({"score": 1 / (1 + np.exp(-lo_ref)), "score_alt": 1 / (1 + np.exp(-lo_alt)),
                         "effect": effect,
                         "preferred_allele": np.where(effect > 0, np.asarray(alt_base, dtype=object),
                                                      np.where(effect < 0, np.asarray(ref_base, dtype=object), ""))})


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
            table = pd.read_csv(a.windows, sep="\t", dtype={"sequence": str, "alt_sequence": str, "alt_allele": str})
            if "sequence" not in table.columns:
                raise ValueError(f"{a.windows}: no 'sequence' column (columns: {', '.join(table.columns)})")
            w = allele_windows(table, window, a.windows, need_alt=pair)
            has_alt = bool((w["alt_window"] != "").all())
            if pair:
                table["score"] = score_windows(model, tok, w["ref_window"], w["alt_window"].tolist(),
                                               batch_size=a.batch_size, device=a.device)
            elif has_alt:
                eff = allele_effects(model, tok, w["ref_window"], w["alt_window"], w["ref_base"], w["alt_base"],
                                     batch_size=a.batch_size, device=a.device)
                table = pd.concat([table, eff.set_index(table.index)], axis=1)
            else:
                table["score"] = score_windows(model, tok, w["ref_window"], batch_size=a.batch_size, device=a.device)
        else:
            if not a.fasta:
                raise ValueError("--vcf needs --fasta")
            table = windows_from_vcf(a.vcf, a.fasta, window=window, sample=a.sample)
            if pair:
                table["score"] = predict(model, tok, table["seq_ref"], table["seq_alt"], batch_size=a.batch_size,
                                         device=a.device)
            else:
                eff = allele_effects(model, tok, table["seq_ref"], table["seq_alt"], table["ref"], table["alt"],
                                     batch_size=a.batch_size, device=a.device)
                table["score_ref"], table["score_alt"] = eff["score"].to_numpy(), eff["score_alt"].to_numpy()
                table["delta"] = table["score_alt"] - table["score_ref"]
                table["effect"], table["preferred_allele"] = eff["effect"].to_numpy(), eff["preferred_allele"].to_numpy()
            table = table.drop(columns=["seq_ref", "seq_alt"])
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table.to_csv(sys.stdout if a.out == "-" else a.out, sep="\t", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
