"""The MEME suite's side of the motifs: TOMTOM matches against a database (memelite's implementation) and MEME
minimal-format files.

:func:`tomtom_matches` names the best database match of each motif (the JASPAR match of a de novo motif,
:func:`allelic.denovo.find_motifs`); :func:`write_meme` / :func:`read_meme` exchange :class:`allelic.motifs.Motif`
objects with the MEME suite, memelite and chapter 06's figures. :mod:`allelic.denovo` re-exports the public names.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .fdr import bh_fdr
from .motifs import ALPHABET, Motif, load_jaspar

__all__ = ["tomtom_matches", "write_meme", "read_meme"]

_MATCH_COLUMNS = ["motif_id", "jaspar_id", "jaspar_name", "tomtom_pvalue", "tomtom_evalue", "tomtom_qvalue",
                  "offset", "overlap", "strand"]


# ---------------------------------------------------------------------------------------------------------------------
# TOMTOM
# ---------------------------------------------------------------------------------------------------------------------
def _as_motif_list(motifs, what: str) -> list[Motif]:
    if isinstance(motifs, Motif):
        motifs = [motifs]
    out = list(motifs)
    for i, m in enumerate(out):
        if not isinstance(m, Motif):
            raise TypeError(f"{what} {i} is {type(m).__name__}, expected allelic.motifs.Motif")
    return out


def tomtom_matches(motifs, database=None, *, pseudocount: float = 0.8, n_jobs: int = -1) -> pd.DataFrame:
    """Best database match of each motif by TOMTOM (memelite's implementation, ``memelite.tomtom``).

    Parameters
    ----------
    motifs
        Query :class:`allelic.motifs.Motif` objects (or one).
    database
        Target motifs; default ``load_jaspar()`` (JASPAR CORE vertebrates, latest versions). TOMTOM's p-values use
        the target columns as background, so give a whole database (memelite warns below 25 targets).
    pseudocount
        Counts become letter probabilities with :meth:`Motif.probabilities` (``pseudocount``); TOMTOM compares
        probability columns (Euclidean distance), not counts.
    n_jobs
        Numba threads (-1: all).

    Returns
    -------
    DataFrame, one row per query in order: ``motif_id`` (query ``matrix_id``), ``jaspar_id``, ``jaspar_name``
    (target with the smallest p-value; ties go to the earlier target), ``tomtom_pvalue`` (best alignment over
    offsets and both strands, as memelite reports it), ``tomtom_evalue`` (p x number of targets), ``tomtom_qvalue``
    (Benjamini-Hochberg over that query's p-values against the whole database, as TOMTOM reports q-values),
    ``offset`` and ``overlap`` (memelite's alignment of the best match), ``strand`` (``"+"``, or ``"-"`` when the
    target's reverse complement matched).

    The first call in a fresh environment compiles memelite's numba kernels (about a minute on two cores; cached on
    disk afterwards).
    """
    queries = _as_motif_list(motifs, "motif")
    targets = load_jaspar() if database is None else _as_motif_list(database, "database motif")
    if not targets:
        raise ValueError("the database is empty")
    if not queries:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _MATCH_COLUMNS})
    from memelite import tomtom

    Q = [np.ascontiguousarray(m.probabilities(pseudocount), dtype=np.float64) for m in queries]
    T = [np.ascontiguousarray(m.probabilities(pseudocount), dtype=np.float64) for m in targets]
    p, _scores, offsets, overlaps, strands = tomtom(Q, T, reverse_complement=True, n_jobs=n_jobs)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    best = np.argmin(p, axis=1)            # first minimum: ties go to the earlier target
    rows = np.arange(len(queries))
    q = np.vstack([bh_fdr(p[i]) for i in rows])
    return pd.DataFrame({
        "motif_id": [m.matrix_id for m in queries],
        "jaspar_id": [targets[j].matrix_id for j in best],
        "jaspar_name": [targets[j].name for j in best],
        "tomtom_pvalue": p[rows, best],
        "tomtom_evalue": p[rows, best] * len(targets),
        "tomtom_qvalue": q[rows, best],
        "offset": offsets[rows, best].astype(np.int64),
        "overlap": overlaps[rows, best].astype(np.int64),
        "strand": np.where(strands[rows, best] > 0, "-", "+"),
    })


# ---------------------------------------------------------------------------------------------------------------------
# MEME minimal format
# ---------------------------------------------------------------------------------------------------------------------
def write_meme(motifs, path, *, background=(0.25, 0.25, 0.25, 0.25), pseudocount: float = 0.0) -> Path:
    """Write motifs as a MEME minimal-format text file (readable by the MEME suite, memelite and :func:`read_meme`).

    Each motif is written as ``MOTIF <matrix_id> <name>`` and a ``letter-probability matrix: alength= 4 w= <w>
    nsites= <N> E= 0`` block of ``w`` rows (positions) x 4 columns (A, C, G, T), probabilities
    ``Motif.probabilities(pseudocount)`` to 6 decimals; ``N`` is the largest column total, rounded (at least 1).
    ``background``: the letter frequencies written in the header (A, C, G, T). Returns the path.

    Raises ValueError for an empty id, or an id or name with whitespace (MEME splits the MOTIF line on it).
    """
    ms = _as_motif_list(motifs, "motif")
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or np.any(bg <= 0) or abs(bg.sum() - 1) > 1e-6:
        raise ValueError(f"background must be 4 positive frequencies (A, C, G, T) summing to 1, got {bg.tolist()}")
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", " ".join(f"{b} {f:.6f}" for b, f in zip(ALPHABET, bg)), ""]
    for i, m in enumerate(ms):
        if not m.matrix_id or re.search(r"\s", m.matrix_id) or re.search(r"\s", m.name):
            raise ValueError(f"motif {i}: matrix_id {m.matrix_id!r} must be non-empty and, like name {m.name!r}, "
                             "free of whitespace")
        nsites = max(1, int(round(float(m.counts.sum(axis=0).max()))))
        prob = m.probabilities(pseudocount)
        lines.append(f"MOTIF {m.matrix_id} {m.name}".rstrip())
        lines.append(f"letter-probability matrix: alength= 4 w= {m.width} nsites= {nsites} E= 0")
        lines += [" ".join(f"{x:.6f}" for x in col) for col in prob.T]
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


_HEADER_FIELD = re.compile(r"(\w+)\s*=\s*(\S+)")


def read_meme(path) -> list[Motif]:
    """Motifs from a MEME (minimal or full) text file, in file order.

    Each ``MOTIF <id> [<name>]`` line starts a motif; its ``letter-probability matrix:`` line gives ``w`` (and
    ``nsites``, ``alength``), followed by ``w`` rows of 4 probabilities (A, C, G, T). Counts are
    ``probabilities x nsites`` (``nsites`` 1 when absent or 0), so a file written by :func:`write_meme` from
    integer counts with equal column totals reads back the same counts (to 6 decimals x nsites).

    Raises
    ------
    ValueError
        Naming the file and line: an alphabet other than ACGT, ``alength`` != 4, a row without 4 numbers, a row not
        summing to 1 (+-0.01), a matrix with fewer rows than ``w``, a matrix without a MOTIF line.
    """
    path = Path(path)
    motifs: list[Motif] = []
    cur = None   # the motif being read: dict(id, name, w, nsites, rows, line)
    lines = path.read_text().splitlines()

    def close(lineno):
        """Check the motif being read is complete and store it."""
        if cur is None:
            return
        if cur["w"] is None:
            raise ValueError(f"{path}:{cur['line']}: motif {cur['id']!r} has no letter-probability matrix")
        if len(cur["rows"]) < cur["w"]:
            raise ValueError(f"{path}:{lineno}: motif {cur['id']!r} has {len(cur['rows'])} rows, "
                             f"its header says w= {cur['w']}")
        probs = np.array(cur["rows"], dtype=np.float64).reshape(cur["w"], 4).T
        motifs.append(Motif(cur["id"], cur["name"], probs * cur["nsites"]))

    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        reading = cur is not None and cur["w"] is not None and len(cur["rows"]) < cur["w"]
        if line.startswith("ALPHABET"):
            alph = line.split("=", 1)[1].strip() if "=" in line else ""
            if alph.split()[0:1] != ["ACGT"]:
                raise ValueError(f"{path}:{lineno}: alphabet {alph!r} is not supported (only ACGT)")
        elif line.startswith("MOTIF"):
            close(lineno)
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: MOTIF line without an identifier")
            cur = dict(id=parts[1], name=" ".join(parts[2:]), w=None, nsites=1.0, rows=[], line=lineno)
        elif line.startswith("letter-probability matrix"):
            if cur is None:
                raise ValueError(f"{path}:{lineno}: letter-probability matrix before any MOTIF line")
            fields = dict(_HEADER_FIELD.findall(line.split(":", 1)[1] if ":" in line else ""))
            if "w" not in fields:
                raise ValueError(f"{path}:{lineno}: letter-probability matrix line without w=")
            if int(float(fields.get("alength", 4))) != 4:
                raise ValueError(f"{path}:{lineno}: alength= {fields['alength']} (only 4, ACGT, is supported)")
            cur["w"] = int(float(fields["w"]))
            ns = float(fields.get("nsites", 1))
            cur["nsites"] = ns if ns > 0 else 1.0
            cur["rows"] = []
        elif reading and line:
            try:
                row = [float(x) for x in line.split()]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: motif {cur['id']!r} has {len(cur['rows'])} rows, its header "
                                 f"says w= {cur['w']} (then {raw.strip()!r})") from None
            if len(row) != 4:
                raise ValueError(f"{path}:{lineno}: motif {cur['id']!r}: expected a row of 4 probabilities "
                                 f"(A, C, G, T), got {raw!r}")
            if not all(math.isfinite(x) and x >= 0 for x in row) or abs(sum(row) - 1) > 0.01:
                raise ValueError(f"{path}:{lineno}: motif {cur['id']!r}: probabilities {row} must be >= 0 and "
                                 "sum to 1")
            cur["rows"].append(row)
    close(len(lines))
    return motifs
