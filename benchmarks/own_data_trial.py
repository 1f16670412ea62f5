"""Your own data, tried as a new user would (issue 26's must-show), on a simulated data set of its own:

1. ``allelic simulate --out DIR/mydata --random-state 1``: a data set in a folder of its own;
2. half of its BAMs converted to CRAM with ``samtools view -C -T genome.fa`` (+ ``samtools index``), the BAMs removed;
3. the sample sheet moved to another folder (``DIR/sheets/``) with its paths rewritten relative to it;
4. ``make book PROFILE=smoke`` with ``ALLELIC_SAMPLES``, ``ALLELIC_VCF``, ``ALLELIC_REFERENCE`` set (results and build
   in ``DIR``, no other real data);
5. chapter 02's calls (``results/02/imbalance.tsv.gz``, q-values) at FDR 0.05 against the folder's planted truth
   (``truth.tsv.gz``, which the book never read): false discovery proportion and recall; and the same calls made on
   the simulator's path (the folder read as a :class:`allelic.simulate.Simulation`, counted and tested with chapter
   02's smoke settings) must be equal.

    .venv/bin/python benchmarks/own_data_trial.py --out /tmp/own_trial      # about 10 min on 2 cores

Prints a JSON summary; exits 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PY = ROOT / ".venv" / "bin" / "python"


def prepare(out: Path, random_state: int) -> dict:
    data = out / "mydata"
    if not (data / "manifest.json").is_file():
        subprocess.run([str(ROOT / ".venv" / "bin" / "allelic"), "simulate", "--out", str(data), "--random-state",
                        str(random_state)], check=True)
    sheet = pd.read_csv(data / "samples.tsv", sep="\t")
    for i, bam in enumerate(sheet["bam"]):
        if i % 2 == 1 and bam.endswith(".bam"):
            cram = bam[:-4] + ".cram"
            subprocess.run(["samtools", "view", "-C", "-T", str(data / "genome.fa"), "-o", str(data / cram),
                            str(data / bam)], check=True)
            subprocess.run(["samtools", "index", str(data / cram)], check=True)
            (data / bam).unlink()
            (data / f"{bam}.bai").unlink()
            sheet.loc[i, "bam"] = cram
    sheets = out / "sheets"
    sheets.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(data, sheets)
    for col in ("bam", "peaks"):
        sheet[col] = [f"{rel}/{p}" if not p.startswith(rel) else p for p in sheet[col]]
    sheet.to_csv(sheets / "samples.tsv", sep="\t", index=False)
    (data / "samples.tsv").unlink(missing_ok=True)  # the sheet lives only in its new folder
    return {"ALLELIC_SAMPLES": str(sheets / "samples.tsv"), "ALLELIC_VCF": str(data / "variants.vcf.gz"),
            "ALLELIC_REFERENCE": str(data / "genome.fa")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/own_trial"))
    ap.add_argument("--random-state", type=int, default=1)
    ap.add_argument("--fdr", type=float, default=0.05)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    own = prepare(a.out, a.random_state)
    env = {k: v for k, v in os.environ.items() if k not in ("ALLELIC_ENTEX_DIR", "ALLELIC_HEK293_DIR",
                                                            "ALLELIC_PRETRAIN_CORPUS", "ALLELIC_TOKENIZER_DIR")}
    env.update(own, ALLELIC_RESULTS_DIR=str(a.out / "results"), ALLELIC_BUILD_DIR=str(a.out / "build"))
    t0 = time.perf_counter()
    r = subprocess.run(["make", "book", "PROFILE=smoke"], cwd=ROOT, env=env, capture_output=True, text=True)
    book_s = time.perf_counter() - t0
    (a.out / "make_book.log").write_text(r.stdout + r.stderr)
    checks = {"book_renders": r.returncode == 0 and (a.out / "build" / "_build" / "html" / "index.html").is_file()}
    if not checks["book_renders"]:
        print(r.stdout[-3000:] + r.stderr[-3000:], file=sys.stderr)

    sys.path.insert(0, str(ROOT / "lib"))
    from allelic import as_calls, config, evaluate, io, simulate

    calls = pd.read_csv(a.out / "results" / "02" / "imbalance.tsv.gz", sep="\t")
    calls["as_05"] = calls["q_betabinom"] <= a.fdr
    data = a.out / "mydata"
    truth = pd.read_csv(data / "truth.tsv.gz", sep="\t")
    m = evaluate.call_metrics(calls, truth, ["as_05"]).iloc[0]
    # the simulator's path on the same files: the folder as a Simulation (its own sheet written back for it)
    p2 = config.chapter_parameters("smoke", "02")
    sim_sheet = pd.read_csv(own["ALLELIC_SAMPLES"], sep="\t")
    rel = os.path.relpath(data, Path(own["ALLELIC_SAMPLES"]).parent)
    for col in ("bam", "peaks"):
        sim_sheet[col] = sim_sheet[col].str.replace(f"{rel}/", "", regex=False)
    sim_sheet.to_csv(data / "samples.tsv", sep="\t", index=False)
    sim = simulate.Simulation(data, simulate.get_params("smoke", random_state=a.random_state))
    p1 = config.chapter_parameters("smoke", "01")
    direct = as_calls.call(io.sheet_counts(sim, min_base_quality=p1["min_base_quality"],
                                           min_mapping_quality=p1["min_mapping_quality"]),
                           min_total=p2["min_total"], fdr=p2["fdr"], null=p2["null"], fit_by=p2["fit_by"],
                           random_state=p2["random_state"]).replicates.table
    key = ["sample", "chrom", "pos"]
    both = calls.merge(direct, on=key, suffixes=("", "_sim"), how="outer", indicator=True)
    same_rows = bool((both["_merge"] == "both").all())
    checks["fdp_at_most_0.1"] = bool(m["fdp"] <= 0.1)
    checks["equal_to_simulator_path"] = same_rows and bool(
        (both["as_betabinom"] == both["as_betabinom_sim"]).all()
        and ((both["q_betabinom"] - both["q_betabinom_sim"]).abs() <= 1e-12).all()
        and (both["ref_count"] == both["ref_count_sim"]).all())
    crams = int(sim_sheet["bam"].str.endswith(".cram").sum())
    summary = {"samples": len(sim_sheet), "cram": crams, "make_book_seconds": round(book_s, 1),
               "tested": len(calls), "called_at_fdr": a.fdr, "calls": int(m["tp"] + m["fp"]),
               "fdp": round(float(m["fdp"]), 4), "recall": round(float(m["recall"]), 4),
               "rows_equal_to_simulator_path": same_rows, "checks": checks}
    catalogue = a.out / "results" / "02" / "as_catalogue.vcf.gz"
    if catalogue.is_file() and shutil.which("bcftools"):
        n = subprocess.run(["bcftools", "view", "-H", str(catalogue)], capture_output=True, text=True, check=True)
        summary["catalogue_vcf_records"] = len(n.stdout.splitlines())
    print(json.dumps(summary, indent=1))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
