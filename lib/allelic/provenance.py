"""What a build of the book ran on: software versions, the device, each chapter's parameters and wall time, and
checksums of the data it read. The reproducibility page (``notebooks/08_reproducibility.ipynb``) shows them.

* :func:`environment` -- Python, ``allelic`` and key package versions, platform, CPU count, torch threads, device;
* :func:`chapter_runs` -- one row per executed chapter from the runner's stamps (``<build>/executed/.cache/NN.json``,
  written by :func:`allelic.run.run_book`): profile, wall time of the run that produced it, when it finished;
* :func:`chapter_parameters` -- the parameters each chapter ran with, one row per chapter x parameter;
* :func:`checksums` -- SHA-256 and size of every file under the given paths, streamed in 1-MiB blocks;
  :func:`digest` -- one row per data set: files, bytes and one SHA-256 over its files' paths and checksums.

Paths are shown relative to the project (:func:`allelic.config.shown`), never as the building machine's.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from pathlib import Path

import pandas as pd

from . import config, versions

__all__ = ["environment", "chapter_runs", "chapter_parameters", "checksums", "digest", "sha256"]

_BLOCK = 1 << 20


def environment() -> pd.Series:
    """Versions (:func:`allelic.versions`), operating system, machine, CPU count, torch's thread count and the device
    the chapters' ``device="auto"`` resolves to (the CUDA device's name, or ``cpu``)."""
    out = dict(versions())
    out.update({"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()})
    try:
        import torch

        out["torch threads"] = torch.get_num_threads()
        out["device"] = (f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
                         if torch.cuda.is_available() else "cpu")
    except ImportError:  # torch is optional for the statistics chapters
        out["device"] = "cpu (torch not installed)"
    return pd.Series(out, name="value", dtype=object)


def _stamps(build_dir=None) -> list[tuple[str, Path, dict]]:
    cache = Path(build_dir or config.build_dir()) / "executed" / ".cache"
    out = []
    for f in sorted(cache.glob("[0-9][0-9].json")):
        try:
            out.append((f.stem, f, json.loads(f.read_text())))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}: not a runner stamp ({exc})") from None
    return out


def chapter_runs(build_dir=None) -> pd.DataFrame:
    """One row per chapter the runner has executed: ``chapter, profile, seconds`` (wall time of the run that produced
    the executed notebook; a cached chapter keeps its time) and ``finished`` (UTC, from the stamp's time)."""
    rows = []
    for cid, f, s in _stamps(build_dir):
        finished = _dt.datetime.fromtimestamp(f.stat().st_mtime, tz=_dt.timezone.utc)
        rows.append({"chapter": cid, "profile": s.get("profile"), "seconds": s.get("seconds"),
                     "finished": finished.strftime("%Y-%m-%d %H:%M:%S UTC")})
    return pd.DataFrame(rows, columns=["chapter", "profile", "seconds", "finished"])


def chapter_parameters(build_dir=None) -> pd.DataFrame:
    """The parameters each executed chapter ran with (``chapter, parameter, value``); path-like values are shown
    relative to the project."""
    rows = []
    for cid, _, s in _stamps(build_dir):
        for k, v in sorted((s.get("params") or {}).items()):
            if isinstance(v, str) and os.sep in v and Path(v).is_absolute():
                v = config.shown(v)
            rows.append({"chapter": cid, "parameter": k, "value": json.dumps(v) if not isinstance(v, str) else v})
    return pd.DataFrame(rows, columns=["chapter", "parameter", "value"])


def sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1-MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def checksums(paths, *, names=None) -> pd.DataFrame:
    """SHA-256 and size of every regular file under ``paths`` (files or directories, walked in sorted order;
    ``None`` entries skipped): ``data, file, bytes, sha256``. ``names`` labels each path (default: its shown path).
    A path that does not exist raises FileNotFoundError naming it."""
    paths = list(paths)
    names = list(names) if names is not None else [None] * len(paths)
    if len(names) != len(paths):
        raise ValueError(f"{len(paths)} paths but {len(names)} names")
    rows = []
    for name, p in zip(names, paths):
        if p is None:
            continue
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"checksums: {p} does not exist")
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        for f in files:
            rows.append({"data": name or config.shown(p), "file": f.name if f == p else str(f.relative_to(p)),
                         "bytes": f.stat().st_size, "sha256": sha256(f)})
    return pd.DataFrame(rows, columns=["data", "file", "bytes", "sha256"])


def digest(table: pd.DataFrame) -> pd.DataFrame:
    """One row per data set of a :func:`checksums` table: ``data, files, bytes, sha256``, the last the SHA-256 of
    the lines ``file<TAB>sha256`` of its files in sorted order (two data sets with the same files and contents have
    the same digest, whatever their location)."""
    rows = []
    for name, g in table.groupby("data", sort=False):
        lines = "".join(f"{f}\t{h}\n" for f, h in sorted(zip(g["file"], g["sha256"])))
        rows.append({"data": name, "files": len(g), "bytes": int(g["bytes"].sum()),
                     "sha256": hashlib.sha256(lines.encode()).hexdigest()})
    return pd.DataFrame(rows, columns=["data", "files", "bytes", "sha256"])
