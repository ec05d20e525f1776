"""Questions every step asks about a model, each answered in one place.

- `outputs_logits(model)`: does the model output logits?
- `random_layers(model)`: which layers below the head act randomly in `fit`?
- `is_text_model(model)`: does the model read raw strings?

Transfer classifiers answer from their attributes (`from_logits`,
`augmentation`, `backbone`, `preprocessor`); plain compiled Keras models
from their compiled loss and their layers.
"""

import keras

from kerastune_ft import _compat

__all__ = ["is_text_model", "outputs_logits", "random_layers"]


def is_text_model(model):
    """Whether `model` reads raw strings through a tokenizing preprocessor.

    Args:
        model: any Keras model.

    Returns:
        `True` for keras-hub text tasks (such as `kft.build_text_classifier`
        models) whose preprocessor has a tokenizer, else `False`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> kft.builders.is_text_model(keras.Sequential([keras.layers.Dense(2)]))
    False
    """
    preprocessor = getattr(model, "preprocessor", None)
    return preprocessor is not None and hasattr(preprocessor, "tokenizer")


def outputs_logits(model):
    """Whether `model` outputs logits (no softmax/sigmoid), or `None` if unknown.

    A transfer classifier answers with its `from_logits` attribute. Another
    model answers from its compiled loss (`from_logits` in the loss config),
    else from the activation of its last layer (`linear` means logits).

    Args:
        model: a `keras.Model`.

    Returns:
        `True`, `False`, or `None` when neither the model, its loss nor its
        last layer says.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> plain.compile(loss=keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True))
    >>> kft.builders.outputs_logits(plain)
    True
    """
    declared = getattr(model, "from_logits", None)
    if isinstance(declared, bool):
        return declared
    loss = getattr(model, "loss", None)
    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
        if "from_logits" in config:
            return bool(config["from_logits"])
    elif isinstance(loss, str):
        # Keras' string losses are the probability versions.
        return False
    layers = getattr(model, "layers", None) or []
    activation = getattr(layers[-1], "activation", None) if layers else None
    if activation is None:
        return None
    return getattr(activation, "__name__", "") == "linear"


def _acts_randomly(layer):
    # Keras' random layers draw from a `keras.random.SeedGenerator`: Dropout
    # and noise layers as `seed_generator`, the image augmentation layers as
    # `generator`. A Dropout of rate 0 does nothing.
    generators = (getattr(layer, n, None) for n in ("seed_generator", "generator"))
    if not any(isinstance(g, keras.random.SeedGenerator) for g in generators):
        return False
    rate = getattr(layer, "rate", None)
    return not isinstance(rate, int | float) or float(rate) > 0.0


def random_layers(model):
    """The layers below the head that act randomly when `fit` runs.

    For a transfer classifier: the layers of `model.augmentation` and any
    Dropout inside `model.backbone` (Keras 3 passes `fit`'s `training=True`
    down to a frozen backbone, so its Dropout acts too). Features cached
    from such a model differ between passes: cache augmented views, or
    train uncached.

    Args:
        model: a transfer classifier (a model with `.backbone`).

    Returns:
        A list of layers, bottom to top; empty when the features below the
        head are deterministic.

    Example:

    >>> import kerastune_ft as kft
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3),
    ...     backbone_kwargs={"alpha": 0.35}, augmentation="light", compile=False)
    >>> [layer.name for layer in kft.builders.random_layers(model)]
    ['random_flip', 'random_rotation', 'random_zoom']
    """
    parts = [
        getattr(model, "augmentation", None),
        getattr(model, "preprocessor", None),
        getattr(model, "backbone", None),
    ]
    found, seen = [], set()
    for part in parts:
        if not isinstance(part, keras.layers.Layer):
            continue
        for layer in _compat.flatten_layers(part):
            if id(layer) not in seen and _acts_randomly(layer):
                found.append(layer)
                # Its own sublayers (RandAugment's ops) are part of it.
                seen.update(id(sub) for sub in _compat.flatten_layers(layer))
    return found
