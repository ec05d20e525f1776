"""FineTuneHyperModel under keras-tuner's stock tuners (tiny models, no weights)."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_arrays, tiny_builder

import kerastune_ft as kft
from kerastune_ft.data._arrays import Arrays


def tiny_dataset(n=36, seed=0, batch_size=12):
    x, y = tiny_arrays(n, seed=seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


@pytest.mark.parametrize("freeze, trainable_convs", [(3, 0), (2, 1), (1, 2)])
def test_build_applies_sampled_values(freeze, trainable_convs):
    hypermodel = kft.tuning.FineTuneHyperModel(
        tiny_builder, space={"dropout": 0.37, "freeze": freeze}
    )
    model = hypermodel.build(keras_tuner.HyperParameters())
    dropout = [la for la in model.head.layers if isinstance(la, keras.layers.Dropout)]
    assert dropout[0].rate == pytest.approx(0.37)
    convs = [la for la in model.backbone.layers if isinstance(la, keras.layers.Conv2D)]
    assert sum(c.trainable for c in convs) == trainable_convs


def test_fine_tune_arguments_and_rebatching():
    hypermodel = kft.tuning.FineTuneHyperModel(
        tiny_builder,
        space={"unfreeze": 0, "learning_rate": 3e-3, "batch_size": 8},
        fine_tune_kwargs={"epochs": 3},
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    args = hypermodel.fine_tune_arguments(hp)
    assert args["unfreeze"] is None  # 0 units: no second stage
    assert args["learning_rate"] == 3e-3 and args["epochs"] == 3
    ds = tiny_dataset()
    rebatched = hypermodel.batched(ds, hp)
    assert next(iter(rebatched))[1].shape[0] == 8
    # The same object every time, so cached features can be reused.
    assert hypermodel.batched(ds, hp) is rebatched


# The reloaded model's optimizer is not built yet: only its weights load.
@pytest.mark.filterwarnings("ignore:Skipping variable loading")
def test_a_stock_tuner_restores_the_weights_fine_tune_kept(tmp_path):
    """keras-tuner's own RandomSearch, no subclass: the best model it reloads
    scores exactly what the trial reported."""
    hypermodel = kft.tuning.FineTuneHyperModel(
        tiny_builder,
        space={
            "dropout": (0.0, 0.5),
            "l2": 0.0,
            "batch_size": None,
            "unfreeze": 0,
            "label_smoothing": None,  # the reloaded model's loss is unsmoothed
        },
        fine_tune_kwargs={"epochs": 3},
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        objective=keras_tuner.Objective("val_loss", "min"),
        max_trials=1,
        directory=str(tmp_path),
        seed=0,
    )
    train, val = tiny_dataset(seed=0), tiny_dataset(seed=1)
    tuner.search(train, val, monitor="val_loss", verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    best = tuner.get_best_models(1)[0]
    loss = best.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(trial.metrics.get_best_value("val_loss"), rel=1e-4)
    assert trial.metrics.get_last_value("epochs") >= 1
    record = json.loads(
        (
            tmp_path / "untitled_project" / f"trial_{trial.trial_id}" / "kft_trial.json"
        ).read_text()
    )
    assert record["cached"] == ["train+val"]  # a frozen backbone: cached features
    assert len(record["history"]["val_loss"]) == record["epochs"]


def test_fit_with_folds_returns_fold_metrics_that_keras_tuner_averages():
    x, y = tiny_arrays(30)
    folds = kft.tuning.TrialFolds(Arrays(x, y), 2, seed=0, batch_size=10)
    hypermodel = kft.tuning.FineTuneHyperModel(
        tiny_builder,
        space={"dropout": 0.1, "l2": 0.0, "batch_size": None, "unfreeze": 0},
        fine_tune_kwargs={"epochs": 1},
    )
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    results = hypermodel.fit(hp, model, None, None, folds=folds, verbose=0)
    assert len(results) == 2
    accuracies = [r["val_accuracy"] for r in results]
    assert all(
        r["val_accuracy_std"] == pytest.approx(np.std(accuracies)) for r in results
    )
    # The same fold datasets serve every trial (their features can be reused).
    assert folds.datasets_for(10)[0] is folds.datasets_for(10)[0]


def test_trial_folds_refuse_impossible_splits():
    x, y = tiny_arrays(6)  # 2 examples per class
    with pytest.raises(ValueError, match="fewer than `cross_validation=3`"):
        kft.tuning.TrialFolds(Arrays(x, y), 3)
