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
