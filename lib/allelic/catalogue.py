"""The allele-specific (AS) catalogue as a VCF: bgzipped, tabix-indexed, sites-only, open in bcftools, IGV and pysam.

One record per SNV x test unit (donor x tissue x assay), so several records may share a position. The catalogue's
columns (:data:`CATALOGUE_COLUMNS`, the table ``allelic test`` writes) map to the INFO fields of :data:`INFO`; ID and
QUAL are ``.``, FILTER is ``PASS``. A missing value (an empty ``preferred_allele``, a NaN ``hap1_allele`` or ratio)
leaves its INFO field out, and :func:`read_vcf` reads it back as ``""`` / NaN.

Floats are written ``%.6g``: six significant digits at any magnitude (relative error < 1e-6), so p-values as small
as 1e-300 round-trip through :func:`read_vcf`, which parses the text. htslib (bcftools, pysam's ``VariantRecord``)
holds INFO floats as float32: there a P below ~1e-38 reads as a denormal or 0 — still below any threshold.

- :func:`write_vcf` -- catalogue table -> ``.vcf.gz`` + ``.tbi``, validated, sorted, written atomically.
- :func:`read_vcf`  -- such a VCF (or a region of it) -> the catalogue table.
"""
from __future__ import annotations

import gzip
import os
import re
import sys
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .reference import chrom_sort_key, open_fasta

CATALOGUE_COLUMNS = ("chrom", "pos", "ref", "alt", "donor", "tissue", "assay", "n_replicates", "ref_count",
                     "alt_count", "total", "ratio", "p_null", "pvalue", "qvalue", "as_call", "preferred_allele")
HAPLOTYPE_COLUMNS = ("hap1_allele", "hap2_allele")   # optional, kept when present


class InfoField(NamedTuple):
    column: str
    type: str          # VCF Type; Number is 0 for the Flag, 1 otherwise
    description: str


#: INFO ID -> the catalogue column it holds, its VCF Type and its header Description (in the records' order)
INFO = {
    "DONOR": InfoField("donor", "String", "Donor of the test unit"),
    "TISSUE": InfoField("tissue", "String", "Tissue of the test unit"),
    "ASSAY": InfoField("assay", "String", "Assay of the test unit"),
    "NREP": InfoField("n_replicates", "Integer", "Replicates pooled in the test unit"),
    "REFC": InfoField("ref_count", "Integer", "Reads carrying the reference allele"),
    "ALTC": InfoField("alt_count", "Integer", "Reads carrying the alternative allele"),
    "DP": InfoField("total", "Integer", "Reads carrying either allele (REFC + ALTC)"),
    "RATIO": InfoField("ratio", "Float", "Reference allele ratio REFC / DP"),
    "PNULL": InfoField("p_null", "Float", "Reference ratio expected under the null of no allelic imbalance"),
    "P": InfoField("pvalue", "Float", "P-value of the allelic imbalance test"),
    "Q": InfoField("qvalue", "Float", "Q-value (FDR-adjusted P) across the catalogue"),
    "AS": InfoField("as_call", "Flag", "The SNV is allele-specific in this test unit at the catalogue's FDR"),
    "PREF": InfoField("preferred_allele", "String", "The favoured allele, ref or alt (only with AS)"),
    "HAP1": InfoField("hap1_allele", "String", "Allele on haplotype 1"),
    "HAP2": InfoField("hap2_allele", "String", "Allele on haplotype 2"),
}
_INTS = ("pos", "n_replicates", "ref_count", "alt_count", "total")
_NAME = r"[A-Za-z0-9_.\-]+"


def _checks(t: pd.DataFrame, lengths: dict) -> list:
    """``(bad-row mask, message template over the row's columns)``, in the order they are reported."""
    num = {c: pd.to_numeric(t[c], errors="coerce") for c in (*_INTS, "ratio", "p_null", "pvalue", "qvalue")}
    out = [(~t[c].isin(list("ACGT")), f"{c} {{{c}!r}} is not A, C, G or T") for c in ("ref", "alt")]
    out.append((t["ref"] == t["alt"], "ref and alt are both {ref!r}"))
    for c, lo in (("pos", 1), ("n_replicates", 1), ("ref_count", 0), ("alt_count", 0)):
        out.append((~(num[c] >= lo) | (num[c] % 1 != 0), f"{c} {{{c}}} is not an integer >= {lo}"))
    out.append((num["total"] != num["ref_count"] + num["alt_count"],
                "total {total} != ref_count {ref_count} + alt_count {alt_count}"))
    out += [(~num[c].between(0, 1), f"{c} {{{c}}} is not in [0, 1]") for c in ("p_null", "pvalue", "qvalue")]
    out.append((num["ratio"].notna() & ~num["ratio"].between(0, 1), "ratio {ratio} is not in [0, 1] (or NaN)"))
    for c in ("donor", "tissue", "assay", *HAPLOTYPE_COLUMNS):
        if c in t:
            ok = t[c].astype(str).str.fullmatch(_NAME) | (t[c].isna() if c in HAPLOTYPE_COLUMNS else False)
            out.append((~ok, f"{c} {{{c}!r}} is empty or has characters other than letters, digits, '_', '-', '.'"))
    out.append((~t["as_call"].isin([True, False]), "as_call {as_call} is not a bool"))
    pref_ok = np.where(t["as_call"].eq(True), t["preferred_allele"].isin(["ref", "alt"]),
                       t["preferred_allele"].fillna("") == "")
    out.append((~pref_ok, ("preferred_allele {preferred_allele!r} with as_call={as_call} (expected 'ref'/'alt' "
                           "for an AS row, '' otherwise)")))
    out.append((~t["chrom"].isin(list(lengths)), "contig {chrom!r} is not in the reference (or contigs=)"))
    length = t["chrom"].map(lengths).astype(float)
    out.append((num["pos"] > length, "pos {pos} is beyond the end of {chrom} ({_length:.0f} bp)"))
    return out


def _validate(t: pd.DataFrame, lengths: dict, path) -> None:
    missing = [c for c in CATALOGUE_COLUMNS if c not in t]
    if missing:
        raise ValueError(f"{path}: the catalogue table lacks column(s) {missing}; expected {list(CATALOGUE_COLUMNS)}")
    for bad, template in _checks(t, lengths):
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = t.iloc[i].to_dict() | {"_length": lengths.get(t["chrom"].iloc[i]) or np.nan}
            raise ValueError(f"{path}: catalogue row {t.index[i]} ({row['chrom']}:{row['pos']}): "
                             f"{template.format(**row)} ({int(bad.sum())} of {len(t)} row(s) like it)")


def _contig_lengths(table, reference, contigs) -> dict:
    """Contig -> length (None where unknown), in the order records are sorted."""
    if reference is not None and contigs is not None:
        raise ValueError("write_vcf: pass reference= or contigs=, not both")
    if reference is not None:
        with open_fasta(reference) as fa:
            return dict(zip(fa.references, fa.lengths, strict=True))
    if contigs is not None:
        return {str(k): int(v) for k, v in contigs.items()}
    return {c: None for c in sorted(set(table["chrom"].astype(str)), key=chrom_sort_key)}


def _header(lengths: dict, reference, meta, haplotypes: bool) -> str:
    version = getattr(sys.modules[__package__], "__version__", None)
    lines = ["##fileformat=VCFv4.2", "##source=allelic" + (f" {version}" if version else "")]
    if reference is not None:
        lines.append(f"##reference={Path(reference).name}")
    lines += [f"##contig=<ID={c}>" if n is None else f"##contig=<ID={c},length={n}>" for c, n in lengths.items()]
    for key, value in (meta or {}).items():
        if not re.fullmatch(r"\w+", str(key)) or "\n" in str(value):
            raise ValueError(f"write_vcf: meta key {key!r} must be a word and its value one line, got {value!r}")
        lines.append(f"##allelic_{key}={value}")
    lines += [f'##INFO=<ID={k},Number={int(f.type != "Flag")},Type={f.type},Description="{f.description}">'
              for k, f in INFO.items() if haplotypes or f.column not in HAPLOTYPE_COLUMNS]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    return "\n".join(lines) + "\n"


def _info_text(t: pd.DataFrame) -> pd.Series:
    """The INFO column: ``KEY=value;`` per present value (the flag as ``AS;``), missing values left out."""
    info = pd.Series("", index=t.index)
    for k, f in INFO.items():
        if f.column not in t:
            continue
        v = t[f.column]
        if f.type == "Flag":
            text, present = pd.Series(f"{k};", index=t.index), v.astype(bool)
        elif f.type == "Float":
            text, present = k + "=" + v.astype(float).map("{:.6g}".format).astype(str) + ";", v.notna()
        else:
            s = v.astype(object).where(v.notna(), "").astype(str)    # Integer columns are int64 by now
            text, present = k + "=" + s + ";", s != ""
        info = info + text.where(present, "")
    return info.str[:-1]


def write_vcf(table: pd.DataFrame, path, *, reference=None, contigs=None, meta: dict | None = None) -> Path:
    """Write the AS catalogue as a bgzipped VCF ``path`` (ending ``.vcf.gz``) with its tabix index ``path.tbi``.

    Parameters
    ----------
    table : DataFrame with :data:`CATALOGUE_COLUMNS` (and optionally :data:`HAPLOTYPE_COLUMNS`), one row per
        SNV x test unit; ``pos`` 1-based.
    reference : path of a faidx-indexed FASTA: contig order and lengths, and the ``##reference`` line.
    contigs : dict contig -> length, instead of ``reference``. With neither, the table's contigs in natural order,
        without lengths.
    meta : extra header lines ``##allelic_<key>=<value>`` (e.g. ``{"fdr": 0.05, "test": "beta-binomial"}``).

    Returns the path. Records are sorted by contig order, ``pos``, ``donor``, ``tissue``, ``assay``. A bad row
    (see :func:`_checks`) is a ValueError naming ``path``, the row's index and ``chrom:pos``; nothing is written
    then, and a write that fails midway leaves no file at ``path`` (temporary names, then renames).
    """
    path = Path(os.fspath(path))
    if not path.name.endswith(".vcf.gz"):
        raise ValueError(f"{path}: a catalogue VCF's name must end in .vcf.gz (it is bgzipped and tabix-indexed)")
    t = table.copy()
    lengths = _contig_lengths(t, reference, contigs)
    _validate(t, lengths, path)
    t["chrom"], t[list(_INTS)] = t["chrom"].astype(str), t[list(_INTS)].astype(np.int64)
    t["_order"] = t["chrom"].map({c: i for i, c in enumerate(lengths)})
    t = t.sort_values(["_order", "pos", "donor", "tissue", "assay"], kind="stable")
    body = t["chrom"] + "\t" + t["pos"].astype(str) + "\t.\t" + t["ref"] + "\t" + t["alt"] + "\t.\tPASS\t"
    text = _header(lengths, reference, meta, any(c in t for c in HAPLOTYPE_COLUMNS))
    text += "".join(body + _info_text(t) + "\n")
    import pysam

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name[:-7]}.{uuid.uuid4().hex[:8]}.tmp.vcf.gz")
    try:
        with pysam.BGZFile(str(tmp), "wb") as fh:
            fh.write(text.encode())
        pysam.tabix_index(str(tmp), preset="vcf", force=True)
        os.replace(tmp, path)
        os.replace(f"{tmp}.tbi", f"{path}.tbi")
    finally:
        for p in (tmp, Path(f"{tmp}.tbi")):
            p.unlink(missing_ok=True)
    return path


def read_vcf(path, region: str | None = None) -> pd.DataFrame:
    """Read a catalogue VCF written by :func:`write_vcf` back into the catalogue table.

    ``region`` (``"chr1"`` or ``"chr1:100-200"``, 1-based inclusive) reads only its records, via the tabix index.
    Returns :data:`CATALOGUE_COLUMNS` (plus :data:`HAPLOTYPE_COLUMNS` when the header declares HAP1/HAP2) in file
    order: ints as int64, floats as float64 (parsed from the text, not htslib's float32), ``as_call`` bool,
    ``preferred_allele`` ``""`` where absent. A file that is not such a catalogue is a ValueError naming it.
    """
    import pysam

    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: catalogue VCF not found")
    try:
        with pysam.VariantFile(str(path)) as vf:
            declared = set(vf.header.info)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable VCF ({exc})") from None
    missing = [k for k, f in INFO.items() if f.column in CATALOGUE_COLUMNS and k not in declared]
    if missing:
        raise ValueError(f"{path}: not an allelic catalogue VCF; its header lacks INFO field(s) {missing}")
    fields = [k for k in INFO if k in declared]
    if region is None:
        with gzip.open(path, "rt") as fh:
            lines = [line for line in fh if not line.startswith("#")]
    else:
        try:
            with pysam.TabixFile(str(path)) as tbx:
                lines = list(tbx.fetch(region=region))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read region {region!r} ({exc}); is {path}.tbi there?") from None
    rows = []
    for line in lines:
        chrom, pos, _, ref, alt, _, _, info = line.rstrip("\n").split("\t")[:8]
        kv = dict(item.partition("=")[::2] for item in info.split(";"))
        absent = [k for k in fields if k not in kv and INFO[k].column in _INTS + ("donor", "tissue", "assay")]
        if absent:
            raise ValueError(f"{path}: record {chrom}:{pos} lacks INFO field(s) {absent}")
        rows.append([chrom, pos, ref, alt] + [kv.get(k) for k in fields])
    t = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt", *[INFO[k].column for k in fields]])
    for k in fields:
        c, kind = INFO[k].column, INFO[k].type
        if kind == "Flag":
            t[c] = t[c].notna().astype(bool)
        elif kind != "String":
            t[c] = pd.to_numeric(t[c]).astype(np.int64 if kind == "Integer" else np.float64)
        elif c == "preferred_allele":
            t[c] = t[c].fillna("").astype(object)
        else:
            t[c] = t[c].astype(object).where(t[c].notna(), np.nan)
    t["pos"] = t["pos"].astype(np.int64)
    return t[[c for c in CATALOGUE_COLUMNS + HAPLOTYPE_COLUMNS if c in t]]
