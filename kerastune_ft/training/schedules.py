"""Learning-rate schedules of a stage: warmup, then cosine or linear decay."""

import keras

from kerastune_ft import _compat

__all__ = ["SCHEDULES", "WarmupLinear", "make_schedule", "peak_learning_rate"]

SCHEDULES = ("cosine", "linear", "constant")
"""The `schedule=` values `kft.fine_tune` (and the run configuration) accept."""


@keras.saving.register_keras_serializable(package="kerastune_ft")
class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak`, then linear decay to 0.

    Args:
        peak: the learning rate at the end of warmup.
        warmup_steps: steps of the warmup (`0`: start at `peak`).
        decay_steps: steps of the decay after warmup.

    Example:

    >>> from kerastune_ft.training.schedules import WarmupLinear
    >>> schedule = WarmupLinear(1e-3, warmup_steps=10, decay_steps=90)
    >>> [round(float(schedule(s)), 6) for s in (0, 10, 100)]
    [0.0, 0.001, 0.0]
    """

    def __init__(self, peak, warmup_steps, decay_steps):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * step / max(1, self.warmup_steps)
        progress = (step - self.warmup_steps) / max(1, self.decay_steps)
        decay = self.peak * keras.ops.maximum(0.0, 1.0 - progress)
        return keras.ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
        }


# Models saved before the training package named the class `_WarmupLinear`.
keras.saving.get_custom_objects()["kerastune_ft>_WarmupLinear"] = WarmupLinear


def make_schedule(kind, learning_rate, warmup, total_steps):
    """The learning rate of one stage: a float or a schedule.

    Args:
        kind: one of `SCHEDULES`.
        learning_rate: the peak learning rate.
        warmup: warmup as a fraction of `total_steps` (< 1) or a step count.
        total_steps: the stage's optimizer steps, or `None` when unknown
            (a constant learning rate then).

    Returns:
        `learning_rate` (constant) or a `LearningRateSchedule`.

    Example:

    >>> from kerastune_ft.training.schedules import make_schedule
    >>> schedule = make_schedule("cosine", 1e-3, 0.1, 100)
    >>> [round(float(schedule(s)), 6) for s in (0, 10, 100)]
    [0.0, 0.001, 0.0]
    """
    if kind == "constant" or total_steps is None:
        return learning_rate
    warmup_steps = int(round(warmup * total_steps)) if warmup < 1 else int(warmup)
    decay_steps = max(1, total_steps - warmup_steps)
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup_steps else learning_rate,
            decay_steps=decay_steps,
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    return WarmupLinear(learning_rate, warmup_steps, decay_steps)


def peak_learning_rate(optimizer, default):
    """The peak learning rate an optimizer was compiled with, else `default`.

    Args:
        optimizer: a Keras optimizer or `None`.
        default: returned when there is no readable learning rate.

    Returns:
        A float: a constant learning rate, or the peak of one of our
        schedules (from an earlier `fine_tune` call).

    Example:

    >>> import keras
    >>> from kerastune_ft.training.schedules import peak_learning_rate
    >>> round(peak_learning_rate(keras.optimizers.Adam(2e-3), 1e-3), 6)
    0.002
    """
    if optimizer is None:
        return default
    value = _compat.optimizer_learning_rate(optimizer)
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        config = value.get_config()
        for key in ("peak", "warmup_target", "initial_learning_rate"):
            if config.get(key):
                return float(config[key])
        return default
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return default
