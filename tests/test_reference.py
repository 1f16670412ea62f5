"""The one reference check (:mod:`allelic.reference`): both readers that meet a FASTA (allele counting and window
cutting) take the same policy words and report a wrong reference allele the same way."""
import re

import numpy as np
import pysam
import pytest

from allelic import datasets as ds
from allelic.counts import count_alleles
from allelic.ledger import Ledger
from allelic.reference import check_on_ref_mismatch, chrom_sort_key, fetch_bases, open_fasta, ref_mismatches
from allelic.windows import cut_windows

from conftest import write_bam

GENOME = {"chr1": "ACGT" * 150, "chr2": "TTGCA" * 120}   # 600 bp each


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    fa = d / "genome.fa"
    fa.write_text("".join(f">{c}\n{s}\n" for c, s in GENOME.items()))
    pysam.faidx(str(fa))
    reads = []
    for i, (c, start) in enumerate([("chr1", 250), ("chr2", 250)]):
        a = pysam.AlignedSegment()
        a.query_name, a.flag, a.reference_id, a.reference_start = f"r{i}", 0, i, start
        a.mapping_quality, a.cigarstring = 60, "100M"
        a.query_sequence = GENOME[c][start:start + 100]
        a.query_qualities = pysam.qualitystring_to_array("I" * 100)
        reads.append(a)
    bam = write_bam(d / "s.bam", reads, {c: len(s) for c, s in GENOME.items()})
    return fa, bam


def _sites():
    """Two SNVs: chr1:301 (genome 'A', given correctly) and chr2:301 (genome 'T', given as 'G': a wrong reference)."""
    import pandas as pd

    assert GENOME["chr1"][300] == "A" and GENOME["chr2"][300] == "T"
    return pd.DataFrame({"chrom": ["chr1", "chr2"], "pos": [301, 301], "ref": ["A", "G"], "alt": ["C", "C"]})


def test_both_readers_report_a_wrong_reference_the_same_way(files):
    fa, bam = files
    want = r"genome\.fa: ref allele of SNV chr2:301 is 'G' but the reference has 'T' \(1 of \d SNV\(s\) disagree\)"
    with pytest.raises(ValueError, match=want + ".*on_ref_mismatch='drop'"):
        count_alleles(bam, _sites(), reference=fa, progress=False)
    with pytest.raises(ValueError, match=want + ".*on_ref_mismatch='drop'"):
        cut_windows(_sites(), fa, window=50)


@pytest.mark.parametrize("policy", ["raise", "error"])
def test_both_readers_take_the_same_policy_words(files, policy):
    fa, bam = files
    with pytest.raises(ValueError, match="chr2:301"):
        count_alleles(bam, _sites(), reference=fa, on_ref_mismatch=policy, progress=False)
    with pytest.raises(ValueError, match="chr2:301"):
        cut_windows(_sites(), fa, window=50, on_ref_mismatch=policy)


def test_drop_sends_the_same_variant_to_both_ledgers(files):
    fa, bam = files
    counted = count_alleles(bam, _sites(), reference=fa, on_ref_mismatch="drop", progress=False)
    led = Ledger()
    windows = cut_windows(_sites(), fa, window=50, on_ref_mismatch="drop", ledger=led)
    assert list(counted.table["chrom"]) == list(windows["chrom"]) == ["chr1"]
    assert counted.table["ref_count"].tolist() == [1]                 # the read over chr1:301 carries the reference
    assert windows["seq_ref"].tolist() == [GENOME["chr1"][275:325]]   # 50 bp, SNV at offset 25 (0-based 300)
    c, w = counted.ledger.table(), led.table()
    assert c["reason"].tolist() == w["reason"].tolist() == ["ref_mismatch"]
    assert c["record"].iloc[0].startswith("chr2:301") and w["record"].iloc[0].startswith("chr2:301")


def test_ref_mismatches_mask_and_message():
    chrom, pos = np.array(["chr1", "chr1", "chrX"]), np.array([5, 9, 2])
    ref, genome = np.array(["A", "C", "G"], object), np.array(["A", "T", ""], object)
    assert ref_mismatches("x.fa", chrom, pos, ref, genome, on_ref_mismatch="drop").tolist() == [False, True, True]
    with pytest.raises(ValueError, match=re.escape("x.fa: ref allele of SNV chr1:9 is 'C' but the reference has 'T' "
                                                   "(2 of 3 SNV(s) disagree) — my hint")):
        ref_mismatches("x.fa", chrom, pos, ref, genome, hint="my hint")
    assert not ref_mismatches("x.fa", chrom[:1], pos[:1], ref[:1], genome[:1]).any()


def test_policy_words():
    assert check_on_ref_mismatch("raise") == check_on_ref_mismatch("error") == "raise"
    assert check_on_ref_mismatch("drop") == "drop"
    with pytest.raises(ValueError, match="on_ref_mismatch must be 'raise' or 'drop', got 'skip'"):
        check_on_ref_mismatch("skip")


def test_open_fasta_and_fetch(files, tmp_path):
    fa, _ = files
    with open_fasta(fa) as f:
        assert fetch_bases(f, ["chr1", "chr2", "chr2"], [1, 1, 600]).tolist() == ["A", "T", "A"]
    with pytest.raises(FileNotFoundError, match="missing.fa: FASTA file not found"):
        open_fasta(tmp_path / "missing.fa")
    bad = tmp_path / "bad.fa"
    bad.write_text("this is not a FASTA\n")
    with pytest.raises(ValueError, match="bad.fa: cannot be opened as an indexed FASTA.*samtools faidx"):
        open_fasta(bad)


def test_chrom_sort_key_natural_order():
    names = ["chrX", "chr10", "chr2", "chrM", "chr1", "chrY", "scaffold_7", "3", "chr22"]
    assert sorted(names, key=chrom_sort_key) == ["chr1", "chr2", "3", "chr10", "chr22", "chrX", "chrY", "chrM",
                                                 "scaffold_7"]
    assert ds.chrom_sort_key is chrom_sort_key     # one definition, re-exported where examples are built


def test_fetch_bases_in_runs_equals_one_fetch_per_base(files, monkeypatch):
    """Reading sorted runs (here cut every 97 bp) gives what a fetch per position gives, in the input's order, with
    "" past a contig's end."""
    import numpy as np

    from allelic import reference

    fa, _ = files
    monkeypatch.setattr(reference, "_SPAN", 97)
    rng = np.random.default_rng(1)
    with open_fasta(fa) as f:
        lengths = dict(zip(f.references, f.lengths))
        chrom = rng.choice(list(lengths), 300)
        pos = np.array([rng.integers(1, lengths[c] + 3) for c in chrom])  # a few past the end
        expected = [f.fetch(c, p - 1, p).upper() for c, p in zip(chrom, pos)]
        assert fetch_bases(f, chrom, pos).tolist() == expected
        assert "" in expected
