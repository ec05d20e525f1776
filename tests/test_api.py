"""Pins the public API: what `import kerastune_ft as kft` offers.

Each object has one public name: the verbs and the model classes at the top
level, the supporting types in a namespace (`kft.training`, `kft.data`, ...)
that declares its own `__all__`. No implementation module is exported whole.
"""

import types

import pytest

import kerastune_ft as kft

EXPECTED = {
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
}


def test_all_is_pinned():
    assert set(kft.__all__) == EXPECTED
    assert 15 <= len(kft.__all__) <= 30


def test_every_exported_name_exists():
    for name in kft.__all__:
        assert getattr(kft, name) is not None, name


def _namespaces():
    return [
        name for name in kft.__all__ if isinstance(getattr(kft, name), types.ModuleType)
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_namespace_declares_its_public_names(name):
    value = getattr(kft, name)
    if not isinstance(value, types.ModuleType):
        pytest.skip(f"kft.{name} is not a namespace")
    assert isinstance(getattr(value, "__all__", None), list), (
        f"kft.{name} is exported as a namespace, so it must declare __all__"
    )
    for member in value.__all__:
        assert hasattr(value, member), f"kft.{name}.{member} is listed but missing"


def test_each_object_has_one_public_name():
    names = {}
    for name in kft.__all__:
        value = getattr(kft, name)
        if isinstance(value, types.ModuleType) or name.startswith("__"):
            continue
        names.setdefault(id(value), []).append(f"kft.{name}")
    for space in _namespaces():
        module = getattr(kft, space)
        for member in module.__all__:
            value = getattr(module, member)
            if isinstance(value, types.ModuleType | str | int | float | tuple | dict):
                continue
            names.setdefault(id(value), []).append(f"kft.{space}.{member}")
    twice = [found for found in names.values() if len(found) > 1]
    assert not twice, f"objects with more than one public name: {twice}"


def test_moved_names_say_where_they_went():
    with pytest.raises(AttributeError, match="kft.training.FeatureCache"):
        kft.FeatureCache  # noqa: B018


def test_public_callables_have_examples():
    # Docstrings with a runnable Example are part of the contract.
    for name in kft.__all__:
        value = getattr(kft, name)
        if isinstance(value, types.ModuleType) or not callable(value):
            continue
        if name == "KerasTuneFTWarning":
            continue
        doc = value.__doc__ or ""
        assert "Example" in doc, name
        if isinstance(value, type):
            assert "Args:" in doc or "Attributes:" in doc, name
        else:
            assert "Args:" in doc and "Returns:" in doc, name


def test_all_lists_every_public_name_once():
    # __all__ is written out by hand; the lazy loader serves exactly it.
    assert len(kft.__all__) == len(set(kft.__all__))
    assert set(kft._NAMES) | set(kft._NAMESPACES) | {
        "KerasTuneFTWarning",
        "__version__",
    } == set(kft.__all__)
