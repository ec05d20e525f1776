"""kft.tuning: search space, HyperModel, kft.tune on tiny models (no weights)."""

import json
import os

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


# -- the search space ---------------------------------------------------------


@pytest.mark.parametrize(
    "space, error, match",
    [
        ({"dropuot": (0.0, 0.5)}, ValueError, "dropuot"),
        ({"dropout": (0.5, 0.1)}, ValueError, r"low <= high"),
        ({"dropout": (0.0, 0.5, "exp")}, ValueError, r"\(low, high, 'log'\)"),
        ({"learning_rate": (0.0, 1e-2, "log")}, ValueError, "log range needs low > 0"),
        ({"l2": []}, ValueError, "cannot be empty"),
        ({"augmentation": ["light"]}, ValueError, "builder has no `augmentation`"),
        ("dropout", TypeError, "must be a dict"),
    ],
)
def test_bad_space_is_rejected(space, error, match):
    with pytest.raises(error, match=match):
        tuning.FineTuneHyperModel(tiny_builder, space=space)


def test_fixing_a_builder_argument_twice_is_rejected():
    with pytest.raises(ValueError, match="both fixed as a builder argument"):
        tuning.FineTuneHyperModel(tiny_builder, dropout=0.2, space={"dropout": 0.3})


def test_unknown_fine_tune_argument_is_rejected():
    with pytest.raises(ValueError, match="has 'epoch', which kft.fine_tune"):
        tuning.FineTuneHyperModel(tiny_builder, fine_tune_kwargs={"epoch": 3})


def test_builder_must_be_callable():
    with pytest.raises(TypeError, match="Received: builder='mobilenet_v2'"):
        tuning.FineTuneHyperModel("mobilenet_v2")


def test_default_space_covers_the_issue_and_respects_the_builder():
    hypermodel = tuning.FineTuneHyperModel(tiny_builder)
    space = hypermodel.space()
    # tiny_builder has no `augmentation` or `l1` argument: not searched.
    assert set(space) == set(tuning.DEFAULT_SPACE) - {"augmentation", "l1"}
    image = tuning.FineTuneHyperModel(kft.build_image_classifier, "mobilenet_v2", 3)
    assert set(image.space()) == set(tuning.DEFAULT_SPACE)
    # Fixing an argument on the builder removes it from the space.
    fixed = tuning.FineTuneHyperModel(tiny_builder, dropout=0.3)
    assert "dropout" not in fixed.space()


def test_space_entries_become_the_right_hyperparameters():
    hypermodel = tuning.FineTuneHyperModel(
        tiny_builder,
        space={
            "dropout": (0.0, 0.5),
            "learning_rate": (1e-4, 1e-2, "log"),
            "l2": [0.0, 1e-3],
            "label_smoothing": 0.1,
            "batch_size": None,
            "freeze": ["all", 1],
        },
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    by_name = {p.name: p for p in hp.space}
    assert isinstance(by_name["dropout"], keras_tuner.engine.hyperparameters.Float)
    assert by_name["learning_rate"].sampling == "log"
    assert by_name["l2"].values == [0.0, 1e-3]
    assert hp.values["label_smoothing"] == 0.1
    assert isinstance(
        by_name["label_smoothing"], keras_tuner.engine.hyperparameters.Fixed
    )
    assert "batch_size" not in hp.values
    # Freeze depth is a unit count valid for this backbone ("all" = 3 units).
    assert by_name["freeze"].values == [3, 1]


def test_auto_depths_are_valid_unit_counts():
    hypermodel = tuning.FineTuneHyperModel(
        kft.build_image_classifier,
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
    )
    num = len(hypermodel.unit_names())
    assert num > 100  # MobileNetV2 layers
    hp = keras_tuner.HyperParameters()
    hypermodel._values(hp)
    freeze = {p.name: p for p in hp.space}["freeze"].values
    unfreeze = {p.name: p for p in hp.space}["unfreeze"].values
    assert freeze[0] == num and all(0 < c <= num for c in freeze)
    assert 0 in unfreeze and all(0 <= c < num for c in unfreeze)


@pytest.mark.parametrize("freeze, trainable_convs", [(3, 0), (2, 1), (1, 2)])
def test_build_applies_sampled_values(freeze, trainable_convs):
    hypermodel = tuning.FineTuneHyperModel(
        tiny_builder, space={"dropout": 0.37, "freeze": freeze}
    )
    model = hypermodel.build(keras_tuner.HyperParameters())
    dropout = [la for la in model.layers if isinstance(la, keras.layers.Dropout)]
    assert dropout[0].rate == pytest.approx(0.37)
    backbone = kft.freezing.get_backbone(model)
    convs = [la for la in backbone.layers if isinstance(la, keras.layers.Conv2D)]
    assert sum(c.trainable for c in convs) == trainable_convs


def test_fine_tune_arguments_and_rebatching():
    hypermodel = tuning.FineTuneHyperModel(
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
    result = tuning.tune(tiny_builder, ds, val, max_trials=2, **common)
    assert len(result.trials) == 2
    assert result.best_model_source == "restored"
    for row in result.trials:
        assert row["status"].endswith("COMPLETED")
        assert 0.0 <= row["dropout"] <= 0.5
        assert row["epochs"] >= 1 and row["seconds"] > 0
        assert row["objective"] is not None
    # The restored model holds the weights that earned the reported score.
    loss = result.best_model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(result.best_score, rel=1e-4)
    assert result.best_values == result.best_hyperparameters.values
    record = tmp_path / "kft_tune" / f"trial_{result.trials[0]['trial_id']}"
    assert json.loads((record / "kft_trial.json").read_text())["history"]["val_loss"]

    # Resuming: the 2 finished trials are reloaded, only one more runs.
    records = sorted((tmp_path / "kft_tune").glob("trial_*/kft_trial.json"))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    again = tuning.tune(tiny_builder, ds, val, max_trials=3, **common)
    assert len(again.trials) == 3
    assert [t["objective"] for t in again.trials][:2] == [
        t["objective"] for t in result.trials
    ]
    after = sorted((tmp_path / "kft_tune").glob("trial_*/kft_trial.json"))
    assert len(after) == 3
    assert all(p.stat().st_mtime_ns == stamps[p] for p in records)


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
    result = tuning.TuneResult(
        best_hyperparameters=keras_tuner.HyperParameters(),
        best_model=None,
        best_model_source="restored",
        trials=rows,
        objective="val_loss",
        direction="min",
    )
    importance = result.importance()
    assert list(importance)[0] == "learning_rate"
    assert importance["learning_rate"] == pytest.approx(1.0)
    fig = result.plot(max_params=2)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "learning_rate"
    assert result.best_score == pytest.approx(0.5)
    assert result.table()["objective"].iloc[0] == pytest.approx(0.5)


def test_memory_usage_reports_numbers():
    current, peak = tuning.memory_usage_mb()
    assert current is None or current > 10
    assert peak is None or peak > 10
    assert os.name != "posix" or peak is not None


def test_searching_label_smoothing_against_a_loss_warns(tmp_path):
    hypermodel = tuning.FineTuneHyperModel(
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


def test_a_plain_keras_tuner_hypermodel_trains_through_fine_tune(tmp_path):
    ds = tiny_dataset()
    result = tuning.tune(
        PlainHyperModel(),
        ds,
        ds,
        algorithm="random",
        max_trials=1,
        directory=str(tmp_path),
        seed=0,
    )
    row = result.trials[0]
    assert set(result.best_values) == {"dropout"}
    assert row["epochs"] >= 1 and row["objective"] is not None
    record = tmp_path / "kft_tune" / f"trial_{row['trial_id']}" / "kft_trial.json"
    assert json.loads(record.read_text())["cached"] == ["train+val"]
