"""The sections of a run config: typed, frozen, validated dataclasses.

Every field of `[data]`, `[model]`, `[head]`, `[training]` and
`[evaluation]` is a keyword argument of the library function that section
feeds (`FEEDS`), under its own name, and defaults to `None`: "the library's
default". A `kft.run` passes only the fields that are set, unchanged, so a
config never restates (and never drifts from) a library default. The few
fields that belong to the run itself, not to a library call, are listed in
`RUN_FIELDS`.

Values are checked for their type and range here, so that a bad config
fails at once, before TensorFlow loads; which names a choice accepts (a
schedule, a pooling, an augmentation preset) is the library's to say, and it
says so when the run starts.
"""

import dataclasses
import numbers

from kerastune_ft._validation import check_choice, check_fraction, check_number

__all__ = [
    "FEEDS",
    "NONE_WORD",
    "ONLY_FOR",
    "RUN_FIELDS",
    "TASKS",
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "HeadConfig",
    "ModelConfig",
    "OutputConfig",
    "TrainingConfig",
]

TASKS = ("image", "text")

# The function each section's fields are keyword arguments of, per task.
FEEDS = {
    "data": {
        "image": "kerastune_ft.data:load_images",
        "text": "kerastune_ft.data:load_texts",
    },
    "model": {
        "image": "kerastune_ft:build_image_classifier",
        "text": "kerastune_ft:build_text_classifier",
    },
    "training": {"image": "kerastune_ft:fine_tune", "text": "kerastune_ft:fine_tune"},
    "evaluation": {"image": "kerastune_ft:evaluate", "text": "kerastune_ft:evaluate"},
}
FEEDS["head"] = FEEDS["model"]

# Fields the run itself uses (`kft.run`), fed to no library keyword.
RUN_FIELDS = {
    "data": ("max_per_class",),
    "evaluation": ("splits", "sets"),
    "output": ("dir", "plots", "report"),
}

# Keys that only one task's function takes; set for the other task they are
# errors (the signature test pins these against the builders and loaders).
ONLY_FOR = {
    "image": frozenset(
        {
            "data.image_size",
            "model.weights",
            "model.backbone_kwargs",
            "model.preprocessing",
            "model.augmentation",
            "model.label_mode",
            "model.from_logits",
            "model.bn_trainable",
            "head.head_units",
        }
    ),
    "text": frozenset(
        {
            "data.label_first",
            "data.text_column",
            "data.label_column",
            "data.delimiter",
            "data.encoding",
            "data.errors",
            "model.load_weights",
            "model.sequence_length",
        }
    ),
}

# TOML has no null: for these keys the word "none" is passed as `None`.
NONE_WORD = ("model.weights", "training.unfreeze", "training.class_weight")


class ConfigError(ValueError):
    """A run configuration is invalid (unknown key, wrong type, bad value)."""


def fail(message):
    """Raises a `ConfigError` with `message`."""
    raise ConfigError(message)


def _check(check, *args, **kwargs):
    """Runs a `_validation` check; its TypeError becomes a ConfigError too."""
    try:
        return check(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def check_bool(name, value):
    """A `ConfigError` unless `value` is true or false."""
    if not isinstance(value, bool):
        fail(f"`{name}` must be true or false. Received: {name}={value!r}.")
    return value


def check_str(name, value, allow_empty=False):
    """A `ConfigError` unless `value` is a (non-empty) string."""
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        fail(f"`{name}` must be a non-empty string. Received: {name}={value!r}.")
    return value


def _int(low):
    return lambda name, v: _check(check_number, name, v, low=low, integer=True)


def _positive(name, value):
    _check(check_number, name, value, low=0, low_inclusive=False)


def _nonneg(name, value):
    _check(check_number, name, value, low=0)


def _fraction(name, value):
    _check(check_fraction, name, value)


def _val_split(name, value):
    if value != "auto":
        _check(check_fraction, name, value, hint='Or "auto".')


def _validate(section, obj, rules):
    """Applies `rules[field](name, value)` to every field that is set."""
    for field, rule in rules.items():
        value = getattr(obj, field)
        if value is not None:
            rule(f"{section}.{field}", value)


def _image_size(name, size):
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        return
    ok = (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    )
    if not ok:
        fail(
            f"`{name}` must be [height, width] (positive ints), or left out for "
            f"the backbone's default size. Received: {name}={size!r}."
        )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """`[data]`: `kft.data.load_images` / `kft.data.load_texts` arguments.

    Every field but `source` defaults to `None`, the loader's default; see
    the loaders for each one's meaning. Fields only one loader takes are
    errors for the other task.

    Attributes:
        source: an image folder, a text/CSV/TSV file or folder, or
            `"tfds:<name>"`. `${VAR}` is expanded. Required.
        image_size: `[height, width]` (image only). Defaults to `None`: the
            backbone's default size (registry backbones).
        batch_size, val_split, test_split, seed: the loaders' arguments.
        strict: the loaders' `strict` (an unreadable example is an error);
            the run also makes leakage between splits an error with it, as
            `kerastune-ft train --strict` does.
        label_first, text_column, label_column, delimiter, encoding, errors:
            `kft.data.load_texts` arguments (text only), e.g. the columns of
            a CSV file.
        max_per_class: the run's own: keep at most this many examples per
            class in each split (a quick run on a subset); `0` keeps all.
            Defaults to `None` (all).
    """

    source: str
    image_size: object = None
    batch_size: int = None
    val_split: float = None
    test_split: float = None
    seed: int = None
    strict: bool = None
    label_first: bool = None
    text_column: str = None
    label_column: str = None
    delimiter: str = None
    encoding: str = None
    errors: str = None
    max_per_class: int = None

    def __post_init__(self):
        check_str("data.source", self.source)
        _validate(
            "data",
            self,
            {
                "image_size": _image_size,
                "batch_size": _int(1),
                "val_split": _val_split,
                "test_split": _fraction,
                "seed": _int(0),
                "strict": check_bool,
                "label_first": check_bool,
                "text_column": check_str,
                "label_column": check_str,
                "delimiter": lambda n, v: check_str(n, v, allow_empty=True),
                "encoding": check_str,
                "errors": check_str,
                "max_per_class": _int(0),
            },
        )
        val_split = 0.2 if self.val_split == "auto" else self.val_split
        if (val_split or 0) + (self.test_split or 0) >= 1:
            fail(
                "`data.val_split + data.test_split` must be less than 1. Received: "
                f"data.val_split={self.val_split}, data.test_split={self.test_split}."
            )


def _freeze(name, freeze):
    if isinstance(freeze, bool) or not isinstance(freeze, (str, numbers.Real)):
        fail(
            f'`{name}` must be "all", "none", an int, a float fraction or '
            f"a layer name. Received: {name}={freeze!r}."
        )
    if isinstance(freeze, float) and not 0.0 <= freeze <= 1.0:
        fail(
            f"A float `{name}` is the fraction of the backbone to freeze "
            f"and must be in [0, 1]. Received: {name}={freeze!r}."
        )


def _table(example):
    def rule(name, value):
        if not isinstance(value, dict):
            fail(
                f"`{name}` must be a table, e.g. {example}. Received: {name}={value!r}."
            )

    return rule


def _sequence_length(name, value):
    if value != "auto":
        _check(
            check_number,
            name,
            value,
            low=8,
            integer=True,
            hint='Use "auto" to fit it to the training texts.',
        )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """`[model]`: `kft.build_image_classifier` / `build_text_classifier` arguments.

    Every field but `backbone` defaults to `None`, the builder's default.

    Attributes:
        backbone: an image registry name (`kerastune-ft backbones`), a
            keras-hub preset folder, or a text alias/folder (`"minilm-l6"`).
            Required.
        weights: image only: `"imagenet"`, a weights file, or `"none"`
            (random initialization; TOML has no null).
        load_weights: text only: load the backbone's pretrained weights.
        freeze: `"all"`, `"none"`, an int, a float fraction or a layer/unit
            name.
        backbone_kwargs, preprocessing, augmentation, label_mode,
            from_logits, bn_trainable: image builder arguments (e.g.
            `backbone_kwargs = { alpha = 0.35 }`, `augmentation = "light"`).
        sequence_length: text only: `"auto"` or an int >= 8.
    """

    backbone: str
    weights: str = None
    load_weights: bool = None
    freeze: object = None
    backbone_kwargs: dict = None
    preprocessing: str = None
    augmentation: str = None
    label_mode: str = None
    from_logits: bool = None
    bn_trainable: bool = None
    sequence_length: object = None

    def __post_init__(self):
        check_str("model.backbone", self.backbone)
        _validate(
            "model",
            self,
            {
                "weights": check_str,
                "load_weights": check_bool,
                "freeze": _freeze,
                "backbone_kwargs": _table("{ alpha = 0.35 }"),
                "preprocessing": check_str,
                "augmentation": check_str,
                "label_mode": lambda n, v: _check(
                    check_choice, n, v, ("int", "categorical")
                ),
                "from_logits": check_bool,
                "bn_trainable": check_bool,
                "sequence_length": _sequence_length,
            },
        )


def _head_units(name, units):
    if not isinstance(units, (list, tuple)) or not all(
        isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in units
    ):
        fail(
            f"`{name}` must be a list of positive ints, e.g. [256]. "
            f"Received: {name}={units!r}."
        )


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """`[head]`: the builders' head arguments.

    Attributes:
        dropout, l1, l2, pooling: the builders' arguments (`pooling`:
            image `"avg"`, `"max"`, `"flatten"`; text `"auto"`, `"pooled"`,
            `"cls"`, `"mean"`).
        head_units: hidden ReLU Dense sizes, e.g. `[256]` (image only).
    """

    dropout: float = None
    l1: float = None
    l2: float = None
    head_units: list = None
    pooling: str = None

    def __post_init__(self):
        _validate(
            "head",
            self,
            {
                "dropout": _fraction,
                "l1": _nonneg,
                "l2": _nonneg,
                "head_units": _head_units,
                "pooling": check_str,
            },
        )


def _unfreeze(name, whole):
    specs = whole if isinstance(whole, list) else [whole]
    for spec in specs:
        _check_unfreeze_spec(spec, whole)


def _check_unfreeze_spec(spec, whole):
    def bad(detail=""):
        fail(
            '`training.unfreeze` must be "none", "all", a positive int, or a list '
            "of those or of tables { top = N, epochs = E, learning_rate = LR }. "
            f"Received: training.unfreeze={whole!r}.{detail}"
        )

    if isinstance(spec, dict):
        unknown = set(spec) - {"top", "epochs", "learning_rate"}
        if unknown or "top" not in spec:
            bad(f" Stage {spec!r} has unknown keys {sorted(unknown)} or no 'top'.")
        _check_unfreeze_spec(spec["top"], whole)
        if "epochs" in spec:
            _int(1)("training.unfreeze.epochs", spec["epochs"])
        if "learning_rate" in spec:
            _positive("training.unfreeze.learning_rate", spec["learning_rate"])
        return
    if isinstance(spec, str):
        if spec not in ("none", "all") or (spec == "none" and isinstance(whole, list)):
            bad()
        return
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        bad()


def _cache_features(name, value):
    if not (isinstance(value, bool) or value == "auto"):
        fail(f'`{name}` must be "auto", true or false. Received: {name}={value!r}.')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """`[training]`: `kft.fine_tune` arguments, each defaulting to its default.

    Left out, `epochs` is `fine_tune`'s automatic count and
    `fine_tune_learning_rate` is `learning_rate / 100`, exactly as in
    Python. `unfreeze = "none"` and `class_weight = "none"` mean `None`.
    The run's `seed` (top level) is `fine_tune`'s `seed`.

    Attributes:
        epochs, recipe, unfreeze, learning_rate, fine_tune_learning_rate,
            weight_decay, label_smoothing, class_weight, schedule, warmup,
            early_stopping, patience, monitor, reduce_lr_on_plateau,
            cache_features, augmented_views: `kft.fine_tune`'s arguments.
    """

    epochs: int = None
    recipe: str = None
    unfreeze: object = None
    learning_rate: float = None
    fine_tune_learning_rate: float = None
    weight_decay: float = None
    label_smoothing: float = None
    class_weight: str = None
    schedule: str = None
    warmup: float = None
    early_stopping: bool = None
    patience: int = None
    monitor: str = None
    reduce_lr_on_plateau: bool = None
    cache_features: object = None
    augmented_views: int = None

    def __post_init__(self):
        _validate(
            "training",
            self,
            {
                "epochs": _int(1),
                # The values are checked by fine_tune (kerastune_ft.training.
                # regime), which the config does not import (TensorFlow).
                "recipe": check_str,
                "unfreeze": _unfreeze,
                "learning_rate": _positive,
                "fine_tune_learning_rate": _positive,
                "weight_decay": _nonneg,
                "label_smoothing": _fraction,
                "class_weight": lambda n, v: _check(
                    check_choice, n, v, ("none", "balanced")
                ),
                "schedule": check_str,
                "warmup": _nonneg,
                "early_stopping": check_bool,
                "patience": _int(0),
                "monitor": check_str,
                "reduce_lr_on_plateau": check_bool,
                "cache_features": _cache_features,
                "augmented_views": _int(0),
            },
        )


def _splits(name, splits):
    if not isinstance(splits, (list, tuple)):
        fail(
            f'`{name}` must be a list such as ["val", "test"]. '
            f"Received: {name}={splits!r}."
        )
    for split in splits:
        _check(check_choice, name, split, ("train", "val", "test"))


def _sets(name, sets):
    if not isinstance(sets, dict):
        fail(
            f'`{name}` must be a table {{ name = "path" }}. Received: {name}={sets!r}.'
        )
    for key, path in sets.items():
        check_str(f"{name}.{key}", path)


def _tta(name, tta):
    # The view names are checked by kft.evaluate (kerastune_ft.evaluation.tta),
    # which the config does not import: it would load TensorFlow.
    if isinstance(tta, list):
        for view in tta:
            check_str(name, view)
    else:
        _check(check_number, name, tta, low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """`[evaluation]`: what the trained model is evaluated on (`kft.evaluate`).

    Attributes:
        splits: the run's own: which of the run's splits to evaluate
            (`"val"`, `"test"`; missing ones are skipped). Defaults to
            `["val", "test"]`.
        sets: the run's own: extra labelled test sets, `{ name = "path" }`,
            loaded like `data.source` (another domain, to measure domain
            shift). Defaults to `{}`.
        top_losses: `kft.evaluate`'s: how many worst-predicted examples the
            report lists. Defaults to `None` (its default).
        tta: `kft.evaluate`'s: test-time augmentation for image models, a
            number of views (`4`) or a list of view names (`["identity",
            "flip"]`). Defaults to `None` (off).
    """

    splits: list = dataclasses.field(default_factory=lambda: ["val", "test"])
    sets: dict = dataclasses.field(default_factory=dict)
    top_losses: int = None
    tta: object = None

    def __post_init__(self):
        _splits("evaluation.splits", self.splits)
        _sets("evaluation.sets", self.sets)
        _validate("evaluation", self, {"top_losses": _int(0), "tta": _tta})


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """`[output]`: the run directory and what goes in it (the run's own).

    Attributes:
        dir: the run directory. Defaults to `"runs/<name>"`.
        plots: write PNG plots. Defaults to `true`.
        report: write the HTML report. Defaults to `true`.
    """

    dir: str = ""
    plots: bool = True
    report: bool = True

    def __post_init__(self):
        check_str("output.dir", self.dir, allow_empty=True)
        check_bool("output.plots", self.plots)
        check_bool("output.report", self.report)
