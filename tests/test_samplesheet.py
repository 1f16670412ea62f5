"""Your own data (allelic.samplesheet): every check names the sheet's line, the sample and the file; contig names
are matched when the mapping is unambiguous; CRAM, renamed contigs, unphased genotypes and replicates are counted
like the simulator's own BAMs."""
import gzip
import shutil

import numpy as np
import pandas as pd
import pysam
import pytest

from allelic import io, samplesheet
from allelic.samplesheet import SampleSheetError

SMALL = ["D1_liver_CTCF", "D2_lung_CTCF"]  # the two samples most tests use (fast)


def _user_folder(sim, tmp_path, samples=SMALL):
    """The simulator's files as a user would hand them over: a data folder, and the sheet in another folder with
    relative paths into it."""
    data = tmp_path / "data"
    (data / "bam").mkdir(parents=True)
    for f in ("genome.fa", "genome.fa.fai", "variants.vcf.gz", "variants.vcf.gz.tbi"):
        shutil.copy(sim.root / f, data / f)
    sheet = pd.read_csv(sim.root / "samples.tsv", sep="\t")
    sheet = sheet[sheet["sample"].isin(samples)].reset_index(drop=True)
    for s in sheet["sample"]:
        for ext in (".bam", ".bam.bai"):
            shutil.copy(sim.root / "bam" / f"{s}{ext}", data / "bam" / f"{s}{ext}")
    sheet["bam"] = "../data/bam/" + sheet["sample"] + ".bam"
    sheet = sheet[["sample", "donor", "tissue", "assay", "bam"]]
    (tmp_path / "sheets").mkdir()
    path = tmp_path / "sheets" / "samples.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    return path, data / "variants.vcf.gz", data / "genome.fa"


def _write_sheet(path, rows):
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def _rewrite_vcf(src, dst, edit):
    """Copy a bgzipped VCF line by line through ``edit(line) -> line``, then bgzip and tabix-index it."""
    plain = dst.with_suffix("")
    with gzip.open(src, "rt") as fi, open(plain, "w") as fo:
        for line in fi:
            fo.write(edit(line))
    pysam.tabix_compress(str(plain), str(dst), force=True)
    pysam.tabix_index(str(dst), preset="vcf", force=True)
    plain.unlink()
    return dst


def _rename_bam(src, dst, rename):
    header = pysam.AlignmentFile(str(src)).header.to_dict()
    for sq in header["SQ"]:
        sq["SN"] = rename.get(sq["SN"], sq["SN"])
    with pysam.AlignmentFile(str(src)) as fi, pysam.AlignmentFile(str(dst), "wb", header=header) as fo:
        for r in fi:
            fo.write(pysam.AlignedSegment.fromstring(r.to_string().replace(
                f"\t{r.reference_name}\t", f"\t{rename.get(r.reference_name, r.reference_name)}\t", 1), fo.header))
    pysam.index(str(dst))
    return dst


@pytest.fixture()
def user(small_sim, tmp_path):
    return _user_folder(small_sim, tmp_path)


@pytest.fixture(scope="module")
def reference_counts(small_sim):
    return io.sheet_counts(small_sim, samples=SMALL)


def _key(t):
    return t.sort_values(["sample", "chrom", "pos"]).reset_index(drop=True)[
        ["sample", "chrom", "pos", "ref", "alt", "ref_count", "alt_count", "hap1_count", "hap2_count"]]


def test_a_moved_sheet_reads_its_files_relative_to_itself(user, reference_counts):
    sheet, vcf, fa = user
    data = samplesheet.load(sheet, vcf, fa)
    assert data.notes == [] and not data.has_truth and data.truth() is None
    assert all(p.startswith(str(vcf.parent)) for p in data.table["bam"])
    assert list(data.table["replicate"]) == ["1", "1"] and list(data.table["unit"]) == SMALL
    pd.testing.assert_frame_equal(_key(io.sheet_counts(data)), _key(reference_counts))


def test_cram_is_decoded_against_the_reference_and_counts_like_the_bam(user, reference_counts):
    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    bam = (sheet.parent / t.loc[0, "bam"]).resolve()
    cram = bam.with_suffix(".cram")
    pysam.view("-C", "-T", str(fa), "-o", str(cram), str(bam), catch_stdout=False)
    pysam.index(str(cram))
    bam.unlink()
    t.loc[0, "bam"] = t.loc[0, "bam"].replace(".bam", ".cram")
    t.to_csv(sheet, sep="\t", index=False)
    counts = io.sheet_counts(samplesheet.load(sheet, vcf, fa))
    pd.testing.assert_frame_equal(_key(counts), _key(reference_counts))


def test_missing_and_unindexed_alignments_name_the_row(user):
    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    bai = (sheet.parent / (t.loc[1, "bam"] + ".bai")).resolve()
    bai.unlink()
    with pytest.raises(SampleSheetError, match=r"samples.tsv: line 3 \(sample 'D2_lung_CTCF'\): .*has no index.*"
                                               r"samtools index"):
        samplesheet.load(sheet, vcf, fa)
    t.loc[1, "bam"] = "../data/bam/absent.bam"
    t.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match=r"line 3 \(sample 'D2_lung_CTCF'\): alignment file .*absent.bam does "
                                               r"not exist"):
        samplesheet.load(sheet, vcf, fa)


def test_donor_absent_from_the_vcf_names_the_row(user):
    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    t.loc[1, "donor"] = "D9"
    t.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match=r"line 3 \(sample 'D2_lung_CTCF'\): donor 'D9' is not a sample of "
                                               r".*variants.vcf.gz \(its samples: D1, D2\)"):
        samplesheet.load(sheet, vcf, fa)


def test_sheet_errors_name_the_line(tmp_path, user):
    sheet, vcf, fa = user
    base = pd.read_csv(sheet, sep="\t").to_dict("records")
    cases = [
        ([{**base[0]}, {**base[1], "sample": base[0]["sample"]}], r"lines 2, 3: sample name 'D1_liver_CTCF' is used "
                                                                  r"more than once"),
        ([base[0], {**base[1], "tissue": "lung/left"}], r"line 3 \(sample 'D2_lung_CTCF'\): tissue 'lung/left' holds '/'"),
        ([base[0], {**base[1], "sample": "D2 lung"}], r"line 3 \(sample 'D2 lung'\): sample 'D2 lung' holds ' '"),
        ([base[0], {**base[1], "donor": ""}], r"line 3 \(sample 'D2_lung_CTCF'\): column 'donor' is empty"),
        ([{k: v for k, v in r.items() if k != "assay"} for r in base], r"missing column\(s\) assay"),
        ([{**base[0], "replicate": "a"}, {**base[1], "donor": "D1", "tissue": "liver", "replicate": "a"}],
         r"line 2 \(sample 'D1_liver_CTCF'\): replicate 'a' of D1_liver_CTCF appears more than once"),
    ]
    for rows, pattern in cases:
        _write_sheet(sheet, rows)
        with pytest.raises(SampleSheetError, match=pattern):
            samplesheet.load(sheet, vcf, fa)
    sheet.write_text("sample\tdonor\ttissue\tassay\tbam\n")
    with pytest.raises(SampleSheetError, match="no samples"):
        samplesheet.load(sheet, vcf, fa)


def test_replicates_are_numbered_in_sheet_order(user):
    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    t = pd.concat([t, t.iloc[[0]].assign(sample="D1_liver_CTCF_rep2")], ignore_index=True)
    t.to_csv(sheet, sep="\t", index=False)
    data = samplesheet.load(sheet, vcf, fa)
    assert list(data.table["replicate"]) == ["1", "1", "2"]
    assert list(data.table["unit"]) == ["D1_liver_CTCF", "D2_lung_CTCF", "D1_liver_CTCF"]


def test_renamed_contigs_are_mapped_when_unambiguous(user, reference_counts):
    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    bam = (sheet.parent / t.loc[0, "bam"]).resolve()
    ensembl = bam.with_name("ensembl.bam")
    _rename_bam(bam, ensembl, {"chr1": "1", "chr2": "2"})
    t.loc[0, "bam"] = "../data/bam/ensembl.bam"
    t.to_csv(sheet, sep="\t", index=False)
    vcf_1 = _rewrite_vcf(vcf, vcf.with_name("ensembl.vcf.gz"), lambda line: line.replace("chr", "", 1)
                         if line.startswith("chr") or line.startswith("##contig=<ID=chr") else line)
    data = samplesheet.load(sheet, vcf_1, fa)
    assert any("VCF contigs renamed" in n and "1 -> chr1" in n for n in data.notes)
    assert any("BAM contigs read under the reference's names in 1 file(s): 1 -> chr1" in n for n in data.notes)
    assert data.contig_map("D1_liver_CTCF") == {"chr1": "1", "chr2": "2"} and data.contig_map("D2_lung_CTCF") == {}
    counts = io.sheet_counts(data)
    assert set(counts["chrom"]) == {"chr1", "chr2"}  # the FASTA's names throughout
    pd.testing.assert_frame_equal(_key(counts), _key(reference_counts))


def test_ambiguous_or_unmatched_contigs_show_the_map_that_fixes_them(user):
    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    bam = (sheet.parent / t.loc[0, "bam"]).resolve()
    odd = _rename_bam(bam, bam.with_name("odd.bam"), {"chr1": "scaffold_1", "chr2": "scaffold_2"})
    t.loc[0, "bam"] = "../data/bam/odd.bam"
    t.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match=r"(?s)line 2 \(sample 'D1_liver_CTCF'\): none of the contigs of .*odd.bam "
                                               r"\(\['scaffold_1', 'scaffold_2'\]\).*contig map.*scaffold_1\t<one of chr1, chr2"):
        samplesheet.load(sheet, vcf, fa)
    cmap = sheet.parent / "contigs.tsv"
    cmap.write_text("scaffold_1\tchr1\nscaffold_2\tchr2\n")
    data = samplesheet.load(sheet, vcf, fa, contig_map=cmap)
    assert data.contig_map("D1_liver_CTCF") == {"chr1": "scaffold_1", "chr2": "scaffold_2"}
    # '1' and 'chr1' in one header both map to the reference's chr1: ambiguous
    header = pysam.AlignmentFile(str(bam)).header.to_dict()
    header["SQ"].append({"SN": "1", "LN": header["SQ"][0]["LN"]})
    both = bam.with_name("both.bam")
    with pysam.AlignmentFile(str(both), "wb", header=header):
        pass
    pysam.index(str(both))
    t.loc[0, "bam"] = "../data/bam/both.bam"
    t.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match=r"(?s)line 2 .*cannot be matched to genome.fa unambiguously "
                                               r"\(\['1', 'chr1'\] all map to 'chr1'\).*contig map"):
        samplesheet.load(sheet, vcf, fa)


def test_reference_of_another_build_is_refused(user, tmp_path):
    sheet, vcf, fa = user
    other = tmp_path / "other.fa"
    with pysam.FastaFile(str(fa)) as f:
        seqs = {c: f.fetch(c) for c in f.references}
    other.write_text("".join(f">{c}\n{s[:-500] if c == 'chr2' else s}\n" for c, s in seqs.items()))
    pysam.faidx(str(other))
    with pytest.raises(SampleSheetError, match=r"variants.vcf.gz: contig 'chr2' is 120,000 bp in the VCF header but "
                                               r"119,500 bp in .*other.fa: not the same genome build"):
        samplesheet.load(sheet, vcf, other)
    # a BAM aligned to another build: its header disagrees with the FASTA (and the VCF)
    t = pd.read_csv(sheet, sep="\t")
    bam = (sheet.parent / t.loc[1, "bam"]).resolve()
    header = pysam.AlignmentFile(str(bam)).header.to_dict()
    header["SQ"][1]["LN"] = 119_500
    with pysam.AlignmentFile(str(bam.with_name("build.bam")), "wb", header=header):
        pass
    pysam.index(str(bam.with_name("build.bam")))
    t.loc[1, "bam"] = "../data/bam/build.bam"
    t.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match=r"line 3 \(sample 'D2_lung_CTCF'\): contig 'chr2' is 119,500 bp in "
                                               r"the header of .*build.bam but 120,000 bp in .*genome.fa"):
        samplesheet.load(sheet, vcf, fa)


def test_reference_allele_mismatch_names_the_snv(user):
    sheet, vcf, fa = user
    first = {}

    def flip(line):
        if not line.startswith("#") and not first:
            f = line.split("\t")
            if len(f[3]) == 1 and len(f[4]) == 1:
                first["snv"] = f"{f[0]}:{f[1]}"
                f[3] = {"A": "C", "C": "G", "G": "T", "T": "A"}[f[3]]
                f[4] = {"A": "C", "C": "G", "G": "T", "T": "A"}[f[3]] if f[4] == f[3] else f[4]
                return "\t".join(f)
        return line

    bad = _rewrite_vcf(vcf, vcf.with_name("bad.vcf.gz"), flip)
    data = samplesheet.load(sheet, bad, fa)
    with pytest.raises(ValueError, match=rf"bad.vcf.gz: ref allele of SNV {first['snv']} .*not the same genome build"):
        data.het_snvs("D1")


def test_unindexed_vcf_is_refused(user, tmp_path):
    sheet, vcf, fa = user
    plain = tmp_path / "plain.vcf.gz"
    shutil.copy(vcf, plain)
    with pytest.raises(SampleSheetError, match=r"plain.vcf.gz: no index .*tabix -p vcf"):
        samplesheet.load(sheet, plain, fa)


def test_unphased_genotypes_are_counted_and_tested_without_haplotypes(user, reference_counts):
    sheet, vcf, fa = user
    unphased = set()

    def unphase(line):
        if line.startswith("#"):
            return line
        f = line.rstrip("\n").split("\t")
        if int(f[1]) % 2 == 0:  # every record at an even position: D1's genotype unphased
            f[9] = f[9].replace("|", "/")
            unphased.add((f[0], int(f[1])))
        return "\t".join(f) + "\n"

    data = samplesheet.load(sheet, _rewrite_vcf(vcf, vcf.with_name("unphased.vcf.gz"), unphase), fa)
    ph = data.phasing().set_index("donor")
    het = data.het_snvs("D1").table
    expected = sum((c, p) in unphased for c, p in zip(het["chrom"], het["pos"]))
    assert ph.loc["D1", "unphased"] == expected > 0 and ph.loc["D2", "unphased"] == 0
    assert het.loc[~het["phased"], ["hap1_allele", "hap2_allele"]].isna().all().all()
    counts = _key(io.sheet_counts(data))
    ref = _key(reference_counts)
    even = (counts["sample"] == "D1_liver_CTCF") & (counts["pos"] % 2 == 0)
    assert counts.loc[even, ["hap1_count", "hap2_count"]].isna().all().all()
    pd.testing.assert_frame_equal(counts[["ref_count", "alt_count"]], ref[["ref_count", "alt_count"]])
    np.testing.assert_array_equal(counts.loc[~even, "hap1_count"], ref.loc[~even, "hap1_count"])


def test_environment_needs_all_three_variables(user, monkeypatch):
    sheet, vcf, fa = user
    for v in samplesheet.ENV.values():
        monkeypatch.delenv(v, raising=False)
    assert samplesheet.from_env() is None
    monkeypatch.setenv("ALLELIC_SAMPLES", str(sheet))
    with pytest.raises(SampleSheetError, match="ALLELIC_VCF, ALLELIC_REFERENCE not set"):
        samplesheet.from_env()
    monkeypatch.setenv("ALLELIC_VCF", str(vcf))
    monkeypatch.setenv("ALLELIC_REFERENCE", str(fa))
    data = samplesheet.book_data("smoke", 0)
    assert data.label == "your data" and data.path == sheet.resolve()


def test_match_contigs_rules():
    ref = ["chr1", "chr2", "chrX", "chrM"]
    assert samplesheet.match_contigs(["1", "2", "X", "MT", "GL000"], ref) == (
        {"1": "chr1", "2": "chr2", "X": "chrX", "MT": "chrM"}, ["GL000"])
    assert samplesheet.match_contigs(["chr1", "chrM"], ref) == ({}, [])
    assert samplesheet.match_contigs(["s1"], ref, given={"s1": "chr1"}) == ({"s1": "chr1"}, [])
    with pytest.raises(SampleSheetError, match=r"\['MT', 'chrM'\] all map to 'chrM'"):
        samplesheet.match_contigs(["chrM", "MT"], ref)


@pytest.mark.notebooks
def test_chapters_01_02_run_on_your_own_data(user, small_sim, tmp_path):
    """Chapters 01-02 on a moved sheet with a CRAM: no planted truth is read (its numbers say so), and chapter 02's
    calls and catalogue equal the simulator path's on the same files."""
    import os
    import subprocess
    import sys

    from conftest import glued

    from allelic import as_calls, catalogue, config

    sheet, vcf, fa = user
    t = pd.read_csv(sheet, sep="\t")
    bam = (sheet.parent / t.loc[1, "bam"]).resolve()
    pysam.view("-C", "-T", str(fa), "-o", str(bam.with_suffix(".cram")), str(bam), catch_stdout=False)
    pysam.index(str(bam.with_suffix(".cram")))
    t.loc[1, "bam"] = t.loc[1, "bam"].replace(".bam", ".cram")
    t.to_csv(sheet, sep="\t", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLELIC_")}
    env.update(ALLELIC_SAMPLES=str(sheet), ALLELIC_VCF=str(vcf), ALLELIC_REFERENCE=str(fa),
               ALLELIC_RESULTS_DIR=str(tmp_path / "results"), ALLELIC_BUILD_DIR=str(tmp_path / "build"),
               ALLELIC_DATA_DIR=str(tmp_path / "simdata"))
    r = subprocess.run([sys.executable, "-m", "allelic.run", "--profile", "smoke", "--chapters", "01", "02"],
                       env=env, capture_output=True, text=True, cwd=config.repo_root())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    g1 = glued(tmp_path / "build" / "executed" / "01_personal_epigenome.ipynb")
    g2 = glued(tmp_path / "build" / "executed" / "02_allelic_testing.ipynb")
    assert "no planted truth" in g1["frac_true_as"] and "no planted truth" in g2["as_betabinom_fdp"]
    assert g1["n_samples"] == "2"
    calls = pd.read_csv(tmp_path / "results" / "02" / "imbalance.tsv.gz", sep="\t")
    p = config.chapter_parameters("smoke", "02")
    direct = as_calls.call(io.sheet_counts(small_sim, samples=SMALL), min_total=p["min_total"], fdr=p["fdr"],
                           null=p["null"], fit_by=p["fit_by"], random_state=p["random_state"])
    key = ["sample", "chrom", "pos"]
    a, b = calls.sort_values(key).reset_index(drop=True), direct.replicates.table.sort_values(key).reset_index(drop=True)
    assert a[key].equals(b[key]) and (a["as_betabinom"] == b["as_betabinom"]).all()
    np.testing.assert_allclose(a["q_betabinom"], b["q_betabinom"], rtol=1e-12)
    vcf_rows = catalogue.read_vcf(tmp_path / "results" / "02" / "as_catalogue.vcf.gz")
    assert len(vcf_rows) == len(direct.catalogue) and vcf_rows["as_call"].sum() == direct.catalogue["as_call"].sum()
    from allelic import simulate

    book_sim = tmp_path / "simdata" / f"smoke-{simulate.get_params('smoke', random_state=0).key()}"
    assert not book_sim.exists()  # the book's simulated data set was never written (the cell line's is, chapter 02)
