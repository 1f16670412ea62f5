"""Execute every chapter in the smoke profile with the runner, then render the book with warnings as errors."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.notebooks


def _glued(nb_path: Path) -> dict:
    """Glued values (text/plain) of an executed notebook, by key."""
    out = {}
    for cell in json.loads(nb_path.read_text())["cells"]:
        for o in cell.get("outputs", []):
            key = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if key and "text/plain" in o.get("data", {}):
                text = o["data"]["text/plain"]
                out[key] = "".join(text) if isinstance(text, list) else text
    return out


@pytest.fixture(scope="module")
def built(root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("book")
    env = {**os.environ, "ALLELIC_BUILD_DIR": str(tmp / "build"), "ALLELIC_RESULTS_DIR": str(tmp / "results"),
           "ALLELIC_DATA_DIR": str(tmp / "data")}
    run = subprocess.run([sys.executable, "-m", "allelic.run", "--profile", "smoke"], cwd=root, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    shutil.copy(root / "_config.yml", tmp / "_config.yml")
    shutil.copytree(root / "book", tmp / "book")
    jb = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jb), "build", ".", "--toc", "book/_toc.yml", "--config", "_config.yml", "-W", "-n", "--keep-going"],
                           cwd=tmp, env=env, capture_output=True, text=True)
    return tmp, run, build


def test_every_chapter_executed_and_wrote_results(built, root):
    tmp, run, _ = built
    chapters = sorted(p.name for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in (tmp / "build" / "executed").glob("*.ipynb")) == chapters
    assert (tmp / "results" / "01" / "counts.tsv.gz").is_file()
    assert "done in" in run.stdout


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
