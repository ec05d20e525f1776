"""Callbacks that live across stages: the best-epoch tracker and the epoch log.

`BestWeights` is the one early-stopping / best-weights callback of a
`kft.fine_tune` run: one instance sees every stage. `EpochLog` keeps every
finished epoch's logs in `checkpoint_dir`, so that a resumed run's history
loses none. `monitor_mode` is the one answer to "is a bigger metric better".
"""

import dataclasses
import json
import math
import os

import keras
import numpy as np

from kerastune_ft import _compat, distribute

__all__ = [
    "BestState",
    "BestWeights",
    "CachedValidation",
    "EpochLog",
    "StopOnNonFiniteLoss",
    "load_arrays",
    "monitor_mode",
    "save_arrays",
]

# Metric names whose bigger values are better, for metrics that do not say.
_BIGGER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "score")


def monitor_mode(model, monitor):
    """`"min"` or `"max"`: the direction of `monitor`, as Keras' `mode="auto"`.

    The loss is minimized; a compiled metric says its own direction (Keras'
    metrics do; a custom metric sets `direction = "up"` or `"down"`); other
    names are maximized when they name an accuracy-like score.

    Args:
        model: the compiled model.
        monitor: a logged metric name, e.g. `"val_accuracy"`.

    Returns:
        `"min"` or `"max"`.

    Example:

    >>> import keras
    >>> from kerastune_ft.training.callbacks import monitor_mode
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse", metrics=[keras.metrics.AUC(name="auc")])
    >>> monitor_mode(model, "val_loss"), monitor_mode(model, "val_auc")
    ('min', 'max')
    """
    name = monitor.removeprefix("val_")
    if name == "loss" or name.endswith("_loss"):
        return "min"
    for metric in _compiled_metrics(model):
        if getattr(metric, "name", None) == name:
            direction = _compat.metric_direction(metric)
            if direction is not None:
                return "max" if direction == "up" else "min"
    return "max" if any(k in name for k in _BIGGER_IS_BETTER) else "min"


def _compiled_metrics(model):
    config = model.get_compile_config() or {}
    found = []
    for key in ("metrics", "weighted_metrics"):
        metrics = config.get(key)
        if not isinstance(metrics, (list, tuple)):
            continue
        for metric in metrics:
            try:
                found.append(keras.metrics.get(metric))
            except (ValueError, TypeError):
                continue
    return found


@dataclasses.dataclass
class BestState:
    """Where the search for the best epoch stands (saved with each backup).

    Attributes:
        value: the best finite value of the monitored metric so far.
        epoch: its 1-based epoch, counting across stages.
        stage_value: the best value in the current stage; patience counts
            from it, so a new stage (a new learning rate) gets full patience.
        wait: epochs of the current stage since `stage_value` improved.
        stopped: the current stage stopped early.
        diverged_epoch: the first epoch whose training loss was NaN or inf.
    """

    value: float | None = None
    epoch: int | None = None
    stage_value: float | None = None
    wait: int = 0
    stopped: bool = False
    diverged_epoch: int | None = None


class BestWeights(keras.callbacks.Callback):
    """Tracks the best epoch across stages, stops early, restores its weights.

    One instance lives across all the stages of a `kft.fine_tune` run: the
    best value, epoch and weights carry over from stage to stage, while
    patience counts within a stage. `on_train_begin` resets the per-stage
    state (`wait`, `stopped`); when the run resumes from a backup, the backup
    callback then loads the saved state (`load_state`), so the reset only
    holds for a stage that starts fresh. `reset()` starts a new run.

    An epoch whose monitored value is NaN or inf, or whose weights are not
    finite, never becomes the best; a NaN or inf training loss stops the
    stage (training diverged). At the end of each stage the model gets the
    best weights back (`restore=True`), and after a divergence, always: the
    last finite best, else the weights the run started with.

    Args:
        model: the model whose weights are saved and restored (with cached
            features, the full model, while `fit` trains its head).
        monitor: the metric to watch, e.g. `"val_loss"`.
        mode: `"min"` or `"max"` (see `monitor_mode`).
        patience: epochs without improvement before a stage stops, or `None`
            to never stop early. Defaults to `None`.
        restore: restore the best weights at the end of each stage.
            Defaults to `True`.

    Example:

    >>> import keras
    >>> from kerastune_ft.training.callbacks import BestWeights
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> tracker = BestWeights(model, "loss", "min", patience=3)
    >>> tracker.better(0.5, 0.7), tracker.better(float("nan"), None)
    (True, False)
    """

    def __init__(self, model, monitor, mode, patience=None, restore=True):
        super().__init__()
        self.tracked = model
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.restore = restore
        self.reset()

    def reset(self):
        """Forgets everything: a new run."""
        self.state = BestState()
        self.best_weights = None
        self.initial_weights = None
        self.saved_epoch = None
        self._stage_base = None

    def better(self, value, reference):
        """Whether `value` improves on `reference` (`None`: anything finite does)."""
        if value is None or not math.isfinite(value):
            return False
        if reference is None:
            return True
        return value < reference if self.mode == "min" else value > reference

    def on_train_begin(self, logs=None):
        # A new stage: fresh patience (a backup's load_state may follow).
        self.state.stage_value = None
        self.state.wait = 0
        self.state.stopped = False
        self._stage_base = None
        if self.initial_weights is None:
            self.initial_weights = self.tracked.get_weights()

    def _snapshot(self):
        """The tracked model's weights, reading only what `fit` can change.

        With cached features `fit` trains the head alone: the other weights
        are those of the stage's start, read once per stage (a MobileNetV2
        has 262 arrays; reading them every improving epoch cost more than
        the epoch).
        """
        trained = self.model
        if trained is None or trained is self.tracked:
            return self.tracked.get_weights()
        index = {id(v): i for i, v in enumerate(self.tracked.weights)}
        if any(id(v) not in index for v in trained.weights):
            return self.tracked.get_weights()
        if self._stage_base is None:
            self._stage_base = self.tracked.get_weights()
        weights = list(self._stage_base)
        for variable in trained.weights:
            weights[index[id(variable)]] = keras.ops.convert_to_numpy(variable)
        return weights

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            if self.state.diverged_epoch is None:
                self.state.diverged_epoch = epoch + 1
            self._stop()
            return
        value = logs.get(self.monitor)
        value = None if value is None else float(value)
        if self.better(value, self.state.value):
            weights = self._snapshot()
            if all(np.isfinite(w).all() for w in weights if w.dtype.kind == "f"):
                self.state.value, self.state.epoch = value, epoch + 1
                self.best_weights = weights
        if self.better(value, self.state.stage_value):
            self.state.stage_value = value
            self.state.wait = 0
            return
        self.state.wait += 1
        if self.patience is not None and self.state.wait >= self.patience:
            self._stop()

    def _stop(self):
        self.state.stopped = True
        self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.state.diverged_epoch is not None:
            fallback = self.best_weights or self.initial_weights
            if fallback is not None:
                self.tracked.set_weights(fallback)
        elif self.restore and self.best_weights is not None:
            self.tracked.set_weights(self.best_weights)

    # -- saved with each backup (see kft.distribute.AtomicBackupAndRestore) --

    def save_state(self, folder, previous=None):
        """Writes `best.json` and, when restoring, `best.weights.npz` to `folder`."""
        distribute.write_json(
            os.path.join(folder, "best.json"), dataclasses.asdict(self.state)
        )
        if not self.restore or self.best_weights is None:
            return
        target = os.path.join(folder, "best.weights.npz")
        source = previous and os.path.join(previous, "best.weights.npz")
        if source and os.path.isfile(source) and self.saved_epoch == self.state.epoch:
            try:  # unchanged since the last backup: share its file
                os.link(source, target)
                return
            except OSError:
                pass
        save_arrays(target, self.best_weights)
        self.saved_epoch = self.state.epoch

    def load_state(self, folder):
        """Reads what `save_state` wrote."""
        with open(os.path.join(folder, "best.json")) as f:
            self.state = BestState(**json.load(f))
        path = os.path.join(folder, "best.weights.npz")
        if self.restore and self.state.epoch is not None and os.path.isfile(path):
            self.best_weights = load_arrays(path)
            self.saved_epoch = self.state.epoch


def save_arrays(path, arrays):
    """Saves a list of arrays to an `.npz` file, flushed to disk.

    Args:
        path: the file to write.
        arrays: a list of NumPy arrays (e.g. `model.get_weights()`).
    """
    with open(path, "wb") as f:
        np.savez(f, **{f"w{i}": a for i, a in enumerate(arrays)})
        f.flush()
        os.fsync(f.fileno())


def load_arrays(path):
    """Loads what `save_arrays` wrote, in order.

    Args:
        path: the `.npz` file.

    Returns:
        A list of NumPy arrays.
    """
    with np.load(path) as data:
        return [data[f"w{i}"] for i in range(len(data.files))]


class EpochLog(keras.callbacks.Callback):
    """Appends each finished epoch's logs to a JSON-lines file.

    With a backup callback, a killed stage resumes at its last finished
    epoch; this file keeps the epochs run before the kill, so the merged
    history loses none. An epoch logged twice (killed between the two
    callbacks) keeps its latest entry. (Keras' `CSVLogger` appends too, but
    it writes a header per `fit` and cannot say which duplicate row wins.)

    With multi-worker training only the chief writes (`write=False`
    elsewhere); every worker reads the earlier epochs when the callback is
    made, before `fit`, and keeps its own epochs in memory: `history()`.

    Args:
        path: the `.jsonl` file.
        write: whether this process writes. Defaults to `True`.

    Example:

    >>> import os, tempfile
    >>> from kerastune_ft.training.callbacks import EpochLog
    >>> path = os.path.join(tempfile.mkdtemp(), "epochs.jsonl")
    >>> EpochLog(path).on_epoch_end(0, {"loss": 0.5})
    >>> EpochLog.read(path)
    {'loss': [0.5]}
    """

    def __init__(self, path, write=True):
        super().__init__()
        self.path = path
        self.write = write
        self.records = EpochLog._records(path)

    def history(self):
        """Returns `{metric: [values]}`: earlier runs' epochs, then this run's."""
        return EpochLog._as_history(self.records)

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": int(epoch), **{k: float(v) for k, v in (logs or {}).items()}}
        self.records[int(epoch)] = {k: v for k, v in record.items() if k != "epoch"}
        if not self.write:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def read(path):
        """Returns `{metric: [values]}` ordered by epoch, latest entry winning."""
        return EpochLog._as_history(EpochLog._records(path))

    @staticmethod
    def _records(path):
        by_epoch = {}
        if os.path.isfile(path):
            with open(path) as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        by_epoch[record.pop("epoch")] = record
        return by_epoch

    @staticmethod
    def _as_history(by_epoch):
        history = {}
        for epoch in sorted(by_epoch):
            for key, value in by_epoch[epoch].items():
                history.setdefault(key, []).append(value)
        return history


class CachedValidation(keras.callbacks.Callback):
    """Adds `val_*` metrics computed by `head` on cached validation features.

    Used when training data runs through the full model (augmentation) but
    validation features can be cached.

    Args:
        head: the compiled head model.
        dataset: the cached validation features and labels.
    """

    def __init__(self, head, dataset):
        super().__init__()
        self.head = head
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        results = self.head.evaluate(self.dataset, verbose=0, return_dict=True)
        logs.update({f"val_{k}": float(v) for k, v in results.items()})


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training after an epoch whose loss is NaN or infinite.

    `keras.callbacks.TerminateOnNaN` checks every batch, and a callback with
    a batch hook makes Keras turn each step's logs into Python floats before
    the next step starts (keras/src/callbacks/callback_list.py). On JAX and
    torch, which run a step per call, that is a device round trip per step:
    a cached head's epoch of 92 steps took 0.35 s on an H200 instead of a
    few milliseconds. Checking once per epoch costs at most one epoch of
    useless steps; `BestWeights` restores the last finite best either way.
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.model.stop_training = True


def stop_on_non_finite_loss():
    """The NaN guard for this backend: per batch on TensorFlow, else per epoch.

    TensorFlow runs a cached head's whole epoch in one call
    (`steps_per_execution`), so Keras' per-batch `TerminateOnNaN` costs one
    check per call there and stops a full-model stage at the first bad batch.

    Returns:
        A `keras.callbacks.Callback`.
    """
    if keras.backend.backend() == "tensorflow":
        return keras.callbacks.TerminateOnNaN()
    return StopOnNonFiniteLoss()
