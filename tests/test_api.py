"""Pins the public API: what `import kerastune_ft as kft` offers."""

import kerastune_ft as kft

EXPECTED = {
    "FineTuneResult",
    "fine_tune",
    "training",
    "unfreeze",
    "KerasTuneFTWarning",
    "TextAugmenter",
    "__version__",
    "augment",
    "augment_dataset",
    "backbones",
    "build_image_classifier",
    "build_text_classifier",
    "data",
    "describe_layers",
    "freezing",
    "saving",
    "Diagnosis",
    "Evaluation",
    "FeatureCache",
    "FineTuneHyperModel",
    "OverfittingMonitor",
    "Report",
    "cross_validate",
    "diagnose",
    "distribute",
    "evaluate",
    "evaluation",
    "export",
    "tune",
    "tuning",
}


def test_all_is_pinned():
    assert set(kft.__all__) == EXPECTED


def test_every_exported_name_exists():
    for name in kft.__all__:
        assert getattr(kft, name) is not None, name


def test_public_callables_have_examples():
    # Docstrings with a runnable Example are part of the contract.
    for name in (
        "build_image_classifier",
        "build_text_classifier",
        "describe_layers",
        "fine_tune",
        "unfreeze",
        "diagnose",
        "evaluate",
        "export",
        "tune",
        "cross_validate",
    ):
        doc = getattr(kft, name).__doc__ or ""
        assert "Args:" in doc and "Returns:" in doc and "Example" in doc, name


def test_all_lists_every_public_name_once():
    # __all__ is written out by hand; the lazy loader serves exactly it.
    assert len(kft.__all__) == len(set(kft.__all__))
    assert set(kft._NAMES) | set(kft._NAMESPACES) | {
        "KerasTuneFTWarning",
        "__version__",
    } == set(kft.__all__)
