"""Shared fixtures: a small simulated data set, real-data folders, and the paths of the book."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from allelic.motifs import load_jaspar

ROOT = Path(__file__).resolve().parents[1]


def _real_dir(env: str, default: str) -> Path | None:
    p = Path(os.environ.get(env) or ROOT.parent / default)
    return p if p.exists() else None


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def entex_dir() -> Path:
    d = _real_dir("ALLELIC_ENTEX_DIR", "shared/data/entex_ctcf")
    if d is None:
        pytest.skip("real EN-TEx data absent: set ALLELIC_ENTEX_DIR (e.g. ../shared/data/entex_ctcf)")
    return d


@pytest.fixture(scope="session")
def hek293_dir() -> Path:
    d = _real_dir("ALLELIC_HEK293_DIR", "shared/data/hek293_ctcf")
    if d is None:
        pytest.skip("real HEK293 VCFs absent: set ALLELIC_HEK293_DIR (e.g. ../shared/data/hek293_ctcf)")
    return d


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    p = _real_dir("ALLELIC_PRETRAIN_CORPUS", "shared/data/pretrain_corpus")
    if p is None:
        pytest.skip("real pretraining corpus absent: set ALLELIC_PRETRAIN_CORPUS (e.g. ../shared/data/pretrain_corpus)")
    return p


@pytest.fixture(scope="session")
def published_tokenizer() -> Path:
    p = _real_dir("ALLELIC_TOKENIZER_DIR", "shared/models/dnabert2-117m-tokenizer")
    if p is None:
        pytest.skip("published DNABERT-2 tokenizer absent: set ALLELIC_TOKENIZER_DIR "
                    "(e.g. ../shared/models/dnabert2-117m-tokenizer)")
    return p


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
