"""The bad-input table, models group: builders, weights files, export, model files.

Every row runs through `_bad_inputs.check_bad_input`: the call must raise the
row's error, its message must name the argument or file at fault, and the
folder must be exactly as the setup left it (a refused export writes nothing,
not even a parent folder).
"""

import json
import zipfile

import keras
import numpy as np
import pytest
from _bad_inputs import BadInput, check_bad_input
from _tiny import TEXTS, tiny_bert_backbone, tiny_bert_preprocessor
from conftest import require_shared

import kerastune_ft as kft
from kerastune_ft import saving
from kerastune_ft.export import export

SHARED_035 = "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"
SMALL = {
    "weights": None,
    "input_shape": (32, 32, 3),
    "backbone_kwargs": {"alpha": 0.35},
}


# ------------------------------------------------------------------ setups


def _nothing(tmp):
    return tmp


def _image(**kwargs):
    """A call building a tiny MobileNetV2 classifier with `kwargs` changed."""

    def call(tmp):
        arguments = {"backbone": "mobilenet_v2", "num_classes": 2, **SMALL}
        arguments.update(kwargs)
        backbone = arguments.pop("backbone")
        num_classes = arguments.pop("num_classes")
        return kft.build_image_classifier(backbone, num_classes, **arguments)

    return call


def _image_weights(make, **kwargs):
    """A call building with `weights=make(tmp)`."""

    def call(path):
        arguments = {**SMALL, "weights": path, **kwargs}
        return kft.build_image_classifier("mobilenet_v2", 2, **arguments)

    def setup(tmp):
        return make(tmp)

    return setup, call


def _text_parts(tmp):
    return tiny_bert_backbone(num_layers=1), tiny_bert_preprocessor()


def _text(**kwargs):
    def call(parts):
        backbone, preprocessor = parts
        arguments = {"preprocessor": preprocessor, "train_texts": TEXTS, **kwargs}
        return kft.build_text_classifier(backbone, 2, **arguments)

    return call


def _h5(path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(64)])
    model.save_weights(path)
    return path


def _truncated_weights(tmp):
    path = _h5(tmp / "cut.weights.h5")
    path.write_bytes(path.read_bytes()[:900])
    return path


def _text_as_weights(tmp):
    path = tmp / "readme.weights.h5"
    path.write_text("<html>404 Not Found</html>\n")
    return path


def _empty_weights(tmp):
    path = tmp / "zero.weights.h5"
    path.write_bytes(b"")
    return path


def _weights_folder(tmp):
    (tmp / "wfolder").mkdir()
    return _h5(tmp / "wfolder" / "inner.weights.h5").parent


def _hdf5_suffix(tmp):
    return _h5(tmp / "a.weights.h5").rename(tmp / "net.hdf5")


def _shared_weights(tmp):
    return require_shared() / "weights" / SHARED_035


def _dense_model(tmp):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]
    )
    return tmp, model


def _run_folder(tmp):
    """A training run folder the user owns: a model, checkpoints, notes."""
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"model bytes")
    (run / "checkpoints" / "best.weights.h5").write_bytes(b"checkpoint")
    (run / "notes.txt").write_text("mine\n")
    return _dense_model(tmp)


def _existing(name):
    def setup(tmp):
        (tmp / name).write_bytes(b"keep me")
        return _dense_model(tmp)

    return setup


def _text_model_beside_a_folder(tmp):
    (tmp / "t.preprocessor").mkdir()
    (tmp / "t.preprocessor" / "vocab.txt").write_text("my vocabulary\n")
    backbone, preprocessor = _text_parts(tmp)
    model = kft.build_text_classifier(
        backbone, 2, preprocessor=preprocessor, sequence_length=16
    )
    return tmp, model


def _export(path, **kwargs):
    def call(context):
        tmp, model = context
        return export(model, tmp / path, **kwargs)

    return call


def _model_file(tmp, name="model.keras"):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp / name)
    return tmp / name


def _rezipped(name, change):
    """A `.keras` file whose members `change(member, data)` edits or drops."""

    def setup(tmp):
        source = _model_file(tmp, "source.keras")
        target = tmp / name
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
            for member in old.namelist():
                data = change(member, old.read(member))
                if data is not None:
                    new.writestr(member, data)
        return target

    return setup


def _foreign_class(member, data):
    if member != "config.json":
        return data
    config = json.loads(data)
    layer = config["config"]["layers"][0]
    layer.update(module=None, class_name="SpecialDense", registered_name="x>SD")
    return json.dumps(config).encode()


def _file(name, data):
    def setup(tmp):
        (tmp / name).write_bytes(data)
        return tmp / name

    return setup


def _folder(name):
    def setup(tmp):
        (tmp / name).mkdir()
        return tmp / name

    return setup


def _lambda_model(tmp):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x + 1)])
    model.save(tmp / "code.keras")
    return tmp / "code.keras"


def _load(**kwargs):
    return lambda path: saving.load_model(path, **kwargs)


# -------------------------------------------------------------------- rows

ROWS = [
    # Image builder arguments.
    BadInput(
        "image-dropout", _nothing, _image(dropout=1.5), ValueError, r"dropout=1\.5"
    ),
    BadInput("image-l2-negative", _nothing, _image(l2=-1), ValueError, r"l2=-1"),
    BadInput(
        "image-unknown-backbone",
        _nothing,
        _image(backbone="mobilenet_v22"),
        ValueError,
        r"backbone='mobilenet_v22'.*Did you mean 'mobilenet_v2'",
    ),
    BadInput(
        "image-num-classes-0",
        _nothing,
        _image(num_classes=0),
        ValueError,
        "num_classes=0",
    ),
    BadInput(
        "image-num-classes-float",
        _nothing,
        _image(num_classes=1.5),
        TypeError,
        r"num_classes=1\.5",
    ),
    BadInput(
        "image-input-shape-2d",
        _nothing,
        _image(input_shape=(32, 32)),
        ValueError,
        r"input_shape=\(32, 32\)",
    ),
    BadInput(
        "image-input-shape-gray",
        _nothing,
        _image(input_shape=(32, 32, 1)),
        ValueError,
        r"input_shape=\(32, 32, 1\).*color_mode",
    ),
    BadInput(
        "image-freeze-out-of-range",
        _nothing,
        _image(freeze=500),
        ValueError,
        r"freeze=500.*154",
    ),
    BadInput("image-seed-negative", _nothing, _image(seed=-1), ValueError, r"seed=-1"),
    BadInput("image-seed-float", _nothing, _image(seed=0.5), TypeError, r"seed=0\.5"),
    BadInput("image-seed-huge", _nothing, _image(seed=2**40), ValueError, r"seed=\d+"),
    BadInput(
        "image-backbone-kwargs-weights",
        _nothing,
        _image(backbone_kwargs={"weights": "imagenet"}),
        ValueError,
        r"backbone_kwargs.*cannot set 'weights'",
    ),
    BadInput(
        "image-weights-typo",
        _nothing,
        _image(weights="imagnet"),
        ValueError,
        r"weights='imagnet'.*Did you mean 'imagenet'",
    ),
    # Weights files.
    BadInput(
        "weights-missing",
        *_image_weights(lambda tmp: tmp / "gone.weights.h5"),
        ValueError,
        r"weights=.*gone\.weights\.h5.*does not exist",
    ),
    BadInput(
        "weights-truncated",
        *_image_weights(_truncated_weights),
        ValueError,
        r"`weights` file .*cut\.weights\.h5.*truncated",
    ),
    BadInput(
        "weights-not-hdf5",
        *_image_weights(_text_as_weights),
        ValueError,
        r"`weights` file .*readme\.weights\.h5.*not an HDF5",
    ),
    BadInput(
        "weights-empty",
        *_image_weights(_empty_weights),
        ValueError,
        r"`weights` file .*zero\.weights\.h5.*empty",
    ),
    BadInput(
        "weights-folder",
        *_image_weights(_weights_folder),
        ValueError,
        r"`weights` is a folder.*wfolder.*inner\.weights\.h5",
    ),
    BadInput(
        "weights-suffix",
        *_image_weights(_hdf5_suffix),
        ValueError,
        r"`weights`.*net\.hdf5",
    ),
    BadInput(
        "weights-other-alpha",
        *_image_weights(_shared_weights, backbone_kwargs={"alpha": 1.0}),
        ValueError,
        rf"`weights` file .*{SHARED_035}.*another architecture",
    ),
    BadInput(
        "weights-other-family",
        _shared_weights,
        lambda path: kft.build_image_classifier(
            "efficientnet_b0", 2, weights=path, input_shape=(32, 32, 3)
        ),
        ValueError,
        rf"`weights` file .*{SHARED_035}.*EfficientNet.*another architecture",
    ),
    # Text builder arguments.
    BadInput(
        "text-dropout", _text_parts, _text(dropout=1.5), ValueError, r"dropout=1\.5"
    ),
    BadInput("text-seed", _text_parts, _text(seed=-3), ValueError, r"seed=-3"),
    BadInput(
        "text-sequence-length",
        _text_parts,
        _text(sequence_length=4),
        ValueError,
        r"sequence_length=4",
    ),
    BadInput("text-freeze", _text_parts, _text(freeze=9), ValueError, r"freeze=9"),
    BadInput(
        "text-no-preprocessor",
        _text_parts,
        lambda parts: kft.build_text_classifier(parts[0], 2),
        TypeError,
        r"preprocessor=None",
    ),
    # Export.
    BadInput(
        "export-saved-model-into-run-folder",
        _run_folder,
        _export("run", format="saved_model"),
        ValueError,
        r"run'.*not empty.*overwrite=True",
    ),
    BadInput(
        "export-saved-model-onto-file",
        _existing("served"),
        _export("served", format="saved_model"),
        ValueError,
        r"`path` .*served.*is a file",
    ),
    BadInput(
        "export-saved-model-file-suffix",
        _dense_model,
        _export("out/m.keras", format="saved_model"),
        ValueError,
        r"SavedModel is a folder.*path=.*m\.keras",
    ),
    BadInput(
        "export-keras-existing-file",
        _existing("m.keras"),
        _export("m.keras"),
        ValueError,
        r"m\.keras' already exists.*overwrite=True",
    ),
    BadInput(
        "export-tflite-existing-file",
        _existing("m.tflite"),
        _export("m.tflite", format="tflite"),
        ValueError,
        r"m\.tflite' already exists",
    ),
    BadInput(
        "export-keras-onto-folder",
        lambda tmp: (tmp / "m.keras").mkdir() or _dense_model(tmp),
        _export("m.keras", overwrite=True),
        ValueError,
        r"`path` is a folder.*m\.keras",
    ),
    BadInput(
        "export-text-preprocessor-folder",
        _text_model_beside_a_folder,
        _export("t.tflite", format="tflite"),
        ValueError,
        r"t\.preprocessor'.*not empty",
    ),
    BadInput(
        "export-bad-format",
        _dense_model,
        _export("m", format="onnx"),
        ValueError,
        r"format='onnx'",
    ),
    BadInput(
        "export-quantize-without-tflite",
        _dense_model,
        _export("m", quantize="int8"),
        ValueError,
        r"`quantize` applies to format='tflite'.*quantize='int8'",
    ),
    BadInput(
        "export-int8-without-data",
        _dense_model,
        _export("m.tflite", format="tflite", quantize="int8"),
        ValueError,
        r"representative_data",
    ),
    BadInput(
        "export-int8-empty-data-new-folder",
        _dense_model,
        _export(
            "new/deeper/m.tflite",
            format="tflite",
            quantize="int8",
            representative_data=np.zeros((0, 4), "float32"),
        ),
        ValueError,
        r"`representative_data` is empty",
    ),
    BadInput(
        "export-wrong-suffix",
        _dense_model,
        _export("m.h5"),
        ValueError,
        r"path=.*m\.h5.*m\.keras",
    ),
    BadInput(
        "export-overwrite-type",
        _dense_model,
        _export("m.keras", overwrite="yes"),
        TypeError,
        r"overwrite='yes'",
    ),
    BadInput(
        "export-path-type",
        _dense_model,
        lambda context: export(context[1], 42),
        TypeError,
        r"path=42",
    ),
    # Model files (`kft.saving.load_model`).
    BadInput(
        "load-missing",
        lambda tmp: tmp / "nothing.keras",
        _load(),
        ValueError,
        r"nothing\.keras.*does not exist",
    ),
    BadInput("load-folder", _folder("run"), _load(), ValueError, r"run'.*is a folder"),
    BadInput(
        "load-wrong-suffix",
        _file("model.h5", b"\x89HDF\r\n\x1a\n"),
        _load(),
        ValueError,
        r"`\.keras` file.*model\.h5",
    ),
    BadInput(
        "load-random-bytes",
        _file("noise.keras", bytes(range(256)) * 4),
        _load(),
        ValueError,
        r"noise\.keras.*not a valid Keras model file",
    ),
    BadInput(
        "load-empty-file",
        _file("zero.keras", b""),
        _load(),
        ValueError,
        r"zero\.keras.*empty",
    ),
    BadInput(
        "load-corrupt-config",
        _rezipped(
            "broken.keras",
            lambda member, data: (
                b'{"class_name": ' if member == "config.json" else data
            ),
        ),
        _load(),
        ValueError,
        r"broken\.keras.*not a valid Keras model file.*config\.json",
    ),
    BadInput(
        "load-zip-without-config",
        _rezipped(
            "bare.keras", lambda member, data: None if member == "config.json" else data
        ),
        _load(),
        ValueError,
        r"bare\.keras.*not a valid Keras model file",
    ),
    BadInput(
        "load-damaged-weights",
        _rezipped(
            "hurt.keras",
            lambda member, data: data[:40] if member.endswith(".h5") else data,
        ),
        _load(),
        ValueError,
        r"hurt\.keras.*weights",
    ),
    BadInput(
        "load-foreign-class",
        _rezipped("foreign.keras", _foreign_class),
        _load(),
        ValueError,
        r"foreign\.keras.*'SpecialDense'.*import kerastune_ft.*custom_objects",
    ),
    BadInput(
        "load-lambda-layer",
        _lambda_model,
        _load(),
        ValueError,
        r"code\.keras.*Lambda.*safe_mode",
    ),
    BadInput(
        "load-compile-type",
        _model_file,
        _load(compile="yes"),
        TypeError,
        r"compile='yes'",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input(row, tmp_path):
    check_bad_input(row, tmp_path)


def test_row_ids_are_unique():
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
