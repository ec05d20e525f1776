"""`kft.training.LinearProbeStage`: a converged linear head on cached features.

Tiny frozen classifiers (no assets): the written Keras head predicts what
scikit-learn predicts, C is chosen by cross-validation, the refusals name
their argument, the stage logs one epoch as `fit` would and tells the
run's tracker. One slow test on real assets: flowers at 20 photos per
class, the issue's figure (#17: 0.736-0.739).
"""

import pathlib
import tempfile
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from _tiny import (
    LABELS,
    TEXTS,
    tiny_arrays,
    tiny_bert_backbone,
    tiny_bert_preprocessor,
    tiny_data,
    tiny_model,
)
from _training_models import stage_context, tiny_backbone
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

import kerastune_ft as kft
from kerastune_ft.training import cache as caching
from kerastune_ft.training import engine, probe
from kerastune_ft.training.data import CacheSettings

CS = [1e-3, 1e-1, 10.0, 1e3]


def _classifier(num_classes=3, **kwargs):
    """A frozen, compiled `TransferImageClassifier` on the tiny backbone."""
    kwargs.setdefault("l2", 0.0)
    model = kft.builders.TransferImageClassifier(
        tiny_backbone(),
        num_classes,
        preprocessor=keras.layers.Rescaling(1 / 255.0),
        **kwargs,
    )
    model.freeze("all")
    model.compile()
    return model


def _dataset(x, y, batch_size=16):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def _reference(model, dataset, folds=5, class_weight=None):
    """scikit-learn's probabilities, fitted as the stage is documented to fit."""
    if model.preprocessor is not None and kft.builders.is_text_model(model):
        dataset = dataset.map(lambda x, y: (model.preprocessor(x), y))
    cached = caching.materialize(model.feature_extractor(), dataset)
    y = np.asarray(cached.y)
    y = (y.argmax(-1) if y.ndim == 2 and y.shape[-1] > 1 else y).reshape(-1)
    x = cached.x.astype("float64")
    classifier = LogisticRegressionCV(
        Cs=CS,
        cv=StratifiedKFold(folds, shuffle=True, random_state=0),
        scoring="neg_log_loss",
        max_iter=1000,
        class_weight=class_weight,
        **probe._l2_arguments(),
    ).fit(x, y)
    return classifier.predict_proba(x), float(np.ravel(classifier.C_)[0])


def _probabilities(model, dataset):
    outputs = model.predict(dataset, verbose=0)
    if model.from_logits:
        return keras.ops.convert_to_numpy(keras.ops.softmax(outputs))
    if outputs.shape[-1] == 1:  # one sigmoid: P(class 1)
        return np.concatenate([1 - outputs, outputs], axis=-1)
    return outputs


@pytest.mark.parametrize(
    "kind", ["softmax", "logits", "two classes", "one sigmoid", "one-hot", "weighted"]
)
def test_the_written_head_predicts_what_sklearn_predicts(kind):
    num_classes = {"two classes": 2, "one sigmoid": 1}.get(kind, 3)
    x, y = tiny_arrays(48, max(num_classes, 2))
    kwargs = {"dropout": 0.3}  # Dropout is inactive at inference
    if kind == "logits":
        kwargs["from_logits"] = True
    if kind == "one sigmoid":
        kwargs["multi_label"] = True
        y = y[:, None].astype("float32")
    if kind == "one-hot":
        kwargs["label_mode"] = "categorical"
        y = np.eye(3, dtype="float32")[y]
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5} if kind == "weighted" else None
    model = _classifier(num_classes, **kwargs)
    data = _dataset(x, y)
    stage = kft.training.LinearProbeStage(Cs=CS)
    stage.run(stage_context(model, data, class_weight=class_weight))
    expected, chosen = _reference(model, data, class_weight=class_weight)
    assert stage.chosen_C == chosen
    np.testing.assert_allclose(_probabilities(model, data), expected, atol=1e-5)


def test_a_text_classifier_is_probed_on_preprocessed_tokens():
    model = kft.TransferTextClassifier(
        tiny_bert_backbone(), 2, preprocessor=tiny_bert_preprocessor(), freeze="all"
    )
    data = _dataset(np.array(TEXTS * 3), np.tile(LABELS, 3), batch_size=8)
    stage = kft.training.LinearProbeStage(Cs=CS, folds=3)
    stage.run(stage_context(model, data, data))
    expected, chosen = _reference(model, data, folds=3)
    assert stage.chosen_C == chosen
    np.testing.assert_allclose(_probabilities(model, data), expected, atol=1e-5)


def test_c_is_chosen_by_cross_validation_on_the_training_data():
    x, y = tiny_arrays(60, 3)
    noisy = np.random.default_rng(1).permutation(y)  # labels carry no signal
    chosen = []
    for labels in (y, noisy):
        stage = kft.training.LinearProbeStage(Cs=CS)
        stage.run(stage_context(_classifier(), _dataset(x, labels)))
        chosen.append(stage.chosen_C)
    assert chosen[0] > chosen[1] == min(CS), chosen


def test_folds_are_capped_and_one_example_falls_back_to_a_fixed_c():
    x, y = tiny_arrays(12, 3)
    messages = []
    stage = kft.training.LinearProbeStage(Cs=CS, folds=10)
    stage.run(stage_context(_classifier(), _dataset(x, y), messages=messages))
    assert "4-fold" in messages[-1]  # 4 examples per class
    y[[2, 5, 8]] = [0, 1, 0]  # class 2 keeps one example (index 11)
    messages.clear()
    stage = kft.training.LinearProbeStage(Cs=CS)
    stage.run(stage_context(_classifier(), _dataset(x, y), messages=messages))
    assert stage.chosen_C == probe.FALLBACK_C
    assert any(f"C={probe.FALLBACK_C}" in m for m in messages), messages


def test_history_has_the_keys_fit_writes_and_the_report_says_what_was_cached():
    x, y = tiny_arrays(48, 3)
    train, val = _dataset(x, y), _dataset(*tiny_arrays(30, 3, seed=1))
    fitted = kft.fine_tune(_classifier(), train, val, epochs=1, verbose=0)
    outcome = kft.training.LinearProbeStage().run(
        stage_context(_classifier(), train, val)
    )
    assert set(outcome.history) == set(fitted.history)
    assert all(len(v) == 1 for v in outcome.history.values())
    report = outcome.report
    assert (report.name, report.first_epoch, report.last_epoch) == (
        "linear probe",
        1,
        1,
    )
    assert (report.cached, report.learning_rate) == ("train+val", 0.0)
    assert report.trainable_params == 6 * 3 + 3  # 6 features, 3 classes
    alone = kft.training.LinearProbeStage().run(stage_context(_classifier(), train))
    assert alone.report.cached == "train"
    assert not any(k.startswith("val_") for k in alone.history)


def test_the_loop_runs_it_after_a_head_stage_and_the_tracker_gets_the_epoch():
    model = _classifier()
    data = tiny_data()
    context = stage_context(model, data, data)
    plan = [kft.training.HeadStage(epochs=2), kft.training.LinearProbeStage(Cs=CS)]
    result = engine.run_stages(context, plan)
    assert [s.name for s in result.stages] == ["head", "linear probe"]
    assert result.epochs_run == 3 and result.stages[1].first_epoch == 3
    val_loss = result.history["val_loss"]
    # The probe fits the training data (here also the validation data) to
    # convergence: its epoch is the best, and its weights are kept.
    assert result.best_epoch == 3 and val_loss[2] < min(val_loss[:2])
    assert result.best_metrics["val_loss"] == pytest.approx(val_loss[2])
    evaluated = model.evaluate(data, verbose=0, return_dict=True)["loss"]
    assert evaluated == pytest.approx(val_loss[2], abs=1e-5)


def test_a_feature_cache_in_the_settings_is_shared_with_fine_tune():
    data = tiny_data()
    feature_cache = kft.training.FeatureCache()
    cache = CacheSettings(feature_cache=feature_cache, seed=0)
    model = _classifier()
    kft.training.LinearProbeStage().run(stage_context(model, data, data, cache=cache))
    assert (feature_cache.misses, feature_cache.hits) == (1, 1)  # train is val
    kft.fine_tune(
        model, data, data, epochs=1, feature_cache=feature_cache, seed=0, verbose=0
    )
    assert feature_cache.misses == 1  # the same frozen features: no new pass


def test_the_written_model_reloads_with_safe_mode(tmp_path):
    model = _classifier(dropout=0.2)
    data = tiny_data()
    kft.training.LinearProbeStage().run(stage_context(model, data))
    path = tmp_path / "probe.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        reloaded.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize(
    "model, match",
    [
        (lambda: tiny_model(), "needs a transfer classifier.*Received: model of type"),
        (lambda: _classifier(head_units=(4,)), r"Received: head_units=\(4,\)"),
        (lambda: _classifier(multi_label=True), "Received: multi_label=True"),
    ],
    ids=["plain keras model", "hidden layers", "multi-label"],
)
def test_what_a_linear_probe_cannot_fit_is_refused(model, match):
    with pytest.raises(ValueError, match=match):
        kft.training.LinearProbeStage().run(stage_context(model(), tiny_data()))


def test_a_class_without_training_examples_is_refused():
    x, y = tiny_arrays(48, 3)
    with pytest.raises(ValueError, match=r"no training example of class\(es\) \[3\]"):
        kft.training.LinearProbeStage().run(
            stage_context(_classifier(4), _dataset(x, y))
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"Cs": 0}, "Cs"),
        ({"Cs": []}, r"Received: Cs=\[\]"),
        ({"Cs": [1.0, -1.0]}, "Cs"),
        ({"folds": 1}, "folds"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_arguments_are_refused_when_the_stage_is_made(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kft.training.LinearProbeStage(**kwargs)


FLOWERS_PER_CLASS = 20
MOBILENET_FILE = "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"


@pytest.mark.slow
@pytest.mark.heavy(50)  # seconds, about: the longest start first
def test_flowers_at_20_per_class_reach_the_issues_goal_with_the_defaults(shared_dir):
    # Issue #17: "flowers at 20 per class >= 0.74 with the defaults"; a
    # converged, strongly regularized linear head on cached features reached
    # 0.736-0.739 there. `fine_tune`'s defaults now pick that probe.
    started = time.perf_counter()
    flowers = shared_dir / "datasets" / "flowers"
    options = {"image_size": (160, 160), "val_split": 0.0, "seed": 0}
    with tempfile.TemporaryDirectory() as scratch:
        # Links to 20 photos per class: only those are decoded.
        subset = kft.data.link_per_class(
            flowers / "train", FLOWERS_PER_CLASS, pathlib.Path(scratch) / "few", seed=0
        )
        few = kft.data.load_images(str(subset), **options)
    assert set(few.counts["train"].values()) == {FLOWERS_PER_CLASS}
    photos = kft.data.load_images(str(flowers / "val"), **options)
    assert photos.class_names == few.class_names
    x_val, y_val = photos.examples["train"]  # every val photo, in a fixed order
    assert len(y_val) == 736
    val = tf.data.Dataset.from_tensor_slices((x_val.astype("float32"), y_val)).batch(32)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        5,
        weights=str(shared_dir / "weights" / MOBILENET_FILE),
        backbone_kwargs={"alpha": 0.35},
        input_shape=(160, 160, 3),
        seed=0,
    )
    result = kft.fine_tune(model, few.train, val, seed=0, verbose=0)
    accuracy = model.evaluate(val, verbose=0, return_dict=True)["accuracy"]
    print(
        f"flowers, {FLOWERS_PER_CLASS} per class, defaults ({result.regime.recipe}): "
        f"val_accuracy {accuracy:.4f}, {time.perf_counter() - started:.1f}s "
        f"(stage {result.stages[0].seconds}s)"
    )
    assert result.regime.recipe == "linear_probe"
    assert result.regime.smallest_class == FLOWERS_PER_CLASS
    # The head on cached features and the full model agree (up to one photo
    # whose top two probabilities tie within float32 rounding).
    assert result.history["val_accuracy"][0] == pytest.approx(accuracy, abs=1.5e-3)
    assert accuracy >= 0.74
