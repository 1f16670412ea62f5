"""Tests for allelic.counts: hand-built BAMs/VCFs with counts worked out by hand.

Layout of the main BAM (``s1``), 0-based reference coordinates, reads of 20 bp unless noted:

SNV A  chr1:101 (pos0 100), hap1 = alt (phased):
    ref1   ref            -> ref
    alt1   alt, reverse   -> alt
    dup1   alt, 0x400     -> skipped (duplicate)
    pA     mates 85-104 / 95-114, both alt          -> one alt (overlapping pair counted once)
    pB     mates: ref q20 / alt q35                  -> one alt (higher base quality wins)
    lowq   ref, base quality 5 at the SNV           -> not counted (n_filtered)
    lowmq  ref, MAPQ 5                              -> skipped
    sec    alt, 0x100                               -> skipped
    supp   alt, 0x800                               -> skipped
    qcf    ref, 0x200                               -> skipped
    del    10M2D10M, deletion over the SNV          -> not counted (n_filtered)
    skip   5M30N5M, reference skip over the SNV     -> not counted (n_filtered)
    third  third allele                             -> other
    clip   5S20M from 90: SNV at query index 15 = alt, index 10 (clip ignored) = ref -> alt
  => ref 1, alt 4, other 1, total 5, n_filtered 5 (lowq, del, skip, 2nd mate of pA, loser of pB)

SNV B  chr1:301 (unphased):
    b1 ref; b2 9M2I10M from 291 -> SNV at query index 11 = alt; pT mates ref q30 / alt q30 (tie)
  => ref 1, alt 1, other 0, n_filtered 2 (tied discordant pair not counted)

SNV C  chr1:501: no reads                      -> ledger no_coverage
SNV G  chr1:701: two reads, base quality 3      -> ledger no_coverage
SNV D  chr2:101: d1, d2 ref, d3 alt, d4 N      => ref 2, alt 1, other 1
SNV E  chr3:50: contig not in the BAM           -> ledger off_contig
SNV F  chr1:1500: beyond chr1 (1000 bp)         -> ledger off_contig
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from conftest import write_bam
from allelic.counts import (
    COUNTS_COLUMNS,
    VARIANT_COLUMNS,
    AlleleCounts,
    Variants,
    count_alleles,
    read_het_snvs,
    read_vcf_ad,
    read_vcfs_ad,
)

REPO = Path(__file__).resolve().parents[1]
LENGTHS = {"chr1": 1000, "chr2": 1000}
_rng = random.Random(7)
GENOME = {c: "".join(_rng.choice("ACGT") for _ in range(n)) for c, n in LENGTHS.items()}


def _other(*bases):
    return next(b for b in "ACGT" if b not in bases)


def _snv(chrom, pos):
    ref = GENOME[chrom][pos - 1]
    return ref, _other(ref)


A_REF, A_ALT = _snv("chr1", 101)
A_THIRD = _other(A_REF, A_ALT)
B_REF, B_ALT = _snv("chr1", 301)
C_REF, C_ALT = _snv("chr1", 501)
G_REF, G_ALT = _snv("chr1", 701)
D_REF, D_ALT = _snv("chr2", 101)


def _query(chrom, start, cigar, subs=None, clip="GGGGG", ins="TT"):
    """Query sequence of a read aligned at ``start`` (0-based) with ``cigar``; ``subs`` {ref pos0: base}."""
    subs = subs or {}
    seq, r = [], start
    for n, op in re.findall(r"(\d+)([MIDNS])", cigar):
        n = int(n)
        if op == "M":
            seq += [subs.get(p, GENOME[chrom][p]) for p in range(r, r + n)]
            r += n
        elif op in "DN":
            r += n
        elif op == "I":
            seq += list(ins[:n].ljust(n, "T"))
        elif op == "S":
            seq += list(clip[:n].ljust(n, "G"))
    return "".join(seq)


def _read(name, chrom, start, cigar="20M", subs=None, flag=0, mapq=60, q=30, qual_at=None, seq=None, **kw):
    a = pysam.AlignedSegment()
    a.query_name = name
    a.query_sequence = seq if seq is not None else _query(chrom, start, cigar, subs, **kw)
    a.flag = flag
    a.reference_id = list(LENGTHS).index(chrom)
    a.reference_start = start
    a.mapping_quality = mapq
    a.cigarstring = cigar
    quals = [q] * len(a.query_sequence)
    for i, v in (qual_at or {}).items():
        quals[i] = v
    a.query_qualities = pysam.qualitystring_to_array("".join(chr(v + 33) for v in quals))
    if flag & 1:
        a.next_reference_id = a.reference_id
        a.next_reference_start = kw.get("mate_start", start)
    return a


def _write_bam(path: Path, reads) -> Path:
    return write_bam(path, reads, LENGTHS)


def _main_reads():
    p = 100  # SNV A, 0-based
    R = [
        _read("ref1", "chr1", 90, subs={p: A_REF}),
        _read("alt1", "chr1", 90, subs={p: A_ALT}, flag=16),
        _read("dup1", "chr1", 90, subs={p: A_ALT}, flag=1024),
        _read("pA", "chr1", 85, subs={p: A_ALT}, flag=99),
        _read("pA", "chr1", 95, subs={p: A_ALT}, flag=147),
        _read("pB", "chr1", 88, subs={p: A_REF}, flag=99, qual_at={12: 20}),
        _read("pB", "chr1", 92, subs={p: A_ALT}, flag=147, qual_at={8: 35}),
        _read("lowq", "chr1", 90, subs={p: A_REF}, qual_at={10: 5}),
        _read("lowmq", "chr1", 90, subs={p: A_REF}, mapq=5),
        _read("sec", "chr1", 90, subs={p: A_ALT}, flag=256),
        _read("supp", "chr1", 90, subs={p: A_ALT}, flag=2048),
        _read("qcf", "chr1", 90, subs={p: A_REF}, flag=512),
        _read("del", "chr1", 90, cigar="10M2D10M"),
        _read("skip", "chr1", 80, cigar="5M30N5M"),
        _read("third", "chr1", 90, subs={p: A_THIRD}),
        # soft clip: query index 15 is the SNV (alt); index 10 (what ignoring the clip would read) is the ref allele
        _read("clip", "chr1", 90, cigar="5S20M", subs={p: A_ALT, 95: A_REF}),
        # SNV B (0-based 300)
        _read("b1", "chr1", 290, subs={300: B_REF}),
        _read("b2", "chr1", 291, cigar="9M2I10M", subs={300: B_ALT}),
        _read("pT", "chr1", 290, subs={300: B_REF}, flag=99),
        _read("pT", "chr1", 295, subs={300: B_ALT}, flag=147),
        # SNV G (0-based 700): only low base quality
        _read("g1", "chr1", 690, subs={700: G_REF}, qual_at={10: 3}),
        _read("g2", "chr1", 690, subs={700: G_ALT}, qual_at={10: 3}),
        # SNV D (chr2, 0-based 100)
        _read("d1", "chr2", 90, subs={100: D_REF}),
        _read("d2", "chr2", 95, subs={100: D_REF}, flag=16),
        _read("d3", "chr2", 99, subs={100: D_ALT}),
        _read("d4", "chr2", 90, subs={100: "N"}),
    ]
    return R


def _variants_df():
    return pd.DataFrame({
        "chrom": ["chr1", "chr1", "chr1", "chr1", "chr2", "chr3", "chr1"],
        "pos": [101, 301, 501, 701, 101, 50, 1500],
        "ref": [A_REF, B_REF, C_REF, G_REF, D_REF, "A", "C"],
        "alt": [A_ALT, B_ALT, C_ALT, G_ALT, D_ALT, "G", "T"],
        "hap1_allele": [A_ALT, B_REF, C_REF, G_REF, D_REF, "A", "C"],
        "hap2_allele": [A_REF, B_ALT, C_ALT, G_ALT, D_ALT, "G", "T"],
        "phased": [True, False, True, True, True, True, True],
    })


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("counts")
    bam = _write_bam(d / "s1.bam", _main_reads())
    fa = d / "ref.fa"
    fa.write_text("".join(f">{c}\n{s}\n" for c, s in GENOME.items()))
    pysam.faidx(str(fa))
    return {"dir": d, "bam": bam, "fasta": fa}


def _row(table, chrom, pos, sample=None):
    t = table[(table["chrom"] == chrom) & (table["pos"] == pos)]
    if sample is not None:
        t = t[t["sample"] == sample]
    assert len(t) == 1, t
    return t.iloc[0]


# ----------------------------------------------------------------------------------------------
# count_alleles
# ----------------------------------------------------------------------------------------------
def test_counts_by_hand(data):
    res = count_alleles(data["bam"], _variants_df(), progress=False)
    assert isinstance(res, AlleleCounts)
    t = res.table
    assert list(t.columns) == COUNTS_COLUMNS
    assert (t["sample"] == "s1").all()
    # table keeps the input order, without the dropped SNVs
    assert list(zip(t["chrom"], t["pos"])) == [("chr1", 101), ("chr1", 301), ("chr2", 101)]
    a = _row(t, "chr1", 101)
    assert (a.ref_count, a.alt_count, a.other_count, a.total, a.n_filtered_reads) == (1, 4, 1, 5, 5)
    assert (a.hap1_count, a.hap2_count) == (4, 1)  # hap1 carries alt
    b = _row(t, "chr1", 301)
    assert (b.ref_count, b.alt_count, b.other_count, b.total, b.n_filtered_reads) == (1, 1, 0, 2, 2)
    assert np.isnan(b.hap1_count) and np.isnan(b.hap2_count)  # unphased
    d = _row(t, "chr2", 101)
    assert (d.ref_count, d.alt_count, d.other_count, d.total) == (2, 1, 1, 3)
    assert (d.hap1_count, d.hap2_count) == (2, 1)
    for c in ["pos", "ref_count", "alt_count", "other_count", "total"]:
        assert t[c].dtype == np.int64
    led = res.ledger.table()
    got = sorted(zip(led["record"], led["reason"]))
    assert got == [("chr1:1500", "off_contig"), ("chr1:501", "no_coverage"), ("chr1:701", "no_coverage"),
                   ("chr3:50", "off_contig")]
    assert (led["step"] == "count_alleles").all()
    assert led["source"].str.endswith("s1.bam").all()
    assert led["detail"].str.contains("sample=s1").all()
    assert "2 overlapping reads filtered" in led.set_index("record").loc["chr1:701", "detail"]
    assert res.params["min_base_quality"] == 13


def test_filters_switch_individually(data):
    v = _variants_df().iloc[:1]

    def a(**kw):
        r = _row(count_alleles(data["bam"], v, progress=False, **kw).table, "chr1", 101)
        return r.ref_count, r.alt_count, r.other_count

    assert a() == (1, 4, 1)
    assert a(skip_duplicates=False) == (1, 5, 1)  # + dup1
    assert a(skip_qcfail=False) == (2, 4, 1)  # + qcf
    assert a(min_mapping_quality=0) == (2, 4, 1)  # + lowmq
    assert a(min_base_quality=0) == (2, 4, 1)  # + lowq; pB still alt (35 > 20)
    assert a(min_base_quality=25) == (1, 4, 1)  # pB's ref mate (q20) drops out, alt mate (q35) stays
    # secondary/supplementary alignments share the name of no other read here: each adds one alt
    assert a(skip_secondary=False) == (1, 5, 1)
    assert a(skip_supplementary=False) == (1, 5, 1)


def test_secondary_of_same_read_counts_once(tmp_path):
    p = 100
    reads = [
        _read("x", "chr1", 90, subs={p: A_ALT}),
        _read("x", "chr1", 92, subs={p: A_ALT}, flag=256),  # secondary copy of the same read
        _read("y", "chr1", 90, subs={p: A_REF}),
    ]
    bam = _write_bam(tmp_path / "sec.bam", reads)
    v = _variants_df().iloc[:1]
    r = _row(count_alleles(bam, v, skip_secondary=False, progress=False).table, "chr1", 101)
    assert (r.ref_count, r.alt_count, r.n_filtered_reads) == (1, 1, 1)


def test_read_without_qualities_counts(tmp_path):
    r = _read("noq", "chr1", 90, subs={100: A_ALT})
    r.query_qualities = None  # QUAL '*'
    bam = _write_bam(tmp_path / "noq.bam", [r, _read("q", "chr1", 90, subs={100: A_REF}, qual_at={10: 2})])
    t = count_alleles(bam, _variants_df().iloc[:1], min_base_quality=30, progress=False).table
    assert (t.ref_count.iat[0], t.alt_count.iat[0], t.n_filtered_reads.iat[0]) == (0, 1, 1)


def test_per_sample_variants(data, tmp_path):
    # second donor: het at chr1:201 and chr2:101 only
    e_ref, e_alt = _snv("chr1", 201)
    reads = [
        _read("e1", "chr1", 195, subs={200: e_alt}),
        _read("e2", "chr1", 190, subs={200: e_alt}),
        _read("e3", "chr1", 199, subs={200: e_ref}),
        _read("f1", "chr2", 92, subs={100: D_ALT}),
    ]
    bam2 = _write_bam(tmp_path / "donor2.bam", reads)
    v2 = pd.DataFrame({"chrom": ["chr1", "chr2"], "pos": [201, 101], "ref": [e_ref, D_REF], "alt": [e_alt, D_ALT]})
    res = count_alleles({"s1": data["bam"], "d2": bam2}, {"s1": _variants_df(), "d2": v2}, progress=False)
    t = res.table
    assert list(t["sample"]) == ["s1", "s1", "s1", "d2", "d2"]
    e = _row(t, "chr1", 201, "d2")
    assert (e.ref_count, e.alt_count, e.total) == (1, 2, 3)
    assert np.isnan(e.hap1_count)  # no haplotype columns given
    f = _row(t, "chr2", 101, "d2")
    assert (f.ref_count, f.alt_count) == (0, 1)
    assert _row(t, "chr2", 101, "s1").ref_count == 2
    # chr1:201 was not asked for in s1
    assert ((t["sample"] == "s1") & (t["pos"] == 201)).sum() == 0
    # list of paths: sample = file stem; one shared variant table
    res = count_alleles([data["bam"], bam2], v2, progress=False)
    assert set(res.table["sample"]) == {"s1", "donor2"}
    with pytest.raises(ValueError, match=r"no entry for sample\(s\) \['donor2'\]"):
        count_alleles([data["bam"], bam2], {"s1": v2}, progress=False)


def test_variants_object_and_empty(data):
    tab = _variants_df().iloc[[0, 4]].drop(columns=["phased"])
    tab["variant_id"] = ["a", "b"]
    v = Variants(table=tab.assign(phased=[True, False]), source="x.vcf.gz", sample="S")
    t = count_alleles(data["bam"], v, progress=False).table
    assert list(t["pos"]) == [101, 101]
    assert _row(t, "chr2", 101).hap1_count != _row(t, "chr2", 101).hap1_count  # NaN: unphased
    empty = count_alleles(data["bam"], _variants_df().iloc[:0], progress=False)
    assert list(empty.table.columns) == COUNTS_COLUMNS and len(empty.table) == 0


def test_duplicate_positions_in_variants_go_to_ledger(data):
    v = pd.concat([_variants_df().iloc[:1], _variants_df().iloc[:1]], ignore_index=True)
    res = count_alleles(data["bam"], v, progress=False)
    assert len(res.table) == 1
    led = res.ledger.table()
    assert list(led["reason"]) == ["duplicate_position"] and list(led["record"]) == ["chr1:101"]


def test_bad_variants_table(data):
    v = _variants_df()
    with pytest.raises(ValueError, match=r"row 1 \(chr1:301\): ref 'AT' is not a single base"):
        count_alleles(data["bam"], v.assign(ref=[A_REF, "AT", *v["ref"][2:]]), progress=False)
    with pytest.raises(ValueError, match="lacks column"):
        count_alleles(data["bam"], v.drop(columns=["alt"]), progress=False)
    with pytest.raises(ValueError, match=r"row 2 \(chr1:0\): pos must be a 1-based integer"):
        count_alleles(data["bam"], v.assign(pos=[101, 301, 0, 701, 101, 50, 1500]), progress=False)


def test_n_jobs_identical(data, monkeypatch):
    """Random paired/single reads with indels, clips, flags: n_jobs=2 == n_jobs=1 == a brute-force count (every SNV
    kept: random bases make many third alleles)."""
    rng = np.random.default_rng(3)
    snv_pos = {c: sorted(rng.choice(np.arange(30, 970), 120, replace=False).tolist()) for c in LENGTHS}
    alts = {(c, p): _other(GENOME[c][p - 1]) for c in LENGTHS for p in snv_pos[c]}
    reads = []
    for i in range(1500):
        c = "chr1" if i % 2 else "chr2"
        start = int(rng.integers(0, 900))
        cig = rng.choice(["30M", "30M", "3S27M", "12M2D18M", "10M1I19M", "8M40N22M"])
        subs = {p - 1: (alts[(c, p)] if rng.random() < 0.5 else rng.choice(list("ACGTN")))
                for p in snv_pos[c] if start <= p - 1 < start + 80}
        flag = int(rng.choice([0, 16, 1024, 256, 0, 16]))
        q = int(rng.integers(5, 40))
        mapq = int(rng.choice([60, 60, 60, 3]))
        reads.append(_read(f"r{i}", c, start, cigar=str(cig), subs=subs, flag=flag, q=q, mapq=mapq))
        if i % 3 == 0:  # an overlapping mate, maybe disagreeing
            subs2 = {k: (v if rng.random() < 0.7 else rng.choice(list("ACGT"))) for k, v in subs.items()}
            reads[-1].flag = 99
            reads.append(_read(f"r{i}", c, start + int(rng.integers(0, 15)), subs=subs2, flag=147,
                               q=int(rng.integers(5, 40))))
    bam = _write_bam(data["dir"] / "random.bam", reads)
    v = pd.DataFrame([(c, p, GENOME[c][p - 1], alts[(c, p)]) for c in LENGTHS for p in snv_pos[c]],
                     columns=["chrom", "pos", "ref", "alt"])
    r1 = count_alleles(bam, v, n_jobs=1, max_other_fraction=None, progress=False)
    r2 = count_alleles(bam, v, n_jobs=2, max_other_fraction=None, progress=False)
    pd.testing.assert_frame_equal(r1.table, r2.table)
    pd.testing.assert_frame_equal(r1.ledger.table(), r2.ledger.table())
    # many small regions and tasks (region/task cuts never change a count)
    import allelic.counts as ac
    for k, val in {"_TASK_SNVS": 7, "_MIN_TASK_SNVS": 5, "_MIN_GAP": 10, "_MAX_GAP": 10}.items():
        monkeypatch.setattr(ac, k, val)
    for n_jobs in (1, 2):
        pd.testing.assert_frame_equal(r1.table, count_alleles(bam, v, n_jobs=n_jobs, max_other_fraction=None, progress=False).table)
    assert len(r1.table) > 150 and (r1.table["other_count"] > 0).sum() > 20
    brute = _brute_force(bam, v)
    got = r1.table.set_index(["chrom", "pos"])[["ref_count", "alt_count", "other_count"]]
    exp = brute.loc[got.index]
    pd.testing.assert_frame_equal(got, exp, check_dtype=False)
    assert set(brute.index[brute.sum(axis=1) == 0]) == {
        tuple(x.split(":")[0:1]) + (int(x.split(":")[1]),) for x in r1.ledger.table()["record"]}


def _brute_force(bam, v, min_bq=13, min_mq=10):
    """Independent, slow reference: get_aligned_pairs per read, same counting rules."""
    out = {}
    with pysam.AlignmentFile(str(bam)) as af:
        for c, p, ref, alt in v[["chrom", "pos", "ref", "alt"]].itertuples(index=False):
            calls = {}
            for r in af.fetch(c, p - 1, p):
                if r.flag & 0xF04 or r.mapping_quality < min_mq:
                    continue
                qp = dict((rp, qp) for qp, rp in r.get_aligned_pairs() if rp is not None).get(p - 1)
                if qp is None or r.query_qualities[qp] < min_bq:
                    continue
                calls.setdefault(r.query_name, []).append((r.query_qualities[qp], r.query_sequence[qp]))
            bases = []
            for lst in calls.values():
                if len({b for _, b in lst}) == 1:
                    bases.append(lst[0][1])
                else:
                    lst.sort(reverse=True)
                    if lst[0][0] > lst[1][0]:
                        bases.append(lst[0][1])
            s = "".join(bases)
            out[(c, p)] = (s.count(ref), s.count(alt), len(s) - s.count(ref) - s.count(alt))
    df = pd.DataFrame.from_dict(out, orient="index", columns=["ref_count", "alt_count", "other_count"])
    df.index = pd.MultiIndex.from_tuples(df.index, names=["chrom", "pos"])
    return df


def test_contig_naming(data):
    v = _variants_df().iloc[[0, 4]].assign(chrom=["1", "2"])
    with pytest.raises(ValueError, match=r"none of the variant contigs \['1', '2'\].*contig_map=\{'1': 'chr1', '2': 'chr2'\}") as e:
        count_alleles(data["bam"], v, progress=False)
    assert "s1.bam" in str(e.value)
    res = count_alleles(data["bam"], v, contig_map={"1": "chr1", "2": "chr2"}, progress=False)
    assert list(res.table["chrom"]) == ["1", "2"]  # variants' naming kept
    assert _row(res.table, "1", 101).alt_count == 4
    # only one contig mapped: the other SNV is off_contig, not an error, and a warning says so with the fix
    with pytest.warns(UserWarning, match=r"s1\.bam: 1 of 2 SNVs lie on 1 contig\(s\) not in the BAM header "
                                         r"\(\['2'\]\) and went to the ledger as off_contig; .*\{'2': 'chr2'\}"):
        res = count_alleles(data["bam"], v, contig_map={"1": "chr1"}, progress=False)
    assert list(res.ledger.table()["reason"]) == ["off_contig"] and list(res.ledger.table()["record"]) == ["2:101"]


def test_missing_files_and_index(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bam"):
        count_alleles(tmp_path / "nope.bam", _variants_df(), progress=False)
    noidx = tmp_path / "noidx.bam"
    shutil.copy(data["bam"], noidx)
    with pytest.raises(FileNotFoundError, match=r"noidx.bam: no index.*samtools index .*noidx.bam"):
        count_alleles(noidx, _variants_df(), progress=False)


def test_reference_check(data):
    v = _variants_df().iloc[[0, 4]].copy()
    res = count_alleles(data["bam"], v, reference=data["fasta"], progress=False)
    assert len(res.table) == 2
    v.loc[v.index[1], ["ref", "alt"]] = [_other(D_REF, D_ALT), D_ALT]
    with pytest.raises(ValueError, match=r"ref\.fa: ref allele of SNV chr2:101 .*on_ref_mismatch='drop'"):
        count_alleles(data["bam"], v.drop(columns=["hap1_allele", "hap2_allele"]), reference=data["fasta"], progress=False)
    res = count_alleles(data["bam"], v.drop(columns=["hap1_allele", "hap2_allele"]), reference=data["fasta"],
                        on_ref_mismatch="drop", progress=False)
    assert list(res.table["pos"]) == [101] and list(res.table["chrom"]) == ["chr1"]
    led = res.ledger.table()
    assert list(zip(led["record"], led["reason"])) == [("chr2:101", "ref_mismatch")]


def test_cram(data, tmp_path):
    cram = tmp_path / "s1.cram"
    with pysam.AlignmentFile(str(data["bam"])) as src, \
            pysam.AlignmentFile(str(cram), "wc", template=src, reference_filename=str(data["fasta"])) as dst:
        for r in src.fetch(until_eof=True):
            dst.write(r)
    pysam.index(str(cram))
    v = _variants_df()
    a = count_alleles(data["bam"], v, progress=False).table
    b = count_alleles(cram, v, reference=data["fasta"], progress=False).table
    pd.testing.assert_frame_equal(a, b)
    env = {k: os.environ.pop(k) for k in ("REF_PATH", "REF_CACHE") if k in os.environ}
    try:
        with pytest.raises(ValueError, match="s1.cram: reading a CRAM needs the reference"):
            count_alleles(cram, v, progress=False)
    finally:
        os.environ.update(env)


def test_progress_bar(data, capsys):
    count_alleles(data["bam"], _variants_df(), progress=True)
    assert "count_alleles" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# read_het_snvs
# ----------------------------------------------------------------------------------------------
VCF_HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=1000>
##contig=<ID=chr2,length=1000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
"""
VCF_BODY = [
    ("chr1", 101, "rsA", A_REF, A_ALT, "1|0", "0/1"),
    ("chr1", 301, ".", B_REF, B_ALT, "0/1", "0/0"),
    ("chr1", 301, "dupB", B_REF, _other(B_REF, B_ALT), "0|1", "0/0"),
    ("chr1", 350, ".", "A", "G,T", "1/2", "0/1"),
    ("chr1", 400, ".", "AT", "A", "0/1", "0/1"),
    ("chr1", 450, ".", "A", "G", "./.", "0/1"),
    ("chr1", 460, ".", "A", "G", "0/0", "0/1"),
    ("chr1", 470, ".", "A", "G", "1|1", "0/1"),
    ("chr1", 480, ".", "A", "<DEL>", "0/1", "0/1"),
    ("chr2", 101, ".", D_REF, D_ALT, "0|1", "1|0"),
]


def _write_vcf(path: Path, header: str, rows, bgzip=True) -> Path:
    with open(path, "w") as fh:
        fh.write(header)
        for r in rows:
            fh.write("\t".join(map(str, r)) + "\n")
    if bgzip:
        return Path(pysam.tabix_index(str(path), preset="vcf", force=True))
    return path


@pytest.fixture(scope="module")
def vcf(tmp_path_factory):
    d = tmp_path_factory.mktemp("vcf")
    rows = [(c, p, i, r, a, ".", "PASS", ".", "GT", g1, g2) for c, p, i, r, a, g1, g2 in VCF_BODY]
    return _write_vcf(d / "calls.vcf", VCF_HEADER, rows)


def test_read_het_snvs(vcf):
    v = read_het_snvs(vcf, "S1")
    assert isinstance(v, Variants) and v.sample == "S1" and v.source == str(vcf)
    t = v.table
    assert list(t.columns) == VARIANT_COLUMNS
    assert list(zip(t["chrom"], t["pos"])) == [("chr1", 101), ("chr1", 301), ("chr2", 101)]
    a = t.iloc[0]
    assert (a.ref, a.alt, a.hap1_allele, a.hap2_allele, bool(a.phased), a.variant_id) == (A_REF, A_ALT, A_ALT, A_REF, True, "rsA")
    b = t.iloc[1]
    assert (bool(b.phased), b.hap1_allele, b.variant_id) == (False, B_REF, f"chr1:301:{B_REF}:{B_ALT}")
    assert t["pos"].dtype == np.int64 and t["phased"].dtype == bool
    led = v.ledger.table()
    assert list(zip(led["record"], led["reason"])) == [
        ("chr1:301", "duplicate_position"), ("chr1:350", "multiallelic"), ("chr1:400", "indel"),
        ("chr1:450", "missing_genotype"), ("chr1:460", "not_heterozygous"), ("chr1:470", "not_heterozygous"),
        ("chr1:480", "indel")]
    assert len(t) + len(led) == len(VCF_BODY)
    assert (led["step"] == "read_het_snvs").all() and (led["source"] == str(vcf)).all()
    # counted straight from the Variants
    s2 = read_het_snvs(vcf, "S2")
    assert list(s2.table["pos"]) == [101, 450, 460, 470, 101]  # 350 (1 alt allele in GT) still multiallelic


def test_read_het_snvs_options(vcf):
    ph = read_het_snvs(vcf, "S1", require_phased=True)
    # the unphased chr1:301 goes; the phased record at the same position is then the first one kept
    assert list(zip(ph.table["pos"], ph.table["variant_id"])) == [(101, "rsA"), (301, "dupB"), (101, f"chr2:101:{D_REF}:{D_ALT}")]
    assert ("chr1:301", "unphased") in set(zip(ph.ledger.table()["record"], ph.ledger.table()["reason"]))
    rg = read_het_snvs(vcf, "S1", region="chr1:100-310")
    assert list(rg.table["pos"]) == [101, 301]
    off = rg.ledger.table().query("reason == 'off_region'")
    assert list(off["record"]) == ["chr1:350", "chr1:400", "chr1:450", "chr1:460", "chr1:470", "chr1:480", "chr2:101"]
    assert len(rg.table) + len(rg.ledger) == len(VCF_BODY)
    cm = read_het_snvs(vcf, "S1", contig_map={"chr1": "1"}, region=("1", 1, 1000))
    assert list(cm.table["chrom"]) == ["1", "1"]
    assert cm.table["variant_id"].iloc[1] == f"1:301:{B_REF}:{B_ALT}"


def test_read_het_snvs_sample_errors(vcf, tmp_path):
    with pytest.raises(ValueError, match=r"calls\.vcf\.gz: the VCF has 2 samples \['S1', 'S2'\]; pass sample="):
        read_het_snvs(vcf)
    with pytest.raises(ValueError, match=r"calls\.vcf\.gz: sample 'S9' is not in the VCF; its samples are \['S1', 'S2'\]"):
        read_het_snvs(vcf, "S9")
    with pytest.raises(FileNotFoundError, match="missing.vcf.gz"):
        read_het_snvs(tmp_path / "missing.vcf.gz")
    # plain-text, single-sample VCF: sample=None picks it
    one = _write_vcf(tmp_path / "one.vcf", VCF_HEADER.replace("\tS2", ""),
                     [("chr1", 101, ".", A_REF, A_ALT, ".", "PASS", ".", "GT", "0|1")], bgzip=False)
    assert read_het_snvs(one).sample == "S1"


def test_vcf_to_counts(vcf, data):
    v = read_het_snvs(vcf, "S1")
    t = count_alleles(data["bam"], v, progress=False).table
    a = _row(t, "chr1", 101)
    assert (a.hap1_count, a.hap2_count) == (4, 1)  # GT 1|0: hap1 = alt
    assert np.isnan(_row(t, "chr1", 301).hap1_count)
    assert _row(t, "chr2", 101).hap2_count == 1  # GT 0|1: hap2 = alt


# ----------------------------------------------------------------------------------------------
# read_vcf_ad
# ----------------------------------------------------------------------------------------------
AD_HEADER = VCF_HEADER.replace("\tS2", "")


def test_read_vcf_ad(tmp_path):
    rows = [
        ("chr1", 101, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:11,5"),
        ("chr1", 201, ".", "C", "T", ".", "PASS", ".", "GT:AD", "1|0:7,3"),
        ("chr1", 301, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:11,5,3"),  # malformed: 3 values
        ("chr1", 401, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:11"),  # malformed: 1 value
        ("chr1", 501, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:."),  # missing
        ("chr1", 601, ".", "A", "G", ".", "PASS", ".", "GT", "0/1"),  # no AD
        ("chr1", 701, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/0:9,0"),  # hom
        ("chr1", 801, ".", "A", "G,T", ".", "PASS", ".", "GT:AD", "1/2:0,4,4"),
        ("chr1", 901, ".", "AC", "A", ".", "PASS", ".", "GT:AD", "0/1:4,4"),
        ("chr2", 101, ".", "G", "A", ".", "PASS", ".", "GT:AD", "0/1:0,0"),
        ("chr2", 201, ".", "G", "A", ".", "PASS", ".", "GT:AD", "0/1:-1,3"),
        ("chr2", 301, ".", "G", "A", ".", "PASS", ".", "GT:AD", "./.:3,3"),
    ]
    path = _write_vcf(tmp_path / "ad.vcf", AD_HEADER, rows)
    res = read_vcf_ad(path, contig_map={"chr1": "1"})
    t = res.table
    assert list(t.columns) == COUNTS_COLUMNS
    assert list(zip(t["sample"], t["chrom"], t["pos"])) == [("S1", "1", 101), ("S1", "1", 201)]
    a, b = t.iloc[0], t.iloc[1]
    assert (a.ref_count, a.alt_count, a.other_count, a.total) == (11, 5, 0, 16)
    assert np.isnan(a.hap1_count) and np.isnan(a.n_filtered_reads)
    assert (b.ref_count, b.alt_count, b.hap1_count, b.hap2_count) == (7, 3, 3, 7)  # 1|0: hap1 = alt
    led = res.ledger.table()
    assert list(zip(led["record"], led["reason"])) == [
        ("chr1:301", "malformed_ad"), ("chr1:401", "malformed_ad"), ("chr1:501", "missing_ad"),
        ("chr1:601", "missing_ad"), ("chr1:701", "not_heterozygous"), ("chr1:801", "multiallelic"),
        ("chr1:901", "indel"), ("chr2:101", "no_coverage"), ("chr2:201", "malformed_ad"),
        ("chr2:301", "missing_genotype")]
    assert "has 3 values, expected 2" in led["detail"].iloc[0]
    assert len(t) + len(led) == len(rows)


def test_read_vcf_ad_unparseable_record(tmp_path):
    rows = [("chr1", 101, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:11,5"),
            ("chr1", 201, ".", "C", "T", ".", "PASS", ".", "GT:AD", "0/1:x,3")]
    path = _write_vcf(tmp_path / "bad.vcf", AD_HEADER, rows, bgzip=False)
    with pytest.raises(ValueError, match=r"bad\.vcf: cannot parse VCF record #2 \(line 8: 'chr1\\t201"):
        read_vcf_ad(path)


def _hek293_dir() -> Path:
    return Path(os.environ.get("ALLELIC_HEK293_DIR", REPO / ".." / "shared" / "data" / "hek293_ctcf"))


@pytest.mark.realdata
def test_read_vcf_ad_real_hek293():
    d = _hek293_dir()
    if not (d / "SOURCE.md").exists():
        pytest.skip("real data absent: set ALLELIC_HEK293_DIR")
    expected = {m.group(1): int(m.group(2).replace(",", ""))
                for m in re.finditer(r"\|\s*(\S+\.vcf\.gz)\s*\|\s*([\d,]+)\s*\|", (d / "SOURCE.md").read_text())}
    assert expected["CTCF.THC_0201.vcf.gz"] == 4301
    for name, n_records in expected.items():
        res = read_vcf_ad(d / name)
        assert len(res.table) == n_records - len(res.ledger), name
        t = res.table
        assert t["sample"].nunique() == 1 and t["chrom"].str.startswith("chr").all()
        assert (t["total"] == t["ref_count"] + t["alt_count"]).all()
        # upstream kept only records with both AD values > 4
        assert (t[["ref_count", "alt_count"]] > 4).all().all(), name


@pytest.mark.realdata
def test_several_vcfs_tested_by_file_equal_one_by_one():
    """Chapter 02's HEK293 test: the VCFs read into one table (``file`` column) and tested with one null fit and one
    BH family per file give, row for row, what testing each file on its own gives."""
    d = _hek293_dir()
    if not (d / "SOURCE.md").exists():
        pytest.skip("real data absent: set ALLELIC_HEK293_DIR")
    from allelic.stats import test_imbalance

    files = sorted(d.glob("*.vcf.gz"))[:3]
    both = read_vcfs_ad(files)
    assert both.table["file"].unique().tolist() == [f.name for f in files]
    grouped = test_imbalance(both.table, group_cols=("file",), fdr_by_group=True, min_total=6, fdr=0.05)
    n_ledger = 0
    for f in files:
        one = read_vcf_ad(f)
        n_ledger += len(one.ledger)
        alone = test_imbalance(one.table, group_cols=("sample",), min_total=6, fdr=0.05).table
        mine = grouped.table[grouped.table["file"] == f.name]
        assert mine["pos"].tolist() == alone["pos"].tolist()
        for c in ("p_null", "rho", "p_betabinom", "q_betabinom", "as_betabinom", "as_binom"):
            np.testing.assert_array_equal(mine[c].to_numpy(), alone[c].to_numpy(), err_msg=f"{f.name} {c}")
    assert len(both.ledger) == n_ledger


def test_read_vcfs_ad_labels_rows_by_file(tmp_path):
    a = _write_vcf(tmp_path / "a.vcf", AD_HEADER, [("chr1", 101, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:11,5"),
                                                   ("chr1", 201, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/0:9,0")])
    b = _write_vcf(tmp_path / "b.vcf", AD_HEADER, [("chr1", 101, ".", "A", "G", ".", "PASS", ".", "GT:AD", "0/1:3,8")])
    res = read_vcfs_ad([a, b])
    t = res.table
    assert list(t.columns) == COUNTS_COLUMNS + ["file"]
    assert list(zip(t["file"], t["pos"], t["ref_count"], t["alt_count"])) == [(a.name, 101, 11, 5), (b.name, 101, 3, 8)]
    assert list(zip(res.ledger.table()["record"], res.ledger.table()["reason"])) == [("chr1:201", "not_heterozygous")]
    with pytest.raises(ValueError, match="no VCF given"):
        read_vcfs_ad([])
    with pytest.raises(ValueError, match=r"file names must be unique.*a\.vcf"):
        read_vcfs_ad([a, a])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_corrupt_bam_error_names_the_file_and_region(small_sim, tmp_path, n_jobs):
    """A BAM corrupted in the middle (header and EOF marker intact, so it opens): the error names the file and the
    region being read, with n_jobs=1 (where closing the broken file used to hide it) and with worker processes."""
    bam = Path(max(small_sim.bams().values(), key=lambda p: os.path.getsize(p)))
    bad = tmp_path / "broken.bam"
    shutil.copy(bam, bad)
    shutil.copy(f"{bam}.bai", f"{bad}.bai")
    raw = bytearray(bad.read_bytes())
    blocks = [m.start() for m in re.finditer(re.escape(b"\x1f\x8b\x08\x04"), bytes(raw))]  # BGZF block starts
    assert len(blocks) >= 4  # header block, read blocks, EOF marker
    start = blocks[len(blocks) // 2] + 30  # inside a block of reads: the header and the EOF marker survive
    raw[start:start + 2000] = bytes(2000)
    bad.write_bytes(bytes(raw))
    donor = pysam.VariantFile(str(small_sim.vcf)).header.samples[0]
    v = read_het_snvs(small_sim.vcf, sample=donor).table
    with pytest.raises(OSError, match=r"broken\.bam: reading chr\d+:\d+-\d+ failed .*samtools index") as e:
        count_alleles(bad, v, n_jobs=n_jobs, progress=False)
    assert "Closing failed" not in str(e.value)


def test_vcf_without_ad_or_without_records_says_so(tmp_path):
    no_ad = VCF_HEADER.replace('##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n', "")
    no_ad = no_ad.replace("\tS2", "")
    path = _write_vcf(tmp_path / "gt_only.vcf", no_ad, [("chr1", 101, ".", "A", "G", ".", "PASS", ".", "GT", "0/1")])
    with pytest.raises(ValueError, match=r"gt_only\.vcf\.gz: the header declares no FORMAT/AD and the first record "
                                         r"\(chr1:101\) has none.*FORMAT fields here: \['GT'\]"):
        read_vcf_ad(path)
    empty = _write_vcf(tmp_path / "empty.vcf", AD_HEADER, [])
    with pytest.warns(UserWarning, match=r"empty\.vcf\.gz: the VCF has a header but no records"):
        res = read_vcf_ad(empty)
    assert res.table.empty and res.ledger.table().empty
    with pytest.warns(UserWarning, match="header but no records"):
        assert read_het_snvs(empty).table.empty


def test_a_third_allele_sends_the_snv_to_the_ledger(tmp_path):
    """chr1:101 has 3 ref, 3 alt and 3 reads of a third base (a third of the reads: probably not ref/alt het);
    chr2:101 has 4 ref, 4 alt and 1 third-base read (a sequencing error: kept)."""
    p, q = 100, 100
    reads = ([_read(f"r{i}", "chr1", 90, subs={p: A_REF}) for i in range(3)]
             + [_read(f"a{i}", "chr1", 90, subs={p: A_ALT}) for i in range(3)]
             + [_read(f"t{i}", "chr1", 90, subs={p: A_THIRD}) for i in range(3)]
             + [_read(f"R{i}", "chr2", 90, subs={q: D_REF}) for i in range(4)]
             + [_read(f"A{i}", "chr2", 90, subs={q: D_ALT}) for i in range(4)]
             + [_read("T0", "chr2", 90, subs={q: _other(D_REF, D_ALT)})])
    bam = _write_bam(tmp_path / "third.bam", reads)
    v = _variants_df().iloc[[0, 4]]
    res = count_alleles(bam, v, progress=False)
    assert list(zip(res.table["chrom"], res.table["pos"])) == [("chr2", 101)]
    assert (_row(res.table, "chr2", 101).other_count, _row(res.table, "chr2", 101).total) == (1, 8)
    led = res.ledger.table()
    assert list(zip(led["record"], led["reason"])) == [("chr1:101", "third_allele")]
    assert "ref 3, alt 3, other 3 reads: 33% neither allele" in led["detail"].iloc[0]
    kept = count_alleles(bam, v, max_other_fraction=None, progress=False).table
    assert len(kept) == 2 and _row(kept, "chr1", 101).other_count == 3
