"""Tests of allelic.motifs against hand-computed values, brute force and FIMO."""
from __future__ import annotations

import math

import numpy as np
import pytest

from allelic.motifs import Motif, load_jaspar, one_hot, resolve_motifs, reverse_complement

CTCF_ID = "MA0139.1"
# consensus of MA0139.1 as printed by Biopython / the JASPAR web site
CTCF_CONSENSUS = "TGGCCACCAGGGGGCGCTA"


# ---------------------------------------------------------------- one_hot / reverse_complement
def test_one_hot_hand_string():
    got = one_hot("ACgtNn")
    want = np.array(
        [
            [1, 0, 0, 0],  # A
            [0, 1, 0, 0],  # C
            [0, 0, 1, 0],  # g
            [0, 0, 0, 1],  # t
            [0, 0, 0, 0],  # N
            [0, 0, 0, 0],  # n
        ],
        dtype=np.float32,
    )
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_one_hot_list_and_dtype():
    got = one_hot(["AC", "TN"], dtype=np.uint8)
    want = np.array([[[1, 0, 0, 0], [0, 1, 0, 0]], [[0, 0, 0, 1], [0, 0, 0, 0]]], dtype=np.uint8)
    assert got.shape == (2, 2, 4) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert one_hot(["ACGT"] * 3, dtype=np.float64).dtype == np.float64


def test_one_hot_bad_character_names_index_and_position():
    with pytest.raises(ValueError, match=r"'X'.*sequence 2 at position 3"):
        one_hot(["ACGT", "ACGT", "ACGX"])
    with pytest.raises(ValueError, match=r"'-'.*sequence 0 at position 1"):
        one_hot("A-GT")
    with pytest.raises(ValueError, match=r"'é'.*sequence 1 at position 0"):
        one_hot(["AC", "éC"])


def test_one_hot_unequal_lengths():
    with pytest.raises(ValueError, match=r"sequence 1 has length 3"):
        one_hot(["ACGT", "ACG"])


def test_one_hot_large_is_vectorised():
    seqs = ["ACGTN" * 40] * 20_000
    X = one_hot(seqs)
    assert X.shape == (20_000, 200, 4)
    np.testing.assert_array_equal(X[-1, :5], one_hot("ACGTN"))


def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"
    assert reverse_complement("acgT") == "Acgt"
    assert reverse_complement("") == ""
    with pytest.raises(ValueError, match="position 2"):
        reverse_complement("ACXG")


# ---------------------------------------------------------------- Motif
HAND_COUNTS = np.array(
    [
        [3, 0],  # A
        [1, 0],  # C
        [0, 4],  # G
        [0, 0],  # T
    ],
    dtype=float,
)


def test_probabilities_hand():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    # (c + 0.8/4) / (4 + 0.8) per column: column totals are both 4
    want = np.array([[3.2, 0.2], [1.2, 0.2], [0.2, 4.2], [0.2, 0.2]]) / 4.8
    np.testing.assert_allclose(m.probabilities(), want, rtol=1e-12)
    np.testing.assert_allclose(m.probabilities().sum(axis=0), 1.0)
    np.testing.assert_allclose(m.probabilities(0.0)[:, 0], [0.75, 0.25, 0, 0])


def test_log_odds_hand_uniform_background():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    # log2(p / 0.25) = log2((c + 0.2) / 4.8 * 4) = log2((c + 0.2) / 1.2)
    want = np.array(
        [
            [math.log2(3.2 / 1.2), math.log2(0.2 / 1.2)],
            [math.log2(1.2 / 1.2), math.log2(0.2 / 1.2)],
            [math.log2(0.2 / 1.2), math.log2(4.2 / 1.2)],
            [math.log2(0.2 / 1.2), math.log2(0.2 / 1.2)],
        ]
    )
    np.testing.assert_allclose(m.log_odds(), want, rtol=0, atol=1e-12)
    assert m.log_odds()[2, 1] == pytest.approx(math.log2(3.5))
    assert m.log_odds()[0, 0] == pytest.approx(math.log2(8 / 3))


def test_log_odds_hand_nonuniform_background():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    bg = (0.1, 0.4, 0.4, 0.1)
    # A, column 0: (3 + 0.2) / 4.8 / 0.1 = 6.666..., C column 0: 1.2 / 4.8 / 0.4 = 0.625
    assert m.log_odds(background=bg)[0, 0] == pytest.approx(math.log2(3.2 / 4.8 / 0.1))
    assert m.log_odds(background=bg)[1, 0] == pytest.approx(math.log2(0.625))
    assert m.log_odds(pseudocount=4.0, background=bg)[3, 1] == pytest.approx(
        math.log2((0 + 1.0) / 8.0 / 0.1)
    )
    with pytest.raises(ValueError, match="sum to 1"):
        m.log_odds(background=(0.3, 0.3, 0.3, 0.3))


def test_consensus_and_width_hand():
    m = Motif("X1.1", "hand", HAND_COUNTS)
    assert m.width == 2
    assert m.consensus() == "AG"
    rc = m.reverse_complement()
    assert rc.consensus() == "CT"
    np.testing.assert_array_equal(rc.counts, HAND_COUNTS[::-1, ::-1])


def test_motif_validation_and_immutability():
    with pytest.raises(ValueError, match="X2.1"):
        Motif("X2.1", "bad", np.ones((3, 5)))
    with pytest.raises(ValueError, match=">= 0"):
        Motif("X3.1", "neg", -np.ones((4, 2)))
    m = Motif("X1.1", "hand", HAND_COUNTS)
    with pytest.raises(ValueError):
        m.counts[0, 0] = 7.0
    assert m == Motif("X1.1", "hand", HAND_COUNTS.copy())
    assert hash(m) == hash(Motif("X1.1", "hand", HAND_COUNTS.copy()))
    assert m != Motif("X1.1", "hand", HAND_COUNTS + 1)


def test_sample_deterministic_and_frequencies(ctcf):
    a = ctcf.sample(5000, random_state=7)
    assert a == ctcf.sample(5000, random_state=7)
    assert a != ctcf.sample(5000, random_state=8)
    assert ctcf.sample(3, random_state=np.random.default_rng(7)) == a[:3]
    assert len(a) == 5000 and all(len(s) == 19 for s in a)
    freq = one_hot(a, dtype=np.float64).mean(axis=0).T  # (4, 19)
    np.testing.assert_allclose(freq, ctcf.probabilities(), atol=0.03)
    assert ctcf.sample(0) == []


# ---------------------------------------------------------------- JASPAR
def test_load_ctcf(ctcf):
    assert ctcf.matrix_id == CTCF_ID
    assert ctcf.name == "CTCF"
    assert ctcf.width == 19
    assert ctcf.counts.shape == (4, 19)
    assert ctcf.consensus() == CTCF_CONSENSUS


def test_ctcf_log_odds_match_biopython(ctcf):
    # Biopython adds its pseudocount to each base: 0.2 per base == 0.8 per column here
    from pyjaspar import jaspardb

    bio = jaspardb(release="JASPAR2024").fetch_motif_by_id(CTCF_ID)
    pssm = bio.counts.normalize(pseudocounts=0.2).log_odds()
    want = np.array([pssm[b] for b in "ACGT"])
    np.testing.assert_allclose(ctcf.log_odds(), want, atol=1e-9)


def test_load_jaspar_errors_names_and_collection():
    with pytest.raises(ValueError, match="MA9999.9"):
        load_jaspar(["MA0139.1", "MA9999.9"])
    (byname,) = load_jaspar(names=["CTCF"])
    assert byname.name == "CTCF" and byname.matrix_id.startswith("MA0139.")
    assert load_jaspar(names=["ctcf"])[0] == byname
    with pytest.raises(ValueError, match="NOT_A_TF"):
        load_jaspar(names=["NOT_A_TF"])
    allm = load_jaspar()
    ids = [m.matrix_id for m in allm]
    assert len(allm) > 500 and len(set(ids)) == len(ids)
    assert byname.matrix_id in ids
    assert len({i.split(".")[0] for i in ids}) == len(ids)  # one version per base id
    assert load_jaspar()[0] is allm[0]  # cached in-process


def test_encode_ragged_pads_with_n_and_names_the_sequence():
    from allelic.motifs import N_CODE, encode

    codes, single = encode(["ACGT", "TG", ""], ragged=True)
    assert not single and codes.tolist() == [[0, 1, 2, 3], [3, 2, N_CODE, N_CODE], [N_CODE] * 4]
    with pytest.raises(ValueError, match="windows must all have the same length: window 0 has length 4"):
        encode(["ACGT", "TG"], what="window")
    with pytest.raises(ValueError, match="invalid character 'X' in window 1 at position 1"):
        encode(["ACGT", "TX"], what="window", ragged=True)


def test_resolve_motifs_by_id_name_assay_and_object():
    """One resolver for the book (explain, the motif baselines, tissues): ids, names (pinned ids first), assays and
    Motif objects, in order and without repeats."""
    from allelic import baselines, explain

    assert resolve_motifs is explain.resolve_motifs is baselines.resolve_motifs
    yy1 = load_jaspar(["MA0095.4"])[0]
    got = resolve_motifs(["MA0139.1", "REST", "ctcf", yy1, "H3K4me3"])
    assert [m.matrix_id for m in got] == ["MA0139.1", "MA0138.3", "MA0095.4", "MA0506.3", "MA0079.5"]
    assert got[1].name == "REST" and got[2] is yy1      # "ctcf" is the pinned MA0139.1 again: not repeated
    assert [m.matrix_id for m in resolve_motifs("MA0139")] == ["MA0139.2"]   # latest version
    with pytest.raises(ValueError, match="no motifs given"):
        resolve_motifs([])
