"""kerastune_ft: fine-tune pretrained Keras 3 models on small datasets.

Usage:

    import kerastune_ft as kft

    data = kft.data.load_images("flowers/", image_size=(160, 160))
    model = kft.build_image_classifier("mobilenet_v2", len(data.class_names))
    model.fit(data.train, validation_data=data.val, epochs=5)
"""

__version__ = "0.1.0"

from kerastune_ft import (
    augment,
    backbones,
    data,
    distribute,
    evaluation,
    freezing,
    training,
    tuning,
)
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.augment.text import TextAugmenter, augment_dataset
from kerastune_ft.builders.image import build_image_classifier
from kerastune_ft.builders.text import build_text_classifier
from kerastune_ft.evaluation import (
    Diagnosis,
    Evaluation,
    OverfittingMonitor,
    Report,
    diagnose,
    evaluate,
)
from kerastune_ft.export import export
from kerastune_ft.freezing import describe_layers
from kerastune_ft.training import FeatureCache, FineTuneResult, fine_tune, unfreeze
from kerastune_ft.tuning import FineTuneHyperModel, cross_validate, tune

__all__ = [
    "Diagnosis",
    "Evaluation",
    "FeatureCache",
    "FineTuneHyperModel",
    "FineTuneResult",
    "KerasTuneFTWarning",
    "OverfittingMonitor",
    "Report",
    "TextAugmenter",
    "__version__",
    "augment",
    "augment_dataset",
    "backbones",
    "build_image_classifier",
    "build_text_classifier",
    "cross_validate",
    "data",
    "describe_layers",
    "diagnose",
    "distribute",
    "evaluate",
    "evaluation",
    "export",
    "fine_tune",
    "freezing",
    "training",
    "tune",
    "tuning",
    "unfreeze",
]
