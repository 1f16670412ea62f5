import gzip

import pandas as pd
import pytest

from allelic import io
from allelic.ledger import Ledger

HEADER = "chr\tpos\tref_allele\thap1_allele\thap2_allele\tdonor\ttissue\tassay\tref_reads\ttotal_reads\tref_allele_ratio\tas_label\tsubset\n"
ROWS = [
    "chr1\t100\tA\tA\tG\tD1\tliver\tCTCF\t15\t20\t0.75\t1\tbalanced",
    "chr1\t100\tA\tA\tG\tD1\tliver\tCTCF\t15\t20\t0.75\t1\tnatural_depth100",  # same measurement, other subset
    "chr1\t200\tC\tT\tC\tD1\tlung\tCTCF\t3\t30\t0.1\t1\tbalanced",  # ref on haplotype 2
    "chr2\t300\tG\tT\tT\tD2\tliver\tCTCF\t0\t12\t0.0\t0\tbalanced",  # ref on neither haplotype
]


def _write(d, header=HEADER, rows=ROWS, windows=True):
    d.mkdir(exist_ok=True)
    with gzip.open(d / "labels.tsv.gz", "wt") as fh:
        fh.write(header + "\n".join(rows) + "\n")
    if windows:
        seq = "C" * 150 + "A" + "G" * 150
        with gzip.open(d / "windows.tsv.gz", "wt") as fh:
            fh.write("chr\tpos\tref_allele\talleles\tlength\tsnv_offset\tsequence\n")
            fh.write(f"chr1\t100\tA\tA,G\t301\t150\t{seq}\n")
    return d


def test_entex_labels_to_counts_schema(tmp_path):
    led = Ledger()
    t = io.read_entex_labels(_write(tmp_path / "e"), ledger=led)
    assert list(t["pos"]) == [100, 200]
    first, second = t.iloc[0], t.iloc[1]
    assert (first["ref_count"], first["alt_count"], first["total"], first["alt"]) == (15, 5, 20, "G")
    assert first["subset"] == "balanced,natural_depth100" and first["sample"] == "D1_liver_CTCF"
    assert (second["alt"], second["ref_count"], second["alt_count"]) == ("T", 3, 27)
    # haplotype counts: hap1 carries the reference in the first row, the alternative (T, 27 reads) in the second
    assert (first["hap1_count"], first["hap2_count"]) == (15, 5) and (second["hap1_count"], second["hap2_count"]) == (27, 3)
    reasons = led.table().set_index("reason")["record"]
    assert reasons["ref_not_in_genotype"] == "chr2:300 D2" and reasons["duplicate_measurement"] == "D1_liver_CTCF chr1:100"


@pytest.mark.parametrize("row, message", [
    ("chr1\t100\tA\tA\tG\tD1\tliver\tCTCF\t25\t20\t1.25\t1\tbalanced", "line 2: ref_reads outside 0..total_reads"),
    ("chr1\t100\tA\tA\tN\tD1\tliver\tCTCF\t5\t20\t0.25\t1\tbalanced", "line 2: hap2_allele is not one of A, C, G, T"),
    ("chr1\t100\tA\tA\tG\tD1\tliver\tCTCF\tfive\t20\t0.25\t1\tbalanced", "line 2: column ref_reads is not an integer"),
])
def test_entex_labels_bad_rows_name_file_and_line(tmp_path, row, message):
    d = _write(tmp_path / "e", rows=[row])
    with pytest.raises(ValueError, match=message) as err:
        io.read_entex_labels(d)
    assert "labels.tsv.gz" in str(err.value)


def test_entex_missing_columns_and_empty(tmp_path):
    d = _write(tmp_path / "e", header=HEADER.replace("\tsubset", ""), rows=[r.rsplit("\t", 1)[0] for r in ROWS])
    with pytest.raises(ValueError, match="missing column\\(s\\) subset"):
        io.read_entex_labels(d)
    d = _write(tmp_path / "f", rows=[])
    with pytest.raises(ValueError, match="no data rows"):
        io.read_entex_labels(d)


def test_entex_windows_cut_and_check_reference(tmp_path):
    d = _write(tmp_path / "e")
    w = io.read_entex_windows(d, window=200)
    assert w.loc[0, "sequence"] == "C" * 100 + "A" + "G" * 99
    with pytest.raises(ValueError, match="does not fit"):
        io.read_entex_windows(d, window=400)
    with gzip.open(d / "windows.tsv.gz", "wt") as fh:  # wrong build: the base at the offset is not the ref
        fh.write("chr\tpos\tref_allele\talleles\tlength\tsnv_offset\tsequence\n")
        fh.write(f"chr1\t100\tT\tA,T\t301\t150\t{'C' * 150 + 'A' + 'G' * 150}\n")
    with pytest.raises(ValueError, match="line 2: base at snv_offset differs from ref_allele"):
        io.read_entex_windows(d)


@pytest.mark.realdata
def test_real_entex_tables(entex_dir):
    led = Ledger()
    t = io.read_entex_labels(entex_dir, ledger=led)
    raw = pd.read_csv(entex_dir / "labels.tsv.gz", sep="\t")
    assert len(raw) == 21_921  # SOURCE.md
    assert len(t) + len(led) == len(raw)  # nothing lost without a ledger row
    assert t[["chrom", "pos"]].drop_duplicates().shape[0] == 7_253
    assert (t["ref_count"] + t["alt_count"] == t["total"]).all()
    w = io.read_entex_windows(entex_dir)
    assert len(w) == 7_253 and (w["sequence"].str[100] == w["ref"]).all()


def test_simulation_counts_schema_and_ledger(small_sim):
    led = Ledger()
    c = io.simulation_counts(small_sim, samples=["D1_liver_CTCF", "D2_lung_RNA"], ledger=led)
    assert list(c.columns[:13]) == io.COUNT_COLUMNS
    assert set(c["sample"]) == {"D1_liver_CTCF", "D2_lung_RNA"}
    assert (c["total"] == c["ref_count"] + c["alt_count"]).all() and (c["total"] > 0).all()
    assert set(c.loc[c["sample"] == "D2_lung_RNA", "donor"]) == {"D2"}
    reasons = set(led.table()["reason"])
    assert {"not_heterozygous", "no_coverage"} <= reasons  # the VCF parser's and the counter's removals
    with pytest.raises(ValueError, match="unknown sample"):
        io.simulation_counts(small_sim, samples=["nope"])
