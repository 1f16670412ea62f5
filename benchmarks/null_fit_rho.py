"""How far the fitted over-dispersion sits from the planted one on chapter 02's simulated cell line (issue 28).

For seeds 0 and 1 (preset ``smoke``, 4 chromosomes of 2 Mb, D2 aneuploid), every sample's records of its largest
BAD class (the planted map) are fitted with ``nullfit.fit_dosage_null`` at trimming levels 0.05 (the library's
default), 0.2 and 0.4; with a two-dispersion beta-binomial mixture (null ``BetaBin(p, rho0)`` plus a broad
``BetaBin(p, rho1)``, ``rho1 > rho0``, by maximum likelihood; diploid donor only, where the null is one component);
and, as the reference, on the truly null records alone. Prints the fitted / planted ratio: median over the samples,
and the 10th-90th percentiles.

    .venv/bin/python benchmarks/null_fit_rho.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy.stats import betabinom

from allelic import dosage, io, simulate
from allelic.nullfit import fit_dosage_null


def _bb(k, n, p, r):
    return betabinom.logpmf(k, n, p * (1 - r) / r, (1 - p) * (1 - r) / r)


def fit_mixture(k, n) -> float:
    """The null component's rho of a two-dispersion beta-binomial mixture fitted by maximum likelihood."""
    def unpack(x):
        return (special.expit(x[0]), 0.3 + 0.4 * special.expit(x[1]), 0.5 * special.expit(x[2]),
                0.5 * special.expit(x[3]))

    def nll(x):
        pi, p, r0, r1 = unpack(x)
        if r1 <= r0:
            return 1e300
        return -np.logaddexp(np.log(pi) + _bb(k, n, p, r0), np.log1p(-pi) + _bb(k, n, p, r1)).sum()

    fits = [optimize.minimize(nll, [special.logit(0.8), 0.0, special.logit(0.06), special.logit(r1 / 0.5)],
                              method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8})
            for r1 in (0.2, 0.4)]
    return float(unpack(min(fits, key=lambda f: f.fun).x)[2])


def main():
    rows = []
    for seed in (0, 1):
        sim = simulate.simulate("smoke", n_chromosomes=4, chrom_length=2_000_000, cnv_donors=("D2",),
                                random_state=seed)
        counts = io.simulation_counts(sim, min_base_quality=13, min_mapping_quality=10)
        counts = counts[counts["total"] >= 6].merge(sim.truth()[["sample", "chrom", "pos", "is_as"]],
                                                    on=["sample", "chrom", "pos"], how="left")
        counts["is_as"] = counts["is_as"].astype("boolean").fillna(False).astype(bool)
        planted_rho = sim.samples().set_index("sample")["rho"]
        bad_map = dosage.read_bad_map(sim.root / "bad_maps" / "D2.bed")
        for donor, g in counts.groupby("donor"):
            g = dosage.assign(g, bad_map) if donor == "D2" else g.assign(bad=1.0)
            for sample, h in g.groupby("sample"):
                h = h[h["bad"] == h["bad"].value_counts().idxmax()]
                b, truth = float(h["bad"].iloc[0]), planted_rho[sample]
                r = {"seed": seed, "donor": donor, "sample": sample}
                for alpha in (0.05, 0.2, 0.4):
                    fit = fit_dosage_null(h["ref_count"], h["total"], b, alpha=alpha)
                    r[f"trimmed, alpha {alpha}"] = fit.rho / truth
                if donor == "D1":
                    r["two-dispersion mixture"] = fit_mixture(h["ref_count"].to_numpy(),
                                                              h["total"].to_numpy()) / truth
                null = h[~h["is_as"]]
                fit = fit_dosage_null(null["ref_count"], null["total"], b, alpha=1e-9)  # no trimming: all are null
                r["truly null records only"] = fit.rho / truth
                rows.append(r)
    t = pd.DataFrame(rows)
    cols = [c for c in t.columns if c not in ("seed", "donor", "sample")]
    def cell(s):
        return f"{s.median():.2f} ({s.quantile(0.1):.2f}-{s.quantile(0.9):.2f})" if s.notna().any() else ""

    out = t.groupby(["seed", "donor"])[cols].agg(cell)
    print(out.T.to_markdown())


if __name__ == "__main__":
    main()
