import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

from allelic import pl


def _counts():
    return pd.DataFrame({"donor": "D", "tissue": ["liver", "lung"] * 6, "assay": ["CTCF"] * 6 + ["RNA"] * 6,
                         "ref_count": [3, 10, 6, 0, 8, 9, 12, 1, 7, 5, 4, 20], "alt_count": [1, 10, 2, 5, 8, 2, 3, 9, 7, 5, 4, 1]})


def test_heatmap_sums_values():
    s = pd.DataFrame({"tissue": ["a", "a", "b"], "assay": ["X", "X", "Y"], "n_snvs": [2, 3, 7]})
    fig = pl.count_heatmap(s)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0", "0", "5", "7"]  # a/X = 2 + 3, b/Y = 7, the empty cells are 0


def test_ratio_and_coverage_plots_take_an_axis():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert pl.ratio_distribution(_counts(), ax=ax) is fig
    assert pl.coverage(_counts(), ax=ax, min_total=6) is fig


def test_qq_expected_quantiles():
    p = np.array([0.5, 0.25, 0.75, 1.0])
    fig = pl.qq({"x": p})
    xy = fig.axes[0].collections[0].get_offsets()
    exp = -np.log10((np.arange(1, 5) - 0.5) / 4)
    assert np.allclose(np.asarray(xy)[:, 0], exp)
    assert np.allclose(np.asarray(xy)[:, 1], -np.log10(np.sort(p)))


def test_metric_bars_heights():
    m = pd.DataFrame({"call": ["a", "b"], "precision": [0.9, 0.5], "recall": [0.3, 0.8]})
    fig = pl.metric_bars(m)
    heights = [r.get_height() for r in fig.axes[0].patches]
    assert heights == [0.9, 0.5, 0.3, 0.8]
