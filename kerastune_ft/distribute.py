"""Training on several devices: `tf.distribute` on TensorFlow, `keras.distribution` on JAX.

The builders and `kft.fine_tune` take `strategy=` or run inside a scope; the
backend does the rest: a `tf.distribute.Strategy` on TensorFlow, a
`keras.distribution.DataParallel` on JAX, nothing on torch. This module
holds what they share: resolving and entering strategies, the multi-worker
rules (only the chief writes files; data is batched with the global batch
size; the learning rate grows with it), atomic backups that only the chief
writes, and the chief's JSON summary of a result. TensorFlow is imported
only where `tf.distribute` is used. See `docs/distributed.md`.
"""

import contextlib
import functools
import json
import os
import sys
import weakref

import keras

from kerastune_ft import _compat
from kerastune_ft._backup import AtomicBackupAndRestore, write_json
from kerastune_ft._validation import check_choice, check_number

__all__ = [
    "STRATEGY_NAMES",
    "AtomicBackupAndRestore",
    "backup_and_restore",
    "builds_under_strategy",
    "current_strategy",
    "global_batch_size",
    "has_strategy",
    "is_chief",
    "is_multi_worker",
    "model_strategy",
    "multi_worker_fit_patch",
    "num_replicas",
    "resolve_strategy",
    "result_summary",
    "save_summary",
    "scale_learning_rate",
    "strategy_scope",
    "trains_under_strategy",
    "training_strategy",
    "write_json",
]

STRATEGY_NAMES = ("default", "mirrored", "multi_worker", "data_parallel")
# The names each backend accepts (any other backend: "default" only).
_BACKEND_NAMES = {
    "tensorflow": ("default", "mirrored", "multi_worker"),
    "jax": ("default", "data_parallel"),
}
# MultiWorkerMirroredStrategy may be created only once per process (it
# configures the collective ops runtime), so the named strategies are kept:
# one object per name and process.
_NAMED = {}
# The keras.distribution each model was built under by a builder (Keras
# records tf.distribute strategies on the model, not keras.distribution).
_BUILT_UNDER = weakref.WeakKeyDictionary()


def _backend():
    return keras.backend.backend()


def _tf():
    # TensorFlow, imported where tf.distribute is really needed.
    import tensorflow as tf

    return tf


def _is_tf_strategy(value):
    # No strategy can exist before TensorFlow is imported: never import it here.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, tf.distribute.Strategy)


def _is_distribution(value):
    return isinstance(
        value, keras.distribution.DataParallel | keras.distribution.ModelParallel
    )


def _accepted(backend):
    return {
        "tensorflow": "a tf.distribute.Strategy, or 'default', 'mirrored' or "
        "'multi_worker'",
        "jax": "a keras.distribution.DataParallel (or ModelParallel), or "
        "'default' or 'data_parallel'",
    }.get(backend, "'default' (one device)")


def _instead(backend):
    use = {
        "jax": "Use strategy='data_parallel' (keras.distribution.DataParallel "
        "over every local device) or a keras.distribution.DataParallel",
        "tensorflow": "Use strategy='mirrored' (every local GPU), "
        "'multi_worker' or a tf.distribute.Strategy",
    }.get(
        backend,
        "Keras has no distribution for this backend: pass strategy=None, or run "
        "with KERAS_BACKEND=jax (strategy='data_parallel') or "
        "KERAS_BACKEND=tensorflow (strategy='mirrored')",
    )
    return f"{use}. See docs/distributed.md."


def resolve_strategy(strategy=None):
    """Turns `strategy=` into a strategy or distribution of this backend (or `None`).

    Args:
        strategy: `None` (no explicit strategy: the one in scope, if any,
            is used), a strategy object of the backend Keras runs on, or a
            name. TensorFlow backend: a `tf.distribute.Strategy`,
            `"default"` (TensorFlow's default, single-device strategy),
            `"mirrored"` (`tf.distribute.MirroredStrategy` over all local
            GPUs, else the CPU) or `"multi_worker"`
            (`tf.distribute.MultiWorkerMirroredStrategy` configured from the
            `TF_CONFIG` environment variable; on CPU-only machines it uses
            ring collectives). JAX backend: a
            `keras.distribution.DataParallel` (or `ModelParallel`),
            `"data_parallel"` (`keras.distribution.DataParallel(devices=
            keras.distribution.list_devices())`: every local GPU, else TPU,
            else CPU device; after `keras.distribution.initialize()`, every
            device of every host) or `"default"` (`None`: one device).
            torch backend: `"default"` only (`None`). Each name resolves to
            one object per process. Defaults to `None`.

    Returns:
        A `tf.distribute.Strategy`, a `keras.distribution` distribution, or
        `None`.

    Raises:
        ValueError: an unknown name, or one (or an object) of another
            backend, such as `"mirrored"` on JAX; the message says which to
            use instead.
        TypeError: any other type.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.resolve_strategy("default").num_replicas_in_sync
    1
    >>> kft.distribute.resolve_strategy(None) is None
    True
    """
    backend = _backend()
    if strategy is None:
        return None
    if _is_tf_strategy(strategy) or _is_distribution(strategy):
        wanted = _is_tf_strategy(strategy) == (backend == "tensorflow")
        if not wanted or (_is_distribution(strategy) and backend != "jax"):
            raise ValueError(
                f"`strategy` is a {type(strategy).__name__}, which kerastune_ft "
                "uses only on the "
                f"{'TensorFlow' if _is_tf_strategy(strategy) else 'JAX'} backend, "
                f"but Keras runs on {backend}. Received: strategy={strategy!r}. "
                + _instead(backend)
            )
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(
            f"`strategy` must be None or {_accepted(backend)}. Received: "
            f"strategy={strategy!r} (of type {type(strategy).__name__})."
        )
    check_choice(
        "strategy",
        strategy,
        STRATEGY_NAMES,
        hint="See docs/distributed.md for what each one does.",
    )
    if strategy not in _BACKEND_NAMES.get(backend, ("default",)):
        raise ValueError(
            f"On the {backend} backend `strategy` must be None or "
            f"{_accepted(backend)}. Received: strategy={strategy!r}. "
            + _instead(backend)
        )
    if strategy == "default":
        return _tf().distribute.get_strategy() if backend == "tensorflow" else None
    if strategy not in _NAMED:
        if strategy == "mirrored":
            return _tf().distribute.MirroredStrategy()
        _NAMED[strategy] = (
            _multi_worker_strategy()
            if strategy == "multi_worker"
            else keras.distribution.DataParallel(
                devices=keras.distribution.list_devices()
            )
        )
    return _NAMED[strategy]


def _multi_worker_strategy():
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError(
            "strategy='multi_worker' needs the TF_CONFIG environment variable on "
            'every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}\'. Received: TF_CONFIG is not set. For one machine '
            "with several GPUs use strategy='mirrored'. See docs/distributed.md."
        )
    try:
        json.loads(config)
    except ValueError as e:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={config!r}."
        ) from e
    tf = _tf()
    # NCCL needs GPUs; ring all-reduce works everywhere (and is what
    # "auto" picks on CPU-only workers anyway, stated here to be explicit).
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.AUTO
        if tf.config.list_physical_devices("GPU")
        else tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation
        )
    )


def current_strategy(strategy=None):
    """The strategy in effect: the given one, else the one in scope, else `None`.

    Args:
        strategy: `None` or a strategy, distribution or name accepted by
            `resolve_strategy`. Defaults to `None`.

    Returns:
        `resolve_strategy(strategy)` when that is not `None`; else the
        `tf.distribute` strategy in scope (TensorFlow's default strategy
        counts as none), else the active `keras.distribution.distribution()`,
        else `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.current_strategy() is None
    True
    """
    resolved = resolve_strategy(strategy)
    if resolved is not None:
        return resolved
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    return keras.distribution.distribution()


def has_strategy():
    """Whether a `tf.distribute` strategy or a `keras.distribution` is in effect.

    TensorFlow's default strategy counts as none (as `tf.distribute.has_strategy`).

    Returns:
        A bool.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.has_strategy()
    False
    """
    return current_strategy() is not None


def model_strategy(model):
    """The strategy whose scope created `model`'s variables, or `None`.

    Keras records the `tf.distribute` strategy in scope when a model is
    constructed; for a `keras.distribution` (JAX) the builders record the
    one they built under. A model built outside any scope has none.

    Args:
        model: a `keras.Model`.

    Returns:
        A `tf.distribute.Strategy`, a `keras.distribution` distribution, or
        `None`.
    """
    return _compat.model_distribute_strategy(model) or _BUILT_UNDER.get(model)


def training_strategy(model, strategy=None):
    """The strategy `fine_tune` trains `model` under; checks they agree.

    Args:
        model: a `keras.Model`.
        strategy: an explicit `strategy=` argument (resolved by
            `resolve_strategy`). Defaults to `None`.

    Returns:
        The explicit strategy, else the model's, else the one in scope, else
        `None` (no distribution).

    Raises:
        ValueError: the model's variables were created outside the scope of
            the strategy it would train under (on JAX: they live on another
            number of devices than the distribution's).
    """
    strategy = resolve_strategy(strategy)
    own = model_strategy(model)
    if strategy is None:
        if own is not None:
            return own
        strategy = current_strategy()
        if strategy is None:
            _check_placement(model, None)
            return None
    if _is_distribution(strategy):
        _check_placement(model, strategy)
        return strategy
    if own is not strategy and not _is_default(strategy):
        raise ValueError(
            f"`strategy` is a {type(strategy).__name__} but the model's variables "
            "were created outside its scope, so they are not distributed. Build "
            "the model with the same strategy, e.g. `kft.build_image_classifier"
            "(..., strategy=strategy)`, or inside `with strategy.scope():`. "
            f"Received: strategy={strategy!r}, model built under "
            f"{type(own).__name__ if own else 'no strategy'}."
        )
    return strategy


def _check_placement(model, distribution):
    # JAX: a variable created in a distribution's scope lives on its mesh;
    # one created outside lives on one device. Mixing them fails in jit.
    if _backend() != "jax":
        return
    wanted = 1 if distribution is None else int(distribution.device_mesh.devices.size)
    placed = next(
        (
            len(v.value.sharding.device_set)
            for v in model.weights
            if hasattr(v.value, "sharding")
        ),
        wanted,
    )
    if placed == wanted:
        return
    raise ValueError(
        f"The model's variables live on {placed} device(s) but "
        + (
            f"`strategy` is a {type(distribution).__name__} over {wanted} devices"
            if distribution is not None
            else "no keras.distribution is in effect"
        )
        + ". Build and train under the same distribution: `kft.build_image_"
        "classifier(..., strategy=distribution)` and `kft.fine_tune(..., "
        "strategy=distribution)`, or both inside `with distribution.scope():`. "
        f"Received: strategy={distribution!r}."
    )


def _is_default(strategy):
    # TensorFlow's default strategy is a private class; it is the only one
    # whose scope creates plain variables.
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


def _in_effect(strategy):
    if _is_distribution(strategy):
        return keras.distribution.distribution() is strategy
    tf = sys.modules.get("tensorflow")
    return tf.distribute.has_strategy() and tf.distribute.get_strategy() is strategy


@contextlib.contextmanager
def strategy_scope(strategy=None):
    """Enters the scope of `strategy` unless it is `None` or already in effect.

    A `tf.distribute.Strategy` enters `strategy.scope()`; a
    `keras.distribution` enters `distribution.scope()` (it is the active
    distribution until the block ends).

    Args:
        strategy: `None` or a strategy, distribution or name accepted by
            `resolve_strategy`. Defaults to `None` (does nothing).

    Yields:
        The resolved strategy (or `None`).

    Example:

    >>> import keras, kerastune_ft as kft
    >>> strategy = kft.distribute.resolve_strategy("default")
    >>> with kft.distribute.strategy_scope(strategy):
    ...     layer = keras.layers.Dense(2)
    """
    strategy = resolve_strategy(strategy)
    if strategy is None or _in_effect(strategy):
        yield strategy
        return
    with strategy.scope():
        yield strategy


def builds_under_strategy(function):
    """Decorates a builder taking `strategy=`: it runs in that strategy's scope.

    Variables (the backbone's, the head's, the optimizer's) are created
    where the model is built, so that is where the scope must be. A model
    built under a `keras.distribution` remembers it (`model_strategy`), as
    Keras does for `tf.distribute`.
    """

    @functools.wraps(function)
    def wrapper(*args, strategy=None, **kwargs):
        strategy = resolve_strategy(strategy)
        with strategy_scope(strategy):
            model = function(*args, strategy=strategy, **kwargs)
            active = keras.distribution.distribution()
        if active is not None and isinstance(model, keras.Model):
            _BUILT_UNDER[model] = active
        return model

    return wrapper


@contextlib.contextmanager
def multi_worker_fit_patch(strategy=None):
    """Makes Keras 3 `fit`/`evaluate` work under a multi-worker strategy.

    Keras 3's TensorFlow trainer fails under `MultiWorkerMirroredStrategy`
    in two places (keras-team/keras#20585): it reduces a whole peeked batch
    with `strategy.reduce` before training, and reduces each step's scalar
    metrics with `axis=0`. The workaround lives in `kerastune_ft._compat`
    (`patch_multi_worker_fit`); this context manager applies it and undoes
    it on exit.

    `kft.fine_tune` applies it by itself; use it around your own `fit` calls.
    Under any other strategy (and on other backends) it does nothing.

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> with kft.distribute.multi_worker_fit_patch():
    ...     pass  # model.fit(...) under MultiWorkerMirroredStrategy
    """
    strategy = current_strategy(strategy)
    undo = (
        _compat.patch_multi_worker_fit(is_multi_worker)
        if _is_tf_strategy(strategy) and is_multi_worker(strategy)
        else None
    )
    try:
        yield
    finally:
        if undo is not None:
            undo()


def trains_under_strategy(function):
    """Decorates `fine_tune`-like functions `(model, ..., strategy=None)`.

    The function runs in the scope of `training_strategy(model, strategy)`:
    the models, optimizers and cached-feature models it makes while
    training belong to the strategy of the model's variables.
    """

    @functools.wraps(function)
    def wrapper(model, *args, strategy=None, **kwargs):
        if isinstance(model, keras.Model):
            strategy = training_strategy(model, strategy)
        else:
            strategy = resolve_strategy(strategy)
        with strategy_scope(strategy), multi_worker_fit_patch(strategy):
            return function(model, *args, strategy=strategy, **kwargs)

    return wrapper


def num_replicas(strategy=None):
    """How many replicas train in sync (devices times workers).

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Returns:
        An int >= 1: `num_replicas_in_sync` of a `tf.distribute` strategy,
        `num_model_replicas` of a `keras.distribution`, 1 without either.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.num_replicas()
    1
    """
    strategy = current_strategy(strategy)
    if strategy is None:
        return 1
    if _is_distribution(strategy):
        return int(strategy.num_model_replicas)
    return int(strategy.num_replicas_in_sync)


def global_batch_size(per_replica_batch_size, strategy=None):
    """The batch size to give the data so each replica gets `per_replica_batch_size`.

    Under a strategy (or a `keras.distribution`), the batch of the data is
    the *global* batch: it is split across replicas (and across workers
    with multi-worker training).

    Args:
        per_replica_batch_size: examples per replica and step, an int >= 1.
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Returns:
        `per_replica_batch_size * num_replicas(strategy)`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.global_batch_size(16)
    16
    """
    check_number("per_replica_batch_size", per_replica_batch_size, low=1, integer=True)
    return int(per_replica_batch_size) * num_replicas(strategy)


def scale_learning_rate(learning_rate, strategy=None, *, rule="linear"):
    """Scales a single-device learning rate for the global batch of `strategy`.

    When each replica keeps its batch size, the global batch grows with the
    number of replicas; the linear rule (Goyal et al., 2017) multiplies the
    learning rate by the same factor, the square-root rule (often better with
    Adam-style optimizers and small data) by its square root. Use a warmup
    (`kft.fine_tune` has `warmup=0.1` by default) when scaling up.

    Args:
        learning_rate: the learning rate tuned on one device.
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.
        rule: `"linear"`, `"sqrt"` or `"none"`. Defaults to `"linear"`.

    Returns:
        The scaled learning rate (a float).

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.scale_learning_rate(1e-3)
    0.001
    """
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False)
    check_choice("rule", rule, ("linear", "sqrt", "none"))
    replicas = num_replicas(strategy)
    factor = {"linear": replicas, "sqrt": replicas**0.5, "none": 1}[rule]
    return float(learning_rate) * factor


def is_multi_worker(strategy=None):
    """Whether `strategy` spans several worker processes (hosts).

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Returns:
        A bool.
    """
    strategy = current_strategy(strategy)
    if strategy is None:
        return False
    if _is_distribution(strategy):
        return int(strategy.num_processes) > 1
    return _compat.in_multi_worker_mode(strategy)


def is_chief(strategy=None):
    """Whether this process is the one that writes checkpoints and reports.

    With multi-worker training every worker runs the same program; only the
    chief writes files: on TensorFlow the task of type `"chief"`, or worker
    0 when the cluster has no chief; on JAX process 0. Single-process
    training is always the chief.

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Returns:
        A bool.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.is_chief()
    True
    """
    strategy = current_strategy(strategy)
    if not is_multi_worker(strategy):
        return True
    if _is_distribution(strategy):
        import jax

        return jax.process_index() == 0
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type is None or task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def backup_and_restore(backup_dir, strategy=None, **kwargs):
    """A `BackupAndRestore` callback with atomic backups, that only the chief writes.

    Keras 3's `BackupAndRestore` writes from every process, so with several
    workers sharing `backup_dir` they would overwrite each other's files.
    Here the chief writes; the other workers restore from the chief's files
    and save only to temporary folders they delete at once (saving must
    happen on every worker: it can run collective ops). `backup_dir` must be
    on storage every worker can read (a shared file system). Each backup is
    committed whole (see `AtomicBackupAndRestore`): a process killed while
    saving resumes from the previous backup.

    Args:
        backup_dir: the backup folder.
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.
        **kwargs: other `AtomicBackupAndRestore` arguments (`companions`,
            `double_checkpoint`, `delete_checkpoint`).

    Returns:
        An `AtomicBackupAndRestore` callback.
    """
    return AtomicBackupAndRestore(backup_dir, write=is_chief(strategy), **kwargs)


def result_summary(result):
    """A JSON-serializable summary of a `kft.FineTuneResult`.

    Args:
        result: a `kft.FineTuneResult`.

    Returns:
        A dict with `history`, `stages`, `best_epoch`, `best_metrics`,
        `monitor`, `restored_best`, `epochs_run` and `num_replicas`.
    """
    import dataclasses

    return {
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_metrics": {k: float(v) for k, v in result.best_metrics.items()},
        "monitor": result.monitor,
        "restored_best": result.restored_best,
        "history": {
            k: [None if v is None else float(v) for v in values]
            for k, values in result.history.items()
        },
        "stages": [dataclasses.asdict(s) for s in result.stages],
        "num_replicas": num_replicas(training_strategy(result.model)),
    }


def save_summary(result, path, strategy=None):
    """Writes `result_summary(result)` as JSON, on the chief only.

    Every worker can call it; the others write nothing.

    Args:
        result: a `kft.FineTuneResult`.
        path: the JSON file to write (its folder is created).
        strategy: `None` (the model's strategy, else the one in scope) or a
            strategy or name. Defaults to `None`.

    Returns:
        `path` on the chief, `None` on the other workers.
    """
    strategy = resolve_strategy(strategy) or training_strategy(result.model)
    if not is_chief(strategy):
        return None
    summary = result_summary(result)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp, path)
    return path
