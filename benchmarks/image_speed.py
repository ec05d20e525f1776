"""kerastune_ft vs the hand-written Keras transfer-learning recipe, on flowers.

Each run happens in its own subprocess (so peak memory is its own), baseline
and kerastune_ft back to back on the same data, and the result is a ratio.

    python benchmarks/image_speed.py                # every scenario
    python benchmarks/image_speed.py frozen fewshot # some of them

Scenarios (issue 5):
  frozen   MobileNetV2-0.35 ImageNet, 160 px, frozen, no augmentation
  augment  the same with flip + rotation augmentation
  nocache  identical model, data and epochs; fine_tune(cache_features=False)
           vs plain model.fit: the engine's own overhead
  fewshot  20 training images per class, default recipes

The baseline is the Keras transfer-learning guide's recipe: frozen
`base(x, training=False)`, GlobalAveragePooling, Dropout 0.5, Dense with L2
0.01, Adam, EarlyStopping(patience=3, restore_best_weights=True),
`image_dataset_from_directory`.
"""

import os
import pathlib
import sys
import time

from _common import print_result, spawn

SHARED = pathlib.Path(
    os.environ.get("KFT_SHARED", pathlib.Path(__file__).resolve().parents[2] / "shared")
)
FLOWERS = SHARED / "datasets" / "flowers"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"
SIZE = (160, 160)
MAX_EPOCHS = 20
SEED = 0
SCENARIOS = ("frozen", "augment", "nocache", "fewshot")


def _fewshot_dir(tmp):
    """A flowers/train copy (symlinks) with 20 images per class."""
    root = pathlib.Path(tmp) / "flowers_fewshot"
    if root.exists():
        return root
    for class_dir in sorted((FLOWERS / "train").iterdir()):
        target = root / class_dir.name
        target.mkdir(parents=True)
        for path in sorted(class_dir.iterdir())[:20]:
            (target / path.name).symlink_to(path)
    return root


def _train_dir(scenario):
    if scenario == "fewshot":
        return _fewshot_dir(os.environ.get("TMPDIR", "/tmp"))
    return FLOWERS / "train"


def run_baseline(scenario):
    import keras

    keras.utils.set_random_seed(SEED)
    start = time.perf_counter()
    train = keras.utils.image_dataset_from_directory(
        _train_dir(scenario), image_size=SIZE, batch_size=32, seed=SEED, verbose=False
    )
    val = keras.utils.image_dataset_from_directory(
        FLOWERS / "val", image_size=SIZE, batch_size=32, shuffle=False, verbose=False
    )
    base = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=str(WEIGHTS), input_shape=SIZE + (3,)
    )
    base.trainable = False
    inputs = keras.Input(SIZE + (3,))
    x = inputs
    if scenario == "augment":
        x = keras.layers.RandomFlip("horizontal")(x)
        x = keras.layers.RandomRotation(0.1)(x)
    # MobileNetV2's preprocess_input: pixels to [-1, 1].
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(5, kernel_regularizer=keras.regularizers.L2(0.01))(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        train,
        validation_data=val,
        epochs=MAX_EPOCHS,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
        ],
        verbose=0,
    )
    accuracy = model.evaluate(val, verbose=0, return_dict=True)["accuracy"]
    return {
        "seconds": time.perf_counter() - start,
        "val_accuracy": float(accuracy),
        "epochs": len(history.history["loss"]),
    }


def run_kft(scenario):
    """kerastune_ft's recipe, with where the time goes (phases in seconds).

    Phases: `import` (keras + kerastune_ft), `load` (listing and decoding the
    files), `build`, `backbone` (the pass that caches frozen features, from
    the engine's own report), `head` (the epochs on cached features),
    `evaluate`.
    """
    began = time.perf_counter()
    import keras

    import kerastune_ft as kft

    phases = {"import": time.perf_counter() - began}
    keras.utils.set_random_seed(SEED)
    start = time.perf_counter()
    data = kft.data.load_images(
        str(_train_dir(scenario)), image_size=SIZE, val_split=0.0, seed=SEED
    )
    val = kft.data.load_images(str(FLOWERS / "val"), image_size=SIZE, val_split=0.0)
    phases["load"] = time.perf_counter() - start
    augmentation = None
    if scenario == "augment":
        augmentation = [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.1),
        ]
    mark = time.perf_counter()
    model = kft.build_image_classifier(
        "mobilenet_v2",
        5,
        weights=str(WEIGHTS),
        backbone_kwargs={"alpha": 0.35},
        input_shape=SIZE + (3,),
        augmentation=augmentation,
    )
    phases["build"] = time.perf_counter() - mark
    # Few-shot measures the default recipe, so fine_tune picks its own epochs.
    epochs = None if scenario == "fewshot" else MAX_EPOCHS
    epoch_seconds = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epoch_seconds.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: epoch_seconds.__setitem__(
            -1, epoch_seconds[-1] + time.perf_counter()
        ),
    )
    mark = time.perf_counter()
    result = kft.fine_tune(
        model,
        data.train,
        val.train,
        epochs=epochs,
        seed=SEED,
        verbose=0,
        callbacks=[timer],
    )
    fit_seconds = time.perf_counter() - mark
    phases["head"] = sum(epoch_seconds)
    phases["backbone"] = fit_seconds - phases["head"]
    mark = time.perf_counter()
    accuracy = model.evaluate(val.train, verbose=0, return_dict=True)["accuracy"]
    phases["evaluate"] = time.perf_counter() - mark
    return {
        "seconds": time.perf_counter() - start,
        "val_accuracy": float(accuracy),
        "epochs": result.epochs_run,
        "cached": result.stages[0].cached,
        "phases": {name: round(value, 2) for name, value in phases.items()},
    }


def run_overhead(impl):
    """Identical model, data and epochs: plain model.fit vs fine_tune, no caching."""
    import keras

    import kerastune_ft as kft

    keras.utils.set_random_seed(SEED)
    data = kft.data.load_images(str(FLOWERS / "train"), image_size=SIZE, val_split=0.0)
    val = kft.data.load_images(str(FLOWERS / "val"), image_size=SIZE, val_split=0.0)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        5,
        weights=str(WEIGHTS),
        backbone_kwargs={"alpha": 0.35},
        input_shape=SIZE + (3,),
    )
    start = time.perf_counter()
    if impl == "baseline":
        model.fit(data.train, validation_data=val.train, epochs=3, verbose=0)
    else:
        kft.fine_tune(
            model,
            data.train,
            val.train,
            epochs=3,
            early_stopping=False,
            cache_features=False,
            schedule="constant",
            verbose=0,
        )
    accuracy = model.evaluate(val.train, verbose=0, return_dict=True)["accuracy"]
    return {
        "seconds": time.perf_counter() - start,
        "val_accuracy": float(accuracy),
        "epochs": 3,
    }


def _child(scenario, impl):
    if scenario == "nocache":
        result = run_overhead(impl)
    elif impl == "baseline":
        result = run_baseline(scenario)
    else:
        result = run_kft(scenario)
    print_result(result)


def main(argv):
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2])
        return
    scenarios = argv or list(SCENARIOS)
    print("| scenario | impl | wall s | ratio | val acc | epochs | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for scenario in scenarios:
        base = spawn(__file__, scenario, "baseline")
        ours = spawn(__file__, scenario, "kft")
        for impl, r in (("baseline", base), ("kerastune_ft", ours)):
            ratio = r["seconds"] / base["seconds"]
            print(
                f"| {scenario} | {impl} | {r['seconds']:.1f} | {ratio:.3f} | "
                f"{r['val_accuracy']:.4f} | {r['epochs']} | {r['peak_rss_mb']:.0f} |",
                flush=True,
            )
        if "phases" in ours:
            where = ", ".join(f"{k} {v:.2f}s" for k, v in ours["phases"].items())
            print(f"\nkerastune_ft {scenario}, where the time goes: {where}")


if __name__ == "__main__":
    main(sys.argv[1:])
