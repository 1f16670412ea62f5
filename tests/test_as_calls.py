"""`allelic count` and `allelic test` on a sample sheet: the catalogue equals the chapter's calls, its VCF equals its
TSV (pysam, bcftools), replicates are combined in one exact test with their own calls kept."""
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from allelic import as_calls, catalogue, cli, io, samplesheet


@pytest.fixture(scope="module")
def sheet(small_sim, tmp_path_factory):
    """The small simulation's sheet in a folder of its own, with a second replicate of D1_liver_CTCF (the same BAM
    under another name, so its counts are known: twice the first's)."""
    d = tmp_path_factory.mktemp("own")
    t = pd.read_csv(small_sim.root / "samples.tsv", sep="\t")
    t["bam"] = [str(small_sim.root / b) for b in t["bam"]]
    t["peaks"] = [str(small_sim.root / b) for b in t["peaks"]]
    t["replicate"] = "r1"
    rep = t[t["sample"] == "D1_liver_CTCF"].assign(sample="D1_liver_CTCF_b", replicate="r2")
    t = pd.concat([t, rep], ignore_index=True)
    t.to_csv(d / "samples.tsv", sep="\t", index=False)
    return d / "samples.tsv"


@pytest.fixture(scope="module")
def written(sheet, small_sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("calls")
    args = ["--samples", str(sheet), "--vcf", str(small_sim.vcf), "--reference", str(small_sim.fasta)]
    assert cli.main(["count", *args, "--out", str(out / "counts"), "--jobs", "2"]) == 0
    assert cli.main(["test", "--counts", str(out / "counts"), "--out", str(out / "as.tsv"), "--profile", "smoke",
                     "--fdr", "0.05"]) == 0
    return out


def test_catalogue_equals_the_chapter_path(written, small_sim):
    cat = pd.read_csv(written / "as.tsv", sep="\t", keep_default_na=False, na_values=[""])
    reps = pd.read_csv(written / "as.replicates.tsv.gz", sep="\t")
    # the simulator path on the same BAMs (chapter 01's counting, chapter 02's test with the smoke settings)
    direct = as_calls.call(io.sheet_counts(small_sim), min_total=6, fdr=0.05, null="trimmed", fit_by=["assay"])
    single = cat[cat["n_replicates"] == 1].merge(direct.catalogue, on=["donor", "tissue", "assay", "chrom", "pos"],
                                                  suffixes=("", "_direct"))
    assert len(single) == (cat["n_replicates"] == 1).sum()
    np.testing.assert_array_equal(single["ref_count"], single["ref_count_direct"])
    # the second replicate joins the CTCF null fit, so p-values may move a little; most calls agree
    assert (single["as_call"] == single["as_call_direct"]).mean() > 0.97
    unit = cat[(cat["donor"] == "D1") & (cat["tissue"] == "liver") & (cat["assay"] == "CTCF")]
    assert (unit["n_replicates"] == 2).all() and (unit["replicates"] == "r1,r2").all()
    first = reps[reps["sample"] == "D1_liver_CTCF"].set_index("pos")
    np.testing.assert_array_equal(unit.set_index("pos")["ref_count"], 2 * first.loc[unit["pos"], "ref_count"])
    assert set(reps["sample"]) >= {"D1_liver_CTCF", "D1_liver_CTCF_b"}


def test_vcf_records_equal_the_tsv(written):
    cat = pd.read_csv(written / "as.tsv", sep="\t").fillna({"preferred_allele": ""})
    vcf = catalogue.read_vcf(written / "as.vcf.gz")
    key = ["chrom", "pos", "donor", "tissue", "assay"]
    a = cat.sort_values(key).reset_index(drop=True)
    b = vcf.sort_values(key).reset_index(drop=True)
    for c in ("ref", "alt", "n_replicates", "ref_count", "alt_count", "total", "as_call", "preferred_allele"):
        assert (a[c].to_numpy() == b[c].to_numpy()).all(), c
    np.testing.assert_allclose(b["pvalue"], a["pvalue"], rtol=1e-5)
    np.testing.assert_allclose(b["qvalue"], a["qvalue"], rtol=1e-5)


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
def test_bcftools_opens_the_catalogue(written):
    cat = pd.read_csv(written / "as.tsv", sep="\t")
    lines = subprocess.run(["bcftools", "view", "-H", str(written / "as.vcf.gz")], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert len(lines) == len(cat)
    called = subprocess.run(["bcftools", "view", "-H", "-i", "INFO/AS=1", str(written / "as.vcf.gz")],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(called) == int(cat["as_call"].sum()) > 0
    header = subprocess.run(["bcftools", "view", "-h", str(written / "as.vcf.gz")], capture_output=True, text=True,
                            check=True).stdout
    assert "##allelic_fdr=0.05" in header and "##contig=<ID=chr1,length=120000>" in header


def test_counts_folder_holds_its_provenance(written):
    d = written / "counts"
    assert {"dataset.json", "ledger.tsv", "phasing.tsv"} <= {p.name for p in d.iterdir()}
    assert (d / "D1_liver_CTCF_b.tsv.gz").is_file()
    phasing = pd.read_csv(d / "phasing.tsv", sep="\t")
    assert list(phasing["donor"]) == ["D1", "D2"] and (phasing["unphased"] == 0).all()


def test_test_refuses_a_folder_with_uncounted_samples(written, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(written / "counts", partial)
    (partial / "D2_lung_RNA.tsv.gz").unlink()
    assert cli.main(["test", "--counts", str(partial), "--out", str(tmp_path / "x.tsv")]) == 1
    assert "no counts for sample(s) D2_lung_RNA" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()


def test_count_reports_a_bad_sheet_and_does_nothing(sheet, small_sim, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    t = pd.read_csv(sheet, sep="\t")
    t.loc[3, "donor"] = "D7"
    t.to_csv(bad, sep="\t", index=False)
    assert cli.main(["count", "--samples", str(bad), "--vcf", str(small_sim.vcf), "--reference",
                     str(small_sim.fasta), "--out", str(tmp_path / "c")]) == 1
    assert "line 5 (sample 'D1_liver_H3K27ac'): donor 'D7'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert isinstance(samplesheet.read_sheet(sheet), pd.DataFrame)
