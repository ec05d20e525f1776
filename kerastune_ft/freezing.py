"""Which backbone layers train, and a table to choose that.

Both builders mark their backbone the same way: it is the nested layer named
`"backbone"` (or the `.backbone` attribute of a keras-hub task). Freezing is
counted in *units*: for image backbones a unit is one layer of the backbone,
for transformer backbones the units are the embeddings followed by each
transformer block. `resolve_freeze_count` gives every builder the same
meaning of `freeze` and the same error messages.
"""

import math
import numbers

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
