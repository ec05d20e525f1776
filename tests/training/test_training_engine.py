"""`kft.fine_tune` and `kft.unfreeze`: the plan, the loop, the result.

Tiny models, no assets. The cached-feature path is tested in
`test_training_cache.py`, checkpoints in `test_training_state.py`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_arrays, tiny_data, tiny_model
from _training_models import last_dense, tiny_classifier

import kerastune_ft as kft
from kerastune_ft.data import balanced_class_weight
from kerastune_ft.training import engine, stages
from kerastune_ft.training.losses import SparseCategoricalCrossentropyWithSmoothing


def test_label_smoothing_with_a_loss_given_by_name():
    model = tiny_classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = kft.fine_tune(
        model, tiny_data(), tiny_data(), epochs=1, label_smoothing=0.1, verbose=0
    )
    assert result.epochs_run == 1
    assert isinstance(model.loss, SparseCategoricalCrossentropyWithSmoothing)


def test_default_epochs_depend_on_what_trains():
    assert engine.default_epochs(tiny_classifier()) == 30
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert engine.default_epochs(plain) == 30
    import keras_hub
    from _tiny import tiny_bert_backbone

    text = keras_hub.models.BertTextClassifier(
        tiny_bert_backbone(), num_classes=2, preprocessor=None
    )
    assert engine.default_epochs(text) == 4  # a transformer trained whole
    text.backbone.trainable = False
    assert engine.default_epochs(text) == 30


def test_defaults_follow_the_compiled_optimizer():
    model = tiny_classifier()
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-4, weight_decay=0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    result = kft.fine_tune(
        model, tiny_data(), tiny_data(), epochs=1, unfreeze=1, verbose=0
    )
    assert [s.learning_rate for s in result.stages] == pytest.approx([3e-4, 3e-6])
    assert model.optimizer.weight_decay == pytest.approx(0.02)


def test_two_stages_merge_history_and_restore_the_best_epoch():
    data, val = tiny_data(), tiny_data(seed=1)
    model = tiny_classifier()
    result = kft.fine_tune(
        model, data, val, epochs=3, unfreeze=1, patience=10, verbose=0, seed=0
    )
    assert [s.name for s in result.stages] == ["head", "unfreeze top 1"]
    assert result.stages[1].first_epoch == result.stages[0].last_epoch + 1
    assert result.stages[1].trainable_params > result.stages[0].trainable_params
    assert result.epochs_run == 6 and len(result.history["val_loss"]) == 6
    best = int(np.argmin(result.history["val_loss"])) + 1
    assert result.best_epoch == best
    evaluated = model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(result.best_metrics["val_loss"], rel=1e-3)
    # BatchNorm stays frozen when unfreezing.
    assert not model.backbone.get_layer("bn").trainable


def test_seed_makes_runs_reproducible():
    histories = []
    for _ in range(2):
        keras.utils.set_random_seed(7)  # the seed must also cover weight init
        model = tiny_classifier(dropout=0.3)
        histories.append(
            kft.fine_tune(
                model, tiny_data(), tiny_data(seed=1), epochs=3, verbose=0, seed=7
            ).history
        )
    assert histories[0] == histories[1]


def test_label_smoothing_balanced_weights_and_schedules():
    y = np.array([0] * 30 + [1] * 6)
    x = np.random.default_rng(0).uniform(0, 255, (36, 8, 8, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(12)
    for schedule in ("cosine", "linear", "constant"):
        result = kft.fine_tune(
            tiny_classifier(num_classes=2),
            data,
            data,
            epochs=2,
            label_smoothing=0.1,
            class_weight="balanced",
            schedule=schedule,
            verbose=0,
            seed=0,
        )
        assert np.isfinite(result.history["loss"]).all()
    assert balanced_class_weight(y) == pytest.approx({0: 0.6, 1: 3.0})


def test_verbose_zero_is_silent_and_one_reports_stages(capsys):
    kft.fine_tune(tiny_classifier(), tiny_data(), tiny_data(), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    kft.fine_tune(tiny_classifier(), tiny_data(), tiny_data(), epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert "Stage 1/1 (head):" in out and "Cached frozen features" in out
    # A head stage whose backbone trains too (a text model's default) says so.
    model = tiny_classifier()
    model.freeze("none")
    kft.fine_tune(model, tiny_data(), tiny_data(), epochs=1, verbose=2)
    assert "Stage 1/1 (head + the backbone's trainable layers):" in (
        capsys.readouterr().out
    )


def test_unfreeze_for_plain_fit_users():
    model = tiny_classifier()
    kft.unfreeze(model, top=2, learning_rate=1e-4)
    backbone = model.backbone
    assert [layer.trainable for layer in backbone.layers] == [False, False, True]
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    model.fit(tiny_data(), epochs=1, verbose=0, shuffle=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epochs": 0}, ValueError, "Received: epochs=0"),
        ({"schedule": "step"}, ValueError, "Received: schedule='step'"),
        ({"cache_features": 1}, ValueError, "Received: cache_features=1"),
        ({"label_smoothing": 1.0}, ValueError, "Received: label_smoothing=1.0"),
        ({"class_weight": "auto"}, ValueError, "Received: class_weight='auto'"),
        ({"unfreeze": 0}, ValueError, "Received: unfreeze=0"),
        ({"unfreeze": [{"depth": 2}]}, ValueError, "dict with key 'top'"),
        ({"reduce_lr_on_plateau": True}, ValueError, "schedule='constant'"),
        ({"verbose": 3}, ValueError, "Received: verbose=3"),
        ({"augmented_views": -1}, ValueError, "Received: augmented_views=-1"),
        ({"feature_cache": {}}, TypeError, "Received: feature_cache={}"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kft.fine_tune(tiny_classifier(), tiny_data(), tiny_data(), **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        kft.fine_tune(tiny_classifier(), np.zeros((4, 8, 8, 3)))
    with pytest.raises(ValueError, match="needs `validation_data`"):
        kft.fine_tune(tiny_classifier(), tiny_data(), monitor="val_loss")
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.compile(loss="mse")
    with pytest.raises(ValueError, match="has no backbone"):
        kft.unfreeze(plain)


@pytest.mark.parametrize("cache", ["auto", False])
def test_labels_beyond_num_classes_are_a_clear_error(cache):
    data = tiny_data(num_classes=4)  # labels 0..3, model has 3 outputs
    with pytest.raises(
        ValueError, match="labels go up to 3. Build it with num_classes=4"
    ):
        kft.fine_tune(
            tiny_classifier(num_classes=3), data, data, cache_features=cache, verbose=0
        )


def test_all_nan_inputs_diverge_and_keep_the_initial_weights(capsys):
    x = np.full((16, 8, 8, 3), np.nan, dtype="float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 3)).batch(8)
    model = tiny_classifier()
    before = model.get_weights()
    result = kft.fine_tune(model, data, data, epochs=3, verbose=1)
    assert result.diverged and result.best_epoch is None
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "Training diverged" in capsys.readouterr().out
    assert kft.diagnose(result).verdict == "diverged"


class _PoisonAt(keras.callbacks.Callback):
    """Makes the head's weights NaN when epoch `epoch` (1-based) begins."""

    def __init__(self, layer, epoch):
        super().__init__()
        self.layer, self.epoch = layer, epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.layer.set_weights([w * np.nan for w in self.layer.get_weights()])


@pytest.mark.parametrize("early_stopping", [True, False])
def test_nan_later_keeps_the_last_finite_best(early_stopping):
    model = tiny_classifier()
    data, val = tiny_data(), tiny_data(seed=1)
    result = kft.fine_tune(
        model,
        data,
        val,
        epochs=5,
        early_stopping=early_stopping,
        callbacks=[_PoisonAt(last_dense(model), 3)],
        verbose=0,
        seed=0,
    )
    assert result.diverged and result.epochs_run == 3
    assert result.best_epoch in (1, 2)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    evaluated = model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(result.best_metrics["val_loss"], abs=1e-5)


def test_any_compiled_keras_model_trains_uncached():
    # Not a transfer classifier: fine_tune still trains it, whole, uncached.
    model = tiny_model()
    result = kft.fine_tune(model, tiny_data(), tiny_data(), epochs=2, verbose=0)
    assert result.stages[0].cached == "none" and result.epochs_run == 2
    with pytest.raises(ValueError, match="needs a\\s+transfer classifier"):
        kft.fine_tune(
            model, tiny_data(), tiny_data(), epochs=1, cache_features=True, verbose=0
        )


class _ClosedFormHead(kft.training.Stage):
    """A stage that is no gradient descent: sets the head's bias in closed form."""

    name, epochs, learning_rate = "closed form", 1, 0.0

    def run(self, context):
        dense = last_dense(context.model)
        kernel, bias = dense.get_weights()
        dense.set_weights([kernel * 0, bias * 0 + 1])
        logs = context.model.evaluate(
            context.validation_data, verbose=0, return_dict=True
        )
        history = {k: [v] for k, v in logs.items()}
        history.update({f"val_{k}": [v] for k, v in logs.items()})
        for callback in (context.tracker,):
            callback.set_model(context.model)
            callback.on_train_begin()
            callback.on_epoch_end(context.epoch_offset, {"val_loss": logs["loss"]})
        first = context.epoch_offset + 1
        report = kft.training.StageReport(self.name, first, first, 0.0, 0, 0.0, "none")
        return stages.StageOutcome(history, report)


def test_the_loop_runs_a_stage_that_is_not_gradient_descent():
    model = tiny_classifier()
    data = tiny_data()
    settings = stages.TrainSettings(epochs=2, learning_rate=1e-3,
                                    fine_tune_learning_rate=1e-5, weight_decay=0.0,
                                    verbose=0)  # fmt: skip
    context = stages.StageContext(
        model, data, data, settings, None, [], 0, 0, say=lambda *a: None
    )
    plan = [stages.HeadStage(epochs=2), _ClosedFormHead()]
    result = engine.run_stages(context, plan)
    assert [s.name for s in result.stages] == ["head", "closed form"]
    assert result.epochs_run == 3 and result.stages[1].first_epoch == 3
    assert len(result.history["val_loss"]) == 3


def test_stage_plan_is_typed():
    plan = stages.plan_stages([2, {"top": "all", "epochs": 3}], 5, 1e-3, 1e-5)
    assert [type(s).__name__ for s in plan] == [
        "HeadStage",
        "UnfreezeStage",
        "UnfreezeStage",
    ]
    assert (plan[1].top, plan[1].learning_rate) == (2, 1e-5)
    assert (plan[2].top, plan[2].epochs) == ("all", 3)


def test_fine_tune_takes_arrays_and_array_batches():
    x, y = tiny_arrays()
    model = tiny_classifier()
    result = kft.fine_tune(
        model, (x, y), (x, y), epochs=2, batch_size=16, seed=0, verbose=0
    )
    assert result.epochs_run == 2
    assert result.stages[0].cached == "train+val"
    train = kft.data.ArrayBatches(x, y, batch_size=16, shuffle=True, seed=0)
    val = kft.data.ArrayBatches(x, y, batch_size=16)
    augmented = tiny_classifier(augment=True)
    result = kft.fine_tune(
        augmented, train, val, epochs=1, augmented_views=2, seed=0, verbose=0
    )
    assert result.stages[0].cached == "train (2 views)+val"
    assert np.isfinite(result.history["val_loss"]).all()
