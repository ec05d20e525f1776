"""`RunConfig`: a whole run, and the keyword arguments it passes on."""

import dataclasses
import re

import tomli_w

from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.config.sections import (
    NONE_WORD,
    ONLY_FOR,
    RUN_FIELDS,
    TASKS,
    ConfigError,
    DataConfig,
    EvaluationConfig,
    HeadConfig,
    ModelConfig,
    OutputConfig,
    TrainingConfig,
    _check,
    check_str,
    fail,
)

__all__ = ["SECTIONS", "RunConfig", "dump_toml"]

SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "head": HeadConfig,
    "training": TrainingConfig,
    "evaluation": EvaluationConfig,
    "output": OutputConfig,
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run: the task, its name, its seed and one object per section.

    Build it with `kerastune_ft.config.load_config` (a file) or
    `config_from_dict`; both validate every key.

    Attributes:
        task: `"image"` or `"text"`.
        name: the run name (the default output directory, the report title).
        seed: seeds the whole run: Python, NumPy and TensorFlow before the
            data is loaded, the builder's `seed` and `kft.fine_tune`'s
            `seed`, so the same config gives the same `history.csv` on the
            same machine (CPU). Defaults to `0`.
        data: a `DataConfig`.
        model: a `ModelConfig`.
        head: a `HeadConfig`.
        training: a `TrainingConfig`.
        evaluation: an `EvaluationConfig`.
        output: an `OutputConfig`.

    Example:

    >>> from kerastune_ft.config import config_from_dict
    >>> run = config_from_dict({
    ...     "task": "text",
    ...     "data": {"source": "reviews.csv", "text_column": "review"},
    ...     "model": {"backbone": "minilm-l6"},
    ...     "training": {"unfreeze": "none"},
    ... })
    >>> sorted(run.kwargs("data"))
    ['source', 'text_column']
    >>> run.kwargs("training")
    {'unfreeze': None}
    """

    task: str
    name: str
    data: DataConfig
    model: ModelConfig
    head: HeadConfig = HeadConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output: OutputConfig = OutputConfig()
    seed: int = 0

    def __post_init__(self):
        _check(check_choice, "task", self.task, TASKS)
        check_str("name", self.name)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            fail(
                "`name` may hold only letters, digits, '_', '-' and '.' (it names "
                f"the run directory). Received: name={self.name!r}."
            )
        _check(check_number, "seed", self.seed, low=0, high=2**32 - 1, integer=True)
        for section, cls in SECTIONS.items():
            if not isinstance(getattr(self, section), cls):
                fail(f"`{section}` must be a {cls.__name__}.")
        other = "text" if self.task == "image" else "image"
        for section in SECTIONS:
            for key, value in dataclasses.asdict(getattr(self, section)).items():
                if value is not None and f"{section}.{key}" in ONLY_FOR[other]:
                    fail(
                        f"`{section}.{key}` applies to task={other!r} only, and "
                        f"this config has task={self.task!r}. Remove it."
                    )

    def kwargs(self, section):
        """The keyword arguments `section` passes to the function it feeds.

        Only the fields that are set, unchanged (the word `"none"` becomes
        `None` where TOML needs it); the run's own fields are left out.

        Args:
            section: `"data"`, `"model"`, `"head"`, `"training"` or
                `"evaluation"`.

        Returns:
            A dict of keyword arguments.
        """
        own = RUN_FIELDS.get(section, ())
        values = dataclasses.asdict(getattr(self, section))
        result = {}
        for key, value in values.items():
            if value is None or key in own:
                continue
            if f"{section}.{key}" in NONE_WORD and value == "none":
                value = None
            result[key] = value
        return result

    def to_dict(self):
        """The configuration as TOML/JSON values: the keys that are set.

        Returns:
            A nested dict that `config_from_dict` reads back to an equal
            `RunConfig`.
        """
        result = {"task": self.task, "name": self.name, "seed": self.seed}
        for section in SECTIONS:
            values = dataclasses.asdict(getattr(self, section))
            result[section] = {k: v for k, v in values.items() if v is not None}
        return result

    def to_toml(self):
        """The configuration as TOML text that `load_config` reads back."""
        return dump_toml(self.to_dict())

    def replace(self, **changes):
        """A copy with top-level fields or whole sections replaced."""
        return dataclasses.replace(self, **changes)


def dump_toml(data):
    """Writes a dict (top-level keys, then tables) as TOML text, with `tomli_w`.

    Args:
        data: a dict whose dict values become `[tables]`.

    Returns:
        TOML text that `tomllib.loads` reads back to `data`.

    Raises:
        ConfigError: a value TOML cannot hold (`None`, an object).

    Example:

    >>> from kerastune_ft.config import dump_toml
    >>> print(dump_toml({"task": "image", "data": {"batch_size": 8}}), end="")
    task = "image"
    <BLANKLINE>
    [data]
    batch_size = 8
    """
    try:
        return tomli_w.dumps(data)
    except TypeError as e:
        raise ConfigError(f"cannot write the config as TOML: {e}") from None
