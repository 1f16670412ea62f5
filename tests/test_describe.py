import pandas as pd
import pytest

from allelic import describe
from allelic.ledger import Ledger


def test_coverage_summary_hand_values():
    t = pd.DataFrame({"donor": ["D", "D", "D"], "tissue": "liver", "assay": "CTCF",
                      "ref_count": [3, 10, 6], "alt_count": [1, 10, 2]})
    s = describe.coverage_summary(t, min_total=6).iloc[0]
    assert s["n_snvs"] == 3 and s["n_testable"] == 2  # totals 4, 20, 8
    assert s["median_total"] == 8 and s["pooled_ref_ratio"] == pytest.approx(19 / 32)
    assert s["median_ref_ratio"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="lacks column"):
        describe.coverage_summary(t.drop(columns="tissue"))


def test_ledger_table_and_summary():
    led = Ledger()
    led.add("a", "f.vcf", "chr1:1", "indel")
    led.extend("a", "f.vcf", ["chr1:2", "chr1:3"], "not_heterozygous")
    assert len(led) == 3
    s = led.summary().set_index("reason")["n"]
    assert s["indel"] == 1 and s["not_heterozygous"] == 2
    assert list(led.table().columns) == ["step", "source", "record", "reason", "detail"]


def test_het_snv_counts_per_donor():
    v = {"D1": pd.DataFrame({"phased": [True, True, False]}), "D2": pd.DataFrame({"phased": [True]})}
    t = describe.het_snv_counts(v).set_index("donor")
    assert t.loc["D1", "n_het_snvs"] == 3 and t.loc["D1", "n_phased"] == 2 and t.loc["D2", "n_het_snvs"] == 1
