"""`fine_tune(recipe=...)`: the few-shot recipes are chosen by the data's size."""

import numpy as np
import pytest
import tensorflow as tf
from _tiny import LABELS, TEXTS, tiny_bert_backbone, tiny_bert_preprocessor, tiny_data
from _training_models import tiny_classifier

import kerastune_ft as kft
from kerastune_ft.training.regime import (
    FEW_SHOT_PER_CLASS,
    MAX_IMBALANCE,
    choose_regime,
)


def test_few_examples_get_a_linear_probe_without_validation(capsys):
    model = tiny_classifier()
    result = kft.fine_tune(model, tiny_data(n=24), seed=0)  # 8 per class, no val
    assert result.regime.recipe == "linear_probe"
    assert result.regime.smallest_class == 8 and result.regime.few_shot
    assert [s.name for s in result.stages] == ["linear probe"]
    assert result.monitor == "loss"  # no validation data: the training loss
    out = capsys.readouterr().out
    assert "Recipe linear_probe: 8 training examples in the rarest class" in out
    assert "recipe linear_probe" in repr(result)


def test_a_given_epoch_count_or_recipe_keeps_gradient_epochs():
    data = tiny_data(n=24)
    result = kft.fine_tune(tiny_classifier(), data, data, epochs=2, verbose=0)
    assert result.regime.recipe == "standard" and not result.regime.few_shot
    assert "`epochs` was given" in result.regime.reason
    assert [s.name for s in result.stages] == ["head"] and result.epochs_run == 2
    result = kft.fine_tune(
        tiny_classifier(), data, data, recipe="standard", verbose=0, seed=0
    )
    assert [s.name for s in result.stages] == ["head"]
    assert "recipe='standard' was asked for" in str(result.regime)


def test_a_probe_then_unfreezing_is_lp_ft():
    data = tiny_data(n=24)
    result = kft.fine_tune(
        tiny_classifier(), data, data, unfreeze={"top": 1, "epochs": 1}, verbose=0
    )
    assert [s.name for s in result.stages] == ["linear probe", "unfreeze top 1"]
    assert result.epochs_run == 2


def test_larger_data_keeps_the_standard_recipe_without_counting():
    n = 3 * (FEW_SHOT_PER_CLASS + 1)
    # Many batches: not counted (reading an image dataset decodes every file).
    many = 3 * MAX_IMBALANCE * FEW_SHOT_PER_CLASS + 16
    regime = choose_regime(tiny_classifier(), tiny_data(n=many, batch_size=16))
    assert regime.recipe == "standard" and regime.smallest_class is None
    # Just above the limit in one batch: counted exactly.
    regime = choose_regime(tiny_classifier(), tiny_data(n=n, batch_size=n))
    assert regime.recipe == "standard" and regime.smallest_class == 33
    assert "more than 32 training examples per class" in regime.reason


def test_an_imbalanced_set_counts_its_rarest_class():
    x, y = np.zeros((70, 8, 8, 3), "float32"), np.array([0] * 60 + [1] * 5 + [2] * 5)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(70)
    regime = choose_regime(tiny_classifier(), data)
    assert (regime.recipe, regime.smallest_class) == ("linear_probe", 5)


def test_models_a_probe_cannot_fit_keep_the_standard_recipe():
    plain = tiny_classifier()
    multi = kft.builders.TransferImageClassifier(
        plain.backbone, 3, multi_label=True, dropout=0.0, l2=0.0
    )
    regime = choose_regime(multi, tiny_data(n=24))
    assert regime.recipe == "standard" and "no linear probe" in regime.reason
    trainable = tiny_classifier()
    trainable.unfreeze("all")
    regime = choose_regime(trainable, tiny_data(n=24))
    assert regime.recipe == "standard" and "the backbone trains" in regime.reason


def test_few_texts_get_the_contrastive_recipe():
    model = kft.TransferTextClassifier(
        tiny_bert_backbone(), 2, preprocessor=tiny_bert_preprocessor()
    )
    data = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS)).batch(4)
    assert choose_regime(model, data).recipe == "contrastive"


def test_a_bad_recipe_names_the_argument():
    with pytest.raises(ValueError, match="Received: recipe='fast'"):
        kft.fine_tune(tiny_classifier(), tiny_data(), recipe="fast")


def test_the_diagnosis_says_which_recipe_and_why():
    result = kft.fine_tune(tiny_classifier(), tiny_data(n=24), seed=0, verbose=0)
    diagnosis = kft.diagnose(result)
    assert diagnosis.evidence["recipe"] == "linear_probe"
    assert "recipe linear_probe: 8 training examples in the rarest class" in (
        diagnosis.message
    )
    standard = kft.fine_tune(tiny_classifier(), tiny_data(), epochs=1, verbose=0)
    assert kft.diagnose(standard).evidence["recipe"] == "standard"
