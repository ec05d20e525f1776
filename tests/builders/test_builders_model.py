"""The one answer to "logits?", "which layers are random?", "text model?"."""

import keras
import pytest
from _model_checks import run_serialization_test
from _tiny import tiny_bert_backbone, tiny_bert_preprocessor, tiny_model

import kerastune_ft as kft
from kerastune_ft.builders import (
    MacroScore,
    is_text_model,
    outputs_logits,
    random_layers,
)


def _plain(activation=None, loss=None):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation=activation)]
    )
    if loss is not None:
        model.compile(loss=loss)
    return model


@pytest.mark.parametrize(
    "make, expected",
    [
        (_plain, True),  # a linear last layer, not compiled
        (lambda: _plain("softmax"), False),
        (lambda: _plain(loss="sparse_categorical_crossentropy"), False),
        (
            lambda: _plain(
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            ),
            True,
        ),
        (lambda: _plain("softmax", keras.losses.CategoricalCrossentropy()), False),
        (tiny_model, True),
    ],
)
def test_outputs_logits_of_plain_models(make, expected):
    assert outputs_logits(make()) is expected


def test_outputs_logits_follows_the_attribute():
    model = _plain("softmax")
    model.from_logits = True  # a transfer classifier's declaration wins
    assert outputs_logits(model) is True


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="text models need the TensorFlow backend (tensorflow-text)",
)
def test_random_layers_of_a_text_model_are_the_encoder_dropouts():
    model = kft.build_text_classifier(
        tiny_bert_backbone(1),
        2,
        preprocessor=tiny_bert_preprocessor(),
        sequence_length=16,
        compile=False,
    )
    layers = random_layers(model)
    assert layers and all(isinstance(la, keras.layers.Dropout) for la in layers)
    assert is_text_model(model) and kft.freezing.is_text_model(model)
    assert not is_text_model(tiny_model())


def test_macro_score_direction_lets_keras_auto_mode_monitor_it(tmp_path):
    import numpy as np

    metric = MacroScore("f1", num_classes=2)
    assert metric.direction == "up"
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.arange(8) % 2
    run_serialization_test(metric, sample=x, tmp_path=tmp_path)
    model = _plain("softmax")
    model.compile(loss="sparse_categorical_crossentropy", metrics=[metric])
    stop = keras.callbacks.EarlyStopping(monitor="val_f1", mode="auto", patience=0)
    model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0, callbacks=[stop])
    assert stop.monitor_op is not None
