"""Argument checks shared by every public function.

Errors follow Keras' style: name the argument, say what was expected, show
what was received, and, where it helps a learner, say what to do next.
"""

import difflib
import numbers


def check_choice(name, value, choices, hint=""):
    """Validates a string option against `choices`.

    Args:
        name: argument name, used in the message.
        value: the value received.
        choices: allowed values.
        hint: optional sentence appended to the message.

    Returns:
        `value`, unchanged.
    """
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        close = ""
        if isinstance(value, str):
            matches = difflib.get_close_matches(value, list(choices), n=3)
            if matches:
                close = f" Did you mean {' or '.join(repr(m) for m in matches)}?"
        raise ValueError(
            f"`{name}` must be one of {allowed}. Received: {name}={value!r}.{close}"
            + (f" {hint}" if hint else "")
        )
    return value


def check_number(
    name,
    value,
    *,
    low=None,
    high=None,
    low_inclusive=True,
    high_inclusive=True,
    integer=False,
    hint="",
):
    """Validates a number and its range; bools are rejected.

    Args:
        name: argument name, used in the message.
        value: the value received.
        low: lower bound, or `None` for none.
        high: upper bound, or `None` for none.
        low_inclusive: whether `low` itself is allowed. Defaults to `True`.
        high_inclusive: whether `high` itself is allowed. Defaults to `True`.
        integer: require an integer. Defaults to `False`.
        hint: optional sentence appended to the message.

    Returns:
        `value`, unchanged.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = "an integer" if integer else "a number"
        raise TypeError(
            f"`{name}` must be {expected}. Received: {name}={value!r} "
            f"of type {type(value).__name__}." + (f" {hint}" if hint else "")
        )
    too_low = low is not None and (value < low or (value == low and not low_inclusive))
    too_high = high is not None and (
        value > high or (value == high and not high_inclusive)
    )
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(
            f"`{name}` must be in {left}{lo}, {hi}{right}. Received: {name}={value!r}."
            + (f" {hint}" if hint else "")
        )
    return value


def check_fraction(name, value, hint=""):
    """Validates a fraction in [0, 1)."""
    return check_number(name, value, low=0.0, high=1.0, high_inclusive=False, hint=hint)
