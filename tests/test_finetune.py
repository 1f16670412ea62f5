"""allelic.finetune: reading a user's windows (errors name the file and row), the leak-free internal validation
split, and fine-tuning to a checkpoint that allelic predict reads."""
import os

import numpy as np
import pandas as pd
import pytest

from allelic.finetune import main, read_windows, validation_split
from allelic.simulate import planted_windows

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _write(tmp_path, df, name="w.tsv"):
    p = tmp_path / name
    df.to_csv(p, sep="\t", index=False)
    return p


def test_read_windows_builds_the_alternative_window(tmp_path):
    df = pd.DataFrame({"sequence": ["acgtacgt", "TTTTAAAA"], "label": [1, 0], "alt_allele": ["T", "c"],
                       "snv_offset": [2, 4]})
    got = read_windows(_write(tmp_path, df))
    assert got["sequence"].tolist() == ["ACGTACGT", "TTTTAAAA"]
    assert got["alt_sequence"].tolist() == ["ACTTACGT", "TTTTCAAA"]
    assert got["label"].dtype.kind == "i"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop(columns="label"), "no 'label' column"),
    (lambda d: d.assign(sequence=["ACGTACGT", "ACGTAC"]), "row 2: sequence of 6 bp; the first window has 8 bp"),
    (lambda d: d.assign(sequence=["ACGTACGT", "ACGXACGT"]), r"row 2: sequence holds \['X'\]"),
    (lambda d: d.assign(label=[1, 2]), "row 2: label .2."),
    (lambda d: d.assign(snv_offset=[2, 8]), "row 2: snv_offset 8 is not a position in a 8-bp window"),
    (lambda d: d.assign(alt_allele=["G", "T"]), "row 1: alt_allele 'G' at snv_offset 2 .reference base 'G'"),
    (lambda d: d.iloc[:0], "no windows"),
])
def test_read_windows_errors_name_the_file_and_row(tmp_path, change, message):
    df = pd.DataFrame({"sequence": ["ACGTACGT", "TTTTAAAA"], "label": [1, 0], "alt_allele": ["T", "C"],
                       "snv_offset": [2, 4]})
    path = _write(tmp_path, change(df))
    with pytest.raises(ValueError, match=f"{path.name}.*{message}"):
        read_windows(path)


def test_empty_file_and_missing_file(tmp_path):
    (tmp_path / "e.tsv").write_text("")
    with pytest.raises(ValueError, match="e.tsv: empty file"):
        read_windows(tmp_path / "e.tsv")
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        read_windows(tmp_path / "nope.tsv")


def test_validation_split_keeps_groups_together_and_is_deterministic():
    df = planted_windows("MA0138.3", 400, random_state=0)
    df["chrom"] = [f"chr{i % 8 + 1}" for i in range(len(df))]
    m = validation_split(df, valid_frac=0.2, random_state=3)
    assert set(df.loc[m, "chrom"]).isdisjoint(df.loc[~m, "chrom"])          # whole chromosomes on one side
    assert 0.1 <= m.mean() <= 0.4
    np.testing.assert_array_equal(m, validation_split(df.sample(frac=1, random_state=1).sort_index(), valid_frac=0.2,
                                                      random_state=3))
    dup = pd.concat([df.drop(columns="chrom")] * 2, ignore_index=True)     # duplicated windows: same side
    m2 = validation_split(dup, valid_frac=0.2, random_state=0)
    np.testing.assert_array_equal(m2[:400], m2[400:])


def test_finetune_command_writes_a_checkpoint_predict_reads(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from allelic.models import DNABert2Config, DNABert2ForMaskedLM
    from allelic.predict import main as predict_main
    from allelic.tokenize import train_bpe_tokenizer

    df = planted_windows("MA0138.3", 240, window=100, random_state=2)
    tok = train_bpe_tokenizer(df["sequence"].tolist(), vocab_size=128)
    torch.manual_seed(0)
    base = DNABert2ForMaskedLM(DNABert2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=64,
                                              pad_token_id=tok.pad_token_id))
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    train = _write(tmp_path, df[["window_id", "sequence", "label", "alt_allele", "snv_offset"]], "train.tsv")
    def args(out):
        return ["--base", str(tmp_path / "base"), "--train", str(train), "--out", str(tmp_path / out), "--epochs", "1",
                "--no-progress", "--device", "cpu"]

    assert main(args("ft")) == 0
    card = pd.read_json(tmp_path / "ft" / "model_card.json", typ="series")
    assert card["spec"]["window"] == 100 and card["metrics"]["n_train"] + card["metrics"]["n_val"] == 240
    assert predict_main(["--model", str(tmp_path / "ft"), "--windows", str(train), "--out",
                         str(tmp_path / "scores.tsv"), "--device", "cpu"]) == 0
    scores = pd.read_csv(tmp_path / "scores.tsv", sep="\t")
    assert len(scores) == 240 and scores["score"].between(0, 1).all()
    # the same command again gives the same weights (deterministic for --random-state)
    assert main(args("ft2")) == 0
    assert (tmp_path / "ft" / "model.safetensors").read_bytes() == (tmp_path / "ft2" / "model.safetensors").read_bytes()
    # bad input: the error names the file and row, exit status 1
    bad = _write(tmp_path, df.assign(label=["x"] + [0] * 239)[["sequence", "label"]], "bad.tsv")
    assert main(["--base", str(tmp_path / "base"), "--train", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "bad.tsv: row 1: label 'x'" in capsys.readouterr().err
