"""The environment files agree, and notebooks are committed without outputs."""
import json
import re

import yaml


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_environment_yml_pins_equal_requirements(root):
    req = _pins((root / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((root / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = _pins(pip)
    assert pins.pop("torch") == "2.13.0"
    assert pins == req
    lock = _pins((root / "requirements-lock.txt").read_text().splitlines())
    assert all(lock[k] == v for k, v in req.items())  # the lock resolves the same versions
    assert "torch==2.13.0" in (root / "Makefile").read_text()


def test_notebooks_committed_without_outputs(root):
    nbs = sorted((root / "notebooks").glob("*.ipynb"))
    assert nbs
    for p in nbs:
        nb = json.loads(p.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{p.name} has outputs"
        assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1, f"{p.name}: one parameters cell"
        first = "".join(nb["cells"][0]["source"])
        assert re.search(r"^# .+\?$", first, re.M), f"{p.name}: the title should be a question"


def test_every_library_import_is_a_declared_dependency(root):
    """Third-party modules imported anywhere in lib/allelic (top level or inside a function) are listed in
    pyproject.toml's dependencies (import name -> distribution name where they differ)."""
    import ast
    import sys
    import tomllib

    dist = {"sklearn": "scikit-learn", "yaml": "pyyaml"}
    declared = {d.lower() for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    used = {}
    for f in sorted((root / "lib" / "allelic").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for n in names:
                top = n.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("allelic", "__future__"):
                    used.setdefault(dist.get(top, top).lower(), f.name)
    missing = {d: f for d, f in used.items() if d not in declared}
    assert not missing, f"imported but not in pyproject.toml dependencies: {missing}"
