"""Helpers shared by the GPU benchmarks (not part of the package).

Assets are found in the `KFT_SHARED` layout (`weights/...`,
`datasets/flowers/{train,val}/<class>/*.jpg`); on the GPU machine that is the
carried transfer copy `.gpu/shared` made by `prepare_assets.py`.
"""

import collections
import concurrent.futures
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("KFT_SHARED", REPO.parent / "shared"))
FLOWERS = SHARED / "datasets" / "flowers"
MOBILENET = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"
LITE0 = SHARED / "weights" / "efficientnet_lite0_timm_format"
SIZE = (160, 160)
SEED = 0
# KFT_BENCH_TINY=N: N images per class and split, 2 epochs (a CPU rehearsal).
TINY = int(os.environ.get("KFT_BENCH_TINY", "0"))
MAX_EPOCHS = 2 if TINY else 20


def decode_folder(root, size=SIZE, threads=None):
    """Decodes `root/<class>/*` with Pillow into uint8 `(N, H, W, 3)` and labels.

    Bilinear resize to `size` (as `kft.data.load_images` and
    `image_dataset_from_directory` do); `threads=None` decodes in one loop.
    """
    from PIL import Image

    root = pathlib.Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((root / name).iterdir())[: TINY or None]
    ]

    def read(item):
        with Image.open(item[0]) as img:
            img = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)

    if threads:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            images = list(pool.map(read, files))
    else:
        images = [read(item) for item in files]
    labels = np.array([label for _, label in files], dtype=np.int32)
    return np.stack(images), labels, classes


def flowers(size=SIZE, threads=None):
    """`(x_train, y_train), (x_val, y_val)` of the flowers photos, uint8."""
    x, y, _ = decode_folder(FLOWERS / "train", size, threads)
    xv, yv, _ = decode_folder(FLOWERS / "val", size, threads)
    return (x, y), (xv, yv)


def synthetic_set(x, count, size=SIZE, seed=SEED):
    """`count` images made from `x` by random crops, flips and resizes (uint8)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((count, *size, 3), dtype=np.uint8)

    def make(i):
        src = x[rng_index[i]]
        h, w = src.shape[:2]
        ch, cw = int(h * crops[i]), int(w * crops[i])
        top, left = int((h - ch) * offs[i, 0]), int((w - cw) * offs[i, 1])
        img = Image.fromarray(src[top : top + ch, left : left + cw])
        img = img.resize((size[1], size[0]), Image.BILINEAR)
        arr = np.asarray(img)
        out[i] = arr[:, ::-1] if flips[i] else arr

    rng_index = rng.integers(0, len(x), count)
    crops = rng.uniform(0.6, 1.0, count)
    offs = rng.uniform(0.0, 1.0, (count, 2))
    flips = rng.integers(0, 2, count).astype(bool)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 4) as pool:
        list(pool.map(make, range(count)))
    labels = np.zeros(count, dtype=np.int32)
    return out, labels


class Phases:
    """Wall-clock phases: `with phases("decode"): ...`; `phases.seconds`."""

    def __init__(self):
        self.seconds = collections.OrderedDict()
        self.began = time.perf_counter()

    def __call__(self, name):
        phases = self

        class _Timer:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                took = time.perf_counter() - self.start
                phases.seconds[name] = phases.seconds.get(name, 0.0) + took

        return _Timer()

    def total(self):
        return time.perf_counter() - self.began


class JaxCompileMonitor:
    """Sums JAX's tracing, lowering and XLA compile time, and cache hits.

    Reads `jax.monitoring` events: `/jax/core/compile/*_duration` (a
    persistent-cache read is counted inside the backend compile event) and
    `/jax/compilation_cache/cache_hits` / `cache_misses`.
    """

    def __init__(self):
        import jax

        self.durations = collections.Counter()
        self.counts = collections.Counter()
        self.by_function = collections.defaultdict(list)
        jax.monitoring.register_event_duration_secs_listener(self._duration)
        jax.monitoring.register_event_listener(self._event)

    def _duration(self, event, duration, **kwargs):
        if event.startswith("/jax/core/compile/"):
            key = event.rsplit("/", 1)[-1].replace("_duration", "")
            self.durations[key] += duration
            self.counts[key] += 1
            if key == "backend_compile":
                self.by_function[kwargs.get("fun_name", "?")].append(duration)

    def _event(self, event, **kwargs):
        if event.startswith("/jax/compilation_cache/"):
            self.counts[event.rsplit("/", 1)[-1]] += 1

    def summary(self):
        return {
            "compile_s": round(sum(self.durations.values()), 2),
            "backend_compile_s": round(self.durations["backend_compile"], 2),
            "trace_s": round(self.durations["jaxpr_trace"], 2),
            "lower_s": round(self.durations["jaxpr_to_mlir_module"], 2),
            "xla_compiles": self.counts["backend_compile"],
            "cache_hits": self.counts["cache_hits"],
            "cache_misses": self.counts["cache_misses"],
            "slowest": [
                [name, round(sum(times), 2), len(times)]
                for name, times in sorted(
                    self.by_function.items(), key=lambda kv: -sum(kv[1])
                )[:8]
            ],
        }


def maybe_monitor():
    """A `JaxCompileMonitor` on the JAX backend, else `None`."""
    import keras

    if keras.backend.backend() != "jax":
        return None
    return JaxCompileMonitor()


class EpochTimer:
    """A Keras callback recording each epoch's wall time (first one apart)."""

    def __new__(cls):
        import keras

        seconds = []

        def begin(epoch, logs):
            seconds.append(-time.perf_counter())

        def end(epoch, logs):
            seconds[-1] += time.perf_counter()

        callback = keras.callbacks.LambdaCallback(
            on_epoch_begin=begin, on_epoch_end=end
        )
        callback.seconds = seconds
        return callback


def epoch_summary(seconds):
    """First epoch, median of the others, and their sum, in seconds."""
    if not seconds:
        return {}
    rest = seconds[1:]
    return {
        "epochs": len(seconds),
        "first_epoch_s": round(seconds[0], 2),
        "later_epoch_median_s": round(float(np.median(rest)), 3) if rest else None,
        "epochs_s": round(sum(seconds), 2),
    }


def device_name():
    try:
        import jax

        return str(jax.devices()[0].device_kind)
    except Exception:  # noqa: BLE001 - only a label
        return "?"


def emit(result):
    """Prints the child's `RESULT {json}` line with its peak memory."""
    result["peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print("RESULT " + json.dumps(result, default=float), flush=True)


def child_args():
    """`--key value` pairs after the script name, as a dict of strings."""
    args = sys.argv[1:]
    return dict(zip(args[::2], args[1::2], strict=False))
