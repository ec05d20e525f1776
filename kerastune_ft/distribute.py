"""Training under TensorFlow's `tf.distribute` strategies.

kerastune_ft does not invent its own distribution: the builders and
`kft.fine_tune` take `strategy=` (any `tf.distribute.Strategy`, or the names
`"default"`, `"mirrored"`, `"multi_worker"`) or run inside
`with strategy.scope():`, and TensorFlow does the rest. This module holds
what they share: resolving and entering strategies, the multi-worker rules
of thumb (only the chief writes files; datasets are batched with the global
batch size; the learning rate grows with it), atomic backups that only the
chief writes, and the chief's JSON summary of a result. See
`docs/distributed.md` for the multi-GPU and multi-host recipe.
"""

import contextlib
import functools
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from kerastune_ft import _compat
from kerastune_ft._validation import check_choice, check_number

__all__ = [
    "STRATEGY_NAMES",
    "AtomicBackupAndRestore",
    "backup_and_restore",
    "builds_under_strategy",
    "global_batch_size",
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

STRATEGY_NAMES = ("default", "mirrored", "multi_worker")
# MultiWorkerMirroredStrategy may be created only once per process (it
# configures the collective ops runtime), so the named one is kept.
_MULTI_WORKER = {}


def resolve_strategy(strategy=None):
    """Turns `strategy=` into a `tf.distribute.Strategy` (or `None`).

    Args:
        strategy: `None` (no explicit strategy: the one in scope, if any,
            is used), a `tf.distribute.Strategy`, or a name: `"default"`
            (TensorFlow's default, single-device strategy), `"mirrored"`
            (`tf.distribute.MirroredStrategy` over all local GPUs, else the
            CPU) or `"multi_worker"`
            (`tf.distribute.MultiWorkerMirroredStrategy` configured from the
            `TF_CONFIG` environment variable; on CPU-only machines it uses
            ring collectives). Defaults to `None`.

    Returns:
        A `tf.distribute.Strategy`, or `None` when `strategy` is `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.resolve_strategy("default").num_replicas_in_sync
    1
    >>> kft.distribute.resolve_strategy(None) is None
    True
    """
    if strategy is None or isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(
            "`strategy` must be None, a tf.distribute.Strategy, or one of "
            f"{list(STRATEGY_NAMES)}. Received: strategy={strategy!r} "
            f"(of type {type(strategy).__name__})."
        )
    check_choice(
        "strategy",
        strategy,
        STRATEGY_NAMES,
        hint="See docs/distributed.md for what each one does.",
    )
    if strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return _multi_worker_strategy()


def _multi_worker_strategy():
    if "strategy" in _MULTI_WORKER:
        return _MULTI_WORKER["strategy"]
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
    # NCCL needs GPUs; ring all-reduce works everywhere (and is what
    # "auto" picks on CPU-only workers anyway, stated here to be explicit).
    implementation = (
        tf.distribute.experimental.CommunicationImplementation.AUTO
        if tf.config.list_physical_devices("GPU")
        else tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation
        )
    )
    _MULTI_WORKER["strategy"] = strategy
    return strategy


def model_strategy(model):
    """The strategy whose scope created `model`'s variables, or `None`.

    Keras records the strategy in scope when a model is constructed; a model
    built outside any scope has none.

    Args:
        model: a `keras.Model`.

    Returns:
        A `tf.distribute.Strategy` or `None`.
    """
    return _compat.model_distribute_strategy(model)


def training_strategy(model, strategy=None):
    """The strategy `fine_tune` trains `model` under; checks they agree.

    Args:
        model: a `keras.Model`.
        strategy: an explicit `strategy=` argument (resolved by
            `resolve_strategy`). Defaults to `None`.

    Returns:
        The explicit strategy, else the model's, else the one in scope, else
        `None` (TensorFlow's default strategy).

    Raises:
        ValueError: `strategy` is given but the model's variables were
            created outside its scope.
    """
    strategy = resolve_strategy(strategy)
    own = model_strategy(model)
    if strategy is None:
        if own is not None:
            return own
        if not tf.distribute.has_strategy():
            return None
        strategy = tf.distribute.get_strategy()
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


def _is_default(strategy):
    # TensorFlow's default strategy is a private class; it is the only one
    # whose scope creates plain variables.
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


@contextlib.contextmanager
def strategy_scope(strategy=None):
    """Enters `strategy.scope()` unless `strategy` is `None` or already in scope.

    Args:
        strategy: `None`, a `tf.distribute.Strategy` or a name accepted by
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
    if strategy is None or (
        tf.distribute.has_strategy() and tf.distribute.get_strategy() is strategy
    ):
        yield strategy
        return
    with strategy.scope():
        yield strategy


def builds_under_strategy(function):
    """Decorates a builder taking `strategy=`: it runs in that strategy's scope.

    Variables (the backbone's, the head's, the optimizer's) are created
    where the model is built, so that is where the scope must be.
    """

    @functools.wraps(function)
    def wrapper(*args, strategy=None, **kwargs):
        strategy = resolve_strategy(strategy)
        with strategy_scope(strategy):
            return function(*args, strategy=strategy, **kwargs)

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
    Under any other strategy it does nothing.

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> with kft.distribute.multi_worker_fit_patch():
    ...     pass  # model.fit(...) under MultiWorkerMirroredStrategy
    """
    strategy = resolve_strategy(strategy) or tf.distribute.get_strategy()
    undo = (
        _compat.patch_multi_worker_fit(is_multi_worker)
        if is_multi_worker(strategy)
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
        An int >= 1.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.distribute.num_replicas()
    1
    """
    strategy = resolve_strategy(strategy) or tf.distribute.get_strategy()
    return int(strategy.num_replicas_in_sync)


def global_batch_size(per_replica_batch_size, strategy=None):
    """The batch size to give `tf.data` so each replica gets `per_replica_batch_size`.

    Under a strategy, the batch of a dataset is the *global* batch: it is
    split across replicas (and across workers with multi-worker training).

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
    """Whether `strategy` spans several worker processes.

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Returns:
        A bool.
    """
    strategy = resolve_strategy(strategy) or tf.distribute.get_strategy()
    return _compat.in_multi_worker_mode(strategy)


def is_chief(strategy=None):
    """Whether this process is the one that writes checkpoints and reports.

    With multi-worker training every worker runs the same program; only the
    chief (task type `"chief"`, or worker 0 when the cluster has no chief)
    writes files. Single-process training is always the chief.

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
    strategy = resolve_strategy(strategy) or tf.distribute.get_strategy()
    if not is_multi_worker(strategy):
        return True
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None)
    if task_type is None or task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """A `BackupAndRestore` whose every backup is one folder, committed by a rename.

    Keras' `keras.callbacks.BackupAndRestore` overwrites `latest.weights.h5`
    and then `training_metadata.json` in place: a process killed between the
    two resumes an epoch's weights with the previous epoch's counter, and one
    killed while writing the JSON cannot resume at all. Here each backup is
    written into a temporary folder (weights, metadata and the state of
    `companions`), flushed, and renamed to `ckpt-NNNNNN`: a backup exists
    whole or not at all, and what the companions saved always belongs to
    the same epoch as the weights. Restoring takes the newest backup that
    loads, falling back to the previous one (`double_checkpoint=True`), and
    resumes `fit` at the saved epoch, as Keras' callback does.

    A companion is any object with `save_state(folder, previous)` (write its
    files into `folder`; `previous` is the last committed backup folder or
    `None`, to link unchanged large files) and `load_state(folder)`.
    `kft.fine_tune` uses it for its best-epoch tracker.

    A fit that stopped early (a callback set `model.stop_training` before
    this one ran) is saved as finished, so that resuming does not train it
    further.

    With `write=False` (multi-worker training, non-chief workers) it restores
    from the chief's backups and saves only to a private temporary folder it
    deletes at once: saving weights may run collective ops, so every worker
    must save whenever the chief does (TensorFlow's multi-worker
    checkpointing pattern). It never writes to `backup_dir`.

    Args:
        backup_dir: the backup folder (only this callback's files go there).
        companions: objects whose state is saved with each backup. Defaults
            to `()`.
        write: whether this process writes backups. Defaults to `True`.
        double_checkpoint: keep the previous backup too, and fall back to it
            when the newest one cannot be loaded. Defaults to `False`.
        delete_checkpoint: delete `backup_dir` when `fit` ends. Defaults to
            `True`, as in Keras.

    Example:

    >>> import kerastune_ft as kft
    >>> callback = kft.distribute.AtomicBackupAndRestore("/tmp/kft_backup")
    >>> callback.committed()
    []
    """

    _PREFIX = "ckpt-"

    def __init__(
        self,
        backup_dir,
        *,
        companions=(),
        write=True,
        double_checkpoint=False,
        delete_checkpoint=True,
    ):
        super().__init__()
        if not backup_dir:
            raise ValueError(
                "`backup_dir` must be a folder path. "
                f"Received: backup_dir={backup_dir!r}."
            )
        self.backup_dir = os.fspath(backup_dir)
        self.companions = list(companions)
        self.write = write
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self.epoch = 0

    def committed(self):
        """Committed backup folders, newest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        names = [
            n
            for n in os.listdir(self.backup_dir)
            if n.startswith(self._PREFIX) and n[len(self._PREFIX) :].isdigit()
        ]
        names.sort(key=lambda n: int(n[len(self._PREFIX) :]), reverse=True)
        return [os.path.join(self.backup_dir, n) for n in names]

    def on_train_begin(self, logs=None):
        folders = self.committed()
        errors = []
        for folder in folders[: 2 if self.double_checkpoint else 1]:
            try:
                self._load_folder(folder)
                return
            except (OSError, ValueError, KeyError) as e:
                errors.append(f"{folder}: {e}")
        if errors:
            raise ValueError(
                f"The backup in {self.backup_dir!r} cannot be loaded ("
                + "; ".join(errors)
                + "). Delete that folder to train from the start."
            )

    def _load_folder(self, folder):
        if self.model.optimizer is not None and not self.model.optimizer.built:
            # The optimizer's variables must exist before loading them.
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(folder, "model.weights.h5"))
        with open(os.path.join(folder, "training_metadata.json")) as f:
            metadata = json.load(f)
        for companion in self.companions:
            companion.load_state(folder)
        _compat.set_fit_initial_epoch(self.model, int(metadata["epoch"]))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        if self.model.stop_training:
            # Stopped (early stopping, NaN): a resumed fit has nothing left.
            self.epoch = int(self.params.get("epochs") or epoch + 1)
        self.save()

    def save(self):
        """Commits a backup of the model (and companions) at `self.epoch`."""
        if not self.write:
            with tempfile.TemporaryDirectory(prefix="kerastune_ft_worker_") as folder:
                self.model.save_weights(os.path.join(folder, "model.weights.h5"))
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        folders = self.committed()
        number = (
            int(os.path.basename(folders[0])[len(self._PREFIX) :]) + 1 if folders else 0
        )
        final = os.path.join(self.backup_dir, f"{self._PREFIX}{number:06d}")
        tmp = os.path.join(self.backup_dir, f".{self._PREFIX}{number:06d}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        self.model.save_weights(os.path.join(tmp, "model.weights.h5"))
        write_json(
            os.path.join(tmp, "training_metadata.json"),
            {"epoch": self.epoch, "batch": 0},
        )
        for companion in self.companions:
            companion.save_state(tmp, folders[0] if folders else None)
        _fsync_folder(tmp)
        os.replace(tmp, final)
        _fsync_folder(self.backup_dir)
        keep = 2 if self.double_checkpoint else 1
        for old in folders[keep - 1 :]:
            shutil.rmtree(old, ignore_errors=True)

    def on_train_end(self, logs=None):
        # Keras never clears it: the next fit() of this model would start at
        # the restored epoch instead of its own initial_epoch.
        _compat.set_fit_initial_epoch(self.model, None)
        if self.write and self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def write_json(path, value):
    """Writes JSON to `path` and flushes it to disk."""
    with open(path, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_folder(folder):
    # A rename is durable only once the files and the folder are on disk.
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
