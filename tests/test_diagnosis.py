"""kft.diagnose and kft.OverfittingMonitor: verdicts, evidence, suggestions.

Unit tests use synthetic histories, one per verdict, plus the edge cases
(1 epoch, no validation, NaN, stages). The slow tests train a frozen
MobileNetV2-0.35 head on 40 real flower photos: without regularization and
without early stopping it must be diagnosed "overfitting" naming the epoch;
regularized it must not.
"""

import json
import math
import warnings

import keras
import numpy as np
import pytest
from _tiny import tiny_model

import kerastune_ft as kft
from kerastune_ft.evaluation import diagnosis as diag_module

OVERFIT = {
    "loss": [0.9, 0.6, 0.45, 0.35, 0.28, 0.22, 0.18, 0.15, 0.12, 0.1],
    "val_loss": [0.8, 0.6, 0.5, 0.46, 0.44, 0.42, 0.47, 0.5, 0.52, 0.54],
    "accuracy": [0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.98, 0.99],
    "val_accuracy": [0.6, 0.7, 0.75, 0.78, 0.8, 0.8, 0.79, 0.78, 0.78, 0.77],
}
UNDERFIT_FLAT = {
    "loss": [1.1, 1.09, 1.08, 1.08, 1.07],
    "val_loss": [1.1, 1.1, 1.09, 1.09, 1.09],
    "accuracy": [0.35, 0.36, 0.37, 0.37, 0.38],
    "val_accuracy": [0.34, 0.35, 0.35, 0.36, 0.36],
}
UNDERFIT_LOW_ACC = {
    "loss": [1.0, 0.8, 0.75, 0.74, 0.74, 0.74],
    "val_loss": [1.0, 0.82, 0.78, 0.77, 0.77, 0.775],
    "accuracy": [0.45, 0.55, 0.6, 0.61, 0.61, 0.61],
    "val_accuracy": [0.45, 0.55, 0.58, 0.6, 0.6, 0.6],
}
STILL_IMPROVING = {
    "loss": [1.0, 0.7, 0.5, 0.4, 0.33],
    "val_loss": [0.95, 0.72, 0.55, 0.46, 0.4],
    "accuracy": [0.5, 0.7, 0.8, 0.85, 0.88],
    "val_accuracy": [0.5, 0.68, 0.78, 0.82, 0.85],
}
FITS_WELL = {
    "loss": [0.9, 0.5, 0.35, 0.3, 0.29, 0.285, 0.28],
    "val_loss": [0.8, 0.45, 0.36, 0.33, 0.325, 0.33, 0.332],
    "accuracy": [0.6, 0.82, 0.88, 0.9, 0.9, 0.91, 0.91],
    "val_accuracy": [0.62, 0.83, 0.87, 0.89, 0.9, 0.89, 0.89],
}


@pytest.mark.parametrize(
    "history, verdict, words",
    [
        (
            OVERFIT,
            "overfitting",
            ["overfitting from epoch 7", "rose 29% over 4 epochs"],
        ),
        (UNDERFIT_FLAT, "underfitting", ["train_loss fell only 3% in 5 epochs"]),
        (UNDERFIT_LOW_ACC, "underfitting", ["train accuracy ended at 0.610"]),
        (STILL_IMPROVING, "still_improving", ["still improving when stopped"]),
        (FITS_WELL, "fits_well", ["fits well", "best 0.325 at epoch 5"]),
    ],
)
def test_verdict_per_synthetic_history(history, verdict, words):
    d = kft.diagnose(history)
    assert d.verdict == verdict, d.message
    for word in words:
        assert word in d.message, d.message
    assert d.suggestions
    assert (d.overfit_epoch is not None) == (verdict == "overfitting")


def test_overfitting_message_carries_the_evidence():
    d = kft.diagnose(OVERFIT)
    assert d.overfit_epoch == 7 and d.best_epoch == 6
    # val_loss 0.42 -> 0.54 (+29%), train_loss 0.22 -> 0.10 (-55%).
    assert "0.420 at epoch 6 -> 0.540 at epoch 10" in d.message
    assert "train_loss fell 55%" in d.message
    assert "train accuracy is 0.990 vs val 0.770" in d.message
    # A plain history cannot say whether the best weights were restored.
    assert "the best epoch was 6" in d.message
    assert any("best at epoch 6" in s for s in d.suggestions)


def test_thresholds_are_the_documented_constants(monkeypatch):
    # val_loss ends 9% above its minimum: below OVERFIT_MIN_RISE (10%).
    history = {
        "loss": [1.0, 0.6, 0.5, 0.4, 0.35],
        "val_loss": [1.0, 0.6, 0.55, 0.58, 0.5995],
    }
    assert kft.diagnose(history).verdict != "overfitting"
    monkeypatch.setattr(diag_module, "OVERFIT_MIN_RISE", 0.05)
    # find_overfitting reads its default when called; diagnose passes none.
    found = diag_module.find_overfitting(
        history["loss"], history["val_loss"], min_rise=0.05
    )
    assert found["best"] == 3 and math.isclose(found["rise"], 0.09, abs_tol=1e-9)


def test_one_rising_epoch_is_not_a_trend():
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.0, 0.6, 0.9]}
    assert kft.diagnose(history).verdict != "overfitting"


def test_val_and_train_both_rising_is_not_overfitting():
    history = {"loss": [1.0, 0.5, 0.6, 0.8], "val_loss": [1.0, 0.5, 0.7, 0.9]}
    assert kft.diagnose(history).verdict != "overfitting"


def test_one_epoch():
    d = kft.diagnose({"loss": [0.7], "val_loss": [0.6], "accuracy": [0.5]})
    assert d.verdict == "still_improving"
    assert "only 1 usable epoch" in d.message
    assert d.best_epoch == 1 and len(d.epochs) == 1


def test_no_validation_metrics():
    d = kft.diagnose({"loss": [1.0, 0.5, 0.3, 0.3, 0.3, 0.3], "accuracy": [0.9] * 6})
    assert d.monitor == "loss"
    assert d.verdict == "fits_well"
    assert "no validation metrics" in d.message
    assert "gap_loss" not in d.epochs[0]


def test_nan_loss_is_reported_and_skipped():
    history = {
        "loss": [1.0, 0.6, 0.4, 0.3, float("nan")],
        "val_loss": [1.0, 0.7, 0.5, 0.45, float("nan")],
    }
    d = kft.diagnose(history)
    assert "NaN or missing at epoch(s) 5" in d.message
    assert d.epochs[4]["loss"] is None
    assert "NaN at epoch 5" in d.suggestions[0]
    json.dumps(d.to_dict())  # NaN becomes null, so this is strict JSON


def test_all_nan_is_diverged():
    d = kft.diagnose({"loss": [float("nan")] * 3, "val_loss": [float("nan")] * 3})
    assert d.verdict == "diverged"
    assert d.message.startswith("training diverged: the training loss became NaN")
    assert "do not use the last weights" in d.message


def test_a_diverged_fine_tune_result_says_so():
    result = kft.FineTuneResult(
        model=None,
        history={"loss": [1.0, 0.5, float("nan")], "val_loss": [1.0, 0.6, 0.9]},
        stages=[],
        best_epoch=2,
        best_metrics={"loss": 0.5, "val_loss": 0.6},
        monitor="val_loss",
        restored_best=True,
        diverged=True,
    )
    d = kft.diagnose(result)
    assert d.verdict == "diverged" and d.evidence["diverged_epoch"] == 3
    assert "weights of epoch 2, the best before, were restored" in d.message
    assert "NaN at epoch 3" in d.suggestions[0]


def test_gap_columns():
    d = kft.diagnose(OVERFIT)
    last = d.epochs[-1]
    assert math.isclose(last["gap_loss"], 0.54 - 0.1)
    assert math.isclose(last["gap_accuracy"], 0.99 - 0.77)


def _result(history, stages, best_epoch, restored=True):
    reports = [
        kft.training.StageReport(name, first, last, 1e-3, 10, 0.1, "none")
        for name, first, last in stages
    ]
    return kft.FineTuneResult(
        model=None,
        history=history,
        stages=reports,
        best_epoch=best_epoch,
        best_metrics={},
        monitor="val_loss",
        restored_best=restored,
    )


def test_fine_tune_result_uses_stages_and_restored_best():
    # Stage 2 starts at epoch 6 with an extra key (None before it), as
    # fine_tune merges histories.
    history = dict(OVERFIT)
    history["learning_rate"] = [None] * 5 + [1e-5] * 5
    result = _result(history, [("head", 1, 5), ("unfreeze top 20", 6, 10)], 6)
    d = kft.diagnose(result)
    assert d.verdict == "overfitting"
    assert "overfitting from epoch 7 (stage 'unfreeze top 20')" in d.message
    assert "best weights from epoch 6 were restored" in d.message
    assert d.restored_best is True
    assert [e["stage"] for e in d.epochs] == ["head"] * 5 + ["unfreeze top 20"] * 5
    assert any("began in stage 'unfreeze top 20'" in s for s in d.suggestions)
    no_restore = kft.diagnose(_result(OVERFIT, [("head", 1, 10)], 6, restored=False))
    assert "keeps the last epoch's weights" in no_restore.message


def test_keras_history_object():
    model, _ = tiny_model(), None
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 3
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0)
    d = kft.diagnose(history)
    assert len(d.epochs) == 2 and d.monitor == "val_loss"
    assert d.metric == "accuracy"


@pytest.mark.parametrize(
    "source, kwargs, error, match",
    [
        ([0.1, 0.2], {}, TypeError, "Received: list"),
        ({"val_loss": [0.1]}, {}, ValueError, "no 'loss'"),
        ({"loss": []}, {}, ValueError, "empty"),
        ({"loss": [0.1]}, {"monitor": "val_f1"}, ValueError, "monitor='val_f1'"),
    ],
)
def test_bad_input(source, kwargs, error, match):
    with pytest.raises(error, match=match):
        kft.diagnose(source, **kwargs)


def test_suggestions_follow_the_model():
    frozen = kft.build_image_classifier(
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
        dropout=0.1,
        l2=0.0,
    )
    d = kft.diagnose(OVERFIT, model=frozen)
    text = " | ".join(d.suggestions)
    assert "dropout from 0.1 to 0.3" in text
    assert "L2 on the head from 0 to 1e-3" in text
    assert "augmentation='standard'" in text
    assert "already frozen" in text

    tuned = kft.build_image_classifier(
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
        dropout=0.5,
        freeze=-10,
        augmentation="light",
    )
    text = " | ".join(kft.diagnose(OVERFIT, model=tuned).suggestions)
    assert "dropout from" not in text  # already 0.5
    assert "augmentation=" not in text  # already augments
    facts = diag_module.inspect_model(tuned)
    assert facts["augmentation"] is True
    assert f"{facts['trainable_units']} of {facts['backbone_units']}" in text
    assert 0 < facts["trainable_units"] <= 10

    under = " | ".join(kft.diagnose(UNDERFIT_FLAT, model=frozen).suggestions)
    assert "Unfreeze part of the backbone" in under
    assert "Lower the head's dropout from 0.1" in under


def test_plot_marks_stages_best_and_overfitting(tmp_path):
    from matplotlib.figure import Figure

    history = dict(OVERFIT)
    result = _result(history, [("head", 1, 5), ("unfreeze top 20", 6, 10)], 6)
    fig = kft.diagnose(result).plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # loss and accuracy
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "restored best (epoch 6)" in labels
    assert "overfitting (from epoch 7)" in labels
    assert any(t.get_text() == "unfreeze top 20" for t in ax.texts)
    path = tmp_path / "curves.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_str_html_and_dict():
    d = kft.diagnose(OVERFIT)
    text = str(d)
    assert text.startswith("Diagnosis: overfitting")
    assert "gap_loss" in text and "Suggestions:" in text
    html = d._repr_html_()
    assert "overfitting from epoch 7" in html and "data:image/png;base64," in html
    data = json.loads(json.dumps(d.to_dict()))
    assert data["verdict"] == "overfitting" and data["overfit_epoch"] == 7
    assert len(data["epochs"]) == 10


def test_monitor_for_a_maximized_metric():
    d = kft.diagnose(OVERFIT, monitor="val_accuracy")
    assert d.monitor == "val_accuracy"
    assert d.best_epoch == 5  # first epoch with the highest val_accuracy (0.80)
    assert d.verdict == "overfitting" and d.overfit_epoch == 7


# ---------------------------------------------------------------------------
# OverfittingMonitor
# ---------------------------------------------------------------------------


def _feed(monitor, history):
    monitor.on_train_begin()
    logs_seen = []
    for i in range(len(history["loss"])):
        logs = {k: v[i] for k, v in history.items()}
        monitor.on_epoch_end(i, logs)
        logs_seen.append(logs)
    return logs_seen


def test_monitor_warns_once_and_logs_the_gap():
    monitor = kft.OverfittingMonitor()
    with pytest.warns(
        kft.KerasTuneFTWarning, match="Overfitting from epoch 7"
    ) as caught:
        logs = _feed(monitor, OVERFIT)
    assert len([w for w in caught if "Overfitting" in str(w.message)]) == 1
    assert monitor.overfit_epoch == 7
    assert math.isclose(logs[-1]["gap_loss"], 0.44)
    assert math.isclose(logs[-1]["gap_accuracy"], 0.22)
    # It warns at epoch 8 (two epochs after the minimum, 19% above it).
    assert "val_loss rose 19%" in str(caught[0].message)


def test_monitor_resets_on_train_begin():
    monitor = kft.OverfittingMonitor()
    with pytest.warns(kft.KerasTuneFTWarning):
        _feed(monitor, OVERFIT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _feed(monitor, FITS_WELL)  # no warning: state was reset
    assert monitor.overfit_epoch is None
    with pytest.warns(kft.KerasTuneFTWarning):
        _feed(monitor, OVERFIT)  # and it warns again in a new fit


def test_monitor_verbose_prints(capsys):
    with pytest.warns(kft.KerasTuneFTWarning):
        _feed(kft.OverfittingMonitor(verbose=1), OVERFIT)
    out = capsys.readouterr().out
    assert "epoch 1: gap_loss=-0.1000" in out
    _feed(kft.OverfittingMonitor(), FITS_WELL)
    assert capsys.readouterr().out == ""


def test_monitor_in_fit_adds_gap_to_history():
    model = tiny_model()
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 3
    history = model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        verbose=0,
        callbacks=[kft.OverfittingMonitor()],
    )
    gaps = history.history["gap_loss"]
    expected = np.array(history.history["val_loss"]) - np.array(history.history["loss"])
    np.testing.assert_allclose(gaps, expected, rtol=1e-6)
    assert "gap_accuracy" in history.history


def test_monitor_serializes():
    monitor = kft.OverfittingMonitor(min_rise=0.2, min_epochs=3, verbose=1)
    config = keras.saving.serialize_keras_object(monitor)
    assert config["registered_name"] == "kerastune_ft>OverfittingMonitor"
    again = keras.saving.deserialize_keras_object(config)
    assert again.get_config() == {"min_rise": 0.2, "min_epochs": 3, "verbose": 1}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"min_rise": 0}, ValueError, "Received: min_rise=0"),
        ({"min_epochs": 0}, ValueError, "Received: min_epochs=0"),
        ({"min_epochs": 1.5}, TypeError, "Received: min_epochs=1.5"),
        ({"verbose": 3}, ValueError, "Received: verbose=3"),
    ],
)
def test_monitor_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kft.OverfittingMonitor(**kwargs)


# ---------------------------------------------------------------------------
# Real data: a frozen MobileNetV2-0.35 head on 40 flower photos (slow)
# ---------------------------------------------------------------------------

IMAGE_SIZE = (128, 128)
MOBILENET_FILE = "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"


@pytest.fixture(scope="module")
def tiny_flowers(shared_dir):
    root = shared_dir / "datasets" / "flowers"
    train = keras.utils.image_dataset_from_directory(
        root / "train", image_size=IMAGE_SIZE, batch_size=8, seed=0, verbose=False
    )
    val = keras.utils.image_dataset_from_directory(
        root / "val", image_size=IMAGE_SIZE, batch_size=8, seed=1, verbose=False
    )
    # 40 training and 160 validation photos, fixed by caching the first pass.
    # One batch size: the backbone traces once when features are cached.
    train, val = train.take(5).cache(), val.take(20).cache()
    assert sum(int(y.shape[0]) for _, y in train) == 40
    # Both runs share one frozen backbone: its features are computed once.
    return train, val, kft.training.FeatureCache()


def _flowers_run(shared_dir, tiny_flowers, *, dropout, l2, callbacks=(), **fit_kwargs):
    keras.utils.set_random_seed(0)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        5,
        weights=str(shared_dir / "weights" / MOBILENET_FILE),
        backbone_kwargs={"alpha": 0.35},
        input_shape=(*IMAGE_SIZE, 3),
        dropout=dropout,
        l2=l2,
    )
    train, val, cache = tiny_flowers
    result = kft.fine_tune(
        model,
        train,
        val,
        verbose=0,
        seed=0,
        callbacks=callbacks,
        feature_cache=cache,
        **fit_kwargs,
    )
    assert result.stages[0].cached == "train+val"
    return result


@pytest.mark.slow
def test_real_unregularized_run_is_diagnosed_overfitting(
    shared_dir, tiny_flowers, capsys
):
    monitor = kft.OverfittingMonitor()
    with pytest.warns(kft.KerasTuneFTWarning, match="Overfitting from epoch"):
        result = _flowers_run(
            shared_dir,
            tiny_flowers,
            dropout=0.0,
            l2=0.0,
            callbacks=[monitor],
            epochs=12,
            learning_rate=1e-2,
            schedule="constant",
            weight_decay=0.0,
            early_stopping=False,
        )
    d = kft.diagnose(result)
    with capsys.disabled():
        print(f"\nunregularized, 40 flowers, 12 epochs: {d.message}")
    assert d.verdict == "overfitting"
    assert d.overfit_epoch is not None and 2 <= d.overfit_epoch <= 10
    assert d.message.startswith(f"overfitting from epoch {d.overfit_epoch}:")
    assert monitor.overfit_epoch is not None
    assert monitor.overfit_epoch == d.overfit_epoch
    assert "gap_loss" in result.history
    assert any("dropout from 0 to 0.2" in s for s in d.suggestions)


@pytest.mark.slow
def test_real_regularized_run_is_not_overfitting(shared_dir, tiny_flowers, capsys):
    result = _flowers_run(
        shared_dir,
        tiny_flowers,
        dropout=0.5,
        l2=1e-2,
        epochs=25,
        learning_rate=1e-3,
        label_smoothing=0.1,
        early_stopping=True,
        patience=3,
    )
    d = kft.diagnose(result)
    with capsys.disabled():
        print(f"\nregularized, 40 flowers: {d.message}")
    assert d.verdict != "overfitting", d.message
    assert d.overfit_epoch is None
