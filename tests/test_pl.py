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


def _snvs_x_tissues():
    import anndata as ad

    rng = np.random.default_rng(0)
    score = rng.normal(size=200)
    call = (rng.random((200, 3)) < 1 / (1 + np.exp(-2 * score[:, None]))).astype(float)
    call[rng.random((200, 3)) < 0.2] = np.nan                           # not measured there
    obs = pd.DataFrame({"score_transformer": score}, index=[f"s{i}" for i in range(200)])
    return ad.AnnData(X=np.nan_to_num(call), obs=obs, var=pd.DataFrame(index=["liver", "lung", "heart"]),
                      layers={"as_call": call})


def test_tissue_heatmap_shows_the_fraction_as_per_score_quintile():
    from allelic.tissues import score_bins

    a = _snvs_x_tissues()
    fig = pl.tissue_heatmap(a, score="score_transformer")
    frac = score_bins(a, "score_transformer")
    # by hand: SNVs sorted by score, 40 per quintile, NaN (not measured) left out of each mean
    order = np.argsort(a.obs["score_transformer"].to_numpy(), kind="stable")
    hand = np.array([np.nanmean(a.layers["as_call"][order[q * 40:(q + 1) * 40]], axis=0) for q in range(5)])
    np.testing.assert_allclose(frac.to_numpy(), hand)
    assert frac.attrs["n"].to_numpy().sum() == int(np.isfinite(a.layers["as_call"]).sum())
    mesh = [c for ax in fig.axes for c in ax.collections if hasattr(c, "get_array") and c.get_array() is not None
            and np.size(c.get_array()) == 15]
    np.testing.assert_allclose(np.sort(np.asarray(mesh[0].get_array()).ravel()), np.sort(hand.ravel()))


def test_bad_segments_draws_each_segments_expected_ratios():
    from allelic.dosage import Segmentation

    segs = pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [0, 0], "end": [1000, 500], "bad": [2.0, 1.0],
                         "n_sites": [3, 2], "loglik": [0.0, 0.0]})
    sites = pd.DataFrame({"chrom": ["chr1"] * 3 + ["chr2"] * 2, "pos": [10, 500, 900, 20, 400],
                          "ref_count": [10, 5, 20, 7, 8], "alt_count": [5, 10, 10, 7, 8], "bad": [2, 2, 2, 1, 1]})
    fig = pl.bad_segments(Segmentation(segs, sites, {}))
    ax = fig.axes[0]
    lines = {(round(min(l.get_xdata()), 1), round(l.get_ydata()[0], 4)) for l in ax.get_lines()
             if len(l.get_xdata()) == 2 and l.get_xdata()[0] != l.get_xdata()[1]}
    # chr1 (BAD 2) at 1/3 and 2/3 from x = 0; chr2 (BAD 1) at 1/2 from x = 1000 (after chr1's 1000 bp)
    assert lines == {(0.0, 0.3333), (0.0, 0.6667), (1000.0, 0.5)}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["BAD 1", "BAD 2"]
    assert pl.bad_label(4 / 3) == "4/3" and pl.bad_label(2.0) == "2"


def test_route_boxplots_sorts_by_median_and_colours_by_route():
    m = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "auroc": [0.5, 0.6, 0.7, 0.8, 0.9, 0.7, 0.4, 0.5, 0.6]})
    colors = {"x": (1.0, 0.0, 0.0), "y": (0.0, 0.0, 1.0)}
    fig = pl.route_boxplots(m, route_of={"a": "x", "b": "y", "c": "x"}, colors=colors, labels={"b": "B"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "a", "c"]      # medians 0.8, 0.6, 0.5
    faces = [tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in ax.patches][:3]
    assert faces == [(0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)]            # boxes top to bottom: y, x, x


def test_power_curve_draws_each_effect_bin_at_its_depths():
    p = pd.DataFrame({"effect_bin": ["(0, 0.1]", "(0, 0.1]", "(0.1, 0.2]"], "depth_bin": ["6-9", "10-19", "10-19"],
                      "n_true": [10, 20, 5], "recall": [0.1, 0.3, 0.8], "ci_low": [0.0, 0.1, 0.4],
                      "ci_high": [0.4, 0.5, 0.95]})
    fig = pl.power_curve(p, title="t")
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) and ln.get_marker() == "o"]
    assert [list(ln.get_xdata()) for ln in lines] == [[0, 1], [1]]      # depth bins in order of appearance
    assert [list(ln.get_ydata()) for ln in lines] == [[0.1, 0.3], [0.8]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["6-9", "10-19"]
