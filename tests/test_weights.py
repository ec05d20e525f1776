"""Where pretrained weights come from: local folder first, clear offline errors."""

import keras
import numpy as np
import pytest

import kerastune_ft as kft
from kerastune_ft.backbones import weights as w

FILE_224 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No Keras cache and no local weights folder unless a test sets one."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(w.ENV_WEIGHTS_DIR, raising=False)
    return tmp_path


def test_search_dirs_flat_and_cache_layout(isolated, monkeypatch):
    local = isolated / "weights"
    (local / "models").mkdir(parents=True)
    monkeypatch.setenv(w.ENV_WEIGHTS_DIR, str(local))
    assert w.weights_search_dirs() == [str(local), str(local / "models")]


def test_finds_exact_file_then_other_input_sizes(isolated, monkeypatch):
    local = isolated / "weights"
    local.mkdir()
    (local / FILE_224).write_bytes(b"x")
    monkeypatch.setenv(w.ENV_WEIGHTS_DIR, str(local))
    assert w.find_local_weights(FILE_224) == str(local / FILE_224)
    # No-top weights have the same shapes at every size: the 224 file serves 160.
    asked = FILE_224.replace("_224_", "_160_")
    assert w.find_local_weights(asked) == str(local / FILE_224)
    assert (
        w.find_local_weights("resnet50_weights_tf_dim_ordering_tf_kernels.h5") is None
    )


def test_offline_download_failure_explains_what_to_do(isolated, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(kft.backbones.WeightsNotFoundError) as info:
        with kft.backbones.local_weights_first():
            keras.applications.MobileNetV2(
                alpha=0.35,
                include_top=False,
                weights="imagenet",
                input_shape=(96, 96, 3),
            )
    message = str(info.value)
    assert (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in message
    )
    assert "KFT_WEIGHTS_DIR" in message and "weights=None" in message
    assert file_utils.get_file is offline  # the patch is undone


@pytest.mark.parametrize(
    "weights, error, match",
    [
        (3, TypeError, "Received: weights=3"),
        ("/no/such/file.weights.h5", ValueError, "does not exist"),
    ],
)
def test_check_weights_argument_errors(weights, error, match):
    with pytest.raises(error, match=match):
        w.check_weights_argument(weights)


def test_check_weights_argument_accepts(tmp_path):
    path = tmp_path / "a.weights.h5"
    path.write_bytes(b"x")
    assert w.check_weights_argument(None) is None
    assert w.check_weights_argument("imagenet") == "imagenet"
    assert w.check_weights_argument(path) == str(path)


@pytest.mark.slow
def test_imagenet_loads_offline_from_local_dir(shared_dir, isolated, monkeypatch):
    monkeypatch.setenv(
        w.ENV_WEIGHTS_DIR, str(shared_dir / "weights" / "keras_applications")
    )
    with kft.backbones.local_weights_first():
        model = keras.applications.MobileNetV2(
            alpha=0.35, include_top=False, weights="imagenet", input_shape=(160, 160, 3)
        )
    reference = keras.applications.MobileNetV2(
        alpha=0.35,
        include_top=False,
        input_shape=(160, 160, 3),
        weights=str(
            shared_dir / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"
        ),
    )
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
