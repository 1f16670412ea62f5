"""Benchmark: allelic.count_alleles vs ``samtools mpileup`` on the same sites of a simulated BAM.

Usage::

    python benchmarks/bench_counts.py                       # prints a markdown table
    python benchmarks/bench_counts.py --out benchmarks/counts.md
    python benchmarks/bench_counts.py --scenario dense --reads 300000   # quicker

Two simulated single-end BAMs (75 bp reads, random genome, two haplotypes carrying the het SNVs):

- ``dense``: one 2 Mb contig, 20,000 het SNVs (1 per 100 bp), 1.5 M reads (~56x everywhere).
  The worst case for a per-read Python loop: every read overlaps ~0.75 SNVs.
- ``chip``:  one 50 Mb contig, 50,000 het SNVs (1 per kb), 1.5 M reads, 30 % of them in 5,000
  peaks of 500 bp (ChIP-seq-like: deep peaks, ~2x background).

Reads carry 1 % sequencing errors (third alleles -> ``other``), base qualities uniform in 2..41,
5 % MAPQ 3, 3 % duplicates, 1 % QC-fail, 1 % secondary, 1 % supplementary, 2 % with a 1 bp
deletion, 2 % with a 1 bp insertion, 2 % with a 3 bp leading soft clip.

samtools is run as ``samtools mpileup -B -Q 13 -q 10 -d 0 --ff UNMAP,SECONDARY,QCFAIL,DUP,SUPPLEMENTARY
-l sites.bed sim.bam`` -- ``-B`` turns BAQ off (allelic applies none), ``-d 0`` lifts the 8,000
depth cap, ``--ff`` adds SUPPLEMENTARY to the default filter; reads are single-end, so orphan /
anomalous-pair filtering (``-A``) and overlapping-mate handling do not apply. Its bases column is
parsed into ref/alt/other counts and compared with count_alleles (same filters) site by site; the
script fails if any count differs. Times are the best of ``--repeat`` runs (wall clock).

Unless ``--no-engines``: count_alleles with its previous engine (``allelic.bamscan.ENGINE = "pysam"``,
AlignedSegment per read; must give the identical table) and the alternatives that were measured and not
kept: ``pileup_engine`` (htslib pileup columns) and ``count_coverage_engine`` (``AlignmentFile.count_coverage``
with a Python read callback, or pysam's built-in ``"all"`` filter, which keeps supplementary and low-MAPQ reads).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
import allelic  # noqa: E402
from allelic import bamscan  # noqa: E402
from allelic.counts import count_alleles  # noqa: E402

SCENARIOS = {
    "dense": dict(length=2_000_000, n_snvs=20_000, n_reads=1_500_000, frip=0.0, n_peaks=0),
    "chip": dict(length=50_000_000, n_snvs=50_000, n_reads=1_500_000, frip=0.3, n_peaks=5_000),
}
READ_LEN = 75
SAMTOOLS_ARGS = ["-B", "-Q", "13", "-q", "10", "-d", "0", "--ff", "UNMAP,SECONDARY,QCFAIL,DUP,SUPPLEMENTARY"]


def simulate(outdir: Path, length: int, n_snvs: int, n_reads: int, frip: float, n_peaks: int, seed: int = 0):
    """Write ``sim.bam`` (+ .bai), ``sites.bed`` and return the SNV table (chrom, pos 1-based, ref, alt)."""
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    acgt = np.frombuffer(b"ACGT", dtype=np.uint8)
    genome = acgt[rng.integers(0, 4, length)]
    pos0 = np.sort(rng.choice(np.arange(200, length - 200), n_snvs, replace=False))
    ref = genome[pos0]
    alt = acgt[(np.searchsorted(acgt, ref) + rng.integers(1, 4, n_snvs)) % 4]
    haps = np.stack([genome, genome])
    on1 = rng.random(n_snvs) < 0.5
    haps[0, pos0[on1]] = alt[on1]
    haps[1, pos0[~on1]] = alt[~on1]

    rl = READ_LEN
    n_pk = int(n_reads * frip)
    centers = rng.integers(1_000, length - 1_000, max(n_peaks, 1))
    starts = np.concatenate([
        centers[rng.integers(0, len(centers), n_pk)] + rng.integers(-250, 250, n_pk),
        rng.integers(0, length - rl - 10, n_reads - n_pk),
    ])
    starts = np.sort(np.clip(starts, 0, length - rl - 10))
    kind = rng.choice(4, n_reads, p=[0.94, 0.02, 0.02, 0.02])  # plain, deletion, insertion, soft clip
    k = rng.integers(10, rl - 10, n_reads)  # indel offset in the read
    col = np.arange(rl)[None, :]
    qref = starts[:, None] + col  # reference index of each query base, -1 = not aligned (I, S)
    d = kind == 1
    qref[d] += (col >= k[d, None])
    i = kind == 2
    qref[i] = np.where(col == k[i, None], -1, qref[i] - (col > k[i, None]))
    s = kind == 3
    qref[s] = np.where(col < 3, -1, qref[s] - 3)
    hap = rng.integers(0, 2, n_reads)
    seq = haps[hap[:, None], np.maximum(qref, 0)]
    noise = (qref < 0) | (rng.random(qref.shape) < 0.01)
    seq[noise] = acgt[rng.integers(0, 4, int(noise.sum()))]
    qual = (rng.integers(2, 42, qref.shape) + 33).astype(np.uint8)
    cigar = np.full(n_reads, f"{rl}M", dtype=object)
    cigar[d] = [f"{a}M1D{rl - a}M" for a in k[d]]
    cigar[i] = [f"{a}M1I{rl - a - 1}M" for a in k[i]]
    cigar[s] = f"3S{rl - 3}M"
    u = rng.random(n_reads)
    flag = np.where(rng.random(n_reads) < 0.5, 16, 0)
    flag |= np.select([u < 0.03, u < 0.04, u < 0.05, u < 0.06], [0x400, 0x200, 0x100, 0x800], 0)
    mapq = np.where(rng.random(n_reads) < 0.05, 3, 60)

    sam = outdir / "sim.sam"
    seqs = seq.view(f"S{rl}").ravel()
    quals = qual.view(f"S{rl}").ravel()
    with open(sam, "w") as fh:
        fh.write(f"@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:chrS\tLN:{length}\n")
        fh.writelines(
            f"r{j}\t{flag[j]}\tchrS\t{starts[j] + 1}\t{mapq[j]}\t{cigar[j]}\t*\t0\t0\t{seqs[j].decode()}\t{quals[j].decode()}\n"
            for j in range(n_reads)
        )
    bam = outdir / "sim.bam"
    pysam.sort("-o", str(bam), str(sam))  # starts are sorted already; sort makes sure
    pysam.index(str(bam))
    sam.unlink()
    sites = pd.DataFrame({"chrom": "chrS", "pos": pos0 + 1, "ref": [chr(x) for x in ref], "alt": [chr(x) for x in alt]})
    with open(outdir / "sites.bed", "w") as fh:
        fh.writelines(f"chrS\t{p - 1}\t{p}\n" for p in sites["pos"])
    sites.to_csv(outdir / "sites.tsv", sep="\t", index=False)
    with open(outdir / "genome.fa", "w") as fh:
        fh.write(">chrS\n" + genome.tobytes().decode() + "\n")
    pysam.faidx(str(outdir / "genome.fa"))
    with open(outdir / "phased.vcf", "w") as fh:
        fh.write(f"##fileformat=VCFv4.2\n##contig=<ID=chrS,length={length}>\n"
                 '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n")
        fh.writelines(f"chrS\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t{'1|0' if h else '0|1'}\n"
                      for p, r, a, h in zip(sites["pos"], sites["ref"], sites["alt"], on1))
    pysam.tabix_compress(str(outdir / "phased.vcf"), str(outdir / "phased.vcf.gz"), force=True)
    pysam.tabix_index(str(outdir / "phased.vcf.gz"), preset="vcf", force=True)
    (outdir / "samples.tsv").write_text("sample\tdonor\ttissue\tassay\tbam\nsim\tS1\tcell\tChIP\tsim.bam\n")
    return sites


_INDEL = re.compile(r"[+-](\d+)")


def parse_mpileup_bases(bases: str) -> str:
    """The read bases of one mpileup column (upper case), without read starts/ends, indels, deletions."""
    out = []
    i, n = 0, len(bases)
    while i < n:
        c = bases[i]
        if c == "^":
            i += 2
            continue
        if c in "+-":
            m = _INDEL.match(bases, i)
            i = m.end() + int(m.group(1))
            continue
        if c.isalpha():
            out.append(c.upper())
        i += 1
    return "".join(out)


def samtools_counts(bam: Path, bed: Path, sites: pd.DataFrame) -> tuple[pd.DataFrame, float, str]:
    cmd = ["samtools", "mpileup", *SAMTOOLS_ARGS, "-l", str(bed), str(bam)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    rows = {}
    for line in out.splitlines():
        f = line.split("\t")
        rows[int(f[1])] = parse_mpileup_bases(f[4])
    s = sites.copy()
    b = [rows.get(p, "") for p in s["pos"]]
    s["ref_count"] = [x.count(r) for x, r in zip(b, s["ref"])]
    s["alt_count"] = [x.count(a) for x, a in zip(b, s["alt"])]
    s["other_count"] = [len(x) for x in b] - s["ref_count"] - s["alt_count"]
    return s, wall, " ".join(cmd)


def pileup_engine(bam: Path, sites: pd.DataFrame, min_bq=13, min_mq=10) -> pd.DataFrame:
    """The alternative engine that was measured and not kept: pysam's htslib pileup, one column per position.

    Single-end reads only (no mate de-duplication); kept here so the comparison can be re-run.
    """
    pos0 = (sites["pos"] - 1).tolist()
    idx = {p: i for i, p in enumerate(pos0)}
    n = len(pos0)
    rc, ac, oc = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
    refs, alts = sites["ref"].tolist(), sites["alt"].tolist()
    with pysam.AlignmentFile(str(bam)) as af:
        for col in af.pileup("chrS", pos0[0], pos0[-1] + 1, truncate=True, stepper="samtools", compute_baq=False,
                             ignore_overlaps=False, ignore_orphans=False, min_base_quality=min_bq,
                             min_mapping_quality=min_mq, max_depth=2**31 - 1, flag_filter=0xF04):
            j = idx.get(col.reference_pos)
            if j is None:
                continue
            s = "".join(col.get_query_sequences()).upper()
            rc[j], ac[j] = s.count(refs[j]), s.count(alts[j])
            oc[j] = len(s) - rc[j] - ac[j]
    out = sites.copy()
    out["ref_count"], out["alt_count"], out["other_count"] = rc, ac, oc
    return out


def count_coverage_engine(bam: Path, sites: pd.DataFrame, min_bq=13, min_mq=10, read_callback="callable",
                          window=100_000) -> pd.DataFrame:
    """Alternative measured and not kept: ``AlignmentFile.count_coverage`` (A/C/G/T per position) per 100 kb window
    holding SNVs. ``read_callback="callable"`` applies count_alleles' read filters (flags 0xF04, MAPQ) through a Python
    callable per read; ``"all"`` is pysam's built-in filter (0x704 only: supplementary and low-MAPQ reads counted).
    Counts only A/C/G/T (an ``N`` is lost, not ``other``), no mate de-duplication, no n_filtered_reads."""
    pos0 = (sites["pos"] - 1).to_numpy()
    cb = (lambda r: not (r.flag & 0xF04) and r.mapping_quality >= min_mq) if read_callback == "callable" else read_callback
    acgt = np.zeros((len(pos0), 4), dtype=np.int64)
    win = pos0 // window
    with pysam.AlignmentFile(str(bam)) as af:
        for w in np.unique(win):
            sel = np.flatnonzero(win == w)
            lo, hi = int(pos0[sel[0]]), int(pos0[sel[-1]]) + 1
            cov = af.count_coverage("chrS", lo, hi, quality_threshold=min_bq, read_callback=cb)
            for k in range(4):
                acgt[sel, k] = np.asarray(cov[k], dtype=np.int64)[pos0[sel] - lo]
    col = {b: i for i, b in enumerate("ACGT")}
    r = np.array([col[b] for b in sites["ref"]])
    a = np.array([col[b] for b in sites["alt"]])
    out = sites.copy()
    idx = np.arange(len(out))
    out["ref_count"], out["alt_count"] = acgt[idx, r], acgt[idx, a]
    out["other_count"] = acgt.sum(axis=1) - out["ref_count"] - out["alt_count"]
    return out


def n_differing(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """Sites whose ref/alt/other counts differ between two tables (a site missing from one counts as zeros)."""
    cols = ["ref_count", "alt_count", "other_count"]
    m = a[["pos", *cols]].merge(b[["pos", *cols]], on="pos", how="outer", suffixes=("_a", "_b")).fillna(0)
    return int(np.any([m[f"{c}_a"] != m[f"{c}_b"] for c in cols], axis=0).sum())


def best_of(fn, repeat):
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def compare(a: pd.DataFrame, b: pd.DataFrame, what: str):
    m = a[["pos", "ref_count", "alt_count", "other_count"]].merge(
        b[["pos", "ref_count", "alt_count", "other_count"]], on="pos", how="outer", suffixes=("_a", "_b")).fillna(0)
    for c in ("ref_count", "alt_count", "other_count"):
        bad = m[m[f"{c}_a"] != m[f"{c}_b"]]
        if len(bad):
            raise AssertionError(f"{what}: {len(bad)} sites differ in {c}, e.g.\n{bad.head()}")


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sam = subprocess.run(["samtools", "--version"], capture_output=True, text=True, errors="replace").stdout.split("\n")[0]
    return (f"{cpu}, {os.cpu_count()} cores visible; Python {platform.python_version()}, pysam {pysam.__version__}, "
            f"numpy {np.__version__}, pandas {pd.__version__}, {sam}, allelic {allelic.__version__}")


def run(scenario: str, workdir: Path, repeat: int, n_reads: int | None, engines: bool, alt_repeat: int = 1):
    cfg = dict(SCENARIOS[scenario])
    if n_reads:
        cfg["n_reads"] = n_reads
    d = workdir / f"{scenario}_{cfg['n_reads']}"
    t0 = time.perf_counter()
    if (d / "sites.tsv").exists() and (d / "sim.bam.bai").exists() and (d / "phased.vcf.gz.tbi").exists():
        sites = pd.read_csv(d / "sites.tsv", sep="\t")
        sim = "simulated BAM reused from --workdir"
    else:
        sites = simulate(d, **cfg)
        sim = f"simulation {time.perf_counter() - t0:.0f} s"
    bam, bed = d / "sim.bam", d / "sites.bed"

    t_sam, _ = best_of(lambda: samtools_counts(bam, bed, sites), repeat)
    ref_table, _, cmd = samtools_counts(bam, bed, sites)
    cmd = cmd.replace(str(d) + os.sep, "")  # as run inside the scenario's folder
    rows = [("samtools mpileup (1 core)", t_sam, cmd, "reference")]

    def ca(n_jobs, engine="raw"):
        old, bamscan.ENGINE = bamscan.ENGINE, engine
        try:
            return count_alleles({"sim": bam}, sites, min_base_quality=13, min_mapping_quality=10,
                                 max_other_fraction=None, n_jobs=n_jobs, progress=False)
        finally:
            bamscan.ENGINE = old

    t0 = time.perf_counter()
    ca(1)  # first call in this process: imports numba, loads (or compiles) the raw-record kernels
    warm = time.perf_counter() - t0
    tables = {}
    for n_jobs in (1, 2):
        t, res = best_of(lambda: ca(n_jobs), repeat)
        compare(res.table, ref_table, f"count_alleles n_jobs={n_jobs} vs samtools")
        tables[n_jobs] = res.table
        rows.append((f"allelic.count_alleles n_jobs={n_jobs}", t,
                     f"count_alleles({{'sim': bam}}, sites, min_base_quality=13, min_mapping_quality=10, n_jobs={n_jobs})",
                     "identical"))
    # your own data's path: `allelic count` = the sheet checked, the donor's SNVs read from the VCF and checked against
    # the FASTA, then the same counting, each run into a fresh folder (no cache)
    from allelic import as_calls, samplesheet

    runs = iter(range(10 ** 6))

    def sheet_path(n_jobs):
        data = samplesheet.load(d / "samples.tsv", d / "phased.vcf.gz", d / "genome.fa")
        out = d / "sheet_runs" / str(next(runs))
        as_calls.count(data, out, n_jobs=n_jobs, progress=False, min_base_quality=13, min_mapping_quality=10,
                       max_other_fraction=None)
        return pd.read_csv(out / "sim.tsv.gz", sep="\t")

    def before_sheet(n_jobs):  # chapter 01's path before the sheet: the donor's SNVs from the VCF, a cached table
        from allelic import io
        from allelic.variants import read_het_snvs

        out = d / "sheet_runs" / str(next(runs))
        t, _ = io.count_sample(d / "sim.bam", read_het_snvs(d / "phased.vcf.gz", "S1"), sample="sim",
                               vcf=d / "phased.vcf.gz", cache_dir=out, n_jobs=n_jobs, progress=False,
                               min_base_quality=13, min_mapping_quality=10, max_other_fraction=None)
        return t

    for n_jobs in (1, 2):
        t, res = best_of(lambda: before_sheet(n_jobs), repeat)
        compare(res, ref_table, f"VCF + count_sample n_jobs={n_jobs} vs samtools")
        rows.append((f"before the sheet: VCF read + count_sample (cached table), n_jobs={n_jobs}", t,
                     f"io.count_sample(bam, read_het_snvs(vcf, 'S1'), ..., cache_dir=DIR, n_jobs={n_jobs})",
                     "identical"))
    for n_jobs in (1, 2):
        t, res = best_of(lambda: sheet_path(n_jobs), repeat)
        compare(res, ref_table, f"allelic count (sample sheet) n_jobs={n_jobs} vs samtools")
        rows.append((f"allelic count, sample sheet + VCF + FASTA, n_jobs={n_jobs}", t,
                     f"allelic count --samples samples.tsv --vcf phased.vcf.gz --reference genome.fa --out DIR "
                     f"--jobs {n_jobs}", "identical"))
    shutil.rmtree(d / "sheet_runs", ignore_errors=True)
    if engines:
        t, res = best_of(lambda: ca(1, "pysam"), repeat)
        compare(res.table, ref_table, "count_alleles pysam engine vs samtools")
        pd.testing.assert_frame_equal(res.table, tables[1])  # n_filtered_reads and haplotype columns too
        rows.append(("count_alleles n_jobs=1, previous engine (pysam fetch, `_ENGINE='pysam'`)", t,
                     "allelic.counts._ENGINE = 'pysam'; count_alleles(..., n_jobs=1)", "identical"))
        t, res = best_of(lambda: pileup_engine(bam, sites), repeat)
        compare(res, ref_table, "pileup engine vs samtools")
        rows.append(("alternative: pysam pileup engine (not kept)", t, "benchmarks/bench_counts.py:pileup_engine",
                     "identical"))
        for cb in ("callable", "all"):
            t, res = best_of(lambda: count_coverage_engine(bam, sites, read_callback=cb), alt_repeat)
            nd = n_differing(res, ref_table)
            rows.append((f"alternative: count_coverage, read_callback={cb} (not kept)", t,
                         f"benchmarks/bench_counts.py:count_coverage_engine(read_callback={cb!r})",
                         "identical" if nd == 0 else f"{nd:,} sites differ"))
    n_cov = int((ref_table[["ref_count", "alt_count", "other_count"]].sum(axis=1) > 0).sum())
    info = (f"{scenario}: {cfg['length'] / 1e6:g} Mb contig, {len(sites):,} SNVs ({n_cov:,} with coverage), "
            f"{cfg['n_reads']:,} reads x {READ_LEN} bp, FRiP {cfg['frip']:g}; {sim}; first count_alleles call in "
            f"the process {warm:.2f} s (numba import and kernel load, not in the table)")
    return info, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--reads", type=int, default=None, help="override the number of reads")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (best is reported)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep simulated BAMs here (default: a temp dir)")
    ap.add_argument("--no-engines", action="store_true", help="skip the previous engine and the alternatives")
    ap.add_argument("--alt-repeat", type=int, default=1, help="timed runs of the (slow) count_coverage alternatives")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    a = ap.parse_args(argv)
    if shutil.which("samtools") is None:
        sys.exit("samtools is not on PATH")
    tmp = None
    workdir = a.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_counts_")
        workdir = Path(tmp.name)
    scenarios = list(SCENARIOS) if a.scenario == "all" else [a.scenario]
    load0 = os.getloadavg()
    lines = ["| scenario | tool | wall s | x samtools | x count_alleles n_jobs=1 | counts |", "|---|---|---:|---:|---:|---|"]
    infos, cmds = [], {}
    for sc in scenarios:
        info, rows = run(sc, workdir, a.repeat, a.reads, not a.no_engines, a.alt_repeat)
        infos.append(info)
        base = rows[0][1]
        ours = rows[1][1]
        for name, t, cmd, same in rows:
            lines.append(f"| {sc} | {name} | {t:.2f} | {t / base:.2f} | {t / ours:.2f} | {same} |")
            cmds[name] = cmd
        print(info, file=sys.stderr)
    load1 = os.getloadavg()
    report = "\n".join([
        f"Machine: {machine()}; 1-min load average {load0[0]:.2f} before, {load1[0]:.2f} after the run "
        "(other processes on the cores slow the n_jobs=2 runs first)", "",
        *[f"- {i}" for i in infos], "",
        *lines, "",
        f"Wall s: best of {a.repeat} (count_coverage rows: best of {a.alt_repeat}). count_alleles (both engines) and the "
        "pileup engine: ref/alt/other identical to samtools at every site (the script fails otherwise); the two "
        "count_alleles engines also agree on n_filtered_reads and haplotype counts. The counts column says how many "
        "sites an alternative gets wrong.", "",
        "Commands:", "",
        *[f"- {k}: `{v}`" for k, v in cmds.items()],
        f"- benchmark: `python benchmarks/bench_counts.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
    ])
    print(report)
    if a.out:
        _write_report(a.out, report)
    if tmp is not None:
        tmp.cleanup()


def _write_report(path: Path, report: str):
    """Replace the generated block of ``path`` (between markers), keeping hand-written notes around it."""
    begin, end = "<!-- bench_counts:begin -->", "<!-- bench_counts:end -->"
    block = f"{begin}\n{report}\n{end}"
    text = path.read_text() if path.exists() else f"# count_alleles benchmark\n\n{begin}\n{end}\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
