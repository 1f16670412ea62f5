"""Reads per allele at heterozygous SNVs (BAM/CRAM) and allelic depth from a VCF (``AD``).

The VCF readers and the result types live in :mod:`allelic.variants`, the record-level engine in
:mod:`allelic.bamscan`; this module counts (:func:`count_alleles`) and names all three entry points.

Three entry points, one output schema:

- :func:`read_het_snvs` -- a personal VCF -> the sample's heterozygous biallelic SNVs (:class:`Variants`).
- :func:`count_alleles` -- BAM/CRAM files x SNVs -> reads per allele (:class:`AlleleCounts`).
- :func:`read_vcf_ad`   -- a VCF with per-sample ``AD`` -> the same :class:`AlleleCounts` schema.

Every record a filter removes gets one row in the result's :class:`~allelic.ledger.Ledger`
(``step``, ``source``, ``record`` = ``chrom:pos`` as written in the input, ``reason``, ``detail``).

Counts table (:data:`COUNTS_COLUMNS`), one row per SNV x sample, in the order of the input SNVs:

==================  =======  ==============================================================
column              dtype    meaning
==================  =======  ==============================================================
sample              str      BAM sample name (file stem or dict key) / VCF sample name
chrom               str      contig as named in the *variants* input (not the BAM's name)
pos                 int64    1-based position
ref, alt            str      single bases A/C/G/T
ref_count           int64    reads (fragments) showing ``ref``
alt_count           int64    reads showing ``alt``
other_count         int64    reads showing any other base (third allele, ``N``, IUPAC)
total               int64    ``ref_count + alt_count`` (``other`` excluded)
hap1_count          float64  reads showing ``hap1_allele``; NaN when the SNV is unphased or
                             haplotype alleles were not given
hap2_count          float64  same for ``hap2_allele``
n_filtered_reads    float64  reads that passed the read-level filters (flags, MAPQ) and overlap
                             the SNV but were not counted: base quality below the threshold,
                             deletion / reference skip at the SNV, the second mate of an
                             overlapping pair, a discordant pair with tied base qualities.
                             NaN for :func:`read_vcf_ad` (not known from ``AD``).
==================  =======  ==============================================================
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
import warnings
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
from tqdm import tqdm

from . import bamscan
from .bamscan import _count_region_raw, _quiet_htslib, _raw_kernels, _raw_reader
from .ledger import Ledger
from .progress import show_progress
from .reference import check_on_ref_mismatch, fetch_bases, open_fasta, ref_mismatches
from .variants import (COUNTS_COLUMNS, VARIANT_COLUMNS, AlleleCounts, Variants, _BASES, _counts_frame,
                       _existing_file, read_het_snvs, read_vcf_ad, read_vcfs_ad)

__all__ = [
    "Variants",
    "AlleleCounts",
    "read_het_snvs",
    "count_alleles",
    "read_vcf_ad",
    "read_vcfs_ad",
    "VARIANT_COLUMNS",
    "COUNTS_COLUMNS",
]

# SAM flag bits
_F_PAIRED, _F_UNMAP, _F_SECONDARY, _F_QCFAIL, _F_DUP, _F_SUPPLEMENTARY = 0x1, 0x4, 0x100, 0x200, 0x400, 0x800
# CIGAR operations that consume the reference / the query
_CIG_MATCH = (0, 7, 8)  # M, =, X
_CIG_INS_CLIP = (1, 4)  # I, S
_CIG_DEL_SKIP = (2, 3)  # D, N
# Tuning of the region splitting (count_alleles' planning); they change speed, never results.
# A new fetch (index query: seek + inflate a BGZF block) costs ~200 us, iterating one read in Python
# ~0.6 us: a gap between SNVs starts a new fetch when it holds more than ~_SPLIT_READS reads, as
# estimated from the index (mapped reads / contig length).
_SPLIT_READS = 500
_MIN_GAP, _MAX_GAP = 1_000, 1_000_000  # bounds on that gap, bp
_TASK_SNVS = 20_000  # most SNVs per task (one task = one process call)
_MIN_TASK_SNVS = 200  # with n_jobs > 1, tasks are cut to ~1/4 of an even share, but not below this


# ----------------------------------------------------------------------------------------------
# count_alleles: input normalisation
# ----------------------------------------------------------------------------------------------
def _normalise_bams(bams) -> dict[str, Path]:
    if isinstance(bams, (str, os.PathLike)):
        bams = [bams]
    if isinstance(bams, Mapping):
        out = {str(k): Path(os.fspath(v)) for k, v in bams.items()}
    else:
        out = {}
        for b in bams:
            p = Path(os.fspath(b))
            if p.stem in out:
                raise ValueError(f"two BAM/CRAM files share the sample name (file stem) {p.stem!r}: "
                                 f"{out[p.stem]} and {p}; pass a dict {{sample: path}}")
            out[p.stem] = p
    if not out:
        raise ValueError("bams is empty: expected a path, a list of paths or a dict {sample: path}")
    return out


def _variants_table(v, what: str, ledger: Ledger) -> pd.DataFrame:
    """Validated SNV table: chrom (str), pos (int64), ref, alt, hap1, hap2 (str or None), phased (bool)."""
    if isinstance(v, Variants):
        df, what = v.table, (v.source or what)
    elif isinstance(v, pd.DataFrame):
        df = v
    else:
        raise TypeError(f"{what}: expected a Variants, a DataFrame with chrom,pos,ref,alt or a dict "
                        f"{{sample: Variants}}, got {type(v).__name__}")
    missing = [c for c in ("chrom", "pos", "ref", "alt") if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: variants table lacks column(s) {missing}; expected chrom, pos (1-based), ref, alt "
                         "(+ optional hap1_allele, hap2_allele, phased)")
    out = pd.DataFrame({"chrom": df["chrom"].astype(str).to_numpy()})
    pos = pd.to_numeric(df["pos"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(pos) | (pos < 1) | (pos != np.floor(pos))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: row {i} ({out['chrom'].iat[i]}:{df['pos'].iat[i]}): pos must be a 1-based integer")
    out["pos"] = pos.astype(np.int64)
    for c in ("ref", "alt"):
        vals = df[c].astype(str).str.upper().to_numpy()
        ok = np.isin(vals, list(_BASES))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{what}: row {i} ({out['chrom'].iat[i]}:{out['pos'].iat[i]}): {c} {df[c].iat[i]!r} "
                             "is not a single base A/C/G/T (count_alleles counts SNVs only)")
        out[c] = vals
    same = out["ref"].to_numpy() == out["alt"].to_numpy()
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise ValueError(f"{what}: row {i} ({out['chrom'].iat[i]}:{out['pos'].iat[i]}): ref and alt are both {out['ref'].iat[i]!r}")
    has_hap = "hap1_allele" in df.columns and "hap2_allele" in df.columns
    for k, c in (("hap1", "hap1_allele"), ("hap2", "hap2_allele")):
        if has_hap:
            vals = df[c].to_numpy(dtype=object)
            vals = np.array([None if pd.isna(x) else str(x).upper() for x in vals], dtype=object)
            ok = np.array([x is None or x in (r, a) for x, r, a in zip(vals, out["ref"], out["alt"])], dtype=bool)
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise ValueError(f"{what}: row {i} ({out['chrom'].iat[i]}:{out['pos'].iat[i]}): {c} {vals[i]!r} "
                                 "is neither ref nor alt")
            out[k] = vals
        else:
            out[k] = None
    if "phased" in df.columns and has_hap:
        out["phased"] = np.array([bool(x) if not pd.isna(x) else False for x in df["phased"]], dtype=bool)
    else:
        out["phased"] = has_hap
    out["phased"] &= out["hap1"].notna().to_numpy() & out["hap2"].notna().to_numpy()
    dup = out.duplicated(["chrom", "pos"], keep="first").to_numpy()
    if dup.any():
        d = out[dup]
        for c, p in zip(d["chrom"], d["pos"]):
            ledger.add("count_alleles", what, f"{c}:{p}", "duplicate_position", "an earlier SNV at this position was kept")
        out = out[~dup]
    out.index = pd.RangeIndex(len(out))
    return out


def _open_alignments(path: Path, reference) -> pysam.AlignmentFile:
    """Open a BAM/CRAM with its index; errors name the file and the fix."""
    path = _existing_file(path, "BAM/CRAM")
    is_cram = path.suffix.lower() == ".cram"
    if is_cram and reference is None and not (os.environ.get("REF_PATH") or os.environ.get("REF_CACHE")):
        raise ValueError(f"{path}: reading a CRAM needs the reference FASTA it was written against: pass reference=")
    kwargs = {"reference_filename": str(reference)} if (is_cram and reference is not None) else {}
    try:
        with _quiet_htslib():
            af = pysam.AlignmentFile(str(path), "r", require_index=False, **kwargs)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable BAM/CRAM file ({e})") from e
    if not af.has_index():
        af.close()
        raise FileNotFoundError(
            f"{path}: no index found (.bai/.csi/.crai next to the file); random access per contig needs one. "
            f"Create it with `samtools index {path}` (or pysam.index({str(path)!r}))"
        )
    return af


def _contig_suggestion(var_contigs, bam_contigs) -> str:
    bam_set = set(bam_contigs)
    sugg = {}
    for c in var_contigs:
        for cand in (f"chr{c}", c[3:] if c.startswith("chr") else None, "chrM" if c == "MT" else None, "MT" if c == "chrM" else None):
            if cand and cand in bam_set:
                sugg[c] = cand
                break
    if sugg:
        items = list(sugg.items())[:3]
        shown = ", ".join(f"{k!r}: {v!r}" for k, v in items) + (", ..." if len(sugg) > 3 else "")
        return f"the names differ by a 'chr' prefix (variants use {items[0][0]!r}, the BAM {items[0][1]!r}): pass contig_map={{{shown}}}"
    return "pass contig_map={variant_contig: bam_contig} if the names differ"


# ----------------------------------------------------------------------------------------------
# count_alleles: the counting engine
# ----------------------------------------------------------------------------------------------
def _query_pos(cigar, start: int, p: int) -> int:
    """Query index of the base aligned to reference position ``p`` (0-based); -1 in a deletion / skip."""
    rpos, qpos = start, 0
    for op, n in cigar:
        if op in _CIG_MATCH:
            if p < rpos + n:
                return qpos + p - rpos
            rpos += n
            qpos += n
        elif op in _CIG_INS_CLIP:
            qpos += n
        elif op in _CIG_DEL_SKIP:
            if p < rpos + n:
                return -1
            rpos += n
    return -1


class _NoQualities:
    """Stand-in for the qualities of a read stored without them (QUAL ``*``): every base passes, as in samtools."""

    def __getitem__(self, i):
        return 255


_NO_QUALS = _NoQualities()


def _count_region(af, contig, P, R, A, min_bq, min_mq, flag_filter, dedup_all):
    """Count one region: SNVs ``P`` (sorted 0-based positions) with alleles ``R``/``A`` on ``contig``.

    One ``fetch`` over ``[P[0], P[-1] + 1)``; reads arrive sorted by start, so the SNVs a read can
    overlap start at ``j0`` (the first SNV at or after the read's start). Bases of reads that cannot
    have a mate (or secondary/supplementary copy) at the same SNV go straight to a list per SNV;
    the others go through a per-SNV dict keyed by read name, so that a fragment counts once.

    Returns four lists of length ``len(P)``: ref, alt, other counts and n_filtered_reads.
    """
    n = len(P)
    bases = [[] for _ in range(n)]  # counted bases per SNV (reads without possible mates)
    frag = defaultdict(dict)  # j -> {query name: (base quality, base or "" for a tied discordant pair)}
    nseg = [0] * n  # reads passing read filters that overlap the SNV
    j0 = 0
    p0 = P[0]  # == P[j0]
    for r in af.fetch(contig, P[0], P[-1] + 1):
        s = r.reference_start
        if p0 < s:
            while P[j0] < s:
                j0 += 1
                if j0 == n:
                    break
            if j0 == n:
                break
            p0 = P[j0]
        e = r.reference_end
        if e is None or p0 >= e:  # overlaps no SNV (most reads when SNVs are sparse): test this first
            continue
        fl = r.flag
        if fl & flag_filter or r.mapping_quality < min_mq:
            continue
        j1 = j0 + 1  # SNVs j0 .. j1-1 lie within the read's span (P[j0] < e is known)
        while j1 < n and P[j1] < e:
            j1 += 1
        seq = r.query_sequence
        if seq is None:  # no stored sequence (SEQ '*', e.g. a secondary): overlaps, counts nothing
            for j in range(j0, j1):
                nseg[j] += 1
            continue
        qual = r.query_qualities
        if qual is None:  # no qualities stored ('*'): treated as passing, as samtools does
            qual = _NO_QUALS
        cig = r.cigartuples
        simple = len(cig) == 1
        if not (dedup_all or fl & _F_PAIRED):
            for j in range(j0, j1):
                nseg[j] += 1
                qp = P[j] - s if simple else _query_pos(cig, s, P[j])
                if qp >= 0 and qual[qp] >= min_bq:
                    bases[j].append(seq[qp])
            continue
        name = r.query_name
        for j in range(j0, j1):
            nseg[j] += 1
            qp = P[j] - s if simple else _query_pos(cig, s, P[j])
            if qp < 0:
                continue
            q = qual[qp]
            if q < min_bq:
                continue
            b = seq[qp]
            d = frag[j]
            prev = d.get(name)
            if prev is None or (q > prev[0]):
                d[name] = (q, b)
            elif prev[1] != b and q == prev[0]:
                d[name] = (q, "")
    ref_c, alt_c, oth_c, filt_c = [0] * n, [0] * n, [0] * n, [0] * n
    for j in range(n):
        if not nseg[j]:
            continue
        s = "".join(bases[j])
        d = frag.get(j)
        if d:
            s += "".join(b for _, b in d.values())
        s = s.upper()
        rc, ac = s.count(R[j]), s.count(A[j])
        ref_c[j], alt_c[j], oth_c[j], filt_c[j] = rc, ac, len(s) - rc - ac, nseg[j] - len(s)
    return ref_c, alt_c, oth_c, filt_c


_WORKER_FILES: dict = {}  # open alignment files of a worker process, by (path, reference)


def _run_task(task, files=None):
    """Count one task (regions of one BAM contig); ``files`` caches open files (default: per process)."""
    task_id, path, reference, contig, regions, opts = task
    files = _WORKER_FILES if files is None else files
    raw = _raw_reader(files, path)

    def alignment_file():
        af = files.get((path, reference))
        if af is None:
            kwargs = {"reference_filename": reference} if (reference and path.lower().endswith(".cram")) else {}
            with _quiet_htslib():
                af = files[(path, reference)] = pysam.AlignmentFile(path, "r", **kwargs)
        return af

    af = alignment_file() if raw is None else None
    out = []
    for P, R, A in regions:
        res = None
        try:
            with _quiet_htslib():
                if raw is not None:
                    res = _count_region_raw(raw, _raw_kernels(), contig, P, R, A, *opts)
                if res is None:  # the pysam engine (or a record the raw kernels leave to htslib)
                    res = _count_region(af if af is not None else alignment_file(), contig, P, R, A, *opts)
            out.append(res)
        except (OSError, ValueError) as e:  # corrupt blocks, a truncated file, an index that does not fit the file
            raise OSError(
                f"{path}: reading {contig}:{P[0] + 1}-{P[-1] + 1} failed ({type(e).__name__}: {e}); the BAM may be "
                f"corrupt or truncated, or its index stale (check with `samtools quickcheck -v {path}`, re-create "
                f"the index with `samtools index {path}`)") from None
    return task_id, out


def _plan_regions(pos0: np.ndarray, gap: int, max_snvs: int):
    """Index ranges ``[(i0, i1)]`` of sorted positions: a new region after a gap > ``gap`` bp or every ``max_snvs`` SNVs."""
    if len(pos0) == 0:
        return []
    cuts = np.flatnonzero(np.diff(pos0) > gap) + 1
    bounds = np.concatenate([[0], cuts, [len(pos0)]]).tolist()
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        for i in range(a, b, max_snvs):
            out.append((i, min(b, i + max_snvs)))
    return out


def _fork_context():
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def count_alleles(
    bams,
    variants,
    *,
    min_base_quality: int = 13,
    min_mapping_quality: int = 10,
    skip_duplicates: bool = True,
    skip_secondary: bool = True,
    skip_supplementary: bool = True,
    skip_qcfail: bool = True,
    contig_map=None,
    reference=None,
    on_ref_mismatch: str = "raise",
    max_other_fraction: float | None = 0.2,
    n_jobs: int = 1,
    progress=None,
) -> AlleleCounts:
    """Reads per allele at SNVs in one or more BAM/CRAM files.

    Parameters
    ----------
    bams : one path, a list of paths (sample name = file stem, ``a.sorted.bam`` -> ``a.sorted``)
        or a dict ``{sample: path}``. Coordinate-sorted and indexed (``samtools index FILE``).
    variants : a :class:`Variants`, a DataFrame with ``chrom, pos`` (1-based), ``ref, alt``
        (+ optional ``hap1_allele, hap2_allele, phased``), or a dict ``{sample: Variants|DataFrame}``
        when samples come from different donors (each BAM is counted at its own donor's SNVs).
    min_base_quality : bases with Phred quality below this are not counted (reads without stored
        qualities pass, as in samtools).
    min_mapping_quality : reads with MAPQ below this are skipped.
    skip_duplicates, skip_secondary, skip_supplementary, skip_qcfail : skip reads with the SAM flag
        0x400 / 0x100 / 0x800 / 0x200. Unmapped reads (0x4) are always skipped.
    contig_map : dict renaming *variant* contigs to the BAM's names for the lookup (e.g.
        ``{"1": "chr1"}``); the output ``chrom`` stays as in ``variants`` so tables join.
    reference : FASTA (faidx-indexed). Needed to decode CRAM; when given, every SNV's ``ref`` is
        checked against it (BAM contig names).
    on_ref_mismatch : ``"raise"`` (default: ValueError naming the FASTA and chrom:pos; ``"error"`` is accepted as
        the same) or ``"drop"`` (ledger reason ``ref_mismatch``); :mod:`allelic.reference` does the check.
    max_other_fraction : a SNV where bases other than ``ref`` and ``alt`` (a third allele, or ``N``) are at
        least 2 reads and more than this fraction of the counted reads goes to the ledger (``third_allele``):
        a heterozygous genotype that is probably wrong (e.g. ref/alt called where the sample carries another
        allele). Sequencing errors alone rarely reach it; ``None`` keeps every SNV.
    n_jobs : worker processes (``-1`` = all cores); work is split across contigs and SNV chunks.
        Results are identical for any value.
    progress : tqdm bar over SNVs; ``None`` = on when stderr is a terminal.

    Counting rules, per SNV: every read whose alignment spans the SNV and passes the read filters
    contributes at most once. A read with a deletion or reference skip (CIGAR D/N) at the SNV is not
    counted, nor is a base below ``min_base_quality``. Reads sharing a query name (the two mates of
    an overlapping pair, or a read and its secondary/supplementary copy when those are kept) count
    once: if their bases agree, that base; if they disagree, the base with the higher base quality;
    if the qualities tie, the fragment is not counted (it appears in ``n_filtered_reads``). Only
    bases that pass ``min_base_quality`` take part. (samtools mpileup differs at overlapping mates:
    it zeroes the weaker mate's quality and scales the stronger one's by 0.8.) A base that is
    neither ``ref`` nor ``alt`` (third allele, ``N``) counts as ``other``. No BAQ, no depth cap.

    Engine: BAM files with a ``.bai`` index are read record by record in numba-compiled code (no Python
    object per read); CRAM, CSI-only indexes and records longer than BAM's CIGAR field go through
    ``pysam`` (``AlignmentFile.fetch``). Both apply the rules above and give identical counts. The first call
    in a process imports numba and loads the compiled kernels (about 0.5-1 s; the first run after
    installing or editing the module compiles them, several seconds, and caches them on disk).

    Returns
    -------
    AlleleCounts
        ``table`` (:data:`COUNTS_COLUMNS`; samples in ``bams`` order, SNVs in ``variants`` order),
        ``ledger`` (step ``count_alleles``; ``record`` = variants chrom:pos, ``detail`` names the
        sample): ``off_contig`` (contig not in the BAM header, or position beyond its end),
        ``no_coverage`` (no counted read: ref + alt + other = 0), ``third_allele`` (see
        ``max_other_fraction``), ``ref_mismatch`` (with ``on_ref_mismatch="drop"``),
        ``duplicate_position`` (repeated chrom:pos in ``variants``).

    Raises
    ------
    FileNotFoundError for a missing BAM/CRAM or its missing index (with the ``samtools index`` fix);
    ValueError when no variant contig is in a BAM header (suggesting ``contig_map``), for a CRAM
    without ``reference``, for malformed variants (naming the row) or a ref mismatch.
    """
    on_ref_mismatch = check_on_ref_mismatch(on_ref_mismatch)
    if n_jobs is None or n_jobs == 0:
        n_jobs = 1
    if n_jobs < 0:
        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    contig_map = dict(contig_map or {})
    samples = _normalise_bams(bams)
    ledger = Ledger()

    # per-sample validated variant tables (a shared table is validated once)
    if isinstance(variants, Mapping):
        missing = [s for s in samples if s not in variants]
        if missing:
            raise ValueError(f"variants dict has no entry for sample(s) {missing}; its keys are {list(variants)} "
                             f"and the BAM samples are {list(samples)}")
        var_tables = {s: _variants_table(variants[s], f"variants[{s!r}]", ledger) for s in samples}
    else:
        shared = _variants_table(variants, "variants", ledger)
        var_tables = {s: shared for s in samples}

    flag_filter = _F_UNMAP
    flag_filter |= _F_DUP if skip_duplicates else 0
    flag_filter |= _F_SECONDARY if skip_secondary else 0
    flag_filter |= _F_SUPPLEMENTARY if skip_supplementary else 0
    flag_filter |= _F_QCFAIL if skip_qcfail else 0
    # names need to be compared for unpaired reads only when a read can appear twice
    dedup_all = not (skip_secondary and skip_supplementary)
    opts = (int(min_base_quality), int(min_mapping_quality), flag_filter, dedup_all)
    fasta = None
    if reference is not None:
        fasta = open_fasta(_existing_file(reference, "reference FASTA"))

    # plan: (sample, bam contig) -> SNV row indices, split into regions, grouped into tasks
    plans = []  # per sample: (sample, path, variants table, keep mask)
    tasks = []  # ((plan index, [row indices per region]), task tuple for _run_task)
    try:
        for sample, path in samples.items():
            _plan_sample(sample, path, var_tables[sample], reference, contig_map, fasta, on_ref_mismatch,
                         n_jobs, opts, ledger, plans, tasks)
    finally:
        if fasta is not None:
            fasta.close()
    total_snvs = sum(len(r) for (_, region_list), _ in tasks for r in region_list)

    # run (the pool forks before the progress bar starts its monitor thread)
    results = {}
    n_workers = min(n_jobs, len(tasks))
    show = show_progress(progress)
    if n_workers <= 1:
        files, done = {}, False
        try:
            with tqdm(total=total_snvs, unit="SNV", desc="count_alleles", disable=not show) as bar:
                for _, t in tasks:
                    tid, out = _run_task(t, files)
                    results[tid] = out
                    bar.update(sum(len(x[0]) for x in t[4]))
            done = True
        finally:
            for af in files.values():
                try:
                    af.close()
                except OSError:  # closing a file that failed to read: the read error above is the one to report
                    if done:
                        raise
    else:
        if bamscan.ENGINE == "raw":
            _raw_kernels()  # import numba once, before the workers fork
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=_fork_context()) as ex:
            futs = {ex.submit(_run_task, t): t for _, t in tasks}
            with tqdm(total=total_snvs, unit="SNV", desc="count_alleles", disable=not show) as bar:
                for f in as_completed(futs):
                    tid, out = f.result()
                    results[tid] = out
                    bar.update(sum(len(x[0]) for x in futs[f][4]))

    # assemble: per sample, counts in variants order
    per_sample = []
    counts = {i: np.zeros((len(p[2]), 4), dtype=np.int64) for i, p in enumerate(plans)}
    for (sample_i, region_list), t in tasks:
        for rows, res in zip(region_list, results[t[0]]):
            counts[sample_i][rows] = np.column_stack(res)
    for i, (sample, path, vt, keep) in enumerate(plans):
        c = counts[i]
        used = c[:, 0] + c[:, 1] + c[:, 2]
        nocov = keep & (used == 0)
        var_chrom, var_pos = vt["chrom"].to_numpy(dtype=object), vt["pos"].to_numpy()
        for j in np.flatnonzero(nocov):
            ledger.add("count_alleles", str(path), f"{var_chrom[j]}:{var_pos[j]}", "no_coverage",
                       f"sample={sample}; 0 reads counted ({c[j, 3]} overlapping reads filtered)")
        third = np.zeros_like(nocov)
        if max_other_fraction is not None:
            third = keep & (used > 0) & (c[:, 2] >= 2) & (c[:, 2] > max_other_fraction * used)
        for j in np.flatnonzero(third):
            ledger.add("count_alleles", str(path), f"{var_chrom[j]}:{var_pos[j]}", "third_allele",
                       f"sample={sample}; ref {c[j, 0]}, alt {c[j, 1]}, other {c[j, 2]} reads: "
                       f"{c[j, 2] / used[j]:.0%} neither allele (likely a genotyping error)")
        sel = keep & (used > 0) & ~third
        t = vt[sel]
        cs = c[sel]
        ref_count, alt_count = cs[:, 0], cs[:, 1]
        hap = {}
        for k in ("hap1", "hap2"):
            h = t[k].to_numpy(dtype=object)
            val = np.where(h == t["ref"].to_numpy(dtype=object), ref_count, alt_count).astype(np.float64)
            val[~t["phased"].to_numpy(dtype=bool)] = np.nan
            hap[k] = val
        per_sample.append(pd.DataFrame({
            "sample": sample, "chrom": t["chrom"].to_numpy(), "pos": t["pos"].to_numpy(np.int64),
            "ref": t["ref"].to_numpy(), "alt": t["alt"].to_numpy(),
            "ref_count": ref_count, "alt_count": alt_count, "other_count": cs[:, 2],
            "total": ref_count + alt_count, "hap1_count": hap["hap1"], "hap2_count": hap["hap2"],
            "n_filtered_reads": cs[:, 3].astype(np.float64),
        }, columns=COUNTS_COLUMNS))
    table = pd.concat(per_sample, ignore_index=True) if per_sample else _counts_frame([])
    table = table.astype({"sample": object, "chrom": object, "ref": object, "alt": object})
    params = {
        "bams": {s: str(p) for s, p in samples.items()}, "min_base_quality": min_base_quality,
        "min_mapping_quality": min_mapping_quality, "skip_duplicates": skip_duplicates,
        "skip_secondary": skip_secondary, "skip_supplementary": skip_supplementary, "skip_qcfail": skip_qcfail,
        "contig_map": contig_map, "reference": None if reference is None else str(reference),
        "on_ref_mismatch": on_ref_mismatch, "max_other_fraction": max_other_fraction, "n_jobs": n_jobs,
    }
    return AlleleCounts(table=table, ledger=ledger, params=params)


def _plan_sample(sample, path, vt, reference, contig_map, fasta, on_ref_mismatch, n_jobs, opts, ledger, plans, tasks):
    """Check one BAM against its SNVs (header contigs, reference) and append its counting tasks.

    SNVs are grouped by BAM contig and position into regions (one ``fetch`` each, see ``_SPLIT_READS``)
    and regions into tasks of at most ``_TASK_SNVS`` SNVs (fewer with ``n_jobs > 1`` for balance).
    """
    af = _open_alignments(path, reference)
    try:
        lengths = dict(zip(af.references, af.lengths))
        try:
            mapped = {s.contig: s.mapped for s in af.get_index_statistics()}
        except (ValueError, AttributeError, NotImplementedError, OSError):
            mapped = {}
    finally:
        af.close()
    bam_chrom = vt["chrom"].map(lambda c: contig_map.get(c, c)).to_numpy(dtype=object)
    length = np.array([lengths.get(c, -1) for c in bam_chrom], dtype=np.int64)
    pos = vt["pos"].to_numpy()
    var_chrom = vt["chrom"].to_numpy(dtype=object)
    keep = length >= pos
    if len(vt) and not (length >= 0).any():
        var_contigs = list(dict.fromkeys(vt["chrom"]))
        raise ValueError(
            f"{path}: none of the variant contigs {var_contigs[:5]}{' ...' if len(var_contigs) > 5 else ''} "
            f"{'(after contig_map) ' if contig_map else ''}is in the BAM header (its contigs: "
            f"{list(lengths)[:5]}{' ...' if len(lengths) > 5 else ''}); "
            + _contig_suggestion([contig_map.get(c, c) for c in var_contigs], lengths)
        )
    for i in np.flatnonzero(~keep):
        why = (f"contig {bam_chrom[i]!r} not in the BAM header" if length[i] < 0
               else f"position beyond the end of {bam_chrom[i]!r} ({length[i]} bp)")
        ledger.add("count_alleles", str(path), f"{var_chrom[i]}:{pos[i]}", "off_contig", f"sample={sample}; {why}")
    absent = length < 0
    if absent.any():  # some contigs match, others do not (none matching raised above): say so, not only in the ledger
        names = list(dict.fromkeys(bam_chrom[absent].tolist()))
        warnings.warn(
            f"{path}: {int(absent.sum())} of {len(vt)} SNVs lie on {len(names)} contig(s) not in the BAM header "
            f"({names[:5]}{' ...' if len(names) > 5 else ''}) and went to the ledger as off_contig; "
            + _contig_suggestion(names, lengths), stacklevel=3)
    if fasta is not None:
        keep &= _check_reference(fasta, reference, vt, bam_chrom, keep, on_ref_mismatch, ledger, sample, path)
    idx = np.flatnonzero(keep)
    # group by BAM contig, sorted by position
    regions_rows = []
    order = np.lexsort((pos[idx], bam_chrom[idx].astype(str)))
    idx = idx[order]
    chroms = bam_chrom[idx]
    max_snvs = _TASK_SNVS
    if n_jobs > 1:
        max_snvs = min(_TASK_SNVS, max(_MIN_TASK_SNVS, math.ceil(len(idx) / (4 * n_jobs))))
    for c in dict.fromkeys(chroms.tolist()):
        rows = idx[chroms == c]
        c_pos0 = pos[rows] - 1
        reads_per_bp = mapped.get(c, 0) / max(lengths[c], 1)
        gap = int(min(_MAX_GAP, max(_MIN_GAP, _SPLIT_READS / reads_per_bp))) if reads_per_bp > 0 else _MAX_GAP
        regs = _plan_regions(c_pos0, gap, max_snvs)
        # group consecutive regions into tasks of <= max_snvs SNVs
        cur, cur_n = [], 0
        for i0, i1 in regs:
            if cur and cur_n + (i1 - i0) > max_snvs:
                regions_rows.append((c, cur))
                cur, cur_n = [], 0
            cur.append(rows[i0:i1])
            cur_n += i1 - i0
        if cur:
            regions_rows.append((c, cur))
    refs = vt["ref"].to_numpy(dtype=object)
    alts = vt["alt"].to_numpy(dtype=object)
    for c, region_list in regions_rows:
        payload = [((pos[r] - 1).tolist(), refs[r].tolist(), alts[r].tolist()) for r in region_list]
        tasks.append(((len(plans), region_list), (len(tasks), str(path), None if reference is None else str(reference), c, payload, opts)))
    plans.append((sample, path, vt, keep))


def _check_reference(fasta, reference, vt, bam_chrom, keep, on_ref_mismatch, ledger, sample, path) -> np.ndarray:
    """Boolean mask (len(vt)): ref allele matches the FASTA (rows already off-contig are left True)."""
    ok = np.ones(len(vt), dtype=bool)
    idx = np.flatnonzero(keep)
    chrom, pos, ref = (vt[c].to_numpy()[idx] for c in ("chrom", "pos", "ref"))
    missing = sorted(set(bam_chrom[idx].tolist()) - set(fasta.references))
    if missing:
        i = int(np.flatnonzero(bam_chrom[idx] == missing[0])[0])
        raise ValueError(f"{reference}: contig {missing[0]!r} (SNV {chrom[i]}:{pos[i]}) is not in the reference FASTA; "
                         f"expected the FASTA the BAM was aligned to (its first contigs: {list(fasta.references)[:5]})")
    genome = fetch_bases(fasta, bam_chrom[idx], pos)
    bad = ref_mismatches(reference, chrom, pos, ref, genome, on_ref_mismatch=on_ref_mismatch,
                         hint="check the genome build")
    ok[idx[bad]] = False
    for i in np.flatnonzero(bad):
        ledger.add("count_alleles", str(reference), f"{chrom[i]}:{pos[i]}", "ref_mismatch",
                   f"sample={sample}; variants ref {ref[i]}, FASTA {genome[i] or '(empty)'}")
    return ok
