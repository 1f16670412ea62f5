"""Sequence windows around SNVs: the reference and alternative ``window``-bp sequences every model reads.

The SNV sits at 0-based offset ``window // 2``; the alternative window differs from the reference window only there.
Windows are cut from an indexed FASTA (:func:`cut_windows`) or taken from a table that ships them (EN-TEx,
:func:`allelic.datasets.examples_from_entex`), upper-cased, IUPAC codes other than N turned into N. Rows that cannot
get a window go to the ledger with the reason (:func:`drop_examples`).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .ledger import Ledger
from .reference import check_on_ref_mismatch, chrom_sort_key, open_fasta, ref_mismatches

_NOT_ACGTN = re.compile("[^ACGTN]")


def check_window(window) -> int:
    """``window`` as an int; a ValueError unless it is a positive integer (bp)."""
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer (bp), got {window!r}")
    return int(window)


def clean_sequence(seq: str) -> str:
    """Upper-cased, with every character other than A/C/G/T/N (IUPAC ambiguity codes) turned into N."""
    return _NOT_ACGTN.sub("N", seq.upper())


def alt_windows(ref_windows, alts, window: int) -> list[str]:
    """The alternative windows: each reference window with the base at ``window // 2`` replaced by its alt."""
    half = window // 2
    return [w[:half] + a + w[half + 1:] for w, a in zip(ref_windows, alts)]


def drop_examples(g: pd.DataFrame, mask, ledger: Ledger, step: str, source: str, reason: str,
                  detail: str = "") -> pd.DataFrame:
    """``g`` without the rows of ``mask``, each recorded in ``ledger`` as ``chrom:pos:ref:alt [assay]``."""
    mask = np.asarray(mask, bool)
    d = g[mask]
    rec = d["chrom"] + ":" + d["pos"].astype(str) + ":" + d["ref"] + ":" + d["alt"]
    if "assay" in d:
        rec = rec + " " + d["assay"]
    ledger.extend(step, source, rec.tolist(), reason, detail)
    return g[~mask].reset_index(drop=True)


def drop_ref_mismatches(g: pd.DataFrame, genome, *, on_ref_mismatch: str, ledger: Ledger, step: str, source: str,
                        hint: str) -> pd.DataFrame:
    """Rows of ``g`` whose ``ref`` equals the genome's base ``genome`` (one per row); the others raise
    (:func:`allelic.reference.ref_mismatches`) or, with ``on_ref_mismatch="drop"``, go to the ledger as
    ``ref_mismatch``."""
    mism = ref_mismatches(source, g["chrom"].to_numpy(), g["pos"].to_numpy(), g["ref"].to_numpy(), genome,
                          on_ref_mismatch=on_ref_mismatch, hint=hint)
    return drop_examples(g, mism, ledger, step, source, "ref_mismatch", hint) if mism.any() else g


def cut_windows(sites: pd.DataFrame, fasta, *, window: int = 200, on_ref_mismatch: str = "raise",
                ledger: Ledger | None = None, step: str = "cut_windows") -> pd.DataFrame:
    """Reference and alternative windows around SNVs: ``sites`` (columns ``chrom, pos`` (1-based), ``ref``, ``alt``)
    with ``seq_ref`` and ``seq_alt`` added, ``window`` bp with the SNV at offset ``window // 2``, cut from an indexed
    FASTA (upper-cased; IUPAC codes other than N become N); the alternative window differs only at the SNV.

    Removed rows go to ``ledger`` (step ``step``): ``contig_not_in_fasta``, ``window_off_contig`` and, with
    ``on_ref_mismatch="drop"``, ``ref_mismatch``. By default a reference base that differs from the FASTA raises
    ValueError naming the FASTA and chrom:pos (wrong genome build?), as does a FASTA holding none of the contigs."""
    window = check_window(window)
    check_on_ref_mismatch(on_ref_mismatch)
    ledger = Ledger() if ledger is None else ledger
    g = sites.reset_index(drop=True)
    half = window // 2
    with open_fasta(fasta) as fa:
        lengths = dict(zip(fa.references, fa.lengths))
        present = g["chrom"].isin(list(lengths)).to_numpy()
        if len(g) and not present.any():
            raise ValueError(f"{fasta}: none of the calls' contigs ({', '.join(sorted(set(g['chrom']), key=chrom_sort_key)[:5])}"
                             f") is in the FASTA (which has {', '.join(list(lengths)[:5])}...): naming or genome mismatch")
        g = drop_examples(g, ~present, ledger, step, str(fasta), "contig_not_in_fasta")
        start = g["pos"].to_numpy() - 1 - half
        end = start + window
        clen = g["chrom"].map(lengths).to_numpy()
        g = drop_examples(g, (start < 0) | (end > clen), ledger, step, str(fasta), "window_off_contig",
                          f"{window}-bp window runs past the contig end")
        seqs = {}
        for c, p in dict.fromkeys(zip(g["chrom"], g["pos"])):
            seqs[(c, p)] = clean_sequence(fa.fetch(c, int(p) - 1 - half, int(p) - 1 - half + window))
    genome = np.array([seqs[(c, p)][half] for c, p in zip(g["chrom"], g["pos"])], dtype=object)
    g = drop_ref_mismatches(g, genome, on_ref_mismatch=on_ref_mismatch, ledger=ledger, step=step, source=str(fasta),
                            hint="wrong genome build or shifted coordinates?")
    ref_seq = [seqs[(c, p)] for c, p in zip(g["chrom"], g["pos"])]
    return g.assign(seq_ref=ref_seq, seq_alt=alt_windows(ref_seq, g["alt"], window))
