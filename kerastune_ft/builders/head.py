"""The classification head, loss and metrics shared by every builder.

One place decides how a classifier ends (pooling, hidden layers, Dropout,
regularized Dense), which loss matches its output, and which metrics it
reports, so the image and text builders behave the same way.

Labels:
- single-label, `label_mode="int"` (the default, as
  `keras.utils.image_dataset_from_directory` gives): integer class ids;
- single-label, `label_mode="categorical"`: one-hot vectors;
- `multi_label=True`: multi-hot vectors of 0/1, one sigmoid per class.
"""

import contextlib

import keras
from keras import ops

from kerastune_ft import _compat
from kerastune_ft._validation import check_choice, check_fraction, check_number
from kerastune_ft.freezing import backbone_units, freeze_backbone, unfreeze_top

__all__ = [
    "LABEL_MODES",
    "MIXED_PRECISION_POLICIES",
    "MacroScore",
    "NO_DECAY_VARIABLES",
    "POOLINGS",
    "SEED_LIMIT",
    "TransferClassifierMixin",
    "apply_seed",
    "check_head_arguments",
    "check_seed",
    "classification_loss",
    "check_mixed_precision",
    "classification_metrics",
    "dtype_policy_scope",
    "make_adamw",
    "make_head",
    "make_pooling",
]

POOLINGS = ("avg", "max", "flatten")
LABEL_MODES = ("int", "categorical")


def check_head_arguments(
    *,
    num_classes,
    dropout,
    l1,
    l2,
    head_units,
    multi_label,
    label_mode,
    learning_rate,
    weight_decay,
):
    """Validates the head and training arguments; returns `head_units` as a tuple.

    Raises:
        TypeError, ValueError: naming the argument and what was received.
    """
    check_number(
        "num_classes",
        num_classes,
        low=1,
        integer=True,
        hint="Pass the number of classes in your labels, e.g. "
        "`len(train_ds.class_names)`.",
    )
    if num_classes == 1 and not multi_label:
        raise ValueError(
            "Single-label classification needs `num_classes >= 2` (one softmax "
            "output per class). Received: num_classes=1. For a binary problem "
            "use num_classes=2 with integer labels 0/1, or num_classes=1 with "
            "multi_label=True for a single sigmoid output."
        )
    check_fraction("dropout", dropout)
    check_number("l1", l1, low=0.0)
    check_number("l2", l2, low=0.0)
    check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    check_number("weight_decay", weight_decay, low=0.0)
    check_choice("label_mode", label_mode, LABEL_MODES)
    if isinstance(head_units, int) and not isinstance(head_units, bool):
        head_units = (head_units,)
    if head_units is None:
        head_units = ()
    if not isinstance(head_units, list | tuple):
        raise TypeError(
            "`head_units` must be a tuple of hidden layer sizes, e.g. (256,) or (). "
            f"Received: head_units={head_units!r}."
        )
    for units in head_units:
        check_number(
            "head_units",
            units,
            low=1,
            integer=True,
            hint="Each entry is the size of one hidden Dense layer, e.g. (256,).",
        )
    return tuple(int(u) for u in head_units)


SEED_LIMIT = 2**32  # NumPy's global seed, which set_random_seed sets, is 32-bit.


def check_seed(seed):
    """Validates a builder's `seed`: None or an int in [0, 2**32).

    Returns:
        `seed`, unchanged.

    Raises:
        TypeError, ValueError: naming `seed` and what was received.

    Example:

    >>> from kerastune_ft.builders.head import check_seed
    >>> check_seed(0), check_seed(None)
    (0, None)
    """
    if seed is None:
        return None
    return check_number(
        "seed",
        seed,
        low=0,
        high=SEED_LIMIT,
        high_inclusive=False,
        integer=True,
        hint="Pass an int such as 0, or None for an unseeded build.",
    )


def apply_seed(seed):
    """Seeds Keras, TensorFlow, NumPy and Python before a build creates layers.

    With the global generators seeded, every layer created afterwards draws
    the same initial weights and the same Dropout / augmentation seeds, in
    creation order. `seed=None` leaves the global state alone.
    """
    if seed is not None:
        keras.utils.set_random_seed(int(seed))


MIXED_PRECISION_POLICIES = ("mixed_bfloat16", "mixed_float16", "float32")


def check_mixed_precision(mixed_precision):
    """Validates a builder's `mixed_precision`: None or a policy name.

    Returns:
        `mixed_precision`, unchanged.

    Raises:
        TypeError, ValueError: naming `mixed_precision` and what was received.

    Example:

    >>> from kerastune_ft.builders.head import check_mixed_precision
    >>> check_mixed_precision("mixed_bfloat16"), check_mixed_precision(None)
    ('mixed_bfloat16', None)
    """
    if mixed_precision is None:
        return None
    hint = (
        'Use "mixed_bfloat16" (TPUs, recent GPUs, CPUs), "mixed_float16" (older '
        'GPUs; the loss is scaled), "float32", or None for the global Keras policy.'
    )
    if not isinstance(mixed_precision, str):
        raise TypeError(
            "`mixed_precision` must be a dtype policy name or None. Received: "
            f"mixed_precision={mixed_precision!r} of type "
            f"{type(mixed_precision).__name__}. {hint}"
        )
    return check_choice(
        "mixed_precision", mixed_precision, MIXED_PRECISION_POLICIES, hint=hint
    )


@contextlib.contextmanager
def dtype_policy_scope(mixed_precision=None):
    """Makes `mixed_precision` the global Keras dtype policy inside the block.

    Layers created in the block compute in the policy's dtype (bfloat16 or
    float16 for the mixed policies) and keep float32 variables. The policy
    in effect before the block is restored when it ends, even on error.

    Args:
        mixed_precision: a name of `MIXED_PRECISION_POLICIES`, or `None`
            (the global policy as it is). Defaults to `None`.

    Example:

    >>> import keras
    >>> from kerastune_ft.builders.head import dtype_policy_scope
    >>> with dtype_policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32', 'float32')
    """
    if mixed_precision is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(mixed_precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def make_pooling(pooling, feature_shape, *, name="pooling"):
    """Returns the weight-free layer that turns backbone output into a vector.

    Args:
        pooling: `"avg"`, `"max"` or `"flatten"` for a feature map.
        feature_shape: the backbone output shape, `(batch, h, w, c)` or
            `(batch, c)` (then the layer is an identity).
        name: layer name. Defaults to `"pooling"`.

    Returns:
        A `keras.layers.Layer` without weights.

    Raises:
        ValueError: for another rank, or `"flatten"` on a variable size.

    Example:

    >>> from kerastune_ft.builders.head import make_pooling
    >>> type(make_pooling("max", (None, 7, 7, 32))).__name__
    'GlobalMaxPooling2D'
    """
    if len(feature_shape) == 2:
        return keras.layers.Identity(name=name)
    if len(feature_shape) != 4:
        raise ValueError(
            "The backbone must output a feature map (batch, height, width, "
            f"channels) or a vector (batch, features). Received shape "
            f"{tuple(feature_shape)}."
        )
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=name)
    if any(d is None for d in feature_shape[1:]):
        raise ValueError(
            'pooling="flatten" needs a fixed input size. Pass '
            "`input_shape=(height, width, 3)` or use pooling='avg'."
        )
    return keras.layers.Flatten(name=name)


def make_head(
    input_dim,
    num_classes,
    *,
    head_units=(),
    dropout=0.2,
    l1=0.0,
    l2=1e-4,
    multi_label=False,
    from_logits=False,
    name="head",
):
    """Builds the classification head: one vector in, the predictions out.

    Layout: `Dropout`, `[Dense(relu), Dropout]*`, `Dense` named
    `"predictions"` (Dropout layers are left out when `dropout=0`). Under a
    mixed precision policy (see `dtype_policy_scope`) the layers compute in
    bfloat16 / float16 except `"predictions"`, which computes in float32 so
    that the softmax and the loss are numerically stable.

    Args:
        input_dim: size of the pooled feature vector.
        num_classes: number of outputs.
        head_units: sizes of hidden ReLU Dense layers. Defaults to `()`.
        dropout: Dropout rate before each Dense layer. Defaults to `0.2`.
        l1: L1 kernel penalty of every head Dense layer. Defaults to `0.0`.
        l2: L2 kernel penalty of every head Dense layer. Defaults to `1e-4`.
        multi_label: sigmoid outputs instead of softmax. Defaults to `False`.
        from_logits: no output activation (the loss applies it). Defaults to
            `False`.
        name: the Sequential's name. Defaults to `"head"`.

    Returns:
        A built `keras.Sequential` of input size `input_dim`.

    Example:

    >>> from kerastune_ft.builders.head import make_head
    >>> head = make_head(8, 3, head_units=(4,))
    >>> [layer.name for layer in head.layers]
    ['dropout', 'head_dense_0', 'head_dropout_0', 'predictions']
    """
    regularizer_args = {"l1": float(l1), "l2": float(l2)}
    layers = [keras.Input((int(input_dim),))]
    if dropout:
        layers.append(keras.layers.Dropout(dropout, name="dropout"))
    for i, units in enumerate(head_units):
        layers.append(
            keras.layers.Dense(
                units,
                activation="relu",
                kernel_regularizer=keras.regularizers.L1L2(**regularizer_args),
                name=f"head_dense_{i}",
            )
        )
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"head_dropout_{i}"))
    if from_logits:
        activation = None
    else:
        activation = "sigmoid" if multi_label else "softmax"
    policy = keras.config.dtype_policy()
    mixed = policy.compute_dtype != policy.variable_dtype
    layers.append(
        keras.layers.Dense(
            num_classes,
            activation=activation,
            kernel_regularizer=keras.regularizers.L1L2(**regularizer_args),
            name="predictions",
            dtype="float32" if mixed else None,
        )
    )
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="kerastune_ft")
class MacroScore(keras.metrics.Metric):
    """Macro-averaged precision, recall or F1 for any label format.

    `keras.metrics.F1Score` needs one-hot labels and `keras.metrics.Precision`
    treats a softmax output as independent binary scores. This metric reads
    integer, one-hot or multi-hot labels and probabilities or logits, counts
    true/false positives per class and averages the per-class scores (a class
    never seen nor predicted counts as absent, not as 0).

    Args:
        kind: `"precision"`, `"recall"` or `"f1"`. Defaults to `"f1"`.
        num_classes: number of classes (outputs). Defaults to `2`.
        label_mode: `"int"` or `"categorical"` (single-label). Ignored when
            `multi_label`. Defaults to `"int"`.
        multi_label: sigmoid outputs and multi-hot labels. Defaults to
            `False`.
        from_logits: the model outputs logits. Only changes the multi-label
            threshold (0 instead of 0.5). Defaults to `False`.
        name: metric name. Defaults to `kind`.
        dtype: metric dtype. Defaults to `None`.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> m = kft.builders.head.MacroScore("recall", num_classes=3)
    >>> m.update_state(np.array([0, 1, 2]), np.eye(3)[[0, 1, 1]])
    >>> round(float(m.result()), 3)
    0.667
    """

    def __init__(
        self,
        kind="f1",
        num_classes=2,
        label_mode="int",
        multi_label=False,
        from_logits=False,
        name=None,
        dtype=None,
    ):
        super().__init__(name=name or kind, dtype=dtype)
        check_choice("kind", kind, ("precision", "recall", "f1"))
        check_choice("label_mode", label_mode, LABEL_MODES)
        self.kind = kind
        self.num_classes = int(num_classes)
        self.label_mode = label_mode
        self.multi_label = bool(multi_label)
        self.from_logits = bool(from_logits)
        # Higher is better: Keras' mode="auto" monitors read this.
        _compat.set_metric_direction(self, "up")
        shape = (self.num_classes,)
        self.true_positives = self.add_variable(shape, "zeros", name="tp")
        self.false_positives = self.add_variable(shape, "zeros", name="fp")
        self.false_negatives = self.add_variable(shape, "zeros", name="fn")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_pred = ops.reshape(y_pred, (-1, self.num_classes))
        if self.multi_label:
            threshold = 0.0 if self.from_logits else 0.5
            pred = ops.cast(y_pred > threshold, self.dtype)
            true = ops.cast(ops.reshape(y_true, (-1, self.num_classes)), self.dtype)
        else:
            pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
            if self.label_mode == "int":
                labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            else:
                labels = ops.argmax(
                    ops.reshape(y_true, (-1, self.num_classes)), axis=-1
                )
            true = ops.one_hot(labels, self.num_classes)
        pred = ops.cast(pred, self.dtype)
        true = ops.cast(true, self.dtype)
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, self.dtype), (-1, 1))
            pred_w, true_w = pred * weight, true * weight
        else:
            pred_w, true_w = pred, true
        self.true_positives.assign_add(ops.sum(pred_w * true, axis=0))
        self.false_positives.assign_add(ops.sum(pred_w * (1.0 - true), axis=0))
        self.false_negatives.assign_add(ops.sum((1.0 - pred) * true_w, axis=0))

    def result(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        if self.kind == "precision":
            num, den = tp, tp + fp
        elif self.kind == "recall":
            num, den = tp, tp + fn
        else:
            num, den = 2.0 * tp, 2.0 * tp + fp + fn
        present = ops.cast((tp + fp + fn) > 0, self.dtype)
        scores = ops.divide_no_nan(num, den)
        return ops.divide_no_nan(ops.sum(scores * present), ops.sum(present))

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kind": self.kind,
                "num_classes": self.num_classes,
                "label_mode": self.label_mode,
                "multi_label": self.multi_label,
                "from_logits": self.from_logits,
            }
        )
        return config


def classification_loss(*, multi_label=False, label_mode="int", from_logits=False):
    """Returns the loss matching the head's output and the label format."""
    if multi_label:
        return keras.losses.BinaryCrossentropy(from_logits=from_logits)
    if label_mode == "int":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.CategoricalCrossentropy(from_logits=from_logits)


def classification_metrics(
    num_classes, *, multi_label=False, label_mode="int", from_logits=False
):
    """Returns accuracy, macro precision, macro recall and macro F1 metrics."""
    if multi_label:
        threshold = 0.0 if from_logits else 0.5
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy", threshold=threshold)
    elif label_mode == "int":
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    else:
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    scores = [
        MacroScore(
            kind,
            num_classes=num_classes,
            label_mode=label_mode,
            multi_label=multi_label,
            from_logits=from_logits,
        )
        for kind in ("precision", "recall", "f1")
    ]
    return [accuracy, *scores]


# Variable names AdamW must not decay: biases and normalization scale/offset.
NO_DECAY_VARIABLES = ("bias", "gamma", "beta", "LayerNorm", "layer_norm")


def make_adamw(learning_rate=1e-3, weight_decay=1e-4):
    """AdamW for fine-tuning: no weight decay on biases and normalization.

    Args:
        learning_rate: learning rate or schedule. Defaults to `1e-3`.
        weight_decay: decoupled weight decay. Defaults to `1e-4`.

    Returns:
        A `keras.optimizers.AdamW`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.builders.head.make_adamw(5e-5, weight_decay=0.01).weight_decay
    0.01
    """
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    check_number("weight_decay", weight_decay, low=0.0)
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=weight_decay
    )
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_VARIABLES))
    return optimizer


class TransferClassifierMixin:
    """What both transfer classifier classes share beyond the contract.

    `get_layer` also finds the head's layers by name (the head is one nested
    `keras.Sequential`; code written for the flat layout, such as
    `model.get_layer("predictions")`, keeps working), and
    `compile_from_config` restores AdamW's weight-decay exclusions, which
    Keras does not serialize, when a `.keras` file reloads. `freeze` and
    `unfreeze` count backbone units with one rule for both tasks
    (`kft.freezing.backbone_units`): a unit is a layer of an image backbone,
    or the embeddings or one transformer block of a text backbone.
    """

    def freeze(self, freeze="all", *, bn_trainable=False):
        """Sets which backbone units train, counted from the input side.

        Args:
            freeze: `"all"`, `"none"`, an int N (the first N units), a
                negative int -N (all but the last N), a float fraction of the
                units, or a unit name (up to and including it; for text,
                `"embeddings"`). Defaults to `"all"`.
            bn_trainable: let BatchNormalization layers train. Defaults to
                `False`.

        Returns:
            The number of frozen units, also kept as `frozen_units`.
            Recompile before training.
        """
        self.frozen_units = freeze_backbone(
            self.backbone, freeze, bn_trainable=bn_trainable
        )
        return self.frozen_units

    def unfreeze(self, top="all", *, bn_trainable=False):
        """Unfreezes the top `top` backbone units and freezes the others.

        Args:
            top: `"all"` or an int number of units. Defaults to `"all"`.
            bn_trainable: let BatchNormalization layers train. Defaults to
                `False`.

        Returns:
            The number of trainable units (`frozen_units` is updated).
            Recompile before training.
        """
        top = unfreeze_top(self.backbone, top, bn_trainable=bn_trainable)
        self.frozen_units = len(backbone_units(self.backbone).units) - top
        return top

    def get_layer(self, name=None, index=None):
        """`keras.Model.get_layer`, also finding the head's layers by name."""
        try:
            return super().get_layer(name=name, index=index)
        except ValueError:
            if name is None:
                raise
            return self.head.get_layer(name)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        optimizer = config.get("optimizer")
        # Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer.
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if isinstance(optimizer, keras.optimizers.AdamW):
            optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_VARIABLES))
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)
