"""Baseline predictors of allele-specific (AS) SNVs from the sequence window around them (paper figure 9B).

Every model answers one question — *is this heterozygous SNV allele-specific?* — from the two alleles' windows
of one example, and all share one small interface, :class:`Baseline`::

    model.fit(train, val=None) -> model        # val: early stopping / choice of C, never fitted on
    model.predict(df) -> np.ndarray (n,)       # score, higher = more likely AS

so that :func:`evaluate_models` serves every model, the fine-tuned transformer included (wrap it in a
:class:`Baseline` subclass, e.g. :class:`FinetunedTransformer`).

Examples
--------
An *example table* is a DataFrame with columns ``example_id, assay, label`` (0/1), ``seq_ref, seq_alt`` and
``split`` (``"train"``/``"val"``/``"test"``); ``chrom``/``pos`` are carried along but not read. ``seq_ref`` and
``seq_alt`` are equal-length windows (upper or lower case ``ACGTN``; ``N`` scores 0 in motif scans and is
skipped by k-mer counts) whose SNV sits at offset ``c = len // 2``; the alt window differs from the ref window at
most there (checked: a difference elsewhere raises ValueError naming the example).

The models
----------
================================  ===========================================================================
:class:`MotifLogistic`            (a) the assayed factor's JASPAR motif(s) at the SNV: hit on either allele,
                                  best log-odds of a window overlapping the SNV per allele, delta, ``|delta|``;
                                  standardised, L2 logistic regression
:class:`MotifScanLogistic`        (b) all 879 JASPAR2024 CORE vertebrate motifs over the whole window: hit
                                  counts and max scores of the ref window, and the alt - ref changes;
                                  standardised, L2 logistic regression
:class:`MotifGBT`                 gradient-boosted trees on the features of (b)
:class:`KmerLogistic`             k-mer counts of the ref window and alt - ref count changes; L2 logistic
:class:`GkmSVM`                   gapped k-mer (gkm-SVM-like) linear SVM on the ref window, deltaSVM-like
                                  ``delta = score(alt) - score(ref)``, then a logistic stacker on
                                  ``[score(ref), delta, |delta|]``
:class:`CNN`                      siamese DeepSEA/Basset-like CNN on the one-hot ref and alt windows
================================  ===========================================================================

The regularisation strength ``C`` of the logistic models is chosen on ``val`` (AUPRC) when ``val`` has both
classes, else by 3-fold stratified cross-validation inside ``train``; the final model is always fitted on
``train`` only. Feature rows of the motif scans, k-mers and gapped k-mers are remembered in memory by
``(settings, seq_ref, seq_alt)`` (at most ``FEATURE_CACHE_BYTES``; ``cache=False`` turns it off,
:func:`clear_feature_cache` empties it), so the models, splits and folds of one table featurise each window once.

Threads: every model defaults to ``n_jobs=1`` (see :func:`thread_limit` for the measurement behind that).

The files
---------
==============================  =============================================================================
:mod:`.features`                example tables checked and encoded (:func:`check_examples`), the feature cache
:mod:`.base`                    :class:`Baseline`, :func:`thread_limit`, the logistic models' choice of ``C``
:mod:`.motif`                   :func:`motif_snv_features`, :class:`MotifLogistic`, :class:`MotifScanner`,
                                :class:`MotifScanLogistic`, :class:`MotifGBT`
:mod:`.kmer`                    k-mer and gapped k-mer counts, :class:`KmerLogistic`, :class:`GkmSVM`
:mod:`.cnn`                     :class:`CNN`
:mod:`.transformer`             :class:`FinetunedTransformer`
:mod:`.harness`                 :func:`all_baselines`, :func:`evaluate_models`, :func:`evaluate_folds`
==============================  =============================================================================

Every name is importable from ``allelic.baselines`` itself.
"""
from __future__ import annotations

from ..motifs import ASSAY_MOTIFS, FACTOR_MOTIF_IDS, resolve_motifs
from .base import DEFAULT_CS, Baseline, thread_limit
from .cnn import CNN
from .features import FEATURE_CACHE_BYTES, ExampleCodes, check_examples, clear_feature_cache
from .harness import METRIC_COLUMNS, all_baselines, evaluate_folds, evaluate_models
from .kmer import GkmSVM, KmerLogistic, gapped_kmer_counts, gapped_patterns, kmer_counts, kmer_names
from .motif import MotifGBT, MotifLogistic, MotifScanLogistic, MotifScanner, motif_snv_features
from .transformer import FinetunedTransformer

__all__ = [
    "ASSAY_MOTIFS",
    "FACTOR_MOTIF_IDS",
    "DEFAULT_CS",
    "FEATURE_CACHE_BYTES",
    "METRIC_COLUMNS",
    "Baseline",
    "MotifLogistic",
    "MotifScanLogistic",
    "MotifGBT",
    "KmerLogistic",
    "GkmSVM",
    "CNN",
    "FinetunedTransformer",
    "all_baselines",
    "evaluate_models",
    "evaluate_folds",
    "thread_limit",
    "clear_feature_cache",
    "motif_snv_features",
    "resolve_motifs",
    "MotifScanner",
    "kmer_counts",
    "kmer_names",
    "gapped_kmer_counts",
    "gapped_patterns",
    "check_examples",
    "ExampleCodes",
]
