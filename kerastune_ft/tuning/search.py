"""`kft.tune`: a hyperparameter search on keras-tuner's stock tuners.

`tune` reads as a plan and a loop: check the arguments, plan the search (a
`SearchPlan`: the hypermodel, the data, the objective and its direction, the
folds), let a stock keras-tuner tuner run the trials through
`FineTuneHyperModel.fit`, then collect a `TuneResult`.

Trials whose backbone is fully frozen and sees no augmentation train the
head on cached backbone features; with `feature_cache="auto"` one
`kft.training.FeatureCache` is shared by all trials, so features of the same
frozen backbone on the same data are computed once per search instead of
once per trial.

The search is resumable: with `directory` set and `overwrite=False`, calling
`tune` again with the same arguments reloads the finished trials and runs
only the missing ones up to `max_trials`.

Trials run in this process; keras-tuner clears the Keras session before each
one. TensorFlow keeps the training graph of a keras-hub transformer whose
embeddings are all frozen (the text builder's default) alive anyway, ~350 MiB
per MiniLM trial: for long text searches, resume the search from `directory`
in a new process every few dozen trials.
"""

import dataclasses
import json
import os
import time
import warnings

import keras_tuner

from kerastune_ft import training
from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.data._arrays import to_numpy
from kerastune_ft.data.batches import batch_size_of, is_tf_dataset
from kerastune_ft.tuning import space as space_lib
from kerastune_ft.tuning.folds import TrialFolds, release_memory
from kerastune_ft.tuning.hypermodel import (
    RECORD_NAME,
    FineTuneHyperModel,
    WrappedHyperModel,
)
from kerastune_ft.tuning.results import TuneResult

__all__ = ["ALGORITHMS", "SearchData", "SearchPlan", "tune"]

ALGORITHMS = ("bayesian", "random", "hyperband", "grid")
_TUNERS = {
    "bayesian": keras_tuner.BayesianOptimization,
    "random": keras_tuner.RandomSearch,
    "hyperband": keras_tuner.Hyperband,
    "grid": keras_tuner.GridSearch,
}
_HYPERBAND_EPOCHS = 30


@dataclasses.dataclass(frozen=True)
class SearchData:
    """The data a search trains on.

    Attributes:
        train: the training `tf.data.Dataset`.
        validation: the validation dataset, or `None`.
        loaded: the `LoadedData` they came from, or `None`.
    """

    train: object
    validation: object
    loaded: object = None


@dataclasses.dataclass
class SearchPlan:
    """Everything a search needs, checked, before any model is built.

    Attributes:
        hypermodel: the `FineTuneHyperModel` the trials build and fit.
        data: the `SearchData`.
        objective: the metric to optimize (also `fine_tune`'s monitor).
        direction: `"min"` or `"max"`.
        algorithm: one of `ALGORITHMS`.
        max_trials: the number of trials (not used by Hyperband).
        folds: the `TrialFolds` of a cross-validated search, or `None`.
        feature_cache: the `FeatureCache` shared by the trials, or `None`.
        seed: the oracle's and `fine_tune`'s seed, or `None`.
        callbacks: extra Keras callbacks for every trial.
        verbose: 0, 1 or 2.
    """

    hypermodel: FineTuneHyperModel
    data: SearchData
    objective: str
    direction: str
    algorithm: str
    max_trials: int
    folds: TrialFolds | None = None
    feature_cache: object = None
    seed: int | None = None
    callbacks: list = dataclasses.field(default_factory=list)
    verbose: int = 0

    def fine_tune_kwargs(self):
        """The `fine_tune` arguments the search sets for every model."""
        kwargs = {"monitor": self.objective}
        if self.seed is not None:
            kwargs["seed"] = self.seed
        if self.feature_cache is not None:
            kwargs["feature_cache"] = self.feature_cache
        return kwargs

    def tuner(self, directory, project_name, overwrite):
        """The stock keras-tuner tuner for this plan."""
        kwargs = {
            "hypermodel": self.hypermodel,
            "objective": keras_tuner.Objective(self.objective, self.direction),
            "directory": directory,
            "project_name": project_name,
            "overwrite": overwrite,
            "seed": self.seed,
        }
        if self.algorithm == "hyperband":
            epochs = self.hypermodel.fine_tune_kwargs.get("epochs")
            kwargs["max_epochs"] = int(epochs or _HYPERBAND_EPOCHS)
        else:
            kwargs["max_trials"] = self.max_trials
        return _TUNERS[self.algorithm](**kwargs)


def _check_arguments(algorithm, max_trials, objective, cross_validation, verbose):
    check_choice("algorithm", algorithm, ALGORITHMS)
    if algorithm != "hyperband":
        check_number("max_trials", max_trials, low=1, integer=True)
    if not isinstance(objective, str):
        raise TypeError(
            "`objective` must be a metric name such as 'val_loss' or "
            f"'val_accuracy'. Received: objective={objective!r}."
        )
    if cross_validation is not None:
        check_number("cross_validation", cross_validation, low=2, integer=True)
        if algorithm == "hyperband":
            raise ValueError(
                "`cross_validation` cannot be combined with algorithm='hyperband' "
                "(Hyperband continues single models across rounds). Use "
                "'bayesian' or 'random'. "
                f"Received: cross_validation={cross_validation!r}."
            )
    check_number("verbose", verbose, low=0, high=2, integer=True)


def _search_data(train, validation_data, objective, cross_validation):
    loaded = None
    if hasattr(train, "class_names") and hasattr(train, "train"):
        loaded, train = train, train.train
        if validation_data is None:
            validation_data = loaded.val
    if hasattr(validation_data, "class_names") and hasattr(validation_data, "val"):
        validation_data = validation_data.val
    import_tensorflow("kft.tune (keras-tuner trials on tf.data datasets)")
    if not is_tf_dataset(train):
        raise TypeError(
            "`train` must be a tf.data.Dataset of (inputs, labels) batches or a "
            f"kft LoadedData. Received: train of type {type(train).__name__}."
        )
    if (
        objective.startswith("val_")
        and validation_data is None
        and not cross_validation
    ):
        raise ValueError(
            f"`objective={objective!r}` needs `validation_data` (or "
            "`cross_validation=k`). Pass a validation dataset. "
            "Received: validation_data=None."
        )
    return SearchData(train, validation_data, loaded)


def _hypermodel(builder_or_hypermodel, space, fine_tune_kwargs, objective, strategy):
    if isinstance(builder_or_hypermodel, keras_tuner.HyperModel):
        if space is not None or fine_tune_kwargs is not None:
            raise ValueError(
                "`space` and `fine_tune_kwargs` configure a builder; a HyperModel "
                "was given. Pass them to kft.tuning.FineTuneHyperModel(...) instead."
            )
        hypermodel = builder_or_hypermodel
        if not isinstance(hypermodel, FineTuneHyperModel):
            # A foreign HyperModel: its build(hp) with our fit.
            hypermodel = WrappedHyperModel(hypermodel)
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
            "`builder_or_hypermodel` must be a kft.tuning.FineTuneHyperModel, a "
            "keras_tuner.HyperModel or a builder function. "
            f"Received: builder_or_hypermodel={builder_or_hypermodel!r}."
        )
    smoothing = hypermodel.space().get("label_smoothing")
    if "loss" in objective and isinstance(smoothing, (list, tuple)):
        warnings.warn(
            f"`objective={objective!r}` is a loss, and `label_smoothing` is "
            "searched: smoothed losses are larger by construction, so the search "
            "is biased against smoothing. Use objective='val_accuracy' or fix "
            "label_smoothing in `space`.",
            KerasTuneFTWarning,
            stacklevel=3,
        )
    if strategy is None:
        return hypermodel
    if not space_lib.accepts(hypermodel.builder, "strategy"):
        raise ValueError(
            "`strategy` is given to the builder, but it has no `strategy` "
            f"argument. Received: strategy={strategy!r}."
        )
    return hypermodel.with_builder_kwargs(strategy=strategy)


def _feature_cache(feature_cache):
    if feature_cache is None or feature_cache is False:
        return None
    if isinstance(feature_cache, str) and feature_cache == "auto":
        return training.FeatureCache()
    if not isinstance(feature_cache, training.FeatureCache):
        raise TypeError(
            "`feature_cache` must be 'auto', None or a kft.training.FeatureCache. "
            f"Received: feature_cache={feature_cache!r}."
        )
    return feature_cache


def objective_direction(hypermodel, objective):
    """`"min"` or `"max"` for `objective`, by the training engine's rule.

    The rule is Keras' `mode="auto"`: a loss goes down, a compiled metric
    says its own direction; it is read from a weight-free model of the
    hypermodel.

    Args:
        hypermodel: a `FineTuneHyperModel`.
        objective: a metric name, e.g. `"val_accuracy"`.

    Returns:
        `"min"` or `"max"`.
    """
    try:
        from kerastune_ft.training.callbacks import monitor_mode
    except ImportError:  # the engine before its split into a package
        direction = keras_tuner.engine.metrics_tracking.infer_metric_direction(
            objective
        )
        return direction or "min"
    # keras-tuner clears the session before each trial's build.
    return monitor_mode(hypermodel.probe(), objective)


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
        metrics = trial.metrics
        best = metrics.get_best_value(objective) if metrics.exists(objective) else None
        row["objective"] = None if best is None else float(best)
        std = f"{objective}_std"
        if metrics.exists(std):
            row[std] = float(metrics.get_last_value(std))
        for key, kind in (("epochs", int), ("seconds", float)):
            value = metrics.get_last_value(key) if metrics.exists(key) else None
            row[key] = None if value is None else kind(round(float(value), 2))
        path = os.path.join(tuner.get_trial_dir(trial_id), RECORD_NAME)
        if row["epochs"] is None and os.path.isfile(path):
            with open(path) as f:
                record = json.load(f)
            row["epochs"], row["seconds"] = record.get("epochs"), record.get("seconds")
        rows.append(row)
    return rows


def _best_model(tuner, plan, best_trial, rows):
    """Restores the best trial's kept weights, or retrains after CV."""
    hypermodel, data = plan.hypermodel, plan.data
    if plan.folds is None:  # load_model clears the session before it builds
        with warnings.catch_warnings():
            # The fresh model's optimizer is not built yet; only its weights
            # matter here, and those load.
            warnings.filterwarnings("ignore", message="Skipping variable loading")
            return tuner.load_model(best_trial), "restored"
    best_hp = best_trial.hyperparameters
    release_memory()
    model = hypermodel.build(best_hp)
    retrain = plan.fine_tune_kwargs()
    if data.validation is None:
        # Nothing to stop on: train as long as the folds did on average.
        epochs = {r["trial_id"]: r for r in rows}[best_trial.trial_id]["epochs"]
        retrain.update(
            monitor="loss", early_stopping=False, epochs=max(1, int(epochs or 1))
        )
    hypermodel.fine_tune(
        best_hp, model, data.train, data.validation, verbose=0, **retrain
    )
    return model, "retrained"


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
    restoring, staged unfreezing, frozen-feature caching shared across
    trials); see the module docs for resuming and memory.

    Args:
        builder_or_hypermodel: a `kft.tuning.FineTuneHyperModel`, another
            `keras_tuner.HyperModel`, or a builder function whose positional
            arguments are bound (e.g.
            `functools.partial(kft.build_image_classifier, "mobilenet_v2", 5)`).
        train: a `tf.data.Dataset` of `(inputs, labels)` batches, or a
            `LoadedData` (its `.train`; `validation_data` defaults to `.val`).
        validation_data: a validation `tf.data.Dataset` or `LoadedData`.
            Defaults to `None`.
        algorithm: `"bayesian"`, `"random"`, `"hyperband"` or `"grid"`.
            Defaults to `"bayesian"`.
        max_trials: number of trials (grid: at most; hyperband: ignored, its
            budget is `fine_tune_kwargs["epochs"]`). Defaults to `10`.
        objective: the metric to optimize, also `fine_tune`'s `monitor`; its
            direction is Keras' `mode="auto"` rule (a loss goes down, a
            compiled metric says its own). With a loss, a builder's default
            space does not search `label_smoothing`. Defaults to `"val_loss"`.
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
            objective over k folds of `train`; the best model is then
            retrained on `train` (early-stopped on `validation_data`, else
            for the folds' mean epochs). Defaults to `None`.
        stratified: stratified folds for `cross_validation`. Defaults to
            `True`.
        feature_cache: `"auto"` shares one new `kft.training.FeatureCache`
            across the trials; `None` computes features in every trial; or a
            `FeatureCache` to use (`.hits`, `.misses`). Defaults to `"auto"`.
        callbacks: extra Keras callbacks, deep-copied for every trial.
            Defaults to `()`.
        strategy: a `tf.distribute.Strategy` (or its name) given to the
            builder. Defaults to `None`.
        verbose: `0` silent, `1` keras-tuner's per-trial summary, `2` also
            per-epoch lines. Defaults to `0`.

    Returns:
        A `TuneResult`: best hyperparameters, best model (restored, or
        retrained after cross-validation), a row per trial (`.table()`),
        `.importance()` and `.plot()`.

    Example:

    >>> import keras, numpy as np, tempfile, tensorflow as tf
    >>> import kerastune_ft as kft
    >>> def build(dropout=0.2, l2=0.0, freeze="all"):
    ...     backbone = keras.Sequential([keras.Input((8, 8, 3)),
    ...         keras.layers.Conv2D(4, 3), keras.layers.Conv2D(4, 3)])
    ...     return kft.build_image_classifier(
    ...         backbone, 2, dropout=dropout, l2=l2, freeze=freeze)
    >>> x = np.random.rand(20, 8, 8, 3).astype("float32") * 255
    >>> ds = tf.data.Dataset.from_tensor_slices((x, np.arange(20) % 2)).batch(10)
    >>> result = kft.tune(build, ds, ds, algorithm="random", max_trials=2,
    ...                   directory=tempfile.mkdtemp(), seed=0,
    ...                   space={"batch_size": None, "unfreeze": 0},
    ...                   fine_tune_kwargs={"epochs": 1})
    >>> len(result.trials), result.best_model_source
    (2, 'restored')
    """
    started = time.perf_counter()
    _check_arguments(algorithm, max_trials, objective, cross_validation, verbose)
    plan = _plan(
        builder_or_hypermodel,
        _search_data(train, validation_data, objective, cross_validation),
        algorithm=algorithm,
        max_trials=max_trials,
        objective=objective,
        seed=seed,
        space=space,
        fine_tune_kwargs=fine_tune_kwargs,
        cross_validation=cross_validation,
        stratified=stratified,
        feature_cache=_feature_cache(feature_cache),
        callbacks=callbacks,
        strategy=strategy,
        verbose=verbose,
    )
    tuner = plan.tuner(directory, project_name, overwrite)
    return _search(tuner, plan, started)


def _plan(builder_or_hypermodel, data, **options):
    """Checks what a search needs and returns its `SearchPlan`."""
    objective, seed = options["objective"], options["seed"]
    cache = options["feature_cache"]  # checked before any model is built
    hypermodel = _hypermodel(
        builder_or_hypermodel,
        options["space"],
        options["fine_tune_kwargs"],
        objective,
        options["strategy"],
    )
    folds = None
    if options["cross_validation"]:
        folds = TrialFolds(
            to_numpy(data.loaded or data.train, ("train",), name="train"),
            int(options["cross_validation"]),
            stratified=options["stratified"],
            seed=seed,
            batch_size=batch_size_of(data.train),
        )
    return SearchPlan(
        hypermodel=hypermodel,
        data=data,
        objective=objective,
        direction=objective_direction(hypermodel, objective),
        algorithm=options["algorithm"],
        max_trials=options["max_trials"],
        folds=folds,
        feature_cache=cache,
        seed=seed,
        callbacks=list(options["callbacks"]),
        verbose=int(options["verbose"]),
    )


def _search(tuner, plan, started):
    """Runs the trials, then collects the `TuneResult`."""
    search_kwargs = plan.fine_tune_kwargs()
    if plan.folds is not None:
        search_kwargs["folds"] = plan.folds
    tuner.search(
        plan.data.train,
        plan.data.validation,
        callbacks=plan.callbacks,
        verbose=plan.verbose,
        **search_kwargs,
    )
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise RuntimeError(
            "No trial finished. Check the error of the failed trials in "
            f"{tuner.project_dir}."
        )
    rows = _trial_rows(tuner)
    model, source = _best_model(tuner, plan, best[0], rows)
    return TuneResult(
        best_hyperparameters=best[0].hyperparameters,
        best_model=model,
        best_model_source=source,
        trials=rows,
        objective=plan.objective,
        direction=plan.direction,
        tuner=tuner,
        seconds=round(time.perf_counter() - started, 2),
    )
