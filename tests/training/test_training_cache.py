"""The cached-feature path: run `model.feature_extractor()`, train `model.head`."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_data, tiny_model
from _training_models import last_dense, tiny_classifier

import kerastune_ft as kft
from kerastune_ft.training import cache as caching


def test_cache_runs_the_feature_extractor_and_trains_the_head(monkeypatch):
    calls = []
    original = caching.materialize

    def spy(features, dataset, views=0):
        calls.append(features)
        return original(features, dataset, views=views)

    monkeypatch.setattr(caching, "materialize", spy)
    model = tiny_classifier()
    head_before = [w.copy() for w in model.head.get_weights()]
    backbone_before = [w.copy() for w in model.backbone.get_weights()]
    result = kft.fine_tune(model, tiny_data(), tiny_data(seed=1), epochs=2, verbose=0)
    assert result.stages[0].cached == "train+val"
    # One pass each over validation and training data, of the head's input.
    assert [f.output.shape for f in calls] == [(None, 6), (None, 6)]
    assert not np.allclose(model.head.get_weights()[0], head_before[0])
    for a, b in zip(model.backbone.get_weights(), backbone_before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cached_and_uncached_runs_give_the_same_weights():
    # One batch per epoch and no dropout: shuffling cannot change the gradient.
    data = tiny_data(batch_size=48)
    results = []
    for cache in (True, False):
        keras.utils.set_random_seed(3)
        model = tiny_classifier()
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
        results.append((result, last_dense(model).get_weights()))
    (cached, w_cached), (plain, w_plain) = results
    assert cached.stages[0].cached == "train+val" and plain.stages[0].cached == "none"
    for a, b in zip(w_cached, w_plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(
        cached.history["val_loss"], plain.history["val_loss"], atol=1e-5
    )


def test_cached_epochs_match_uncached_ones_over_several_batches():
    # Several batches per epoch, in one compiled call per epoch: the same
    # numbers as batch-by-batch training (unshuffled cache vs fit).
    data = tiny_data(batch_size=8)
    model = tiny_classifier()
    result = kft.fine_tune(
        model, data, data, epochs=3, early_stopping=False, verbose=0, seed=0
    )
    assert result.stages[0].cached == "train+val"
    assert model.head.steps_per_execution == 6  # 48 examples / 8: one call
    evaluated = model.evaluate(data, verbose=0, return_dict=True)
    assert evaluated["loss"] == pytest.approx(result.history["val_loss"][-1], rel=1e-4)


def test_augmented_model_without_views_caches_validation_only():
    data = tiny_data()
    result = kft.fine_tune(
        tiny_classifier(augment=True),
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
    original = caching.materialize

    def spy(features, dataset, views=0):
        out = original(features, dataset, views=views)
        calls.append((views, out.x))
        return out

    monkeypatch.setattr(caching, "materialize", spy)
    data = tiny_data(n=48, batch_size=16)
    model = tiny_classifier(augment=True)
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
    views = caching.views_dataset(
        caching.CachedFeatures(train_x, np.zeros(192), 16), 4, 0
    )
    assert sum(int(y.shape[0]) for _, y in views) == 48


def test_cache_true_refuses_what_cannot_be_cached():
    data = tiny_data()
    with pytest.raises(ValueError, match="augmented_views=0"):
        kft.fine_tune(
            tiny_classifier(augment=True),
            data,
            data,
            epochs=1,
            cache_features=True,
            augmented_views=0,
            verbose=0,
        )
    trainable = tiny_classifier()
    trainable.unfreeze(1)
    with pytest.raises(ValueError, match="no trainable"):
        kft.fine_tune(trainable, data, data, epochs=1, cache_features=True, verbose=0)
    with pytest.raises(ValueError, match="transfer classifier"):
        kft.fine_tune(tiny_model(), data, data, epochs=1, cache_features=True)


def test_feature_cache_is_shared_across_runs_with_the_same_backbone():
    data, val = tiny_data(), tiny_data(seed=1)
    cache = kft.training.FeatureCache()
    for dropout in (0.0, 0.5):
        keras.utils.set_random_seed(0)  # same backbone weights in both runs
        kft.fine_tune(
            tiny_classifier(dropout=dropout),
            data,
            val,
            epochs=1,
            feature_cache=cache,
            verbose=0,
        )
    assert (cache.misses, cache.hits) == (2, 2)  # train and val, computed once
    keras.utils.set_random_seed(1)  # other backbone weights: computed again
    kft.fine_tune(
        tiny_classifier(), data, val, epochs=1, feature_cache=cache, verbose=0
    )
    assert cache.misses == 4
    cache.clear()
    assert len(cache) == 0


def test_unsupported_strategy_turns_caching_off_with_a_reason():
    # CentralStorageStrategy is not among the strategies caching is tested
    # with: "auto" turns it off and says why; True is an error.
    central = tf.distribute.experimental.CentralStorageStrategy()
    messages = []
    assert caching.check_feature_caching(central, "auto", messages.append) is False
    assert "not supported under CentralStorageStrategy" in messages[0]
    with pytest.raises(ValueError, match="cache_features=True"):
        caching.check_feature_caching(central, True)
    assert caching.check_feature_caching(central, False) is False
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    assert caching.check_feature_caching(mirrored, "auto") == "auto"
    assert caching.caching_supported(mirrored) == (True, "")
