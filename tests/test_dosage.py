"""allelic.dosage: the segmentation recovers planted BAD segments, a BAD map is read with errors that name the file
and line, and sites get the BAD of the interval holding them (the others ledgered)."""
import numpy as np
import pandas as pd
import pytest

from allelic import dosage
from allelic.ledger import Ledger


def _planted(rng, plan, depth=(10, 60), rho=0.0, chrom="chr1"):
    """Sites along one chromosome in consecutive segments ``(BAD, n_sites)``; each site's reference allele sits on
    the amplified haplotype or the other at random, reads binomial (or beta-binomial with ``rho``)."""
    rows, pos = [], 0
    for bad, n_sites in plan:
        lo, hi = dosage.null_ratios(bad)
        for _ in range(n_sites):
            pos += int(rng.integers(100, 5000))
            n = int(rng.integers(*depth))
            p = hi if rng.random() < 0.5 else lo
            if rho > 0:
                p = rng.beta(p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho)
            k = int(rng.binomial(n, p))
            rows.append((chrom, pos, k, n - k, float(bad)))
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref_count", "alt_count", "true_bad"])


def test_null_ratios():
    lo, hi = dosage.null_ratios([1, 2, 3])
    np.testing.assert_allclose(lo, [1 / 2, 1 / 3, 1 / 4])
    np.testing.assert_allclose(hi, [1 / 2, 2 / 3, 3 / 4])
    with pytest.raises(ValueError, match="BAD must be"):
        dosage.null_ratios(0.5)


def test_site_loglik_is_the_even_mixture():
    from scipy.stats import betabinom, binom

    ll = dosage.site_loglik([7], [10], bads=[2.0])
    assert ll[0, 0] == pytest.approx(np.log(0.5 * binom.pmf(7, 10, 2 / 3) + 0.5 * binom.pmf(7, 10, 1 / 3)))
    rho = 0.05
    ll = dosage.site_loglik([7], [10], bads=[2.0], rho=rho)
    ab = [(p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho) for p in (2 / 3, 1 / 3)]
    assert ll[0, 0] == pytest.approx(np.log(0.5 * sum(betabinom.pmf(7, 10, a, b) for a, b in ab)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segmentation_recovers_planted_segments(seed):
    rng = np.random.default_rng(seed)
    plan = [(1, 600), (2, 300), (1, 300), (3, 250), (4 / 3, 500), (1, 300)]
    sites = pd.concat([_planted(rng, plan), _planted(rng, [(1, 400), (5 / 2, 300)], chrom="chr2")],
                      ignore_index=True)
    seg = dosage.segment(sites)
    right = np.isclose(seg.sites["bad"].to_numpy(), seg.sites["true_bad"].to_numpy())
    assert right.mean() > 0.95                                        # most sites get the planted BAD
    assert len(seg.segments) <= 10                                    # 8 planted: no shattering
    assert set(seg.segments["chrom"]) == {"chr1", "chr2"} and seg.segments["n_sites"].sum() == len(sites)


def test_segmentation_of_a_diploid_genome_finds_one_segment():
    rng = np.random.default_rng(3)
    seg = dosage.segment(_planted(rng, [(1, 2000)], rho=0.02), rho=0.02)
    assert seg.segments["bad"].tolist() == [1.0]


def test_read_bad_map_and_assign(tmp_path):
    p = tmp_path / "bad.bed"
    p.write_text("#chrom\tstart\tend\tBAD\nchr1\t0\t1000\t1\nchr1\t1000\t5000\t2\nchr2\t0\t800\t1.5\n")
    m = dosage.read_bad_map(p)
    assert m[["chrom", "start", "end"]].values.tolist() == [["chr1", 0, 1000], ["chr1", 1000, 5000], ["chr2", 0, 800]]
    sites = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr2", "chr3"], "pos": [1000, 1001, 6000, 10, 5]})
    led = Ledger()
    out = dosage.assign(sites, m, ledger=led)
    assert out["pos"].tolist() == [1000, 1001, 10] and out["bad"].tolist() == [1.0, 2.0, 1.5]
    assert sorted(led.table()["record"]) == ["chr1:6000", "chr3:5"]
    assert set(led.table()["reason"]) == {"outside_bad_map"}


@pytest.mark.parametrize("body, message", [
    ("chr1\t0\t100\n", "line 1: 3 fields"),
    ("chr1\t0\t100\t1\nchr1\tx\t200\t2\n", "line 2: start/end 'x'"),
    ("chr1\t100\t100\t1\n", "line 1: interval 100-100 is empty"),
    ("chr1\t0\t100\tfour\n", "line 1: BAD 'four' is not a number"),
    ("chr1\t0\t100\t0.5\n", "line 1: BAD '0.5' must be a number >= 1"),
    ("chr1\t0\t100\t1\nchr1\t50\t200\t2\n", "line 2: interval chr1:50-200 overlaps"),
    ("# nothing\n", "no intervals"),
])
def test_malformed_bad_map_names_file_and_line(tmp_path, body, message):
    p = tmp_path / "bad.bed"
    p.write_text(body)
    with pytest.raises(ValueError, match=message) as err:
        dosage.read_bad_map(p)
    assert "bad.bed" in str(err.value)
