"""The typed run configuration read by `kerastune-ft train`.

A run is described by a TOML file with a top-level `task` (`"image"` or
`"text"`) and one table per concern:

```toml
task = "image"
name = "flowers"

[data]          # where the examples come from and how they are split
source = "${KFT_SHARED}/datasets/flowers"
image_size = [160, 160]

[model]         # backbone, weights, frozen layers
backbone = "mobilenet_v2"
backbone_kwargs = { alpha = 0.35 }

[head]          # classification head and its regularization
dropout = 0.2

[augmentation]  # image augmentation preset
preset = "light"

[training]      # kft.fine_tune settings
epochs = 10
unfreeze = 20

[evaluation]    # extra test sets (other domains)
sets = { other = "path/to/other.txt" }

[output]        # the run directory
dir = "runs/flowers"
```

`load_config` validates everything before any model is built: an unknown
key, a wrong type or a bad value is a `ConfigError` naming the key path, the
value received and what is allowed. Keys left out take the defaults of the
task (the builders' own defaults). `${NAME}` in paths is replaced by the
environment variable `NAME`; `KFT_SHARED` defaults to `../shared`.
"""

import dataclasses
import difflib
import json
import math
import numbers
import os
import pathlib
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from kerastune_ft._validation import check_choice, check_fraction, check_number

TASKS = ("image", "text")
ENV_SHARED = "KFT_SHARED"
DEFAULT_SHARED = "../shared"
IMAGE_AUGMENTATIONS = ("none", "light", "standard", "strong")
IMAGE_POOLINGS = ("avg", "max", "flatten")
TEXT_POOLINGS = ("auto", "pooled", "cls", "mean")
IMAGE_PREPROCESSING = ("auto", "tf", "torch", "caffe", "none")
SCHEDULES = ("cosine", "linear", "constant")
WEIGHTS_WORDS = ("pretrained", "imagenet", "none")

# Defaults that differ by task: the builders' own defaults, and a text
# learning rate fit for training transformer blocks (the image one trains a
# head on a frozen backbone).
TASK_DEFAULTS = {
    "image": {
        "model": {"freeze": "all"},
        "head": {"dropout": 0.2, "l2": 1e-4, "pooling": "avg"},
        "training": {"learning_rate": 1e-3, "weight_decay": 1e-4},
    },
    "text": {
        "model": {"freeze": "embeddings"},
        "head": {"dropout": 0.1, "l2": 0.0, "pooling": "auto"},
        "training": {"learning_rate": 5e-5, "weight_decay": 0.01},
    },
}


class ConfigError(ValueError):
    """A run configuration is invalid (unknown key, wrong type, bad value)."""


def _fail(message):
    raise ConfigError(message)


def _check(check, *args, **kwargs):
    """Runs a `_validation` check; its TypeError becomes a ConfigError too."""
    try:
        return check(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _check_bool(name, value):
    if not isinstance(value, bool):
        _fail(f"`{name}` must be true or false. Received: {name}={value!r}.")
    return value


def _check_str(name, value, allow_empty=False):
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        _fail(f"`{name}` must be a non-empty string. Received: {name}={value!r}.")
    return value


def shared_dir():
    """The real-assets folder: `$KFT_SHARED`, default `../shared`.

    Returns:
        The folder as a string (it may not exist).

    Example:

    >>> import kerastune_ft.config as config
    >>> isinstance(config.shared_dir(), str)
    True
    """
    return os.environ.get(ENV_SHARED) or DEFAULT_SHARED


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_path(value, name="path"):
    """Replaces `${VAR}` by environment variables and `~` by the home folder.

    `${KFT_SHARED}` defaults to `../shared` when the variable is unset; any
    other unset variable is an error.

    Args:
        value: a path string, e.g. `"${KFT_SHARED}/datasets/flowers"`.
        name: the config key, for messages. Defaults to `"path"`.

    Returns:
        The expanded path, made absolute (relative paths start from the
        current directory); `tfds:`, `hf://` and `kaggle://` sources are
        returned as they are.

    Example:

    >>> import os, kerastune_ft.config as config
    >>> _ = os.environ.setdefault("KFT_EXAMPLE_ROOT", "/data")
    >>> config.expand_path("${KFT_EXAMPLE_ROOT}/flowers")
    '/data/flowers'
    >>> config.expand_path("tfds:tf_flowers")
    'tfds:tf_flowers'
    """

    def replace(match):
        var = match.group(1)
        if var == ENV_SHARED:
            return shared_dir()
        if var not in os.environ:
            _fail(
                f"`{name}` uses the environment variable ${{{var}}}, which is not "
                f"set. Received: {name}={value!r}. Set it, or write the path out."
            )
        return os.environ[var]

    if value.startswith(("tfds:", "hf://", "kaggle://")):
        return value
    return os.path.abspath(os.path.expanduser(_VARIABLE.sub(replace, value)))


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """`[data]`: where the examples come from and how they are split.

    Attributes:
        source: an image folder (`root/<class>/*` or
            `root/{train,val,test}/<class>/*`), a text file
            (`text<TAB>label` lines), CSV/TSV file or text folder, or
            `"tfds:<name>"`. `${VAR}` is expanded. Required.
        val_split: validation fraction carved out of train when the source
            has no `val/` split. Defaults to `0.2`.
        test_split: test fraction carved out of train. Defaults to `0.0`.
        batch_size: examples per batch. Defaults to `32`.
        seed: split and shuffle seed. Defaults to `0`.
        image_size: `[height, width]`, or `"auto"` for the backbone's default
            size (image task only). Defaults to `"auto"`.
        max_per_class: keep at most this many examples per class in each
            split (a quick run on a subset); `0` keeps all. Defaults to `0`.
        label_first: text files hold `label<TAB>text` lines (text task only).
            Defaults to `False`.
        strict: an example found in two splits (leakage) stops the run
            before training; otherwise it is reported as a warning, in
            `metrics.json` and in the report. `kerastune-ft train --strict`
            sets it too. Defaults to `False`.
    """

    source: str
    val_split: float = 0.2
    test_split: float = 0.0
    batch_size: int = 32
    seed: int = 0
    image_size: object = "auto"
    max_per_class: int = 0
    label_first: bool = False
    strict: bool = False

    def __post_init__(self):
        _check_str("data.source", self.source)
        _check(check_fraction, "data.val_split", self.val_split)
        _check(check_fraction, "data.test_split", self.test_split)
        if self.val_split + self.test_split >= 1:
            _fail(
                "`data.val_split + data.test_split` must be less than 1. Received: "
                f"data.val_split={self.val_split}, data.test_split={self.test_split}."
            )
        _check(check_number, "data.batch_size", self.batch_size, low=1, integer=True)
        _check(check_number, "data.seed", self.seed, low=0, integer=True)
        _check(
            check_number, "data.max_per_class", self.max_per_class, low=0, integer=True
        )
        _check_bool("data.label_first", self.label_first)
        _check_bool("data.strict", self.strict)
        size = self.image_size
        if size != "auto":
            ok = (
                isinstance(size, (list, tuple))
                and len(size) == 2
                and all(
                    isinstance(s, int) and not isinstance(s, bool) and s >= 1
                    for s in size
                )
            )
            if not ok:
                _fail(
                    "`data.image_size` must be [height, width] (positive ints) or "
                    f'"auto". Received: data.image_size={size!r}.'
                )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """`[model]`: the backbone, its weights and how much of it is frozen.

    Attributes:
        backbone: an image registry name (`kerastune-ft backbones`), a
            keras-hub preset folder, or a text alias/folder (`"minilm-l6"`).
            Required.
        weights: `"pretrained"` (ImageNet for image registry backbones, the
            preset's weights otherwise), `"imagenet"` (the same), `"none"`
            (random initialization), or a weights file path (image only).
            Defaults to `"pretrained"`.
        freeze: the builders' `freeze` (`"all"`, `"none"`, an int, a float
            fraction or a layer/unit name). Defaults to `"all"` for images,
            `"embeddings"` for text.
        backbone_kwargs: extra backbone constructor arguments, e.g.
            `{ alpha = 0.35 }` (image only). Defaults to `{}`.
        preprocessing: `"auto"`, `"tf"`, `"torch"`, `"caffe"` or `"none"`
            (image only). Defaults to `"auto"`.
        sequence_length: `"auto"` or an int >= 8 (text only). Defaults to
            `"auto"`.
    """

    backbone: str
    weights: str = "pretrained"
    freeze: object = "all"
    backbone_kwargs: dict = dataclasses.field(default_factory=dict)
    preprocessing: str = "auto"
    sequence_length: object = "auto"

    def __post_init__(self):
        _check_str("model.backbone", self.backbone)
        _check_str("model.weights", self.weights)
        freeze = self.freeze
        if isinstance(freeze, bool) or not isinstance(freeze, (str, numbers.Real)):
            _fail(
                '`model.freeze` must be "all", "none", an int, a float fraction or '
                f"a layer name. Received: model.freeze={freeze!r}."
            )
        if isinstance(freeze, float) and not 0.0 <= freeze <= 1.0:
            _fail(
                "A float `model.freeze` is the fraction of the backbone to freeze "
                f"and must be in [0, 1]. Received: model.freeze={freeze!r}."
            )
        if not isinstance(self.backbone_kwargs, dict):
            _fail(
                "`model.backbone_kwargs` must be a table, e.g. { alpha = 0.35 }. "
                f"Received: model.backbone_kwargs={self.backbone_kwargs!r}."
            )
        _check(
            check_choice, "model.preprocessing", self.preprocessing, IMAGE_PREPROCESSING
        )
        if self.sequence_length != "auto":
            _check(
                check_number,
                "model.sequence_length",
                self.sequence_length,
                low=8,
                integer=True,
                hint='Use "auto" to fit it to the training texts.',
            )


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """`[head]`: the classification head and its regularization.

    Attributes:
        dropout: dropout rate in [0, 1). Defaults to `0.2` (image) or `0.1`
            (text).
        l1: L1 penalty on the head kernels. Defaults to `0.0`.
        l2: L2 penalty on the head kernels. Defaults to `1e-4` (image) or
            `0.0` (text).
        units: hidden ReLU Dense sizes (image only). Defaults to `[]`.
        pooling: image `"avg"`, `"max"`, `"flatten"`; text `"auto"`,
            `"pooled"`, `"cls"`, `"mean"`. Defaults to `"avg"` / `"auto"`.
    """

    dropout: float = 0.2
    l1: float = 0.0
    l2: float = 1e-4
    units: list = dataclasses.field(default_factory=list)
    pooling: str = "avg"

    def __post_init__(self):
        _check(check_fraction, "head.dropout", self.dropout)
        _check(check_number, "head.l1", self.l1, low=0)
        _check(check_number, "head.l2", self.l2, low=0)
        if not isinstance(self.units, (list, tuple)) or not all(
            isinstance(u, int) and not isinstance(u, bool) and u >= 1
            for u in self.units
        ):
            _fail(
                "`head.units` must be a list of positive ints, e.g. [256]. "
                f"Received: head.units={self.units!r}."
            )
        _check(
            check_choice,
            "head.pooling",
            self.pooling,
            IMAGE_POOLINGS + tuple(p for p in TEXT_POOLINGS if p not in IMAGE_POOLINGS),
        )


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """`[augmentation]`: in-model image augmentation.

    Attributes:
        preset: `"none"`, `"light"`, `"standard"` or `"strong"` (image only;
            for text, augment ahead of time with `kft.augment_dataset`).
            Defaults to `"none"`.
        seed: seed of the augmentation layers. Defaults to `0`.
    """

    preset: str = "none"
    seed: int = 0

    def __post_init__(self):
        _check(check_choice, "augmentation.preset", self.preset, IMAGE_AUGMENTATIONS)
        _check(check_number, "augmentation.seed", self.seed, low=0, integer=True)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """`[training]`: the `kft.fine_tune` settings.

    Attributes:
        epochs: maximum epochs per stage. Defaults to `10`.
        unfreeze: `"none"` (head only), `"all"`, an int N (unfreeze the top
            N units in a second stage), or a list of those or of tables
            `{ top = N, epochs = E, learning_rate = LR }`. Defaults to
            `"none"`.
        learning_rate: peak learning rate of stage 1. Defaults to `1e-3`
            (image) or `5e-5` (text).
        fine_tune_learning_rate: peak learning rate of unfreezing stages.
            Defaults to `1e-5`.
        weight_decay: AdamW weight decay. Defaults to `1e-4` (image) or
            `0.01` (text).
        label_smoothing: in [0, 1). Defaults to `0.0`.
        class_weight: `"none"` or `"balanced"`. Defaults to `"none"`.
        schedule: `"cosine"`, `"linear"` or `"constant"`. Defaults to
            `"cosine"`.
        warmup: warmup fraction (< 1) or steps. Defaults to `0.1`.
        early_stopping: stop and restore the best epoch. Defaults to `true`.
        patience: early-stopping patience. Defaults to `5`.
        monitor: the metric choosing the best epoch. Defaults to
            `"val_loss"`.
        cache_features: `"auto"`, `true` or `false`. Defaults to `"auto"`.
        seed: seeds Python, NumPy and TensorFlow. Defaults to `0`.
    """

    epochs: int = 10
    unfreeze: object = "none"
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-5
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    class_weight: str = "none"
    schedule: str = "cosine"
    warmup: float = 0.1
    early_stopping: bool = True
    patience: int = 5
    monitor: str = "val_loss"
    cache_features: object = "auto"
    seed: int = 0

    def __post_init__(self):
        _check(check_number, "training.epochs", self.epochs, low=1, integer=True)
        specs = self.unfreeze if isinstance(self.unfreeze, list) else [self.unfreeze]
        for spec in specs:
            _check_unfreeze_spec(spec, whole=self.unfreeze)
        for key in ("learning_rate", "fine_tune_learning_rate"):
            _check(
                check_number,
                f"training.{key}",
                getattr(self, key),
                low=0,
                low_inclusive=False,
            )
        _check(check_number, "training.weight_decay", self.weight_decay, low=0)
        _check(check_fraction, "training.label_smoothing", self.label_smoothing)
        _check(
            check_choice,
            "training.class_weight",
            self.class_weight,
            ("none", "balanced"),
        )
        _check(check_choice, "training.schedule", self.schedule, SCHEDULES)
        _check(check_number, "training.warmup", self.warmup, low=0)
        _check_bool("training.early_stopping", self.early_stopping)
        _check(check_number, "training.patience", self.patience, low=0, integer=True)
        _check_str("training.monitor", self.monitor)
        if not (isinstance(self.cache_features, bool) or self.cache_features == "auto"):
            _fail(
                '`training.cache_features` must be "auto", true or false. '
                f"Received: training.cache_features={self.cache_features!r}."
            )
        _check(check_number, "training.seed", self.seed, low=0, integer=True)

    def unfreeze_argument(self):
        """The value for `kft.fine_tune(unfreeze=...)`."""
        if self.unfreeze == "none":
            return None
        return self.unfreeze


def _check_unfreeze_spec(spec, whole):
    def bad(detail=""):
        _fail(
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
            _check(
                check_number,
                "training.unfreeze.epochs",
                spec["epochs"],
                low=1,
                integer=True,
            )
        if "learning_rate" in spec:
            _check(
                check_number,
                "training.unfreeze.learning_rate",
                spec["learning_rate"],
                low=0,
                low_inclusive=False,
            )
        return
    if isinstance(spec, str):
        if spec not in ("none", "all") or (spec == "none" and isinstance(whole, list)):
            bad()
        return
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        bad()


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """`[evaluation]`: what the trained model is evaluated on.

    Attributes:
        splits: which of the run's own splits to evaluate (`"val"`,
            `"test"`; missing ones are skipped). Defaults to
            `["val", "test"]`.
        sets: extra labelled test sets, `{ name = "path" }`, loaded like
            `data.source` (e.g. another domain, to measure domain shift).
            Defaults to `{}`.
        top_losses: how many worst-predicted examples the report lists.
            Defaults to `8`.
    """

    splits: list = dataclasses.field(default_factory=lambda: ["val", "test"])
    sets: dict = dataclasses.field(default_factory=dict)
    top_losses: int = 8

    def __post_init__(self):
        if not isinstance(self.splits, (list, tuple)):
            _fail(
                '`evaluation.splits` must be a list such as ["val", "test"]. '
                f"Received: evaluation.splits={self.splits!r}."
            )
        for split in self.splits:
            _check(
                check_choice,
                "evaluation.splits",
                split,
                ("train", "val", "test"),
            )
        if not isinstance(self.sets, dict):
            _fail(
                '`evaluation.sets` must be a table { name = "path" }. '
                f"Received: evaluation.sets={self.sets!r}."
            )
        for name, path in self.sets.items():
            _check_str(f"evaluation.sets.{name}", path)
        _check(
            check_number, "evaluation.top_losses", self.top_losses, low=0, integer=True
        )


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """`[output]`: the run directory and what goes in it.

    Attributes:
        dir: the run directory. Defaults to `"runs/<name>"`.
        plots: write PNG plots. Defaults to `true`.
        report: write the HTML report. Defaults to `true`.
    """

    dir: str = ""
    plots: bool = True
    report: bool = True

    def __post_init__(self):
        _check_str("output.dir", self.dir, allow_empty=True)
        _check_bool("output.plots", self.plots)
        _check_bool("output.report", self.report)


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "head": HeadConfig,
    "augmentation": AugmentationConfig,
    "training": TrainingConfig,
    "evaluation": EvaluationConfig,
    "output": OutputConfig,
}
_TOP_LEVEL = ("task", "name")
# Keys that only one task understands; set for the other task they are errors.
_ONLY_FOR = {
    "image": {
        "data.image_size",
        "model.backbone_kwargs",
        "model.preprocessing",
        "head.units",
        "augmentation.preset",
    },
    "text": {"data.label_first", "model.sequence_length"},
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run: the task, its name and one object per section.

    Build it with `load_config` (a file) or `config_from_dict`; both fill
    the task's defaults and validate every key.

    Attributes:
        task: `"image"` or `"text"`.
        name: the run name (used for the default output directory and the
            report title).
        data: a `DataConfig`.
        model: a `ModelConfig`.
        head: a `HeadConfig`.
        augmentation: an `AugmentationConfig`.
        training: a `TrainingConfig`.
        evaluation: an `EvaluationConfig`.
        output: an `OutputConfig`.
    """

    task: str
    name: str
    data: DataConfig
    model: ModelConfig
    head: HeadConfig
    augmentation: AugmentationConfig
    training: TrainingConfig
    evaluation: EvaluationConfig
    output: OutputConfig

    def __post_init__(self):
        _check(check_choice, "task", self.task, TASKS)
        _check_str("name", self.name)
        pooling = IMAGE_POOLINGS if self.task == "image" else TEXT_POOLINGS
        _check(
            check_choice,
            "head.pooling",
            self.head.pooling,
            pooling,
            hint=f"(for task={self.task!r})",
        )
        weights = self.model.weights
        if weights not in WEIGHTS_WORDS and self.task == "text":
            _check(
                check_choice,
                "model.weights",
                weights,
                WEIGHTS_WORDS,
                hint="Text backbones bring their weights: use a backbone folder.",
            )

    def to_dict(self):
        """The full configuration as plain TOML/JSON-friendly values.

        Keys that only the other task understands are left out, so the result
        reads back with `config_from_dict`.
        """
        other = _ONLY_FOR["text" if self.task == "image" else "image"]
        result = {"task": self.task, "name": self.name}
        for section in _SECTIONS:
            values = dataclasses.asdict(getattr(self, section))
            result[section] = {
                k: v for k, v in values.items() if f"{section}.{k}" not in other
            }
        return result

    def to_toml(self):
        """The full configuration as TOML text that `load_config` reads back."""
        return dump_toml(self.to_dict())

    def replace(self, **changes):
        """A copy with top-level fields or whole sections replaced."""
        return dataclasses.replace(self, **changes)


def _suggest(key, allowed):
    close = difflib.get_close_matches(key, list(allowed), n=2)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def config_from_dict(raw, *, source="the config"):
    """Validates a nested dict (as parsed from TOML) into a `RunConfig`.

    Args:
        raw: `{"task": ..., "data": {...}, ...}`.
        source: where it came from, for messages. Defaults to `"the config"`.

    Returns:
        A `RunConfig` with the task's defaults filled in and paths expanded.

    Raises:
        ConfigError: naming the key path, the value received and what is
            allowed.

    Example:

    >>> import kerastune_ft.config as config
    >>> run = config.config_from_dict({
    ...     "task": "text",
    ...     "data": {"source": "data/reviews/products.txt"},
    ...     "model": {"backbone": "minilm-l6"},
    ... })
    >>> run.model.freeze, run.training.learning_rate
    ('embeddings', 5e-05)
    """
    try:
        return _from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _from_dict(raw):
    if not isinstance(raw, dict):
        _fail(f"a run config must be a table of sections. Received: {raw!r}.")
    allowed_top = _TOP_LEVEL + tuple(_SECTIONS)
    for key in raw:
        if key not in allowed_top:
            _fail(
                f"unknown key `{key}`. Allowed top-level keys: "
                f"{', '.join(allowed_top)}.{_suggest(key, allowed_top)}"
            )
    if "task" not in raw:
        _fail('missing key `task`: set task = "image" or task = "text".')
    task = _check(check_choice, "task", raw["task"], TASKS)
    for section in ("data", "model"):
        if section not in raw:
            _fail(f"missing section [{section}].")
    sections = {}
    for section, cls in _SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, dict):
            _fail(
                f"`{section}` must be a table ([{section}]). "
                f"Received: {section}={values!r}."
            )
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in fields:
                _fail(
                    f"unknown key `{section}.{key}` (value {values[key]!r}). Allowed "
                    f"keys in [{section}]: {', '.join(fields)}.{_suggest(key, fields)}"
                )
            other = "text" if task == "image" else "image"
            if f"{section}.{key}" in _ONLY_FOR[other]:
                _fail(
                    f"`{section}.{key}` applies to task={other!r} only, and this "
                    f"config has task={task!r}. Remove it."
                )
        merged = {**TASK_DEFAULTS[task].get(section, {}), **values}
        for field in dataclasses.fields(cls):
            # Sections left out and required keys get clear messages.
            required = field.default is dataclasses.MISSING and (
                field.default_factory is dataclasses.MISSING
            )
            if required and field.name not in merged:
                _fail(f"missing key `{section}.{field.name}`.")
        if section == "data":
            merged["source"] = expand_path(
                _check_str("data.source", merged["source"]), "data.source"
            )
        if section == "model" and task == "image":
            weights = merged.get("weights", "pretrained")
            if isinstance(weights, str) and weights not in WEIGHTS_WORDS:
                merged["weights"] = expand_path(weights, "model.weights")
        if section == "evaluation" and isinstance(merged.get("sets"), dict):
            merged["sets"] = {
                name: expand_path(
                    _check_str(f"evaluation.sets.{name}", path),
                    f"evaluation.sets.{name}",
                )
                for name, path in merged["sets"].items()
            }
        sections[section] = cls(**merged)
    name = raw.get("name", "run")
    _check_str("name", name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        _fail(
            "`name` may hold only letters, digits, '_', '-' and '.' (it names the "
            f"run directory). Received: name={name!r}."
        )
    if not sections["output"].dir:
        sections["output"] = dataclasses.replace(
            sections["output"], dir=os.path.join("runs", name)
        )
    return RunConfig(task=task, name=name, **sections)


def parse_override(text):
    """Parses one `--set key.path=value` into `(["key", "path"], value)`.

    The value is read as a TOML literal (`3`, `1e-4`, `true`, `[160, 160]`,
    `"text"`, `{ alpha = 0.35 }`); anything that is not valid TOML is taken
    as a plain string, so `--set model.backbone=mobilenet_v2` needs no quotes.

    Args:
        text: `"key.path=value"`.

    Returns:
        `(list of keys, value)`.

    Example:

    >>> import kerastune_ft.config as config
    >>> config.parse_override("training.epochs=3")
    (['training', 'epochs'], 3)
    >>> config.parse_override("model.backbone=mobilenet_v2")
    (['model', 'backbone'], 'mobilenet_v2')
    """
    if not isinstance(text, str) or "=" not in text:
        _fail(
            "`--set` takes key.path=value, e.g. --set training.epochs=3. "
            f"Received: {text!r}."
        )
    key, value = text.split("=", 1)
    keys = key.strip().split(".")
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys):
        _fail(
            "`--set` key must be a dotted path such as training.epochs. "
            f"Received: {key!r}."
        )
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return keys, parsed


def apply_overrides(raw, overrides):
    """Returns a copy of `raw` with `--set` overrides applied.

    Args:
        raw: the parsed TOML dict.
        overrides: strings `"key.path=value"`.

    Returns:
        A new nested dict.
    """
    result = json.loads(json.dumps(raw))  # a deep copy of plain data
    for text in overrides:
        keys, value = parse_override(text)
        target = result
        for depth, key in enumerate(keys[:-1]):
            node = target.setdefault(key, {})
            if not isinstance(node, dict):
                _fail(
                    f"`--set {text}`: `{'.'.join(keys[: depth + 1])}` is a value, "
                    "not a table."
                )
            target = node
        target[keys[-1]] = value
    return result


def load_config(path, overrides=()):
    """Reads, overrides and validates a run config file.

    Args:
        path: a `.toml` file (a `.json` file with the same structure also
            works, e.g. a run directory's resolved `config.json`).
        overrides: `"key.path=value"` strings applied on top, as with
            `kerastune-ft train --set`. Defaults to `()`.

    Returns:
        A validated `RunConfig`.

    Raises:
        ConfigError: the file is missing or malformed, or a key or value is
            invalid (the message names the key path and what is allowed).

    Example:

    >>> import kerastune_ft.config as config
    >>> run = config.load_config(
    ...     "data/configs/text_uci.toml", ["training.epochs=2"])  # doctest: +SKIP
    >>> run.training.epochs  # doctest: +SKIP
    2
    """
    path = pathlib.Path(path)
    if not path.is_file():
        _fail(f"config file not found: {str(path)!r}.")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        _fail(f"{path}: not valid {path.suffix[1:].upper() or 'TOML'}: {e}")
    raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, source=str(path))


# ---------------------------------------------------------------------------
# A small TOML writer for the resolved config (tomllib only reads)
# ---------------------------------------------------------------------------


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ("-" if value < 0 else "") + ("nan" if value != value else "inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()
        )
        return "{ " + items + " }" if items else "{}"
    if value is None:
        raise ConfigError("TOML has no null value; every config key has a value.")
    raise ConfigError(f"cannot write {value!r} of type {type(value).__name__} as TOML")


def _toml_key(key):
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump_toml(data):
    """Writes a two-level dict (top-level scalars, then tables) as TOML text.

    Args:
        data: a dict whose dict values become `[tables]`.

    Returns:
        TOML text that `tomllib.loads` reads back to `data`.

    Example:

    >>> import kerastune_ft.config as config
    >>> print(config.dump_toml({"task": "image", "data": {"batch_size": 8}}))
    task = "image"
    <BLANKLINE>
    [data]
    batch_size = 8
    <BLANKLINE>
    """
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{_toml_key(key)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"
