"""Overfitting diagnosis: a verdict in plain words from a training history.

`kft.diagnose` reads the per-epoch losses and metrics of a run (a
`kft.FineTuneResult`, a Keras `History` or a plain dict) and returns a
`Diagnosis`: one of five verdicts with the evidence, the per-epoch table with
the generalization gap, and suggestions tied to the verdict and the model.
The rules and thresholds are in `kerastune_ft.evaluation.verdict`, the
suggestions in `kerastune_ft.evaluation.advice`, the model facts they use in
`kerastune_ft.evaluation.inspection`.
"""

import dataclasses
import math

import keras
import numpy as np

from kerastune_ft.evaluation import advice, inspection
from kerastune_ft.evaluation import verdict as rules

__all__ = ["Diagnosis", "diagnose"]


@dataclasses.dataclass
class Diagnosis:
    """What `kft.diagnose` returns: verdict, evidence, suggestions, epochs.

    Attributes:
        verdict: `"diverged"`, `"overfitting"`, `"underfitting"`,
            `"still_improving"` or `"fits_well"`.
        message: the verdict in plain words with its evidence.
        suggestions: list of concrete next steps.
        overfit_epoch: 1-based epoch where overfitting starts, or `None`.
        best_epoch: 1-based epoch with the best monitored value (the restored
            one for a `FineTuneResult`), or `None`.
        monitor: the metric that chose `best_epoch`.
        restored_best: `True`/`False` for a `FineTuneResult`, else `None`
            (unknown).
        epochs: one dict per epoch: `epoch`, every history metric,
            `gap_loss` (val_loss - loss), `gap_<metric>` (train - val) and
            `stage` when the run had stages.
        stages: list of `{"name", "first_epoch", "last_epoch"}`.
        metric: the accuracy-like metric shown with the loss, or `None`.
        evidence: the numbers behind the verdict.
    """

    verdict: str
    message: str
    suggestions: list
    overfit_epoch: int | None
    best_epoch: int | None
    monitor: str
    restored_best: bool | None
    epochs: list
    stages: list
    metric: str | None
    evidence: dict

    def to_dict(self):
        """Returns a JSON-serializable dict of everything in the diagnosis."""

        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, np.generic):
                return clean(v.item())
            return v

        return {
            "verdict": self.verdict,
            "message": self.message,
            "suggestions": list(self.suggestions),
            "overfit_epoch": self.overfit_epoch,
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "restored_best": self.restored_best,
            "metric": self.metric,
            "stages": [dict(s) for s in self.stages],
            "epochs": [{k: clean(v) for k, v in e.items()} for e in self.epochs],
            "evidence": {k: clean(v) for k, v in self.evidence.items()},
        }

    def plot(self, *, figsize=None):
        """Learning curves: loss and metric, train vs val, stages and best epoch.

        Args:
            figsize: `(width, height)` in inches. Defaults to `None` (sized
                for one or two panels).

        Returns:
            A `matplotlib.figure.Figure` (save it with `fig.savefig(path)`).
        """
        from kerastune_ft.evaluation.plots import learning_curves

        return learning_curves(self, figsize=figsize)

    def columns(self):
        """The per-epoch table's metric columns that hold at least one value."""
        keys = ["loss", "val_loss"]
        if self.metric:
            keys += [self.metric, f"val_{self.metric}"]
        keys.append("gap_loss")
        if self.metric:
            keys.append(f"gap_{self.metric}")
        return [k for k in keys if any(e.get(k) is not None for e in self.epochs)]

    def table(self):
        """The per-epoch table: `(header, rows)`, numbers left unformatted."""
        columns = self.columns()
        header = ["epoch"] + (["stage"] if self.stages else []) + columns
        rows = [
            [e["epoch"]]
            + ([e.get("stage", "")] if self.stages else [])
            + [e.get(k) for k in columns]
            for e in self.epochs
        ]
        return header, rows

    def __str__(self):
        from kerastune_ft.evaluation.render import fmt

        lines = [f"Diagnosis: {self.verdict}", f"  {self.message}"]
        if self.epochs:
            header, rows = self.table()
            rows = [header] + [[fmt(c, 4) for c in row] for row in rows]
            widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
            for r in rows:
                lines.append(
                    "  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                )
        if self.suggestions:
            lines.append("Suggestions:")
            lines += [f"  - {s}" for s in self.suggestions]
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"Diagnosis(verdict={self.verdict!r}, overfit_epoch={self.overfit_epoch}, "
            f"best_epoch={self.best_epoch}, epochs={len(self.epochs)})"
        )

    def to_html(self, *, include_plot=True):
        """The diagnosis as an HTML fragment (escaped; the plot embedded as PNG)."""
        from kerastune_ft.evaluation import render

        return render.diagnosis_html(self, include_plot=include_plot)

    def _repr_html_(self):
        from kerastune_ft.evaluation import render

        return render.fragment_page(diagnosis=self)


@dataclasses.dataclass(frozen=True)
class _Run:
    """What `diagnose` reads from its input, whatever its type."""

    history: dict
    stages: list
    best_epoch: int | None = None
    restored: bool | None = None
    monitor: str | None = None
    model: object = None
    diverged: bool = False
    regime: object = None


def _read_run(source):
    # FineTuneResult: its own merged history, stages and restored best epoch.
    if hasattr(source, "stages") and isinstance(getattr(source, "history", None), dict):
        stages = [
            {"name": s.name, "first_epoch": s.first_epoch, "last_epoch": s.last_epoch}
            for s in source.stages
        ]
        return _Run(
            dict(source.history),
            stages,
            source.best_epoch,
            bool(source.restored_best),
            source.monitor,
            source.model,
            bool(getattr(source, "diverged", False)),
            getattr(source, "regime", None),
        )
    if isinstance(source, keras.callbacks.History) or (
        hasattr(source, "history") and isinstance(source.history, dict)
    ):
        return _Run(dict(source.history), [], model=getattr(source, "model", None))
    if isinstance(source, dict):
        return _Run(dict(source), [])
    raise TypeError(
        "`history_or_result` must be a kft.FineTuneResult, a keras.callbacks.History "
        "(what model.fit returns) or a dict like {'loss': [...], 'val_loss': [...]}. "
        f"Received: {type(source).__name__}."
    )


def _epoch_rows(history, series, metric, has_val, stages):
    """One dict per epoch: every metric, the gaps, and the stage name."""
    stage_of = {
        epoch: s["name"]
        for s in stages
        for epoch in range(s["first_epoch"], s["last_epoch"] + 1)
    }

    def number(value):
        return None if math.isnan(value) else float(value)

    rows = []
    for i in range(len(series["loss"])):
        row = {"epoch": i + 1}
        row.update({key: number(series[key][i]) for key in history})
        if has_val:
            row["gap_loss"] = number(series["val_loss"][i] - series["loss"][i])
        if metric and f"val_{metric}" in series:
            row[f"gap_{metric}"] = number(
                series[metric][i] - series[f"val_{metric}"][i]
            )
        if stage_of:
            row["stage"] = stage_of.get(i + 1, "")
        rows.append(row)
    return rows


def _notes(run, loss, has_val, evidence):
    """Divergence and NaN facts into `evidence`; the notes the message ends with."""
    for i, value in enumerate(run.history.get("loss", [])):
        if value is not None and not math.isfinite(float(value)):
            evidence["diverged"], evidence["diverged_epoch"] = True, i + 1
            break
    else:
        if run.diverged:
            evidence["diverged"] = True
            evidence["diverged_epoch"] = len(run.history.get("loss", [])) or 1
    notes = []
    if run.regime is not None:
        evidence["recipe"] = run.regime.recipe
        if run.regime.few_shot:
            notes.append(f"recipe {run.regime}")
    bad = np.flatnonzero(np.isnan(loss))
    if len(bad):
        evidence["nan_epoch"] = int(bad[0]) + 1
        notes.append(
            f"the training loss is NaN or missing at epoch(s) "
            f"{', '.join(str(b + 1) for b in bad[:5])}{'...' if len(bad) > 5 else ''}"
            " (left out of the trends)"
        )
    if not has_val:
        notes.append(
            "there are no validation metrics, so overfitting cannot be detected "
            "(pass validation_data)"
        )
    return notes


def _check_history(history):
    if not history or "loss" not in history:
        raise ValueError(
            "The history has no 'loss': nothing to diagnose. Pass what "
            "kft.fine_tune or model.fit returned after at least one epoch. "
            f"Received keys: {sorted(history)}."
        )
    n = max(len(v) for v in history.values())
    if n == 0:
        raise ValueError("The history is empty: train for at least one epoch first.")
    return n


def diagnose(history_or_result, *, monitor=None, model=None):
    """Says whether a run overfits, underfits, still improves or fits well.

    The verdict comes with its evidence ("overfitting from epoch 7: val_loss
    rose 23% over 4 epochs while train_loss fell 40%; best weights from epoch
    6 were restored"), a per-epoch table with the generalization gap
    (`val_loss - loss`, and train minus val accuracy), and suggestions tied
    to the verdict and, when known, to the model (its head dropout and L2,
    how much of the backbone trains, whether it augments). The rules and
    thresholds are in the module docstring of `kerastune_ft.evaluation.verdict`.

    Args:
        history_or_result: a `kft.FineTuneResult` (stages and the restored
            best epoch are used), a `keras.callbacks.History` (what
            `model.fit` returns), or a dict `{"loss": [...], "val_loss": [...],
            ...}`.
        monitor: the metric that picks the best epoch. Defaults to `None`:
            the result's monitor, else `"val_loss"` when present, else
            `"loss"`.
        model: the model, to tailor suggestions. Defaults to `None`: the
            result's or History's model when available.

    Returns:
        A `Diagnosis` (print it, display it in Jupyter, `.plot()` it).

    Example:

    >>> import kerastune_ft as kft
    >>> history = {
    ...     "loss": [0.9, 0.6, 0.45, 0.35, 0.28, 0.22, 0.18, 0.15],
    ...     "val_loss": [0.8, 0.6, 0.5, 0.46, 0.5, 0.55, 0.6, 0.65],
    ... }
    >>> d = kft.diagnose(history)
    >>> d.verdict, d.overfit_epoch
    ('overfitting', 5)
    >>> d.message.split(":")[0]
    'overfitting from epoch 5'
    """
    run = _read_run(history_or_result)
    n = _check_history(run.history)
    series = {k: rules.clean_series(v, n) for k, v in run.history.items()}
    has_val = "val_loss" in series and np.isfinite(series["val_loss"]).any()
    if monitor is None:
        monitor = run.monitor or ("val_loss" if has_val else "loss")
    if monitor not in series:
        raise ValueError(
            f"`monitor` must be a metric of the history: {sorted(series)}. "
            f"Received: monitor={monitor!r}."
        )
    mode = rules.metric_mode(monitor)
    best_epoch = run.best_epoch
    finite = np.flatnonzero(np.isfinite(series[monitor]))
    if best_epoch is None and len(finite):
        pick = np.argmin if mode == "min" else np.argmax
        best_epoch = int(finite[int(pick(series[monitor][finite]))]) + 1
    evidence = {"epochs": n, "monitor": monitor}
    notes = _notes(run, series["loss"], has_val, evidence)
    metric = rules.main_metric(run.history)
    curves = rules.Curves(
        series=series,
        loss=series["loss"],
        val_loss=series["val_loss"] if has_val else None,
        metric=metric,
        monitor=monitor,
        mode=mode,
        best_epoch=best_epoch,
        restored=run.restored,
        stages=run.stages,
        evidence=evidence,
    )
    found = rules.decide(curves)
    message = found.message + ("; note: " + "; ".join(notes) if notes else "") + "."
    evidence["overfit_epoch"] = found.overfit_epoch
    facts = inspection.inspect_model(model if model is not None else run.model)
    return Diagnosis(
        verdict=found.name,
        message=message,
        suggestions=advice.suggestions(found.name, facts, evidence, run.stages),
        overfit_epoch=found.overfit_epoch,
        best_epoch=best_epoch,
        monitor=monitor,
        restored_best=run.restored,
        epochs=_epoch_rows(run.history, series, metric, has_val, run.stages),
        stages=run.stages,
        metric=metric,
        evidence=evidence,
    )
