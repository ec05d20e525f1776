"""The tree passes `ruff check` and `ruff format --check` (ruff.toml)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff():
    found = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent))
    return found or shutil.which("ruff")


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"]
)
def test_ruff(args):
    ruff = _ruff()
    if ruff is None:
        pytest.fail("ruff is missing: pip install -e '.[test]' installs it.")
    done = subprocess.run(
        [ruff, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"`ruff {' '.join(args)}` found problems (`ruff check --fix .` and "
        f"`ruff format .` mend most):\n{done.stdout}{done.stderr}"
    )
