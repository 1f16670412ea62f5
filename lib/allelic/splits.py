"""Leak-free splits of an example table: train / validation / test sides no SNV, window or sequence crosses.

Leak rules, enforced by every split here and checked by :func:`assert_leak_free`:

1. the same SNV (chrom:pos; any alt, assay, tissue or donor) is never on two sides of a split;
2. examples whose windows overlap (same chromosome, ``|pos_a - pos_b| < window``) are on the same side — taken
   transitively, i.e. connected components of the overlap graph (a run of SNVs each within ``window`` of the next);
3. examples sharing a window sequence — identical ``seq_ref`` / ``seq_alt``, or identical to the reverse complement
   of another example's — are on the same side.

The components of rules 1-3 are the ``leak_group``. Schemes: ``chromosome`` (default) holds out whole chromosomes;
a leak group spanning chromosomes of different splits (rule 3 only: a sequence repeated on two chromosomes) is moved
whole to its most held-out split (test before val before train) and counted in ``params["n_reassigned"]``.
``bins`` assigns genomic bins (default 100 kb, as the held-out 100-kb bins of the EN-TEx models) at random, bins
linked by a leak group travelling together.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .datasets import SPLITS, Examples
from .ledger import Ledger
from .motifs import reverse_complement
from .reference import chrom_sort_key

_CODE = {s: i for i, s in enumerate(SPLITS)}  # priority when a leak group must be moved whole: test > val > train


# -- leak groups ----------------------------------------------------------------------------------------------------
def _overlap_clusters(t: pd.DataFrame, window: int) -> np.ndarray:
    """Per row, the id of its run of SNVs on one chromosome each within ``window`` bp of the next (rules 1 and 2)."""
    chrom_code = pd.factorize(t["chrom"].astype(str))[0]
    pos = t["pos"].to_numpy(np.int64)
    order = np.lexsort((pos, chrom_code))
    c, p = chrom_code[order], pos[order]
    new = np.ones(len(t), bool)
    new[1:] = (c[1:] != c[:-1]) | (p[1:] - p[:-1] >= window)
    cl = np.empty(len(t), np.int64)
    cl[order] = np.cumsum(new) - 1
    return cl


def _sequence_codes(t: pd.DataFrame) -> np.ndarray | None:
    """Codes of strand-canonical window sequences: array (n, 2) for seq_ref, seq_alt (rule 3), or None."""
    cols = [c for c in ("seq_ref", "seq_alt") if c in t.columns]
    if not cols:
        return None
    keys = []
    for j, c in enumerate(cols):
        s = t[c]
        missing = (s.isna() | (s.astype(str) == "")).to_numpy()
        s = s.astype(str).str.upper()
        # a missing sequence links nothing: give it a key no sequence can have
        keys.append([f"<missing {j}:{i}>" if missing[i] else min(x, reverse_complement(x)) for i, x in enumerate(s)])
    codes = pd.factorize(pd.Series(np.concatenate([np.asarray(k, dtype=object) for k in keys])))[0]
    return codes.reshape(len(cols), len(t)).T


def _components(n: int, labelings: list[np.ndarray]) -> np.ndarray:
    """Connected components of rows linked by sharing a value in any of ``labelings`` (each an array of shape (n,) or
    (n, m): rows sharing a code anywhere in it are linked). Component ids are numbered by first row."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    src, dst = [np.arange(n)], [np.arange(n)]
    for lab in labelings:
        lab = np.asarray(lab)
        flat = lab.reshape(n, -1)
        rows = np.repeat(np.arange(n), flat.shape[1])
        codes = flat.ravel()
        order = np.argsort(codes, kind="stable")
        same = codes[order][1:] == codes[order][:-1]
        src.append(rows[order][:-1][same])
        dst.append(rows[order][1:][same])
    i, j = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(np.argsort(first))] = np.arange(len(first))
    return rank[comp]


def leak_groups(ex) -> np.ndarray:
    """Per row of the example table, the id of its leak group (the connected components of the three leak rules)."""
    t, window = _table_window(ex)
    labelings = [_overlap_clusters(t, window)]
    sc = _sequence_codes(t)
    if sc is not None:
        labelings.append(sc)
    return _components(len(t), labelings)


def _table_window(ex, window=None):
    if isinstance(ex, Examples):
        return ex.table, int(window or ex.window)
    if isinstance(ex, pd.DataFrame):
        if window is None:
            raise ValueError("pass window= with a bare DataFrame (or pass an Examples)")
        return ex, int(window)
    raise TypeError(f"expected Examples or a DataFrame, got {type(ex).__name__}")


def _resolve_max(codes: np.ndarray, groups: np.ndarray) -> np.ndarray:
    best = np.full(groups.max() + 1 if len(groups) else 0, -1, np.int64)
    np.maximum.at(best, groups, codes)
    return best[groups]


def _pick_chroms(counts: pd.Series, target: float, rng, keep_min: int = 1) -> list[str]:
    """Chromosomes (in ``rng`` order) whose example counts add up closest to ``target``, leaving ``keep_min`` out."""
    if target <= 0 or len(counts) <= keep_min:
        return []
    names = sorted(counts.index, key=chrom_sort_key)
    order = [names[i] for i in rng.permutation(len(names))]
    chosen, cur = [], 0
    for c in order:
        if len(counts) - len(chosen) <= keep_min:
            break
        n = int(counts[c])
        if abs(cur + n - target) < abs(cur - target):
            chosen.append(c)
            cur += n
    if not chosen:  # every chromosome is more than twice the target: take the smallest
        chosen = [min(order, key=lambda c: (int(counts[c]), chrom_sort_key(c)))]
    return sorted(chosen, key=chrom_sort_key)


def _check_fracs(test_frac, val_frac):
    for name, v in (("test_frac", test_frac), ("val_frac", val_frac)):
        if not 0 <= v < 1:
            raise ValueError(f"{name} must be in [0, 1), got {v!r}")
    if test_frac + val_frac >= 1:
        raise ValueError(f"test_frac + val_frac = {test_frac + val_frac} leaves nothing to train on")


def _check_chroms(given, known: set, name: str) -> list[str]:
    chroms = [given] if isinstance(given, str) else list(given)
    unknown = [c for c in chroms if c not in known]
    if unknown:
        raise ValueError(f"{name}: chromosome(s) {', '.join(map(str, unknown))} not in the examples "
                         f"(which have {', '.join(sorted(known, key=chrom_sort_key))})")
    return chroms


def _finish_split(ex: Examples, t: pd.DataFrame, codes: np.ndarray, groups: np.ndarray, **params) -> Examples:
    t = t.copy()
    t["split"] = np.asarray(SPLITS, dtype=object)[codes]
    t["leak_group"] = groups
    n = len(t)
    frac = {s: round(float((codes == _CODE[s]).sum()) / n, 4) if n else 0.0 for s in SPLITS}
    out = ex.derive(t, split=params | {"fractions": frac})
    assert_leak_free(out)
    return out


def split_examples(ex: Examples, *, scheme: str = "chromosome", test_chroms=None, val_chroms=None,
                   test_frac: float = 0.2, val_frac: float = 0.1, random_state=0, bin_size: int = 100_000) -> Examples:
    """Assign every example to ``train`` / ``val`` / ``test`` without leaks (see the module docstring); returns a copy
    with columns ``split`` and ``leak_group`` and the choices in ``params["split"]``.

    ``scheme="chromosome"`` (default): whole chromosomes are held out — ``test_chroms`` / ``val_chroms`` when given,
    otherwise chosen in a ``random_state`` order so that their examples come closest to ``test_frac`` / ``val_frac``
    of the table (at least one chromosome stays in train; val can be empty when too few chromosomes are left).
    ``scheme="bins"``: genomic bins of ``bin_size`` bp (joined when a leak group links them) are shuffled with
    ``random_state`` and filled into test, val, then train to ``test_frac`` / ``val_frac`` of the examples.
    Raises AssertionError (from :func:`assert_leak_free`) only on an internal error."""
    if not isinstance(ex, Examples):
        raise TypeError(f"expected Examples, got {type(ex).__name__}")
    _check_fracs(test_frac, val_frac)
    t = ex.table.drop(columns=[c for c in ("split", "leak_group") if c in ex.table.columns]).reset_index(drop=True)
    if t.empty:
        raise ValueError("no examples to split")
    rng = np.random.default_rng(random_state)
    groups = leak_groups(Examples(t, window=ex.window))
    n = len(t)
    if scheme == "chromosome":
        counts = t["chrom"].value_counts()
        known = set(counts.index)
        test = _check_chroms(test_chroms, known, "test_chroms") if test_chroms is not None else None
        val = _check_chroms(val_chroms, known, "val_chroms") if val_chroms is not None else None
        if test is not None and val is not None and set(test) & set(val):
            raise ValueError(f"chromosome(s) {', '.join(sorted(set(test) & set(val)))} are in both test_chroms and val_chroms")
        if test is None:
            test = _pick_chroms(counts.drop(val or []), test_frac * n, rng)
        if val is None:
            val = _pick_chroms(counts.drop(test), val_frac * n, rng)
            if val_frac > 0 and not val:
                warnings.warn(f"only {len(known)} chromosome(s): no validation chromosome left; val is empty", stacklevel=2)
        if len(set(test) | set(val)) >= len(known):
            raise ValueError("test_chroms and val_chroms cover every chromosome: nothing left to train on")
        by_chrom = np.where(t["chrom"].isin(test), _CODE["test"], np.where(t["chrom"].isin(val), _CODE["val"], _CODE["train"]))
        codes = _resolve_max(by_chrom, groups)
        return _finish_split(ex, t, codes, groups, scheme="chromosome", test_chroms=sorted(test, key=chrom_sort_key),
                             val_chroms=sorted(val, key=chrom_sort_key), random_state=random_state,
                             n_reassigned=int((codes != by_chrom).sum()))
    if scheme == "bins":
        if not isinstance(bin_size, (int, np.integer)) or bin_size < 1:
            raise ValueError(f"bin_size must be a positive integer, got {bin_size!r}")
        bins = pd.factorize(t["chrom"].astype(str) + ":" + ((t["pos"].to_numpy() - 1) // bin_size).astype(str))[0]
        units = _components(n, [groups, bins])
        sizes = np.bincount(units)
        perm = rng.permutation(len(sizes))
        mid = np.cumsum(sizes[perm]) - sizes[perm] / 2
        unit_code = np.empty(len(sizes), np.int64)
        unit_code[perm] = np.where(mid < test_frac * n, _CODE["test"],
                                   np.where(mid < (test_frac + val_frac) * n, _CODE["val"], _CODE["train"]))
        codes = unit_code[units]
        return _finish_split(ex, t, codes, groups, scheme="bins", bin_size=int(bin_size), random_state=random_state,
                             n_units=int(len(sizes)), n_reassigned=0)
    raise ValueError(f"unknown scheme {scheme!r}; expected 'chromosome' or 'bins'")


def chromosome_folds(ex: Examples, n_folds: int = 5, *, random_state=0, val_frac: float = 0.1) -> list[Examples]:
    """``n_folds`` splits for repeated evaluation: the chromosomes are dealt (in a ``random_state`` order, each to the
    fold with the fewest examples so far) into ``n_folds`` disjoint sets; fold i tests on set i, with validation
    chromosomes drawn from the others (about ``val_frac`` of the examples) and the rest as train. A leak group spanning
    folds goes whole to its lowest-numbered fold, so the test sets are disjoint and cover every example once. Each
    fold is an :class:`Examples` with ``params["split"]["fold"]``."""
    if not isinstance(ex, Examples):
        raise TypeError(f"expected Examples, got {type(ex).__name__}")
    _check_fracs(0.0, val_frac)
    t = ex.table.drop(columns=[c for c in ("split", "leak_group") if c in ex.table.columns]).reset_index(drop=True)
    counts = t["chrom"].value_counts()
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if n_folds > len(counts):
        raise ValueError(f"n_folds = {n_folds} but the examples are on only {len(counts)} chromosome(s)")
    rng = np.random.default_rng(random_state)
    names = sorted(counts.index, key=chrom_sort_key)
    totals = np.zeros(n_folds, np.int64)
    fold_of = {}
    for i in rng.permutation(len(names)):
        f = int(np.argmin(totals))
        fold_of[names[i]] = f
        totals[f] += int(counts[names[i]])
    groups = leak_groups(Examples(t, window=ex.window))
    by_chrom = t["chrom"].map(fold_of).to_numpy(np.int64)
    best = np.full(groups.max() + 1, n_folds, np.int64)
    np.minimum.at(best, groups, by_chrom)
    fold = best[groups]
    out = []
    for i in range(n_folds):
        test = fold == i
        rest = t.loc[~test, "chrom"].value_counts()
        fold_rng = np.random.default_rng([int(random_state or 0), i])
        val = _pick_chroms(rest, val_frac * len(t), fold_rng) if val_frac > 0 else []
        base = np.where(test, _CODE["test"], np.where(t["chrom"].isin(val), _CODE["val"], _CODE["train"]))
        codes = _resolve_max(base, groups)
        out.append(_finish_split(ex, t, codes, groups, scheme="chromosome_folds", fold=i, n_folds=n_folds,
                                 test_chroms=sorted([c for c, f in fold_of.items() if f == i], key=chrom_sort_key),
                                 val_chroms=sorted(val, key=chrom_sort_key), random_state=random_state,
                                 n_reassigned=int((fold != by_chrom).sum() + (codes != base).sum())))
    return out


# -- checks and summaries -------------------------------------------------------------------------------------------
def assert_leak_free(ex, *, window: int | None = None) -> None:
    """Raise AssertionError describing the first leak between splits: a shared SNV (chrom:pos), overlapping windows
    (``|pos_a - pos_b| < window`` on one chromosome), or a shared window sequence (``seq_ref`` / ``seq_alt``, either
    strand). ``ex``: split :class:`Examples`, or a DataFrame with ``window=``."""
    t, window = _table_window(ex, window)
    if "split" not in t.columns:
        raise AssertionError("no 'split' column: the examples are not split")
    bad = ~t["split"].isin(SPLITS)
    if bad.any():
        raise AssertionError(f"unknown split value {t['split'][bad].iloc[0]!r}; expected {', '.join(SPLITS)}")
    if t.empty:
        return
    chrom = t["chrom"].astype(str).to_numpy()
    pos = t["pos"].to_numpy(np.int64)
    split = t["split"].to_numpy()
    ids = t["example_id"].to_numpy() if "example_id" in t.columns else np.arange(len(t)).astype(str)
    code = pd.factorize(pd.Series(chrom))[0]
    order = np.lexsort((pos, code))
    c, p, s = code[order], pos[order], split[order]
    near = (c[1:] == c[:-1]) & (p[1:] - p[:-1] < window) & (s[1:] != s[:-1])
    if near.any():
        k = int(np.flatnonzero(near)[0])
        a, b = order[k], order[k + 1]
        what = (f"SNV {chrom[a]}:{pos[a]} is in {split[a]} ({ids[a]}) and {split[b]} ({ids[b]})" if pos[a] == pos[b] else
                f"overlapping windows across splits: {ids[a]} ({split[a]}) and {ids[b]} ({split[b]}) are "
                f"{pos[b] - pos[a]} bp apart, window {window} bp")
        raise AssertionError(f"leak: {what}")
    sc = _sequence_codes(t)
    if sc is not None:
        flat = sc.ravel()
        rows = np.repeat(np.arange(len(t)), sc.shape[1])
        order = np.lexsort((split[rows], flat))
        f, r = flat[order], rows[order]
        cross = (f[1:] == f[:-1]) & (split[r[1:]] != split[r[:-1]])
        if cross.any():
            k = int(np.flatnonzero(cross)[0])
            a, b = r[k], r[k + 1]
            raise AssertionError(f"leak: duplicate window sequence across splits: {ids[a]} ({split[a]}) and {ids[b]} "
                                 f"({split[b]}) share a window (same strand or reverse complement)")


def split_summary(ex, *, by_assay: bool = True) -> pd.DataFrame:
    """Per split (and assay): ``n`` examples, ``n_pos`` (label 1), ``frac_pos``, ``n_chroms``, ``n_snvs`` (unique
    chrom:pos). Splits in the order train, val, test."""
    t = ex.table if isinstance(ex, Examples) else ex
    if "split" not in t.columns:
        raise ValueError("examples are not split yet: call split_examples or chromosome_folds first")
    keys = ["split", "assay"] if by_assay else ["split"]
    cols = keys + ["n", "n_pos", "frac_pos", "n_chroms", "n_snvs"]
    if t.empty:
        return pd.DataFrame(columns=cols)
    snv = t["chrom"].astype(str) + ":" + t["pos"].astype(str)
    g = t.assign(_snv=snv).groupby(keys, sort=False)
    out = g.agg(n=("label", "size"), n_pos=("label", "sum"), n_chroms=("chrom", "nunique"), n_snvs=("_snv", "nunique"))
    out = out.reset_index()
    out["n_pos"] = out["n_pos"].astype(np.int64)
    out["frac_pos"] = out["n_pos"] / out["n"]
    out["_o"] = out["split"].map(_CODE)
    out = out.sort_values(["_o"] + keys[1:], kind="stable").drop(columns="_o").reset_index(drop=True)
    return out[cols]


def balance(ex: Examples, *, random_state=0) -> Examples:
    """Downsample the majority class to the minority's count within each split x assay (each assay when not split):
    the class-balanced sets of the EN-TEx models. Removed rows go to the ledger (step ``balance``, reason
    ``balance_downsampled``); a split x assay with no example of one class is emptied (with a warning)."""
    if not isinstance(ex, Examples):
        raise TypeError(f"expected Examples, got {type(ex).__name__}")
    t = ex.table.reset_index(drop=True)
    keys = ["split", "assay"] if "split" in t.columns else ["assay"]
    rng = np.random.default_rng(random_state)
    keep = np.ones(len(t), bool)
    ledger = Ledger(list(ex.ledger.rows))
    for key, idx in sorted(t.groupby(keys, sort=False).indices.items(), key=lambda kv: tuple(map(str, np.atleast_1d(kv[0])))):
        lab = t["label"].to_numpy()[idx]
        pos, neg = idx[lab == 1], idx[lab == 0]
        m = min(len(pos), len(neg))
        if m == 0 and len(idx):
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, np.atleast_1d(key)))
            warnings.warn(f"balance: {where} has {len(pos)} positive and {len(neg)} negative "
                          f"example(s); all removed", stacklevel=2)
        for cls in (pos, neg):
            if len(cls) > m:
                drop = np.sort(rng.choice(cls, size=len(cls) - m, replace=False))
                keep[drop] = False
                d = t.iloc[drop]
                ledger.extend("balance", "examples", (d["example_id"] + " " + d["assay"].astype(str)).tolist(),
                              "balance_downsampled", ", ".join(f"{k}={v}" for k, v in zip(keys, np.atleast_1d(key))))
    out = Examples(t[keep].reset_index(drop=True), ledger, ex.window, {**ex.params, "balance": {"random_state": random_state}})
    return out
