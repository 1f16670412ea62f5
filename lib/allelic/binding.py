"""Binding data sets: sequences a factor binds (``bound`` = 1) against unbound, GC-matched background (``bound`` = 0).

"Binding-first" models (a gapped k-mer SVM, a CNN, a transformer) learn where a factor binds from such a set; the
allele effect ``f(alt) - f(ref)`` of the trained model then scores allele-specific SNVs (as deltaSVM does). A set is
built for one fold of an example table (:mod:`allelic.datasets`, :mod:`allelic.splits`) and must not leak that
fold's held-out test windows:

* **positives**: :func:`entex_binding_set` takes the reference windows of the fold's train/val examples (every EN-TEx
  labelled window lies in a CTCF ChIP peak, allele-specific or not) and, with a corpus, its CTCF-peak windows
  (sources matching :data:`POSITIVE_SOURCES`), cut to their central ``window`` bp; :func:`simulation_binding_set`
  takes ``window``-bp genome windows centred on the merged peaks of one assay, on train/val chromosomes only;
* **negatives** (``negatives="genomic"``): corpus sequences of the other sources cut into non-overlapping
  ``window``-bp chunks (EN-TEx), or random non-overlapping genome windows outside every peak of every assay
  (simulation), GC-matched to the positives of each split (:func:`gc_matched`); ``negatives="shuffled"``: a
  dinucleotide shuffle of each positive (:func:`dinucleotide_shuffle`), same split, same GC;
* **leak guard**: every candidate sharing a canonical ``k``-mer (either strand, default 32) with any test window of the
  examples (``seq_ref`` or ``seq_alt``) is dropped (reason ``overlaps_test_window``); genomic negatives sharing one
  with any positive candidate (its full corpus record; kept or filtered) are dropped too (``overlaps_positive``: a
  bound site is no background);
  the final set is checked with :func:`allelic.corpus.assert_no_overlap`, so a bug raises :class:`LeakError`
  (:func:`assert_binding_leak_free` re-checks a set against any example table).

Splits: an example window keeps its example's split; a corpus positive goes to val when it shares a k-mer with a val
example window, to train when it shares one with a train example window, else (as every corpus negative, by its whole
source record) to val when a keyed hash of the record, as a fraction of 2^64, is below ``val_frac``
(:func:`allelic.corpus._hash64`, so the choice depends on the sequence only). In the simulation a window takes its
chromosome's split. Negatives are GC-matched to the positives of their own split.

Genomic negatives are leak-checked lazily: each candidate has a fixed random priority; the GC match takes the
lowest-priority candidates of every GC bin, only those are k-mer checked, and a dropped one is replaced by the next of
its bin until every chosen one is clean. So the set equals that of checking every candidate first, while only a few
thousand of the ~540,000 corpus chunks are checked (checking all takes ~60 s on 2 CPU cores); a leaking candidate
that would never have been chosen is listed as ``subsampled`` / ``no_gc_match``.

Ledger reasons (step ``binding``): ``too_short``, ``too_many_n``, ``off_contig``, ``test_chromosome``,
``chrom_without_examples``, ``not_background_source``, ``overlaps_peak``, ``overlaps_test_window``,
``overlaps_positive``, ``duplicate`` (the same sequence on either strand as a kept one), ``subsampled``,
``no_gc_match`` (GC in a bin without positives), ``shuffle_unchanged``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import cache
from .corpus import LeakError, _chunks, _hash64, _KmerSet, _records, assert_no_overlap, corpus_stamp
from .ledger import Ledger
from .progress import bar as progress_bar
from .reference import chrom_sort_key, open_fasta

STEP = "binding"  # ledger step name
NEGATIVES = ("genomic", "shuffled")
#: corpus sources holding bound CTCF sites: the 456-bp EN-TEx CTCF-peak windows of ``EntexExpress``
POSITIVE_SOURCES = r"^EntexExpress:regression_exp"
FORMAT_VERSION = 1  # bump when a change of the code changes the sets built (it is part of :meth:`BindingSet.key`)
COLUMNS = ["sequence", "bound", "source", "split", "gc", "chrom", "record"]
_BATCH = 4096
_GC = np.zeros(256, np.uint8)
_ACGT = np.zeros(256, np.uint8)
for _b in "GCgc":
    _GC[ord(_b)] = 1
for _b in "ACGTacgt":
    _ACGT[ord(_b)] = 1


# ---------------------------------------------------------------------------------------------------------------------
# GC content and matching
# ---------------------------------------------------------------------------------------------------------------------
def gc_content(seqs) -> np.ndarray:
    """Fraction of G/C among the non-N bases (A, C, G, T in any case) of each sequence: float64 ``(n,)`` in [0, 1],
    NaN for a sequence without such bases. ``seqs``: one string or a list of ``n`` strings (any lengths)."""
    seqs = [seqs] if isinstance(seqs, str) else [str(s) for s in seqs]
    out = np.full(len(seqs), np.nan)
    for at in range(0, len(seqs), _BATCH):  # batches bound the memory (int32 running sums of the joined bytes)
        part = seqs[at:at + _BATCH]
        b = np.frombuffer("".join(part).encode("ascii"), np.uint8)
        ends = np.cumsum(np.fromiter(map(len, part), np.int64, len(part)))
        starts = np.r_[0, ends[:-1]]
        gc = np.r_[0, np.cumsum(_GC[b], dtype=np.int32)]
        acgt = np.r_[0, np.cumsum(_ACGT[b], dtype=np.int32)]
        n_gc, n = gc[ends] - gc[starts], acgt[ends] - acgt[starts]
        out[at:at + len(part)] = np.where(n > 0, n_gc / np.maximum(n, 1), np.nan)
    return out


def _gc_bin(gc: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin over [0, 1] of each GC fraction (1.0 in the last bin; -1 for NaN)."""
    gc = np.asarray(gc, float)
    out = np.full(len(gc), -1, np.int64)
    ok = np.isfinite(gc)
    out[ok] = np.clip((gc[ok] * n_bins).astype(np.int64), 0, n_bins - 1)
    return out


@dataclass
class GCMatch:
    """Result of :func:`gc_matched`. ``index``: int64 ``(m,)`` indices into the candidates, ascending; ``bins``: one
    row per GC bin with ``bin, gc_low, gc_high, n_target, n_wanted, n_available, n_taken, shortfall``
    (``n_wanted - n_taken``, > 0 where the bin had too few candidates)."""

    index: np.ndarray
    bins: pd.DataFrame

    @property
    def shortfall(self) -> int:
        """Candidates missing in all bins together (0 when the match is complete)."""
        return int(self.bins["shortfall"].sum())


def _wanted(target_bins: np.ndarray, n: int, n_bins: int) -> np.ndarray:
    """``n`` spread over the bins in proportion to the target's histogram (largest remainders, so the sum is ``n``)."""
    hist = np.bincount(target_bins[target_bins >= 0], minlength=n_bins).astype(float)
    if hist.sum() == 0:
        return np.zeros(n_bins, np.int64)
    exact = n * hist / hist.sum()
    want = np.floor(exact).astype(np.int64)
    rest = n - int(want.sum())
    want[np.argsort(-(exact - want), kind="stable")[:rest]] += 1
    return want


def _match(target_gc, cand_gc, keys: np.ndarray, available: np.ndarray, n: int, n_bins: int) -> GCMatch:
    """The GC match of :func:`gc_matched`, taking in each bin the available candidates of smallest ``keys``."""
    tb, cb = _gc_bin(target_gc, n_bins), _gc_bin(cand_gc, n_bins)
    want = _wanted(tb, n, n_bins)
    ok = available & (cb >= 0)
    order = np.lexsort((keys, cb))
    order = order[ok[order]]
    ob = cb[order]
    first = np.searchsorted(ob, np.arange(n_bins))
    avail = np.bincount(ob, minlength=n_bins)
    taken = np.minimum(want, avail)
    rank = np.arange(len(order)) - first[ob]
    index = np.sort(order[rank < taken[ob]])
    edges = np.arange(n_bins + 1) / n_bins
    bins = pd.DataFrame({"bin": np.arange(n_bins), "gc_low": edges[:-1], "gc_high": edges[1:],
                         "n_target": np.bincount(tb[tb >= 0], minlength=n_bins), "n_wanted": want,
                         "n_available": avail, "n_taken": taken, "shortfall": want - taken})
    return GCMatch(index.astype(np.int64), bins)


def gc_matched(target_gc, candidate_gc, n: int | None = None, *, n_bins: int = 20, random_state=0) -> GCMatch:
    """Indices of candidates whose GC histogram matches the target's.

    ``target_gc`` ``(t,)`` and ``candidate_gc`` ``(c,)``: GC fractions in [0, 1] (NaN ignored). The target's histogram
    over ``n_bins`` equal-width bins of [0, 1] is scaled to ``n`` (default ``t``; largest remainders, so the counts sum
    to ``n``), and each bin's count is drawn without replacement from the candidates in that bin (uniformly: the
    candidates of smallest ``np.random.default_rng(random_state).random(c)``). A bin with too few candidates gives all
    it has; the shortfall is in ``result.bins`` / ``result.shortfall``. Deterministic for ``random_state``."""
    target_gc, candidate_gc = np.asarray(target_gc, float), np.asarray(candidate_gc, float)
    n = len(target_gc) if n is None else int(n)
    if n < 0 or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"need n >= 0 and an integer n_bins >= 1, got n={n}, n_bins={n_bins!r}")
    keys = np.random.default_rng(random_state).random(len(candidate_gc))
    return _match(target_gc, candidate_gc, keys, np.ones(len(candidate_gc), bool), n, n_bins)


# ---------------------------------------------------------------------------------------------------------------------
# dinucleotide shuffle
# ---------------------------------------------------------------------------------------------------------------------
def dinucleotide_shuffle(seq: str, rng=None) -> str:
    """A random sequence with exactly the dinucleotide counts, first and last base of ``seq`` (Altschul & Erickson
    1985: a random Eulerian path of the dinucleotide graph). Last exits of the vertices are drawn until they form a
    tree towards the last base (rejection), the other exits are shuffled and the path is walked from the first base.
    ``rng``: a :class:`numpy.random.Generator` or a seed. Any characters are allowed (N is one more letter)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if len(seq) < 3:
        return seq
    s = np.frombuffer(seq.encode("ascii"), np.uint8)
    src, dst, last = s[:-1], s[1:].tolist(), int(s[-1])
    verts = [int(v) for v in np.unique(src)]
    edges = {v: np.flatnonzero(src == v) for v in verts}
    while True:
        exit_ = {v: int(rng.choice(edges[v])) for v in verts if v != last}
        ok = True
        for v in exit_:
            u = v
            for _ in range(len(verts)):
                if u == last:
                    break
                u = dst[exit_[u]]
            if u != last:
                ok = False
                break
        if ok:
            break
    keys = rng.random(len(src))
    keys[list(exit_.values())] = 2.0  # the chosen exit of a vertex is its last
    order = np.lexsort((keys, src)).tolist()
    ptr = np.searchsorted(src[order], np.arange(256)).tolist()
    out, cur = [int(s[0])], int(s[0])
    for _ in range(len(src)):
        e = order[ptr[cur]]
        ptr[cur] += 1
        cur = dst[e]
        out.append(cur)
    return bytes(out).decode("ascii")


def shuffled_background(seqs, *, random_state=0) -> list[str]:
    """:func:`dinucleotide_shuffle` of every sequence of ``seqs`` with one generator seeded by ``random_state``
    (deterministic for a given order); ~50 us per 200-bp sequence."""
    rng = np.random.default_rng(random_state)
    return [dinucleotide_shuffle(str(s), rng) for s in seqs]


# ---------------------------------------------------------------------------------------------------------------------
# the set
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class BindingSet:
    """A binding data set.

    ``table``: one row per sequence, columns ``sequence`` (upper-case, all ``window`` bp), ``bound`` (int 1 / 0),
    ``source`` (``examples:<assay>``, a corpus source, ``peaks:<assay>``, ``genome``, ``shuffled:<source>``),
    ``split`` (``train`` / ``val``), ``gc`` (float, :func:`gc_content`), ``chrom`` (None when unknown) and ``record``
    (where the sequence came from: example id, ``file:line window j``, ``chrom:start-end`` 0-based half-open);
    ``ledger``: every candidate dropped and why (module docstring); ``params``: the arguments and counts;
    ``gc_bins``: the GC match per split (:class:`GCMatch` ``bins`` with a ``split`` column; empty for shuffled)."""

    table: pd.DataFrame
    ledger: Ledger = field(default_factory=Ledger)
    params: dict = field(default_factory=dict)
    gc_bins: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, split: str) -> pd.DataFrame:
        """Rows of one split (``train`` or ``val``)."""
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; a binding set has 'train' and 'val'")
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def composition(self, *, coarse: bool = False) -> pd.DataFrame:
        """One row per ``split, bound, source``: ``n`` sequences and their ``gc_mean`` / ``gc_sd``. ``coarse``: the
        sources grouped into families (:func:`source_family`), e.g. the corpus's many promoter folders as one row."""
        t = self.table.assign(source=self.table["source"].map(source_family)) if coarse else self.table
        g = t.groupby(["split", "bound", "source"], sort=True)["gc"]
        return g.agg(n="size", gc_mean="mean", gc_sd="std").reset_index()

    def key(self) -> str:
        """16 hex digits identifying the set (format, parameters and table content), for caching trained models."""
        return cache.key("binding", FORMAT_VERSION, self.params, cache.table_digest(self.table[COLUMNS]))


#: families of sources for :meth:`BindingSet.composition` (first match wins)
SOURCE_FAMILIES = ((r"^examples:", "labelled windows (examples)"), (POSITIVE_SOURCES, "corpus CTCF-peak windows"),
                   (r"^EntexExpress:", "corpus EN-TEx promoters and windows"), (r"^DNA-Diffusion:", "corpus DHS"),
                   (r"(?i)^GUE:.*prom|^GUE:LPD", "corpus promoters (GUE)"), (r"^GUE:", "corpus GUE, other"),
                   (r"^peaks:", "peak windows"), (r"^genome", "genome windows"), (r"^shuffled:", "dinucleotide shuffles"))


def source_family(source: str) -> str:
    """The family of a binding set's ``source`` (:data:`SOURCE_FAMILIES`), the source itself when none matches."""
    return next((name for pattern, name in SOURCE_FAMILIES if re.search(pattern, source)), source)


def _example_table(examples) -> pd.DataFrame:
    t = getattr(examples, "table", examples)
    if not isinstance(t, pd.DataFrame):
        raise TypeError(f"examples must be an allelic.datasets.Examples or a DataFrame, got {type(examples).__name__}")
    missing = [c for c in ("seq_ref", "split") if c not in t.columns]
    if missing:
        raise ValueError(f"example table: missing column(s) {', '.join(missing)} (split it first with "
                         f"allelic.splits.split_examples or chromosome_folds)")
    bad = sorted(set(t["split"].astype(str)) - {"train", "val", "test"})
    if bad:
        raise ValueError(f"example table: split value(s) {', '.join(bad)}; expected train, val, test")
    return t.reset_index(drop=True)


def _test_windows(t: pd.DataFrame) -> list[str]:
    """Every test window of the examples: ``seq_ref`` and ``seq_alt`` (when present) of the ``split == "test"`` rows."""
    test = t[t["split"] == "test"]
    out = test["seq_ref"].astype(str).str.upper().tolist()
    if "seq_alt" in test.columns:
        out += test["seq_alt"].astype(str).str.upper().tolist()
    return out


def _test_names(t: pd.DataFrame) -> list[str]:
    """Names of the windows of :func:`_test_windows`, in its order (``<example_id> seq_ref`` / ``seq_alt``)."""
    test = t[t["split"] == "test"]
    ids = test["example_id"].astype(str) if "example_id" in test.columns else pd.Series(test.index.astype(str))
    return [f"test example {i} seq_ref" for i in ids] + ([f"test example {i} seq_alt" for i in ids]
                                                         if "seq_alt" in test.columns else [])


def _first_hits(kset: _KmerSet, seqs: list[str], prefer_below: int = 0) -> dict:
    """``{sequence index: (offset, set index)}``: the first k-mer of each sequence found in ``kset``; the first one
    held by a set sequence of index < ``prefer_below`` (the test windows) when there is one."""
    out: dict = {}
    for b in range(0, len(seqs), _BATCH):
        wid, off, tid = kset.hits(seqs[b:b + _BATCH])
        for w, o, i in zip(wid.tolist(), off.tolist(), tid.tolist()):
            if b + w not in out or (i < prefer_below <= out[b + w][1]):
                out[b + w] = (o, i)
    return out


_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def _canonical(seqs: pd.Series) -> pd.Series:
    """The smaller of each (upper-case) sequence and its reverse complement (as
    :func:`allelic.motifs.reverse_complement` computes it, without its per-call validation: ~10x faster on the
    ~540,000 corpus chunks)."""
    rc = pd.Series([s.translate(_COMPLEMENT)[::-1] for s in seqs], index=seqs.index, dtype=object)
    return seqs.where(seqs <= rc, rc)


def _log(ledger: Ledger, rows: pd.DataFrame, reason: str, detail="") -> None:
    """Ledger rows (``source``, ``record`` columns) removed for ``reason``; ``detail`` a string or a per-row list."""
    if isinstance(detail, str):
        for src, g in rows.groupby("source", sort=False):
            ledger.extend(STEP, src, g["record"].tolist(), reason, detail)
    else:
        for src, rec, d in zip(rows["source"], rows["record"], detail):
            ledger.add(STEP, src, rec, reason, d)


class _Builder:
    """Filters candidates into a :class:`BindingSet`; all removals go to ``self.ledger``."""

    def __init__(self, test: list[str], names: list[str], *, window: int, k: int, max_n_frac: float, n_bins: int,
                 random_state):
        self.test, self.names, self.window, self.k = test, names, window, k
        self.max_n_frac, self.n_bins = max_n_frac, n_bins
        self.rs = random_state
        self.ledger = Ledger()
        self.test_set = _KmerSet(test, k)

    def drop(self, df: pd.DataFrame, mask, reason: str, detail="") -> pd.DataFrame:
        mask = np.asarray(mask, bool)
        if mask.any():
            if isinstance(detail, list):
                detail = [d for d, m in zip(detail, mask) if m]
            _log(self.ledger, df[mask], reason, detail)
        return df[~mask].reset_index(drop=True)

    def clean(self, df: pd.DataFrame) -> pd.DataFrame:
        """Upper-case; drop too-short windows and windows with more than ``max_n_frac`` N."""
        df = df.assign(sequence=df["sequence"].str.upper())
        df = self.drop(df, df["sequence"].str.len() < self.window, "too_short", f"< window {self.window} bp")
        n_n = df["sequence"].str.count("N").to_numpy()
        return self.drop(df, n_n > self.max_n_frac * self.window, "too_many_n", f"> {self.max_n_frac:.0%} N")

    def leak_detail(self, seqs: list[str], hits: dict, names: list[str]) -> list[str]:
        return [f"{self.k}-mer {seqs[w][o:o + self.k]} (either strand) of {names[i]}" for w, (o, i) in hits.items()]

    def drop_test_leaks(self, df: pd.DataFrame) -> pd.DataFrame:
        seqs = df["sequence"].tolist()
        hits = _first_hits(self.test_set, seqs)
        mask = np.zeros(len(df), bool)
        mask[list(hits)] = True
        detail = dict(zip(hits, self.leak_detail(seqs, hits, self.names)))
        return self.drop(df, mask, "overlaps_test_window", [detail.get(i, "") for i in range(len(df))])

    def positives(self, pos: pd.DataFrame, max_positives: int | None) -> pd.DataFrame:
        """Clean, leak-free, unique positives (at most ``max_positives``, a seeded random subset)."""
        pos = self.drop_test_leaks(self.clean(pos))
        canon = _canonical(pos["sequence"])
        dup = canon.duplicated().to_numpy()
        first = dict(zip(canon[~dup], pos["record"][~dup]))
        pos = self.drop(pos, dup, "duplicate", [f"same sequence (either strand) as {first[c]}" for c in canon])
        if max_positives is not None and len(pos) > max_positives:
            keep = np.zeros(len(pos), bool)
            keep[np.random.default_rng([_seed(self.rs), 1]).permutation(len(pos))[:max_positives]] = True
            pos = self.drop(pos, ~keep, "subsampled", f"not among max_positives={max_positives} drawn")
        return pos.assign(bound=1, gc=gc_content(pos["sequence"].tolist()))

    def shuffled(self, pos: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One dinucleotide shuffle of each positive, leak-checked."""
        shuf = shuffled_background(pos["sequence"], random_state=[_seed(self.rs), 2])
        neg = pd.DataFrame({"sequence": shuf, "source": "shuffled:" + pos["source"], "split": pos["split"],
                            "chrom": None, "record": "shuffle of " + pos["record"]})
        neg = self.drop(neg, (neg["sequence"] == pos["sequence"]).to_numpy(), "shuffle_unchanged",
                        "the shuffle returned the sequence itself")
        return self.drop_test_leaks(neg).assign(bound=0), pd.DataFrame()

    def genomic(self, pos: pd.DataFrame, cand: pd.DataFrame, context: list[str], neg_ratio: float):
        """GC-matched negatives from ``cand`` (columns ``sequence, source, split, chrom, record``), per split, free of
        test k-mers and of k-mers of the positives' ``context`` sequences; returns ``(negatives, GC bins)``."""
        cand = self.clean(cand)
        canon = _canonical(cand["sequence"])
        seen = set(_canonical(pos["sequence"]))
        cand = self.drop(cand, (canon.isin(seen) | canon.duplicated()).to_numpy(), "duplicate",
                         "same sequence (either strand) as a positive or an earlier candidate")
        guard = _KmerSet(self.test + context, self.k)
        names = self.names + [f"positive {i}" for i in range(len(context))]
        cand = cand.assign(gc=gc_content(cand["sequence"].tolist()))
        keys = np.random.default_rng([_seed(self.rs), 3]).random(len(cand))
        out, bins = [], []
        for split in ("train", "val"):
            target = pos.loc[pos["split"] == split, "gc"].to_numpy()
            at = np.flatnonzero((cand["split"] == split).to_numpy())
            pool = cand.iloc[at].reset_index(drop=True)
            seqs = pool["sequence"].tolist()
            avail, checked = np.ones(len(pool), bool), np.zeros(len(pool), bool)
            leak: dict = {}
            while True:
                n = int(round(neg_ratio * len(target)))
                m = _match(target, pool["gc"].to_numpy(), keys[at], avail, n, self.n_bins)
                new = m.index[~checked[m.index]]
                if not len(new):
                    break
                checked[new] = True
                hits = _first_hits(guard, [seqs[i] for i in new], prefer_below=len(self.test))
                for w, (o, i) in hits.items():
                    avail[new[w]] = False
                    leak[int(new[w])] = (o, i)
            chosen = np.zeros(len(pool), bool)
            chosen[m.index] = True
            for reason, test_side in (("overlaps_test_window", True), ("overlaps_positive", False)):
                idx = [w for w, (_, i) in leak.items() if (i < len(self.test)) == test_side]
                detail = self.leak_detail(seqs, {w: leak[w] for w in idx}, names)
                _log(self.ledger, pool.iloc[idx], reason, detail)
            unused = ~chosen & avail
            wanted = m.bins["n_wanted"].to_numpy()[np.maximum(_gc_bin(pool["gc"].to_numpy(), self.n_bins), 0)] > 0
            _log(self.ledger, pool[unused & ~wanted], "no_gc_match", f"GC in a bin without {split} positives")
            _log(self.ledger, pool[unused & wanted], "subsampled", f"not drawn for the {split} GC match")
            out.append(pool[chosen])
            bins.append(m.bins.assign(split=split))
        neg = pd.concat(out, ignore_index=True).assign(bound=0)
        return neg, pd.concat(bins, ignore_index=True)

    def finish(self, pos, cand, negatives, context, neg_ratio, params) -> BindingSet:
        if negatives == "shuffled":
            neg, bins = self.shuffled(pos)
        else:
            neg, bins = self.genomic(pos, cand, context, neg_ratio)
        t = pd.concat([pos, neg], ignore_index=True)
        t["gc"] = gc_content(t["sequence"].tolist())
        t["bound"] = t["bound"].astype(np.int64)
        t["chrom"] = t["chrom"].astype(object).where(t["chrom"].notna(), None)
        t = t.assign(_s=t["split"].map({"train": 0, "val": 1}), _b=-t["bound"])
        t = t.sort_values(["_s", "_b", "source", "record"], kind="stable")[COLUMNS].reset_index(drop=True)
        assert_no_overlap(t["sequence"].tolist(), self.test, k=self.k)  # a bug above raises LeakError here
        shortfall = int(bins["shortfall"].sum()) if len(bins) else 0
        params = {**params, "window": self.window, "k": self.k, "max_n_frac": self.max_n_frac, "n_bins": self.n_bins,
                  "negatives": negatives, "neg_ratio": neg_ratio, "random_state": self.rs,
                  "n_test_windows": len(self.test), "gc_shortfall": shortfall}
        return BindingSet(t, self.ledger, params, bins)


def _seed(random_state) -> int:
    return int(random_state or 0)


def _check(window, negatives, k, val_frac=0.0, max_positives=None):
    if not isinstance(window, (int, np.integer)) or window < k:
        raise ValueError(f"window must be an integer >= k = {k}, got {window!r}")
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
    if not 0 <= val_frac < 1:
        raise ValueError(f"val_frac must be in [0, 1), got {val_frac!r}")
    if max_positives is not None and max_positives < 1:
        raise ValueError(f"max_positives must be >= 1 or None, got {max_positives!r}")


def _examples_digest(t: pd.DataFrame) -> str:
    cols = [c for c in ("example_id", "chrom", "seq_ref", "seq_alt", "split") if c in t.columns]
    return cache.table_digest(t[cols].astype(str))


# ---------------------------------------------------------------------------------------------------------------------
# EN-TEx (+ corpus)
# ---------------------------------------------------------------------------------------------------------------------
def _corpus_candidates(corpus, window: int, pattern: str, negative_pattern: str | None, val_frac: float, random_state,
                       ledger: Ledger, progress):
    """Read the corpus once: ``(positives, negative candidates)`` DataFrames (``sequence, source, split, chrom,
    record`` + ``context`` for positives: the whole record). Positives: records whose source matches ``pattern``,
    cut to their central ``window`` bp; candidates: the other records cut into non-overlapping ``window``-bp chunks
    (shorter pieces are ledgered ``too_short``), only of sources matching ``negative_pattern`` when given (the others
    are ledgered ``not_background_source``). ``split`` of the candidates: by the hash of their record."""
    rx, nrx = re.compile(pattern), re.compile(negative_pattern) if negative_pattern else None
    pos, neg, short = [], [], []
    cut = 2.0 ** 64 * val_frac
    with progress_bar(desc="reading corpus", unit=" seq", progress=progress, leave=False) as bar:
        for source, seq, where, _ in _records(corpus):
            bar.update(1)
            if rx.search(source):
                if len(seq) < window:
                    short.append((source, where, len(seq)))
                else:
                    a = (len(seq) - window) // 2
                    pos.append((seq[a:a + window], source, where, seq))
                continue
            if nrx is not None and not nrx.search(source):
                ledger.add(STEP, source, where, "not_background_source", f"source does not match {negative_pattern!r}")
                continue
            split = "val" if val_frac > 0 and _hash64(random_state, "binding_split", seq) < cut else "train"
            for j, piece in enumerate(_chunks(seq, window, window)):
                if len(piece) < window:
                    short.append((source, f"{where} window {j}", len(piece)))
                else:
                    neg.append((piece, source, split, f"{where} window {j}"))
    for src, rec, n in short:
        ledger.add(STEP, src, rec, "too_short", f"{n} bp < window {window}")
    pos = pd.DataFrame(pos, columns=["sequence", "source", "record", "context"]).assign(chrom=None)
    neg = pd.DataFrame(neg, columns=["sequence", "source", "split", "record"]).assign(chrom=None)
    return pos, neg


def _follow_examples(pos: pd.DataFrame, t: pd.DataFrame, k: int, val_frac: float, random_state) -> np.ndarray:
    """Split of each corpus positive: val when it shares a k-mer with a val example window, else train when it
    shares one with a train example window, else by the hash of its record (``val_frac``)."""
    val = t.loc[t["split"] == "val", "seq_ref"].str.upper().tolist()
    train = t.loc[t["split"] == "train", "seq_ref"].str.upper().tolist()
    wid, _, tid = _KmerSet(val + train, k).hits(pos["sequence"].tolist())
    hit_val, hit_train = np.zeros(len(pos), bool), np.zeros(len(pos), bool)
    hit_val[wid[tid < len(val)]] = True
    hit_train[wid[tid >= len(val)]] = True
    cut = 2.0 ** 64 * val_frac
    by_hash = np.array([val_frac > 0 and _hash64(random_state, "binding_split", s) < cut for s in pos["context"]], bool)
    return np.where(hit_val, "val", np.where(hit_train, "train", np.where(by_hash, "val", "train")))


def entex_binding_set(examples, corpus=None, *, window: int = 200, negatives: str = "genomic", assay="CTCF",
                      positive_sources: str = POSITIVE_SOURCES, negative_sources: str | None = None,
                      max_positives: int | None = None, val_frac: float = 0.1, neg_ratio: float = 1.0,
                      max_n_frac: float = 0.1, n_bins: int = 20, random_state=0, k: int = 32,
                      progress=None) -> BindingSet:
    """A CTCF binding set for one fold of the EN-TEx examples (see the module docstring).

    ``examples``: an :class:`allelic.datasets.Examples` (or its table) after :func:`allelic.splits.chromosome_folds` /
    :func:`~allelic.splits.split_examples` (columns ``seq_ref``, ``split``; ``seq_alt``, ``example_id``, ``chrom``,
    ``assay`` used when present). Positives: the unique ``seq_ref`` of the train/val rows of ``assay`` (None: all
    rows), central ``window`` bp, split as their example; with ``corpus`` (a TSV/FASTA file or folder, as
    :func:`allelic.corpus.iter_corpus` reads), also the records whose ``source`` matches the regular expression
    ``positive_sources``. Negatives: ``"genomic"`` (needs ``corpus``): ``neg_ratio`` x as many ``window``-bp chunks of
    the other corpus records (only those whose source matches the regular expression ``negative_sources`` when given)
    as positives in each split, GC-matched; ``"shuffled"``: a dinucleotide shuffle of each
    positive. ``max_positives``: a seeded random subset of the positives (after filtering). Every candidate sharing a
    canonical ``k``-mer with a test window is dropped (ledger ``overlaps_test_window``). Deterministic for
    ``random_state``. Measured on 2 CPU cores with the real corpus (272k records, 83 Mb) and a 6-fold EN-TEx split:
    ~10 s per set with genomic negatives (~10,600 positives and as many negatives), ~7 s shuffled; ~0.8 GB peak."""
    _check(window, negatives, k, val_frac, max_positives)
    if negatives == "genomic" and corpus is None:
        raise ValueError("negatives='genomic' needs a corpus (path to the pretraining corpus TSV/FASTA or folder); "
                         "or use negatives='shuffled'")
    t = _example_table(examples)
    b = _Builder(_test_windows(t), _test_names(t), window=window, k=k, max_n_frac=max_n_frac, n_bins=n_bins,
                 random_state=random_state)
    rows = t[t["split"] != "test"]
    if assay is not None and "assay" in rows.columns:
        wanted = [assay] if isinstance(assay, str) else list(assay)
        rows = rows[rows["assay"].isin(wanted)]
    seq = rows["seq_ref"].astype(str).str.upper()
    a = (seq.str.len() - window).clip(lower=0) // 2
    ids = rows["example_id"] if "example_id" in rows.columns else pd.Series(rows.index.astype(str), index=rows.index)
    pos = pd.DataFrame({"sequence": [s[i:i + window] for s, i in zip(seq, a)],
                        "source": "examples:" + (rows["assay"].astype(str) if "assay" in rows.columns else "windows"),
                        "split": rows["split"].to_numpy(), "chrom": rows["chrom"] if "chrom" in rows.columns else None,
                        "record": ids.astype(str), "context": seq}).reset_index(drop=True)
    cand = None
    if corpus is not None:
        cpos, cand = _corpus_candidates(corpus, window, positive_sources, negative_sources, val_frac, random_state,
                                        b.ledger, progress)
        cpos = b.clean(cpos)
        cpos["split"] = _follow_examples(cpos, t, k, val_frac, random_state)
        pos = pd.concat([pos, cpos], ignore_index=True)
    context = pos["context"].str.upper().tolist()  # every bound sequence, also those filtered out below
    pos = b.positives(pos, max_positives)
    params = {"kind": "entex", "assay": assay, "positive_sources": positive_sources,
              "negative_sources": negative_sources, "max_positives": max_positives,
              "val_frac": val_frac, "examples": _examples_digest(t),
              "corpus": corpus_stamp(corpus) if corpus is not None else None}
    return b.finish(pos.drop(columns="context"), cand, negatives, context, neg_ratio, params)


# ---------------------------------------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------------------------------------
def _read_peaks(paths) -> pd.DataFrame:
    """Merged intervals ``chrom, start, end`` (0-based half-open) of the BED files ``paths``."""
    parts = []
    for p in paths:
        try:
            bed = pd.read_csv(p, sep="\t", header=None, usecols=[0, 1, 2], comment="#", dtype={0: str})
        except pd.errors.EmptyDataError:
            continue
        except ValueError as exc:
            raise ValueError(f"{p}: not a BED file with chrom, start, end columns ({exc})") from None
        parts.append(bed.set_axis(["chrom", "start", "end"], axis=1))
    if not parts:
        return pd.DataFrame({"chrom": [], "start": [], "end": []})
    bed = pd.concat(parts).sort_values(["chrom", "start", "end"])
    out = []
    for chrom, g in bed.groupby("chrom", sort=False):
        s, e = g["start"].to_numpy(np.int64), g["end"].to_numpy(np.int64)
        reach = np.maximum.accumulate(e)
        new = np.r_[True, s[1:] > reach[:-1]]  # a peak starting past every earlier end opens a new interval
        out.append(pd.DataFrame({"chrom": chrom, "start": s[new], "end": np.maximum.reduceat(e, np.flatnonzero(new))}))
    return pd.concat(out, ignore_index=True)


def _overlaps(starts: np.ndarray, width: int, peaks: pd.DataFrame) -> np.ndarray:
    """Whether each window ``[start, start + width)`` overlaps one of the (merged, sorted) ``peaks`` of a chromosome."""
    a, e = peaks["start"].to_numpy(np.int64), peaks["end"].to_numpy(np.int64)
    i = np.searchsorted(a, starts + width) - 1  # the last peak starting before the window ends
    return (i >= 0) & (e[np.maximum(i, 0)] > starts)


def _chrom_splits(t: pd.DataFrame) -> dict:
    """``{chrom: split}`` of the chromosomes without test rows: val when any of its rows is val, else train."""
    if "chrom" not in t.columns:
        raise ValueError("example table: no 'chrom' column; simulation_binding_set splits by chromosome")
    out = {}
    for chrom, s in t.groupby(t["chrom"].astype(str))["split"]:
        if not (s == "test").any():
            out[chrom] = "val" if (s == "val").any() else "train"
    return out


def simulation_binding_set(sim, examples, *, assay: str = "CTCF", window: int = 200, negatives: str = "genomic",
                           max_positives: int | None = None, neg_ratio: float = 1.0, max_n_frac: float = 0.1,
                           n_bins: int = 20, random_state=0, k: int = 32) -> BindingSet:
    """A binding set of the book's data (a :class:`allelic.samplesheet.SampleSheet` with peaks: the simulator's, or
    your own; or an :class:`allelic.simulate.Simulation`) for one split of its examples.

    Positives: ``window``-bp windows of ``sim.fasta`` centred on the merged peaks of every sample of ``assay`` (the
    ``peaks`` BED of ``sim.samples()``), on chromosomes whose examples are all train/val (split: val when any of the
    chromosome's examples is val); peaks on a chromosome with test rows or without examples are ledgered
    (``test_chromosome``, ``chrom_without_examples``). Negatives, ``"genomic"``: non-overlapping ``window``-bp windows
    of the same chromosomes (tiles from a seeded random offset) overlapping no peak of any assay (else
    ``overlaps_peak``), GC-matched to the positives of their split; ``"shuffled"``: a dinucleotide shuffle of each
    positive. The k-mer leak guard against the test windows applies as in :func:`entex_binding_set`."""
    from .samplesheet import SampleSheet, from_simulation

    _check(window, negatives, k, 0.0, max_positives)
    sim = sim if isinstance(sim, SampleSheet) else from_simulation(sim)
    t = _example_table(examples)
    splits = _chrom_splits(t)
    samples = sim.samples()
    if assay not in set(samples["assay"]):
        raise ValueError(f"{sim.root / 'samples.tsv'}: no sample of assay {assay!r} (assays: "
                         f"{', '.join(sorted(set(samples['assay'])))})")
    peaks = _read_peaks(samples.loc[samples["assay"] == assay, "peaks"])
    every = _read_peaks(samples["peaks"])
    b = _Builder(_test_windows(t), _test_names(t), window=window, k=k, max_n_frac=max_n_frac, n_bins=n_bins,
                 random_state=random_state)
    src = f"peaks:{assay}"
    rec = peaks["chrom"] + ":" + peaks["start"].astype(str) + "-" + peaks["end"].astype(str)
    tested = set(t["chrom"].astype(str)) - set(splits)
    for reason, mask in (("test_chromosome", peaks["chrom"].isin(tested)),
                         ("chrom_without_examples", ~peaks["chrom"].isin(set(t["chrom"].astype(str))))):
        b.ledger.extend(STEP, src, rec[mask].tolist(), reason, "chromosome not in train/val")
    pos_rows, cand_rows = [], []
    rng = np.random.default_rng([_seed(random_state), 4])
    fa = open_fasta(sim.fasta)
    try:
        for chrom in sorted(splits, key=chrom_sort_key):
            if chrom not in fa.references:
                raise ValueError(f"{sim.fasta}: no contig {chrom!r} (the examples' chromosome)")
            seq = fa.fetch(chrom).upper()
            p = peaks[peaks["chrom"] == chrom]
            a = (p["start"].to_numpy() + p["end"].to_numpy()) // 2 - window // 2
            off = (a < 0) | (a + window > len(seq))
            b.ledger.extend(STEP, src, rec[p.index[off]].tolist(), "off_contig",
                            f"{window}-bp window past the contig end")
            pos_rows += [(seq[s:s + window], src, splits[chrom], chrom, f"{chrom}:{s}-{s + window}") for s in a[~off]]
            tiles = np.arange(int(rng.integers(0, window)), len(seq) - window + 1, window)
            hit = _overlaps(tiles, window, every[every["chrom"] == chrom])
            b.ledger.extend(STEP, "genome", [f"{chrom}:{s}-{s + window}" for s in tiles[hit]], "overlaps_peak",
                            "overlaps a peak of some assay")
            cand_rows += [(seq[s:s + window], "genome", splits[chrom], chrom, f"{chrom}:{s}-{s + window}")
                          for s in tiles[~hit]]
    finally:
        fa.close()
    cols = ["sequence", "source", "split", "chrom", "record"]
    pos = pd.DataFrame(pos_rows, columns=cols)
    context = pos["sequence"].str.upper().tolist()
    pos = b.positives(pos, max_positives)
    params = {"kind": "simulation", "simulation": str(sim.root), "data_key": sim.key(), "assay": assay,
              "max_positives": max_positives, "examples": _examples_digest(t), "chroms": splits}
    return b.finish(pos, pd.DataFrame(cand_rows, columns=cols), negatives, context, neg_ratio, params)


# ---------------------------------------------------------------------------------------------------------------------
# guard
# ---------------------------------------------------------------------------------------------------------------------
def assert_binding_leak_free(binding_set: BindingSet, examples, *, k: int = 32) -> None:
    """Raise :class:`allelic.corpus.LeakError` when a sequence of ``binding_set`` shares a canonical ``k``-mer (either
    strand) with a test window (``seq_ref`` / ``seq_alt`` of a ``split == "test"`` row) of ``examples``; the message
    names the row, its source and record, the k-mer and the test window."""
    t = _example_table(examples)
    test = _test_windows(t)
    seqs = binding_set.table["sequence"].tolist()
    try:
        assert_no_overlap(seqs, test, k=k)
    except LeakError as e:
        row = binding_set.table.iloc[e.pretrain_index]
        test_rows = t[t["split"] == "test"]
        ti = e.test_index % max(len(test_rows), 1)
        name = test_rows["example_id"].iat[ti] if "example_id" in test_rows.columns else f"test row {ti}"
        allele = "seq_alt" if e.test_index >= len(test_rows) else "seq_ref"
        raise LeakError(f"binding set row {e.pretrain_index} ({row['source']} {row['record']}, bound={row['bound']}, "
                        f"split={row['split']}) shares the {k}-mer {e.kmer} (either strand) with the {allele} window "
                        f"of test example {name}", e.pretrain_index, e.test_index, e.kmer) from None
