"""A tiny functional model with a marked backbone, and learnable tiny data."""

import keras
import numpy as np
import tensorflow as tf


def tiny_model(augment=False, num_classes=3, dropout=0.0):
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Conv2D(6, 3, name="c2"),
        ],
        name="backbone",
    )
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    if augment:
        x = keras.layers.RandomFlip("horizontal")(x)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def tiny_data(n=48, num_classes=3, batch_size=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = rng.uniform(0, 80, size=(n, 8, 8, 3)).astype("float32")
    x[..., 0] += 60.0 * y[:, None, None]  # learnable: class shifts the red channel
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
