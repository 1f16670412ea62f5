"""The library's shape: layers that import one way, modules of a readable size, and an index that names them all."""
import ast
import re

import pytest

#: the layers of ``allelic/__init__.py``'s docstring, top to bottom
LAYERS = {
    "foundation": "config cache ledger progress provenance labels reference",
    "statistics": "stats pvalues nullfit fdr dosage evaluate",
    "sequence": "motifs pwm profiles tokenize",
    "inputs": "simulate samplesheet variants counts bamscan io catalogue",
    "examples": "datasets windows splits corpus binding",
    "models": "dnabert2 checkpoints model_size models train distributed pretrain language_model finetune predict",
    "comparisons": "baselines comparison binding_first attention denovo kmer_enrichment motif_assembly meme tissues describe",
    "presentation": "explain pl figures run as_calls steps cli",
}
RANK = {m: i for i, mods in enumerate(LAYERS.values()) for m in mods.split()}
MAX_LINES = 800


@pytest.fixture(scope="module")
def modules(root):
    """``{module name: [files]}`` of ``lib/allelic`` (a subpackage counts as one module)."""
    lib = root / "lib" / "allelic"
    out = {}
    for f in sorted(lib.rglob("*.py")):
        rel = f.relative_to(lib)
        if rel == rel.with_name("__init__.py") and len(rel.parts) == 1:
            continue
        out.setdefault(rel.parts[0].removesuffix(".py"), []).append(f)
    return out


def _imported(path, module):
    """``(line, module)`` of every import of a sibling module of ``allelic`` in ``path``, lazy ones included."""
    depth = 2 if path.parent.name == module else 1       # a subpackage's own files reach siblings with ``..``
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == depth:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            yield from ((node.lineno, n) for n in names)


def test_every_module_is_in_a_layer(modules):
    assert sorted(set(modules) - set(RANK)) == [], "add new modules to a layer here and in allelic/__init__.py"
    assert sorted(set(RANK) - set(modules)) == []


def test_imports_flow_down_the_layers(modules):
    up = [f"{f.name}:{line} imports {name} ({_layer(name)}) from layer {_layer(mod)}"
          for mod, files in modules.items() for f in files for line, name in _imported(f, mod)
          if name in RANK and RANK[name] > RANK[mod]]
    assert up == []


def test_no_module_over_800_lines(modules):
    long = {f.name: n for files in modules.values() for f in files
            if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_package_index_names_every_module(root, modules):
    doc = ast.get_docstring(ast.parse((root / "lib" / "allelic" / "__init__.py").read_text()))
    named = set(re.findall(r":mod:`~allelic\.(\w+)`", doc))
    assert named == set(modules)
    sections = [line.split()[0] for line in doc.splitlines() if re.fullmatch(r"[a-z]+( and [a-z]+)?", line)]
    assert sections == list(LAYERS)


def _layer(mod):
    return list(LAYERS)[RANK[mod]]


def test_only_the_model_modules_load_torch_on_import(modules):
    """torch and transformers take seconds to import: the modules that need them at import time are the model
    definitions alone (everything else imports them inside the functions that run a model), so the command line, the
    statistics and the plots start fast (the main reason for function-level imports in the library)."""
    import subprocess
    import sys

    heavy = {"dnabert2", "checkpoints", "model_size", "models"}
    light = sorted(set(modules) - heavy)
    code = ("import sys\n" + "".join(f"import allelic.{m}\n" for m in light)
            + "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
