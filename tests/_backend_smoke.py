"""The image path on a Keras backend without TensorFlow, in one process.

TensorFlow is hidden from import (every `sys.meta_path` finder answers as if
`tensorflow*` were not installed), then: `import kerastune_ft`, load a folder
of generated PNGs without TensorFlow, build an image classifier, `fine_tune`
with feature caching and with augmented views, `evaluate` (with TTA),
`diagnose`, the HTML report, a `.keras` round trip with `safe_mode=True`, and
the clear error of a text builder. `tests/test_backends.py` runs it in a
subprocess per backend; it also runs alone:

    KERAS_BACKEND=jax python tests/_backend_smoke.py [FOLDER]

It prints one line per step and ends with "backend smoke ok: <backend>".
"""

import collections
import os
import sys
import tempfile
import time


def _is_tensorflow(name):
    return name == "tensorflow" or name.startswith(("tensorflow.", "tensorflow_"))


class _HideTensorFlow:
    """Wraps an import finder so that TensorFlow looks not installed.

    `find_spec` answers `None` for `tensorflow*`, as for a missing package
    (`import` raises ModuleNotFoundError, `importlib.util.find_spec` returns
    `None`), and passes everything else on. A finder that raises ImportError
    instead would break torch, whose `torch._dynamo` probes
    `importlib.util.find_spec("tensorflow")` when it is imported.
    """

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if _is_tensorflow(name):
            return None
        find_spec = getattr(self._finder, "find_spec", None)
        return None if find_spec is None else find_spec(name, path, target)

    def invalidate_caches(self):
        invalidate = getattr(self._finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()

    def __getattr__(self, name):  # find_distributions, ...
        return getattr(self._finder, name)


def _block_tensorflow():
    sys.meta_path[:] = [_HideTensorFlow(finder) for finder in sys.meta_path]


def _step(started, what):
    print(f"{time.perf_counter() - started:6.1f}s {what}", flush=True)


def _write_images(folder, per_class=8, size=40):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("cats", "dogs")):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 120, (size, size, 3)).astype("uint8")
            pixels[..., label] += 120  # a learnable colour cue
            Image.fromarray(pixels).save(os.path.join(folder, name, f"{i}.png"))


def _count_compiles(backend):
    """Counts XLA compilations per function name (JAX only; else empty)."""
    compiles = collections.Counter()
    if backend == "jax":
        import jax

        def listen(event, duration, **kwargs):
            if event == "/jax/core/compile/backend_compile_duration":
                compiles[kwargs.get("fun_name", "?")] += 1

        jax.monitoring.register_event_duration_secs_listener(listen)
    return compiles


class _PoisonHead:
    """Makes the head's weights NaN at the end of epoch `epoch` (a divergence)."""

    def __new__(cls, model, epoch):
        import keras
        import numpy as np

        class Poison(keras.callbacks.Callback):
            def on_epoch_end(self, index, logs=None):
                if index + 1 == epoch:
                    model.head.set_weights(
                        [w * np.nan for w in model.head.get_weights()]
                    )

        return Poison()


def _tiny_model(kft, augmentation=None):
    # A two-convolution backbone with NumPy weights: on JAX every new shape
    # of a random initializer compiles (seconds on a CPU), so MobileNetV2
    # would cost more to build than everything else here.
    import keras
    import numpy as np

    backbone = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, strides=2, kernel_initializer="zeros"),
            keras.layers.BatchNormalization(),
            keras.layers.Conv2D(16, 3, strides=2, kernel_initializer="zeros"),
        ]
    )
    rng = np.random.default_rng(0)
    backbone.set_weights(
        [
            rng.normal(0, 0.2, w.shape).astype("float32") if w.ndim == 4 else w
            for w in backbone.get_weights()
        ]
    )
    return kft.build_image_classifier(backbone, 2, augmentation=augmentation, seed=0)


def main(folder):
    started = time.perf_counter()
    _block_tensorflow()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    import numpy as np

    import kerastune_ft as kft

    backend = keras.backend.backend()
    assert backend == os.environ["KERAS_BACKEND"], backend
    assert "tensorflow" not in sys.modules, "import kerastune_ft imported tensorflow"
    _step(started, f"import kerastune_ft on {backend}, without tensorflow")

    compiles = _count_compiles(backend)
    images = os.path.join(folder, "images")
    _write_images(images)
    # Batches of 5: 12 training images (5, 5, 2) and 4 validation images.
    data = kft.data.load_images(
        images, image_size=32, batch_size=5, val_split=0.25, seed=0
    )
    assert isinstance(data.train, kft.data.ArrayBatches), type(data.train)
    x, y = data.train[0]
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.float32, (x.shape, x.dtype)
    assert len(data.train.y) % 5 and len(data.val.y) % 5, "no partial batch"
    _step(started, "load_images -> ArrayBatches")

    model = _tiny_model(kft)
    result = kft.fine_tune(model, data.train, data.val, epochs=2, seed=0, verbose=0)
    assert result.stages[0].cached == "train+val", result.stages[0].cached
    assert result.epochs_run == 2
    if backend == "jax":
        # The frozen pass over train and val (full and partial batches)
        # compiles once: kerastune_ft/training/cache.py pads the last batch.
        assert compiles["jit(step)"] == 1, dict(compiles)
    _step(started, "fine_tune on cached features")

    diverged = _tiny_model(kft)
    poisoned = kft.fine_tune(
        diverged,
        data.train,
        data.val,
        epochs=4,
        early_stopping=False,
        callbacks=[_PoisonHead(diverged, 2)],
        seed=0,
        verbose=0,
    )
    assert poisoned.diverged and poisoned.epochs_run == 3, poisoned.epochs_run
    assert poisoned.best_epoch in (1, 2), poisoned.best_epoch
    weights = [keras.ops.convert_to_numpy(w) for w in diverged.weights]
    assert all(np.isfinite(w).all() for w in weights)
    _step(started, "a NaN loss stops the run and keeps the last finite best")

    augmented = _tiny_model(kft, augmentation=[keras.layers.RandomFlip("horizontal")])
    views = kft.fine_tune(
        augmented,
        data.train,
        data.val,
        epochs=2,
        augmented_views=2,
        seed=0,
        verbose=0,
    )
    assert views.stages[0].cached == "train (2 views)+val", views.stages[0].cached
    _step(started, "fine_tune on augmented views")

    evaluation = kft.evaluate(model, data, tta=2)
    assert evaluation.results["test"]["n"] == 4, evaluation.results
    diagnosis = kft.diagnose(result, model=model)
    page = kft.Report(diagnosis, evaluation).save_html(
        os.path.join(folder, "report.html")
    )
    assert os.path.getsize(page) > 1000
    _step(started, "evaluate (TTA), diagnose, report")

    path = os.path.join(folder, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, kft.TransferImageClassifier), type(loaded)
    for saved, restored in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(restored)
        )
    _step(started, ".keras round trip (safe_mode=True)")

    try:
        kft.build_text_classifier("bert_tiny_en_uncased", 2)
    except ValueError as e:
        assert "tensorflow-text" in str(e) and backend in str(e), e
    else:
        raise AssertionError("a text model was built without TensorFlow")
    assert "tensorflow" not in sys.modules, "the image path imported tensorflow"
    _step(started, "text builder: clear error")
    print(f"backend smoke ok: {backend}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
