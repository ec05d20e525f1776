"""What `kft.fine_tune` returns: one `StageReport` per stage, a `FineTuneResult`.

Result objects hold numbers only; rendering them (HTML, plots) lives in
`kerastune_ft.evaluation`.
"""

import dataclasses

import keras

__all__ = ["FineTuneResult", "StageReport"]


@dataclasses.dataclass
class StageReport:
    """What one training stage did.

    Attributes:
        name: `"head"` for stage 1, then `"unfreeze top N"` / `"unfreeze all"`.
        first_epoch: first epoch of the stage (1-based, counting across stages).
        last_epoch: last epoch run.
        learning_rate: peak learning rate.
        trainable_params: trainable parameters during the stage.
        seconds: wall time, feature caching included.
        cached: `"train+val"`, `"train (8 views)+val"` (augmented views),
            `"val"` or `"none"` (with `"train"` forms when there is no
            validation data).

    Example:

    >>> import kerastune_ft as kft
    >>> report = kft.training.StageReport("head", 1, 3, 1e-3, 6405, 0.4, "train+val")
    >>> report.last_epoch - report.first_epoch + 1
    3
    """

    name: str
    first_epoch: int
    last_epoch: int
    learning_rate: float
    trainable_params: int
    seconds: float
    cached: str


@dataclasses.dataclass
class FineTuneResult:
    """What `kft.fine_tune` returns.

    Attributes:
        model: the trained model, with the best weights restored.
        history: metrics per epoch, merged across stages (`{"loss": [...],
            "val_loss": [...], ...}`).
        stages: a `StageReport` per stage.
        best_epoch: the 1-based epoch whose weights were restored, or `None`
            when nothing was monitored.
        best_metrics: the metrics of that epoch.
        monitor: the metric that chose the best epoch.
        restored_best: whether the model holds the best epoch's weights
            (`True` with early stopping) or the last epoch's.
        diverged: the training loss became NaN or inf. Training stopped
            there; the model holds the last epoch with finite weights that
            was best (`best_epoch`), or the weights it started with when
            there was none (`best_epoch` is `None`). Never NaN weights.
        regime: the `kft.training.Regime`: the recipe `fine_tune` used for
            the head stage (gradient epochs, linear probe, contrastive) and
            why; `None` when the stages were run by hand.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> result = kft.FineTuneResult(
    ...     keras.Sequential([keras.layers.Dense(1)]), {"loss": [0.9, 0.5]},
    ...     [], best_epoch=2, best_metrics={"loss": 0.5}, monitor="loss")
    >>> result.epochs_run
    2
    """

    model: keras.Model
    history: dict
    stages: list
    best_epoch: int | None
    best_metrics: dict
    monitor: str
    restored_best: bool = True
    diverged: bool = False
    regime: object = None

    @property
    def epochs_run(self):
        """How many epochs ran, across stages."""
        return len(next(iter(self.history.values()), []))

    def __repr__(self):
        lines = [
            f"FineTuneResult: {self.epochs_run} epochs in {len(self.stages)} stage(s)"
        ]
        if self.regime is not None and self.regime.few_shot:
            lines.append(f"  recipe {self.regime}")
        for s in self.stages:
            lines.append(
                f"  {s.name}: epochs {s.first_epoch}-{s.last_epoch}, "
                f"lr {s.learning_rate:g}, {s.trainable_params:,} trainable params, "
                f"{s.seconds:.1f}s, cached: {s.cached}"
            )
        if self.diverged:
            lines.append("  training diverged (the loss became NaN or inf)")
        if self.best_epoch is not None:
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.best_metrics.items())
            lines.append(f"  best epoch {self.best_epoch} by {self.monitor}: {metrics}")
        return "\n".join(lines)
