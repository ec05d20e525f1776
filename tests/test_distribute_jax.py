"""`keras.distribution.DataParallel` on the JAX backend, without TensorFlow.

One subprocess (`KERAS_BACKEND=jax`, 2 host CPU devices through
`XLA_FLAGS=--xla_force_host_platform_device_count=2`, TensorFlow blocked
from import) checks what `kft.distribute` promises on JAX:

- `strategy="data_parallel"` is a `DataParallel` over both devices: 2
  replicas, a global batch twice the per-replica one, the scope makes it
  current; tf.distribute names fail with a ValueError naming the JAX one;
- a tiny image classifier built with `strategy=` has its variables on both
  devices, and the same seeded `kft.fine_tune` on NumPy arrays (features
  cached, the head trained on both devices) gives the same losses and
  weights as on one device (float round-off only); the chief's summary
  counts 2 replicas;
- the whole model (backbone unfrozen) trains with `fit` in the scope, and
  `backup_and_restore` backs it up and resumes it;
- a model built outside the distribution is refused, saying how to fix it.

About 15 s on 2 cores (most of it importing and compiling).

This file is also the worker program: `python test_distribute_jax.py OUT`.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve()
ROOT = HERE.parents[1]


def test_data_parallel_on_two_cpu_devices_matches_one_device(tmp_path):
    out = tmp_path / "jax.json"
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    completed = subprocess.run(
        [sys.executable, str(HERE), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["tensorflow_imported"] is False
    assert r["devices"] == ["cpu:0", "cpu:1"]
    assert r["replicas"] == 2 and r["global_batch_size"] == 16
    assert r["scope"] == {"before": False, "inside": True, "after": False}
    assert r["same_object"]
    assert "strategy='data_parallel'" in r["mirrored_error"]
    assert "keras.distribution.DataParallel" in r["type_error"]
    # Every variable of the model built with strategy= is on both devices.
    assert r["variable_devices"] == [2]
    assert r["model_strategy_recorded"]
    # fine_tune (cached features, head trained on both devices): each global
    # batch of 16 is split 8 + 8 and the gradients averaged, so the numbers
    # are those of one device, to float round-off.
    assert r["cached"] == "train+val" and r["summary_replicas"] == 2
    np.testing.assert_allclose(r["parallel_loss"], r["single_loss"], rtol=1e-5)
    np.testing.assert_allclose(r["parallel_kernel"], r["single_kernel"], atol=1e-5)
    assert r["parallel_loss"][-1] < r["parallel_loss"][0]
    # The whole model (backbone unfrozen) trains under the distribution too.
    assert np.all(np.isfinite(r["unfrozen_loss"]))
    assert "live on 1 device" in r["outside_error"]
    # Backed up after each epoch (the last one kept); resumed after it.
    assert r["backups"] == ["ckpt-000001"]
    assert r["resumed_epochs"] == 1


# ---------------------------------------------------------------------------
# Worker program (runs under KERAS_BACKEND=jax)
# ---------------------------------------------------------------------------


def _block_tensorflow():
    import importlib.abc

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow" or name.startswith(("tensorflow.", "tensorflow_")):
                raise ImportError(f"blocked by the test: {name}")

    sys.meta_path.insert(0, Block())


def _tiny_backbone():
    import keras

    inputs = keras.Input((8, 8, 3))
    # Weights from NumPy: JAX compiles each random initializer (seconds).
    conv1 = keras.layers.Conv2D(4, 3, kernel_initializer="zeros", name="c1")
    conv2 = keras.layers.Conv2D(6, 3, kernel_initializer="zeros", name="c2")
    x = conv2(keras.layers.BatchNormalization(name="bn")(conv1(inputs)))
    rng = np.random.default_rng(1)
    for conv in (conv1, conv2):
        kernel, bias = conv.get_weights()
        conv.set_weights([rng.normal(0, 0.3, kernel.shape), bias])
    return keras.Model(inputs, x, name="backbone")


def _build(strategy):
    """A seeded tiny image classifier, its backbone made in the same scope."""
    import keras

    import kerastune_ft as kft

    keras.utils.set_random_seed(3)
    with kft.distribute.strategy_scope(strategy):
        backbone = _tiny_backbone()
    model = kft.build_image_classifier(
        backbone,
        3,
        dropout=0.0,
        l2=0.0,
        learning_rate=0.01,
        preprocessing="tf",
        strategy=strategy,
    )
    return model


def _fit(model, x, y, epochs=2, **kwargs):
    import kerastune_ft as kft

    with kft.distribute.strategy_scope(kft.distribute.model_strategy(model)):
        model.unfreeze("all")
        model.compile()  # a compile (optimizer variables) inside the scope
        history = model.fit(
            x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, **kwargs
        )
    return history.history["loss"]


def _worker(out):
    _block_tensorflow()
    import keras

    import kerastune_ft as kft
    from kerastune_ft import distribute

    assert keras.backend.backend() == "jax"
    rng = np.random.default_rng(0)
    y = (np.arange(32) % 3).astype("int32")
    x = rng.uniform(0, 80, (32, 8, 8, 3)).astype("float32")
    x[..., 0] += 60.0 * y[:, None, None]

    dp = distribute.resolve_strategy("data_parallel")
    r = {
        "devices": list(keras.distribution.list_devices()),
        "replicas": distribute.num_replicas(dp),
        "global_batch_size": distribute.global_batch_size(8, dp),
        "same_object": distribute.resolve_strategy("data_parallel") is dp,
    }
    scope = {"before": distribute.has_strategy()}
    with distribute.strategy_scope("data_parallel"):
        scope["inside"] = distribute.current_strategy() is dp
    scope["after"] = distribute.has_strategy()
    r["scope"] = scope
    for key, value in (("mirrored_error", "mirrored"), ("type_error", 3)):
        try:
            distribute.resolve_strategy(value)
        except (ValueError, TypeError) as error:
            r[key] = str(error)

    train = {"epochs": 2, "batch_size": 16, "seed": 0, "verbose": 0}
    train.update(learning_rate=0.05, schedule="constant", early_stopping=False)
    single = _build(None)
    result = kft.fine_tune(single, (x, y), (x, y), **train)
    r["single_loss"] = result.history["val_loss"]
    r["single_kernel"] = keras.ops.convert_to_numpy(single.head.layers[-1].kernel)
    parallel = _build("data_parallel")
    r["model_strategy_recorded"] = distribute.model_strategy(parallel) is dp
    r["variable_devices"] = sorted(
        {len(v.value.sharding.device_set) for v in parallel.weights}
    )
    # fine_tune finds the model's distribution (no strategy= here).
    result = kft.fine_tune(parallel, (x, y), (x, y), **train)
    r["parallel_loss"] = result.history["val_loss"]
    r["parallel_kernel"] = keras.ops.convert_to_numpy(parallel.head.layers[-1].kernel)
    r["cached"] = result.stages[0].cached
    summary = distribute.save_summary(result, str(pathlib.Path(out).parent / "s.json"))
    r["summary_replicas"] = json.loads(pathlib.Path(summary).read_text())[
        "num_replicas"
    ]
    backup_dir = pathlib.Path(out).parent / "backup"
    backup = distribute.backup_and_restore(str(backup_dir), dp, delete_checkpoint=False)
    r["unfrozen_loss"] = _fit(parallel, x, y, callbacks=[backup])
    r["backups"] = sorted(p.name for p in backup_dir.iterdir())
    # A restarted fit of 3 epochs restores the backup of epoch 2: 1 to go.
    resumed = kft.distribute.AtomicBackupAndRestore(str(backup_dir))
    r["resumed_epochs"] = len(_fit(parallel, x, y, epochs=3, callbacks=[resumed]))
    try:
        distribute.training_strategy(single, dp)
    except ValueError as error:
        r["outside_error"] = str(error)
    r["tensorflow_imported"] = "tensorflow" in sys.modules
    pathlib.Path(out).write_text(
        json.dumps(r, default=lambda a: np.asarray(a).tolist())
    )


if __name__ == "__main__":
    _worker(sys.argv[1])
