"""Pre-training checks: every argument and the data, before any epoch runs.

Each check raises a Keras-style error that names the argument, shows what
was received and says what to do next.
"""

import difflib
import math
import sys

import keras
import numpy as np

from kerastune_ft import freezing
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.data.batches import as_batches, first_batch, num_batches
from kerastune_ft.training.schedules import SCHEDULES

__all__ = [
    "check_arguments",
    "check_data",
    "check_labels",
    "check_model",
]


def check_model(model, train, validation_data, *, batch_size=None, seed=None):
    """`model` is a `keras.Model`; the data are batches or `(x, y)` arrays.

    Args:
        model: the `model` argument.
        train: the `train` argument: a `tf.data.Dataset`, a
            `keras.utils.PyDataset` or an `(inputs, labels)` tuple.
        validation_data: the `validation_data` argument, alike, or `None`.
        batch_size: the batch size of `(inputs, labels)` tuples. Defaults to
            `None` (32).
        seed: the seed of the training tuple's shuffling. Defaults to `None`.

    Returns:
        `(train, validation_data)` as batches: datasets as given, tuples as
        `kft.data.ArrayBatches` (the training one reshuffled every epoch).

    Raises:
        TypeError, ValueError: with what to pass instead.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}."
        )
    if batch_size is not None:
        check_number("batch_size", batch_size, low=1, integer=True)
    train = as_batches(train, batch_size, shuffle=True, seed=seed, name="train")
    if validation_data is not None:
        validation_data = as_batches(
            validation_data, batch_size, name="validation_data"
        )
    return train, validation_data


def require_compiled(model):
    """`model` has a compile config (its loss and metrics are known)."""
    if not model.get_compile_config():
        raise ValueError(
            "`model` must be compiled before training, so that its loss and metrics "
            "are known. Build it with compile=True or call model.compile(...)."
        )


def check_arguments(args):
    """Checks `fine_tune`'s keyword arguments (a `FineTuneArguments`).

    Args:
        args: the resolved arguments.

    Raises:
        TypeError, ValueError: for the first bad argument.
    """
    check_number("epochs", args.epochs, low=1, integer=True)
    check_number("learning_rate", args.learning_rate, low=0, low_inclusive=False)
    check_number("weight_decay", args.weight_decay, low=0)
    check_number("augmented_views", args.augmented_views, low=0, integer=True)
    check_number(
        "label_smoothing", args.label_smoothing, low=0, high=1, high_inclusive=False
    )
    check_number("patience", args.patience, low=0, integer=True)
    check_number("warmup", args.warmup, low=0)
    check_choice("schedule", args.schedule, SCHEDULES)
    cache = args.cache_features
    if not (isinstance(cache, bool) or cache == "auto"):
        raise ValueError(
            "`cache_features` must be 'auto', True or False. "
            f"Received: cache_features={cache!r}."
        )
    check_number("verbose", args.verbose, low=0, high=2, integer=True)
    _check_class_weight_type(args.class_weight)
    monitor = args.monitor
    if not isinstance(monitor, str):
        raise TypeError(
            "`monitor` must be a metric name such as 'val_loss'. "
            f"Received: monitor={monitor!r}."
        )
    if args.seed is not None:
        check_number("seed", args.seed, low=0, integer=True)
    if monitor.startswith("val_") and not args.has_validation:
        raise ValueError(
            f"`monitor={monitor!r}` needs `validation_data`. Pass a validation dataset "
            "or monitor a training metric such as monitor='loss'."
        )
    if args.reduce_lr_on_plateau and args.schedule != "constant":
        raise ValueError(
            "`reduce_lr_on_plateau=True` fights a decaying schedule. Use "
            f"schedule='constant' with it. Received: schedule={args.schedule!r}."
        )


def check_callbacks(callbacks):
    """`callbacks` is a list or tuple of Keras callbacks."""
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, keras.callbacks.Callback) for c in callbacks
    ):
        raise TypeError(
            "`callbacks` must be a list of keras.callbacks.Callback. "
            f"Received: callbacks={callbacks!r}."
        )


def _check_class_weight_type(class_weight):
    if isinstance(class_weight, str):
        check_choice("class_weight", class_weight, ("balanced",))
    elif class_weight is not None and not isinstance(class_weight, dict):
        raise TypeError(
            "`class_weight` must be None, 'balanced' or a {class: weight} dict. "
            f"Received: class_weight={class_weight!r}."
        )


def check_data(model, train, validation_data, args, stages, unfreeze):
    """Checks the model, the stage plan and a first batch of each dataset.

    Args:
        model: the compiled model.
        train: the training dataset.
        validation_data: the validation dataset or `None`.
        args: the resolved `FineTuneArguments`.
        stages: the planned stages.
        unfreeze: the `unfreeze` argument (for messages).

    Raises:
        TypeError, ValueError: before any training.
    """
    _check_stages(model, stages, unfreeze)
    require_compiled(model)
    _check_monitor(model, args.monitor, validation_data is not None)
    if isinstance(args.class_weight, dict):
        _check_class_weight(args.class_weight, model)
    _check_batch(model, _first_batch(train, "train"), "train")
    if validation_data is not None:
        _check_batch(
            model, _first_batch(validation_data, "validation_data"), "validation_data"
        )


def _num_outputs(model):
    outputs = getattr(model, "outputs", None)
    return outputs[0].shape[-1] if outputs else None


def _loss_name(model):
    """The compiled loss's class or function name, lower case ('' if unknown)."""
    loss = (model.get_compile_config() or {}).get("loss")
    if isinstance(loss, dict):
        loss = loss.get("class_name") if "class_name" in loss else None
        if loss == "function":
            loss = None
    return loss.lower() if isinstance(loss, str) else ""


def check_labels(model, labels, name="train"):
    """Labels that the model's outputs or loss cannot take get a clear error."""
    outputs = _num_outputs(model)
    labels = np.asarray(labels)
    if outputs is None or labels.size == 0:
        return
    if labels.dtype.kind in "OSU":
        raise TypeError(
            f"The labels of `{name}` are strings (e.g. {labels.reshape(-1)[0]!r}); "
            "the model needs integer class indices. Map them with "
            "`kft.data` loaders or a StringLookup. "
            f"Received: labels of dtype {labels.dtype}."
        )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(
            f"The labels of `{name}` contain NaN or inf "
            f"({int((~np.isfinite(labels)).sum())} in the first batch). Drop or fix "
            "those examples before training."
        )
    loss = _loss_name(model)
    one_hot = labels.ndim == 2 and labels.shape[-1] > 1
    if one_hot and "sparse" in loss:
        raise ValueError(
            f"The labels of `{name}` are one-hot (shape {labels.shape}) but the "
            "model's loss, sparse categorical cross-entropy, takes integer class "
            "indices. Use integer labels (label_mode='int' when loading, or "
            "`tf.argmax(y, axis=-1)`), or compile with "
            "keras.losses.CategoricalCrossentropy."
        )
    if not one_hot and outputs > 1 and "categorical" in loss and "sparse" not in loss:
        raise ValueError(
            f"The labels of `{name}` are integer class indices (shape "
            f"{labels.shape}) but the model's loss, categorical cross-entropy, "
            "takes one-hot labels. Use one-hot labels (label_mode='categorical') "
            "or compile with keras.losses.SparseCategoricalCrossentropy."
        )
    if one_hot:  # or multi-hot
        if labels.shape[-1] != outputs:
            raise ValueError(
                f"The labels of `{name}` have {labels.shape[-1]} columns but the "
                f"model has {outputs} outputs. Build the model with "
                f"num_classes={labels.shape[-1]}."
            )
        return
    if labels.min() < 0:
        raise ValueError(
            f"The labels of `{name}` must be class indices >= 0. Received: a label "
            f"of {labels.min()!r}. Map the classes to 0..{max(outputs, 2) - 1}."
        )
    if outputs > 1 and int(labels.max()) >= outputs:
        raise ValueError(
            f"The model has {outputs} outputs (num_classes={outputs}) but the "
            f"labels go up to {int(labels.max())}. Build it with "
            f"num_classes={int(labels.max()) + 1}, or check the labels "
            "(`data.class_names`)."
        )


def _read_errors():
    """What reading a dataset's first batch may raise."""
    tf = sys.modules.get("tensorflow")
    errors = (ValueError, TypeError, IndexError)
    op_error = getattr(getattr(tf, "errors", None), "OpError", None)
    return errors + (op_error,) if op_error is not None else errors


def _first_batch(dataset, name):
    """The first element of `dataset` as NumPy, or a clear error when it has none."""
    try:
        element = first_batch(dataset)
    except _read_errors() as e:
        raise ValueError(
            f"`{name}` could not be read: {str(e).splitlines()[0]}. "
            "Check the dataset's pipeline (e.g. iterate it once by hand)."
        ) from e
    if element is None:
        raise ValueError(
            f"`{name}` is empty: it yields no batches, so there is nothing to "
            f"{'train on' if name == 'train' else 'validate on'}. Check the "
            f"dataset (e.g. a filter() that drops everything, take(0)). "
            f"Received: {name} with {num_batches(dataset) or 0} batches."
        )
    if not isinstance(element, (tuple, list)) or len(element) not in (2, 3):
        raise ValueError(
            f"`{name}` must yield (inputs, labels) pairs. Received: elements of "
            f"{_describe(element)}. Map it, e.g. "
            "`dataset.map(lambda x, y: (x, y))`, or zip inputs with labels."
        )
    return element


def _describe(element):
    if isinstance(element, dict):
        return {k: _describe(v) for k, v in element.items()}
    if isinstance(element, (tuple, list)):
        return type(element)(_describe(v) for v in element)
    if hasattr(element, "shape") and hasattr(element, "dtype"):
        return f"{_dtype_name(element.dtype)}{list(element.shape)}"
    return type(element).__name__


def _dtype_name(dtype):
    return "string" if dtype.kind in "OSU" else dtype.name


def _check_batch(model, batch, name):
    """Checks a peeked `(inputs, labels)` batch against the model, before training."""
    x, y = batch[0], batch[1]
    if getattr(model, "preprocessor", None) is None and len(model.inputs) == 1:
        _check_inputs(model.inputs[0], x, name)
    check_labels(model, np.asarray(y), name)


def _check_inputs(model_input, x, name):
    if not isinstance(x, np.ndarray):
        return
    expected = tuple(model_input.shape)
    if x.dtype.kind in "OSU" and model_input.dtype != "string":
        raise TypeError(
            f"`{name}` gives strings (e.g. file paths or texts) but the model takes "
            f"{model_input.dtype} tensors of shape {expected}. Load images with "
            "kft.data.load_images, or build a text model with "
            "kft.build_text_classifier. Received: inputs of dtype string."
        )
    shape = tuple(x.shape)
    if len(shape) == len(expected) - 1 and _fits(shape, expected[1:]):
        raise ValueError(
            f"`{name}` is not batched: its elements have shape {shape}, the model "
            f"takes batches of shape {expected}. Batch it, e.g. `{name}.batch(32)`."
        )
    if len(shape) == len(expected) and not _fits(shape[1:], expected[1:]):
        raise ValueError(
            f"`{name}` gives inputs of shape {shape} but the model takes "
            f"{expected}. Resize the data (image_size= when loading images) or "
            f"build the model with input_shape={shape[1:]}."
        )


def _fits(shape, expected):
    return len(shape) == len(expected) and all(
        e is None or s is None or s == e for s, e in zip(shape, expected, strict=True)
    )


def _check_class_weight(class_weight, model):
    """`class_weight` dict: integer class keys in range, finite weights >= 0."""
    outputs = _num_outputs(model) or 0
    top = max(outputs, 2) - 1
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(
                f"`class_weight` keys must be integer class indices 0..{top}. "
                f"Received: class_weight={class_weight!r}. Use the index of each "
                "class name in `data.class_names`, e.g. "
                "{data.class_names.index('cat'): 2.0}."
            )
        if not 0 <= key <= top:
            raise ValueError(
                f"`class_weight` keys must be integer class indices 0..{top} (the "
                f"model has {max(outputs, 2)} classes). Received: "
                f"class_weight={class_weight!r}."
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(
                "`class_weight` values must be finite numbers >= 0. Received: "
                f"class_weight={class_weight!r}."
            )


def _check_stages(model, stages, unfreeze_arg):
    """Every unfreezing stage fits the backbone, checked before any training."""
    tops = [s.top for s in stages if getattr(s, "top", None) is not None]
    if not tops:
        return
    backbone = freezing.get_backbone(model)
    if backbone is model:
        raise ValueError(
            "`unfreeze` needs a marked backbone, but `model` has none: kft.fine_tune "
            "looks for a nested layer named 'backbone' (or a `.backbone` "
            "attribute). Build the model with kft.build_image_classifier / "
            "kft.build_text_classifier, or name your backbone 'backbone'. "
            f"Received: unfreeze={unfreeze_arg!r}."
        )
    num_units = len(freezing.backbone_units(backbone).units)
    for top in tops:
        if top != "all" and top > num_units:
            raise ValueError(
                f"`unfreeze` asks for the top {top} units, but the backbone has "
                f"{num_units}: use 1..{num_units} or 'all'. Received: "
                f"unfreeze={unfreeze_arg!r}. Use `kft.describe_layers(model)` to "
                "choose N."
            )


def _metric_names(model):
    """Names `fit` logs for the compiled loss and metrics, or `None` if unsure."""
    config = model.get_compile_config() or {}
    loss = config.get("loss")
    if isinstance(loss, (list, tuple)) or (
        isinstance(loss, dict) and "class_name" not in loss
    ):
        return None  # one loss per output: per-output names
    names = ["loss"]
    for key in ("metrics", "weighted_metrics"):
        metrics = config.get(key)
        if metrics is None:
            continue
        if not isinstance(metrics, (list, tuple)):
            return None
        for metric in metrics:
            if isinstance(metric, dict):
                inner = metric.get("config")
                metric = inner.get("name") if isinstance(inner, dict) else inner
            if not isinstance(metric, str):
                return None
            names.append(metric)
    return names


def _check_monitor(model, monitor, has_validation):
    """`monitor` is a metric the compiled model logs, checked before any epoch."""
    names = _metric_names(model)
    if names is None:
        return
    available = names + ([f"val_{n}" for n in names] if has_validation else [])
    if monitor in available:
        return
    close = difflib.get_close_matches(monitor, available, n=1, cutoff=0.5)
    raise ValueError(
        f"`monitor` must be a metric the model logs: {', '.join(map(repr, available))}. "
        f"Received: monitor={monitor!r}."
        + (f" Did you mean {close[0]!r}?" if close else "")
        + " Metrics come from model.compile(metrics=[...])."
    )
