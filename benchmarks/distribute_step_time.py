"""Training step time on 1 vs 2 logical CPU devices (issue 10).

Each configuration runs in its own process, because the CPU can only be split
into logical devices before TensorFlow initializes:

  1 device   the default strategy
  2 devices  MirroredStrategy over 2 logical CPU devices of the same CPU

Model: MobileNetV2-0.35 (random weights: step time does not depend on
them) at 96x96 px, the whole backbone unfrozen (`kft.unfreeze(model,
"all")`), 3 classes, synthetic images; global batch 32 (16 per replica with
2 devices). The median of the step times after 3 warm-up steps is reported.
On a 2-core CPU the two logical devices share the same cores, so no speed-up
is expected: the measurement shows the cost of the replication (splitting the
batch, all-reducing the gradients).

    python benchmarks/distribute_step_time.py          # prints a table
    python benchmarks/distribute_step_time.py --write  # also updates RESULTS.md
"""

import os
import sys
import time

from _common import print_result, spawn, write_section

GLOBAL_BATCH = 32
STEPS = 24
WARMUP = 3
SIZE = 96


def _child(devices):
    import keras
    import numpy as np
    import tensorflow as tf

    import kerastune_ft as kft

    cpu = tf.config.list_physical_devices("CPU")[0]
    if devices > 1:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices
        )
        names = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(names)
    else:
        strategy = None
    keras.utils.set_random_seed(0)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(SIZE, SIZE, 3),
        backbone_kwargs={"alpha": 0.35},
        strategy=strategy,
    )
    with kft.distribute.strategy_scope(strategy):
        kft.unfreeze(model, "all", learning_rate=1e-4)
    rng = np.random.default_rng(0)
    n = GLOBAL_BATCH * STEPS
    x = rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")
    y = np.arange(n) % 3
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).cache()

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, callbacks=[timer])
    steady = sorted(timer.times[WARMUP:])
    median = steady[len(steady) // 2]
    print_result(
        {
            "devices": devices,
            "replicas": kft.distribute.num_replicas(strategy),
            "strategy": type(strategy).__name__ if strategy else "default",
            "median_step_ms": median * 1000,
            "images_per_s": GLOBAL_BATCH / median,
            "first_step_s": timer.times[0],
            "fit_s": time.perf_counter() - started,
        }
    )


def main(argv):
    if argv[:1] == ["--child"]:
        _child(int(argv[1]))
        return
    rows = [spawn(__file__, str(devices)) for devices in (1, 2)]
    lines = [
        "| devices | strategy | replicas | per-replica batch | median step (ms) "
        "| images/s | first step (s) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['devices']} | {r['strategy']} | {r['replicas']} | "
            f"{GLOBAL_BATCH // r['replicas']} | {r['median_step_ms']:.0f} | "
            f"{r['images_per_s']:.0f} | {r['first_step_s']:.1f} |"
        )
    ratio = rows[1]["median_step_ms"] / rows[0]["median_step_ms"]
    body = (
        f"MobileNetV2-0.35, {SIZE}x{SIZE} px, whole backbone trainable, global "
        f"batch {GLOBAL_BATCH}, median of {STEPS - WARMUP} steps after {WARMUP} "
        f"warm-up steps, os.cpu_count()={os.cpu_count()}.\n\n"
        + "\n".join(lines)
        + f"\n\n2 logical devices / 1 device step time: {ratio:.2f}x. Both "
        "logical devices share the same 2 CPU cores, so no speed-up is "
        "expected here; the figure is the cost of replication on CPU."
    )
    print(body)
    if "--write" in argv:
        write_section(
            "distribute_step_time",
            "python benchmarks/distribute_step_time.py --write",
            body,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
