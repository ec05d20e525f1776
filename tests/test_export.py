"""`kft.export`: every format reloads and predicts like the original.

Exact for `.keras`, close for SavedModel, and for TFLite the agreement rate
(same predicted class) and the size reduction are measured and printed
(`pytest -s` shows them).
"""

import json
import os

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from _tiny import TEXTS, tiny_bert_backbone, tiny_bert_preprocessor

from kerastune_ft.evaluation.inspection import output_activation
from kerastune_ft.export import (
    EXPORT_MARKER,
    ExportResult,
    export,
    tflite_predict,
)


def small_image_model():
    """A conv net big enough (~40k weights) for quantization to shrink it."""
    backbone = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(32, 3, activation="relu", name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Conv2D(64, 3, activation="relu", name="c2"),
        ],
        name="backbone",
    )
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def images(n=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 16, 16, 3)).astype("float32")


def softmax(x):
    return tf.nn.softmax(x).numpy()


def tiny_text_model():
    import kerastune_ft as kft

    return kft.build_text_classifier(
        tiny_bert_backbone(num_layers=1),
        2,
        preprocessor=tiny_bert_preprocessor(),
        train_texts=TEXTS,
    )


def test_keras_export_reloads_exactly(tmp_path):
    model = small_image_model()
    x = images()
    result = export(model, tmp_path / "model")  # the suffix is added
    assert isinstance(result, ExportResult) and result.path.endswith("model.keras")
    reloaded = keras.models.load_model(result.path)
    np.testing.assert_array_equal(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_saved_model_serves_probabilities(tmp_path):
    model = small_image_model()
    x = images()
    result = export(model, tmp_path / "served", format="saved_model")
    assert output_activation(model) == "softmax"
    loaded = tf.saved_model.load(result.path)  # keep it: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, softmax(model.predict(x, verbose=0)), atol=1e-5)
    assert "softmax added" in result.outputs


def test_tflite_variants_agree_and_shrink(tmp_path):
    model = small_image_model()
    x = images(64)
    expected = softmax(model.predict(x, verbose=0))
    sizes, agreement = {}, {}
    for quantize in ("none", "float16", "dynamic", "int8"):
        result = export(
            model,
            tmp_path / f"m_{quantize}.tflite",
            format="tflite",
            quantize=quantize,
            representative_data=images(40, seed=1) if quantize == "int8" else None,
        )
        got = tflite_predict(result.path, x)
        assert got.shape == expected.shape
        sizes[quantize] = result.size_bytes
        agreement[quantize] = float(np.mean(got.argmax(1) == expected.argmax(1)))
        if quantize == "none":
            np.testing.assert_allclose(got, expected, atol=1e-5)
    for quantize in sizes:
        print(
            f"tflite {quantize:>8}: {sizes[quantize] / 1e3:7.1f} kB "
            f"({sizes[quantize] / sizes['none']:.2f}x of float32), "
            f"agreement {agreement[quantize]:.3f}"
        )
    assert sizes["float16"] < 0.7 * sizes["none"]
    assert sizes["dynamic"] < 0.5 * sizes["none"]
    assert sizes["int8"] < 0.5 * sizes["none"]
    assert agreement["float16"] >= 0.95 and agreement["dynamic"] >= 0.9
    assert agreement["int8"] >= 0.8


def test_text_model_exports(tmp_path):
    model = tiny_text_model()
    expected = softmax(model.predict(TEXTS, verbose=0))
    # SavedModel: raw strings in, the tokenizer inside.
    saved = export(model, tmp_path / "text_saved", format="saved_model")
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    loaded = tf.saved_model.load(saved.path)
    np.testing.assert_allclose(
        loaded.serve(tf.constant(TEXTS)).numpy(), expected, atol=1e-5
    )
    assert "raw strings" in saved.inputs
    # TFLite: token ids in; the note says the tokenizer is not inside and
    # where the saved preprocessor is.
    lite = export(model, tmp_path / "text.tflite", format="tflite")
    assert "token ids" in lite.inputs
    assert "Not exported: the tokenizer" in lite.notes[0]
    preprocessor_dir = tmp_path / "text.preprocessor"
    assert preprocessor_dir.is_dir() and str(preprocessor_dir) in lite.notes[0]
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        str(preprocessor_dir)
    )
    ids = {k: np.asarray(v) for k, v in preprocessor(tf.constant(TEXTS)).items()}
    np.testing.assert_allclose(tflite_predict(lite.path, ids), expected, atol=1e-5)
    # int8 calibrates on raw training texts (tokenized for it), e.g. the
    # (texts, labels) batches of kft.data.load_texts(...).train.
    batches = tf.data.Dataset.from_tensor_slices((TEXTS, [1, 0] * 4)).batch(3)
    int8 = export(
        model,
        tmp_path / "text_int8.tflite",
        format="tflite",
        quantize="int8",
        representative_data=batches,
    )
    got = tflite_predict(int8.path, ids)
    print(f"text int8 agreement {np.mean(got.argmax(1) == expected.argmax(1)):.3f}")
    assert got.shape == expected.shape


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"format": "onnx"},
            ValueError,
            "`format` must be one of 'keras', 'saved_model', 'tflite'",
        ),
        (
            {"format": "keras", "quantize": "int8"},
            ValueError,
            "applies to format='tflite' only",
        ),
        (
            {"format": "tflite", "quantize": "int4"},
            ValueError,
            "Received: quantize='int4'",
        ),
        (
            {"format": "tflite", "quantize": "int8"},
            ValueError,
            "calibrates activations on `representative_data`",
        ),
        (
            {"format": "tflite", "representative_data": np.zeros((2, 16, 16, 3))},
            ValueError,
            "only used with quantize='int8'",
        ),
        (
            {"format": "tflite", "num_calibration": 0},
            ValueError,
            "Received: num_calibration=0",
        ),
        (
            {"path": "model.h5"},
            ValueError,
            r"Received: path=.*model.h5.*Use .*model.keras",
        ),
    ],
)
def test_bad_arguments(kwargs, error, message, tmp_path):
    model = small_image_model()
    path = kwargs.pop("path", None)
    path = tmp_path / (path or "out")
    with pytest.raises(error, match=message):
        export(model, path, **kwargs)


def test_model_must_be_a_keras_model(tmp_path):
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        export("model.keras", tmp_path / "x.keras")


@pytest.mark.slow
@pytest.mark.heavy(60)  # seconds, about: the longest start first
def test_real_mobilenet_v2_exports(shared_dir, tmp_path, monkeypatch):
    import kerastune_ft as kft

    monkeypatch.setenv(
        "KFT_WEIGHTS_DIR", str(shared_dir / "weights" / "keras_applications")
    )
    data = kft.data.load_images(
        str(shared_dir / "datasets" / "flowers" / "val"),
        image_size=(96, 96),
        val_split=0.5,
        batch_size=32,
    )
    model = kft.build_image_classifier(
        "mobilenet_v2",
        data.num_classes,
        input_shape=(96, 96, 3),
        backbone_kwargs={"alpha": 0.35},
    )
    kft.fine_tune(model, data.train, data.val, epochs=3, verbose=0, seed=0)
    x = data.examples["val"][0][:128].astype("float32")
    expected = model.predict(x, verbose=0)
    # The .keras and SavedModel formats are proved on small models above;
    # here, what only a real network shows: what int8 costs in agreement.
    results = {}
    for quantize in ("none", "int8"):
        result = export(
            model,
            tmp_path / f"m_{quantize}.tflite",
            format="tflite",
            quantize=quantize,
            representative_data=data.train if quantize == "int8" else None,
        )
        got = tflite_predict(result.path, x)
        results[quantize] = (
            result.size_bytes,
            float(np.mean(got.argmax(1) == expected.argmax(1))),
        )
    for quantize, (size, agree) in results.items():
        print(
            f"MobileNetV2-0.35 flowers tflite {quantize}: {size / 1e6:.2f} MB "
            f"({size / results['none'][0]:.2f}x), agreement {agree:.3f} on {len(x)}"
        )
    assert results["none"][1] >= 0.99
    assert results["int8"][0] < 0.5 * results["none"][0]
    # Measured 0.81 (128 images): full-integer MobileNetV2-0.35 after a
    # 3-epoch head moves close calls; float32 TFLite agrees exactly.
    assert results["int8"][1] >= 0.75


# ------------------------------------------- nothing lost (issue 15, bug 1)


def dense_model():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]
    )
    return model


def user_run_folder(root):
    """A training run folder as a user has it: nothing in it is an export."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text("my notes\n")
    (root / "model.keras").write_bytes(b"pretend model bytes")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "epoch_1.weights.h5").write_bytes(b"ckpt")
    return root


def test_saved_model_refuses_a_folder_with_user_files(tmp_path):
    from _bad_inputs import snapshot

    run = user_run_folder(tmp_path / "run")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as info:
        export(dense_model(), run, format="saved_model")
    message = str(info.value)
    assert str(run) in message and "not empty" in message
    assert "overwrite=True" in message
    assert snapshot(tmp_path) == before


def test_saved_model_into_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = export(dense_model(), tmp_path / "empty", format="saved_model")
    loaded = tf.saved_model.load(result.path)
    assert loaded.serve(tf.zeros((1, 4))).shape == (1, 2)
    marker = json.loads((tmp_path / "empty" / EXPORT_MARKER).read_text())
    assert "saved_model.pb" in marker["entries"] and "variables" in marker["entries"]
    assert sorted(os.listdir(tmp_path)) == ["empty"]  # no temporary left over


def test_saved_model_re_exports_into_its_own_folder(tmp_path):
    export(dense_model(), tmp_path / "served", format="saved_model")
    (tmp_path / "served" / "README.txt").write_text("added by the user\n")
    model = dense_model()
    result = export(model, tmp_path / "served", format="saved_model")
    x = np.ones((1, 4), "float32")
    loaded = tf.saved_model.load(result.path)  # keep it: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, model.predict(x, verbose=0), atol=1e-6)
    assert (tmp_path / "served" / "README.txt").read_text() == "added by the user\n"


def test_saved_model_overwrite_keeps_unrelated_user_files(tmp_path):
    from _bad_inputs import snapshot

    run = user_run_folder(tmp_path / "run")
    (run / "saved_model.pb").write_bytes(b"stale")  # a name the export writes
    before = snapshot(run)
    result = export(dense_model(), run, format="saved_model", overwrite=True)
    after = snapshot(run)
    for key, value in before.items():
        if key != "saved_model.pb":
            assert after[key] == value, key
    assert after["saved_model.pb"] != before["saved_model.pb"]
    loaded = tf.saved_model.load(result.path)
    assert loaded.serve(tf.zeros((1, 4))).shape == (1, 2)
    # Now a marked export: re-exporting needs no overwrite=True.
    export(dense_model(), run, format="saved_model")
    assert snapshot(run)["notes.txt"] == before["notes.txt"]


def test_saved_model_refuses_a_file_and_a_file_suffix(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ValueError, match=r"taken.*is a file"):
        export(dense_model(), tmp_path / "taken", format="saved_model")
    with pytest.raises(ValueError, match=r"SavedModel is a folder.*m\.keras"):
        export(dense_model(), tmp_path / "m.keras", format="saved_model")
    assert sorted(os.listdir(tmp_path)) == ["taken"]


@pytest.mark.parametrize("format", ["keras", "tflite"])
def test_single_file_export_refuses_an_existing_file(tmp_path, format):
    path = tmp_path / f"m.{format}"
    path.write_bytes(b"precious")
    with pytest.raises(ValueError, match=r"m\.(keras|tflite).*already exists"):
        export(dense_model(), path, format=format)
    assert path.read_bytes() == b"precious"
    result = export(dense_model(), path, format=format, overwrite=True)
    assert path.read_bytes() != b"precious" and result.size_bytes > 0
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_failed_write_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    export(dense_model(), path)
    old = path.read_bytes()

    def crash(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt  # the process is stopped mid-write

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        export(dense_model(), path, overwrite=True)
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_refused_export_creates_no_parent_folder(tmp_path):
    with pytest.raises(ValueError, match="representative_data"):
        export(
            small_image_model(),
            tmp_path / "new" / "deeper" / "m.tflite",
            format="tflite",
            quantize="int8",
            representative_data=np.zeros((0, 16, 16, 3), "float32"),
        )
    assert os.listdir(tmp_path) == []


def test_text_tflite_refuses_an_existing_preprocessor_folder(tmp_path):
    (tmp_path / "text.preprocessor").mkdir()
    (tmp_path / "text.preprocessor" / "mine.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"text\.preprocessor.*not empty"):
        export(tiny_text_model(), tmp_path / "text.tflite", format="tflite")
    assert sorted(os.listdir(tmp_path)) == ["text.preprocessor"]
    assert os.listdir(tmp_path / "text.preprocessor") == ["mine.txt"]


def test_overwrite_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="Received: overwrite='yes'"):
        export(dense_model(), tmp_path / "m.keras", overwrite="yes")
