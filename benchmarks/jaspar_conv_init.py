"""JASPAR-initialised nucleotide-convolution filters against random ones (issue 9), CTCF on chapter 03's split.

    python benchmarks/jaspar_conv_init.py random|jaspar [scale]   # after make book PROFILE=default (results/03, 04)

The 128 filters start as the log-odds PWMs (x scale; bias: -threshold at p < 1e-3, x scale) of the JASPAR motifs
(width <= 15) whose hits within 7 bp of the SNV differ most between AS and non-AS *training* windows; everything
else is chapter 04's chosen candidate (reference head, centre pooling, 15-bp convolution, lr 5e-4, 3 epochs, seed 0).
Results: benchmarks/README.md.
"""
import json
import sys
import time

from allelic import config
import numpy as np, pandas as pd, torch
from allelic.models import load_model
from allelic.tokenize import load_tokenizer
from allelic.train import TrainConfig, finetune, predict, seed_everything
from allelic.evaluate import binary_metrics
from allelic.motifs import load_jaspar
from allelic.profiles import occurrence
from allelic.pwm import score_threshold

mode = sys.argv[1]            # random | jaspar
scale = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
ck = json.loads((config.results_dir('04') / 'checkpoints.json').read_text())['simulator']
ex = pd.read_csv(config.results_dir('03') / 'examples.tsv.gz', sep='\t')
ex = ex[ex.assay == 'CTCF']
parts = {s: ex[ex.split == s] for s in ('train', 'val', 'test')}
tok = load_tokenizer(ck)
seed_everything(0)
model = load_model(ck, task='classification', num_labels=2, classifier_head='reference', classifier_pooling='centre',
                   classifier_centre_flank=4, nucleotide_conv_width=15)
if mode == 'jaspar':
    t0 = time.time()
    motifs = [m for m in load_jaspar() if m.width <= 15]
    tr = parts['train']; y = tr.label.to_numpy().astype(bool); seqs = tr.seq_ref.tolist()
    # training split only: motifs whose hits at the SNV (+-7 bp) differ most between AS and non-AS windows
    score = []
    for m in motifs:
        h = occurrence(seqs, m, pvalue=1e-3)[:, 93:108].any(1)
        score.append(abs(h[y].mean() - h[~y].mean()))
    order = np.argsort(score)[::-1]
    conv = model.bert.embeddings.nucleotide_conv
    H = conv.weight.shape[0]
    with torch.no_grad():
        for ch, i in enumerate(order[:H]):
            m = motifs[i]; pwm = m.log_odds(0.8); w = m.width
            W = np.zeros((4, 15)); off = (15 - w) // 2; W[:, off:off + w] = pwm
            conv.weight[ch] = torch.as_tensor(W * scale, dtype=conv.weight.dtype)
            conv.bias[ch] = -score_threshold(m, 1e-3) * scale
    print('init', round(time.time() - t0, 1), 's; top motifs', [motifs[i].name for i in order[:8]])
cfg = TrainConfig(learning_rate=5e-4, batch_size=32, epochs=3, random_state=0, progress=False)
res = finetune(model, tok, parts['train'], parts['val'], config=cfg)
p = predict(res.model, tok, parts['test'].seq_ref)
m = binary_metrics(parts['test'].label, p)
print(mode, scale, 'val', round(res.best['val_auroc'], 4), 'test', round(m['auroc'], 4), 'seconds', round(res.seconds))
