"""Learning-rate schedules: the rate at step 0, at the end of warmup, at the end."""

import keras
import pytest
from _model_checks import run_serialization_test
from _tiny import tiny_data
from _training_models import tiny_classifier

import kerastune_ft as kft
from kerastune_ft.training.schedules import (
    SCHEDULES,
    WarmupLinear,
    make_schedule,
    peak_learning_rate,
)


def _rate(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_warmup_then_decay(kind):
    # 100 steps, 10% warmup: 0 at step 0, the peak at step 10, ~0 at the end.
    schedule = make_schedule(kind, 1e-3, 0.1, 100)
    assert _rate(schedule, 0) == pytest.approx(0.0, abs=1e-12)
    assert _rate(schedule, 5) == pytest.approx(5e-4, rel=1e-5)
    assert _rate(schedule, 10) == pytest.approx(1e-3, rel=1e-5)
    assert 0 < _rate(schedule, 55) < 1e-3
    assert _rate(schedule, 100) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_no_warmup_starts_at_the_peak_and_warmup_in_steps(kind):
    schedule = make_schedule(kind, 1e-3, 0, 50)
    assert _rate(schedule, 0) == pytest.approx(1e-3, rel=1e-5)
    assert _rate(schedule, 50) == pytest.approx(0.0, abs=1e-9)
    stepped = make_schedule(kind, 1e-3, 20, 100)  # warmup >= 1: steps
    assert _rate(stepped, 20) == pytest.approx(1e-3, rel=1e-5)


def test_constant_and_unknown_length_are_constant():
    assert make_schedule("constant", 1e-3, 0.1, 100) == 1e-3
    assert make_schedule("cosine", 1e-3, 0.1, None) == 1e-3
    assert SCHEDULES == ("cosine", "linear", "constant")


def test_fine_tune_runs_the_schedule_over_the_stage():
    # 48 examples in batches of 16, 4 epochs: 12 steps, warmup 3 steps.
    model = tiny_classifier()
    kft.fine_tune(
        model,
        tiny_data(),
        tiny_data(seed=1),
        epochs=4,
        learning_rate=1e-2,
        warmup=3,
        early_stopping=False,
        verbose=0,
    )
    assert peak_learning_rate(model.optimizer, None) == pytest.approx(1e-2)
    # The head trained on cached features: 12 steps, at the end of its decay.
    assert int(model.head.optimizer.iterations) == 12
    assert float(model.head.optimizer.learning_rate) == pytest.approx(0, abs=1e-9)


def test_warmup_linear_serializes():
    schedule = WarmupLinear(1e-3, warmup_steps=10, decay_steps=90)
    restored = run_serialization_test(schedule)
    config = keras.saving.serialize_keras_object(schedule)
    for step in (0, 10, 100):
        assert float(restored(step)) == pytest.approx(float(schedule(step)))
    # The name models saved before the training package used still loads.
    old = dict(config, registered_name="kerastune_ft>_WarmupLinear")
    assert isinstance(keras.saving.deserialize_keras_object(old), WarmupLinear)
