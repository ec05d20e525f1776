"""`FineTuneHyperModel`: a kerastune_ft builder as a keras-tuner `HyperModel`.

keras-tuner's public extension points are all a search needs:
`HyperModel.build(hp)` builds a trial's model and `HyperModel.fit(hp, model,
...)` trains it. Our `fit` trains through `kft.fine_tune` and returns the
metrics of the epoch whose weights the model keeps; with `folds=` it trains
one model per fold and returns the list of fold metrics, which keras-tuner
averages into the trial's score (cross-validation per trial). The stock
tuners (`keras_tuner.RandomSearch`, `BayesianOptimization`, `Hyperband`,
`GridSearch`) run it unchanged.
"""

import copy
import json
import os
import time

import keras_tuner
import numpy as np

from kerastune_ft import freezing
from kerastune_ft._files import write_text_atomic
from kerastune_ft._quiet import import_tensorflow
from kerastune_ft.training import fine_tune as _fine_tune
from kerastune_ft.tuning import space as space_lib
from kerastune_ft.tuning.folds import release_memory

__all__ = ["FineTuneHyperModel"]

RECORD_NAME = "kft_trial.json"


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
    model keeps (the best epoch with early stopping, else the last). Any
    stock keras-tuner tuner can run it.

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
        builder: a function returning a compiled transfer classifier (a
            model with a `.backbone`), e.g. `kft.build_image_classifier` or
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
        self.user_space = space_lib.check_space(space)
        self.fine_tune_kwargs = _checked_fine_tune_kwargs(fine_tune_kwargs)
        for key, spec in self.user_space.items():
            if spec is None or key not in space_lib.BUILDER_PARAMS:
                continue
            if not space_lib.accepts(builder, key):
                raise ValueError(
                    f"`space` sets {key!r} but the builder has no `{key}` argument. "
                    f"Remove it from `space`. Received: space[{key!r}]={spec!r}."
                )
            if key in self.builder_kwargs:
                raise ValueError(
                    f"{key!r} is both fixed as a builder argument and searched in "
                    "`space`. Keep one: pass a scalar in `space` to fix it. "
                    f"Received: space[{key!r}]={spec!r}, {key}="
                    f"{self.builder_kwargs[key]!r}."
                )
        self._units = None
        self._rebatched = {}

    def with_builder_kwargs(self, **kwargs):
        """A copy whose builder also gets `kwargs` (this one is unchanged).

        Args:
            **kwargs: more fixed builder arguments (e.g. `strategy=`).

        Returns:
            A new `FineTuneHyperModel`.
        """
        other = copy.copy(self)
        other.builder_kwargs = {**kwargs, **self.builder_kwargs}
        other._rebatched = {}
        return other

    # -- space ------------------------------------------------------------

    def space(self):
        """The effective search space: defaults, minus what the builder cannot
        take or the caller fixed, plus the caller's `space`."""
        space = {}
        for name, spec in space_lib.DEFAULT_SPACE.items():
            if name in space_lib.BUILDER_PARAMS and (
                not space_lib.declares(self.builder, name)
                or name in self.builder_kwargs
            ):
                continue
            if name in space_lib.FINE_TUNE_PARAMS and name in self.fine_tune_kwargs:
                continue
            space[name] = spec
        space.update(self.user_space)
        return {k: v for k, v in space.items() if v is not None}

    def probe(self, *, compiled=True):
        """A weight-free model from the builder, to read its structure.

        Args:
            compiled: compile it (for its metrics). Defaults to `True`.

        Returns:
            A `keras.Model`.
        """
        kwargs = dict(self.builder_kwargs)
        if "weights" in kwargs or space_lib.declares(self.builder, "weights"):
            kwargs["weights"] = None  # the structure does not need the weights
        if space_lib.declares(self.builder, "load_weights"):
            kwargs["load_weights"] = False
        if not compiled and space_lib.declares(self.builder, "compile"):
            kwargs["compile"] = False
        return self.builder(*self.builder_args, **kwargs)

    def unit_names(self):
        """Names of the backbone's freezing units (built once, cheaply)."""
        if self._units is None:
            probe = self.probe(compiled=False)
            backbone = getattr(probe, "backbone", None)
            if backbone is None:
                raise ValueError(
                    "The builder's model has no `.backbone`, so freeze and "
                    "unfreeze depths cannot be searched. Set space={'freeze': "
                    "None, 'unfreeze': None} or build a kft transfer classifier."
                )
            self._units = freezing.backbone_units(backbone)
            del probe, backbone
        return list(self._units.names)

    def _depth_choices(self, name, spec):
        names = self.unit_names()
        if spec == "auto":
            fractions = (
                space_lib.AUTO_FREEZE_FRACTIONS
                if name == "freeze"
                else space_lib.AUTO_UNFREEZE_FRACTIONS
            )
            return space_lib.unit_counts(fractions, len(names))
        counts = set()
        for value in spec if isinstance(spec, list) else [spec]:
            if name == "unfreeze" and value == "none":
                value = 0
            counts.add(
                freezing.resolve_freeze_count(
                    value, len(names), names=names, what="The backbone"
                )
            )
        return sorted(counts, reverse=True)

    def hyperparameter_values(self, hp):
        """Declares every searched hyperparameter on `hp`; returns name -> value.

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            A dict of this trial's values (depths as unit counts).
        """
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
                spec = self._depth_choices(name, spec)
            elif name == "augmentation" and spec == "auto":
                spec = list(space_lib.AUTO_AUGMENTATION)
            values[name] = space_lib.define(hp, name, spec)
        return values

    # -- HyperModel --------------------------------------------------------

    def build(self, hp):
        """Builds the model for the hyperparameters `hp`.

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            The builder's compiled model.
        """
        values = self.hyperparameter_values(hp)
        kwargs = dict(self.builder_kwargs)
        for name in space_lib.BUILDER_PARAMS:
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
        # An int `freeze` counts layers for image backbones, but transformer
        # blocks (after the always-frozen embeddings unit) for text backbones.
        return count - 1 if self._units.transformer else count

    def fine_tune_arguments(self, hp):
        """The `kft.fine_tune` keyword arguments for `hp` (without data).

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            A dict: `fine_tune_kwargs` with the sampled values.
        """
        values = self.hyperparameter_values(hp)
        kwargs = dict(self.fine_tune_kwargs)
        for name in space_lib.FINE_TUNE_PARAMS:
            if name in values:
                kwargs[name] = values[name]
        if "unfreeze" in values:
            kwargs["unfreeze"] = values["unfreeze"] or None
        return kwargs

    def batched(self, dataset, hp):
        """`dataset` re-batched to the sampled `batch_size`.

        Memoized, so every trial with that batch size sees the same dataset
        object and frozen features computed for it can be reused.

        Args:
            dataset: a batched `tf.data.Dataset`, or `None`.
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            The re-batched dataset (or `dataset` when no size is sampled).
        """
        size = self.hyperparameter_values(hp).get("batch_size")
        if size is None or dataset is None:
            return dataset
        key = (id(dataset), int(size))
        if key not in self._rebatched:
            tf = import_tensorflow("Tuning the batch size")
            self._rebatched[key] = (
                dataset,  # keeps the id valid
                dataset.unbatch().batch(int(size)).prefetch(tf.data.AUTOTUNE),
            )
        return self._rebatched[key][1]

    def fit(self, hp, model, train, validation_data=None, **kwargs):
        """Trains `model` with `kft.fine_tune` for the hyperparameters `hp`.

        Called by a keras-tuner tuner, `kwargs` holds what `search` was given
        plus keras-tuner's own callbacks. `fine_tune` may train the head alone
        on cached features, so keras-tuner's callbacks (best-epoch checkpoint,
        trial bookkeeping) are not given to it: they see one epoch at the end,
        with the full model holding the weights `fine_tune` kept and their
        metrics. Under a tuner, `verbose=2` shows `fine_tune`'s epochs and
        lower values keep it silent; Hyperband's `initial_epoch` shortens
        `epochs` to the round's budget.

        Args:
            hp: a `keras_tuner.HyperParameters`.
            model: the model `build(hp)` returned.
            train: a `tf.data.Dataset` of `(inputs, labels)` batches.
            validation_data: a validation `tf.data.Dataset`. Defaults to
                `None`.
            **kwargs: more `kft.fine_tune` arguments (they win over
                `fine_tune_kwargs` and the sampled values), and `folds`: a
                `kft.tuning.TrialFolds` to train one model per fold instead
                (`train` and `validation_data` are then not used).

        Returns:
            A dict of the metrics of the epoch whose weights `model` keeps,
            plus `"epochs"` (epochs run) and `"seconds"`; with `folds`, a
            list of such dicts, one per fold (keras-tuner averages them).
        """
        started = time.perf_counter()
        folds = kwargs.pop("folds", None)
        callbacks = list(kwargs.pop("callbacks", None) or ())
        own = [c for c in callbacks if not _is_keras_tuner_callback(c)]
        tuner_callbacks = [c for c in callbacks if _is_keras_tuner_callback(c)]
        if tuner_callbacks:
            kwargs["verbose"] = 2 if kwargs.get("verbose") == 2 else 0
        if "initial_epoch" in kwargs:  # Hyperband: this round's budget
            initial = kwargs.pop("initial_epoch") or 0
            epochs = kwargs.get("epochs") or self.fine_tune_kwargs.get("epochs")
            if epochs is not None:
                kwargs["epochs"] = max(1, int(epochs) - int(initial))
        if folds is not None:
            return self._fit_folds(hp, model, folds, own, tuner_callbacks, kwargs)
        result = self.fine_tune(
            hp, model, train, validation_data, callbacks=own, **kwargs
        )
        metrics = result_metrics(result)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        _end_epoch(tuner_callbacks, model, metrics)
        _write_record(
            tuner_callbacks,
            {
                "history": result.history,
                "best_epoch": result.best_epoch,
                "cached": [s.cached for s in result.stages],
                "epochs": result.epochs_run,
                "seconds": metrics["seconds"],
            },
        )
        return metrics

    def fine_tune(self, hp, model, train, validation_data=None, **kwargs):
        """Like `fit`, but returns the `kft.FineTuneResult`.

        Args:
            hp: a `keras_tuner.HyperParameters`.
            model: the model `build(hp)` returned.
            train: a `tf.data.Dataset` of `(inputs, labels)` batches.
            validation_data: a validation dataset. Defaults to `None`.
            **kwargs: more `kft.fine_tune` arguments.

        Returns:
            The `kft.FineTuneResult`.
        """
        arguments = self.fine_tune_arguments(hp)
        arguments.update(kwargs)
        # Only training batches matter; validation keeps its own batching,
        # so its cached features serve every batch size.
        return _fine_tune(model, self.batched(train, hp), validation_data, **arguments)

    def _fit_folds(self, hp, model, folds, callbacks, tuner_callbacks, kwargs):
        """One model per fold; returns the fold metrics for keras-tuner to
        average, each also holding the spread (`<metric>_std`) and the
        trial's total `seconds`."""
        started = time.perf_counter()
        arguments = {**self.fine_tune_arguments(hp), **kwargs}
        size = self.hyperparameter_values(hp).get("batch_size")
        fold_metrics = []
        for index, (fold_train, fold_val) in enumerate(folds.datasets_for(size)):
            if index:
                del model
                release_memory()
                model = self.build(hp)
            arguments["callbacks"] = copy.deepcopy(callbacks)
            result = _fine_tune(model, fold_train, fold_val, **arguments)
            fold_metrics.append(result_metrics(result))
            del result
        _write_record(tuner_callbacks, {"folds": fold_metrics})
        seconds = round(time.perf_counter() - started, 2)
        names = set.intersection(*(set(m) for m in fold_metrics)) - {"epochs"}
        spread = {
            f"{n}_std": float(np.std([m[n] for m in fold_metrics]))
            for n in names
            if n != "seconds"
        }
        return [{**m, **spread, "seconds": seconds} for m in fold_metrics]


class WrappedHyperModel(FineTuneHyperModel):
    """Another `keras_tuner.HyperModel` whose trials train through
    `kft.fine_tune`: its `build(hp)` declares the space (its own `fit` is
    not used)."""

    def __init__(self, inner):
        super().__init__(inner.build, space={k: None for k in space_lib.DEFAULT_SPACE})
        self.inner = inner

    def build(self, hp):
        """Builds the wrapped hypermodel's model for `hp`."""
        return self.inner.build(hp)

    def probe(self, *, compiled=True):
        """The wrapped hypermodel's model for its default hyperparameters."""
        return self.inner.build(keras_tuner.HyperParameters())


def _checked_fine_tune_kwargs(fine_tune_kwargs):
    kwargs = dict(fine_tune_kwargs or {})
    for key in ("model", "train", "validation_data", "callbacks"):
        if key in kwargs:
            raise ValueError(
                f"`fine_tune_kwargs` cannot set {key!r}: the search sets it. "
                f"Received: fine_tune_kwargs keys {sorted(kwargs)}."
            )
    for key in kwargs:
        if not space_lib.declares(_fine_tune, key):
            raise ValueError(
                f"`fine_tune_kwargs` has {key!r}, which kft.fine_tune does not "
                "take. See help(kft.fine_tune) for its arguments. Received: "
                f"fine_tune_kwargs keys {sorted(kwargs)}."
            )
    return kwargs


def result_metrics(result):
    """Metrics of the epoch whose weights the fine-tuned model holds.

    Args:
        result: a `kft.FineTuneResult`.

    Returns:
        A dict of floats, plus `"epochs"` and `"seconds"` (training time).
    """
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


def _is_keras_tuner_callback(callback):
    """keras-tuner's own callbacks (checkpointing, trial bookkeeping)."""
    return type(callback).__module__.split(".")[0] == "keras_tuner"


def _end_epoch(tuner_callbacks, model, metrics):
    """Tells keras-tuner's callbacks about one epoch: the kept weights, so its
    best-epoch checkpoint holds the full model `fine_tune` returned."""
    for callback in tuner_callbacks:
        callback.set_model(model)
        callback.on_epoch_begin(0)
        callback.on_epoch_end(0, logs=dict(metrics))


def _write_record(tuner_callbacks, record):
    """Writes `kft_trial.json` (history, folds...) into the trial's folder."""
    for callback in tuner_callbacks:
        tuner, trial = (
            getattr(callback, "tuner", None),
            getattr(callback, "trial", None),
        )
        if tuner is None or trial is None:
            continue
        path = os.path.join(tuner.get_trial_dir(trial.trial_id), RECORD_NAME)
        write_text_atomic(path, json.dumps(record, default=float))
        return
