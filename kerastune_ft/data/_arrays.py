"""The one conversion of datasets and loaded data to NumPy arrays.

Cross-validation needs every example in memory to split it into folds, and
evaluation needs the labels of a whole test set: both come here instead of
each iterating a `tf.data.Dataset` its own way.
"""

import dataclasses

import numpy as np

from kerastune_ft.data.batches import is_batches, iter_numpy

__all__ = ["Arrays", "dataset_to_numpy", "to_numpy"]


@dataclasses.dataclass(frozen=True)
class Arrays:
    """Examples held in memory: inputs and labels, first axis aligned.

    Attributes:
        x: the inputs (`str` objects for texts, numbers for images).
        y: the labels, as given (integers, one-hot or multi-hot rows).
    """

    x: np.ndarray
    y: np.ndarray

    def __len__(self):
        return len(self.y)

    def take(self, indices):
        """The examples at `indices`, as a new `Arrays`.

        Args:
            indices: integer positions (e.g. a fold from a scikit-learn
                splitter).

        Returns:
            An `Arrays`.

        Example:

        >>> import numpy as np
        >>> from kerastune_ft.data._arrays import Arrays
        >>> len(Arrays(np.zeros((4, 2)), np.arange(4)).take([0, 2]))
        2
        """
        return Arrays(self.x[indices], self.y[indices])


def _decoded(x):
    if x.dtype == object:  # tf.string tensors come back as bytes
        return np.array(
            [v.decode("utf-8") if isinstance(v, bytes) else v for v in x],
            dtype=object,
        )
    return x


def dataset_to_numpy(dataset, *, name="data"):
    """Every `(inputs, labels)` batch of `dataset`, concatenated.

    Args:
        dataset: a `tf.data.Dataset` or a `keras.utils.PyDataset` of
            `(inputs, labels)` batches (extra elements, such as sample
            weights, are ignored).
        name: how to call the dataset in error messages. Defaults to
            `"data"`.

    Returns:
        An `Arrays`; byte strings are decoded to `str`.

    Example:

    >>> import tensorflow as tf
    >>> from kerastune_ft.data._arrays import dataset_to_numpy
    >>> ds = tf.data.Dataset.from_tensor_slices((["a", "b", "c"], [0, 1, 0]))
    >>> arrays = dataset_to_numpy(ds.batch(2))
    >>> list(arrays.x), arrays.y.tolist()
    (['a', 'b', 'c'], [0, 1, 0])
    """
    xs, ys = [], []
    for element in iter_numpy(dataset):
        if not isinstance(element, (tuple, list)) or len(element) < 2:
            raise ValueError(
                f"`{name}` must yield (inputs, labels) batches. "
                f"Received: elements of type {type(element).__name__}."
            )
        xs.append(np.asarray(element[0]))
        ys.append(np.asarray(element[1]))
    if not xs:
        raise ValueError(
            f"The dataset `{name}` is empty: there are no examples. "
            "Pass a dataset with at least one batch."
        )
    return Arrays(_decoded(np.concatenate(xs)), np.concatenate(ys))


def to_numpy(data, splits=("train", "val"), *, name="data"):
    """Examples as arrays from a `LoadedData`, an `(x, y)` pair or a dataset.

    Args:
        data: a `kft.data` `LoadedData` (the `splits` it has are pooled), an
            `(inputs, labels)` tuple of arrays or lists, or a
            `tf.data.Dataset` or `keras.utils.PyDataset` of `(inputs, labels)`
            batches.
        splits: for a `LoadedData`, which splits to pool. Defaults to
            `("train", "val")`.
        name: the argument's name in error messages. Defaults to `"data"`.

    Returns:
        An `Arrays`.

    Example:

    >>> from kerastune_ft.data._arrays import to_numpy
    >>> len(to_numpy((["good", "bad"], [1, 0])))
    2
    """
    if hasattr(data, "examples") and hasattr(data, "class_names"):
        parts = [data.examples[s] for s in splits if s in data.examples]
        if not parts:
            raise ValueError(
                f"The LoadedData `{name}` has none of the splits {tuple(splits)}. "
                f"It has: {tuple(data.examples)}. Pass splits= naming one of them."
            )
        x = np.concatenate([np.asarray(p[0]) for p in parts])
        y = np.concatenate([np.asarray(p[1]) for p in parts])
        return Arrays(x, y)
    if is_batches(data):
        return dataset_to_numpy(data, name=name)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if len(x) != len(y):
            raise ValueError(
                f"`{name}` inputs and labels differ in length: {len(x)} vs "
                f"{len(y)}. Received: {name}=(inputs of {len(x)}, labels of "
                f"{len(y)}). Pass one label per input."
            )
        return Arrays(x, y)
    raise TypeError(
        f"`{name}` must be a kft LoadedData, an (inputs, labels) tuple of arrays "
        "or lists, or a tf.data.Dataset or keras.utils.PyDataset of batches. "
        f"Received: {name} of type {type(data).__name__}."
    )
