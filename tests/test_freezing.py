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
        "unit": 0,
    }
    assert rows[1]["params"] == 8 and rows[1]["trainable"]
    assert "d1" in printed[0] and "trainable" in printed[0]


def test_describe_layers_prints_nothing_by_default(capsys):
    model, _ = _nested()
    kft.describe_layers(model)
    assert capsys.readouterr().out == ""


def _tiny_bert():
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=20,
        num_layers=3,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
    )


def test_transformer_units_are_embeddings_then_blocks():
    split = kft.freezing.backbone_units(_tiny_bert())
    assert split.transformer
    assert split.names == [
        "embeddings",
        "transformer_layer_0",
        "transformer_layer_1",
        "transformer_layer_2",
    ]
    assert split.units[0] and all(len(u) == 1 for u in split.units[1:])


@pytest.mark.parametrize(
    "freeze, frozen_units",
    [("embeddings", 1), (0, 1), (1, 2), (-1, 3), (3, 4), ("none", 0), ("all", 4)],
)
def test_text_freeze_counts_blocks_after_the_embeddings(freeze, frozen_units):
    backbone = _tiny_bert()
    assert kft.freezing.freeze_backbone(backbone, freeze) == frozen_units
    split = kft.freezing.backbone_units(backbone)
    trainable = [all(la.trainable for la in unit) for unit in split.units]
    if frozen_units == len(split.units):
        assert not backbone.trainable
    else:
        assert trainable == [i >= frozen_units for i in range(len(split.units))]


def test_text_freeze_errors_count_blocks():
    with pytest.raises(ValueError, match="has 3 transformer blocks"):
        kft.freezing.freeze_backbone(_tiny_bert(), 4)


def test_batchnorm_stays_frozen_unless_asked():
    base = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Conv2D(2, 1),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Conv2D(2, 1),
        ],
        name="backbone",
    )
    kft.freezing.set_frozen_units(base, 0)
    assert not base.get_layer("bn").trainable and base.layers[0].trainable
    kft.freezing.set_frozen_units(base, 0, bn_trainable=True)
    assert base.get_layer("bn").trainable


def test_blocks_are_found_by_attribute_not_by_name():
    """A layer merely named like a block is no transformer block."""
    named = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(2, name="embeddings"),
            keras.layers.Dense(2, name="transformer_layer_0"),
        ]
    )
    assert not kft.freezing.backbone_units(named).transformer
    bert = _tiny_bert()
    split = kft.freezing.backbone_units(bert)
    assert [u[0] for u in split.units[1:]] == list(bert.transformer_layers)


def test_describe_layers_shows_the_freezing_units_of_a_transformer():
    bert = _tiny_bert()
    rows = kft.describe_layers(bert)
    by_name = {r["name"]: r["unit"] for r in rows}
    assert by_name["token_embedding"] == 0
    assert [by_name[f"transformer_layer_{i}"] for i in range(3)] == [1, 2, 3]
    printed = []
    kft.describe_layers(bert, print_fn=printed.append)
    assert "unit" in printed[0].splitlines()[0]


@pytest.mark.parametrize("top, frozen", [("all", 0), (0, 4), (1, 3), (4, 0)])
def test_unfreeze_top_counts_units_from_the_top(top, frozen):
    bert = _tiny_bert()
    expected = 4 - frozen
    assert kft.freezing.unfreeze_top(bert, top) == expected
    split = kft.freezing.backbone_units(bert)
    trainable = [any(la.trainable_weights for la in unit) for unit in split.units]
    assert trainable == [i >= frozen for i in range(4)]


@pytest.mark.parametrize(
    "top, error, match",
    [
        (5, ValueError, r"between 0 and 4\. Received: top=5.*describe_layers"),
        (-1, ValueError, "Received: top=-1"),
        ("some", TypeError, "Received: top='some'"),
        (True, TypeError, "Received: top=True"),
    ],
)
def test_unfreeze_top_errors_teach(top, error, match):
    with pytest.raises(error, match=match):
        kft.freezing.unfreeze_top(_tiny_bert(), top)


def test_count_params_is_the_one_count():
    model, inner = _nested()
    assert kft.freezing.count_params(model.trainable_weights) == 15 + 8 + 3
    inner.trainable = False
    assert kft.freezing.count_params(model.trainable_weights) == 3
    assert kft.freezing.count_params(model.non_trainable_weights) == 23


def test_get_backbone_prefers_the_attribute():
    model, inner = _nested()
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.backbone = other
    assert get_backbone(model) is other
