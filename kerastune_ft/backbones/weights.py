"""Where pretrained weights come from: one place for every backbone.

`weights="imagenet"` keeps Keras' normal download and cache, but first looks
in a local weights directory for the very file Keras would download, so that
air-gapped machines (and our tests) work offline:

- `KFT_WEIGHTS_DIR`: a folder holding the files Keras downloads, either flat
  (`$KFT_WEIGHTS_DIR/<file>`) or in Keras' cache layout
  (`$KFT_WEIGHTS_DIR/models/<file>`). Copy the files from a machine with
  internet (`~/.keras/models/`) to use them offline.
- Keras' own cache (`$KERAS_HOME/models`, default `~/.keras/models`).

A path (`weights="/path/file.weights.h5"`) loads that file; `weights=None` is
random initialization. When nothing is found and the download fails, the
error names the file it looked for, the folders it searched and how to
provide the file, instead of a raw URL error.
"""

import contextlib
import difflib
import glob
import os
import re
import warnings

from kerastune_ft import _compat

__all__ = [
    "ENV_WEIGHTS_DIR",
    "WeightsNotFoundError",
    "check_weights_argument",
    "find_local_weights",
    "load_weights_file",
    "local_weights_first",
    "weights_search_dirs",
]

ENV_WEIGHTS_DIR = "KFT_WEIGHTS_DIR"


class WeightsNotFoundError(ValueError):
    """Pretrained weights were asked for but cannot be found or downloaded."""


def weights_search_dirs():
    """Returns the folders searched for pretrained weight files, in order.

    Returns:
        A list of existing directory paths: `$KFT_WEIGHTS_DIR`,
        `$KFT_WEIGHTS_DIR/models`, then Keras' cache `models` folder.

    Example:

    >>> import kerastune_ft as kft
    >>> isinstance(kft.backbones.weights_search_dirs(), list)
    True
    """
    dirs = []
    local = os.environ.get(ENV_WEIGHTS_DIR)
    if local:
        dirs += [local, os.path.join(local, "models")]
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    dirs.append(os.path.join(keras_home, "models"))
    return [d for d in dirs if os.path.isdir(d)]


def _size_variants(file_name):
    # Keras names no-top weights after the input size (`..._0.35_160_no_top.h5`)
    # although their tensors have the same shapes at every size: accept any
    # size's file when the exact one is missing.
    match = re.match(r"^(.*_)(\d+)(_no_top\.h5)$", file_name)
    if not match:
        return []
    return [match.group(1) + "*" + match.group(3)]


def find_local_weights(file_name):
    """Looks for a weights file in the local search folders.

    Args:
        file_name: the file name Keras would download.

    Returns:
        The path of the first match, or `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.backbones.find_local_weights("no_such_file.h5") is None
    True
    """
    dirs = weights_search_dirs()
    for directory in dirs:
        candidate = os.path.join(directory, file_name)
        if os.path.isfile(candidate):
            return candidate
    for pattern in _size_variants(file_name):
        for directory in dirs:
            matches = sorted(glob.glob(os.path.join(directory, pattern)))
            if matches:
                return matches[0]
    return None


def _not_found_message(file_name, origin, cause):
    searched = weights_search_dirs()
    where = ", ".join(searched) if searched else "(no such folder exists yet)"
    return (
        f"Pretrained weights file {file_name!r} was not found locally and could "
        f"not be downloaded ({type(cause).__name__}: {cause}). Searched: {where}. "
        f"To use it offline, download it on a machine with internet from {origin} "
        f"and put it in a folder named by the {ENV_WEIGHTS_DIR} environment "
        f"variable (e.g. `export {ENV_WEIGHTS_DIR}=~/kft_weights`), or pass "
        "`weights='/path/to/file.h5'`, or `weights=None` for random "
        "initialization."
    )


@contextlib.contextmanager
def local_weights_first():
    """Makes Keras weight downloads look in local folders first.

    Inside this context, every `keras.applications` constructor called with
    `weights="imagenet"` uses a file from `weights_search_dirs()` when one
    is there, downloads otherwise, and raises `WeightsNotFoundError` with
    instructions when the download fails.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> with kft.backbones.local_weights_first():
    ...     model = keras.applications.MobileNetV2(
    ...         weights=None, include_top=False, input_shape=(96, 96, 3))
    """

    def make_get_file(original):
        def get_file(fname=None, origin=None, *args, **kwargs):
            # Keras passes the name positionally or by keyword; origin may be
            # all it passes.
            name = fname or (os.path.basename(origin) if origin else None)
            if name:
                local = find_local_weights(name)
                if local is not None:
                    return local
            try:
                return original(fname, origin, *args, **kwargs)
            except Exception as e:  # Any download failure gets the same advice.
                raise WeightsNotFoundError(_not_found_message(name, origin, e)) from e

        return get_file

    with _compat.patched_keras_get_file(make_get_file):
        yield


def check_weights_argument(weights):
    """Validates a `weights` argument: "imagenet", a file path, or None.

    A path must name an existing, non-empty `.weights.h5`, `.h5` or `.keras`
    file that opens as HDF5 (or zip, for `.keras`); whether its tensors fit
    the backbone is checked when they are loaded (`load_weights_file`).

    Args:
        weights: the value received.

    Returns:
        `weights`, with a path expanded (`~`) when it is one.

    Raises:
        TypeError: `weights` is not a string, a path or None.
        ValueError: the file is missing, a folder, empty, truncated or not
            a weights file; the message names it and says what to do.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.backbones.check_weights_argument(None) is None
    True
    """
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise TypeError(
            '`weights` must be "imagenet", a path to a weights file, or None. '
            f"Received: weights={weights!r} of type {type(weights).__name__}."
        )
    path = os.path.expanduser(weights)
    if not os.path.exists(path):
        hint = (
            " Did you mean 'imagenet'?"
            if difflib.get_close_matches(weights.lower(), ["imagenet"], cutoff=0.7)
            else ""
        )
        raise ValueError(
            '`weights` must be "imagenet", None, or the path of an existing '
            f"weights file. Received: weights={weights!r}, which does not exist."
            f"{hint} Check the path, or use weights='imagenet' (downloads, or reads "
            f"${ENV_WEIGHTS_DIR})."
        )
    if os.path.isdir(path):
        raise ValueError(_folder_message(weights, path))
    _check_weights_file(weights, path)
    return path


_WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".keras")
_ALTERNATIVES = (
    "Pass a weights file saved by `model.save_weights('x.weights.h5')` or "
    "downloaded from Keras Applications, weights='imagenet', or weights=None "
    "(random initialization)."
)


def _folder_message(weights, path):
    found = sorted(
        name
        for name in os.listdir(path)
        if name.endswith(_WEIGHTS_SUFFIXES) and os.path.isfile(os.path.join(path, name))
    )
    inside = (
        f" It holds {', '.join(found[:5])}: pass one of them, e.g. "
        f"weights={os.path.join(weights, found[0])!r}."
        if found
        else " It holds no `.weights.h5` or `.h5` file."
    )
    return (
        f"`weights` is a folder, not a weights file. Received: weights={weights!r}."
        f"{inside} (A keras-hub preset folder is passed as `backbone=`, not "
        "`weights=`.)"
    )


def _check_weights_file(weights, path):
    """Raises a ValueError naming `weights` if the file cannot hold weights."""
    import h5py

    if not path.endswith(_WEIGHTS_SUFFIXES):
        raise ValueError(
            "`weights` must be a `.weights.h5` file (or a legacy `.h5` / `.keras` "
            f"file): Keras reads weights by their suffix. Received: weights="
            f"{weights!r}. If it is an HDF5 weights file, rename it to end in "
            "`.weights.h5` (Keras 3 layout) or `.h5` (legacy layout)."
        )
    if os.path.getsize(path) == 0:
        raise ValueError(
            f"The `weights` file {weights!r} is empty (0 bytes): it was probably cut "
            f"off while downloading or copying. Copy it again. {_ALTERNATIVES}"
        )
    if path.endswith(".keras"):
        return
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"The `weights` file {weights!r} is not an HDF5 weights file (its first "
            "bytes are not an HDF5 signature: another format renamed, or an HTML "
            f"error page saved by a download). {_ALTERNATIVES}"
        )
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as error:
        raise ValueError(
            f"The `weights` file {weights!r} is truncated or damaged and cannot be "
            f"opened ({error}). Copy or download it again. {_ALTERNATIVES}"
        ) from error


def load_weights_file(model, path, *, what="the backbone"):
    """Loads a weights file into a model, or says why it does not fit.

    Keras' own warnings (e.g. about nested containers it skipped) are shown
    only when the file loads; when it does not, the error says it all.

    Args:
        model: the `keras.Model` to load into.
        path: a file accepted by `check_weights_argument`.
        what: how the error names the model. Defaults to `"the backbone"`.

    Returns:
        `model`, with the weights loaded.

    Raises:
        ValueError: the file holds weights of another architecture or
            variant; the message names the file and the `weights` argument.

    Example:

    >>> import os, tempfile, keras, kerastune_ft as kft
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "dense.weights.h5")
    >>> model.save_weights(path)
    >>> kft.backbones.load_weights_file(model, path) is model
    True
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except (ValueError, KeyError, OSError, TypeError) as error:
            first = str(error).strip().splitlines()[0][:300] if str(error) else ""
            raise ValueError(
                f"The `weights` file {path!r} does not fit {what}: it holds weights "
                "for another architecture or variant (e.g. MobileNetV2 alpha=0.35 "
                "weights for an alpha=1.0 model). Pass the file made for this "
                "backbone with the same `backbone_kwargs`, weights='imagenet', or "
                f"weights=None. Keras said: {type(error).__name__}: {first}"
            ) from error
    for warning in caught:
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )
    return model
