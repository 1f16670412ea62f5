"""allelic — allele-specific activity in personal epigenomes.

One concept per module:

- :mod:`allelic.simulate`  — a synthetic personal epigenome with ground truth (the book's embedded default)
- :mod:`allelic.motifs`    — JASPAR motifs, PWM log-odds scores and scans
- :mod:`allelic.counts`    — reads per allele at heterozygous SNVs (BAM) and allelic depth (VCF ``AD``)
- :mod:`allelic.stats`     — binomial / beta-binomial imbalance tests and FDR
- :mod:`allelic.io`        — EN-TEx tables and the simulator's manifest in one counts schema
- :mod:`allelic.models`    — the DNABERT-2 architecture (native), checkpoint loading
- :mod:`allelic.attention` — where a classifier looks: attention per base, in-silico mutagenesis
- :mod:`allelic.finetune`  — fine-tuning on a user's labelled windows (``allelic finetune``)
- :mod:`allelic.denovo`    — de novo motifs from per-base scores, TOMTOM matches against JASPAR
- :mod:`allelic.explain`   — attention against motif enrichment, de novo motifs (``allelic motifs``)
- :mod:`allelic.tissues`   — SNVs x tissues (AnnData) and nested models of tissue-specific effects
- :mod:`allelic.config`    — paths, environment variables and run profiles
- :mod:`allelic.run`       — the papermill runner behind ``make book``
- :mod:`allelic.pl`        — plots of what the other modules computed
"""
from __future__ import annotations

__version__ = "0.1.0"


def versions() -> dict:
    """Versions of Python, ``allelic`` and the key dependencies that are importable (for notebook headers)."""
    import importlib
    import platform

    out = {"python": platform.python_version(), "allelic": __version__}
    for name in ["numpy", "pandas", "scipy", "statsmodels", "pysam", "pyjaspar", "matplotlib", "seaborn", "torch", "transformers"]:
        try:
            mod = importlib.import_module(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            continue
    return out
