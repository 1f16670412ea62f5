"""Per-assay fine-tuning, model selection on validation chromosomes, and the saved fine-tuned models."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from allelic import language_model as lm
from allelic import predict as cli_predict
from allelic import pretrain as pt
from allelic.models import has_classifier, load_model
from allelic.tokenize import load_tokenizer
from allelic.train import TrainConfig, predict


@pytest.fixture(scope="module")
def pair_examples(pair_toy):
    """Two assays of the both-alleles toy, split train / val / test, with example ids."""
    rng = np.random.default_rng(0)
    parts = []
    for assay in ("CTCF", "POL2"):
        t = pair_toy(700, rng)
        t["split"] = np.repeat(["train", "val", "test"], [400, 150, 150])
        parts.append(t.assign(assay=assay))
    t = pd.concat(parts, ignore_index=True)
    return t.assign(example_id=[f"e{i}" for i in range(len(t))])


@pytest.fixture(scope="module")
def checkpoint(pair_examples, tmp_path_factory):
    spec = pt.PretrainSpec(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, n_windows=None, epochs=1)
    return pt.pretrain(lm.training_windows(pair_examples), spec=spec, out_dir=tmp_path_factory.mktemp("lm") / "base").checkpoint


def test_selection_uses_validation_only_and_saves_a_loadable_model(pair_examples, checkpoint, tmp_path):
    cands = lm.candidate_grid(heads=("reference", "siamese"), poolings=("mean",), learning_rates=(2e-3,))
    cfg = TrainConfig(batch_size=32, epochs=3, early_stopping_patience=None, progress=False)
    sel = lm.select_and_fit(pair_examples, checkpoint, cands, train_config=cfg, select_on=["CTCF"],
                            save_dir=tmp_path / "models", data_name="toy")
    s = sel.search
    # searched on CTCF (two candidates); POL2 fitted once with CTCF's winner
    assert s["assay"].tolist() == ["CTCF", "CTCF", "POL2"] and s["searched"].tolist() == [True, True, False]
    ctcf = s[s["assay"] == "CTCF"]
    chosen = ctcf[ctcf["selected"]].iloc[0]
    assert ctcf["selected"].sum() == 1 and chosen["val_auroc"] == ctcf["val_auroc"].max()  # best on validation
    assert chosen["head"] == "siamese" and chosen["auroc"] > 0.8  # only the pair can see the label here
    pol2 = s[s["assay"] == "POL2"].iloc[0]
    assert pol2["selected"] and pol2["candidate"] == chosen["candidate"] and pol2["head"] == "siamese"
    assert [f.assay for f in sel.fits] == ["CTCF", "POL2"] and (tmp_path / "models" / "toy_POL2").is_dir()
    fit = sel.fits[0]
    assert fit.model_dir == tmp_path / "models" / "toy_CTCF" and has_classifier(fit.model_dir)
    card = json.loads((fit.model_dir / "model_card.json").read_text())
    assert card["head"] == "siamese" and card["spec"]["window"] == 200 and card["data"] == "toy"
    assert card["metrics"]["auroc"] == pytest.approx(chosen["auroc"])
    # the saved model reproduces the selection's held-out scores, in the library and through `allelic predict`
    test = pair_examples[(pair_examples["split"] == "test") & (pair_examples["assay"] == "CTCF")]
    model, tok = load_model(fit.model_dir), load_tokenizer(fit.model_dir)
    assert np.allclose(predict(model, tok, test["seq_ref"], test["seq_alt"]), fit.scores["score"], atol=1e-5)
    tsv = tmp_path / "w.tsv"
    test.rename(columns={"seq_ref": "sequence", "seq_alt": "alt_sequence"}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(fit.model_dir), "--windows", str(tsv), "--out", str(tmp_path / "s.tsv")]) == 0
    assert np.allclose(pd.read_csv(tmp_path / "s.tsv", sep="\t")["score"], fit.scores["score"], atol=1e-5)


def test_fit_assays_does_not_depend_on_what_ran_before(pair_examples, checkpoint):
    """The classifier head is initialised from the fit's random_state, not from whatever state the global random
    generators were left in (e.g. by pretraining in the same process)."""
    import torch

    cfg = TrainConfig(learning_rate=2e-3, batch_size=32, epochs=1, progress=False)
    runs = []
    for burn in (0, 1000):
        torch.manual_seed(123)
        torch.rand(burn)
        runs.append(lm.fit_assays(pair_examples, checkpoint, train_config=cfg, assays=["CTCF"])[0])
    assert runs[0].metrics["val_auroc"] == runs[1].metrics["val_auroc"]
    pd.testing.assert_frame_equal(runs[0].scores, runs[1].scores)


def test_fit_assays_needs_both_classes(pair_examples, checkpoint):
    bad = pair_examples.assign(label=np.where(pair_examples["split"] == "test", 0, pair_examples["label"]))
    with pytest.raises(ValueError, match="assay CTCF: train and test splits need both classes"):
        lm.fit_assays(bad, checkpoint, assays=["CTCF"], train_config=TrainConfig(epochs=1, progress=False))


def test_pretraining_never_sees_held_out_windows(pair_examples, tmp_path, monkeypatch):
    """Without a corpus, pretraining uses the training windows only, and a training window sharing a 32-mer with a
    validation or test window (here: a copy of a test window planted in the training split) is dropped."""
    monkeypatch.setenv("ALLELIC_DATA_DIR", str(tmp_path))
    spec = pt.PretrainSpec(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, n_windows=None, epochs=1, batch_size=64)
    ex = pair_examples[pair_examples["assay"] == "CTCF"].reset_index(drop=True)
    clean = json.loads((lm.pretrained_checkpoint(ex, spec=spec) / "model_card.json").read_text())
    assert clean["excluded"] == 0 and clean["n_windows_train"] + clean["n_windows_holdout"] == 400
    leaky = ex.copy()
    test_row = leaky.index[leaky["split"] == "test"][0]
    leaky.loc[leaky.index[leaky["split"] == "train"][0], "seq_ref"] = leaky.at[test_row, "seq_ref"]
    card = json.loads((lm.pretrained_checkpoint(leaky, spec=spec) / "model_card.json").read_text())
    assert card["excluded"] == 1 and card["n_windows_train"] + card["n_windows_holdout"] == 399
    # per-fold pretraining: each fold gets its own checkpoint, from its own training windows
    other = ex.assign(split=np.where(ex["split"] == "test", "train", np.where(ex["split"] == "train", "test", "val")))
    per_fold = lm.fold_checkpoints("unused", fold_spec=dataclasses.asdict(spec))
    a, b = per_fold(ex), per_fold(other)
    assert a != b and json.loads((b / "model_card.json").read_text())["excluded"] == 0
    assert lm.fold_checkpoints(a)(other) == a  # a checkpoint that saw no labelled window serves every fold


def test_head_gain_compares_the_best_on_validation_of_each_side():
    search = pd.DataFrame({"assay": "CTCF", "searched": True,
                           "head": ["reference", "reference", "siamese", "siamese"],
                           "pooling": ["cls", "mean", "cls", "mean"],
                           "val_auroc": [0.60, 0.55, 0.70, 0.72], "auroc": [0.58, 0.61, 0.66, 0.64]})
    s = lm.head_gain(search, "CTCF")
    # siamese best on validation: mean (0.72) -> 0.64; reference best: cls (0.60) -> 0.58
    assert "siamese vs reference head: held-out AUROC 0.640 vs 0.580 (+0.060)" in s
    # mean best: siamese mean (0.72) -> 0.64; cls best: siamese cls (0.70) -> 0.66
    assert "mean vs cls pooling: held-out AUROC 0.640 vs 0.660 (-0.020)" in s and "centre" not in s
    assert "convolution" not in s
    conv = pd.concat([search.assign(nucleotide_conv=0),
                      pd.DataFrame({"assay": ["CTCF"], "searched": [True], "head": ["reference"], "pooling": ["cls"],
                                    "nucleotide_conv": [15], "val_auroc": [0.71], "auroc": [0.75]})])
    # with: its only candidate (0.75); without: the best on validation, siamese mean (0.72) -> 0.64
    assert "with vs without convolution: held-out AUROC 0.750 vs 0.640 (+0.110)" in lm.head_gain(conv, "CTCF")


def test_candidate_grid_gives_centre_pooling_its_flanks():
    grid = lm.candidate_grid(("siamese",), ("cls", "centre"), (5e-4, 1e-3), centre_flanks=(4, 12))
    assert len(grid) == 2 + 4  # cls x 2 learning rates; centre x 2 flanks x 2 learning rates
    assert {g.get("centre_flank") for g in grid} == {None, 4, 12}
    assert all(("centre_flank" in g) == (g["pooling"] == "centre") for g in grid)
    assert {g["nucleotide_conv"] for g in grid} == {0}
    conv = lm.candidate_grid(("reference",), ("centre",), (5e-4,), nucleotide_convs=(0, 15))
    assert [g["nucleotide_conv"] for g in conv] == [0, 15]
    assert lm.describe_candidate({**conv[1], "centre_flank": 4}) == (
        "reference head, centre pooling (±4 bp), 15-bp nucleotide convolution, learning rate 0.0005")


def test_selected_candidates_carry_the_whole_choice():
    """Chapter 05 fine-tunes what chapter 04 chose: head, pooling, flank, convolution width and learning rate of the
    rows marked selected, per data set; a table from before the convolution existed means none."""
    from allelic.comparison import selected_candidates

    search = pd.DataFrame({"data": ["simulator", "simulator", "entex"], "assay": ["CTCF", "CTCF", "CTCF"],
                           "head": ["reference", "siamese", "reference"], "pooling": ["centre", "cls", "mean"],
                           "centre_flank": [4.0, np.nan, np.nan], "nucleotide_conv": [15, 0, 0],
                           "learning_rate": [5e-4, 1e-3, 1e-4], "selected": [True, False, True]})
    assert selected_candidates(search, "simulator") == {"CTCF": {"head": "reference", "pooling": "centre",
                                                                 "learning_rate": 5e-4, "nucleotide_conv": 15,
                                                                 "centre_flank": 4}}
    old = selected_candidates(search.drop(columns="nucleotide_conv"), "entex")
    assert old["CTCF"]["nucleotide_conv"] == 0 and "centre_flank" not in old["CTCF"]
    with pytest.raises(ValueError, match="no selected candidate"):
        selected_candidates(search.assign(selected=False), "entex")


def test_against_published_scores_both_models_on_the_test_rows(pair_examples, checkpoint):
    """Chapter 04's real-data check: the selected transformer and the JASPAR-scan GBT scored on the same test rows,
    AUROC as sklearn computes it from the returned scores, then the published range for the assay."""
    from sklearn.metrics import roc_auc_score

    from allelic.comparison import PublishedCheck, against_published

    ctcf = pair_examples[pair_examples["assay"] == "CTCF"]
    ctcf = ctcf.assign(seq_alt=[w[:100] + ("C" if w[100] == "A" else "A") + w[101:] for w in ctcf["seq_ref"]])  # SNVs
    anchors = pd.DataFrame({"data": ["EN-TEx CTCF", "EN-TEx CTCF"], "assay": ["CTCF", "POL2"],
                            "setting": ["balanced", "balanced"], "model": ["DNABERT-2", "other"],
                            "metric": ["auroc", "auroc"], "low": [0.6, 0.1], "high": [0.8, 0.2], "source": ["x", "y"]})
    cfg = TrainConfig(batch_size=32, epochs=1, early_stopping_patience=None, progress=False)
    cands = lm.candidate_grid(heads=("siamese",), poolings=("mean",), learning_rates=(2e-3,))
    res = against_published(ctcf, checkpoint, cands, train_config=cfg, anchors=anchors, n_boot=20)
    test_ids = set(ctcf.loc[ctcf["split"] == "test", "example_id"])
    t = res.table.set_index("model")
    assert list(res.table["model"]) == [*PublishedCheck.MODELS, "DNABERT-2 — balanced"]
    for name in PublishedCheck.MODELS:
        s = res.scores[res.scores["model"] == name]
        assert len(s) == len(test_ids) == 150 and set(s["example_id"]) == test_ids
        assert t.loc[name, "auroc"] == pytest.approx(roc_auc_score(s["label"], s["score"]), abs=1e-12)
        assert t.loc[name, "auroc_low"] <= t.loc[name, "auroc"] <= t.loc[name, "auroc_high"]
    assert t.loc["DNABERT-2 — balanced", ["auroc", "auroc_low", "auroc_high"]].tolist() == pytest.approx([0.7, 0.6, 0.8])
    assert res.selection.search["selected"].sum() == 1
    with pytest.raises(ValueError, match=r"compares one assay \(CTCF\); the examples hold \['CTCF', 'POL2'\]"):
        against_published(pair_examples, checkpoint, cands, train_config=cfg, anchors=anchors)


def test_chapter_inputs_read_chapters_03_and_04(tmp_path, monkeypatch):
    """Chapter 05 and the workflow's fold steps build their folds in one place: the example table of chapter 03
    re-split into chromosome folds (the stored split ignored), chapter 04's checkpoint (a path, or one per fold when
    chapter 04 pretrained per fold) and its selection; a missing input names the chapter to run."""
    from allelic.comparison import chapter_inputs
    from allelic.datasets import Examples
    from allelic.splits import chromosome_folds

    monkeypatch.setenv("ALLELIC_RESULTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"examples\.tsv\.gz is missing: run chapter 03 first"):
        chapter_inputs("simulator", n_folds=2)
    rng = np.random.default_rng(3)
    n = 60
    t = pd.DataFrame({"example_id": [f"chr{1 + i % 4}:{1000 * i}:A:C" for i in range(n)],
                      "chrom": [f"chr{1 + i % 4}" for i in range(n)], "pos": [1000 * i for i in range(n)],
                      "ref": "A", "alt": "C", "assay": "CTCF", "label": rng.integers(0, 2, n), "n_measurements": 1,
                      "n_as": 0, "seq_ref": "A" * 11, "seq_alt": "A" * 5 + "C" + "A" * 5,
                      "split": "train", "leak_group": np.arange(n)})
    (tmp_path / "03").mkdir()
    t.to_csv(tmp_path / "03" / "examples.tsv.gz", sep="\t", index=False)
    t.to_csv(tmp_path / "03" / "entex_examples.tsv.gz", sep="\t", index=False)
    with pytest.raises(FileNotFoundError, match=r"checkpoints\.json is missing: run chapter 04 first"):
        chapter_inputs("simulator", n_folds=2)
    (tmp_path / "04").mkdir()
    (tmp_path / "04" / "checkpoints.json").write_text(json.dumps({"simulator": "/ckpt/sim", "entex": "/ckpt/entex"}))
    pd.DataFrame({"data": ["simulator", "entex"], "assay": "CTCF", "head": "reference", "pooling": "cls",
                  "centre_flank": np.nan, "nucleotide_conv": [15, 0], "learning_rate": [5e-4, 1e-4],
                  "selected": True}).to_csv(tmp_path / "04" / "selection.tsv", sep="\t", index=False)
    sim = chapter_inputs("simulator", n_folds=2, random_state=4)
    want = chromosome_folds(Examples(t.drop(columns=["split", "leak_group"])), 2, random_state=4)
    assert len(sim.folds) == 2
    for got, exp in zip(sim.folds, want):
        pd.testing.assert_frame_equal(got.table, exp.table)
    assert sorted(set(sim.folds[0].table.query("split == 'test'")["chrom"])
                  | set(sim.folds[1].table.query("split == 'test'")["chrom"])) == ["chr1", "chr2", "chr3", "chr4"]
    assert sim.checkpoint == "/ckpt/sim" and sim.selection["CTCF"]["nucleotide_conv"] == 15
    real = chapter_inputs("entex", n_folds=2)
    assert str(real.checkpoint(real.folds[0].table)) == "/ckpt/entex"    # no fold_spec: one checkpoint for every fold
    assert real.selection["CTCF"]["learning_rate"] == 1e-4
    with pytest.raises(ValueError, match="data must be 'simulator' or 'entex'"):
        chapter_inputs("hek293", n_folds=2)


def test_comparison_results_do_not_depend_on_n_jobs(checkpoint):
    """Chapter 05's comparison in two processes (joblib, one assay per task) gives exactly what one process gives:
    every fit is seeded on its own; rows come back in fold, seed, assay order."""
    from allelic.comparison import transformer_vs_baselines

    rng = np.random.default_rng(5)
    site = "CCGCGTGGTGGCAGGGGGC"
    n = 400
    ref = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(n)]
    y = rng.integers(0, 2, n)
    ref = [s[:95] + site + s[114:] if lab else s for s, lab in zip(ref, y)]
    alt = [s[:100] + {"A": "T", "C": "A", "G": "T", "T": "A"}[s[100]] + s[101:] for s in ref]
    one = pd.DataFrame({"example_id": [f"s{i}" for i in range(n)], "assay": "CTCF", "label": y, "seq_ref": ref,
                        "seq_alt": alt, "split": np.repeat(["train", "val", "test"], [240, 80, 80])})
    fold = pd.concat([one, one.assign(assay="POL2", example_id=one["example_id"] + "p")], ignore_index=True)
    swapped = fold.assign(split=fold["split"].replace({"val": "test", "test": "val"}))
    cfg = TrainConfig(learning_rate=2e-3, batch_size=32, epochs=1, progress=False)
    sel = {"CTCF": {"head": "siamese", "pooling": "centre", "centre_flank": 4, "nucleotide_conv": 5,
                    "learning_rate": 2e-3}}
    runs = [transformer_vs_baselines([fold, swapped], checkpoint, selection=sel, train_config=cfg, quick=True,
                                     device="cpu", n_jobs=n_jobs) for n_jobs in (1, 2)]
    (m1, s1), (m2, s2) = runs
    assert len(m1) == 2 * 2 * 7
    assert m1[["fold", "assay"]].drop_duplicates().values.tolist() == [[0, "CTCF"], [0, "POL2"], [1, "CTCF"], [1, "POL2"]]
    cols = ["fold", "seed", "assay", "model", "auroc", "auprc", "n_train", "n_test"]
    pd.testing.assert_frame_equal(m1[cols], m2[cols])
    pd.testing.assert_frame_equal(s1, s2)


def test_comparison_reads_fold_results_back_and_refits_what_changed(checkpoint, tmp_path, monkeypatch):
    """With ``cache_dir`` each assay x fold x seed task is kept (where the workflow's finetune and baselines rules put
    it) and read back instead of refitted; a changed fine-tuning setting refits the transformer only."""
    from allelic import comparison

    rng = np.random.default_rng(6)
    n = 240
    ref = ["".join(rng.choice(list("ACGT"), 200)) for _ in range(n)]
    alt = [s[:100] + {"A": "T", "C": "A", "G": "T", "T": "A"}[s[100]] + s[101:] for s in ref]
    fold = pd.DataFrame({"example_id": [f"s{i}" for i in range(n)], "assay": "CTCF", "label": rng.integers(0, 2, n),
                         "seq_ref": ref, "seq_alt": alt, "split": np.repeat(["train", "val", "test"], [150, 40, 50])})
    cfg = TrainConfig(learning_rate=2e-3, batch_size=32, epochs=1, progress=False)
    kw = dict(train_config=cfg, quick=True, device="cpu", cache_dir=tmp_path)
    m1, s1 = comparison.transformer_vs_baselines([fold], checkpoint, **kw)
    assert sorted(p.name for p in tmp_path.glob("*.metrics.tsv")) == ["baselines-CTCF-fold0-seed0.metrics.tsv",
                                                                     "transformer-CTCF-fold0-seed0.metrics.tsv"]
    fitted = []
    real = comparison.evaluate_models
    monkeypatch.setattr(comparison, "evaluate_models", lambda models, *a, **k: fitted.append(
        [m.name for m in models]) or real(models, *a, **k))
    m2, s2 = comparison.transformer_vs_baselines([fold], checkpoint, **kw)
    assert fitted == []  # everything read back, fit times included
    pd.testing.assert_frame_equal(m2, m1)
    pd.testing.assert_frame_equal(s2, s1)
    kw["train_config"] = dataclasses.replace(cfg, epochs=2)
    m3, _ = comparison.transformer_vs_baselines([fold], checkpoint, **kw)
    assert fitted == [["transformer"]]  # the baselines do not depend on the fine-tuning settings
    base = m1["model"] != "transformer"
    pd.testing.assert_frame_equal(m3[base.to_numpy()], m1[base])


def test_figure_9a_spec_describes_the_window_the_model_reads(pair_examples, checkpoint):
    model = load_model(checkpoint, task="classification", num_labels=2, classifier_pooling="centre",
                       classifier_centre_flank=4)
    tok = load_tokenizer(checkpoint)
    row = pair_examples.iloc[0]
    spec = lm.figure_9a_spec(model, tok, row["seq_ref"], row["seq_alt"], score=0.25)
    tokens = spec["tokens"]
    # the BPE pieces spell the window end to end, each at the offsets it claims
    assert "".join(t["piece"] for t in tokens) == row["seq_ref"]
    assert tokens[0]["start"] == 0 and tokens[-1]["end"] == 200
    assert all(a["end"] == b["start"] for a, b in zip(tokens, tokens[1:]))
    assert all(row["seq_ref"][t["start"]:t["end"]] == t["piece"] for t in tokens)
    # pooled: exactly the tokens overlapping the SNV +- 4 bp
    assert [t["pooled"] for t in tokens] == [t["start"] <= 104 and t["end"] > 96 for t in tokens]
    assert spec["snv"] == 100 and spec["alt"] == row["seq_alt"][100] != row["seq_ref"][100]
    assert (spec["layers"], spec["heads"], spec["hidden_size"], spec["vocab_size"]) == (2, 4, 32, 128)
    assert spec["parameters"] == sum(p.numel() for p in model.parameters()) and spec["score"] == 0.25
    other = row["seq_alt"][:10] + ("A" if row["seq_alt"][10] != "A" else "C") + row["seq_alt"][11:]
    with pytest.raises(ValueError, match="differ at the centre base 100 only"):
        lm.figure_9a_spec(model, tok, row["seq_ref"], other)
