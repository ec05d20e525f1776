"""The verdict rules of `kft.diagnose`, applied to clean loss curves.

The rules, in the order they are checked (thresholds are the module
constants below):

0. **diverged**: the training loss became NaN or inf (a `FineTuneResult`
   with `diverged=True`, or a NaN/inf training loss in the history; a
   missing epoch, `None`, does not count).
1. **overfitting**: `val_loss` reached its minimum at epoch B, at least
   `OVERFIT_MIN_EPOCHS` epochs followed, the last `val_loss` is at least
   `OVERFIT_MIN_RISE` (relative) above that minimum, and the training loss
   kept falling over the same epochs. Overfitting starts at epoch B + 1.
2. **underfitting** (training loss barely moved): after at least
   `UNDERFIT_MIN_EPOCHS` epochs, the training loss fell by less than
   `UNDERFIT_MIN_TRAIN_DROP` (relative) from its first value.
3. **still_improving**: the monitored metric at the last epoch beats its
   best value before the last `STILL_IMPROVING_WINDOW` epochs by at least
   `STILL_IMPROVING_MIN_GAIN` (relative), or only one usable epoch ran.
4. **underfitting** (low accuracy): training accuracy ended below
   `UNDERFIT_MAX_TRAIN_ACCURACY`.
5. **fits_well**: none of the above.

Epochs whose loss is NaN or missing are left out of the trends and reported.
"""

import dataclasses
import math

import numpy as np

__all__ = [
    "OVERFIT_MIN_EPOCHS",
    "OVERFIT_MIN_RISE",
    "STILL_IMPROVING_MIN_GAIN",
    "STILL_IMPROVING_WINDOW",
    "UNDERFIT_MAX_TRAIN_ACCURACY",
    "UNDERFIT_MIN_EPOCHS",
    "UNDERFIT_MIN_TRAIN_DROP",
    "VERDICTS",
    "Curves",
    "Overfitting",
    "Verdict",
    "decide",
    "find_overfitting",
]

VERDICTS = ("diverged", "overfitting", "underfitting", "still_improving", "fits_well")

# Overfitting: the last val_loss is >= 10% above its minimum ...
OVERFIT_MIN_RISE = 0.10
# ... with at least 2 epochs after the minimum (one noisy epoch is not a trend).
OVERFIT_MIN_EPOCHS = 2
# Underfitting: after >= 3 epochs the training loss fell < 10% from epoch 1 ...
UNDERFIT_MIN_EPOCHS = 3
UNDERFIT_MIN_TRAIN_DROP = 0.10
# ... or the training accuracy ended below 0.70.
UNDERFIT_MAX_TRAIN_ACCURACY = 0.70
# Still improving: the last epoch beats the best before the last 3 by >= 1%.
STILL_IMPROVING_WINDOW = 3
STILL_IMPROVING_MIN_GAIN = 0.01

# Substrings of metric names that are better when larger.
_MAX_MODES = ("acc", "auc", "precision", "recall", "f1")


def metric_mode(metric):
    """`"max"` for accuracy-like metric names, else `"min"`."""
    return "max" if any(k in metric for k in _MAX_MODES) else "min"


def clean_series(values, n):
    """Floats with None/NaN/inf as NaN, padded to `n` epochs."""
    out = []
    for v in list(values) + [None] * (n - len(values)):
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = math.nan
        out.append(v if math.isfinite(v) else math.nan)
    return np.asarray(out, dtype="float64")


def main_metric(history):
    """The accuracy-like metric to show next to the loss, or None."""
    names = [k for k in history if not k.startswith("val_") and k != "loss"]
    names = [k for k in names if not k.startswith("gap_") and k != "learning_rate"]
    for preferred in ("accuracy", "acc", "sparse_categorical_accuracy"):
        if preferred in names:
            return preferred
    for name in names:
        if "acc" in name:
            return name
    return None


def pct(x):
    """A relative change as a whole percentage, e.g. `0.234 -> "23%"`."""
    return f"{abs(x) * 100:.0f}%"


@dataclasses.dataclass(frozen=True)
class Overfitting:
    """Where the overfitting rule holds on two loss curves.

    Attributes:
        best: 1-based epoch of the `val_loss` minimum.
        last: 1-based last usable epoch.
        rise: relative rise of `val_loss` from `best` to `last`.
        train_fall: relative fall of the training loss over the same epochs.
        val_best, val_last, train_best, train_last: the four loss values.
    """

    best: int
    last: int
    rise: float
    train_fall: float
    val_best: float
    val_last: float
    train_best: float
    train_last: float


def find_overfitting(loss, val_loss, *, min_rise=None, min_epochs=None):
    """Applies the overfitting rule to two loss curves.

    Args:
        loss: training loss per epoch (NaN for missing epochs).
        val_loss: validation loss per epoch.
        min_rise: relative rise of the last `val_loss` over its minimum that
            counts. Defaults to `None`: `OVERFIT_MIN_RISE` (0.10).
        min_epochs: epochs needed after the minimum. Defaults to `None`:
            `OVERFIT_MIN_EPOCHS` (2).

    Returns:
        `None`, or an `Overfitting` with the epochs and values behind it.

    Example:

    >>> from kerastune_ft.evaluation.verdict import find_overfitting
    >>> find_overfitting([1.0, 0.6, 0.4, 0.3], [0.9, 0.7, 0.8, 0.9]).best
    2
    """
    min_rise = OVERFIT_MIN_RISE if min_rise is None else min_rise
    min_epochs = OVERFIT_MIN_EPOCHS if min_epochs is None else min_epochs
    loss = clean_series(loss, len(val_loss))
    val = clean_series(val_loss, len(loss))
    valid = np.flatnonzero(np.isfinite(loss) & np.isfinite(val))
    if len(valid) < min_epochs + 1:
        return None
    best = valid[int(np.argmin(val[valid]))]
    last = valid[-1]
    if np.count_nonzero(valid > best) < min_epochs:
        return None
    rise = (val[last] - val[best]) / max(abs(val[best]), 1e-12)
    fall = (loss[best] - loss[last]) / max(abs(loss[best]), 1e-12)
    if rise < min_rise or loss[last] >= loss[best]:
        return None
    return Overfitting(
        best=int(best) + 1,
        last=int(last) + 1,
        rise=float(rise),
        train_fall=float(fall),
        val_best=float(val[best]),
        val_last=float(val[last]),
        train_best=float(loss[best]),
        train_last=float(loss[last]),
    )


@dataclasses.dataclass
class Curves:
    """What the rules read: clean per-epoch series and the run's facts.

    Attributes:
        series: metric name -> float array (NaN where missing).
        loss: the training loss series.
        val_loss: the validation loss series, or `None` without validation.
        metric: the accuracy-like metric, or `None`.
        monitor: the metric that picks the best epoch.
        mode: `"min"` or `"max"`, the direction of `monitor`.
        best_epoch: 1-based best epoch, or `None`.
        restored: whether the best weights were restored (`None`: unknown).
        stages: list of `{"name", "first_epoch", "last_epoch"}`.
        evidence: the numbers behind the verdict; rules add to it.
    """

    series: dict
    loss: np.ndarray
    val_loss: np.ndarray | None
    metric: str | None
    monitor: str
    mode: str
    best_epoch: int | None
    restored: bool | None
    stages: list
    evidence: dict


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One rule's answer: the verdict, its message, where overfitting starts."""

    name: str
    message: str
    overfit_epoch: int | None = None


def decide(curves):
    """Applies the rules in order; returns the first `Verdict` that holds.

    Args:
        curves: a `Curves`.

    Returns:
        A `Verdict` (its message has no final period).
    """
    if curves.evidence.get("diverged"):
        return _diverged(curves)
    if not np.isfinite(curves.loss).any():
        curves.evidence["diverged"] = True
        return Verdict(
            "underfitting",
            "underfitting: the training loss is NaN from the first epoch, so the "
            "model learned nothing (training diverged)",
        )
    for rule in (_overfitting, _flat_loss, _still_improving, _low_accuracy):
        verdict = rule(curves)
        if verdict is not None:
            return verdict
    return _fits_well(curves)


def _restored_phrase(best_epoch, restored):
    if best_epoch is None:
        return ""
    if restored is True:
        return f"best weights from epoch {best_epoch} were restored"
    if restored is False:
        return (
            f"the model keeps the last epoch's weights (the best epoch was {best_epoch}; "
            "turn early stopping on to restore it)"
        )
    return (
        f"the best epoch was {best_epoch} (restore its weights, e.g. "
        "EarlyStopping(restore_best_weights=True))"
    )


def _diverged(c):
    if c.restored is None:
        kept = "do not use the last weights" + (
            f" (epoch {c.best_epoch} was the best)" if c.best_epoch else ""
        )
    elif c.best_epoch is not None:
        kept = f"the weights of epoch {c.best_epoch}, the best before, were restored"
    else:
        kept = "the model holds the weights it started with"
    return Verdict(
        "diverged",
        f"training diverged: the training loss became NaN or inf at epoch "
        f"{c.evidence['diverged_epoch']}; {kept}",
    )


def stage_of_epoch(stages, epoch):
    """The name of the stage after the first one holding `epoch`, or `None`."""
    name = None
    for s in stages[1:] if len(stages) > 1 else []:
        if s["first_epoch"] <= epoch <= s["last_epoch"]:
            name = s["name"]
    return name


def _overfitting(c):
    if c.val_loss is None:
        return None
    found = find_overfitting(c.loss, c.val_loss)
    if found is None:
        return None
    c.evidence.update(dataclasses.asdict(found))
    start = found.best + 1
    span = found.last - found.best
    stage = stage_of_epoch(c.stages, start)
    stage = f" (stage '{stage}')" if stage else ""
    message = (
        f"overfitting from epoch {start}{stage}: val_loss rose "
        f"{pct(found.rise)} over {span} epoch{'s' if span != 1 else ''} "
        f"({found.val_best:.3f} at epoch {found.best} -> "
        f"{found.val_last:.3f} at epoch {found.last}) while train_loss "
        f"fell {pct(found.train_fall)} ({found.train_best:.3f} -> "
        f"{found.train_last:.3f})"
    )
    if c.metric and f"val_{c.metric}" in c.series:
        i = found.last - 1
        tr, va = c.series[c.metric][i], c.series[f"val_{c.metric}"][i]
        if np.isfinite(tr) and np.isfinite(va):
            message += (
                f"; at epoch {found.last} train {c.metric} is {tr:.3f} vs val {va:.3f}"
            )
    phrase = _restored_phrase(c.best_epoch, c.restored)
    if phrase:
        message += "; " + phrase
    return Verdict("overfitting", message, start)


def _flat_loss(c):
    finite = np.flatnonzero(np.isfinite(c.loss))
    first, last = finite[0], finite[-1]
    drop = (c.loss[first] - np.nanmin(c.loss)) / max(abs(c.loss[first]), 1e-12)
    c.evidence["train_drop"] = float(drop)
    if len(finite) >= UNDERFIT_MIN_EPOCHS and drop < UNDERFIT_MIN_TRAIN_DROP:
        return Verdict(
            "underfitting",
            f"underfitting: train_loss fell only {pct(drop)} in {len(finite)} epochs "
            f"({c.loss[first]:.3f} -> {c.loss[last]:.3f}); the model is not learning "
            "the training data",
        )
    return None


def _still_improving(c):
    monitored = c.series[c.monitor]
    finite = np.flatnonzero(np.isfinite(monitored))
    if len(finite) == 1 or np.count_nonzero(np.isfinite(c.loss)) == 1:
        value = monitored[finite[0]] if len(finite) else float("nan")
        return Verdict(
            "still_improving",
            f"still improving when stopped: only 1 usable epoch ({c.monitor} "
            f"{value:.3f}), too few to see a trend",
        )
    window = min(STILL_IMPROVING_WINDOW, len(finite) - 1)
    # The last epoch must beat the best before the window: a metric that
    # dipped and came back is levelling off, not improving.
    before, now = monitored[finite[:-window]], float(monitored[finite[-1]])
    if c.mode == "min":
        prev = float(np.min(before))
        gain = (prev - now) / max(abs(prev), 1e-12)
    else:
        prev = float(np.max(before))
        gain = (now - prev) / max(abs(prev), 1e-12)
    c.evidence["recent_gain"] = float(gain)
    if gain < STILL_IMPROVING_MIN_GAIN:
        return None
    return Verdict(
        "still_improving",
        f"still improving when stopped: {c.monitor} improved {pct(gain)} in the "
        f"last {window} epoch{'s' if window != 1 else ''} ({prev:.3f} -> {now:.3f}, "
        f"epoch {int(finite[-1]) + 1} of {len(c.loss)})",
    )


def _low_accuracy(c):
    if not c.metric or c.metric not in c.series:
        return None
    acc = c.series[c.metric]
    acc = acc[np.isfinite(acc)]
    if not len(acc) or acc[-1] >= UNDERFIT_MAX_TRAIN_ACCURACY:
        return None
    val_part = ""
    val = c.series.get(f"val_{c.metric}")
    if val is not None and np.isfinite(val).any():
        val_part = f" (val {val[np.isfinite(val)][-1]:.3f})"
    return Verdict(
        "underfitting",
        f"underfitting: train {c.metric} ended at {acc[-1]:.3f}{val_part}, "
        f"below {UNDERFIT_MAX_TRAIN_ACCURACY:g}, and {c.monitor} stopped improving",
    )


def _fits_well(c):
    monitored = c.series[c.monitor]
    values = monitored[np.isfinite(monitored)]
    best = float(values.min() if c.mode == "min" else values.max())
    message = (
        f"fits well: {c.monitor} levelled off (best {best:.3f} at epoch {c.best_epoch})"
    )
    if c.val_loss is None:
        return Verdict("fits_well", message)
    message += " without the validation loss rising"
    last = np.flatnonzero(np.isfinite(c.loss))[-1]
    i = int(c.best_epoch) - 1 if c.best_epoch else int(last)
    gap = c.val_loss[i] - c.loss[i]
    if np.isfinite(gap):
        message += f"; gap val_loss - loss at that epoch: {gap:+.3f}"
    phrase = _restored_phrase(c.best_epoch, c.restored)
    if phrase and c.restored is not None:
        message += "; " + phrase
    return Verdict("fits_well", message)
