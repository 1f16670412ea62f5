import numpy as np
import pandas as pd
import pytest

from allelic import evaluate


def test_confusion_hand_counts():
    called = [True, True, False, False, True]
    truth = [True, False, True, False, True]
    c = evaluate.confusion(called, truth)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 1)
    assert c["precision"] == pytest.approx(2 / 3) and c["recall"] == pytest.approx(2 / 3)
    assert c["fdp"] == pytest.approx(1 / 3) and c["accuracy"] == pytest.approx(3 / 5)
    none = evaluate.confusion([False, False], [True, False])
    assert np.isnan(none["precision"]) and np.isnan(none["fdp"]) and none["recall"] == 0


def test_call_metrics_counts_untested_truth_as_not_called():
    truth = pd.DataFrame({"sample": "S", "chrom": "chr1", "pos": [1, 2, 3, 4], "is_as": [True, True, False, False],
                          "assay": ["A", "A", "B", "B"]})
    calls = pd.DataFrame({"sample": "S", "chrom": "chr1", "pos": [1, 3, 9], "x": [True, True, True]})  # pos 2 untested
    m = evaluate.call_metrics(calls, truth, "x").iloc[0]
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["n_tested"]) == (1, 1, 1, 1, 2)
    by = evaluate.call_metrics(calls, truth, "x", by="assay").set_index("assay")
    assert by.loc["A", "recall"] == 0.5 and by.loc["B", "fdp"] == 1.0
    with pytest.raises(ValueError, match="missing column"):
        evaluate.call_metrics(calls, truth, "y")
