"""The AS catalogue's VCF form (:mod:`allelic.catalogue`): it round-trips, bcftools and tabix read it, its header
carries the genome's contigs, and a bad row is an error naming the row that leaves no file behind."""
import gzip
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pysam
import pytest

from allelic.catalogue import CATALOGUE_COLUMNS, INFO, read_vcf, write_vcf

LENGTHS = {"chr1": 3000, "chr2": 2000}
needs_bcftools = pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")

# chrom, pos, donor, tissue, assay, n_replicates, ref_count, alt_count, pvalue, qvalue, as_call
ROWS = [
    ("chr1", 1, "ENTEx-1", "stomach", "CTCF", 2, 10, 10, 1.0, 1.0, False),
    ("chr1", 120, "ENTEx-1", "stomach", "CTCF", 2, 30, 2, 3.1e-7, 4.4e-6, True),
    ("chr1", 120, "ENTEx-1", "stomach", "H3K27ac", 1, 12, 9, 0.66, 0.81, False),   # same SNV, two test units
    ("chr1", 120, "ENTEx-2", "adrenal_gland", "CTCF", 3, 1, 25, 7.5e-7, 9.0e-6, True),
    ("chr1", 347, "ENTEx-1", "thyroid.gland", "CTCF", 1, 8, 7, 1.0, 1.0, False),
    ("chr1", 502, "ENTEx-2", "stomach", "POLR2A", 2, 400, 40, 1.2e-300, 5.3e-299, True),
    ("chr1", 777, "ENTEx-1", "stomach", "CTCF", 2, 15, 3, 0.0075, 0.041, True),
    ("chr1", 777, "ENTEx-2", "stomach", "CTCF", 2, 9, 11, 0.82, 0.9, False),
    ("chr1", 1024, "ENTEx-3", "spleen", "H3K4me3", 4, 50, 0, 8.9e-16, 3.1e-14, True),
    ("chr1", 1500, "ENTEx-3", "spleen", "CTCF", 1, 6, 6, 1.0, 1.0, False),
    ("chr1", 1501, "ENTEx-3", "spleen", "CTCF", 1, 0, 7, 0.0156, 0.062, False),
    ("chr1", 1802, "ENTEx-1", "stomach", "CTCF", 2, 22, 18, 0.64, 0.81, False),
    ("chr1", 2000, "ENTEx-4", "lung", "CTCF", 2, 5, 30, 1.8e-6, 1.9e-5, True),
    ("chr1", 2222, "ENTEx-4", "lung", "H3K27ac", 1, 13, 13, 1.0, 1.0, False),
    ("chr1", 2600, "ENTEx-4", "lung", "CTCF", 2, 17, 4, 0.0072, 0.041, True),
    ("chr1", 2999, "ENTEx-4", "lung", "CTCF", 2, 3, 4, 1.0, 1.0, False),
    ("chr1", 3000, "ENTEx-2", "stomach", "CTCF", 1, 5, 5, 1.0, 1.0, False),        # the contig's last base
    ("chr2", 1, "ENTEx-1", "stomach", "CTCF", 2, 11, 8, 0.65, 0.81, False),
    ("chr2", 64, "ENTEx-1", "stomach", "CTCF", 2, 0, 90, 3.2e-45, 8.0e-44, True),  # below float32's range
    ("chr2", 64, "ENTEx-1", "adrenal_gland", "CTCF", 2, 20, 24, 0.65, 0.81, False),
    ("chr2", 300, "ENTEx-2", "adrenal_gland", "CTCF", 1, 14, 2, 0.0042, 0.03, True),
    ("chr2", 512, "ENTEx-2", "adrenal_gland", "H3K4me3", 3, 9, 10, 1.0, 1.0, False),
    ("chr2", 880, "ENTEx-3", "spleen", "CTCF", 2, 40, 38, 0.91, 0.93, False),
    ("chr2", 1000, "ENTEx-3", "spleen", "CTCF", 2, 33, 5, 4.2e-6, 3.5e-5, True),
    ("chr2", 1000, "ENTEx-4", "lung", "CTCF", 2, 18, 19, 1.0, 1.0, False),
    ("chr2", 1333, "ENTEx-4", "lung", "POLR2A", 1, 7, 2, 0.18, 0.4, False),
    ("chr2", 1700, "ENTEx-4", "lung", "CTCF", 2, 2, 21, 6.6e-5, 4.4e-4, True),
    ("chr2", 1850, "ENTEx-1", "stomach", "CTCF", 2, 25, 25, 1.0, 1.0, False),
    ("chr2", 1999, "ENTEx-2", "stomach", "CTCF", 2, 12, 16, 0.57, 0.79, False),
    ("chr2", 2000, "ENTEx-3", "spleen", "CTCF", 1, 0, 0, 1.0, 1.0, False),          # no reads: ratio NaN
]
N_AS = sum(r[-1] for r in ROWS)


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    """A faidx-indexed FASTA of chr1 (3 kb) and chr2 (2 kb) of seeded random bases, and its sequences."""
    rng = np.random.default_rng(7)
    seqs = {c: "".join(np.array(list("ACGT"))[rng.integers(0, 4, n)]) for c, n in LENGTHS.items()}
    fa = tmp_path_factory.mktemp("catalogue") / "genome.fa"
    fa.write_text("".join(f">{c}\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n"
                          for c, s in seqs.items()))
    pysam.faidx(str(fa))
    return fa, seqs


@pytest.fixture()
def table(genome):
    """The catalogue of :data:`ROWS`, reference bases from the genome, shuffled and indexed 100, 101, ..."""
    seqs = genome[1]
    t = pd.DataFrame(ROWS, columns=["chrom", "pos", "donor", "tissue", "assay", "n_replicates", "ref_count",
                                    "alt_count", "pvalue", "qvalue", "as_call"])
    t["ref"] = [seqs[c][p - 1] for c, p in zip(t.chrom, t.pos, strict=True)]
    t["alt"] = [{"A": "G", "C": "T", "G": "A", "T": "C"}[b] for b in t.ref]
    t["total"] = t.ref_count + t.alt_count
    t["ratio"] = t.ref_count / t.total.where(t.total > 0)
    t["p_null"] = np.where(t.assay == "CTCF", 0.5, 0.52)
    t["preferred_allele"] = np.where(t.as_call, np.where(t.ratio > t.p_null, "ref", "alt"), "")
    t["hap1_allele"], t["hap2_allele"] = t.ref.where(t.index % 3 == 0), t.alt.where(t.index % 3 == 0)
    t = t[list(CATALOGUE_COLUMNS) + ["hap1_allele", "hap2_allele"]]
    t.index = 100 + t.index
    return t.sample(frac=1, random_state=3)


def _sorted(t, order=tuple(LENGTHS)):
    key = t.chrom.map({c: i for i, c in enumerate(order)})
    return t.assign(_k=key).sort_values(["_k", "pos", "donor", "tissue", "assay"]).drop(columns="_k") \
        .reset_index(drop=True)


def _assert_same(got, want):
    assert list(got.columns) == list(want.columns)
    floats = ["ratio", "p_null", "pvalue", "qvalue"]
    pd.testing.assert_frame_equal(got.drop(columns=floats), want.drop(columns=floats).astype(got.dtypes.drop(floats)))
    for c in floats:
        np.testing.assert_allclose(got[c].to_numpy(), want[c].to_numpy(dtype=float), rtol=1e-4, atol=0)


def _write(table, genome, tmp_path, **kw):
    return write_vcf(table, tmp_path / "as.vcf.gz", reference=genome[0], meta={"fdr": 0.05, "test": "beta-binomial"},
                     **kw)


def test_round_trip_gives_back_the_sorted_table(table, genome, tmp_path):
    vcf = _write(table, genome, tmp_path)
    assert vcf == tmp_path / "as.vcf.gz" and (tmp_path / "as.vcf.gz.tbi").is_file()
    got = read_vcf(vcf)
    assert got.dtypes[["pos", "ref_count", "total"]].tolist() == [np.int64] * 3 and got.as_call.dtype == bool
    assert got.pvalue[got.pos == 502].item() == pytest.approx(1.2e-300, rel=1e-5)   # survives beyond float32
    assert got.preferred_allele[~got.as_call].eq("").all() and np.isnan(got.ratio.iloc[-1])
    _assert_same(got, _sorted(table))


def test_without_haplotype_columns_the_header_has_no_hap_fields(table, genome, tmp_path):
    vcf = _write(table.drop(columns=["hap1_allele", "hap2_allele"]), genome, tmp_path)
    with pysam.VariantFile(str(vcf)) as vf:
        assert "HAP1" not in vf.header.info and len(list(vf)) == len(table)
    assert tuple(read_vcf(vcf).columns) == CATALOGUE_COLUMNS


def test_records_follow_the_contig_order_given(table, tmp_path):
    order = ("chr2", "chr1")
    vcf = write_vcf(table, tmp_path / "c.vcf.gz", contigs={c: LENGTHS[c] for c in order})
    _assert_same(read_vcf(vcf), _sorted(table, order))


@needs_bcftools
def test_bcftools_reads_records_as_calls_regions_and_info(table, genome, tmp_path):
    vcf = str(_write(table, genome, tmp_path))

    def bcftools(*args):
        return subprocess.run(["bcftools", *args], check=True, capture_output=True, text=True).stdout

    assert len(bcftools("view", "-H", vcf).splitlines()) == len(table)
    assert len(bcftools("view", "-H", "-i", "INFO/AS=1", vcf).splitlines()) == N_AS
    assert len(bcftools("view", "-H", "-i", "INFO/Q<0.05 && INFO/DP>=20", vcf).splitlines()) == \
        int(((table.qvalue < 0.05) & (table.total >= 20)).sum())
    header = bcftools("view", "-h", vcf)
    assert set(re.findall(r"##INFO=<ID=(\w+),", header)) == set(INFO)
    chr2 = bcftools("view", "-H", vcf, "chr2").splitlines()
    assert len(chr2) == (table.chrom == "chr2").sum() and {r.split("\t")[0] for r in chr2} == {"chr2"}
    stats = dict(line.split("\t")[::2] for line in bcftools("index", "-s", vcf).splitlines())
    assert stats == {c: str((table.chrom == c).sum()) for c in LENGTHS}


@pytest.mark.parametrize("region, chrom, lo, hi", [("chr1:100-800", "chr1", 100, 800), ("chr2", "chr2", 1, 2000),
                                                   ("chr2:64-64", "chr2", 64, 64), ("chr1:3001-3100", "chr1", 0, -1)])
def test_a_region_reads_exactly_its_records(table, genome, tmp_path, region, chrom, lo, hi):
    vcf = _write(table, genome, tmp_path)
    want = _sorted(table[(table.chrom == chrom) & table.pos.between(lo, hi)])
    _assert_same(read_vcf(vcf, region=region), want)
    with pysam.TabixFile(str(vcf)) as tbx:
        assert len(list(tbx.fetch(region=region))) == len(want)


def test_header_carries_the_fasta_contigs_and_provenance(table, genome, tmp_path):
    vcf = _write(table, genome, tmp_path)
    with gzip.open(vcf, "rt") as fh:
        header = [line.rstrip("\n") for line in fh if line.startswith("##")]
    assert header[0] == "##fileformat=VCFv4.2" and header[1].startswith("##source=allelic")
    assert "##reference=genome.fa" in header
    assert [h for h in header if h.startswith("##contig")] == ["##contig=<ID=chr1,length=3000>",
                                                               "##contig=<ID=chr2,length=2000>"]
    assert {"##allelic_fdr=0.05", "##allelic_test=beta-binomial"} <= set(header)
    with pysam.VariantFile(str(vcf)) as vf:
        assert {c: vf.header.contigs[c].length for c in vf.header.contigs} == LENGTHS


@pytest.mark.parametrize("column, value, match", [
    ("ref", "N", r"ref 'N' is not A, C, G or T"),
    ("alt", "AT", r"alt 'AT' is not A, C, G or T"),
    ("alt", None, r"ref and alt are both"),
    ("pos", 0, r"pos 0 is not an integer >= 1"),
    ("total", 999, r"total 999 != ref_count"),
    ("pvalue", 1.5, r"pvalue 1.5 is not in \[0, 1\]"),
    ("qvalue", -0.1, r"qvalue -0.1 is not in \[0, 1\]"),
    ("qvalue", np.nan, r"qvalue nan is not in \[0, 1\]"),
    ("assay", "CTCF;x", r"assay 'CTCF;x' is empty or has characters"),
    ("preferred_allele", "ref", r"preferred_allele 'ref' with as_call=False"),
    ("chrom", "chrUn", r"contig 'chrUn' is not in the reference"),
    ("pos", 3001, r"pos 3001 is beyond the end of chr1 \(3000 bp\)"),
])
def test_a_bad_row_is_an_error_naming_it_and_writes_nothing(table, genome, tmp_path, column, value, match):
    row = 104                                    # ("chr1", 347, ..., as_call False)
    table.loc[row, column] = table.loc[row, "ref"] if value is None else value
    chrom, pos = table.loc[row, "chrom"], table.loc[row, "pos"]
    with pytest.raises(ValueError, match=rf"as\.vcf\.gz: catalogue row {row} \({chrom}:{pos}\): {match}"):
        _write(table, genome, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_columns_and_a_wrong_name_are_errors(table, genome, tmp_path):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['qvalue', 'as_call'\]"):
        _write(table.drop(columns=["as_call", "qvalue"]), genome, tmp_path)
    with pytest.raises(ValueError, match=r"as\.vcf: a catalogue VCF's name must end in \.vcf\.gz"):
        write_vcf(table, tmp_path / "as.vcf", reference=genome[0])
    with pytest.raises(ValueError, match=r"meta key 'bad key' must be a word"):
        write_vcf(table, tmp_path / "as.vcf.gz", contigs=LENGTHS, meta={"bad key": 1})
    with pytest.raises(ValueError, match="not both"):
        write_vcf(table, tmp_path / "as.vcf.gz", reference=genome[0], contigs=LENGTHS)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_catalogue_and_leaves_no_temporary_file(table, genome, tmp_path, monkeypatch):
    vcf = _write(table, genome, tmp_path)
    before = vcf.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pysam, "tabix_index", broken)
    with pytest.raises(OSError, match="disk full"):
        _write(table.iloc[:5], genome, tmp_path)
    assert vcf.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["as.vcf.gz", "as.vcf.gz.tbi"]


def test_reading_a_vcf_that_is_not_a_catalogue_names_the_file(tmp_path):
    plain = tmp_path / "plain.vcf.gz"
    with pysam.BGZFile(str(plain), "wb") as fh:
        fh.write(b'##fileformat=VCFv4.2\n##contig=<ID=chr1,length=100>\n'
                 b'##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">\n'
                 b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\t5\t.\tA\tG\t.\tPASS\tDP=3\n")
    with pytest.raises(ValueError, match=r"plain\.vcf\.gz: not an allelic catalogue VCF; .*'DONOR'"):
        read_vcf(plain)


def test_an_empty_catalogue_round_trips(table, genome, tmp_path):
    vcf = _write(table.iloc[:0], genome, tmp_path)
    got = read_vcf(vcf)
    assert got.empty and list(got.columns) == list(table.columns)
    assert got.as_call.dtype == bool and got.pos.dtype == np.int64
