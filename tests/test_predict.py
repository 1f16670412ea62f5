"""The command-line scorer and the offline model's checkpoint round trip."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from allelic import language_model as lm
from allelic import predict as cli_predict
from allelic import pretrain as pt
from allelic.models import load_model
from allelic.motifs import reverse_complement
from allelic.tokenize import load_tokenizer
from allelic.train import predict


TINY = pt.PretrainSpec(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       n_windows=200, window=200)


def _mlm(fasta, out_dir, n_windows=200):
    """A tiny model pretrained on the small simulation's genome."""
    return pt.pretrain(fasta, spec=dataclasses.replace(TINY, n_windows=n_windows), out_dir=out_dir).checkpoint


@pytest.fixture(scope="module")
def model_dir(small_sim, tmp_path_factory):
    """A tiny pretrained model saved with a classification head."""
    ckpt = _mlm(small_sim.fasta, tmp_path_factory.mktemp("m") / "mlm")
    card = lm.describe_checkpoint(ckpt)
    assert "pretrained here" in card["model"] and card["spec"]["n_windows"] == 200
    clf = load_model(ckpt, task="classification", num_labels=2)
    out = tmp_path_factory.mktemp("m") / "clf"
    clf.save_pretrained(out)
    load_tokenizer(ckpt).save_pretrained(out)
    (out / lm.MODEL_CARD).write_text((ckpt / lm.MODEL_CARD).read_text())
    return out


def test_describe_checkpoint_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        lm.describe_checkpoint(tmp_path)


def test_predict_windows_tsv_matches_library(model_dir, small_sim, tmp_path):
    seqs = pt.corpus_windows(small_sim.fasta, n_windows=20, holdout_frac=0, random_state=1).train
    tsv = tmp_path / "w.tsv"
    pd.DataFrame({"id": range(20), "sequence": seqs}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(model_dir), "--windows", str(tsv), "--out", str(tmp_path / "s.tsv")]) == 0
    got = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert list(got.columns) == ["id", "sequence", "score"]
    expected = predict(load_model(model_dir), load_tokenizer(model_dir), seqs)
    assert np.allclose(got["score"], expected, atol=1e-6)


@pytest.mark.parametrize("seq, message", [("ACGT" * 60, "row 2: sequence of 240 bp; the model expects windows of at "
                                                         "most 200 bp"),
                                          ("ACGU" * 50, "row 2: characters \\['U'\\] are not A, C, G, T or N")])
def test_predict_rejects_bad_windows(model_dir, tmp_path, capsys, seq, message):
    tsv = tmp_path / "w.tsv"
    pd.DataFrame({"sequence": ["A" * 200, seq]}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(model_dir), "--windows", str(tsv)]) == 1
    err = capsys.readouterr().err
    assert "w.tsv" in err and __import__("re").search(message, err)


def test_predict_from_vcf_and_fasta(model_dir, small_sim, tmp_path):
    out = tmp_path / "s.tsv"
    assert cli_predict.main(["--model", str(model_dir), "--vcf", str(small_sim.vcf), "--fasta", str(small_sim.fasta),
                             "--sample", "D1", "--out", str(out)]) == 0
    got = pd.read_csv(out, sep="\t")
    assert {"chrom", "pos", "ref", "alt", "score_ref", "score_alt", "delta"} <= set(got.columns)
    # the same SNVs' windows cut here straight from the FASTA and scored by the library
    import pysam

    some = got.head(12)
    with pysam.FastaFile(str(small_sim.fasta)) as fa:
        ref_w = [fa.fetch(c, p - 101, p + 99).upper() for c, p in zip(some["chrom"], some["pos"])]
    alt_w = [w[:100] + a + w[101:] for w, a in zip(ref_w, some["alt"])]
    assert all(w[100] == r for w, r in zip(ref_w, some["ref"]))
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    np.testing.assert_allclose(some["score_ref"], predict(model, tok, ref_w), atol=1e-6)
    np.testing.assert_allclose(some["score_alt"], predict(model, tok, alt_w), atol=1e-6)
    np.testing.assert_allclose(got["delta"], got["score_alt"] - got["score_ref"], atol=1e-6)
    w = cli_predict.windows_from_vcf(small_sim.vcf, small_sim.fasta, sample="D1")
    assert (w["seq_ref"].str[100] == w["ref"]).all() and (w["seq_alt"].str[100] == w["alt"]).all()
    assert (w["seq_ref"].str[:100] == w["seq_alt"].str[:100]).all()


def test_predict_vcf_wrong_build_named(model_dir, small_sim, tmp_path, capsys):
    fa = tmp_path / "other.fa"  # same contigs, different sequence: REF alleles do not match
    rng = np.random.default_rng(0)
    fa.write_text("".join(f">{c}\n{''.join(rng.choice(list('ACGT'), 120_000))}\n" for c in ("chr1", "chr2")))
    import pysam

    pysam.faidx(str(fa))
    assert cli_predict.main(["--model", str(model_dir), "--vcf", str(small_sim.vcf), "--fasta", str(fa), "--sample", "D1"]) == 1
    assert "wrong genome build" in capsys.readouterr().err


def test_training_windows_only_from_the_training_split():
    t = pd.DataFrame({"seq_ref": ["AAA", "CCC", "GGG"], "split": ["train", "test", "train"]})
    assert lm.training_windows(t) == ["AAA", "GGG"]
    with pytest.raises(ValueError, match="not split"):
        lm.training_windows(t.drop(columns="split"))


def test_predict_refuses_a_pretrained_only_checkpoint(small_sim, tmp_path, capsys):
    """A checkpoint without trained classifier weights (here the MLM-pretrained offline model) would be scored by a
    random head: the command refuses it, naming the directory."""
    ckpt = _mlm(small_sim.fasta, tmp_path / "mlm", n_windows=50)
    tsv = tmp_path / "w.tsv"
    pd.DataFrame({"sequence": ["A" * 200]}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(ckpt), "--windows", str(tsv)]) == 1
    err = capsys.readouterr().err
    assert "no trained classifier weights" in err and str(ckpt) in err


def test_predict_siamese_model_scores_pairs(small_sim, tmp_path, capsys):
    ckpt = _mlm(small_sim.fasta, tmp_path / "mlm", n_windows=50)
    d = tmp_path / "siamese"
    load_model(ckpt, classifier_head="siamese").save_pretrained(d)
    load_tokenizer(ckpt).save_pretrained(d)
    w = cli_predict.windows_from_vcf(small_sim.vcf, small_sim.fasta, sample="D1").head(15)
    tsv = tmp_path / "pairs.tsv"
    w.rename(columns={"seq_ref": "sequence", "seq_alt": "alt_sequence"}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(d), "--windows", str(tsv), "--out", str(tmp_path / "s.tsv")]) == 0
    got = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    want = predict(load_model(d), load_tokenizer(d), w["seq_ref"], w["seq_alt"])
    assert np.allclose(got["score"], want, atol=1e-6)
    pd.DataFrame({"sequence": w["seq_ref"]}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(d), "--windows", str(tsv)]) == 1
    assert "'alt_sequence'" in capsys.readouterr().err
    out = tmp_path / "v.tsv"
    assert cli_predict.main(["--model", str(d), "--vcf", str(small_sim.vcf), "--fasta", str(small_sim.fasta),
                             "--sample", "D1", "--out", str(out)]) == 0
    assert "score" in pd.read_csv(out, sep="\t").columns


def test_predict_writes_signed_effect_and_preferred_allele(model_dir, small_sim, tmp_path):
    """With ``alt_allele`` + ``snv_offset`` (here 100-bp windows, SNV off-centre at offset 30), each window is scored as
    the stretch centred on its SNV (60 bp), and ``effect`` is the log-odds difference of the two alleles."""
    w = cli_predict.windows_from_vcf(small_sim.vcf, small_sim.fasta, sample="D1").head(12).reset_index(drop=True)
    short = w["seq_ref"].str[70:170]                          # the SNV (offset 100) is at offset 30 of these
    tsv = tmp_path / "short.tsv"
    pd.DataFrame({"sequence": short, "alt_allele": w["alt"], "snv_offset": 30}).to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(model_dir), "--windows", str(tsv), "--out", str(tmp_path / "s.tsv")]) == 0
    got = pd.read_csv(tmp_path / "s.tsv", sep="\t", keep_default_na=False)
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    ref60, alt60 = w["seq_ref"].str[70:130], w["seq_alt"].str[70:130]
    lo_ref = predict(model, tok, ref60, logit=True)
    lo_alt = predict(model, tok, alt60, logit=True)
    rc_ref = predict(model, tok, [reverse_complement(s) for s in ref60], logit=True)
    rc_alt = predict(model, tok, [reverse_complement(s) for s in alt60], logit=True)
    effect = (lo_alt + rc_alt) / 2 - (lo_ref + rc_ref) / 2                  # both strands averaged
    np.testing.assert_allclose(got["effect"], effect, atol=1e-5)
    np.testing.assert_allclose(got["score"], predict(model, tok, ref60), atol=1e-6)
    want = np.where(effect > 0, w["alt"], w["ref"])
    assert got["preferred_allele"].tolist() == want.tolist()
    # the probability and the log-odds agree
    np.testing.assert_allclose(1 / (1 + np.exp(-lo_ref)), predict(model, tok, ref60), atol=1e-6)


def test_predict_vcf_writes_effect(model_dir, small_sim, tmp_path):
    out = tmp_path / "v.tsv"
    assert cli_predict.main(["--model", str(model_dir), "--vcf", str(small_sim.vcf), "--fasta", str(small_sim.fasta),
                             "--sample", "D1", "--out", str(out)]) == 0
    got = pd.read_csv(out, sep="\t", keep_default_na=False)
    w = cli_predict.windows_from_vcf(small_sim.vcf, small_sim.fasta, sample="D1")
    model, tok = load_model(model_dir), load_tokenizer(model_dir)

    def both(seqs):
        return (predict(model, tok, seqs, logit=True) + predict(model, tok, [reverse_complement(s) for s in seqs],
                                                                  logit=True)) / 2

    np.testing.assert_allclose(got["effect"], both(w["seq_alt"].tolist()) - both(w["seq_ref"].tolist()), atol=1e-4)
    assert set(got["preferred_allele"]) <= set("ACGT") | {""}
    assert (got["preferred_allele"] == np.where(got["effect"] > 0, got["alt"], got["ref"])).all()


def test_predict_names_bad_snv_offset(model_dir, tmp_path, capsys):
    tsv = tmp_path / "w.tsv"
    pd.DataFrame({"sequence": ["ACGT" * 25, "ACGT" * 25], "alt_allele": ["C", "C"], "snv_offset": [50, 0]}).to_csv(
        tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(model_dir), "--windows", str(tsv)]) == 1
    assert "row 2: the SNV at offset 0 has no base on one side" in capsys.readouterr().err


def test_predict_on_a_kept_binding_model_prefers_the_allele_that_keeps_the_site(tmp_path):
    """A binding model kept as chapter 04 keeps EN-TEx's (``binding_first.keep_binding_model``): ``allelic predict``
    reads its card, and where the alternative allele destroys a planted CTCF site the reference is preferred."""
    from allelic import binding_first
    from allelic.baselines.transformer import TransformerBinding
    from allelic.binding import BindingSet, gc_content
    from allelic.simulate import planted_windows
    from allelic.train import TrainConfig

    w = planted_windows("MA0139.1", n=1200, frac_as=0.5, random_state=0)
    ckpt = pt.pretrain(list(w["sequence"]), spec=dataclasses.replace(TINY, n_windows=300), out_dir=tmp_path / "m").checkpoint
    table = pd.DataFrame({"sequence": w["sequence"], "bound": w["label"], "source": "planted",
                          "split": np.where(np.arange(len(w)) % 5 == 0, "val", "train"),
                          "gc": gc_content(w["sequence"]), "chrom": None, "record": w["window_id"]})
    bset = BindingSet(table, params={"planted": "MA0139.1"})
    b = TransformerBinding(ckpt, config=TrainConfig(epochs=3, batch_size=32, learning_rate=1e-3)).fit(table)
    d = binding_first.keep_binding_model(b, bset, tmp_path / "keep", checkpoint=ckpt, data_name="planted")
    card = lm.describe_checkpoint(d)
    assert card["spec"]["window"] == 200 and card["metrics"]["val_auroc"] == pytest.approx(b.val_auroc_)
    site = w[(w["label"] == 1) & w["site_at_snv"].astype(bool)]
    tsv = tmp_path / "snvs.tsv"
    site[["sequence", "alt_allele", "snv_offset"]].to_csv(tsv, sep="\t", index=False)
    assert cli_predict.main(["--model", str(d), "--windows", str(tsv), "--out", str(tmp_path / "s.tsv")]) == 0
    got = pd.read_csv(tmp_path / "s.tsv", sep="\t", keep_default_na=False)
    np.testing.assert_allclose(got["effect"], b.effect(site["sequence"], site["alt_sequence"]), atol=1e-4)
    ref_base = [s[o] for s, o in zip(site["sequence"], site["snv_offset"])]
    assert (got["preferred_allele"] == ref_base).mean() > 0.6 and np.median(got["effect"]) < 0
