"""The bad-input table's harness: one row per hostile input, checked alike.

Every row names what it sets up (files in a fresh folder, objects), the bad
call, the error it must raise (an exception type, or a CLI exit code) and a
regular expression its message must match: the argument or file the user
wrote. The harness snapshots the whole folder (names, kinds, hashes) after
the setup and again after the call: a refused call must leave every file it
found exactly as it was and write nothing new.

Each `tests/test_bad_inputs_*.py` module holds one group of rows (data,
models, training, cli) and parametrizes `check_bad_input` over them;
`tests/test_bad_inputs_size.py` pins the table's total size.
"""

import contextlib
import dataclasses
import hashlib
import io
import os
import pathlib
import re
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class BadInput:
    """One row of the bad-input table.

    Attributes:
        id: a short name, shown by pytest.
        setup: `setup(tmp_path)` makes the files and objects the call needs
            and returns what `call` takes (anything).
        call: `call(context)` makes the bad call. For CLI rows it returns
            the argument list instead (see `cli`).
        error: the exception type the call must raise, or, for CLI rows, the
            exit code `kerastune-ft` must return.
        match: a regular expression the message (or CLI stderr) must match;
            it names the argument, option or file at fault.
        cli: the row is a `kerastune-ft` command line: `call` returns argv.
        output: a folder (relative to `tmp_path`) the command may create
            and write into before it fails, e.g. a run directory whose
            start failed; `None` when it may write nothing. What existed
            before the call must stay unchanged wherever it is.
    """

    id: str
    setup: Callable[[pathlib.Path], Any]
    call: Callable[[Any], Any]
    error: Any
    match: str
    cli: bool = False
    output: str | None = None


def snapshot(root):
    """Every path under `root` with its kind and content hash.

    Returns:
        A dict `{relative path: "dir" | "link -> target" | sha256}`.
    """
    root = pathlib.Path(root)
    state = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = pathlib.Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                state[key] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                state[key] = "dir"
            else:
                state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run_cli(argv):
    """Runs `kerastune-ft argv` in this process.

    Returns:
        `(exit code, stdout, stderr)`.
    """
    from kerastune_ft.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def changes(before, after, output=None):
    """What differs between two snapshots, as readable lines.

    New paths inside `output` (a relative folder) are allowed.
    """
    lines = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            lines.append(f"removed: {key}")
        elif key not in before:
            inside = output is not None and (
                key == output or key.startswith(output.rstrip("/") + "/")
            )
            if not inside:
                lines.append(f"added: {key}")
        elif before[key] != after[key]:
            lines.append(f"changed: {key}")
    return lines


def check_bad_input(row, tmp_path):
    """Runs one row: the right error, a message naming the culprit, no changes."""
    import pytest

    context = row.setup(tmp_path)
    before = snapshot(tmp_path)
    if row.cli:
        code, _, stderr = run_cli(row.call(context))
        assert code == row.error, f"exit code {code}, stderr: {stderr}"
        message = stderr
        assert "Traceback" not in message, message
    else:
        with pytest.raises(row.error) as info:
            row.call(context)
        message = str(info.value)
    assert re.search(row.match, message, flags=re.S), (
        f"message does not match {row.match!r}: {message}"
    )
    assert changes(before, snapshot(tmp_path), row.output) == []
