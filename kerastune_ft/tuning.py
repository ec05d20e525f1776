"""Hyperparameter search with keras-tuner, and cross-validation.

`FineTuneHyperModel` turns a kerastune_ft builder (or any function that
returns a compiled model with a marked backbone) into a
`keras_tuner.HyperModel` whose trials train through `kft.fine_tune`, so every
trial gets staged unfreezing, early stopping with best-weight restoring, and
frozen-feature caching. `kft.tune` runs the search; `kft.cross_validate`
scores one recipe on scikit-learn folds. Both clear the Keras session between
models, because models built in a loop otherwise pile up in memory.
"""

import copy
import dataclasses
import gc
import inspect
import json
import math
import numbers
import os
import time
import warnings

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from kerastune_ft import freezing, training
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft._warnings import KerasTuneFTWarning

ALGORITHMS = ("bayesian", "random", "hyperband", "grid")

# Which side of the recipe each hyperparameter belongs to.
_BUILDER_PARAMS = ("dropout", "l1", "l2", "freeze", "augmentation")
_FINE_TUNE_PARAMS = (
    "learning_rate",
    "fine_tune_learning_rate",
    "unfreeze",
    "label_smoothing",
)
_DATA_PARAMS = ("batch_size",)

# Defaults for fine-tuning on small datasets. A tuple is a range ((low, high)
# or (low, high, "log")), a list is a set of choices, a scalar is fixed, and
# "auto" derives the choices from the backbone (freeze/unfreeze depth as unit
# counts) or the builder (augmentation strength for image builders).
DEFAULT_SPACE = {
    "dropout": (0.0, 0.5),
    "l1": [0.0, 1e-5, 1e-4],
    "l2": [0.0, 1e-5, 1e-4, 1e-3],
    "learning_rate": (1e-4, 1e-2, "log"),
    "fine_tune_learning_rate": (1e-6, 1e-4, "log"),
    "freeze": "auto",
    "unfreeze": "auto",
    "label_smoothing": [0.0, 0.1],
    "augmentation": "auto",
    "batch_size": [16, 32],
}
_AUTO_FREEZE_FRACTIONS = (1.0, 0.9, 0.75)
_AUTO_UNFREEZE_FRACTIONS = (0.0, 0.1, 0.25)
_AUTO_AUGMENTATION = ["none", "light", "standard"]


def _mode_of(metric):
    """`"max"` for accuracy-like metrics, else `"min"` (the rule fine_tune uses)."""
    keys = ("acc", "auc", "precision", "recall", "f1")
    return "max" if any(k in metric for k in keys) else "min"


def _accepts(fn, name):
    """Whether `fn` takes keyword argument `name` (or **kwargs)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if name in params:
        return params[name].kind is not inspect.Parameter.POSITIONAL_ONLY
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _explicit(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _release_memory():
    # Models built in a loop keep graph state alive until the session is
    # cleared; collect so the freed tensors really go.
    keras.backend.clear_session()
    gc.collect()


def memory_usage_mb():
    """Returns `(current RSS, peak RSS)` of this process in MiB.

    The current RSS needs `psutil` (else `None`); the peak comes from
    `resource.getrusage` (Unix; else `None`).

    Returns:
        A tuple of two floats or `None`s.

    Example:

    >>> import kerastune_ft as kft
    >>> current, peak = kft.tuning.memory_usage_mb()
    >>> peak is None or peak > 0
    True
    """
    current = peak = None
    try:
        import psutil

        current = psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        pass
    return current, peak


# ---------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------


def _check_space(space):
    if space is None:
        return {}
    if not isinstance(space, dict):
        raise TypeError(
            "`space` must be a dict of hyperparameter name -> range, e.g. "
            '{"dropout": (0.0, 0.5), "l2": 0.0}. '
            f"Received: space={space!r}."
        )
    known = _BUILDER_PARAMS + _FINE_TUNE_PARAMS + _DATA_PARAMS
    for name, spec in space.items():
        if name not in known:
            check_choice(
                "space key",
                name,
                known,
                hint="Fix other builder arguments by passing them to the builder.",
            )
        if isinstance(spec, tuple):
            log = len(spec) == 3 and spec[2] == "log"
            if len(spec) not in (2, 3) or (len(spec) == 3 and not log):
                raise ValueError(
                    f"A range in `space` is (low, high) or (low, high, 'log'). "
                    f"Received: space[{name!r}]={spec!r}."
                )
            low, high = spec[0], spec[1]
            if not all(isinstance(v, numbers.Real) for v in (low, high)) or low > high:
                raise ValueError(
                    f"A range in `space` needs numbers with low <= high. "
                    f"Received: space[{name!r}]={spec!r}."
                )
            if log and low <= 0:
                raise ValueError(
                    f"A log range needs low > 0. Received: space[{name!r}]={spec!r}. "
                    "Use a list of choices to include 0."
                )
        elif isinstance(spec, list) and not spec:
            raise ValueError(
                f"A list in `space` is a set of choices and cannot be empty. "
                f"Received: space[{name!r}]=[]."
            )
    return dict(space)


def _define(hp, name, spec):
    """Declares `name` on `hp` from a space entry and returns its value."""
    if isinstance(spec, tuple):
        low, high = spec[0], spec[1]
        sampling = "log" if len(spec) == 3 else "linear"
        if low == high:
            return hp.Fixed(name, low)
        if isinstance(low, numbers.Integral) and isinstance(high, numbers.Integral):
            return hp.Int(name, int(low), int(high), sampling=sampling)
        return hp.Float(name, float(low), float(high), sampling=sampling)
    if isinstance(spec, list):
        values = list(dict.fromkeys(spec))  # unique, in order
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        return hp.Choice(
            name, values, ordered=all(isinstance(v, numbers.Real) for v in values)
        )
    return hp.Fixed(name, spec)


def _unit_counts(fractions, num_units):
    return sorted({int(round(f * num_units)) for f in fractions}, reverse=True)


class FineTuneHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` made from a kerastune_ft builder.

    `build(hp)` calls the builder with the sampled dropout, L1/L2, freeze
    depth and augmentation strength (those the builder accepts); `fit(hp,
    model, train, validation_data)` runs `kft.fine_tune` with the sampled
    learning rates, unfreeze depth and label smoothing, on the training data
    re-batched to the sampled batch size. Freeze and unfreeze depths are
    counts of backbone units (layers for image backbones; the embeddings and
    transformer blocks for text backbones), so every sampled value is valid
    for that backbone. `fit` returns the metrics of the epoch whose weights the
    model keeps (the best epoch with early stopping, else the last).

    The search space starts from `kft.tuning.DEFAULT_SPACE`:

    - `dropout`: `(0.0, 0.5)`; `l1`: `[0, 1e-5, 1e-4]`;
      `l2`: `[0, 1e-5, 1e-4, 1e-3]`.
    - `learning_rate` (head stage): `(1e-4, 1e-2, "log")`;
      `fine_tune_learning_rate` (unfrozen stage): `(1e-6, 1e-4, "log")`.
    - `freeze`: `"auto"` = frozen units for 100%, 90% and 75% of the
      backbone; `unfreeze`: `"auto"` = 0%, 10% and 25% of the units unfrozen
      in a second stage (0 means no second stage; when it is the only
      choice, `fine_tune_learning_rate` is not searched).
    - `label_smoothing`: `[0.0, 0.1]`; `batch_size`: `[16, 32]`;
      `augmentation` (image builders): `["none", "light", "standard"]`.

    Each entry of `space` replaces one default: a tuple `(low, high)` or
    `(low, high, "log")` is a range, a list is a set of choices, a scalar
    fixes the value, and `None` leaves the argument to the builder or
    `fine_tune` default. `freeze`/`unfreeze` lists may hold counts, fractions,
    `"all"`/`"none"` or unit names; they are converted to counts.

    Args:
        builder: a function returning a compiled model with a marked
            backbone, e.g. `kft.build_image_classifier` or
            `kft.build_text_classifier`.
        *builder_args: positional arguments for `builder` (e.g. the backbone
            and the number of classes).
        space: overrides of the search space (see above). Defaults to `None`.
        fine_tune_kwargs: fixed arguments for `kft.fine_tune` (e.g.
            `{"epochs": 10, "patience": 3}`). Defaults to `None`.
        name: the hypermodel's name. Defaults to `None`.
        **builder_kwargs: fixed keyword arguments for `builder`.

    Example:

    >>> import keras_tuner, kerastune_ft as kft
    >>> hypermodel = kft.tuning.FineTuneHyperModel(
    ...     kft.build_image_classifier, "mobilenet_v2", 2, weights=None,
    ...     input_shape=(32, 32, 3), backbone_kwargs={"alpha": 0.35},
    ...     space={"dropout": (0.0, 0.5), "l2": 0.0})
    >>> hp = keras_tuner.HyperParameters()
    >>> model = hypermodel.build(hp)
    >>> hp.values["l2"], len(hypermodel.unit_names())  # MobileNetV2's layers
    (0.0, 154)
    >>> sorted(hp.values)[:4]
    ['augmentation', 'batch_size', 'dropout', 'fine_tune_learning_rate']
    """

    def __init__(
        self,
        builder,
        *builder_args,
        space=None,
        fine_tune_kwargs=None,
        name=None,
        **builder_kwargs,
    ):
        super().__init__(name=name, tunable=True)
        if not callable(builder):
            raise TypeError(
                "`builder` must be a function that returns a compiled model, e.g. "
                f"kft.build_image_classifier. Received: builder={builder!r}."
            )
        self.builder = builder
        self.builder_args = tuple(builder_args)
        self.builder_kwargs = dict(builder_kwargs)
        self.user_space = _check_space(space)
        self.fine_tune_kwargs = dict(fine_tune_kwargs or {})
        for key in ("model", "train", "validation_data", "callbacks"):
            if key in self.fine_tune_kwargs:
                raise ValueError(
                    f"`fine_tune_kwargs` cannot set {key!r}: the search sets it. "
                    f"Received: fine_tune_kwargs keys {sorted(self.fine_tune_kwargs)}."
                )
        for key in self.fine_tune_kwargs:
            if not _explicit(training.fine_tune, key):
                raise ValueError(
                    f"`fine_tune_kwargs` has {key!r}, which kft.fine_tune does not "
                    "take. See help(kft.fine_tune) for its arguments. Received: "
                    f"fine_tune_kwargs keys {sorted(self.fine_tune_kwargs)}."
                )
        for key, spec in self.user_space.items():
            if spec is None:
                continue
            if key in _BUILDER_PARAMS and not _accepts(builder, key):
                raise ValueError(
                    f"`space` sets {key!r} but the builder has no `{key}` argument. "
                    f"Remove it from `space`. Received: space[{key!r}]="
                    f"{self.user_space[key]!r}."
                )
            if key in _BUILDER_PARAMS and key in self.builder_kwargs:
                raise ValueError(
                    f"{key!r} is both fixed as a builder argument and searched in "
                    "`space`. Keep one: pass a scalar in `space` to fix it."
                )
        self._unit_names = None
        self._transformer = False
        self._rebatched = {}

    # -- space ------------------------------------------------------------

    def space(self):
        """The effective search space: defaults, minus what the builder cannot
        take or the caller fixed, plus the caller's `space`."""
        space = {}
        for name, spec in DEFAULT_SPACE.items():
            if name in _BUILDER_PARAMS:
                # Defaults only for arguments the builder declares and the
                # caller did not fix.
                if not _explicit(self.builder, name) or name in self.builder_kwargs:
                    continue
            if name in _FINE_TUNE_PARAMS and name in self.fine_tune_kwargs:
                continue
            space[name] = spec
        space.update(self.user_space)
        return {k: v for k, v in space.items() if v is not None}

    def unit_names(self):
        """Names of the backbone's freezing units (built once, cheaply)."""
        if self._unit_names is None:
            kwargs = dict(self.builder_kwargs)
            # The unit structure does not depend on the weights: skip loading.
            if "weights" in kwargs or _explicit(self.builder, "weights"):
                kwargs["weights"] = None
            if _explicit(self.builder, "load_weights"):
                kwargs["load_weights"] = False
            if _explicit(self.builder, "compile"):
                kwargs["compile"] = False
            probe = self.builder(*self.builder_args, **kwargs)
            backbone = freezing.get_backbone(probe)
            if backbone is probe:
                raise ValueError(
                    "The builder's model has no marked backbone (a nested layer "
                    "named 'backbone' or a `.backbone` attribute), so freeze and "
                    "unfreeze depths cannot be searched. Set space={'freeze': None, "
                    "'unfreeze': None} or mark the backbone."
                )
            units = freezing.backbone_units(backbone)
            self._unit_names = list(units.names)
            self._transformer = units.transformer
            del probe, backbone
        return self._unit_names

    def _depth_choices(self, name, spec):
        names = self.unit_names()
        num = len(names)
        if spec == "auto":
            fractions = (
                _AUTO_FREEZE_FRACTIONS if name == "freeze" else _AUTO_UNFREEZE_FRACTIONS
            )
            return _unit_counts(fractions, num)
        values = spec if isinstance(spec, list) else [spec]
        counts = []
        for value in values:
            if name == "unfreeze" and value == "none":
                value = 0
            count = freezing.resolve_freeze_count(
                value, num, names=names, what="The backbone"
            )
            counts.append(count)
        return sorted(set(counts), reverse=True)

    def _values(self, hp):
        """Declares every searched hyperparameter on `hp`; returns name -> value."""
        values = {}
        space = self.space()
        unfreeze = space.get("unfreeze")
        if unfreeze is not None and not isinstance(unfreeze, tuple):
            moot = "fine_tune_learning_rate" not in self.user_space
            if moot and self._depth_choices("unfreeze", unfreeze) == [0]:
                # No second stage in any trial: its learning rate is moot
                # (and would only multiply a grid search).
                space.pop("fine_tune_learning_rate", None)
        for name, spec in space.items():
            if name in ("freeze", "unfreeze") and not isinstance(spec, tuple):
                counts = self._depth_choices(name, spec)
                values[name] = _define(hp, name, counts)
            elif name == "augmentation" and spec == "auto":
                values[name] = _define(hp, name, list(_AUTO_AUGMENTATION))
            else:
                values[name] = _define(hp, name, spec)
        return values

    # -- HyperModel --------------------------------------------------------

    def build(self, hp):
        """Builds the model for the hyperparameters `hp`.

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            The builder's compiled model.
        """
        values = self._values(hp)
        kwargs = dict(self.builder_kwargs)
        for name in _BUILDER_PARAMS:
            if name not in values:
                continue
            value = values[name]
            if name == "freeze":
                value = self._freeze_argument(value)
            elif name == "augmentation" and value == "none":
                value = None
            kwargs[name] = value
        return self.builder(*self.builder_args, **kwargs)

    def _freeze_argument(self, count):
        names = self.unit_names()
        if count <= 0:
            return "none"
        if count >= len(names):
            return "all"
        # Builders count layers for image backbones, but transformer blocks
        # (after the always-frozen embeddings unit) for text backbones.
        return count - 1 if self._transformer else count

    def fine_tune_arguments(self, hp):
        """The `kft.fine_tune` keyword arguments for `hp` (without data)."""
        values = self._values(hp)
        kwargs = dict(self.fine_tune_kwargs)
        for name in _FINE_TUNE_PARAMS:
            if name in values:
                kwargs[name] = values[name]
        if "unfreeze" in values:
            kwargs["unfreeze"] = values["unfreeze"] or None
        return kwargs

    def batched(self, dataset, hp):
        """`dataset` re-batched to the sampled `batch_size` (memoized, so every
        trial with that batch size sees the same dataset object and frozen
        features computed for it can be reused)."""
        values = self._values(hp)
        size = values.get("batch_size")
        if size is None or dataset is None:
            return dataset
        key = (id(dataset), int(size))
        if key not in self._rebatched:
            self._rebatched[key] = (
                dataset,  # keeps the id valid
                dataset.unbatch().batch(int(size)).prefetch(tf.data.AUTOTUNE),
            )
        return self._rebatched[key][1]

    def fit(self, hp, model, train, validation_data=None, **kwargs):
        """Trains `model` with `kft.fine_tune` for the hyperparameters `hp`.

        Args:
            hp: a `keras_tuner.HyperParameters`.
            model: the model `build(hp)` returned.
            train: a `tf.data.Dataset` of `(inputs, labels)` batches.
            validation_data: a validation `tf.data.Dataset`. Defaults to
                `None`.
            **kwargs: more `kft.fine_tune` arguments (they win over
                `fine_tune_kwargs` and the sampled values).

        Returns:
            A dict of the metrics of the epoch whose weights `model` keeps,
            plus `"epochs"` (epochs run) and `"seconds"`.
        """
        result = self.fine_tune(hp, model, train, validation_data, **kwargs)
        return _result_metrics(result)

    def fine_tune(self, hp, model, train, validation_data=None, **kwargs):
        """Like `fit`, but returns the `kft.FineTuneResult`."""
        arguments = self.fine_tune_arguments(hp)
        arguments.update(kwargs)
        # Only training batches matter; validation keeps its own batching,
        # so its cached features serve every batch size.
        return training.fine_tune(
            model, self.batched(train, hp), validation_data, **arguments
        )


class _WrappedHyperModel(FineTuneHyperModel):
    """Another `keras_tuner.HyperModel`: its `build(hp)` declares the space,
    and trials still train through `kft.fine_tune` (its own `fit` is not
    used)."""

    def __init__(self, inner):
        super().__init__(inner.build, space={k: None for k in DEFAULT_SPACE})
        self.inner = inner

    def build(self, hp):
        return self.inner.build(hp)


def _result_metrics(result):
    """Metrics of the epoch whose weights the fine-tuned model holds."""
    history = result.history
    if result.restored_best and result.best_epoch is not None:
        index = result.best_epoch - 1
    else:
        index = result.epochs_run - 1
    metrics = {
        k: float(v[index]) for k, v in history.items() if v and v[index] is not None
    }
    metrics["epochs"] = float(result.epochs_run)
    metrics["seconds"] = float(sum(s.seconds for s in result.stages))
    return metrics


# ---------------------------------------------------------------------------
# Data helpers shared by tune and cross_validate
# ---------------------------------------------------------------------------


def _examples(data, splits=("train", "val")):
    """`(inputs, labels)` NumPy arrays from LoadedData, a tuple or a dataset."""
    if hasattr(data, "examples") and hasattr(data, "class_names"):
        parts = [data.examples[s] for s in splits if s in data.examples]
        if not parts:
            raise ValueError(
                f"The LoadedData has none of the splits {splits}. "
                f"It has: {tuple(data.examples)}."
            )
        x = np.concatenate([np.asarray(p[0]) for p in parts])
        y = np.concatenate([np.asarray(p[1]) for p in parts])
        return x, y
    if isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for x, y in data:
            xs.append(x.numpy())
            ys.append(y.numpy())
        if not xs:
            raise ValueError("The dataset is empty: there is nothing to split.")
        x = np.concatenate(xs)
        if x.dtype == object:  # tf.string tensors come back as bytes
            x = np.array([v.decode("utf-8") for v in x], dtype=object)
        return x, np.concatenate(ys)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) != len(y):
            raise ValueError(
                f"`data` inputs and labels differ in length: {len(x)} vs {len(y)}."
            )
        return x, y
    raise TypeError(
        "`data` must be a kft LoadedData, an (inputs, labels) tuple of arrays or "
        f"lists, or a tf.data.Dataset of batches. Received: {type(data).__name__}."
    )


def _to_dataset(x, y, batch_size, shuffle, seed):
    if x.dtype == object:
        x = x.astype(str)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _batch_size_of(data, default=32):
    size = getattr(data, "batch_size", None)
    if isinstance(size, int):
        return size
    if isinstance(data, tf.data.Dataset):
        for _, y in data.take(1):
            return int(tf.shape(y)[0])
    return default


def _splitter(folds, stratified, repeats, seed):
    from sklearn import model_selection

    if repeats > 1:
        cls = (
            model_selection.RepeatedStratifiedKFold
            if stratified
            else model_selection.RepeatedKFold
        )
        return cls(n_splits=folds, n_repeats=repeats, random_state=seed)
    cls = model_selection.StratifiedKFold if stratified else model_selection.KFold
    return cls(n_splits=folds, shuffle=True, random_state=seed)


def _check_folds(folds, stratified, repeats, y):
    check_number("folds", folds, low=2, integer=True)
    check_number("repeats", repeats, low=1, integer=True)
    if len(y) < folds:
        raise ValueError(
            f"`folds={folds}` needs at least {folds} examples; the data has {len(y)}."
        )
    if stratified:
        labels = np.asarray(y)
        if labels.ndim > 1:
            raise ValueError(
                "`stratified=True` needs integer class labels; the labels are "
                f"{labels.ndim}-D (one-hot or multi-label). Use stratified=False."
            )
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() < folds:
            raise ValueError(
                f"The smallest class has {counts.min()} examples, fewer than "
                f"`folds={folds}`, so stratified folds are impossible. Use fewer "
                "folds or stratified=False."
            )


# ---------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class FoldResult:
    """One fold of `kft.cross_validate`.

    Attributes:
        fold: 1-based fold number (counting across repeats).
        repeat: 1-based repeat number.
        train_size: training examples in the fold.
        val_size: held-out examples.
        metrics: `model.evaluate` on the held-out part, with the weights
            `fine_tune` kept.
        history: per-epoch metrics (the `FineTuneResult` history).
        best_epoch: the restored epoch (1-based) or `None`.
        epochs_run: epochs trained.
        seconds: wall time of the fold.
        verdict: `kft.diagnose(...)` verdict on the fold's history
            (`"overfitting"`, ...), or `None` when diagnostics are not
            available.
        diagnosis: the full `Diagnosis`, or `None`.
        rss_mb: resident memory of the process that trained the fold, after
            it (MiB; `None` without psutil).
        peak_rss_mb: that process's peak resident memory so far (MiB;
            `None` off Unix).
        monitor: the metric that chose the fold's best epoch.
        pid: id of the process that trained the fold (differs from this
            one's with `isolate=True`).
    """

    fold: int
    repeat: int
    train_size: int
    val_size: int
    metrics: dict
    history: dict
    best_epoch: int | None
    epochs_run: int
    seconds: float
    verdict: str | None = None
    diagnosis: object = None
    rss_mb: float | None = None
    peak_rss_mb: float | None = None
    monitor: str | None = None
    pid: int | None = None

    def to_dict(self):
        """A JSON-serializable dict (without the `Diagnosis` object)."""
        d = dataclasses.asdict(self)
        d.pop("diagnosis")
        return d


@dataclasses.dataclass
class CrossValidationResult:
    """What `kft.cross_validate` returns.

    Attributes:
        folds: a `FoldResult` per fold.
        mean: metric -> mean over folds.
        std: metric -> standard deviation over folds (population, ddof=0).
        monitor: the metric early stopping watched.
    """

    folds: list
    mean: dict
    std: dict
    monitor: str = "val_loss"

    @property
    def verdicts(self):
        """The overfitting verdict of each fold (`None` when unavailable)."""
        return [f.verdict for f in self.folds]

    def summary(self, metric=None):
        """`"accuracy: 0.912 +/- 0.015 over 5 folds"` for `metric` (or all)."""
        names = [metric] if metric else list(self.mean)
        return "; ".join(
            f"{m}: {self.mean[m]:.4f} +/- {self.std[m]:.4f} over {len(self.folds)} folds"
            for m in names
        )

    def __repr__(self):
        lines = [f"CrossValidationResult: {len(self.folds)} folds"]
        for m in self.mean:
            lines.append(f"  {m}: {self.mean[m]:.4f} +/- {self.std[m]:.4f}")
        for f in self.folds:
            acc = f.metrics.get("accuracy")
            acc = "" if acc is None else f", accuracy {acc:.4f}"
            lines.append(
                f"  fold {f.fold}: {f.epochs_run} epochs{acc}, "
                f"{f.seconds:.1f}s, verdict {f.verdict}"
            )
        return "\n".join(lines)

    def to_dict(self):
        """A JSON-serializable dict."""
        return {
            "folds": [f.to_dict() for f in self.folds],
            "mean": dict(self.mean),
            "std": dict(self.std),
            "monitor": self.monitor,
        }

    def plot(self, metric="loss"):
        """Learning curves of every fold: `metric` (solid) and `val_<metric>`
        (dashed), one colour per fold.

        Args:
            metric: the training metric to draw. Defaults to `"loss"`.

        Returns:
            A matplotlib `Figure`.
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        for index, f in enumerate(self.folds):
            color = f"C{index % 10}"
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                values = f.history.get(key)
                if values:
                    epochs = range(1, len(values) + 1)
                    ax.plot(
                        epochs,
                        values,
                        style,
                        color=color,
                        label=f"fold {f.fold} {'val' if style == '--' else 'train'}",
                    )
            if f.best_epoch:
                ax.axvline(f.best_epoch, color=color, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(
            f"Learning curves across {len(self.folds)} folds "
            "(solid: train, dashed: held-out fold)"
        )
        ax.legend(fontsize="x-small", ncol=2)
        fig.tight_layout()
        return fig


def _diagnose(result):
    try:
        from kerastune_ft import evaluation
    except ImportError:
        return None
    diagnose = getattr(evaluation, "diagnose", None)
    if diagnose is None:
        return None
    try:
        return diagnose(result)
    except ValueError:
        return None  # e.g. too few epochs to judge


def _run_fold(build_fn, arrays, batch_size, seed, fine_tune_kwargs, index, folds):
    """Builds, fine-tunes and scores one fold; clears the session after it."""
    started = time.perf_counter()
    x_train, y_train, x_val, y_val = arrays
    if seed is not None:
        # Same initial weights whichever process builds the fold.
        keras.utils.set_random_seed(seed)
    model = build_fn()
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`build_fn()` must return a keras.Model. Received: {type(model).__name__}."
        )
    train_ds = _to_dataset(x_train, y_train, batch_size, True, seed)
    val_ds = _to_dataset(x_val, y_val, batch_size, False, seed)
    result = training.fine_tune(model, train_ds, val_ds, **fine_tune_kwargs)
    metrics = {
        k: float(v)
        for k, v in model.evaluate(val_ds, verbose=0, return_dict=True).items()
    }
    diagnosis = _diagnose(result)
    fold = FoldResult(
        fold=index + 1,
        repeat=index // folds + 1,
        train_size=len(y_train),
        val_size=len(y_val),
        metrics=metrics,
        history={k: list(v) for k, v in result.history.items()},
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        seconds=0.0,
        verdict=getattr(diagnosis, "verdict", None),
        diagnosis=diagnosis,
        monitor=result.monitor,
        pid=os.getpid(),
    )
    del model, result, train_ds, val_ds
    _release_memory()
    fold.seconds = round(time.perf_counter() - started, 2)
    fold.rss_mb, fold.peak_rss_mb = memory_usage_mb()
    return fold


def cross_validate(
    build_fn,
    data,
    folds=5,
    *,
    stratified=True,
    repeats=1,
    seed=None,
    fine_tune_kwargs=None,
    batch_size=None,
    splits=("train", "val"),
    isolate=False,
    verbose=0,
):
    """Scores a training recipe with k-fold cross-validation.

    Each fold gets a fresh model from `build_fn()`, trained with
    `kft.fine_tune` on the other folds and validated on the held-out fold,
    which also drives early stopping (so scores are slightly optimistic;
    pass `fine_tune_kwargs={"early_stopping": False}` for a strict estimate).
    The Keras session is cleared after every fold so memory stays flat.

    Args:
        build_fn: a function with no arguments returning a compiled model
            (e.g. `lambda: kft.build_text_classifier("minilm-l6", 2)`).
        data: a `kft.data` `LoadedData` (its `splits` are pooled, the test
            split stays out), an `(inputs, labels)` tuple of arrays or lists,
            or a `tf.data.Dataset` of batches.
        folds: number of folds, >= 2. Defaults to `5`.
        stratified: keep class proportions in every fold
            (`StratifiedKFold`). Defaults to `True`.
        repeats: repeat the k-fold split with different shuffles
            (`RepeatedStratifiedKFold`). Defaults to `1`.
        seed: seeds the splitter, the shuffling and every `fine_tune`.
            Defaults to `None`.
        fine_tune_kwargs: more `kft.fine_tune` arguments (e.g.
            `{"epochs": 4}`). Defaults to `None`.
        batch_size: batch size of the fold datasets. Defaults to `None`
            (the data's own, else 32).
        splits: for `LoadedData`, which splits to pool. Defaults to
            `("train", "val")`.
        isolate: train each fold in a fresh subprocess (joblib's loky, so
            `build_fn` may be a lambda), which hands all its memory back when
            the fold ends. In-process folds clear the Keras session, which
            keeps image models flat, but TensorFlow keeps the training graphs
            of keras-hub transformers with frozen embeddings (the text
            builder's default) alive: ~350 MiB per MiniLM fold. Each
            subprocess imports TensorFlow again (a few seconds).
            Defaults to `False`.
        verbose: `0` silent, `1` one line per fold. Defaults to `0`.

    Returns:
        A `CrossValidationResult` with per-fold metrics, histories and
        verdicts, the mean and standard deviation of each metric, and
        `.plot()` for learning curves.

    Example:

    >>> import keras, numpy as np, kerastune_ft as kft
    >>> def build():  # a fresh, untrained model for every fold
    ...     conv = keras.Sequential(
    ...         [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    ...     return kft.build_image_classifier(conv, 2, dropout=0.1)
    >>> x, y = np.random.rand(20, 8, 8, 3) * 255, np.arange(20) % 2
    >>> cv = kft.cross_validate(
    ...     build, (x, y), folds=2, seed=0, fine_tune_kwargs={"epochs": 1})
    >>> len(cv.folds), "accuracy" in cv.mean
    (2, True)
    """
    if not callable(build_fn):
        raise TypeError(
            "`build_fn` must be a function with no arguments that returns a "
            f"compiled model. Received: build_fn={build_fn!r}."
        )
    if not isinstance(isolate, bool):
        raise TypeError(
            f"`isolate` must be True or False. Received: isolate={isolate!r}."
        )
    x, y = _examples(data, splits)
    _check_folds(folds, stratified, repeats, y)
    fine_tune_kwargs = dict(fine_tune_kwargs or {})
    for key in ("model", "train", "validation_data"):
        if key in fine_tune_kwargs:
            raise ValueError(
                f"`fine_tune_kwargs` cannot set {key!r}: cross_validate sets it."
            )
    unknown = [k for k in fine_tune_kwargs if not _explicit(training.fine_tune, k)]
    if unknown:
        raise ValueError(
            f"`fine_tune_kwargs` has {unknown}, which kft.fine_tune does not take. "
            "See help(kft.fine_tune) for its arguments."
        )
    fine_tune_kwargs.setdefault("verbose", 0)
    if seed is not None:
        fine_tune_kwargs.setdefault("seed", seed)
    if batch_size is None:
        batch_size = _batch_size_of(data)
    check_number("batch_size", batch_size, low=1, integer=True)
    say = print if verbose else (lambda *a, **k: None)
    splitter = _splitter(folds, stratified, repeats, seed)
    results = []
    for index, (train_idx, val_idx) in enumerate(splitter.split(x, y)):
        args = (
            build_fn,
            (x[train_idx], y[train_idx], x[val_idx], y[val_idx]),
            batch_size,
            seed,
            fine_tune_kwargs,
            index,
            folds,
        )
        if isolate:
            from joblib.externals import loky

            with loky.ProcessPoolExecutor(max_workers=1) as executor:
                fold = executor.submit(_run_fold, *args).result()
        else:
            fold = _run_fold(*args)
        results.append(fold)
        say(
            f"Fold {fold.fold}: "
            + ", ".join(f"{k}={v:.4f}" for k, v in fold.metrics.items())
            + f" ({fold.seconds:.1f}s)"
        )
    names = list(results[0].metrics)
    mean = {m: float(np.mean([f.metrics[m] for f in results])) for m in names}
    std = {m: float(np.std([f.metrics[m] for f in results])) for m in names}
    return CrossValidationResult(results, mean, std, results[-1].monitor)


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


class _FineTuneTuner:
    """Mixed into keras-tuner tuners: trials run through `FineTuneHyperModel`.

    Each trial clears the Keras session, builds, fine-tunes (or
    cross-validates), saves the weights the model kept in the trial folder
    and writes `kft_trial.json` (epochs, seconds, history) next to them.
    """

    kft_cross_validation = None
    kft_cv_options = None

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        hypermodel = self.hypermodel
        callbacks = self._deepcopy_callbacks(kwargs.pop("callbacks", []))
        kwargs["verbose"] = kwargs.pop("fine_tune_verbose", 0)
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this round
            kwargs["epochs"] = max(
                1, hp.values["tuner/epochs"] - hp.values["tuner/initial_epoch"]
            )
        started = time.perf_counter()
        record = {}
        if self.kft_cross_validation:
            metrics, record = self._cross_validated_trial(hp, kwargs, callbacks)
        else:
            model = self._try_build(hp)
            result = hypermodel.fine_tune(
                hp, model, *args, callbacks=callbacks, **kwargs
            )
            metrics = _result_metrics(result)
            model.save_weights(self._get_checkpoint_fname(trial.trial_id))
            record = {
                "history": result.history,
                "best_epoch": result.best_epoch,
                "cached": [s.cached for s in result.stages],
            }
            del model, result
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        record.update(
            {"epochs": int(metrics.get("epochs", 0)), "seconds": metrics["seconds"]}
        )
        path = os.path.join(self.get_trial_dir(trial.trial_id), "kft_trial.json")
        with open(path, "w") as f:
            json.dump(record, f)
        _release_memory()
        return metrics

    def _cross_validated_trial(self, hp, kwargs, callbacks):
        # The folds come from the examples of `train` (kft_cv_options); the
        # datasets tune() passed to search() are not used here.
        hypermodel = self.hypermodel
        options = self.kft_cv_options
        x, y = options["examples"]
        seed = options["seed"]
        size = hypermodel._values(hp).get("batch_size") or options["batch_size"]
        splitter = _splitter(self.kft_cross_validation, options["stratified"], 1, seed)
        fold_metrics, epochs = [], []
        cache = options["fold_datasets"]
        for index, (train_idx, val_idx) in enumerate(splitter.split(x, y)):
            key = (index, int(size))
            if key not in cache:  # the same objects every trial: features reuse
                cache[key] = (
                    _to_dataset(x[train_idx], y[train_idx], int(size), True, seed),
                    _to_dataset(x[val_idx], y[val_idx], int(size), False, seed),
                )
            fold_train, fold_val = cache[key]
            _release_memory()
            model = hypermodel.build(hp)
            arguments = hypermodel.fine_tune_arguments(hp)
            arguments.update(kwargs)
            arguments["callbacks"] = copy.deepcopy(callbacks) if callbacks else ()
            result = training.fine_tune(model, fold_train, fold_val, **arguments)
            fold_metrics.append(_result_metrics(result))
            epochs.append(result.epochs_run)
            del model, result
        names = set.intersection(*(set(m) for m in fold_metrics))
        metrics = {n: float(np.mean([m[n] for m in fold_metrics])) for n in names}
        objective = self.oracle.objective.name
        values = [m[objective] for m in fold_metrics if objective in m]
        metrics[f"{objective}_std"] = float(np.std(values)) if values else 0.0
        metrics["epochs"] = float(np.mean(epochs))
        record = {"folds": fold_metrics}
        return metrics, record


def _tuner_class(algorithm):
    base = {
        "bayesian": keras_tuner.BayesianOptimization,
        "random": keras_tuner.RandomSearch,
        "hyperband": keras_tuner.Hyperband,
        "grid": keras_tuner.GridSearch,
    }[algorithm]
    return type(f"FineTune{base.__name__}", (_FineTuneTuner, base), {})


@dataclasses.dataclass
class TuneResult:
    """What `kft.tune` returns.

    Attributes:
        best_hyperparameters: the best trial's `keras_tuner.HyperParameters`
            (`.values` is a dict).
        best_model: the best model. Without cross-validation it is
            *restored*: the weights the best trial's `fine_tune` kept (its
            best epoch with early stopping), saved in the trial folder, so its
            validation score is the reported one. With cross-validation no
            single trial model exists, so it is *retrained* once on all of
            `train` with the best hyperparameters (validated on
            `validation_data`).
        best_model_source: `"restored"` or `"retrained"`.
        trials: one dict per trial: `trial_id`, `status`, each
            hyperparameter, `objective` (the best value of the objective
            metric), `epochs`, `seconds`, plus `<objective>_std` with
            cross-validation.
        objective: the objective's name.
        direction: `"min"` or `"max"`.
        tuner: the keras-tuner tuner (for `results_summary()` and more).
        seconds: wall time of this call.
    """

    best_hyperparameters: object
    best_model: keras.Model
    best_model_source: str
    trials: list
    objective: str
    direction: str
    tuner: object = None
    seconds: float = 0.0

    @property
    def best_values(self):
        """The best hyperparameters as a plain dict."""
        return dict(self.best_hyperparameters.values)

    @property
    def best_score(self):
        """The best trial's objective value."""
        scores = [t["objective"] for t in self.trials if t["objective"] is not None]
        if not scores:
            return None
        return min(scores) if self.direction == "min" else max(scores)

    def table(self):
        """The trials as a pandas DataFrame (needs pandas), best first."""
        import pandas as pd

        return pd.DataFrame(self._sorted_trials())

    def _sorted_trials(self):
        sign = 1 if self.direction == "min" else -1
        return sorted(
            self.trials,
            key=lambda t: (t["objective"] is None, sign * (t["objective"] or 0.0)),
        )

    def hyperparameter_names(self):
        """Names of the searched (non-fixed) hyperparameters."""
        names = []
        for t in self.trials:
            for k in t:
                if k in _ROW_KEYS or k.endswith("_std") or k.startswith("tuner/"):
                    continue
                if k not in names:
                    names.append(k)
        return [n for n in names if len({repr(t.get(n)) for t in self.trials}) > 1]

    def importance(self):
        """How strongly each searched hyperparameter goes with the objective.

        Numbers: absolute Spearman rank correlation; choices: the correlation
        ratio (share of the objective's spread explained by the choice).

        Returns:
            A dict name -> score in [0, 1], largest first.
        """
        rows = [t for t in self.trials if t["objective"] is not None]
        scores = {}
        objective = np.array([t["objective"] for t in rows], dtype=float)
        for name in self.hyperparameter_names():
            values = [t.get(name) for t in rows]
            scores[name] = _association(values, objective)
        return dict(sorted(scores.items(), key=lambda kv: -kv[1]))

    def plot(self, max_params=4):
        """Objective against the most important hyperparameters.

        Args:
            max_params: how many hyperparameters to draw (by `importance()`).
                Defaults to `4`.

        Returns:
            A matplotlib `Figure` with one panel per hyperparameter; the best
            trial is drawn as a star.
        """
        from matplotlib.figure import Figure

        check_number("max_params", max_params, low=1, integer=True)
        names = list(self.importance())[:max_params]
        rows = [t for t in self.trials if t["objective"] is not None]
        panels = max(1, len(names))
        fig = Figure(figsize=(3.2 * panels, 3.2))
        best = self.best_score
        for i in range(panels):
            ax = fig.add_subplot(1, panels, i + 1)
            ys = [t["objective"] for t in rows]
            if not names:
                ax.plot(range(1, len(ys) + 1), ys, "o")
                ax.set_xlabel("trial")
            else:
                name = names[i]
                values = [t.get(name) for t in rows]
                xs, labels = _plot_positions(values)
                ax.scatter(xs, ys, alpha=0.7)
                star = [j for j, y in enumerate(ys) if y == best]
                ax.scatter(
                    [xs[j] for j in star],
                    [ys[j] for j in star],
                    marker="*",
                    s=200,
                    color="C3",
                    label="best",
                )
                if labels is not None:
                    ax.set_xticks(range(len(labels)), labels, rotation=30)
                elif _looks_log(values):
                    ax.set_xscale("log")
                ax.set_xlabel(name)
            if i == 0:
                ax.set_ylabel(self.objective)
        fig.suptitle(f"{len(rows)} trials: {self.objective} vs hyperparameters")
        fig.tight_layout()
        return fig

    def __repr__(self):
        lines = [
            f"TuneResult: {len(self.trials)} trials, best {self.objective}="
            f"{self.best_score!r} ({self.best_model_source} model)",
            f"  best hyperparameters: {self.best_values}",
        ]
        return "\n".join(lines)


_ROW_KEYS = ("trial_id", "status", "objective", "epochs", "seconds")


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _association(values, objective):
    if len(values) < 3 or np.std(objective) == 0:
        return 0.0
    if all(_is_number(v) for v in values):
        a = np.argsort(np.argsort(np.asarray(values, dtype=float)))
        b = np.argsort(np.argsort(objective))
        if np.std(a) == 0:
            return 0.0
        return float(abs(np.corrcoef(a, b)[0, 1]))
    groups = {}
    for v, o in zip(values, objective, strict=True):
        groups.setdefault(repr(v), []).append(o)
    total = np.sum((objective - objective.mean()) ** 2)
    between = sum(
        len(g) * (np.mean(g) - objective.mean()) ** 2 for g in groups.values()
    )
    return float(math.sqrt(between / total)) if total else 0.0


def _plot_positions(values):
    if all(_is_number(v) for v in values):
        return [float(v) for v in values], None
    labels = sorted({str(v) for v in values})
    return [labels.index(str(v)) for v in values], labels


def _looks_log(values):
    positive = [float(v) for v in values if _is_number(v) and v > 0]
    return len(positive) == len(values) and max(positive) / min(positive) > 50


def _trial_rows(tuner):
    rows = []
    objective = tuner.oracle.objective.name
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        row = {"trial_id": trial_id, "status": str(trial.status)}
        row.update(
            {
                k: v
                for k, v in trial.hyperparameters.values.items()
                if not k.startswith("tuner/")
            }
        )
        best = None
        if trial.metrics.exists(objective):
            best = trial.metrics.get_best_value(objective)
        row["objective"] = None if best is None else float(best)
        std = f"{objective}_std"
        if trial.metrics.exists(std):
            row[std] = float(trial.metrics.get_last_value(std))
        path = os.path.join(tuner.project_dir, f"trial_{trial_id}", "kft_trial.json")
        record = {}
        if os.path.isfile(path):
            with open(path) as f:
                record = json.load(f)
        row["epochs"] = record.get("epochs")
        row["seconds"] = record.get("seconds")
        rows.append(row)
    return rows


def tune(
    builder_or_hypermodel,
    train,
    validation_data=None,
    *,
    algorithm="bayesian",
    max_trials=10,
    objective="val_loss",
    directory=None,
    project_name="kft_tune",
    overwrite=False,
    seed=None,
    space=None,
    fine_tune_kwargs=None,
    cross_validation=None,
    stratified=True,
    feature_cache="auto",
    callbacks=(),
    strategy=None,
    verbose=0,
):
    """Searches fine-tuning hyperparameters with keras-tuner.

    Every trial trains through `kft.fine_tune` (early stopping, best-weight
    restoring, staged unfreezing). Trials whose backbone is fully frozen and
    sees no augmentation train the head on cached backbone features; with
    `feature_cache="auto"` one `kft.training.FeatureCache` is shared by all
    trials, so features of the same frozen backbone on the same data are
    computed once per search instead of once per trial.

    The search is resumable: with `directory` set and `overwrite=False`,
    calling `tune` again with the same arguments reloads the finished trials
    and runs only the missing ones up to `max_trials`.

    Trials run in this process, with the Keras session cleared between them.
    TensorFlow keeps the training graph of a keras-hub transformer whose
    embeddings are all frozen (the text builder's default) alive anyway,
    ~350 MiB per MiniLM trial: for long text searches, resume the search
    from `directory` in a new process every few dozen trials.

    Args:
        builder_or_hypermodel: a `kft.tuning.FineTuneHyperModel`, another
            `keras_tuner.HyperModel`, or a builder function whose positional
            arguments are already bound (e.g.
            `functools.partial(kft.build_image_classifier, "mobilenet_v2", 5)`).
        train: a `tf.data.Dataset` of `(inputs, labels)` batches, or a
            `LoadedData` (its `.train`; `validation_data` then defaults to
            its `.val`).
        validation_data: a validation `tf.data.Dataset` or `LoadedData`.
            Defaults to `None` (from `train` when it is a `LoadedData`).
        algorithm: `"bayesian"`, `"random"`, `"hyperband"` or `"grid"`.
            Defaults to `"bayesian"`.
        max_trials: number of trials (grid: at most; hyperband: ignored, its
            budget is `fine_tune_kwargs["epochs"]`). Defaults to `10`.
        objective: the metric to optimize; its direction follows its name
            (accuracy/AUC/precision/recall/F1 up, everything else down). It is
            also `fine_tune`'s `monitor`. With a loss objective, a builder's
            default space does not search `label_smoothing` (smoothed losses
            are not comparable with unsmoothed ones). Defaults to
            `"val_loss"`.
        directory: folder for trial results and weights. Defaults to `None`
            (keras-tuner's default, the current folder).
        project_name: sub-folder of `directory`. Defaults to `"kft_tune"`.
        overwrite: start over instead of resuming. Defaults to `False`.
        seed: seeds the oracle and every trial's `fine_tune`. Defaults to
            `None`.
        space: search space overrides when a builder is given (see
            `kft.tuning.FineTuneHyperModel`). Defaults to `None`.
        fine_tune_kwargs: fixed `fine_tune` arguments when a builder is given
            (e.g. `{"epochs": 10}`). Defaults to `None`.
        cross_validation: `None`, or k >= 2 to score each trial by its mean
            objective over k folds of `train` (its examples; `validation_data`
            is then only used for early stopping when the best model is
            retrained; without it the retraining runs the folds' mean number
            of epochs). Defaults to `None`.
        stratified: stratified folds for `cross_validation`. Defaults to
            `True`.
        feature_cache: `"auto"` shares one new `kft.training.FeatureCache`
            across the trials; `None` computes features afresh in every
            trial; or a `FeatureCache` to use (and inspect: `.hits`,
            `.misses`). Defaults to `"auto"`.
        strategy: a `tf.distribute.Strategy` (or its name) given to the
            builder, so each trial's model is built, and trained, under it.
            Defaults to `None`.
        callbacks: extra Keras callbacks, deep-copied for every trial.
            Defaults to `()`.
        verbose: `0` silent, `1` keras-tuner's per-trial summary, `2` also
            per-epoch lines. Defaults to `0`.

    Returns:
        A `TuneResult` with the best hyperparameters, the best model (see
        `TuneResult.best_model` for restored vs retrained), a row per trial
        (`.table()` as a DataFrame) and `.plot()`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> def build(dropout=0.2, l2=0.0, freeze="all"):
    ...     backbone = keras.Sequential([keras.Input((8, 8, 3)),
    ...         keras.layers.Conv2D(4, 3), keras.layers.Conv2D(4, 3)])
    ...     return kft.build_image_classifier(
    ...         backbone, 2, dropout=dropout, l2=l2, freeze=freeze)
    >>> import numpy as np, tempfile, tensorflow as tf
    >>> x = np.random.rand(20, 8, 8, 3).astype("float32") * 255
    >>> ds = tf.data.Dataset.from_tensor_slices((x, np.arange(20) % 2)).batch(10)
    >>> result = kft.tune(build, ds, ds, algorithm="random", max_trials=2,
    ...                   directory=tempfile.mkdtemp(), seed=0,
    ...                   space={"batch_size": None},
    ...                   fine_tune_kwargs={"epochs": 1})
    >>> len(result.trials), result.best_model_source
    (2, 'restored')
    """
    started = time.perf_counter()
    check_choice("algorithm", algorithm, ALGORITHMS)
    if algorithm != "hyperband":
        check_number("max_trials", max_trials, low=1, integer=True)
    if not isinstance(objective, str):
        raise TypeError(
            "`objective` must be a metric name such as 'val_loss' or "
            f"'val_accuracy'. Received: objective={objective!r}."
        )
    if hasattr(train, "class_names") and hasattr(train, "train"):
        loaded = train
        train = loaded.train
        if validation_data is None:
            validation_data = loaded.val
    else:
        loaded = None
    if hasattr(validation_data, "class_names") and hasattr(validation_data, "val"):
        validation_data = validation_data.val
    if not isinstance(train, tf.data.Dataset):
        raise TypeError(
            "`train` must be a tf.data.Dataset of (inputs, labels) batches or a "
            f"kft LoadedData. Received: {type(train).__name__}."
        )
    if (
        objective.startswith("val_")
        and validation_data is None
        and not cross_validation
    ):
        raise ValueError(
            f"`objective={objective!r}` needs `validation_data` (or "
            "`cross_validation=k`). Pass a validation dataset."
        )
    if cross_validation is not None:
        check_number("cross_validation", cross_validation, low=2, integer=True)
        if algorithm == "hyperband":
            raise ValueError(
                "`cross_validation` cannot be combined with algorithm='hyperband' "
                "(Hyperband continues single models across rounds). Use "
                "'bayesian' or 'random'."
            )

    if isinstance(builder_or_hypermodel, keras_tuner.HyperModel):
        hypermodel = builder_or_hypermodel
        if space is not None or fine_tune_kwargs is not None:
            raise ValueError(
                "`space` and `fine_tune_kwargs` configure a builder; a HyperModel "
                "was given. Pass them to kft.tuning.FineTuneHyperModel(...) instead."
            )
    elif callable(builder_or_hypermodel):
        space = dict(space or {})
        if "loss" in objective:
            # A smoothed loss is larger by construction: trials with and
            # without smoothing would not be compared fairly on a loss.
            space.setdefault("label_smoothing", None)
        hypermodel = FineTuneHyperModel(
            builder_or_hypermodel, space=space, fine_tune_kwargs=fine_tune_kwargs
        )
    else:
        raise TypeError(
            "`builder_or_hypermodel` must be a kft.tuning.FineTuneHyperModel or a "
            f"builder function. Received: {builder_or_hypermodel!r}."
        )
    if not isinstance(hypermodel, FineTuneHyperModel):
        # A foreign HyperModel: wrap its build(hp) so trials still go through
        # fine_tune; its own fit() is not used.
        hypermodel = _WrappedHyperModel(hypermodel)

    smoothing = hypermodel.space().get("label_smoothing")
    if "loss" in objective and isinstance(smoothing, (list, tuple)):
        warnings.warn(
            f"`objective={objective!r}` is a loss, and `label_smoothing` is "
            "searched: smoothed losses are larger by construction, so the search "
            "is biased against smoothing. Use objective='val_accuracy' or fix "
            "label_smoothing in `space`.",
            KerasTuneFTWarning,
            stacklevel=2,
        )
    if strategy is not None:
        if not _accepts(hypermodel.builder, "strategy"):
            raise ValueError(
                "`strategy` is given to the builder, but it has no `strategy` "
                f"argument. Received: strategy={strategy!r}."
            )
        hypermodel = copy.copy(hypermodel)  # the caller's object stays as it was
        hypermodel.builder_kwargs = {"strategy": strategy, **hypermodel.builder_kwargs}

    direction = _mode_of(objective)
    tuner_kwargs = {
        "hypermodel": hypermodel,
        "objective": keras_tuner.Objective(objective, direction),
        "directory": directory,
        "project_name": project_name,
        "overwrite": overwrite,
        "seed": seed,
    }
    if algorithm == "hyperband":
        tuner_kwargs["max_epochs"] = int(hypermodel.fine_tune_kwargs.get("epochs", 30))
    else:
        tuner_kwargs["max_trials"] = max_trials
    tuner = _tuner_class(algorithm)(**tuner_kwargs)
    if cross_validation:
        tuner.kft_cross_validation = int(cross_validation)
        tuner.kft_cv_options = {
            "examples": _examples(loaded if loaded is not None else train, ("train",)),
            "seed": seed,
            "stratified": stratified,
            "batch_size": _batch_size_of(train),
            "fold_datasets": {},
        }
        if stratified:
            _check_folds(cross_validation, True, 1, tuner.kft_cv_options["examples"][1])

    check_number("verbose", verbose, low=0, high=2, integer=True)
    search_kwargs = {"monitor": objective}
    if seed is not None:
        search_kwargs["seed"] = seed
    cache = _feature_cache(feature_cache)
    if cache is not None:
        search_kwargs["feature_cache"] = cache
    # keras-tuner prints a summary per trial (verbose >= 1); fine_tune prints
    # per-epoch lines only at verbose=2.
    tuner.oracle.verbose = int(verbose)
    tuner.search(
        train,
        validation_data,
        callbacks=list(callbacks),
        fine_tune_verbose=2 if verbose == 2 else 0,
        **search_kwargs,
    )

    best_trial = tuner.oracle.get_best_trials(1)
    if not best_trial:
        raise RuntimeError(
            "No trial finished. Check the error of the failed trials in "
            f"{tuner.project_dir}."
        )
    best_trial = best_trial[0]
    best_hp = best_trial.hyperparameters
    _release_memory()
    if cross_validation:
        model = hypermodel.build(best_hp)
        retrain = dict(search_kwargs)
        if validation_data is None:
            # Nothing to stop on: train as long as the folds did on average.
            rows = {r["trial_id"]: r for r in _trial_rows(tuner)}
            epochs = rows[best_trial.trial_id].get("epochs") or 1
            retrain.update(
                monitor="loss", early_stopping=False, epochs=max(1, int(epochs))
            )
        hypermodel.fine_tune(
            best_hp, model, train, validation_data, verbose=0, **retrain
        )
        source = "retrained"
    else:
        with warnings.catch_warnings():
            # The fresh model's optimizer is not built yet; only its weights
            # matter here, and those load.
            warnings.filterwarnings("ignore", message="Skipping variable loading")
            model = tuner.load_model(best_trial)
        source = "restored"
    return TuneResult(
        best_hyperparameters=best_hp,
        best_model=model,
        best_model_source=source,
        trials=_trial_rows(tuner),
        objective=objective,
        direction=direction,
        tuner=tuner,
        seconds=round(time.perf_counter() - started, 2),
    )


def _feature_cache(feature_cache):
    if feature_cache is None or feature_cache is False:
        return None
    if feature_cache == "auto":
        return training.FeatureCache()
    if not isinstance(feature_cache, training.FeatureCache):
        raise TypeError(
            "`feature_cache` must be 'auto', None or a kft.training.FeatureCache. "
            f"Received: feature_cache={feature_cache!r}."
        )
    return feature_cache
