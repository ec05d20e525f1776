"""Tiny models and data for unit tests: a conv net with a marked backbone,
learnable tiny images, and a random two-layer BERT with its own vocabulary."""

import keras
import keras_hub
import numpy as np
import tensorflow as tf


def tiny_model(augment=False, num_classes=3, dropout=0.0):
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Conv2D(6, 3, name="c2"),
        ],
        name="backbone",
    )
    backbone.trainable = False
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    if augment:
        x = keras.layers.RandomFlip("horizontal")(x)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def tiny_arrays(n=48, num_classes=3, seed=0):
    """Images whose class shifts the red channel (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % num_classes).astype("int32")
    x = rng.uniform(0, 80, size=(n, 8, 8, 3)).astype("float32")
    x[..., 0] += 60.0 * y[:, None, None]
    return x, y


def tiny_data(n=48, num_classes=3, batch_size=16, seed=0):
    x, y = tiny_arrays(n, num_classes, seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def tiny_builder(dropout=0.1, l2=0.0, freeze="all"):
    """A compiled kft image model whose backbone has 3 freezing units."""
    import kerastune_ft as kft

    backbone = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Conv2D(6, 3)]
    )
    model = kft.build_image_classifier(
        backbone, 3, dropout=dropout, l2=l2, freeze=freeze, compile=False
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a good bad great awful phone battery love hate it is not very".split()
)
TEXTS = [
    "the phone is good",
    "battery is bad",
    "love it",
    "hate it",
    "great phone",
    "awful battery",
    "the battery is very good",
    "it is not good",
]
LABELS = np.array([1, 0, 1, 0, 1, 0, 1, 0])


def tiny_bert_backbone(num_layers=2, dropout=0.1):
    return keras_hub.models.BertBackbone(
        dropout=dropout,
        vocabulary_size=len(VOCAB),
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
    )


def tiny_bert_preprocessor(sequence_length=16):
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB, lowercase=True)
    return keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
