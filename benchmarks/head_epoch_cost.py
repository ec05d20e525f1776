"""Where one epoch of a head on cached features goes (issue #16 follow-up).

    python benchmarks/head_epoch_cost.py

Two parts, in one process, same data shape as the flowers benchmark (2,934
training and 736 validation vectors of 1,280 features, batch 32, 5 classes):

  engine  `kft.fine_tune` on a frozen MobileNetV2-0.35 (random weights, 32 px:
          only the head's cost matters), 21 epochs, early stopping off; a
          callback splits each epoch into training, validation and the rest.
  keras   the same head written in plain Keras (`Sequential([Dropout, Dense])`)
          with `fit`, in variants: steps per call, optimizer, metrics, Dropout.

Prints milliseconds per epoch (median of epochs 2-21 / of 10 epochs).
"""

import time

import keras
import numpy as np

import kerastune_ft as kft
from kerastune_ft.builders.head import classification_metrics, make_adamw

SEED = 0
TRAIN, VAL, FEATURES, CLASSES, BATCH = 2934, 736, 1280, 5, 32


class EpochParts(keras.callbacks.Callback):
    """Records, per epoch, the seconds of training, validation and the rest."""

    def on_train_begin(self, logs=None):
        self.parts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.test_begin = time.perf_counter()

    def on_test_end(self, logs=None):
        self.test_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.parts.append(
            (
                self.test_begin - self.begin,
                self.test_end - self.test_begin,
                end - self.test_end,
            )
        )


def engine_epoch():
    import tensorflow as tf  # here: benchmarks/gpu/head_steps.py imports this file

    rng = np.random.default_rng(SEED)
    images = rng.uniform(0, 255, (TRAIN, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, CLASSES, TRAIN)
    val_images = rng.uniform(0, 255, (VAL, 32, 32, 3)).astype("float32")
    val_labels = rng.integers(0, CLASSES, VAL)
    train = tf.data.Dataset.from_tensor_slices((images, labels))
    train = train.shuffle(TRAIN, seed=SEED).batch(BATCH)
    val = tf.data.Dataset.from_tensor_slices((val_images, val_labels)).batch(BATCH)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        CLASSES,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
    )
    parts = EpochParts()
    kft.fine_tune(
        model,
        train,
        val,
        epochs=21,
        early_stopping=False,
        verbose=0,
        seed=SEED,
        callbacks=[parts],
    )
    train_s, val_s, rest_s = np.median(np.array(parts.parts[1:]), axis=0)
    print(
        f"engine: training {train_s * 1e3:.0f} ms, validation {val_s * 1e3:.0f} ms, "
        f"rest {rest_s * 1e3:.0f} ms, epoch {(train_s + val_s + rest_s) * 1e3:.0f} ms"
    )


def keras_epoch(name, optimizer, metrics, steps_per_execution, dropout=True):
    import tensorflow as tf

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(TRAIN, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, TRAIN)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(TRAIN, seed=SEED)
    data = data.batch(BATCH).prefetch(tf.data.AUTOTUNE)
    layers = [keras.Input((FEATURES,))]
    if dropout:
        layers.append(keras.layers.Dropout(0.2))
    layers.append(
        keras.layers.Dense(
            CLASSES,
            activation="softmax",
            kernel_regularizer=keras.regularizers.L2(1e-4),
        )
    )
    model = keras.Sequential(layers)
    model.compile(
        optimizer(),
        "sparse_categorical_crossentropy",
        metrics=metrics(),
        steps_per_execution=steps_per_execution,
    )
    model.fit(data, epochs=2, verbose=0)  # tracing and warm-up
    start = time.perf_counter()
    model.fit(data, epochs=10, verbose=0)
    print(f"keras: {name:58s} {(time.perf_counter() - start) * 100:7.1f} ms/epoch")


def main():
    keras.utils.set_random_seed(SEED)
    engine_epoch()
    steps = -(-TRAIN // BATCH)

    def adam():
        return keras.optimizers.Adam()

    def accuracy():
        return ["accuracy"]

    def kft_metrics():
        return classification_metrics(CLASSES)

    keras_epoch("Adam, accuracy, 1 step per call", adam, accuracy, 1)
    keras_epoch(f"Adam, accuracy, {steps} steps per call", adam, accuracy, steps)
    keras_epoch("kft AdamW, accuracy", make_adamw, accuracy, steps)
    keras_epoch("kft AdamW, kft metrics (macro P/R/F1)", make_adamw, kft_metrics, steps)
    keras_epoch("Adam, no metrics", adam, list, steps)
    keras_epoch("Adam, no metrics, no Dropout", adam, list, steps, dropout=False)


if __name__ == "__main__":
    main()
