"""Shared fixtures: seeding, the ../shared asset folder, offline NLTK data."""

import os
import pathlib
import random

import numpy as np
import pytest

# Quieter TensorFlow logs in test output; users keep their own setting.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
