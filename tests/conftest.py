"""Shared fixtures: a small simulated data set, real-data folders, and the paths of the book."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from allelic.motifs import load_jaspar

ROOT = Path(__file__).resolve().parents[1]


def _real(env: str, default: str, what: str) -> Path:
    """The real-data path from ``env`` (else ``../<default>`` beside the checkout); skips the test when absent."""
    p = Path(os.environ.get(env) or ROOT.parent / default)
    if not p.exists():
        pytest.skip(f"{what} absent: set {env} (e.g. ../{default})")
    return p


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def ctcf():
    """JASPAR's MA0139.1 (CTCF), the classic 19-bp matrix the simulator plants."""
    return load_jaspar(["MA0139.1"])[0]


def random_dna(rng, n: int, length: int) -> list[str]:
    """``n`` uniform random ACGT strings of ``length`` bases from ``rng``."""
    return ["".join("ACGT"[i] for i in row) for row in rng.integers(0, 4, size=(n, length))]


@pytest.fixture(scope="session")
def entex_dir() -> Path:
    return _real("ALLELIC_ENTEX_DIR", "shared/data/entex_ctcf", "real EN-TEx data")


@pytest.fixture(scope="session")
def hek293_dir() -> Path:
    return _real("ALLELIC_HEK293_DIR", "shared/data/hek293_ctcf", "real HEK293 VCFs")


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    return _real("ALLELIC_PRETRAIN_CORPUS", "shared/data/pretrain_corpus", "real pretraining corpus")


@pytest.fixture(scope="session")
def published_tokenizer() -> Path:
    return _real("ALLELIC_TOKENIZER_DIR", "shared/models/dnabert2-117m-tokenizer", "published DNABERT-2 tokenizer")


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory):
    """A small simulated data set (one per test session): 2 chromosomes x 120 kb, 2 donors, 2 tissues, 5 assays."""
    from allelic import simulate

    out = tmp_path_factory.mktemp("sim") / "small"
    return simulate.simulate("smoke", out, chrom_length=120_000, tissues=("liver", "lung"), random_state=7)


def _pair_toy(n, rng, width=200):
    """Both alleles: in label-1 examples the SNV at the centre breaks the CTCF consensus on the alternative allele;
    label-0 examples carry the same motif, unbroken on both alleles (so the reference window alone cannot tell)."""
    site = load_jaspar(["MA0139.1"])[0].consensus()
    ref = ["".join(s) for s in rng.choice(list("ACGT"), size=(n, width))]
    y = rng.integers(0, 2, n)
    c = width // 2
    alt = []
    for i in range(n):
        p = c - int(rng.integers(2, 17))  # the motif covers the centre base
        ref[i] = ref[i][:p] + site + ref[i][p + len(site):]
        a = list(ref[i])
        if y[i]:
            a[c] = {"A": "T", "C": "A", "G": "T", "T": "A"}[a[c]]  # a change inside the motif
        else:
            far = int(rng.integers(0, 40))  # a change far from the motif
            a[far] = {"A": "C", "C": "G", "G": "A", "T": "G"}[a[far]]
        alt.append("".join(a))
    return pd.DataFrame({"seq_ref": ref, "seq_alt": alt, "label": y})


@pytest.fixture(scope="session")
def pair_toy():
    """``pair_toy(n, rng)``: a DataFrame ``seq_ref, seq_alt, label`` where only the alternative allele tells the
    classes apart (see :func:`_pair_toy`)."""
    return _pair_toy


def write_bam(path: Path, reads, lengths: dict, *, csi: bool = False) -> Path:
    """Write pysam ``reads`` as a coordinate-sorted BAM with contigs ``lengths`` and index it (``.bai``, or ``.csi``)."""
    import pysam

    header = {"HD": {"VN": "1.6", "SO": "unsorted"}, "SQ": [{"SN": c, "LN": n} for c, n in lengths.items()]}
    tmp = path.with_suffix(".unsorted.bam")
    with pysam.AlignmentFile(str(tmp), "wb", header=header) as fh:
        for r in reads:
            fh.write(r)
    pysam.sort("-o", str(path), str(tmp))
    pysam.index(*(["-c"] if csi else []), str(path))
    tmp.unlink()
    return path


def glued(nb_path: Path) -> dict:
    """Glued values (text/plain) of an executed notebook, by key; hidden ones (``display=False``) included."""
    out = {}
    for cell in json.loads(nb_path.read_text())["cells"]:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            key, data = book.get("name"), o.get("data", {})
            mime = next((m for m in ("text/plain", book.get("mime_prefix", "") + "text/plain") if m in data), None)
            if key and mime:
                text = data[mime]
                out[key] = "".join(text) if isinstance(text, list) else text
    return out


@pytest.fixture(scope="session")
def built(root, tmp_path_factory):
    """Every chapter executed in the smoke profile in a temporary folder, then the book rendered there with warnings
    as errors: ``(folder, runner process, build process)``; the HTML is in ``folder/_build/html``."""
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
