"""The one dataset-to-NumPy conversion (kerastune_ft.data._arrays)."""

import numpy as np
import pytest
import tensorflow as tf

import kerastune_ft as kft
from kerastune_ft.data._arrays import Arrays, dataset_to_numpy, to_numpy


def test_loaded_data_pools_its_splits():
    data = kft.data.load_texts(
        (["good", "bad", "great", "awful", "fine", "poor"] * 4, [1, 0] * 12),
        val_split=0.25,
    )
    assert len(to_numpy(data)) == 24  # train and val pooled
    assert len(to_numpy(data, ("train",))) == 18


def test_datasets_lists_and_arrays():
    ds = tf.data.Dataset.from_tensor_slices((["a", "b", "c"], [0, 1, 0])).batch(2)
    arrays = dataset_to_numpy(ds)
    assert list(arrays.x) == ["a", "b", "c"] and list(arrays.y) == [0, 1, 0]
    assert isinstance(arrays.x[0], str)
    images = tf.data.Dataset.from_tensor_slices(
        (np.ones((5, 2, 2, 3), "float32"), np.eye(5, 3)[:5])
    ).batch(2)
    arrays = to_numpy(images)
    assert arrays.x.shape == (5, 2, 2, 3) and arrays.y.shape == (5, 3)
    assert len(to_numpy((["a", "b"], [0, 1]))) == 2
    taken = Arrays(np.arange(4), np.arange(4) % 2).take([3, 1])
    assert list(taken.x) == [3, 1] and list(taken.y) == [1, 1]


@pytest.mark.parametrize(
    "data, error, match",
    [
        ("flowers/", TypeError, r"LoadedData.*Received: data of type str"),
        (([1, 2, 3], [0, 1]), ValueError, "differ in length: 3 vs 2"),
        (tf.data.Dataset.range(3).batch(2), ValueError, r"\(inputs, labels\)"),
        (
            tf.data.Dataset.from_tensor_slices(([1.0], [0])).take(0),
            ValueError,
            "is empty",
        ),
    ],
)
def test_bad_data_is_refused_with_advice(data, error, match):
    with pytest.raises(error, match=match):
        to_numpy(data)
