"""kft.tuning.space and the space a FineTuneHyperModel searches (no training)."""

import keras_tuner
import pytest
from _tiny import tiny_builder

import kerastune_ft as kft
from kerastune_ft import tuning
from kerastune_ft.tuning import space as space_lib


@pytest.mark.parametrize(
    "space, error, match",
    [
        ({"dropuot": (0.0, 0.5)}, ValueError, "dropuot"),
        ({"dropout": (0.5, 0.1)}, ValueError, r"low <= high"),
        ({"dropout": (0.0, 0.5, "exp")}, ValueError, r"\(low, high, 'log'\)"),
        ({"learning_rate": (0.0, 1e-2, "log")}, ValueError, "log range needs low > 0"),
        ({"l2": []}, ValueError, "cannot be empty"),
        ({"augmentation": ["light"]}, ValueError, "builder has no `augmentation`"),
        ("dropout", TypeError, "must be a dict"),
    ],
)
def test_bad_space_is_rejected(space, error, match):
    with pytest.raises(error, match=match):
        kft.tuning.FineTuneHyperModel(tiny_builder, space=space)


def test_fixing_a_builder_argument_twice_is_rejected():
    with pytest.raises(ValueError, match="both fixed as a builder argument"):
        kft.tuning.FineTuneHyperModel(tiny_builder, dropout=0.2, space={"dropout": 0.3})


def test_unknown_fine_tune_argument_is_rejected():
    with pytest.raises(ValueError, match="has 'epoch', which kft.fine_tune"):
        kft.tuning.FineTuneHyperModel(tiny_builder, fine_tune_kwargs={"epoch": 3})


def test_builder_must_be_callable():
    with pytest.raises(TypeError, match="Received: builder='mobilenet_v2'"):
        kft.tuning.FineTuneHyperModel("mobilenet_v2")


def test_default_space_covers_the_issue_and_respects_the_builder():
    space = kft.tuning.FineTuneHyperModel(tiny_builder).space()
    # tiny_builder has no `augmentation` or `l1` argument: not searched.
    assert set(space) == set(tuning.DEFAULT_SPACE) - {"augmentation", "l1"}
    image = kft.tuning.FineTuneHyperModel(kft.build_image_classifier, "mobilenet_v2", 3)
    assert set(image.space()) == set(tuning.DEFAULT_SPACE)
    # Fixing an argument on the builder removes it from the space.
    assert (
        "dropout"
        not in kft.tuning.FineTuneHyperModel(tiny_builder, dropout=0.3).space()
    )


def test_space_entries_become_the_right_hyperparameters():
    hypermodel = kft.tuning.FineTuneHyperModel(
        tiny_builder,
        space={
            "dropout": (0.0, 0.5),
            "learning_rate": (1e-4, 1e-2, "log"),
            "l2": [0.0, 1e-3],
            "label_smoothing": 0.1,
            "batch_size": None,
            "freeze": ["all", 1],
        },
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    by_name = {p.name: p for p in hp.space}
    assert isinstance(by_name["dropout"], keras_tuner.engine.hyperparameters.Float)
    assert by_name["learning_rate"].sampling == "log"
    assert by_name["l2"].values == [0.0, 1e-3]
    assert hp.values["label_smoothing"] == 0.1
    assert isinstance(
        by_name["label_smoothing"], keras_tuner.engine.hyperparameters.Fixed
    )
    assert "batch_size" not in hp.values
    # Freeze depth is a unit count valid for this backbone ("all" = 3 units).
    assert by_name["freeze"].values == [3, 1]


def test_auto_depths_are_valid_unit_counts():
    hypermodel = kft.tuning.FineTuneHyperModel(tiny_builder)
    num = len(hypermodel.unit_names())
    assert num == 3  # input, two convolutions
    hp = keras_tuner.HyperParameters()
    hypermodel.hyperparameter_values(hp)
    by_name = {p.name: p for p in hp.space}
    # 100%, 90%, 75% of 3 units frozen; 0%, 10%, 25% unfrozen.
    assert by_name["freeze"].values == [3, 2]
    assert by_name["unfreeze"].values == [1, 0]


def test_no_second_stage_drops_its_learning_rate():
    hypermodel = kft.tuning.FineTuneHyperModel(tiny_builder, space={"unfreeze": "none"})
    hp = keras_tuner.HyperParameters()
    values = hypermodel.hyperparameter_values(hp)
    assert values["unfreeze"] == 0 and "fine_tune_learning_rate" not in values


def test_define_and_check_space_helpers():
    hp = keras_tuner.HyperParameters()
    assert space_lib.define(hp, "units", (1, 4)) in range(1, 5)
    assert isinstance(
        {p.name: p for p in hp.space}["units"], keras_tuner.engine.hyperparameters.Int
    )
    assert space_lib.define(hp, "same", (0.2, 0.2)) == 0.2
    assert space_lib.check_space(None) == {}
