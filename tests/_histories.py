"""Synthetic training histories, one per verdict of `kft.diagnose`."""

import kerastune_ft as kft

OVERFIT = {
    "loss": [0.9, 0.6, 0.45, 0.35, 0.28, 0.22, 0.18, 0.15, 0.12, 0.1],
    "val_loss": [0.8, 0.6, 0.5, 0.46, 0.44, 0.42, 0.47, 0.5, 0.52, 0.54],
    "accuracy": [0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.98, 0.99],
    "val_accuracy": [0.6, 0.7, 0.75, 0.78, 0.8, 0.8, 0.79, 0.78, 0.78, 0.77],
}
UNDERFIT_FLAT = {
    "loss": [1.1, 1.09, 1.08, 1.08, 1.07],
    "val_loss": [1.1, 1.1, 1.09, 1.09, 1.09],
    "accuracy": [0.35, 0.36, 0.37, 0.37, 0.38],
    "val_accuracy": [0.34, 0.35, 0.35, 0.36, 0.36],
}
UNDERFIT_LOW_ACC = {
    "loss": [1.0, 0.8, 0.75, 0.74, 0.74, 0.74],
    "val_loss": [1.0, 0.82, 0.78, 0.77, 0.77, 0.775],
    "accuracy": [0.45, 0.55, 0.6, 0.61, 0.61, 0.61],
    "val_accuracy": [0.45, 0.55, 0.58, 0.6, 0.6, 0.6],
}
STILL_IMPROVING = {
    "loss": [1.0, 0.7, 0.5, 0.4, 0.33],
    "val_loss": [0.95, 0.72, 0.55, 0.46, 0.4],
    "accuracy": [0.5, 0.7, 0.8, 0.85, 0.88],
    "val_accuracy": [0.5, 0.68, 0.78, 0.82, 0.85],
}
FITS_WELL = {
    "loss": [0.9, 0.5, 0.35, 0.3, 0.29, 0.285, 0.28],
    "val_loss": [0.8, 0.45, 0.36, 0.33, 0.325, 0.33, 0.332],
    "accuracy": [0.6, 0.82, 0.88, 0.9, 0.9, 0.91, 0.91],
    "val_accuracy": [0.62, 0.83, 0.87, 0.89, 0.9, 0.89, 0.89],
}


def fine_tune_result(history, stages, best_epoch, restored=True):
    """A `kft.FineTuneResult` of `history` with `(name, first, last)` stages."""
    reports = [
        kft.training.StageReport(name, first, last, 1e-3, 10, 0.1, "none")
        for name, first, last in stages
    ]
    return kft.FineTuneResult(
        model=None,
        history=history,
        stages=reports,
        best_epoch=best_epoch,
        best_metrics={},
        monitor="val_loss",
        restored_best=restored,
    )
