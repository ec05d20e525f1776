"""The training engine: `fine_tune` as a plan of stages and a loop.

Modules: `engine` (`fine_tune`, `unfreeze`), `stages` (the `Stage` types and
the planner), `data` (what a stage trains on), `cache` (the cached-feature
path, `FeatureCache`), `probe` and `contrastive` (stages that are not plain
gradient descent), `schedules`, `callbacks` (best weights across stages,
the epoch log), `state` (run state and resume), `results`, `checks`
(pre-training checks) and `losses` (label smoothing).
"""

from kerastune_ft.training.cache import FeatureCache
from kerastune_ft.training.contrastive import ContrastiveStage
from kerastune_ft.training.engine import fine_tune as fine_tune
from kerastune_ft.training.engine import unfreeze as unfreeze
from kerastune_ft.training.probe import LinearProbeStage
from kerastune_ft.training.regime import Regime
from kerastune_ft.training.results import FineTuneResult as FineTuneResult
from kerastune_ft.training.results import StageReport
from kerastune_ft.training.schedules import SCHEDULES
from kerastune_ft.training.stages import HeadStage, Stage, UnfreezeStage

# `fine_tune`, `unfreeze` and `FineTuneResult` are public as `kft.fine_tune`,
# `kft.unfreeze` and `kft.FineTuneResult` (one public name per object).
__all__ = [
    "SCHEDULES",
    "ContrastiveStage",
    "FeatureCache",
    "HeadStage",
    "LinearProbeStage",
    "Regime",
    "Stage",
    "StageReport",
    "UnfreezeStage",
]
