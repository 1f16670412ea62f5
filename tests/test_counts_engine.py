"""The raw-record engine of count_alleles (numba over decompressed BAM records) against independent oracles.

Planted BAMs exercise every rule: flags (duplicate, secondary, supplementary, QC-fail, unmapped with and
without a position), MAPQ, base quality, reads without qualities or without a sequence, N / IUPAC / ``=``
bases, CIGARs with soft and hard clips, insertions, deletions and reference skips at the SNV, ``=``/``X``,
overlapping mates that agree, disagree or tie, secondary copies sharing a read name. Oracles:

- a brute-force count written here (``get_aligned_pairs`` per read and SNV, the documented rules);
- the pysam engine (``allelic.bamscan.ENGINE = "pysam"``): the whole table, ``n_filtered_reads`` and haplotype
  counts included, must be identical;
- ``samtools mpileup`` (when on PATH) on single-end reads, where its semantics match.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

import allelic.counts as ac
from conftest import write_bam
from allelic import bamscan
from allelic.counts import count_alleles

LENGTHS = {"chr1": 6000, "chr2": 6000, "chr3": 40000}
_rng = random.Random(11)
GENOME = {c: "".join(_rng.choice("ACGT") for _ in range(n)) for c, n in LENGTHS.items()}
FLAG_FILTERS = {"dup": 0x400, "sec": 0x100, "supp": 0x800, "qcf": 0x200}


def _other(*bases):
    return next(b for b in "ACGT" if b not in bases)


def _query(chrom, start, cigar, subs, rng):
    seq, r = [], start
    for n, op in re.findall(r"(\d+)([MIDNSH=X])", cigar):
        n = int(n)
        if op in "M=X":
            seq += [subs.get(p, GENOME[chrom][p]) for p in range(r, r + n)]
            r += n
        elif op in "DN":
            r += n
        elif op in "IS":
            seq += [rng.choice("ACGT") for _ in range(n)]
    return "".join(seq)


def _ref_span(cigar):
    return sum(int(n) for n, op in re.findall(r"(\d+)([MIDNSH=X])", cigar) if op in "MDN=X")


def _segment(name, chrom, start, cigar, seq, flag=0, mapq=60, quals=None, mate_start=None):
    a = pysam.AlignedSegment()
    a.query_name = name
    a.flag = flag
    if chrom is None:  # unplaced unmapped read
        a.reference_id, a.reference_start = -1, -1
    else:
        a.reference_id = list(LENGTHS).index(chrom)
        a.reference_start = start
    a.mapping_quality = mapq
    if cigar is not None:
        a.cigarstring = cigar
    a.query_sequence = seq
    if seq is not None and quals is not None:
        a.query_qualities = pysam.qualitystring_to_array("".join(chr(q + 33) for q in quals))
    if flag & 1 and chrom is not None:
        a.next_reference_id = a.reference_id
        a.next_reference_start = start if mate_start is None else mate_start
    return a


def _write_bam(path: Path, reads, csi=False) -> Path:
    return write_bam(path, reads, LENGTHS, csi=csi)


CIGARS = ["50M", "50M", "50M", "5S45M", "45M5S", "3H50M2H", "20M2D30M", "20M300N30M", "20M2I28M",
          "10M1D10M1I29M", "25=1X24M", "2S10M3D10M4N26M2S"]


def _planted(seed=5, n_reads=5000, single_end=False, with_oddities=True):
    """Reads at random over chr1/chr2 with SNVs every ~25 bp; returns (reads, variants table)."""
    rng = random.Random(seed)
    snvs = {c: sorted(rng.sample(range(60, LENGTHS[c] - 60), 150)) for c in ("chr1", "chr2")}
    alt = {(c, p): _other(GENOME[c][p]) for c in snvs for p in snvs[c]}
    reads = []
    for i in range(n_reads):
        c = rng.choice(["chr1", "chr2"])
        start = rng.randrange(0, LENGTHS[c] - 400)
        cig = rng.choice(CIGARS)
        span = range(start, start + _ref_span(cig))
        subs = {}
        for p in snvs[c]:
            if p in span:
                u = rng.random()
                subs[p] = (alt[(c, p)] if u < 0.45 else GENOME[c][p] if u < 0.9
                           else rng.choice("ACGTN" + ("RYKM=" if with_oddities else "")))
        seq = _query(c, start, cig, subs, rng)
        quals = [rng.randrange(0, 42) for _ in seq]
        flag = rng.choice([0, 0, 0, 16, 16, 0x400, 0x100, 0x800, 0x200])
        mapq = rng.choice([60, 60, 60, 0, 5, 10])
        name = f"read{i:06d}_" + "x" * rng.randrange(0, 40)  # long names: the name buffer grows
        if with_oddities and rng.random() < 0.03:
            quals = None  # QUAL '*': every base passes
        if with_oddities and flag & 0x100 and rng.random() < 0.5:
            seq = None  # SEQ '*' on a secondary
        if single_end or rng.random() < 0.5:
            reads.append(_segment(name, c, start, cig, seq, flag, mapq, quals))
            continue
        # an overlapping mate: same bases, or some disagreeing; qualities sometimes tied
        m_start = start + rng.randrange(0, 30)
        m_cig = rng.choice(["50M", "50M", "10M2D40M", "5S45M"])
        m_span = range(m_start, m_start + _ref_span(m_cig))
        m_subs = {p: (b if rng.random() < 0.7 else rng.choice("ACGT")) for p, b in subs.items() if p in m_span}
        m_seq = _query(c, m_start, m_cig, m_subs, rng)
        m_quals = [rng.choice([quals[0] if quals else 30, rng.randrange(0, 42)]) for _ in m_seq]
        f1, f2 = rng.choice([(99, 147), (83, 163), (97, 145)])
        if flag & 0xF00:
            f1 |= flag & 0xF00
        reads.append(_segment(name, c, start, cig, seq, f1, mapq, quals, mate_start=m_start))
        reads.append(_segment(name, c, m_start, m_cig, m_seq, f2, rng.choice([60, 60, 5]), m_quals, mate_start=start))
        if rng.random() < 0.1:  # a secondary copy sharing the name (counted once when secondaries are kept)
            reads.append(_segment(name, c, m_start, m_cig, m_seq, 0x100 | (f2 & 0xF0), 60, m_quals))
    if with_oddities:
        reads.append(_segment("unmapped_placed", "chr1", snvs["chr1"][3] - 10, None, "ACGT" * 10, 4, 0, [30] * 40))
        reads.append(_segment("no_cigar", "chr1", snvs["chr1"][5] - 10, None, "ACGT" * 10, 0, 60, [30] * 40))
        for k in range(5):
            reads.append(_segment(f"unplaced{k}", None, -1, None, "ACGT" * 10, 4, 0, [30] * 40))
    v = pd.DataFrame([(c, p + 1, GENOME[c][p], alt[(c, p)]) for c in snvs for p in snvs[c]],
                     columns=["chrom", "pos", "ref", "alt"])
    rs = np.random.default_rng(seed)
    v["hap1_allele"] = np.where(rs.random(len(v)) < 0.5, v["ref"], v["alt"])
    v["hap2_allele"] = np.where(v["hap1_allele"] == v["ref"], v["alt"], v["ref"])
    v["phased"] = rs.random(len(v)) < 0.8
    return reads, v


def _oracle(bam, v, min_bq=13, min_mq=10, flag_filter=0xF04):
    """Brute force, the documented rules: per SNV, reads passing flags/MAPQ whose span covers it; a base counts if
    aligned (not D/N) with quality >= min_bq (no qualities: passes); reads sharing a name (paired, or any when
    secondaries/supplementaries are kept) count once: the highest-quality base, nothing on a tie of different bases."""
    dedup_all = not (flag_filter & 0x100 and flag_filter & 0x800)
    rows = []
    with pysam.AlignmentFile(str(bam)) as af:
        for c, p, ref, alt in v[["chrom", "pos", "ref", "alt"]].itertuples(index=False):
            p0 = p - 1
            direct, frag, nseg = [], {}, 0
            for r in af.fetch(c, p0, p):
                if r.is_unmapped or not r.cigartuples or r.flag & flag_filter or r.mapping_quality < min_mq:
                    continue
                if not r.reference_start <= p0 < r.reference_end:
                    continue
                nseg += 1
                if r.query_sequence is None:
                    continue
                qp = {rp: qp for qp, rp in r.get_aligned_pairs(matches_only=True)}.get(p0)
                if qp is None:
                    continue
                q = 255 if r.query_qualities is None else r.query_qualities[qp]
                if q < min_bq:
                    continue
                b = r.query_sequence[qp]
                if not dedup_all and not r.flag & 1:
                    direct.append(b)
                else:
                    frag.setdefault(r.query_name, []).append((q, b))
            bases = list(direct)
            for lst in frag.values():
                top = max(q for q, _ in lst)
                best = {b for q, b in lst if q == top}
                if len(best) == 1:
                    bases.append(best.pop())
            s = "".join(bases).upper()
            rc, a_ = s.count(ref), s.count(alt)
            rows.append((c, p, rc, a_, len(s) - rc - a_, nseg - len(s)))
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref_count", "alt_count", "other_count", "n_filtered_reads"])


def _cmp_oracle(table, oracle):
    """Every SNV of the oracle with a counted read is in the table with the same counts; the others are not."""
    exp = oracle[oracle[["ref_count", "alt_count", "other_count"]].sum(axis=1) > 0].reset_index(drop=True)
    got = table[list(exp.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, exp, check_dtype=False)


def _no_pysam_engine(*a, **k):
    raise AssertionError("the pysam engine was used where the raw engine should have counted")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine")
    reads, v = _planted()
    return {"dir": d, "bam": _write_bam(d / "planted.bam", reads), "v": v}


OPTIONS = [
    {},
    {"min_base_quality": 0, "min_mapping_quality": 0},
    {"min_base_quality": 30, "min_mapping_quality": 60},
    {"skip_duplicates": False, "skip_qcfail": False},
    {"skip_secondary": False},
    {"skip_supplementary": False},
    {"skip_secondary": False, "skip_supplementary": False, "skip_duplicates": False, "skip_qcfail": False},
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_raw_engine_matches_brute_force_and_pysam_engine(planted, monkeypatch, opts):
    bam, v = planted["bam"], planted["v"]
    with monkeypatch.context() as m:
        m.setattr(ac, "_count_region", _no_pysam_engine)  # the raw engine must do all the counting
        raw = count_alleles(bam, v, max_other_fraction=None, progress=False, **opts)
    with monkeypatch.context() as m:
        m.setattr(bamscan, "ENGINE", "pysam")
        ref = count_alleles(bam, v, max_other_fraction=None, progress=False, **opts)
    pd.testing.assert_frame_equal(raw.table, ref.table)
    pd.testing.assert_frame_equal(raw.ledger.table(), ref.ledger.table())
    flag_filter = 0x4 | sum(bit for k, bit in (("skip_duplicates", 0x400), ("skip_secondary", 0x100),
                                                ("skip_supplementary", 0x800), ("skip_qcfail", 0x200))
                            if opts.get(k, True))
    oracle = _oracle(bam, v, opts.get("min_base_quality", 13), opts.get("min_mapping_quality", 10), flag_filter)
    _cmp_oracle(raw.table, oracle)
    t = raw.table
    assert (t["other_count"] > 0).sum() > 20 and (t["n_filtered_reads"] > 0).sum() > 50 and len(t) > 250
    ph = t["hap1_count"].notna()
    assert ph.sum() > 100 and ((t["hap1_count"] + t["hap2_count"])[ph] == t["total"][ph]).all()


def test_raw_engine_many_small_regions_and_workers(planted, monkeypatch):
    bam, v = planted["bam"], planted["v"]
    base = count_alleles(bam, v, skip_secondary=False, max_other_fraction=None, progress=False).table
    for k, val in {"_TASK_SNVS": 7, "_MIN_TASK_SNVS": 5, "_MIN_GAP": 10, "_MAX_GAP": 10}.items():
        monkeypatch.setattr(ac, k, val)
    monkeypatch.setattr(ac, "_count_region", _no_pysam_engine)
    for n_jobs in (1, 2):
        t = count_alleles(bam, v, skip_secondary=False, max_other_fraction=None, n_jobs=n_jobs, progress=False).table
        pd.testing.assert_frame_equal(t, base)


@pytest.mark.skipif(shutil.which("samtools") is None, reason="samtools not on PATH")
def test_raw_engine_matches_samtools_mpileup(tmp_path, monkeypatch):
    """Single-end reads, every base with a quality, A/C/G/T/N only: samtools' semantics equal count_alleles'."""
    reads, v = _planted(seed=9, n_reads=3000, single_end=True, with_oddities=False)
    bam = _write_bam(tmp_path / "se.bam", reads)
    bed = tmp_path / "sites.bed"
    bed.write_text("".join(f"{c}\t{p - 1}\t{p}\n" for c, p in zip(v["chrom"], v["pos"])))
    monkeypatch.setattr(ac, "_count_region", _no_pysam_engine)
    t = count_alleles(bam, v, min_base_quality=20, min_mapping_quality=10, max_other_fraction=None, progress=False).table
    out = subprocess.run(["samtools", "mpileup", "-B", "-Q", "20", "-q", "10", "-d", "0", "--ff",
                          "UNMAP,SECONDARY,QCFAIL,DUP,SUPPLEMENTARY", "-l", str(bed), str(bam)],
                         check=True, capture_output=True, text=True).stdout
    col = {}
    for line in out.splitlines():
        f = line.split("\t")
        b = re.sub(r"\^.", "", f[4])
        while True:  # drop indels: +3ACG / -2AC
            m = re.search(r"[+-](\d+)", b)
            if not m:
                break
            b = b[:m.start()] + b[m.end() + int(m.group(1)):]
        col[(f[0], int(f[1]))] = "".join(ch for ch in b if ch.isalpha()).upper()
    rows = []
    for c, p, ref, alt in v[["chrom", "pos", "ref", "alt"]].itertuples(index=False):
        s = col.get((c, p), "")
        if s:
            rows.append((c, p, s.count(ref), s.count(alt), len(s) - s.count(ref) - s.count(alt)))
    exp = pd.DataFrame(rows, columns=["chrom", "pos", "ref_count", "alt_count", "other_count"])
    got = t[list(exp.columns)].reset_index(drop=True)
    assert len(exp) > 250
    pd.testing.assert_frame_equal(got, exp, check_dtype=False)


def test_csi_index_and_long_cigar_fall_back_to_pysam(tmp_path, monkeypatch):
    """A CSI-only index is read by htslib (the pysam engine); a read with > 65535 CIGAR operations (stored as a
    CG tag) makes the raw engine hand its region to htslib. Counts are identical either way."""
    reads, v = _planted(seed=3, n_reads=1500)
    rng = random.Random(1)
    cig = "1M1I" * 33000  # 66,000 operations over 33 kb
    subs = {p: _other(GENOME["chr3"][p]) for p in range(1000, 34000, 997)}
    long_read = _segment("long", "chr3", 1000, cig, _query("chr3", 1000, cig, subs, rng), 0, 60, None)
    short = [_segment(f"s{k}", "chr3", p - 10, "30M", _query("chr3", p - 10, "30M", subs, rng), 0, 60, [30] * 30)
             for k, p in enumerate(subs)]
    v3 = pd.DataFrame([("chr3", p + 1, GENOME["chr3"][p], b) for p, b in subs.items()], columns=["chrom", "pos", "ref", "alt"])
    v = pd.concat([v, v3], ignore_index=True)
    bam = _write_bam(tmp_path / "long.bam", reads + [long_read] + short)
    with pysam.AlignmentFile(str(bam)) as af:
        assert any(len(r.cigartuples) > 65535 for r in af.fetch("chr3"))
    used = []
    orig = ac._count_region

    def spy(af, contig, *a):
        used.append(contig)
        return orig(af, contig, *a)

    monkeypatch.setattr(ac, "_count_region", spy)
    got = count_alleles(bam, v, max_other_fraction=None, progress=False).table
    assert set(used) == {"chr3"}  # only the region with the long CIGAR went to htslib
    assert (got[got["chrom"] == "chr3"]["alt_count"] == 2).all()  # the long read and a short one, each alt
    with monkeypatch.context() as m:
        m.setattr(bamscan, "ENGINE", "pysam")
        ref = count_alleles(bam, v, max_other_fraction=None, progress=False).table
    pd.testing.assert_frame_equal(got, ref)
    _cmp_oracle(got, _oracle(bam, v))
    # CSI only: the raw engine (which reads .bai) steps aside
    csi = _write_bam(tmp_path / "csi.bam", reads, csi=True)
    assert not Path(f"{csi}.bai").exists() and Path(f"{csi}.csi").exists()
    monkeypatch.setattr(ac, "_count_region_raw", _no_pysam_engine)
    t = count_alleles({"long": csi}, v[v["chrom"] != "chr3"], max_other_fraction=None, progress=False).table
    pd.testing.assert_frame_equal(t, ref[ref["chrom"] != "chr3"].reset_index(drop=True))


def test_truncated_bam_error_names_the_file_and_region(planted, tmp_path, monkeypatch):
    """The BAM cut inside a BGZF block of reads, EOF marker re-appended (so it opens): both engines raise."""
    bam = planted["bam"]
    raw = bam.read_bytes()
    blocks = [m.start() for m in re.finditer(re.escape(b"\x1f\x8b\x08\x04"), raw)]
    cut = tmp_path / "cut.bam"
    eof = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
    cut.write_bytes(raw[: blocks[len(blocks) // 2] + 5000] + eof)
    shutil.copy(f"{bam}.bai", f"{cut}.bai")
    for engine in ("raw", "pysam"):
        with monkeypatch.context() as m:
            m.setattr(bamscan, "ENGINE", engine)
            if engine == "raw":
                m.setattr(ac, "_count_region", _no_pysam_engine)
            with pytest.raises(OSError, match=r"cut\.bam: reading chr\d:\d+-\d+ failed .*samtools index"):
                count_alleles(cut, planted["v"], progress=False)
