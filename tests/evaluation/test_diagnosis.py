"""kft.diagnose's Diagnosis: epoch table, stages, inputs, plot, text/HTML/dict.

The rules are tested in test_verdict.py, the suggestions in
test_advice.py, the monitor in test_monitor.py. The slow tests train a frozen
MobileNetV2-0.35 head on 40 real flower photos: without regularization and
without early stopping it must be diagnosed "overfitting" naming the epoch;
regularized it must not.
"""

import json
import math

import keras
import numpy as np
import pytest
from _histories import OVERFIT, fine_tune_result
from _tiny import tiny_model

import kerastune_ft as kft


def test_gap_columns():
    d = kft.diagnose(OVERFIT)
    last = d.epochs[-1]
    assert math.isclose(last["gap_loss"], 0.54 - 0.1)
    assert math.isclose(last["gap_accuracy"], 0.99 - 0.77)


def test_fine_tune_result_uses_stages_and_restored_best():
    # Stage 2 starts at epoch 6 with an extra key (None before it), as
    # fine_tune merges histories.
    history = dict(OVERFIT)
    history["learning_rate"] = [None] * 5 + [1e-5] * 5
    result = fine_tune_result(history, [("head", 1, 5), ("unfreeze top 20", 6, 10)], 6)
    d = kft.diagnose(result)
    assert d.verdict == "overfitting"
    assert "overfitting from epoch 7 (stage 'unfreeze top 20')" in d.message
    assert "best weights from epoch 6 were restored" in d.message
    assert d.restored_best is True
    assert [e["stage"] for e in d.epochs] == ["head"] * 5 + ["unfreeze top 20"] * 5
    assert any("began in stage 'unfreeze top 20'" in s for s in d.suggestions)
    no_restore = kft.diagnose(
        fine_tune_result(OVERFIT, [("head", 1, 10)], 6, restored=False)
    )
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


def test_plot_marks_stages_best_and_overfitting(tmp_path):
    from matplotlib.figure import Figure

    history = dict(OVERFIT)
    result = fine_tune_result(history, [("head", 1, 5), ("unfreeze top 20", 6, 10)], 6)
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
    monitor = kft.evaluation.OverfittingMonitor()
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
