import numpy as np
import pandas as pd
import pytest

from allelic import figures


def test_figures_from_saved_results(tmp_path, monkeypatch):
    (tmp_path / "01").mkdir()
    (tmp_path / "02").mkdir()
    counts = pd.DataFrame({"donor": "D1", "tissue": ["liver", "lung"] * 10, "assay": ["CTCF"] * 10 + ["RNA"] * 10,
                           "ref_count": range(20), "alt_count": range(5, 25)})
    counts.to_csv(tmp_path / "01" / "counts.tsv.gz", sep="\t", index=False)
    t = pd.DataFrame({"total": [10, 20, 30], "ratio": [0.1, 0.5, 0.9], "as_betabinom": [True, False, True],
                      "p_binom": [0.01, 0.5, 0.001], "p_betabinom": [0.05, 0.6, 0.01]})
    t.to_csv(tmp_path / "02" / "imbalance.tsv.gz", sep="\t", index=False)
    (tmp_path / "05").mkdir()
    fm = pd.DataFrame({"assay": "CTCF", "fold": [0, 1, 0, 1], "model": ["transformer"] * 2 + ["cnn"] * 2,
                       "auroc": [0.7, 0.8, 0.6, 0.65]})
    fm.to_csv(tmp_path / "05" / "fold_metrics.tsv", sep="\t", index=False)
    d6 = tmp_path / "06" / "simulator"
    d6.mkdir(parents=True)
    pos = range(20)
    pd.DataFrame({"position": pos, "label_1": 0.05, "label_0": 0.05, "difference": 0.0, "n_1": 3, "n_0": 4}).to_csv(
        d6 / "profile.tsv", sep="\t", index=False)
    pd.DataFrame({"motif": "MA0139.1 CTCF", "matrix_id": "MA0139.1", "position": pos, "difference": 0.1}).to_csv(
        d6 / "enrichment.tsv", sep="\t", index=False)
    pd.DataFrame({"motif_id": ["denovo_1"], "consensus": ["CCACCAGGGGGCG"], "n_instances": [7], "known": [True],
                  "jaspar_id": ["MA0139.1"], "jaspar_name": ["CTCF"], "tomtom_qvalue": [1e-5]}).to_csv(
        d6 / "motifs.tsv", sep="\t", index=False)
    from allelic.denovo import write_meme
    from allelic.motifs import load_jaspar

    write_meme(load_jaspar(["MA0139.1"]), d6 / "motifs.meme")
    (tmp_path / "07").mkdir()
    pd.DataFrame({"assay": ["CTCF", "CTCF", "RNA", "RNA"], "score": ["score_transformer", "score_cnn"] * 2,
                  "auroc_gain": [0.2, 0.1, 0.01, 0.03], "gain_low": [0.15, 0.05, -0.01, 0.0],
                  "gain_high": [0.25, 0.15, 0.03, 0.06]}).to_csv(tmp_path / "07" / "scores.tsv", sep="\t", index=False)
    (tmp_path / "04").mkdir()
    seq = "ACGT" * 50
    tokens = [{"start": i, "end": i + 4, "piece": seq[i:i + 4], "pooled": 96 <= i <= 100} for i in range(0, 200, 4)]
    spec = {"sequence": seq, "alt": "G", "snv": 100, "tokens": tokens, "n_tokens": 50, "vocab_size": 512,
            "hidden_size": 128, "layers": 2, "heads": 4, "parameters": 617218, "head": "reference",
            "pooling": "centre", "centre_flank": 4, "nucleotide_conv": 15, "score": 0.9, "pretraining": None}
    import json

    (tmp_path / "04" / "figure_9a.json").write_text(json.dumps(spec))
    # CTCF: scores rank 3 of 4 positives above every negative, the fourth below all (AUROC 12/16 = 0.75); RNA: one class
    pd.DataFrame({"assay": ["CTCF"] * 8 + ["RNA"] * 2, "label": [1, 1, 1, 1, 0, 0, 0, 0, 1, 1],
                  "score": [0.9, 0.8, 0.7, 0.1, 0.6, 0.5, 0.4, 0.3, 0.5, 0.6]}).to_csv(
        tmp_path / "04" / "scores.tsv.gz", sep="\t", index=False)
    monkeypatch.setenv("ALLELIC_RESULTS_DIR", str(tmp_path))
    assert figures.main(["--out", str(tmp_path / "fig")]) == 0
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["01_overview.png", "02_imbalance_tests.png",
                                                                    "04_figure_9a.png", "04_roc_pr.png", "05_binding_routes.png", "05_figure_9b.png", "06_figure_9c.png",
                                                                    "06_logos.png", "07_tissue_effects.png"]
    fig9a = figures.from_results("04_figure_9a", tmp_path)  # drawn from the saved spec, no model loaded
    texts = [t.get_text() for t in fig9a.axes[0].texts]
    assert "P(allele-specific)\n= 0.900" in texts and "G" in texts           # the score and the alternative allele
    assert sum(t in {tk["piece"] for tk in tokens} for t in texts) == 12      # tokens 76..120 overlap bases 78..121
    assert any("2 layers × 4 heads, hidden 128" in t and "15-bp convolution" in t for t in texts)
    roc = figures.from_results("04_roc_pr", tmp_path)
    assert [line.get_label() for line in roc.axes[0].lines[:-1]] == ["CTCF (0.75)"]  # RNA (one class) left out
    assert [line.get_label() for line in roc.axes[1].lines] == ["CTCF (0.88)"]  # average precision (1 + 1 + 1 + 4/8) / 4
    gains = figures.from_results("07_tissue_effects", tmp_path)
    ax = gains.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["fine-tuned transformer", "CNN"]  # by gain, then labels
    from matplotlib.collections import PathCollection

    xs = np.concatenate([c.get_offsets()[:, 0] for a in gains.axes for c in a.collections
                         if isinstance(c, PathCollection)])
    assert [a.get_title() for a in gains.axes] == ["CTCF", "RNA"]      # one panel per assay
    assert sorted(np.round(xs, 3)) == [0.01, 0.03, 0.1, 0.2]        # one point per saved gain, nothing refitted
    fig9c = figures.from_results("06_figure_9c", tmp_path)
    assert fig9c.axes[0].get_legend().get_texts()[0].get_text() == "AS SNVs (n=3)"
    logos = figures.from_results("06_logos", tmp_path)
    assert "CTCF (MA0139.1" in logos.axes[0].get_title()
    fig9b = figures.from_results("05_figure_9b", tmp_path)  # drawn from the saved metrics, nothing refitted
    assert [t.get_text() for t in fig9b.axes[0].get_legend().get_texts()] == ["fine-tuned transformer", "CNN"]
    # the calls in the scatter legend are counted from the saved table, not refitted
    fig = figures.from_results("02_imbalance_tests", tmp_path)
    labels = [tx.get_text() for tx in fig.axes[0].get_legend().get_texts()]
    assert labels == ["not called (1)", "allele-specific (2)"]


def test_missing_results_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="counts.tsv.gz is missing"):
        figures.from_results("01_overview", tmp_path)
