"""fine_tune / unfreeze / feature caching on tiny models (no assets needed)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_data, tiny_model

import kerastune_ft as kft
from kerastune_ft import training


def test_split_cuts_after_pooling_and_shares_layers():
    model = tiny_model()
    split = training.split_frozen_prefix(model)
    assert split is not None and not split.random_below
    assert split.features.output.shape == (None, 6)
    assert split.head.get_layer("logits") is model.get_layer("logits")


def test_split_detects_augmentation_and_trainable_backbone():
    assert training.split_frozen_prefix(tiny_model(augment=True)).random_below
    model = tiny_model()
    model.get_layer("backbone").trainable = True
    assert training.split_frozen_prefix(model) is None


def test_cached_and_uncached_runs_give_the_same_weights():
    # One batch per epoch and no dropout: shuffling cannot change the gradient.
    data = tiny_data(batch_size=48)
    results = []
    for cache in (True, False):
        keras.utils.set_random_seed(3)
        model = tiny_model()
        result = kft.fine_tune(
            model,
            data,
            data,
            epochs=4,
            cache_features=cache,
            early_stopping=False,
            verbose=0,
            seed=3,
        )
        results.append((result, model.get_layer("logits").get_weights()))
    (cached, w_cached), (plain, w_plain) = results
    assert cached.stages[0].cached == "train+val" and plain.stages[0].cached == "none"
    for a, b in zip(w_cached, w_plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(
        cached.history["val_loss"], plain.history["val_loss"], atol=1e-5
    )


def test_augmented_model_without_views_caches_validation_only():
    data = tiny_data()
    result = kft.fine_tune(
        tiny_model(augment=True),
        data,
        data,
        epochs=2,
        augmented_views=0,
        verbose=0,
        seed=0,
    )
    assert result.stages[0].cached == "val"
    assert (
        len(result.history["val_loss"]) == 2
        and len(result.history["val_accuracy"]) == 2
    )


def test_augmented_model_trains_on_cached_views(monkeypatch):
    calls = []
    original = training._materialize

    def spy(features, dataset, views=0):
        out = original(features, dataset, views=views)
        calls.append((views, out[0]))
        return out

    monkeypatch.setattr(training, "_materialize", spy)
    data = tiny_data(n=48, batch_size=16)
    model = tiny_model(augment=True)
    result = kft.fine_tune(
        model, data, data, epochs=3, augmented_views=4, verbose=0, seed=0
    )
    assert result.stages[0].cached == "train (4 views)+val"
    assert result.epochs_run == 3
    (val_views, val_x), (train_views, train_x) = calls
    assert val_views == 0 and val_x.shape == (48, 6)
    # Four passes with augmentation on: 4 x 48 features, and the flips differ.
    assert train_views == 4 and train_x.shape == (192, 6)
    assert not np.allclose(train_x[:48], train_x[48:96])
    # An epoch still draws 48 examples (3 batches of 16).
    views = training._views_dataset(train_x, np.zeros(192), 16, 4, seed=0)
    assert sum(int(y.shape[0]) for _, y in views) == 48


def test_cache_true_refuses_augmented_model_without_views():
    data = tiny_data()
    with pytest.raises(ValueError, match="augmented_views=0"):
        kft.fine_tune(
            tiny_model(augment=True),
            data,
            data,
            epochs=1,
            cache_features=True,
            augmented_views=0,
            verbose=0,
        )


def test_feature_cache_is_shared_across_runs_with_the_same_frozen_part():
    data, val = tiny_data(), tiny_data(seed=1)
    cache = kft.training.FeatureCache()
    for dropout in (0.0, 0.5):
        keras.utils.set_random_seed(0)  # same backbone weights in both runs
        kft.fine_tune(
            tiny_model(dropout=dropout),
            data,
            val,
            epochs=1,
            feature_cache=cache,
            verbose=0,
        )
    assert (cache.misses, cache.hits) == (2, 2)  # train and val, computed once
    keras.utils.set_random_seed(1)  # other backbone weights: computed again
    kft.fine_tune(tiny_model(), data, val, epochs=1, feature_cache=cache, verbose=0)
    assert cache.misses == 4
    cache.clear()
    assert len(cache) == 0


def test_label_smoothing_with_a_loss_given_by_name():
    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    result = kft.fine_tune(
        model, tiny_data(), tiny_data(), epochs=1, label_smoothing=0.1, verbose=0
    )
    assert result.epochs_run == 1
    assert isinstance(model.loss, training.SparseCategoricalCrossentropyWithSmoothing)


def test_default_epochs_depend_on_what_trains():
    assert training._default_epochs(tiny_model()) == 30
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert training._default_epochs(plain) == 30
    blocks = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(2, name="embeddings"),
            keras.layers.Dense(2, name="transformer_layer_0"),
        ],
        name="backbone",
    )
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(blocks(inputs)))
    assert training._default_epochs(model) == 4
    blocks.trainable = False
    assert training._default_epochs(model) == 30


def test_defaults_follow_the_compiled_optimizer():
    model = tiny_model()
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
    model = tiny_model()
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
    assert not model.get_layer("backbone").get_layer("bn").trainable


def test_seed_makes_runs_reproducible():
    histories = []
    for _ in range(2):
        keras.utils.set_random_seed(7)  # the seed must also cover weight init
        model = tiny_model(dropout=0.3)
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
            tiny_model(num_classes=2),
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
    assert training._balanced_class_weight(y) == pytest.approx({0: 0.6, 1: 3.0})


def test_verbose_zero_is_silent_and_one_reports_stages(capsys):
    kft.fine_tune(tiny_model(), tiny_data(), tiny_data(), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    kft.fine_tune(tiny_model(), tiny_data(), tiny_data(), epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert "Stage 1/1 (head)" in out and "Cached frozen features" in out


def test_checkpoint_dir_skips_finished_stages(tmp_path):
    data = tiny_data()
    first = kft.fine_tune(
        tiny_model(), data, data, epochs=2, checkpoint_dir=tmp_path, verbose=0, seed=0
    )
    model = tiny_model()
    again = kft.fine_tune(
        model, data, data, epochs=2, checkpoint_dir=tmp_path, verbose=0, seed=0
    )
    assert again.history == first.history and again.best_epoch == first.best_epoch
    np.testing.assert_allclose(
        model.get_layer("logits").get_weights()[0],
        first.model.get_layer("logits").get_weights()[0],
    )


def test_unfreeze_for_plain_fit_users():
    model = tiny_model()
    kft.unfreeze(model, top=2, learning_rate=1e-4)
    backbone = model.get_layer("backbone")
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
        kft.fine_tune(tiny_model(), tiny_data(), tiny_data(), **kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        kft.fine_tune(tiny_model(), np.zeros((4, 8, 8, 3)))
    with pytest.raises(ValueError, match="needs `validation_data`"):
        kft.fine_tune(tiny_model(), tiny_data())
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.compile(loss="mse")
    with pytest.raises(ValueError, match="no marked backbone"):
        kft.unfreeze(plain)


RESUME_SCRIPT = """
import sys, time, keras
sys.path.insert(0, {tests!r})
from _tiny import tiny_data, tiny_model
import kerastune_ft as kft


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.15)  # slow enough to be killed in the middle of an epoch


keras.utils.set_random_seed(0)
result = kft.fine_tune(
    tiny_model(), tiny_data(), tiny_data(seed=1), epochs=6, early_stopping=False,
    cache_features=False, checkpoint_dir={ckpt!r}, callbacks=[Slow()], verbose=0, seed=0,
)
print("EPOCHS", result.epochs_run)
"""


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_without_losing_epochs(tmp_path):
    import os
    import pathlib
    import signal
    import subprocess
    import sys
    import time

    ckpt = tmp_path / "ckpt"
    script = tmp_path / "train.py"
    tests_dir = str(pathlib.Path(__file__).parent)
    script.write_text(RESUME_SCRIPT.format(tests=tests_dir, ckpt=str(ckpt)))
    log = ckpt / "epochs_stage0.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # into the third epoch (3 batches x 0.15 s)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(log.read_text().splitlines())
    assert 2 <= done_before < 6

    finished = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert b"EPOCHS 6" in finished.stdout
    history = training._EpochLog.read(str(log))
    assert len(history["loss"]) == 6 and len(history["val_loss"]) == 6


@pytest.mark.parametrize("cache", ["auto", False])
def test_labels_beyond_num_classes_are_a_clear_error(cache):
    data = tiny_data(num_classes=4)  # labels 0..3, model has 3 outputs
    with pytest.raises(
        ValueError, match="labels go up to 3. Build it with num_classes=4"
    ):
        kft.fine_tune(
            tiny_model(num_classes=3), data, data, cache_features=cache, verbose=0
        )


def test_dropout_inside_a_frozen_backbone_keeps_training_uncached():
    # Keras 3 runs that dropout during fit despite training=False in the graph,
    # so caching training features would change what the model learns.
    backbone = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Dropout(0.5)],
        name="backbone",
    )
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    assert training.split_frozen_prefix(model).random_below


def test_all_nan_inputs_diverge_and_keep_the_initial_weights(capsys):
    x = np.full((16, 8, 8, 3), np.nan, dtype="float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 3)).batch(8)
    model = tiny_model()
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
    model = tiny_model()
    data, val = tiny_data(), tiny_data(seed=1)
    result = kft.fine_tune(
        model,
        data,
        val,
        epochs=5,
        early_stopping=early_stopping,
        callbacks=[_PoisonAt(model.get_layer("logits"), 3)],
        verbose=0,
        seed=0,
    )
    assert result.diverged and result.epochs_run == 3
    assert result.best_epoch in (1, 2)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    evaluated = model.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(result.best_metrics["val_loss"], abs=1e-5)
