"""Diagnostics and evaluation: is it overfitting, how good is it, on which domain.

`diagnose` turns a training history into a verdict with suggestions
(rules in `verdict`, suggestions in `advice`, model facts in
`inspection`), `OverfittingMonitor` watches for overfitting during `fit`,
`evaluate` measures a model on one or several test sets, and `Report`
writes both as one self-contained HTML page (jinja2 templates, `render`).
"""

from kerastune_ft.evaluation import plots
from kerastune_ft.evaluation.diagnosis import Diagnosis
from kerastune_ft.evaluation.diagnosis import diagnose as diagnose
from kerastune_ft.evaluation.metrics import Evaluation
from kerastune_ft.evaluation.metrics import evaluate as evaluate
from kerastune_ft.evaluation.monitor import OverfittingMonitor
from kerastune_ft.evaluation.report import Report as Report
from kerastune_ft.evaluation.tta import predict

# `diagnose`, `evaluate` and `Report` are public as `kft.diagnose`,
# `kft.evaluate` and `kft.Report` (one public name per object).
__all__ = [
    "Diagnosis",
    "Evaluation",
    "OverfittingMonitor",
    "plots",
    "predict",
]
