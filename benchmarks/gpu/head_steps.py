"""Where a head epoch on cached features goes under JAX (issue #18).

    KERAS_BACKEND=jax python benchmarks/gpu/head_steps.py [--profile FILE]

The flowers benchmark's shapes (2,934 training and 736 validation vectors of
1,280 features, batch 32, 5 classes): milliseconds per epoch (median of
epochs 2-21) of a plain-Keras head (`Sequential([Dropout, Dense])`, Adam,
accuracy) on arrays and on a `kft.data.ArrayBatches`, and of `kft.fine_tune`
on a frozen MobileNetV2-0.35 at 32 px (random weights: only the head's cost
matters). With `--profile`, a cProfile of the fine_tune run is written.
"""

import cProfile
import os
import pstats
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from head_epoch_cost import EpochParts  # noqa: E402

import kerastune_ft as kft  # noqa: E402

TRAIN, VAL, FEATURES, CLASSES, BATCH = 2934, 736, 1280, 5, 32


def plain(x, y, xv, yv, batches):
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    parts = EpochParts()
    if batches:
        data = dict(x=kft.data.ArrayBatches(x, y, BATCH, shuffle=True, seed=0))
    else:
        data = dict(x=x, y=y, batch_size=BATCH, shuffle=True)
    model.fit(**data, validation_data=(xv, yv), epochs=21, verbose=0, callbacks=[parts])
    return np.median(np.array(parts.parts[1:]), axis=0)


def engine(profile):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (TRAIN, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, CLASSES, TRAIN)
    val_images = rng.uniform(0, 255, (VAL, 32, 32, 3)).astype("float32")
    val_labels = rng.integers(0, CLASSES, VAL)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        CLASSES,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
    )
    parts = EpochParts()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    kft.fine_tune(
        model,
        (images, labels),
        (val_images, val_labels),
        epochs=21,
        early_stopping=False,
        verbose=0,
        seed=0,
        callbacks=[parts],
        batch_size=BATCH,
    )
    if profiler:
        profiler.disable()
        with open(profile, "w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(40)
    return np.median(np.array(parts.parts[1:]), axis=0)


def main(argv):
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(TRAIN, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, TRAIN)
    xv = rng.normal(size=(VAL, FEATURES)).astype("float32")
    yv = rng.integers(0, CLASSES, VAL)
    print("backend", keras.backend.backend())
    for name, run in (
        ("plain keras, arrays", lambda: plain(x, y, xv, yv, False)),
        ("plain keras, ArrayBatches", lambda: plain(x, y, xv, yv, True)),
        ("kft.fine_tune", lambda: engine(profile)),
    ):
        start = time.perf_counter()
        train_s, val_s, rest_s = run()
        print(
            f"{name}: training {train_s * 1e3:.1f} ms, validation {val_s * 1e3:.1f} "
            f"ms, rest {rest_s * 1e3:.1f} ms per epoch; run {time.perf_counter() - start:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
