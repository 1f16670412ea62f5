"""Descriptive summaries of allelic counts tables (the numbers behind chapter 01)."""
from __future__ import annotations

import numpy as np
import pandas as pd

_REQUIRED = ["ref_count", "alt_count"]


def coverage_summary(counts: pd.DataFrame, by=("donor", "tissue", "assay"), *, min_total: int = 6) -> pd.DataFrame:
    """Per group: ``n_snvs`` (rows), ``n_testable`` (total >= ``min_total``), ``median_total``, ``mean_total``,
    ``pooled_ref_ratio`` (sum ref / sum total: above 0.5 reveals reference mapping bias) and
    ``median_ref_ratio``. ``counts`` is in the counts schema (:mod:`allelic.io`)."""
    missing = [c for c in (*_REQUIRED, *by) if c not in counts.columns]
    if missing:
        raise ValueError(f"counts table lacks column(s) {', '.join(missing)}")
    t = counts.assign(total=counts["ref_count"] + counts["alt_count"])
    t = t.assign(ratio=t["ref_count"] / t["total"].where(t["total"] > 0), testable=t["total"] >= min_total)
    g = t.groupby(list(by), sort=True, observed=True)
    out = g.agg(n_snvs=("total", "size"), n_testable=("testable", "sum"), median_total=("total", "median"),
                mean_total=("total", "mean"), ref_sum=("ref_count", "sum"), total_sum=("total", "sum"),
                median_ref_ratio=("ratio", "median"))
    out["pooled_ref_ratio"] = out.pop("ref_sum") / out.pop("total_sum")
    return out.reset_index()


def het_snv_counts(variants: dict) -> pd.DataFrame:
    """``{donor: table of het SNVs}`` -> one row per donor: ``n_het_snvs`` and ``n_phased``."""
    rows = [(d, len(v), int(v["phased"].sum()) if "phased" in v else np.nan) for d, v in variants.items()]
    return pd.DataFrame(rows, columns=["donor", "n_het_snvs", "n_phased"])


#: what a number that needs the simulator's planted truth reads on your own data
NO_TRUTH = "not known (your own data have no planted truth)"


def truth_text(value, spec: str, truth) -> str:
    """``value`` formatted with ``spec`` when the data set has a planted truth (``truth`` not None), else
    :data:`NO_TRUTH`: the glued text of numbers that only the simulator can give."""
    return NO_TRUTH if truth is None else format(value() if callable(value) else value, spec)


def data_set(data) -> pd.DataFrame:
    """What a chapter runs on (a :class:`allelic.samplesheet.SampleSheet`): the sheet, VCF, reference, samples and
    what was mapped automatically, as a two-column table."""
    from . import config

    rows = {"data": data.label, "sample sheet": config.shown(data.path), "VCF": config.shown(data.vcf),
            "reference": config.shown(data.reference), "samples": len(data.table),
            "donors": ", ".join(data.donors), "assays": ", ".join(data.assays),
            "replicated units": int((data.table.groupby("unit").size() > 1).sum()),
            "planted truth": "yes (simulator)" if data.has_truth else "no: sections that need it are skipped"}
    rows.update({f"note {i + 1}": n for i, n in enumerate(data.notes)})
    return pd.Series(rows, name="value").to_frame()
