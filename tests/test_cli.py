from allelic import cli


def test_cli_lists_commands_and_rejects_unknown(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("run", "simulate", "figures"))
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_cli_delegates_to_the_module(tmp_path, capsys):
    out = tmp_path / "sim"
    assert cli.main(["simulate", "--preset", "smoke", "--out", str(out)]) == 0
    assert (out / "manifest.json").is_file()
