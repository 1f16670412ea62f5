"""MIXALIME against chapter 02's tests on the simulator's truth (issue 28, part 1).

The simulated cell line of chapter 02 (preset ``smoke``, 4 chromosomes of 2 Mb, donor D2 aneuploid, D1 diploid;
three tissues x five assays each) over several seeds. For every donor the same allelic counts go to

* **ours**: ``dosage.test_imbalance_with_dosage`` (phased segmentation of the donor's samples, the null fitted per
  sample) and ``dosage.combine_samples`` (one exact test per SNV over the donor's samples), FDR 0.05;
* **MIXALIME** 2.29 (``create / fit / test / combine``; its default floor of 5 reads on each allele) on one VCF per
  sample with ``AD``, with BABACHI's BAD map of the donor's pooled records (``--snp-strategy SEP``, candidate BADs
  as ``bench_dosage.py``) — the field's pipeline — with two of its models (:data:`MODELS`: the negative binomial of
  each allele, and the beta negative binomial with the allelic ratio estimated); and
* both again with the **planted** BAD map, to tell the segmentation's share of a difference from the test's.

Per SNV (a donor's SNV is truly allele-specific when it is in any sample it was measured in; every SNV measured
in the donor is in the universe, so the methods share one denominator) and per sample (MIXALIME's per-sample
p-values with its Benjamini-Hochberg per allele over the donor's records): calls, false-discovery proportion (FDP)
and recall at FDR 0.05, and the recall each ranking reaches at the deepest cut where its FDP is still at most 0.05
(``recall_at_fdp``: the comparison at equal FDP, for a method whose FDP runs above the nominal level).

BABACHI and MIXALIME pin an older pandas, so they run from their own virtual environment (``bench_dosage.py``'s
docstring has the recipe):

    .venv/bin/python benchmarks/mixalime_truth.py --mixalime /tmp/venv_mix/bin/mixalime \
        --babachi /tmp/venv_mix/bin/babachi --seeds 0 1 2 3 4 --out benchmarks/mixalime_truth

Also ``ours, two-stage BH``: our SNV p-values with the adaptive two-stage Benjamini-Krieger-Yekutieli procedure
(it estimates the share of null SNVs; statsmodels' ``fdr_tsbky``), a power lever measured here before the library
adopts it.

Also ``planted, planted null``: our test with the planted BAD map and the simulator's own over-dispersion and
mapping bias instead of the fitted ones (the oracle null: what the null fit costs). ``--ours-only`` runs our rows
without BABACHI and MIXALIME.

Writes ``<out>/metrics.tsv`` (one row per seed x donor x method x map x level), ``<out>/summary.tsv`` (ranges
over the seeds), ``<out>/snvs.tsv.gz`` (every SNV: truth, effect, reads, each method's call) and
``<out>/power.tsv`` (per SNV, with each method's own BAD map: recall by the SNV's largest planted effect
``|r - 0.5|`` and its reads summed over the donor's samples, :func:`allelic.evaluate.power_table` pooled over the
seeds), and prints the summary as Markdown. ``--babachi-shares`` writes ``<out>/babachi_shares.tsv`` (the share of
each donor's SNVs at each BAD of BABACHI's map). Chapter 02 reads ``summary.tsv``, ``power.tsv`` and
``babachi_shares.tsv`` when they are present.
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dosage import STATES  # noqa: E402

from allelic import dosage, evaluate, io, simulate  # noqa: E402
from allelic.fdr import bh_fdr  # noqa: E402

FDR = 0.05
SNV = ["chrom", "pos"]
#: a SNV's reads summed over the donor's 15 samples (median about 120 on chapter 02's cell line)
SNV_DEPTH_BINS = (0, 20, 50, 100, 200, 400, np.inf)


def write_vcfs(counts: pd.DataFrame, fai: Path, out: Path) -> list[Path]:
    """One single-sample VCF (GT 0/1, AD) per sample of ``counts``; returns the files."""
    header = ["##fileformat=VCFv4.2"] + [f"##contig=<ID={n},length={ln}>" for n, ln, *_ in
                                         (line.split("\t") for line in fai.read_text().splitlines())]
    header += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
               '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">']
    files = []
    for sample, g in counts.groupby("sample"):
        g = g.sort_values(SNV)
        body = (g["chrom"] + "\t" + g["pos"].astype(str) + "\t.\t" + g["ref"] + "\t" + g["alt"]
                + "\t100\tPASS\t.\tGT:AD\t0/1:" + g["ref_count"].astype(str) + "," + g["alt_count"].astype(str))
        f = out / f"{sample}.vcf"
        f.write_text("\n".join(header + ["\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                                                    "FORMAT", sample])] + body.tolist()) + "\n")
        files.append(f)
    return files


def babachi_map(exe: str, counts: pd.DataFrame, fai: Path, work: Path) -> pd.DataFrame:
    """BABACHI's BAD map of the donor's pooled records (each record its own event, ``SEP``)."""
    merged = work / "merged"
    merged.mkdir(exist_ok=True)
    pooled = counts.assign(sample="donor").sort_values(
        SNV, key=lambda s: s.str[3:].astype(int) if s.name == "chrom" else s)  # chr1, chr2, ... in number order
    vcf = write_vcfs(pooled, fai, merged)[0]
    sizes = work / "chrom.sizes"
    sizes.write_text("".join(f"{n}\t{ln}\n" for n, ln, *_ in (x.split("\t") for x in fai.read_text().splitlines())))
    bed = work / "badmap.bed"
    subprocess.run([exe, str(vcf), "-O", str(bed), "-s", STATES, "--snp-strategy", "SEP", "-j", "2",
                    "--chrom-sizes", str(sizes)], check=True, capture_output=True)
    return pd.read_csv(bed, sep="\t").rename(columns={"#chr": "chrom", "BAD": "bad"})[["chrom", "start", "end", "bad"]]


#: MIXALIME's models tried: its negative binomial with p fixed at BAD / (BAD + 1) (as ``bench_dosage.py``), and its
#: beta negative binomial with p estimated (the model that can absorb over-dispersion and reference mapping bias)
MODELS = {"NB": ["NB"], "BetaNB, p estimated": ["BetaNB", "--estimate-p"]}


def mixalime(exe: str, vcf_dir: Path, bad_map: pd.DataFrame, work: Path,
             model=("NB",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MIXALIME's per-SNV table (``pvals.tsv``: ``fdr_comb_pval``, ``pref_allele``) and per-record table (``ref_pval``,
    ``alt_pval`` of every sample, ``sample`` added), fitted with ``model`` (``mixalime fit`` arguments)."""
    bed = work / "badmap.tsv"
    bad_map.rename(columns={"chrom": "chr"})[["chr", "start", "end", "bad"]].to_csv(bed, sep="\t", index=False)
    for cmd in (["create", "p", f"m:{vcf_dir}/*.vcf", "--bad-maps", str(bed), "--no-snp-bad-check"],
                ["fit", "p", *model], ["test", "p"], ["combine", "p"], ["export", "all", "p", str(work / "out")]):
        subprocess.run([exe, *cmd], check=True, capture_output=True, cwd=work)
    snvs = pd.read_csv(work / "out" / "pvalues" / "pvals.tsv", sep="\t").rename(columns={"#chr": "chrom", "end": "pos"})
    raw = [pd.read_csv(f, sep="\t").rename(columns={"#chr": "chrom", "end": "pos"}).assign(sample=f.name.split(".")[0])
           for f in sorted((work / "out" / "pvalues" / "raw").glob("*.pvalue.tsv"))]
    return snvs, pd.concat(raw, ignore_index=True)


def score(universe: pd.DataFrame, keys: list[str], called: pd.DataFrame, ranked: pd.DataFrame) -> dict:
    """FDP and recall of ``called`` (rows of ``keys``) against ``universe`` (``keys`` + ``is_as``), and the recall of
    the ranking ``ranked`` (``keys`` + ``rank_score``, smaller first) at the largest threshold keeping FDP <= FDR."""
    truth = universe.set_index(keys)["is_as"]
    hit = truth.reindex(pd.MultiIndex.from_frame(called[keys])).fillna(False).to_numpy(bool)
    n_true = int(truth.sum())
    r = ranked.sort_values("rank_score", kind="stable")
    t = truth.reindex(pd.MultiIndex.from_frame(r[keys])).fillna(False).to_numpy(bool)
    tp = np.cumsum(t)
    fdp = 1 - tp / np.arange(1, len(t) + 1)
    ok = np.flatnonzero(fdp <= FDR)
    return {"calls": len(called), "tp": int(hit.sum()), "fp": int((~hit).sum()),
            "fdp": float((~hit).mean()) if len(called) else 0.0, "recall": hit.sum() / n_true, "n_true": n_true,
            "n_universe": len(truth), "recall_at_fdp": (tp[ok[-1]] / n_true) if len(ok) else 0.0}


def ours(counts: pd.DataFrame, bad_map: pd.DataFrame | None, planted_null: dict | None = None
         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 02's dosage-aware test: per record, and a SNV's records combined. ``planted_null``
    (``{"rho": {sample: rho}, "null_ratio": p0}``): the simulator's own over-dispersion and mapping bias replace the
    fitted ones (the oracle null: what the null fit costs)."""
    res = dosage.test_imbalance_with_dosage(counts, bad_map=bad_map, segment_by=("donor",), min_total=6, fdr=FDR,
                                            phased=True)
    if planted_null is not None:
        t = res.table.assign(rho_dosage=res.table["sample"].map(planted_null["rho"]),
                             null_ratio_dosage=planted_null["null_ratio"])
        p = dosage.dosage_test(t["ref_count"], t["total"], t["bad"], t["rho_dosage"],
                               null_ratio=t["null_ratio_dosage"])["pvalue"].to_numpy()
        t["p_dosage"] = p
        t["as_dosage"] = bh_fdr(p) <= FDR
        res = dataclasses.replace(res, table=t)
    return res.table, dosage.combine_samples(res, fdr=FDR)


def two_stage(p: np.ndarray) -> np.ndarray:
    """Calls of the adaptive two-stage Benjamini-Krieger-Yekutieli procedure at FDR (statsmodels')."""
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, alpha=FDR, method="fdr_tsbky")[0]


def cell_line(seed: int, n_chromosomes: int = 4, length: int = 2_000_000):
    """Chapter 02's simulated cell line (D2 aneuploid) of ``seed`` and its allelic counts, as the chapter makes them."""
    sim = simulate.simulate("smoke", n_chromosomes=n_chromosomes, chrom_length=length, cnv_donors=("D2",),
                            random_state=seed)
    return sim, io.simulation_counts(sim, min_base_quality=13, min_mapping_quality=10)


def run_seed(seed: int, tools: dict, work: Path, n_chromosomes: int = 4,
             length: int = 2_000_000) -> tuple[list[dict], pd.DataFrame]:
    """One seed's metric rows and its per-SNV table (truth, effect, depth and each method's call; BAD maps of
    each method's own segmentation) for the power curve."""
    sim, counts = cell_line(seed, n_chromosomes, length)
    truth = sim.truth()
    fai = Path(sim.root) / "genome.fa.fai"
    truth = truth.assign(effect=(truth["true_hap1_ratio"] - 0.5).abs().where(truth["is_as"], 0.0))
    rows, power = [], []
    for donor, c in counts.groupby("donor"):
        c = c[c["total"] > 0].reset_index(drop=True)
        tr = c[["sample", *SNV, "total"]].merge(truth[["sample", *SNV, "is_as", "effect"]], on=["sample", *SNV],
                                                how="left")
        tr["is_as"] = tr["is_as"].astype("boolean").fillna(False).astype(bool)
        per_snv = tr.groupby(SNV, as_index=False).agg(is_as=("is_as", "any"), effect=("effect", "max"),
                                                      total=("total", "sum"))
        snv_calls = per_snv.assign(seed=seed, donor=donor)
        d = work / f"seed{seed}" / donor
        (d / "vcf").mkdir(parents=True, exist_ok=True)
        write_vcfs(c, fai, d / "vcf")
        planted_file = Path(sim.root) / "bad_maps" / f"{donor}.bed"
        planted = dosage.read_bad_map(planted_file) if planted_file.exists() else pd.DataFrame(
            [(n, 0, int(ln), 1.0) for n, ln, *_ in (x.split("\t") for x in fai.read_text().splitlines())],
            columns=["chrom", "start", "end", "bad"])
        bias = sim.params.ref_bias
        oracle = {"rho": sim.samples().set_index("sample")["rho"].to_dict(), "null_ratio": (1 + bias) / (2 + bias)}
        for map_name, bad_map, null in (("own", None, None), ("planted", planted, None),
                                        ("planted, planted null", planted, oracle)):
            t0 = time.perf_counter()
            recs, snvs = ours(c, bad_map, null)
            secs = time.perf_counter() - t0
            called = snvs[snvs["as_snv"]]
            rows.append({"seed": seed, "donor": donor, "method": "ours", "map": map_name, "level": "snv",
                         "seconds": secs, **score(per_snv, SNV, called, snvs.assign(rank_score=snvs["pvalue"]))})
            adaptive = snvs[two_stage(snvs["pvalue"].to_numpy())]
            rows.append({"seed": seed, "donor": donor, "method": "ours, two-stage BH", "map": map_name, "level": "snv",
                         "seconds": secs, **score(per_snv, SNV, adaptive, snvs.assign(rank_score=snvs["pvalue"]))})
            if map_name == "own":
                snv_calls = _mark(snv_calls, called, "ours")
            rows.append({"seed": seed, "donor": donor, "method": "ours", "map": map_name, "level": "sample",
                         "seconds": secs, **score(tr, ["sample", *SNV], recs[recs["as_dosage"]],
                                                  recs.assign(rank_score=recs["p_dosage"]))})
        if tools is None:  # --ours-only
            power.append(snv_calls)
            continue
        t0 = time.perf_counter()
        bab = babachi_map(tools["babachi"], c, fai, d)
        t_bab = time.perf_counter() - t0
        for (model, map_name), bad_map in ((("NB", "own"), bab), (("NB", "planted"), planted),
                                            (("BetaNB, p estimated", "own"), bab)):
            mw = d / f"mixalime_{MODELS[model][0]}_{map_name}"
            mw.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            snvs, raw = mixalime(tools["mixalime"], d / "vcf", bad_map, mw, MODELS[model])
            secs = time.perf_counter() - t0 + (t_bab if map_name == "own" else 0.0)
            method = f"MIXALIME ({model})"
            called = snvs[snvs["fdr_comb_pval"] <= FDR]
            rows.append({"seed": seed, "donor": donor, "method": method, "map": map_name, "level": "snv",
                         "seconds": secs, **score(per_snv, SNV, called, snvs.assign(rank_score=snvs["fdr_comb_pval"]))})
            if map_name == "own":
                snv_calls = _mark(snv_calls, called, method)
            q = np.minimum(bh_fdr(raw["ref_pval"].to_numpy()), bh_fdr(raw["alt_pval"].to_numpy()))
            raw = raw.assign(rank_score=q)
            rows.append({"seed": seed, "donor": donor, "method": method, "map": map_name, "level": "sample",
                         "seconds": secs, **score(tr, ["sample", *SNV], raw[q <= FDR], raw)})
        power.append(snv_calls)
    return rows, pd.concat(power, ignore_index=True)


def _mark(table: pd.DataFrame, called: pd.DataFrame, name: str) -> pd.DataFrame:
    """``table`` with a boolean column ``name``: the SNV is among ``called``'s."""
    keys = pd.MultiIndex.from_frame(called[SNV])
    return table.assign(**{name: pd.MultiIndex.from_frame(table[SNV]).isin(keys)})


def babachi_shares(seeds, babachi: str, n_chromosomes: int = 4, length: int = 2_000_000) -> pd.DataFrame:
    """The share of each donor's SNVs that BABACHI's map puts at each BAD (``--babachi-shares``)."""
    rows = []
    for seed in seeds:
        sim, counts = cell_line(seed, n_chromosomes, length)
        for donor, c in counts[counts["total"] > 0].groupby("donor"):
            with tempfile.TemporaryDirectory() as tmp:
                bab = babachi_map(babachi, c.reset_index(drop=True), Path(sim.root) / "genome.fa.fai", Path(tmp))
            bad = dosage.assign(c.drop_duplicates(SNV), bab)["bad"].round(3)
            rows.append({"seed": seed, "donor": donor, "bad_above_1": float((bad > 1).mean()),
                         **{f"bad_{b:g}": float((bad == b).mean()) for b in sorted(bad.unique())}})
    return pd.DataFrame(rows).fillna(0.0)


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    def rng(s):
        return f"{s.min():.3f}-{s.max():.3f}"

    out = metrics.groupby(["donor", "level", "map", "method"], sort=True).agg(
        seeds=("seed", "nunique"), calls=("calls", "median"), fdp=("fdp", rng), fp=("fp", "sum"), tp=("tp", "sum"),
        recall=("recall", rng), recall_at_fdp=("recall_at_fdp", rng), seconds=("seconds", "median"))
    out.insert(3, "pooled_fdp", (out["fp"] / (out["fp"] + out["tp"])).round(3))  # false calls of all seeds' calls
    return out.drop(columns=["fp", "tp"]).reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixalime", help="the mixalime executable of its own environment")
    ap.add_argument("--babachi", help="the babachi executable of the same environment")
    ap.add_argument("--ours-only", action="store_true", help="our rows alone (no BABACHI or MIXALIME)")
    ap.add_argument("--babachi-shares", action="store_true",
                    help="only the share of each donor's SNVs at each BAD in BABACHI's map (babachi_shares.tsv)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", required=True)
    ap.add_argument("--chromosomes", type=int, default=4, help="simulated chromosomes (chapter 02: 4)")
    ap.add_argument("--length", type=int, default=2_000_000, help="their length (chapter 02: 2 Mb)")
    a = ap.parse_args(argv)
    if a.babachi_shares:
        shares = babachi_shares(a.seeds, a.babachi, a.chromosomes, a.length)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        shares.to_csv(Path(a.out) / "babachi_shares.tsv", sep="\t", index=False, float_format="%.4f")
        print(shares.round(3).to_markdown(index=False))
        return 0
    if not a.ours_only and not (a.mixalime and a.babachi):
        ap.error("--mixalime and --babachi are needed unless --ours-only")
    tools = None if a.ours_only else {"mixalime": a.mixalime, "babachi": a.babachi}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, snvs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            t0 = time.perf_counter()
            r, s = run_seed(seed, tools, Path(tmp), a.chromosomes, a.length)
            rows += [{**x, "genome_mb": a.chromosomes * a.length / 1e6} for x in r]
            snvs.append(s)
            print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    snvs = pd.concat(snvs, ignore_index=True)
    snvs.to_csv(out / "snvs.tsv.gz", sep="\t", index=False, float_format="%.4f")
    methods = [c for c in snvs.columns if c == "ours" or c.startswith("MIXALIME")]
    power = pd.concat([evaluate.power_table(g, g, methods, effect="effect", on=("seed", *SNV),
                                            depth_bins=SNV_DEPTH_BINS).assign(donor=donor)
                       for donor, g in snvs.groupby("donor")], ignore_index=True)
    power.to_csv(out / "power.tsv", sep="\t", index=False, float_format="%.4f")
    metrics = pd.DataFrame(rows)
    metrics.to_csv(out / "metrics.tsv", sep="\t", index=False, float_format="%.4f")
    summary = summarise(metrics)
    summary.to_csv(out / "summary.tsv", sep="\t", index=False)
    print(summary.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
