"""Benchmark: the JASPAR scan behind baselines (b) and the GBT, and fit/predict times of every baseline.

Usage::

    python benchmarks/bench_baselines.py                  # both parts, markdown tables on stdout
    python benchmarks/bench_baselines.py --part scan --n-scan 10000
    python benchmarks/bench_baselines.py --part models

``scan``: ``MotifScanner.transform`` (all 879 JASPAR2024 CORE vertebrate motifs, batched by width, one
``torch.conv1d`` per width and batch; alt windows re-scanned only around the SNV) on ``--n-scan`` random
200-bp windows, against the obvious loop over motifs with ``allelic.pwm.scan`` of the whole ref and alt
windows (on ``--n-naive`` windows; its per-window time is extrapolated), whose features must agree.

``models``: each baseline of ``all_baselines("CTCF")`` (and ``quick=True``) fitted on the planted-CTCF toy set
of ``tests/test_baselines.py`` (600 train / 150 val / 300 test windows) with the feature store emptied before
each model (cold: feature computation included), through ``evaluate_models``.

Timings are wall clock, best of ``--repeat`` for the scan; the load average is printed because other work on a
shared machine changes them (see ``allelic.baselines.thread_limit``).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT / "tests"))
from allelic import baselines as B  # noqa: E402
from allelic.motifs import load_jaspar  # noqa: E402
from allelic.pwm import scan, score_threshold  # noqa: E402


def _windows(n, L=200, seed=0):
    rng = np.random.default_rng(seed)
    ref = ["".join(r) for r in rng.choice(list("ACGT"), size=(n, L))]
    c = L // 2
    alt = [s[:c] + str(rng.choice([b for b in "ACGT" if b != s[c]])) + s[c + 1:] for s in ref]
    return pd.DataFrame({"seq_ref": ref, "seq_alt": alt})


def _naive(df, motifs):
    """Per-motif loop over allelic.pwm.scan of whole ref and alt windows: same 5 features."""
    out = np.empty((len(df), 5, len(motifs)))
    for i, m in enumerate(motifs):
        thr = score_threshold(m, 1e-4)
        sr = scan(list(df["seq_ref"]), m).max(axis=2)
        sa = scan(list(df["seq_alt"]), m).max(axis=2)
        cr, ca = (sr >= thr).sum(1), (sa >= thr).sum(1)
        mr, ma = sr.max(1), sa.max(1)
        out[:, :, i] = np.column_stack([cr, mr, ca - cr, ma - mr, np.abs(ma - mr)])
    return out.reshape(len(df), -1)


def bench_scan(n_scan, n_naive, repeat):
    motifs = load_jaspar()
    df = _windows(n_scan)
    sc = B.MotifScanner(motifs)                      # thresholds computed here (not timed below)
    t0 = time.perf_counter()
    B.MotifScanner(motifs, pvalue=1e-4 * 0.999)      # a new p-value: thresholds of all motifs from scratch
    t_thr = time.perf_counter() - t0
    rows = []
    for label, n_jobs in (("1 thread", 1), ("torch default threads", None)):
        sc.n_jobs = n_jobs
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            X = sc.transform(*B.check_examples(df))
            best = min(best, time.perf_counter() - t0)
        rows.append((f"MotifScanner, {label}", n_scan, best, 1e3 * best / n_scan))
    sub = df.iloc[:n_naive]
    t0 = time.perf_counter()
    Xn = _naive(sub, motifs)
    t_naive = time.perf_counter() - t0
    rows.append(("loop of motifs.scan (ref + alt)", n_naive, t_naive, 1e3 * t_naive / n_naive))
    diff = np.abs(X[:n_naive].astype(np.float64) - Xn)
    print(f"\n### JASPAR scan: {len(motifs)} motifs x 200-bp windows ({X.shape[1]} features)\n")
    print(f"thresholds of all {len(motifs)} motifs (score_threshold, p < 1e-4): {t_thr:.2f} s (once per process)\n")
    print("| method | windows | seconds | ms / window |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.3f} |")
    print(f"\nspeed-up (1 thread vs loop): {rows[2][3] / rows[0][3]:.0f}x; max |difference| of features: "
          f"{diff.max():.2e} (float32 scores), counts differing: {int((diff[:, : len(motifs)] > 0).sum())}")


def bench_models():
    from test_baselines import make_toy

    df = make_toy()
    print("\n### Baselines on the toy set (600 train / 150 val / 300 test, planted CTCF)\n")
    print("| set | model | AUROC | fit s | predict s |\n|---|---|---|---|---|")
    for quick in (False, True):
        for m in B.all_baselines("CTCF", quick=quick):
            B.clear_feature_cache()
            r = B.evaluate_models([m], df).iloc[0]
            print(f"| {'quick' if quick else 'default'} | {r['model']} | {r['auroc']:.3f} | {r['fit_seconds']:.2f} "
                  f"| {r['predict_seconds']:.2f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["scan", "models", "all"], default="all")
    ap.add_argument("--n-scan", type=int, default=5000)
    ap.add_argument("--n-naive", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args(argv)
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads by default); "
          f"load average at start {os.getloadavg()[0]:.2f}")
    if a.part in ("scan", "all"):
        bench_scan(a.n_scan, a.n_naive, a.repeat)
    if a.part in ("models", "all"):
        bench_models()
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
