"""Tests for kft.augment.image_augmentation and kft.augment.mix_dataset."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerastune_ft as kft


def _images(n=4, size=32):
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("light", ["RandomFlip", "RandomRotation", "RandomZoom"]),
        (
            "standard",
            [
                "RandomFlip",
                "RandomRotation",
                "RandomZoom",
                "RandomTranslation",
                "RandomContrast",
            ],
        ),
        (
            "strong",
            [
                "RandomFlip",
                "RandomRotation",
                "RandomZoom",
                "RandomTranslation",
                "RandomContrast",
                "RandomBrightness",
                "RandAugment",
            ],
        ),
    ],
)
def test_presets_are_keras_layers_active_only_in_training(preset, expected):
    block = kft.augment.image_augmentation(preset, seed=3)
    assert [type(layer).__name__ for layer in block.layers] == expected
    x = _images()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(block(x, training=False)), x
    )
    augmented = keras.ops.convert_to_numpy(block(x, training=True))
    assert augmented.shape == x.shape
    assert not np.allclose(augmented, x)
    # Pixel values stay in the 0-255 range the model expects.
    assert augmented.min() >= -1e-3 and augmented.max() <= 255.0 + 1e-3


def test_strong_is_stronger_than_light():
    x = _images(8)
    changes = {}
    for preset in ("light", "strong"):
        block = kft.augment.image_augmentation(preset, seed=1)
        out = keras.ops.convert_to_numpy(block(x, training=True))
        changes[preset] = float(np.mean(np.abs(out - x)))
    assert changes["strong"] > changes["light"]


def test_user_list_of_layers():
    flip = keras.layers.RandomFlip("vertical", seed=0)
    block = kft.augment.image_augmentation([flip])
    assert block.layers == [flip]
    assert block.name == "augmentation"


def test_ready_layer_is_returned_as_is():
    layer = keras.layers.RandomFlip()
    assert kft.augment.image_augmentation(layer) is layer


@pytest.mark.parametrize(
    "augmentation, error, match",
    [
        ("medium", ValueError, "Received: augmentation='medium'"),
        ("strnog", ValueError, "Did you mean 'strong'"),
        (3, TypeError, "augmentation=3"),
        (["flip"], TypeError, r"augmentation\[0\]='flip'"),
        ([keras.layers.MixUp()], ValueError, "kft.augment.mix_dataset"),
        ([keras.layers.CutMix()], ValueError, "mixes labels"),
    ],
)
def test_bad_augmentation(augmentation, error, match):
    with pytest.raises(error, match=match):
        kft.augment.image_augmentation(augmentation)


def test_seed_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="Received: seed=-1"):
        kft.augment.image_augmentation("light", seed=-1)


def test_strong_preset_survives_keras_round_trip(tmp_path):
    inputs = keras.Input((32, 32, 3))
    outputs = kft.augment.image_augmentation("strong", seed=0)(inputs)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "aug.keras")
    reloaded = keras.models.load_model(tmp_path / "aug.keras", safe_mode=True)
    x = _images()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(x, training=False)), x
    )
    names = [type(layer).__name__ for layer in reloaded.layers[1].layers]
    assert names[-1] == "RandAugment"


@pytest.mark.parametrize("method", ["mixup", "cutmix"])
def test_mix_dataset_gives_soft_one_hot_labels(method):
    x = _images(8, 16)
    ds = tf.data.Dataset.from_tensor_slices((x, [0, 1, 2, 0, 1, 2, 0, 1])).batch(8)
    images, labels = next(iter(kft.augment.mix_dataset(ds, 3, method=method, seed=0)))
    labels = labels.numpy()
    assert images.shape == (8, 16, 16, 3)
    assert labels.shape == (8, 3)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    # Mixed, not hard, labels for at least one sample.
    assert np.any((labels > 1e-3) & (labels < 1 - 1e-3))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "blend"}, ValueError, "method='blend'"),
        ({"num_classes": 1}, ValueError, "num_classes=1"),
        ({"strength": 0}, ValueError, "strength=0"),
    ],
)
def test_mix_dataset_bad_input(kwargs, error, match):
    ds = tf.data.Dataset.from_tensor_slices((_images(2, 8), [0, 1])).batch(2)
    arguments = {"num_classes": 3, **kwargs}
    num_classes = arguments.pop("num_classes")
    with pytest.raises(error, match=match):
        kft.augment.mix_dataset(ds, num_classes, **arguments)


def test_mixed_dataset_trains_a_categorical_model():
    """The documented MixUp path: soft labels + label_mode="categorical"."""
    inputs = keras.Input((16, 16, 3))
    base = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs), name="tiny")
    model = kft.build_image_classifier(base, 3, label_mode="categorical")
    ds = tf.data.Dataset.from_tensor_slices((_images(8, 16), [0, 1, 2, 0, 1, 2, 0, 1]))
    mixed = kft.augment.mix_dataset(ds.batch(4), 3, seed=0)
    history = model.fit(mixed, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["f1"][0] <= 1.0
