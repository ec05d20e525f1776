"""kft.tune on keras-tuner's stock tuners, tiny models (no weights)."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_arrays, tiny_builder

import kerastune_ft as kft
from kerastune_ft import tuning


def tiny_data(n=36, seed=0):
    return tiny_arrays(n, seed=seed)


def tiny_dataset(n=36, seed=0, batch_size=12):
    x, y = tiny_data(n, seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"algorithm": "evolution"}, ValueError, "evolution"),
        ({"max_trials": 0}, ValueError, "max_trials"),
        ({"objective": 3}, TypeError, "objective"),
        ({"cross_validation": 1}, ValueError, "cross_validation"),
        (
            {"algorithm": "hyperband", "cross_validation": 2},
            ValueError,
            "cannot be combined with algorithm='hyperband'",
        ),
        ({"feature_cache": "yes"}, TypeError, "feature_cache"),
    ],
)
def test_tune_rejects_bad_arguments(kwargs, error, match, tmp_path):
    ds = tiny_dataset()
    with pytest.raises(error, match=match):
        tuning.tune(tiny_builder, ds, ds, directory=str(tmp_path), **kwargs)


def test_tune_needs_validation_for_a_val_objective(tmp_path):
    with pytest.raises(ValueError, match="needs `validation_data`"):
        tuning.tune(tiny_builder, tiny_dataset(), None, directory=str(tmp_path))


# -- searching ----------------------------------------------------------------


def test_tune_restores_the_best_trial_and_resumes(tmp_path):
    ds, val = tiny_dataset(seed=0), tiny_dataset(seed=1)
    space = {"dropout": (0.0, 0.5), "l2": 0.0, "batch_size": None, "unfreeze": 0}
    common = {
        "algorithm": "random",
        "objective": "val_loss",
        "directory": str(tmp_path),
        "seed": 0,
        "space": space,
        "fine_tune_kwargs": {"epochs": 2},
    }
    result = tuning.tune(tiny_builder, ds, val, max_trials=1, **common)
    assert len(result.trials) == 1
    record = tmp_path / "kft_tune" / f"trial_{result.trials[0]['trial_id']}"
    assert json.loads((record / "kft_trial.json").read_text())["history"]["val_loss"]

    # Resuming: the finished trial is reloaded, only one more runs.
    records = sorted((tmp_path / "kft_tune").glob("trial_*/kft_trial.json"))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    again = tuning.tune(tiny_builder, ds, val, max_trials=2, **common)
    assert len(again.trials) == 2
    assert again.trials[0]["objective"] == result.trials[0]["objective"]
    after = sorted((tmp_path / "kft_tune").glob("trial_*/kft_trial.json"))
    assert len(after) == 2
    assert all(p.stat().st_mtime_ns == stamps[p] for p in records)
    for row in again.trials:
        assert row["status"].endswith("COMPLETED")
        assert 0.0 <= row["dropout"] <= 0.5
        assert row["epochs"] >= 1 and row["seconds"] > 0
        assert row["objective"] is not None
    # The best of a reloaded trial and a new one: the restored model holds the
    # weights that earned the reported score.
    assert again.best_model_source == "restored"
    assert again.best_score == min(t["objective"] for t in again.trials)
    loss = again.best_model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(again.best_score, rel=1e-4)
    assert again.best_values == again.best_hyperparameters.values


def test_tune_with_cross_validation_scores_by_mean_and_retrains(tmp_path):
    x, y = tiny_data(n=30)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    result = tuning.tune(
        tiny_builder,
        ds,
        ds,
        algorithm="random",
        max_trials=1,
        objective="val_accuracy",
        directory=str(tmp_path),
        seed=0,
        cross_validation=2,
        space={"dropout": 0.1, "l2": 0.0, "batch_size": None, "unfreeze": 0},
        fine_tune_kwargs={"epochs": 1},
    )
    row = result.trials[0]
    assert "val_accuracy_std" in row
    folds = json.loads(
        (
            tmp_path / "kft_tune" / f"trial_{row['trial_id']}" / "kft_trial.json"
        ).read_text()
    )["folds"]
    assert len(folds) == 2
    assert row["objective"] == pytest.approx(
        np.mean([f["val_accuracy"] for f in folds])
    )
    assert result.best_model_source == "retrained"
    # Keras' mode="auto" rule, read from the compiled metric: accuracy goes up.
    assert result.direction == "max"
    assert result.tuner.oracle.objective.direction == "max"
    assert result.best_model.output_shape == (None, 3)


@pytest.mark.parametrize("algorithm", ["grid", "hyperband"])
def test_grid_and_hyperband_run_through_fine_tune(algorithm, tmp_path):
    ds = tiny_dataset()
    result = tuning.tune(
        tiny_builder,
        ds,
        ds,
        algorithm=algorithm,
        max_trials=5,
        objective="val_accuracy",
        directory=str(tmp_path),
        seed=0,
        space={
            "dropout": [0.1, 0.3] if algorithm == "grid" else 0.1,
            "l2": 0.0,
            "learning_rate": 1e-2,
            "label_smoothing": 0.0,
            "batch_size": None,
            "freeze": "all",
            "unfreeze": 0,
        },
        fine_tune_kwargs={"epochs": 2},
    )
    completed = [t for t in result.trials if t["status"].endswith("COMPLETED")]
    assert completed and all(t["objective"] is not None for t in completed)
    if algorithm == "grid":  # every grid point, then it stops
        assert sorted(t["dropout"] for t in result.trials) == [0.1, 0.3]


def test_searching_label_smoothing_against_a_loss_warns(tmp_path):
    hypermodel = kft.tuning.FineTuneHyperModel(
        tiny_builder, space={"label_smoothing": [0.0, 0.1]}
    )
    ds = tiny_dataset()
    with pytest.warns(kft.KerasTuneFTWarning, match="biased against smoothing"):
        # tiny_builder takes no `strategy`: stops before any training.
        with pytest.raises(ValueError, match="no `strategy` argument"):
            tuning.tune(
                hypermodel, ds, ds, directory=str(tmp_path), strategy="mirrored"
            )


class PlainHyperModel(keras_tuner.HyperModel):
    """A keras-tuner HyperModel written without kerastune_ft."""

    def build(self, hp):
        return tiny_builder(dropout=hp.Float("dropout", 0.0, 0.5))


class StopAfterTwoEpochs(keras.callbacks.Callback):
    """A user callback: stops each fit after its second epoch."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= 1:
            self.model.stop_training = True


def test_a_plain_keras_tuner_hypermodel_trains_through_fine_tune(tmp_path):
    # 33 examples per class: fine_tune's defaults train gradient epochs (the
    # few-shot probe, at 32 or fewer, logs one epoch).
    ds = tiny_dataset(n=99, batch_size=33)
    result = tuning.tune(
        PlainHyperModel(),
        ds,
        ds,
        algorithm="random",
        max_trials=1,
        directory=str(tmp_path),
        seed=0,
        # The user's callbacks reach every trial's fine_tune (a fresh copy).
        callbacks=[StopAfterTwoEpochs()],
    )
    row = result.trials[0]
    assert set(result.best_values) == {"dropout"}
    assert row["epochs"] == 2 and row["objective"] is not None
    record = tmp_path / "kft_tune" / f"trial_{row['trial_id']}" / "kft_trial.json"
    assert json.loads(record.read_text())["cached"] == ["train+val"]
    assert result.direction == "min" and result.best_model_source == "restored"
