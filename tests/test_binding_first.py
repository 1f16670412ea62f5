"""The binding-first route on chromosome folds: the rows it adds, its cache, the direction table and the route test."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from allelic import binding, binding_first as bf, datasets, splits
from allelic.motifs import load_jaspar
from allelic.pwm import snv_score_change


@pytest.fixture(scope="module")
def folds(small_sim):
    calls = small_sim.truth()[["chrom", "pos", "ref", "alt", "assay", "is_as"]]
    ex = datasets.examples_from_calls(calls, small_sim.fasta, label_col="is_as", assays=["CTCF"])
    return splits.chromosome_folds(ex, 2, random_state=0)


def _set(sim):
    return lambda t, negatives: binding.simulation_binding_set(sim, t, negatives=negatives, random_state=0)


@pytest.fixture(scope="module")
def result(small_sim, folds, tmp_path_factory):
    cache = tmp_path_factory.mktemp("bf")
    r = bf.binding_first(folds, _set(small_sim), binders=("gkm", "cnn"), quick=True, cache_dir=cache)
    return r, cache


def test_rows_scores_and_effects(result, folds, small_sim):
    r, _ = result
    names = bf.model_names(("gkm", "cnn"))
    assert sorted(r.metrics["model"].unique()) == sorted(names)
    assert sorted(r.metrics["fold"].unique()) == [0, 1]
    for i, fold in enumerate(folds):
        test = fold.table[(fold.table["split"] == "test") & (fold.table["assay"] == "CTCF")]
        got = r.scores[(r.scores["fold"] == i) & (r.scores["model"] == "gkm_binding")]
        assert sorted(got["example_id"]) == sorted(test["example_id"])        # held-out rows only, each once
    zero = r.scores[r.scores["model"].isin(["gkm_binding", "cnn_binding", "cnn_binding_shuffled"])]
    np.testing.assert_allclose(zero["score"], zero["effect"].abs())           # zero-shot = |signed effect|
    eff = r.scores.pivot_table(index=["fold", "example_id"], columns="model", values="effect")
    np.testing.assert_array_equal(eff["cnn_binding_gbt"], eff["cnn_binding"])   # the stacked GBT's binder's effect
    assert set(r.binding["negatives"]) == {"genomic", "shuffled"}
    assert (r.binding["n_train"] > 0).all() and r.binding["val_auroc"].between(0, 1).all()
    # every fold's set keeps the fold's test chromosomes out (the builder's leak guard, re-checked here)
    for fold in folds:
        binding.assert_binding_leak_free(_set(small_sim)(fold.table, "genomic"), fold.table)


def test_folds_are_read_back_from_the_cache(result, folds, small_sim, monkeypatch):
    r, cache = result

    def refit(*a, **k):
        raise AssertionError("a cached fold was refitted")

    monkeypatch.setattr(bf, "_fold", refit)
    again = bf.binding_first(folds, _set(small_sim), binders=("gkm", "cnn"), quick=True, cache_dir=cache)
    pd.testing.assert_frame_equal(again.metrics, r.metrics, check_dtype=False)
    with pytest.raises(AssertionError, match="refitted"):       # another setting is another key
        bf.binding_first(folds, _set(small_sim), binders=("gkm",), quick=True, cache_dir=cache)


def test_direction_uses_out_of_fold_effects_and_the_motif_change(result, folds):
    r, _ = result
    table = folds[0].table
    meas = pd.DataFrame({"example_id": table["example_id"], "ref_ratio": np.where(np.arange(len(table)) % 2, 0.2, 0.8)})
    d = bf.direction(r, table, meas, n_boot=100).set_index(["score", "subset"])
    ctcf = load_jaspar(["MA0139.1"])[0]
    pwm = snv_score_change(table["seq_ref"].tolist(), table["seq_alt"].tolist(), ctcf)["delta"].to_numpy()
    d0 = pwm != 0
    hand = np.where(pwm == 0, 0.5, (pwm > 0) == (meas["ref_ratio"].to_numpy() < 0.5)).mean()
    assert d.loc[("CTCF PWM score change", "all AS SNVs"), "agreement"] == pytest.approx(hand)
    assert d.loc[("CTCF PWM score change", "all AS SNVs"), "n"] == len(table)
    assert d.loc[("CTCF PWM score change", "CTCF motif hit"), "n"] <= d0.sum()


def test_as_measurements_keeps_the_calls_of_one_assay():
    t = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2"], "pos": [5, 6, 7], "ref": ["A", "C", "G"],
                      "alt": ["G", "T", "A"], "assay": ["CTCF", "CTCF", "POL2"], "ref_count": [3, 9, 1],
                      "total": [10, 10, 10], "as_label": [1, 0, 1]})
    m = bf.as_measurements(t, call_col="as_label")
    assert m["example_id"].tolist() == ["chr1:5:A:G"] and m["ref_ratio"].tolist() == [0.3]
    with pytest.raises(ValueError, match="ref_count"):
        bf.as_measurements(t.drop(columns="ref_count"), call_col="as_label")


def test_route_comparison_pairs_folds_and_matches_wilcoxon():
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(6):
        for model, base in (("transformer", 0.6), ("transformer_binding_first", 0.65), ("motif_gbt", 0.62),
                            ("cnn_binding_gbt", 0.64), ("cnn_binding", 0.58)):
            rows.append({"assay": "CTCF", "model": model, "fold": fold, "seed": 0,
                         "auroc": base + rng.normal(0, 0.01), "fit_seconds": 10.0 * (1 + fold)})
    m = pd.DataFrame(rows)
    r = bf.route_comparison(m).set_index("question")
    a = m[m["model"] == "transformer_binding_first"].set_index("fold")["auroc"]
    b = m[m["model"] == "transformer"].set_index("fold")["auroc"]
    row = r.loc["transformer: binding then AS vs AS labels only"]
    assert row["labels_first"] == "transformer" and row["n_pairs"] == 6
    assert row["median_diff"] == pytest.approx(np.median(a - b))
    assert row["p_value"] == pytest.approx(wilcoxon(a - b).pvalue)
    assert row["seconds_binding_first"] == pytest.approx(35.0)
    best = r.loc["best binding-first row vs best AS-label row"]
    assert best["binding_first"] == "transformer_binding_first" and best["labels_first"] == "motif_gbt"
    gbt = r.loc["JASPAR GBT with vs without the CNN binding score"]
    assert (gbt["binding_first"], gbt["labels_first"]) == ("cnn_binding_gbt", "motif_gbt")
    assert "above" in bf.route_sentence(r.reset_index())
    # the best rows are the GBT pair: listed once
    m2 = m.assign(auroc=np.where(m["model"] == "cnn_binding_gbt", m["auroc"] + 0.1, m["auroc"]))
    assert len(bf.route_comparison(m2)) == 2
