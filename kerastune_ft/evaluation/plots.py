"""matplotlib figures for diagnoses and evaluations.

Every function returns a `matplotlib.figure.Figure` built without pyplot (no
global figure state, nothing shown, safe on headless machines); save one with
`figure.savefig("curves.png")`. In Jupyter a returned Figure displays itself.
"""

import numpy as np

__all__ = ["confusion_matrix", "domain_shift", "learning_curves", "per_class_f1"]


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def learning_curves(diagnosis, *, figsize=None):
    """Loss and metric per epoch, train vs val, with stages and the best epoch.

    Stage boundaries (from a `kft.FineTuneResult`) are dotted vertical lines
    labelled with the stage name; the best (restored) epoch is a green
    dashed line; epochs from `overfit_epoch` on are shaded red.

    Args:
        diagnosis: a `Diagnosis` from `kft.diagnose`.
        figsize: `(width, height)` in inches. Defaults to `None` (10x4 with a
            metric panel, else 6x4).

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> import kerastune_ft as kft
    >>> d = kft.diagnose({"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6]})
    >>> len(kft.evaluation.plots.learning_curves(d).axes)
    1
    """
    from matplotlib.ticker import MaxNLocator

    metric = diagnosis.metric
    panels = [("loss", "loss")]
    if metric and any(e.get(metric) is not None for e in diagnosis.epochs):
        panels.append((metric, metric))
    fig = _figure(figsize or (5 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    epochs = np.array([e["epoch"] for e in diagnosis.epochs])

    def values(key):
        return np.array(
            [np.nan if e.get(key) is None else e[key] for e in diagnosis.epochs],
            dtype="float64",
        )

    for ax, (key, title) in zip(axes, panels, strict=True):
        ax.plot(epochs, values(key), "o-", color="tab:blue", ms=3, label=f"train {key}")
        if any(e.get(f"val_{key}") is not None for e in diagnosis.epochs):
            ax.plot(
                epochs,
                values(f"val_{key}"),
                "o-",
                color="tab:orange",
                ms=3,
                label=f"val {key}",
            )
        for i, stage in enumerate(diagnosis.stages[1:]):
            x = stage["first_epoch"] - 0.5
            label = "stage boundary" if i == 0 else None
            ax.axvline(x, color="gray", ls=":", lw=1, label=label)
            ax.annotate(
                stage["name"],
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="gray",
            )
        if diagnosis.best_epoch is not None:
            label = (
                f"restored best (epoch {diagnosis.best_epoch})"
                if diagnosis.restored_best
                else f"best (epoch {diagnosis.best_epoch})"
            )
            ax.axvline(
                diagnosis.best_epoch, color="tab:green", ls="--", lw=1.2, label=label
            )
        if diagnosis.overfit_epoch is not None:
            ax.axvspan(
                diagnosis.overfit_epoch - 0.5,
                epochs.max() + 0.5,
                color="tab:red",
                alpha=0.08,
                label=f"overfitting (from epoch {diagnosis.overfit_epoch})",
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Learning curves: {diagnosis.verdict.replace('_', ' ')}", fontsize=10)
    return fig


def confusion_matrix(
    matrix, class_names, *, title="Confusion matrix", normalize=False, figsize=None
):
    """A confusion-matrix heat map (rows: true class, columns: predicted).

    Args:
        matrix: square array of counts.
        class_names: one name per class.
        title: figure title. Defaults to `"Confusion matrix"`.
        normalize: color and label by row fraction instead of counts.
            Defaults to `False`.
        figsize: `(width, height)` in inches. Defaults to `None` (grows with
            the number of classes).

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> import kerastune_ft as kft
    >>> fig = kft.evaluation.plots.confusion_matrix([[5, 1], [2, 4]], ["a", "b"])
    >>> fig.axes[0].get_xlabel()
    'predicted'
    """
    matrix = np.asarray(matrix, dtype="float64")
    k = len(class_names)
    shown = (
        matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        if normalize
        else matrix
    )
    size = max(3.5, 0.6 * k + 2)
    fig = _figure(figsize or (size + 1, size))
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), [str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    top = shown.max() if shown.size else 0
    if k <= 30:
        for i in range(k):
            for j in range(k):
                text = f"{shown[i, j]:.2f}" if normalize else f"{int(matrix[i, j])}"
                color = "white" if top and shown[i, j] > top / 2 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    return fig


def per_class_f1(f1_by_set, class_names, *, title="F1 per class", figsize=None):
    """Grouped bars of per-class F1, one group per class, one bar per set.

    Args:
        f1_by_set: dict set name -> list of F1 values (one per class).
        class_names: one name per class.
        title: figure title. Defaults to `"F1 per class"`.
        figsize: `(width, height)` in inches. Defaults to `None`.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> import kerastune_ft as kft
    >>> fig = kft.evaluation.plots.per_class_f1({"test": [0.9, 0.7]}, ["a", "b"])
    >>> len(fig.axes[0].patches)
    2
    """
    names = list(f1_by_set)
    k = len(class_names)
    fig = _figure(figsize or (max(5, 0.8 * k * max(1, len(names)) + 2), 3.8))
    ax = fig.subplots()
    width = 0.8 / max(1, len(names))
    x = np.arange(k)
    for i, name in enumerate(names):
        ax.bar(
            x + (i - (len(names) - 1) / 2) * width,
            f1_by_set[name],
            width,
            label=str(name),
        )
    ax.set_xticks(x, [str(c) for c in class_names], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(names) > 1:
        ax.legend(fontsize=8)
    return fig


def domain_shift(
    rows, *, metrics=("accuracy", "f1_macro"), title="Domain shift", figsize=None
):
    """Bars of each set's metrics, the first set being the reference.

    Args:
        rows: the `Evaluation.domain_shift` rows (dicts with `"set"` and the
            metric names).
        metrics: which metrics to draw. Defaults to `("accuracy", "f1_macro")`.
        title: figure title. Defaults to `"Domain shift"`.
        figsize: `(width, height)` in inches. Defaults to `None`.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    >>> import kerastune_ft as kft
    >>> rows = [{"set": "a", "accuracy": 0.9, "f1_macro": 0.9},
    ...         {"set": "b", "accuracy": 0.7, "f1_macro": 0.6}]
    >>> len(kft.evaluation.plots.domain_shift(rows).axes[0].patches)
    4
    """
    names = [str(r["set"]) for r in rows]
    fig = _figure(figsize or (max(5, 1.4 * len(names) + 2), 3.8))
    ax = fig.subplots()
    width = 0.8 / max(1, len(metrics))
    x = np.arange(len(names))
    for i, metric in enumerate(metrics):
        values = [r[metric] for r in rows]
        bars = ax.bar(
            x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    if rows:
        ax.axhline(rows[0][metrics[0]], color="gray", ls=":", lw=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.1)
    ax.set_title(f"{title} (reference: {names[0]})" if names else title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
