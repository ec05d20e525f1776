"""Facts about a model that diagnosis, evaluation and export rely on.

Transfer classifiers (what `kft.build_image_classifier` and
`kft.build_text_classifier` return) answer through their attributes:
`model.backbone`, `model.head`, `model.augmentation`, `model.from_logits`,
`model.multi_label`, `model.num_classes` (see `docs/architecture.md`).

Plain Keras models must work too (`kft.evaluate`, `kft.diagnose` and
`kft.export` accept any `keras.Model`); for them, and only for them, the
facts come from public API: the nested layers (`layer.layers`), and as
backbone the largest nested `keras.Model` with weights. Whether a model
outputs logits is `kft.builders.outputs_logits` (the one answer). Nothing
here looks a layer up by name.
"""

import dataclasses

import keras

from kerastune_ft import freezing
from kerastune_ft.builders import is_text_model, outputs_logits

__all__ = ["ModelFacts", "inspect_model", "output_activation"]


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What `inspect_model` found; `None` where a fact is unknown.

    Attributes:
        modality: `"text"` or `"image"`.
        dropout: the largest Dropout rate in the head (0.0 when none).
        l2: the L2 factor of the output layer's kernel regularizer (0.0
            without one), or `None` when there is no output Dense layer.
        backbone_units: backbone units with weights (the units `freeze`
            counts), or `None` without a backbone.
        trainable_units: how many of those have trainable weights.
        augmentation: whether the model holds random augmentation layers.
        num_classes: the number of outputs, or `None`.
    """

    modality: str = "image"
    dropout: float = 0.0
    l2: float | None = None
    backbone_units: int | None = None
    trainable_units: int | None = None
    augmentation: bool = False
    num_classes: int | None = None


def _walk(layer):
    """Every layer nested in `layer` (public `layer.layers`), depth first."""
    for sub in getattr(layer, "layers", None) or ():
        yield sub
        yield from _walk(sub)


def _is_random(layer):
    name = type(layer).__name__
    return name.startswith("Random") or name in ("RandAugment", "AugMix")


def _backbone(model):
    """`model.backbone`, else (plain Keras) its largest nested weighted model."""
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, keras.Model):
        return backbone
    nested = [la for la in model.layers if isinstance(la, keras.Model) and la.weights]
    if not nested:
        return None
    return max(nested, key=lambda la: len(la.weights))


def _unit_counts(backbone):
    try:
        units = freezing.backbone_units(backbone).units
    except Exception:  # an unusual backbone: suggestions stay generic
        return None, None
    weighted = [u for u in units if any(la.weights for la in u)]
    trainable = sum(1 for u in weighted if any(la.trainable_weights for la in u))
    return len(weighted), trainable


def _head_layers(model, backbone):
    """The layers above the backbone: `model.head`'s, or (plain Keras) the rest."""
    head = getattr(model, "head", None)
    if isinstance(head, keras.Model):
        layers = list(_walk(head))
        augmentation = getattr(model, "augmentation", None) is not None
        return layers, augmentation
    inside = {id(la) for la in _walk(backbone)} if backbone is not None else set()
    inside.add(id(backbone))
    layers = [la for la in _walk(model) if id(la) not in inside]
    return layers, any(_is_random(la) for la in layers)


def inspect_model(model):
    """Facts about a model that make suggestions concrete.

    Args:
        model: a `keras.Model` (ideally a kerastune_ft transfer
            classifier), or anything else.

    Returns:
        A `ModelFacts`, or `None` when `model` is not a `keras.Model`.

    Example:

    >>> import kerastune_ft as kft
    >>> from kerastune_ft.evaluation.inspection import inspect_model
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3),
    ...     backbone_kwargs={"alpha": 0.35}, dropout=0.3)
    >>> facts = inspect_model(model)
    >>> facts.dropout, facts.trainable_units, facts.augmentation
    (0.3, 0, False)
    """
    if not isinstance(model, keras.Model):
        return None
    backbone = _backbone(model)
    units, trainable = _unit_counts(backbone) if backbone is not None else (None, None)
    layers, augmentation = _head_layers(model, backbone)
    dropouts = [float(la.rate) for la in layers if isinstance(la, keras.layers.Dropout)]
    dense = [la for la in layers if isinstance(la, keras.layers.Dense)]
    l2, num_classes = None, getattr(model, "num_classes", None)
    if dense:
        regularizer = dense[-1].kernel_regularizer
        config = regularizer.get_config() if regularizer is not None else {}
        l2 = float(config.get("l2", 0.0) or 0.0)
        num_classes = num_classes or dense[-1].units
    return ModelFacts(
        modality="text" if is_text_model(model) else "image",
        dropout=max(dropouts, default=0.0),
        l2=l2,
        backbone_units=units,
        trainable_units=trainable,
        augmentation=augmentation,
        num_classes=num_classes,
    )


def output_activation(model):
    """The activation that turns the model's outputs into probabilities.

    Args:
        model: a Keras model.

    Returns:
        `"softmax"` or `"sigmoid"` when the model outputs logits (see
        `kft.builders.outputs_logits`; sigmoid for multi-label or binary-crossentropy
        models), else `None` (its outputs already are probabilities, or
        nothing says otherwise).

    Example:

    >>> import keras
    >>> from kerastune_ft.evaluation.inspection import output_activation
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True))
    >>> output_activation(model)
    'softmax'
    """
    if not outputs_logits(model):
        return None
    multi_label = getattr(model, "multi_label", None)
    if isinstance(multi_label, bool):
        return "sigmoid" if multi_label else "softmax"
    loss = getattr(model, "loss", None)
    return "sigmoid" if "binary" in type(loss).__name__.lower() else "softmax"
