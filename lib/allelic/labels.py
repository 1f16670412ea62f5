"""Display names of the models and scores the book compares (figure 9B, chapter 07's score gains, the text).

One table, read by the plots (:mod:`allelic.figures`), the comparison's sentences (:mod:`allelic.comparison`) and
the chapters; :mod:`allelic.baselines` names its models with the keys.
"""
from __future__ import annotations

#: model name -> label for plots and text
LABELS: dict[str, str] = {
    "motif_logistic": "factor motif + LR (a)",
    "motif_scan_logistic": "JASPAR scan + LR (b)",
    "motif_gbt": "JASPAR scan + GBT",
    "kmer_logistic": "k-mer + LR",
    "gkm_svm": "gkm-SVM (deltaSVM)",
    "cnn": "CNN",
    "transformer": "fine-tuned transformer",
    # binding first (allelic.binding_first): binding models' allele effects
    "gkm_binding": "gkm-SVM binding |effect|",
    "cnn_binding": "CNN binding |effect|",
    "cnn_binding_shuffled": "CNN binding |effect| (shuffled bg)",
    "transformer_binding": "transformer binding |effect|",
    "cnn_binding_gbt": "JASPAR GBT + CNN binding",
    "transformer_binding_first": "transformer, binding then AS",
}
