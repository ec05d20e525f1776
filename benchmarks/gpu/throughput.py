"""The backbone pass's limit on JAX: host-fed `predict` vs inputs on the device.

MobileNetV2-0.35 at 160 px with its pixel scaling and global pooling (what
`kft.fine_tune` runs once to cache features), and optionally keras-hub's
EfficientNet-Lite0 from the timm-format folder:

- `predict`: `model.predict(x)` from host NumPy arrays, float32 pixels (what
  a tf.data/NumPy pipeline of float32 batches feeds) and uint8 pixels (the
  model casts on the device: 4x fewer bytes to copy);
- `device`: the uint8 images put on the GPU once (`jax.device_put`), then a
  jitted `model.stateless_call` per batch, dispatched asynchronously;
- the same under the `mixed_bfloat16` policy;
- `--large N`: N images made from the flowers photos by random crops,
  flips and resizes (in memory), through `predict` (uint8) and `device`.

    KERAS_BACKEND=jax python benchmarks/gpu/throughput.py [--large 50000] [--lite0 1]

Images per second are the median of 3 timed passes after a warm-up pass (the
compile time of the first pass is reported apart).
"""

import time

import _gpu
import keras
import numpy as np


def pooled_model(backbone, preprocessing, dtype_in):
    inputs = keras.Input(_gpu.SIZE + (3,), dtype=dtype_in)
    h = preprocessing(inputs)
    h = backbone(h, training=False)
    outputs = keras.layers.GlobalAveragePooling2D(dtype="float32")(h)
    return keras.Model(inputs, outputs)


def mobilenet(dtype_in="float32"):
    base = keras.applications.MobileNetV2(
        alpha=0.35,
        include_top=False,
        weights=str(_gpu.MOBILENET),
        input_shape=_gpu.SIZE + (3,),
    )
    return pooled_model(base, keras.layers.Rescaling(1 / 127.5, offset=-1), dtype_in)


def lite0(dtype_in="float32"):
    import keras_hub

    base = keras_hub.models.Backbone.from_preset(str(_gpu.LITE0))
    return pooled_model(base, keras.layers.Rescaling(1 / 127.5, offset=-1), dtype_in)


def timed_passes(run, n_images, repeats=3):
    """(first pass seconds, median images/s of the next `repeats` passes)."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(n_images / (time.perf_counter() - start))
    return first, float(np.median(rates))


def host_predict(model, x, batch, repeats=3):
    def run():
        return model.predict(x, batch_size=batch, verbose=0)

    return timed_passes(run, len(x), repeats)


def device_resident(model, x, batch, repeats=3):
    """Inputs on the device once; a jitted stateless call per batch."""
    import jax

    batch = min(batch, len(x))  # a CPU rehearsal's few images
    n = (len(x) // batch) * batch
    batches = [jax.device_put(x[i : i + batch]) for i in range(0, n, batch)]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, xb):
        out, _ = model.stateless_call(trainable, non_trainable, xb, training=False)
        return out

    def run():
        outs = [forward(trainable, non_trainable, xb) for xb in batches]
        jax.block_until_ready(outs)
        return outs

    first, rate = timed_passes(run, n, repeats)
    return first, rate, np.concatenate([np.asarray(o) for o in run()])


def main():
    args = _gpu.child_args()
    monitor = _gpu.maybe_monitor()
    rows = []

    def row(what, batch, first, rate, note=""):
        rows.append(
            {
                "what": what,
                "batch": batch,
                "first_pass_s": round(first, 2),
                "images_per_s": round(rate),
                "note": note,
            }
        )
        print(
            f"  {what:<44} batch {batch:>5}: {rate:>9.0f} img/s "
            f"(first pass {first:.1f} s) {note}",
            flush=True,
        )

    start = time.perf_counter()
    (x, _), _ = _gpu.flowers(threads=16)
    x = np.concatenate([x, x[:, :, ::-1]])  # 5,868: the photos and their mirrors
    print(f"decoded {len(x)} images in {time.perf_counter() - start:.1f} s")
    xf = x.astype("float32")

    float_model = mobilenet("float32")
    for batch in (32, 256):
        row(
            "mobilenet predict, float32 pixels from host",
            batch,
            *host_predict(float_model, xf, batch),
        )
    uint8_model = mobilenet("uint8")
    row(
        "mobilenet predict, uint8 pixels from host",
        256,
        *host_predict(uint8_model, x, 256),
    )
    reference = float_model.predict(xf[:1024], batch_size=256, verbose=0)
    for batch in (256, 1024):
        first, rate, feats = device_resident(uint8_model, x, batch)
        err = float(
            np.linalg.norm(feats[:1024] - reference) / np.linalg.norm(reference)
        )
        row(
            "mobilenet on-device inputs, jit stateless_call",
            batch,
            first,
            rate,
            f"rel.err vs predict {err:.1e}",
        )

    keras.config.set_dtype_policy("mixed_bfloat16")
    bf16_model = mobilenet("uint8")
    row(
        "mobilenet predict bf16, uint8 pixels from host",
        256,
        *host_predict(bf16_model, x, 256),
    )
    first, rate, feats = device_resident(bf16_model, x, 1024)
    err = float(np.linalg.norm(feats[:1024] - reference) / np.linalg.norm(reference))
    row("mobilenet on-device bf16", 1024, first, rate, f"rel.err {err:.1e}")
    keras.config.set_dtype_policy("float32")

    if args.get("--lite0") == "1":
        lite = lite0("uint8")
        row(
            "lite0 (keras-hub) predict, uint8 from host",
            256,
            *host_predict(lite, x, 256),
        )
        first, rate, _ = device_resident(lite, x, 1024)
        row("lite0 (keras-hub) on-device inputs", 1024, first, rate)

    large = int(args.get("--large", 0))
    if large:
        start = time.perf_counter()
        big, _ = _gpu.synthetic_set(x, large)
        made = time.perf_counter() - start
        print(f"made {large} images in {made:.1f} s")
        row(
            f"{large} images: predict, uint8 from host",
            256,
            *host_predict(uint8_model, big, 256, repeats=1),
        )
        row(
            f"{large} images: predict, uint8 from host",
            1024,
            *host_predict(uint8_model, big, 1024, repeats=1),
        )
        first, rate, _ = device_resident(uint8_model, big, 1024, repeats=2)
        row(f"{large} images: on-device inputs", 1024, first, rate)
    result = {"impl": "throughput", "device": _gpu.device_name(), "rows": rows}
    if monitor:
        result["jax"] = monitor.summary()
    _gpu.emit(result)


if __name__ == "__main__":
    main()
