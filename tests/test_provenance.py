"""The reproducibility page's records: checksums against known SHA-256 values, the runner's stamps read back."""
import json

import pandas as pd
import pytest

from allelic import provenance


def test_checksums_equal_known_sha256_values(tmp_path):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "abc.txt").write_bytes(b"abc")
    (d / "sub" / "empty.bin").write_bytes(b"")
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * (3 * (1 << 20) + 5))  # crosses the 1-MiB read blocks
    t = provenance.checksums([d, big, None], names=["set", "one file", "absent"])
    # FIPS 180-2 test vector and the SHA-256 of the empty string
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert t.loc[t["file"] == "abc.txt", "sha256"].item() == abc
    assert t.loc[t["file"] == "sub/empty.bin", "sha256"].item() == empty
    import hashlib

    assert t.loc[t["data"] == "one file", "sha256"].item() == hashlib.sha256(big.read_bytes()).hexdigest()
    assert t.loc[t["data"] == "one file", "bytes"].item() == 3 * (1 << 20) + 5
    assert set(t["data"]) == {"set", "one file"}  # a None path is skipped


def test_digest_depends_on_contents_not_location(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "x.txt").write_text("same")
        (tmp_path / where / "y.txt").write_text("also the same")
    d = provenance.digest(provenance.checksums([tmp_path / "a", tmp_path / "b"], names=["a", "b"]))
    assert d["files"].tolist() == [2, 2] and d["bytes"].tolist() == [17, 17]
    assert d.loc[0, "sha256"] == d.loc[1, "sha256"]
    (tmp_path / "b" / "y.txt").write_text("changed")
    d2 = provenance.digest(provenance.checksums([tmp_path / "a", tmp_path / "b"], names=["a", "b"]))
    assert d2.loc[0, "sha256"] == d.loc[0, "sha256"] and d2.loc[1, "sha256"] != d.loc[1, "sha256"]


def test_checksums_name_a_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        provenance.checksums([tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="1 paths but 2 names"):
        provenance.checksums([tmp_path], names=["a", "b"])


def test_chapter_runs_and_parameters_read_the_runners_stamps(tmp_path, monkeypatch, root):
    monkeypatch.setenv("ALLELIC_BUILD_DIR", str(tmp_path))
    cache = tmp_path / "executed" / ".cache"
    cache.mkdir(parents=True)
    inside = root / "data" / "simulated" / "x"
    (cache / "01.json").write_text(json.dumps({"key": "k1", "profile": "smoke", "seconds": 12.5,
                                               "params": {"random_state": 0, "model_dir": str(inside)}}))
    (cache / "02.json").write_text(json.dumps({"key": "k2", "profile": "smoke", "seconds": 3.0,
                                               "params": {"fit_by": ["assay"]}}))
    runs = provenance.chapter_runs()
    assert runs["chapter"].tolist() == ["01", "02"] and runs["seconds"].tolist() == [12.5, 3.0]
    assert runs["finished"].str.endswith("UTC").all()
    params = provenance.chapter_parameters().set_index(["chapter", "parameter"])["value"]
    assert params[("01", "model_dir")] == "data/simulated/x"  # never the building machine's absolute path
    assert params[("01", "random_state")] == "0" and params[("02", "fit_by")] == '["assay"]'
    (cache / "03.json").write_text("{not json")
    with pytest.raises(ValueError, match="03.json"):
        provenance.chapter_runs()


def test_environment_names_the_device():
    env = provenance.environment()
    assert isinstance(env, pd.Series)
    assert env["device"] == "cpu" or env["device"].startswith("cuda: ")
    assert env["cpus"] >= 1 and "python" in env.index
