"""Paths as the book shows them, and the published anchors table."""
import pytest

from allelic import config


def test_shown_paths_are_never_absolute(tmp_path, monkeypatch):
    root = tmp_path / "book"
    (root / "results" / "04").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "entex").mkdir(parents=True)
    monkeypatch.setenv("ALLELIC_ROOT", str(root))
    assert config.shown(root / "results" / "04") == "results/04"
    assert config.shown(tmp_path / "shared" / "data" / "entex") == "../shared/data/entex"
    far = tmp_path.parent / "elsewhere" / "deep" / "models"
    assert config.shown(far) == ".../deep/models"
    assert config.shown(None) == "not set"


def test_published_anchors_table(tmp_path):
    t = config.published_anchors()
    ctcf = t[(t["assay"] == "CTCF") & (t["metric"] == "auroc")].iloc[0]
    assert (ctcf["low"], ctcf["high"]) == (0.67, 0.70) and "Rozowsky" in ctcf["source"]
    bad = tmp_path / "a.tsv"
    bad.write_text("data\tassay\nx\ty\n")
    with pytest.raises(ValueError, match="a.tsv: missing column"):
        config.published_anchors(bad)
