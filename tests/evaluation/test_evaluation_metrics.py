"""kft.evaluate: metrics (scikit-learn), ECE, confused pairs, top losses, shift.

Unit tests use a lookup "model" whose probabilities are fixed, so every
number can be checked by hand, and a tiny Keras model for the image path.
The real-weights evaluation (MiniLM on three domains) is part of
tests/test_text_real.py, which trains that model once.
"""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from _tiny import tiny_model

import kerastune_ft as kft
from kerastune_ft.evaluation.metrics import expected_calibration_error

TEXTS = ["great", "fine", "meh", "superb", "okay-ish", "awful?!"]
LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBS = np.array(
    [
        [0.9, 0.1],  # right, confidence 0.9
        [0.82, 0.18],  # right, 0.82
        [0.3, 0.7],  # WRONG (true 0), 0.7
        [0.17, 0.83],  # right, 0.83
        [0.38, 0.62],  # right, 0.62
        [0.95, 0.05],  # WRONG (true 1), 0.95: the most confidently wrong
    ]
)


class LookupModel:
    """Returns a fixed probability row per input text (anything with predict)."""

    def __init__(self, table):
        self.table = table
        self.calls = 0

    def predict(self, data, verbose=0):
        self.calls += 1
        rows = []
        for batch in data:
            for value in batch.numpy():
                key = value.decode() if isinstance(value, bytes) else value
                rows.append(self.table[key])
        return np.array(rows)


def _model(texts=TEXTS, probs=PROBS):
    return LookupModel(dict(zip(texts, probs, strict=True)))


def _dataset(texts, labels, batch_size=4):
    return tf.data.Dataset.from_tensor_slices((list(texts), labels)).batch(batch_size)


def test_metrics_by_hand():
    ev = kft.evaluate(_model(), _dataset(TEXTS, LABELS), class_names=["neg", "pos"])
    r = ev.results["test"]
    assert r["n"] == 6
    assert math.isclose(r["accuracy"], 4 / 6)
    # Each class: 2 TP, 1 FP, 1 FN -> precision = recall = F1 = 2/3.
    for key in ("precision_macro", "recall_macro", "f1_macro"):
        assert math.isclose(r[key], 2 / 3), key
    assert r["per_class"]["pos"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert r["confusion_matrix"] == [[2, 1], [1, 2]]
    # 15 bins: |1-0.9| + 2*|1-0.825| + |0-0.7| + |1-0.62| + |0-0.95|, over 6.
    assert math.isclose(r["ece"], (0.1 + 0.35 + 0.7 + 0.38 + 0.95) / 6)
    p_true = PROBS[np.arange(6), LABELS]
    assert math.isclose(r["loss"], float(np.mean(-np.log(p_true))))
    # Top losses: most confidently wrong first, raw text kept.
    top = r["top_losses"]
    assert [t["input"] for t in top] == ["awful?!", "meh"]
    assert top[0] == pytest.approx(
        {
            "index": 5,
            "input": "awful?!",
            "true": "pos",
            "predicted": "neg",
            "confidence": 0.95,
            "probability_of_true": 0.05,
            "loss": -math.log(0.05),
        }
    )
    pairs = r["most_confused"]
    assert {(p["true"], p["predicted"]) for p in pairs} == {
        ("neg", "pos"),
        ("pos", "neg"),
    }
    assert ev.domain_shift == []


def test_ece_helper():
    p = np.array([[0.9, 0.1], [0.82, 0.18], [0.3, 0.7], [0.62, 0.38]])
    assert math.isclose(expected_calibration_error(p, [0, 0, 1, 1]), 1.2 / 4)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, [0, 1]) == 0.0


def test_domain_shift_and_input_forms():
    other_texts = ["x1", "x2", "x3", "x4"]
    other_probs = np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9]])
    model = _model(TEXTS + other_texts, np.concatenate([PROBS, other_probs]))
    ev = kft.evaluate(
        model,
        {
            "in-domain": _dataset(TEXTS, LABELS),
            # (x, y) tuple with one-hot labels: 2 of 4 right.
            "other": (other_texts, np.eye(2)[[0, 1, 0, 1]]),
        },
    )
    assert ev.names == ["in-domain", "other"]
    assert ev.class_names == ["0", "1"]
    assert math.isclose(ev.results["other"]["accuracy"], 0.5)
    first, second = ev.domain_shift
    assert first["set"] == "in-domain" and first["accuracy_drop"] == 0
    assert math.isclose(second["accuracy_drop"], 4 / 6 - 0.5)
    assert math.isclose(second["accuracy_drop_relative"], (4 / 6 - 0.5) / (4 / 6))
    text = str(ev)
    assert "Domain shift (drop from in-domain)" in text
    assert "other: accuracy 0.500 (-0.167, -25.0%)" in text


def test_loaded_data_uses_its_val_split_and_class_names():
    texts = [f"text {i}" for i in range(20)]
    labels = np.arange(20) % 2
    data = kft.data.load_texts((texts, labels), val_split=0.5, seed=0)
    probs = np.array([[0.8, 0.2] if y == 0 else [0.3, 0.7] for y in labels])
    ev = kft.evaluate(_model(texts, probs), data)
    assert ev.results["test"]["n"] == len(data.examples["val"][0]) == 10
    assert ev.results["test"]["accuracy"] == 1.0
    assert ev.class_names == [str(c) for c in data.class_names]


def test_logits_and_single_sigmoid_outputs():
    logits = np.log(PROBS)  # softmax(log p) == p
    ev = kft.evaluate(_model(TEXTS, logits), (TEXTS, LABELS))
    assert math.isclose(ev.results["test"]["ece"], (0.1 + 0.35 + 0.7 + 0.38 + 0.95) / 6)
    sigmoid = PROBS[:, 1:]  # one unit: P(class 1)
    ev = kft.evaluate(_model(TEXTS, sigmoid), (TEXTS, LABELS))
    assert math.isclose(ev.results["test"]["accuracy"], 4 / 6)


def test_keras_image_model_matches_keras_evaluate():
    model = tiny_model()  # logits from a layer not named "predictions"
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (20, 8, 8, 3)).astype("float32")
    y = np.arange(20) % 3
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    expected = model.evaluate(data, verbose=0, return_dict=True)
    ev = kft.evaluate(model, data, top_losses=3)
    r = ev.results["test"]
    assert math.isclose(r["accuracy"], expected["accuracy"], abs_tol=1e-6)
    assert math.isclose(r["loss"], expected["loss"], rel_tol=1e-4)
    assert len(r["top_losses"]) == min(3, round((1 - r["accuracy"]) * 20))
    assert r["top_losses"][0]["input"].shape == (8, 8, 3)
    data_dict = json.loads(json.dumps(ev.to_dict()))
    assert data_dict["results"]["test"]["top_losses"][0]["input"] == {
        "shape": [8, 8, 3]
    }


def test_plots_return_figures(tmp_path):
    from matplotlib.figure import Figure

    model = _model(TEXTS + ["x"], np.concatenate([PROBS, [[0.5, 0.5]]]))
    ev = kft.evaluate(model, {"a": (TEXTS, LABELS), "b": (["x"], [1])})
    for fig in (
        ev.plot_confusion_matrix(),
        ev.plot_per_class_f1(),
        ev.plot_domain_shift(),
    ):
        assert isinstance(fig, Figure)
        path = tmp_path / "f.png"
        fig.savefig(path)
        assert path.read_bytes()[:4] == b"\x89PNG"
    cm = ev.plot_confusion_matrix("a")
    assert [t.get_text() for t in cm.axes[0].texts] == ["2", "1", "1", "2"]
    with pytest.raises(ValueError, match="Unknown test set 'c'"):
        ev.plot_confusion_matrix("c")
    single = kft.evaluate(_model(), (TEXTS, LABELS))
    with pytest.raises(ValueError, match="two or more test sets"):
        single.plot_domain_shift()


@pytest.mark.parametrize(
    "model, sets, kwargs, error, match",
    [
        ("no predict", (TEXTS, LABELS), {}, TypeError, "Received: str"),
        (None, {}, {}, ValueError, "empty dict"),
        (None, [1, 2, 3], {}, TypeError, "Received: list"),
        (None, (TEXTS, LABELS), {"class_names": ["a"]}, ValueError, "2 outputs"),
        (None, (TEXTS, LABELS[:5]), {}, ValueError, "6 inputs but 5 labels"),
        (None, (TEXTS, LABELS + 1), {}, ValueError, "labels up to 2"),
        (None, (TEXTS, LABELS), {"batch_size": 0}, ValueError, "batch_size=0"),
        (None, (TEXTS, LABELS), {"top_losses": -1}, ValueError, "top_losses=-1"),
    ],
)
def test_bad_input(model, sets, kwargs, error, match):
    with pytest.raises(error, match=match):
        kft.evaluate(_model() if model is None else model, sets, **kwargs)


def test_single_sigmoid_logit_and_tta_on_texts():
    # One logit unit: sigmoid(log(p / (1 - p))) == p; huge logits stay finite.
    p = PROBS[:, 1]
    ev = kft.evaluate(_model(TEXTS, np.log(p / (1 - p))[:, None]), (TEXTS, LABELS))
    assert math.isclose(ev.results["test"]["ece"], (0.1 + 0.35 + 0.7 + 0.38 + 0.95) / 6)
    extreme = np.array([[-1e4], [1e4]] * 3)
    with np.errstate(over="raise"):
        ev = kft.evaluate(_model(TEXTS, extreme), (TEXTS, LABELS))
    assert math.isclose(ev.results["test"]["accuracy"], 4 / 6)  # 0 1 0 1 0 1
    # Test-time augmentation is for images: refused on texts, naming `tta`.
    with pytest.raises(ValueError, match=r"for image models.*Received: tta="):
        kft.evaluate(_model(), (TEXTS, LABELS), tta=2)
    with pytest.raises(ValueError, match=r"Received: tta=0"):
        kft.evaluate(_model(), (TEXTS, LABELS), tta=0)
