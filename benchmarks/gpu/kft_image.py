"""kerastune_ft's image path on flowers (160 px), for the GPU comparisons.

`kft.data.load_images` (decoded once with Pillow, TensorFlow-free batches
off the TF backend), `kft.build_image_classifier`, `kft.fine_tune` with
`epochs=20` (frozen backbone: features cached once, then head epochs) and
`kft.evaluate`, with where the time goes.

    KERAS_BACKEND=jax python benchmarks/gpu/kft_image.py \
        [--backbone mobilenet|lite0] [--mode frozen|full] \
        [--mixed-precision mixed_bfloat16] [--large 50000]

`--backbone lite0` loads EfficientNet-Lite0 through keras-hub from the
timm-format folder (the weights `timm_peer.py` uses); `--mode full` adds
`unfreeze="all"` for 5 epochs at 1e-4, as `timm_peer.py --mode full` does.
`--large N` trains 3 head epochs on N images made from the photos (the
backbone pass dominates). JAX's persistent compilation cache is on when
`JAX_COMPILATION_CACHE_DIR` is set (see `run.py`'s `kft_cold` / `kft_warm`).
"""

import time

began = time.perf_counter()
import _gpu  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastune_ft as kft  # noqa: E402

FULL_EPOCHS = 5


def build(backbone, mixed_precision):
    options = {"mixed_precision": mixed_precision} if mixed_precision else {}
    if backbone == "lite0":
        return kft.build_image_classifier(
            str(_gpu.LITE0), 5, input_shape=_gpu.SIZE + (3,), seed=_gpu.SEED, **options
        )
    return kft.build_image_classifier(
        "mobilenet_v2",
        5,
        weights=str(_gpu.MOBILENET),
        backbone_kwargs={"alpha": 0.35},
        input_shape=_gpu.SIZE + (3,),
        seed=_gpu.SEED,
        **options,
    )


def load(large):
    if not large:
        train = kft.data.load_images(
            str(_gpu.FLOWERS / "train"), image_size=_gpu.SIZE, val_split=0.0
        )
        val = kft.data.load_images(
            str(_gpu.FLOWERS / "val"), image_size=_gpu.SIZE, val_split=0.0
        )
        return train.train, val.train
    (x, y), (xv, yv) = _gpu.flowers(threads=16)
    big, _ = _gpu.synthetic_set(x, large)
    labels = y[np.random.default_rng(_gpu.SEED).integers(0, len(y), large)]
    train = kft.data.load_images((big, labels), image_size=_gpu.SIZE, val_split=0.0)
    val = kft.data.load_images((xv, yv), image_size=_gpu.SIZE, val_split=0.0)
    return train.train, val.train


def main():
    args = _gpu.child_args()
    monitor = _gpu.maybe_monitor()
    import_s = time.perf_counter() - began
    backbone = args.get("--backbone", "mobilenet")
    mode = args.get("--mode", "frozen")
    large = int(args.get("--large", 0))
    mixed_precision = args.get("--mixed-precision")
    keras.utils.set_random_seed(_gpu.SEED)
    phases = _gpu.Phases()
    with phases("load"):
        train, val = load(large)
    with phases("build"):
        model = build(backbone, mixed_precision)
    timer = _gpu.EpochTimer()
    options = {}
    if mode == "full":
        options["unfreeze"] = [
            {"top": "all", "epochs": FULL_EPOCHS, "learning_rate": 1e-4}
        ]
    mark = time.perf_counter()
    result = kft.fine_tune(
        model,
        train,
        val,
        epochs=3 if large else _gpu.MAX_EPOCHS,
        seed=_gpu.SEED,
        verbose=0,
        callbacks=[timer],
        **options,
    )
    fit_s = time.perf_counter() - mark
    stages = [
        {
            "name": s.name,
            "epochs": s.last_epoch - s.first_epoch + 1,
            "seconds": round(s.seconds, 2),
            "cached": s.cached,
        }
        for s in result.stages
    ]
    head_epochs = result.stages[0].last_epoch - result.stages[0].first_epoch + 1
    epochs_head = sum(timer.seconds[:head_epochs])
    phases.seconds["backbone_pass_and_setup"] = result.stages[0].seconds - epochs_head
    phases.seconds["head_epochs"] = epochs_head
    if len(result.stages) > 1:
        phases.seconds["unfreeze_stages"] = fit_s - result.stages[0].seconds
    with phases("evaluate"):
        evaluation = kft.evaluate(model, val)
        accuracy = evaluation.results["test"]["accuracy"]
    out = {
        "impl": "kerastune_ft",
        "backend": keras.backend.backend(),
        "backbone": backbone,
        "mode": mode,
        "mixed_precision": mixed_precision,
        "train_examples": large or 2934,
        "seconds": round(phases.total(), 2),
        "import_s": round(import_s, 2),
        "val_accuracy": round(float(accuracy), 4),
        "epochs": result.stages[-1].last_epoch,
        "best_epoch": result.best_epoch,
        "stages": stages,
        "phases": {k: round(v, 2) for k, v in phases.seconds.items()},
        **_gpu.epoch_summary(timer.seconds),
    }
    if monitor:
        out["jax"] = monitor.summary()
    _gpu.emit(out)


if __name__ == "__main__":
    main()
