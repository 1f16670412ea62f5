"""The book's heavy steps as commands for a workflow engine: ``allelic step NAME`` (rules of ``workflow/Snakefile``).

    allelic step plan --profile smoke                  # the jobs of a profile (samples, assays, folds, ...) as JSON
    allelic step count --profile smoke --sample D1_liver_CTCF
    allelic step test --profile smoke --assay CTCF
    allelic step pretrain --profile smoke --data simulator
    allelic step finetune --profile smoke --data simulator --assay CTCF --fold 0 --seed 0
    allelic step baselines --profile smoke --data simulator --assay CTCF --fold 0 --seed 0

A step reads the parameters its chapter runs with under the profile (:func:`allelic.config.chapter_parameters`),
calls the library function the chapter calls, and writes where that call looks first (:mod:`allelic.cache`, keyed
by inputs and parameters), so the chapter run afterwards (``make book``, or the workflow's chapter rules) reads the
step's result instead of computing it again:

=========  ================================================  ===============================================
step       writes                                            read back by
=========  ================================================  ===============================================
count      ``results/01/counts/<sample>.tsv.gz``             chapter 01 (:func:`allelic.io.sheet_counts`)
test       ``results/02/assays/<assay>.tsv.gz``              the per-assay call tables (BH within the assay)
pretrain   ``<data_dir>/models/pretrained-<key>/``,          chapter 04 (:func:`allelic.language_model.
           ``results/04/pretrained-<data>.json``             pretrained_checkpoint`)
finetune   ``results/05/tasks/<data>/transformer-...``       chapter 05 (:func:`allelic.comparison.
baselines  ``results/05/tasks/<data>/baselines-...``         transformer_vs_baselines`)
=========  ================================================  ===============================================

Paths follow :mod:`allelic.config` (``ALLELIC_RESULTS_DIR``, ``ALLELIC_DATA_DIR``, ...), as the chapters' do; with
``ALLELIC_SAMPLES``, ``ALLELIC_VCF`` and ``ALLELIC_REFERENCE`` set the steps count and test your own data
(:mod:`allelic.samplesheet`), as the chapters do.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

from . import config

STEPS = ("plan", "count", "test", "pretrain", "finetune", "baselines")


def _data(params: dict, only=None):
    """The chapters' data: your own (``ALLELIC_SAMPLES``, ...) or the simulator's."""
    from . import samplesheet

    return samplesheet.book_data(params["simulation"], params["random_state"], only=only)


def plan(profile: str) -> dict:
    """The jobs of ``profile``: ``samples`` (one count job each; ``sample_assay``, ``bams``), ``assays`` (one test
    job each), ``data`` (one pretraining job each: ``simulator`` -- the book's data, the simulator's or your own
    sample sheet's -- and ``entex`` when ``$ALLELIC_ENTEX_DIR`` is set), ``tasks`` (one fine-tuning and one baselines
    job each: ``data, assay, fold, seed``) and ``chapters`` (``NN_name``, in order), without simulating, checking or
    reading anything large (a sample sheet is read, its files are checked by the jobs)."""
    import os

    from . import run, samplesheet, simulate

    p1, p5 = config.chapter_parameters(profile, "01"), config.chapter_parameters(profile, "05")
    if os.environ.get(samplesheet.ENV["samples"]):
        sheet = samplesheet.read_sheet(os.environ[samplesheet.ENV["samples"]])
        names, assays, bams = list(sheet["sample"]), list(dict.fromkeys(sheet["assay"])), list(sheet["bam"])
        sample_assay = dict(zip(sheet["sample"], sheet["assay"]))
    else:
        sp = simulate.get_params(p1["simulation"], random_state=p1["random_state"])
        names, assays, bams = sp.sample_names(), list(sp.assays), []
        sample_assay = {f"{d}_{t}_{a}": a for d in sp.donors for t in sp.tissues for a in sp.assays}
    data = ["simulator"] + (["entex"] if config.entex_dir(p5["entex_dir"]) is not None else [])
    tasks = [{"data": "simulator", "assay": a, "fold": f, "seed": s}
             for s in p5["seeds"] for f in range(p5["n_folds"]) for a in assays]
    if "entex" in data:  # chapter 05 fits EN-TEx CTCF with one seed, random_state
        tasks += [{"data": "entex", "assay": "CTCF", "fold": f, "seed": p5["random_state"]}
                  for f in range(p5["entex_folds"])]
    return {"profile": profile, "samples": names, "sample_assay": sample_assay, "bams": bams, "assays": assays,
            "data": data, "tasks": tasks, "chapters": [nb.stem for nb in run.chapters().values()]}


def count(profile: str, sample: str) -> Path:
    """Count one BAM/CRAM of the book's data (yours or the simulator's) with chapter 01's settings into
    ``results/01/counts/<sample>.tsv.gz``; only that sample's files are checked."""
    from . import io

    p = config.chapter_parameters(profile, "01")
    out = config.results_dir("01") / "counts"
    io.sheet_counts(_data(p, only=[sample]), samples=[sample], cache_dir=out, min_base_quality=p["min_base_quality"],
                    min_mapping_quality=p["min_mapping_quality"])
    return out / f"{sample}.tsv.gz"


def test(profile: str, assay: str) -> Path:
    """Test one assay's SNVs with chapter 02's null, over-dispersion and FDR settings (BH within the assay) into
    ``results/02/assays/<assay>.tsv.gz`` (+ ``<assay>.params.tsv``), from the count step's files."""
    from . import io, stats

    p1, p2 = config.chapter_parameters(profile, "01"), config.chapter_parameters(profile, "02")
    meta = _data(p2, only=[]).samples()
    samples = meta.loc[meta["assay"] == assay, "sample"].tolist()
    if not samples:
        raise ValueError(f"no sample of assay {assay!r} in the book's data (assays: {', '.join(meta['assay'].unique())})")
    counts = io.sheet_counts(_data(p2, only=samples), samples=samples, cache_dir=config.results_dir("01") / "counts",
                                  min_base_quality=p1["min_base_quality"], min_mapping_quality=p1["min_mapping_quality"])
    res = stats.test_imbalance(counts, group_cols=tuple(p2["fit_by"]), min_total=p2["min_total"], null=p2["null"],
                               fdr=p2["fdr"], random_state=p2["random_state"])
    out = config.results_dir("02") / "assays"
    out.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(out / f"{assay}.tsv.gz", sep="\t", index=False)
    res.params.to_csv(out / f"{assay}.params.tsv", sep="\t", index=False)
    return out / f"{assay}.tsv.gz"


def _examples(data: str) -> pd.DataFrame:
    path = config.results_dir("03") / ("examples.tsv.gz" if data == "simulator" else "entex_examples.tsv.gz")
    if not path.is_file():
        raise FileNotFoundError(f"{config.shown(path)} is missing: run chapter 03 first (allelic run --chapters 03)")
    return pd.read_csv(path, sep="\t")


def pretrain(profile: str, data: str = "simulator") -> Path:
    """Pretrain the checkpoint chapter 04 fine-tunes on ``data`` (``simulator`` or ``entex``), into the pretraining
    cache; writes ``results/04/pretrained-<data>.json`` naming it. Runs unchanged under ``torchrun``."""
    from . import distributed
    from . import language_model as lm

    p = config.chapter_parameters(profile, "04")
    size = {k: p[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size", "random_state")}
    examples = _examples(data)
    if data == "simulator":
        corpus, spec = _data(p, only=[]).fasta, lm.chapter_pretrain_spec("simulator", size=size, **p)
    else:
        corpus, tok = config.pretrain_corpus(p["corpus"]), config.tokenizer_dir(p["tokenizer_dir"])
        spec = lm.chapter_pretrain_spec("entex", size=size, **{**p, "corpus": corpus, "tokenizer": tok})
    ckpt = lm.pretrained_checkpoint(examples, spec=spec, corpus=corpus, model_dir=p["model_dir"])
    out = config.chapter_results("04") / f"pretrained-{data}.json"
    if distributed.is_main():
        out.write_text(json.dumps({"data": data, "checkpoint": str(ckpt), "spec": dataclasses.asdict(spec)},
                                  indent=1) + "\n")
    return out


def fold_task(profile: str, kind: str, data: str, assay: str, fold: int, seed: int) -> Path:
    """One assay x fold x seed of chapter 05's comparison: the fine-tuned transformer (``kind="transformer"``, with
    chapter 04's selected head, pooling and learning rate) or every baseline (``"baselines"``), on the chapter's
    chromosome folds; results in ``results/05/tasks/<data>/``. Needs chapters 03 and 04 (examples, checkpoints,
    selection)."""
    from . import comparison
    from .train import TrainConfig

    p = config.chapter_parameters(profile, "05")
    n_folds, epochs = (p["n_folds"], p["epochs"]) if data == "simulator" else (p["entex_folds"], p["entex_epochs"])
    inputs = comparison.chapter_inputs(data, n_folds=n_folds, random_state=p["random_state"])
    if not 0 <= fold < len(inputs.folds):
        raise ValueError(f"fold {fold} outside 0..{len(inputs.folds) - 1}")
    table = inputs.folds[fold].table
    ckpt = inputs.checkpoint(table) if callable(inputs.checkpoint) else inputs.checkpoint
    rows = table[table["assay"] == assay]
    if rows.empty:
        raise ValueError(f"no {assay} rows in fold {fold} of {data}")
    path = comparison.task_path(config.results_dir("05") / "tasks" / data, kind, assay, fold, seed)
    comparison.fold_task(rows, ckpt, kind=kind, candidate=inputs.selection.get(assay, {}),
                         train_config=TrainConfig(batch_size=p["batch_size"], epochs=epochs, device=p["device"]),
                         seed=seed, quick=p["quick"], device=p["device"], cache_path=path)
    return Path(f"{path}.metrics.tsv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="allelic step", description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=STEPS)
    ap.add_argument("--profile", default="smoke", help="parameter profile (notebooks/profiles.yml)")
    ap.add_argument("--sample", help="count: the sample (e.g. D1_liver_CTCF)")
    ap.add_argument("--assay", help="test, finetune, baselines: the assay")
    ap.add_argument("--data", default="simulator", choices=["simulator", "entex"])
    ap.add_argument("--fold", type=int, help="finetune, baselines: the chromosome fold")
    ap.add_argument("--seed", type=int, help="finetune, baselines: the model seed")
    a = ap.parse_args(argv)
    need = {"count": ("sample",), "test": ("assay",), "finetune": ("assay", "fold", "seed"),
            "baselines": ("assay", "fold", "seed")}.get(a.step, ())
    missing = [f"--{n}" for n in need if getattr(a, n) is None]
    if missing:
        ap.error(f"step {a.step} needs {' '.join(missing)}")
    try:
        if a.step == "plan":
            print(json.dumps(plan(a.profile), indent=1))
            return 0
        if a.step == "count":
            out = count(a.profile, a.sample)
        elif a.step == "test":
            out = test(a.profile, a.assay)
        elif a.step == "pretrain":
            out = pretrain(a.profile, a.data)
        else:
            kind = "transformer" if a.step == "finetune" else "baselines"
            out = fold_task(a.profile, kind, a.data, a.assay, a.fold, a.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from . import distributed

    if distributed.is_main():
        print(config.shown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
