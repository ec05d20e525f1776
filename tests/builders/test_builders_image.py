"""Unit tests for kft.build_image_classifier and the image backbone registry.

Tiny inputs (32x32) and random weights; the real-weights proof is in
test_image_real.py.
"""

import importlib

import keras
import numpy as np
import pytest
from _model_checks import (
    check_contract,
    predict,
    run_builder_test,
    run_serialization_test,
)

import kerastune_ft as kft
from kerastune_ft import _compat
from kerastune_ft.backbones.image import IMAGE_BACKBONES, ImagePreprocessing
from kerastune_ft.builders import MacroScore, TransferImageClassifier
from kerastune_ft.builders.head import dtype_policy_scope
from kerastune_ft.freezing import count_params, freeze_backbone

SMALL = {
    "weights": None,
    "input_shape": (32, 32, 3),
    "backbone_kwargs": {"alpha": 0.35},
}
MOBILENET_V2_LAYERS = 154


def _images(n=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32")


def _tiny_backbone(size=32, name="tiny_cnn"):
    """A few-layer CNN: head and option tests do not need a real backbone."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(8, 3, name="conv_b")(x)
    return keras.Model(inputs, x, name=name)


def _bn_layers(model):
    return [
        layer
        for layer in model.backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _bn_statistics(model):
    return [
        keras.ops.convert_to_numpy(w).copy()
        for layer in _bn_layers(model)
        for w in layer.non_trainable_weights
    ]


# ---------------------------------------------------------------- registry


def test_registry_covers_every_keras_application():
    public = {
        name
        for name in dir(keras.applications)
        if name[0].isupper() and callable(getattr(keras.applications, name))
    }
    registered = {spec.constructor for spec in IMAGE_BACKBONES.values()}
    assert registered == public
    families = {spec.family for spec in IMAGE_BACKBONES.values()}
    assert {"MobileNet", "MobileNetV2", "MobileNetV3", "EfficientNet"} <= families
    assert len(kft.backbones.list_image_backbones("efficientnet")) == 8
    assert len(kft.backbones.list_image_backbones("efficientnetv2")) == 7
    assert kft.backbones.get_image_backbone_spec("efficientnet_b7").default_size == 600
    assert (
        kft.backbones.get_image_backbone_spec("EfficientNet-V2-S").default_size == 384
    )
    assert kft.backbones.get_image_backbone_spec("nasnet_large").default_size == 331
    assert kft.backbones.get_image_backbone_spec("xception").min_size == 71


@pytest.mark.parametrize("name", sorted(IMAGE_BACKBONES))
def test_registry_preprocessing_matches_keras_preprocess_input(name):
    """Every entry's mode equals what its Keras module's preprocess_input does."""
    spec = IMAGE_BACKBONES[name]
    module = importlib.import_module(
        getattr(keras.applications, spec.constructor).__module__
    )
    x = _images(2, 8)
    expected = keras.ops.convert_to_numpy(module.preprocess_input(x.copy()))
    if spec.preprocessing == "none":
        got = x
    else:
        got = keras.ops.convert_to_numpy(ImagePreprocessing(spec.preprocessing)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_unknown_backbone_lists_close_matches():
    with pytest.raises(ValueError, match="'mobilenet_v2'") as info:
        kft.build_image_classifier("mobilenet_v5", 3, weights=None)
    assert "kft.backbones.list_image_backbones()" in str(info.value)


def test_unknown_family_error():
    with pytest.raises(ValueError, match="Known families"):
        kft.backbones.list_image_backbones("alexnet")


# ------------------------------------------------- the builder contract


def test_frozen_mobilenet_contract(tmp_path):
    model = kft.build_image_classifier("mobilenet_v2", 3, **SMALL)
    assert isinstance(model, TransferImageClassifier)
    assert model.backbone.trainable is False
    x, y = _images(), np.array([0, 1, 2, 0, 1, 2])
    check_contract(model, x)
    reloaded = run_builder_test(
        model,
        x,
        y,
        num_outputs=3,
        tmp_path=tmp_path,
        expected_trainable_params=1280 * 3 + 3,
    )
    np.testing.assert_allclose(reloaded.predict(x, verbose=0).sum(axis=1), 1.0, 1e-5)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"accuracy", "precision", "recall", "f1"} <= set(logs)


def test_unfrozen_contract_keeps_batchnorm_statistics(tmp_path):
    """freeze="none": every conv trains, BN statistics stay pretrained."""
    model = kft.build_image_classifier("mobilenet_v2", 3, freeze="none", **SMALL)
    before = _bn_statistics(model)
    run_builder_test(
        model, _images(), np.array([0, 1, 2, 0, 1, 2]), num_outputs=3, tmp_path=tmp_path
    )
    for a, b in zip(before, _bn_statistics(model), strict=True):
        np.testing.assert_array_equal(a, b)
    conv = model.backbone.get_layer("Conv1")
    assert conv.trainable


def test_bn_trainable_lets_statistics_move():
    """The option exists and does what it says (so the test above can fail)."""
    model = kft.build_image_classifier(
        "mobilenet_v2", 3, freeze="none", bn_trainable=True, **SMALL
    )
    model.run_eagerly = True
    before = _bn_statistics(model)
    model.fit(_images(), np.array([0, 1, 2, 0, 1, 2]), epochs=1, verbose=0)
    moved = [
        not np.allclose(a, b)
        for a, b in zip(before, _bn_statistics(model), strict=True)
    ]
    assert any(moved)


@pytest.fixture(scope="module")
def mobilenet_model():
    return kft.build_image_classifier("mobilenet_v2", 2, compile=False, **SMALL)


@pytest.mark.parametrize(
    "freeze, frozen",
    [
        ("all", MOBILENET_V2_LAYERS),
        ("none", 0),
        (10, 10),
        (-10, MOBILENET_V2_LAYERS - 10),
        (0.5, MOBILENET_V2_LAYERS // 2),
        ("block_1_project_BN", 18),
    ],
)
def test_freeze_forms(mobilenet_model, freeze, frozen):
    assert freeze_backbone(mobilenet_model, freeze) == frozen
    rows = kft.describe_layers(mobilenet_model)
    assert len(rows) == MOBILENET_V2_LAYERS
    if freeze == "block_1_project_BN":
        assert rows[frozen - 1]["name"] == freeze
    backbone = mobilenet_model.backbone
    for row, layer in zip(rows, backbone.layers, strict=True):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert row["trainable"] == (row["index"] >= frozen and not is_bn), row


def test_builder_freeze_argument():
    model = kft.build_image_classifier(
        "mobilenet_v2", 2, freeze=-3, compile=False, **SMALL
    )
    flags = [row["trainable"] for row in kft.describe_layers(model)]
    # The last three layers: Conv_1, Conv_1_bn (BatchNorm stays frozen), out_relu.
    assert flags[-3:] == [True, False, True]
    assert not any(flags[:-3])


def test_freeze_out_of_range_says_how_many_layers():
    with pytest.raises(ValueError, match="mobilenet_v2 backbone has 154 layers"):
        kft.build_image_classifier("mobilenet_v2", 2, freeze=500, **SMALL)


def test_freeze_backbone_after_build(mobilenet_model):
    model = mobilenet_model
    freeze_backbone(model, "all")
    assert count_params(model.trainable_weights) == 1280 * 2 + 2
    assert freeze_backbone(model, -5) == MOBILENET_V2_LAYERS - 5
    assert count_params(model.trainable_weights) > 1280 * 2 + 2


# --------------------------------------------- preprocessing exactly once

FEATURE_CASES = [
    # Families that rescale inside themselves: all of them.
    "efficientnet_b0",
    "efficientnet_v2_b0",
    "convnext_tiny",
    "mobilenet_v3_small",
    # A sample of the others ("torch", DenseNet, is checked numerically for
    # every entry by test_registry_preprocessing_matches_keras_preprocess_input).
    "mobilenet_v2",  # tf
    "vgg16",  # caffe
]


@pytest.mark.parametrize("name", FEATURE_CASES)
def test_features_match_reference_model(name):
    """Our model's pooled features equal keras.applications' own model fed
    with its documented preprocess_input: preprocessing happens exactly once."""
    spec = kft.backbones.get_image_backbone_spec(name)
    shape = (32, 32, 3)
    model = kft.build_image_classifier(
        name, 2, weights=None, input_shape=shape, compile=False
    )
    constructor = getattr(keras.applications, spec.constructor)
    reference = constructor(include_top=False, weights=None, input_shape=shape)
    reference.set_weights(model.backbone.get_weights())
    module = importlib.import_module(constructor.__module__)

    x = _images(2, 32)
    ours = predict(model.feature_extractor(), x)
    expected = predict(reference, module.preprocess_input(x.copy()))
    np.testing.assert_allclose(ours, expected.mean(axis=(1, 2)), rtol=1e-3, atol=1e-4)


def test_include_preprocessing_false_needs_explicit_choice():
    with pytest.raises(ValueError, match="include_preprocessing=False"):
        kft.build_image_classifier(
            "mobilenet_v3_small",
            2,
            weights=None,
            input_shape=(32, 32, 3),
            backbone_kwargs={"include_preprocessing": False},
        )


# ------------------------------------------------------------- the head


@pytest.mark.parametrize(
    "pooling, layer_type",
    [
        ("avg", keras.layers.GlobalAveragePooling2D),
        ("max", keras.layers.GlobalMaxPooling2D),
        ("flatten", keras.layers.Flatten),
    ],
)
def test_pooling_and_hidden_layers(pooling, layer_type):
    model = kft.build_image_classifier(
        _tiny_backbone(),
        4,
        pooling=pooling,
        head_units=(16, 8),
        dropout=0.3,
        l1=1e-5,
        l2=1e-3,
        compile=False,
    )
    assert isinstance(model.pooling, layer_type)
    assert [type(layer).__name__ for layer in model.head.layers] == [
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert model.head.get_layer("head_dense_0").units == 16
    assert model.head.get_layer("head_dense_1").units == 8
    assert model.head.layers[0].rate == 0.3
    # Code written for the flat layout still finds the head's layers.
    assert model.get_layer("predictions") is model.head.layers[-1]
    regularizer = model.head.layers[-1].kernel_regularizer
    assert isinstance(regularizer, keras.regularizers.L1L2)
    assert regularizer.l1 == pytest.approx(1e-5)
    assert regularizer.l2 == pytest.approx(1e-3)
    assert model.output.shape == (None, 4)


@pytest.mark.parametrize(
    "kwargs, loss_type, activation",
    [
        ({}, keras.losses.SparseCategoricalCrossentropy, "softmax"),
        (
            {"label_mode": "categorical"},
            keras.losses.CategoricalCrossentropy,
            "softmax",
        ),
        ({"multi_label": True}, keras.losses.BinaryCrossentropy, "sigmoid"),
        ({"from_logits": True}, keras.losses.SparseCategoricalCrossentropy, "linear"),
    ],
)
def test_output_activation_matches_loss(kwargs, loss_type, activation):
    model = kft.build_image_classifier(_tiny_backbone(), 3, **kwargs)
    assert isinstance(model.loss, loss_type)
    assert model.loss.from_logits == kwargs.get("from_logits", False)
    assert model.head.layers[-1].activation.__name__ == activation
    assert model.from_logits == kwargs.get("from_logits", False)
    assert kft.builders.outputs_logits(model) == model.from_logits
    assert isinstance(model.optimizer, keras.optimizers.AdamW)


def test_multi_label_binary_single_output(tmp_path):
    model = kft.build_image_classifier(_tiny_backbone(), 1, multi_label=True)
    y = np.array([[0], [1], [1], [0], [1], [0]], dtype="float32")
    run_builder_test(model, _images(), y, num_outputs=1, tmp_path=tmp_path)


@pytest.mark.parametrize(
    "y_true, y_pred, kwargs",
    [
        ([0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 2, 1, 1, 0], {"label_mode": "int"}),
        ([0, 1, 1, 1, 0], [0, 1, 0, 1, 1], {"label_mode": "categorical"}),
    ],
)
def test_macro_scores_match_sklearn(y_true, y_pred, kwargs):
    from sklearn.metrics import f1_score, precision_score, recall_score

    num_classes = max(y_true + y_pred) + 1
    probabilities = np.eye(num_classes)[y_pred] * 0.8 + 0.1
    labels = y_true if kwargs["label_mode"] == "int" else np.eye(num_classes)[y_true]
    expected = {
        "precision": precision_score(y_true, y_pred, average="macro"),
        "recall": recall_score(y_true, y_pred, average="macro"),
        "f1": f1_score(y_true, y_pred, average="macro"),
    }
    for kind, value in expected.items():
        metric = MacroScore(kind, num_classes=num_classes, **kwargs)
        metric.update_state(np.array(labels), probabilities)
        assert float(metric.result()) == pytest.approx(value, abs=1e-6)
        clone = run_serialization_test(metric)
        assert clone.kind == kind and clone.num_classes == num_classes


def test_macro_scores_multi_label_logits():
    from sklearn.metrics import f1_score

    y_true = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    logits = np.array([[2.0, -1, 0.5], [-1, 3, 1], [1, -2, -1], [-3, -1, 2]])
    metric = MacroScore("f1", num_classes=3, multi_label=True, from_logits=True)
    metric.update_state(y_true, logits)
    expected = f1_score(y_true, (logits > 0).astype(int), average="macro")
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------- other backbone kinds


def test_ready_keras_model_backbone(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.Conv2D(8, 3, name="conv_b")(x)
    base = keras.Model(inputs, x, name="my_cnn")
    model = kft.build_image_classifier(base, 2, freeze=3)
    assert model.get_layer("backbone") is model.backbone
    assert [layer.trainable for layer in model.backbone.layers] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert base.name == "my_cnn"
    y = np.array([0, 1, 0, 1, 0, 1])
    run_builder_test(model, _images(), y, num_outputs=2, tmp_path=tmp_path)


def test_ready_model_with_explicit_preprocessing():
    base = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)], name="backbone"
    )
    model = kft.build_image_classifier(
        base, 2, preprocessing="tf", freeze="none", compile=False
    )
    assert isinstance(model.preprocessor, ImagePreprocessing)
    assert model.input.shape == (None, 8, 8, 3)


def test_augmentation_acts_in_training_only(tmp_path):
    model = kft.build_image_classifier(
        _tiny_backbone(), 2, augmentation="standard", dropout=0.0, seed=0
    )
    assert isinstance(model.augmentation, keras.Sequential)
    assert model.get_layer("augmentation") is model.augmentation
    # The augmentation is the only random part below the head.
    assert kft.builders.random_layers(model) == list(model.augmentation.layers)
    x = _images(4)
    inference = predict(model, x)
    np.testing.assert_allclose(predict(model, x), inference, atol=1e-6)
    trained = keras.ops.convert_to_numpy(model(x, training=True))
    assert not np.allclose(trained, inference, atol=1e-4)
    # Augmented views for caching: random with training=True, plain without.
    views = model.feature_extractor(augment=True)
    first = keras.ops.convert_to_numpy(views(x, training=True))
    second = keras.ops.convert_to_numpy(views(x, training=True))
    assert not np.allclose(first, second, atol=1e-4)
    np.testing.assert_allclose(
        predict(views, x), predict(model.feature_extractor(), x), atol=1e-6
    )
    reloaded = run_builder_test(
        model,
        _images(),
        np.array([0, 1, 0, 1, 0, 1]),
        num_outputs=2,
        tmp_path=tmp_path,
    )
    assert isinstance(reloaded.augmentation, keras.Sequential)


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "backbone, kwargs, error, match",
    [
        ("mobilenet_v2", {"num_classes": 0}, ValueError, "Received: num_classes=0"),
        ("mobilenet_v2", {"num_classes": 2.5}, TypeError, "num_classes=2.5"),
        ("mobilenet_v2", {"num_classes": "3"}, TypeError, "num_classes='3'"),
        ("mobilenet_v2", {"num_classes": 1}, ValueError, "multi_label=True"),
        ("mobilenet_v2", {"dropout": 1.5}, ValueError, "Received: dropout=1.5"),
        ("mobilenet_v2", {"dropout": -0.1}, ValueError, "Received: dropout=-0.1"),
        ("mobilenet_v2", {"l1": -1.0}, ValueError, "Received: l1=-1.0"),
        ("mobilenet_v2", {"l2": "big"}, TypeError, "l2='big'"),
        ("mobilenet_v2", {"pooling": "mean"}, ValueError, "pooling='mean'"),
        ("mobilenet_v2", {"head_units": (0,)}, ValueError, "head_units=0"),
        ("mobilenet_v2", {"head_units": "64"}, TypeError, "head_units='64'"),
        ("mobilenet_v2", {"label_mode": "sparse"}, ValueError, "label_mode='sparse'"),
        ("mobilenet_v2", {"preprocessing": "imagenet"}, ValueError, "'tf'"),
        ("mobilenet_v2", {"learning_rate": 0}, ValueError, "learning_rate=0"),
        ("mobilenet_v2", {"augmentation": "medium"}, ValueError, "'standard'"),
        ("mobilenet_v2", {"weights": "/no/such.h5"}, ValueError, "does not exist"),
        ("mobilenet_v2", {"input_shape": (16, 16, 3)}, ValueError, "at least 32x32"),
        ("xception", {"input_shape": (64, 64, 3)}, ValueError, "at least 71x71"),
        ("mobilenet_v2", {"input_shape": (32, 32, 1)}, ValueError, "Grayscale"),
        ("mobilenet_v2", {"input_shape": (32, 32, 4)}, ValueError, "alpha channel"),
        (
            "mobilenet_v2",
            {"input_shape": (32, 32)},
            ValueError,
            "height, width, channels",
        ),
        ("mobilenet_v2", {"input_shape": (32, 0, 3)}, ValueError, "positive ints"),
        ("mobilenet_v2", {"backbone_kwargs": [1]}, TypeError, "backbone_kwargs"),
        (
            "mobilenet_v2",
            {"backbone_kwargs": {"include_top": True}},
            ValueError,
            "cannot set 'include_top'",
        ),
        ("mobilenet_v2", {"backbone_kwargs": {"alpah": 1}}, TypeError, "alpah"),
        ("mobilenet_v2", {"freeze": "everything"}, ValueError, "freeze='everything'"),
        (3, {}, TypeError, "Received: backbone=3"),
        (_tiny_backbone, {"backbone_kwargs": {"alpha": 1}}, ValueError, "ready"),
        ("resnet_50x", {}, ValueError, "'resnet50'"),
        (
            "mobilenet_v2",
            {"mixed_precision": "bfloat16"},
            ValueError,
            "Received: mixed_precision='bfloat16'. Did you mean 'mixed_bfloat16'",
        ),
        ("mobilenet_v2", {"mixed_precision": 16}, TypeError, "mixed_precision=16"),
    ],
)
def test_bad_input_is_a_clear_error(backbone, kwargs, error, match):
    if callable(backbone):
        backbone = backbone()
    arguments = {"num_classes": 2, "weights": None, "input_shape": (32, 32, 3)}
    arguments.update(kwargs)
    num_classes = arguments.pop("num_classes")
    with pytest.raises(error, match=match):
        kft.build_image_classifier(backbone, num_classes, **arguments)


def test_missing_imagenet_weights_error_names_the_file(tmp_path, monkeypatch):
    file_utils = _compat.keras_file_utils()

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    # Simulate an offline machine even where the network works.
    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setenv(kft.backbones.ENV_WEIGHTS_DIR, str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(
        kft.backbones.WeightsNotFoundError,
        match="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5",
    ) as info:
        kft.build_image_classifier(
            "mobilenet_v2",
            2,
            input_shape=(96, 96, 3),
            backbone_kwargs={"alpha": 0.35},
        )
    assert "KFT_WEIGHTS_DIR" in str(info.value)


def test_labels_beyond_num_classes_fail_loudly():
    """num_classes too small for the labels cannot be known at build time;
    the first fit step must fail (not train on garbage)."""
    model = kft.build_image_classifier(_tiny_backbone(), 3)
    model.run_eagerly = True
    with pytest.raises(Exception, match="valid range"):
        model.fit(_images(4), np.array([0, 1, 5, 7]), verbose=0)


def test_keras_hub_preset_without_converter_warns(tmp_path):
    import json

    # A timm-layout preset folder whose config declares no preprocessing.
    config = {"architecture": "efficientnet_lite0", "num_classes": 10}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.warns(kft.KerasTuneFTWarning, match="no image converter"):
        model = kft.build_image_classifier(
            str(tmp_path), 2, weights=None, input_shape=(32, 32, 3), compile=False
        )
    assert model.backbone.name == "backbone"
    assert predict(model, _images(1)).shape == (1, 2)
    quiet = kft.build_image_classifier(
        str(tmp_path), 2, weights=None, preprocessing="tf", compile=False
    )
    assert isinstance(quiet.preprocessor, ImagePreprocessing)
    assert quiet.input.shape == (None, None, None, 3)


# ------------------------------------------------------------------ seed


def _seeded(seed, **kwargs):
    return kft.build_image_classifier(
        "mobilenet_v2",
        3,
        seed=seed,
        dropout=0.5,
        head_units=(8,),
        augmentation="light",
        **SMALL,
        **kwargs,
    )


def _seed_states(model):
    return [
        keras.ops.convert_to_numpy(layer.seed_generator.state).tolist()
        for layer in _compat.flatten_layers(model)
        if getattr(layer, "seed_generator", None) is not None
    ]


def test_same_seed_same_initial_weights_and_layer_seeds():
    first = _seeded(7)
    np.random.default_rng().random()  # unrelated randomness in between
    keras.random.normal((3,))
    second = _seeded(7)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _seed_states(first) and _seed_states(first) == _seed_states(second)
    other = _seeded(8)
    head = first.head.layers[-1].get_weights()[0]
    assert not np.array_equal(head, other.head.layers[-1].get_weights()[0])
    assert _seed_states(first) != _seed_states(other)


def test_same_seed_same_training():
    # Dropout and augmentation draw from the builder's seed. (A small CNN:
    # tracing MobileNetV2's training step twice costs half a minute here.)
    x, y = _images(8), np.arange(8) % 3
    weights = []
    for _ in range(2):
        keras.utils.set_random_seed(0)  # the same backbone weights
        model = kft.build_image_classifier(
            _tiny_backbone(),
            3,
            seed=3,
            dropout=0.5,
            head_units=(8,),
            augmentation="light",
        )
        model.fit(x, y, epochs=2, batch_size=4, verbose=0)
        weights.append(model.head.layers[-1].get_weights()[0])
    np.testing.assert_array_equal(weights[0], weights[1])


@pytest.mark.parametrize(
    "seed, error",
    [(-1, ValueError), (1.5, TypeError), ("0", TypeError), (True, TypeError)],
)
def test_bad_seed(seed, error):
    with pytest.raises(error, match=f"Received: seed={seed!r}"):
        kft.build_image_classifier("mobilenet_v2", 2, seed=seed, **SMALL)


# ------------------------------------------- the class: parts and methods


def test_freeze_and_unfreeze_methods_count_layers(mobilenet_model):
    model = mobilenet_model
    assert model.freeze() == MOBILENET_V2_LAYERS
    assert model.backbone.trainable_weights == []
    head_params = count_params(model.head.trainable_weights)
    assert count_params(model.trainable_weights) == head_params == 1280 * 2 + 2
    assert model.unfreeze(5) == 5
    flags = [row["trainable"] for row in kft.describe_layers(model)]
    # The last five layers train, except their BatchNormalization layers.
    assert not any(flags[:-5]) and any(flags[-5:])
    assert model.unfreeze("all") == MOBILENET_V2_LAYERS
    assert model.freeze(-3) == MOBILENET_V2_LAYERS - 3
    with pytest.raises(ValueError, match="backbone has 154 layers"):
        model.freeze(200)
    with pytest.raises(ValueError, match="Received: top=155"):
        model.unfreeze(155)
    model.freeze("all")


def test_reload_keeps_unfrozen_layers_and_config(tmp_path):
    model = kft.build_image_classifier(
        _tiny_backbone(), 3, head_units=(4,), pooling="max", preprocessing="tf"
    )
    model.unfreeze(2)
    model.compile()
    reloaded = run_builder_test(
        model,
        _images(),
        np.array([0, 1, 2, 0, 1, 2]),
        num_outputs=3,
        tmp_path=tmp_path,
    )
    # (The InputLayer's flag, first, is not serialized.)
    assert [la.trainable for la in reloaded.backbone.layers[1:]] == [
        la.trainable for la in model.backbone.layers[1:]
    ]
    config = reloaded.get_config()
    assert config["head_units"] == [4] and config["num_classes"] == 3
    assert isinstance(reloaded.pooling, keras.layers.GlobalMaxPooling2D)
    assert isinstance(reloaded.preprocessor, ImagePreprocessing)
    run_serialization_test(model)
    assert isinstance(reloaded.optimizer, keras.optimizers.AdamW)


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_image_preprocessing_layer_serializes(mode, tmp_path):
    run_serialization_test(
        ImagePreprocessing(mode), sample=_images(2, 8), tmp_path=tmp_path
    )


# ------------------------------------------------------- mixed precision


def _compute_dtypes(model):
    return {
        layer.compute_dtype
        for layer in model.backbone.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
    }


def test_mixed_bfloat16_computes_in_bfloat16_outputs_float32(tmp_path):
    built = kft.build_image_classifier(
        "mobilenet_v2", 3, mixed_precision="mixed_bfloat16", compile=False, **SMALL
    )
    assert keras.config.dtype_policy().name == "float32"  # the global one is kept
    assert _compute_dtypes(built) == {"bfloat16"}
    assert {w.dtype for w in built.weights} == {"float32"}
    # The contract (fit step, .keras round trip) on a tiny bfloat16 backbone.
    with dtype_policy_scope("mixed_bfloat16"):
        backbone = _tiny_backbone()
    model = kft.build_image_classifier(
        backbone, 3, mixed_precision="mixed_bfloat16", preprocessing="tf"
    )
    assert model.preprocessor.compute_dtype == model.pooling.compute_dtype
    assert model.pooling.compute_dtype == model.head.layers[0].compute_dtype
    assert model.head.layers[0].compute_dtype == "bfloat16"
    assert model.head.layers[-1].compute_dtype == "float32"
    x, y = _images(), np.array([0, 1, 2, 0, 1, 2])
    assert keras.backend.standardize_dtype(model(x).dtype) == "float32"
    reloaded = run_builder_test(model, x, y, num_outputs=3, tmp_path=tmp_path)
    assert reloaded.mixed_precision == "mixed_bfloat16"
    assert _compute_dtypes(reloaded) == {"bfloat16"}
    assert reloaded.head.layers[0].compute_dtype == "bfloat16"
    assert reloaded.head.layers[-1].compute_dtype == "float32"


def test_mixed_float16_scales_the_loss_and_reloads(tmp_path):
    model = kft.build_image_classifier(
        _tiny_backbone(), 3, mixed_precision="mixed_float16", preprocessing="tf"
    )
    assert keras.config.dtype_policy().name == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.preprocessor.compute_dtype == "float16"
    assert model.head.layers[-1].compute_dtype == "float32"
    reloaded = run_builder_test(
        model, _images(), np.array([0, 1, 2, 0, 1, 2]), num_outputs=3, tmp_path=tmp_path
    )
    assert isinstance(reloaded.optimizer, keras.optimizers.LossScaleOptimizer)
    assert reloaded.get_config()["mixed_precision"] == "mixed_float16"
