"""Readers that bring external allelic tables into the book's counts schema.

The counts schema (one row per SNV x sample; shared with :func:`allelic.counts.count_alleles`):

=================  =====================================================================
column             meaning
=================  =====================================================================
``sample``         measurement id (``<donor>_<tissue>_<assay>`` for EN-TEx-style data)
``donor``          individual
``tissue``         tissue or cell type
``assay``          CTCF, POL2, H3K4me3, H3K27ac, RNA, ...
``chrom``, ``pos``  SNV position (1-based)
``ref``, ``alt``   reference and alternative base
``hap1_allele``,   bases on the donor's two haplotypes (when phased)
``hap2_allele``
``ref_count``,     reads supporting each allele; ``total = ref_count + alt_count``
``alt_count``
=================  =====================================================================

EN-TEx tables (``labels.tsv.gz``, ``windows.tsv.gz``; see ``../shared/data/entex_ctcf/SOURCE.md``) are read in place
from the folder given as a parameter or ``$ALLELIC_ENTEX_DIR`` — never copied into the repository.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, config
from .counts import count_alleles
from .ledger import Ledger

LABEL_COLUMNS = ["chr", "pos", "ref_allele", "hap1_allele", "hap2_allele", "donor", "tissue", "assay",
                 "ref_reads", "total_reads", "ref_allele_ratio", "as_label", "subset"]
WINDOW_COLUMNS = ["chr", "pos", "ref_allele", "alleles", "length", "snv_offset", "sequence"]
COUNT_COLUMNS = ["sample", "donor", "tissue", "assay", "chrom", "pos", "ref", "alt", "hap1_allele", "hap2_allele",
                 "ref_count", "alt_count", "total"]


def _read_table(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, sep="\t", low_memory=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot be read as a tab-separated table ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    if df.empty:
        raise ValueError(f"{path}: no data rows")
    return df


def _bad_rows(path: Path, mask, what: str, df: pd.DataFrame) -> None:
    """Raise naming the first offending data line (line 1 is the header)."""
    mask = np.asarray(mask)
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        raise ValueError(f"{path}: line {i + 2}: {what} (record {df.iloc[i].to_dict()}); {int(mask.sum())} such row(s)")


def read_entex_labels(entex_dir=None, *, deduplicate: bool = True, ledger: Ledger | None = None) -> pd.DataFrame:
    """EN-TEx allele-specific measurements (``labels.tsv.gz``) in the counts schema.

    ``hap1_count`` / ``hap2_count`` are the reads of each haplotype's allele (the personal genome is phased).
    Extra columns: ``as_label`` (the catalogue's AS call, 0/1), ``subset`` (comma-joined subsets a measurement is in).
    With ``deduplicate`` a measurement listed in both subsets becomes one row (recorded in ``ledger`` as
    ``duplicate_measurement``). Rows whose reference base is on neither haplotype are removed (``ref_not_in_genotype``).
    Raises ValueError naming the file and line for malformed rows (counts not integers, ref reads above total,
    alleles that are not A/C/G/T)."""
    d = config.entex_dir(entex_dir)
    if d is None:
        raise FileNotFoundError("no EN-TEx directory: pass entex_dir or set ALLELIC_ENTEX_DIR (e.g. ../shared/data/entex_ctcf)")
    path = d / "labels.tsv.gz"
    ledger = ledger if ledger is not None else Ledger()
    df = _read_table(path, LABEL_COLUMNS)
    for col in ("pos", "ref_reads", "total_reads", "as_label"):
        num = pd.to_numeric(df[col], errors="coerce")
        _bad_rows(path, num.isna() | (num % 1 != 0), f"column {col} is not an integer", df)
        df[col] = num.astype(np.int64)
    _bad_rows(path, (df["ref_reads"] < 0) | (df["ref_reads"] > df["total_reads"]), "ref_reads outside 0..total_reads", df)
    for col in ("ref_allele", "hap1_allele", "hap2_allele"):
        _bad_rows(path, ~df[col].astype(str).str.fullmatch("[ACGT]"), f"{col} is not one of A, C, G, T", df)
    rec = df["chr"].astype(str) + ":" + df["pos"].astype(str)
    bad = (df["hap1_allele"] != df["ref_allele"]) & (df["hap2_allele"] != df["ref_allele"])
    ledger.extend("read_entex_labels", path, (rec[bad] + " " + df.loc[bad, "donor"]).tolist(), "ref_not_in_genotype")
    hom = df["hap1_allele"] == df["hap2_allele"]
    ledger.extend("read_entex_labels", path, (rec[hom & ~bad] + " " + df.loc[hom & ~bad, "donor"]).tolist(), "not_heterozygous")
    df = df[~bad & ~hom].copy()
    out = pd.DataFrame({
        "sample": df["donor"] + "_" + df["tissue"] + "_" + df["assay"],
        "donor": df["donor"], "tissue": df["tissue"], "assay": df["assay"],
        "chrom": df["chr"].astype(str), "pos": df["pos"], "ref": df["ref_allele"],
        "alt": np.where(df["hap1_allele"] == df["ref_allele"], df["hap2_allele"], df["hap1_allele"]),
        "hap1_allele": df["hap1_allele"], "hap2_allele": df["hap2_allele"],
        "ref_count": df["ref_reads"], "alt_count": df["total_reads"] - df["ref_reads"], "total": df["total_reads"],
        "as_label": df["as_label"], "subset": df["subset"].astype(str),
    })
    hap1_is_ref = (out["hap1_allele"] == out["ref"]).to_numpy()
    out.insert(12, "hap1_count", np.where(hap1_is_ref, out["ref_count"], out["alt_count"]).astype(float))
    out.insert(13, "hap2_count", np.where(hap1_is_ref, out["alt_count"], out["ref_count"]).astype(float))
    if deduplicate:
        key = ["sample", "chrom", "pos", "ref_count", "total"]
        subsets = out.groupby(key, sort=False)["subset"].transform(lambda s: ",".join(sorted(set(s))))
        dup = out.duplicated(key)
        ledger.extend("read_entex_labels", path, (out.loc[dup, "sample"] + " " + out.loc[dup, "chrom"] + ":" +
                                                  out.loc[dup, "pos"].astype(str)).tolist(), "duplicate_measurement",
                      "same measurement listed in several subsets; kept once")
        out = out.assign(subset=subsets)[~dup]
    return out.reset_index(drop=True)


def read_entex_windows(entex_dir=None, *, window: int = 200) -> pd.DataFrame:
    """Reference sequence windows of ``window`` bp around each EN-TEx SNV (SNV at offset ``window // 2``).

    Columns ``chrom, pos, ref, alleles, sequence``. Raises ValueError naming the line when the window is too short,
    or when the base at the SNV offset is not the reference allele (wrong genome build or shifted coordinates)."""
    d = config.entex_dir(entex_dir)
    if d is None:
        raise FileNotFoundError("no EN-TEx directory: pass entex_dir or set ALLELIC_ENTEX_DIR")
    path = d / "windows.tsv.gz"
    df = _read_table(path, WINDOW_COLUMNS)
    seq = df["sequence"].astype(str).str.upper()
    off = pd.to_numeric(df["snv_offset"], errors="coerce")
    _bad_rows(path, off.isna(), "snv_offset is not an integer", df)
    off = off.astype(int).to_numpy()
    half = window // 2
    lens = seq.str.len().to_numpy()
    _bad_rows(path, (off - half < 0) | (off + (window - half) > lens), f"window of {window} bp does not fit around snv_offset", df)
    at = np.array([s[o] for s, o in zip(seq, off)])
    _bad_rows(path, at != df["ref_allele"].to_numpy(), "base at snv_offset differs from ref_allele (wrong build or coordinates?)", df)
    cut = [s[o - half:o - half + window] for s, o in zip(seq, off)]
    return pd.DataFrame({"chrom": df["chr"].astype(str), "pos": df["pos"].astype(int), "ref": df["ref_allele"],
                         "alleles": df["alleles"], "sequence": cut})


def sheet_counts(data, *, samples=None, ledger: Ledger | None = None, cache_dir=None, **count_kw) -> pd.DataFrame:
    """Count every BAM/CRAM of a data set at its donor's het SNVs, in the counts schema (plus ``replicate``, ``unit``).

    ``data``: a :class:`allelic.samplesheet.SampleSheet` (your own data, or the simulator's through
    :func:`allelic.samplesheet.from_simulation`) or a :class:`allelic.simulate.Simulation`. ``samples`` restricts to
    some sample names; ``count_kw`` go to :func:`allelic.counts.count_alleles` (``min_base_quality``,
    ``min_mapping_quality``, ``n_jobs``, ...); each file is read under its own contig names and a CRAM against the
    sheet's reference. SNVs the VCF reader, the reference check or the counter removed are appended to ``ledger``.
    ``cache_dir``: each sample's counts and ledger are kept in ``<cache_dir>/<sample>.tsv.gz`` and
    ``<sample>.ledger.tsv``, keyed by the file, the VCF and the counting settings (:mod:`allelic.cache`), and read
    back instead of counted again; the workflow's ``count`` rule (one job per BAM) writes them."""
    from . import samplesheet

    if not isinstance(data, samplesheet.SampleSheet):
        data = samplesheet.from_simulation(data)
    meta = data.samples()
    if samples is not None:
        unknown = sorted(set(samples) - set(meta["sample"]))
        if unknown:
            raise ValueError(f"unknown sample(s) {', '.join(unknown)} in {data.path}")
        meta = meta[meta["sample"].isin(samples)]
    het = {d: data.het_snvs(d) for d in meta["donor"].unique()}
    bams = dict(zip(meta["sample"], meta["bam"]))
    variants = {s: het[d] for s, d in zip(meta["sample"], meta["donor"])}

    def settings(s):
        kw = dict(count_kw)
        if data.contig_map(s):
            kw["contig_map"] = data.contig_map(s)
        if Path(bams[s]).suffix.lower() == ".cram":
            kw["reference"] = data.reference
        return kw

    if cache_dir is None and all(settings(s) == count_kw for s in bams):  # one call: processes shared by all files
        res = count_alleles(bams, variants, **count_kw)
        parts, count_ledger = [res.table], res.ledger
    else:
        parts, count_ledger = [], Ledger()
        for s in meta["sample"]:
            t, lg = count_sample(bams[s], variants[s], sample=s, vcf=data.vcf, cache_dir=cache_dir, **settings(s))
            parts.append(t)
            count_ledger.merge(lg)
    if ledger is not None:
        for v in het.values():
            ledger.merge(v.ledger)
        ledger.merge(count_ledger)
    t = pd.concat(parts, ignore_index=True).merge(meta[["sample", "donor", "tissue", "assay", "replicate", "unit"]],
                                                   on="sample", how="left")
    haps = pd.concat([v.table[["chrom", "pos", "hap1_allele", "hap2_allele"]].assign(donor=d) for d, v in het.items()])
    t = t.drop(columns=[c for c in ("hap1_allele", "hap2_allele") if c in t]).merge(haps, on=["donor", "chrom", "pos"], how="left")
    extra = [c for c in t.columns if c not in COUNT_COLUMNS]
    return t[[c for c in COUNT_COLUMNS if c in t.columns] + extra]


def simulation_counts(sim, **kw) -> pd.DataFrame:
    """:func:`sheet_counts` of a :class:`allelic.simulate.Simulation`."""
    return sheet_counts(sim, **kw)


#: bumped when counting changes what it returns for the same BAM, VCF and settings (cache key)
COUNT_FORMAT = 1
_NOT_IN_COUNT_KEY = ("n_jobs", "progress")


def count_sample(bam, variants, *, sample: str, vcf, cache_dir, **count_kw) -> tuple[pd.DataFrame, Ledger]:
    """One BAM counted at its donor's SNVs (:func:`allelic.counts.count_alleles`), through the cache
    ``<cache_dir>/<sample>.tsv.gz`` (+ ``<sample>.ledger.tsv``) keyed by the BAM and VCF (name, size, time),
    ``sample`` and the counting settings (``cache_dir=None``: counted, nothing kept). Returns the count table and the
    counter's ledger."""
    if cache_dir is None:
        res = count_alleles({sample: bam}, {sample: variants}, **count_kw)
        return res.table, res.ledger
    k = cache.key("counts", COUNT_FORMAT, sample, cache.file_stamp(bam), cache.file_stamp(vcf),
                  {a: v for a, v in count_kw.items() if a not in _NOT_IN_COUNT_KEY})
    d = Path(cache_dir)
    table, led = cache.read(d / f"{sample}.tsv.gz", k), cache.read(d / f"{sample}.ledger.tsv", k)
    if table is not None and led is not None:
        return table, Ledger(list(led.itertuples(index=False, name=None)))
    res = count_alleles({sample: bam}, {sample: variants}, **count_kw)
    cache.write(d / f"{sample}.tsv.gz", k, res.table, bam=str(bam))
    cache.write(d / f"{sample}.ledger.tsv", k, res.ledger.table())
    return res.table, res.ledger
