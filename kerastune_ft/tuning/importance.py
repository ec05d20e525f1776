"""How strongly each searched hyperparameter goes with the objective.

Numbers: the absolute Spearman rank correlation (`scipy.stats.spearmanr`,
which ranks ties fairly); choices: the correlation ratio (the share of the
objective's spread that the choice explains).
"""

import math
import numbers

import numpy as np

__all__ = ["association", "importance"]


def is_number(value):
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def association(values, objective):
    """Strength in [0, 1] of the link between `values` and `objective`.

    Args:
        values: one hyperparameter value per trial (numbers or choices).
        objective: the objective of each trial, same length.

    Returns:
        A float in [0, 1]; `0.0` with fewer than 3 trials or no spread.

    Example:

    >>> from kerastune_ft.tuning.importance import association
    >>> association([1, 2, 2, 3], [0.1, 0.2, 0.2, 0.3])
    1.0
    >>> round(association(["a", "b", "a", "b"], [1.0, 0.0, 1.0, 0.0]), 3)
    1.0
    """
    objective = np.asarray(objective, dtype=float)
    if len(values) < 3 or np.std(objective) == 0:
        return 0.0
    if all(is_number(v) for v in values):
        numeric = np.asarray(values, dtype=float)
        if np.std(numeric) == 0:
            return 0.0
        from scipy import stats

        rho = stats.spearmanr(numeric, objective).statistic
        return 0.0 if math.isnan(rho) else float(min(1.0, abs(rho)))
    groups = {}
    for value, score in zip(values, objective, strict=True):
        groups.setdefault(repr(value), []).append(score)
    total = np.sum((objective - objective.mean()) ** 2)
    between = sum(
        len(g) * (np.mean(g) - objective.mean()) ** 2 for g in groups.values()
    )
    return float(math.sqrt(between / total)) if total else 0.0


def importance(rows, names):
    """`{name: association}` over the finished trials, largest first.

    Args:
        rows: trial rows (dicts with `"objective"` and each name).
        names: the hyperparameters to score.

    Returns:
        A dict name -> score in [0, 1], sorted by decreasing score.

    Example:

    >>> from kerastune_ft.tuning.importance import importance
    >>> rows = [{"objective": o, "lr": o * 2, "d": 0.1} for o in (1.0, 2.0, 3.0)]
    >>> importance(rows, ["d", "lr"])
    {'lr': 1.0, 'd': 0.0}
    """
    finished = [r for r in rows if r["objective"] is not None]
    objective = [r["objective"] for r in finished]
    scores = {n: association([r.get(n) for r in finished], objective) for n in names}
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))
