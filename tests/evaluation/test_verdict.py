"""The verdict rules of kft.diagnose (`kerastune_ft.evaluation.verdict`).

Synthetic histories, one per verdict, plus the edge cases (1 epoch, no
validation, NaN, a diverged run, a maximized monitor).
"""

import json
import math

import pytest
from _histories import (
    FITS_WELL,
    OVERFIT,
    STILL_IMPROVING,
    UNDERFIT_FLAT,
    UNDERFIT_LOW_ACC,
)

import kerastune_ft as kft
from kerastune_ft.evaluation import verdict as rules


@pytest.mark.parametrize(
    "history, verdict, words",
    [
        (
            OVERFIT,
            "overfitting",
            ["overfitting from epoch 7", "rose 29% over 4 epochs"],
        ),
        (UNDERFIT_FLAT, "underfitting", ["train_loss fell only 3% in 5 epochs"]),
        (UNDERFIT_LOW_ACC, "underfitting", ["train accuracy ended at 0.610"]),
        (STILL_IMPROVING, "still_improving", ["still improving when stopped"]),
        (FITS_WELL, "fits_well", ["fits well", "best 0.325 at epoch 5"]),
    ],
)
def test_verdict_per_synthetic_history(history, verdict, words):
    d = kft.diagnose(history)
    assert d.verdict == verdict, d.message
    for word in words:
        assert word in d.message, d.message
    assert d.suggestions
    assert (d.overfit_epoch is not None) == (verdict == "overfitting")


def test_overfitting_message_carries_the_evidence():
    d = kft.diagnose(OVERFIT)
    assert d.overfit_epoch == 7 and d.best_epoch == 6
    # val_loss 0.42 -> 0.54 (+29%), train_loss 0.22 -> 0.10 (-55%).
    assert "0.420 at epoch 6 -> 0.540 at epoch 10" in d.message
    assert "train_loss fell 55%" in d.message
    assert "train accuracy is 0.990 vs val 0.770" in d.message
    # A plain history cannot say whether the best weights were restored.
    assert "the best epoch was 6" in d.message
    assert any("best at epoch 6" in s for s in d.suggestions)


def test_thresholds_are_the_documented_constants(monkeypatch):
    # val_loss ends 9% above its minimum: below OVERFIT_MIN_RISE (10%).
    history = {
        "loss": [1.0, 0.6, 0.5, 0.4, 0.35],
        "val_loss": [1.0, 0.6, 0.55, 0.58, 0.5995],
    }
    assert kft.diagnose(history).verdict != "overfitting"
    found = rules.find_overfitting(history["loss"], history["val_loss"], min_rise=0.05)
    assert found.best == 3 and math.isclose(found.rise, 0.09, abs_tol=1e-9)
    # The rules read the module constant when they run: lowering it changes
    # the verdict of the same history.
    monkeypatch.setattr(rules, "OVERFIT_MIN_RISE", 0.05)
    assert kft.diagnose(history).verdict == "overfitting"


def test_one_rising_epoch_is_not_a_trend():
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.0, 0.6, 0.9]}
    assert kft.diagnose(history).verdict != "overfitting"


def test_val_and_train_both_rising_is_not_overfitting():
    history = {"loss": [1.0, 0.5, 0.6, 0.8], "val_loss": [1.0, 0.5, 0.7, 0.9]}
    assert kft.diagnose(history).verdict != "overfitting"


def test_one_epoch():
    d = kft.diagnose({"loss": [0.7], "val_loss": [0.6], "accuracy": [0.5]})
    assert d.verdict == "still_improving"
    assert "only 1 usable epoch" in d.message
    assert d.best_epoch == 1 and len(d.epochs) == 1


def test_no_validation_metrics():
    d = kft.diagnose({"loss": [1.0, 0.5, 0.3, 0.3, 0.3, 0.3], "accuracy": [0.9] * 6})
    assert d.monitor == "loss"
    assert d.verdict == "fits_well"
    assert "no validation metrics" in d.message
    assert "gap_loss" not in d.epochs[0]


def test_nan_loss_is_reported_and_skipped():
    history = {
        "loss": [1.0, 0.6, 0.4, 0.3, float("nan")],
        "val_loss": [1.0, 0.7, 0.5, 0.45, float("nan")],
    }
    d = kft.diagnose(history)
    assert "NaN or missing at epoch(s) 5" in d.message
    assert d.epochs[4]["loss"] is None
    assert "NaN at epoch 5" in d.suggestions[0]
    json.dumps(d.to_dict())  # NaN becomes null, so this is strict JSON


def test_all_nan_is_diverged():
    d = kft.diagnose({"loss": [float("nan")] * 3, "val_loss": [float("nan")] * 3})
    assert d.verdict == "diverged"
    assert d.message.startswith("training diverged: the training loss became NaN")
    assert "do not use the last weights" in d.message


def test_a_diverged_fine_tune_result_says_so():
    result = kft.FineTuneResult(
        model=None,
        history={"loss": [1.0, 0.5, float("nan")], "val_loss": [1.0, 0.6, 0.9]},
        stages=[],
        best_epoch=2,
        best_metrics={"loss": 0.5, "val_loss": 0.6},
        monitor="val_loss",
        restored_best=True,
        diverged=True,
    )
    d = kft.diagnose(result)
    assert d.verdict == "diverged" and d.evidence["diverged_epoch"] == 3
    assert "weights of epoch 2, the best before, were restored" in d.message
    assert "NaN at epoch 3" in d.suggestions[0]


def test_monitor_for_a_maximized_metric():
    d = kft.diagnose(OVERFIT, monitor="val_accuracy")
    assert d.monitor == "val_accuracy"
    assert d.best_epoch == 5  # first epoch with the highest val_accuracy (0.80)
    assert d.verdict == "overfitting" and d.overfit_epoch == 7
