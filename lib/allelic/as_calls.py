"""The AS catalogue of a data set: count every BAM/CRAM of a sample sheet, test, write TSV and VCF.

    allelic count --samples samples.tsv --vcf phased.vcf.gz --reference genome.fa --out counts/ --jobs 4
    allelic test --counts counts/ --out as_catalogue.tsv

``allelic count`` checks the data set (:func:`allelic.samplesheet.load`) before any work, then writes one table per
sample (``<out>/<sample>.tsv.gz`` and its ledger, the cache chapter 01 and the workflow's ``count`` rule share) and
``<out>/dataset.json`` (the files and settings, what ``allelic test`` reads). ``allelic test`` runs chapter 02's test
(:func:`call`: null ratio and over-dispersion fitted per assay, beta-binomial p-values, Benjamini-Hochberg) on them
and combines each SNV's replicates in one exact test (:func:`allelic.stats.combine_replicates`); it writes

====================================  ===========================================================================
file                                  content
====================================  ===========================================================================
``<out>`` (e.g. ``as_catalogue.tsv``)  one row per SNV x donor x tissue x assay, replicates combined
                                      (:data:`allelic.catalogue.CATALOGUE_COLUMNS` and the replicates' labels)
``<stem>.vcf.gz`` (+ ``.tbi``)         the same rows as a sites-only VCF (bcftools, IGV; :mod:`allelic.catalogue`)
``<stem>.replicates.tsv.gz``           one row per SNV x replicate: its own test and call
``<stem>.params.tsv``                  the null ratio and over-dispersion of each assay
``<stem>.ledger.tsv``                  every SNV not tested, and why
====================================  ===========================================================================
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import config, io, samplesheet, stats
from .ledger import Ledger

#: chapter 02's test settings that ``allelic test`` uses unless told otherwise (its parameters under ``--profile``)
TEST_SETTINGS = ("min_total", "fdr", "null", "fit_by", "random_state")
COUNT_SETTINGS = ("min_base_quality", "min_mapping_quality")


@dataclass
class Calls:
    """Chapter 02's test of a counts table: ``replicates`` (:func:`allelic.stats.test_imbalance`'s result, one row per
    SNV x replicate) and ``catalogue`` (one row per SNV x donor x tissue x assay, replicates combined)."""

    replicates: stats.ImbalanceResult
    catalogue: pd.DataFrame


def call(counts: pd.DataFrame, *, min_total: int = 6, fdr: float = 0.1, null: str = "trimmed",
         fit_by=("assay",), random_state: int = 0) -> Calls:
    """Test every SNV x replicate (null ratio and over-dispersion fitted per ``fit_by`` group, BH over the table) and
    combine each SNV's replicates of one donor x tissue x assay (BH over the catalogue, calls at ``fdr``)."""
    res = stats.test_imbalance(counts, group_cols=tuple(fit_by), min_total=min_total, null=null, fdr=fdr,
                               random_state=random_state)
    cat = stats.combine_replicates(res.table, fdr=fdr)
    return Calls(replicates=res, catalogue=cat)


def write(calls: Calls, out, *, reference=None, meta: dict | None = None) -> dict:
    """Write the files of the module docstring for ``out`` (a ``.tsv`` path); returns ``{kind: path}``."""
    from . import catalogue

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.name[:-len(".tsv")] if out.name.endswith(".tsv") else out.name
    paths = {"catalogue": out, "vcf": out.with_name(f"{stem}.vcf.gz"),
             "replicates": out.with_name(f"{stem}.replicates.tsv.gz"),
             "params": out.with_name(f"{stem}.params.tsv"), "ledger": out.with_name(f"{stem}.ledger.tsv")}
    calls.catalogue.to_csv(paths["catalogue"], sep="\t", index=False)
    catalogue.write_vcf(calls.catalogue, paths["vcf"], reference=reference, meta=meta)
    calls.replicates.table.to_csv(paths["replicates"], sep="\t", index=False)
    calls.replicates.params.to_csv(paths["params"], sep="\t", index=False)
    calls.replicates.ledger.table().to_csv(paths["ledger"], sep="\t", index=False)
    return paths


# ---------------------------------------------------------------------------------------------------------------
# allelic count
# ---------------------------------------------------------------------------------------------------------------
def count(data: samplesheet.SampleSheet, out_dir, *, samples=None, n_jobs: int = 1, progress=None,
          **count_kw) -> pd.DataFrame:
    """Count ``data``'s files (or the ``samples`` named) into ``out_dir`` (one cached table per sample, see
    :func:`allelic.io.sheet_counts`), write ``out_dir/dataset.json``, ``ledger.tsv`` and ``phasing.tsv``; returns a
    summary with one row per sample (SNVs with reads, reads counted, seconds)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: count_kw[k] for k in COUNT_SETTINGS if k in count_kw}
    (out_dir / "dataset.json").write_text(json.dumps({
        "samples": str(data.path), "vcf": str(data.vcf), "reference": str(data.reference),
        "contig_map": {"vcf": data.vcf_contigs, "bams": data.bam_contigs}, "notes": data.notes,
        "settings": settings}, indent=1) + "\n")
    names = list(data.table["sample"]) if samples is None else list(samples)
    ledger, rows = Ledger(), []
    from .progress import bar

    for s in bar(names, desc="counting", unit="file", progress=progress):
        t0 = time.perf_counter()
        t = io.sheet_counts(data, samples=[s], ledger=ledger, cache_dir=out_dir, n_jobs=n_jobs, progress=False,
                            **count_kw)
        rows.append((s, len(t), int(t["total"].sum()), round(time.perf_counter() - t0, 2)))
    ledger.table().drop_duplicates().to_csv(out_dir / "ledger.tsv", sep="\t", index=False)
    data.phasing().to_csv(out_dir / "phasing.tsv", sep="\t", index=False)
    return pd.DataFrame(rows, columns=["sample", "snvs", "reads", "seconds"])


def counted(counts_dir) -> tuple[samplesheet.SampleSheet, pd.DataFrame, dict]:
    """The data set, counts table and count settings of a folder :func:`count` wrote (every sample must have been
    counted: a missing table is an error naming the sample, never a silent recount)."""
    counts_dir = Path(counts_dir)
    manifest = counts_dir / "dataset.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{counts_dir}: no dataset.json; write the counts with `allelic count ... --out "
                                f"{counts_dir}` first")
    m = json.loads(manifest.read_text())
    given = {**m["contig_map"]["vcf"], **{b: r for mp in m["contig_map"]["bams"].values() for r, b in mp.items()}}
    data = samplesheet.load(m["samples"], m["vcf"], m["reference"], contig_map=given)
    missing = [s for s in data.table["sample"] if not (counts_dir / f"{s}.tsv.gz").is_file()]
    if missing:
        raise FileNotFoundError(f"{counts_dir}: no counts for sample(s) {', '.join(missing[:5])}"
                                f"{' ...' if len(missing) > 5 else ''}; run `allelic count` for them")
    return data, io.sheet_counts(data, cache_dir=counts_dir, **m["settings"]), m["settings"]


def _positive_int(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return n


def count_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="allelic count", description="Count reads per allele at each donor's het SNVs "
                                 "in every BAM/CRAM of a sample sheet (one table per sample).")
    ap.add_argument("--samples", required=True, help="sample sheet (TSV: sample, donor, tissue, assay, bam[, peaks, "
                    "replicate]; paths relative to it)")
    ap.add_argument("--vcf", required=True, help="phased VCF, one column per donor, bgzipped and indexed")
    ap.add_argument("--reference", required=True, help="indexed FASTA (also the CRAM reference)")
    ap.add_argument("--out", required=True, help="folder for <sample>.tsv.gz, dataset.json, ledger.tsv, phasing.tsv")
    ap.add_argument("--contig-map", help="TSV 'name<TAB>reference name' for contig names no rule maps")
    ap.add_argument("--sample", action="append", help="count only this sample (repeatable; default: all)")
    ap.add_argument("--jobs", type=_positive_int, default=1, help="worker processes per file (default 1)")
    ap.add_argument("--min-base-quality", type=int, default=13)
    ap.add_argument("--min-mapping-quality", type=int, default=10)
    a = ap.parse_args(argv)
    try:
        data = samplesheet.load(a.samples, a.vcf, a.reference, contig_map=a.contig_map)
        for note in data.notes:
            print(f"note: {note}", file=sys.stderr)
        summary = count(data, a.out, samples=a.sample, n_jobs=a.jobs, min_base_quality=a.min_base_quality,
                        min_mapping_quality=a.min_mapping_quality)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary.to_string(index=False))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# allelic test
# ---------------------------------------------------------------------------------------------------------------
def test_main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="allelic test", description="Test the counts of `allelic count` for allelic "
                                 "imbalance (chapter 02's test) and write the AS catalogue as TSV and VCF.")
    ap.add_argument("--counts", required=True, help="the folder `allelic count --out` wrote")
    ap.add_argument("--out", required=True, help="catalogue TSV (beside it: .vcf.gz, .replicates.tsv.gz, "
                    ".params.tsv, .ledger.tsv)")
    ap.add_argument("--profile", default="default", help="take chapter 02's settings from this profile "
                    "(notebooks/profiles.yml; default: default)")
    ap.add_argument("--fdr", type=float, help="FDR level of the calls (default: the profile's)")
    ap.add_argument("--min-total", type=int, help="reads an SNV needs to be tested (default: the profile's)")
    a = ap.parse_args(argv)
    if not a.out.endswith(".tsv"):
        ap.error("--out must name a .tsv file")
    p = config.chapter_parameters(a.profile, "02")
    settings = {k: p[k] for k in TEST_SETTINGS}
    settings.update({k: v for k, v in (("fdr", a.fdr), ("min_total", a.min_total)) if v is not None})
    try:
        data, counts, count_settings = counted(a.counts)
        calls = call(counts, **settings)
        paths = write(calls, a.out, reference=data.reference,
                      meta={**{k: v for k, v in settings.items() if k != "fit_by"}, "fit_by": ",".join(settings["fit_by"]),
                            **count_settings, "test": "beta-binomial, replicates combined"})
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cat = calls.catalogue
    print(f"{len(cat):,} tests (SNV x donor x tissue x assay), {int(cat['as_call'].sum()):,} allele-specific at FDR {settings['fdr']}")
    for kind, path in paths.items():
        print(f"  {kind:<11} {path}")
    return 0


test_main.__test__ = False  # a command, not a pytest test
