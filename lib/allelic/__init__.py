"""allelic — allele-specific activity in personal epigenomes.

One concept per module, in layers: a module imports only from its own layer and the layers above it
(``tests/test_layout.py`` checks it).

foundation
    :mod:`~allelic.config` (paths, environment variables, profiles), :mod:`~allelic.cache` (results keyed by
    parameters), :mod:`~allelic.ledger` (what every filter removed, and why), :mod:`~allelic.progress`,
    :mod:`~allelic.provenance`, :mod:`~allelic.labels` (display names), :mod:`~allelic.reference` (contig order, the
    FASTA, reference-allele checks)
statistics
    :mod:`~allelic.stats` (``test_imbalance``) over :mod:`~allelic.pvalues`, :mod:`~allelic.nullfit` and
    :mod:`~allelic.fdr`; :mod:`~allelic.dosage` (background allelic dosage); :mod:`~allelic.evaluate` (metrics)
sequence
    :mod:`~allelic.motifs` (alphabet, JASPAR, which motifs an assay means), :mod:`~allelic.pwm` (the one PWM
    scorer), :mod:`~allelic.profiles` (motif hits along windows), :mod:`~allelic.tokenize`
inputs
    :mod:`~allelic.simulate` (a personal epigenome with ground truth: the book's embedded default),
    :mod:`~allelic.samplesheet` (your own BAM/CRAM, phased VCF and FASTA, checked), :mod:`~allelic.variants`
    (heterozygous SNVs and ``AD`` from VCFs), :mod:`~allelic.counts` (reads per allele from BAMs) with its engine
    :mod:`~allelic.bamscan`, :mod:`~allelic.io` (EN-TEx tables, a data set's counts), :mod:`~allelic.catalogue` (the
    AS catalogue as a VCF)
examples
    :mod:`~allelic.datasets` (examples from calls), :mod:`~allelic.windows`, :mod:`~allelic.splits` (leak-free),
    :mod:`~allelic.corpus` (pretraining windows and their leak guard), :mod:`~allelic.binding` (bound sequences against
    GC-matched background, leak-free, for learning a factor's binding before its alleles)
models
    :mod:`~allelic.dnabert2` (the native DNABERT-2), :mod:`~allelic.checkpoints` (loading),
    :mod:`~allelic.model_size`, :mod:`~allelic.models` (the three in one namespace), :mod:`~allelic.train`,
    :mod:`~allelic.distributed` (several processes), :mod:`~allelic.pretrain`, :mod:`~allelic.language_model`,
    :mod:`~allelic.finetune` and :mod:`~allelic.predict` (command lines)
comparisons
    :mod:`~allelic.baselines` (features, one file per model family, the fold harness), :mod:`~allelic.comparison`,
    :mod:`~allelic.binding_first` (binding models on each fold, their allele effects as AS scores),
    :mod:`~allelic.attention`, :mod:`~allelic.denovo` with :mod:`~allelic.kmer_enrichment`,
    :mod:`~allelic.motif_assembly` and :mod:`~allelic.meme` (TOMTOM, MEME files), :mod:`~allelic.tissues`,
    :mod:`~allelic.describe`
presentation and running
    :mod:`~allelic.explain` (``allelic motifs``), :mod:`~allelic.pl` (plots of computed results),
    :mod:`~allelic.figures`, :mod:`~allelic.run` (papermill), :mod:`~allelic.as_calls` (``allelic count`` and
    ``allelic test``), :mod:`~allelic.steps` (the workflow's steps),
    :mod:`~allelic.cli`
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
