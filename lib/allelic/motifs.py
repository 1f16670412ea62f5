"""DNA alphabet and coding, JASPAR motifs (:class:`Motif`, :func:`load_jaspar`).

Conventions used throughout this module
---------------------------------------
* The alphabet is ``ALPHABET = "ACGT"``; every matrix has its rows in that order.
* A *count matrix* has shape ``(4, w)`` (rows A, C, G, T; one column per motif
  position). A *PWM* here always means a ``(4, w)`` array of **log2-odds**
  scores, ``log2(p_motif / p_background)``, in bits (:meth:`Motif.log_odds`).
* Sequences are coded as integers A, C, G, T, N = 0..4 (:func:`encode`, :data:`BASE_CODES`); ``N`` is an all-zero
  one-hot row (:func:`one_hot`).

* :func:`resolve_motifs` turns what a user or a model names (ids, factor names, assays) into motifs, with the
  pinned matrices of :data:`FACTOR_MOTIF_IDS` and the assay factors of :data:`ASSAY_MOTIFS`.

PWM scanning (window scores, :class:`allelic.pwm.PwmBank`, score thresholds and p-values) lives in
:mod:`allelic.pwm`, the per-position motif profiles along windows in :mod:`allelic.profiles`; both build on this
module.
"""
from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np

__all__ = [
    "ALPHABET",
    "Motif",
    "one_hot",
    "reverse_complement",
    "load_jaspar",
    "resolve_motifs",
    "ASSAY_MOTIFS",
    "FACTOR_MOTIF_IDS",
]

ALPHABET = "ACGT"

#: JASPAR release that :func:`load_jaspar` reads by default (pinned so that
#: "the latest version of CTCF" does not change when pyjaspar is upgraded).
DEFAULT_JASPAR_RELEASE = "JASPAR2024"

_UNIFORM = (0.25, 0.25, 0.25, 0.25)
N_CODE = 4           # integer code of N (all-zero one-hot row)
BAD_CODE = 255       # integer code of any character that is not ACGTN/acgtn

#: byte -> integer code (A, C, G, T = 0..3 in either case, N = :data:`N_CODE`, anything else :data:`BAD_CODE`):
#: ``BASE_CODES[np.frombuffer(seq.encode(), np.uint8)]`` codes a sequence (:func:`encode`, :func:`reverse_complement`)
BASE_CODES = np.full(256, BAD_CODE, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
    BASE_CODES[ord(_c)] = _i
    BASE_CODES[ord(_c.lower())] = _i
BASE_CODES[ord("N")] = N_CODE
BASE_CODES[ord("n")] = N_CODE
del _i, _c

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


# --------------------------------------------------------------------------- helpers
def _rng(random_state) -> np.random.Generator:
    """``np.random.Generator`` from an int seed, a Generator (returned as is) or None."""
    return np.random.default_rng(random_state)


def _as_background(background) -> np.ndarray:
    """Validate a background distribution: 4 positive probabilities (A, C, G, T) summing to 1."""
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (4,):
        raise ValueError(f"background must have 4 entries (A, C, G, T), got shape {bg.shape}")
    if not np.all(np.isfinite(bg)) or np.any(bg <= 0):
        raise ValueError(f"background probabilities must be finite and > 0, got {bg.tolist()}")
    if abs(bg.sum() - 1.0) > 1e-6:
        raise ValueError(f"background probabilities must sum to 1, got sum {bg.sum():.6g}")
    return bg


def encode(seqs, *, what: str = "sequence", ragged: bool = False) -> tuple[np.ndarray, bool]:
    """Integer codes (A, C, G, T, N = 0..4) of strings.

    Returns ``(codes, single)``: ``codes`` is ``(n, L)`` uint8 and ``single`` is True
    when ``seqs`` was one ``str`` (then ``n == 1``). Raises ValueError for unequal
    lengths or a character outside ``ACGTNacgtn``, naming sequence index and position.
    With ``ragged``, lengths may differ: ``L`` is the longest and shorter sequences are
    padded with N at the end. ``what`` names one sequence in the messages (e.g. ``"window"``).
    """
    single = isinstance(seqs, str)
    if single:
        seqs = [seqs]
    else:
        if isinstance(seqs, (bytes, bytearray)):
            raise TypeError(f"{what}s must be str or a list of str, not bytes")
        seqs = list(seqs)
        for i, s in enumerate(seqs):
            if not isinstance(s, str):
                raise TypeError(f"{what} {i} is {type(s).__name__}, expected str")
    n = len(seqs)
    if n == 0:
        return np.zeros((0, 0), dtype=np.uint8), single
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    L = int(lengths.max()) if ragged else int(lengths[0])
    if not ragged and np.any(lengths != L):
        i = int(np.flatnonzero(lengths != L)[0])
        raise ValueError(
            f"{what}s must all have the same length: {what} 0 has length {L}, "
            f"{what} {i} has length {int(lengths[i])}"
        )
    # 'replace' keeps one byte per character, so flat positions stay aligned
    raw = "".join(s.ljust(L, "N") for s in seqs) if ragged else "".join(seqs)
    codes = BASE_CODES[np.frombuffer(raw.encode("ascii", errors="replace"), dtype=np.uint8)].reshape(n, L)
    bad = np.flatnonzero(codes.ravel() == BAD_CODE)
    if bad.size:
        i, p = divmod(int(bad[0]), L)
        raise ValueError(
            f"invalid character {seqs[i][p]!r} in {what} {i} at position {p} "
            f"(allowed: A, C, G, T, N, upper or lower case)"
        )
    return codes, single


# --------------------------------------------------------------------------- encoding
def one_hot(seqs: Union[str, Sequence[str]], *, dtype=np.float32) -> np.ndarray:
    """One-hot encode DNA.

    Parameters
    ----------
    seqs
        One ``str`` of length L, or a list of ``n`` strings that all have length L.
        Upper and lower case are accepted; ``N``/``n`` encodes as an all-zero row.
    dtype
        dtype of the result.

    Returns
    -------
    ``(L, 4)`` for one string, ``(n, L, 4)`` for a list; columns A, C, G, T.

    Raises
    ------
    ValueError
        A character other than ``ACGTN`` (either case), naming the sequence index and
        the position; or sequences of unequal length.
    """
    codes, single = encode(seqs)
    table = np.zeros((5, 4), dtype=dtype)
    table[np.arange(4), np.arange(4)] = 1
    # gather whole 4-element rows as single opaque items: ~10x faster than table[codes]
    rows = table.view(np.dtype(f"V{4 * table.itemsize}")).reshape(5)
    out = rows[codes].view(table.dtype).reshape(codes.shape + (4,))   # (n, L, 4)
    return out[0] if single else out


def reverse_complement(seq: str) -> str:
    """Reverse complement of a DNA string (``ACGTN``, case preserved).

    Raises ValueError naming the position of any other character.
    """
    if not isinstance(seq, str):
        raise TypeError(f"reverse_complement expects a str, got {type(seq).__name__}")
    rc = seq.translate(_COMPLEMENT)[::-1]
    codes = BASE_CODES[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]
    bad = np.flatnonzero(codes == BAD_CODE)
    if bad.size:
        p = int(bad[0])
        raise ValueError(f"invalid character {seq[p]!r} at position {p} (allowed: ACGTN)")
    return rc


# --------------------------------------------------------------------------- Motif
@dataclass(frozen=True, eq=False, repr=False)
class Motif:
    """A position frequency matrix (counts) with its JASPAR identity.

    Attributes
    ----------
    matrix_id
        JASPAR matrix id with version, e.g. ``"MA0139.1"`` (free text for hand-made motifs).
    name
        Transcription factor name, e.g. ``"CTCF"``.
    counts
        ``(4, w)`` float64 counts (rows A, C, G, T), non-negative. Stored as a
        read-only copy. Columns may have different totals (JASPAR has some).
    """

    matrix_id: str
    name: str
    counts: np.ndarray

    def __post_init__(self):
        c = np.array(self.counts, dtype=np.float64)   # copy
        if c.ndim != 2 or c.shape[0] != 4 or c.shape[1] < 1:
            raise ValueError(
                f"Motif {self.matrix_id!r}: counts must be a (4, w) array with w >= 1 "
                f"(rows A, C, G, T), got shape {c.shape}"
            )
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"Motif {self.matrix_id!r}: counts must be finite and >= 0")
        c.setflags(write=False)
        object.__setattr__(self, "counts", c)

    def __repr__(self) -> str:
        return f"Motif({self.matrix_id!r}, {self.name!r}, width={self.width})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, Motif):
            return NotImplemented
        return (
            self.matrix_id == other.matrix_id
            and self.name == other.name
            and np.array_equal(self.counts, other.counts)
        )

    def __hash__(self) -> int:
        return hash((self.matrix_id, self.name, self.counts.shape, self.counts.tobytes()))

    @property
    def width(self) -> int:
        """Number of motif positions ``w``."""
        return int(self.counts.shape[1])

    def probabilities(self, pseudocount: float = 0.8) -> np.ndarray:
        """Position probability matrix, ``(4, w)``, each column summing to 1.

        ``p[b, j] = (counts[b, j] + pseudocount / 4) / (N_j + pseudocount)`` where
        ``N_j = counts[:, j].sum()``: a *total* pseudocount per column, spread
        uniformly over the 4 bases (the JASPAR / TFBSTools convention). Note that
        Biopython's ``counts.normalize(pseudocounts=q)`` adds ``q`` to *each* base, which
        equals this method with ``pseudocount = 4 * q``.
        """
        p = float(pseudocount)
        if not np.isfinite(p) or p < 0:
            raise ValueError(f"pseudocount must be finite and >= 0, got {pseudocount}")
        totals = self.counts.sum(axis=0) + p
        if np.any(totals <= 0):
            j = int(np.flatnonzero(totals <= 0)[0])
            raise ValueError(
                f"Motif {self.matrix_id!r}: column {j} has no counts; use a pseudocount > 0"
            )
        return (self.counts + p / 4.0) / totals

    def log_odds(self, pseudocount: float = 0.8, background=_UNIFORM) -> np.ndarray:
        """Log2-odds PWM, ``(4, w)`` in bits:
        ``log2(probabilities(pseudocount)[b, j] / background[b])``.

        With ``pseudocount=0`` a zero count gives ``-inf``; :func:`allelic.pwm.scan` and
        :func:`allelic.pwm.score_threshold` refuse such a matrix.
        """
        bg = _as_background(background)
        with np.errstate(divide="ignore"):
            return np.log2(self.probabilities(pseudocount)) - np.log2(bg)[:, None]

    def consensus(self) -> str:
        """Most frequent base per column (ties go to the first of A, C, G, T)."""
        return "".join(ALPHABET[i] for i in self.counts.argmax(axis=0))

    def reverse_complement(self) -> "Motif":
        """The motif on the opposite strand (counts ``[::-1, ::-1]``), same id and name."""
        return Motif(self.matrix_id, self.name, self.counts[::-1, ::-1])

    def sample(self, n: int, *, random_state=None, pseudocount: float = 0.8) -> list[str]:
        """Draw ``n`` sites of width ``w``, each position independently from
        ``probabilities(pseudocount)``.

        Deterministic for a given ``random_state`` (int seed or ``np.random.Generator``).
        Returns a list of ``n`` upper-case strings.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = _rng(random_state)
        cdf = np.cumsum(self.probabilities(pseudocount), axis=0).T[:, :3]   # (w, 3)
        u = rng.random((n, self.width))
        idx = (u[:, :, None] >= cdf[None, :, :]).sum(axis=2)               # (n, w) in 0..3
        letters = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)[idx]
        letters = np.ascontiguousarray(letters)
        return [s.decode("ascii") for s in letters.view(f"S{self.width}").ravel()]


# --------------------------------------------------------------------------- JASPAR
@functools.lru_cache(maxsize=None)
def _jaspar_db(release: str):
    from pyjaspar import jaspardb

    db = jaspardb(release=release)
    if getattr(db, "conn", None) is None:
        raise ValueError(f"JASPAR release {release!r} is not available; have {db.get_releases()}")
    return db


def _from_bio(m) -> Motif:
    counts = np.array([m.counts[b] for b in ALPHABET], dtype=np.float64)
    return Motif(matrix_id=str(m.matrix_id), name=str(m.name), counts=counts)


@functools.lru_cache(maxsize=None)
def _jaspar_by_id(matrix_id: str, release: str) -> Motif:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _jaspar_db(release).fetch_motif_by_id(matrix_id)
    if m is None:
        raise ValueError(f"unknown JASPAR matrix id {matrix_id!r} (release {release})")
    return _from_bio(m)


@functools.lru_cache(maxsize=None)
def _jaspar_collection(collection, tax_group, release: str) -> tuple[Motif, ...]:
    # pyjaspar wants a list (not a tuple) for several collections / groups
    collection = list(collection) if isinstance(collection, tuple) else collection
    tax_group = list(tax_group) if isinstance(tax_group, tuple) else tax_group
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms = _jaspar_db(release).fetch_motifs(collection=collection, tax_group=tax_group)
    return tuple(sorted((_from_bio(m) for m in ms), key=lambda m: m.matrix_id))


def _id_key(matrix_id: str) -> tuple[str, int]:
    base, _, version = matrix_id.partition(".")
    return base, int(version) if version.isdigit() else 0


def load_jaspar(
    ids: Iterable[str] | None = None,
    *,
    names: Iterable[str] | None = None,
    collection: str = "CORE",
    tax_group: str = "vertebrates",
    release: str = DEFAULT_JASPAR_RELEASE,
) -> list[Motif]:
    """Motifs from the JASPAR sqlite database shipped with ``pyjaspar``.

    Parameters
    ----------
    ids
        Matrix ids such as ``["MA0139.1"]`` (a base id without version, ``"MA0139"``,
        gives its latest version). Looked up in the whole release, whatever
        ``collection``/``tax_group`` say. Returned in the given order.
    names
        TF names such as ``["CTCF"]``, matched exactly, then case-insensitively,
        within ``collection``/``tax_group`` (latest versions only). One motif per
        name, in the given order: when several base ids share the name (CTCF has
        MA0139, MA1929, MA1930) the smallest base id is returned.
    collection, tax_group
        JASPAR collection and taxonomic group (a str, a list of them, or None for
        all) of the whole-collection load and of ``names`` look-ups.
    release
        JASPAR release (default :data:`DEFAULT_JASPAR_RELEASE`).

    With neither ``ids`` nor ``names``: the whole collection (latest version of every
    matrix), sorted by matrix id. The collection and every id are cached in-process.

    Raises
    ------
    ValueError
        An unknown id or name (named in the message), or both ``ids`` and ``names``.
    """
    if ids is not None and names is not None:
        raise ValueError("give ids or names, not both")
    if isinstance(ids, str):
        ids = [ids]
    if isinstance(names, str):
        names = [names]
    if ids is not None:
        return [_jaspar_by_id(str(i).strip(), release) for i in ids]
    key = [tuple(x) if isinstance(x, (list, tuple)) else x for x in (collection, tax_group)]
    motifs = _jaspar_collection(*key, release)
    if names is None:
        return list(motifs)
    out = []
    for name in names:
        hits = [m for m in motifs if m.name == name]
        if not hits:
            hits = [m for m in motifs if m.name.upper() == str(name).upper()]
        if not hits:
            raise ValueError(
                f"no JASPAR motif named {name!r} in {collection}/{tax_group} ({release})"
            )
        out.append(min(hits, key=lambda m: _id_key(m.matrix_id)))
    return out


#: assay -> the factor(s) whose motifs the paper's motif baselines use (``resolve_motifs("H3K4me3")``)
ASSAY_MOTIFS: dict[str, tuple[str, ...]] = {
    "CTCF": ("CTCF",),
    "POL2": ("TBP",),
    "H3K4me3": ("NRF1", "SP1", "YY1"),
    "H3K27ac": ("FOS::JUN", "CEBPB"),
    "RNA": ("NRF1", "SP1", "YY1", "TBP"),
}

#: factor name -> pinned JASPAR matrix id (the ones :mod:`allelic.simulate` plants). CTCF is the classic
#: 19-bp MA0139.1 rather than JASPAR2024's trimmed MA0139.2. Other names go through ``load_jaspar(names=...)``.
FACTOR_MOTIF_IDS: dict[str, str] = {
    "CTCF": "MA0139.1",
    "TBP": "MA0108.3",
    "NRF1": "MA0506.3",
    "SP1": "MA0079.5",
    "YY1": "MA0095.4",
    "FOS::JUN": "MA0099.4",
    "CEBPB": "MA0466.4",
}

_JASPAR_ID = re.compile(r"^[A-Z]{2}\d{4}(\.\d+)?$")


def resolve_motifs(spec) -> list[Motif]:
    """The motifs a user or a model names: a :class:`Motif`; a JASPAR id (``"MA0139.1"``, or ``"MA0139"`` for the
    latest version); a factor name (:data:`FACTOR_MOTIF_IDS` gives its pinned matrix, any other name
    ``load_jaspar(names=[name])``); an assay (:data:`ASSAY_MOTIFS`); or a sequence of those. A sequence gives the
    union in order, without repeats. Nothing given (``None``, empty) is a ValueError; an unknown name is
    :func:`load_jaspar`'s ValueError."""
    if isinstance(spec, Motif):
        return [spec]
    if isinstance(spec, str):
        key = spec.strip()
        pinned = {k.upper(): v for k, v in FACTOR_MOTIF_IDS.items()}
        if key.upper() in pinned:
            return load_jaspar([pinned[key.upper()]])
        if key in ASSAY_MOTIFS:
            return resolve_motifs(ASSAY_MOTIFS[key])
        if _JASPAR_ID.match(key):
            return load_jaspar([key])
        return load_jaspar(names=[key])
    out = []
    for item in spec or ():
        for m in resolve_motifs(item):
            if m not in out:
                out.append(m)
    if not out:
        raise ValueError("no motifs given")
    return out
