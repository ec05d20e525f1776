"""The search space: which hyperparameters exist, their defaults and checks.

A space maps a hyperparameter name to a range `(low, high)` or
`(low, high, "log")`, a list of choices, a fixed scalar, `None` (not
searched: the builder's or `fine_tune`'s default) or `"auto"` (derived from
the backbone: freeze/unfreeze depths as unit counts, or the augmentation
strengths of image builders).
"""

import inspect
import numbers

from kerastune_ft._validation import check_choice

__all__ = ["DEFAULT_SPACE", "define", "check_space"]

# Which side of the recipe each hyperparameter belongs to.
BUILDER_PARAMS = ("dropout", "l1", "l2", "freeze", "augmentation")
FINE_TUNE_PARAMS = (
    "learning_rate",
    "fine_tune_learning_rate",
    "unfreeze",
    "label_smoothing",
)
DATA_PARAMS = ("batch_size",)

# Defaults for fine-tuning on small datasets.
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
AUTO_FREEZE_FRACTIONS = (1.0, 0.9, 0.75)
AUTO_UNFREEZE_FRACTIONS = (0.0, 0.1, 0.25)
AUTO_AUGMENTATION = ("none", "light", "standard")


def accepts(fn, name):
    """Whether `fn` takes keyword argument `name` (or `**kwargs`)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if name in params:
        return params[name].kind is not inspect.Parameter.POSITIONAL_ONLY
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def declares(fn, name):
    """Whether `fn` names `name` among its parameters (not via `**kwargs`)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _check_range(name, spec):
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


def check_space(space):
    """Checks a user's `space` and returns a copy (`{}` for `None`).

    Args:
        space: a dict of hyperparameter name -> range, choices or value.

    Returns:
        A new dict.

    Example:

    >>> from kerastune_ft.tuning.space import check_space
    >>> check_space({"dropout": (0.0, 0.5)})
    {'dropout': (0.0, 0.5)}
    """
    if space is None:
        return {}
    if not isinstance(space, dict):
        raise TypeError(
            "`space` must be a dict of hyperparameter name -> range, e.g. "
            '{"dropout": (0.0, 0.5), "l2": 0.0}. '
            f"Received: space={space!r}."
        )
    known = BUILDER_PARAMS + FINE_TUNE_PARAMS + DATA_PARAMS
    for name, spec in space.items():
        if name not in known:
            check_choice(
                "space key",
                name,
                known,
                hint="Fix other builder arguments by passing them to the builder.",
            )
        if isinstance(spec, tuple):
            _check_range(name, spec)
        elif isinstance(spec, list) and not spec:
            raise ValueError(
                f"A list in `space` is a set of choices and cannot be empty. "
                f"Received: space[{name!r}]=[]."
            )
    return dict(space)


def define(hp, name, spec):
    """Declares `name` on `hp` from a space entry and returns its value.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        name: the hyperparameter's name.
        spec: a range tuple, a list of choices or a fixed value.

    Returns:
        The value `hp` holds for `name` in this trial.

    Example:

    >>> import keras_tuner
    >>> from kerastune_ft.tuning.space import define
    >>> hp = keras_tuner.HyperParameters()
    >>> define(hp, "l2", [0.0, 1e-3]), define(hp, "dropout", 0.2)
    (0.0, 0.2)
    """
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


def unit_counts(fractions, num_units):
    """Distinct unit counts for `fractions` of `num_units`, largest first."""
    return sorted({int(round(f * num_units)) for f in fractions}, reverse=True)
