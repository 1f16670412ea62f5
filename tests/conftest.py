"""Shared fixtures: a small simulated data set, real-data folders, and the paths of the book."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _real_dir(env: str, default: str) -> Path | None:
    p = Path(os.environ.get(env) or ROOT.parent / default)
    return p if p.is_dir() else None


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
def small_sim(tmp_path_factory):
    """A small simulated data set (one per test session): 2 chromosomes x 120 kb, 2 donors, 2 tissues, 5 assays."""
    from allelic import simulate

    out = tmp_path_factory.mktemp("sim") / "small"
    return simulate.simulate("smoke", out, chrom_length=120_000, tissues=("liver", "lung"), random_state=7)
