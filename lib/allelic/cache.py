"""Results of heavy steps on disk, keyed by what they were computed from.

A step (counting one BAM, fine-tuning one fold) writes its table to a fixed path, e.g.
``results/01/counts/D1_liver_CTCF.tsv.gz``, and beside it ``<path>.json`` holding the key: a hash of everything the
result depends on (inputs, parameters, the format version of the step). Whoever needs the result -- the chapter's
notebook or a rule of the workflow (``workflow/Snakefile``) -- calls the same function with the same cache folder:
a file with the same key is read back, anything else is recomputed and overwritten. So a workflow run on a cluster
and ``make book`` afterwards share the work, and a changed parameter never reads a stale file.

Unlike the runner's chapter keys, a step's key does not hash the library's source (an edited docstring must not refit
120 fold tasks): each step's key holds a format number (``io.COUNT_FORMAT``, ``comparison.TASK_FORMAT``,
``pretrain.FORMAT_VERSION``) that is bumped when a change of the code changes what the step returns.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd


def key(*parts) -> str:
    """16 hex digits of the SHA-256 of ``parts`` as JSON (sorted keys; paths and other objects as strings)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_stamp(path) -> dict:
    """What identifies an input file in a key without reading it: name, size and modification time."""
    st = Path(path).stat()
    return {"name": Path(path).name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def table_digest(table: pd.DataFrame) -> str:
    """16 hex digits identifying a table's content (row order and column names included)."""
    h = hashlib.sha256(",".join(map(str, table.columns)).encode())
    h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


_NA = r"\N"  # how a missing value is written: an empty string stays an empty string


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read(path, k: str) -> pd.DataFrame | None:
    """The table at ``path`` when its sidecar holds key ``k`` (with the column types it was written with), else
    None."""
    path = Path(path)
    side = _sidecar(path)
    if not (path.is_file() and side.is_file()):
        return None
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError:
        return None
    if meta.get("key") != k:
        return None
    dtypes = meta.get("dtypes", {})
    t = pd.read_csv(path, sep="\t", dtype={c: str for c, d in dtypes.items() if d == "object"},
                    keep_default_na=False, na_values=[_NA])
    return t.astype(dtypes)


def write(path, k: str, table: pd.DataFrame, **info) -> Path:
    """Write ``table`` (TSV, gzip for ``.gz``) and its sidecar with key ``k`` (and ``info``); the table goes through a
    temporary file and the sidecar is written last, so a reader never pairs a key with a partial table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    gz = {"method": "gzip", "compresslevel": 1, "mtime": 0}  # fast (count tables: 4x faster than level 9), reproducible
    table.to_csv(tmp, sep="\t", index=False, na_rep=_NA, compression=gz if path.suffix == ".gz" else None)
    _sidecar(path).unlink(missing_ok=True)
    tmp.replace(path)
    dtypes = {c: str(d) for c, d in table.dtypes.items()}
    _sidecar(path).write_text(json.dumps({"key": k, "dtypes": dtypes, **info}, indent=1, default=str) + "\n")
    return path
