"""kerastune_ft: fine-tune pretrained Keras 3 models on small datasets.

Usage:

    import kerastune_ft as kft

    data = kft.data.load_images("flowers/", image_size=(160, 160))
    model = kft.build_image_classifier("mobilenet_v2", len(data.class_names))
    model.fit(data.train, validation_data=data.val, epochs=5)

`import kerastune_ft` loads Keras (and TensorFlow only when it is the Keras
backend, without its start-up log lines) and registers the project's
serializable classes, so `keras.models.load_model("model.keras")` works
afterwards. The `kerastune-ft` command line loads each public name on first
use instead, so that `--help` and configuration errors answer at once.
"""

import importlib
import os
import sys

from kerastune_ft._warnings import KerasTuneFTWarning

__version__ = "0.1.0"

# Public name -> the package that provides it. Each object has one public
# name: these verbs and the two model classes live here; the supporting types
# live in the namespaces below, each with its own `__all__`.
_NAMES = {
    "FineTuneResult": "kerastune_ft.training",
    "Report": "kerastune_ft.evaluation",
    "TransferImageClassifier": "kerastune_ft.builders",
    "TransferTextClassifier": "kerastune_ft.builders",
    "build_image_classifier": "kerastune_ft.builders",
    "build_text_classifier": "kerastune_ft.builders",
    "cross_validate": "kerastune_ft.tuning",
    "describe_layers": "kerastune_ft.freezing",
    "diagnose": "kerastune_ft.evaluation",
    "evaluate": "kerastune_ft.evaluation",
    "export": "kerastune_ft.export",
    "fine_tune": "kerastune_ft.training",
    "load_model": "kerastune_ft.saving",
    "run": "kerastune_ft.pipeline",
    "tune": "kerastune_ft.tuning",
    "unfreeze": "kerastune_ft.training",
}
_NAMESPACES = (
    "augment",
    "backbones",
    "config",
    "data",
    "distribute",
    "evaluation",
    "training",
    "tuning",
)

__all__ = [
    "FineTuneResult",
    "KerasTuneFTWarning",
    "Report",
    "TransferImageClassifier",
    "TransferTextClassifier",
    "__version__",
    "augment",
    "backbones",
    "build_image_classifier",
    "build_text_classifier",
    "config",
    "cross_validate",
    "data",
    "describe_layers",
    "diagnose",
    "distribute",
    "evaluate",
    "evaluation",
    "export",
    "fine_tune",
    "load_model",
    "run",
    "training",
    "tune",
    "tuning",
    "unfreeze",
]

# Names of version 0.1 that moved into a namespace: a clear error, not a guess.
_MOVED = {
    "Diagnosis": "evaluation.Diagnosis",
    "Evaluation": "evaluation.Evaluation",
    "FeatureCache": "training.FeatureCache",
    "FineTuneHyperModel": "tuning.FineTuneHyperModel",
    "OverfittingMonitor": "evaluation.OverfittingMonitor",
    "TextAugmenter": "augment.TextAugmenter",
    "augment_dataset": "augment.augment_dataset",
}


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
    if name in _MOVED:
        raise AttributeError(
            f"`kft.{name}` moved to `kft.{_MOVED[name]}` (each object has one "
            f"public name). Use kft.{_MOVED[name]}."
        )
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
