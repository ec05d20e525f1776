"""The training engine: staged fine-tuning, unfreezing, frozen-feature caching.

`fine_tune` trains a kerastune_ft model (or any functional Keras model whose
backbone is the nested layer named `"backbone"`) in stages: stage 1 trains the
head on the frozen backbone; later stages unfreeze the top of the backbone and
continue at a lower learning rate. Early stopping restores the best weights
across all stages.

When everything below the first trainable layer is frozen and sees no random
augmentation, that part is run once per example and its outputs are cached:
only the head trains, on the cached tensors. The head layers are the model's
own layers, so the returned model is the full model with trained weights.
With random augmentation below that layer, the frozen part runs a few times
with augmentation on (`augmented_views`), and each epoch draws from those
views: the backbone runs a fixed number of times instead of once per epoch.
"""

import dataclasses
import json
import math
import os
import shutil
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from kerastune_ft import distribute, freezing
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.builders.head import make_adamw

_SCHEDULES = ("cosine", "linear", "constant")
# Layers that are random in training: the augmentation layers Keras ships
# (RandomFlip, RandomRotation, ...) and the noise/dropout family.
_RANDOM_LAYER_NAMES = (
    "RandAugment",
    "AugMix",
    "MixUp",
    "CutMix",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
)


@keras.saving.register_keras_serializable(package="kerastune_ft")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`; this one
    one-hot encodes the integer labels and smooths them.

    Args:
        from_logits: whether predictions are logits. Defaults to `False`.
        label_smoothing: float in [0, 1). Defaults to `0.0`.
        name: loss name. Defaults to
            `"sparse_categorical_crossentropy_with_smoothing"`.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> loss = kft.training.SparseCategoricalCrossentropyWithSmoothing(
    ...     from_logits=True, label_smoothing=0.1)
    >>> float(loss(np.array([1]), np.array([[0.0, 5.0]]))) > 0
    True
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        name="sparse_categorical_crossentropy_with_smoothing",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        num_classes = keras.ops.shape(y_pred)[-1]
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(y_true, num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}
        )
        return config


@dataclasses.dataclass
class StageReport:
    """What one training stage did.

    Attributes:
        name: `"head"` for stage 1, then `"unfreeze top N"` / `"unfreeze all"`.
        first_epoch: first epoch of the stage (1-based, counting across stages).
        last_epoch: last epoch run.
        learning_rate: peak learning rate.
        trainable_params: trainable parameters during the stage.
        seconds: wall time, feature caching included.
        cached: `"train+val"`, `"train (8 views)+val"` (augmented views),
            `"val"` or `"none"` (with `"train"` forms when there is no
            validation data).
    """

    name: str
    first_epoch: int
    last_epoch: int
    learning_rate: float
    trainable_params: int
    seconds: float
    cached: str


@dataclasses.dataclass
class FineTuneResult:
    """What `kft.fine_tune` returns.

    Attributes:
        model: the trained model, with the best weights restored.
        history: metrics per epoch, merged across stages (`{"loss": [...],
            "val_loss": [...], ...}`).
        stages: a `StageReport` per stage.
        best_epoch: the 1-based epoch whose weights were restored, or `None`
            when nothing was monitored.
        best_metrics: the metrics of that epoch.
        monitor: the metric that chose the best epoch.
        restored_best: whether the model holds the best epoch's weights
            (`True` with early stopping) or the last epoch's.
        diverged: the training loss became NaN or inf. Training stopped
            there; the model holds the last epoch with finite weights that
            was best (`best_epoch`), or the weights it started with when
            there was none (`best_epoch` is `None`). Never NaN weights.
    """

    model: keras.Model
    history: dict
    stages: list
    best_epoch: int | None
    best_metrics: dict
    monitor: str
    restored_best: bool = True
    diverged: bool = False

    @property
    def epochs_run(self):
        """How many epochs ran, across stages."""
        return len(next(iter(self.history.values()), []))

    def __repr__(self):
        lines = [
            f"FineTuneResult: {self.epochs_run} epochs in {len(self.stages)} stage(s)"
        ]
        for s in self.stages:
            lines.append(
                f"  {s.name}: epochs {s.first_epoch}-{s.last_epoch}, lr {s.learning_rate:g}, "
                f"{s.trainable_params:,} trainable params, {s.seconds:.1f}s, cached: {s.cached}"
            )
        if self.diverged:
            lines.append("  training diverged (the loss became NaN or inf)")
        if self.best_epoch is not None:
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.best_metrics.items())
            lines.append(f"  best epoch {self.best_epoch} by {self.monitor}: {metrics}")
        return "\n".join(lines)


def _set_trainable_top(model, top, bn_trainable):
    backbone = freezing.get_backbone(model)
    if backbone is model:
        raise ValueError(
            "`model` has no marked backbone: kft.unfreeze and kft.fine_tune look for "
            "a nested layer named 'backbone' (or a `.backbone` attribute). Build the "
            "model with kft.build_image_classifier / kft.build_text_classifier, or "
            "name your backbone 'backbone'."
        )
    num_units = len(freezing.backbone_units(backbone).units)
    if top == "all":
        top = num_units
    check_number(
        "top",
        top,
        low=0,
        high=num_units,
        integer=True,
        hint=f"The backbone has {num_units} units; use kft.describe_layers(model).",
    )
    freezing.set_frozen_units(backbone, num_units - top, bn_trainable=bn_trainable)
    return top


def _require_compiled(model):
    if not model.get_compile_config():
        raise ValueError(
            "`model` must be compiled before training, so that its loss and metrics "
            "are known. Build it with compile=True or call model.compile(...)."
        )


def _check_checkpoint_dir(checkpoint_dir):
    if not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(
            "`checkpoint_dir` must be a folder path (str or pathlib.Path) or None. "
            f"Received: checkpoint_dir={checkpoint_dir!r}."
        )
    if os.path.exists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        raise ValueError(
            "`checkpoint_dir` must be a folder, but it is an existing file. Pass a "
            "new or existing folder. Received: "
            f"checkpoint_dir={os.fspath(checkpoint_dir)!r}."
        )


def _recompile(model, optimizer, label_smoothing=None, like=None):
    # `like`: take loss and metrics from another model (the head sub-model
    # trains on cached features with the full model's loss and metrics).
    _require_compiled(like or model)
    config = keras.saving.deserialize_keras_object((like or model).get_compile_config())
    config["optimizer"] = optimizer
    if label_smoothing is not None:
        config["loss"] = _smoothed_loss(config["loss"], label_smoothing)
    model.compile(**config)


# Loss names a model may be compiled with, as the classes that take smoothing.
_LOSS_CLASSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


def _smoothed_loss(loss, label_smoothing):
    if isinstance(loss, str):
        # keras.losses.get turns a name into a plain function; the class form
        # is what carries from_logits and label_smoothing.
        loss = (
            _LOSS_CLASSES[loss]() if loss in _LOSS_CLASSES else keras.losses.get(loss)
        )
    if isinstance(loss, (SparseCategoricalCrossentropyWithSmoothing,)):
        return SparseCategoricalCrossentropyWithSmoothing(
            from_logits=loss.from_logits, label_smoothing=label_smoothing
        )
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return SparseCategoricalCrossentropyWithSmoothing(
            from_logits=loss.get_config().get("from_logits", False),
            label_smoothing=label_smoothing,
        )
    if isinstance(
        loss, (keras.losses.CategoricalCrossentropy, keras.losses.BinaryCrossentropy)
    ):
        config = loss.get_config()
        config["label_smoothing"] = label_smoothing
        return type(loss).from_config(config)
    if label_smoothing:
        raise ValueError(
            "`label_smoothing` needs a cross-entropy loss. The model was compiled "
            f"with {loss!r}. Received: label_smoothing={label_smoothing}."
        )
    return loss


def _schedule(kind, learning_rate, warmup, total_steps):
    if kind == "constant" or total_steps is None:
        return learning_rate
    warmup_steps = int(round(warmup * total_steps)) if warmup < 1 else int(warmup)
    decay_steps = max(1, total_steps - warmup_steps)
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup_steps else learning_rate,
            decay_steps=decay_steps,
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    return _WarmupLinear(learning_rate, warmup_steps, decay_steps)


@keras.saving.register_keras_serializable(package="kerastune_ft")
class _WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then linear decay to 0."""

    def __init__(self, peak, warmup_steps, decay_steps):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * step / max(1, self.warmup_steps)
        progress = (step - self.warmup_steps) / max(1, self.decay_steps)
        decay = self.peak * keras.ops.maximum(0.0, 1.0 - progress)
        return keras.ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
        }


# ---------------------------------------------------------------------------
# Frozen-feature caching
# ---------------------------------------------------------------------------


def _nodes_in(model):
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]


def _consumers(model, tensor):
    return [
        node
        for node in _nodes_in(model)
        if any(t is tensor for t in node.input_tensors)
    ]


def _is_random(layer):
    name = type(layer).__name__
    return name.startswith("Random") or name in _RANDOM_LAYER_NAMES


def _has_random(layer):
    for sub in layer._flatten_layers(include_self=True):
        if _is_random(sub):
            return True
    return False


@dataclasses.dataclass
class _Split:
    features: keras.Model  # inputs -> cached tensor, frozen and deterministic
    head: keras.Model  # cached tensor -> outputs, the model's own layers
    random_below: bool  # augmentation below the cut: views, or validation only


def split_frozen_prefix(model):
    """Cuts a model where its frozen, weight-free prefix ends.

    The cut is placed after the backbone (when it has no trainable weights)
    and after any following layers that have no weights and are not random
    (pooling, flatten), so the cached tensors are as small as possible.

    Args:
        model: a functional model with a marked backbone.

    Returns:
        A `_Split` (feature model, head model, whether random layers sit below
        the cut), or `None` when nothing can be cached.
    """
    if not hasattr(model, "_nodes_by_depth") or not model.inputs:
        return None
    backbone = freezing.get_backbone(model)
    if backbone is model or backbone.trainable_weights:
        return None
    calls = [n for n in _nodes_in(model) if n.operation is backbone]
    if len(calls) != 1:
        return None
    # keras-hub backbones return several outputs (sequence and pooled); the
    # head usually reads one of them, and that one is where to cut.
    used = [t for t in calls[0].outputs if _consumers(model, t)]
    if len(used) != 1:
        return None
    tensor = used[0]
    # Advance through weight-free deterministic layers (pooling, flatten...).
    while True:
        consumers = _consumers(model, tensor)
        if len(consumers) != 1:
            break
        node = consumers[0]
        layer = node.operation
        if layer.weights or _is_random(layer) or len(node.outputs) != 1:
            break
        if len(node.input_tensors) != 1:
            break
        tensor = node.outputs[0]
    if any(tensor is t for t in model.outputs):
        return None
    features = keras.Model(model.inputs, tensor, name="cached_features")
    if features.trainable_weights:
        return None
    # Dropout inside a frozen backbone still acts during fit: Keras 3 passes
    # fit's training=True down even where the graph recorded training=False.
    # It counts as random, like augmentation: cached as augmented views.
    random_below = any(_has_random(layer) for layer in features.layers)
    try:
        head = keras.Model(tensor, model.outputs, name="head")
    except ValueError:
        # The head also reads other model inputs (e.g. a padding mask).
        return None
    return _Split(features, head, random_below)


def _materialize(features, dataset, views=0):
    """Runs `features` over `dataset`; returns (features, labels, batch size).

    With `views > 0`, runs it that many times in training mode (augmentation
    on) and returns every pass's features and labels, concatenated: a
    training dataset may reshuffle between passes, so each pass keeps its own
    labels.
    """
    outputs, labels, batch_size = [], [], None

    @tf.function(reduce_retracing=True)
    def run(x):
        return features(x, training=bool(views))

    for _ in range(max(1, views)):
        for x, y in dataset:
            if batch_size is None:
                batch_size = int(tf.shape(y)[0])
            outputs.append(run(x).numpy())
            labels.append(y.numpy())
    if not outputs:
        raise ValueError("The dataset is empty: there is nothing to train on.")
    return np.concatenate(outputs), np.concatenate(labels), batch_size


def _as_dataset(features, labels, batch_size, shuffle, seed):
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class _EpochLog(keras.callbacks.Callback):
    """Appends each finished epoch's logs to a JSON-lines file.

    With `BackupAndRestore`, a killed stage resumes at its last finished
    epoch; this file keeps the epochs run before the kill, so the merged
    history loses none. An epoch logged twice (killed between the two
    callbacks) keeps its latest entry.

    With multi-worker training only the chief writes (`write=False`
    elsewhere); every worker reads the earlier epochs when the callback is
    made, before `fit` (no worker can finish an epoch before the others
    start theirs), and keeps its own epochs in memory: `history()`.
    """

    def __init__(self, path, write=True):
        super().__init__()
        self.path = path
        self.write = write
        self.records = _EpochLog._records(path)

    def history(self):
        """Returns `{metric: [values]}`: earlier runs' epochs, then this run's."""
        return _EpochLog._as_history(self.records)

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
        return _EpochLog._as_history(_EpochLog._records(path))

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
        mode: `"min"` or `"max"`.
        patience: epochs without improvement before a stage stops, or `None`
            to never stop early. Defaults to `None`.
        restore: restore the best weights at the end of each stage.
            Defaults to `True`.
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
        self._saved_epoch = None

    def better(self, value, reference):
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
        if self.initial_weights is None:
            self.initial_weights = self.tracked.get_weights()

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
            weights = self.tracked.get_weights()
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

    # -- saved with each backup (see distribute.AtomicBackupAndRestore) --

    def save_state(self, folder, previous=None):
        """Writes `best.json` and, when restoring, `best.weights.npz` to `folder`."""
        distribute.write_json(
            os.path.join(folder, "best.json"), dataclasses.asdict(self.state)
        )
        if not self.restore or self.best_weights is None:
            return
        target = os.path.join(folder, "best.weights.npz")
        source = previous and os.path.join(previous, "best.weights.npz")
        if source and os.path.isfile(source) and self._saved_epoch == self.state.epoch:
            try:  # unchanged since the last backup: share its file
                os.link(source, target)
                return
            except OSError:
                pass
        save_arrays(target, self.best_weights)
        self._saved_epoch = self.state.epoch

    def load_state(self, folder):
        """Reads what `save_state` wrote."""
        with open(os.path.join(folder, "best.json")) as f:
            self.state = BestState(**json.load(f))
        path = os.path.join(folder, "best.weights.npz")
        if self.restore and self.state.epoch is not None and os.path.isfile(path):
            self.best_weights = load_arrays(path)
            self._saved_epoch = self.state.epoch


def save_arrays(path, arrays):
    """Saves a list of arrays to an `.npz` file, flushed to disk."""
    with open(path, "wb") as f:
        np.savez(f, **{f"w{i}": a for i, a in enumerate(arrays)})
        f.flush()
        os.fsync(f.fileno())


def load_arrays(path):
    """Loads what `save_arrays` wrote, in order."""
    with np.load(path) as data:
        return [data[f"w{i}"] for i in range(len(data.files))]


class _CachedValidation(keras.callbacks.Callback):
    """Adds `val_*` metrics computed on cached validation features."""

    def __init__(self, head, dataset):
        super().__init__()
        self.head = head
        self.dataset = dataset

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        results = self.head.evaluate(self.dataset, verbose=0, return_dict=True)
        logs.update({f"val_{k}": float(v) for k, v in results.items()})


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def unfreeze(
    model, top="all", *, learning_rate=1e-5, weight_decay=1e-4, bn_trainable=False
):
    """Unfreezes the top of the backbone and recompiles, for plain `model.fit`.

    BatchNormalization layers stay frozen (and the backbone is called in
    inference mode) unless `bn_trainable=True`. The loss and metrics the model
    was compiled with are kept; the optimizer becomes AdamW at
    `learning_rate`.

    Args:
        model: a compiled model with a marked backbone.
        top: how many top units to unfreeze (layers for image backbones;
            transformer blocks, then embeddings, for text backbones), or
            `"all"`. Defaults to `"all"`.
        learning_rate: learning rate after unfreezing; keep it small.
            Defaults to `1e-5`.
        weight_decay: AdamW weight decay. Defaults to `1e-4`.
        bn_trainable: also train BatchNormalization layers. Defaults to
            `False`.

    Returns:
        The model (changed in place), for chaining.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(3)],
    ...     name="backbone")
    >>> base.trainable = False
    >>> inputs = keras.Input((4,))
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(base(inputs)))
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> model = kft.unfreeze(model, top=1, learning_rate=1e-5)
    >>> [layer.trainable for layer in base.layers]
    [False, True]
    """
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False)
    if top != "all":
        check_number("top", top, low=0, integer=True)
    _set_trainable_top(model, top, bn_trainable)
    _recompile(model, make_adamw(learning_rate, weight_decay))
    return model


def _parse_stages(unfreeze_arg, epochs, learning_rate, fine_tune_learning_rate):
    stages = [
        {"name": "head", "top": None, "epochs": epochs, "learning_rate": learning_rate}
    ]
    if unfreeze_arg is None:
        return stages
    specs = unfreeze_arg if isinstance(unfreeze_arg, (list, tuple)) else [unfreeze_arg]
    for spec in specs:
        if isinstance(spec, dict):
            unknown = set(spec) - {"top", "epochs", "learning_rate"}
            if unknown or "top" not in spec:
                raise ValueError(
                    "Each stage spec in `unfreeze` is a dict with key 'top' and optional "
                    f"'epochs' and 'learning_rate'. Received: {spec!r}."
                )
            top = spec["top"]
            stage_epochs = spec.get("epochs", epochs)
            lr = spec.get("learning_rate", fine_tune_learning_rate)
        else:
            top, stage_epochs, lr = spec, epochs, fine_tune_learning_rate
        if top != "all":
            check_number("unfreeze", top, low=1, integer=True)
        check_number("epochs", stage_epochs, low=1, integer=True)
        check_number("fine_tune_learning_rate", lr, low=0, low_inclusive=False)
        name = "unfreeze all" if top == "all" else f"unfreeze top {top}"
        stages.append(
            {"name": name, "top": top, "epochs": stage_epochs, "learning_rate": lr}
        )
    return stages


def _num_outputs(model):
    outputs = getattr(model, "outputs", None)
    return outputs[0].shape[-1] if outputs else None


def _loss_name(model):
    """The compiled loss's class or function name, lower case ('' if unknown)."""
    loss = (model.get_compile_config() or {}).get("loss")
    if isinstance(loss, dict):
        loss = loss.get("class_name") if "class_name" in loss else None
        if loss == "function":
            loss = None
    return loss.lower() if isinstance(loss, str) else ""


def _check_labels(model, labels, name="train"):
    """Labels that the model's outputs or loss cannot take get a clear error."""
    outputs = _num_outputs(model)
    labels = np.asarray(labels)
    if outputs is None or labels.size == 0:
        return
    if labels.dtype.kind in "OSU":
        raise TypeError(
            f"The labels of `{name}` are strings (e.g. {labels.reshape(-1)[0]!r}); "
            "the model needs integer class indices. Map them with "
            "`kft.data` loaders or a StringLookup. "
            f"Received: labels of dtype {labels.dtype}."
        )
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(
            f"The labels of `{name}` contain NaN or inf "
            f"({int((~np.isfinite(labels)).sum())} in the first batch). Drop or fix "
            "those examples before training."
        )
    loss = _loss_name(model)
    one_hot = labels.ndim == 2 and labels.shape[-1] > 1
    if one_hot and "sparse" in loss:
        raise ValueError(
            f"The labels of `{name}` are one-hot (shape {labels.shape}) but the "
            "model's loss, sparse categorical cross-entropy, takes integer class "
            "indices. Use integer labels (label_mode='int' when loading, or "
            "`tf.argmax(y, axis=-1)`), or compile with "
            "keras.losses.CategoricalCrossentropy."
        )
    if not one_hot and outputs > 1 and "categorical" in loss and "sparse" not in loss:
        raise ValueError(
            f"The labels of `{name}` are integer class indices (shape "
            f"{labels.shape}) but the model's loss, categorical cross-entropy, "
            "takes one-hot labels. Use one-hot labels (label_mode='categorical') "
            "or compile with keras.losses.SparseCategoricalCrossentropy."
        )
    if one_hot:  # or multi-hot
        if labels.shape[-1] != outputs:
            raise ValueError(
                f"The labels of `{name}` have {labels.shape[-1]} columns but the "
                f"model has {outputs} outputs. Build the model with "
                f"num_classes={labels.shape[-1]}."
            )
        return
    if labels.min() < 0:
        raise ValueError(
            f"The labels of `{name}` must be class indices >= 0. Received: a label "
            f"of {labels.min()!r}. Map the classes to 0..{max(outputs, 2) - 1}."
        )
    if outputs > 1 and int(labels.max()) >= outputs:
        raise ValueError(
            f"The model has {outputs} outputs (num_classes={outputs}) but the "
            f"labels go up to {int(labels.max())}. Build it with "
            f"num_classes={int(labels.max()) + 1}, or check the labels "
            "(`data.class_names`)."
        )


def _first_batch(dataset, name):
    """The first element of `dataset`, or a clear error when it has none."""
    try:
        element = next(iter(dataset), None)
    except (tf.errors.OpError, ValueError, TypeError) as e:
        raise ValueError(
            f"`{name}` could not be read: {str(e).splitlines()[0]}. "
            "Check the dataset's pipeline (e.g. iterate it once by hand)."
        ) from e
    if element is None:
        raise ValueError(
            f"`{name}` is empty: it yields no batches, so there is nothing to "
            f"{'train on' if name == 'train' else 'validate on'}. Check the "
            f"dataset (e.g. a filter() that drops everything, take(0)). "
            f"Received: {name} with {int(dataset.cardinality())} batches."
        )
    if not isinstance(element, (tuple, list)) or len(element) not in (2, 3):
        raise ValueError(
            f"`{name}` must yield (inputs, labels) pairs. Received: elements of "
            f"{_describe(dataset.element_spec)}. Map it, e.g. "
            "`dataset.map(lambda x, y: (x, y))`, or zip inputs with labels."
        )
    return element


def _describe(spec):
    return tf.nest.map_structure(
        lambda s: (
            f"{getattr(s, 'dtype', type(s)).name}{list(s.shape)}"
            if hasattr(s, "shape")
            else type(s).__name__
        ),
        spec,
    )


def _check_batch(model, batch, name):
    """Checks a peeked `(inputs, labels)` batch against the model, before training."""
    x, y = batch[0], batch[1]
    if getattr(model, "preprocessor", None) is None and len(model.inputs) == 1:
        _check_inputs(model.inputs[0], x, name)
    _check_labels(model, np.asarray(y), name)


def _check_inputs(model_input, x, name):
    if not tf.is_tensor(x):
        return
    expected = tuple(model_input.shape)
    if x.dtype == tf.string and model_input.dtype != "string":
        raise TypeError(
            f"`{name}` gives strings (e.g. file paths or texts) but the model takes "
            f"{model_input.dtype} tensors of shape {expected}. Load images with "
            "kft.data.load_images, or build a text model with "
            "kft.build_text_classifier. Received: inputs of dtype string."
        )
    shape = tuple(x.shape)
    if len(shape) == len(expected) - 1 and _fits(shape, expected[1:]):
        raise ValueError(
            f"`{name}` is not batched: its elements have shape {shape}, the model "
            f"takes batches of shape {expected}. Batch it, e.g. `{name}.batch(32)`."
        )
    if len(shape) == len(expected) and not _fits(shape[1:], expected[1:]):
        raise ValueError(
            f"`{name}` gives inputs of shape {shape} but the model takes "
            f"{expected}. Resize the data (image_size= when loading images) or "
            f"build the model with input_shape={shape[1:]}."
        )


def _fits(shape, expected):
    return len(shape) == len(expected) and all(
        e is None or s is None or s == e for s, e in zip(shape, expected, strict=True)
    )


def _check_class_weight(class_weight, model):
    """`class_weight` dict: integer class keys in range, finite weights >= 0."""
    outputs = _num_outputs(model) or 0
    top = max(outputs, 2) - 1
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(
                f"`class_weight` keys must be integer class indices 0..{top}. "
                f"Received: class_weight={class_weight!r}. Use the index of each "
                "class name in `data.class_names`, e.g. "
                "{data.class_names.index('cat'): 2.0}."
            )
        if not 0 <= key <= top:
            raise ValueError(
                f"`class_weight` keys must be integer class indices 0..{top} (the "
                f"model has {max(outputs, 2)} classes). Received: "
                f"class_weight={class_weight!r}."
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(
                "`class_weight` values must be finite numbers >= 0. Received: "
                f"class_weight={class_weight!r}."
            )


def _check_stages(model, stages, unfreeze_arg):
    """Every unfreezing stage fits the backbone, checked before any training."""
    tops = [s["top"] for s in stages if s["top"] is not None]
    if not tops:
        return
    backbone = freezing.get_backbone(model)
    if backbone is model:
        raise ValueError(
            "`unfreeze` needs a marked backbone, but `model` has none: kft.fine_tune "
            "looks for a nested layer named 'backbone' (or a `.backbone` "
            "attribute). Build the model with kft.build_image_classifier / "
            "kft.build_text_classifier, or name your backbone 'backbone'. "
            f"Received: unfreeze={unfreeze_arg!r}."
        )
    num_units = len(freezing.backbone_units(backbone).units)
    for top in tops:
        if top != "all" and top > num_units:
            raise ValueError(
                f"`unfreeze` asks for the top {top} units, but the backbone has "
                f"{num_units}: use 1..{num_units} or 'all'. Received: "
                f"unfreeze={unfreeze_arg!r}. Use `kft.describe_layers(model)` to "
                "choose N."
            )


def _metric_names(model):
    """Names `fit` logs for the compiled loss and metrics, or `None` if unsure."""
    config = model.get_compile_config() or {}
    loss = config.get("loss")
    if isinstance(loss, (list, tuple)) or (
        isinstance(loss, dict) and "class_name" not in loss
    ):
        return None  # one loss per output: per-output names
    names = ["loss"]
    for key in ("metrics", "weighted_metrics"):
        metrics = config.get(key)
        if metrics is None:
            continue
        if not isinstance(metrics, (list, tuple)):
            return None
        for metric in metrics:
            if isinstance(metric, dict):
                inner = metric.get("config")
                metric = inner.get("name") if isinstance(inner, dict) else inner
            if not isinstance(metric, str):
                return None
            names.append(metric)
    return names


def _check_monitor(model, monitor, has_validation):
    """`monitor` is a metric the compiled model logs, checked before any epoch."""
    names = _metric_names(model)
    if names is None:
        return
    available = names + ([f"val_{n}" for n in names] if has_validation else [])
    if monitor in available:
        return
    import difflib

    close = difflib.get_close_matches(monitor, available, n=1, cutoff=0.5)
    raise ValueError(
        f"`monitor` must be a metric the model logs: {', '.join(map(repr, available))}. "
        f"Received: monitor={monitor!r}."
        + (f" Did you mean {close[0]!r}?" if close else "")
        + " Metrics come from model.compile(metrics=[...])."
    )


def _balanced_class_weight(labels):
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels).reshape(-1)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights, strict=True)}


def _labels_of(dataset):
    return np.concatenate([np.asarray(y).reshape(-1) for _, y in dataset])


def _cardinality(dataset):
    n = int(dataset.cardinality())
    return n if n > 0 else None


@distribute.trains_under_strategy
def fine_tune(
    model,
    train,
    validation_data=None,
    *,
    epochs=None,
    unfreeze=None,
    learning_rate=None,
    fine_tune_learning_rate=None,
    weight_decay=None,
    label_smoothing=0.0,
    class_weight=None,
    schedule="cosine",
    warmup=0.1,
    early_stopping=True,
    patience=5,
    monitor="val_loss",
    reduce_lr_on_plateau=False,
    cache_features="auto",
    augmented_views=8,
    feature_cache=None,
    checkpoint_dir=None,
    callbacks=(),
    seed=None,
    strategy=None,
    verbose="auto",
):
    """Fine-tunes a model in stages and returns the best weights found.

    Stage 1 trains the head on the frozen backbone. Each entry of `unfreeze`
    adds a stage that unfreezes the top of the backbone, recompiles with the
    lower `fine_tune_learning_rate`, keeps BatchNorm in inference mode and
    continues the epoch count. Early stopping restores the best weights
    across all stages.

    Args:
        model: a compiled model with a marked backbone, e.g. from
            `kft.build_image_classifier`.
        train: a `tf.data.Dataset` of `(inputs, labels)` batches.
        validation_data: a dataset like `train`, or `None`. Defaults to `None`.
        epochs: maximum epochs per stage. Defaults to `None`: `4` when the
            model trains transformer blocks (BERT-style fine-tuning converges
            in 2-4 epochs; MediaPipe Model Maker's text default is 3), else
            `30`; a head trained on cached features gets more epochs when
            needed to make at least 500 optimizer steps (at most 300
            epochs): small datasets make few steps per epoch, cached epochs
            are cheap, and early stopping ends the run.
        unfreeze: `None` (head only), an int N (unfreeze the top N units),
            `"all"`, or a list of those or of dicts
            `{"top": N, "epochs": E, "learning_rate": LR}`, one per extra
            stage. Defaults to `None`.
        learning_rate: peak learning rate of stage 1. Defaults to `None`:
            the learning rate the model was compiled with (the builders pick
            one for their model: `1e-3` for an image head on a frozen
            backbone, `5e-5` for a text transformer trained whole).
        fine_tune_learning_rate: peak learning rate of unfreezing stages.
            Defaults to `None`: `learning_rate / 100` (`1e-5` after `1e-3`,
            as in the Keras transfer-learning guide).
        weight_decay: AdamW weight decay (not applied to biases and
            normalization scales). Defaults to `None`: the weight decay of
            the optimizer the model was compiled with when it is AdamW (the
            builders' choice), else `1e-4`.
        label_smoothing: cross-entropy label smoothing. Defaults to `0.0`.
        class_weight: `None`, a `{class: weight}` dict, or `"balanced"`
            (computed from the training labels). Defaults to `None`.
        schedule: `"cosine"`, `"linear"` or `"constant"`; cosine and linear
            decay over each stage after warmup. Defaults to `"cosine"`.
        warmup: warmup length as a fraction of a stage's steps (< 1) or a
            number of steps. Defaults to `0.1`.
        early_stopping: stop a stage when `monitor` stops improving for
            `patience` epochs. Defaults to `True`.
        patience: early-stopping patience in epochs; with `epochs=None`, a
            longer head stage gets a tenth of its epochs when that is more.
            Defaults to `5`.
        monitor: metric that picks the best epoch. Defaults to `"val_loss"`.
        reduce_lr_on_plateau: add `ReduceLROnPlateau` (only with
            `schedule="constant"`). Defaults to `False`.
        cache_features: `"auto"` caches the frozen prefix's outputs when it
            is safe (no random augmentation below the first trainable layer),
            and otherwise caches validation features only; `False` never
            caches; `True` requires caching and fails when it is not safe.
            Defaults to `"auto"`.
        augmented_views: when random augmentation (or dropout) runs below
            the first trainable layer, the frozen part is run this many times
            over the training data, with augmentation on, and each epoch
            trains on one of those views of every example, drawn at random.
            The backbone then runs `augmented_views` times instead of once
            per epoch. `0` turns this off: training data then runs through
            the full model every epoch and only validation is cached. Views
            are capped so they fit in 1 GiB. Defaults to `8`.
        feature_cache: a `kft.training.FeatureCache` shared by several
            `fine_tune` calls (a search, repeated runs): cached features of
            an identical frozen part on the same dataset objects are computed
            once. Defaults to `None` (features live for this call only).
        checkpoint_dir: folder for resumable training. After each epoch the
            weights, optimizer and epoch, together with the early-stopping
            state (best value, best epoch, patience count, best weights), are
            saved as one backup committed whole; after each stage, the run's
            progress. Call `fine_tune` again with the same arguments (and an
            identically built model) after an interruption: it resumes at the
            last saved epoch with the same best epoch as an uninterrupted
            run. Defaults to `None`.
        callbacks: extra Keras callbacks, given to every stage.
            Defaults to `()`.
        seed: an int that makes the run reproducible. It seeds Python,
            NumPy, TensorFlow and Keras, the random state of every dropout
            and augmentation layer of `model`, and the shuffling of cached
            features and augmented views. Two calls with the same seed on
            models with the same weights (build them after
            `keras.utils.set_random_seed`, or with a builder's `seed=`) and
            the same data give identical histories and weights on the same
            machine, on CPU, with the same versions of Python, TensorFlow
            and Keras. Not covered: the order of a dataset you shuffle
            yourself (give its `shuffle()` a seed), GPU kernels, which may be
            nondeterministic unless you call
            `tf.config.experimental.enable_op_determinism()` first, and a run
            resumed from `checkpoint_dir`, whose shuffling restarts at the
            resumed epoch. Required with multi-worker training (every worker
            must shuffle alike). Defaults to `None` (not reproducible).
        strategy: a `tf.distribute.Strategy` (or `"mirrored"`,
            `"multi_worker"`, `"default"`) the model was built under. Every
            stage compiles and trains in its scope; feature caching works
            under the default, mirrored and multi-worker mirrored strategies
            and is turned off, saying why, under others. With several
            workers only the chief writes to `checkpoint_dir`. Defaults to
            `None`: the model's own strategy (built inside
            `strategy.scope()` or with `strategy=`), else the one in scope.
            See `docs/distributed.md`.
        verbose: `0` silent, `1` progress bars and a line per stage, `2` one
            line per epoch, `"auto"` is `1`. Defaults to `"auto"`.

    Returns:
        A `FineTuneResult` with the model, merged history, per-stage reports,
        the best epoch and its metrics.

    Example:

    >>> import numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> x = np.random.rand(16, 32, 32, 3).astype("float32") * 255
    >>> y = np.arange(16) % 2
    >>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3))
    >>> result = kft.fine_tune(model, ds, ds, epochs=2, verbose=0)
    >>> result.epochs_run
    2
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: {type(model).__name__}."
        )
    if not isinstance(train, tf.data.Dataset):
        raise TypeError(
            "`train` must be a tf.data.Dataset of (inputs, labels) batches, e.g. "
            f"`kft.data.load_images(...).train`. Received: {type(train).__name__}."
        )
    if validation_data is not None and not isinstance(validation_data, tf.data.Dataset):
        raise TypeError(
            "`validation_data` must be a tf.data.Dataset or None. "
            f"Received: {type(validation_data).__name__}."
        )
    auto_epochs = epochs is None
    if auto_epochs:
        epochs = _default_epochs(model)
    check_number("epochs", epochs, low=1, integer=True)
    if learning_rate is None:
        learning_rate = _compiled_setting(model, "learning_rate", 1e-3)
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False)
    if fine_tune_learning_rate is None:
        fine_tune_learning_rate = learning_rate / 100
    if weight_decay is None:
        weight_decay = _compiled_setting(model, "weight_decay", 1e-4)
    check_number("weight_decay", weight_decay, low=0)
    check_number("augmented_views", augmented_views, low=0, integer=True)
    if feature_cache is not None and not isinstance(feature_cache, FeatureCache):
        raise TypeError(
            "`feature_cache` must be a kft.training.FeatureCache or None. "
            f"Received: feature_cache={feature_cache!r}."
        )
    check_number(
        "label_smoothing", label_smoothing, low=0, high=1, high_inclusive=False
    )
    check_number("patience", patience, low=0, integer=True)
    check_number("warmup", warmup, low=0)
    check_choice("schedule", schedule, _SCHEDULES)
    if not (isinstance(cache_features, bool) or cache_features == "auto"):
        raise ValueError(
            "`cache_features` must be 'auto', True or False. "
            f"Received: cache_features={cache_features!r}."
        )
    if verbose == "auto":
        verbose = 1
    check_number("verbose", verbose, low=0, high=2, integer=True)
    if isinstance(class_weight, str):
        check_choice("class_weight", class_weight, ("balanced",))
    elif class_weight is not None and not isinstance(class_weight, dict):
        raise TypeError(
            "`class_weight` must be None, 'balanced' or a {class: weight} dict. "
            f"Received: class_weight={class_weight!r}."
        )
    if not isinstance(monitor, str):
        raise TypeError(
            "`monitor` must be a metric name such as 'val_loss'. "
            f"Received: monitor={monitor!r}."
        )
    if seed is not None:
        check_number("seed", seed, low=0, integer=True)
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, keras.callbacks.Callback) for c in callbacks
    ):
        raise TypeError(
            "`callbacks` must be a list of keras.callbacks.Callback. "
            f"Received: callbacks={callbacks!r}."
        )
    if monitor.startswith("val_") and validation_data is None:
        raise ValueError(
            f"`monitor={monitor!r}` needs `validation_data`. Pass a validation dataset "
            "or monitor a training metric such as monitor='loss'."
        )
    if reduce_lr_on_plateau and schedule != "constant":
        raise ValueError(
            "`reduce_lr_on_plateau=True` fights a decaying schedule. Use "
            f"schedule='constant' with it. Received: schedule={schedule!r}."
        )
    stages = _parse_stages(unfreeze, epochs, learning_rate, fine_tune_learning_rate)
    _check_stages(model, stages, unfreeze)
    _require_compiled(model)
    _check_monitor(model, monitor, validation_data is not None)
    if isinstance(class_weight, dict):
        _check_class_weight(class_weight, model)
    _check_batch(model, _first_batch(train, "train"), "train")
    if validation_data is not None:
        _check_batch(
            model, _first_batch(validation_data, "validation_data"), "validation_data"
        )
    if checkpoint_dir is not None:
        _check_checkpoint_dir(checkpoint_dir)
    mode = (
        "max"
        if any(k in monitor for k in ("acc", "auc", "precision", "recall", "f1"))
        else "min"
    )
    if seed is None and distribute.is_multi_worker(strategy):
        raise ValueError(
            "Multi-worker training needs `seed`: every worker must shuffle the "
            "data (and cached features) in the same order, or the shards overlap. "
            "Received: seed=None. Pass e.g. seed=0, and a seed to your dataset's "
            "shuffle()."
        )
    if seed is not None:
        keras.utils.set_random_seed(seed)
        _seed_layers(model, seed)
    say = print if verbose else (lambda *a, **k: None)
    # Only the chief writes checkpoints; the other workers read them.
    chief = distribute.is_chief(strategy)
    cache_features = distribute.check_feature_caching(strategy, cache_features, say)

    state = _RunState.load(checkpoint_dir)
    if state.weights is not None:
        model.set_weights(state.weights)
    tracker = BestWeights(
        model,
        monitor,
        mode,
        patience=patience if early_stopping else None,
        restore=bool(early_stopping),
    )
    tracker.state = state.best
    if early_stopping and state.best.epoch is not None:
        tracker.best_weights = state.weights  # a stage ends on the best weights

    if class_weight == "balanced":
        class_weight = _balanced_class_weight(_labels_of(train))
        say(f"class_weight='balanced': {class_weight}")

    history, reports = state.history, state.reports
    epoch_offset = len(next(iter(history.values()), []))
    for index, stage in enumerate(stages):
        if index < state.stages_done or tracker.state.diverged_epoch is not None:
            continue
        started = time.perf_counter()
        if stage["top"] is not None:
            _set_trainable_top(model, stage["top"], bn_trainable=False)
        trainable = int(sum(math.prod(w.shape) for w in model.trainable_weights))
        say(
            f"Stage {index + 1}/{len(stages)} ({stage['name']}): "
            f"{trainable:,} trainable parameters, learning rate {stage['learning_rate']:g}"
        )
        fit_model, fit_train, fit_val, cached, extra = _prepare_data(
            model,
            train,
            validation_data,
            cache_features,
            seed,
            say,
            augmented_views=augmented_views,
            feature_cache=feature_cache,
        )
        steps = _cardinality(fit_train)
        if auto_epochs and index == 0 and cached.startswith("train") and steps:
            # Few examples make few steps per epoch; a head on cached features
            # needs a few hundred steps to converge, and they are cheap.
            stage["epochs"] = min(
                _MAX_HEAD_EPOCHS,
                max(stage["epochs"], math.ceil(_MIN_HEAD_STEPS / steps)),
            )
        total = steps * stage["epochs"] if steps else None
        if total is None and schedule != "constant":
            warnings.warn(
                f"schedule={schedule!r} needs the number of steps per epoch, but the "
                "training dataset's length is unknown (e.g. after filter() or "
                "repeat()). Using a constant learning rate instead.",
                KerasTuneFTWarning,
                stacklevel=2,
            )
        lr = _schedule(schedule, stage["learning_rate"], warmup, total)
        smoothing = label_smoothing if label_smoothing else None
        _recompile(model, make_adamw(lr, weight_decay), smoothing)
        if fit_model is not model:
            _recompile(fit_model, make_adamw(lr, weight_decay), smoothing, like=model)
        # Long automatic head stages get proportionally more patience: a
        # few-shot validation loss is noisy from epoch to epoch.
        if early_stopping:
            tracker.patience = (
                max(patience, stage["epochs"] // 10)
                if auto_epochs and index == 0
                else patience
            )
        stage_callbacks, epoch_log = _stage_callbacks(
            extra,
            tracker,
            monitor,
            mode,
            patience,
            reduce_lr_on_plateau,
            checkpoint_dir,
            index,
            strategy,
            chief,
        )
        stage_callbacks += list(callbacks)
        fit = fit_model.fit(
            fit_train,
            validation_data=fit_val,
            epochs=epoch_offset + stage["epochs"],
            initial_epoch=epoch_offset,
            class_weight=class_weight,
            callbacks=stage_callbacks,
            shuffle=False,  # datasets shuffle themselves; Keras would only warn
            verbose=verbose,
        )
        # After a resume, fit() only returns the epochs it ran itself.
        stage_history = epoch_log.history() if epoch_log else fit.history
        n = len(next(iter(stage_history.values()), []))
        for key, values in stage_history.items():
            history.setdefault(key, [None] * epoch_offset).extend(
                float(v) for v in values
            )
        reports.append(
            StageReport(
                name=stage["name"],
                first_epoch=epoch_offset + 1,
                last_epoch=epoch_offset + n,
                learning_rate=float(stage["learning_rate"]),
                trainable_params=trainable,
                seconds=round(time.perf_counter() - started, 2),
                cached=cached,
            )
        )
        epoch_offset += n
        state.stages_done = index + 1
        state.best = tracker.state
        state.weights = model.get_weights() if checkpoint_dir else None
        if chief:
            state.save(checkpoint_dir)
        if checkpoint_dir is not None and chief:
            # The run state now holds this stage; its backups are done with.
            shutil.rmtree(_backup_dir(checkpoint_dir, index), ignore_errors=True)
    return _result(model, history, reports, tracker, monitor, early_stopping, say)


def _seed_layers(model, seed):
    """Sets the random state of every random layer (dropout, augmentation).

    Each layer drew its state from the global seed when it was built, so two
    models with the same weights but built apart would still drop and flip
    differently; with `seed`, fine_tune decides.
    """
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        value = int(np.random.default_rng([seed, index]).integers(2**31))
        state.assign(np.array([value, 0], dtype=state.dtype))


def _backup_dir(checkpoint_dir, index):
    return os.path.join(checkpoint_dir, f"backup_stage{index}")


def _stage_callbacks(
    extra,
    tracker,
    monitor,
    mode,
    patience,
    reduce_lr_on_plateau,
    checkpoint_dir,
    index,
    strategy,
    chief,
):
    """One stage's callbacks, in the order they must see each epoch's logs.

    Cached validation metrics come first (the others read them), then the
    best-epoch tracker (it may stop the stage, which the backup records), the
    backup, and the epoch log last, so that a logged epoch is also a saved
    one. Returns `(callbacks, epoch log or None)`.
    """
    stage_callbacks = list(extra) + [tracker, keras.callbacks.TerminateOnNaN()]
    if reduce_lr_on_plateau:
        stage_callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor, mode=mode, patience=max(1, patience // 2)
            )
        )
    if checkpoint_dir is None:
        return stage_callbacks, None
    if chief:
        os.makedirs(checkpoint_dir, exist_ok=True)
    # double_checkpoint keeps the previous backup: a kill while saving leaves
    # the new one uncommitted, and a damaged newest one falls back.
    stage_callbacks.append(
        distribute.backup_and_restore(
            _backup_dir(checkpoint_dir, index),
            strategy,
            companions=[tracker],
            double_checkpoint=True,
            delete_checkpoint=False,
        )
    )
    epoch_log = _EpochLog(
        os.path.join(checkpoint_dir, f"epochs_stage{index}.jsonl"), write=chief
    )
    stage_callbacks.append(epoch_log)
    return stage_callbacks, epoch_log


def _result(model, history, reports, tracker, monitor, early_stopping, say):
    """The `FineTuneResult`, with the best epoch said in words."""
    best = tracker.state
    diverged = best.diverged_epoch is not None
    best_epoch = best.epoch
    best_metrics = {}
    if best_epoch is not None:
        best_metrics = {
            k: v[best_epoch - 1]
            for k, v in history.items()
            if len(v) >= best_epoch and v[best_epoch - 1] is not None
        }
    if diverged:
        kept = (
            f"the weights of epoch {best_epoch} were restored"
            if best_epoch is not None
            else "the model holds the weights it started with"
        )
        say(
            f"Training diverged: the training loss became NaN or inf at epoch "
            f"{best.diverged_epoch}; {kept}. Lower the learning rate and check "
            "the inputs for NaN values."
        )
    elif best_epoch is not None:
        restored = (
            "its weights were restored"
            if early_stopping
            else "the last weights were kept"
        )
        say(f"Best epoch {best_epoch} by {monitor}; {restored}.")
    return FineTuneResult(
        model,
        history,
        reports,
        best_epoch,
        best_metrics,
        monitor,
        bool(early_stopping) or (diverged and best_epoch is not None),
        diverged=diverged,
    )


def _prepare_data(
    model,
    train,
    validation_data,
    cache_features,
    seed,
    say,
    *,
    augmented_views=8,
    feature_cache=None,
):
    """Returns (model to fit, train data, validation data, what was cached, callbacks)."""
    if cache_features is False:
        return model, train, validation_data, "none", []
    split = split_frozen_prefix(model)
    if split is None:
        if cache_features is True:
            raise ValueError(
                "`cache_features=True` but nothing can be cached: the backbone has "
                "trainable weights or is not a single layer of a functional model. "
                "Use cache_features='auto'."
            )
        return model, train, validation_data, "none", []
    if split.random_below and cache_features is True and not augmented_views:
        raise ValueError(
            "`cache_features=True` but random augmentation runs below the first "
            "trainable layer, so training features change every epoch, and "
            "`augmented_views=0`. Use augmented_views > 0 (cache several augmented "
            "views) or cache_features='auto' (caches validation features only)."
        )
    # keras-hub tasks preprocess inside fit(); the feature model takes the
    # preprocessed inputs, so the cached passes apply the preprocessor here.
    # (Training data that stays uncached goes to fit() as it came.)
    preprocessor = getattr(model, "preprocessor", None)

    def prepared(dataset):
        if preprocessor is None:
            return dataset
        return dataset.map(
            lambda x, y: (preprocessor(x), y), num_parallel_calls=tf.data.AUTOTUNE
        )

    cache = feature_cache if feature_cache is not None else FeatureCache()
    fingerprint = cache.fingerprint(split.features)

    def materialized(dataset, views=0):
        key = (fingerprint, id(dataset), views, seed)
        return cache.get_or_compute(
            key,
            dataset,
            lambda: _materialize(split.features, prepared(dataset), views=views),
        )

    started = time.perf_counter()
    val = None
    if validation_data is not None:
        val_x, val_y, val_batch = materialized(validation_data)
        val = _as_dataset(val_x, val_y, val_batch, shuffle=False, seed=seed)
    views = 0
    if split.random_below and augmented_views:
        views = _affordable_views(split.features, train, augmented_views)
        if views < 2:
            say(
                "Augmented views of the training features would not fit in memory; "
                "training data runs through the full model."
            )
            views = 0
    if split.random_below and not views:
        if val is not None:
            say(
                f"Cached validation features {tuple(val_x.shape)} in "
                f"{time.perf_counter() - started:.1f}s (training data is augmented, "
                "so it runs through the full model)."
            )
        extra = [_CachedValidation(split.head, val)] if val is not None else []
        _recompile(split.head, keras.optimizers.Adam(), like=model)
        return model, train, None, "val" if val is not None else "none", extra
    if views:
        train_x, train_y, batch = materialized(train, views=views)
        fit_train = _views_dataset(train_x, train_y, batch, views, seed)
        what = f"train ({views} augmented views)"
    else:
        train_x, train_y, batch = materialized(train)
        fit_train = _as_dataset(train_x, train_y, batch, shuffle=True, seed=seed)
        what = "train"
    _check_labels(model, train_y)
    say(
        f"Cached frozen features: {what} {tuple(train_x.shape)}"
        + (f", val {tuple(val_x.shape)}" if val is not None else "")
        + f" in {time.perf_counter() - started:.1f}s"
    )
    cached = f"train ({views} views)" if views else "train"
    cached += "+val" if val is not None else ""
    return split.head, fit_train, val, cached, []


# Augmented views are held in memory; past this they are cut down.
_VIEWS_MEMORY_BYTES = 1 << 30


def _affordable_views(features, train, requested):
    """How many augmented views of the training features fit the memory cap."""
    shape = features.outputs[0].shape[1:]
    if any(d is None for d in shape):
        return 0
    batches = _cardinality(train)
    if batches is None:
        return 0
    batch = int(next(iter(train))[1].shape[0])
    per_view = batches * batch * math.prod(shape) * 4
    return int(min(requested, _VIEWS_MEMORY_BYTES // max(1, per_view)))


def _views_dataset(views_x, labels, batch_size, views, seed):
    """An epoch draws as many examples as one view holds from all the views."""
    per_epoch = len(labels) // views
    dataset = tf.data.Dataset.from_tensor_slices((views_x, labels))
    dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.take(per_epoch).batch(batch_size).prefetch(tf.data.AUTOTUNE)


# Whole-transformer fine-tuning (BERT recipe) vs a head on a frozen backbone.
_TRANSFORMER_EPOCHS = 4
_HEAD_EPOCHS = 30
# A head on cached features trains for at least this many steps by default.
_MIN_HEAD_STEPS = 500
_MAX_HEAD_EPOCHS = 300


def _default_epochs(model):
    backbone = freezing.get_backbone(model)
    if backbone is model or not backbone.trainable_weights:
        return _HEAD_EPOCHS
    if freezing.backbone_units(backbone).transformer:
        return _TRANSFORMER_EPOCHS
    return _HEAD_EPOCHS


def _compiled_setting(model, name, default):
    """The model's compiled learning rate or AdamW weight decay, else `default`."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return default
    if name == "weight_decay":
        if isinstance(optimizer, keras.optimizers.AdamW):
            return float(optimizer.weight_decay)
        return default
    value = getattr(optimizer, "_learning_rate", None)
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        # One of ours from an earlier fine_tune call: its peak.
        config = value.get_config()
        for key in ("peak", "warmup_target", "initial_learning_rate"):
            if config.get(key):
                return float(config[key])
        return default
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return default


class FeatureCache:
    """Frozen-backbone features shared by several `kft.fine_tune` calls.

    A search or a set of repeated runs often trains many heads on the same
    frozen backbone and the same data; running the backbone over the data
    is then the largest cost. Pass one `FeatureCache` to each `fine_tune`
    call: features are keyed by the frozen part (its layer configurations,
    without names, and a checksum of its weights), by the dataset object,
    the number of augmented views and the seed, and computed once.

    The cache holds references to the datasets it was given (so that their
    identity stays valid) and the features in memory; `clear()` frees them.

    Attributes:
        hits: how many lookups found computed features.
        misses: how many computed them.

    Example:

    >>> import keras, numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> x = np.random.rand(16, 32, 32, 3).astype("float32") * 255
    >>> ds = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 2)).batch(8)
    >>> cache = kft.training.FeatureCache()
    >>> for dropout in (0.1, 0.3):
    ...     keras.utils.set_random_seed(0)  # the same backbone weights
    ...     model = kft.build_image_classifier(
    ...         "mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3),
    ...         dropout=dropout)
    ...     _ = kft.fine_tune(model, ds, ds, epochs=1, feature_cache=cache,
    ...                       verbose=0)
    >>> cache.misses, cache.hits  # `ds` is train and validation: computed once
    (1, 3)
    """

    def __init__(self):
        self._entries = {}
        self.hits = 0
        self.misses = 0

    def __len__(self):
        return len(self._entries)

    def clear(self):
        """Drops every cached tensor."""
        self._entries.clear()

    def fingerprint(self, features):
        """A key for a frozen feature model: layer configs and weights."""
        import hashlib

        digest = hashlib.sha256()
        # Every layer, nested ones included, in order; names are left out
        # because Keras numbers them anew each time a model is built.
        for layer in features._flatten_layers(include_self=False, recursive=True):
            config = {}
            if not isinstance(layer, keras.Model):
                try:
                    config = dict(layer.get_config())
                except NotImplementedError:
                    pass
            config.pop("name", None)
            digest.update(type(layer).__name__.encode())
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        for weight in features.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
        return digest.hexdigest()

    def get_or_compute(self, key, dataset, compute):
        entry = self._entries.get(key)
        if entry is not None and entry[0] is dataset:
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = compute()
        self._entries[key] = (dataset, value)
        return value


class _RunState:
    """Progress across stages, saved in `checkpoint_dir` after each stage.

    `run_state.json` names the weights the model had when the last finished
    stage ended (`stage{N}.weights.npz`, written first), so the two are
    always consistent: a kill between them leaves the previous pair.
    """

    def __init__(self):
        self.stages_done = 0
        self.history = {}
        self.reports = []
        self.best = BestState()
        self.weights = None

    @classmethod
    def load(cls, directory):
        state = cls()
        path = directory and os.path.join(directory, "run_state.json")
        if not path or not os.path.isfile(path):
            return state
        with open(path) as f:
            saved = json.load(f)
        state.stages_done = saved["stages_done"]
        state.history = saved["history"]
        state.reports = [StageReport(**r) for r in saved["reports"]]
        state.best = BestState(**(saved.get("best") or {}))
        if saved.get("weights"):
            state.weights = load_arrays(os.path.join(directory, saved["weights"]))
        return state

    def save(self, directory):
        if directory is None:
            return
        os.makedirs(directory, exist_ok=True)
        name = None
        if self.weights is not None:
            name = f"stage{self.stages_done}.weights.npz"
            tmp = os.path.join(directory, name + ".tmp")
            save_arrays(tmp, self.weights)
            os.replace(tmp, os.path.join(directory, name))
        tmp = os.path.join(directory, "run_state.json.tmp")
        distribute.write_json(
            tmp,
            {
                "stages_done": self.stages_done,
                "history": self.history,
                "reports": [dataclasses.asdict(r) for r in self.reports],
                "best": dataclasses.asdict(self.best),
                "weights": name,
            },
        )
        os.replace(tmp, os.path.join(directory, "run_state.json"))
        for old in os.listdir(directory):  # earlier stages' weights
            if old.endswith(".weights.npz") and old != name:
                os.remove(os.path.join(directory, old))
