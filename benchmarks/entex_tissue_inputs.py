"""Chapter 07's EN-TEx inputs at the default profile, without re-running the simulator parts of chapters 02-05:
the EN-TEx cells of chapters 02, 03, 04 (only the candidate chapter 04 chose on EN-TEx validation chromosomes in the
third session's full search: reference head, centre pooling +-4, 15-bp convolution, lr 5e-4; its validation and test
AUROC come out identical, 0.555 / 0.547) and 05, with the default profile's parameters.

    cp -r results/0[2-5] /tmp/results_entex     # the default results of the simulator chapters
    ALLELIC_RESULTS_DIR=/tmp/results_entex ALLELIC_ENTEX_DIR=../shared/data/entex_ctcf \
    ALLELIC_PRETRAIN_CORPUS=../shared/data/pretrain_corpus ALLELIC_TOKENIZER_DIR=../shared/models/dnabert2-117m-tokenizer \
        .venv/bin/python benchmarks/entex_tissue_inputs.py
    # then chapter 07 with the same ALLELIC_RESULTS_DIR and ALLELIC_ENTEX_DIR (papermill, default parameters)

Measured 2026-12-01 on 2 cores: 899 s (corpus pretraining 242 s, fine-tuning 57 s, chapter 05's six folds 539 s)."""
import dataclasses, json, time
import pandas as pd
from allelic import comparison, config, datasets, io, pretrain, splits, stats
from allelic import language_model as lm
from allelic.train import TrainConfig

t0 = time.time()
P = {c: config.profile_parameters("default", c) for c in ("02", "03", "04", "05")}
entex, corpus, tok = config.entex_dir(), config.pretrain_corpus(), config.tokenizer_dir()
r02, r03, r04, r05 = (config.chapter_results(c) for c in ("02", "03", "04", "05"))
# chapter 02
real = io.read_entex_labels(entex)
res = stats.test_imbalance(real, group_cols=("donor",), min_total=6, null="trimmed", fdr=0.1, random_state=0)
res.table.to_csv(r02 / "entex_imbalance.tsv.gz", sep="\t", index=False)
print("02", round(time.time() - t0), flush=True)
# chapter 03 (defaults: window 200, aggregate any, test 0.2, val 0.1)
ex = datasets.examples_from_entex(entex, window=200, aggregate="any")
ex = splits.split_examples(ex, scheme="chromosome", test_frac=0.2, val_frac=0.1, random_state=0)
ex.table.to_csv(r03 / "entex_examples.tsv.gz", sep="\t", index=False)
print("03", ex.params["split"]["test_chroms"], round(time.time() - t0), flush=True)
# chapter 04: the corpus-pretrained checkpoint and the chosen candidate
p4 = {**{"vocab_size": 512, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 512, "pretrain_lr": 5e-4, "batch_size": 32, "early_stopping_patience": 3}, **P["04"]}
size = {k: p4[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                           "intermediate_size")} | {"random_state": 0}
spec = pretrain.PretrainSpec(**size, tokenizer=str(tok), n_windows=p4["corpus_windows"], epochs=p4["corpus_epochs"],
                             learning_rate=p4["pretrain_lr"])
ckpt = lm.pretrained_checkpoint(ex.table, spec=spec, corpus=corpus)
print("04 checkpoint", ckpt, round(time.time() - t0), flush=True)
cand = lm.candidate_grid(["reference"], ["centre"], [5e-4], [4], [15])
cfg = TrainConfig(batch_size=32, epochs=p4["entex_epochs"], early_stopping_patience=3, device="cpu", random_state=0)
sel = lm.select_and_fit(ex.table, ckpt, cand, train_config=cfg, save_dir=r04 / "models", data_name="entex",
                        out_dir=r04 / "entex_runs")
search = pd.read_csv(r04 / "selection.tsv", sep="\t")
search = pd.concat([search[search["data"] != "entex"], sel.search.assign(data="entex")], ignore_index=True)
search.to_csv(r04 / "selection.tsv", sep="\t", index=False)
cks = json.loads((r04 / "checkpoints.json").read_text())
cks["entex"], cks["entex_fold_spec"] = str(ckpt), None
(r04 / "checkpoints.json").write_text(json.dumps(cks, indent=1))
print("04", sel.search[["val_auroc", "test_auroc"]].to_dict("records") if "test_auroc" in sel.search else sel.search.iloc[0].to_dict(), round(time.time() - t0), flush=True)
# chapter 05 (entex_folds 6, entex_epochs 2, quick, n_jobs 2)
p5 = P["05"]
real_ex = ex.table.drop(columns=["split", "leak_group"])
folds = splits.chromosome_folds(datasets.Examples(real_ex), p5["entex_folds"], random_state=0)
metrics, scores = comparison.transformer_vs_baselines(
    folds, lm.fold_checkpoints(cks["entex"], None), selection=comparison.selected_candidates(search, "entex"),
    train_config=TrainConfig(batch_size=32, epochs=p5["entex_epochs"], device="cpu"), seeds=[0], quick=p5["quick"],
    device="cpu", n_jobs=p5.get("n_jobs", 1))
metrics.to_csv(r05 / "entex_fold_metrics.tsv", sep="\t", index=False)
scores.to_csv(r05 / "entex_fold_scores.tsv.gz", sep="\t", index=False)
print("05", metrics.groupby("model")["auroc"].median().round(3).to_dict(), round(time.time() - t0), flush=True)
