"""Every use of a private Keras, keras-hub, keras-tuner or TensorFlow internal.

Nothing else in the package touches a private attribute of a third-party
library. Each entry names the upstream issue (or the missing public API) it
works around and carries a version guard, so that an upgrade that changes the
internal fails loudly here instead of silently elsewhere.
"""

import contextlib

import keras

__all__ = []

KERAS_VERSION = tuple(int(p) for p in keras.__version__.split(".")[:2])


# --- models (H1): weights download hook, nested layers, metric direction ---


def _guard_keras_3_models(what):
    # Version guard of the model internals below: written against Keras 3.x.
    if KERAS_VERSION[0] != 3:
        raise RuntimeError(
            f"kerastune_ft._compat.{what} relies on a Keras 3 internal; Keras "
            f"{keras.__version__} is not supported. Check the workaround's link."
        )


def keras_file_utils():
    """The Keras module whose `get_file` `keras.applications` downloads with.

    Missing public API: `keras.applications` constructors call
    `keras.src.utils.file_utils.get_file` directly, with no hook for a local
    weights folder other than `$KERAS_HOME` (keras-team/keras#5005,
    keras-team/keras#14321: load applications weights from a local path);
    replacing the public `keras.utils.get_file` does not reach them.
    """
    _guard_keras_3_models("keras_file_utils")
    from keras.src.utils import file_utils

    if not callable(getattr(file_utils, "get_file", None)):
        raise RuntimeError(
            "kerastune_ft._compat.keras_file_utils: keras.src.utils.file_utils "
            f"has no get_file in Keras {keras.__version__}."
        )
    return file_utils


@contextlib.contextmanager
def patched_keras_get_file(make_replacement):
    """Routes `keras.applications` weight downloads through a replacement.

    See `keras_file_utils` for why this patches a Keras internal.

    Args:
        make_replacement: `original_get_file -> replacement_get_file`.
    """
    file_utils = keras_file_utils()
    original = file_utils.get_file
    file_utils.get_file = make_replacement(original)
    try:
        yield
    finally:
        file_utils.get_file = original


def flatten_layers(layer):
    """`layer` and every layer nested in it, at any depth, once each.

    Missing public API: Keras 3 lists only direct children (`Model.layers`);
    layers held by custom layers (a keras-hub transformer block's Dropout)
    are reachable only through the private `Layer._flatten_layers`
    (keras/src/layers/layer.py; keras-team/keras#4398 asked for a public
    way to flatten nested models).
    """
    _guard_keras_3_models("flatten_layers")
    return list(layer._flatten_layers(include_self=True, recursive=True))


def set_metric_direction(metric, direction):
    """Tells Keras' `mode="auto"` monitors whether `metric` improves up or down.

    Missing public API: `EarlyStopping` / `ModelCheckpoint` with
    `mode="auto"` read the private `metric._direction`
    (keras/src/callbacks/monitor_callback.py, `_set_monitor_op`); Keras'
    own metrics set it in `__init__`, custom metrics have no public way.
    The public `metric.direction` is set too (see `metric_direction`).

    Args:
        metric: a `keras.metrics.Metric`.
        direction: `"up"` or `"down"`.
    """
    _guard_keras_3_models("set_metric_direction")
    if direction not in ("up", "down"):
        raise ValueError(
            f'`direction` must be "up" or "down". Received: direction={direction!r}.'
        )
    metric.direction = direction
    metric._direction = direction


# --- training (H2): optimizer, fit resume, metric direction, tf.distribute ---


def _guard_keras_3(what):
    # Version guard of the Keras internals below: written against Keras 3.x.
    if KERAS_VERSION[0] != 3:
        raise RuntimeError(
            f"kerastune_ft._compat.{what} relies on a Keras 3 internal; Keras "
            f"{keras.__version__} is not supported. Check the workaround's link."
        )


def optimizer_learning_rate(optimizer):
    """The learning rate an optimizer was created with: a schedule or a variable.

    Missing public API: `optimizer.learning_rate` evaluates a schedule at the
    current step instead of returning it (keras-team/keras#19463), and the
    peak of a warmup schedule is what `kft.fine_tune` needs.
    """
    _guard_keras_3("optimizer_learning_rate")
    return getattr(optimizer, "_learning_rate", None)


def set_fit_initial_epoch(model, epoch):
    """Makes the running `fit` start at `epoch` (`None`: its own initial_epoch).

    Missing public API: `keras.callbacks.BackupAndRestore` resumes `fit`
    through the private `model._initial_epoch`, read after
    `on_train_begin` (keras/src/callbacks/backup_and_restore.py); a callback
    cannot otherwise move `fit`'s start (keras-team/keras#18971).
    """
    _guard_keras_3("set_fit_initial_epoch")
    model._initial_epoch = epoch


def metric_direction(metric):
    """`"up"`, `"down"` or `None`: how Keras' `mode="auto"` reads a metric.

    Keras' metrics carry their direction in the private `_direction`
    (keras/src/callbacks/monitor_callback.py, `_set_monitor_op`); custom
    metrics may set a public `direction` attribute instead.
    """
    _guard_keras_3("metric_direction")
    direction = getattr(metric, "direction", None)
    if direction in ("up", "down"):
        return direction
    direction = getattr(metric, "_direction", None)
    return direction if direction in ("up", "down") else None


def model_distribute_strategy(model):
    """The `tf.distribute` strategy Keras recorded when `model` was built.

    Missing public API: Keras 3 keeps it in the private
    `model._distribute_strategy` (keras/src/backend/tensorflow/trainer.py).
    """
    _guard_keras_3("model_distribute_strategy")
    return getattr(model, "_distribute_strategy", None)


def in_multi_worker_mode(strategy):
    """Whether a `tf.distribute` strategy spans several workers.

    Missing public API: TensorFlow's own Keras integration reads the private
    `strategy.extended._in_multi_worker_mode()` (tensorflow/tensorflow#35438).
    """
    method = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(method()) if method is not None else False


def patch_multi_worker_fit(is_multi_worker):
    """Patches Keras 3's TF trainer for `MultiWorkerMirroredStrategy`; returns an undo.

    keras-team/keras#20585: before training Keras reduces a whole peeked
    `(x, y)` batch with `strategy.reduce` ("Attempt to convert a value
    (PerReplica...) to a Tensor"); here each replica's local value is taken.
    It also reduces each step's scalar metrics with `axis=0` ("Invalid
    reduction dimension 0"); here scalars are averaged with `axis=None`.
    Version guard: the patched names must exist (Keras 3.x TF trainer).

    Args:
        is_multi_worker: `strategy -> bool`.

    Returns:
        A function that undoes the patch, or `None` when nothing was patched.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    cls = getattr(tf_trainer, "TensorFlowTrainer", None)
    original_build = getattr(cls, "_maybe_symbolic_build", None)
    original_reduce = getattr(tf_trainer, "reduce_per_replica", None)
    if KERAS_VERSION[0] != 3 or original_build is None or original_reduce is None:
        return None

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return value.values[0]
        return value

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            if isinstance(value, tf.distribute.DistributedValues) or tf.is_tensor(
                value
            ):
                rank = local(value).shape.rank
                return strategy.reduce("MEAN", value, axis=0 if rank else None)
            return value

        return tf.nest.map_structure(reduce, values)

    cls._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica

    def undo():
        cls._maybe_symbolic_build = original_build
        tf_trainer.reduce_per_replica = original_reduce

    return undo


# --- export (H5): keras-hub preset config without weights ---


def save_preset_config(layer, directory, config_file="config.json"):
    """Writes `layer`'s keras-hub preset config (`config.json`), no weights.

    Missing public API: keras-hub saves a preset's config only together
    with its weights (`Backbone.save_to_preset`); the config alone is
    written by the private `PresetSaver._save_serialized_object`
    (keras_hub/src/utils/preset_utils.py, added in
    keras-team/keras-hub#1900; the TODO for a `save_weights` flag is in
    keras-team/keras-hub#1547). A preprocessor preset needs that
    `config.json` for `TextClassifierPreprocessor.from_preset(directory)`
    to find its classes. This writes the same file with public Keras
    serialization instead of calling the private method. Version guard:
    the preset format of keras-hub 0.x.

    Args:
        layer: the layer to describe (a keras-hub backbone).
        directory: the preset folder (created if missing).
        config_file: the file name. Defaults to `"config.json"`.

    Returns:
        The path of the written file.
    """
    import json
    import os

    import keras_hub

    if not keras_hub.__version__.startswith("0."):
        raise RuntimeError(
            "kerastune_ft._compat.save_preset_config writes the preset format "
            f"of keras-hub 0.x; keras-hub {keras_hub.__version__} is not "
            "supported. Check the workaround's link."
        )

    def drop(config, keys=("compile_config", "build_config")):
        for key in keys:
            config.pop(key, None)
        for value in config.values():
            if isinstance(value, dict):
                drop(value)
        return config

    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, config_file)
    config = drop(keras.saving.serialize_keras_object(layer))
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=4))
    return path
