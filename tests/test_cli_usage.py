"""The top-level command line, in this process: version, usage and help."""

import pytest

import lossbench
from lossbench.cli import main

USAGE = "usage: lossbench [-h] [--version] {train,eval,report,export,losses} ..."


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"lossbench {lossbench.__version__}\n"


@pytest.mark.parametrize("args", [[], ["--help"]])
def test_usage_names_the_subcommands(args, capsys):
    if args:
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 0
    else:
        assert main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == USAGE
    for command in ("train", "eval", "report", "export", "losses"):
        assert f"\n  {command} " in out


def test_a_subcommand_names_itself_in_its_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lossbench report [-h]")
    assert err.splitlines()[-1] == "lossbench report: error: the following arguments are required: PATH"


def test_an_unknown_command_names_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["trian"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "invalid choice: 'trian'" in error and all(c in error for c in ("train", "report", "export", "losses"))
