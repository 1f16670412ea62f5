"""allelic.tissues: AnnData layers equal the input table, the likelihood-ratio test equals the hand-computed G
statistic, a planted sequence effect is found and a null one is found at the nominal rate."""
import math

import numpy as np
import pandas as pd
import pytest

from allelic.tissues import lrt, nested_logit, pairs, to_anndata

pytest.importorskip("anndata")


def _imbalance():
    rows = []
    # D1 SNV a measured in liver and lung (CTCF), SNV b in liver only; H3K27ac reads at a in liver only
    for donor, pos, tissue, assay, ref, alt, call in [
            ("D1", 100, "liver", "CTCF", 12, 3, True), ("D1", 100, "lung", "CTCF", 5, 6, False),
            ("D1", 200, "liver", "CTCF", 7, 7, False), ("D2", 100, "lung", "CTCF", 2, 9, True),
            ("D1", 100, "liver", "H3K27ac", 20, 21, False)]:
        rows.append({"donor": donor, "tissue": tissue, "assay": assay, "chrom": "chr1", "pos": pos, "ref": "A",
                     "alt": "G", "hap1_count": ref, "hap2_count": alt, "ref_count": ref, "alt_count": alt,
                     "total": ref + alt, "ratio": ref / (ref + alt), "p_betabinom": 0.01 if call else 0.5,
                     "as_betabinom": call})
    return pd.DataFrame(rows)


def test_anndata_layers_match_the_table():
    a = to_anndata(_imbalance(), assay="CTCF", signal_assays=["H3K27ac"],
                   snv_features=pd.DataFrame({"chrom": ["chr1"], "pos": [100], "ref": ["A"], "alt": ["G"],
                                              "sequence_score": [0.8]}))
    assert a.shape == (3, 2) and list(a.var_names) == ["liver", "lung"]
    assert list(a.obs_names) == ["D1:chr1:100:A:G", "D1:chr1:200:A:G", "D2:chr1:100:A:G"]
    np.testing.assert_array_equal(a.layers["ref_count"], [[12, 5], [7, np.nan], [np.nan, 2]])
    np.testing.assert_array_equal(a.layers["as_call"], [[1, 0], [0, np.nan], [np.nan, 1]])
    np.testing.assert_array_equal(a.layers["signal_H3K27ac"], [[41, 0], [0, 0], [0, 0]])
    np.testing.assert_allclose(a.X, a.layers["ratio"])
    assert a.obs["n_tissues"].tolist() == [2, 1, 1] and a.var["n_snvs"].tolist() == [2, 2]
    assert a.obs["sequence_score"].tolist()[0] == 0.8 and np.isnan(a.obs["sequence_score"].iloc[1])
    p = pairs(a, score="sequence_score")
    assert len(p) == 4 and set(p.columns) >= {"as_call", "signal_H3K27ac", "sequence_score"}
    with pytest.raises(ValueError, match="appears twice"):
        to_anndata(pd.concat([_imbalance(), _imbalance().iloc[:1]]), assay="CTCF")
    with pytest.raises(ValueError, match="assay 'RNA' is not"):
        to_anndata(_imbalance(), assay="RNA")


def test_lrt_equals_the_hand_computed_g_statistic():
    # a 2 x 2 table: score 1 -> 30 AS of 50, score 0 -> 15 AS of 60; logit(AS) ~ 1 vs ~ 1 + score is saturated
    y = [1] * 30 + [0] * 20 + [1] * 15 + [0] * 45
    x = [1] * 50 + [0] * 60
    df = pd.DataFrame({"as_call": y, "score": x, "chrom": "chr1"})
    res = nested_logit(df, signals=[], score="score", interaction=False)
    obs = [30, 20, 15, 45]
    exp = [50 * 45 / 110, 50 * 65 / 110, 60 * 45 / 110, 60 * 65 / 110]
    g = 2 * sum(o * math.log(o / e) for o, e in zip(obs, exp))
    assert res.tests.loc[0, "statistic"] == pytest.approx(g, rel=1e-6)
    assert res.tests.loc[0, "pvalue"] == pytest.approx(math.erfc(math.sqrt(g / 2)), rel=1e-6)   # chi2, 1 df
    assert res.odds_ratios.query("model == 'signals + score' and term == 'score'")["odds_ratio"].iloc[0] == \
        pytest.approx((30 / 20) / (15 / 45), rel=1e-6)
    assert lrt(-10.0, -12.0, 1)[0] == 0.0      # a worse 'full' model: statistic clipped at 0


def _synthetic(n, effect, rng):
    signal = rng.lognormal(2, 1, n)
    score = rng.normal(size=n)
    logit = -1 + 0.5 * (np.log1p(signal) - 2) + effect * score
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"as_call": y, "signal_H3K27ac": signal, "score": score,
                         "chrom": rng.choice(["chr1", "chr2", "chr3", "chr4"], n)})


def test_planted_sequence_effect_is_found_and_a_null_one_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    res = nested_logit(_synthetic(600, 0.8, rng), signals=["signal_H3K27ac"], score="score", test_chroms=["chr4"])
    assert res.tests.loc[0, "pvalue"] < 0.01
    assert res.models.loc[1, "auroc_test"] > res.models.loc[0, "auroc_test"]
    hits = [nested_logit(_synthetic(300, 0.0, rng), signals=["signal_H3K27ac"], score="score",
                         interaction=False).tests.loc[0, "pvalue"] < 0.05 for _ in range(200)]
    assert 0.02 <= np.mean(hits) <= 0.09          # nominal 0.05; binomial sd over 200 runs ~0.015


def test_constant_signal_is_named():
    df = _synthetic(100, 0.5, np.random.default_rng(1)).assign(signal_H3K4me3=0.0)
    with pytest.raises(ValueError, match="'signal_H3K4me3' is constant"):
        nested_logit(df, signals=["signal_H3K27ac", "signal_H3K4me3"], score="score")
