"""Tiny transfer classifiers for the training tests (no assets needed).

`tiny_classifier` is `_tiny.tiny_model` rebuilt on the model contract: the
same 8x8 conv backbone (frozen, with a BatchNormalization layer named "bn"),
a Rescaling preprocessor, an optional RandomFlip augmentation, and a head
whose last Dense layer is `model.head.layers[-1]`.
"""

import keras

import kerastune_ft as kft


def tiny_backbone():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Conv2D(6, 3, name="c2"),
        ],
        name="backbone",
    )


def tiny_classifier(augment=False, num_classes=3, dropout=0.0):
    """A compiled, frozen `TransferImageClassifier` outputting logits."""
    model = kft.builders.TransferImageClassifier(
        tiny_backbone(),
        num_classes,
        preprocessor=keras.layers.Rescaling(1 / 255.0),
        augmentation=keras.layers.RandomFlip("horizontal") if augment else None,
        dropout=dropout,
        l2=0.0,
        from_logits=True,
    )
    model.freeze("all")
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def last_dense(model):
    """The model's output layer (the head's last Dense)."""
    return model.head.layers[-1]


def stage_context(model, train, validation=None, messages=None, **settings):
    """A `StageContext` for running one stage by hand (silent unless
    `messages`, a list, should collect what the stage says)."""
    from kerastune_ft.training import stages

    settings = stages.TrainSettings(
        epochs=1,
        learning_rate=1e-3,
        fine_tune_learning_rate=1e-5,
        weight_decay=0.0,
        verbose=0,
        **settings,
    )
    say = (lambda *a: None) if messages is None else messages.append
    return stages.StageContext(
        model, train, validation, settings, None, [], 0, 0, say=say
    )
