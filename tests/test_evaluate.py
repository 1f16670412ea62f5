import numpy as np
import pandas as pd
import pytest

from allelic import evaluate


def test_confusion_hand_counts():
    called = [True, True, False, False, True]
    truth = [True, False, True, False, True]
    c = evaluate.confusion(called, truth)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 1)
    assert c["precision"] == pytest.approx(2 / 3) and c["recall"] == pytest.approx(2 / 3)
    assert c["fdp"] == pytest.approx(1 / 3) and c["accuracy"] == pytest.approx(3 / 5)
    none = evaluate.confusion([False, False], [True, False])
    assert np.isnan(none["precision"]) and np.isnan(none["fdp"]) and none["recall"] == 0


def test_call_metrics_counts_untested_truth_as_not_called():
    truth = pd.DataFrame({"sample": "S", "chrom": "chr1", "pos": [1, 2, 3, 4], "is_as": [True, True, False, False],
                          "assay": ["A", "A", "B", "B"]})
    calls = pd.DataFrame({"sample": "S", "chrom": "chr1", "pos": [1, 3, 9], "x": [True, True, True]})  # pos 2 untested
    m = evaluate.call_metrics(calls, truth, "x").iloc[0]
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["n_tested"]) == (1, 1, 1, 1, 2)
    by = evaluate.call_metrics(calls, truth, "x", by="assay").set_index("assay")
    assert by.loc["A", "recall"] == 0.5 and by.loc["B", "fdp"] == 1.0
    with pytest.raises(ValueError, match="missing column"):
        evaluate.call_metrics(calls, truth, "y")


def test_power_table_hand_counts():
    # five true AS rows: effects 0.05, 0.05, 0.25, 0.25, 0.25; depths 8, 12 (called), 50 (called), 50, untested
    truth = pd.DataFrame({"sample": "S", "chrom": "chr1", "pos": [1, 2, 3, 4, 5, 6],
                          "is_as": [True, True, True, True, True, False],
                          "effect": [0.05, -0.05, 0.25, 0.25, 0.25, 0.0]})
    calls = pd.DataFrame({"sample": "S", "chrom": "chr1", "pos": [1, 2, 3, 4, 6], "total": [8, 12, 50, 50, 30],
                          "x": [False, True, True, False, True]})
    t = evaluate.power_table(calls, truth, "x", effect="effect").set_index(["effect_bin", "depth_bin"])
    assert t.loc[("(0, 0.1]", "6-9"), "recall"] == 0 and t.loc[("(0, 0.1]", "10-19"), "recall"] == 1
    row = t.loc[("(0.2, 0.3]", "40-79")]
    assert (row["n_true"], row["n_called"], row["recall"]) == (2, 1, 0.5)
    lo, hi = evaluate._wilson(1, 2, 0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
    assert t.loc[("(0.2, 0.3]", "0-5"), "n_true"] == 1              # untested: depth 0, not called
    assert len(t) == 4 and t["n_true"].sum() == 5                  # the null row is not counted
    with pytest.raises(ValueError, match="missing column"):
        evaluate.power_table(calls, truth, "x", effect="nope")


def test_binary_metrics_hand_values():
    # scores rank: pos 0.9, neg 0.8, pos 0.7, neg 0.1 -> 3 of 4 positive-negative pairs ordered: AUROC 0.75
    y = [1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.1]
    m = evaluate.binary_metrics(y, s)
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # precision at each positive, averaged
    assert np.isnan(evaluate.binary_metrics([1, 1], [0.2, 0.3])["auroc"])


def test_bootstrap_interval_contains_value_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = y + rng.normal(0, 1, 300)
    a = evaluate.bootstrap_metrics(y, s, n_boot=200, random_state=1)
    b = evaluate.bootstrap_metrics(y, s, n_boot=200, random_state=1)
    pd.testing.assert_frame_equal(a, b)
    assert ((a["ci_low"] <= a["value"]) & (a["value"] <= a["ci_high"])).all()
    assert (a["ci_high"] - a["ci_low"] < 0.2).all()


def test_balanced_metrics_downsamples_the_majority():
    # 2 positives, 6 negatives; perfect ranking -> 1.0 whatever the subsample; n = 2 x minority
    y = [1, 1, 0, 0, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    m = evaluate.balanced_metrics(y, s, random_state=0)
    assert m == {"auroc": 1.0, "auprc": 1.0, "n": 4}
    # a negative above every positive: AUPRC on a balanced set is the mean over subsamples; AUROC in [0.5, 1]
    s2 = [0.9, 0.8, 0.95, 0.2, 0.3, 0.4, 0.5, 0.6]
    m2 = evaluate.balanced_metrics(y, s2, n_repeats=50, random_state=0)
    assert 0.5 < m2["auroc"] < 1 and m2["n"] == 4


def test_paired_comparison_wilcoxon_and_rank_biserial():
    from scipy.stats import wilcoxon

    ref = [0.80, 0.75, 0.90, 0.70, 0.85, 0.66]
    oth = [0.70, 0.76, 0.60, 0.65, 0.80, 0.60]  # differences: .10 -.01 .30 .05 .05 .06
    m = pd.DataFrame({"assay": "CTCF", "fold": list(range(6)) * 2, "seed": 0, "model": ["transformer"] * 6 + ["cnn"] * 6,
                      "auroc": ref + oth})
    r = evaluate.paired_comparison(m).iloc[0]
    d = np.array(ref) - np.array(oth)
    assert r["n_pairs"] == 6 and r["median_diff"] == pytest.approx(np.median(d))
    assert r["p_value"] == pytest.approx(wilcoxon(d).pvalue)
    # ranks of |d|: .01->1, .05->2.5, .05->2.5, .06->4, .10->5, .30->6; W- = 1, W+ = 20 -> r = 19/21
    assert r["effect_size"] == pytest.approx(19 / 21)
    with pytest.raises(ValueError, match="lacks column"):
        evaluate.paired_comparison(m.drop(columns="auroc"))
    # a second seed per fold is not a new independent pair: seeds are averaged within a fold (6 pairs, not 12)
    m2 = pd.concat([m, m.assign(seed=1, auroc=m["auroc"] + np.where(m["model"] == "cnn", 0.02, 0.0))])
    r2 = evaluate.paired_comparison(m2).iloc[0]
    assert r2["n_pairs"] == 6
    assert r2["median_diff"] == pytest.approx(np.median(d - 0.01))


def test_score_table_auroc_ci_and_balance():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50, int), np.zeros(150, int)]
    perfect = y + rng.uniform(0, 0.5, 200)  # every positive above every negative: AUROC 1
    noise = rng.uniform(0, 1, 200)
    scores = pd.concat([pd.DataFrame({"model": "perfect", "label": y, "score": perfect}),
                        pd.DataFrame({"model": "noise", "label": y, "score": noise})])
    t = evaluate.score_table(scores, n_boot=200, random_state=1).set_index("model")
    assert list(t.index) == ["perfect", "noise"]
    assert t.at["perfect", "auroc"] == 1.0 and t.at["perfect", "auroc_low"] == pytest.approx(1.0)
    assert t.at["perfect", "balanced_auroc"] == 1.0 and t.at["perfect", "pos_frac"] == 0.25
    from sklearn.metrics import roc_auc_score

    assert t.at["noise", "auroc"] == pytest.approx(roc_auc_score(y, noise))
    assert t.at["noise", "auroc_low"] < t.at["noise", "auroc"] < t.at["noise", "auroc_high"]


def test_direction_agreement_counts_ties_half_and_matches_wilson():
    from allelic.evaluate import direction_agreement

    # alt won in rows 0-2, ref in rows 3-5; effects: right, right, tie, wrong, right, tie
    effect = [1.0, 0.2, 0.0, 0.5, -2.0, 0.0]
    alt_wins = [True, True, True, False, False, False]
    r = direction_agreement(effect, alt_wins)
    assert r["n"] == 6 and r["agreement"] == pytest.approx((1 + 1 + 0.5 + 0 + 1 + 0.5) / 6)
    # Wilson interval by hand for p = 4/6, n = 6, z = 1.959964
    z, p, n = 1.959963984540054, 4 / 6, 6
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((c - h, c + h))
    with pytest.raises(ValueError, match="NaN"):
        direction_agreement([np.nan], [True])


def test_direction_table_per_subset_and_snv_groups():
    from allelic.evaluate import direction_table

    meas = pd.DataFrame({"example_id": ["a", "a", "b", "c", "d"], "ref_ratio": [0.2, 0.3, 0.8, 0.5, 0.9]})
    eff = pd.DataFrame({"example_id": ["a", "b", "c", "d"], "good": [1.0, -1.0, 3.0, -0.1],
                        "bad": [-1.0, 1.0, 0.0, 0.0]})
    t = direction_table(meas, eff, subsets={"all AS": None, "motif": ["a", "b"]}, n_boot=200)
    t = t.set_index(["score", "subset"])
    # c has ratio 0.5: no winner, skipped; a (two measurements), b and d remain
    assert t.loc[("good", "all AS"), "n"] == 4 and t.loc[("good", "all AS"), "n_snvs"] == 3
    assert t.loc[("good", "all AS"), "agreement"] == 1.0
    assert t.loc[("bad", "all AS"), "agreement"] == pytest.approx(0.5 / 4)
    assert t.loc[("good", "motif"), "n"] == 3
    assert t.loc[("good", "all AS"), "ci_low"] == 1.0   # every bootstrap draw agrees
