"""Overfitting diagnosis: a verdict in plain words from a training history.

`kft.diagnose` reads the per-epoch losses and metrics of a run (a
`kft.FineTuneResult`, a Keras `History` or a plain dict) and returns a
`Diagnosis`: one of four verdicts with the evidence, the per-epoch table with
the generalization gap, and suggestions tied to the verdict and the model.

The verdict rules, in the order they are checked (thresholds are the module
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

import math
import warnings

import keras
import numpy as np

from kerastune_ft import freezing
from kerastune_ft._validation import check_number
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.evaluation import _html

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

_MAX_MODES = ("acc", "auc", "precision", "recall", "f1")


def _mode(metric):
    return "max" if any(k in metric for k in _MAX_MODES) else "min"


def _clean(values, n):
    """Floats with None/NaN/inf as NaN, padded to `n` epochs."""
    out = []
    for v in list(values) + [None] * (n - len(values)):
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = math.nan
        out.append(v if math.isfinite(v) else math.nan)
    return np.asarray(out, dtype="float64")


def _main_metric(history):
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


def find_overfitting(
    loss, val_loss, *, min_rise=OVERFIT_MIN_RISE, min_epochs=OVERFIT_MIN_EPOCHS
):
    """Applies the overfitting rule to two loss curves.

    Args:
        loss: training loss per epoch (NaN for missing epochs).
        val_loss: validation loss per epoch.
        min_rise: relative rise of the last `val_loss` over its minimum that
            counts. Defaults to `OVERFIT_MIN_RISE` (0.10).
        min_epochs: epochs needed after the minimum. Defaults to
            `OVERFIT_MIN_EPOCHS` (2).

    Returns:
        `None`, or a dict with `best` (1-based epoch of the `val_loss`
        minimum), `last`, `rise` and `train_fall` (relative changes), and the
        four loss values.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.evaluation.diagnosis.find_overfitting(
    ...     [1.0, 0.6, 0.4, 0.3], [0.9, 0.7, 0.8, 0.9])["best"]
    2
    """
    loss = _clean(loss, len(val_loss))
    val = _clean(val_loss, len(loss))
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
    return {
        "best": int(best) + 1,
        "last": int(last) + 1,
        "rise": float(rise),
        "train_fall": float(fall),
        "val_best": float(val[best]),
        "val_last": float(val[last]),
        "train_best": float(loss[best]),
        "train_last": float(loss[last]),
    }


def _history_of(source):
    """Returns (history dict, stages, best_epoch, restored, monitor, model)."""
    # FineTuneResult: its own merged history, stages and restored best epoch.
    if hasattr(source, "stages") and isinstance(getattr(source, "history", None), dict):
        stages = [
            {
                "name": s.name,
                "first_epoch": s.first_epoch,
                "last_epoch": s.last_epoch,
            }
            for s in source.stages
        ]
        return (
            dict(source.history),
            stages,
            source.best_epoch,
            bool(source.restored_best),
            source.monitor,
            source.model,
        )
    if isinstance(source, keras.callbacks.History) or (
        hasattr(source, "history") and isinstance(source.history, dict)
    ):
        return (
            dict(source.history),
            [],
            None,
            None,
            None,
            getattr(source, "model", None),
        )
    if isinstance(source, dict):
        return dict(source), [], None, None, None, None
    raise TypeError(
        "`history_or_result` must be a kft.FineTuneResult, a keras.callbacks.History "
        "(what model.fit returns) or a dict like {'loss': [...], 'val_loss': [...]}. "
        f"Received: {type(source).__name__}."
    )


def inspect_model(model):
    """Facts about a model that make suggestions concrete.

    Args:
        model: a `keras.Model` (ideally from a kerastune_ft builder), or `None`.

    Returns:
        A dict with `modality` (`"text"`, `"image"` or `None`), `dropout`
        (largest head Dropout rate, 0.0 when none), `l2` (L2 factor of the
        `"predictions"` layer, or `None`), `backbone_units`,
        `trainable_units` (backbone units with trainable weights; `None`
        without a marked backbone), `augmentation` (whether random
        augmentation layers are in the model) and `num_classes`. Empty when
        `model` is `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3),
    ...     backbone_kwargs={"alpha": 0.35}, dropout=0.3)
    >>> facts = kft.evaluation.diagnosis.inspect_model(model)
    >>> facts["dropout"], facts["trainable_units"], facts["augmentation"]
    (0.3, 0, False)
    """
    if not isinstance(model, keras.Model):
        return {}
    facts = {
        "modality": "image",
        "dropout": 0.0,
        "l2": None,
        "backbone_units": None,
        "trainable_units": None,
        "augmentation": False,
        "num_classes": None,
    }
    if freezing.is_text_model(model):
        facts["modality"] = "text"
    backbone = freezing.get_backbone(model)
    inside = set()
    if backbone is not model:
        inside = {id(la) for la in backbone._flatten_layers(include_self=True)}
        try:
            units = freezing.backbone_units(backbone).units
            weighted = [u for u in units if any(la.weights for la in u)]
            facts["backbone_units"] = len(weighted)
            facts["trainable_units"] = sum(
                1 for u in weighted if any(la.trainable_weights for la in u)
            )
        except Exception:  # an unusual backbone: suggestions stay generic
            pass
    for layer in model._flatten_layers(include_self=False):
        if id(layer) in inside:
            continue
        if isinstance(layer, keras.layers.Dropout):
            facts["dropout"] = max(facts["dropout"], float(layer.rate))
        name = type(layer).__name__
        if name.startswith("Random") or name in ("RandAugment", "AugMix"):
            facts["augmentation"] = True
        if layer.name == "predictions":
            regularizer = getattr(layer, "kernel_regularizer", None)
            config = regularizer.get_config() if regularizer is not None else {}
            facts["l2"] = float(config.get("l2", 0.0) or 0.0)
            facts["num_classes"] = getattr(layer, "units", None)
    return facts


def _suggestions(verdict, facts, evidence, stages):
    """Concrete next steps for a verdict, tailored to the model facts."""
    text = facts.get("modality") == "text"
    builder = "kft.build_text_classifier" if text else "kft.build_image_classifier"
    out = []
    if evidence.get("nan_epoch"):
        out.append(
            f"The loss became NaN at epoch {evidence['nan_epoch']}: lower the learning "
            "rate (e.g. learning_rate=1e-4) and check the inputs for NaN values."
        )
    dropout = facts.get("dropout")
    l2 = facts.get("l2")
    units, trainable = facts.get("backbone_units"), facts.get("trainable_units")
    if verdict == "overfitting":
        best = evidence.get("best")
        out.append(
            f"Stop earlier: the validation loss was best at epoch {best}. Keep "
            "early stopping on (kft.fine_tune(early_stopping=True) restores the best "
            f"weights) or train for about {best} epochs."
        )
        if dropout is not None and facts:
            if dropout < 0.5:
                out.append(
                    f"Raise the head's dropout from {dropout:g} to "
                    f"{min(0.5, round(dropout + 0.2, 2)):g} ({builder}(..., "
                    f"dropout={min(0.5, round(dropout + 0.2, 2)):g}))."
                )
        else:
            out.append("Add more dropout before the classification layer.")
        if l2 is not None and l2 < 1e-3:
            out.append(
                f"Strengthen L2 on the head from {l2:g} to 1e-3 ({builder}(..., l2=1e-3))."
            )
        elif not facts:
            out.append("Add L2 regularization on the head (l2=1e-3).")
        if trainable:
            what = "transformer units" if text else "layers"
            out.append(
                f"Freeze more of the backbone: {trainable} of {units} backbone {what} "
                "are trainable. Unfreeze fewer (kft.fine_tune(unfreeze=...) with a "
                "smaller top) or lower fine_tune_learning_rate."
            )
        elif facts and units:
            out.append(
                "The backbone is already frozen: the head alone overfits, so data and "
                "regularization matter most."
            )
        if facts and not facts.get("augmentation"):
            if text:
                out.append(
                    "Augment the training texts (kft.TextAugmenter(('synonym', "
                    "'swap')) with kft.augment_dataset)."
                )
            else:
                out.append(
                    f"Add augmentation ({builder}(..., augmentation='standard'))."
                )
        elif not facts:
            out.append("Add data augmentation.")
        out.append(
            "Collect more training data, or use label_smoothing=0.1 in kft.fine_tune."
        )
    elif verdict == "underfitting":
        if trainable == 0 and units:
            out.append(
                f"Unfreeze part of the backbone (all {units} units are frozen): "
                "kft.fine_tune(model, ..., unfreeze=20) or kft.unfreeze(model, top=20)."
            )
        elif facts.get("trainable_units") is not None and units:
            out.append(
                f"Unfreeze more of the backbone ({trainable} of {units} units train)."
            )
        else:
            out.append(
                "Unfreeze more layers of the backbone (kft.fine_tune(unfreeze=...))."
            )
        if dropout:
            out.append(
                f"Lower the head's dropout from {dropout:g} ({builder}(..., "
                f"dropout={max(0.0, round(dropout - 0.2, 2)):g}))."
            )
        if l2:
            out.append(f"Weaken L2 on the head from {l2:g} ({builder}(..., l2=0.0)).")
        if not text:
            out.append("Add a hidden layer to the head (head_units=(256,)).")
        out.append(
            "Train longer or with a higher learning rate (e.g. learning_rate=3e-3); "
            "check that the labels match the inputs (kft.data checks)."
        )
    elif verdict == "still_improving":
        epochs = evidence.get("epochs", 0)
        out.append(
            f"Train for more epochs (about {max(2 * epochs, epochs + 5)}): the "
            f"{evidence.get('monitor', 'monitored metric')} was still improving when "
            "training stopped."
        )
    else:
        out.append(
            "Nothing urgent. Measure it on held-out and other-domain data with "
            "kft.evaluate(model, {'test': ..., 'other domain': ...})."
        )
        if trainable == 0 and units:
            out.append(
                "To gain a little more, unfreeze the top of the backbone at a low "
                "learning rate (kft.fine_tune(unfreeze=20, fine_tune_learning_rate=1e-5))."
            )
    if stages and verdict == "overfitting" and len(stages) > 1:
        start = evidence.get("overfit_epoch")
        for s in stages[1:]:
            if start is not None and s["first_epoch"] <= start <= s["last_epoch"]:
                out.append(
                    f"Overfitting began in stage '{s['name']}': unfreeze fewer layers or "
                    "lower fine_tune_learning_rate in that stage."
                )
    return out


class Diagnosis:
    """What `kft.diagnose` returns: verdict, evidence, suggestions, epochs.

    Attributes:
        verdict: `"overfitting"`, `"underfitting"`, `"still_improving"` or
            `"fits_well"`.
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

    def __init__(
        self,
        verdict,
        message,
        suggestions,
        overfit_epoch,
        best_epoch,
        monitor,
        restored_best,
        epochs,
        stages,
        metric,
        evidence,
    ):
        self.verdict = verdict
        self.message = message
        self.suggestions = list(suggestions)
        self.overfit_epoch = overfit_epoch
        self.best_epoch = best_epoch
        self.monitor = monitor
        self.restored_best = restored_best
        self.epochs = epochs
        self.stages = stages
        self.metric = metric
        self.evidence = evidence

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

    def _columns(self):
        keys = ["loss", "val_loss"]
        if self.metric:
            keys += [self.metric, f"val_{self.metric}"]
        keys.append("gap_loss")
        if self.metric:
            keys.append(f"gap_{self.metric}")
        return [k for k in keys if any(e.get(k) is not None for e in self.epochs)]

    def __str__(self):
        lines = [f"Diagnosis: {self.verdict}", f"  {self.message}"]
        columns = self._columns()
        if self.epochs:
            header = ["epoch"] + (["stage"] if self.stages else []) + columns
            rows = [header]
            for e in self.epochs:
                row = [str(e["epoch"])] + ([e.get("stage", "")] if self.stages else [])
                row += [_html.fmt(e.get(k), 4) for k in columns]
                rows.append(row)
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
        parts = [
            f'<div class="verdict {_html.esc(self.verdict)}"><b>'
            f"{_html.esc(self.verdict.replace('_', ' '))}</b>: "
            f"{_html.esc(self.message)}</div>"
        ]
        if self.suggestions:
            parts.append(
                "<ul>"
                + "".join(f"<li>{_html.esc(s)}</li>" for s in self.suggestions)
                + "</ul>"
            )
        if include_plot and self.epochs:
            figure = self.plot()
            parts.append(_html.img_tag(_html.figure_png(figure), "learning curves"))
        columns = self._columns()
        header = ["epoch"] + (["stage"] if self.stages else []) + columns
        rows = [
            [e["epoch"]]
            + ([e.get("stage", "")] if self.stages else [])
            + [e.get(k) for k in columns]
            for e in self.epochs
        ]
        parts.append(_html.table(header, rows))
        return "\n".join(parts)

    def _repr_html_(self):
        return f"<style>{_html.STYLE}</style>" + self.to_html()


def diagnose(history_or_result, *, monitor=None, model=None):
    """Says whether a run overfits, underfits, still improves or fits well.

    The verdict comes with its evidence ("overfitting from epoch 7: val_loss
    rose 23% over 4 epochs while train_loss fell 40%; best weights from epoch
    6 were restored"), a per-epoch table with the generalization gap
    (`val_loss - loss`, and train minus val accuracy), and suggestions tied
    to the verdict and, when known, to the model (its head dropout and L2,
    how much of the backbone trains, whether it augments). The rules and
    thresholds are in the module docstring of `kerastune_ft.evaluation.diagnosis`.

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
    history, stages, best_epoch, restored, result_monitor, default_model = _history_of(
        history_or_result
    )
    if model is None:
        model = default_model
    if not history or "loss" not in history:
        raise ValueError(
            "The history has no 'loss': nothing to diagnose. Pass what "
            "kft.fine_tune or model.fit returned after at least one epoch. "
            f"Received keys: {sorted(history)}."
        )
    n = max(len(v) for v in history.values())
    if n == 0:
        raise ValueError("The history is empty: train for at least one epoch first.")
    series = {k: _clean(v, n) for k, v in history.items()}
    has_val = "val_loss" in series and np.isfinite(series["val_loss"]).any()
    if monitor is None:
        monitor = result_monitor or ("val_loss" if has_val else "loss")
    if monitor not in series:
        raise ValueError(
            f"`monitor` must be a metric of the history: {sorted(series)}. "
            f"Received: monitor={monitor!r}."
        )
    mode = _mode(monitor)
    metric = _main_metric(history)
    loss = series["loss"]
    val_loss = series.get("val_loss")

    # Per-epoch table with the generalization gap.
    stage_of = {}
    for s in stages:
        for epoch in range(s["first_epoch"], s["last_epoch"] + 1):
            stage_of[epoch] = s["name"]
    epochs = []
    for i in range(n):
        row = {"epoch": i + 1}
        for key in history:
            value = series[key][i]
            row[key] = None if math.isnan(value) else float(value)
        if has_val:
            gap = val_loss[i] - loss[i]
            row["gap_loss"] = None if math.isnan(gap) else float(gap)
        if metric and f"val_{metric}" in series:
            gap = series[metric][i] - series[f"val_{metric}"][i]
            row[f"gap_{metric}"] = None if math.isnan(gap) else float(gap)
        if stage_of:
            row["stage"] = stage_of.get(i + 1, "")
        epochs.append(row)

    monitored = series[monitor]
    finite = np.flatnonzero(np.isfinite(monitored))
    if best_epoch is None and len(finite):
        pick = np.argmin if mode == "min" else np.argmax
        best_epoch = int(finite[int(pick(monitored[finite]))]) + 1

    evidence = {"epochs": n, "monitor": monitor}
    diverged_epoch = _diverged_epoch(history_or_result, history)
    if diverged_epoch is not None:
        evidence["diverged"] = True
        evidence["diverged_epoch"] = diverged_epoch
    notes = []
    bad = np.flatnonzero(np.isnan(loss))
    if len(bad):
        if bad[0] > 0 or len(bad) < n:
            evidence["nan_epoch"] = int(bad[0]) + 1
        else:
            evidence["nan_epoch"] = 1
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
    verdict, message, overfit_epoch = _verdict(
        loss,
        val_loss if has_val else None,
        series,
        metric,
        monitor,
        mode,
        best_epoch,
        restored,
        stages,
        evidence,
    )
    if notes:
        message += "; note: " + "; ".join(notes)
    message += "."
    evidence["overfit_epoch"] = overfit_epoch
    facts = inspect_model(model)
    suggestions = _suggestions(verdict, facts, evidence, stages)
    return Diagnosis(
        verdict,
        message,
        suggestions,
        overfit_epoch,
        best_epoch,
        monitor,
        restored,
        epochs,
        stages,
        metric,
        evidence,
    )


def _diverged_epoch(source, history):
    """The 1-based epoch where the training loss became NaN or inf, else `None`."""
    for i, value in enumerate(history.get("loss", [])):
        if value is not None and not math.isfinite(float(value)):
            return i + 1
    if getattr(source, "diverged", False):
        return len(history.get("loss", [])) or 1
    return None


def _pct(x):
    return f"{abs(x) * 100:.0f}%"


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


def _verdict(
    loss,
    val_loss,
    series,
    metric,
    monitor,
    mode,
    best_epoch,
    restored,
    stages,
    evidence,
):
    """Returns (verdict, message without final period, overfit epoch)."""
    if evidence.get("diverged"):
        if restored is None:
            kept = "do not use the last weights" + (
                f" (epoch {best_epoch} was the best)" if best_epoch else ""
            )
        elif best_epoch is not None:
            kept = f"the weights of epoch {best_epoch}, the best before, were restored"
        else:
            kept = "the model holds the weights it started with"
        return (
            "diverged",
            f"training diverged: the training loss became NaN or inf at epoch "
            f"{evidence['diverged_epoch']}; {kept}",
            None,
        )
    finite_loss = np.flatnonzero(np.isfinite(loss))
    n_finite = len(finite_loss)
    if n_finite == 0:
        evidence["diverged"] = True
        return (
            "underfitting",
            "underfitting: the training loss is NaN from the first epoch, so the model "
            "learned nothing (training diverged)",
            None,
        )
    # 1. Overfitting.
    if val_loss is not None:
        found = find_overfitting(loss, val_loss)
        if found is not None:
            evidence.update(found)
            start = found["best"] + 1
            span = found["last"] - found["best"]
            stage = ""
            for s in stages[1:] if len(stages) > 1 else []:
                if s["first_epoch"] <= start <= s["last_epoch"]:
                    stage = f" (stage '{s['name']}')"
            message = (
                f"overfitting from epoch {start}{stage}: val_loss rose "
                f"{_pct(found['rise'])} over {span} epoch{'s' if span != 1 else ''} "
                f"({found['val_best']:.3f} at epoch {found['best']} -> "
                f"{found['val_last']:.3f} at epoch {found['last']}) while train_loss "
                f"fell {_pct(found['train_fall'])} ({found['train_best']:.3f} -> "
                f"{found['train_last']:.3f})"
            )
            if metric and f"val_{metric}" in series:
                i = found["last"] - 1
                tr, va = series[metric][i], series[f"val_{metric}"][i]
                if np.isfinite(tr) and np.isfinite(va):
                    message += (
                        f"; at epoch {found['last']} train {metric} is {tr:.3f} vs "
                        f"val {va:.3f}"
                    )
            phrase = _restored_phrase(best_epoch, restored)
            if phrase:
                message += "; " + phrase
            return "overfitting", message, start
    first, last = finite_loss[0], finite_loss[-1]
    drop = (loss[first] - np.nanmin(loss)) / max(abs(loss[first]), 1e-12)
    evidence["train_drop"] = float(drop)
    # 2. Underfitting: the training loss barely moved.
    if n_finite >= UNDERFIT_MIN_EPOCHS and drop < UNDERFIT_MIN_TRAIN_DROP:
        return (
            "underfitting",
            f"underfitting: train_loss fell only {_pct(drop)} in {n_finite} epochs "
            f"({loss[first]:.3f} -> {loss[last]:.3f}); the model is not learning the "
            "training data",
            None,
        )
    # 3. Still improving.
    monitored = series[monitor]
    finite = np.flatnonzero(np.isfinite(monitored))
    if len(finite) == 1 or n_finite == 1:
        return (
            "still_improving",
            f"still improving when stopped: only 1 usable epoch ({monitor} "
            f"{monitored[finite[0]] if len(finite) else float('nan'):.3f}), too few to "
            "see a trend",
            None,
        )
    window = min(STILL_IMPROVING_WINDOW, len(finite) - 1)
    # The last epoch must beat the best before the window: a metric that
    # dipped and came back is levelling off, not improving.
    before, now = monitored[finite[:-window]], float(monitored[finite[-1]])
    if mode == "min":
        prev = float(np.min(before))
        gain = (prev - now) / max(abs(prev), 1e-12)
    else:
        prev = float(np.max(before))
        gain = (now - prev) / max(abs(prev), 1e-12)
    evidence["recent_gain"] = float(gain)
    if gain >= STILL_IMPROVING_MIN_GAIN:
        return (
            "still_improving",
            f"still improving when stopped: {monitor} improved {_pct(gain)} in the "
            f"last {window} epoch{'s' if window != 1 else ''} ({prev:.3f} -> {now:.3f}, "
            f"epoch {int(finite[-1]) + 1} of {len(loss)})",
            None,
        )
    # 4. Underfitting: low training accuracy.
    if metric and metric in series:
        acc = series[metric]
        acc_finite = acc[np.isfinite(acc)]
        if len(acc_finite) and acc_finite[-1] < UNDERFIT_MAX_TRAIN_ACCURACY:
            val_part = ""
            if f"val_{metric}" in series and np.isfinite(series[f"val_{metric}"]).any():
                val_acc = series[f"val_{metric}"][np.isfinite(series[f"val_{metric}"])][
                    -1
                ]
                val_part = f" (val {val_acc:.3f})"
            return (
                "underfitting",
                f"underfitting: train {metric} ended at {acc_finite[-1]:.3f}{val_part}, "
                f"below {UNDERFIT_MAX_TRAIN_ACCURACY:g}, and {monitor} stopped improving",
                None,
            )
    # 5. Fits well.
    message = (
        f"fits well: {monitor} levelled off (best {_best_value(monitored, mode):.3f}"
        f" at epoch {best_epoch}) without the validation loss rising"
    )
    if val_loss is not None:
        i = int(best_epoch) - 1 if best_epoch else int(last)
        gap = val_loss[i] - loss[i]
        if np.isfinite(gap):
            message += f"; gap val_loss - loss at that epoch: {gap:+.3f}"
        phrase = _restored_phrase(best_epoch, restored)
        if phrase and restored is not None:
            message += "; " + phrase
    else:
        message = message.replace(" without the validation loss rising", "")
    return "fits_well", message, None


def _best_value(values, mode):
    values = values[np.isfinite(values)]
    return float(values.min() if mode == "min" else values.max())


@keras.saving.register_keras_serializable(package="kerastune_ft")
class OverfittingMonitor(keras.callbacks.Callback):
    """Logs the generalization gap each epoch and warns once on overfitting.

    Each epoch it adds `gap_loss` (`val_loss - loss`) and, when an accuracy
    metric is logged, `gap_accuracy` (train minus val) to the epoch logs, so
    they land in the `History` and in other callbacks. When the overfitting
    rule of `kft.diagnose` first holds (the last `val_loss` at least
    `min_rise` above its minimum, `min_epochs` epochs after it, while the
    training loss kept falling), it emits one `kft.KerasTuneFTWarning`
    naming the epoch. State resets at `on_train_begin`, so one instance can
    serve several `fit` calls.

    Args:
        min_rise: relative rise of `val_loss` over its minimum that counts as
            overfitting. Defaults to `0.10`.
        min_epochs: epochs needed after the minimum. Defaults to `2`.
        verbose: `0` quiet, `1` prints the gap each epoch and the warning
            line. Defaults to `0`.

    Attributes:
        overfit_epoch: 1-based epoch where overfitting started (within the
            current `fit`), or `None`.
        history: the losses seen so far in the current `fit`.

    Example:

    >>> import numpy as np, keras, kerastune_ft as kft
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(loss="mse")
    >>> x, y = np.ones((8, 4)), np.zeros((8, 2))
    >>> monitor = kft.OverfittingMonitor()
    >>> h = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
    ...               callbacks=[monitor])
    >>> "gap_loss" in h.history
    True
    """

    def __init__(
        self, min_rise=OVERFIT_MIN_RISE, min_epochs=OVERFIT_MIN_EPOCHS, verbose=0
    ):
        super().__init__()
        check_number("min_rise", min_rise, low=0, low_inclusive=False)
        check_number("min_epochs", min_epochs, low=1, integer=True)
        check_number("verbose", verbose, low=0, high=2, integer=True)
        self.min_rise = min_rise
        self.min_epochs = min_epochs
        self.verbose = verbose
        self.history = {"loss": [], "val_loss": [], "epoch": []}
        self.overfit_epoch = None

    def on_train_begin(self, logs=None):
        self.history = {"loss": [], "val_loss": [], "epoch": []}
        self.overfit_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        loss, val_loss = logs.get("loss"), logs.get("val_loss")
        if loss is None or val_loss is None:
            return
        loss, val_loss = float(loss), float(val_loss)
        logs["gap_loss"] = val_loss - loss
        metric = _main_metric(logs)
        if metric and f"val_{metric}" in logs:
            logs[f"gap_{metric}"] = float(logs[metric]) - float(logs[f"val_{metric}"])
        self.history["loss"].append(loss)
        self.history["val_loss"].append(val_loss)
        self.history["epoch"].append(int(epoch) + 1)
        if self.verbose:
            print(
                f"OverfittingMonitor epoch {epoch + 1}: gap_loss={logs['gap_loss']:.4f}"
            )
        if self.overfit_epoch is not None:
            return
        found = find_overfitting(
            self.history["loss"],
            self.history["val_loss"],
            min_rise=self.min_rise,
            min_epochs=self.min_epochs,
        )
        if found is None:
            return
        epochs = self.history["epoch"]
        self.overfit_epoch = epochs[found["best"]]  # the epoch after the minimum
        message = (
            f"Overfitting from epoch {self.overfit_epoch}: val_loss rose "
            f"{_pct(found['rise'])} since its minimum at epoch {epochs[found['best'] - 1]} "
            f"while train_loss fell {_pct(found['train_fall'])}. Consider stopping "
            "(EarlyStopping(restore_best_weights=True)) or more regularization; "
            "kft.diagnose(history) explains more."
        )
        if self.verbose:
            print(message)
        warnings.warn(message, KerasTuneFTWarning, stacklevel=2)

    def get_config(self):
        return {
            "min_rise": self.min_rise,
            "min_epochs": self.min_epochs,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
