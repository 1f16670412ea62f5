"""Background allelic dosage on the real HEK293 CTCF VCFs: `allelic.dosage.segment` against BABACHI.

BABACHI (PyPI `babachi`, the ADASTRA/MIXALIME authors' BAD segmenter) pins an older pandas, so it runs from its own
virtual environment, never the book's:

    python3 -m venv /tmp/venv_mix && /tmp/venv_mix/bin/pip install babachi mixalime "pandas<2" "numpy<2"
    .venv/bin/python benchmarks/bench_dosage.py --hek293 ../shared/data/hek293_ctcf --babachi /tmp/venv_mix/bin/babachi

Both segment the pooled sites of the ten VCFs (63,969 records; each record a separate event, as BABACHI's
``--snp-strategy SEP``) over the same candidate BADs; the VCFs keep only sites with both alleles >= 5 reads, which
both are told (ours: ``min_count=5``; BABACHI's default allele threshold is 5). Prints the share of sites per BAD for
each, the site-level agreement, and the wall times (the ratio is the comparison; BABACHI runs with 2 jobs)."""
from __future__ import annotations

import argparse
import gzip
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from allelic import dosage
from allelic.counts import read_vcf_ad

STATES = "1,4/3,3/2,2,5/2,3,4,5,6"


def merged_vcf(vcfs, out: Path) -> None:
    """One single-sample VCF of every record of ``vcfs``, sorted by chromosome number and position."""
    recs, meta = [], None
    for f in vcfs:
        with gzip.open(f, "rt") as fh:
            lines = fh.readlines()
        meta = meta or [ln for ln in lines if ln.startswith("##")]
        recs += [ln.rstrip("\n").split("\t") for ln in lines if not ln.startswith("#")]
    rank = {f"chr{i}": i for i in range(1, 23)} | {"chrX": 23, "chrY": 24}
    recs.sort(key=lambda r: (rank.get(r[0], 99), int(r[1])))
    with open(out, "w") as fh:
        fh.writelines(meta)
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tHEK293\n")
        fh.writelines("\t".join(r[:10]) + "\n" for r in recs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hek293", required=True, help="folder of the HEK293 VCFs")
    ap.add_argument("--babachi", required=True, help="the babachi executable of its own virtual environment")
    a = ap.parse_args(argv)
    vcfs = sorted(Path(a.hek293).glob("*.vcf.gz"))
    sites = pd.concat([read_vcf_ad(v).table for v in vcfs], ignore_index=True)
    t0 = time.perf_counter()
    ours = dosage.segment(sites, min_count=5)
    t_ours = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        vcf = Path(tmp) / "hek293.vcf"
        merged_vcf(vcfs, vcf)
        t0 = time.perf_counter()
        subprocess.run([a.babachi, str(vcf), "-O", str(Path(tmp) / "badmap.bed"), "-s", STATES, "--snp-strategy",
                        "SEP", "-j", "2"], check=True, capture_output=True)
        t_bab = time.perf_counter() - t0
        bab = pd.read_csv(Path(tmp) / "badmap.bed", sep="\t").rename(columns={"#chr": "chrom", "BAD": "bad"})
    theirs = dosage.assign(ours.sites.drop(columns=["bad", "segment"]), bab[["chrom", "start", "end", "bad"]])
    both = ours.sites.loc[theirs.index]
    share = pd.DataFrame({"ours": ours.sites["bad"].round(3).value_counts(normalize=True),
                          "BABACHI": theirs["bad"].round(3).value_counts(normalize=True)}).fillna(0).sort_index()
    print(share.round(3).to_string())
    same = np.isclose(both["bad"].to_numpy(), theirs["bad"].to_numpy(), atol=1e-3)
    print(f"sites: {len(sites)}; in BABACHI's map: {len(theirs)}; same BAD: {same.mean():.3f}; "
          f"both BAD 1 or both > 1: {np.mean((both['bad'].to_numpy() > 1) == (theirs['bad'].to_numpy() > 1)):.3f}")
    print(f"segments: ours {len(ours.segments)} (rho {ours.params['rho']}), BABACHI {len(bab)}")
    print(f"wall time: ours {t_ours:.1f} s, BABACHI {t_bab:.1f} s (ratio {t_ours / t_bab:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
