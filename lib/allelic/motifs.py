"""JASPAR motifs, PWM log-odds scores, whole-sequence scans and score thresholds.

Conventions used throughout this module
---------------------------------------
* The alphabet is ``ALPHABET = "ACGT"``; every matrix has its rows in that order.
* A *count matrix* has shape ``(4, w)`` (rows A, C, G, T; one column per motif
  position). A *PWM* here always means a ``(4, w)`` array of **log2-odds**
  scores, ``log2(p_motif / p_background)``, in bits.
* A window's score is the sum of the PWM entries of its bases, in bits. An ``N``
  contributes 0 (it is scored as "no information", not as a mismatch).
* The reverse strand of a window starting at ``l`` is scored with the
  reverse-complement PWM ``pwm[::-1, ::-1]`` at the same start ``l``; that is
  the score of the motif read on the minus strand over the same ``w`` bases.

Scans are vectorised: sequences are coded as integers (A, C, G, T, N = 0..4),
``k`` consecutive codes (``k <= 5``) are folded into one base-5 code per
position, and each block of ``k`` motif columns is scored with one table
lookup (``np.take``) per window. Work is done in chunks of sequences so that
memory besides the output stays near ``_CHUNK_POSITIONS`` positions.

This module is the library's one motif scanner: :func:`scan` (tested against memelite's FIMO) is the reference,
:class:`PwmBank` the same scores for hundreds of motifs at once with torch (tested against :func:`scan`); the
baselines' features, the simulator's planted-site scores and chapter 06's motif profiles all go through them.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np
import pandas as pd

__all__ = [
    "ALPHABET",
    "Motif",
    "one_hot",
    "reverse_complement",
    "load_jaspar",
    "scan",
    "max_score",
    "score_threshold",
    "score_pvalue",
    "snv_score_change",
    "PwmBank",
    "occurrence",
    "enrichment_profile",
    "ProfileCorrelation",
    "profile_correlation",
]

ALPHABET = "ACGT"

#: JASPAR release that :func:`load_jaspar` reads by default (pinned so that
#: "the latest version of CTCF" does not change when pyjaspar is upgraded).
DEFAULT_JASPAR_RELEASE = "JASPAR2024"

_UNIFORM = (0.25, 0.25, 0.25, 0.25)
N_CODE = 4           # integer code of N (all-zero one-hot row)
BAD_CODE = 255       # integer code of any character that is not ACGTN/acgtn
_MAX_K = 5           # at most 5 bases per lookup: 5**5 = 3125-entry tables
_CHUNK_POSITIONS = 1 << 20   # sequence positions scored per chunk

#: byte -> integer code (A, C, G, T = 0..3 in either case, N = :data:`N_CODE`, anything else :data:`BAD_CODE`):
#: ``BASE_CODES[np.frombuffer(seq.encode(), np.uint8)]`` codes a sequence (one_hot, scan, allelic.denovo)
BASE_CODES = np.full(256, BAD_CODE, dtype=np.uint8)
for _i, _c in enumerate(ALPHABET):
    BASE_CODES[ord(_c)] = _i
    BASE_CODES[ord(_c.lower())] = _i
BASE_CODES[ord("N")] = N_CODE
BASE_CODES[ord("n")] = N_CODE
del _i, _c

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")

PwmLike = Union["Motif", np.ndarray]
SeqsLike = Union[str, Sequence[str], np.ndarray]


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


def _as_pwm(motif_or_pwm, pseudocount: float = 0.8, background=_UNIFORM) -> np.ndarray:
    """A ``(4, w)`` float64 log2-odds matrix from a :class:`Motif` or an array.

    A Motif is converted with :meth:`Motif.log_odds` (``pseudocount``, ``background``);
    an array is used as given (it must already be log2-odds, rows A, C, G, T).
    """
    if isinstance(motif_or_pwm, Motif):
        pwm = motif_or_pwm.log_odds(pseudocount=pseudocount, background=background)
    else:
        pwm = np.asarray(motif_or_pwm, dtype=np.float64)
        if pwm.ndim != 2 or pwm.shape[0] != 4:
            raise ValueError(
                f"a PWM must be a (4, w) array with rows A, C, G, T; got shape {pwm.shape}"
            )
    if pwm.shape[1] < 1:
        raise ValueError("a PWM must have at least one column")
    if not np.all(np.isfinite(pwm)):
        raise ValueError(
            "PWM contains non-finite values (a zero count with pseudocount=0?); "
            "use a pseudocount > 0"
        )
    return pwm


def encode(seqs) -> tuple[np.ndarray, bool]:
    """Integer codes (A, C, G, T, N = 0..4) of strings.

    Returns ``(codes, single)``: ``codes`` is ``(n, L)`` uint8 and ``single`` is True
    when ``seqs`` was one ``str`` (then ``n == 1``). Raises ValueError for unequal
    lengths or a character outside ``ACGTNacgtn``, naming sequence index and position.
    """
    single = isinstance(seqs, str)
    if single:
        seqs = [seqs]
    else:
        if isinstance(seqs, (bytes, bytearray)):
            raise TypeError("sequences must be str or a list of str, not bytes")
        seqs = list(seqs)
        for i, s in enumerate(seqs):
            if not isinstance(s, str):
                raise TypeError(f"sequence {i} is {type(s).__name__}, expected str")
    n = len(seqs)
    if n == 0:
        return np.zeros((0, 0), dtype=np.uint8), single
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=n)
    L = int(lengths[0])
    if np.any(lengths != L):
        i = int(np.flatnonzero(lengths != L)[0])
        raise ValueError(
            f"sequences must all have the same length: sequence 0 has length {L}, "
            f"sequence {i} has length {int(lengths[i])}"
        )
    # 'replace' keeps one byte per character, so flat positions stay aligned
    raw = "".join(seqs).encode("ascii", errors="replace")
    codes = BASE_CODES[np.frombuffer(raw, dtype=np.uint8)].reshape(n, L)
    bad = np.flatnonzero(codes.ravel() == BAD_CODE)
    if bad.size:
        i, p = divmod(int(bad[0]), L)
        raise ValueError(
            f"invalid character {seqs[i][p]!r} in sequence {i} at position {p} "
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

        With ``pseudocount=0`` a zero count gives ``-inf``; :func:`scan` and
        :func:`score_threshold` refuse such a matrix.
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


# --------------------------------------------------------------------------- scanning
def _block_tables(pwm: np.ndarray, k: int) -> np.ndarray:
    """Lookup tables ``(n_blocks, 5**k)``: entry ``[b, c]`` is the summed PWM score of
    the ``k`` bases with base-5 code ``c`` (first base most significant, N = 4 scores 0)
    placed at motif columns ``b*k .. b*k+k-1`` (columns past ``w`` score 0)."""
    w = pwm.shape[1]
    nb = -(-w // k)
    ext = np.zeros((5, nb * k))
    ext[:4, :w] = pwm
    digits = (np.arange(5**k)[:, None] // 5 ** np.arange(k - 1, -1, -1)) % 5   # (5**k, k)
    cols = np.arange(k)
    return np.stack([ext[digits, b * k + cols].sum(axis=1) for b in range(nb)])


class _Scorer:
    """Scores code chunks (and dense one-hot chunks) against one PWM, optionally both strands."""

    def __init__(self, pwm: np.ndarray, both_strands: bool):
        self.pwm = pwm
        self.w = pwm.shape[1]
        self.k = min(_MAX_K, self.w)
        self.pwms = [pwm, pwm[::-1, ::-1]] if both_strands else [pwm]
        self.tables = [_block_tables(p, self.k) for p in self.pwms]

    def codes(self, codes: np.ndarray, out: np.ndarray) -> None:
        """``codes`` (m, L) uint8 -> ``out`` (m, L-w+1, n_strands) float64."""
        m, L = codes.shape
        k, w = self.k, self.w
        nb = self.tables[0].shape[0]
        pad = nb * k - w
        if pad:
            codes = np.concatenate([codes, np.full((m, pad), N_CODE, np.uint8)], axis=1)
        Lk = L + pad - k + 1                         # positions with a full k-mer
        kmer = codes[:, :Lk].astype(np.uint16)
        for i in range(1, k):
            kmer *= 5
            kmer += codes[:, i : i + Lk]
        Lw = L - w + 1
        tmp = np.empty((m, Lw))
        for s, tab in enumerate(self.tables):
            acc = np.take(tab[0], kmer[:, :Lw])
            for b in range(1, nb):
                np.take(tab[b], kmer[:, b * k : b * k + Lw], out=tmp)
                acc += tmp
            out[:, :, s] = acc

    def dense(self, X: np.ndarray, out: np.ndarray) -> None:
        """Soft one-hot ``X`` (m, L, 4) -> ``out`` (m, L-w+1, n_strands):
        ``sum_j X[l+j] . pwm[:, j]``."""
        w = self.w
        Lw = X.shape[1] - w + 1
        for s, p in enumerate(self.pwms):
            acc = X[:, 0:Lw] @ p[:, 0]               # (m, Lw)
            for j in range(1, w):
                acc += X[:, j : j + Lw] @ p[:, j]
            out[:, :, s] = acc


def _prepare(seqs):
    """Normalise ``seqs`` to ``(n, L, chunk)``, ``chunk(a, b)`` giving
    ``("codes", (b-a, L) uint8)`` or ``("dense", (b-a, L, 4) float64)``."""
    if isinstance(seqs, np.ndarray) and seqs.dtype.kind in "biuf":
        X = seqs
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or X.shape[2] != 4:
            raise ValueError(
                f"a one-hot array must have shape (n, L, 4) or (L, 4), got {seqs.shape}"
            )
        if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
            raise ValueError("one-hot array contains non-finite values")

        # columns: base index (0..3) and row total, both exact for 0/1 entries
        weights = np.array([[0, 1], [1, 1], [2, 1], [3, 1]], dtype=np.float32)

        def chunk(a, b):
            x = X[a:b]
            if x.dtype == np.bool_:
                x = x.view(np.uint8)
            if np.all((x == 0) | (x == 1)):
                idx_tot = (x if x.dtype == np.float32 else x.astype(np.float32)) @ weights
                tot = idx_tot[:, :, 1]
                if np.all(tot <= 1):
                    return "codes", np.where(tot == 0, N_CODE, idx_tot[:, :, 0]).astype(np.uint8)
            return "dense", x.astype(np.float64)

        return X.shape[0], X.shape[1], chunk
    codes, _ = encode(seqs)
    return codes.shape[0], codes.shape[1], lambda a, b: ("codes", codes[a:b])


def _scan_chunks(prepared, pwm: np.ndarray, both_strands: bool, out: np.ndarray | None = None):
    """Yield ``(a, b, scores)`` with ``scores`` (b-a, L-w+1, n_strands) float64
    for ``prepared = _prepare(seqs)``; written into ``out[a:b]`` when ``out`` is given."""
    n, L, chunk = prepared
    w = pwm.shape[1]
    if n and L < w:
        raise ValueError(f"sequences of length {L} are shorter than the motif (width {w})")
    scorer = _Scorer(pwm, both_strands)
    step = max(1, _CHUNK_POSITIONS // max(L, 1))
    ns = len(scorer.pwms)
    for a in range(0, n, step):
        b = min(n, a + step)
        kind, data = chunk(a, b)
        res = np.empty((b - a, L - w + 1, ns)) if out is None else out[a:b]
        getattr(scorer, kind)(data, res)
        yield a, b, res


def scan(
    seqs: SeqsLike,
    motif_or_pwm: PwmLike,
    *,
    both_strands: bool = True,
    pseudocount: float = 0.8,
    background=_UNIFORM,
) -> np.ndarray:
    """Log2-odds score of every window of every sequence.

    Parameters
    ----------
    seqs
        One ``str``, a list of ``n`` equal-length strings, or a one-hot array
        ``(n, L, 4)`` / ``(L, 4)`` (rows A, C, G, T; all-zero rows are N). A non-binary
        ("soft") array is scored as the dot product ``sum_j X[l+j] . pwm[:, j]``.
    motif_or_pwm
        A :class:`Motif` (converted with ``log_odds(pseudocount, background)``) or a
        ``(4, w)`` log2-odds array used as is.
    both_strands
        Also score the reverse-complement motif.

    Returns
    -------
    float64 array in bits, ``(n, L-w+1)`` if not ``both_strands``, else
    ``(n, L-w+1, 2)`` with ``[..., 0]`` the forward and ``[..., 1]`` the reverse strand
    (reverse-complement PWM at the same window start). The ``n`` axis is kept for a
    single sequence (``n == 1``). ``N`` positions contribute 0.

    Raises
    ------
    ValueError
        Invalid characters / unequal lengths (see :func:`one_hot`), sequences shorter
        than the motif, a malformed PWM.
    """
    pwm = _as_pwm(motif_or_pwm, pseudocount, background)
    prepared = _prepare(seqs)
    n, L, _ = prepared
    ns = 2 if both_strands else 1
    out = np.empty((n, max(L - pwm.shape[1] + 1, 0), ns))
    for _ in _scan_chunks(prepared, pwm, both_strands, out):
        pass
    return out if both_strands else out[:, :, 0]


def max_score(
    seqs: SeqsLike, motif_or_pwm: PwmLike, *, both_strands: bool = True, **kw
) -> np.ndarray:
    """Best window score per sequence, ``(n,)`` float64 in bits (max over windows and,
    with ``both_strands``, strands). Keywords ``pseudocount``/``background`` go to
    :func:`scan`. Memory stays bounded (chunked), unlike ``scan(...).max(...)``."""
    unknown = set(kw) - {"pseudocount", "background"}
    if unknown:
        raise TypeError(f"max_score got unexpected keyword(s) {sorted(unknown)}")
    return _best(_prepare(seqs), _as_pwm(motif_or_pwm, **kw), both_strands)


def _best(prepared, pwm: np.ndarray, both_strands: bool) -> np.ndarray:
    """``(n,)`` max over windows and strands, chunk by chunk."""
    out = np.empty(prepared[0])
    for a, b, s in _scan_chunks(prepared, pwm, both_strands):
        out[a:b] = s.max(axis=(1, 2))
    return out


# --------------------------------------------------------------------------- many motifs at once (torch)
class PwmBank:
    """Many PWMs scanned at once: the same window scores as :func:`scan`, computed as one
    ``torch.nn.functional.conv1d`` per motif width over one-hot windows (channels first, ``(b, 4, L)``; an N is an
    all-zero column and scores 0), on CPU or GPU, in float32.

    :func:`scan` (lookup tables, float64) is the reference implementation and is tested against memelite's FIMO;
    this bank is the fast path for hundreds of motifs (all 879 JASPAR CORE vertebrate matrices over a 200-bp window
    in about 1 ms per window on one CPU thread, 17x a loop over :func:`scan`; ``benchmarks/bench_baselines.py``) and
    is tested against :func:`scan`. TF32 is switched off during :meth:`best_strand` so that CUDA and CPU scores agree
    (:func:`exact_fp32`).

    ``groups``: one ``(width, indices)`` per distinct motif width (indices into ``motifs``), in increasing width.
    """

    def __init__(self, motifs: Sequence[Motif], *, pseudocount: float = 0.8, background=_UNIFORM, device="cpu"):
        import torch

        self.motifs = list(motifs)
        if not self.motifs:
            raise ValueError("PwmBank needs at least one motif")
        self.widths = np.array([m.width for m in self.motifs])
        self.pwms = [np.ascontiguousarray(_as_pwm(m, pseudocount, background)) for m in self.motifs]
        self.device = device
        self.groups = [(w, np.flatnonzero(self.widths == w)) for w in sorted(set(self.widths.tolist()))]
        self._weights = []
        for w, idx in self.groups:
            fw = np.stack([self.pwms[i] for i in idx])                           # (m, 4, w)
            both = np.concatenate([fw, fw[:, ::-1, ::-1]])                       # forward, then reverse complement
            self._weights.append(torch.as_tensor(both, dtype=torch.float32, device=device))

    def best_strand(self, x, group: int):
        """Scores of the motifs of ``groups[group]`` on one-hot windows ``x`` (a ``(b, 4, L)`` float32 tensor on the
        bank's device): ``(b, m, L - w + 1)``, the better of the two strands at each window start (bits)."""
        import torch.nn.functional as F

        m = len(self.groups[group][1])
        with exact_fp32():
            s = F.conv1d(x, self._weights[group])                               # (b, 2m, L - w + 1)
        return s[:, :m].maximum(s[:, m:])


def exact_fp32():
    """Context manager: no TF32 in CUDA convolutions (restored afterwards). On Ampere/Hopper GPUs cuDNN otherwise
    rounds float32 convolution inputs to TF32 (10-bit mantissa): JASPAR scores then differ from the CPU's by up to
    ~0.05 bit and hit counts at the threshold change (measured on an H200: 345 count differences on the toy set's
    1,050 windows with TF32, none without)."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx():
        conv = getattr(torch.backends.cudnn, "conv", None)
        if conv is not None and hasattr(conv, "fp32_precision"):
            prev = conv.fp32_precision
            conv.fp32_precision = "ieee"
            try:
                yield
            finally:
                conv.fp32_precision = prev
        else:
            prev = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cudnn.allow_tf32 = prev

    return ctx()


# --------------------------------------------------------------------------- p-values
def _score_survival(pwm: np.ndarray, background: np.ndarray, bin_size: float):
    """Exact distribution of the discretised score of a background sequence.

    Each PWM entry is rounded to an integer number of bins, ``round(pwm / bin_size)``;
    the score of a random sequence (bases i.i.d. from ``background``) is then a sum of
    independent integer variables, whose distribution is built column by column
    (dynamic programming, i.e. repeated convolution with a 4-point distribution).

    Returns ``(lo, pmf, sf)``: bin ``i`` is the discretised score ``(lo + i) * bin_size``,
    ``pmf[i]`` its probability and ``sf[i] = P(score >= (lo + i) * bin_size)``.
    """
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise ValueError(f"bin_size must be > 0, got {bin_size}")
    ip = np.rint(pwm / bin_size).astype(np.int64)       # (4, w)
    mins = ip.min(axis=0)
    span = int((ip.max(axis=0) - mins).sum())
    if span > 50_000_000:
        raise ValueError(f"score range of {span} bins is too large; use a larger bin_size")
    d = ip - mins
    pmf = np.zeros(span + 1)
    pmf[0] = 1.0
    top = 0                                               # highest bin in use so far
    for j in range(ip.shape[1]):
        new = np.zeros_like(pmf)
        for a in range(4):
            s = int(d[a, j])
            new[s : s + top + 1] += background[a] * pmf[: top + 1]
        top += int(d[:, j].max())
        pmf = new
    sf = np.cumsum(pmf[::-1])[::-1]                       # small tails summed first
    return int(mins.sum()), pmf, sf


def score_threshold(
    motif_or_pwm: PwmLike,
    pvalue: float = 1e-4,
    *,
    background=_UNIFORM,
    pseudocount: float = 0.8,
    bin_size: float = 1e-3,
) -> float:
    """Score threshold for a p-value, exact up to discretisation (as FIMO / MOODS).

    The distribution of the window score of a random sequence with bases drawn
    i.i.d. from ``background`` is computed exactly by dynamic programming over PWM
    entries rounded to multiples of ``bin_size`` bits (default 0.001 bit); see
    :func:`_score_survival`. The result is the smallest *attainable* discretised score
    ``s`` with ``P(score >= s) <= pvalue`` (compared with a relative tolerance of 1e-9,
    so that exact ties such as ``pvalue = 1/16`` count). Because each of the ``w``
    entries is rounded, ``s`` is within ``w * bin_size / 2`` bits of the real score of
    the sequences it stands for.

    ``background`` is both the background of the log-odds (when a Motif is given) and
    the base distribution of the random sequence. Returns ``inf`` when even the best
    score has a tail probability above ``pvalue``.
    """
    p = float(pvalue)
    if not (0 < p <= 1):
        raise ValueError(f"pvalue must be in (0, 1], got {pvalue}")
    bg = _as_background(background)
    pwm = _as_pwm(motif_or_pwm, pseudocount, bg)
    lo, pmf, sf = _score_survival(pwm, bg, bin_size)
    ok = (sf <= p * (1 + 1e-9)) & (pmf > 0)
    if not ok.any():
        return float("inf")
    return (lo + int(np.argmax(ok))) * bin_size


def score_pvalue(
    motif_or_pwm: PwmLike,
    scores,
    *,
    background=_UNIFORM,
    pseudocount: float = 0.8,
    bin_size: float = 1e-3,
) -> np.ndarray:
    """P(score >= s) for a random background window, for each score ``s`` (any shape),
    from the same discretised exact distribution as :func:`score_threshold`
    (``s`` is rounded to the nearest bin)."""
    bg = _as_background(background)
    pwm = _as_pwm(motif_or_pwm, pseudocount, bg)
    lo, _, sf = _score_survival(pwm, bg, bin_size)
    s = np.asarray(scores, dtype=np.float64)
    i = np.rint(s / bin_size).astype(np.int64) - lo
    sf_ext = np.concatenate([sf, [0.0]])
    return np.where(i < 0, 1.0, sf_ext[np.clip(i, 0, len(sf))])


# --------------------------------------------------------------------------- variants
def snv_score_change(
    ref_seqs: SeqsLike,
    alt_seqs: SeqsLike,
    motif_or_pwm: PwmLike,
    *,
    both_strands: bool = True,
    pseudocount: float = 0.8,
    background=_UNIFORM,
) -> pd.DataFrame:
    """Motif score change of a variant: best window score of each allele's sequence.

    ``ref_seqs`` and ``alt_seqs`` are paired (same number of sequences, same length;
    any form :func:`scan` accepts). Returns a DataFrame with one row per pair and float
    columns ``ref_score``, ``alt_score`` (max over windows and strands, bits) and
    ``delta = alt_score - ref_score``. The index is ``ref_seqs.index`` for a pandas
    Series, else ``0..n-1``.
    """
    pwm = _as_pwm(motif_or_pwm, pseudocount, background)
    index = ref_seqs.index if isinstance(ref_seqs, pd.Series) else None
    ref_p, alt_p = _prepare(ref_seqs), _prepare(alt_seqs)
    if ref_p[:2] != alt_p[:2]:
        raise ValueError(
            f"ref and alt sequences must pair up: ref has {ref_p[0]} of length {ref_p[1]}, "
            f"alt has {alt_p[0]} of length {alt_p[1]}"
        )
    ref = _best(ref_p, pwm, both_strands)
    alt = _best(alt_p, pwm, both_strands)
    return pd.DataFrame({"ref_score": ref, "alt_score": alt, "delta": alt - ref}, index=index)


# --------------------------------------------------------------------------- profiles along windows
def occurrence(
    seqs: SeqsLike,
    motif_or_pwm: PwmLike,
    *,
    pvalue: float = 1e-4,
    both_strands: bool = True,
    pseudocount: float = 0.8,
    background=_UNIFORM,
) -> np.ndarray:
    """Where a motif occurs along each window: ``(n, L)`` bool, True at every base covered by a hit.

    A hit is a motif-wide window whose score (either strand with ``both_strands``) reaches
    :func:`score_threshold` at ``pvalue`` (exact, for the same ``background``); the ``w`` bases it spans are
    marked. Windows are scanned in chunks (:func:`scan`'s engine), so memory is the ``(n, L)`` result plus
    one chunk. This is the per-window input of :func:`enrichment_profile`.
    """
    bg = _as_background(background)
    pwm = _as_pwm(motif_or_pwm, pseudocount, bg)
    thr = score_threshold(pwm, pvalue, background=bg)
    prepared = _prepare(seqs)
    n, L, _ = prepared
    w = pwm.shape[1]
    out = np.zeros((n, L), dtype=bool)
    for a, b, s in _scan_chunks(prepared, pwm, both_strands):
        start = (s >= thr - 1e-9).any(axis=2)                    # (m, L-w+1) hit starts
        # a base is covered when a hit starts in [p-w+1, p]: a running sum over the starts
        c = np.zeros((b - a, L + 1), dtype=np.int32)
        np.cumsum(start, axis=1, out=c[:, 1 : L - w + 2])
        c[:, L - w + 2 :] = c[:, L - w + 1 : L - w + 2]
        lo = np.clip(np.arange(L) - w + 1, 0, None)
        out[a:b] = (c[:, np.arange(L) + 1] - c[:, lo]) > 0
    return out


def enrichment_profile(hits, labels, *, alternative: str = "greater") -> pd.DataFrame:
    """Per position, how much more often a motif covers the base in label-1 (AS) windows than in the others.

    ``hits``: ``(n, L)`` bool (:func:`occurrence`); ``labels``: ``n`` values 0/1 or booleans. For each position,
    ``k`` of the ``n_1`` AS windows and ``K`` of all ``n`` windows have a hit there; under no enrichment ``k`` is
    hypergeometric (``n`` windows, ``K`` with a hit, ``n_1`` drawn), which is Fisher's exact test of the 2 x 2
    table. ``alternative``: ``"greater"`` (enriched in AS, ``P(X >= k)``), ``"less"`` (``P(X <= k)``) or
    ``"two-sided"`` (Fisher's, as :func:`scipy.stats.fisher_exact`). q-values: Benjamini-Hochberg over positions.

    Returns one row per position: ``position`` (0-based), ``frac_as``, ``frac_other`` (fraction of windows of each
    label with a hit), ``difference`` (``frac_as - frac_other``), ``log2_ratio``
    (``log2((k + 0.5) / (n_1 + 1)) - log2((K - k + 0.5) / (n_0 + 1))``), ``pvalue``, ``qvalue``;
    ``.attrs["n_as"]`` / ``["n_other"]`` hold the window counts. Raises ValueError for mismatched shapes, labels
    other than 0/1, or a label without windows."""
    from scipy import stats as st

    from .stats import bh_fdr

    h = np.asarray(hits)
    if h.ndim != 2:
        raise ValueError(f"hits must be (windows, positions), got shape {h.shape}")
    h = h.astype(bool)
    y = _binary_labels(labels, h.shape[0])
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    n1, n0 = int(y.sum()), int((~y).sum())
    k = h[y].sum(axis=0)
    K = h.sum(axis=0)
    M = n1 + n0
    if alternative == "greater":
        p = st.hypergeom.sf(k - 1, M, K, n1)
    elif alternative == "less":
        p = st.hypergeom.cdf(k, M, K, n1)
    else:
        p = np.array([st.fisher_exact([[a, n1 - a], [b - a, n0 - b + a]])[1] for a, b in zip(k, K)])
    p = np.clip(p, 0.0, 1.0)
    df = pd.DataFrame({
        "position": np.arange(h.shape[1]),
        "frac_as": k / n1,
        "frac_other": (K - k) / n0,
    })
    df["difference"] = df["frac_as"] - df["frac_other"]
    df["log2_ratio"] = np.log2((k + 0.5) / (n1 + 1)) - np.log2((K - k + 0.5) / (n0 + 1))
    df["pvalue"] = p
    df["qvalue"] = bh_fdr(p)
    df.attrs.update(n_as=n1, n_other=n0)
    return df


def _binary_labels(labels, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{n} windows but labels of shape {y.shape}")
    if y.dtype != bool:
        ok = np.isin(y, [0, 1])
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"label {i} is {y[i]!r}; labels must be 0/1 or booleans")
        y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError(f"need windows of both labels: {int(y.sum())} of label 1, {int((~y).sum())} of label 0")
    return y


@dataclass(frozen=True)
class ProfileCorrelation:
    """Correlation of two profiles along the window and its circular-shift permutation p-value.

    ``r``: Pearson (or Spearman) correlation; ``pvalue``: two-sided, ``(1 + #{|r_s| >= |r|}) / (1 + n_shifts)``
    over the ``n_shifts`` non-zero circular shifts of one profile; ``n_positions``: positions used (both finite)."""

    r: float
    pvalue: float
    n_shifts: int
    n_positions: int
    method: str


def profile_correlation(x, y, *, method: str = "pearson") -> ProfileCorrelation:
    """Does profile ``x`` (e.g. mean attention per base) follow profile ``y`` (e.g. a motif's enrichment)?

    The statistic is the correlation across positions. Neighbouring positions of both profiles are strongly
    correlated (a motif hit spans ``w`` bases, a token several), so shuffling positions would give far too small
    p-values; the null distribution here is exact over every non-zero circular shift of ``x`` against ``y``
    (which keeps each profile's own smoothness and only breaks their alignment). The smallest attainable
    p-value is ``1 / L`` for ``L`` positions. Positions where either profile is NaN are left out before
    shifting. ``method``: ``"pearson"`` or ``"spearman"`` (ranks, then Pearson)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"profiles must have the same length, got {a.size} and {b.size}")
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    L = a.size
    if L < 3 or a.std() == 0 or b.std() == 0:
        raise ValueError(f"need at least 3 positions with varying values in both profiles (have {L})")
    if method == "spearman":
        from scipy.stats import rankdata

        a, b = rankdata(a), rankdata(b)
    za = (a - a.mean()) / a.std()
    zb = (b - b.mean()) / b.std()
    # r for every circular shift at once: shift s pairs za[i - s] with zb[i]
    rs = np.array([np.dot(np.roll(za, s), zb) for s in range(L)]) / L
    r = float(rs[0])
    n_ge = int(np.sum(np.abs(rs[1:]) >= abs(r) - 1e-12))
    return ProfileCorrelation(r=r, pvalue=(1 + n_ge) / L, n_shifts=L - 1, n_positions=L, method=method)
