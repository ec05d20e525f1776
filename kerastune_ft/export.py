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

Text models and TFLite: the keras-hub tokenizer (WordPiece / BPE ops from
tensorflow-text) has no TFLite kernels, so the TFLite file holds the part
that converts: token ids -> probabilities. Tokenize outside the model with
the preprocessor saved beside it (`<name>.preprocessor/`, reload with
`keras_hub.models.TextClassifierPreprocessor.from_preset(dir)`), or export
`format="saved_model"`, which takes raw strings.
"""

import dataclasses
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np

from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.freezing import is_text_model

FORMATS = ("keras", "saved_model", "tflite")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
_SUFFIX = {"keras": ".keras", "tflite": ".tflite"}


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


def output_activation(model):
    """The activation that turns the model's outputs into probabilities.

    Args:
        model: a compiled Keras model.

    Returns:
        `"softmax"` or `"sigmoid"` when the model was compiled with a
        `from_logits=True` loss (e.g. kerastune_ft text models), else `None`
        (its outputs already are probabilities, or nothing says otherwise).

    Example:

    >>> import keras
    >>> from kerastune_ft.export import output_activation
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True))
    >>> output_activation(model)
    'softmax'
    """
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, str):
        return None
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    if not config.get("from_logits"):
        return None
    return "sigmoid" if "binary" in type(loss).__name__.lower() else "softmax"


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
    path = os.fspath(path)
    suffix = _SUFFIX.get(format)
    if suffix and not path.endswith(suffix):
        root, ext = os.path.splitext(path)
        if ext:
            raise ValueError(
                f"A {format} export is a `{suffix}` file. Received: path={path!r}. "
                f"Use {root + suffix!r}."
            )
        path += suffix
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
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
):
    """Exports a model as `.keras`, a TensorFlow SavedModel, or TFLite.

    Exported SavedModels and TFLite files return class probabilities: a
    softmax (or sigmoid) is added when the model outputs logits (as
    kerastune_ft text models do).

    Args:
        model: a trained Keras model, e.g. from `kft.build_image_classifier`,
            `kft.build_text_classifier` or `kft.fine_tune(...).model`.
        path: where to write: a `.keras` file, a SavedModel directory, or a
            `.tflite` file (the suffix is added when missing).
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

    Returns:
        An `ExportResult` (path, size, what the export takes and returns,
        and notes on anything not exported).

    Example:

    >>> import os, tempfile, keras, kerastune_ft as kft
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    >>> folder = tempfile.mkdtemp()
    >>> result = kft.export(model, os.path.join(folder, "model"))
    >>> result.format, os.path.basename(result.path)
    ('keras', 'model.keras')
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}."
        )
    check_choice("format", format, FORMATS)
    check_choice("quantize", quantize, QUANTIZATIONS)
    check_number("num_calibration", num_calibration, low=1, integer=True)
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
    path = _check_path(path, format)
    if format == "keras":
        model.save(path)
        inputs = _describe_inputs(model, tokenized=False)
        return ExportResult(
            path, format, quantize, _size(path), inputs, "the model's own outputs"
        )
    if format == "saved_model":
        return _export_saved_model(model, path)
    return _export_tflite(model, path, quantize, representative_data, num_calibration)


def _outputs_words(model):
    activation = output_activation(model)
    added = f" ({activation} added to the logits)" if activation else ""
    return f"class probabilities, shape (batch, num_classes){added}"


def _export_saved_model(model, path):
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
    if os.path.exists(path):
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    archive.write_out(path, verbose=False)
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
        for i in range(size):
            if count >= limit:
                return
            if text:
                yield {k: v[i : i + 1] for k, v in x.items()}
            else:
                yield x[i : i + 1]
            count += 1
    if count == 0:
        raise ValueError("`representative_data` is empty: nothing to calibrate on.")


def _export_tflite(model, path, quantize, representative_data, limit):
    import tensorflow as tf

    call = _probabilities_fn(model)
    signature = _input_signature(model)
    text = is_text_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", call, input_signature=[signature])
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            samples = list(
                _calibration_inputs(model, representative_data, limit, signature)
            )

            def representative_dataset():
                for sample in samples:
                    if isinstance(sample, dict):
                        yield sample
                    else:
                        yield [sample]

            converter.representative_dataset = representative_dataset
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # the converter raises ConverterError and others
            raise ValueError(
                f"TFLite conversion failed ({type(e).__name__}): {str(e)[:600]}. "
                "Some ops have no TFLite kernels; export format='saved_model' "
                "instead, which runs every TensorFlow op."
            ) from e
    with open(path, "wb") as f:
        f.write(flatbuffer)
    notes = ()
    if text:
        preprocessor_dir = os.path.splitext(path)[0] + ".preprocessor"
        if os.path.isdir(preprocessor_dir):
            shutil.rmtree(preprocessor_dir)
        _save_preprocessor(model, preprocessor_dir)
        notes = (
            "Not exported: the tokenizer. Its ops (tensorflow-text WordPiece) have "
            "no TFLite kernels, so this file takes token ids, not strings. "
            f"Tokenize outside it with the preprocessor saved in {preprocessor_dir} "
            "(keras_hub.models.TextClassifierPreprocessor.from_preset(dir)), or "
            "export format='saved_model', which takes raw strings.",
        )
    return ExportResult(
        path,
        "tflite",
        quantize,
        _size(path),
        _describe_inputs(model, tokenized=True),
        _outputs_words(model),
        notes,
    )


def _save_preprocessor(model, directory):
    """Saves the tokenizer and packer as a keras-hub preset folder.

    keras-hub finds a preset's classes through its `config.json` (the
    backbone's config): it is written too, without the weights, so that
    `TextClassifierPreprocessor.from_preset(directory)` works.
    """
    from keras_hub.src.utils.preset_utils import get_preset_saver

    saver = get_preset_saver(directory)
    saver._save_serialized_object(model.backbone, config_file="config.json")
    model.preprocessor.save_to_preset(directory)


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
