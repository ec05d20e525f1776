"""Diagnostics and evaluation: is it overfitting, how good is it, on which domain.

`diagnose` turns a training history into a verdict with suggestions,
`OverfittingMonitor` watches for overfitting during `fit`, `evaluate`
measures a model on one or several test sets, and `Report` writes both as
one self-contained HTML page.
"""

from kerastune_ft.evaluation import plots
from kerastune_ft.evaluation.diagnosis import Diagnosis, OverfittingMonitor, diagnose
from kerastune_ft.evaluation.metrics import Evaluation, evaluate
from kerastune_ft.evaluation.report import Report

__all__ = [
    "Diagnosis",
    "Evaluation",
    "OverfittingMonitor",
    "Report",
    "diagnose",
    "evaluate",
    "plots",
]
