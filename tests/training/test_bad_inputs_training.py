"""The bad-input table, training group: `kft.fine_tune` refuses before training.

Every row is refused before the first epoch (the harness would see files a
started run writes, and a row that trained would take seconds, not
milliseconds), with an error naming the argument the user wrote.
"""

import numpy as np
import pytest
import tensorflow as tf
from _bad_inputs import BadInput, check_bad_input
from _tiny import tiny_arrays, tiny_data, tiny_model

import kerastune_ft as kft


def _dataset(x, y, batch=16):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _fit(**kwargs):
    """A `call` that fine-tunes a tiny model on the context's data."""

    def call(context):
        arguments = {
            "train": context.get("train", tiny_data()),
            "validation_data": context.get("val", tiny_data(seed=1)),
            "epochs": 1,
            "verbose": 0,
            **kwargs,
        }
        model = context.get("model") or tiny_model()
        return kft.fine_tune(model, **arguments)

    return call


def _with(**context):
    return lambda tmp_path: dict(context)


def _one_hot(tmp_path):
    x, y = tiny_arrays()
    return {"train": _dataset(x, np.eye(3, dtype="float32")[y])}


def _labels(values):
    def setup(tmp_path):
        x, _ = tiny_arrays(n=16)
        return {"train": _dataset(x, np.asarray(values))}

    return setup


def _unbatched(tmp_path):
    x, y = tiny_arrays()
    return {"train": tf.data.Dataset.from_tensor_slices((x, y))}


def _images(size, name="train"):
    def setup(tmp_path):
        x = np.zeros((16, size, size, 3), "float32")
        return {name: _dataset(x, np.arange(16) % 3)}

    return setup


def _strings(tmp_path):
    paths = [f"img{i}.jpg" for i in range(16)]
    return {"train": _dataset(paths, np.arange(16) % 3)}


def _no_labels(tmp_path):
    x, _ = tiny_arrays()
    return {"train": tf.data.Dataset.from_tensor_slices(x).batch(16)}


def _a_file(tmp_path):
    path = tmp_path / "checkpoints"
    path.write_text("the user's notes")
    return {"ckpt": str(path)}


def _uncompiled(tmp_path):
    model = tiny_model()
    model.compiled = False
    model._compile_config = None
    return {"model": model}


ROWS = [
    BadInput(
        "empty_train_uncached",
        _with(train=tiny_data().take(0)),
        _fit(cache_features=False),
        ValueError,
        r"`train` is empty",
    ),
    BadInput(
        "empty_train_cached",
        _with(train=tiny_data().take(0)),
        _fit(),
        ValueError,
        r"`train` is empty",
    ),
    BadInput(
        "empty_validation",
        _with(val=tiny_data().take(0)),
        _fit(),
        ValueError,
        r"`validation_data` is empty",
    ),
    BadInput(
        "train_without_labels",
        _no_labels,
        _fit(),
        ValueError,
        r"`train` must yield \(inputs, labels\) pairs",
    ),
    BadInput(
        "unfreeze_beyond_backbone",
        _with(),
        _fit(unfreeze=999),
        ValueError,
        r"`unfreeze`.*has 3.*Received: unfreeze=999.*kft.describe_layers",
    ),
    BadInput(
        "unfreeze_list_beyond_backbone",
        _with(),
        _fit(unfreeze=[1, {"top": 50, "epochs": 1}]),
        ValueError,
        r"`unfreeze` asks for the top 50 units.*1\.\.3",
    ),
    BadInput(
        "monitor_misspelled",
        _with(),
        _fit(monitor="val_acc"),
        ValueError,
        r"`monitor`.*'val_accuracy'.*Received: monitor='val_acc'\. "
        r"Did you mean 'val_accuracy'\?",
    ),
    BadInput(
        "monitor_not_a_string",
        _with(),
        _fit(monitor=3),
        TypeError,
        r"`monitor`.*Received: monitor=3",
    ),
    BadInput(
        "one_hot_labels_sparse_loss",
        _one_hot,
        _fit(),
        ValueError,
        r"labels of `train` are one-hot.*integer labels",
    ),
    BadInput(
        "negative_labels",
        _labels(np.arange(16) % 3 - 1),
        _fit(),
        ValueError,
        r"labels of `train` must be class indices >= 0",
    ),
    BadInput(
        "labels_beyond_num_classes",
        _labels(np.arange(16) % 5),
        _fit(),
        ValueError,
        r"labels go up to 4.*num_classes=5",
    ),
    BadInput(
        "nan_labels",
        _labels(np.where(np.arange(16) == 3, np.nan, 1.0).astype("float32")),
        _fit(),
        ValueError,
        r"labels of `train` contain NaN",
    ),
    BadInput(
        "unbatched_dataset",
        _unbatched,
        _fit(),
        ValueError,
        r"`train` is not batched.*`train\.batch\(32\)`",
    ),
    BadInput(
        "wrong_image_size",
        _images(16),
        _fit(),
        ValueError,
        r"`train` gives inputs of shape \(16, 16, 16, 3\).*\(None, 8, 8, 3\)",
    ),
    BadInput(
        "wrong_validation_image_size",
        _images(4, name="val"),
        _fit(),
        ValueError,
        r"`validation_data` gives inputs of shape",
    ),
    BadInput(
        "strings_into_image_model",
        _strings,
        _fit(),
        TypeError,
        r"`train` gives strings",
    ),
    BadInput(
        "class_weight_string_keys",
        _with(),
        _fit(class_weight={"cat": 1.0}),
        TypeError,
        r"`class_weight` keys must be integer class indices 0\.\.2\. "
        r"Received: class_weight=\{'cat': 1\.0\}\.",
    ),
    BadInput(
        "class_weight_key_out_of_range",
        _with(),
        _fit(class_weight={0: 1.0, 7: 2.0}),
        ValueError,
        r"`class_weight` keys must be integer class indices 0\.\.2",
    ),
    BadInput(
        "class_weight_negative",
        _with(),
        _fit(class_weight={0: -1.0}),
        ValueError,
        r"`class_weight` values must be finite numbers >= 0",
    ),
    BadInput("epochs_zero", _with(), _fit(epochs=0), ValueError, r"Received: epochs=0"),
    BadInput(
        "epochs_float", _with(), _fit(epochs=2.5), TypeError, r"Received: epochs=2.5"
    ),
    BadInput(
        "patience_negative",
        _with(),
        _fit(patience=-1),
        ValueError,
        r"Received: patience=-1",
    ),
    BadInput(
        "schedule_unknown",
        _with(),
        _fit(schedule="cosin"),
        ValueError,
        r"Received: schedule='cosin'.*Did you mean 'cosine'",
    ),
    BadInput(
        "warmup_negative",
        _with(),
        _fit(warmup=-0.1),
        ValueError,
        r"Received: warmup=-0.1",
    ),
    BadInput(
        "learning_rate_zero",
        _with(),
        _fit(learning_rate=0.0),
        ValueError,
        r"Received: learning_rate=0.0",
    ),
    BadInput(
        "seed_not_an_int",
        _with(),
        _fit(seed="0"),
        TypeError,
        r"Received: seed='0'",
    ),
    BadInput(
        "callbacks_not_a_list",
        _with(),
        _fit(callbacks="EarlyStopping"),
        TypeError,
        r"`callbacks` must be a list.*Received: callbacks='EarlyStopping'",
    ),
    BadInput(
        "checkpoint_dir_is_a_file",
        _a_file,
        lambda context: _fit(checkpoint_dir=context["ckpt"])(context),
        ValueError,
        r"`checkpoint_dir` must be a folder, but it is an existing file",
    ),
    BadInput(
        "train_is_numpy",
        _with(train=np.zeros((4, 8, 8, 3))),
        _fit(),
        TypeError,
        r"`train` must be a tf.data.Dataset",
    ),
    BadInput(
        "model_not_compiled",
        _uncompiled,
        _fit(),
        ValueError,
        r"`model` must be compiled",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fine_tune_refuses_bad_input(row, tmp_path):
    check_bad_input(row, tmp_path)
