"""Counting alleles straight from BAM records: the engine behind :func:`allelic.counts.count_alleles`.

The region's BGZF blocks are found with the ``.bai`` index and decompressed by pysam's reader; numba-compiled kernels
then walk the raw BAM records (no Python object per read) and apply exactly the rules of the pysam engine
(``counts._count_region``): base and mapping quality, the duplicate / secondary / supplementary / QC-fail /
unmapped flags, deletions and reference skips, mates overlapping an SNV counted once (agreeing, disagreeing and
tied bases as there), third alleles, ``n_filtered_reads``, reads without qualities or sequence. Files it does not
read (CRAM, CSI-only indexes, records with more than 65,535 CIGAR operations, or no numba) go to the pysam engine,
with the same counts (``tests/test_counts_engine.py``; timings in ``benchmarks/counts.md``).
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pysam

class _quiet_htslib:
    """Silence htslib's stderr chatter (e.g. 'could not retrieve index') while we check things ourselves."""

    def __enter__(self):
        self._old = pysam.set_verbosity(0)

    def __exit__(self, *exc):
        pysam.set_verbosity(self._old)


# ----------------------------------------------------------------------------------------------
# count_alleles: the raw-record engine (BAM + .bai; numba over decompressed BAM records)
# ----------------------------------------------------------------------------------------------
# Which engine counts._run_task uses (tests set it): "raw" (the default: BAM records decoded by numba-compiled kernels, no Python
# object per read; for BAM files with a .bai index, when numba imports) or "pysam" (``_count_region`` over
# ``AlignmentFile.fetch``; always used for CRAM, CSI-only indexes and records the raw kernels leave to htslib).
# Both give identical counts (tests/test_counts_engine.py); see benchmarks/counts.md for the timings.
ENGINE = "raw"
# Status codes of _scan_records_py
_RAW_MORE, _RAW_DONE, _RAW_GROW_HITS, _RAW_GROW_NAMES, _RAW_BAD, _RAW_LONG_CIGAR = 0, 1, 2, 3, -1, -2
_RAW_CODE = {"A": 1, "C": 2, "G": 4, "T": 8}  # BAM 4-bit base codes ("=ACMGRSVTWYHKDBN")


def _scan_records_py(buf, nbuf, tid, P, Rc, Ac, min_bq, min_mq, flag_filter, dedup_all, cnt, st,
                     hit_j, hit_r, hit_q, hit_b, names, name_off, name_hash):
    """Count the complete BAM records in ``buf[:nbuf]`` (compiled with numba; same rules as ``_count_region``).

    ``cnt[j]`` = ref, alt, other, overlapping reads; ``st`` = (j0, hits, name bytes, named reads). Reads that
    may share a name with another read at the same SNV (paired, or any read with ``dedup_all``) leave a hit
    (SNV, read, quality, base) for ``_resolve_hits_py``. Returns (bytes consumed, status).
    """
    n = P.shape[0]
    j0, nh, nl, nr, seen = st[0], st[1], st[2], st[3], st[4]
    stop = P[n - 1] + 1
    p = 0
    status = 0
    while True:
        if p + 4 > nbuf:
            status = 0
            break
        bs = np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 3]) << 24)
        if bs < 32 or bs > 268435456:
            status = -1
            break
        if p + 4 + bs > nbuf:
            status = 0
            break
        nxt = p + 4 + bs
        rid = np.int64(buf[p + 4]) | (np.int64(buf[p + 5]) << 8) | (np.int64(buf[p + 6]) << 16) | (np.int64(buf[p + 7]) << 24)
        if rid >= 2147483648:
            rid -= 4294967296
        s = np.int64(buf[p + 8]) | (np.int64(buf[p + 9]) << 8) | (np.int64(buf[p + 10]) << 16) | (np.int64(buf[p + 11]) << 24)
        if s >= 2147483648:
            s -= 4294967296
        if rid != tid or s >= stop:  # next contig, unplaced reads, or past the last SNV: done
            # (the index offset points at a read of this contig: anything else means the index does not fit)
            status = 1 if (seen or rid == tid) else -1
            break
        seen = 1
        lq = np.int64(buf[p + 12])
        mapq = np.int64(buf[p + 13])
        nc = np.int64(buf[p + 16]) | (np.int64(buf[p + 17]) << 8)
        flag = np.int64(buf[p + 18]) | (np.int64(buf[p + 19]) << 8)
        ls = np.int64(buf[p + 20]) | (np.int64(buf[p + 21]) << 8) | (np.int64(buf[p + 22]) << 16) | (np.int64(buf[p + 23]) << 24)
        q0 = p + 36
        c0 = q0 + lq
        s0 = c0 + 4 * nc
        ql0 = s0 + (ls + 1) // 2
        if lq < 1 or ls >= 2147483648 or ql0 + ls > nxt:
            status = -1
            break
        if P[j0] < s:
            while j0 < n and P[j0] < s:
                j0 += 1
            if j0 == n:
                status = 1
                break
        if flag & 4 or nc == 0:  # unmapped, or no CIGAR: no reference span (pysam: reference_end None)
            p = nxt
            continue
        rlen = 0
        qlen = 0
        for k in range(nc):
            v = np.int64(buf[c0 + 4 * k]) | (np.int64(buf[c0 + 4 * k + 1]) << 8) | (np.int64(buf[c0 + 4 * k + 2]) << 16) | (np.int64(buf[c0 + 4 * k + 3]) << 24)
            op = v & 15
            ln = v >> 4
            if op == 0 or op == 2 or op == 3 or op == 7 or op == 8:
                rlen += ln
            if op == 0 or op == 1 or op == 4 or op == 7 or op == 8:
                qlen += ln
        if nc == 2 and ls > 0:  # kSmN placeholder of a CIGAR longer than 65535 ops (real one in the CG tag)
            v0 = np.int64(buf[c0]) | (np.int64(buf[c0 + 1]) << 8) | (np.int64(buf[c0 + 2]) << 16) | (np.int64(buf[c0 + 3]) << 24)
            v1 = np.int64(buf[c0 + 4]) | (np.int64(buf[c0 + 5]) << 8) | (np.int64(buf[c0 + 6]) << 16) | (np.int64(buf[c0 + 7]) << 24)
            if (v0 & 15) == 4 and (v0 >> 4) == ls and (v1 & 15) == 3:
                status = -2
                break
        if ls > 0 and qlen != ls:  # htslib refuses such a record ("CIGAR and query sequence lengths differ")
            status = -1
            break
        e = s + (rlen if rlen > 0 else 1)
        if P[j0] >= e:  # overlaps no SNV
            p = nxt
            continue
        if flag & flag_filter or mapq < min_mq:
            p = nxt
            continue
        j1 = j0 + 1
        while j1 < n and P[j1] < e:
            j1 += 1
        if ls == 0:  # no stored sequence: overlaps, counts nothing
            for j in range(j0, j1):
                cnt[j, 3] += 1
            p = nxt
            continue
        direct = (not dedup_all) and (flag & 1) == 0
        ridx = -1
        if not direct:
            if nh + (j1 - j0) > hit_j.shape[0]:
                status = 2
                break
            if nl + lq > names.shape[0] or nr + 2 > name_off.shape[0]:
                status = 3
                break
            h = np.uint64(14695981039346656037)
            for k in range(lq):
                b = buf[q0 + k]
                names[nl + k] = b
                h = (h ^ np.uint64(b)) * np.uint64(1099511628211)
            ridx = nr
            name_hash[nr] = h
            name_off[nr] = nl
            nl += lq
            name_off[nr + 1] = nl
            nr += 1
        noq = buf[ql0] == 255
        for j in range(j0, j1):
            cnt[j, 3] += 1
            pj = P[j]
            qp = -1
            if nc == 1:
                qp = pj - s
            else:
                rpos = s
                qpos = 0
                for k in range(nc):
                    v = np.int64(buf[c0 + 4 * k]) | (np.int64(buf[c0 + 4 * k + 1]) << 8) | (np.int64(buf[c0 + 4 * k + 2]) << 16) | (np.int64(buf[c0 + 4 * k + 3]) << 24)
                    op = v & 15
                    ln = v >> 4
                    if op == 0 or op == 7 or op == 8:
                        if pj < rpos + ln:
                            qp = qpos + pj - rpos
                            break
                        rpos += ln
                        qpos += ln
                    elif op == 1 or op == 4:
                        qpos += ln
                    elif op == 2 or op == 3:
                        if pj < rpos + ln:
                            break
                        rpos += ln
            if qp < 0:
                continue
            q = 255 if noq else np.int64(buf[ql0 + qp])
            if q < min_bq:
                continue
            byte = buf[s0 + (qp >> 1)]
            code = (byte >> 4) if (qp & 1) == 0 else (byte & 15)
            if direct:
                if code == Rc[j]:
                    cnt[j, 0] += 1
                elif code == Ac[j]:
                    cnt[j, 1] += 1
                else:
                    cnt[j, 2] += 1
            else:
                hit_j[nh] = j
                hit_r[nh] = ridx
                hit_q[nh] = q
                hit_b[nh] = code
                nh += 1
        p = nxt
    st[0], st[1], st[2], st[3], st[4] = j0, nh, nl, nr, seen
    return p, status


def _resolve_hits_py(nh, hit_j, hit_r, hit_q, hit_b, names, name_off, name_hash, Rc, Ac, cnt):
    """One call per fragment (reads sharing a name) at each SNV, the rule of ``_count_region``: the base of
    the highest quality; a tie between different bases counts nothing."""
    if nh == 0:
        return
    hj = hit_j[:nh]
    hh = name_hash[hit_r[:nh]]
    o1 = np.argsort(hh, kind="mergesort")
    o2 = np.argsort(hj[o1], kind="mergesort")
    order = o1[o2]  # by SNV, then name hash, then read order
    rep_r = np.empty(nh, np.int64)
    rep_q = np.empty(nh, np.int64)
    rep_b = np.empty(nh, np.int64)
    i = 0
    while i < nh:
        a = order[i]
        j = hj[a]
        h = hh[a]
        k = i
        while k < nh and hj[order[k]] == j and hh[order[k]] == h:
            k += 1
        nrep = 0
        for t in range(i, k):
            x = order[t]
            r = hit_r[x]
            found = -1
            for u in range(nrep):  # same name (a hash collision of different names stays apart)
                r2 = rep_r[u]
                la = name_off[r + 1] - name_off[r]
                if la == name_off[r2 + 1] - name_off[r2]:
                    same = True
                    for c in range(la):
                        if names[name_off[r] + c] != names[name_off[r2] + c]:
                            same = False
                            break
                    if same:
                        found = u
                        break
            q = hit_q[x]
            b = hit_b[x]
            if found < 0:
                rep_r[nrep] = r
                rep_q[nrep] = q
                rep_b[nrep] = b
                nrep += 1
            elif q > rep_q[found]:
                rep_q[found] = q
                rep_b[found] = b
            elif rep_b[found] != b and q == rep_q[found]:
                rep_b[found] = 255  # tied discordant pair: not counted
        for u in range(nrep):
            b = rep_b[u]
            if b == 255:
                continue
            if b == Rc[j]:
                cnt[j, 0] += 1
            elif b == Ac[j]:
                cnt[j, 1] += 1
            else:
                cnt[j, 2] += 1
        i = k


def _bai_layout_py(data):
    """Per reference of a .bai: (byte offset of its linear index, its length, smallest chunk start or -1).

    An empty array when the file is cut short (the caller then leaves the BAM to htslib)."""
    L = data.shape[0]
    bad = np.zeros((0, 3), np.int64)
    if L < 8:
        return bad
    n_ref = np.int64(data[4]) | (np.int64(data[5]) << 8) | (np.int64(data[6]) << 16) | (np.int64(data[7]) << 24)
    if n_ref >= 2147483648:
        return bad
    out = np.full((n_ref, 3), -1, np.int64)
    off = 8
    for i in range(n_ref):
        if off + 4 > L:
            return bad
        n_bin = np.int64(data[off]) | (np.int64(data[off + 1]) << 8) | (np.int64(data[off + 2]) << 16) | (np.int64(data[off + 3]) << 24)
        off += 4
        best = np.uint64(0xFFFFFFFFFFFFFFFF)
        for _ in range(n_bin):
            if off + 8 > L:
                return bad
            bin_id = np.int64(data[off]) | (np.int64(data[off + 1]) << 8) | (np.int64(data[off + 2]) << 16) | (np.int64(data[off + 3]) << 24)
            n_chunk = np.int64(data[off + 4]) | (np.int64(data[off + 5]) << 8) | (np.int64(data[off + 6]) << 16) | (np.int64(data[off + 7]) << 24)
            off += 8
            if n_chunk >= 2147483648 or off + 16 * n_chunk > L:
                return bad
            if bin_id != 37450:  # 37450: htslib's pseudo-bin of per-contig statistics
                for c in range(n_chunk):
                    v = np.uint64(0)
                    for t in range(8):
                        v |= np.uint64(data[off + 16 * c + t]) << np.uint64(8 * t)
                    if v < best:
                        best = v
            off += 16 * n_chunk
        if off + 4 > L:
            return bad
        n_intv = np.int64(data[off]) | (np.int64(data[off + 1]) << 8) | (np.int64(data[off + 2]) << 16) | (np.int64(data[off + 3]) << 24)
        off += 4
        if n_intv >= 2147483648 or off + 8 * n_intv > L:
            return bad
        out[i, 0] = off
        out[i, 1] = n_intv
        out[i, 2] = -1 if best == np.uint64(0xFFFFFFFFFFFFFFFF) else np.int64(best)
        off += 8 * n_intv
    return out


_RAW_KERNELS = None  # (scan, resolve, bai_layout) compiled by numba, or False when numba is unavailable


def _raw_kernels():
    """The numba-compiled kernels (compiled once per process, cached on disk where numba can); None without numba."""
    global _RAW_KERNELS
    if _RAW_KERNELS is None:
        _RAW_KERNELS = False
        try:
            import numba
        except ImportError:  # pragma: no cover - numba comes with scanpy
            return None

        def jit(f):
            try:
                return numba.njit(cache=True, nogil=True)(f)
            except RuntimeError:  # no writable cache location: compile in memory
                return numba.njit(nogil=True)(f)

        try:
            kernels = (jit(_scan_records_py), jit(_resolve_hits_py), jit(_bai_layout_py))
            # load (or compile) them now, with the argument types of _count_region_raw: once per process,
            # and in the parent before ProcessPoolExecutor forks its workers
            i8, one = np.zeros(1, np.int64), np.zeros((1, 4), np.int64)
            kernels[2](np.zeros(8, np.uint8))
            kernels[0](np.zeros(8, np.uint8), 0, 0, i8, i8, i8, 13, 10, 4, False, one, np.zeros(5, np.int64),
                       i8, i8, i8, i8, np.zeros(8, np.uint8), np.zeros(2, np.int64), np.zeros(1, np.uint64))
            kernels[1](0, i8, i8, i8, i8, np.zeros(8, np.uint8), np.zeros(2, np.int64), np.zeros(1, np.uint64),
                       i8, i8, one)
        except Exception as e:  # pragma: no cover - a numba that cannot compile them: the pysam engine counts
            warnings.warn(f"count_alleles: numba could not compile the raw-record kernels ({type(e).__name__}: {e}); "
                          "counting through pysam instead (same counts, slower)", stacklevel=3)
            return None
        _RAW_KERNELS = kernels
    return _RAW_KERNELS or None


def _bai_path(path: str):
    for cand in (path + ".bai", (path[:-4] + ".bai") if path.lower().endswith(".bam") else None):
        if cand and os.path.isfile(cand):
            return cand
    return None


class _RawBam:
    """A BAM opened for the raw engine: BGZF reader, contig ids, and per contig the .bai linear index."""

    def __init__(self, path: str, bai: str, kernels):
        from pysam.libcbgzf import BGZFile
        data = np.fromfile(bai, dtype=np.uint8)
        if len(data) < 8 or data[:4].tobytes() != b"BAI\x01":
            raise ValueError(f"{bai}: not a BAI index")
        layout = kernels[2](data)
        if len(layout) != int(data[4:8].view("<i4")[0]):
            raise ValueError(f"{bai}: BAI index cut short")
        self.index = []
        for off, n_intv, ref_min in layout.tolist():
            lin = data[off:off + 8 * n_intv].view("<u8").astype(np.int64) if n_intv > 0 else np.zeros(0, np.int64)
            self.index.append((lin, ref_min))
        with _quiet_htslib():
            with pysam.AlignmentFile(path, "rb") as af:
                self.tids = {c: i for i, c in enumerate(af.references)}
        self.bgzf = BGZFile(path, "rb")
        try:
            if self.bgzf.read(4) != b"BAM\x01":
                raise ValueError(f"{path}: not a BAM file")
        except BaseException:
            self.bgzf.close()
            raise
        self.buf = np.empty(1 << 20, np.uint8)

    def close(self):
        self.bgzf.close()


def _count_region_raw(raw: _RawBam, kernels, contig, P, R, A, min_bq, min_mq, flag_filter, dedup_all):
    """``_count_region`` over raw BAM records: seek to the .bai linear-index offset of ``P[0]``, inflate BGZF
    blocks, and let numba walk the records. Returns the same four per-SNV lists, or None where a record needs
    htslib's own decoding (a CIGAR of more than 65535 operations), so the caller can fall back."""
    scan, resolve = kernels[0], kernels[1]
    n = len(P)
    Pa = np.asarray(P, dtype=np.int64)
    Rc = np.array([_RAW_CODE[b] for b in R], dtype=np.int64)
    Ac = np.array([_RAW_CODE[b] for b in A], dtype=np.int64)
    cnt = np.zeros((n, 4), np.int64)
    tid = raw.tids[contig]
    lin, ref_min = raw.index[tid] if tid < len(raw.index) else (np.zeros(0, np.int64), -1)
    if ref_min >= 0:
        w = int(Pa[0]) >> 14
        voff = int(lin[min(w, len(lin) - 1)]) if len(lin) else 0
        voff = max(voff, ref_min)
        st = np.zeros(5, np.int64)
        cap = 1024
        hit_j, hit_r, hit_q, hit_b = (np.empty(cap, np.int64) for _ in range(4))
        names, name_off, name_hash = np.empty(16 * cap, np.uint8), np.zeros(cap + 1, np.int64), np.empty(cap, np.uint64)
        buf, nbuf, chunk, eof = raw.buf, 0, 1 << 16, False
        raw.bgzf.seek(voff)
        while True:
            if not eof:
                data = raw.bgzf.read(chunk)
                chunk = min(chunk * 2, 1 << 21)
                if not data:
                    eof = True
                else:
                    m = len(data)
                    if nbuf + m > len(buf):
                        nb = np.empty(max(2 * len(buf), nbuf + m), np.uint8)
                        nb[:nbuf] = buf[:nbuf]
                        buf = raw.buf = nb
                    buf[nbuf:nbuf + m] = np.frombuffer(data, np.uint8)
                    nbuf += m
            p, status = scan(buf, nbuf, tid, Pa, Rc, Ac, min_bq, min_mq, flag_filter, dedup_all, cnt, st,
                             hit_j, hit_r, hit_q, hit_b, names, name_off, name_hash)
            if p:
                buf[:nbuf - p] = buf[p:nbuf].copy()
                nbuf -= p
            if status == _RAW_DONE:
                break
            if status == _RAW_MORE:
                if eof:
                    if nbuf:
                        raise OSError(f"truncated BAM record at the end of the file ({nbuf} bytes)")
                    break
            elif status == _RAW_GROW_HITS:
                cap = 2 * len(hit_j)
                hit_j, hit_r, hit_q, hit_b = (np.concatenate([x, np.empty(cap - len(x), x.dtype)]) for x in (hit_j, hit_r, hit_q, hit_b))
            elif status == _RAW_GROW_NAMES:
                names = np.concatenate([names, np.empty(len(names), np.uint8)])
                k = len(name_hash)
                name_hash = np.concatenate([name_hash, np.empty(k, np.uint64)])
                name_off = np.concatenate([name_off, np.zeros(k, np.int64)])
            elif status == _RAW_LONG_CIGAR:
                return None
            else:
                raise OSError("malformed BAM record (bad block size, field lengths, or CIGAR not matching the sequence)")
        resolve(int(st[1]), hit_j, hit_r, hit_q, hit_b, names, name_off, name_hash, Rc, Ac, cnt)
    used = cnt[:, 0] + cnt[:, 1] + cnt[:, 2]
    return cnt[:, 0].tolist(), cnt[:, 1].tolist(), cnt[:, 2].tolist(), (cnt[:, 3] - used).tolist()


class _NoRaw:
    """Cache entry for a file the raw engine does not read (CRAM, no .bai, no numba)."""

    def close(self):
        pass


_NO_RAW = _NoRaw()


def _raw_reader(files, path):
    """The file's :class:`_RawBam` from ``files`` (opened on first use), or None where the pysam engine reads it."""
    key = ("raw", path)
    raw = files.get(key)
    if raw is None:
        raw = _NO_RAW
        kernels = _raw_kernels() if ENGINE == "raw" else None
        bai = _bai_path(path) if kernels is not None else None
        if bai is not None:
            try:
                raw = _RawBam(path, bai, kernels)
            except (OSError, ValueError):  # not a BAM, or an index it cannot read: htslib reads (and reports) it
                raw = _NO_RAW
        files[key] = raw
    return None if raw is _NO_RAW else raw


