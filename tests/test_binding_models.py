"""Binding-first models (allelic.baselines.binding) against planted CTCF sites: they learn binding, score both strands
alike, move the right way when a SNV breaks or makes a site, and serve the baseline harness as AS predictors."""
import numpy as np
import pandas as pd
import pytest

from allelic.baselines import evaluate_models
from allelic.baselines.binding import (BindingEffect, BindingModel, BindingStacked, CNNBinding, GkmBinding,
                                       binding_features)
from allelic.motifs import reverse_complement
from allelic.simulate import planted_windows

WINDOW = 200


def binding_table(motif, n, random_state, val=0.25):
    """Bound windows carry a site sampled from ``motif`` over the centre, background windows (same GC 0.42) none:
    ``planted_windows`` with every AS window causal and no site elsewhere; ``bound`` = its label."""
    df = planted_windows(motif, n, window=WINDOW, p_causal=1.0, p_motif_other=0.0, random_state=random_state)
    split = np.where(np.random.default_rng(random_state).random(n) < val, "val", "train")
    return pd.DataFrame({"sequence": df["sequence"], "bound": df["label"], "split": split})


@pytest.fixture(scope="module")
def table(ctcf):
    return binding_table(ctcf, 1600, random_state=1)


@pytest.fixture(scope="module")
def gkm(table):
    return GkmBinding(Cs=(1.0, 10.0)).fit(table)


@pytest.fixture(scope="module")
def cnn(table):
    return CNNBinding(quick=True, max_epochs=8, device="cpu").fit(table)


@pytest.fixture(scope="module")
def snvs(ctcf):
    """20 background windows (no site) with the CTCF consensus planted at the centre, and three SNVs each:
    ``destroy`` turns the motif's most informative column into its least likely base, ``create`` restores the
    second most informative column of a site planted broken there, ``far`` changes a base 5 bp from the end."""
    bg = planted_windows(ctcf, 80, window=WINDOW, p_motif_other=0.0, random_state=9)
    bg = bg.loc[bg["site_start"] < 0, "sequence"].head(20).tolist()
    probs = ctcf.probabilities()
    ic = 2 + (probs * np.log2(probs)).sum(axis=0)
    first, second = np.argsort(ic)[::-1][:2]
    site = ctcf.consensus()
    s0 = WINDOW // 2 - ctcf.width // 2

    def put(seq, pos, base):
        return seq[:pos] + base + seq[pos + 1:]

    rows = {"destroy": ([], []), "create": ([], []), "far": ([], [])}
    for seq in bg:
        ref = seq[:s0] + site + seq[s0 + ctcf.width:]
        rows["destroy"][0].append(ref)
        rows["destroy"][1].append(put(ref, s0 + first, "ACGT"[int(np.argmin(probs[:, first]))]))
        broken = put(ref, s0 + second, "ACGT"[int(np.argmin(probs[:, second]))])
        rows["create"][0].append(broken)
        rows["create"][1].append(ref)
        rows["far"][0].append(ref)
        rows["far"][1].append(put(ref, 5, {"A": "C", "C": "G", "G": "T", "T": "A"}[ref[5]]))
    return rows


@pytest.fixture(scope="module")
def as_table(ctcf):
    """Planted AS windows (``planted_windows``: AS SNVs break a CTCF site) as an example table."""
    df = planted_windows(ctcf, 400, window=WINDOW, random_state=5)
    split = np.random.default_rng(5).choice(["train", "val", "test"], size=len(df), p=[0.5, 0.2, 0.3])
    return pd.DataFrame({"example_id": df["window_id"], "assay": "CTCF", "label": df["label"],
                         "seq_ref": df["sequence"], "seq_alt": df["alt_sequence"], "split": split})


@pytest.fixture(params=["gkm", "cnn"])
def binder(request):
    return request.getfixturevalue(request.param)


# --------------------------------------------------------------------------- binding models
def test_learns_planted_binding(binder, table):
    assert binder.val_auroc_ > 0.9
    assert binder.n_train_ == (table["split"] == "train").sum()
    assert binder.val_source_ == "val" and binder.fit_seconds_ > 0


def test_snv_effects_follow_the_site(binder, snvs):
    destroy, create, far = (binder.effect(*snvs[k]) for k in ("destroy", "create", "far"))
    assert (destroy < 0).mean() >= 0.9 and np.median(destroy) < 0
    assert (create > 0).mean() >= 0.9 and np.median(create) > 0
    assert np.median(np.abs(far)) < 0.2 * np.median(np.abs(destroy))


def test_both_strands_score_alike(binder, table):
    seqs = table["sequence"].head(50).tolist()
    np.testing.assert_allclose(binder.score([reverse_complement(s) for s in seqs]), binder.score(seqs),
                               rtol=0, atol=1e-6)


def test_effect_is_alt_minus_ref(binder, snvs):
    ref, alt = snvs["destroy"]
    np.testing.assert_allclose(binder.effect(ref, alt), binder.score(alt) - binder.score(ref), atol=1e-9)
    assert binder.score(ref[0]).shape == (1,) and binder.score(ref).dtype == np.float64


def test_same_random_state_same_scores(table):
    small = table.head(500)
    seqs = table["sequence"].tail(40)
    for make in (lambda: GkmBinding(l=8, k=4, Cs=(1.0, 10.0)), lambda: CNNBinding(quick=True, device="cpu")):
        a, b = make().fit(small), make().fit(small)
        np.testing.assert_array_equal(a.score(seqs), b.score(seqs))


def test_save_and_load(binder, table, tmp_path):
    binder.save(tmp_path / "m.joblib")
    back = BindingModel.load(tmp_path / "m.joblib")
    assert type(back) is type(binder) and back.get_params() == binder.get_params()
    seqs = table["sequence"].head(20)
    np.testing.assert_allclose(back.score(seqs), binder.score(seqs), rtol=0, atol=1e-9)


def test_holdout_when_val_lacks_a_class(table):
    t = table.head(400).copy()
    t.loc[(t["split"] == "val") & (t["bound"] == 1), "split"] = "test"    # ignored rows
    m = GkmBinding(l=8, k=4, Cs=(1.0,)).fit(t)
    n_train = (t["split"] == "train").sum()
    assert m.val_source_ == "holdout" and m.n_train_ + m.n_val_ == n_train


def test_bad_tables_raise(table):
    with pytest.raises(ValueError, match="lacks column"):
        GkmBinding().fit(table.drop(columns="bound"))
    with pytest.raises(ValueError, match="single class"):
        GkmBinding().fit(table[table["bound"] == 0])
    with pytest.raises(ValueError, match="fit"):
        CNNBinding().score(["ACGT"])


def test_quick_settings_survive_clone_params():
    m = CNNBinding(quick=True)
    assert (m.n_filters, m.max_epochs) == (32, 4)
    assert CNNBinding(**m.get_params()).get_params() == m.get_params()
    assert CNNBinding(quick=True, max_epochs=8).max_epochs == 8


# --------------------------------------------------------------------------- AS predictors
def test_zero_shot_and_stacked_in_the_harness(gkm, cnn, ctcf, as_table):
    models = [BindingEffect(gkm), BindingEffect(cnn), BindingStacked(gkm, [ctcf], quick=True)]
    met, scores = evaluate_models(models, as_table, return_scores=True)
    auroc = met.set_index("model")["auroc"]
    assert list(auroc.index) == ["gkm_binding_effect", "cnn_binding_effect", "motif_gbt+gkm_binding"]
    assert (auroc > 0.7).all(), auroc
    test = as_table[as_table["split"] == "test"]
    got = scores[scores["model"] == "gkm_binding_effect"]["score"].to_numpy()
    np.testing.assert_allclose(got, np.abs(gkm.effect(test["seq_ref"], test["seq_alt"])))
    assert models[2].n_trees_ <= 60 and models[2].feature_names_[-4:] == [
        "gkm_binding:effect", "gkm_binding:abs_effect", "gkm_binding:score_ref", "gkm_binding:score_alt"]


def test_signed_effect_and_features(gkm, as_table):
    df = as_table.head(30)
    f = binding_features(gkm, df)
    np.testing.assert_allclose(BindingEffect(gkm).signed(df), f["effect"])
    np.testing.assert_allclose(f["score_alt"] - f["score_ref"], f["effect"])
    assert list(f.index) == list(df.index)


def test_clone_shares_the_fitted_binder(gkm, ctcf):
    for m in (BindingEffect(gkm, name="zero_shot"), BindingStacked(gkm, [ctcf], quick=True)):
        c = m.clone()
        assert c.binder is gkm and c.name == m.name and type(c) is type(m)
    stacked = BindingStacked(gkm, [ctcf], quick=True).clone()
    assert stacked.max_iter == 60 and stacked.motifs == [ctcf]


def test_unfitted_binder_is_refused(as_table):
    with pytest.raises(ValueError, match="not fitted"):
        BindingEffect(GkmBinding()).fit(as_table)
    with pytest.raises(TypeError):
        BindingEffect("gkm").fit(as_table)
