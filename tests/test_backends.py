"""The image path on other Keras backends, with TensorFlow blocked from import.

One subprocess per backend runs `tests/_backend_smoke.py` (load, build,
fine_tune with cached features and augmented views, evaluate, diagnose,
report, `.keras` round trip, the text builder's error). The backends come
from `KFT_TEST_BACKENDS` (a comma list, default `"jax"`), so the same test
runs under `torch` where it is installed; a backend whose package is not
importable is skipped with the reason. On a machine without TensorFlow, set
`KERAS_BACKEND` for pytest itself too (conftest imports Keras):
`KERAS_BACKEND=jax KFT_TEST_BACKENDS=jax,torch pytest tests/test_backends.py`.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "_backend_smoke.py")
BACKENDS = [
    b.strip()
    for b in os.environ.get("KFT_TEST_BACKENDS", "jax").split(",")
    if b.strip()
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_path_runs_without_tensorflow(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend!r} backend's package is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend)
    proc = subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert f"backend smoke ok: {backend}" in proc.stdout, output[-6000:]
