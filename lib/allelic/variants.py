"""Heterozygous SNVs from a personal VCF, allelic depth from a VCF's ``AD``, and the result types of counting.

- :func:`read_het_snvs` -- a personal VCF -> the sample's heterozygous biallelic SNVs (:class:`Variants`).
- :func:`read_vcf_ad`   -- a VCF with per-sample ``AD`` -> reads per allele (:class:`AlleleCounts`), in the schema
  :func:`allelic.counts.count_alleles` writes (its docstring describes the columns).
- :func:`read_vcfs_ad`  -- several such VCFs in one table, a ``file`` column naming each row's file.

Every record a filter removes gets one row in the result's :class:`~allelic.ledger.Ledger`.
"""
from __future__ import annotations

import gzip
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from .bamscan import _quiet_htslib
from .ledger import Ledger

VARIANT_COLUMNS = ["chrom", "pos", "ref", "alt", "hap1_allele", "hap2_allele", "phased", "variant_id"]
COUNTS_COLUMNS = [
    "sample", "chrom", "pos", "ref", "alt", "ref_count", "alt_count", "other_count", "total",
    "hap1_count", "hap2_count", "n_filtered_reads",
]

_BASES = frozenset("ACGT")


# ----------------------------------------------------------------------------------------------
# result types
# ----------------------------------------------------------------------------------------------
@dataclass
class Variants:
    """Heterozygous biallelic SNVs of one sample.

    Attributes
    ----------
    table : DataFrame, one row per SNV (:data:`VARIANT_COLUMNS`):
        ``chrom`` (str, after ``contig_map``), ``pos`` (int64, 1-based), ``ref``, ``alt`` (single
        bases), ``hap1_allele``, ``hap2_allele`` (the alleles of the first / second GT entry; a
        haplotype assignment only where ``phased``), ``phased`` (bool, GT written with ``|``),
        ``variant_id`` (the VCF ID, or ``chrom:pos:ref:alt`` where the ID is ``.``).
    ledger : Ledger of the VCF records that were not kept (step ``read_het_snvs``).
    source : the VCF path.
    sample : the VCF sample the genotypes came from.
    """

    table: pd.DataFrame
    ledger: Ledger = field(default_factory=Ledger)
    source: str = ""
    sample: str | None = None

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class AlleleCounts:
    """Reads per allele at SNVs, one row per SNV x sample.

    Attributes
    ----------
    table : DataFrame with :data:`COUNTS_COLUMNS` (see the module docstring for units).
    ledger : Ledger of the SNVs (per sample) left out of ``table`` and why.
    params : the settings that produced the table (filters, files), for provenance.
    """

    table: pd.DataFrame
    ledger: Ledger = field(default_factory=Ledger)
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _existing_file(path, what: str) -> Path:
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    return p



def _parse_region(region):
    """``None`` | ``"chr1"`` | ``"chr1:1000-2000"`` (1-based, inclusive) | ``(chrom, start, end)`` -> tuple."""
    if region is None:
        return None
    if isinstance(region, str):
        m = re.fullmatch(r"\s*([^:\s]+)(?::([\d,]+)(?:-([\d,]+))?)?\s*", region)
        if not m:
            raise ValueError(f"region {region!r}: expected 'chrom', 'chrom:start-end' or (chrom, start, end)")
        chrom = m.group(1)
        start = int(m.group(2).replace(",", "")) if m.group(2) else 1
        end = int(m.group(3).replace(",", "")) if m.group(3) else (start if m.group(2) else math.inf)
        return chrom, start, end
    try:
        chrom, start, end = region
        return str(chrom), int(start), (math.inf if end is None else int(end))
    except (TypeError, ValueError):
        raise ValueError(f"region {region!r}: expected 'chrom', 'chrom:start-end' or (chrom, start, end)") from None


def _open_vcf(path: Path) -> pysam.VariantFile:
    try:
        with _quiet_htslib():
            return pysam.VariantFile(str(path))
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable VCF/BCF file ({e})") from e


def _pick_sample(vf: pysam.VariantFile, sample, path: Path) -> str:
    samples = list(vf.header.samples)
    if sample is None:
        if len(samples) == 1:
            return samples[0]
        if not samples:
            raise ValueError(f"{path}: the VCF has no sample columns; genotypes (GT) of one sample are needed")
        raise ValueError(f"{path}: the VCF has {len(samples)} samples {samples}; pass sample= one of them")
    if sample not in samples:
        raise ValueError(f"{path}: sample {sample!r} is not in the VCF; its samples are {samples}")
    return sample


def _vcf_record_line(path: Path, k: int) -> tuple[int | str, str]:
    """Line number and text (shortened) of the ``k``-th record (1-based) of a plain or (b)gzipped VCF."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", errors="replace") as fh:
            n = 0
            for i, line in enumerate(fh, 1):
                if line.startswith("#"):
                    continue
                n += 1
                if n == k:
                    line = line.rstrip("\n")
                    return i, (line if len(line) <= 160 else line[:160] + "...")
    except (OSError, EOFError, UnicodeDecodeError):
        pass
    return "?", "?"


def _warn_no_records(path: Path) -> None:
    warnings.warn(f"{path}: the VCF has a header but no records; nothing was read from it", stacklevel=3)


def _iter_vcf(vf: pysam.VariantFile, path: Path):
    """Yield records; a parse error names the file, the line number and the offending line."""
    it = iter(vf)
    n = 0
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except (ValueError, OSError) as e:
            line_no, text = _vcf_record_line(path, n + 1)
            raise ValueError(
                f"{path}: cannot parse VCF record #{n + 1} (line {line_no}: {text!r}): {e}; "
                "expected tab-separated VCF columns with FORMAT values matching the header"
            ) from e
        n += 1
        yield rec


def _snv_problem(ref: str, alts) -> tuple[str, str] | None:
    """Reason and detail if a record is not a biallelic single-base substitution."""
    if alts is None:
        return "not_heterozygous", "no ALT allele"
    if len(alts) > 1:
        return "multiallelic", f"ALT={','.join(alts)}"
    alt = alts[0]
    if len(ref) != 1 or len(alt) != 1:
        return "indel", f"REF={ref} ALT={alt} (not a single-base substitution)"
    if ref.upper() not in _BASES or alt.upper() not in _BASES:
        return "indel", f"REF={ref} ALT={alt} (alleles must be A/C/G/T)"
    return None


def _gt_string(gt, phased) -> str:
    if gt is None:
        return "."
    return ("|" if phased else "/").join("." if a is None else str(a) for a in gt)


def _genotype_problem(gt) -> tuple[str, str] | None:
    # details are interned: a whole-genome VCF puts millions of hom records in the ledger
    if gt is None or len(gt) == 0 or any(a is None for a in gt):
        return "missing_genotype", sys.intern(f"GT={_gt_string(gt, False)}")
    if len(gt) != 2 or gt[0] == gt[1]:
        return "not_heterozygous", sys.intern(f"GT={_gt_string(gt, False)}")
    return None


# ----------------------------------------------------------------------------------------------
# read_het_snvs
# ----------------------------------------------------------------------------------------------
def read_het_snvs(vcf_path, sample=None, *, contig_map=None, require_phased=False, region=None) -> Variants:
    """Heterozygous biallelic SNVs of one sample from a VCF/BCF.

    Parameters
    ----------
    vcf_path : path to a VCF (plain or bgzipped; an index is not needed) or BCF.
    sample : VCF sample name; ``None`` takes the only sample (error listing the samples if several).
    contig_map : dict renaming VCF contigs for the output ``chrom`` (e.g. ``{"1": "chr1"}``);
        contigs not in the dict keep their name.
    require_phased : drop unphased genotypes (ledger reason ``unphased``).
    region : ``"chr1"``, ``"chr1:1000-2000"`` (1-based, inclusive) or ``(chrom, start, end)``; the
        chrom may be given in VCF or output (``contig_map``) naming. The whole file is read and
        records outside are listed as ``off_region``.

    Returns
    -------
    Variants
        ``table`` with :data:`VARIANT_COLUMNS`, one row per kept SNV in file order; ``ledger`` with
        one row per record not kept, ``record`` = ``chrom:pos`` as written in the VCF, reason one of
        ``off_region``, ``multiallelic``, ``indel`` (any non single-base A/C/G/T substitution,
        symbolic alleles included), ``missing_genotype``, ``not_heterozygous`` (hom, haploid,
        no ALT), ``unphased`` (only with ``require_phased``), ``duplicate_position`` (a later record
        at an already kept chrom:pos).

    Raises
    ------
    FileNotFoundError if the file is missing; ValueError for a sample that is not in the VCF
    (listing the samples) or a record that cannot be parsed (naming the line).
    """
    path = _existing_file(vcf_path, "VCF")
    contig_map = dict(contig_map or {})
    reg = _parse_region(region)
    ledger = Ledger()
    step, src = "read_het_snvs", str(path)
    rows = []
    seen = set()
    with _open_vcf(path) as vf:
        sample = _pick_sample(vf, sample, path)
        s_idx = list(vf.header.samples).index(sample)
        n_records = 0
        for rec in _iter_vcf(vf, path):
            n_records += 1
            chrom, pos = rec.chrom, rec.pos
            out_chrom = contig_map.get(chrom, chrom)
            where = f"{chrom}:{pos}"
            if reg is not None and (reg[0] not in (chrom, out_chrom) or not reg[1] <= pos <= reg[2]):
                ledger.add(step, src, where, "off_region", f"outside {region}")
                continue
            ref, alts = rec.ref, rec.alts
            bad = _snv_problem(ref, alts)
            if bad is None:
                smp = rec.samples[s_idx]
                gt = smp.get("GT") if "GT" in rec.format else None
                bad = _genotype_problem(gt)
            if bad is not None:
                ledger.add(step, src, where, *bad)
                continue
            phased = bool(smp.phased)
            if require_phased and not phased:
                ledger.add(step, src, where, "unphased", f"GT={_gt_string(gt, False)}")
                continue
            key = (out_chrom, pos)
            if key in seen:
                ledger.add(step, src, where, "duplicate_position", f"REF={ref} ALT={alts[0]}; an earlier record at this position was kept")
                continue
            seen.add(key)
            alleles = (ref.upper(), alts[0].upper())
            vid = rec.id if rec.id else f"{out_chrom}:{pos}:{alleles[0]}:{alleles[1]}"
            rows.append((out_chrom, pos, alleles[0], alleles[1], alleles[gt[0]], alleles[gt[1]], phased, vid))
    if n_records == 0:
        _warn_no_records(path)
    table = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    table["pos"] = table["pos"].astype(np.int64)
    table["phased"] = table["phased"].astype(bool)
    return Variants(table=table, ledger=ledger, source=src, sample=sample)


# ----------------------------------------------------------------------------------------------
# read_vcf_ad
# ----------------------------------------------------------------------------------------------
def read_vcf_ad(vcf_path, *, sample=None, contig_map=None) -> AlleleCounts:
    """Allelic depth (``FORMAT/AD`` = ref,alt read counts) of one sample, in the counts schema.

    Parameters
    ----------
    vcf_path : VCF/BCF with ``GT`` and ``AD`` per sample (plain or bgzipped, no index needed).
    sample : VCF sample name; ``None`` takes the only sample (error listing them if several).
    contig_map : dict renaming VCF contigs for the output ``chrom``.

    Returns
    -------
    AlleleCounts
        ``table`` with :data:`COUNTS_COLUMNS`: ``ref_count, alt_count = AD``, ``other_count = 0``,
        ``total = ref_count + alt_count``, ``hap1_count``/``hap2_count`` the AD of the first/second
        GT allele where GT is phased (NaN where unphased), ``n_filtered_reads`` NaN. ``ledger``
        (step ``read_vcf_ad``): ``multiallelic``, ``indel``, ``missing_genotype``,
        ``not_heterozygous``, ``missing_ad`` (no AD, or a missing value in it), ``malformed_ad``
        (number of values != number of alleles, or negative), ``no_coverage`` (AD = 0,0, kept out
        of the table like zero-coverage SNVs in :func:`count_alleles`), ``duplicate_position``.
        Records in file order; for every file, table rows + ledger rows = records.
    """
    path = _existing_file(vcf_path, "VCF")
    contig_map = dict(contig_map or {})
    ledger = Ledger()
    step, src = "read_vcf_ad", str(path)
    rows = []
    seen = set()
    n_records = 0
    with _open_vcf(path) as vf:
        sample = _pick_sample(vf, sample, path)
        s_idx = list(vf.header.samples).index(sample)
        declared = "AD" in vf.header.formats
        for rec in _iter_vcf(vf, path):
            n_records += 1
            chrom, pos = rec.chrom, rec.pos
            where = f"{chrom}:{pos}"
            if n_records == 1 and not declared and "AD" not in rec.format:
                raise ValueError(
                    f"{path}: the header declares no FORMAT/AD and the first record ({where}) has none; read_vcf_ad "
                    f"needs each sample's reference,alternative read counts in AD (FORMAT fields here: "
                    f"{list(vf.header.formats) or 'none'})")
            ref, alts = rec.ref, rec.alts
            bad = _snv_problem(ref, alts)
            smp = rec.samples[s_idx]
            if bad is None:
                bad = _genotype_problem(smp.get("GT") if "GT" in rec.format else None)
            if bad is not None:
                ledger.add(step, src, where, *bad)
                continue
            gt = smp["GT"]
            ad = smp.get("AD") if "AD" in rec.format else None
            if isinstance(ad, str):  # AD not declared in the header: htslib keeps the raw text
                try:
                    ad = tuple(None if v in (".", "") else int(v) for v in ad.split(","))
                except ValueError:
                    ledger.add(step, src, where, "malformed_ad", f"AD={ad!r} is not integers")
                    continue
            elif isinstance(ad, int):
                ad = (ad,)
            if ad is None or len(ad) == 0 or all(v is None for v in ad):
                ledger.add(step, src, where, "missing_ad", "no AD value")
                continue
            if len(ad) != len(rec.alleles):
                ledger.add(step, src, where, "malformed_ad",
                           f"AD={','.join('.' if v is None else str(v) for v in ad)} has {len(ad)} values, "
                           f"expected {len(rec.alleles)} (ref,alt)")
                continue
            if any(v is None for v in ad):
                ledger.add(step, src, where, "missing_ad", f"AD={','.join('.' if v is None else str(v) for v in ad)}")
                continue
            if any(v < 0 for v in ad):
                ledger.add(step, src, where, "malformed_ad", f"AD={','.join(map(str, ad))} has a negative value")
                continue
            if ad[0] + ad[1] == 0:
                ledger.add(step, src, where, "no_coverage", "AD=0,0")
                continue
            out_chrom = contig_map.get(chrom, chrom)
            if (out_chrom, pos) in seen:
                ledger.add(step, src, where, "duplicate_position", "an earlier record at this position was kept")
                continue
            seen.add((out_chrom, pos))
            phased = bool(smp.phased)
            h1 = float(ad[gt[0]]) if phased else np.nan
            h2 = float(ad[gt[1]]) if phased else np.nan
            rows.append((sample, out_chrom, pos, ref.upper(), alts[0].upper(), ad[0], ad[1], 0, ad[0] + ad[1], h1, h2, np.nan))
    if n_records == 0:
        _warn_no_records(path)
    table = _counts_frame(rows)
    return AlleleCounts(table=table, ledger=ledger, params={"source": src, "sample": sample, "contig_map": contig_map})


def read_vcfs_ad(vcf_paths, *, sample=None, contig_map=None) -> AlleleCounts:
    """:func:`read_vcf_ad` of several VCFs (one sample each, e.g. the replicates of a ChIP-seq experiment), in one
    table with a ``file`` column (the file's name) after :data:`COUNTS_COLUMNS`, so that each file is a group of
    :func:`allelic.stats.test_imbalance` (``group_cols=("file",)``, ``fdr_by_group=True`` gives each file its own
    null fit and BH family, as testing the files one by one does). The ledgers are concatenated; ``params`` lists the
    files. An empty list of paths is a ValueError."""
    paths = [Path(os.fspath(p)) for p in vcf_paths]
    if not paths:
        raise ValueError("read_vcfs_ad: no VCF given")
    names = [p.name for p in paths]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"read_vcfs_ad: file names must be unique (they label the rows), repeated: {dup}")
    ledger, tables = Ledger(), []
    for p in paths:
        ad = read_vcf_ad(p, sample=sample, contig_map=contig_map)
        ledger.merge(ad.ledger)
        tables.append(ad.table.assign(file=p.name))
    return AlleleCounts(table=pd.concat(tables, ignore_index=True), ledger=ledger,
                        params={"files": [str(p) for p in paths], "sample": sample, "contig_map": dict(contig_map or {})})


def _counts_frame(rows) -> pd.DataFrame:
    t = pd.DataFrame(rows, columns=COUNTS_COLUMNS)
    for c in ["pos", "ref_count", "alt_count", "other_count", "total"]:
        t[c] = t[c].astype(np.int64)
    for c in ["hap1_count", "hap2_count", "n_filtered_reads"]:
        t[c] = t[c].astype(np.float64)
    return t
