"""The ``allelic`` command line: one entry point for the book's tools.

    allelic run --profile smoke            # execute the chapters (python -m allelic.run)
    allelic simulate --preset default      # write a simulated personal epigenome
    allelic count --samples S.tsv --vcf V.vcf.gz --reference G.fa --out counts/   # your own BAMs/CRAMs
    allelic test --counts counts/ --out as_catalogue.tsv   # AS calls: TSV + bgzipped, indexed VCF
    allelic figures                        # redraw figures from saved results
    allelic predict --model DIR --windows FILE.tsv   # score SNVs with a fine-tuned model
    allelic pretrain --corpus DIR --preset cpu       # MLM-pretrain on a corpus of unlabelled DNA
    allelic finetune --base DIR --train FILE.tsv --out DIR   # fine-tune on labelled SNV windows
    allelic motifs --model DIR --windows FILE.tsv --out DIR  # attention, motif enrichment, de novo motifs
    allelic step count --profile smoke --sample S    # one heavy step of a chapter (workflow/Snakefile's rules)
"""
from __future__ import annotations

import sys

COMMANDS = {
    "run": ("allelic.run", "execute the book's chapters with papermill"),
    "simulate": ("allelic.simulate", "write a simulated personal epigenome"),
    "count": ("allelic.as_calls:count_main", "count reads per allele in every BAM/CRAM of a sample sheet"),
    "test": ("allelic.as_calls:test_main", "test counted SNVs for allelic imbalance; the AS catalogue as TSV and VCF"),
    "figures": ("allelic.figures", "redraw the figures from saved results"),
    "predict": ("allelic.predict", "score SNV windows (TSV, or VCF + FASTA) with a fine-tuned model"),
    "pretrain": ("allelic.pretrain", "MLM-pretrain the DNABERT-2 architecture on a corpus of unlabelled DNA"),
    "finetune": ("allelic.finetune", "fine-tune a checkpoint on labelled SNV windows (TSV)"),
    "motifs": ("allelic.explain", "attention profiles, motif enrichment and de novo motifs of a fine-tuned model"),
    "step": ("allelic.steps", "one heavy step of a chapter (count, test, pretrain, finetune, baselines), for a workflow"),
}


def main(argv=None) -> int:
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: allelic COMMAND [options]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<10} {text}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module, _, func = COMMANDS[argv[0]][0].partition(":")
    return getattr(importlib.import_module(module), func or "main")(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
