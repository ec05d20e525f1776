"""Class probabilities, optionally averaged over test-time augmentation views.

Test-time augmentation (TTA) shows the model a few deterministic,
label-preserving *views* of each image and averages the class probabilities
(after softmax or sigmoid when the model outputs logits), as timm's and
fastai's TTA do. The views, in the order an integer `tta=N` takes them:

| name | what |
|---|---|
| `identity` | the image itself |
| `flip` | mirrored left-right |
| `center_crop` | the central `CROP_FRACTION` of each side, resized back |
| `flip_center_crop` | `center_crop` of the mirrored image |
| `top_left_crop`, `top_right_crop`, `bottom_left_crop`, `bottom_right_crop` | a corner crop of `CROP_FRACTION` of each side, resized back (bilinear) |
| `flip_top_left_crop`, ... | the same corners of the mirrored image |

Every view keeps the input shape, and each runs through the whole model with
Keras' `predict` (inference mode), so the model's own random `augmentation`
layer and its Dropout stay inactive. TTA is for image models: a text model
accepts only `tta=None`.
"""

import numbers

import keras
import numpy as np

from kerastune_ft._validation import check_number
from kerastune_ft.builders import is_text_model, outputs_logits
from kerastune_ft.data.batches import is_batches

__all__ = ["CROP_FRACTION", "VIEWS", "apply_view", "predict", "resolve_views"]

# Side of a crop view, as a fraction of the image side (timm's crop_pct).
CROP_FRACTION = 0.875

_CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
# The views in the order `tta=N` takes the first N: the cheapest, least
# destructive first (the full image, its mirror, then crops).
VIEWS = (
    "identity",
    "flip",
    "center_crop",
    "flip_center_crop",
    *(f"{corner}_crop" for corner in _CORNERS),
    *(f"flip_{corner}_crop" for corner in _CORNERS),
)


def resolve_views(tta):
    """The view names that a `tta` argument asks for, or `None` for no TTA.

    Args:
        tta: `None` (no TTA), an int N from 1 to `len(VIEWS)` (the first N
            of `VIEWS`: `identity`, `flip`, `center_crop`, ...), or a list
            of view names from `VIEWS`.

    Returns:
        A tuple of view names, or `None`.

    Raises:
        TypeError: if `tta` is not `None`, an int or a list of names.
        ValueError: if N is out of range, or a name is unknown or repeated.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.evaluation.tta.resolve_views(2)
    ('identity', 'flip')
    >>> kft.evaluation.tta.resolve_views(["identity", "center_crop"])
    ('identity', 'center_crop')
    """
    if tta is None:
        return None
    if isinstance(tta, bool) or not isinstance(tta, numbers.Integral | list | tuple):
        raise TypeError(
            "`tta` must be None, an int (how many views) or a list of view names "
            f"from {list(VIEWS)}. Received: tta={tta!r} "
            f"(of type {type(tta).__name__}). Pass e.g. tta=4 or tta=['flip']."
        )
    if isinstance(tta, numbers.Integral):
        check_number(
            "tta",
            tta,
            low=1,
            high=len(VIEWS),
            integer=True,
            hint="`tta` counts views (1 is the image alone); pass tta=None for "
            "no test-time augmentation.",
        )
        return VIEWS[: int(tta)]
    if not tta:
        raise ValueError(
            "`tta` is an empty list: name at least one view, e.g. "
            "tta=['identity', 'flip'], or pass tta=None for no TTA."
        )
    unknown = [name for name in tta if name not in VIEWS]
    if unknown:
        raise ValueError(
            f"Unknown view(s) {unknown} in `tta`. The views are {list(VIEWS)}. "
            f"Received: tta={list(tta)!r}."
        )
    if len(set(tta)) != len(tta):
        raise ValueError(
            "`tta` names a view more than once, which would weigh it twice. "
            f"Received: tta={list(tta)!r}. Name each view once."
        )
    return tuple(tta)


def _apply_view(name, images):
    """`images` (a `(batch, h, w, c)` tensor) seen through the view `name`."""
    ops = keras.ops
    if name == "identity":
        return images
    images = ops.cast(images, "float32")
    if name.startswith("flip"):
        images = ops.flip(images, axis=2)
        name = name.removeprefix("flip").removeprefix("_")
    if not name:
        return images
    height, width = int(images.shape[1]), int(images.shape[2])
    crop_h = max(1, round(height * CROP_FRACTION))
    crop_w = max(1, round(width * CROP_FRACTION))
    where = name.removesuffix("_crop")
    top = {"center": (height - crop_h) // 2, "top": 0, "bottom": height - crop_h}
    left = {"center": (width - crop_w) // 2, "left": 0, "right": width - crop_w}
    vertical, _, horizontal = where.partition("_")
    y0 = top[vertical]
    x0 = left[horizontal or "center"]
    crop = images[:, y0 : y0 + crop_h, x0 : x0 + crop_w, :]
    return ops.image.resize(
        crop, (height, width), interpolation="bilinear", data_format="channels_last"
    )


def apply_view(images, view):
    """One test-time augmentation view of a batch of images, as the model sees it.

    Args:
        images: an array `(n, height, width, channels)`.
        view: a view name from `VIEWS`.

    Returns:
        A NumPy array of the same shape: `images` itself for `"identity"`,
        else the float32 view.

    Raises:
        ValueError: if `view` is unknown or `images` is not 4-D.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> images = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> kft.evaluation.tta.apply_view(images, "flip")[0, 0, :, 0]
    array([3., 2., 1., 0.], dtype=float32)
    """
    if not isinstance(view, str) or view not in VIEWS:
        raise ValueError(
            f"`view` must be one of {list(VIEWS)}. Received: view={view!r}."
        )
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            "`images` must be an array of shape (n, height, width, channels). "
            f"Received: images of shape {images.shape}."
        )
    if view == "identity":
        return images
    return keras.ops.convert_to_numpy(_apply_view(view, images))


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _probabilities(model, raw):
    """Model outputs as (n, k) probabilities (softmax applied to logits)."""
    raw = np.asarray(raw, dtype="float64")
    if raw.ndim == 1:
        raw = raw[:, None]
    if raw.shape[1] == 1:  # one sigmoid unit: binary
        p = raw[:, 0]
        if p.min() < 0 or p.max() > 1:
            p = _sigmoid(p)
        return np.stack([1 - p, p], axis=1)
    logits = outputs_logits(model)
    if logits is None:  # a plain Keras model that says nothing: read the values
        sums = raw.sum(axis=1)
        logits = raw.min() < 0 or raw.max() > 1 or not np.allclose(sums, 1, atol=1e-3)
    if logits and getattr(model, "multi_label", False) is True:
        return _sigmoid(raw)  # one sigmoid per class
    if logits:
        raw = raw - raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)
    return raw


def _predict(model, x, batch_size, verbose, view=None):
    if keras.backend.backend() != "tensorflow":
        if view is not None and view != "identity":
            x = keras.ops.convert_to_numpy(_apply_view(view, x))
        return model.predict(x, batch_size=batch_size, verbose=verbose)
    import tensorflow as tf

    if x.dtype.kind in ("U", "S", "O"):
        data = tf.data.Dataset.from_tensor_slices(x.astype(str)).batch(batch_size)
    else:
        data = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    if view is not None and view != "identity":
        data = data.map(lambda images: _apply_view(view, images))
    return model.predict(data, verbose=verbose)


def _check_images(model, x, views):
    """Refuses TTA on text models and on inputs that are not image batches."""
    if is_text_model(model) or x.dtype.kind in ("U", "S", "O"):
        raise ValueError(
            "`tta` (test-time augmentation) is for image models; this model "
            f"reads text. Received: tta={list(views)!r}. Pass tta=None for "
            "text models."
        )
    if x.ndim != 4:
        raise ValueError(
            "`tta` needs images, an array of shape (n, height, width, channels). "
            f"Received: inputs of shape {x.shape}. Pass tta=None for other inputs."
        )


def predict(model, x, *, tta=None, batch_size=32, verbose=0):
    """Class probabilities of `x`, averaged over test-time augmentation views.

    Unlike `model.predict`, which returns what the last layer outputs
    (probabilities or logits), this returns probabilities: softmax (or one
    sigmoid per class for a multi-label model) is applied when the model
    outputs logits (`kft.builders.outputs_logits`), and a single sigmoid
    unit becomes two columns. With TTA the model predicts each view of every
    image (see `VIEWS`) in inference mode, and the probabilities are
    averaged over the views.

    Args:
        model: a classifier with Keras' `predict`, e.g. from
            `kft.build_image_classifier`.
        x: the inputs: an image array `(n, height, width, channels)` of the
            pixels the model takes (0-255 for kft models), or, without TTA,
            any array or list the model predicts on (texts for
            `kft.build_text_classifier` models).
        tta: `None` (no TTA), an int N (the first N views of `VIEWS`:
            `identity`, `flip`, `center_crop`, `flip_center_crop`, the
            corner crops...; `1` is the image alone), or a list of view
            names. Image models only. Defaults to `None`.
        batch_size: prediction batch size. Defaults to `32`.
        verbose: `predict`'s verbosity. Defaults to `0`.

    Returns:
        A float64 array `(n, k)` of class probabilities.

    Raises:
        TypeError: if `x` is a `tf.data.Dataset` (use `kft.evaluate`) or
            `tta` is not `None`, an int or a list.
        ValueError: for a bad `tta` (`0`, too large, an unknown name), or
            `tta` on a text model or on inputs that are not images.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3),
    ...     backbone_kwargs={"alpha": 0.35})
    >>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
    >>> p = kft.evaluation.predict(model, images, tta=4)
    >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0))
    ((4, 3), True)
    """
    views = resolve_views(tta)
    check_number("batch_size", batch_size, low=1, integer=True)
    if is_batches(x) or hasattr(x, "element_spec"):
        raise TypeError(
            "`x` must be an array (or list) of inputs. Received: a "
            f"{type(x).__name__}. Pass the images as an array, or score a "
            "labelled dataset with kft.evaluate(model, dataset, tta=...)."
        )
    x = np.asarray(list(x) if isinstance(x, list) else x)
    if views is None:
        return _probabilities(model, _predict(model, x, batch_size, verbose))
    _check_images(model, x, views)
    total = None
    for view in views:
        p = _probabilities(model, _predict(model, x, batch_size, verbose, view))
        total = p if total is None else total + p
    return total / len(views)
