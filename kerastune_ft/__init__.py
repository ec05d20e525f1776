"""kerastune_ft: fine-tune pretrained Keras 3 models on small datasets.

Usage:

    import kerastune_ft as kft

    data = kft.data.load_images("flowers/", image_size=(160, 160))
    model = kft.build_image_classifier("mobilenet_v2", len(data.class_names))
    model.fit(data.train, validation_data=data.val, epochs=5)

`import kerastune_ft` loads Keras and TensorFlow (without their start-up log
lines) and registers the project's serializable classes, so
`keras.models.load_model("model.keras")` works afterwards. The
`kerastune-ft` command line loads each public name on first use instead,
so that `--help` and configuration errors answer at once.
"""

import importlib
import os
import sys

from kerastune_ft._warnings import KerasTuneFTWarning

__version__ = "0.1.0"

# Public name -> the module that defines it (one name per object).
_NAMES = {
    "Diagnosis": "kerastune_ft.evaluation",
    "Evaluation": "kerastune_ft.evaluation",
    "FeatureCache": "kerastune_ft.training",
    "FineTuneHyperModel": "kerastune_ft.tuning",
    "FineTuneResult": "kerastune_ft.training",
    "OverfittingMonitor": "kerastune_ft.evaluation",
    "Report": "kerastune_ft.evaluation",
    "TextAugmenter": "kerastune_ft.augment.text",
    "augment_dataset": "kerastune_ft.augment.text",
    "build_image_classifier": "kerastune_ft.builders.image",
    "build_text_classifier": "kerastune_ft.builders.text",
    "cross_validate": "kerastune_ft.tuning",
    "describe_layers": "kerastune_ft.freezing",
    "diagnose": "kerastune_ft.evaluation",
    "evaluate": "kerastune_ft.evaluation",
    "export": "kerastune_ft.export",
    "fine_tune": "kerastune_ft.training",
    "tune": "kerastune_ft.tuning",
    "unfreeze": "kerastune_ft.training",
}
_NAMESPACES = (
    "augment",
    "backbones",
    "data",
    "distribute",
    "evaluation",
    "freezing",
    "saving",
    "training",
    "tuning",
)

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
    "saving",
    "training",
    "tune",
    "tuning",
    "unfreeze",
]


def __getattr__(name):
    """Loads a public name, or a public namespace, on first use."""
    from kerastune_ft._quiet import quiet_startup

    if name in _NAMESPACES:
        with quiet_startup():
            return importlib.import_module(f"kerastune_ft.{name}")
    if name in _NAMES:
        with quiet_startup():
            value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerastune_ft' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _started_as_command_line():
    # The `kerastune-ft` script imports this package before `main` runs; the
    # command loads what it needs itself, so that `--help` and config errors
    # do not wait seconds for TensorFlow.
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script.startswith("kerastune-ft")


if not _started_as_command_line():
    for _name in (*_NAMESPACES, *_NAMES):
        __getattr__(_name)
    del _name
