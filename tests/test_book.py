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
    html_target = next(line for line in (root / "Makefile").read_text().splitlines() if "jupyter-book build" in line)
    assert upload["with"]["path"] == "build/_build/html" and "--path-output build" in html_target
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
