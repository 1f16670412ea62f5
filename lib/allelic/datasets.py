"""Leak-free training examples: from allele-specific calls to labelled sequence windows and held-out splits.

An *example* is one SNV x assay. The example table (:attr:`Examples.table`) has the columns

==================  =====================================================================================
column              meaning
==================  =====================================================================================
``example_id``      ``chrom:pos:ref:alt`` (the same id in every assay: ``example_id`` + ``assay`` is the key)
``chrom``, ``pos``  SNV position (1-based)
``ref``, ``alt``    reference and alternative base
``assay``           CTCF, POL2, ...
``label``           1 = allele-specific (after aggregating the measurements, see ``aggregate``), else 0
``n_measurements``  measurements (donor x tissue x replicate rows) of this SNV in this assay
``n_as``            how many of them were called allele-specific (label conflicts: ``0 < n_as < n_measurements``)
``seq_ref``         ``window`` bp of the reference genome, SNV at 0-based offset ``window // 2``
``seq_alt``         the same window with the SNV base replaced by ``alt``
``split``           ``train`` / ``val`` / ``test`` (after :func:`split_examples` or :func:`chromosome_folds`)
``leak_group``      connected component of the leak graph (after splitting; see below)
==================  =====================================================================================

Windows come from :mod:`allelic.windows`; leak-free splits of the table from :mod:`allelic.splits`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .ledger import Ledger
from .reference import check_on_ref_mismatch, chrom_sort_key
from .windows import alt_windows, check_window, clean_sequence, cut_windows, drop_examples, drop_ref_mismatches

EXAMPLE_COLUMNS = ["example_id", "chrom", "pos", "ref", "alt", "assay", "label", "n_measurements", "n_as",
                   "seq_ref", "seq_alt"]
SPLITS = ("train", "val", "test")
AGGREGATES = ("any", "majority", "all")


@dataclass
class Examples:
    """An example table with the ledger of everything removed on the way and the parameters that made it."""

    table: pd.DataFrame
    ledger: Ledger = field(default_factory=Ledger)
    window: int = 200
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, split: str) -> pd.DataFrame:
        """Rows of one split (``train``, ``val`` or ``test``)."""
        if "split" not in self.table.columns:
            raise ValueError("examples are not split yet: call split_examples or chromosome_folds first")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def derive(self, table: pd.DataFrame, **params) -> "Examples":
        """A new :class:`Examples` with ``table``, a copy of this ledger and these parameters updated by ``params``."""
        return Examples(table=table, ledger=Ledger(list(self.ledger.rows)), window=self.window,
                        params={**self.params, **params})


def _sort_examples(t: pd.DataFrame) -> pd.DataFrame:
    order = sorted(range(len(t)), key=lambda i: (chrom_sort_key(t["chrom"].iat[i]), int(t["pos"].iat[i]),
                                                  t["ref"].iat[i], t["alt"].iat[i], str(t["assay"].iat[i])))
    return t.iloc[order].reset_index(drop=True)


# -- from calls to examples ---------------------------------------------------------------------------------------
def _aggregate(calls: pd.DataFrame, label_col: str, aggregate: str, min_measurements: int, assays, ledger: Ledger,
               source: str, step: str) -> pd.DataFrame:
    """Per-measurement calls -> one row per SNV x assay with label, n_measurements, n_as."""
    if not isinstance(calls, pd.DataFrame):
        raise TypeError(f"calls must be a pandas DataFrame, got {type(calls).__name__}")
    need = ["chrom", "pos", "ref", "alt", "assay", label_col]
    missing = [c for c in need if c not in calls.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(need)} "
                         f"(label_col={label_col!r} names the allele-specific call)")
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {', '.join(AGGREGATES)}")
    if not isinstance(min_measurements, (int, np.integer)) or min_measurements < 1:
        raise ValueError(f"min_measurements must be an integer >= 1, got {min_measurements!r}")
    df = pd.DataFrame({"chrom": calls["chrom"].astype(str).to_numpy(), "ref": calls["ref"].astype(str).str.upper().to_numpy(),
                       "alt": calls["alt"].astype(str).str.upper().to_numpy(), "assay": calls["assay"].astype(str).to_numpy()})
    pos = pd.to_numeric(calls["pos"], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(pos) | (pos % 1 != 0) | (pos < 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: row {i}: pos {calls['pos'].iloc[i]!r} is not a 1-based integer position")
    df["pos"] = pos.astype(np.int64)
    lab = calls[label_col]
    if lab.dtype == bool:
        df["call"] = lab.astype(float).to_numpy()
    else:
        num = pd.to_numeric(lab.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v), errors="coerce")
        bad = (num.notna() & ~num.isin([0, 1])) | (lab.notna() & num.isna())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{source}: row {i}: {label_col} = {lab.iloc[i]!r} is not a 0/1 or boolean call")
        df["call"] = num.to_numpy(dtype=float)
    rec = df["chrom"] + ":" + df["pos"].astype(str) + ":" + df["ref"] + ":" + df["alt"] + " " + df["assay"]
    if "sample" in calls.columns:
        rec = rec + " " + calls["sample"].astype(str).to_numpy()
    keep = np.ones(len(df), bool)

    def drop(mask, reason, detail=""):
        mask = np.asarray(mask) & keep
        ledger.extend(step, source, rec[mask].tolist(), reason, detail)
        keep[mask] = False

    drop(~(df["ref"].str.fullmatch("[ACGT]") & df["alt"].str.fullmatch("[ACGT]") & (df["ref"] != df["alt"])), "not_snv",
         "ref and alt must be two different bases A/C/G/T")
    if assays is not None:
        wanted = [assays] if isinstance(assays, str) else list(assays)
        drop(~df["assay"].isin(wanted), "assay_not_selected", f"assays={','.join(wanted)}")
    drop(np.isnan(df["call"].to_numpy()), "no_call", f"{label_col} is missing")
    df = df[keep]
    key = ["chrom", "pos", "ref", "alt", "assay"]
    g = df.groupby(key, sort=False)["call"].agg(n_measurements="size", n_as="sum").reset_index()
    g["n_as"] = g["n_as"].astype(np.int64)
    g["n_measurements"] = g["n_measurements"].astype(np.int64)
    few = g["n_measurements"] < min_measurements
    ledger.extend(step, source, (g.loc[few, "chrom"] + ":" + g.loc[few, "pos"].astype(str) + ":" + g.loc[few, "ref"] + ":"
                                 + g.loc[few, "alt"] + " " + g.loc[few, "assay"]).tolist(), "too_few_measurements",
                  f"fewer than {min_measurements} measurement(s)")
    g = g[~few]
    if aggregate == "any":
        lab = g["n_as"] >= 1
    elif aggregate == "majority":
        lab = 2 * g["n_as"] > g["n_measurements"]  # a tie is not a majority: label 0
    else:
        lab = g["n_as"] == g["n_measurements"]
    g["label"] = lab.astype(np.int64)
    return g.reset_index(drop=True)


def _finish(g: pd.DataFrame) -> pd.DataFrame:
    t = pd.DataFrame({"example_id": g["chrom"] + ":" + g["pos"].astype(str) + ":" + g["ref"] + ":" + g["alt"],
                      "chrom": g["chrom"], "pos": g["pos"].astype(np.int64), "ref": g["ref"], "alt": g["alt"],
                      "assay": g["assay"], "label": g["label"].astype(np.int64),
                      "n_measurements": g["n_measurements"], "n_as": g["n_as"], "seq_ref": g["seq_ref"],
                      "seq_alt": g["seq_alt"]})
    return _sort_examples(t)


def examples_from_calls(calls: pd.DataFrame, fasta, *, window: int = 200, label_col: str = "as_betabinom",
                        aggregate: str = "any", min_measurements: int = 1, assays=None, on_ref_mismatch: str = "raise",
                        ledger: Ledger | None = None) -> Examples:
    """Examples (one per SNV x assay) from per-measurement allele-specific calls and an indexed reference FASTA.

    ``calls`` has one row per SNV x measurement with ``chrom, pos, ref, alt, assay`` and a boolean / 0-1 call column
    ``label_col`` (chapter 02: :func:`allelic.stats.test_imbalance` results, ``as_betabinom``). ``aggregate`` turns
    the measurements of an SNV x assay (donors, tissues, replicates) into one label: ``"any"`` (AS in at least one),
    ``"majority"`` (AS in more than half; a tie is 0) or ``"all"``; ``n_as`` / ``n_measurements`` keep the conflicts.
    Windows of ``window`` bp (SNV at offset ``window // 2``) are cut with :class:`pysam.FastaFile` (upper-cased; IUPAC
    codes other than N become N).

    Removed, each recorded in the ledger (``ledger`` if given, else a new one; step ``examples_from_calls``):
    ``not_snv`` (ref/alt not two different bases), ``assay_not_selected`` (``assays`` given), ``no_call`` (missing
    call), ``too_few_measurements`` (below ``min_measurements``), ``contig_not_in_fasta``, ``window_off_contig``
    (window runs past a contig end) and, with ``on_ref_mismatch="drop"``, ``ref_mismatch``. By default a reference
    base that differs from the FASTA raises ValueError naming the FASTA and chrom:pos (wrong genome build?), as does a
    FASTA holding none of the calls' contigs (naming ``chr1`` vs ``1``?); windows come from :func:`cut_windows`."""
    window = check_window(window)
    check_on_ref_mismatch(on_ref_mismatch)
    if not Path(fasta).is_file():
        raise FileNotFoundError(f"{fasta}: FASTA file not found")
    ledger = Ledger() if ledger is None else ledger
    step = "examples_from_calls"
    g = _aggregate(calls, label_col, aggregate, min_measurements, assays, ledger, "calls", step)
    g = cut_windows(g, fasta, window=window, on_ref_mismatch=on_ref_mismatch, ledger=ledger, step=step)
    params = {"source": "calls", "fasta": str(fasta), "window": window, "label_col": label_col, "aggregate": aggregate,
              "min_measurements": min_measurements, "assays": assays, "on_ref_mismatch": on_ref_mismatch}
    return Examples(_finish(g), ledger, window, params)


def examples_from_entex(entex_dir=None, *, window: int = 200, aggregate: str = "any", subset=None, assay="CTCF",
                        min_measurements: int = 1, on_ref_mismatch: str = "raise") -> Examples:
    """Examples from the EN-TEx tables (``labels.tsv.gz`` with the catalogue's ``as_label``, ``windows.tsv.gz``),
    read in place by :func:`allelic.io.read_entex_labels` / :func:`allelic.io.read_entex_windows`.

    ``subset``: ``"balanced"``, ``"natural_depth100"`` or a list of them (a measurement is kept when it is in any);
    ``None`` keeps all. ``assay``: one assay, a list, or ``None`` for all. ``window`` can be at most 257 bp (the
    shortest EN-TEx windows). Removals are in the ledger: the readers' (``duplicate_measurement``,
    ``ref_not_in_genotype``, ``not_heterozygous``), ``not_in_subset``, those of :func:`examples_from_calls`' label
    step, and ``no_window`` (an SNV missing from ``windows.tsv.gz``)."""
    from . import config, io

    window = check_window(window)
    ledger = Ledger()
    d = config.entex_dir(entex_dir)
    if d is None:
        raise FileNotFoundError("no EN-TEx directory: pass entex_dir or set ALLELIC_ENTEX_DIR (e.g. ../shared/data/entex_ctcf)")
    labels = io.read_entex_labels(d, ledger=ledger)
    src = str(d / "labels.tsv.gz")
    step = "examples_from_entex"
    if subset is not None:
        wanted = {subset} if isinstance(subset, str) else set(subset)
        known = set(",".join(labels["subset"]).split(","))
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"unknown EN-TEx subset(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        inside = labels["subset"].str.split(",").map(lambda s: bool(wanted & set(s)))
        out = labels[~inside]
        ledger.extend(step, src, (out["chrom"] + ":" + out["pos"].astype(str) + " " + out["sample"]).tolist(),
                      "not_in_subset", f"subset={','.join(sorted(wanted))}")
        labels = labels[inside]
    assays = None if assay is None else ([assay] if isinstance(assay, str) else list(assay))
    g = _aggregate(labels, "as_label", aggregate, min_measurements, assays, ledger, src, step)
    win = io.read_entex_windows(d, window=window)
    wsrc = str(d / "windows.tsv.gz")
    win = win.drop_duplicates(["chrom", "pos"])
    wref = dict(zip(zip(win["chrom"], win["pos"]), win["ref"]))
    seqs = dict(zip(zip(win["chrom"], win["pos"]), win["sequence"].map(clean_sequence)))
    has = np.array([(c, p) in seqs for c, p in zip(g["chrom"], g["pos"])], bool)
    g = drop_examples(g, ~has, ledger, step, wsrc, "no_window")
    genome = np.array([wref[(c, p)] for c, p in zip(g["chrom"], g["pos"])], dtype=object)
    g = drop_ref_mismatches(g, genome, on_ref_mismatch=on_ref_mismatch, ledger=ledger, step=step, source=wsrc,
                            hint="labels and windows disagree on the reference base")
    g = g.assign(seq_ref=[seqs[(c, p)] for c, p in zip(g["chrom"], g["pos"])])
    g["seq_alt"] = alt_windows(g["seq_ref"], g["alt"], window)
    params = {"source": "entex", "entex_dir": str(d), "window": window, "label_col": "as_label", "aggregate": aggregate,
              "min_measurements": min_measurements, "assays": assays, "subset": subset}
    return Examples(_finish(g), ledger, window, params)
