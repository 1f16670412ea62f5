"""Data-parallel training: two gloo processes under torchrun follow the one-process trajectory of the same global
batch, a 2-process checkpoint resumes in one process, and the pretraining command line runs unchanged under torchrun."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from allelic import distributed
from allelic.tokenize import train_bpe_tokenizer

WORKER = Path(__file__).parent / "scripts" / "ddp_worker.py"


def _launch(args, nproc, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1
           else [sys.executable])
    r = subprocess.run(cmd + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _run(task, nproc, out, tok_dir, tmp_path, *extra):
    _launch([WORKER, "--task", task, "--tokenizer", tok_dir, "--out", out, *extra], nproc, tmp_path)
    hist = pd.DataFrame(json.loads((out / "history.json").read_text()))
    return hist, torch.load(out / "weights.pt"), json.loads((out / "world.json").read_text())["world_size"]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    rng = np.random.default_rng(0)
    train_bpe_tokenizer(["".join(s) for s in rng.choice(list("ACGT"), size=(200, 120))], vocab_size=128, out_dir=d)
    return d


def test_share_splits_every_micro_batch_once():
    for n in (0, 1, 7, 16, 97):
        for world in (1, 2, 3, 5):
            parts = [distributed.share(n, r, world) for r in range(world)]
            rows = np.concatenate([np.arange(n)[p] for p in parts])
            assert rows.tolist() == list(range(n))  # contiguous, in order, each row once
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1
    assert distributed.share(1, 1, 2) == slice(1, 1)  # the second process of two gets nothing from one row
    with pytest.raises(ValueError, match="rank 2 outside"):
        distributed.share(4, 2, 2)


@pytest.mark.parametrize("task", ["finetune", "mlm"])
def test_two_processes_follow_the_one_process_trajectory_and_resume_in_one(task, tok_dir, tmp_path):
    one, w1, n1 = _run(task, 1, tmp_path / "one", tok_dir, tmp_path)
    two, w2, n2 = _run(task, 2, tmp_path / "two", tok_dir, tmp_path)
    assert (n1, n2) == (1, 2)
    # 97 windows, micro-batches of 16 (7 per epoch, the last one row), 2 per step: 4 steps an epoch, 2 epochs
    assert one["step"].tolist() == two["step"].tolist() == list(range(1, 9))
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)  # measured: 1.2e-7
    if task == "finetune":  # the validation every 2 steps, computed in each process
        # AUROC/AUPRC are step functions of the scores' order: a 1e-7 change of the weights (the two processes'
        # gradients summed in another order) can swap two near-tied windows (measured once: AUPRC 0.6311 vs 0.6295)
        for m in ("val_auroc", "val_auprc"):
            np.testing.assert_allclose(two[m].dropna(), one[m].dropna(), atol=0.01, err_msg=m)
    for name, a in w1.items():
        np.testing.assert_allclose(w2[name].numpy(), a.numpy(), atol=1e-5, err_msg=name)  # measured: 3e-7
    assert not all(torch.equal(a, b) for a, b in zip(w1.values(), w2.values()))  # two real runs, not one file
    rows = [json.loads((tmp_path / d / f"rows-{r}.json").read_text()) for d, r in (("one", 0), ("two", 0), ("two", 1))]
    assert rows[0] == [16] * 6 + [1] + [16] * 6 + [1]  # one process: every window of both epochs
    assert rows[1] == [8] * 6 + [1] + [8] * 6 + [1]  # two: each takes half of each micro-batch ...
    assert rows[2] == [8] * 6 + [1] + [8] * 6 + [1]  # ... and rank 1, with no row of the last, runs one at weight 0

    # killed after step 3 in two processes, resumed in one: the uninterrupted one-process run
    _launch([WORKER, "--task", task, "--tokenizer", tok_dir, "--out", tmp_path / "res", "--stop-after", 3], 2, tmp_path)
    res, w3, n3 = _run(task, 1, tmp_path / "res", tok_dir, tmp_path, "--resume")
    assert n3 == 1 and res["step"].tolist() == list(range(1, 9))
    np.testing.assert_allclose(res["loss"], one["loss"], rtol=1e-5)
    for name, a in w1.items():
        np.testing.assert_allclose(w3[name].numpy(), a.numpy(), atol=1e-5, err_msg=name)  # measured: 3e-7


def test_pretrain_and_finetune_commands_run_unchanged_under_torchrun(tmp_path):
    rng = np.random.default_rng(4)
    fasta = tmp_path / "corpus.fa"
    fasta.write_text("".join(f">s{i}\n{''.join(rng.choice(list('ACGT'), 12_000))}\n" for i in range(3)))
    args = ["-m", "allelic.cli", "pretrain", "--corpus", fasta, "--n-windows", 300, "--epochs", 1, "--batch-size", 32]
    _launch(args + ["--out", tmp_path / "one"], 1, tmp_path)
    two = _launch(args + ["--out", tmp_path / "two"], 2, tmp_path)
    assert two.stdout.count(str(tmp_path / "two")) == 1  # rank 0 alone reports (and writes)
    c1, c2 = (json.loads((tmp_path / d / "model_card.json").read_text()) for d in ("one", "two"))
    assert c1["n_windows_train"] == c2["n_windows_train"] > 150  # 36 kb in 200-bp windows
    # batch_size is global: the same optimiser steps and tokens in one or two processes
    assert c1["steps"] == c2["steps"] == -(-c1["n_windows_train"] // 32)
    assert c1["tokens_seen"] == c2["tokens_seen"]
    assert not list(tmp_path.glob("*.partial"))

    windows = pd.DataFrame({"sequence": ["".join(rng.choice(list("ACGT"), 120)) for _ in range(80)],
                            "label": np.arange(80) % 2})
    windows.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    ft = _launch(["-m", "allelic.cli", "finetune", "--base", tmp_path / "two", "--train", tmp_path / "train.tsv",
                  "--out", tmp_path / "ft", "--epochs", 1, "--nucleotide-conv", 0, "--no-progress"], 2, tmp_path)
    assert ft.stdout.strip() == str(tmp_path / "ft")
    card = json.loads((tmp_path / "ft" / "model_card.json").read_text())
    assert card["metrics"]["n_train"] + card["metrics"]["n_val"] == 80
