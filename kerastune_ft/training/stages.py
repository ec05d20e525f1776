"""The stages of a `kft.fine_tune` run, and the planner that lists them.

A `Stage` is one step of the plan with a `run(context)` that the engine's
loop calls; it returns a `StageOutcome` (its epochs' history and a
`StageReport`). The two stages `fine_tune` plans today are gradient descent
with `fit`: `HeadStage` trains the head on the frozen backbone (on cached
features when possible), `UnfreezeStage` unfreezes the top of the backbone
first. A stage that is not plain gradient descent (a contrastive stage, a
closed-form or L-BFGS head fit) subclasses `Stage` and implements `run`.
"""

import abc
import dataclasses
import os
import time

import keras

from kerastune_ft import distribute, freezing
from kerastune_ft._validation import check_number
from kerastune_ft.builders.head import make_adamw
from kerastune_ft.training.callbacks import (
    BestWeights,
    EpochLog,
    stop_on_non_finite_loss,
)
from kerastune_ft.training.data import CacheSettings, prepare_data
from kerastune_ft.training.losses import recompile
from kerastune_ft.training.results import StageReport
from kerastune_ft.training.schedules import make_schedule

__all__ = [
    "GradientStage",
    "HeadStage",
    "Stage",
    "StageContext",
    "StageOutcome",
    "TrainSettings",
    "UnfreezeStage",
    "backup_dir",
    "plan_stages",
    "stage_callbacks",
]

# A head trained on cached features gets at least this many optimizer steps
# when `epochs=None` (few examples make few steps per epoch; cached epochs
# are cheap), and at most this many epochs.
MIN_HEAD_STEPS = 500
MAX_HEAD_EPOCHS = 300


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """The resolved keyword arguments of `kft.fine_tune` that every stage reads.

    Attributes mirror `fine_tune`'s arguments once defaults are resolved;
    `auto_epochs` says `epochs` was `None`, `mode` is the direction of
    `monitor` (`"min"`/`"max"`), `cache` the feature-caching settings.
    """

    epochs: int
    learning_rate: float
    fine_tune_learning_rate: float
    weight_decay: float
    label_smoothing: float = 0.0
    class_weight: object = None
    schedule: str = "cosine"
    warmup: float = 0.1
    early_stopping: bool = True
    patience: int = 5
    monitor: str = "val_loss"
    mode: str = "min"
    reduce_lr_on_plateau: bool = False
    auto_epochs: bool = False
    verbose: int = 1
    has_validation: bool = True
    cache: CacheSettings = CacheSettings()

    # Names `check_arguments` reads directly.
    @property
    def cache_features(self):
        return self.cache.cache_features

    @property
    def augmented_views(self):
        return self.cache.augmented_views

    @property
    def seed(self):
        return self.cache.seed


@dataclasses.dataclass
class StageContext:
    """What the engine's loop hands each stage.

    Attributes:
        model: the model being fine-tuned.
        train: the training dataset.
        validation_data: the validation dataset or `None`.
        settings: the run's `TrainSettings`.
        tracker: the `BestWeights` callback living across stages.
        callbacks: the user's extra callbacks.
        index: this stage's index in the plan.
        epoch_offset: epochs run by the earlier stages.
        checkpoint_dir: the run's folder, or `None`.
        strategy: the `tf.distribute` strategy, or `None`.
        chief: whether this process writes files.
        say: a print-like function (silent with `verbose=0`).
        num_stages: how many stages the plan has.
        regime: the `Regime` `fine_tune` chose, or `None`.
    """

    model: keras.Model
    train: object
    validation_data: object
    settings: TrainSettings
    tracker: BestWeights
    callbacks: list
    index: int
    epoch_offset: int
    checkpoint_dir: object = None
    strategy: object = None
    chief: bool = True
    say: object = print
    num_stages: int = 1
    regime: object = None


@dataclasses.dataclass
class StageOutcome:
    """What a stage did: its epochs' logs and its report.

    Attributes:
        history: `{metric: [value per epoch]}` of this stage's epochs (those
            run before a resume included).
        report: the stage's `StageReport`.
    """

    history: dict
    report: StageReport


class Stage(abc.ABC):
    """One step of a fine-tuning plan.

    Subclasses set `name`, `epochs` and `learning_rate` and implement `run`.
    `describe()` is what the run's `checkpoint_dir` fingerprint records.
    """

    name: str
    epochs: int
    learning_rate: float

    @abc.abstractmethod
    def run(self, context):
        """Runs the stage.

        Args:
            context: a `StageContext`.

        Returns:
            A `StageOutcome`.
        """

    def describe(self):
        """A JSON-able description (the stage's part of the run's arguments)."""
        return {"type": type(self).__name__, **dataclasses.asdict(self)}


@dataclasses.dataclass
class GradientStage(Stage):
    """A stage trained with `fit`: set what trains, prepare data, compile, fit.

    Attributes:
        name: the stage's name in reports.
        epochs: maximum epochs.
        learning_rate: peak learning rate.
    """

    name: str
    epochs: int
    learning_rate: float

    def prepare_model(self, model):
        """Sets which weights train before the stage (nothing by default)."""

    def stage_epochs(self, context, data):
        """Maximum epochs of this run of the stage."""
        return self.epochs

    def trains(self, model):
        """What the stage trains, in words: its name."""
        return self.name

    def stage_patience(self, context, epochs):
        """Early-stopping patience of this run of the stage."""
        return context.settings.patience

    def run(self, context):
        started = time.perf_counter()
        model, settings = context.model, context.settings
        self.prepare_model(model)
        trainable = freezing.count_params(model.trainable_weights)
        context.say(
            f"Stage {context.index + 1}/{context.num_stages} ({self.trains(model)}): "
            f"{trainable:,} trainable parameters, learning rate {self.learning_rate:g}"
        )
        data = prepare_data(
            model, context.train, context.validation_data, settings.cache, context.say
        )
        epochs = self.stage_epochs(context, data)
        _compile(model, data, self.learning_rate, epochs, settings)
        if settings.early_stopping:
            context.tracker.patience = self.stage_patience(context, epochs)
        callbacks, epoch_log = stage_callbacks(context, data)
        fit = data.model.fit(
            data.train,
            validation_data=data.validation,
            epochs=context.epoch_offset + epochs,
            initial_epoch=context.epoch_offset,
            class_weight=settings.class_weight,
            callbacks=callbacks + list(context.callbacks),
            shuffle=False,  # datasets shuffle themselves; Keras would only warn
            verbose=settings.verbose,
        )
        # After a resume, fit() only returns the epochs it ran itself.
        history = epoch_log.history() if epoch_log else fit.history
        history = {k: [float(v) for v in values] for k, values in history.items()}
        ran = len(next(iter(history.values()), []))
        report = StageReport(
            name=self.name,
            first_epoch=context.epoch_offset + 1,
            last_epoch=context.epoch_offset + ran,
            learning_rate=float(self.learning_rate),
            trainable_params=trainable,
            seconds=round(time.perf_counter() - started, 2),
            cached=data.cached,
        )
        return StageOutcome(history, report)


@dataclasses.dataclass
class HeadStage(GradientStage):
    """Stage 1: the head on the frozen backbone (on cached features if it can).

    With `epochs=None` and cached features, it runs at least 500 optimizer
    steps (at most 300 epochs), with a tenth of its epochs as patience when
    that is more than `patience`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.training.HeadStage(epochs=5, learning_rate=1e-3).name
    'head'
    """

    name: str = "head"
    epochs: int = 30
    learning_rate: float = 1e-3

    def trains(self, model):
        # A text model's default trains backbone blocks in this stage too.
        backbone = getattr(model, "backbone", None)
        if backbone is not None and backbone.trainable_weights:
            return f"{self.name} + the backbone's trainable layers"
        return self.name

    def stage_epochs(self, context, data):
        steps = data.steps_per_epoch
        if context.settings.auto_epochs and data.cached.startswith("train") and steps:
            return min(MAX_HEAD_EPOCHS, max(self.epochs, -(-MIN_HEAD_STEPS // steps)))
        return self.epochs

    def stage_patience(self, context, epochs):
        # Long automatic head stages get proportionally more patience: a
        # few-shot validation loss is noisy from epoch to epoch.
        patience = context.settings.patience
        return max(patience, epochs // 10) if context.settings.auto_epochs else patience


@dataclasses.dataclass
class UnfreezeStage(GradientStage):
    """A stage that unfreezes the top `top` backbone units, then trains.

    BatchNormalization layers stay frozen.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.training.UnfreezeStage("unfreeze top 2", 5, 1e-5, top=2).top
    2
    """

    top: object = "all"

    def prepare_model(self, model):
        freezing.unfreeze_top(model, self.top, bn_trainable=False)


def plan_stages(unfreeze, epochs, learning_rate, fine_tune_learning_rate):
    """The stages of a run: a `HeadStage`, then an `UnfreezeStage` per entry.

    Args:
        unfreeze: `fine_tune`'s `unfreeze` argument.
        epochs: maximum epochs per stage.
        learning_rate: the head stage's peak learning rate.
        fine_tune_learning_rate: the unfreezing stages' default.

    Returns:
        A list of `Stage`s.

    Example:

    >>> import kerastune_ft as kft
    >>> from kerastune_ft.training.stages import plan_stages
    >>> [s.name for s in plan_stages([2, "all"], 5, 1e-3, 1e-5)]
    ['head', 'unfreeze top 2', 'unfreeze all']
    """
    stages = [HeadStage(epochs=epochs, learning_rate=learning_rate)]
    if unfreeze is None:
        return stages
    specs = unfreeze if isinstance(unfreeze, (list, tuple)) else [unfreeze]
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
        stages.append(UnfreezeStage(name, stage_epochs, lr, top=top))
    return stages


def _compile(model, data, learning_rate, epochs, settings):
    steps = data.steps_per_epoch
    total = steps * epochs if steps else None
    if total is None and settings.schedule != "constant":
        import warnings

        from kerastune_ft._warnings import KerasTuneFTWarning

        warnings.warn(
            f"schedule={settings.schedule!r} needs the number of steps per epoch, but "
            "the training dataset's length is unknown (e.g. after filter() or "
            "repeat()). Using a constant learning rate instead.",
            KerasTuneFTWarning,
            stacklevel=4,
        )
    lr = make_schedule(settings.schedule, learning_rate, settings.warmup, total)
    smoothing = settings.label_smoothing or None
    recompile(model, make_adamw(lr, settings.weight_decay), smoothing)
    if data.model is not model:
        # The head on cached features, on TensorFlow: one call of the
        # compiled step per epoch, so an epoch of a small head costs
        # milliseconds. (Not under a tf.distribute strategy: Keras 3.15's
        # multi-step function fails there, "You must feed a value for
        # placeholder tensor". JAX loops over the steps in Python anyway, and
        # torch takes only steps_per_execution=1.)
        on_tf = keras.backend.backend() == "tensorflow"
        per_call = (steps or 1) if on_tf and not distribute.has_strategy() else 1
        recompile(
            data.model,
            make_adamw(lr, settings.weight_decay),
            smoothing,
            like=model,
            steps_per_execution=per_call,
        )
    for callback in data.callbacks:
        head = getattr(callback, "head", None)
        if head is not None:
            recompile(head, keras.optimizers.Adam(), like=model)


def backup_dir(checkpoint_dir, index):
    """The backup folder of stage `index` in `checkpoint_dir`."""
    return os.path.join(checkpoint_dir, f"backup_stage{index}")


def stage_callbacks(context, data):
    """One stage's callbacks, in the order they must see each epoch's logs.

    Metric-adding callbacks come first (the others read them), then the
    best-epoch tracker (it may stop the stage, which the backup records), the
    backup, and the epoch log last, so that a logged epoch is also a saved
    one.

    Args:
        context: the `StageContext`.
        data: the stage's `PreparedData`.

    Returns:
        `(callbacks, epoch log or None)`.
    """
    settings = context.settings
    callbacks = list(data.callbacks) + [
        context.tracker,
        stop_on_non_finite_loss(),
    ]
    if settings.reduce_lr_on_plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=settings.monitor,
                mode=settings.mode,
                patience=max(1, settings.patience // 2),
            )
        )
    if context.checkpoint_dir is None:
        return callbacks, None
    if context.chief:
        os.makedirs(context.checkpoint_dir, exist_ok=True)
    # double_checkpoint keeps the previous backup: a kill while saving leaves
    # the new one uncommitted, and a damaged newest one falls back.
    callbacks.append(
        distribute.backup_and_restore(
            backup_dir(context.checkpoint_dir, context.index),
            context.strategy,
            companions=[context.tracker],
            double_checkpoint=True,
            delete_checkpoint=False,
        )
    )
    epoch_log = EpochLog(
        os.path.join(context.checkpoint_dir, f"epochs_stage{context.index}.jsonl"),
        write=context.chief,
    )
    callbacks.append(epoch_log)
    return callbacks, epoch_log
