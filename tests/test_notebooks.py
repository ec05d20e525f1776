"""The notebooks in notebooks/: committed clean, and every one of them runs.

Notebooks are committed WITHOUT outputs (no stale results can sit next to
changed code): `test_committed_without_outputs` checks it. The slow test
executes each notebook top to bottom with nbclient (what `pytest --nbmake`
does) in smoke mode (`KFT_SMOKE=1`: a data subset and fewer epochs), reading
weights and datasets from the real assets folder through `KFT_SHARED`.
"""

import os
import pathlib
import time

import nbformat
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = (
    "01_image_transfer_learning.ipynb",
    "02_text_fine_tuning.ipynb",
    "03_overfitting_lab.ipynb",
    "04_tuning_and_cross_validation.ipynb",
    "05_plug_into_keras.ipynb",
)
# Per-cell limit in seconds (a stuck cell fails instead of hanging CI).
CELL_TIMEOUT = 600


def _read(name):
    return nbformat.read(NOTEBOOKS_DIR / name, as_version=4)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_five_notebooks_exist():
    found = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
    assert found == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    stale = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count)
    ]
    assert not stale, (
        f"{name}: cells {stale} hold outputs or execution counts. Notebooks are "
        "committed without outputs: clear them in Jupyter (Edit > Clear Outputs of "
        "All Cells) or with `jupyter nbconvert --clear-output --inplace "
        f"notebooks/{name}` (pip install nbconvert)."
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_conventions(name):
    notebook = _read(name)
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    # The first cell says where data and weights come from, and how CI runs it.
    for words in ("KFT_SMOKE", "without outputs"):
        assert words in first.source, f"{name}: first cell must mention {words!r}"
    setup = _code_cells(notebook)[0].source
    assert "import kerastune_ft as kft" in setup
    assert 'os.environ.get("KFT_SMOKE")' in setup
    assert 'os.environ.get("KFT_SHARED", "../../shared")' in setup
    sources = "\n".join(cell.source for cell in _code_cells(notebook))
    assert "from kerastune_ft" not in sources, "use `kft.` names, as users would"
    assert "import *" not in sources


def _execute(name, root, shared_dir):
    """Runs one notebook in a fresh kernel; returns (notebook, seconds, error).

    The kernel starts in a copy of the repo layout under `root` (files the
    notebook writes stay out of the checkout; ../data still resolves).
    """
    import nbclient

    (root / "notebooks").mkdir()
    (root / "data").symlink_to(REPO_ROOT / "data", target_is_directory=True)
    env = dict(os.environ)
    env.update(
        {
            "KFT_SMOKE": "1",
            "KFT_SHARED": str(shared_dir),
            "KFT_WEIGHTS_DIR": str(shared_dir / "weights" / "keras_applications"),
            "NLTK_DATA": str(shared_dir / "nltk_data"),
            "XDG_CACHE_HOME": str(root / "cache"),
        }
    )
    # As a learner's kernel: TensorFlow's log level is whatever kerastune_ft sets.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    notebook = _read(name)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(root / "notebooks")}},
    )
    started = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except Exception as exc:  # reported by the test with the notebook's name
        error = f"{type(exc).__name__}: {exc}"
    return notebook, time.perf_counter() - started, error


# CI seconds of each notebook in smoke mode, about (`heavy`: the longest start
# first). A kernel and `import kerastune_ft` take ~15 s of each; the rest is
# mostly TensorFlow tracing each model's functions once.
SMOKE_SECONDS = {
    "01_image_transfer_learning.ipynb": 60,
    "02_text_fine_tuning.ipynb": 55,
    "03_overfitting_lab.ipynb": 95,
    "04_tuning_and_cross_validation.ipynb": 65,
    "05_plug_into_keras.ipynb": 55,
}


# One kernel per test: pytest-xdist (`-n 2` in setup.cfg) runs two at once.
@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.heavy(SMOKE_SECONDS[n])) for n in NOTEBOOKS],
)
def test_notebook_runs_in_smoke_mode(name, shared_dir, tmp_path):
    notebook, seconds, error = _execute(name, tmp_path, shared_dir)
    print(f"{name}: {seconds:.1f}s in smoke mode")
    assert error is None, f"{name} failed in smoke mode:\n{error}"
    cells = _code_cells(notebook)
    assert all(cell.execution_count for cell in cells), "every code cell ran"
    # A learner's first sight of the toolkit: `import kerastune_ft` prints
    # nothing (no TensorFlow C++ lines, no tqdm "IProgress not found").
    noise = [o for o in cells[0].outputs if o.get("name") == "stderr"]
    assert noise == [], noise
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    # The notebook's figures display inline (a returned Figure needs the
    # inline backend, hence `%matplotlib inline` in the first code cell).
    images = [o for c in cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} displayed no figure"
