"""Label smoothing: the loss class and the one place a compiled loss gets it."""

import keras
import numpy as np
import pytest
from _model_checks import run_serialization_test
from _tiny import tiny_data
from _training_models import tiny_classifier

import kerastune_ft as kft
from kerastune_ft.training.losses import (
    SparseCategoricalCrossentropyWithSmoothing,
    smoothed_loss,
)


def test_smoothing_matches_categorical_crossentropy_on_one_hot_labels():
    y = np.array([0, 2, 1])
    logits = np.random.default_rng(0).normal(size=(3, 3)).astype("float32")
    loss = SparseCategoricalCrossentropyWithSmoothing(
        from_logits=True, label_smoothing=0.2
    )
    reference = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.2
    )
    assert float(loss(y, logits)) == pytest.approx(
        float(reference(np.eye(3)[y], logits)), rel=1e-5
    )


def test_loss_serializes(tmp_path):
    loss = SparseCategoricalCrossentropyWithSmoothing(
        from_logits=True, label_smoothing=0.1
    )
    sample = np.random.default_rng(0).normal(size=(4, 2)).astype("float32")
    restored = run_serialization_test(loss, sample=sample, tmp_path=tmp_path)
    assert (restored.from_logits, restored.label_smoothing) == (True, 0.1)


def test_smoothed_loss_keeps_from_logits_and_refuses_other_losses():
    sparse = smoothed_loss(keras.losses.SparseCategoricalCrossentropy(True), 0.1)
    assert isinstance(sparse, SparseCategoricalCrossentropyWithSmoothing)
    assert sparse.from_logits and sparse.label_smoothing == 0.1
    binary = smoothed_loss("binary_crossentropy", 0.2)
    assert binary.get_config()["label_smoothing"] == 0.2
    assert smoothed_loss("mse", 0.0) is not None
    with pytest.raises(ValueError, match="Received: label_smoothing=0.1"):
        smoothed_loss("mse", 0.1)


def test_label_smoothing_with_a_loss_given_by_name():
    model = tiny_classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = kft.fine_tune(
        model, tiny_data(), tiny_data(), epochs=1, label_smoothing=0.1, verbose=0
    )
    assert result.epochs_run == 1
    assert isinstance(model.loss, SparseCategoricalCrossentropyWithSmoothing)
