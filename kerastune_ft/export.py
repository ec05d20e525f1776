"""Export a trained model: `.keras`, TensorFlow SavedModel, or TFLite.

- `format="keras"`: the whole model (text models include their tokenizer);
  reload with `keras.models.load_model(path)` after `import kerastune_ft`.
- `format="saved_model"`: a TensorFlow SavedModel for serving (TF Serving,
  `tf.saved_model.load`). Its `serve` signature returns class
  probabilities. Image models take float32 pixels in [0, 255]; text models
  take raw strings (the keras-hub tokenizer is inside; loading needs
  `import tensorflow_text` first) and also offer `serve_token_ids`.
- `format="tflite"`: a TFLite (LiteRT) flatbuffer returning probabilities,
  optionally quantized: `"float16"` (weights in float16, about half the
  size), `"dynamic"` (int8 weights, float activations, about a quarter) or
  `"int8"` (int8 weights and activations calibrated on
  `representative_data`, a sample of the training inputs).

Text models and TFLite: the keras-hub tokenizer has no TFLite kernels, so
the file takes token ids; the tokenizer is saved beside it
(`<name>.preprocessor/`), and `format="saved_model"` takes raw strings.
The TFLite file is written by Keras' `model.export(format="litert")`.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np

from kerastune_ft import _compat
from kerastune_ft._files import write_text_atomic
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.builders import is_text_model
from kerastune_ft.evaluation.inspection import output_activation

__all__ = ["ExportResult", "export", "tflite_predict"]

FORMATS = ("keras", "saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
_SUFFIX = {"keras": ".keras", "tflite": ".tflite"}
# What an export folder holds so that a later export knows what it wrote.
EXPORT_MARKER = ".kerastune_ft_export.json"
_FILE_SUFFIXES = {".keras": "keras", ".tflite": "tflite", ".h5": "keras"}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `kft.export` wrote.

    Attributes:
        path: the file (`.keras`, `.tflite`) or directory (SavedModel).
        format: `"keras"`, `"saved_model"` or `"tflite"`.
        quantize: the TFLite quantization, `"none"` otherwise.
        size_bytes: size on disk (a directory's files summed).
        inputs: what the export takes, in words.
        outputs: what it returns, in words.
        notes: what was not exported and what to do instead, if anything.
    """

    path: str
    format: str
    quantize: str
    size_bytes: int
    inputs: str
    outputs: str
    notes: tuple = ()

    def __str__(self):
        lines = [
            f"Exported {self.format}"
            + (f" ({self.quantize})" if self.quantize != "none" else "")
            + f" to {self.path} ({self.size_bytes / 1e6:.2f} MB)",
            f"  inputs:  {self.inputs}",
            f"  outputs: {self.outputs}",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _probabilities_fn(model):
    activation = output_activation(model)

    def call(inputs):
        outputs = model(inputs, training=False)
        if activation == "softmax":
            outputs = keras.ops.softmax(outputs, axis=-1)
        elif activation == "sigmoid":
            outputs = keras.ops.sigmoid(outputs)
        return outputs

    return call


def _input_signature(model):
    """TensorSpecs of the model's (token id or pixel) inputs, batch left free."""
    import tensorflow as tf

    if is_text_model(model):
        length = int(model.preprocessor.sequence_length)
        return {
            name: tf.TensorSpec((None, length), tensor.dtype, name=name)
            for name, tensor in model.input.items()
        }
    inputs = model.inputs
    if len(inputs) != 1:
        raise ValueError(
            "`kft.export` handles models with one input (pixels) or kerastune_ft "
            f"text models. Received a model with {len(inputs)} inputs."
        )
    return tf.TensorSpec(inputs[0].shape, inputs[0].dtype, name="inputs")


def _describe_inputs(model, tokenized):
    if is_text_model(model):
        length = int(model.preprocessor.sequence_length)
        names = ", ".join(model.input)
        if tokenized:
            return f"token ids: {names}, each int32 of shape (batch, {length})"
        return "raw strings, shape (batch,)"
    shape = tuple(model.inputs[0].shape[1:])
    return f"float32 pixels in [0, 255], shape (batch, {', '.join(map(str, shape))})"


def _check_path(path, format):
    """The export's path as a string, its suffix checked or added."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            "`path` must be a file or folder path (str or pathlib.Path). "
            f"Received: path={path!r} of type {type(path).__name__}."
        )
    path = os.path.expanduser(os.fspath(path))
    if not path:
        raise ValueError("`path` must not be empty. Received: path=''.")
    suffix = _SUFFIX.get(format)
    root, ext = os.path.splitext(path)
    if format == "saved_model" and ext in _FILE_SUFFIXES:
        raise ValueError(
            f"A SavedModel is a folder, but `path` names a `{ext}` file. "
            f"Received: path={path!r}. Use a folder path such as {root!r}, or "
            f"format={_FILE_SUFFIXES[ext]!r} for a `{ext}` file."
        )
    if suffix and not path.endswith(suffix):
        if ext:
            raise ValueError(
                f"A {format} export is a `{suffix}` file. Received: path={path!r}. "
                f"Use {root + suffix!r}."
            )
        path += suffix
    return path


def _size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(path)
        for f in files
    )


def export(
    model,
    path,
    format="keras",
    quantize="none",
    representative_data=None,
    *,
    num_calibration=100,
    overwrite=False,
):
    """Exports a model as `.keras`, a TensorFlow SavedModel, or TFLite.

    Exported SavedModels and TFLite files return class probabilities: a
    softmax (or sigmoid) is added when the model outputs logits (as
    kerastune_ft text models do).

    Nothing the export did not write is ever deleted. Every export is first
    written completely under a temporary name beside `path`, then moved into
    place, so a crash never leaves a half-written file under the final name.
    A SavedModel folder gets a marker file (`.kerastune_ft_export.json`)
    listing what the export wrote there:

    - `.keras` / `.tflite`: an existing file at `path` is refused unless
      `overwrite=True`, which replaces it.
    - SavedModel: `path` may be new, an empty folder, or a folder an
      earlier `kft.export` wrote (its marker lists what it wrote; only those
      entries are replaced). Any other folder is refused unless
      `overwrite=True`, which writes the SavedModel's own entries
      (`saved_model.pb`, `variables/`, `assets/`, `fingerprint.pb`) into it,
      replacing only entries of those names and keeping everything else.
    - Text models to TFLite also write the tokenizer to
      `<name>.preprocessor/`, under the same folder rule.

    Args:
        model: a trained Keras model, e.g. from `kft.build_image_classifier`,
            `kft.build_text_classifier` or `kft.fine_tune(...).model`.
        path: where to write: a `.keras` file, a SavedModel directory, or a
            `.tflite` file (the suffix is added when missing). Missing
            parent folders are created.
        format: `"keras"`, `"saved_model"` or `"tflite"`. Defaults to
            `"keras"`.
        quantize: TFLite only: `"none"`, `"float16"`, `"dynamic"` (int8
            weights) or `"int8"` (int8 weights and activations; needs
            `representative_data`). Defaults to `"none"`.
        representative_data: int8 calibration inputs, a sample of the
            training data: a `tf.data.Dataset` of `(inputs, labels)` or
            inputs batches (e.g. `kft.data.load_images(...).train`), an
            array of images, or a list of strings for text models. Defaults
            to `None`.
        num_calibration: how many examples of `representative_data` to
            calibrate on. Defaults to `100`.
        overwrite: replace an existing export file, or write a SavedModel
            into a non-empty folder kerastune_ft did not write (keeping the
            files there that are not part of a SavedModel). Defaults to
            `False`.

    Returns:
        An `ExportResult` (path, size, what the export takes and returns,
        and notes on anything not exported).

    Raises:
        ValueError: a bad argument, or `path` holds something the export
            would replace (the message says what to do).

    Example:

    >>> import os, tempfile, keras, kerastune_ft as kft
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    >>> folder = tempfile.mkdtemp()
    >>> result = kft.export(model, os.path.join(folder, "model"))
    >>> result.format, os.path.basename(result.path)
    ('keras', 'model.keras')
    >>> result = kft.export(model, result.path, overwrite=True)  # replaces it
    """
    _check_export_arguments(
        model, format, quantize, representative_data, num_calibration, overwrite
    )
    path = _check_path(path, format)
    if format == "saved_model":
        owned = _folder_target(path, overwrite)
        with _staging(path) as staging:
            result = _export_saved_model(model, path, staging, owned, overwrite)
        return result
    _file_target(path, format, overwrite)
    if format == "keras":
        with _staging(path) as staging:
            staged = os.path.join(staging, os.path.basename(path))
            model.save(staged)
            os.replace(staged, path)
        inputs = _describe_inputs(model, tokenized=False)
        return ExportResult(
            path, format, quantize, _size(path), inputs, "the model's own outputs"
        )
    preprocessor = None
    if is_text_model(model):  # the tokenizer goes beside the file
        folder = os.path.splitext(path)[0] + ".preprocessor"
        preprocessor = (folder, _folder_target(folder, overwrite))
    calibration = (representative_data, num_calibration)
    with _staging(path) as staging:
        return _export_tflite(
            model, path, staging, quantize, calibration, preprocessor, overwrite
        )


def _check_export_arguments(
    model, format, quantize, representative_data, num_calibration, overwrite
):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}."
        )
    check_choice("format", format, FORMATS)
    check_choice("quantize", quantize, QUANTIZATIONS)
    check_number("num_calibration", num_calibration, low=1, integer=True)
    if not isinstance(overwrite, bool):
        raise TypeError(
            f"`overwrite` must be True or False. Received: overwrite={overwrite!r}."
        )
    if format != "tflite" and quantize != "none":
        raise ValueError(
            "`quantize` applies to format='tflite' only. Received: "
            f"format={format!r}, quantize={quantize!r}."
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`quantize='int8'` calibrates activations on `representative_data`: "
            "pass a sample of the training inputs (e.g. `data.train` from "
            "kft.data.load_images, or a list of training texts). Or use "
            "quantize='dynamic', which needs no data."
        )
    if representative_data is not None and quantize != "int8":
        raise ValueError(
            "`representative_data` is only used with quantize='int8'. Received: "
            f"quantize={quantize!r}."
        )


# --------------------------------------------------------------------------
# Writing without losing anything: targets checked first, staged, then moved.
# --------------------------------------------------------------------------


def _file_target(path, format, overwrite):
    """Refuses a file export that would replace a folder, or a file unasked."""
    if os.path.isdir(path):
        raise ValueError(
            f"`path` is a folder, but a {format} export is one `{_SUFFIX[format]}` "
            f"file. Received: path={path!r}. Choose a file path, e.g. "
            f"{os.path.join(path, 'model' + _SUFFIX[format])!r}."
        )
    if os.path.lexists(path) and not overwrite:
        raise ValueError(
            f"{path!r} already exists: kft.export does not replace files unless "
            "asked. Choose another `path`, or pass overwrite=True to replace it "
            "(`--overwrite` on the command line)."
        )


def _folder_target(path, overwrite):
    """Checks a folder an export writes into; returns the entries it may replace.

    Returns:
        The names an earlier kerastune_ft export wrote there (from its
        marker), or an empty set (new or empty folder, or overwrite=True).
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(
            f"`path` {path!r} is a file, but this export writes a folder there. "
            "Choose another path; kft.export never replaces a file with a folder."
        )
    if not os.path.isdir(path):
        return set()
    entries = sorted(os.listdir(path))
    owned = _read_marker(path)
    if not entries or owned is not None or overwrite:
        return owned or set()
    shown = ", ".join(repr(e) for e in entries[:4]) + (
        ", ..." if len(entries) > 4 else ""
    )
    raise ValueError(
        f"{path!r} is not empty ({len(entries)} entries: {shown}) and no earlier "
        "kft.export wrote it: exporting there could replace files that are not "
        "the export's, so nothing was written. Choose another path (e.g. "
        f"{os.path.join(path, 'saved_model')!r}), an empty folder, or pass "
        "overwrite=True (`--overwrite`) to write the export's own entries into it "
        "(other files are kept)."
    )


def _read_marker(folder):
    """The entry names a kerastune_ft marker lists, or None when there is none."""
    try:
        with open(os.path.join(folder, EXPORT_MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    entries = marker.get("entries") if isinstance(marker, dict) else None
    if marker.get("written_by") != "kerastune_ft" or not isinstance(entries, list):
        return None
    # Only plain names inside the folder: a hand-edited marker must never
    # make an export delete anything outside it.
    if not all(_plain_name(e) for e in entries):
        return None
    return set(entries)


def _plain_name(name):
    return (
        isinstance(name, str)
        and name not in ("", ".", "..", EXPORT_MARKER)
        and os.path.basename(name) == name
        and not (os.altsep and os.altsep in name)
    )


def _write_marker(folder, entries, what):
    from kerastune_ft import __version__

    marker = {
        "written_by": "kerastune_ft",
        "version": __version__,
        "what": what,
        "entries": sorted(entries),
    }
    write_text_atomic(os.path.join(folder, EXPORT_MARKER), json.dumps(marker, indent=2))


@contextlib.contextmanager
def _staging(path):
    """A temporary folder beside `path`, removed afterwards.

    Parent folders of `path` are created for it; if the export fails they
    are removed again (only those this call created, and only when empty).
    """
    parent = os.path.dirname(os.path.abspath(path))
    created = []
    probe = parent
    while not os.path.isdir(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(parent, exist_ok=True)
    staging = None
    try:
        staging = tempfile.mkdtemp(
            prefix=f".{os.path.basename(path)}.", suffix=".kft-tmp", dir=parent
        )
        yield staging
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            staging = None
        for folder in created:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _install_folder(staged, target, owned, overwrite, what):
    """Moves a fully written folder's entries to `target`, marking them ours.

    Removes only what the marker says an earlier export wrote, and, with
    overwrite=True, entries the new export replaces by name.
    """
    new = set(os.listdir(staged))
    if not os.path.isdir(target):
        _write_marker(staged, new, what)
        os.replace(staged, target)
        return
    existing = set(os.listdir(target)) - {EXPORT_MARKER}
    clashes = (existing & new) - owned
    if clashes and not overwrite:
        raise ValueError(
            f"{target!r} holds {', '.join(sorted(clashes))}, which an earlier "
            "kft.export did not write and this export would replace: nothing was "
            "written. Move them away, choose another path, or pass overwrite=True."
        )
    # A marker naming old and new entries first: if the process stops
    # midway, the next export still knows what it may clean up.
    _write_marker(target, owned | new, what)
    for name in sorted((owned | new) & existing):
        _remove(os.path.join(target, name))
    for name in sorted(new):
        os.replace(os.path.join(staged, name), os.path.join(target, name))
    _write_marker(target, new, what)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _outputs_words(model):
    activation = output_activation(model)
    added = f" ({activation} added to the logits)" if activation else ""
    return f"class probabilities, shape (batch, num_classes){added}"


def _export_saved_model(model, path, staging, owned, overwrite):
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    call = _probabilities_fn(model)
    signature = _input_signature(model)
    notes = ()
    if is_text_model(model):
        preprocessor = model.preprocessor
        archive.track(preprocessor)

        def serve(strings):
            return call(preprocessor(strings))

        archive.add_endpoint(
            "serve", serve, input_signature=[tf.TensorSpec((None,), tf.string)]
        )
        archive.add_endpoint("serve_token_ids", call, input_signature=[signature])
        notes = (
            "Load with `import tensorflow_text` first (it registers the tokenizer "
            "ops), then `tf.saved_model.load(path).serve(tf.constant([...]))`.",
        )
    else:
        archive.add_endpoint("serve", call, input_signature=[signature])
    staged = os.path.join(staging, "saved_model")
    archive.write_out(staged, verbose=False)
    _install_folder(staged, path, owned, overwrite, "saved_model")
    return ExportResult(
        path,
        "saved_model",
        "none",
        _size(path),
        _describe_inputs(model, tokenized=False),
        _outputs_words(model),
        notes,
    )


def _calibration_inputs(model, data, limit, signature):
    """Yields single-example inputs (batch of 1) for int8 calibration."""
    import tensorflow as tf

    text = is_text_model(model)
    if text:
        dtypes = {k: spec.dtype.as_numpy_dtype for k, spec in signature.items()}
    if isinstance(data, tf.data.Dataset):
        batches = data
    elif text and isinstance(data, (list, tuple, np.ndarray)):
        batches = [list(data[i : i + 32]) for i in range(0, len(data), 32)]
    elif isinstance(data, np.ndarray):
        batches = [data[i : i + 32] for i in range(0, len(data), 32)]
    else:
        raise TypeError(
            "`representative_data` must be a tf.data.Dataset, an array of inputs, "
            "or (text models) a list of strings. Received: "
            f"{type(data).__name__}."
        )
    count = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, tuple) else batch
        if text:
            x = model.preprocessor(x if tf.is_tensor(x) else tf.constant(list(x)))
            # The packer gives a bool padding mask; the model input is int.
            x = {k: np.asarray(v).astype(dtypes[k]) for k, v in x.items()}
            size = len(next(iter(x.values())))
        else:
            x = np.asarray(x, dtype="float32")
            size = len(x)
        for i in range(min(size, limit - count)):
            yield {k: v[i : i + 1] for k, v in x.items()} if text else x[i : i + 1]
        count += min(size, limit - count)
        if count >= limit:
            return
    if count == 0:
        raise ValueError("`representative_data` is empty: nothing to calibrate on.")


def _export_tflite(
    model, path, staging, quantize, calibration, preprocessor, overwrite
):
    staged = os.path.join(staging, os.path.basename(path))
    _convert_tflite(model, staged, quantize, *calibration)
    notes = ()
    if preprocessor is not None:
        preprocessor_dir, owned = preprocessor
        staged_dir = os.path.join(staging, "preprocessor")
        # keras-hub finds a preset's classes through its `config.json` (the
        # backbone's config): written too, without the weights, so that
        # `TextClassifierPreprocessor.from_preset(directory)` works.
        _compat.save_preset_config(model.backbone, staged_dir)
        model.preprocessor.save_to_preset(staged_dir)
        _install_folder(staged_dir, preprocessor_dir, owned, overwrite, "preprocessor")
        notes = (
            "Not exported: the tokenizer. Its ops (tensorflow-text WordPiece) have "
            "no TFLite kernels, so this file takes token ids, not strings. "
            f"Tokenize outside it with the preprocessor saved in {preprocessor_dir} "
            "(keras_hub.models.TextClassifierPreprocessor.from_preset(dir)), or "
            "export format='saved_model', which takes raw strings.",
        )
    os.replace(staged, path)
    return ExportResult(
        path,
        "tflite",
        quantize,
        _size(path),
        _describe_inputs(model, tokenized=True),
        _outputs_words(model),
        notes,
    )


def _probability_model(model, signature):
    """A functional model from the export's inputs to class probabilities."""
    specs = signature if isinstance(signature, dict) else {"inputs": signature}
    inputs = {
        name: keras.Input(batch_shape=spec.shape, dtype=spec.dtype.name, name=name)
        for name, spec in specs.items()
    }
    if not isinstance(signature, dict):
        inputs = inputs["inputs"]
    return keras.Model(inputs, _probabilities_fn(model)(inputs))


def _convert_tflite(model, path, quantize, representative_data, limit):
    """Writes the TFLite file of the model's probabilities to `path`.

    Uses Keras' own LiteRT export (`model.export(format="litert")`) on a
    model that adds the softmax/sigmoid, restricted to TFLite's builtin ops
    so that the file runs on any TFLite interpreter.
    """
    import tensorflow as tf

    signature = _input_signature(model)
    target_spec = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    options = {}
    if quantize != "none":
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        target_spec["supported_types"] = [tf.float16]
    if quantize == "int8":
        samples = list(
            _calibration_inputs(model, representative_data, limit, signature)
        )

        def representative_dataset():
            for sample in samples:
                yield sample if isinstance(sample, dict) else [sample]

        options["representative_dataset"] = representative_dataset
    wrapper = _probability_model(model, signature)
    try:
        wrapper.export(
            path,
            format="litert",
            verbose=False,
            input_signature=[signature],
            target_spec=target_spec,
            **options,
        )
    except Exception as e:  # the converter raises ConverterError and others
        raise ValueError(
            f"TFLite conversion failed ({type(e).__name__}): {str(e)[:600]}. "
            "Some ops have no TFLite kernels; export format='saved_model' "
            "instead, which runs every TensorFlow op."
        ) from e


def tflite_predict(path, inputs, batch_size=32):
    """Runs a TFLite file written by `kft.export` on a batch of inputs.

    Args:
        path: the `.tflite` file.
        inputs: an array of images, or (text) a dict of token-id arrays as
            the saved preprocessor returns them.
        batch_size: examples per interpreter call. Defaults to `32`.

    Returns:
        A NumPy array of probabilities, one row per example.

    Example:

    >>> import os, tempfile, keras, numpy as np
    >>> from kerastune_ft.export import export, tflite_predict
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
    >>> result = export(model, path, format="tflite")
    >>> tflite_predict(result.path, np.zeros((3, 4))).shape
    (3, 2)
    """
    import tensorflow as tf

    with warnings.catch_warnings():
        # TF 2.20+ points to the separate ai_edge_litert package; the
        # interpreter bundled with TensorFlow still runs these files.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=os.fspath(path))
    signatures = list(interpreter.get_signature_list())
    runner = interpreter.get_signature_runner(signatures[0])
    names = list(runner.get_input_details())
    if isinstance(inputs, dict):
        arrays = {k: np.asarray(v) for k, v in inputs.items()}
    else:
        if len(names) != 1:
            raise ValueError(
                f"This TFLite model takes {len(names)} inputs ({', '.join(names)}); "
                "pass a dict of arrays."
            )
        arrays = {names[0]: np.asarray(inputs)}
    details = runner.get_input_details()
    total = len(next(iter(arrays.values())))
    outputs = []
    for start in range(0, total, batch_size):
        feed = {
            name: arrays[name][start : start + batch_size].astype(
                details[name]["dtype"]
            )
            for name in names
        }
        result = runner(**feed)
        outputs.append(np.asarray(next(iter(result.values()))))
    return np.concatenate(outputs)
