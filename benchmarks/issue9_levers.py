"""Issue 9 levers of the sixth session, on chapter 03's CTCF split (needs results/03 and results/04 of
`make book PROFILE=default`). Chapter 04's chosen candidate (reference head, centre +-4 bp, 15-bp convolution,
lr 5e-4, 3 epochs, seed 0, one torch thread) with overrides:

    python benchmarks/issue9_levers.py NAME [alleles=1] [convmax=1] [hls=10] [lr=1e-3] [epochs=6] [head=siamese]

alleles: nucleotide_conv_alleles; convmax: classifier_conv_max; hls: TrainConfig.head_lr_scale. These options
exist only at the commit named in benchmarks/README.md ("Three more levers"); none helped, so main does not keep
them. Appends one JSON line per run to levers.jsonl in the working directory."""
import json, sys, time
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
from allelic import config
from allelic.models import load_model
from allelic.tokenize import load_tokenizer
from allelic.train import TrainConfig, finetune, predict, seed_everything
from allelic.evaluate import binary_metrics
name = sys.argv[1]
kw = dict(a.split('=') for a in sys.argv[2:])
convmax = kw.pop("convmax", "0") == "1"; conv = int(kw.pop("conv", 15)); alleles = kw.pop('alleles', '0') == '1'; head = kw.pop('head', 'reference')
hls = float(kw.pop("hls", 1)); lr = float(kw.pop("lr", 5e-4)); epochs = int(kw.pop('epochs', 3)); flank = int(kw.pop('flank', 4))
ck = json.loads((config.results_dir('04') / 'checkpoints.json').read_text())['simulator']
ex = pd.read_csv(config.results_dir('03') / 'examples.tsv.gz', sep='\t')
ex = ex[ex.assay == 'CTCF']
parts = {s: ex[ex.split == s] for s in ('train', 'val', 'test')}
tok = load_tokenizer(ck)
seed_everything(0)
model = load_model(ck, task='classification', num_labels=2, classifier_head=head, classifier_pooling='centre',
                   classifier_centre_flank=flank, nucleotide_conv_width=conv, nucleotide_conv_alleles=alleles, classifier_conv_max=convmax)
cfg = TrainConfig(learning_rate=lr, batch_size=32, epochs=epochs, random_state=0, progress=False, head_lr_scale=hls)
res = finetune(model, tok, parts['train'], parts['val'], config=cfg)
p = predict(res.model, tok, parts['test'].seq_ref, parts['test'].seq_alt) if (head == 'siamese' or alleles) else predict(res.model, tok, parts['test'].seq_ref)
m = binary_metrics(parts['test'].label, p)
out = dict(name=name, val=round(res.best['val_auroc'], 4), test=round(m['auroc'], 4), seconds=round(res.seconds), best_step=res.best_step, **{k: v for k, v in dict(hls=hls, convmax=convmax, conv=conv, alleles=alleles, head=head, lr=lr, epochs=epochs, flank=flank).items()})
print(json.dumps(out)); open('levers.jsonl', 'a').write(json.dumps(out) + '\n')
