"""What `kft.cross_validate` and `kft.tune` return: numbers, tables, plots."""

import dataclasses

import keras

from kerastune_ft._validation import check_number
from kerastune_ft.tuning import importance as importance_lib

__all__ = ["CrossValidationResult", "FoldResult", "TuneResult"]

# Row keys that are no hyperparameter.
ROW_KEYS = ("trial_id", "status", "objective", "epochs", "seconds")


@dataclasses.dataclass
class FoldResult:
    """One fold of `kft.cross_validate`.

    Attributes:
        fold: 1-based fold number (counting across repeats).
        repeat: 1-based repeat number.
        train_size: training examples in the fold.
        val_size: held-out examples.
        metrics: `model.evaluate` on the held-out part, with the weights
            `fine_tune` kept.
        history: per-epoch metrics (the `FineTuneResult` history).
        best_epoch: the restored epoch (1-based) or `None`.
        epochs_run: epochs trained.
        seconds: wall time of the fold.
        verdict: `kft.diagnose(...)` verdict on the fold's history
            (`"overfitting"`, ...), or `None` when diagnostics are not
            available.
        diagnosis: the full `Diagnosis`, or `None`.
        rss_mb: resident memory of the process that trained the fold, after
            it (MiB; `None` without psutil).
        peak_rss_mb: that process's peak resident memory so far (MiB;
            `None` off Unix).
        monitor: the metric that chose the fold's best epoch.
        pid: id of the process that trained the fold (differs from this
            one's with `isolate=True`).
    """

    fold: int
    repeat: int
    train_size: int
    val_size: int
    metrics: dict
    history: dict
    best_epoch: int | None
    epochs_run: int
    seconds: float
    verdict: str | None = None
    diagnosis: object = None
    rss_mb: float | None = None
    peak_rss_mb: float | None = None
    monitor: str | None = None
    pid: int | None = None

    def to_dict(self):
        """A JSON-serializable dict (without the `Diagnosis` object)."""
        d = dataclasses.asdict(self)
        d.pop("diagnosis")
        return d


@dataclasses.dataclass
class CrossValidationResult:
    """What `kft.cross_validate` returns.

    Attributes:
        folds: a `FoldResult` per fold.
        mean: metric -> mean over folds.
        std: metric -> standard deviation over folds (population, ddof=0).
        monitor: the metric early stopping watched.
    """

    folds: list
    mean: dict
    std: dict
    monitor: str = "val_loss"

    @property
    def verdicts(self):
        """The overfitting verdict of each fold (`None` when unavailable)."""
        return [f.verdict for f in self.folds]

    def summary(self, metric=None):
        """`"accuracy: 0.912 +/- 0.015 over 5 folds"` for `metric` (or all)."""
        names = [metric] if metric else list(self.mean)
        return "; ".join(
            f"{m}: {self.mean[m]:.4f} +/- {self.std[m]:.4f} over {len(self.folds)} folds"
            for m in names
        )

    def __repr__(self):
        lines = [f"CrossValidationResult: {len(self.folds)} folds"]
        for m in self.mean:
            lines.append(f"  {m}: {self.mean[m]:.4f} +/- {self.std[m]:.4f}")
        for f in self.folds:
            acc = f.metrics.get("accuracy")
            acc = "" if acc is None else f", accuracy {acc:.4f}"
            lines.append(
                f"  fold {f.fold}: {f.epochs_run} epochs{acc}, "
                f"{f.seconds:.1f}s, verdict {f.verdict}"
            )
        return "\n".join(lines)

    def to_dict(self):
        """A JSON-serializable dict."""
        return {
            "folds": [f.to_dict() for f in self.folds],
            "mean": dict(self.mean),
            "std": dict(self.std),
            "monitor": self.monitor,
        }

    def plot(self, metric="loss"):
        """Learning curves of every fold: `metric` (solid) and `val_<metric>`
        (dashed), one colour per fold.

        Args:
            metric: the training metric to draw. Defaults to `"loss"`.

        Returns:
            A matplotlib `Figure`.
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        for index, f in enumerate(self.folds):
            color = f"C{index % 10}"
            for key, style, kind in (
                (metric, "-", "train"),
                (f"val_{metric}", "--", "val"),
            ):
                values = f.history.get(key)
                if values:
                    ax.plot(
                        range(1, len(values) + 1),
                        values,
                        style,
                        color=color,
                        label=f"fold {f.fold} {kind}",
                    )
            if f.best_epoch:
                ax.axvline(f.best_epoch, color=color, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(
            f"Learning curves across {len(self.folds)} folds "
            "(solid: train, dashed: held-out fold)"
        )
        ax.legend(fontsize="x-small", ncol=2)
        fig.tight_layout()
        return fig


@dataclasses.dataclass
class TuneResult:
    """What `kft.tune` returns.

    Attributes:
        best_hyperparameters: the best trial's `keras_tuner.HyperParameters`
            (`.values` is a dict).
        best_model: the best model. Without cross-validation it is
            *restored*: the weights the best trial's `fine_tune` kept (its
            best epoch with early stopping), saved in the trial folder, so its
            validation score is the reported one. With cross-validation no
            single trial model exists, so it is *retrained* once on all of
            `train` with the best hyperparameters (validated on
            `validation_data`).
        best_model_source: `"restored"` or `"retrained"`.
        trials: one dict per trial: `trial_id`, `status`, each
            hyperparameter, `objective` (the best value of the objective
            metric), `epochs`, `seconds`, plus `<objective>_std` with
            cross-validation.
        objective: the objective's name.
        direction: `"min"` or `"max"`.
        tuner: the keras-tuner tuner (for `results_summary()` and more).
        seconds: wall time of this call.
    """

    best_hyperparameters: object
    best_model: keras.Model
    best_model_source: str
    trials: list
    objective: str
    direction: str
    tuner: object = None
    seconds: float = 0.0

    @property
    def best_values(self):
        """The best hyperparameters as a plain dict."""
        return dict(self.best_hyperparameters.values)

    @property
    def best_score(self):
        """The best trial's objective value."""
        scores = [t["objective"] for t in self.trials if t["objective"] is not None]
        if not scores:
            return None
        return min(scores) if self.direction == "min" else max(scores)

    def table(self):
        """The trials as a pandas DataFrame (needs pandas), best first."""
        import pandas as pd

        sign = 1 if self.direction == "min" else -1
        rows = sorted(
            self.trials,
            key=lambda t: (t["objective"] is None, sign * (t["objective"] or 0.0)),
        )
        return pd.DataFrame(rows)

    def hyperparameter_names(self):
        """Names of the searched (non-fixed) hyperparameters."""
        names = []
        for t in self.trials:
            for k in t:
                if k in ROW_KEYS or k.endswith("_std") or k.startswith("tuner/"):
                    continue
                if k not in names:
                    names.append(k)
        return [n for n in names if len({repr(t.get(n)) for t in self.trials}) > 1]

    def importance(self):
        """How strongly each searched hyperparameter goes with the objective.

        Numbers: absolute Spearman rank correlation (`scipy.stats.spearmanr`,
        ties ranked fairly); choices: the correlation ratio (share of the
        objective's spread explained by the choice).

        Returns:
            A dict name -> score in [0, 1], largest first.
        """
        return importance_lib.importance(self.trials, self.hyperparameter_names())

    def plot(self, max_params=4):
        """Objective against the most important hyperparameters.

        Args:
            max_params: how many hyperparameters to draw (by `importance()`).
                Defaults to `4`.

        Returns:
            A matplotlib `Figure` with one panel per hyperparameter; the best
            trial is drawn as a star.
        """
        from matplotlib.figure import Figure

        check_number("max_params", max_params, low=1, integer=True)
        names = list(self.importance())[:max_params]
        rows = [t for t in self.trials if t["objective"] is not None]
        panels = max(1, len(names))
        fig = Figure(figsize=(3.2 * panels, 3.2))
        for i in range(panels):
            ax = fig.add_subplot(1, panels, i + 1)
            if names:
                _scatter(ax, rows, names[i], self.best_score)
            else:
                ax.plot(range(1, len(rows) + 1), [t["objective"] for t in rows], "o")
                ax.set_xlabel("trial")
            if i == 0:
                ax.set_ylabel(self.objective)
        fig.suptitle(f"{len(rows)} trials: {self.objective} vs hyperparameters")
        fig.tight_layout()
        return fig

    def __repr__(self):
        return "\n".join(
            [
                f"TuneResult: {len(self.trials)} trials, best {self.objective}="
                f"{self.best_score!r} ({self.best_model_source} model)",
                f"  best hyperparameters: {self.best_values}",
            ]
        )


def _scatter(ax, rows, name, best):
    """One panel: the objective of each trial against hyperparameter `name`."""
    ys = [t["objective"] for t in rows]
    values = [t.get(name) for t in rows]
    if all(importance_lib.is_number(v) for v in values):
        xs, labels = [float(v) for v in values], None
    else:
        labels = sorted({str(v) for v in values})
        xs = [labels.index(str(v)) for v in values]
    ax.scatter(xs, ys, alpha=0.7)
    star = [j for j, y in enumerate(ys) if y == best]
    ax.scatter(
        [xs[j] for j in star],
        [ys[j] for j in star],
        marker="*",
        s=200,
        color="C3",
        label="best",
    )
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30)
    elif min(xs) > 0 and max(xs) / min(xs) > 50:
        ax.set_xscale("log")
    ax.set_xlabel(name)
