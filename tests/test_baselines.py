"""Tests of allelic.baselines: hand-counted features, motif features against pwm.scan, planted-signal learning,
chance on shuffled labels, determinism, and evaluate_models' use of the splits."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allelic import baselines as B
from allelic.baselines.features import _STORE
from allelic.baselines.kmer import _hash_cols, _l2_rows
from allelic.labels import LABELS
from allelic.motifs import Motif, load_jaspar, reverse_complement
from allelic.pwm import max_score, scan, score_threshold

CTCF_ID = "MA0139.1"
CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"


@pytest.fixture(scope="module")
def ctcf() -> Motif:
    return load_jaspar([CTCF_ID])[0]


def _random_dna(rng, L) -> str:
    return "".join(rng.choice(list("ACGT"), L))


# ----------------------------------------------------------------------------- toy example table
def make_toy(n_train=600, n_val=150, n_test=300, L=200, seed=0, decoy=0.3) -> pd.DataFrame:
    """Random 200-bp windows, half of them AS (label 1): those carry a CTCF site (sampled from MA0139.1, score
    >= 12 bits, either strand) placed so that one of its 5 most informative columns is the SNV, whose alt allele
    is that column's worst base. A fraction ``decoy`` of the non-AS windows carry a CTCF site away from the SNV,
    so "a CTCF motif somewhere in the window" alone does not separate the classes. Splits are random."""
    rng = np.random.default_rng(seed)
    m = load_jaspar([CTCF_ID])[0]
    pwm, w, c = m.log_odds(), m.width, L // 2
    top = np.argsort(-(pwm.max(0) - pwm.min(0)))[:5]
    n = n_train + n_val + n_test
    cand = m.sample(6 * n, random_state=rng)
    sites = iter([s for s, v in zip(cand, max_score(cand, pwm)) if v >= 12])
    rows = []
    for i in range(n):
        seq = list(rng.choice(list("ACGT"), L))
        y = int(i % 2 == 0)
        if y:
            site, j = next(sites), int(rng.choice(top))
            worst, best = "ACGT"[int(np.argmin(pwm[:, j]))], "ACGT"[int(np.argmax(pwm[:, j]))]
            if site[j] == worst:
                site = site[:j] + best + site[j + 1:]
            alt_base = worst
            if rng.random() < 0.5:
                site, j, alt_base = reverse_complement(site), w - 1 - j, reverse_complement(worst)
            seq[c - j:c - j + w] = list(site)
            ref = "".join(seq)
        else:
            if rng.random() < decoy:
                site = next(sites)
                site = reverse_complement(site) if rng.random() < 0.5 else site
                start = int(rng.integers(0, c - w - 2)) if rng.random() < 0.5 else int(rng.integers(c + 3, L - w))
                seq[start:start + w] = list(site)
            ref = "".join(seq)
            alt_base = str(rng.choice([b for b in "ACGT" if b != ref[c]]))
        alt = ref[:c] + alt_base + ref[c + 1:]
        rows.append((f"ex{i}", "chr1", 1000 * (i + 1), "CTCF", y, ref, alt))
    df = pd.DataFrame(rows, columns=["example_id", "chrom", "pos", "assay", "label", "seq_ref", "seq_alt"])
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test, dtype=object)
    df["split"] = split[rng.permutation(n)]
    return df


@pytest.fixture(scope="module")
def toy() -> pd.DataFrame:
    return make_toy()


@pytest.fixture(scope="module")
def toy_shuffled(toy) -> pd.DataFrame:
    out = toy.copy()
    out["label"] = np.random.default_rng(123).permutation(out["label"].to_numpy())
    return out


# ----------------------------------------------------------------------------- k-mers and gapped k-mers by hand
def test_kmer_counts_hand():
    X = B.kmer_counts(["ACGTA"], 2).toarray()[0]
    names = B.kmer_names(2, canonical=False)
    got = {names[j]: X[j] for j in np.flatnonzero(X)}
    assert got == {"AC": 1, "CG": 1, "GT": 1, "TA": 1}
    # canonical: GT is the reverse complement of AC; CG and TA are their own
    Xc = B.kmer_counts(["ACGTA"], 2, canonical=True).toarray()[0]
    names_c = B.kmer_names(2, canonical=True)
    assert len(names_c) == 10   # (16 + 4 palindromes) / 2
    assert {names_c[j]: Xc[j] for j in np.flatnonzero(Xc)} == {"AC": 2, "CG": 1, "TA": 1}
    # k-mers holding an N are skipped; k = 1 counts bases
    assert B.kmer_counts(["ACNGT"], 2).sum() == 2
    assert B.kmer_counts(["AACGTTT"], 1).toarray()[0].tolist() == [2, 1, 1, 3]


def test_gapped_patterns_and_counts_hand():
    assert B.gapped_patterns(3, 2) == [(0, 1), (0, 2)]
    assert len(B.gapped_patterns(10, 6)) == math.comb(9, 5) == 126
    # "ACGT", l=3, k=2: pattern (0,1) gives AC, CG, GT (span 2, weight sqrt(3-2+1)); (0,2) gives A_G, C_T (weight 1)
    x = B.gapped_kmer_counts(["ACGT"], 3, 2, canonical=False)[0]
    assert x.shape == (2 * 16,)
    code = {b: i for i, b in enumerate("ACGT")}

    def col(p, bases):
        return p * 16 + 4 * code[bases[0]] + code[bases[1]]

    want = np.zeros(32)
    for bases in ("AC", "CG", "GT"):
        want[col(0, bases)] = math.sqrt(2)
    want[col(1, "AG")] = want[col(1, "CT")] = 1
    np.testing.assert_allclose(x, want, rtol=1e-6)
    # canonical: GT pools with AC, C_T with A_G (the reverse complement of A_G is C_T)
    xc = B.gapped_kmer_counts(["ACGT"], 3, 2, canonical=True)[0]
    wc = np.zeros(32)
    wc[col(0, "AC")], wc[col(0, "CG")], wc[col(1, "AG")] = 2 * math.sqrt(2), math.sqrt(2), 2
    np.testing.assert_allclose(xc, wc, rtol=1e-6)
    # unweighted counts; an N removes the gapped k-mers that read it but not one that skips it (A_G in "ANG")
    xu = B.gapped_kmer_counts(["ANG"], 3, 2, canonical=False, weighted=False)[0]
    assert xu.sum() == 1 and xu[col(1, "AG")] == 1


def _gkm_kernel(a: str, b: str, l: int, k: int) -> int:
    """gkm-SVM's (unnormalised) kernel by brute force: sum over l-mer pairs of C(l - mismatches, k)."""
    la = [a[i:i + l] for i in range(len(a) - l + 1)]
    lb = [b[i:i + l] for i in range(len(b) - l + 1)]
    return sum(math.comb(sum(x == y for x, y in zip(u, v)), k) for u in la for v in lb)


def test_gapped_kmer_dot_product_approximates_gkm_kernel():
    rng = np.random.default_rng(5)
    l, k = 6, 3
    for L in (60, 200):
        a, b = _random_dna(rng, L), _random_dna(rng, L)
        b = b[:50] + a[50:90] + b[90:]      # share a stretch so the kernel has signal
        X = B.gapped_kmer_counts([a, b], l, k, canonical=False).astype(np.float64)
        got, want = X[0] @ X[1], _gkm_kernel(a, b, l, k)
        # equal up to the edge effects documented in gapped_kmer_counts (~ l / L)
        assert abs(got / want - 1) < 2 * l / L, (L, got, want)


# ----------------------------------------------------------------------------- validation
def test_check_examples_rejects_alt_differing_off_centre():
    df = pd.DataFrame({"example_id": ["a"], "seq_ref": ["ACGTA"], "seq_alt": ["TCCTA"]})
    with pytest.raises(ValueError, match="offset 0"):
        B.check_examples(df)
    ok = pd.DataFrame({"seq_ref": ["ACGTA"], "seq_alt": ["acTta"]})
    ref, alt, c = codes = B.check_examples(ok)
    assert c == 2 and alt[0, 2] == 3
    assert codes.snv == 2 and codes.ref.tolist() == [[0, 1, 2, 3, 0]]  # A, C, G, T = 0..3, case-insensitive
    with pytest.raises(ValueError, match="invalid character"):
        B.check_examples(pd.DataFrame({"seq_ref": ["ACXTA"], "seq_alt": ["ACGTA"]}))


# ----------------------------------------------------------------------------- motif features
def test_motif_logistic_features_hand(ctcf):
    assert ctcf.consensus() == CTCF_CONSENSUS
    pwm = ctcf.log_odds()
    p = ctcf.probabilities()
    ic = (p * np.log2(p / 0.25)).sum(axis=0)
    j = int(np.argmax(ic))                               # most informative column
    L, c = 61, 30
    rng = np.random.default_rng(11)
    bg = _random_dna(rng, L)
    start = c - j
    ref = bg[:start] + CTCF_CONSENSUS + bg[start + ctcf.width:]
    alt_base = "ACGT"[int(np.argmin(pwm[:, j]))]
    alt = ref[:c] + alt_base + ref[c + 1:]
    neg = bg[:c] + ("A" if bg[c] != "A" else "C") + bg[c + 1:]       # no CTCF site
    df = pd.DataFrame({"seq_ref": [ref, bg], "seq_alt": [alt, neg]})

    f = B.motif_snv_features(df, [ctcf])
    pre = f"{CTCF_ID}_CTCF:"
    thr = score_threshold(ctcf, 1e-4)
    site_ref = scan(ref, ctcf)[0, start, 0]             # forward strand, planted window
    site_alt = scan(alt, ctcf)[0, start, 0]
    hand_delta = pwm["ACGT".index(alt_base), j] - pwm["ACGT".index(CTCF_CONSENSUS[j]), j]
    assert site_ref == pytest.approx(pwm.max(axis=0).sum())       # consensus = best score
    assert f.loc[0, pre + "hit"] == 1 and f.loc[0, pre + "hit_ref"] == 1
    assert f.loc[0, pre + "ref_score"] == pytest.approx(site_ref, abs=1e-9)
    assert f.loc[0, pre + "alt_score"] == pytest.approx(site_alt, abs=1e-9)
    assert f.loc[0, pre + "delta"] == pytest.approx(hand_delta, abs=1e-9)
    assert hand_delta < -10                               # G -> C at the core: about -12 bits
    assert f.loc[0, pre + "abs_delta"] == pytest.approx(-hand_delta)
    assert f.loc[0, pre + "hit_alt"] == float(site_alt >= thr)
    # the background window: best overlapping window by brute force, no hit
    s = scan([bg, neg], ctcf).max(axis=2)               # (2, L-w+1)
    w = ctcf.width
    over = s[:, c - w + 1:c + 1].max(axis=1)
    assert f.loc[1, pre + "ref_score"] == pytest.approx(over[0])
    assert f.loc[1, pre + "alt_score"] == pytest.approx(over[1])
    assert f.loc[1, pre + "hit"] == 0


def test_motif_factor_resolution():
    assert [m.matrix_id for m in B.resolve_motifs("CTCF")] == [CTCF_ID]
    assert [m.name.upper() for m in B.resolve_motifs("H3K4me3")] == ["NRF1", "SP1", "YY1"]
    assert set(B.ASSAY_MOTIFS) == {"CTCF", "POL2", "H3K4me3", "H3K27ac", "RNA"}
    for assay in B.ASSAY_MOTIFS:
        assert B.resolve_motifs(assay)


def test_motif_scanner_matches_motifs_scan(ctcf):
    motifs = [ctcf] + load_jaspar(["MA0079.5", "MA0108.3"])   # CTCF (19 bp), SP1 (9 bp), TBP (7 bp)
    rng = np.random.default_rng(3)
    L, c = 60, 30
    refs = [_random_dna(rng, L) for _ in range(5)]
    refs[0] = refs[0][:c - 9] + CTCF_CONSENSUS + refs[0][c + 10:]          # a site over the SNV ...
    refs[1] = refs[1][:2] + CTCF_CONSENSUS + refs[1][21:]                  # ... and one away from it
    refs[2] = "GGGGCGGGGC" * 6                                             # SP1 hits everywhere
    alts = [r[:c] + ("C" if r[c] != "C" else "T") + r[c + 1:] for r in refs]
    sc = B.MotifScanner(motifs, batch_size=2)
    X = sc.transform(*B.check_examples(pd.DataFrame({"seq_ref": refs, "seq_alt": alts}))).astype(np.float64)
    M = len(motifs)
    X = X.reshape(len(refs), 5, M)
    for i, m in enumerate(motifs):
        thr = score_threshold(m, 1e-4)
        sr, sa = scan(refs, m).max(axis=2), scan(alts, m).max(axis=2)     # better strand per window
        np.testing.assert_allclose(X[:, 0, i], (sr >= thr).sum(1))
        np.testing.assert_allclose(X[:, 1, i], sr.max(1), atol=1e-4)
        np.testing.assert_allclose(X[:, 2, i], (sa >= thr).sum(1) - (sr >= thr).sum(1))
        np.testing.assert_allclose(X[:, 3, i], sa.max(1) - sr.max(1), atol=1e-4)
        np.testing.assert_allclose(X[:, 4, i], np.abs(sa.max(1) - sr.max(1)), atol=1e-4)
    assert X[2, 0, 1] > 5 and X[0, 3, 0] < -3 and X[1, 3, 0] == 0
    assert sc.feature_names()[:1] == [f"{CTCF_ID}_CTCF:count"]


def test_kmer_and_gkm_alt_features_equal_full_recount(toy):
    sub = toy.iloc[:20]
    ref, alt, c = B.check_examples(sub)
    km = B.KmerLogistic(k=(2, 3), canonical=True, cache=False)
    X = km.features(sub).toarray()
    full = np.hstack([B.kmer_counts(alt, k, canonical=True).toarray() - B.kmer_counts(ref, k, canonical=True).toarray()
                      for k in (2, 3)])
    np.testing.assert_array_equal(X[:, X.shape[1] // 2:], full)
    g = B.GkmSVM(l=6, k=3, n_features=1 << 10, cache=False)
    Xr, Xa = g.features(sub)
    np.testing.assert_allclose(Xa, _l2_rows(B.gapped_kmer_counts(alt, 6, 3, n_features=1 << 10)), atol=1e-6)
    np.testing.assert_allclose(Xr, _l2_rows(B.gapped_kmer_counts(ref, 6, 3, n_features=1 << 10)), atol=1e-6)


# ----------------------------------------------------------------------------- learning a planted signal
def _models(random_state=0):
    """The standard set with settings sized for the toy set (the scans use all 879 JASPAR motifs)."""
    return [
        B.MotifLogistic("CTCF", random_state=random_state),
        B.MotifScanLogistic(random_state=random_state),
        B.MotifGBT(max_iter=80, n_jobs=1, random_state=random_state),
        B.KmerLogistic(random_state=random_state),
        B.GkmSVM(random_state=random_state),
        B.CNN(n_filters=32, n_filters2=32, max_epochs=15, patience=4, device="cpu", random_state=random_state),
    ]


@pytest.fixture(scope="module")
def planted(toy):
    return B.evaluate_models(_models(), toy, return_scores=True)


# AUROC on the 300 test windows measured with these seeds (2-core CPU, one thread per model): motif_logistic
# 1.000, motif_scan_logistic 0.997, motif_gbt 1.000, kmer_logistic 0.919, gkm_svm 0.958, cnn 0.992; asserted > 0.85.
# With shuffled labels: 0.479, 0.476, 0.476, 0.486, 0.513, 0.514; asserted within 0.5 +- 0.1.
def test_each_baseline_learns_planted_signal(planted):
    metrics, scores = planted
    assert list(metrics.columns[:10]) == B.METRIC_COLUMNS
    assert metrics["model"].tolist() == ["motif_logistic", "motif_scan_logistic", "motif_gbt", "kmer_logistic",
                                         "gkm_svm", "cnn"]
    assert (metrics["n_test"] == 300).all() and (metrics["n_train"] == 600).all() and (metrics["n_val"] == 150).all()
    low = metrics.loc[metrics["auroc"] <= 0.85, ["model", "auroc"]]
    assert low.empty, low
    assert (metrics["auprc"] > 0.8).all()
    assert len(scores) == 6 * 300 and set(scores.columns) >= {"example_id", "model", "score"}


def test_baselines_at_chance_on_shuffled_labels(toy_shuffled):
    metrics = B.evaluate_models(_models(), toy_shuffled)
    off = metrics.loc[(metrics["auroc"] - 0.5).abs() >= 0.1, ["model", "auroc"]]
    assert off.empty, off


def test_same_random_state_same_scores():
    small = make_toy(n_train=200, n_val=60, n_test=100, seed=2)
    train, val, test = (small[small["split"] == s] for s in ("train", "val", "test"))
    for m in _models():
        first = m.clone().fit(train, val).predict(test)
        again = m.clone().fit(train, val).predict(test)
        np.testing.assert_array_equal(again, first, err_msg=m.name)


def test_cnn_seed_matters_and_gkm_delta(toy):
    import torch

    sub = toy.iloc[:300]
    train, test = sub[sub["split"] != "test"], sub[sub["split"] == "test"]
    threads = torch.get_num_threads()
    a = B.CNN(n_filters=8, n_filters2=8, max_epochs=2, random_state=0).fit(train).predict(test)
    b = B.CNN(n_filters=8, n_filters2=8, max_epochs=2, random_state=1).fit(train).predict(test)
    assert not np.array_equal(a, b)
    assert torch.get_num_threads() == threads          # n_jobs=1 during fit/predict only
    g = B.GkmSVM(l=8, k=4, n_features=1 << 12).fit(train)
    s = g.svm_scores(test)
    np.testing.assert_allclose(g.delta(test), s["alt_score"] - s["ref_score"])
    # the alt scores computed without forming x_alt equal the SVM's decision function on x_alt
    Xr, Xa = g.features(test)
    np.testing.assert_allclose(s["ref_score"], g.svm_.decision_function(Xr), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s["alt_score"], g.svm_.decision_function(Xa), rtol=1e-5, atol=1e-6)
    # AS windows lose a CTCF site: their delta is mostly negative
    pos = test["label"].to_numpy() == 1
    assert np.median(s.loc[pos, "delta"]) < np.median(s.loc[~pos, "delta"])


# ----------------------------------------------------------------------------- evaluate_models and the splits
class Recorder(B.Baseline):
    """Records the example ids that fit (train, val) and predict saw; scores 0, 1, 2, ..."""

    name = "recorder"

    def __init__(self, *, random_state=0):
        self.random_state = random_state

    def fit(self, train, val=None):
        self.seen_train_ = set(train["example_id"])
        self.seen_val_ = set() if val is None else set(val["example_id"])
        return self

    def predict(self, df):
        self.seen_predict_ = set(df["example_id"])
        return np.arange(len(df), dtype=float)


def test_evaluate_models_uses_the_right_splits(toy):
    two = pd.concat([toy.iloc[:90], toy.iloc[90:150].assign(assay="POL2")], ignore_index=True)
    rec = Recorder()
    metrics, scores = B.evaluate_models([rec], toy.iloc[:90], return_scores=True)
    sub = toy.iloc[:90]
    assert rec.seen_train_ == set(sub.loc[sub["split"] == "train", "example_id"])
    assert rec.seen_val_ == set(sub.loc[sub["split"] == "val", "example_id"])
    assert rec.seen_predict_ == set(sub.loc[sub["split"] == "test", "example_id"])
    assert set(scores["example_id"]) == rec.seen_predict_
    assert metrics.loc[0, "n_test"] == (sub["split"] == "test").sum()
    assert metrics.loc[0, "n_pos"] == sub.loc[sub["split"] == "test", "label"].sum()
    # several assays: the list's models are cloned per assay; a callable gets the assay
    made = []

    def factory(assay, random_state=0):
        made.append((assay, random_state))
        return [Recorder(random_state=random_state)]

    m2 = B.evaluate_models(factory, two, random_state=7)
    assert made == [("CTCF", 7), ("POL2", 7)] and m2["assay"].tolist() == ["CTCF", "POL2"]
    rec2 = Recorder()
    m3 = B.evaluate_models([rec2], two)
    assert not hasattr(rec2, "seen_train_") and len(m3) == 2
    assert set(m3.columns) >= set(B.METRIC_COLUMNS) and m3[["fit_seconds", "predict_seconds"]].ge(0).all().all()
    with pytest.raises(ValueError, match="train/val/test"):
        B.evaluate_models([Recorder()], toy.iloc[:10].assign(split="holdout"))


def test_all_baselines_standard_set():
    ms = B.all_baselines("H3K27ac", quick=True, random_state=3)
    assert [m.name for m in ms] == ["motif_logistic", "motif_scan_logistic", "motif_gbt", "kmer_logistic",
                                    "gkm_svm", "cnn"]
    assert all(m.random_state == 3 for m in ms)
    assert [x.name for x in ms[0].motifs] == ["FOS::JUN", "CEBPB"]
    c = ms[5].clone()
    assert type(c) is B.CNN and c.get_params() == ms[5].get_params() and c is not ms[5]
    assert set(LABELS) >= {m.name for m in ms}  # every baseline has a display name


def test_feature_store_gathers_rows_across_blocks(toy, ctcf):
    B.clear_feature_cache()
    for make, spec in [(lambda cache: B.KmerLogistic(k=(1, 2, 3), cache=cache), ("kmer", (1, 2, 3), True)),
                       (lambda cache: B.MotifScanLogistic([ctcf], cache=cache), None)]:
        m = make(True)
        m.features(toy.iloc[:50])
        m.features(toy.iloc[30:120])                     # 70 new windows -> a second block
        mixed = toy.iloc[[100, 5, 40, 119, 0, 5]]        # rows from both blocks, out of order, repeated
        got, want = m.features(mixed), make(False).features(mixed)
        if hasattr(got, "toarray"):
            got, want = got.toarray(), want.toarray()
        np.testing.assert_array_equal(got, want)
        entry = _STORE.specs[spec if spec else m._scanner().key()]
        assert len(entry["index"]) == 120 and len(entry["blocks"]) == 2
    B.clear_feature_cache()
    assert _STORE.nbytes() == 0


def test_evaluate_folds(toy):
    base = toy.iloc[:120]
    folds = [base, base.assign(split=np.roll(base["split"].to_numpy(), 7))]
    rec = Recorder()
    metrics, scores = B.evaluate_folds([rec], folds, return_scores=True)
    assert metrics["fold"].tolist() == [0, 1] and metrics.columns[0] == "fold" and not hasattr(rec, "seen_train_")
    for f, fold in enumerate(folds):
        want = set(fold.loc[fold["split"] == "test", "example_id"])
        assert set(scores.loc[scores["fold"] == f, "example_id"]) == want


def test_finetuned_transformer_adapter(toy):
    pytest.importorskip("transformers")
    from allelic.models import DNABert2Config, DNABert2ForSequenceClassification
    from allelic.tokenize import train_bpe_tokenizer
    from allelic.train import TrainConfig

    small = pd.concat([toy[toy["split"] == s].iloc[:n] for s, n in (("train", 48), ("val", 16), ("test", 24))])
    tok = train_bpe_tokenizer(small["seq_ref"], vocab_size=64)

    def factory():
        cfg = DNABert2Config(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, pad_token_id=tok.pad_token_id, num_labels=2)
        return DNABert2ForSequenceClassification(cfg)

    cfg = TrainConfig(learning_rate=1e-3, batch_size=16, epochs=1, progress=False, device="cpu")
    ft = B.FinetunedTransformer(factory, tok, config=cfg, device="cpu", random_state=4)
    m1, s1 = B.evaluate_models([ft], small, return_scores=True)
    m2, s2 = B.evaluate_models([ft.clone()], small, return_scores=True)
    assert m1.loc[0, "model"] == "transformer" and m1.loc[0, "n_test"] == 24
    assert s1["score"].between(0, 1).all()
    np.testing.assert_array_equal(s1["score"].to_numpy(), s2["score"].to_numpy())


def test_transformer_binding_learns_a_planted_site_and_scores_its_destruction(tmp_path):
    """A tiny pretrained transformer fine-tuned on bound (planted CTCF site) vs unbound windows: it tells them apart
    on validation rows, scores both strands alike, and the allele that destroys a planted site gets a negative
    ``effect`` (planted_windows' AS windows put the SNV on an informative column, the reference base the site's)."""
    from allelic import pretrain as pt
    from allelic.baselines.transformer import FinetunedTransformer, TransformerBinding
    from allelic.models import has_classifier
    from allelic.simulate import planted_windows
    from allelic.train import TrainConfig

    w = planted_windows("MA0139.1", n=1200, frac_as=0.5, random_state=0)
    spec = pt.PretrainSpec(vocab_size=128, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, n_windows=300, window=200)
    ckpt = pt.pretrain(list(w["sequence"]), spec=spec, out_dir=tmp_path / "mlm").checkpoint
    table = pd.DataFrame({"sequence": w["sequence"], "bound": w["label"],
                          "split": np.where(np.arange(len(w)) % 5 == 0, "val", "train")})
    cfg = TrainConfig(epochs=3, batch_size=32, learning_rate=1e-3)
    b = TransformerBinding(ckpt, config=cfg, random_state=0).fit(table)
    assert b.val_auroc_ > 0.75 and b.n_train_ == 960 and b.val_source_ == "val"
    s = w["sequence"].head(8).tolist()
    np.testing.assert_allclose(b.score(s), b.score([reverse_complement(x) for x in s]), atol=1e-4)
    site = w[(w["label"] == 1) & w["site_at_snv"].astype(bool)]
    eff = b.effect(site["sequence"], site["alt_sequence"])
    control = w[w["label"] == 0]                          # SNVs clear of any planted site
    eff0 = b.effect(control["sequence"], control["alt_sequence"])
    # measured: 66 % of the destroying alleles negative (a 1-layer, 32-dim model after 3 epochs; val AUROC 0.84)
    assert np.median(eff) < 0 and (eff < 0).mean() > 0.6
    assert eff.mean() < eff0.mean() - 0.1 and np.abs(eff).mean() > np.abs(eff0).mean()
    assert (b.effect(s, s) == 0).all()
    again = TransformerBinding(ckpt, config=cfg, random_state=0).fit(table)
    np.testing.assert_allclose(again.score(s), b.score(s), atol=1e-6)
    enc = b.save_checkpoint(tmp_path / "enc", encoder_only=True)     # the binding-first start for an AS head
    assert not has_classifier(enc)
    assert FinetunedTransformer.from_checkpoint(enc, head="siamese").model_factory() is not None


@pytest.mark.parametrize("n_features", [1 << 12, 1 << 14, 16381])
def test_gapped_kmer_hash_reaches_every_column(n_features):
    """Every column of the hashed gkm feature map is reachable by the l=10, k=6 keys (126 patterns x 4**6 codes);
    ``h % 2**14`` of the multiplicative hash reached 11,921 of 16,384."""
    cols = _hash_cols(np.arange(126 * 4 ** 6), n_features)
    assert cols.min() == 0 and cols.max() == n_features - 1 and len(np.unique(cols)) == n_features
