"""Paths, environment variables and run profiles.

Every path the book uses resolves here, so notebooks never hold absolute paths.

==========================  ===============================================  ==============================
environment variable        meaning                                          default
==========================  ===============================================  ==============================
``ALLELIC_ROOT``            the book's root folder                           found from the working folder
``ALLELIC_DATA_DIR``        where the simulator writes its data sets         ``<root>/data/simulated``
``ALLELIC_RESULTS_DIR``     chapter artefacts, ``<dir>/<chapter>/``          ``<root>/results``
``ALLELIC_BUILD_DIR``       executed notebooks and run cache                 ``<root>/build``
``ALLELIC_ENTEX_DIR``       EN-TEx-style real data (``labels.tsv.gz``,       unset: chapters use the
                            ``windows.tsv.gz``)                              simulator only
``ALLELIC_HEK293_DIR``      VCFs with allelic depth (``*.vcf.gz``)           unset
``ALLELIC_PRETRAIN_CORPUS`` unlabelled DNA for MLM pretraining: a FASTA/TSV  unset: ``allelic pretrain``
                            file or a folder of them (``allelic.pretrain``)  needs ``--corpus``
``ALLELIC_TOKENIZER_DIR``   a tokenizer folder holding ``tokenizer.json``    unset: a BPE tokenizer is
                            (e.g. the published DNABERT-2 one)              trained on the corpus
==========================  ===============================================  ==============================

Profiles (``notebooks/profiles.yml``) name parameter sets: ``smoke`` (seconds on a laptop CPU, used by the tests),
``default`` (what ``make book`` renders) and ``full`` (GPU-sized).
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

ENTEX_FILES = ("labels.tsv.gz", "windows.tsv.gz")


def repo_root() -> Path:
    """The book's root: ``$ALLELIC_ROOT``, else the first parent of the working folder holding ``_config.yml`` and
    ``notebooks/``, else the checkout this package was installed from (editable install)."""
    env = os.environ.get("ALLELIC_ROOT")
    if env:
        return Path(env).resolve()
    for d in [Path.cwd(), *Path.cwd().parents]:
        if (d / "_config.yml").is_file() and (d / "notebooks").is_dir():
            return d
    return Path(__file__).resolve().parents[2]


def _dir(env: str, default: Path) -> Path:
    v = os.environ.get(env)
    return Path(v).resolve() if v else default


def data_dir() -> Path:
    return _dir("ALLELIC_DATA_DIR", repo_root() / "data" / "simulated")


def results_dir(chapter: str | None = None) -> Path:
    base = _dir("ALLELIC_RESULTS_DIR", repo_root() / "results")
    return base / chapter if chapter else base


def build_dir() -> Path:
    return _dir("ALLELIC_BUILD_DIR", repo_root() / "build")


def chapter_results(chapter: str) -> Path:
    """``results/<chapter>/``, created if missing (where a notebook writes its artefacts)."""
    d = results_dir(chapter)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _checked_dir(path, env: str, expected: tuple[str, ...], what: str,
                 hint: str = "see ../shared/data/entex_ctcf/SOURCE.md for the format") -> Path | None:
    if path in (None, ""):
        path = os.environ.get(env) or None
    if path is None:
        return None
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise FileNotFoundError(f"{what} directory {p} (from {env} or a parameter) does not exist; "
                                f"expected a folder holding {', '.join(expected)}")
    missing = [f for f in expected if not (p / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{what} directory {p} (from {env} or a parameter) lacks {', '.join(missing)}; "
                                f"expected {', '.join(expected)} "
                                f"({hint})")
    return p


def entex_dir(path=None) -> Path | None:
    """The EN-TEx-style data folder from ``path`` or ``$ALLELIC_ENTEX_DIR``; ``None`` when neither is set.

    Raises FileNotFoundError when the folder is named but missing or lacks ``labels.tsv.gz`` / ``windows.tsv.gz``."""
    return _checked_dir(path, "ALLELIC_ENTEX_DIR", ENTEX_FILES, "EN-TEx")


def hek293_dir(path=None) -> Path | None:
    """A folder of VCFs with allelic depth, from ``path`` or ``$ALLELIC_HEK293_DIR``; ``None`` when unset."""
    p = _checked_dir(path, "ALLELIC_HEK293_DIR", (), "HEK293 VCF")
    if p is not None and not sorted(p.glob("*.vcf.gz")):
        raise FileNotFoundError(f"HEK293 VCF directory {p} holds no *.vcf.gz files")
    return p


def _checked_path(path, env: str, what: str, expected: str) -> Path | None:
    if path in (None, ""):
        path = os.environ.get(env) or None
    if path is None:
        return None
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"{what} {p} (from {env} or a parameter) does not exist; expected {expected}")
    return p


def pretrain_corpus(path=None) -> Path | None:
    """The pretraining corpus from ``path`` or ``$ALLELIC_PRETRAIN_CORPUS`` (a FASTA/TSV file, or a folder of them;
    see :func:`allelic.pretrain.iter_corpus`); ``None`` when neither is set.

    Raises FileNotFoundError naming the variable when the named file or folder does not exist."""
    return _checked_path(path, "ALLELIC_PRETRAIN_CORPUS", "pretraining corpus",
                         "a FASTA (.fa/.fasta/.fna[.gz]) or TSV (.tsv[.gz], 'sequence' column) file, or a folder of them")


def tokenizer_dir(path=None) -> Path | None:
    """A tokenizer folder (holding ``tokenizer.json``, e.g. the published DNABERT-2 tokenizer) from ``path`` or
    ``$ALLELIC_TOKENIZER_DIR``; ``None`` when neither is set.

    Raises FileNotFoundError naming the variable when the folder is missing or lacks ``tokenizer.json``."""
    return _checked_dir(path, "ALLELIC_TOKENIZER_DIR", ("tokenizer.json",), "tokenizer",
                        hint="a save_pretrained tokenizer folder, e.g. ../shared/models/dnabert2-117m-tokenizer")


def shown(path) -> str:
    """A path as the rendered book should show it: relative to the book's root when it is inside it (or beside it,
    e.g. ``../shared/data/entex_ctcf``), else only its last two parts; ``"not set"`` for None. The book never prints
    the absolute paths of the machine that built it."""
    if path is None:
        return "not set"
    p = Path(path).resolve()
    root = repo_root()
    rel = os.path.relpath(p, root)
    if not rel.startswith(os.pardir + os.sep + os.pardir):  # inside the root, or one level beside it
        return rel
    return str(Path("...", *p.parts[-2:]))


def published_anchors(path=None):
    """The published results the book compares with (``data/published_anchors.tsv``: data, assay, setting, model,
    metric, low, high, source) as a DataFrame; the one place where numbers from the literature are written."""
    import pandas as pd

    p = Path(path) if path else repo_root() / "data" / "published_anchors.tsv"
    t = pd.read_csv(p, sep="\t")
    missing = {"data", "assay", "setting", "model", "metric", "low", "high", "source"} - set(t.columns)
    if missing:
        raise ValueError(f"{p}: missing column(s) {', '.join(sorted(missing))}")
    return t


def profiles_path() -> Path:
    return repo_root() / "notebooks" / "profiles.yml"


def load_profiles(path=None) -> dict:
    path = Path(path) if path else profiles_path()
    with open(path) as fh:
        profiles = yaml.safe_load(fh)
    if not isinstance(profiles, dict) or not profiles:
        raise ValueError(f"{path}: expected a mapping of profile names to parameters")
    return profiles


def profile_parameters(profile: str, chapter: str, path=None) -> dict:
    """Parameters for one chapter under one profile: the profile's ``common`` block updated by the chapter's block.

    Unknown profile -> ValueError listing the known ones."""
    profiles = load_profiles(path)
    if profile not in profiles:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(profiles)}")
    block = profiles[profile] or {}
    params = dict(block.get("common") or {})
    params.update(block.get(chapter) or {})
    params["profile"] = profile
    return params


def notebook_defaults(notebook) -> dict:
    """The values assigned in a notebook's ``parameters`` cell (the cell papermill injects after), as Python objects.

    Raises ValueError naming the notebook when it has no such cell or assigns something that is not a literal."""
    import ast
    import json

    path = Path(notebook)
    cells = [c for c in json.loads(path.read_text())["cells"]
             if c.get("cell_type") == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path.name}: no cell tagged 'parameters'")
    src = cells[0]["source"]
    out = {}
    for node in ast.parse("".join(src) if isinstance(src, list) else src).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f"{path.name}: parameter {node.targets[0].id} = {ast.unparse(node.value)} "
                                 f"is not a literal") from None
    return out


def chapter_parameters(profile: str, chapter: str, path=None, notebooks_dir=None) -> dict:
    """The parameters chapter ``chapter`` runs with under ``profile``: the defaults of its notebook's ``parameters``
    cell (:func:`notebook_defaults`) updated by :func:`profile_parameters`. The workflow's steps read these, so a
    step run outside the notebook computes exactly what the chapter would.

    Raises ValueError for an unknown profile or chapter."""
    nb_dir = Path(notebooks_dir) if notebooks_dir else repo_root() / "notebooks"
    found = sorted(nb_dir.glob(f"{chapter}_*.ipynb"))
    if not found:
        raise ValueError(f"no chapter {chapter!r} in {nb_dir}")
    params = notebook_defaults(found[0])
    params.update(profile_parameters(profile, chapter, path))
    return params
