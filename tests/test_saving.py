"""`kft.saving.load_model`: `.keras` files load safely, or fail naming the file."""

import json
import warnings
import zipfile

import keras
import numpy as np
import pytest
from _tiny import tiny_arrays, tiny_model

from kerastune_ft import saving


def _trained_model_file(tmp_path):
    """A compiled and trained tiny model saved with its optimizer state."""
    model = tiny_model()
    x, y = tiny_arrays(16)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    return model, x, path


def _file(path, data):
    path.write_bytes(data)
    return path


def _rewrite(source, target, change):
    """Copies a `.keras` zip, letting `change(name, data)` edit or drop members."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return target


def test_loads_without_compiling_and_without_the_optimizer_warning(tmp_path):
    model, x, path = _trained_model_file(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = saving.load_model(path)
    assert not [w for w in caught if "optimizer" in str(w.message).lower()]
    assert not loaded.compiled
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_compile_true_restores_the_optimizer(tmp_path):
    _, x, path = _trained_model_file(tmp_path)
    loaded = saving.load_model(str(path), compile=True)
    assert loaded.compiled and loaded.optimizer is not None


def test_loads_kerastune_ft_custom_objects(tmp_path):
    import kerastune_ft as kft

    # A tiny backbone: the claim is about the classes, not MobileNetV2.
    inputs = keras.Input((16, 16, 3))
    backbone = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    model = kft.build_image_classifier(backbone, 2, preprocessing="tf")
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, kft.builders.TransferImageClassifier)
    assert isinstance(loaded.preprocessor, kft.backbones.ImagePreprocessing)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing.keras", r"missing\.keras.*does not exist"),
        (lambda p: (p / "run").mkdir() or p / "run", r"run.*is a folder"),
        (lambda p: _file(p / "m.h5", b"x"), r"`\.keras` file.*m\.h5"),
        (
            lambda p: _file(p / "m.keras", b"\x00" * 64),
            r"m\.keras.*not a valid Keras model file",
        ),
        (lambda p: _file(p / "e.keras", b""), r"e\.keras.*empty"),
    ],
    ids=["missing", "folder", "suffix", "random-bytes", "empty"],
)
def test_path_errors_name_the_file(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=match):
        saving.load_model(path)


def test_corrupt_config_is_not_a_valid_model_file(tmp_path):
    _, _, path = _trained_model_file(tmp_path)
    bad = _rewrite(
        path,
        tmp_path / "bad.keras",
        lambda name, data: b"{not json" if name == "config.json" else data,
    )
    with pytest.raises(ValueError, match=r"bad\.keras.*not a valid Keras model file"):
        saving.load_model(bad)


def test_damaged_weights_name_the_file(tmp_path):
    _, _, path = _trained_model_file(tmp_path)
    bad = _rewrite(
        path,
        tmp_path / "w.keras",
        lambda name, data: b"garbage" if name.endswith(".h5") else data,
    )
    with pytest.raises(ValueError, match=r"w\.keras.*weights"):
        saving.load_model(bad)


def test_unknown_class_says_which_and_how_to_register(tmp_path):
    _, _, path = _trained_model_file(tmp_path)

    def foreign(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        config["config"]["layers"][1]["module"] = None
        config["config"]["layers"][1]["class_name"] = "FancyLayer"
        config["config"]["layers"][1]["registered_name"] = "mypkg>FancyLayer"
        return json.dumps(config).encode()

    bad = _rewrite(path, tmp_path / "foreign.keras", foreign)
    with pytest.raises(ValueError) as info:
        saving.load_model(bad)
    message = str(info.value)
    assert "foreign.keras" in message and "'FancyLayer'" in message
    assert "import kerastune_ft" in message and "custom_objects" in message


def test_lambda_layers_are_refused(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match=r"lambda\.keras.*Lambda"):
        saving.load_model(tmp_path / "lambda.keras")


def test_custom_objects_are_used(tmp_path):
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    model = keras.Sequential([keras.Input((2,)), Doubler(name="doubler")])
    model.save(tmp_path / "d.keras")
    with pytest.raises(ValueError, match="'Doubler'"):
        saving.load_model(tmp_path / "d.keras")
    loaded = saving.load_model(
        tmp_path / "d.keras", custom_objects={"Doubler": Doubler}
    )
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 2)), verbose=0), [[2, 2]])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"compile": "no"}, TypeError, "compile='no'"),
        ({"custom_objects": ["Doubler"]}, TypeError, "custom_objects"),
    ],
)
def test_argument_types(tmp_path, kwargs, error, match):
    _, _, path = _trained_model_file(tmp_path)
    with pytest.raises(error, match=match):
        saving.load_model(path, **kwargs)


def test_path_type(tmp_path):
    with pytest.raises(TypeError, match="path=3"):
        saving.load_model(3)
