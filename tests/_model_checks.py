"""One shared check for every builder: build -> output shape -> one fit step
-> trainable counts -> `.keras` reload with `safe_mode=True`.

Generic on purpose: `x` may be an array or a dict of arrays (text models),
`y` any label array `model.fit` accepts.
"""

import math

import keras
import numpy as np


def predict(model, x):
    """Inference-mode outputs as NumPy. A direct call skips `predict`'s
    graph tracing, which dominates the run time of tiny test batches."""
    return keras.ops.convert_to_numpy(model(x, training=False))


def count_params(weights):
    """Number of scalars in a list of weights."""
    return int(sum(math.prod(w.shape) for w in weights))


def check_classifier(
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
        model: a compiled `keras.Model`.
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
    np.testing.assert_allclose(predict(reloaded, x), predict(model, x), atol=atol)
    assert count_params(reloaded.trainable_weights) == trainable
    assert count_params(reloaded.non_trainable_weights) == non_trainable
    return reloaded
