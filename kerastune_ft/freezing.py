"""Which backbone units train: one counting rule for image and text models.

A transfer classifier (`kft.build_image_classifier`,
`kft.build_text_classifier`) holds its pretrained network as
`model.backbone`. Freezing counts *units* of that backbone:

- image backbones: one unit per layer of `backbone.layers`;
- keras-hub transformer encoders (backbones with a `transformer_layers`
  attribute: BERT, DistilBERT, RoBERTa, ELECTRA, DeBERTaV3, ALBERT, ...):
  the embeddings (every layer below the first block) are the first unit,
  then one unit per transformer block; an int `freeze` counts blocks.

`model.freeze(...)`, `model.unfreeze(...)`, `kft.describe_layers` and the
training engine all use `backbone_units` and `set_frozen_units` below, so a
number means the same thing everywhere. Nothing here looks a layer up by
name: the backbone is `model.backbone` and transformer blocks are
`backbone.transformer_layers`.
"""

import dataclasses
import difflib
import math
import numbers

import keras

__all__ = [
    "BACKBONE_NAME",
    "BackboneUnits",
    "backbone_units",
    "count_params",
    "describe_layers",
    "freeze_backbone",
    "get_backbone",
    "is_text_model",
    "resolve_freeze_count",
    "set_frozen_units",
    "unfreeze_top",
]

BACKBONE_NAME = "backbone"
"""The name builders give their backbone layer (for users' `get_layer` calls)."""


def get_backbone(model):
    """Returns `model.backbone`, or `model` itself when it has none.

    Transfer classifiers and keras-hub tasks carry their backbone as the
    `.backbone` attribute. For a plain `keras.Model` of your own (no
    attribute) the backbone is its one nested model, as in
    `keras.Sequential([base, head...])`: found by structure, never by name.

    Args:
        model: a transfer classifier, a keras-hub task, or a backbone.

    Returns:
        The backbone `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.

    Example:

    >>> import kerastune_ft as kft
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3),
    ...     backbone_kwargs={"alpha": 0.35}, compile=False)
    >>> kft.freezing.get_backbone(model) is model.backbone
    True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. "
            f"Received: model of type {type(model).__name__}."
        )
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, keras.Model):
        return backbone
    # A plain model of the user's: one nested model is the backbone; with
    # none or several, the whole model is (nothing to guess).
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if len(nested) == 1 else model


def is_text_model(model):
    """Whether `model` reads raw strings; see `kft.builders.is_text_model`.

    Kept here for callers that import it from `kft.freezing`.

    Args:
        model: any Keras model.

    Returns:
        `True` for text models, else `False`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> kft.freezing.is_text_model(keras.Sequential([keras.layers.Dense(2)]))
    False
    """
    from kerastune_ft.builders.model import is_text_model as answer

    return answer(model)


def count_params(weights):
    """Number of scalars in a list of weights (e.g. `model.trainable_weights`).

    The one trainable-parameter count of the package.

    Args:
        weights: a list of Keras variables (or anything with `.shape`).

    Returns:
        An int.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> dense = keras.layers.Dense(2)
    >>> dense.build((None, 3))
    >>> kft.freezing.count_params(dense.trainable_weights)
    8
    """
    return int(sum(math.prod(w.shape) for w in weights))


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


@dataclasses.dataclass
class BackboneUnits:
    """A backbone split into the units that `freeze` counts.

    Attributes:
        names: unit names, bottom to top.
        units: the layers of each unit (lists of layers).
        rest: layers after the first block that are no block (a
            transformer's pooler or final norm); frozen only when every unit
            is.
        transformer: whether units are `[embeddings, block_0, ...]` (an int
            `freeze` then counts blocks) rather than single layers.
    """

    names: list
    units: list
    rest: list
    transformer: bool


def _transformer_blocks(backbone):
    """The keras-hub encoder blocks, bottom to top, or `[]`."""
    blocks = getattr(backbone, "transformer_layers", None)
    if not isinstance(blocks, list | tuple):
        return []
    return [b for b in blocks if isinstance(b, keras.layers.Layer)]


def backbone_units(backbone):
    """Splits a backbone into freezing units: the one counting rule.

    Image backbones have one unit per layer. keras-hub transformer encoders
    (a `transformer_layers` attribute) have the embeddings as the first unit,
    then one unit per block.

    Args:
        backbone: a backbone `keras.Model` (or a transfer classifier, whose
            `model.backbone` is used).

    Returns:
        A `BackboneUnits`.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    >>> kft.freezing.backbone_units(base).names
    ['d']
    """
    backbone = get_backbone(backbone)
    layers = list(backbone.layers)
    blocks = [b for b in _transformer_blocks(backbone) if b in layers]
    if not blocks:
        return BackboneUnits(
            [la.name for la in layers], [[la] for la in layers], [], False
        )
    body = [la for la in layers if not isinstance(la, keras.layers.InputLayer)]
    first = body.index(blocks[0])
    block_ids = {id(b) for b in blocks}
    rest = [la for la in body[first:] if id(la) not in block_ids]
    return BackboneUnits(
        ["embeddings"] + [b.name for b in blocks],
        [body[:first]] + [[b] for b in blocks],
        rest,
        True,
    )


def _unit_label(split):
    if split.transformer:
        return "units (the embeddings, then each block)"
    return "layers"


def describe_layers(model, *, print_fn=None):
    """Lists the backbone's layers so you can choose how many to freeze.

    Args:
        model: a transfer classifier, a keras-hub task, or a backbone.
        print_fn: if given, called with a formatted table. Defaults to `None`
            (nothing is printed; the rows are returned).

    Returns:
        A list of dicts with keys `index`, `name`, `type`, `params`,
        `trainable` and `unit` (the freezing unit the layer belongs to, as
        `freeze`/`unfreeze` count them; `None` for a transformer's pooler or
        final norm), one per backbone layer, in order.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(2)], name="backbone")
    >>> rows = kft.describe_layers(base)
    >>> rows[0]["type"], rows[0]["params"], rows[0]["unit"]
    ('Dense', 10, 0)
    """
    backbone = get_backbone(model)
    split = backbone_units(backbone)
    unit_of = {id(la): i for i, unit in enumerate(split.units) for la in unit}
    rows = []
    for index, layer in enumerate(backbone.layers):
        rows.append(
            {
                "index": index,
                "name": layer.name,
                "type": type(layer).__name__,
                "params": count_params(layer.weights),
                "trainable": bool(layer.trainable),
                "unit": unit_of.get(id(layer)),
            }
        )
    if print_fn is not None:
        header = (
            f"{'index':>5}  {'name':<40} {'type':<24} {'params':>10}  "
            f"{'unit':>4}  trainable"
        )
        lines = [header, "-" * len(header)]
        for r in rows:
            unit = "-" if r["unit"] is None else r["unit"]
            lines.append(
                f"{r['index']:>5}  {r['name'][:40]:<40} {r['type'][:24]:<24} "
                f"{r['params']:>10}  {unit:>4}  {r['trainable']}"
            )
        print_fn("\n".join(lines))
    return rows


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
        `count` (capped at the number of units).

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(2)])
    >>> kft.freezing.set_frozen_units(base, 1)
    1
    >>> [layer.trainable for layer in base.layers]
    [False, True]
    """
    backbone = get_backbone(backbone)
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
        model: a transfer classifier, a keras-hub task, or a backbone.
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
        count = resolve_freeze_count(
            freeze,
            len(split.units),
            unit=_unit_label(split),
            names=split.names,
            what=what,
        )
    return set_frozen_units(backbone, count, bn_trainable=bn_trainable)


def unfreeze_top(model, top="all", *, bn_trainable=False, what=None):
    """Unfreezes the top `top` units of the backbone and freezes the others.

    Args:
        model: a transfer classifier, a keras-hub task, or a backbone.
        top: `"all"` or an int in `[0, number of units]` (layers for image
            backbones; for transformers the units are the embeddings, then
            each block). Defaults to `"all"`.
        bn_trainable: let BatchNormalization layers train. Defaults to `False`.
        what: how to call the backbone in messages. Defaults to `None`
            ("The backbone").

    Returns:
        The number of trainable units.

    Raises:
        TypeError, ValueError: for a `top` that is no int in range.

    Example:

    >>> import keras, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(2)])
    >>> kft.freezing.unfreeze_top(base, 1)
    1
    >>> [layer.trainable for layer in base.layers]
    [False, True]
    """
    backbone = get_backbone(model)
    split = backbone_units(backbone)
    num_units = len(split.units)
    what = what or "The backbone"
    if isinstance(top, str) and top == "all":
        top = num_units
    if (
        isinstance(top, bool)
        or not isinstance(top, numbers.Integral)
        or not 0 <= top <= num_units
    ):
        error = TypeError if not isinstance(top, numbers.Integral) else ValueError
        if isinstance(top, bool):
            error = TypeError
        raise error(
            f'`top` must be "all" or an int between 0 and {num_units}. '
            f"Received: top={top!r}. {what} has {num_units} {_unit_label(split)}. "
            "Use `kft.describe_layers(model)` to choose N."
        )
    set_frozen_units(backbone, num_units - int(top), bn_trainable=bn_trainable)
    return int(top)
