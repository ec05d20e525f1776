"""Where pretrained weights come from: local folder first, clear offline errors."""

import keras
import numpy as np
import pytest

import kerastune_ft as kft
from kerastune_ft import _compat
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
    file_utils = _compat.keras_file_utils()

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
    path = _real_h5(tmp_path / "a.weights.h5")
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


# ------------------------------------------------- bad weights files (issue 15)

SMALL = {"input_shape": (32, 32, 3), "backbone_kwargs": {"alpha": 0.35}}
SHARED_035 = "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"


def _real_h5(path):
    """A valid (small) Keras weights file."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(64)])
    model.save_weights(path)
    return path


def _truncated(tmp_path):
    path = _real_h5(tmp_path / "cut.weights.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_hdf5(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("these are not weights\n" * 20)
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.weights.h5"
    path.write_bytes(b"")
    return path


def _folder(tmp_path):
    folder = tmp_path / "weights_folder"
    folder.mkdir()
    _real_h5(folder / "inside.weights.h5")
    return folder


def _wrong_suffix(tmp_path):
    return _real_h5(tmp_path / "net.weights.h5").rename(tmp_path / "net.hdf5")


@pytest.mark.parametrize(
    "make, match",
    [
        (_truncated, r"cut\.weights\.h5.*(truncated|damaged)"),
        (_not_hdf5, r"notes\.weights\.h5.*not an HDF5"),
        (_empty, r"empty\.weights\.h5.*empty"),
        (_folder, r"is a folder.*weights_folder.*inside\.weights\.h5"),
        (_wrong_suffix, r"net\.hdf5.*\.weights\.h5"),
    ],
    ids=["truncated", "not-hdf5", "empty", "folder", "suffix"],
)
def test_bad_weights_file_is_a_clear_error(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=match) as info:
        kft.build_image_classifier("mobilenet_v2", 2, weights=path, **SMALL)
    assert "`weights`" in str(info.value)


@pytest.mark.parametrize(
    "backbone, kwargs",
    [
        ("mobilenet_v2", {"backbone_kwargs": {"alpha": 1.0}}),
        ("efficientnet_b0", {}),
    ],
    ids=["mobilenet_v2-alpha1", "efficientnet_b0"],
)
def test_weights_for_another_architecture(shared_dir, backbone, kwargs):
    path = shared_dir / "weights" / SHARED_035
    with pytest.raises(ValueError) as info:
        kft.build_image_classifier(
            backbone, 2, weights=path, input_shape=(32, 32, 3), **kwargs
        )
    message = str(info.value)
    assert SHARED_035 in message and "`weights`" in message
    assert "another architecture" in message


def test_legacy_weights_for_another_architecture(shared_dir):
    path = shared_dir / "weights" / "keras_applications" / FILE_224
    with pytest.raises(ValueError, match=f"{FILE_224}.*another architecture"):
        kft.build_image_classifier(
            "mobilenet_v2", 2, weights=path, **{"input_shape": (32, 32, 3)}
        )


def test_matching_weights_file_loads(shared_dir):
    path = shared_dir / "weights" / SHARED_035
    model = kft.build_image_classifier("mobilenet_v2", 2, weights=path, **SMALL)
    reference = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=str(path), input_shape=(32, 32, 3)
    )
    for a, b in zip(model.backbone.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
