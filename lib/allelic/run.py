"""Execute the book's chapters with papermill (the engine behind ``make book``).

    python -m allelic.run --profile smoke                # every chapter, in order
    python -m allelic.run --profile default --chapters 02
    python -m allelic.run --list
    python -m allelic.run --render                       # the executed chapters as the HTML book

Each chapter ``notebooks/NN_name.ipynb`` runs with the parameters of the chosen profile
(:func:`allelic.config.profile_parameters`); the executed copy goes to ``<build>/executed/NN_name.ipynb``,
its artefacts to ``results/NN/``. A chapter is skipped when its cache key — a hash of the notebook's
code, its parameters, the ``allelic`` library source, the real-data inputs and the keys of the chapters
before it — equals the key of its last successful run (``--force`` reruns). The first failing chapter
stops the run with the notebook, the cell and the error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from . import config


class ChapterFailed(RuntimeError):
    """A chapter's notebook raised; the message names the notebook, the cell and the error."""


def chapters(notebooks_dir=None) -> dict[str, Path]:
    """``{"01": Path(notebooks/01_x.ipynb), ...}`` in order."""
    nb_dir = Path(notebooks_dir) if notebooks_dir else config.repo_root() / "notebooks"
    out = {}
    for p in sorted(nb_dir.glob("[0-9][0-9]_*.ipynb")):
        out[p.name[:2]] = p
    if not out:
        raise FileNotFoundError(f"no chapters (NN_*.ipynb) in {nb_dir}")
    return out


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _notebook_code_hash(path: Path) -> str:
    nb = json.loads(path.read_text())
    src = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in nb["cells"]]
    return hashlib.sha256(json.dumps(src).encode()).hexdigest()


def _inputs_stamp() -> dict:
    """Real-data inputs a chapter may read (a folder's files, or one file; your own data's sheet, VCF, reference and
    the alignments the sheet names): name plus size and mtime of each."""
    stamp = {}
    for env in ("ALLELIC_ENTEX_DIR", "ALLELIC_HEK293_DIR", "ALLELIC_PRETRAIN_CORPUS", "ALLELIC_TOKENIZER_DIR",
                "ALLELIC_SAMPLES", "ALLELIC_VCF", "ALLELIC_REFERENCE", "ALLELIC_CONTIG_MAP"):
        d = os.environ.get(env)
        files = sorted(Path(d).iterdir()) if d and Path(d).is_dir() else [Path(d)] if d and Path(d).is_file() else []
        if files:
            stamp[env] = {p.name: [p.stat().st_size, int(p.stat().st_mtime)] for p in files if p.is_file()}
    if os.environ.get("ALLELIC_SAMPLES"):  # your own data: the alignments the sheet names, too
        from .samplesheet import read_sheet

        stamp["alignments"] = {b: [Path(b).stat().st_size, int(Path(b).stat().st_mtime)] if Path(b).is_file() else None
                               for b in read_sheet(os.environ["ALLELIC_SAMPLES"])["bam"]}
    return stamp


#: folders of the repository whose tables a chapter reads (chapter 02: MIXALIME's results, which the book cannot
#: compute itself); their files' contents enter every cache key, so rerunning the benchmark reruns the chapter
READ_FROM_REPOSITORY = ("benchmarks/mixalime_truth",)


def cache_key(notebook: Path, params: dict, upstream: str = "") -> str:
    lib = _hash_files(Path(__file__).resolve().parent.glob("*.py"))
    tables = _hash_files(p for d in READ_FROM_REPOSITORY for p in (config.repo_root() / d).glob("*") if p.is_file())
    blob = json.dumps({"nb": _notebook_code_hash(notebook), "params": params, "lib": lib, "tables": tables,
                       "inputs": _inputs_stamp(), "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _failure_message(exc, notebook: Path, out: Path) -> str:
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    return f"chapter {notebook.name} failed in {where}: {ename}: {evalue}\n  executed copy with the traceback: {out}"


def _ipc_kernel_manager():
    """A kernel manager that talks to the kernel over local IPC sockets (in Jupyter's runtime directory) instead of
    unencrypted TCP (Windows has no IPC transport: TCP there). With the kernel's own log at CRITICAL (a failing cell
    still fails the chapter, through papermill), the build prints one progress line per chapter: no transport warning,
    no "KeyboardInterrupt caught in kernel" from the interrupt jupyter_client sends at every shutdown."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "tcp" if os.name == "nt" else "ipc"

    return IPCKernelManager


def run_chapter(notebook: Path, params: dict, out: Path, *, kernel_name: str = "python3", log_output: bool = False) -> None:
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(notebook), str(out), parameters=params, kernel_name=kernel_name,
                            cwd=str(notebook.parent), progress_bar=False, log_output=log_output,
                            kernel_manager_class=_ipc_kernel_manager(),
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as exc:
        raise ChapterFailed(_failure_message(exc, notebook, out)) from None
    _relative_papermill_paths(out)


def _relative_papermill_paths(path: Path) -> None:
    """papermill records the input and output paths it was given in the notebook's metadata; the rendered book
    shows them relative to the book's root (:func:`allelic.config.shown`), never the building machine's."""
    nb = json.loads(path.read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            meta[key] = config.shown(meta[key])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def run_book(profile: str = "smoke", chapter_ids=None, *, force: bool = False, notebooks_dir=None,
             profiles=None, kernel_name: str = "python3", progress: bool = True) -> list[dict]:
    """Run the chapters in order; returns one record per chapter (``chapter, status, seconds, output``).

    Raises ValueError for an unknown profile or chapter, :class:`ChapterFailed` at the first failing notebook."""
    avail = chapters(notebooks_dir)
    wanted = list(avail) if not chapter_ids else [str(c).zfill(2) for c in chapter_ids]
    unknown = [c for c in wanted if c not in avail]
    if unknown:
        raise ValueError(f"unknown chapter(s) {', '.join(unknown)}; expected some of {', '.join(avail)}")
    params_all = {c: config.profile_parameters(profile, c, profiles) for c in avail}  # validates the profile first
    exec_dir = config.build_dir() / "executed"
    cache_dir = exec_dir / ".cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    records, upstream = [], ""
    for i, (cid, nb) in enumerate(avail.items(), 1):
        key = cache_key(nb, params_all[cid], upstream)
        upstream = key
        if cid not in wanted:
            continue
        out = exec_dir / nb.name
        stamp = cache_dir / f"{cid}.json"
        if not force and out.exists() and stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
            records.append({"chapter": cid, "status": "cached", "seconds": 0.0, "output": str(out)})
            if progress:
                print(f"[{i}/{len(avail)}] {nb.name}: unchanged since its last run (cached)", flush=True)
            continue
        if progress:
            print(f"[{i}/{len(avail)}] {nb.name} (profile {profile}) ...", flush=True)
        stamp.unlink(missing_ok=True)
        t0 = time.perf_counter()
        run_chapter(nb, params_all[cid], out, kernel_name=kernel_name)
        dt = time.perf_counter() - t0
        stamp.write_text(json.dumps({"key": key, "profile": profile, "params": params_all[cid], "seconds": round(dt, 1)}, default=str))
        records.append({"chapter": cid, "status": "ran", "seconds": dt, "output": str(out)})
        if progress:
            print(f"      done in {dt:.1f} s -> {config.shown(out)}", flush=True)
    return records


def render(build_dir=None, *, quiet: bool = True) -> Path:
    """Render the executed chapters of ``build_dir`` (default :func:`allelic.config.build_dir`) as the HTML book in
    ``<build_dir>/_build/html`` with Jupyter Book, warnings as errors; returns its ``index.html``.

    The table of contents names ``build/executed/NN_*``; a build folder elsewhere than ``<root>/build``
    (``ALLELIC_BUILD_DIR``, the workflow's) is rendered from ``<build_dir>/book-root``, which links the book's
    sources and that folder's executed notebooks. Raises RuntimeError with Jupyter Book's output when it fails."""
    import shutil
    import subprocess

    root = config.repo_root()
    build = Path(build_dir or config.build_dir()).resolve()
    src = root
    if build != (root / "build").resolve():
        src = build / "book-root"
        (src / "build").mkdir(parents=True, exist_ok=True)
        for link, target in ((src / "_config.yml", root / "_config.yml"), (src / "book", root / "book"),
                             (src / "build" / "executed", build / "executed")):
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            link.symlink_to(target, target_is_directory=target.is_dir())
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(src), "--toc", str(src / "book" / "_toc.yml"), "--config", str(src / "_config.yml"),
           "--path-output", str(build), "-W"] + (["-q"] if quiet else [])
    r = subprocess.run(cmd, cwd=src, capture_output=quiet, text=True)
    if r.returncode:
        raise RuntimeError(f"jupyter-book build failed (exit {r.returncode})" +
                           (f":\n{r.stdout[-3000:]}{r.stderr[-3000:]}" if quiet else ""))
    return build / "_build" / "html" / "index.html"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m allelic.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", help="parameter profile in notebooks/profiles.yml (smoke, default, full)")
    ap.add_argument("--chapters", nargs="*", help="chapter numbers to run (default: all)")
    ap.add_argument("--force", action="store_true", help="rerun even when the cache key is unchanged")
    ap.add_argument("--list", action="store_true", help="list the chapters and profiles, then exit")
    ap.add_argument("--render", action="store_true", help="render the executed chapters as the HTML book, then exit")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    a = ap.parse_args(argv)
    try:
        if a.list:
            for cid, nb in chapters().items():
                print(cid, nb.name)
            print("profiles:", ", ".join(config.load_profiles()))
            return 0
        if a.render:
            print(f"book: {render()}")
            return 0
        run_book(a.profile, a.chapters, force=a.force, kernel_name=a.kernel)
    except (ValueError, FileNotFoundError, ChapterFailed, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
