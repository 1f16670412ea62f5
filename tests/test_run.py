"""The papermill runner: order, parameters, cache, loud failures, bad parameters."""
import json

import nbformat
import pytest

from allelic import config, run


def _nb(path, body):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("x = 1\nprofile = 'smoke'")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def book(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _nb(nbs / "01_first.ipynb", "from pathlib import Path\nPath('out01.txt').write_text(str(x * 2))")
    _nb(nbs / "02_second.ipynb", "y = x + 1")
    prof = tmp_path / "profiles.yml"
    prof.write_text("smoke:\n  common: {x: 3}\n  '02': {x: 5}\nother:\n  common: {x: 4}\n")
    monkeypatch.setenv("ALLELIC_BUILD_DIR", str(tmp_path / "build"))
    return nbs, prof


def test_runs_in_order_with_profile_parameters_then_caches(book, tmp_path):
    nbs, prof = book
    recs = run.run_book("smoke", notebooks_dir=nbs, profiles=prof, progress=False)
    assert [r["chapter"] for r in recs] == ["01", "02"] and all(r["status"] == "ran" for r in recs)
    assert (nbs / "out01.txt").read_text() == "6"  # common x=3 reached chapter 01, run in its own folder
    executed = nbformat.read(tmp_path / "build" / "executed" / "02_second.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "x = 5" in injected[0].source  # the chapter block overrides common
    paths = [executed.metadata.papermill[k] for k in ("input_path", "output_path")]
    assert not any(p.startswith("/") for p in paths), paths  # the rendered book shows no absolute path
    again = run.run_book("smoke", notebooks_dir=nbs, profiles=prof, progress=False)
    assert [r["status"] for r in again] == ["cached", "cached"]
    stamp = json.loads((tmp_path / "build" / "executed" / ".cache" / "01.json").read_text())
    assert stamp["params"] == {"x": 3, "profile": "smoke"}
    # another profile changes the parameters: both rerun; forcing reruns too
    assert [r["status"] for r in run.run_book("other", notebooks_dir=nbs, profiles=prof, progress=False)] == ["ran", "ran"]
    assert [r["status"] for r in run.run_book("other", ["02"], notebooks_dir=nbs, profiles=prof, force=True, progress=False)] == ["ran"]


def test_upstream_change_invalidates_later_chapters(book):
    nbs, prof = book
    run.run_book("smoke", notebooks_dir=nbs, profiles=prof, progress=False)
    _nb(nbs / "01_first.ipynb", "z = 'changed'")
    recs = run.run_book("smoke", notebooks_dir=nbs, profiles=prof, progress=False)
    assert [r["status"] for r in recs] == ["ran", "ran"]


def test_failing_notebook_stops_the_run_naming_notebook_and_cell(book):
    nbs, prof = book
    _nb(nbs / "01_first.ipynb", "raise RuntimeError('planted failure')")
    with pytest.raises(run.ChapterFailed) as err:
        run.run_book("smoke", notebooks_dir=nbs, profiles=prof, progress=False)
    msg = str(err.value)
    assert "01_first.ipynb" in msg and "RuntimeError" in msg and "planted failure" in msg and "cell" in msg
    assert not (nbs.parent / "build" / "executed" / "02_second.ipynb").exists()  # stopped at the first failure


def test_cli_exit_status_and_messages(book, capsys, monkeypatch):
    nbs, prof = book
    monkeypatch.setenv("ALLELIC_ROOT", str(nbs.parent))
    (nbs / "profiles.yml").write_text(prof.read_text())
    assert run.main(["--profile", "nope"]) == 1
    assert "unknown profile 'nope'; expected one of smoke, other" in capsys.readouterr().err
    assert run.main(["--profile", "smoke", "--chapters", "07"]) == 1
    assert "unknown chapter(s) 07; expected some of 01, 02" in capsys.readouterr().err


def test_data_directory_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLELIC_ENTEX_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="does not exist; expected a folder holding labels.tsv.gz"):
        config.entex_dir()
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "labels.tsv.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="lacks windows.tsv.gz"):
        config.entex_dir(tmp_path / "partial")
    monkeypatch.delenv("ALLELIC_ENTEX_DIR")
    assert config.entex_dir() is None


def test_pretraining_inputs_enter_the_cache_key(tmp_path, monkeypatch):
    """A chapter's cache key changes when the pretraining corpus (a file or a folder) or the tokenizer changes."""
    for env in ("ALLELIC_ENTEX_DIR", "ALLELIC_HEK293_DIR", "ALLELIC_PRETRAIN_CORPUS", "ALLELIC_TOKENIZER_DIR"):
        monkeypatch.delenv(env, raising=False)
    nb = tmp_path / "04_x.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    before = run.cache_key(nb, {})
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("sequence\nACGT\n")
    monkeypatch.setenv("ALLELIC_PRETRAIN_CORPUS", str(corpus))
    with_file = run.cache_key(nb, {})
    corpus.write_text("sequence\nACGTACGT\n")
    assert len({before, with_file, run.cache_key(nb, {})}) == 3
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("ALLELIC_TOKENIZER_DIR", str(tok))
    assert run.cache_key(nb, {}) != with_file


def test_tables_read_from_the_repository_enter_the_cache_key(tmp_path, monkeypatch):
    """Chapter 02 reads MIXALIME's results from benchmarks/mixalime_truth/: rerunning the benchmark must rerun it."""
    (tmp_path / "benchmarks" / "mixalime_truth").mkdir(parents=True)
    monkeypatch.setenv("ALLELIC_ROOT", str(tmp_path))
    nb = tmp_path / "02_x.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    absent = run.cache_key(nb, {})
    table = tmp_path / "benchmarks" / "mixalime_truth" / "summary.tsv"
    table.write_text("donor\tfdp\nD2\t0.03\n")
    present = run.cache_key(nb, {})
    table.write_text("donor\tfdp\nD2\t0.04\n")
    assert len({absent, present, run.cache_key(nb, {})}) == 3
    table.write_text("donor\tfdp\nD2\t0.03\n")
    assert run.cache_key(nb, {}) == present           # content, not time: the same table, the same key


def test_every_parameters_cell_is_understood_by_papermill():
    """papermill reads a notebook's parameters cell line by line; a line it cannot parse (a comment with ``>=``,
    for one) is left out of its parameter list with only a warning. Every assignment must come through, and the
    profiles may only set parameters the notebook declares."""
    import ast

    import papermill as pm

    profiles = config.load_profiles()
    for nb_path in sorted((config.repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        declared = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
        inspected = pm.inspect_notebook(str(nb_path))
        assert list(inspected) == declared, nb_path.name
        for name, prof in profiles.items():
            keys = set(prof.get("common", {})) | set(prof.get(nb_path.name[:2], {}))
            assert keys <= set(declared), f"{nb_path.name}: profile {name} sets {sorted(keys - set(declared))}"
