"""What a fine-tuned model looks at, and which motifs it found (``allelic motifs``; chapter 06, paper figure 9C).

    allelic motifs --model DIR --windows FILE.tsv --out DIR [--score attention|ism] [--factors CTCF ...]

One call, :func:`explain`, chains the steps of the other modules on a table of labelled SNV windows
(:func:`allelic.finetune.read_windows`: ``sequence``, ``label``, optional ``window_id``):

1. a per-base score of every window: attention (:func:`allelic.attention.attention_profiles`, by default the
   attention of the query tokens the classifier pools) or in-silico mutagenesis (:func:`allelic.attention.ism_scores`),
   and its mean along the window for AS and non-AS windows (:func:`allelic.attention.profile_by_label`);
2. for each known motif asked for, where it occurs along the windows (:func:`allelic.profiles.occurrence`) and how
   much more often in AS windows, position by position (:func:`allelic.profiles.enrichment_profile`);
3. the correlation between the score's AS − non-AS difference and each motif's enrichment difference, with an exact
   circular-shift p-value (:func:`allelic.profiles.profile_correlation`), and, within AS windows, the score on each
   motif's hits against the same positions without a hit (:func:`allelic.attention.score_at_mask`);
4. de novo motifs from the high-score regions of AS windows, matched to JASPAR with TOMTOM
   (:func:`allelic.denovo.find_motifs`).

:func:`write` saves the tables (``attention.tsv`` windows x positions, ``profile.tsv``, ``enrichment.tsv``,
``correlation.tsv``, ``motifs.tsv``, ``instances.tsv``, ``motifs.meme``, ``denovo_null.tsv``); the command line adds
one logo per de novo motif (``logos/<motif_id>.png``, :func:`allelic.pl.logo`).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .attention import attention_profiles, ism_scores, profile_by_label
from .denovo import find_motifs, permutation_control, write_meme
from .motifs import resolve_motifs
from .profiles import enrichment_profile, occurrence, profile_correlation

__all__ = ["Explanation", "SCORES", "held_out_windows", "resolve_motifs", "motif_enrichment", "correlate", "explain",
           "match_rank", "describe_agreement", "write", "main"]

#: per-base scores :func:`explain` can compute
SCORES = ("attention", "ism")


@dataclass
class Explanation:
    """Result of :func:`explain`.

    ``windows``: ``window_id``, ``label`` (one row per window, the order of ``scores``); ``scores``: float array
    (windows x bases) of the per-base score named by ``score``; ``by_label``: mean score per position of AS and
    non-AS windows (:func:`allelic.attention.profile_by_label`); ``enrichment``: long table, one row per motif x
    position (columns ``motif``, ``matrix_id`` and those of :func:`allelic.profiles.enrichment_profile`);
    ``correlation``: one row per motif (:func:`correlate`);
    ``denovo``: :class:`allelic.denovo.DeNovoResult` or None; ``denovo_null``: the same search with shuffled labels
    (:func:`allelic.denovo.permutation_control`), or None."""

    windows: pd.DataFrame
    scores: np.ndarray
    score: str
    by_label: pd.DataFrame
    enrichment: pd.DataFrame
    correlation: pd.DataFrame
    denovo: object | None
    denovo_null: pd.DataFrame | None = None


def held_out_windows(examples: pd.DataFrame, assay: str, *, split: str = "test", n: int | None = None,
                     random_state: int = 0) -> pd.DataFrame:
    """The windows of chapter 03's examples (``example_id, assay, label, seq_ref, seq_alt, split``) of one assay and
    split, as :func:`explain` reads them (``window_id``, ``sequence``, ``alt_sequence``, ``label`` and the other
    columns): all of them, or a seeded sample of ``n``, sorted by ``window_id``. Raises ValueError when none is
    left."""
    t = examples[(examples["assay"] == assay) & (examples["split"] == split)]
    if not len(t):
        raise ValueError(f"no {assay} examples in the {split!r} split (assays: {sorted(examples['assay'].unique())})")
    if n is not None and n < len(t):
        t = t.sample(n=n, random_state=random_state)
    t = t.rename(columns={"seq_ref": "sequence", "seq_alt": "alt_sequence", "example_id": "window_id"})
    return t.sort_values("window_id").reset_index(drop=True)


def motif_enrichment(sequences, labels, motifs, *, pvalue: float = 1e-4, return_hits: bool = False):
    """Per-position enrichment of each motif's hits in AS over non-AS windows, stacked (``motif`` = ``"ID name"``,
    ``matrix_id``, then the columns of :func:`allelic.profiles.enrichment_profile`). Empty without motifs. With
    ``return_hits`` also a dict ``matrix_id -> (windows, bases)`` bool hit mask (:func:`allelic.profiles.occurrence`)."""
    seqs = list(sequences)
    parts, hits = [], {}
    for m in (resolve_motifs(motifs) if motifs else []):
        hits[m.matrix_id] = occurrence(seqs, m, pvalue=pvalue)
        prof = enrichment_profile(hits[m.matrix_id], labels)
        parts.append(prof.assign(motif=f"{m.matrix_id} {m.name}", matrix_id=m.matrix_id))
    if not parts:
        df = pd.DataFrame(columns=["motif", "matrix_id", "position", "frac_as", "frac_other", "difference",
                                   "log2_ratio", "pvalue", "qvalue"])
    else:
        df = pd.concat(parts, ignore_index=True)
        df = df[["motif", "matrix_id"] + [c for c in df.columns if c not in ("motif", "matrix_id")]]
    return (df, hits) if return_hits else df


_CORRELATION_COLUMNS = ["motif", "matrix_id", "r", "pvalue", "n_positions", "peak_position", "peak_difference",
                        "hit_ratio", "hit_pvalue", "n_hit_windows"]


def correlate(by_label: pd.DataFrame, enrichment: pd.DataFrame, *, method: str = "pearson", scores=None,
              hits: dict | None = None, labels=None, n_permutations: int = 999, random_state: int = 0) -> pd.DataFrame:
    """One row per motif: the correlation of the score's AS − non-AS difference with the motif's enrichment
    difference along the window (``r``, ``pvalue``: :func:`allelic.profiles.profile_correlation`, circular shifts) and
    where the motif is most enriched (``peak_position``, ``peak_difference``). With ``scores`` (windows x bases),
    ``hits`` (:func:`motif_enrichment` ``return_hits``) and ``labels``: within AS windows, the score on the motif's
    hit bases over that of the same positions in AS windows without a hit (``hit_ratio``, permutation ``hit_pvalue``,
    :func:`allelic.attention.score_at_mask`; ``n_hit_windows``), which the position bias of the score cannot
    explain."""
    from .attention import score_at_mask

    rows = []
    for (name, mid), g in enrichment.groupby(["motif", "matrix_id"], sort=False):
        g = g.set_index("position").reindex(by_label["position"])
        diff = g["difference"].to_numpy(dtype=float)
        row = {"motif": name, "matrix_id": mid, "r": np.nan, "pvalue": np.nan,
               "n_positions": int(np.isfinite(diff).sum()), "peak_position": -1, "peak_difference": np.nan,
               "hit_ratio": np.nan, "hit_pvalue": np.nan, "n_hit_windows": 0}
        if np.nanstd(diff) > 0:  # a motif that never occurs (or equally everywhere) has nothing to correlate
            c = profile_correlation(by_label["difference"], diff, method=method)
            row.update(r=c.r, pvalue=c.pvalue, n_positions=c.n_positions)
        if np.isfinite(diff).any():
            row.update(peak_position=int(np.nanargmax(diff)), peak_difference=float(np.nanmax(diff)))
        if scores is not None and hits is not None and mid in hits:
            as_ = np.asarray(labels).astype(bool)
            mask = hits[mid][as_]
            if mask.any() and (~mask).any():
                res = score_at_mask(np.asarray(scores)[as_], mask, n_permutations=n_permutations,
                                    random_state=random_state)
                row.update(hit_ratio=res.ratio, hit_pvalue=res.pvalue, n_hit_windows=res.n_windows)
        rows.append(row)
    return pd.DataFrame(rows, columns=_CORRELATION_COLUMNS)


def _centre_span(length: int, flank: int | None) -> tuple[int, int]:
    """``(lo, hi)``: the bases within ``flank`` bp of the window centre ``length // 2`` (the whole window for None)."""
    if flank is None:
        return 0, length
    return max(0, length // 2 - int(flank)), min(length, length // 2 + int(flank) + 1)


def explain(model, tokenizer, windows: pd.DataFrame, *, score: str = "attention", reduction: str = "pooled",
            layers=None, heads=None, ism_flank: int | None = None, motifs=("CTCF",), motif_pvalue: float = 1e-4,
            denovo: bool = True, denovo_flank: int | None = None, min_ratio: float = 10.0, null_permutations: int = 0,
            jaspar=None, batch_size: int = 64, device: str = "auto", random_state: int = 0,
            progress=None) -> Explanation:
    """Explain a fine-tuned classifier on labelled windows (see the module docstring for the steps).

    ``windows``: ``sequence`` and ``label`` columns (``window_id`` optional; the alternative window
    ``alt_sequence`` for a siamese model). ``score``: ``"attention"`` (``reduction``, ``layers``, ``heads`` as in
    :func:`allelic.attention.attention_profiles`) or ``"ism"`` (in-silico mutagenesis of the bases within
    ``ism_flank`` bp of the window centre, every base when None; slower: three model calls per base). ``motifs``:
    known motifs (ids, names or :class:`Motif`) whose enrichment profile is computed and correlated with the score;
    the best JASPAR matches of known de novo motifs are added. ``jaspar``: the database TOMTOM searches (default:
    JASPAR CORE vertebrates).

    De novo motifs (:func:`allelic.denovo.find_motifs`, ``min_ratio``: a region's score over the window's minimum)
    compare AS with non-AS windows by whether they contain a k-mer. ``denovo_flank``: search only the bases within
    that many bp of the window centre (the SNV), in both sets. Where non-AS windows carry the same motif away from
    their SNV (CTCF peaks: a SNV beside the site is not allele-specific), containment anywhere in the window does not
    separate the sets, but containment near the SNV does; instance coordinates stay those of the whole window.
    ``null_permutations`` > 0 repeats the search that many times with shuffled labels
    (:func:`allelic.denovo.permutation_control`): what passes there is what the search finds in noise."""
    from .models import is_pair_model  # torch

    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    for col in ("sequence", "label"):
        if col not in windows.columns:
            raise ValueError(f"windows: no {col!r} column (columns: {', '.join(map(str, windows.columns))})")
    seqs = windows["sequence"].str.upper().tolist()
    labels = windows["label"].to_numpy().astype(int)
    alt = windows["alt_sequence"].str.upper().tolist() if is_pair_model(model) else None
    if score == "attention":
        values = attention_profiles(model, tokenizer, seqs, layers=layers, heads=heads, reduction=reduction,
                                    batch_size=batch_size, device=device, alt_sequences=alt, progress=progress).values
    else:
        pos = None if ism_flank is None else np.arange(*_centre_span(max(map(len, seqs)), ism_flank))
        values = ism_scores(model, tokenizer, seqs, positions=pos, batch_size=max(batch_size, 256), device=device,
                            alt_sequences=alt, progress=progress)
    by_label = profile_by_label(values, labels)
    found = null = None
    known = list(motifs or ())
    if denovo:
        lo, hi = _centre_span(max(map(len, seqs)), denovo_flank)
        cut = [q[lo:hi] for q in seqs]
        found = find_motifs(cut, values[:, lo:hi], labels, min_ratio=min_ratio, jaspar=jaspar,
                            random_state=random_state, progress=progress)
        if null_permutations:
            null = permutation_control(cut, values[:, lo:hi], labels, n_permutations=null_permutations,
                                       random_state=random_state, min_ratio=min_ratio)
        for t in (found.instances, found.regions):
            t[["start", "end"]] += lo
        t = found.table
        known += [i for i in t.loc[t["known"].astype(bool), "jaspar_id"].dropna().unique()]
    chosen = resolve_motifs(known) if known else []
    enrichment, hits = motif_enrichment(seqs, labels, chosen, pvalue=motif_pvalue, return_hits=True)
    ids = windows["window_id"] if "window_id" in windows.columns else pd.Series(np.arange(len(windows)))
    return Explanation(windows=pd.DataFrame({"window_id": ids.to_numpy(), "label": labels}), scores=values,
                       score=score, by_label=by_label, enrichment=enrichment,
                       correlation=correlate(by_label, enrichment, scores=values, hits=hits, labels=labels,
                                             random_state=random_state), denovo=found, denovo_null=null)


def match_rank(table: pd.DataFrame, matrix_id: str) -> int | None:
    """1-based rank, in a de novo table (:class:`allelic.denovo.DeNovoResult` ``.table``, best first), of the first
    motif whose significant JASPAR match (``known``) is ``matrix_id`` (any version when it has none: ``"MA0139"``);
    None when no motif matches."""
    base = str(matrix_id).split(".")[0] if "." not in str(matrix_id) else None
    for i, (known, jid) in enumerate(zip(table["known"].astype(bool), table["jaspar_id"].astype(str)), start=1):
        if known and (jid == matrix_id or (base is not None and jid.split(".")[0] == base)):
            return i
    return None


def describe_agreement(expl: Explanation, matrix_id: str, *, alpha: float = 0.05) -> str:
    """One sentence for the text: where motif ``matrix_id`` is most enriched in AS windows (fractions of AS and
    non-AS windows with a hit covering that base, its q-value) and whether the score follows it (both the
    circular-shift correlation and the position-matched hit ratio significant at ``alpha`` and in the positive
    direction), with the numbers."""
    enr = expl.enrichment[expl.enrichment["matrix_id"] == matrix_id]
    cor = expl.correlation[expl.correlation["matrix_id"] == matrix_id]
    if not len(enr) or not len(cor):
        raise ValueError(f"{matrix_id} was not profiled (motifs: {sorted(expl.enrichment['matrix_id'].unique())})")
    peak, row = enr.nsmallest(1, "pvalue").iloc[0], cor.iloc[0]
    follows = (row["pvalue"] < alpha and row["r"] > 0 and row["hit_pvalue"] < alpha and row["hit_ratio"] > 1)
    return (f"{matrix_id} hits cover the base {int(peak['position']) - len(expl.by_label) // 2} bp from the SNV in "
            f"{peak['frac_as']:.1%} of AS and {peak['frac_other']:.1%} of non-AS windows (q = {peak['qvalue']:.1g}), "
            f"{'and' if follows else 'but'} the model's {expl.score} {'follows' if follows else 'does not follow'} "
            f"them: r = {row['r']:.2f} (circular-shift p = {row['pvalue']:.3f}), hit bases {row['hit_ratio']:.2f} x "
            f"the {expl.score} of the same positions without a hit (p = {row['hit_pvalue']:.3f}); "
            f"{len(expl.windows)} windows")


def write(expl: Explanation, out_dir) -> list[Path]:
    """Save an :class:`Explanation` as tables under ``out_dir`` (see the module docstring); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wide = pd.DataFrame(expl.scores, columns=[f"p{i}" for i in range(expl.scores.shape[1])])
    files = {"attention.tsv" if expl.score == "attention" else "ism.tsv": pd.concat([expl.windows, wide], axis=1),
             "profile.tsv": expl.by_label.assign(n_1=expl.by_label.attrs.get("n_1"), n_0=expl.by_label.attrs.get("n_0")), "enrichment.tsv": expl.enrichment, "correlation.tsv": expl.correlation}
    if expl.denovo is not None:
        files["motifs.tsv"] = expl.denovo.table
        files["instances.tsv"] = expl.denovo.instances
    if expl.denovo_null is not None:
        files["denovo_null.tsv"] = expl.denovo_null
    paths = []
    for name, df in files.items():
        df.to_csv(out / name, sep="\t", index=False, float_format="%.6g")
        paths.append(out / name)
    if expl.denovo is not None:
        write_meme(expl.denovo.motifs, out / "motifs.meme")
        paths.append(out / "motifs.meme")
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="allelic motifs", description="Attention profiles, motif enrichment along the "
                                 "window and de novo motifs of a fine-tuned model on labelled SNV windows.")
    ap.add_argument("--model", required=True, help="fine-tuned checkpoint directory (allelic finetune, chapter 04)")
    ap.add_argument("--windows", required=True, help="TSV: sequence, label [, window_id, alt_sequence]")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--score", default="attention", choices=SCORES)
    ap.add_argument("--reduction", default="pooled", choices=["pooled", "cls", "mean"])
    ap.add_argument("--layers", type=int, nargs="+", help="layers to average (default: all; negative from the end)")
    ap.add_argument("--ism-flank", type=int, help="--score ism: only bases within this many bp of the centre")
    ap.add_argument("--factors", nargs="*", default=[], help="known motifs to profile: JASPAR ids or TF names")
    ap.add_argument("--no-denovo", action="store_true", help="skip de novo motif discovery")
    ap.add_argument("--denovo-flank", type=int, help="de novo motifs: search only within this many bp of the SNV")
    ap.add_argument("--min-ratio", type=float, default=10.0,
                    help="de novo motifs: a high-score region's score over the window's minimum (DNABERT: 10)")
    ap.add_argument("--null-permutations", type=int, default=3,
                    help="de novo motifs: repeat the search with shuffled labels this many times (0: skip)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--random-state", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from . import pl
        from .finetune import read_windows
        from .predict import load_classifier
        from .tokenize import load_tokenizer

        windows = read_windows(a.windows)
        model, tok = load_classifier(a.model), load_tokenizer(a.model)
        expl = explain(model, tok, windows, score=a.score, reduction=a.reduction, layers=a.layers,
                       ism_flank=a.ism_flank, motifs=a.factors, denovo=not a.no_denovo, denovo_flank=a.denovo_flank,
                       min_ratio=a.min_ratio, null_permutations=a.null_permutations, batch_size=a.batch_size,
                       device=a.device, random_state=a.random_state, progress=False if a.no_progress else None)
        paths = write(expl, a.out)
        if expl.denovo is not None and expl.denovo.motifs:
            (Path(a.out) / "logos").mkdir(exist_ok=True)
            for m, (_, row) in zip(expl.denovo.motifs, expl.denovo.table.iterrows()):
                match = f" ~ {row['jaspar_name']} ({row['jaspar_id']})" if row["known"] else " (no JASPAR match)"
                fig = pl.logo(m, title=f"{row['motif_id']}: {row['consensus']}{match}")
                fig.savefig(Path(a.out) / "logos" / f"{row['motif_id']}.png", dpi=120)
                plt.close(fig)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    if expl.denovo is not None:
        print(expl.denovo.table.head(5).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
