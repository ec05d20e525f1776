"""Which backbone layers train, and a table to choose that.

Both builders mark their backbone the same way: it is the nested layer named
`"backbone"` (or the `.backbone` attribute of a keras-hub task). Freezing is
counted in *units*: for image backbones a unit is one layer of the backbone,
for transformer backbones the units are the embeddings followed by each
transformer block. `resolve_freeze_count` gives every builder the same
meaning of `freeze` and the same error messages.
"""

import dataclasses
import math
import numbers
import re

import keras

BACKBONE_NAME = "backbone"

_FREEZE_WORDS = ("all", "none")


def get_backbone(model):
    """Returns the backbone of a kerastune_ft (or keras-hub) model.

    Args:
        model: a model from `kft.build_image_classifier`,
            `kft.build_text_classifier`, a keras-hub task, or a backbone itself.

    Returns:
        The backbone `keras.Model`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> inner = keras.Sequential([keras.layers.Dense(2)], name="backbone")
    >>> outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(1)])
    >>> kft.freezing.get_backbone(outer).name
    'backbone'
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. "
            f"Received: model of type {type(model).__name__}."
        )
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, keras.Model):
        return backbone
    for layer in model.layers:
        if layer.name == BACKBONE_NAME and isinstance(layer, keras.Model):
            return layer
    return model


def is_text_model(model):
    """Whether `model` reads raw strings through a tokenizing preprocessor.

    One test for every module that treats text and image models differently
    (loading data for evaluation, export signatures, diagnosis advice).

    Args:
        model: any Keras model.

    Returns:
        `True` for keras-hub text tasks (such as `kft.build_text_classifier`
        models) that carry a preprocessor with a tokenizer, else `False`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> kft.freezing.is_text_model(keras.Sequential([keras.layers.Dense(2)]))
    False
    """
    preprocessor = getattr(model, "preprocessor", None)
    return preprocessor is not None and hasattr(preprocessor, "tokenizer")


def resolve_freeze_count(
    freeze, num_units, *, unit="layers", names=None, what="The backbone"
):
    """Turns a `freeze` argument into how many leading units to freeze.

    Args:
        freeze: `"all"`, `"none"`, an int N (the first N units), a negative
            int -N (all but the last N), a float fraction in [0, 1], or a
            unit name (freeze up to and including it).
        num_units: how many units the backbone has.
        unit: what a unit is called in messages. Defaults to `"layers"`.
        names: unit names, in order, for the name form. Defaults to `None`.
        what: how to call the backbone in messages. Defaults to
            `"The backbone"`.

    Returns:
        An int in `[0, num_units]`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.freezing.resolve_freeze_count(-2, 10)
    8
    >>> kft.freezing.resolve_freeze_count(0.5, 10)
    5
    """
    advice = (
        f"{what} has {num_units} {unit}. Use `kft.describe_layers(model)` to choose N."
    )
    if isinstance(freeze, bool):
        raise TypeError(
            '`freeze` must be "all", "none", an int, a float fraction or a '
            f"layer name, not a bool. Received: freeze={freeze!r}. "
            'Use freeze="all" or freeze="none".'
        )
    if isinstance(freeze, str):
        if freeze == "all":
            return num_units
        if freeze == "none":
            return 0
        if names is not None and freeze in names:
            return list(names).index(freeze) + 1
        import difflib

        close = difflib.get_close_matches(freeze, list(names or ()), n=3)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            '`freeze` must be "all", "none", an int, a float fraction or the '
            f"name of a backbone layer. Received: freeze={freeze!r}.{hint} " + advice
        )
    if isinstance(freeze, numbers.Integral):
        freeze = int(freeze)
        if -num_units <= freeze < 0:
            return num_units + freeze
        if 0 <= freeze <= num_units:
            return freeze
        raise ValueError(
            f"`freeze={freeze}` is out of range: it must be between "
            f"-{num_units} and {num_units}. " + advice
        )
    if isinstance(freeze, numbers.Real):
        if not 0.0 <= float(freeze) <= 1.0:
            raise ValueError(
                "A float `freeze` is the fraction of the backbone to freeze and "
                f"must be in [0, 1]. Received: freeze={freeze!r}. " + advice
            )
        return int(round(float(freeze) * num_units))
    raise TypeError(
        '`freeze` must be "all", "none", an int, a float fraction or a layer '
        f"name. Received: freeze={freeze!r} of type {type(freeze).__name__}."
    )


def describe_layers(model, *, print_fn=None):
    """Lists the backbone's layers so you can choose how many to freeze.

    Args:
        model: a kerastune_ft model, a keras-hub task, or a backbone.
        print_fn: if given, called with a formatted table. Defaults to `None`
            (nothing is printed; the rows are returned).

    Returns:
        A list of dicts with keys `index`, `name`, `type`, `params` and
        `trainable`, one per backbone layer, in order.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2)], name="backbone")
    >>> rows = kft.describe_layers(base)
    >>> rows[0]["type"], rows[0]["params"]
    ('Dense', 10)
    """
    backbone = get_backbone(model)
    rows = []
    for index, layer in enumerate(backbone.layers):
        rows.append(
            {
                "index": index,
                "name": layer.name,
                "type": type(layer).__name__,
                "params": int(sum(math.prod(w.shape) for w in layer.weights)),
                "trainable": bool(layer.trainable),
            }
        )
    if print_fn is not None:
        header = f"{'index':>5}  {'name':<40} {'type':<24} {'params':>10}  trainable"
        lines = [header, "-" * len(header)]
        for r in rows:
            lines.append(
                f"{r['index']:>5}  {r['name'][:40]:<40} {r['type'][:24]:<24} "
                f"{r['params']:>10}  {r['trainable']}"
            )
        print_fn("\n".join(lines))
    return rows


# keras-hub names encoder blocks `transformer_layer_{i}` (BERT, DistilBERT,
# RoBERTa, ELECTRA) or `disentangled_attention_encoder_layer_{i}` (DeBERTaV3).
_BLOCK_NAME = re.compile(r"(transformer|encoder)_layer_\d+$")


@dataclasses.dataclass
class BackboneUnits:
    """A backbone split into the units that `freeze` counts.

    Attributes:
        names: unit names, bottom to top.
        units: the layers of each unit.
        rest: layers after the last unit (a transformer's pooler or final
            norm); frozen only when every unit is.
        transformer: whether units are `[embeddings, block_0, ...]` (an int
            `freeze` then counts blocks) rather than single layers.
    """

    names: list
    units: list
    rest: list
    transformer: bool


def backbone_units(backbone):
    """Splits a backbone into freezing units.

    Image backbones have one unit per layer. Transformer backbones
    (keras-hub encoders, whose blocks are named `transformer_layer_<i>` or
    `..._encoder_layer_<i>`) have
    the embeddings as the first unit, then one unit per block.

    Args:
        backbone: a backbone `keras.Model`.

    Returns:
        A `BackboneUnits`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    >>> kft.freezing.backbone_units(base).names
    ['d']
    """
    layers = [
        layer
        for layer in backbone.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    blocks = [layer for layer in layers if _BLOCK_NAME.search(layer.name)]
    if not blocks:
        layers = backbone.layers
        return BackboneUnits(
            [layer.name for layer in layers], [[la] for la in layers], [], False
        )
    first = layers.index(blocks[0])
    block_ids = {id(b) for b in blocks}
    rest = [layer for layer in layers[first:] if id(layer) not in block_ids]
    return BackboneUnits(
        ["embeddings"] + [b.name for b in blocks],
        [layers[:first]] + [[b] for b in blocks],
        rest,
        True,
    )


def _walk(layer):
    for sub in getattr(layer, "layers", None) or ():
        yield sub
        yield from _walk(sub)


def set_frozen_units(backbone, count, *, bn_trainable=False):
    """Freezes the first `count` units of `backbone` and unfreezes the rest.

    Unless `bn_trainable`, every BatchNormalization layer stays frozen: in
    Keras 3 that is what keeps it in inference mode during `fit` (an outer
    `fit` passes `training=True` down to nested layers, overriding a
    `training=False` recorded in the graph). Recompile after calling this.

    Args:
        backbone: a backbone `keras.Model`.
        count: how many leading units to freeze, in `[0, number of units]`.
        bn_trainable: let BatchNormalization layers train. Defaults to `False`.

    Returns:
        `count`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(2)])
    >>> kft.freezing.set_frozen_units(base, 1)
    1
    >>> [layer.trainable for layer in base.layers]
    [False, True]
    """
    split = backbone_units(backbone)
    backbone.trainable = True
    if count >= len(split.units):
        backbone.trainable = False
        return len(split.units)
    for index, unit in enumerate(split.units):
        for layer in unit:
            layer.trainable = index >= count
    for layer in split.rest:
        layer.trainable = True
    if not bn_trainable:
        for layer in _walk(backbone):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return count


def freeze_backbone(model, freeze="all", *, bn_trainable=False, what=None):
    """Sets which backbone units train, with one meaning of `freeze` everywhere.

    Args:
        model: a kerastune_ft model, a keras-hub task, or a backbone.
        freeze: `"all"`, `"none"`, an int N (image backbones: the first N
            layers; transformers: the embeddings and the first N blocks), a
            negative int -N (all but the last N layers or blocks), a float
            fraction of the units, or a unit name (freeze up to and including
            it; `"embeddings"` for transformers). Defaults to `"all"`.
        bn_trainable: let BatchNormalization layers train. Defaults to `False`.
        what: how to call the backbone in messages. Defaults to `None`
            ("The backbone").

    Returns:
        The number of frozen leading units.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(2)],
    ...     name="backbone")
    >>> kft.freezing.freeze_backbone(base, -1)
    1
    """
    backbone = get_backbone(model)
    split = backbone_units(backbone)
    what = what or "The backbone"
    if (
        split.transformer
        and isinstance(freeze, numbers.Integral)
        and not isinstance(freeze, bool)
    ):
        # An int counts transformer blocks; the embeddings are always frozen.
        count = 1 + resolve_freeze_count(
            freeze, len(split.units) - 1, unit="transformer blocks", what=what
        )
    else:
        unit = (
            "units (the embeddings, then each block)" if split.transformer else "layers"
        )
        count = resolve_freeze_count(
            freeze, len(split.units), unit=unit, names=split.names, what=what
        )
    return set_frozen_units(backbone, count, bn_trainable=bn_trainable)
