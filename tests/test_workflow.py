"""The workflow (workflow/Snakefile): its steps compute what the chapters compute, the chapters read the steps'
results back instead of computing them again, and the SLURM profile's dry run lists the expected jobs."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from allelic import cache, config, io, steps
from allelic.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
REAL_DATA = ("ALLELIC_ENTEX_DIR", "ALLELIC_HEK293_DIR", "ALLELIC_PRETRAIN_CORPUS", "ALLELIC_TOKENIZER_DIR")


def _env(tmp: Path) -> dict:
    """The book's folders under ``tmp``, without the real-data variables (the simulator's steps only)."""
    env = {k: v for k, v in os.environ.items() if k not in REAL_DATA}
    env.update(ALLELIC_RESULTS_DIR=str(tmp / "results"), ALLELIC_BUILD_DIR=str(tmp / "build"),
               ALLELIC_DATA_DIR=str(tmp / "data"))
    return env


def _snakemake(tmp: Path, profile_dir: str, *args) -> subprocess.CompletedProcess:
    if not SNAKEMAKE.exists():
        pytest.skip("snakemake is not installed in this environment (make env installs it)")
    r = subprocess.run([str(SNAKEMAKE), "-s", "workflow/Snakefile", "--profile", f"workflow/profiles/{profile_dir}",
                        "--config", "profile=smoke", *map(str, args)], cwd=ROOT, env=_env(tmp), capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r


def test_chapter_parameters_are_the_notebook_defaults_updated_by_the_profile(tmp_path):
    smoke, default = config.chapter_parameters("smoke", "05"), config.chapter_parameters("default", "05")
    assert smoke["n_folds"] == 2 and default["n_folds"] == 6  # from profiles.yml
    assert smoke["batch_size"] == default["batch_size"] == 32  # the notebook's parameters cell
    assert smoke["seeds"] == [0] and smoke["entex_dir"] is None and default["profile"] == "default"
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "a = 1\nb = make()\n"}]}
    (tmp_path / "09_bad.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match=r"09_bad.ipynb: parameter b = make\(\) is not a literal"):
        config.notebook_defaults(tmp_path / "09_bad.ipynb")
    nb["cells"][0]["metadata"] = {}
    (tmp_path / "09_bad.ipynb").write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        config.notebook_defaults(tmp_path / "09_bad.ipynb")
    with pytest.raises(ValueError, match="no chapter '42'"):
        config.chapter_parameters("smoke", "42")


def test_sample_names_are_those_of_the_simulation(small_sim):
    assert small_sim.params.sample_names() == small_sim.samples()["sample"].tolist()


def test_cache_round_trip_keeps_types_missing_values_and_empty_strings(tmp_path):
    t = pd.DataFrame({"i": np.array([1, 2, 3], dtype=np.int32), "f": [0.1, np.nan, 1 / 3], "s": ["a", "", np.nan],
                      "b": [True, False, True], "n": ["NA", "nan", "N"]})
    cache.write(tmp_path / "t.tsv.gz", "k1", t)
    pd.testing.assert_frame_equal(cache.read(tmp_path / "t.tsv.gz", "k1"), t)
    assert cache.read(tmp_path / "t.tsv.gz", "k2") is None  # another key: recompute
    assert cache.read(tmp_path / "missing.tsv", "k1") is None
    (tmp_path / "t.tsv.gz.json").write_text("{ truncated")
    assert cache.read(tmp_path / "t.tsv.gz", "k1") is None
    assert cache.key("a", {"x": 1}) == cache.key("a", {"x": 1}) != cache.key("a", {"x": 2})


def test_counts_are_read_back_and_recounted_when_a_setting_changes(small_sim, tmp_path, monkeypatch):
    kw = dict(min_base_quality=13, min_mapping_quality=10)
    plain_ledger, cached_ledger = Ledger(), Ledger()
    plain = io.simulation_counts(small_sim, ledger=plain_ledger, **kw)
    first = io.simulation_counts(small_sim, ledger=cached_ledger, cache_dir=tmp_path, **kw)
    pd.testing.assert_frame_equal(first, plain)
    pd.testing.assert_frame_equal(cached_ledger.table(), plain_ledger.table())
    assert len(list(tmp_path.glob("*.tsv.gz"))) == len(small_sim.samples())

    calls = []
    real = io.count_alleles
    monkeypatch.setattr(io, "count_alleles", lambda *a, **k: calls.append(1) or real(*a, **k))
    again_ledger = Ledger()
    again = io.simulation_counts(small_sim, ledger=again_ledger, cache_dir=tmp_path, n_jobs=2, **kw)
    assert not calls  # every sample read back (n_jobs is not part of the key)
    pd.testing.assert_frame_equal(again, plain)
    pd.testing.assert_frame_equal(again_ledger.table(), plain_ledger.table())
    side = tmp_path / "D1_liver_CTCF.tsv.gz.json"
    before = json.loads(side.read_text())["key"]
    io.simulation_counts(small_sim, cache_dir=tmp_path, min_base_quality=20, min_mapping_quality=10,
                         samples=["D1_liver_CTCF"])
    assert calls == [1] and json.loads(side.read_text())["key"] != before  # recounted, and the file replaced


def _job_stats(text: str) -> dict:
    """``{rule: count}`` from the 'Job stats' table Snakemake prints."""
    block = text.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", block, flags=re.M)
            if m.group(1) != "total"}


def _simulator_only(monkeypatch):
    """The plan as the workflow's jobs see it (the real-data variables are not passed to them)."""
    for k in REAL_DATA:
        monkeypatch.delenv(k, raising=False)


def test_slurm_dry_run_lists_the_expected_jobs(tmp_path, monkeypatch):
    _simulator_only(monkeypatch)
    r = _snakemake(tmp_path, "slurm", "-n")
    out = r.stdout + r.stderr
    plan = steps.plan("smoke")
    expected = {"simulate": 1, "count": len(plan["samples"]), "test": len(plan["assays"]), "pretrain": 1,
                "finetune": len(plan["tasks"]), "baselines": len(plan["tasks"]), "book": 1, "all": 1,
                **{f"chapter_{c[:2]}": 1 for c in plan["chapters"]}}
    assert _job_stats(out) == expected
    assert expected["count"] == 30 and expected["finetune"] == 10  # 2 donors x 3 tissues x 5 assays; 5 assays x 2 folds
    # the GPU jobs ask the SLURM executor for a GPU on the GPU partition, the others for the CPU partition
    jobs = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    for job in jobs:
        rule = re.match(r"(?:local)?rule (\w+):", job.strip())
        res = re.search(r"resources: (.*)", job)
        if not rule or not res or rule.group(1) == "all":
            continue
        gpu = rule.group(1) in ("pretrain", "finetune")
        assert ("gpu=1" in res.group(1)) == gpu, job
        assert f"slurm_partition={'gpu' if gpu else 'cpu'}" in res.group(1), job


def test_dry_run_on_a_sample_sheet_lists_one_count_job_per_file(small_sim, tmp_path, monkeypatch):
    """Your own data: `--config samples= vcf= reference=` plans one count job per row of the sheet (replicates
    included, named as the sheet names them), one test job per assay of the sheet, and no simulation."""
    _simulator_only(monkeypatch)
    sheet = pd.read_csv(small_sim.root / "samples.tsv", sep="\t")
    sheet = sheet[sheet["assay"].isin(["CTCF", "RNA"])]
    (tmp_path / "own").mkdir()
    rep2 = sheet.assign(sample=sheet["sample"] + ".rep-2", replicate=2)
    for name, bam in zip(rep2["sample"], rep2["bam"]):
        for ext in ("", ".bai"):
            (tmp_path / "own" / f"{name}.bam{ext}").symlink_to(small_sim.root / f"{bam}{ext}")
    rows = pd.concat([sheet.assign(bam=[str(small_sim.root / b) for b in sheet["bam"]], replicate=1),
                      rep2.assign(bam=[f"{n}.bam" for n in rep2["sample"]])])[["sample", "donor", "tissue", "assay",
                                                                                 "bam", "replicate"]]
    rows.to_csv(tmp_path / "own" / "samples.tsv", sep="\t", index=False)
    r = _snakemake(tmp_path, "slurm", f"samples={tmp_path / 'own' / 'samples.tsv'}", f"vcf={small_sim.vcf}",
                   f"reference={small_sim.fasta}", "-n")  # config items first: they follow --config
    jobs = _job_stats(r.stdout + r.stderr)
    assert jobs["count"] == len(rows) == 16 and jobs["test"] == 2 and "simulate" not in jobs
    assert jobs["finetune"] == 2 * config.chapter_parameters("smoke", "05")["n_folds"]
    assert "D1_liver_RNA.rep-2" in r.stdout + r.stderr
    bad = subprocess.run([str(SNAKEMAKE), "-s", "workflow/Snakefile", "-n", "--config", "profile=smoke",
                          f"samples={tmp_path / 'own' / 'samples.tsv'}"], cwd=ROOT, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "needs samples=, vcf= and reference= together" in bad.stdout + bad.stderr


def test_workflow_counts_and_tests_a_sample_sheet(small_sim, tmp_path, monkeypatch):
    """The workflow on your own data, run locally up to the per-assay tests: one count job per file of the sheet (a
    CRAM among them), then the test job, whose table equals chapter 02's test of the same counts (BH within the
    assay)."""
    from allelic import samplesheet, stats

    _simulator_only(monkeypatch)
    own = tmp_path / "own"
    own.mkdir()
    sheet = pd.read_csv(small_sim.root / "samples.tsv", sep="\t")
    sheet = sheet[sheet["assay"] == "CTCF"].reset_index(drop=True)
    sheet["bam"] = [str(small_sim.root / b) for b in sheet["bam"]]
    cram = own / "D1_lung_CTCF.cram"
    pysam.view("-C", "-T", str(small_sim.fasta), "-o", str(cram),
               sheet.loc[sheet["sample"] == "D1_lung_CTCF", "bam"].item(), catch_stdout=False)
    pysam.index(str(cram))
    sheet.loc[sheet["sample"] == "D1_lung_CTCF", "bam"] = str(cram)
    sheet[["sample", "donor", "tissue", "assay", "bam"]].to_csv(own / "samples.tsv", sep="\t", index=False)
    target = tmp_path / "results" / "02" / "assays" / "CTCF.tsv.gz"
    _snakemake(tmp_path, "local", f"samples={own / 'samples.tsv'}", f"vcf={small_sim.vcf}",
               f"reference={small_sim.fasta}", "--cores", "2", str(target))
    assert sorted(p.name for p in (tmp_path / "results" / "01" / "counts").glob("*.tsv.gz")) == \
        sorted(f"{s}.tsv.gz" for s in sheet["sample"])
    data = samplesheet.load(own / "samples.tsv", small_sim.vcf, small_sim.fasta)
    p1, p2 = config.chapter_parameters("smoke", "01"), config.chapter_parameters("smoke", "02")
    counts = io.sheet_counts(data, min_base_quality=p1["min_base_quality"], min_mapping_quality=p1["min_mapping_quality"])
    expected = stats.test_imbalance(counts, group_cols=tuple(p2["fit_by"]), min_total=p2["min_total"], null=p2["null"],
                                    fdr=p2["fdr"], random_state=p2["random_state"]).table
    got = pd.read_csv(target, sep="\t")
    key = ["sample", "chrom", "pos"]
    got, expected = got.sort_values(key).reset_index(drop=True), expected.sort_values(key).reset_index(drop=True)
    assert got[key].equals(expected[key]) and (got["as_betabinom"] == expected["as_betabinom"]).all()
    np.testing.assert_allclose(got["p_betabinom"], expected["p_betabinom"], rtol=1e-9)


def _book_without_step_outputs(book: Path, tmp: Path) -> None:
    """A copy of a rendered smoke book's folders in ``tmp`` with every step's output and cache removed: what the
    chapters produced stays, what the workflow's steps produce must be computed again."""
    shutil.copytree(book / "results", tmp / "results")
    shutil.copytree(book / "data", tmp / "data")
    shutil.copytree(book / "build" / "executed", tmp / "build" / "executed")
    for gone in ("results/01/counts", "results/02/assays", "results/05/tasks", "data/models"):
        shutil.rmtree(tmp / gone, ignore_errors=True)
    for f in (tmp / "results" / "04").glob("pretrained-*.json"):
        f.unlink()


@pytest.mark.notebooks
def test_workflow_steps_on_smoke_compute_what_the_book_computed(built, tmp_path, monkeypatch):
    """The workflow's step rules (counting per BAM, testing per assay, pretraining, fine-tuning and baselines per
    assay x fold x seed), run by Snakemake in a fresh folder beside the smoke book's chapter outputs (the chapters'
    rules not allowed to run), give the smoke book's numbers. That chapters read the steps' files back instead of
    computing them again is tested with the library (counts above, fold tasks in test_language_model.py)."""
    _simulator_only(monkeypatch)
    book = built[0] / "results"
    _book_without_step_outputs(built[0], tmp_path)
    plan = steps.plan("smoke")
    res = tmp_path / "results"
    # CTCF's steps: its 6 BAMs, its test, the pretraining, its fine-tuning and baselines in both folds (the other
    # assays run the same rules; the SLURM dry run above lists them all)
    tasks = [t for t in plan["tasks"] if t["assay"] == "CTCF"]
    targets = ([res / "02" / "assays" / "CTCF.tsv.gz", res / "04" / "pretrained-simulator.json"]
               + [res / "05" / "tasks" / "simulator" / f"{k}-CTCF-fold{t['fold']}-seed{t['seed']}.metrics.tsv"
                  for t in tasks for k in ("transformer", "baselines")])
    r = _snakemake(tmp_path, "local", "--allowed-rules", "count", "test", "pretrain", "finetune", "baselines", "--",
                   *targets)
    assert _job_stats(r.stdout + r.stderr) == {"count": 6, "test": 1, "pretrain": 1, "finetune": 2, "baselines": 2}

    # counting: one job per BAM gives chapter 01's rows
    p01 = config.chapter_parameters("smoke", "01")
    monkeypatch.setattr(io, "count_alleles", lambda *a, **k: pytest.fail("counted again instead of read back"))
    sim = _simulation(tmp_path)
    ctcf = [s for s in plan["samples"] if s.endswith("_CTCF")]
    counts = io.simulation_counts(sim, samples=ctcf, cache_dir=res / "01" / "counts",
                                  min_base_quality=p01["min_base_quality"], min_mapping_quality=p01["min_mapping_quality"])
    book01 = pd.read_csv(book / "01" / "counts.tsv.gz", sep="\t", dtype={"replicate": str})  # labels, not numbers
    pd.testing.assert_frame_equal(counts, book01[book01["assay"] == "CTCF"].reset_index(drop=True))
    # testing per assay: the same null fit and p-values as chapter 02's table (whose BH runs over every assay)
    calls = pd.read_csv(book / "02" / "imbalance.tsv.gz", sep="\t")
    mine, theirs = pd.read_csv(res / "02" / "assays" / "CTCF.tsv.gz", sep="\t"), calls[calls["assay"] == "CTCF"]
    both = mine.merge(theirs, on=["sample", "chrom", "pos"], suffixes=("", "_book"), validate="1:1")
    assert len(both) == len(mine) == len(theirs) > 0
    for c in ("p_null", "rho", "p_binom", "p_betabinom"):
        np.testing.assert_allclose(both[c], both[f"{c}_book"], rtol=1e-12, err_msg=c)
    # pretraining: the checkpoint chapter 04 fine-tuned (same key, same loss curve), built again
    mine = Path(json.loads((res / "04" / "pretrained-simulator.json").read_text())["checkpoint"])
    theirs = Path(json.loads((book / "04" / "checkpoints.json").read_text())["simulator"])
    assert mine.parent == tmp_path / "data" / "models"
    card = [json.loads((p / "model_card.json").read_text()) for p in (mine, theirs)]
    assert card[0]["key"] == card[1]["key"] and card[0]["steps"] == card[1]["steps"] > 0
    np.testing.assert_allclose(card[0]["mlm_loss_curve"]["loss"], card[1]["mlm_loss_curve"]["loss"], rtol=1e-4)
    # fine-tuning and baselines per assay x fold x seed: chapter 05's numbers
    book05 = pd.read_csv(book / "05" / "fold_metrics.tsv", sep="\t").set_index(["fold", "seed", "assay", "model"])
    wf05 = pd.concat([pd.read_csv(res / "05" / "tasks" / "simulator" / f"{k}-CTCF-fold{t['fold']}-seed{t['seed']}"
                                  ".metrics.tsv", sep="\t").assign(fold=t["fold"], seed=t["seed"])
                      for t in tasks for k in ("transformer", "baselines")]).set_index(["fold", "seed", "assay", "model"])
    assert len(wf05) == 2 * 7
    both = wf05.join(book05, rsuffix="_book", how="left")
    np.testing.assert_allclose(both["auroc"], both["auroc_book"], atol=1e-6)
    np.testing.assert_allclose(both["auprc"], both["auprc_book"], atol=1e-6)


def _simulation(tmp: Path):
    from allelic import simulate

    p = config.chapter_parameters("smoke", "01")
    params = simulate.get_params(p["simulation"], random_state=p["random_state"])
    return simulate.Simulation(tmp / "data" / f"{p['simulation']}-{params.key()}", params)
