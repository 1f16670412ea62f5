"""The reference genome: contig order, opening an indexed FASTA, and checking variants' reference alleles against it.

One check for every reader that meets a FASTA (allele counting, :func:`allelic.windows.cut_windows`) and for tables
that carry their own reference base (EN-TEx windows): a reference allele that differs from the genome means the wrong
genome build, shifted coordinates or mislabelled alleles. By default that is an error naming the file, the first
disagreeing variant and how many disagree; ``on_ref_mismatch="drop"`` removes those variants instead, and the caller
records them in its ledger as ``ref_mismatch``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: what a reader does with a reference allele that differs from the genome
ON_REF_MISMATCH = ("raise", "drop")


def chrom_sort_key(chrom: str):
    """Natural order: chr1 < chr2 < ... < chr22 < chrX < chrY < chrM < other names (alphabetical)."""
    c = str(chrom)
    c = c[3:] if c.lower().startswith("chr") else c
    if c.isdigit():
        return (0, int(c), "")
    return (1, {"X": 0, "Y": 1, "M": 2, "MT": 2}.get(c.upper(), 3), c)


def check_on_ref_mismatch(value: str) -> str:
    """``"raise"`` or ``"drop"`` (``"error"``, the spelling :func:`allelic.counts.count_alleles` first used, is
    ``"raise"``); anything else is a ValueError."""
    if value == "error":
        return "raise"
    if value not in ON_REF_MISMATCH:
        raise ValueError(f"on_ref_mismatch must be 'raise' or 'drop', got {value!r}")
    return value


def open_fasta(path):
    """A :class:`pysam.FastaFile` of an indexed FASTA; a missing file or one pysam cannot open (no ``.fai`` and not
    writable, not FASTA) raises an error naming the file."""
    import pysam

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: FASTA file not found")
    try:
        return pysam.FastaFile(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be opened as an indexed FASTA ({exc}); index it with "
                         f"`samtools faidx {path}`") from None


#: most bases one FASTA read of :func:`fetch_bases` spans (nearby SNVs share one read)
_SPAN = 4_000_000


def fetch_bases(fasta, chrom, pos) -> np.ndarray:
    """Upper-cased reference base at each 1-based ``pos`` of ``chrom`` (``fasta``: an open :class:`pysam.FastaFile`):
    an object array of one-letter strings ("" past a contig end). SNVs are read in sorted runs of at most ``_SPAN``
    bp, one FASTA read per run (a genome's SNVs take a few hundred reads, not one per SNV)."""
    chrom = np.asarray(chrom, dtype=object)
    pos = np.asarray(pos, dtype=np.int64)
    out = np.full(len(pos), "", dtype=object)
    for c in dict.fromkeys(chrom.tolist()):
        idx = np.flatnonzero(chrom == c)
        idx = idx[np.argsort(pos[idx], kind="stable")]
        p = pos[idx]
        cuts = np.flatnonzero(np.diff(p // _SPAN)) + 1  # runs within one _SPAN-aligned block
        for run in np.split(np.arange(len(idx)), cuts):
            lo, hi = int(p[run[0]]) - 1, int(p[run[-1]])
            block = np.frombuffer(fasta.fetch(str(c), max(lo, 0), hi).upper().encode(), dtype="S1")
            off = p[run] - 1 - lo
            ok = (off >= 0) & (off < len(block))
            got = np.full(len(run), "", dtype=object)
            got[ok] = block[off[ok]].astype(str)
            out[idx[run]] = got
    return out


def ref_mismatches(source, chrom, pos, ref, genome, *, on_ref_mismatch: str = "raise",
                   hint: str = "wrong genome build or shifted coordinates?") -> np.ndarray:
    """Boolean mask of the variants whose reference allele ``ref`` differs from the genome's base ``genome`` (arrays
    of equal length; ``chrom``/``pos`` name them). With ``on_ref_mismatch="raise"`` (or ``"error"``) any mismatch is
    a ValueError naming ``source``, the first variant, both bases, the count and ``hint``; with ``"drop"`` the mask is
    returned for the caller to remove and ledger."""
    policy = check_on_ref_mismatch(on_ref_mismatch)
    ref = np.asarray(ref, dtype=object)
    genome = np.asarray(genome, dtype=object)
    mism = ref != genome
    if policy == "raise" and mism.any():
        i = int(np.flatnonzero(mism)[0])
        raise ValueError(
            f"{source}: ref allele of SNV {chrom[i]}:{pos[i]} is {ref[i]!r} but the reference has "
            f"{genome[i] or '(nothing)'!r} ({int(mism.sum())} of {len(ref)} SNV(s) disagree) — {hint} "
            f"(pass on_ref_mismatch='drop' to remove them to the ledger as 'ref_mismatch')")
    return mism
