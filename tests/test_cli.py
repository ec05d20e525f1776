"""The `kerastune-ft` command: exit codes, one-line errors, the demo."""

import pytest

from kerastune_ft import cli


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == cli.EXIT_USAGE
    assert "demo" in capsys.readouterr().out


def test_help_is_useful(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "MiniLM" in out and "--epochs" in out and "no network" in out.lower()


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["demo", "--data", "/no/such/folder"], cli.EXIT_USAGE, "Demo data not found"),
        (["demo", "--task", "image"], cli.EXIT_USAGE, "not available yet"),
    ],
)
def test_errors_are_one_line_without_traceback(argv, code, message, capsys):
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("kerastune-ft: error:")


def test_bad_usage_exits_2():
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--epochs", "many"])
    assert info.value.code == 2


def test_debug_shows_the_traceback():
    with pytest.raises(cli.UsageError):
        cli.main(["--debug", "demo", "--data", "/no/such/folder"])


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(capsys):
    pytest.importorskip("keras_hub")
    assert cli.main(["demo", "--epochs", "1", "--quiet"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "products (val)" in out and "movies (shift)" in out
    accuracies = [
        float(line.split()[-1]) for line in out.splitlines() if "(val)" in line
    ]
    assert accuracies[0] > 0.6  # one epoch of MiniLM already beats chance clearly
