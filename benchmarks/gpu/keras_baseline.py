"""The hand-written Keras transfer-learning recipe, on any Keras backend.

Flowers at 160 px, MobileNetV2-0.35 from the weights file, as the Keras
transfer-learning guide writes it: Pillow decode to NumPy, frozen
`base(x, training=False)`, GlobalAveragePooling, Dropout 0.5, Dense (L2
0.01), Adam, `EarlyStopping(patience=3, restore_best_weights=True)`, at most
20 epochs, batch 32, `fit` on NumPy arrays. The same recipe as
`benchmarks/image_speed.py`'s baseline, with NumPy instead of tf.data.

    KERAS_BACKEND=jax python benchmarks/gpu/keras_baseline.py [--dtype mixed_bfloat16]

Prints one `RESULT {json}` line: wall seconds from decode to evaluation,
validation accuracy, and where the time went.
"""

import time

began = time.perf_counter()
import _gpu  # noqa: E402
import keras  # noqa: E402


def main():
    args = _gpu.child_args()
    monitor = _gpu.maybe_monitor()
    import_s = time.perf_counter() - began
    if args.get("--dtype"):
        keras.config.set_dtype_policy(args["--dtype"])
    keras.utils.set_random_seed(_gpu.SEED)
    phases = _gpu.Phases()
    with phases("decode"):
        (x, y), (xv, yv) = _gpu.flowers()
    with phases("build"):
        base = keras.applications.MobileNetV2(
            alpha=0.35,
            include_top=False,
            weights=str(_gpu.MOBILENET),
            input_shape=_gpu.SIZE + (3,),
        )
        base.trainable = False
        inputs = keras.Input(_gpu.SIZE + (3,))
        h = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
        h = base(h, training=False)
        h = keras.layers.GlobalAveragePooling2D()(h)
        h = keras.layers.Dropout(0.5)(h)
        outputs = keras.layers.Dense(
            5, kernel_regularizer=keras.regularizers.L2(0.01), dtype="float32"
        )(h)
        model = keras.Model(inputs, outputs)
        model.compile(
            optimizer=keras.optimizers.Adam(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    timer = _gpu.EpochTimer()
    with phases("fit"):
        history = model.fit(
            x.astype("float32"),
            y,
            batch_size=32,
            validation_data=(xv.astype("float32"), yv),
            epochs=_gpu.MAX_EPOCHS,
            callbacks=[
                keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True),
                timer,
            ],
            verbose=0,
        )
    with phases("evaluate"):
        accuracy = model.evaluate(
            xv.astype("float32"), yv, batch_size=32, verbose=0, return_dict=True
        )["accuracy"]
    result = {
        "impl": "keras baseline",
        "backend": keras.backend.backend(),
        "dtype": keras.config.dtype_policy().name,
        "seconds": round(phases.total(), 2),
        "import_s": round(import_s, 2),
        "val_accuracy": round(float(accuracy), 4),
        "epochs": len(history.history["loss"]),
        "phases": {k: round(v, 2) for k, v in phases.seconds.items()},
        **_gpu.epoch_summary(timer.seconds),
    }
    if monitor:
        result["jax"] = monitor.summary()
    _gpu.emit(result)


if __name__ == "__main__":
    main()
