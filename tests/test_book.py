"""Execute every chapter in the smoke profile with the runner, then render the book with warnings as errors (the
``built`` fixture of conftest.py, shared with the browser test)."""
import re
import subprocess

import pytest

from conftest import glued as _glued

pytestmark = pytest.mark.notebooks


def test_every_chapter_executed_and_wrote_results(built, root):
    tmp, run, _ = built
    chapters = sorted(p.name for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in (tmp / "build" / "executed").glob("*.ipynb")) == chapters
    assert (tmp / "results" / "01" / "counts.tsv.gz").is_file()
    assert "done in" in run.stdout
    # a quiet build: one progress line per chapter and its time, nothing from the kernels
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 2 * len(chapters), lines
    assert all(re.match(r"\[\d/\d\] \d\d_\w+\.ipynb \(profile smoke\) \.\.\.$|      done in [\d.]+ s -> ", ln) for ln in lines)
    assert "IPKernelApp" not in run.stderr and "running over TCP" not in run.stderr, run.stderr[-2000:]


def test_book_builds_without_warnings_and_shows_glued_numbers(built):
    tmp, _, build = built
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert not re.search(r"WARNING", build.stderr), build.stderr[-3000:]
    html = tmp / "_build" / "html"
    assert (html / "index.html").is_file()
    ch1 = (html / "build" / "executed" / "01_personal_epigenome.html").read_text()
    glued = _glued(tmp / "build" / "executed" / "01_personal_epigenome.ipynb")
    assert glued["n_het_snvs"] in ch1 and "<img" in ch1
    intro = (html / "book" / "intro.html").read_text()
    assert glued["n_het_snvs"] in intro  # cross-page glue reached the introduction


def test_pages_workflow_builds_the_smoke_book_and_deploys_it(root):
    import yaml

    wf = yaml.safe_load((root / ".github" / "workflows" / "book.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert "main" in on["push"]["branches"] and "workflow_dispatch" in on
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    build = wf["jobs"]["build"]["steps"]
    runs = " ".join(s.get("run", "") for s in build)
    assert "make book PROFILE=smoke" in runs and "torch==2.13.0" in runs
    upload = next(s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    make = (root / "Makefile").read_text().splitlines()
    html_target = make[make.index(next(line for line in make if line.startswith("html:"))) + 1]
    assert "-m allelic.run --render" in html_target  # renders <build dir>/_build/html, by default build/_build/html
    assert upload["with"]["path"] == "build/_build/html"
    assert wf["jobs"]["deploy"]["needs"] == "build"
    assert wf["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages")


def test_make_publish_refuses_without_a_remote(root, tmp_path):
    """No remote named REMOTE: make publish stops before touching anything, and says why."""
    r = subprocess.run(["make", "--no-print-directory", "publish", "REMOTE=no-such-remote-here"], cwd=root,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "no git remote 'no-such-remote-here'" in r.stderr
    assert "ghp-import" not in r.stdout


def test_rendered_pages_show_no_path_of_the_building_machine(built, root):
    """Parameter tables, papermill metadata and printed paths are shown relative to the project."""
    tmp, run, _ = built
    leaks = [(p.name, where) for p in (tmp / "_build" / "html").rglob("*.html")
             for where in (str(root), str(tmp)) if where in p.read_text(errors="replace")]
    assert not leaks, leaks[:10]
    assert str(tmp) not in run.stdout  # the runner's progress lines too


def test_binding_first_rows_direction_and_kept_binding_model(built, tmp_path):
    """Chapter 05's binding-first rows beside the others, its direction table (results/05/direction.tsv), and, with
    the EN-TEx data, chapter 04's binding model scored by ``allelic predict`` with a signed effect."""
    import os

    import pandas as pd

    from allelic import binding_first, predict

    tmp, _, _ = built
    res = tmp / "results"
    fm = pd.read_csv(res / "05" / "fold_metrics.tsv", sep="\t")
    assert set(binding_first.model_names()) <= set(fm.loc[fm["assay"] == "CTCF", "model"])
    d = pd.read_csv(res / "05" / "direction.tsv", sep="\t")
    assert list(d.columns) == ["data", "score", "subset", "n", "n_snvs", "agreement", "ci_low", "ci_high"]
    assert ((d["ci_low"] <= d["agreement"]) & (d["agreement"] <= d["ci_high"])).all()
    assert pd.read_csv(res / "05" / "routes.tsv", sep="\t")["question"].str.contains("binding then AS").any()
    if not os.environ.get("ALLELIC_ENTEX_DIR"):
        return
    assert set(d["data"]) == {"simulator", "EN-TEx"}
    real = pd.read_csv(res / "05" / "entex_fold_metrics.tsv", sep="\t")
    assert {"motif_gbt", "transformer", *binding_first.model_names()} <= set(real["model"])
    kept = res / "04" / "models" / "entex_CTCF_binding"
    ex = pd.read_csv(res / "03" / "entex_examples.tsv.gz", sep="\t").head(20)
    tsv = tmp_path / "snvs.tsv"
    ex.assign(sequence=ex["seq_ref"].str[50:150], alt_allele=ex["alt"], snv_offset=50)[
        ["example_id", "sequence", "alt_allele", "snv_offset"]].to_csv(tsv, sep="\t", index=False)
    assert predict.main(["--model", str(kept), "--windows", str(tsv), "--out", str(tmp_path / "s.tsv")]) == 0
    got = pd.read_csv(tmp_path / "s.tsv", sep="\t", keep_default_na=False)
    assert got["effect"].notna().all() and len(got) == 20
    assert (got["preferred_allele"] == [a if e > 0 else r if e < 0 else ""
                                        for a, r, e in zip(ex["alt"], ex["ref"], got["effect"])]).all()
