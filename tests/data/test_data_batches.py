"""`kft.data.ArrayBatches` and the helpers that treat tf.data, PyDataset and
`(x, y)` inputs alike (`kerastune_ft.data.batches`)."""

import numpy as np
import pytest
import tensorflow as tf

import kerastune_ft as kft
from kerastune_ft.data import batches


def _epoch(data):
    return np.concatenate([y for _, y in data])


def test_array_batches_reshuffle_every_epoch_with_their_seed():
    data = kft.data.ArrayBatches(
        np.zeros((10, 2)), np.arange(10), batch_size=4, shuffle=True, seed=3
    )
    first = _epoch(data)
    assert len(data) == 3 and sorted(first) == list(range(10))
    data.on_epoch_end()
    second = _epoch(data)
    assert sorted(second) == list(range(10)) and list(second) != list(first)
    again = kft.data.ArrayBatches(
        np.zeros((10, 2)), np.arange(10), batch_size=4, shuffle=True, seed=3
    )
    assert list(_epoch(again)) == list(first)


def test_array_batches_keep_their_order_and_cast_inputs():
    x = np.arange(5 * 2, dtype="uint8").reshape(5, 2)
    data = kft.data.ArrayBatches(x, np.arange(5), batch_size=2, dtype="float32")
    assert list(_epoch(data)) == [0, 1, 2, 3, 4]
    inputs, _ = data[2]
    assert inputs.dtype == np.float32 and inputs.tolist() == [[8.0, 9.0]]
    with pytest.raises(IndexError):
        data[3]
    with pytest.raises(ValueError, match=r"`x` and `y` must hold as many"):
        kft.data.ArrayBatches(x, np.arange(4))


def test_helpers_read_tf_data_and_pydatasets_alike():
    x, y = np.ones((6, 3), "float32"), np.arange(6)
    tf_data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    py_data = kft.data.ArrayBatches(x, y, batch_size=4)
    assert batches.is_tf_dataset(tf_data) and not batches.is_tf_dataset(py_data)
    for data in (tf_data, py_data):
        assert batches.is_batches(data)
        assert batches.num_batches(data) == 2
        assert batches.batch_size_of(data) == 4
        first = batches.first_batch(data)
        assert isinstance(first[0], np.ndarray) and first[1].tolist() == [0, 1, 2, 3]
    assert batches.num_batches(tf_data.repeat()) is None
    assert batches.as_batches(py_data) is py_data
    as_tuple = batches.as_batches((x, y), 5)
    assert isinstance(as_tuple, kft.data.ArrayBatches) and len(as_tuple) == 2
    with pytest.raises(TypeError, match=r"`train` must be a tf.data.Dataset.*list"):
        batches.as_batches([x, y], name="train")


def test_load_images_returns_array_batches_on_request():
    x = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype="uint8")
    data = kft.data.load_images(
        (x, [0, 1] * 5),
        image_size=8,
        batch_size=4,
        val_split=0.2,
        format="pydataset",
    )
    assert isinstance(data.train, kft.data.ArrayBatches)
    assert isinstance(data.val, kft.data.ArrayBatches)
    images, labels = data.train[0]
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert len(data.train) == 2  # 8 training images in batches of 4
    auto = kft.data.load_images((x, [0, 1] * 5), image_size=8, val_split=0)
    assert batches.is_tf_dataset(auto.train)  # "auto" on the TensorFlow backend
    with pytest.raises(ValueError, match=r"`format` must be one of"):
        kft.data.load_images((x, [0, 1] * 5), image_size=8, format="numpy")
