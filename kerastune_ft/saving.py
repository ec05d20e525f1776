"""Load `.keras` model files safely, with errors that name the file.

`keras.models.load_model` reports a file that exists but is no `.keras` zip
as "File not found", a damaged config as a raw `JSONDecodeError`, and prints
an optimizer warning when the optimizer is not needed. `load_model` here
checks the file first, loads with `safe_mode=True` and (by default)
`compile=False`, and turns each failure into a `ValueError` that names the
file and says what to do.

Importing this module registers kerastune_ft's own serializable classes
(`ImagePreprocessing`, `TransferTextClassifier`, `TokenPooling`,
`MacroScore`, ...), so their models reload without further imports.
"""

import json
import os
import re
import zipfile

import keras

# Imported for their side effect: each registers the custom classes it
# defines with Keras, so `.keras` files using them deserialize.
import kerastune_ft.backbones.image  # noqa: F401
import kerastune_ft.builders.head  # noqa: F401
import kerastune_ft.builders.text  # noqa: F401
import kerastune_ft.evaluation.monitor  # noqa: F401
import kerastune_ft.training  # noqa: F401

__all__ = ["load_model"]

_CONFIG = "config.json"


def load_model(path, *, compile=False, custom_objects=None):
    """Loads a `.keras` model file, refusing unsafe or broken files clearly.

    Args:
        path: a `.keras` file written by `model.save` or `kft.export`.
        compile: also restore the optimizer, loss and metrics saved with
            the model (needed to continue training). Defaults to `False`:
            predicting, evaluating with `kft.evaluate` and exporting need no
            optimizer, and Keras would warn that it skipped its variables.
        custom_objects: `{name: class}` for your own layers, losses or
            metrics that are not registered with
            `keras.saving.register_keras_serializable`. kerastune_ft's own
            classes are always known. Defaults to `None`.

    Returns:
        The `keras.Model`, uncompiled unless `compile=True`.

    Raises:
        ValueError: the path is missing, a folder, not a `.keras` file, not a
            valid Keras model file, or uses a class that is not registered;
            the message names the file.

    Example:

    >>> import os, tempfile, keras
    >>> from kerastune_ft.saving import load_model
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> model.save(path)
    >>> load_model(path).output_shape
    (None, 2)
    """
    path = _check_model_path(path)
    if not isinstance(compile, bool):
        raise TypeError(
            f"`compile` must be True or False. Received: compile={compile!r}."
        )
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(
            "`custom_objects` must be a dict {name: class}, e.g. "
            f"{{'MyLayer': MyLayer}}. Received: custom_objects={custom_objects!r}."
        )
    try:
        return keras.models.load_model(
            path, custom_objects=custom_objects, compile=compile, safe_mode=True
        )
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise ValueError(_load_error_message(path, error)) from error


def _check_model_path(path):
    """Returns `path` as a string if it is a readable `.keras` zip, else raises."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            "`path` must be the path of a `.keras` file. Received: "
            f"path={path!r} of type {type(path).__name__}."
        )
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise ValueError(
            f"The model file {path!r} does not exist. Check the path (a training "
            "run writes RUN/model.keras)."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"{path!r} is a folder, not a model file. Pass the `.keras` file "
            "inside it (e.g. RUN/model.keras). A SavedModel folder is loaded with "
            "`tf.saved_model.load`, not as a Keras model."
        )
    if not path.endswith(".keras"):
        raise ValueError(
            f"`path` must be a `.keras` file. Received: path={path!r}. Save the "
            "model with `model.save('model.keras')` or `kft.export(model, path)`; "
            "for a legacy `.h5` model use `keras.models.load_model` directly."
        )
    if os.path.getsize(path) == 0:
        raise ValueError(
            f"The model file {path!r} is empty (0 bytes): not a valid Keras model "
            "file. It was probably cut off while being written; save it again."
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a valid Keras model file: a `.keras` file is a zip "
            "archive and this one is not (damaged, cut off, or another format "
            "renamed). Save the model again with `model.save(path)`."
        )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if _CONFIG not in names:
        raise ValueError(
            f"{path!r} is not a valid Keras model file: the zip holds no "
            f"{_CONFIG}. Save the model again with `model.save(path)`."
        )
    return path


def _load_error_message(path, error):
    """What went wrong loading `path`, in words, from Keras' raw error."""
    text = str(error)
    missing = re.search(r"Could not locate class '([^']+)'", text)
    if missing is None and error.__context__ is not None:
        missing = re.search(r"Could not locate class '([^']+)'", str(error.__context__))
    if missing:
        name = missing.group(1)
        return (
            f"The model file {path!r} uses the class {name!r}, which is not "
            "registered. `import kerastune_ft` registers the project's own classes; "
            f"for your own, import the module that defines {name} (decorated with "
            "`@keras.saving.register_keras_serializable()`) before loading, or pass "
            f"`custom_objects={{{name!r}: {name}}}`."
        )
    if "Lambda" in text and "safe_mode" in text:
        return (
            f"The model file {path!r} holds a `Lambda` layer (Python code). "
            "kerastune_ft loads with safe_mode=True and refuses to run code from a "
            "file. If you trust the file, load it with "
            "`keras.models.load_model(path, safe_mode=False)`."
        )
    if isinstance(error, json.JSONDecodeError | KeyError):
        reason = f"its {_CONFIG} is damaged ({type(error).__name__}: {error})"
    elif isinstance(error, OSError) or "weights" in text:
        reason = f"its weights are damaged or missing ({type(error).__name__}: {error})"
    else:
        reason = f"{type(error).__name__}: {text[:600]}"
    return (
        f"{path!r} is not a valid Keras model file: {reason}. Save the model "
        "again with `model.save(path)`."
    )
