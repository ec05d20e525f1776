"""Hyperparameter search with keras-tuner, and cross-validation.

`FineTuneHyperModel` turns a kerastune_ft builder into a
`keras_tuner.HyperModel` whose trials train through `kft.fine_tune`, so every
trial gets staged unfreezing, early stopping with best-weight restoring, and
frozen-feature caching; keras-tuner's stock tuners run it. `kft.tune` runs
the search (optionally cross-validating every trial); `kft.cross_validate`
scores one recipe on scikit-learn folds. Both clear the Keras session between
models, because models built in a loop otherwise pile up in memory.

Modules: `hypermodel` (the HyperModel), `space` (the search space),
`search` (`tune`), `cross_validation` (`cross_validate`), `folds` (splits and
fold datasets), `results` (result objects), `importance` (which
hyperparameters matter).
"""

from kerastune_ft.tuning.cross_validation import cross_validate as cross_validate
from kerastune_ft.tuning.folds import TrialFolds, memory_usage_mb
from kerastune_ft.tuning.hypermodel import FineTuneHyperModel
from kerastune_ft.tuning.results import CrossValidationResult, FoldResult, TuneResult
from kerastune_ft.tuning.search import ALGORITHMS
from kerastune_ft.tuning.search import tune as tune
from kerastune_ft.tuning.space import DEFAULT_SPACE

# `tune` and `cross_validate` are public as `kft.tune` and `kft.cross_validate`
# (one public name per object).
__all__ = [
    "ALGORITHMS",
    "DEFAULT_SPACE",
    "CrossValidationResult",
    "FineTuneHyperModel",
    "FoldResult",
    "TrialFolds",
    "TuneResult",
    "memory_usage_mb",
]
