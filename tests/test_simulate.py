import hashlib
import json

import numpy as np
import pysam
import pytest

from allelic import motifs, pwm, simulate


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_random_state_gives_identical_files(tmp_path):
    kw = dict(chrom_length=40_000, tissues=("liver",), donors=("D1",), random_state=3)
    a = simulate.simulate("smoke", tmp_path / "a", **kw)
    b = simulate.simulate("smoke", tmp_path / "b", **kw)
    c = simulate.simulate("smoke", tmp_path / "c", **{**kw, "random_state": 4})
    da, db, dc = _digest(a.root), _digest(b.root), _digest(c.root)
    assert da == db
    assert len(da) > 10
    assert da["genome.fa"] != dc["genome.fa"]


def test_cache_reuses_matching_parameters(tmp_path):
    kw = dict(chrom_length=30_000, tissues=("liver",), donors=("D1",), assays=("CTCF",))
    a = simulate.simulate("smoke", tmp_path / "s", **kw)
    stamp = (a.root / "genome.fa").stat().st_mtime_ns
    b = simulate.simulate("smoke", tmp_path / "s", **kw)
    assert (b.root / "genome.fa").stat().st_mtime_ns == stamp


def test_files_open_with_standard_tools(small_sim):
    fa = pysam.FastaFile(str(small_sim.fasta))
    assert fa.references == ["chr1", "chr2"] and fa.get_reference_length("chr1") == 120_000
    vcf = pysam.VariantFile(str(small_sim.vcf))
    assert list(vcf.header.samples) == ["D1", "D2"]
    recs = list(vcf.fetch("chr2", 0, 120_000))  # needs the tabix index
    assert recs
    for r in recs[:200]:  # REF matches the genome
        assert fa.fetch(r.chrom, r.pos - 1, r.pos - 1 + len(r.ref)) == r.ref
    for bam in small_sim.samples()["bam"][:5]:
        with pysam.AlignmentFile(bam) as b:
            assert b.has_index() and b.check_index()
            assert b.header["HD"]["SO"] == "coordinate"


def test_planted_motifs_found_by_scan(small_sim):
    inst = small_sim.motif_instances()
    fa = pysam.FastaFile(str(small_sim.fasta))
    found = 0
    for r in inst.itertuples():
        m = motifs.load_jaspar([r.motif_id])[0]
        lo, hi = r.start - 30, r.end + 30
        sc = pwm.scan([fa.fetch(r.chrom, lo, hi)], m)[0]  # (windows, 2)
        best = np.unravel_index(np.argmax(sc), sc.shape)
        found += (best[0] == 30) and (best[1] == (0 if r.strand == "+" else 1))
    # short motifs (TBP: 7 bp) can meet a stronger chance match nearby; the long ones must be found
    assert found / len(inst) > 0.9
    ctcf = inst[inst["motif"] == "CTCF"]
    m = motifs.load_jaspar(["MA0139.1"])[0]
    for r in ctcf.itertuples():
        sc = pwm.scan([fa.fetch(r.chrom, r.start - 30, r.end + 30)], m)[0]
        assert np.unravel_index(np.argmax(sc), sc.shape)[0] == 30


def test_truth_direction_follows_motif_change(small_sim):
    t = small_sim.truth()
    c = t[t["causal"] & t["is_as"]]
    assert len(c) > 20
    # elements whose haplotype difference is this SNV's alone: direction is fixed by the motif change
    own = c[np.isclose(c["element_delta"].abs(), (c["motif_ref_score"] - c["motif_alt_score"]).abs())]
    assert len(own) > 10
    pred = np.sign(own["motif_ref_score"] - own["motif_alt_score"])
    assert (np.sign(own["true_ref_ratio"] - 0.5) == pred).all()
    # non-AS rows have a ratio of exactly 0.5; AS rows differ from it
    assert (t.loc[~t["is_as"], "true_hap1_ratio"] == 0.5).all()
    assert (t.loc[t["is_as"], "true_hap1_ratio"] != 0.5).all()


def _pileup_ref_alt(bam, chrom, pos, ref, alt):
    """Independent count: pysam pileup with samtools-like filters (dups, MAPQ >= 10, base quality >= 13)."""
    r = a = 0
    with pysam.AlignmentFile(bam) as b:
        for col in b.pileup(chrom, pos - 1, pos, truncate=True, min_base_quality=13, min_mapping_quality=10,
                            stepper="all"):
            for base in col.get_query_sequences():
                r += base.upper() == ref
                a += base.upper() == alt
    return r, a


def test_reads_follow_truth(small_sim):
    t = small_sim.truth()
    bams = small_sim.bams()
    strong = t[t["is_as"] & (t["expected_depth"] >= 30) & ((t["true_ref_ratio"] - 0.5).abs() > 0.25)].head(40)
    agree = 0
    for r in strong.itertuples():
        k, a = _pileup_ref_alt(bams[r.sample], r.chrom, r.pos, r.ref, r.alt)
        agree += np.sign(k / max(k + a, 1) - 0.5) == np.sign(r.true_ref_ratio - 0.5)
    assert len(strong) >= 15 and agree / len(strong) >= 0.85
    # the reference mapping bias shows at non-AS SNVs: pooled ratio near the expected 0.519
    null = t[~t["is_as"]].head(150)
    k = a = 0
    for r in null.itertuples():
        x, y = _pileup_ref_alt(bams[r.sample], r.chrom, r.pos, r.ref, r.alt)
        k, a = k + x, a + y
    assert abs(k / (k + a) - null["expected_ref_ratio"].mean()) < 0.03


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown simulation preset 'huge'"):
        simulate.get_params("huge")
    with pytest.raises(ValueError, match="unknown simulation parameter"):
        simulate.get_params("smoke", n_chromosome=3)


def test_slot_sets_element_spacing(tmp_path):
    assert simulate.get_params("smoke").slot == 3000  # the smoke data set keeps one element per 3 kb
    kw = dict(chrom_length=30_000, tissues=("liver",), donors=("D1",), assays=("CTCF",))
    els = simulate.simulate("smoke", tmp_path / "s", slot=2500, **kw).elements()
    for _, e in els.groupby("chrom"):
        assert len(e) == 30_000 // 2500 - 1
        off = e["start"].to_numpy() - 2500 * np.arange(1, len(e) + 1)
        assert ((off >= 200) & (off < 600)).all()
    with pytest.raises(ValueError, match="slot must be an integer >= 2500"):
        simulate.get_params("smoke", slot=2000)


def test_command_line_random_state_makes_a_different_data_set(tmp_path, capsys):
    """`allelic simulate --out DIR --random-state N` honours N (it used to be read only by --windows)."""
    small = ["--preset", "smoke"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert simulate.main([*small, "--out", str(tmp_path / name), "--random-state", seed]) == 0
    manifest = {n: (tmp_path / n / "manifest.json").read_text() for n in "abc"}
    assert manifest["a"] == manifest["b"] and manifest["a"] != manifest["c"]
    assert json.loads(manifest["c"])["params"]["random_state"] == 2
    fa = {n: (tmp_path / n / "genome.fa").read_bytes() for n in "abc"}
    assert fa["a"] == fa["b"] and fa["a"] != fa["c"]


def test_command_line_rejects_unknown_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        simulate.main(["--preset", "tiny", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "invalid choice: 'tiny'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        simulate.main(["--random-state", "one", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_refuses_to_overwrite_a_folder_that_is_not_a_data_set(tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("my own file\n")
    with pytest.raises(FileExistsError, match="not a simulated data set"):
        simulate.simulate("smoke", keep, chrom_length=30_000, donors=("D1",), tissues=("liver",), assays=("CTCF",))
    assert (keep / "notes.txt").read_text() == "my own file\n"
