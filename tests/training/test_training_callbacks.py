"""The best-epoch tracker and the metric direction (Keras' `mode="auto"`)."""

import keras
import numpy as np

from kerastune_ft.training.callbacks import BestWeights, monitor_mode


def _model(metrics):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=metrics)
    return model


class _Direction(keras.metrics.Mean):
    direction = "down"  # a custom metric says which way is better


def test_monitor_mode_reads_each_metrics_direction():
    model = _model(
        [
            "accuracy",
            keras.metrics.AUC(name="auc"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ]
    )
    assert monitor_mode(model, "loss") == "min"
    assert monitor_mode(model, "val_loss") == "min"
    assert monitor_mode(model, "val_accuracy") == "max"
    assert monitor_mode(model, "val_auc") == "max"
    assert monitor_mode(model, "val_mae") == "min"
    # Names the compiled metrics do not know: accuracy-like ones are maximized.
    assert monitor_mode(model, "val_f1") == "max"


def test_best_weights_keeps_the_best_finite_epoch_and_stops():
    model = _model([])
    tracker = BestWeights(model, "val_loss", "min", patience=2)
    tracker.set_model(model)
    tracker.on_train_begin()
    first = [w.copy() for w in model.get_weights()]
    tracker.on_epoch_end(0, {"loss": 1.0, "val_loss": 0.5})
    model.set_weights([w + 1 for w in first])
    tracker.on_epoch_end(1, {"loss": 1.0, "val_loss": float("nan")})
    tracker.on_epoch_end(2, {"loss": 1.0, "val_loss": 0.7})
    assert tracker.state.epoch == 1 and tracker.state.stopped
    tracker.on_train_end()
    for a, b in zip(model.get_weights(), first, strict=True):
        np.testing.assert_array_equal(a, b)
