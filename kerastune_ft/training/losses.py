"""The label-smoothing loss, and the one place a compiled loss gets smoothing."""

import keras

__all__ = ["SparseCategoricalCrossentropyWithSmoothing", "recompile", "smoothed_loss"]


@keras.saving.register_keras_serializable(package="kerastune_ft")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing.

    Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`; this one
    one-hot encodes the integer labels and smooths them.

    Args:
        from_logits: whether predictions are logits. Defaults to `False`.
        label_smoothing: float in [0, 1). Defaults to `0.0`.
        name: loss name. Defaults to
            `"sparse_categorical_crossentropy_with_smoothing"`.
        **kwargs: other `keras.losses.Loss` arguments (`reduction`, `dtype`).

    Example:

    >>> import numpy as np
    >>> from kerastune_ft.training.losses import (
    ...     SparseCategoricalCrossentropyWithSmoothing)
    >>> loss = SparseCategoricalCrossentropyWithSmoothing(
    ...     from_logits=True, label_smoothing=0.1)
    >>> float(loss(np.array([1]), np.array([[0.0, 5.0]]))) > 0
    True
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        name="sparse_categorical_crossentropy_with_smoothing",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        num_classes = keras.ops.shape(y_pred)[-1]
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        one_hot = keras.ops.one_hot(y_true, num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot,
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}
        )
        return config


# Loss names a model may be compiled with, as the classes that take smoothing.
_LOSS_CLASSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
}


def smoothed_loss(loss, label_smoothing):
    """The compiled `loss` with `label_smoothing`, as a loss object.

    Args:
        loss: a loss name, function or `keras.losses.Loss`.
        label_smoothing: a float in [0, 1).

    Returns:
        A loss that smooths labels; `loss` itself when it is no
        cross-entropy and `label_smoothing` is 0.

    Raises:
        ValueError: `label_smoothing > 0` with a loss that cannot smooth.

    Example:

    >>> from kerastune_ft.training.losses import smoothed_loss
    >>> smoothed_loss("binary_crossentropy", 0.1).get_config()["label_smoothing"]
    0.1
    """
    if isinstance(loss, str):
        # keras.losses.get turns a name into a plain function; the class form
        # is what carries from_logits and label_smoothing.
        loss = (
            _LOSS_CLASSES[loss]() if loss in _LOSS_CLASSES else keras.losses.get(loss)
        )
    if isinstance(
        loss,
        (
            SparseCategoricalCrossentropyWithSmoothing,
            keras.losses.SparseCategoricalCrossentropy,
        ),
    ):
        return SparseCategoricalCrossentropyWithSmoothing(
            from_logits=loss.get_config().get("from_logits", False),
            label_smoothing=label_smoothing,
        )
    if isinstance(
        loss, (keras.losses.CategoricalCrossentropy, keras.losses.BinaryCrossentropy)
    ):
        config = loss.get_config()
        config["label_smoothing"] = label_smoothing
        return type(loss).from_config(config)
    if label_smoothing:
        raise ValueError(
            "`label_smoothing` needs a cross-entropy loss. The model was compiled "
            f"with {loss!r}. Received: label_smoothing={label_smoothing}."
        )
    return loss


def recompile(model, optimizer, label_smoothing=None, like=None, **kwargs):
    """Compiles `model` again with a new optimizer, keeping loss and metrics.

    Args:
        model: the model to compile.
        optimizer: the new optimizer.
        label_smoothing: smoothing to put in the loss, or `None` to keep it.
            Defaults to `None`.
        like: take loss and metrics from this model instead (the head trains
            on cached features with the full model's loss and metrics).
            Defaults to `None`.
        **kwargs: other `compile` arguments (`steps_per_execution`).

    Raises:
        ValueError: the model (or `like`) was never compiled.
    """
    source = like or model
    if not source.get_compile_config():
        raise ValueError(
            "`model` must be compiled before training, so that its loss and metrics "
            "are known. Build it with compile=True or call model.compile(...)."
        )
    config = keras.saving.deserialize_keras_object(source.get_compile_config())
    config["optimizer"] = optimizer
    if label_smoothing is not None:
        config["loss"] = smoothed_loss(config["loss"], label_smoothing)
    config.update(kwargs)
    if like is not None:
        # The head is a plain keras.Model: "auto" arguments of a transfer
        # classifier's own compile() were resolved in its compile config.
        config = {k: v for k, v in config.items() if v != "auto"}
    model.compile(**config)
