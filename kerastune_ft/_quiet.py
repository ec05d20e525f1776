"""Start-up without the frameworks' noise.

Importing TensorFlow prints C++ log lines (CUDA probes on a machine without
a GPU, "All log messages before absl::InitializeLog() ...") straight to file
descriptor 2, before `TF_CPP_MIN_LOG_LEVEL` is read; Jupyter shows them in
red under the first cell. tqdm warns "IProgress not found" when a library
imports `tqdm.auto` in a notebook without ipywidgets. A learner's first
sight of the toolkit should be neither.
"""

import contextlib
import os
import sys
import tempfile
import warnings

# Lines TensorFlow writes while its libraries load; anything else is kept.
_STARTUP_NOISE = (
    "absl::InitializeLog()",
    "cudart_stub.cc",
    "cuda_dnn.cc",
    "cuda_fft.cc",
    "cuda_blas.cc",
    "cuda_executor.cc",
    "cuda_diagnostics.cc",
    "cuda_platform.cc",
    "failed call to cuInit",
    "computation_placer.cc",
    "cpu_feature_guard.cc",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "oneDNN custom operations are on",
    "Unable to register cu",
    "TF-TRT Warning",
)


def _is_noise(line):
    return any(marker in line for marker in _STARTUP_NOISE)


@contextlib.contextmanager
def _filtered_stderr():
    """Captures file descriptor 2, then re-emits what is not start-up noise."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # No real descriptor 2 (an embedded interpreter): nothing to filter.
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if not _is_noise(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


@contextlib.contextmanager
def quiet_startup():
    """Imports inside this block load TensorFlow without start-up noise.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless the user set it (then their level
    and all of TensorFlow's output are left alone), drops the C++ lines
    TensorFlow prints while loading, and silences tqdm's "IProgress not
    found" warning for the imports made in the block.
    """
    user_level = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        if user_level or "tensorflow" in sys.modules:
            yield
        else:
            with _filtered_stderr():
                yield
                _probe_devices()


def _probe_devices():
    # TensorFlow looks for GPUs at its first operation and logs a CUDA
    # error where there is none (an ERROR-level line that
    # TF_CPP_MIN_LOG_LEVEL=2 keeps): look now, while the noise is filtered.
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        tf.config.list_physical_devices("GPU")


def import_tensorflow(purpose):
    """TensorFlow, imported quietly, or an ImportError saying what needs it.

    The image path runs on every Keras backend without TensorFlow; text
    preprocessing, tf.data inputs, tfds, SavedModel / LiteRT export and
    keras-tuner searches need it.

    Args:
        purpose: what needs TensorFlow, for the message (e.g. "kft.tune").

    Returns:
        The `tensorflow` module.

    Raises:
        ImportError: TensorFlow is not installed (or not importable).
    """
    import importlib

    try:
        with quiet_startup():
            return importlib.import_module("tensorflow")
    except ImportError as e:
        raise ImportError(
            f"{purpose} needs TensorFlow, which is not installed (or could not be "
            f"imported: {e}). Install it with `pip install tensorflow` (it works "
            "beside any Keras backend), or use the image path, which runs without "
            "it: kft.build_image_classifier, kft.fine_tune, kft.evaluate."
        ) from e


def load_frameworks():
    """Imports Keras (and so its backend) without start-up noise."""
    import importlib

    with quiet_startup():
        importlib.import_module("keras")
