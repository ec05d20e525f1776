"""TuneResult tables, importance (Spearman, ties) and plots; memory numbers."""

import os

import keras_tuner
import pytest

from kerastune_ft import tuning
from kerastune_ft.tuning.importance import association


def _result(rows, direction="min"):
    return tuning.TuneResult(
        best_hyperparameters=keras_tuner.HyperParameters(),
        best_model=None,
        best_model_source="restored",
        trials=rows,
        objective="val_loss",
        direction=direction,
    )


def test_trials_plot_and_importance():
    # A TuneResult from hand-made rows: the plot needs no training.
    rows = [
        {
            "trial_id": str(i),
            "status": "COMPLETED",
            "dropout": d,
            "learning_rate": lr,
            "augmentation": aug,
            "objective": 1.0 - lr * 50,
            "epochs": 3,
            "seconds": 1.0,
        }
        for i, (d, lr, aug) in enumerate(
            [
                (0.1, 1e-3, "none"),
                (0.4, 5e-3, "light"),
                (0.2, 1e-2, "none"),
                (0.3, 2e-3, "light"),
            ]
        )
    ]
    result = _result(rows)
    importance = result.importance()
    assert list(importance)[0] == "learning_rate"
    assert importance["learning_rate"] == pytest.approx(1.0)
    fig = result.plot(max_params=2)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "learning_rate"
    assert fig.axes[0].get_xscale() == "linear"  # 1e-3..1e-2: not > 50x
    assert result.best_score == pytest.approx(0.5)
    assert result.table()["objective"].iloc[0] == pytest.approx(0.5)
    assert _result(rows, "max").table()["objective"].iloc[0] == pytest.approx(0.95)


def test_importance_ranks_ties_fairly():
    # Spearman with tied values: a perfect monotone link stays 1.0.
    assert association([1, 1, 2, 2, 3], [0.1, 0.1, 0.2, 0.2, 0.3]) == pytest.approx(1)
    # No spread, too few trials, or a constant value: no association.
    assert association([1, 2, 3], [0.5, 0.5, 0.5]) == 0.0
    assert association([1, 2], [0.1, 0.2]) == 0.0
    assert association([1, 1, 1], [0.1, 0.2, 0.3]) == 0.0
    # A choice that explains none of the spread.
    assert association(["a", "b", "a", "b"], [0.0, 0.0, 1.0, 1.0]) == 0.0


def test_fixed_values_are_not_hyperparameters_to_rank():
    rows = [
        {"trial_id": "0", "status": "COMPLETED", "l2": 0.0, "d": 0.1, "objective": 1.0},
        {"trial_id": "1", "status": "COMPLETED", "l2": 0.0, "d": 0.2, "objective": 0.5},
        {"trial_id": "2", "status": "FAILED", "l2": 0.0, "d": 0.3, "objective": None},
    ]
    result = _result(rows)
    assert result.hyperparameter_names() == ["d"]
    assert result.best_score == 0.5
    assert "best val_loss=0.5" in repr(result)


def test_memory_usage_reports_numbers():
    current, peak = tuning.memory_usage_mb()
    assert current is None or current > 10
    assert peak is None or peak > 10
    assert os.name != "posix" or peak is not None
