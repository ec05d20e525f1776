"""kft.evaluation.OverfittingMonitor: the overfitting rule during fit (`evaluation.monitor`)."""

import math
import warnings

import keras
import numpy as np
import pytest
from _histories import (
    FITS_WELL,
    OVERFIT,
)
from _model_checks import run_serialization_test
from _tiny import tiny_model

import kerastune_ft as kft


def _feed(monitor, history):
    monitor.on_train_begin()
    logs_seen = []
    for i in range(len(history["loss"])):
        logs = {k: v[i] for k, v in history.items()}
        monitor.on_epoch_end(i, logs)
        logs_seen.append(logs)
    return logs_seen


def test_monitor_warns_once_and_logs_the_gap():
    monitor = kft.evaluation.OverfittingMonitor()
    with pytest.warns(
        kft.KerasTuneFTWarning, match="Overfitting from epoch 7"
    ) as caught:
        logs = _feed(monitor, OVERFIT)
    assert len([w for w in caught if "Overfitting" in str(w.message)]) == 1
    assert monitor.overfit_epoch == 7
    assert math.isclose(logs[-1]["gap_loss"], 0.44)
    assert math.isclose(logs[-1]["gap_accuracy"], 0.22)
    # It warns at epoch 8 (two epochs after the minimum, 19% above it).
    assert "val_loss rose 19%" in str(caught[0].message)


def test_monitor_resets_on_train_begin():
    monitor = kft.evaluation.OverfittingMonitor()
    with pytest.warns(kft.KerasTuneFTWarning):
        _feed(monitor, OVERFIT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _feed(monitor, FITS_WELL)  # no warning: state was reset
    assert monitor.overfit_epoch is None
    with pytest.warns(kft.KerasTuneFTWarning):
        _feed(monitor, OVERFIT)  # and it warns again in a new fit


def test_monitor_verbose_prints(capsys):
    with pytest.warns(kft.KerasTuneFTWarning):
        _feed(kft.evaluation.OverfittingMonitor(verbose=1), OVERFIT)
    out = capsys.readouterr().out
    assert "epoch 1: gap_loss=-0.1000" in out
    _feed(kft.evaluation.OverfittingMonitor(), FITS_WELL)
    assert capsys.readouterr().out == ""


def test_monitor_in_fit_adds_gap_to_history():
    model = tiny_model()
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 3
    history = model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        verbose=0,
        callbacks=[kft.evaluation.OverfittingMonitor()],
    )
    gaps = history.history["gap_loss"]
    expected = np.array(history.history["val_loss"]) - np.array(history.history["loss"])
    np.testing.assert_allclose(gaps, expected, rtol=1e-6)
    assert "gap_accuracy" in history.history


def test_monitor_serializes():
    monitor = kft.evaluation.OverfittingMonitor(min_rise=0.2, min_epochs=3, verbose=1)
    rebuilt = run_serialization_test(monitor)
    assert rebuilt.get_config() == {"min_rise": 0.2, "min_epochs": 3, "verbose": 1}
    config = keras.saving.serialize_keras_object(monitor)
    assert config["registered_name"] == "kerastune_ft>OverfittingMonitor"
    again = keras.saving.deserialize_keras_object(config)
    assert again.get_config() == rebuilt.get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"min_rise": 0}, ValueError, "Received: min_rise=0"),
        ({"min_epochs": 0}, ValueError, "Received: min_epochs=0"),
        ({"min_epochs": 1.5}, TypeError, "Received: min_epochs=1.5"),
        ({"verbose": 3}, ValueError, "Received: verbose=3"),
    ],
)
def test_monitor_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kft.evaluation.OverfittingMonitor(**kwargs)
