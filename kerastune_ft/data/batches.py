"""Batches on every backend: `ArrayBatches`, and the helpers that treat inputs alike.

`kft.fine_tune`, `kft.evaluate`, `kft.diagnose`, the feature cache and the
pre-training checks take a `tf.data.Dataset` (when TensorFlow is installed),
a `keras.utils.PyDataset` such as `ArrayBatches`, or an `(x, y)` tuple of
arrays. The helpers here are the one place that tells them apart: "is this
tf.data" (without importing TensorFlow), batches as NumPy, number of
batches, first batch, batch size.
"""

import math
import sys

import keras
import numpy as np

from kerastune_ft._validation import check_number

__all__ = [
    "ArrayBatches",
    "as_batches",
    "batch_size_of",
    "first_batch",
    "is_batches",
    "is_tf_dataset",
    "iter_numpy",
    "num_batches",
]

DEFAULT_BATCH_SIZE = 32


class ArrayBatches(keras.utils.PyDataset):
    """`(x, y)` NumPy arrays as a `keras.utils.PyDataset` of batches.

    The TensorFlow-free counterpart of a batched `tf.data.Dataset`: `fit`,
    `evaluate` and `predict` take it on every Keras backend. With
    `shuffle=True` the order changes after every epoch (Keras calls
    `on_epoch_end`), seeded by `seed` and the epoch number.

    Args:
        x: the inputs, an array whose first axis is the examples.
        y: the labels, as many as `x`.
        batch_size: examples per batch (the last batch may be smaller).
            Defaults to `32`.
        shuffle: reshuffle the examples every epoch. Defaults to `False`.
        seed: the seed of the shuffling; the same seed gives the same
            orders. Defaults to `None` (a random one).
        dtype: cast each batch of inputs to this dtype (e.g. `"float32"` for
            uint8 pixels kept in memory as uint8). Defaults to `None` (as
            stored).
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> batches = kft.data.ArrayBatches(
    ...     np.zeros((10, 4)), np.arange(10), batch_size=4, shuffle=True, seed=0)
    >>> len(batches), [len(y) for _, y in batches]
    (3, [4, 4, 2])
    """

    def __init__(
        self,
        x,
        y,
        batch_size=DEFAULT_BATCH_SIZE,
        *,
        shuffle=False,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(
                "`x` and `y` must hold as many examples. Received: "
                f"x with {len(x)}, y with {len(y)}. Pass one label per input."
            )
        check_number("batch_size", batch_size, low=1, integer=True)
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(np.random.randint(2**31)) if seed is None else int(seed)
        self.dtype = dtype
        self._epoch = 0
        self._order = self._new_order()

    def _new_order(self):
        if not self.shuffle:
            return np.arange(len(self.y))
        rng = np.random.default_rng([self.seed, self._epoch])
        return rng.permutation(len(self.y))

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} of {len(self)}.")
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.x[rows]
        if self.dtype is not None:
            x = x.astype(self.dtype)
        return x, self.y[rows]

    def on_epoch_end(self):
        """Draws the next epoch's order (when shuffling)."""
        if self.shuffle:
            self._epoch += 1
            self._order = self._new_order()


def is_tf_dataset(data):
    """Whether `data` is a `tf.data.Dataset`, without importing TensorFlow."""
    tf = sys.modules.get("tensorflow")
    data_module = getattr(tf, "data", None) if tf is not None else None
    return data_module is not None and isinstance(data, data_module.Dataset)


def is_batches(data):
    """Whether `data` is a batched dataset: tf.data or a `keras.utils.PyDataset`."""
    return is_tf_dataset(data) or isinstance(data, keras.utils.PyDataset)


def as_batches(data, batch_size=None, *, shuffle=False, seed=None, name="data"):
    """`data` as batches: datasets as given, an `(x, y)` tuple as `ArrayBatches`.

    Args:
        data: a `tf.data.Dataset`, a `keras.utils.PyDataset`, or an
            `(inputs, labels)` tuple of arrays.
        batch_size: the batch size of a tuple. Defaults to `None` (`32`).
        shuffle: whether a tuple's batches reshuffle every epoch. Defaults
            to `False`.
        seed: the seed of that shuffling. Defaults to `None`.
        name: the argument's name in error messages. Defaults to `"data"`.

    Returns:
        A `tf.data.Dataset` or a `keras.utils.PyDataset`.

    Raises:
        TypeError: for anything else.
    """
    if is_batches(data):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        if isinstance(x, list):
            x = np.asarray(x)
        if len(x) != len(y):
            raise ValueError(
                f"`{name}` inputs and labels differ in length: {len(x)} vs "
                f"{len(y)}. Pass one label per input."
            )
        return ArrayBatches(
            x, y, batch_size or DEFAULT_BATCH_SIZE, shuffle=shuffle, seed=seed
        )
    raise TypeError(
        f"`{name}` must be a tf.data.Dataset of (inputs, labels) batches, a "
        "keras.utils.PyDataset (e.g. kft.data.ArrayBatches) or an (inputs, labels) "
        f"tuple of arrays, e.g. `kft.data.load_images(...).train`. Received: "
        f"{name} of type {type(data).__name__}."
    )


def _to_numpy(value):
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy"):  # a tf.Tensor (also of strings)
        return value.numpy()
    return keras.ops.convert_to_numpy(value)


def iter_numpy(data):
    """The elements of a dataset (tf.data or PyDataset), as NumPy (nested) arrays.

    Args:
        data: a batched dataset.

    Yields:
        Each batch (usually `(inputs, labels)`), its tensors as NumPy arrays.
    """
    for element in data:
        yield _to_numpy(element)


def num_batches(data):
    """Batches in `data`, or `None` when unknown or infinite."""
    if is_tf_dataset(data):
        n = int(data.cardinality())
        return n if n > 0 else None
    try:
        n = data.num_batches
    except (AttributeError, NotImplementedError, TypeError):
        return None
    return int(n) if n is not None and n > 0 else None


def first_batch(data):
    """The first element of a batched dataset as NumPy, or `None` when empty."""
    return next(iter_numpy(data), None)


def batch_size_of(data, default=DEFAULT_BATCH_SIZE):
    """The batch size of a dataset (its first batch's), else `default`.

    Args:
        data: a batched dataset, a `kft.data` `LoadedData`, or anything else.
        default: what to return when there is no batch size. Defaults to `32`.

    Returns:
        An int.
    """
    size = getattr(data, "batch_size", None)
    if isinstance(size, int):
        return size
    if is_batches(data):
        element = first_batch(data)
        if isinstance(element, (tuple, list)) and len(element) >= 2:
            return int(np.shape(element[1])[0])
    return default
