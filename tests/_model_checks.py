"""Shared model checks, used by both builders and every custom layer/metric.

- `run_builder_test`: build -> output shape -> one fit step -> trainable
  counts -> non-trainable weights unchanged -> `.keras` round trip with
  `safe_mode=True` (same predictions, same trainable flags).
- `run_serialization_test`: `get_config` -> `from_config` -> same config,
  and for layers / metrics / losses a `.keras` round trip inside a model.
- `check_contract`: the transfer classifier attributes of
  `docs/architecture.md` are the model's real parts.

Generic on purpose: `x` may be an array, a list of strings or a dict of
arrays (text models), `y` any label array `model.fit` accepts.
"""

import copy

import keras
import numpy as np

from kerastune_ft.freezing import count_params


def predict(model, x):
    """Inference-mode outputs as NumPy. A direct call skips `predict`'s
    graph tracing, which dominates the run time of tiny test batches."""
    if isinstance(x, list | tuple) and x and isinstance(x[0], str):
        return model.predict(x, verbose=0)
    return keras.ops.convert_to_numpy(model(x, training=False))


def _trainable_flags(model):
    # InputLayer's flag is not serialized and means nothing.
    return [
        (layer.name, bool(layer.trainable))
        for layer in getattr(model, "backbone", model).layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]


def run_builder_test(
    model,
    x,
    y,
    *,
    num_outputs,
    tmp_path,
    expected_trainable_params=None,
    run_eagerly=True,
    check_frozen=True,
    atol=1e-5,
):
    """Runs the shared builder contract on a compiled model.

    Args:
        model: a compiled `keras.Model` (usually a transfer classifier).
        x: inputs for a few samples.
        y: labels for the same samples.
        num_outputs: expected size of the last output axis.
        tmp_path: pytest's `tmp_path`, where the `.keras` file goes.
        expected_trainable_params: if given, the exact number of trainable
            scalars.
        run_eagerly: run the fit step eagerly. Tracing the gradient of a
            large unfrozen backbone takes far longer than one eager step on
            CPU; the numbers are the same. Defaults to `True`.
        check_frozen: assert that non-trainable weights (frozen layers,
            BatchNormalization statistics) do not change during the fit
            step. Defaults to `True`.
        atol: tolerance for predictions after reload. Defaults to `1e-5`.

    Returns:
        The reloaded model.
    """
    num_samples = len(y)
    predictions = predict(model, x)
    assert predictions.shape == (num_samples, num_outputs)
    assert np.all(np.isfinite(predictions))

    trainable = count_params(model.trainable_weights)
    non_trainable = count_params(model.non_trainable_weights)
    if expected_trainable_params is not None:
        assert trainable == expected_trainable_params

    model.run_eagerly = run_eagerly
    frozen_before = [
        keras.ops.convert_to_numpy(w).copy() for w in model.non_trainable_weights
    ]
    history = model.fit(x, y, epochs=1, batch_size=num_samples, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if check_frozen:
        for before, after in zip(
            frozen_before, model.non_trainable_weights, strict=True
        ):
            # Frozen weights (and BatchNormalization statistics) must not move.
            np.testing.assert_array_equal(before, keras.ops.convert_to_numpy(after))

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    assert type(reloaded) is type(model)
    np.testing.assert_allclose(predict(reloaded, x), predict(model, x), atol=atol)
    assert count_params(reloaded.trainable_weights) == trainable
    assert count_params(reloaded.non_trainable_weights) == non_trainable
    assert _trainable_flags(reloaded) == _trainable_flags(model)
    return reloaded


# Kept under its old name for tests written before `run_builder_test`.
check_classifier = run_builder_test


def _model_around(obj, sample):
    """A tiny compiled model that uses `obj` (a layer, metric or loss)."""
    if isinstance(obj, keras.layers.Layer):
        inputs = keras.Input(sample.shape[1:])
        model = keras.Model(inputs, obj(inputs))
        model.compile(loss="mse")
        return model
    inputs = keras.Input(sample.shape[1:])
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    if isinstance(obj, keras.metrics.Metric):
        model.compile(loss="sparse_categorical_crossentropy", metrics=[obj])
    else:
        model.compile(loss=obj)
    return model


def run_serialization_test(obj, *, sample=None, tmp_path=None):
    """`get_config` -> `from_config` -> the same config; then a `.keras` trip.

    Args:
        obj: a Keras layer, metric, loss or model of ours.
        sample: an input batch for a layer (or a 2-feature batch for a
            metric / loss); with `tmp_path`, a model using `obj` is saved to
            `.keras` and reloaded with `safe_mode=True`, and its outputs
            and config must not change. Defaults to `None` (config only).
        tmp_path: pytest's `tmp_path`. Defaults to `None`.

    Returns:
        The object rebuilt from its config.
    """
    config = obj.get_config()
    rebuilt = type(obj).from_config(copy.deepcopy(config))
    assert type(rebuilt) is type(obj)
    assert rebuilt.get_config() == config
    if sample is None or tmp_path is None:
        return rebuilt
    model = _model_around(obj, sample)
    path = tmp_path / f"{type(obj).__name__}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        predict(reloaded, sample), predict(model, sample), atol=1e-6
    )
    if isinstance(obj, keras.layers.Layer):
        inner = reloaded.layers[-1]
        assert type(inner) is type(obj) and inner.get_config() == config
    return rebuilt


def check_contract(model, x):
    """The transfer classifier attributes are the model's real parts.

    - `model.head` is a `keras.Sequential` ending in a Dense named
      `"predictions"`, and `model.feature_extractor()(x)` fed to it gives
      `model(x)` in inference;
    - with a frozen backbone, the head holds every trainable weight;
    - `freeze` / `unfreeze` change what trains and return unit counts.

    Args:
        model: a transfer classifier, backbone frozen.
        x: a batch of the model's inputs (preprocessed for text).
    """
    assert isinstance(model.head, keras.Sequential)
    assert model.head.layers[-1].name == "predictions"
    assert isinstance(model.backbone, keras.Model)
    assert model.backbone.name and model.pooling is not None
    assert model.from_logits in (True, False)
    assert model.label_mode in ("int", "categorical")
    assert isinstance(model.multi_label, bool) and model.num_classes >= 1
    features = model.feature_extractor()(x, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.head(features, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        atol=1e-5,
    )
    if not model.backbone.trainable_weights:
        head_ids = {id(w) for w in model.head.trainable_weights}
        assert {id(w) for w in model.trainable_weights} == head_ids
