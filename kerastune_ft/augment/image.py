"""Image augmentation as Keras layers that live in the model.

`image_augmentation("standard")` returns a `keras.Sequential` of Keras
preprocessing layers. `kft.build_image_classifier(augmentation=...)` puts it
right after the model input, on raw 0-255 pixels: Keras' random layers only
act when `training=True` (in `fit`), so `predict` and `evaluate` see the
images unchanged and a saved model needs no separate preprocessing code.

Presets (all on 0-255 pixels):

- `"light"`: horizontal flip, rotation +-5% of a turn (18 degrees), zoom 10%.
- `"standard"`: horizontal flip, rotation 10%, zoom 15%, translation 10%,
  contrast 20%.
- `"strong"`: `"standard"` with larger ranges (rotation 15%, zoom 20%,
  translation 15%, contrast 30%), brightness 20%, then `RandAugment` (2
  random ops of strength 0.3) when the installed Keras has it.

MixUp and CutMix blend two images AND their labels. A layer inside the model
only sees images, so they cannot live there: use `mix_dataset` on the
training `tf.data.Dataset` instead (it returns one-hot soft labels, so build
the model with `label_mode="categorical"`).
"""

import keras

from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.data.batches import is_tf_dataset

__all__ = [
    "MIX_METHODS",
    "PRESETS",
    "image_augmentation",
    "mix_dataset",
]

PRESETS = ("light", "standard", "strong")
MIX_METHODS = ("mixup", "cutmix")

_VALUE_RANGE = (0, 255)


def _preset_layers(preset, seed):
    def s(offset):
        # Distinct seeds per layer so the layers do not move in lockstep.
        return None if seed is None else seed + offset

    flip = keras.layers.RandomFlip("horizontal", seed=s(0), name="random_flip")
    if preset == "light":
        return [
            flip,
            keras.layers.RandomRotation(0.05, seed=s(1), name="random_rotation"),
            keras.layers.RandomZoom(0.1, seed=s(2), name="random_zoom"),
        ]
    strong = preset == "strong"
    layers = [
        flip,
        keras.layers.RandomRotation(
            0.15 if strong else 0.1, seed=s(1), name="random_rotation"
        ),
        keras.layers.RandomZoom(0.2 if strong else 0.15, seed=s(2), name="random_zoom"),
        keras.layers.RandomTranslation(
            0.15 if strong else 0.1,
            0.15 if strong else 0.1,
            seed=s(3),
            name="random_translation",
        ),
        keras.layers.RandomContrast(
            0.3 if strong else 0.2,
            value_range=_VALUE_RANGE,
            seed=s(4),
            name="random_contrast",
        ),
    ]
    if strong:
        layers.append(
            keras.layers.RandomBrightness(
                0.2, value_range=_VALUE_RANGE, seed=s(5), name="random_brightness"
            )
        )
        if hasattr(keras.layers, "RandAugment"):
            layers.append(
                keras.layers.RandAugment(
                    value_range=_VALUE_RANGE,
                    num_ops=2,
                    factor=0.3,
                    seed=s(6),
                    name="rand_augment",
                )
            )
    return layers


def image_augmentation(augmentation="standard", *, seed=None, name="augmentation"):
    """Builds the in-model image augmentation block.

    Args:
        augmentation: a preset name (`"light"`, `"standard"`, `"strong"`), a
            list of Keras layers (applied in order), or a ready
            `keras.layers.Layer` (returned as is). Defaults to `"standard"`.
        seed: base random seed of the preset layers, for reproducible
            augmentation. Defaults to `None`.
        name: name of the returned `keras.Sequential`. Defaults to
            `"augmentation"`.

    Returns:
        A `keras.layers.Layer` mapping a batch of 0-255 images to augmented
        images of the same shape; an identity outside training.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> aug = kft.augment.image_augmentation("light", seed=1)
    >>> images = np.random.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    >>> bool(np.allclose(aug(images, training=False), images))
    True
    >>> aug(images, training=True).shape
    TensorShape([2, 32, 32, 3])
    """
    if seed is not None:
        check_number("seed", seed, low=0, integer=True)
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation
    if isinstance(augmentation, str):
        check_choice(
            "augmentation",
            augmentation,
            PRESETS,
            hint="Or pass a list of Keras layers, e.g. "
            '[keras.layers.RandomFlip("horizontal")].',
        )
        return keras.Sequential(_preset_layers(augmentation, seed), name=name)
    if isinstance(augmentation, list | tuple):
        for i, layer in enumerate(augmentation):
            if not isinstance(layer, keras.layers.Layer):
                raise TypeError(
                    "Every entry of an `augmentation` list must be a Keras layer. "
                    f"Received: augmentation[{i}]={layer!r} of type "
                    f"{type(layer).__name__}."
                )
            if isinstance(layer, _label_mixing_layers()):
                raise ValueError(
                    f"{type(layer).__name__} mixes labels and cannot act inside "
                    "the model (a model layer only sees images). Apply it to the "
                    "training dataset with `kft.augment.mix_dataset` instead."
                )
        return keras.Sequential(list(augmentation), name=name)
    raise TypeError(
        '`augmentation` must be "light", "standard", "strong", a list of Keras '
        f"layers, or None. Received: augmentation={augmentation!r} of type "
        f"{type(augmentation).__name__}."
    )


def _label_mixing_layers():
    return tuple(
        getattr(keras.layers, n)
        for n in ("MixUp", "CutMix")
        if hasattr(keras.layers, n)
    )


def mix_dataset(dataset, num_classes, *, method="mixup", strength=None, seed=None):
    """Applies MixUp or CutMix to a batched `(images, labels)` dataset.

    Integer labels are one-hot encoded first; the mixed labels are soft
    one-hot vectors, so compile the model for one-hot labels
    (`kft.build_image_classifier(..., label_mode="categorical")`). Use it on
    the training set only.

    Args:
        dataset: a batched `tf.data.Dataset` of `(images, labels)`, images
            0-255 of shape `(batch, h, w, 3)`, labels integer ids or one-hot.
        num_classes: number of classes.
        method: `"mixup"` or `"cutmix"`. Defaults to `"mixup"`.
        strength: `alpha` of `keras.layers.MixUp` (default 0.2) or `factor`
            of `keras.layers.CutMix` (default 1.0). Defaults to `None` (the
            Keras defaults).
        seed: random seed. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of `(mixed_images, soft_one_hot_labels)`.

    Example:

    >>> import numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> x = np.random.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    >>> ds = tf.data.Dataset.from_tensor_slices((x, [0, 1, 2, 0])).batch(4)
    >>> images, labels = next(iter(kft.augment.mix_dataset(ds, 3, seed=0)))
    >>> labels.shape
    TensorShape([4, 3])
    """
    if not is_tf_dataset(dataset):
        raise TypeError(
            "`dataset` must be a batched tf.data.Dataset of (images, labels): "
            "mix_dataset maps it with MixUp or CutMix in tf.data (TensorFlow). "
            f"Received: dataset of type {type(dataset).__name__}. Without "
            "TensorFlow, build the model with label_mode='categorical' and use "
            "keras.layers.MixUp on your own batches, or install TensorFlow."
        )
    tf = import_tensorflow("kft.augment.mix_dataset")

    check_choice("method", method, MIX_METHODS)
    check_number("num_classes", num_classes, low=2, integer=True)
    if strength is not None:
        check_number("strength", strength, low=0.0, low_inclusive=False)
    if method == "mixup":
        kwargs = {} if strength is None else {"alpha": float(strength)}
        layer = keras.layers.MixUp(seed=seed, **kwargs)
    else:
        kwargs = {} if strength is None else {"factor": float(strength)}
        layer = keras.layers.CutMix(seed=seed, **kwargs)

    def mix(images, labels):
        images = tf.cast(images, "float32")
        if labels.shape.rank == 1:
            labels = tf.one_hot(tf.cast(labels, "int32"), num_classes)
        out = layer({"images": images, "labels": tf.cast(labels, "float32")})
        return out["images"], out["labels"]

    return dataset.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
