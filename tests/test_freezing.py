import keras
import pytest

import kerastune_ft as kft
from kerastune_ft.freezing import get_backbone, resolve_freeze_count

NAMES = [f"layer_{i}" for i in range(10)]


@pytest.mark.parametrize(
    "freeze, expected",
    [
        ("all", 10),
        ("none", 0),
        (0, 0),
        (3, 3),
        (10, 10),
        (-2, 8),
        (-10, 0),
        (0.0, 0),
        (0.5, 5),
        (1.0, 10),
        ("layer_0", 1),
        ("layer_4", 5),
    ],
)
def test_freeze_forms(freeze, expected):
    assert resolve_freeze_count(freeze, 10, names=NAMES) == expected


@pytest.mark.parametrize(
    "freeze, error, match",
    [
        (11, ValueError, r"freeze=11` is out of range.*has 10 layers.*describe_layers"),
        (-11, ValueError, r"between -10 and 10"),
        (1.5, ValueError, r"fraction.*Received: freeze=1.5"),
        (-0.1, ValueError, r"Received: freeze=-0.1"),
        (
            "layer_44",
            ValueError,
            r"Received: freeze='layer_44'.*Close matches: layer_4",
        ),
        (True, TypeError, "not a bool"),
        ([1], TypeError, "of type list"),
    ],
)
def test_freeze_errors_teach(freeze, error, match):
    with pytest.raises(error, match=match):
        resolve_freeze_count(freeze, 10, names=NAMES)


def _nested():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(2)],
        name="backbone",
    )
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, name="head")(inner(inputs))
    return keras.Model(inputs, outputs), inner


def test_get_backbone_finds_the_named_layer():
    model, inner = _nested()
    assert get_backbone(model) is inner
    assert get_backbone(inner) is inner


def test_get_backbone_rejects_non_models():
    with pytest.raises(TypeError, match="must be a keras.Model"):
        get_backbone("mobilenet")


def test_describe_layers_rows_and_table():
    model, inner = _nested()
    inner.layers[0].trainable = False
    printed = []
    rows = kft.describe_layers(model, print_fn=printed.append)
    assert [r["name"] for r in rows] == ["d1", inner.layers[1].name]
    assert rows[0] == {
        "index": 0,
        "name": "d1",
        "type": "Dense",
        "params": 15,
        "trainable": False,
    }
    assert rows[1]["params"] == 8 and rows[1]["trainable"]
    assert "d1" in printed[0] and "trainable" in printed[0]


def test_describe_layers_prints_nothing_by_default(capsys):
    model, _ = _nested()
    kft.describe_layers(model)
    assert capsys.readouterr().out == ""
