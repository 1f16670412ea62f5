"""allelic.tissues: AnnData layers equal the input table, the likelihood-ratio test equals the hand-computed G
statistic, a planted sequence effect is found and a null one at the nominal rate (with the cluster-robust test when
pairs of one SNV are correlated), discordant tissue pairs equal a hand count, and tissues that share planted
effects are each other's nearest neighbours."""
import math

import numpy as np
import pandas as pd
import pytest

from allelic import evaluate, io, stats, tissues
from allelic.tissues import discordant_pairs, lrt, nested_logit, pairs, to_anndata

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
    assert a.obs["snv"].tolist() == ["chr1:100:A:G", "chr1:200:A:G", "chr1:100:A:G"]
    np.testing.assert_array_equal(a.layers["ref_count"], [[12, 5], [7, np.nan], [np.nan, 2]])
    np.testing.assert_array_equal(a.layers["as_call"], [[1, 0], [0, np.nan], [np.nan, 1]])
    np.testing.assert_array_equal(a.layers["pvalue"], [[0.01, 0.5], [0.5, np.nan], [np.nan, 0.01]])
    np.testing.assert_array_equal(a.layers["signal_H3K27ac"], [[41, 0], [0, 0], [0, 0]])
    np.testing.assert_allclose(a.X, a.layers["ratio"])
    assert a.obs["n_tissues"].tolist() == [2, 1, 1]
    # var: liver has D1's two SNVs (one AS; 15 and 14 reads), lung D1 and D2 (one AS; 11 and 11 reads)
    assert a.var["n_snvs"].tolist() == [2, 2] and a.var["n_donors"].tolist() == [1, 2]
    assert a.var["n_as"].tolist() == [1, 1] and a.var["median_total"].tolist() == [14.5, 11.0]
    assert a.obs["sequence_score"].tolist()[0] == 0.8 and np.isnan(a.obs["sequence_score"].iloc[1])
    p = pairs(a, obs_columns=["sequence_score"])
    assert len(p) == 4 and set(p.columns) >= {"as_call", "signal_H3K27ac", "sequence_score", "snv"}
    with pytest.raises(ValueError, match="appears twice"):
        to_anndata(pd.concat([_imbalance(), _imbalance().iloc[:1]]), assay="CTCF")
    with pytest.raises(ValueError, match="assay 'RNA' is not"):
        to_anndata(_imbalance(), assay="RNA")
    with pytest.raises(ValueError, match=r"missing columns \['p_betabinom'\]"):
        to_anndata(_imbalance().drop(columns="p_betabinom"), assay="CTCF")
    with pytest.raises(ValueError, match="no obs column"):
        pairs(a, obs_columns=["nope"])


def test_anndata_with_partial_features_round_trips_through_h5ad(tmp_path):
    import anndata as ad

    feats = pd.DataFrame({"chrom": ["chr1"], "pos": [100], "ref": ["A"], "alt": ["G"], "held_out": [True],
                          "score": [0.3]})
    a = to_anndata(_imbalance(), assay="CTCF", signal_assays=["H3K27ac"], snv_features=feats)
    assert str(a.obs["held_out"].dtype) == "boolean" and a.obs["held_out"].isna().sum() == 1
    a.write_h5ad(tmp_path / "a.h5ad")
    b = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(b.layers["ref_count"], a.layers["ref_count"])
    assert bool(b.obs["held_out"].iloc[0]) and b.obs["held_out"].isna().tolist() == [False, True, False]


def test_replicates_keep_the_deepest_and_are_ledgered():
    deeper = _imbalance().iloc[[0]].assign(hap1_count=30, ref_count=30, total=33, ratio=30 / 33)
    a = to_anndata(pd.concat([_imbalance(), deeper], ignore_index=True), assay="CTCF", replicates="deepest")
    assert a.layers["total"][0, 0] == 33 and a.layers["ref_count"][0, 0] == 30
    led = a.uns["ledger"]
    assert len(led) == 1 and led["reason"].iloc[0] == "replicate_measurement"
    assert led["record"].iloc[0] == "D1:chr1:100:A:G liver"


def test_a_singular_newton_step_falls_back_to_quasi_newton(monkeypatch):
    """Separation can make the Newton step's information matrix singular (seen on chapter 07's RNA rows of a simulated
    data set with random_state 1: numpy's LinAlgError). The fit then falls back to BFGS, which reaches the same
    maximum likelihood where it exists: forced here on well-behaved data, the estimates equal Newton's."""
    from statsmodels.discrete.discrete_model import Logit

    rng = np.random.default_rng(0)
    sig = rng.integers(0, 60, 400)
    y = (rng.random(400) < 1 / (1 + np.exp(-(np.log1p(sig) - 3)))).astype(int)
    df = pd.DataFrame({"as_call": y, "signal_RNA": sig, "score": rng.normal(size=400), "chrom": "chr1"})
    newton = nested_logit(df, signals=["signal_RNA"], score="score", interaction=False)
    original = Logit.fit

    def singular_newton(self, *args, **kw):
        if kw.get("method", "newton") == "newton":
            raise np.linalg.LinAlgError("Singular matrix")
        return original(self, *args, **kw)

    monkeypatch.setattr(Logit, "fit", singular_newton)
    bfgs = nested_logit(df, signals=["signal_RNA"], score="score", interaction=False)
    np.testing.assert_allclose(bfgs.models["llf"], newton.models["llf"], rtol=1e-6)
    np.testing.assert_allclose(bfgs.odds_ratios["odds_ratio"], newton.odds_ratios["odds_ratio"], rtol=1e-3)


def test_lrt_equals_the_hand_computed_g_statistic():
    # a 2 x 2 table: score 1 -> 30 AS of 50, score 0 -> 15 AS of 60; logit(AS) ~ 1 vs ~ 1 + score is saturated
    y = [1] * 30 + [0] * 20 + [1] * 15 + [0] * 45
    x = [1] * 50 + [0] * 60
    df = pd.DataFrame({"as_call": y, "score": x, "chrom": "chr1"})
    res = nested_logit(df, signals=[], score="score", interaction=False, standardize=False)
    obs = [30, 20, 15, 45]
    exp = [50 * 45 / 110, 50 * 65 / 110, 60 * 45 / 110, 60 * 65 / 110]
    g = 2 * sum(o * math.log(o / e) for o, e in zip(obs, exp))
    assert res.tests.loc[0, "statistic"] == pytest.approx(g, rel=1e-6)
    assert res.tests.loc[0, "pvalue"] == pytest.approx(math.erfc(math.sqrt(g / 2)), rel=1e-6)   # chi2, 1 df
    assert res.odds_ratios.query("model == 'signals + score' and term == 'score'")["odds_ratio"].iloc[0] == \
        pytest.approx((30 / 20) / (15 / 45), rel=1e-6)
    # standardised: the same fit, the odds ratio per sd of the score (sd of 50 ones and 60 zeros)
    sd = np.std(x)
    z = nested_logit(df, signals=[], score="score", interaction=False)
    assert z.tests.loc[0, "statistic"] == pytest.approx(g, rel=1e-6)
    assert z.odds_ratios.query("term == 'score'")["odds_ratio"].iloc[0] == \
        pytest.approx(((30 / 20) / (15 / 45)) ** sd, rel=1e-6)
    assert lrt(-10.0, -12.0, 1)[0] == 0.0      # a worse 'full' model: statistic clipped at 0


def _clustered(n_snvs, effect, rng, n_tissues=5, sd_snv=1.5):
    """SNV x tissue pairs: a per-SNV score and a per-SNV random effect shared by its tissues (pairs of one SNV are
    correlated), a tissue signal per pair, and a planted tissue-specific effect (the score matters only where the
    tissue's signal is high) of size ``effect``."""
    snv = np.repeat(np.arange(n_snvs), n_tissues)
    score = rng.normal(size=n_snvs)[snv]
    u = rng.normal(scale=sd_snv, size=n_snvs)[snv]
    signal = rng.lognormal(2, 1, len(snv))
    gate = np.log1p(signal) > 2
    logit = -1.5 + 0.5 * (np.log1p(signal) - 2) + u + effect * score * gate
    y = (rng.random(len(snv)) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"as_call": y, "signal_H3K27ac": signal, "score": score, "snv": snv,
                         "chrom": np.array(["chr1", "chr2", "chr3", "chr4"])[snv % 4]})


def test_planted_tissue_specific_effect_is_significant():
    res = nested_logit(_clustered(400, 1.0, np.random.default_rng(0)), signals=["signal_H3K27ac"], score="score",
                       test_chroms=["chr4"], groups="snv")
    t = res.tests.set_index("model")
    assert t.loc["signals + score", "pvalue"] < 0.01 and t.loc["signals + score", "pvalue_cluster"] < 0.01
    # the planted effect acts only where the signal is high: the interaction is found too
    assert t.loc["signals + score + interaction", "pvalue_cluster"] < 0.01
    m = res.models.set_index("model")["auroc_test"]
    assert m["signals + score"] > m["signals"]
    assert res.models["n_clusters"].iloc[0] == 300                       # 400 SNVs, chr4's 100 held out


def test_null_effect_is_significant_at_the_nominal_rate():
    rng = np.random.default_rng(1)
    naive, robust = [], []
    for _ in range(150):
        r = nested_logit(_clustered(120, 0.0, rng), signals=["signal_H3K27ac"], score="score", interaction=False,
                         groups="snv").tests.iloc[0]
        naive.append(r["pvalue"] < 0.05)
        robust.append(r["pvalue_cluster"] < 0.05)
    # nominal 0.05; binomial sd over 150 runs ~0.018. The LRT treats the 5 correlated pairs of an SNV as
    # independent and rejects far too often; the cluster-robust Wald test keeps the nominal rate.
    assert 0.01 <= np.mean(robust) <= 0.10
    assert np.mean(naive) > 0.12                                          # ~4 binomial sd above 0.05
    indep = [nested_logit(_clustered(600, 0.0, rng, n_tissues=1, sd_snv=0.0), signals=["signal_H3K27ac"],
                          score="score", interaction=False).tests.loc[0, "pvalue"] < 0.05 for _ in range(150)]
    assert 0.01 <= np.mean(indep) <= 0.10                                 # independent rows: the LRT is nominal


def test_constant_signal_is_named():
    df = _clustered(50, 0.5, np.random.default_rng(1)).assign(signal_H3K4me3=0.0)
    with pytest.raises(ValueError, match="'signal_H3K4me3' is constant"):
        nested_logit(df, signals=["signal_H3K27ac", "signal_H3K4me3"], score="score")
    kept, left = tissues.informative_signals(df, ["signal_H3K27ac", "signal_H3K4me3"])
    assert kept == ["signal_H3K27ac"] and left["signal"].tolist() == ["signal_H3K4me3"]


def test_discordant_pairs_equal_a_hand_count():
    d = pd.DataFrame({"snv_id": ["a"] * 3 + ["b"] * 2 + ["c"], "snv": ["x"] * 3 + ["y"] * 2 + ["z"],
                      "donor": "D1", "chrom": "chr1", "tissue": ["t1", "t2", "t3", "t1", "t2", "t1"],
                      "as_call": [1, 0, 0, 1, 1, 1], "signal_CTCF": [10.0, 3.0, 0.0, 5.0, 5.0, 9.0],
                      "score": [0.7, 0.7, 0.7, 0.1, 0.1, 0.2]})
    out = discordant_pairs(d, signals=["signal_CTCF"], obs_columns=["score"], random_state=0)
    # only SNV a has discordant calls: (t1 AS, t2 not) and (t1 AS, t3 not)
    assert len(out) == 2 and set(out["snv_id"]) == {"a"} and (out["score"] == 0.7).all()
    for r in out.itertuples():
        as_t, other = (r.tissue_a, r.tissue_b) if r.response == 1 else (r.tissue_b, r.tissue_a)
        assert as_t == "t1" and other in {"t2", "t3"}
        s = {"t1": 10.0, "t2": 3.0, "t3": 0.0}
        assert r.diff_signal_CTCF == pytest.approx(math.log1p(s[r.tissue_a]) - math.log1p(s[r.tissue_b]))
    again = discordant_pairs(d, signals=["signal_CTCF"], random_state=0)
    assert again["response"].tolist() == out["response"].tolist()     # deterministic orientation


def test_auroc_difference_against_sklearn_and_grouped_bootstrap():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    a, b = rng.normal(size=400) + 0.3 * y, rng.normal(size=400) + 1.0 * y
    groups = np.repeat(np.arange(100), 4)
    r = evaluate.auroc_difference(y, a, b, groups=groups, n_boot=300, random_state=0)
    assert r["difference"] == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a))
    assert r["ci_low"] < r["difference"] < r["ci_high"] and r["ci_low"] > 0 and r["pvalue"] < 0.01
    assert r["n_groups"] == 100
    same = evaluate.auroc_difference(y, a, a, n_boot=50, random_state=0)
    assert same["difference"] == 0 and same["pvalue"] == 1.0


def _profiles_table(shared: bool, rng, n_snvs=300, donors=("D1", "D2", "D3"), tissues_=("t1", "t2", "t3", "t4")):
    """Imbalance rows in which each SNV's effect is planted per tissue, the same in every donor (``shared``) or drawn
    afresh per donor and tissue."""
    rows = []
    eff = rng.random((n_snvs, len(tissues_))) < 0.3
    for d in donors:
        own = eff if shared else rng.random(eff.shape) < 0.3
        for j, t in enumerate(tissues_):
            r1 = np.where(own[:, j], 0.85, 0.5)
            n = rng.integers(30, 60, n_snvs)
            h1 = rng.binomial(n, r1)
            rows.append(pd.DataFrame({"donor": d, "tissue": t, "assay": "CTCF", "chrom": "chr1",
                                      "pos": np.arange(n_snvs) + 1, "ref": "A", "alt": "G", "hap1_count": h1,
                                      "hap2_count": n - h1, "total": n}))
    return pd.concat(rows, ignore_index=True)


def test_tissues_sharing_planted_effects_are_nearest_neighbours():
    rng = np.random.default_rng(3)
    prof = tissues.embed(tissues.sample_profiles(_profiles_table(True, rng), assay="CTCF"), n_comps=5)
    assert prof.shape == (12, 300) and prof.obsm["X_pca"].shape == (12, 5)
    assert "dendrogram_tissue" in prof.uns
    res = tissues.neighbour_agreement(prof, n_permutations=500)
    assert res["fraction"] == 1.0 and res["pvalue"] < 0.01
    # shuffled labels: a sample's neighbour carries its tissue with probability 2 / 11 (two other samples of it)
    assert res["expected"] == pytest.approx(2 / 11, abs=0.03)
    null = tissues.neighbour_agreement(tissues.sample_profiles(_profiles_table(False, rng), assay="CTCF"),
                                       n_permutations=200)
    assert null["pvalue"] > 0.05


def test_snv_features_scores_and_motif_change():
    from allelic.motifs import load_jaspar

    motif = load_jaspar(["MA0139.1"])[0]
    site = motif.consensus()
    rng = np.random.default_rng(4)
    flank = "".join(rng.choice(list("ACGT"), 200))
    ref = flank[:91] + site + flank[110:200]                          # the site on bases 91-109; the SNV at 100
    mut = {"A": "C", "C": "A", "G": "T", "T": "G"}[ref[100]]
    alt = ref[:100] + mut + ref[101:]
    ex = pd.DataFrame({"chrom": "chr1", "pos": [101, 301], "ref": [ref[100], flank[100]],
                       "alt": [mut, "C" if flank[100] != "C" else "A"], "assay": "CTCF", "label": [1, 0],
                       "seq_ref": [ref, flank]})
    ex["seq_alt"] = [alt, flank[:100] + ex["alt"].iloc[1] + flank[101:]]
    ex["example_id"] = ex["chrom"] + ":" + ex["pos"].astype(str) + ":" + ex["ref"] + ":" + ex["alt"]
    fs = pd.DataFrame({"example_id": np.repeat(ex["example_id"], 2), "assay": "CTCF", "model": "transformer",
                       "score": [0.8, 0.6, 0.1, 0.3], "seed": [0, 1, 0, 1]})
    f = tissues.snv_features(ex, assay="CTCF", fold_scores=fs)
    assert f["score_transformer"].tolist() == pytest.approx([0.7, 0.2])   # seeds averaged
    # by hand: the consensus scores the PWM maximum; the alt allele loses column 9's log-odds difference
    lo = motif.log_odds(pseudocount=0.8)
    col = {b: i for i, b in enumerate("ACGT")}
    hand = lo[col[ref[100]], 9] - lo[col[mut], 9]
    assert f["motif_abs_delta"].iloc[0] == pytest.approx(hand, abs=1e-4)
    with pytest.raises(ValueError, match="have no out-of-fold score"):
        tissues.snv_features(ex, assay="CTCF", fold_scores=fs.iloc[:2])


@pytest.fixture(scope="module")
def smoke_calls(tmp_path_factory):
    from allelic import simulate

    sim = simulate.simulate("smoke", tmp_path_factory.mktemp("sim") / "smoke")
    res = stats.test_imbalance(io.simulation_counts(sim), group_cols=("assay",), min_total=6, null="trimmed",
                               random_state=0)
    return sim, res.table


def test_simulated_tissue_effects_end_to_end(smoke_calls):
    """On the simulator (ground truth: each element's motif-score difference between the haplotypes, gated per
    tissue), the true |difference| added to the tissue signals is significant with the cluster-robust test, and
    samples of one tissue in different donors (which share the planted gates) are nearest neighbours."""
    sim, table = smoke_calls
    truth = sim.truth()
    delta = truth.assign(true_abs_delta=truth["element_delta"].abs()).groupby(
        ["chrom", "pos", "ref", "alt"], as_index=False)["true_abs_delta"].max()
    a = to_anndata(table, assay="H3K27ac", signal_assays=["H3K27ac", "H3K4me3"], snv_features=delta)
    assert a.n_vars == 3 and a.var["n_donors"].tolist() == [2, 2, 2]
    p = pairs(a, obs_columns=["true_abs_delta"])
    fit = nested_logit(p, signals=["signal_H3K27ac", "signal_H3K4me3"], score="true_abs_delta", interaction=False,
                       groups="snv")
    assert fit.tests.loc[0, "pvalue_cluster"] < 0.01
    assert fit.odds_ratios.query("term == 'true_abs_delta'")["odds_ratio"].iloc[0] > 1
    near = tissues.neighbour_agreement(tissues.sample_profiles(table, assay="H3K27ac"), n_permutations=200)
    assert near["n_samples"] == 6 and near["fraction"] > near["expected"]


@pytest.mark.realdata
def test_entex_anndata_matches_the_labels(entex_dir):
    labels = io.read_entex_labels(entex_dir)
    res = stats.test_imbalance(labels, group_cols=("donor",), min_total=6, random_state=0)
    t = res.table
    a = to_anndata(t, assay="CTCF", call="as_label", pvalue="p_betabinom", replicates="deepest",
                   source="EN-TEx labels")
    key = t["donor"] + ":" + t["chrom"] + ":" + t["pos"].astype(str)
    assert a.n_obs == key.nunique() and a.n_vars == t["tissue"].nunique() == 30
    n_rep = int(t.duplicated(["donor", "tissue", "chrom", "pos", "ref", "alt"]).sum())
    assert len(a.uns["ledger"]) == n_rep and n_rep > 0
    assert int(np.isfinite(a.layers["ratio"]).sum()) == len(t) - n_rep
    # every kept measurement's counts and call are those of its row in the table
    p = pairs(a)
    m = p.merge(t.assign(snv_id=t["donor"] + ":" + t["chrom"] + ":" + t["pos"].astype(str) + ":" + t["ref"] + ":"
                         + t["alt"]), on=["snv_id", "tissue", "total"], suffixes=("", "_t"))
    assert len(m.drop_duplicates(["snv_id", "tissue"])) == len(p)
    assert (m["as_call"] == m["as_label"]).all()


def test_null_calibration_by_permuting_scores_among_snvs():
    # a real per-SNV effect: permuting the scores among SNVs removes it, and the cluster-robust test then rejects at
    # about alpha while the LRT, blind to the five correlated pairs per SNV, rejects far more often
    d = _clustered(150, 1.0, np.random.default_rng(5))
    cal = tissues.null_calibration(d, signals=["signal_H3K27ac"], score="score", groups="snv", n_permutations=100,
                                   random_state=0).set_index("test")
    assert cal.loc["cluster_wald", "rejection_rate"] <= 0.12
    assert cal.loc["lrt", "rejection_rate"] > cal.loc["cluster_wald", "rejection_rate"] + 0.05
    assert cal.loc["lrt", "n_permutations"] == 100
