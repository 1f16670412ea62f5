"""Background allelic dosage on the real HEK293 CTCF VCFs: `allelic.dosage.segment` against BABACHI.

BABACHI (PyPI `babachi`, the ADASTRA/MIXALIME authors' BAD segmenter) pins an older pandas, so it runs from its own
virtual environment, never the book's:

    python3 -m venv /tmp/venv_mix && /tmp/venv_mix/bin/pip install babachi mixalime "pandas<2" "numpy<2"
    /tmp/venv_mix/bin/pip install click          # mixalime 2.29.4 imports it without declaring it
    .venv/bin/python benchmarks/bench_dosage.py --hek293 ../shared/data/hek293_ctcf --babachi /tmp/venv_mix/bin/babachi \
        --mixalime /tmp/venv_mix/bin/mixalime

Both segment the pooled sites of the ten VCFs (63,969 records; BABACHI each record a separate event,
``--snp-strategy SEP``; ours a SNV's records together) over the same candidate BADs; the VCFs keep only sites with
both alleles >= 5 reads, which both are told (ours: ``min_count=5``; BABACHI's default allele threshold is 5).
Prints the share of sites per BAD for each, the site-level agreement, and the wall times (the ratio is the
comparison; BABACHI runs with 2 jobs). With
``--mixalime``: MIXALIME (negative-binomial model, BABACHI's map, p-values combined over the VCFs, FDR 0.05) against
chapter 02's calls (the diploid beta-binomial test per VCF, ``dosage.test_imbalance_with_dosage`` with our
segmentation, and its records combined per SNV by ``dosage.combine_samples``), SNV by SNV: how many of our called
SNVs MIXALIME also calls, and whether the preferred allele agrees."""
from __future__ import annotations

import argparse
import gzip
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from allelic import dosage, stats
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


def mixalime_calls(exe: str, vcf_dir: Path, badmap: pd.DataFrame, work: Path, fdr: float = 0.05) -> pd.DataFrame:
    """MIXALIME's create / fit NB / test / combine / export on the VCFs with a BAD map; the SNVs it calls."""
    bed = work / "badmap.tsv"
    badmap.rename(columns={"chrom": "chr"})[["chr", "start", "end", "bad"]].to_csv(bed, sep="\t", index=False)
    for cmd in (["create", "hek", f"m:{vcf_dir}/*.vcf.gz", "--bad-maps", str(bed), "--no-snp-bad-check"],
                ["fit", "hek", "NB"], ["test", "hek"], ["combine", "hek"], ["export", "all", "hek", str(work / "out")]):
        subprocess.run([exe, *cmd], check=True, capture_output=True, cwd=work)
    p = pd.read_csv(work / "out" / "pvalues" / "pvals.tsv", sep="\t").rename(columns={"#chr": "chrom", "end": "pos"})
    return p[p["fdr_comb_pval"] <= fdr]


def compare_calls(vcfs, mixalime: pd.DataFrame, fdr: float = 0.05) -> pd.DataFrame:
    """Chapter 02's HEK293 call sets against MIXALIME's, SNV by SNV, with the tests conditioned on the VCFs' floor
    of 5 reads per allele (``min_count=5``: null fits, per-record tests and the combination; issue 28) and without
    (``min_count=0``: untruncated fits and tests; the segmentation conditions on the floor either way)."""
    tables = [read_vcf_ad(v).table for v in vcfs]
    theirs = dict(zip(zip(mixalime["chrom"], mixalime["pos"]), mixalime["pref_allele"]))
    rows = []
    for floor in (0, 5):
        diploid = pd.concat([stats.test_imbalance(t, group_cols=("sample",), min_total=6, null="trimmed", fdr=fdr,
                                                  random_state=0, min_count=floor).table for t in tables])
        diploid["preferred_allele"] = np.where(diploid["ratio"] > 0.5, "ref", "alt")
        aware_res = dosage.test_imbalance_with_dosage(pd.concat(tables).assign(line="HEK293"), segment_by=("line",),
                                                      group_cols=("sample",), min_total=6, fdr=fdr, min_count=floor)
        if floor == 0:  # the segmentation always conditions on the floor: the same BADs in both rows
            seg = dosage.test_imbalance_with_dosage(pd.concat(tables).assign(line="HEK293"), segment_by=("line",),
                                                    group_cols=("sample",), min_total=6, fdr=fdr, min_count=5)
            bad_map = pd.concat(s.segments for s in seg.segmentation.values())
            aware_res = dosage.test_imbalance_with_dosage(pd.concat(tables), bad_map=bad_map, group_cols=("sample",),
                                                          min_total=6, fdr=fdr, min_count=0)
        combined = dosage.combine_samples(aware_res, fdr=fdr)
        for name, t, col in (("diploid beta-binomial", diploid, "as_betabinom"),
                             ("dosage-aware", aware_res.table, "as_dosage"),
                             ("dosage-aware, samples combined", combined, "as_snv")):
            snvs = t[t[col].astype(bool)].drop_duplicates(["chrom", "pos"])
            both = [(c, p) in theirs for c, p in zip(snvs["chrom"], snvs["pos"])]
            same = [theirs.get((c, p)) == a for c, p, a in zip(snvs["chrom"], snvs["pos"], snvs["preferred_allele"])]
            rho = diploid.groupby("sample")["rho"].first().median() if col == "as_betabinom" else \
                aware_res.params["rho"].median()
            rows.append({"min_count": floor, "calls": name, "snvs": len(snvs), "also_mixalime": int(np.sum(both)),
                         "same_allele": int(np.sum(same)), "median_rho": round(float(rho), 4)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hek293", required=True, help="folder of the HEK293 VCFs")
    ap.add_argument("--babachi", required=True, help="the babachi executable of its own virtual environment")
    ap.add_argument("--mixalime", help="the mixalime executable of the same environment (optional)")
    ap.add_argument("--outlier", type=float, default=None, help="dosage.segment's outlier share (default: its own)")
    a = ap.parse_args(argv)
    vcfs = sorted(Path(a.hek293).glob("*.vcf.gz"))
    sites = pd.concat([read_vcf_ad(v).table for v in vcfs], ignore_index=True)
    t0 = time.perf_counter()
    ours = dosage.segment(sites, min_count=5, **({} if a.outlier is None else {"outlier": a.outlier}))
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
    if a.mixalime:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            theirs_calls = mixalime_calls(a.mixalime, Path(a.hek293).resolve(),
                                          bab[["chrom", "start", "end", "bad"]], Path(tmp))
            print(f"MIXALIME: {len(theirs_calls)} SNVs called at FDR 0.05 in {time.perf_counter() - t0:.0f} s")
        print(compare_calls(vcfs, theirs_calls).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
