"""Steps 4 to 6 of the de novo motif search (:mod:`allelic.denovo`): assembling enriched k-mers into motifs.

* **Merging by sequence** (:func:`_merge`): enriched candidates, most significant first, are placed in groups on a
  common coordinate frame (:class:`_Group`) when they share an exact block of bases with a member.
* **Sites** (:func:`_place`): every occurrence of a member inside a high-score region says where the group's frame
  lies in that window; per window the placement backed by the most occurrences becomes a site if its backing members
  cover enough of the frame. Groups that are one motif are merged (:func:`_merge_groups`): by shared sites
  (:func:`_relative_placement`) or by aligned site matrices (:func:`_site_matrix`, :func:`_best_alignment`).
* **PWMs**: the base counts of the sites' stretches (:func:`_site_stretch`, :func:`_stretch_of`, :func:`_counts_of`),
  flanks of low information content trimmed (:func:`_trim_bounds`).

:func:`allelic.denovo.find_motifs` (whose docstring and module docstring describe the rules and their reasons) is
the only user; nothing here is public.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .motifs import Motif, encode, reverse_complement
from .progress import bar as progress_bar

__all__: list[str] = []


# ---------------------------------------------------------------------------------------------------------------------
# step 4: merging
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Group:
    """Enriched candidates on one coordinate frame: ``members`` are ``(candidate index, offset, orientation)``
    (the candidate, or its reverse complement for orientation -1, covers frame ``[offset, offset + k)``), most
    significant first; ``placed`` the sequence each member shows on the frame (kept up to date only while merging
    by sequence, :func:`_merge`); ``sites`` and ``weak`` filled by :func:`_place`."""

    members: list
    placed: list
    sites: list = field(default_factory=list)
    weak: list = field(default_factory=list)

    def span(self, cand_seq: list[str]) -> tuple[int, int]:
        """Frame interval ``[lo, hi)`` covered by the members."""
        return (min(off for _, off, _ in self.members),
                max(off + len(cand_seq[ci]) for ci, off, _ in self.members))


def _merge(order: list[int], seqs: list[str], min_length: int, min_overlap: int, progress=None) -> list[_Group]:
    """Greedy merge of candidates ``order`` (most significant first) into groups.

    A candidate of length ``k`` joins the earliest group with a member that shares an exact block of
    ``s = min(min_overlap, k)`` bases with it, on either strand (ties: earliest member, forward strand, leftmost
    block), placed where the block aligns; else it starts a group. The member must be at least ``s`` long, so a short
    member (a promiscuous 5-mer contained in two motifs) never bridges two motifs."""
    groups: list[_Group] = []
    index: dict[tuple[int, str], list[tuple[int, int, int]]] = {}   # (s, s-mer) -> [(group, member, position)]
    for ci in progress_bar(order, desc="merging candidates", progress=progress):
        c = seqs[ci]
        k = len(c)
        s = min(min_overlap, k)
        best = None   # ((group, member, orientation rank, pos in member, pos in oriented candidate), orientation)
        for orient_rank, (orient, oc) in enumerate(((1, c), (-1, reverse_complement(c)))):
            for q in range(k - s + 1):
                for g, mi, pm in index.get((s, oc[q: q + s]), ()):
                    key = (g, mi, orient_rank, pm, q)
                    if best is None or key < best[0]:
                        best = (key, orient)
        if best is None:
            g = len(groups)
            groups.append(_Group(members=[(ci, 0, 1)], placed=[c]))
            mi, placed = 0, c
        else:
            (g, mj, _, pm, q), orient = best
            _, off_j, _ = groups[g].members[mj]
            placed = c if orient == 1 else reverse_complement(c)
            groups[g].members.append((ci, off_j + pm - q, orient))
            groups[g].placed.append(placed)
            mi = len(groups[g].members) - 1
        for s2 in range(min_length, min(min_overlap, len(placed)) + 1):
            for p in range(len(placed) - s2 + 1):
                index.setdefault((s2, placed[p: p + s2]), []).append((g, mi, p))
    return groups

# ---------------------------------------------------------------------------------------------------------------------
# step 5: sites; merging groups that are one motif
# ---------------------------------------------------------------------------------------------------------------------
def _occurrences_by_candidate(occ, cand_keys, starts, enriched) -> dict:
    """Occurrences inside regions of each enriched candidate: ``{candidate index: (windows, positions,
    orientations)}``, sorted by window then position; orientation +1 when the window shows the canonical form."""
    out: dict[int, tuple] = {}
    for j, (_k, key, wins, pos, ori) in enumerate(occ):
        if not key.size:
            continue
        gidx = starts[j] + np.searchsorted(cand_keys[j], key)
        sel = enriched[gidx]
        if not sel.any():
            continue
        g, w, p, o = gidx[sel], wins[sel], pos[sel], ori[sel]
        srt = np.lexsort((p, w, g))
        g, w, p, o = g[srt], w[srt], p[srt], o[srt]
        cuts = np.flatnonzero(np.diff(g)) + 1
        for gs, ws, ps, os_ in zip(np.split(g, cuts), np.split(w, cuts), np.split(p, cuts), np.split(o, cuts)):
            out[int(gs[0])] = (ws.tolist(), ps.tolist(), os_.tolist())
    return out


def _place(grp: _Group, occ_by_cand: dict, cand_seq: list[str], min_support: int) -> tuple[int, int]:
    """Fill ``grp.sites`` with the group's sites (``(window, strand, t, core start, core end, candidate)``) and
    ``grp.weak`` with the placements too weakly backed to be sites; return ``(n_collapsed, n_weak)``: member
    occurrences absorbed into a site or weak placement beyond the first, and weak placements.

    An occurrence of a member at window position ``p`` says where the frame lies in the window: frame coordinate
    ``x`` is window position ``t + x`` (strand +1) or ``t - x`` (strand -1), with ``t = p - offset`` or
    ``p + k + offset`` (a palindromic member says both). A placement's *core* is the frame span ``[lo, hi)`` in
    window coordinates. In each window the placement backed by the most occurrences (ties: the most significant
    member, then strand +1, then leftmost) is taken and every occurrence whose core overlaps it is absorbed; repeated
    until none is left. Voting keeps a member seen in the "wrong" orientation (a near-palindrome) from misplacing a
    site. A placement becomes a site only when the members backing it cover at least ``min(min_support, span)``
    frame bases, so that a short k-mer shared with another motif does not make sites of this one in that motif's
    windows."""
    lo, hi = grp.span(cand_seq)
    need = min(min_support, hi - lo)
    per_window: dict[int, list] = {}
    occ_id = 0
    for rank, (ci, off, morient) in enumerate(grp.members):
        if ci not in occ_by_cand:
            continue
        c = cand_seq[ci]
        k = len(c)
        palindrome = c == reverse_complement(c)
        for w, p, o in zip(*occ_by_cand[ci]):
            strands = (1, -1) if palindrome else (morient * o,)
            opts = per_window.setdefault(w, [])
            for strand in strands:
                t = p - off if strand == 1 else p + k + off
                core = (t + lo, t + hi) if strand == 1 else (t - hi, t - lo)
                opts.append((strand, t, core, rank, ci, occ_id, off, off + k))
            occ_id += 1
    sites, weak = [], []
    for w in sorted(per_window):
        opts = per_window[w]
        while opts:
            support: dict[tuple[int, int], list] = {}
            for strand, t, core, rank, ci, _, f0, f1 in opts:
                sup = support.setdefault((strand, t), [0, rank, ci, core, set()])
                sup[0] += 1
                sup[4].update(range(f0, f1))
                if rank < sup[1]:
                    sup[1], sup[2] = rank, ci
            (strand, t), (_, _, ci, core, covered) = min(
                support.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0][0] != 1, kv[1][3][0]))
            if len(covered) >= need:
                sites.append((w, strand, t, core[0], core[1], ci))
            else:
                weak.append((w, strand, core[0], core[1], ci, len(covered)))
            gone = {x[5] for x in opts if x[2][0] < core[1] and core[0] < x[2][1]}
            opts = [x for x in opts if x[5] not in gone]
    grp.sites, grp.weak = sites, weak
    return occ_id - len(sites) - len(weak), len(weak)


def _relative_placement(a: _Group, b: _Group):
    """Sites of ``b`` lying on sites of ``a``: ``(n_shared, sigma, delta)``, where ``n_shared`` counts the sites of
    ``b`` whose core overlaps a core of ``a`` in the same window and ``x_a = delta + sigma * x_b`` is the most common
    placement of ``b``'s frame in ``a``'s among them; None when no site is shared."""
    by_window: dict[int, list] = {}
    for w, s, t, c0, c1, _ in a.sites:
        by_window.setdefault(w, []).append((s, t, c0, c1))
    votes: dict[tuple[int, int], int] = {}
    n_shared = 0
    for w, sb, tb, c0, c1, _ in b.sites:
        for sa, ta, d0, d1 in by_window.get(w, ()):
            if c0 < d1 and d0 < c1:
                key = (sa * sb, sa * (tb - ta))
                votes[key] = votes.get(key, 0) + 1
                n_shared += 1
                break
    if not votes:
        return None
    (sigma, delta), _ = min(votes.items(), key=lambda kv: (-kv[1], kv[0][0] != 1, abs(kv[0][1]), kv[0][1]))
    return n_shared, sigma, delta


def _site_stretch(grp: _Group, cand_seq: list[str], window: int) -> tuple[int, int]:
    """Frame interval ``[a0, a0 + W)`` taken around each site: ``W = max(window, span)``, centred on the span."""
    lo, hi = grp.span(cand_seq)
    W = max(window, hi - lo)
    return (lo + hi - W) // 2, W


def _stretch_of(site, a0: int, W: int) -> tuple[int, int]:
    """Window interval ``[start, end)`` of the frame stretch ``[a0, a0 + W)`` of one site."""
    _, strand, t, _, _, _ = site
    start = t + a0 if strand == 1 else t - a0 - W
    return start, start + W


def _site_matrix(grp: _Group, cand_seq: list[str], seqs: list[str], lengths: np.ndarray, window: int, trim_ic,
                 pseudocount):
    """``(probabilities (4, w), information content (w,), frame coordinate of column 0)`` of the group's sites
    (stretches of :func:`_site_stretch` that lie inside their windows), flanks below ``trim_ic`` bits trimmed; None
    when no stretch lies inside its window."""
    a0, W = _site_stretch(grp, cand_seq, window)
    rows = []
    for site in grp.sites:
        start, end = _stretch_of(site, a0, W)
        if start < 0 or end > lengths[site[0]]:
            continue
        sq = seqs[site[0]][start:end].upper()
        rows.append(sq if site[1] == 1 else reverse_complement(sq))
    if not rows:
        return None
    counts = _counts_of(rows, W)
    left, right = _trim_bounds(counts, trim_ic, pseudocount)
    counts = counts[:, left:right]
    return (Motif("_", "_", counts).probabilities(pseudocount), _information_content(counts, pseudocount),
            a0 + left)


def _trim_bounds(counts: np.ndarray, trim_ic, pseudocount) -> tuple[int, int]:
    """Columns ``[left, right)`` left after trimming flanks with information content below ``trim_ic`` bits (all of
    them when ``trim_ic`` is None or no column reaches it)."""
    if trim_ic is None:
        return 0, counts.shape[1]
    good = np.flatnonzero(_information_content(counts, pseudocount) >= trim_ic)
    if not good.size:
        return 0, counts.shape[1]
    return int(good[0]), int(good[-1]) + 1


def _column_correlations(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``A`` (4, wa) with every column of ``B`` (4, wb): ``(wa, wb)``, 0
    where a column is constant."""
    A = A - A.mean(axis=0)
    B = B - B.mean(axis=0)
    na = np.sqrt((A * A).sum(axis=0))
    nb = np.sqrt((B * B).sum(axis=0))
    den = na[:, None] * nb[None, :]
    return np.where(den > 0, (A.T @ B) / np.where(den > 0, den, 1.0), 0.0)


def _best_alignment(ma, mb, min_overlap: int):
    """Best ungapped alignment of two group matrices (:func:`_site_matrix`), both strands:
    ``(similarity, sigma, delta)``. The similarity is the mean column Pearson correlation over the overlap, each
    column pair weighted by the geometric mean of the two columns' information content (so that uninformative
    columns of small groups count little); the overlap must have at least ``min(min_overlap, w_a, w_b)`` columns.
    Ties: larger overlap, same strand, smaller shift. ``x_a = delta + sigma * x_b`` maps frame coordinates of ``b``
    to ``a``'s; None when no alignment is long enough."""
    (PA, ia, xa0), (PB, ib, xb0) = ma, mb
    wa, wb = PA.shape[1], PB.shape[1]
    need = min(min_overlap, wa, wb)
    best = None
    for sigma, Q, iq in ((1, PB, ib), (-1, PB[::-1, ::-1], ib[::-1])):
        wt = np.sqrt(np.clip(ia, 1e-9, None)[:, None] * np.clip(iq, 1e-9, None)[None, :])
        rw = _column_correlations(PA, Q) * wt
        for shift in range(-(wb - 1), wa):      # Q column j faces A column j + shift
            i0, i1 = max(0, shift), min(wa, wb + shift)
            if i1 - i0 < need:
                continue
            sim = float(np.trace(rw, offset=-shift) / np.trace(wt, offset=-shift))
            key = (-sim, -(i1 - i0), sigma != 1, abs(shift))
            if best is None or key < best[0]:
                j0 = i0 - shift
                xa = xa0 + i0
                delta = xa - (xb0 + j0) if sigma == 1 else xa + (xb0 + wb - 1 - j0) + 1
                best = (key, sim, sigma, delta)
    return None if best is None else best[1:]


def _merge_groups(groups: list, occ_by_cand: dict, cand_seq: list[str], seqs: list[str], lengths: np.ndarray, *,
                  min_shared: float, min_similarity: float, min_overlap: int, window: int, trim_ic, pseudocount,
                  progress=None):
    """Merge groups that are one motif. Group ``b`` joins an earlier (more significant) group ``a`` when

    * at least ``min_shared`` of the smaller group's sites overlap sites of the other in the same windows (the two
      are pieces of one site, e.g. the two halves of a long motif), placed at their most common relative placement;
      or
    * their site matrices (``window``-wide stretches, trimmed) align, on either strand, with an information-weighted
      mean column Pearson correlation of at least ``min_similarity`` (:func:`_best_alignment`; variants of one motif
      in different windows, e.g. ``AGATTAG`` / ``AGATAAG``), placed by that alignment.

    ``b``'s members move into ``a``'s frame and ``a``'s sites are re-voted; passes repeat until nothing merges.
    Returns ``(groups, n_by_sites, n_by_similarity, n_collapsed, n_weak)`` (see :func:`_place`)."""
    for g in groups:
        _place(g, occ_by_cand, cand_seq, min_overlap)
    mats: dict[int, object] = {}

    def matrix(i):
        if i not in mats:
            mats[i] = _site_matrix(groups[i], cand_seq, seqs, lengths, window, trim_ic, pseudocount)
        return mats[i]

    alive = list(range(len(groups)))
    n_sites = n_sim = 0
    changed = True
    while changed:
        changed = False
        for j in progress_bar(list(alive), desc="merging groups", progress=progress):
            if j not in alive:
                continue
            for i in alive:
                if i >= j:
                    break
                a, b = groups[i], groups[j]
                small = min(len(a.sites), len(b.sites))
                rel = _relative_placement(a, b) if small else None
                if rel is not None and rel[0] >= min_shared * small:
                    _, sigma, delta = rel
                    n_sites += 1
                else:
                    ma, mb = matrix(i), matrix(j)
                    al = _best_alignment(ma, mb, min_overlap) if ma is not None and mb is not None else None
                    if al is None or al[0] < min_similarity:
                        continue
                    _, sigma, delta = al
                    n_sim += 1
                for ci, off, mo in b.members:
                    k = len(cand_seq[ci])
                    a.members.append((ci, delta + off, mo) if sigma == 1 else (ci, delta - off - k, -mo))
                _place(a, occ_by_cand, cand_seq, min_overlap)
                mats.pop(i, None)
                alive.remove(j)
                changed = True
                break
    out = [groups[i] for i in alive]
    placed = [_place(g, occ_by_cand, cand_seq, min_overlap) for g in out]
    return out, n_sites, n_sim, sum(p[0] for p in placed), sum(p[1] for p in placed)


# ---------------------------------------------------------------------------------------------------------------------
# step 6: PWMs
# ---------------------------------------------------------------------------------------------------------------------
def _information_content(counts: np.ndarray, pseudocount: float) -> np.ndarray:
    p = Motif("_", "_", counts).probabilities(pseudocount)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=0)
    return 2.0 - h


def _counts_of(seqs: list[str], width: int) -> np.ndarray:
    counts = np.zeros((4, width))
    if not seqs:
        return counts
    codes, _ = encode(seqs, what="instance", ragged=True)
    for b in range(4):
        counts[b] = (codes == b).sum(axis=0)
    return counts
