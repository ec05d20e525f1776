"""The engine: `fine_tune` is a plan of `Stage`s and a loop that runs them.

`fine_tune` checks its arguments, resolves their defaults into one
`TrainSettings`, plans the stages (`kerastune_ft.training.stages`), and runs
each one with the same best-epoch tracker; `checkpoint_dir` saves the run's
progress after each stage (`kerastune_ft.training.state`). `unfreeze` is the
plain-`fit` counterpart of an unfreezing stage.
"""

import dataclasses
import shutil

import keras
import numpy as np

from kerastune_ft import distribute, freezing
from kerastune_ft._validation import check_number
from kerastune_ft.builders.head import make_adamw
from kerastune_ft.data.checks import balanced_class_weight
from kerastune_ft.training import checks, state
from kerastune_ft.training.cache import FeatureCache, check_feature_caching
from kerastune_ft.training.callbacks import BestWeights, monitor_mode
from kerastune_ft.training.data import CacheSettings, labels_of
from kerastune_ft.training.losses import recompile
from kerastune_ft.training.regime import choose_regime, first_stages
from kerastune_ft.training.results import FineTuneResult
from kerastune_ft.training.schedules import peak_learning_rate
from kerastune_ft.training.stages import (
    StageContext,
    TrainSettings,
    backup_dir,
    plan_stages,
)

__all__ = ["default_epochs", "fine_tune", "run_stages", "unfreeze"]

# Whole-transformer fine-tuning (BERT recipe) vs a head on a frozen backbone.
TRANSFORMER_EPOCHS = 4
HEAD_EPOCHS = 30


@distribute.trains_under_strategy
def fine_tune(
    model,
    train,
    validation_data=None,
    *,
    epochs=None,
    recipe="auto",
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
    monitor=None,
    reduce_lr_on_plateau=False,
    cache_features="auto",
    augmented_views=8,
    feature_cache=None,
    checkpoint_dir=None,
    callbacks=(),
    seed=None,
    strategy=None,
    verbose="auto",
    batch_size=None,
):
    """Fine-tunes a model in stages and returns the best weights found.

    Stage 1 trains the head on the frozen backbone; with few examples per
    class (`recipe="auto"`, at most 32 in the rarest class) it is replaced by
    a recipe that needs neither epochs nor validation data: a linear probe
    fitted to convergence for image backbones, contrastive tuning (SetFit)
    then a linear probe for text (see `recipe`). Each entry of `unfreeze`
    adds a stage that unfreezes the top of the backbone, recompiles with the
    lower `fine_tune_learning_rate`, keeps BatchNorm in inference mode and
    continues the epoch count. Early stopping restores the best weights
    across all stages.

    Args:
        model: a compiled `keras.Model`. Unfreezing stages need a backbone
            (`model.backbone`) and feature caching a transfer classifier
            (`kft.build_image_classifier`, `kft.build_text_classifier`).
        train: `(inputs, labels)` batches: a `tf.data.Dataset`, a
            `keras.utils.PyDataset` (such as `kft.data.ArrayBatches`, what
            `kft.data.load_images` returns without TensorFlow), or an
            `(inputs, labels)` tuple of arrays (batched by `batch_size`,
            reshuffled every epoch).
        validation_data: data like `train`, or `None`. Defaults to `None`.
        epochs: maximum epochs per stage. Defaults to `None`: `4` when the
            model trains transformer blocks (BERT-style fine-tuning converges
            in 2-4 epochs; MediaPipe Model Maker's text default is 3), else
            `30`; a head trained on cached features gets more epochs when
            needed to make at least 500 optimizer steps (at most 300
            epochs): small datasets make few steps per epoch, cached epochs
            are cheap, and early stopping ends the run.
        recipe: how the head stage is trained. `"standard"`: gradient
            epochs (`kft.training.HeadStage`). `"linear_probe"`: a logistic
            regression fitted to convergence on the frozen features, its L2
            strength chosen by cross-validation inside `train`
            (`kft.training.LinearProbeStage`). `"contrastive"`: a text
            backbone tuned on same/different-class sentence pairs
            (`kft.training.ContrastiveStage`; SetFit: Tunstall et al., 2022),
            then a linear probe. `"auto"` picks a few-shot recipe for a
            transfer classifier when `epochs=None` and the rarest training
            class has at most 32 examples (`"contrastive"` for text, and
            `"linear_probe"` for a frozen image backbone), else
            `"standard"`. `FineTuneResult.regime` says which and why.
            Defaults to `"auto"`.
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
        monitor: metric that picks the best epoch. Defaults to `None`:
            `"val_loss"` with `validation_data`, else `"loss"`.
        reduce_lr_on_plateau: add `ReduceLROnPlateau` (only with
            `schedule="constant"`). Defaults to `False`.
        cache_features: `"auto"` runs `model.feature_extractor()` once and
            trains `model.head` on the cached features when the backbone
            has no trainable weights (with an augmentation layer, on
            `augmented_views`, else caching validation features only);
            `False` never caches; `True` requires caching and fails when it
            is not possible. Defaults to `"auto"`.
        augmented_views: when the model has an augmentation layer, the
            feature extractor is run this many times
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
            run. A folder holding a run made with other arguments is refused
            (a `ValueError` naming them). Defaults to `None`.
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
        batch_size: the batch size of `train` and `validation_data` when
            they are `(inputs, labels)` arrays (datasets keep their own).
            Defaults to `None` (`32`).

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
    train, validation_data = checks.check_model(
        model, train, validation_data, batch_size=batch_size, seed=seed
    )
    if monitor is None:
        monitor = "loss" if validation_data is None else "val_loss"
    settings = _settings(
        model,
        validation_data,
        epochs=epochs,
        learning_rate=learning_rate,
        fine_tune_learning_rate=fine_tune_learning_rate,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        class_weight=class_weight,
        schedule=schedule,
        warmup=warmup,
        early_stopping=early_stopping,
        patience=patience,
        monitor=monitor,
        reduce_lr_on_plateau=reduce_lr_on_plateau,
        cache=CacheSettings(cache_features, augmented_views, seed, feature_cache),
        verbose=1 if verbose == "auto" else verbose,
    )
    checks.check_callbacks(callbacks)
    stages = plan_stages(
        unfreeze,
        settings.epochs,
        settings.learning_rate,
        settings.fine_tune_learning_rate,
    )
    regime = choose_regime(model, train, recipe, auto_epochs=settings.auto_epochs)
    stages = first_stages(regime, stages[0]) + stages[1:]
    checks.check_data(model, train, validation_data, settings, stages, unfreeze)
    if checkpoint_dir is not None:
        state.check_checkpoint_dir(checkpoint_dir)
    if seed is None and distribute.is_multi_worker(strategy):
        raise ValueError(
            "Multi-worker training needs `seed`: every worker must shuffle the "
            "data (and cached features) in the same order, or the shards overlap. "
            "Received: seed=None. Pass e.g. seed=0, and a seed to your dataset's "
            "shuffle()."
        )
    say = print if settings.verbose else (lambda *a, **k: None)
    cache_features = check_feature_caching(strategy, cache_features, say)
    chief = distribute.is_chief(strategy)
    state.check_resumable(checkpoint_dir, _fingerprint(settings, stages), write=chief)
    settings = _with_cache(settings, cache_features)
    if seed is not None:
        keras.utils.set_random_seed(seed)
        _seed_layers(model, seed)
    if settings.class_weight == "balanced":
        settings = _with_class_weight(settings, balanced_class_weight(labels_of(train)))
        say(f"class_weight='balanced': {settings.class_weight}")
    context = StageContext(
        model=model,
        train=train,
        validation_data=validation_data,
        settings=settings,
        tracker=None,
        callbacks=list(callbacks),
        index=0,
        epoch_offset=0,
        checkpoint_dir=checkpoint_dir,
        strategy=strategy,
        chief=chief,
        say=say,
        num_stages=len(stages),
        regime=regime,
    )
    if regime.few_shot:
        say(f"Recipe {regime}.")
    return run_stages(context, stages)


def run_stages(context, stages):
    """The loop: runs each stage not yet done, saving progress after each.

    `fine_tune` plans its stages and calls this; it runs any list of
    `Stage`s (one that is not gradient descent included) with one best-epoch
    tracker across them.

    Args:
        context: a `StageContext` (its `tracker`, `index` and `epoch_offset`
            are set here).
        stages: the `Stage`s, in order.

    Returns:
        A `FineTuneResult`.
    """
    model, settings = context.model, context.settings
    run_state = state.RunState.load(context.checkpoint_dir)
    if run_state.weights is not None:
        model.set_weights(run_state.weights)
    tracker = BestWeights(
        model,
        settings.monitor,
        settings.mode,
        patience=settings.patience if settings.early_stopping else None,
        restore=bool(settings.early_stopping),
    )
    tracker.state = run_state.best
    if settings.early_stopping and run_state.best.epoch is not None:
        tracker.best_weights = run_state.weights  # a stage ends on the best weights
    context.tracker = tracker
    history, reports = run_state.history, run_state.reports
    context.epoch_offset = len(next(iter(history.values()), []))
    for index, stage in enumerate(stages):
        if index < run_state.stages_done or tracker.state.diverged_epoch is not None:
            continue
        context.index = index
        outcome = stage.run(context)
        for key, values in outcome.history.items():
            history.setdefault(key, [None] * context.epoch_offset).extend(values)
        reports.append(outcome.report)
        context.epoch_offset = outcome.report.last_epoch
        run_state.stages_done = index + 1
        run_state.best = tracker.state
        run_state.weights = model.get_weights() if context.checkpoint_dir else None
        if context.checkpoint_dir is not None and context.chief:
            run_state.save(context.checkpoint_dir)
            # The run state now holds this stage; its backups are done with.
            shutil.rmtree(backup_dir(context.checkpoint_dir, index), ignore_errors=True)
    result = _result(model, history, reports, tracker, settings, context.say)
    result.regime = context.regime
    return result


def _settings(
    model,
    validation_data,
    *,
    epochs,
    learning_rate,
    fine_tune_learning_rate,
    weight_decay,
    monitor,
    cache,
    **kwargs,
):
    """Resolves `fine_tune`'s defaults into a checked `TrainSettings`."""
    auto_epochs = epochs is None
    if auto_epochs:
        epochs = default_epochs(model)
    if learning_rate is None:
        learning_rate = peak_learning_rate(getattr(model, "optimizer", None), 1e-3)
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False)
    if fine_tune_learning_rate is None:
        fine_tune_learning_rate = learning_rate / 100
    if weight_decay is None:
        optimizer = getattr(model, "optimizer", None)
        weight_decay = (
            float(optimizer.weight_decay)
            if isinstance(optimizer, keras.optimizers.AdamW)
            else 1e-4
        )
    if cache.feature_cache is not None and not isinstance(
        cache.feature_cache, FeatureCache
    ):
        raise TypeError(
            "`feature_cache` must be a kft.training.FeatureCache or None. "
            f"Received: feature_cache={cache.feature_cache!r}."
        )
    settings = TrainSettings(
        epochs=epochs,
        learning_rate=learning_rate,
        fine_tune_learning_rate=fine_tune_learning_rate,
        weight_decay=weight_decay,
        monitor=monitor,
        mode=monitor_mode(model, monitor) if isinstance(monitor, str) else "min",
        auto_epochs=auto_epochs,
        has_validation=validation_data is not None,
        cache=cache,
        **kwargs,
    )
    checks.check_arguments(settings)
    return settings


def _with_cache(settings, cache_features):
    cache = dataclasses.replace(settings.cache, cache_features=cache_features)
    return dataclasses.replace(settings, cache=cache)


def _with_class_weight(settings, class_weight):
    return dataclasses.replace(settings, class_weight=class_weight)


def _fingerprint(settings, stages):
    """The arguments that change a run, as recorded in `checkpoint_dir`."""
    class_weight = settings.class_weight
    if isinstance(class_weight, dict):
        class_weight = {str(k): float(v) for k, v in sorted(class_weight.items())}
    return {
        "stages": [stage.describe() for stage in stages],
        "epochs": None if settings.auto_epochs else settings.epochs,
        "weight_decay": float(settings.weight_decay),
        "label_smoothing": float(settings.label_smoothing),
        "class_weight": class_weight,
        "schedule": settings.schedule,
        "warmup": float(settings.warmup),
        "early_stopping": bool(settings.early_stopping),
        "patience": int(settings.patience),
        "monitor": settings.monitor,
        "reduce_lr_on_plateau": bool(settings.reduce_lr_on_plateau),
        "cache_features": settings.cache.cache_features,
        "augmented_views": int(settings.cache.augmented_views),
        "seed": settings.cache.seed,
    }


def default_epochs(model):
    """`fine_tune`'s `epochs=None`: 4 for a transformer trained whole, else 30.

    Args:
        model: the model to fine-tune.

    Returns:
        An int.
    """
    backbone = freezing.get_backbone(model)
    if backbone is model or not backbone.trainable_weights:
        return HEAD_EPOCHS
    if freezing.backbone_units(backbone).transformer:
        return TRANSFORMER_EPOCHS
    return HEAD_EPOCHS


def _seed_layers(model, seed):
    """Sets the random state of every random layer (dropout, augmentation).

    Each layer drew its state from the global seed when it was built, so two
    models with the same weights but built apart would still drop and flip
    differently; with `seed`, fine_tune decides.
    """
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, variable in enumerate(states):
        value = int(np.random.default_rng([seed, index]).integers(2**31))
        variable.assign(np.array([value, 0], dtype=variable.dtype))


def _result(model, history, reports, tracker, settings, say):
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
            if settings.early_stopping
            else "the last weights were kept"
        )
        say(f"Best epoch {best_epoch} by {settings.monitor}; {restored}.")
    return FineTuneResult(
        model,
        history,
        reports,
        best_epoch,
        best_metrics,
        settings.monitor,
        bool(settings.early_stopping) or (diverged and best_epoch is not None),
        diverged=diverged,
    )


def unfreeze(
    model, top="all", *, learning_rate=1e-5, weight_decay=1e-4, bn_trainable=False
):
    """Unfreezes the top of the backbone and recompiles, for plain `model.fit`.

    BatchNormalization layers stay frozen (and the backbone is called in
    inference mode) unless `bn_trainable=True`. The loss and metrics the model
    was compiled with are kept; the optimizer becomes AdamW at
    `learning_rate`.

    Args:
        model: a compiled model with a backbone (`model.backbone`).
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
    ...     [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...      keras.layers.Conv2D(4, 3)])
    >>> model = kft.build_image_classifier(base, 2)
    >>> model = kft.unfreeze(model, top=1, learning_rate=1e-5)
    >>> [layer.trainable for layer in model.backbone.layers[-2:]]
    [False, True]
    """
    check_number("learning_rate", learning_rate, low=0, low_inclusive=False)
    if top != "all":
        check_number("top", top, low=0, integer=True)
    if freezing.get_backbone(model) is model:
        raise ValueError(
            "`model` has no backbone: kft.unfreeze and kft.fine_tune's `unfreeze` "
            "need `model.backbone`. Build the model with kft.build_image_classifier "
            "/ kft.build_text_classifier."
        )
    checks.require_compiled(model)
    freezing.unfreeze_top(model, top, bn_trainable=bn_trainable)
    recompile(model, make_adamw(learning_rate, weight_decay))
    return model
