"""`OverfittingMonitor`: the overfitting rule of `kft.diagnose` during `fit`."""

import warnings

import keras

from kerastune_ft._validation import check_number
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.evaluation import verdict as rules

__all__ = ["OverfittingMonitor"]


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
    >>> monitor = kft.evaluation.OverfittingMonitor()
    >>> h = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
    ...               callbacks=[monitor])
    >>> "gap_loss" in h.history
    True
    """

    def __init__(
        self,
        min_rise=rules.OVERFIT_MIN_RISE,
        min_epochs=rules.OVERFIT_MIN_EPOCHS,
        verbose=0,
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
        metric = rules.main_metric(logs)
        if metric and f"val_{metric}" in logs:
            logs[f"gap_{metric}"] = float(logs[metric]) - float(logs[f"val_{metric}"])
        self.history["loss"].append(loss)
        self.history["val_loss"].append(val_loss)
        self.history["epoch"].append(int(epoch) + 1)
        if self.verbose:
            print(
                f"OverfittingMonitor epoch {epoch + 1}: gap_loss={logs['gap_loss']:.4f}"
            )
        if self.overfit_epoch is None:
            self._check()

    def _check(self):
        found = rules.find_overfitting(
            self.history["loss"],
            self.history["val_loss"],
            min_rise=self.min_rise,
            min_epochs=self.min_epochs,
        )
        if found is None:
            return
        epochs = self.history["epoch"]
        self.overfit_epoch = epochs[found.best]  # the epoch after the minimum
        message = (
            f"Overfitting from epoch {self.overfit_epoch}: val_loss rose "
            f"{rules.pct(found.rise)} since its minimum at epoch "
            f"{epochs[found.best - 1]} while train_loss fell "
            f"{rules.pct(found.train_fall)}. Consider stopping "
            "(EarlyStopping(restore_best_weights=True)) or more regularization; "
            "kft.diagnose(history) explains more."
        )
        if self.verbose:
            print(message)
        warnings.warn(message, KerasTuneFTWarning, stacklevel=3)

    def get_config(self):
        return {
            "min_rise": self.min_rise,
            "min_epochs": self.min_epochs,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
