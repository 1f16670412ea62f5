"""The workflow's dry run on a generated sample sheet of EN-TEx's scale (about 1,600 BAMs): how long Snakemake takes
to plan it, and that it lists one count job per BAM.

    .venv/bin/python benchmarks/workflow_sheet.py --rows 1600 --out /tmp/sheet1600

The sheet's rows are 4 donors x 25 tissues x 8 assays x 2 replicates; each row's BAM is a symbolic link to one BAM of
the smoke simulation (with its index), so the files exist without 1,600 real alignments. Prints the job counts per
rule and the wall time of `snakemake -n` (SLURM profile, smoke parameters) as JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_sheet(rows: int, out: Path, sim) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bam").mkdir(exist_ok=True)
    donors = [f"ENTX{i}" for i in range(1, 5)]
    tissues = [f"tissue{i:02d}" for i in range(1, 26)]
    assays = ["CTCF", "POL2", "H3K4me3", "H3K27ac", "H3K4me1", "H3K27me3", "ATAC", "RNA"]
    src = sim.root / "bam" / "D1_liver_CTCF.bam"
    lines = ["sample\tdonor\ttissue\tassay\tbam\treplicate"]
    for d, t, a, r in itertools.islice(itertools.product(donors, tissues, assays, (1, 2)), rows):
        name = f"{d}_{t}_{a}_rep{r}"
        for ext in (".bam", ".bam.bai"):
            link = out / "bam" / f"{name}{ext}"
            if not link.exists():
                link.symlink_to(Path(f"{src}{ext[4:]}" if ext != ".bam" else src))
        lines.append(f"{name}\t{d}\t{t}\t{a}\tbam/{name}.bam\t{r}")
    (out / "samples.tsv").write_text("\n".join(lines) + "\n")
    return out / "samples.tsv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1600)
    ap.add_argument("--out", type=Path, default=Path("/tmp/sheet1600"))
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "lib"))
    from allelic import simulate

    sim = simulate.simulate("smoke", random_state=0)
    sheet = make_sheet(a.rows, a.out, sim)
    # the donors of the generated sheet must be VCF samples: a VCF whose sample columns are renamed
    vcf = a.out / "phased.vcf.gz"
    if not vcf.exists():
        import gzip

        import pysam

        with gzip.open(sim.vcf, "rt") as fi, open(a.out / "phased.vcf", "w") as fo:
            for line in fi:
                if line.startswith("#CHROM"):
                    f = line.rstrip("\n").split("\t")
                    line = "\t".join(f[:9] + ["ENTX1", "ENTX2", "ENTX3", "ENTX4"]) + "\n"
                elif not line.startswith("#"):
                    f = line.rstrip("\n").split("\t")
                    line = "\t".join(f + f[9:11]) + "\n"
                fo.write(line)
        pysam.tabix_compress(str(a.out / "phased.vcf"), str(vcf), force=True)
        pysam.tabix_index(str(vcf), preset="vcf", force=True)
    env = {**os.environ, "ALLELIC_RESULTS_DIR": str(a.out / "results"), "ALLELIC_BUILD_DIR": str(a.out / "build")}
    for v in ("ALLELIC_ENTEX_DIR", "ALLELIC_HEK293_DIR", "ALLELIC_PRETRAIN_CORPUS", "ALLELIC_TOKENIZER_DIR"):
        env.pop(v, None)
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", "workflow/Snakefile", "--profile",
           "workflow/profiles/slurm", "-n", "--quiet", "rules", "--config", "profile=smoke", f"samples={sheet}",
           f"vcf={vcf}", f"reference={sim.fasta}"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
        return 1
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", r.stdout + r.stderr, re.M)}
    print(json.dumps({"rows": a.rows, "dry_run_seconds": round(wall, 1), "jobs": jobs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
