"""load_images: folders with real-world quirks, arrays, tfds, and the flowers set."""

import numpy as np
import pytest
from PIL import Image

import kerastune_ft as kft


def _save(path, mode="RGB", size=(20, 12), color=None, fmt=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "CMYK": 4, "L": 1, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    if color is not None:
        pixels[:] = color
    img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)
    img.save(path, format=fmt or ("JPEG" if path.suffix == ".jpg" else "PNG"))
    return path


def _make_folder(root, per_class=5, classes=("cats", "dogs")):
    for c, name in enumerate(classes):
        for i in range(per_class):
            _save(root / name / f"{i}.png", seed=100 * c + i)
    return root


def test_quirky_files_load_as_rgb_and_bad_ones_are_listed(tmp_path):
    root = _make_folder(tmp_path / "pets", per_class=4)
    _save(root / "cats" / "gray.jpg", mode="L")
    _save(root / "cats" / "cmyk.jpg", mode="CMYK")
    _save(root / "dogs" / "png_named.jpg", fmt="PNG", seed=7)
    _save(root / "dogs" / "alpha.png", mode="RGBA", seed=8)
    good = _save(root / "dogs" / "whole.jpg", seed=9)
    (root / "dogs" / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    (root / "cats" / "notes.jpg").write_text("this is not an image")
    (root / "cats" / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored

    with pytest.warns(kft.KerasTuneFTWarning, match="Skipped 2 image file") as record:
        data = kft.data.load_images(root, image_size=(16, 24), val_split=0.0)
    assert len(record) == 1
    message = str(record[0].message)
    assert "truncated.jpg" in message and "notes.jpg" in message
    assert "strict=True" in message
    assert {p.split("/")[-1] for p, _ in data.skipped} == {"truncated.jpg", "notes.jpg"}
    assert data.class_names == ("cats", "dogs")
    assert data.counts == {"train": {"cats": 6, "dogs": 7}}
    x, y = data.examples["train"]
    assert x.shape == (13, 16, 24, 3) and x.dtype == np.uint8
    gray = data.origins["train"].index(str(root / "cats" / "gray.jpg"))
    # Grayscale became RGB with three equal channels.
    np.testing.assert_array_equal(x[gray][..., 0], x[gray][..., 2])
    assert data.val is None and data.test is None

    with pytest.raises(ValueError, match=r"2 image file\(s\).*could not be decoded"):
        kft.data.load_images(root, image_size=16, strict=True)


def test_batches_are_float_pixels_and_train_reshuffles_each_epoch(tmp_path):
    root = _make_folder(tmp_path / "pets", per_class=20)
    data = kft.data.load_images(root, image_size=8, batch_size=40, val_split=0.2)
    assert data.counts == {
        "train": {"cats": 16, "dogs": 16},
        "val": {"cats": 4, "dogs": 4},
    }
    images, labels = next(iter(data.train))
    assert images.shape == (32, 8, 8, 3)
    assert images.dtype.name == "float32" and labels.dtype.name == "int32"
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 255.0
    assert float(images.numpy().max()) > 1.0  # raw pixels, not rescaled
    first = np.concatenate([y.numpy() for _, y in data.train])
    second = np.concatenate([y.numpy() for _, y in data.train])
    order = [
        np.concatenate([x.numpy().sum(axis=(1, 2, 3)) for x, _ in data.train])
        for _ in range(2)
    ]
    assert sorted(first) == sorted(second)
    assert not np.array_equal(order[0], order[1]), "train did not reshuffle"
    val_orders = [
        np.concatenate([x.numpy().sum(axis=(1, 2, 3)) for x, _ in data.val])
        for _ in range(2)
    ]
    np.testing.assert_array_equal(val_orders[0], val_orders[1])
    assert "cats" in repr(data) and "train" in repr(data)


def test_same_seed_same_stratified_split_other_seed_differs(tmp_path):
    root = _make_folder(tmp_path / "pets", per_class=10, classes=("a", "b", "c"))
    runs = [
        kft.data.load_images(root, image_size=4, val_split=0.2, test_split=0.2, seed=s)
        for s in (3, 3, 4)
    ]
    assert runs[0].origins == runs[1].origins
    assert runs[0].origins["test"] != runs[2].origins["test"]
    for run in runs:
        # Stratified: 2 of each class in val and test, 6 in train.
        assert run.counts["val"] == {"a": 2, "b": 2, "c": 2}
        assert run.counts["test"] == {"a": 2, "b": 2, "c": 2}
        assert run.counts["train"] == {"a": 6, "b": 6, "c": 6}
        all_origins = sum((list(o) for o in run.origins.values()), [])
        assert len(set(all_origins)) == 30


def test_split_folders_are_used_and_missing_val_is_carved(tmp_path):
    _make_folder(tmp_path / "given" / "train", per_class=6)
    _make_folder(tmp_path / "given" / "validation", per_class=2)
    data = kft.data.load_images(tmp_path / "given", image_size=4, val_split=0.5)
    assert data.counts == {
        "train": {"cats": 6, "dogs": 6},
        "val": {"cats": 2, "dogs": 2},
    }
    _make_folder(tmp_path / "only_train" / "train", per_class=10)
    _make_folder(tmp_path / "only_train" / "test", per_class=3)
    data = kft.data.load_images(tmp_path / "only_train", image_size=4, val_split=0.2)
    assert data.counts["val"] == {"cats": 2, "dogs": 2}
    assert data.counts["test"] == {"cats": 3, "dogs": 3}
    assert data.counts["train"] == {"cats": 8, "dogs": 8}


def test_arrays_are_resized_and_word_labels_sorted():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, 10, 10), dtype=np.uint8)  # grayscale
    y = np.array(["tulip", "rose", "daisy"] * 4)
    data = kft.data.load_images((x, y), image_size=(6, 5), val_split=0.25)
    assert data.class_names == ("daisy", "rose", "tulip")
    assert data.examples["train"][0].shape == (9, 6, 5, 3)
    assert data.counts["val"] == {"daisy": 1, "rose": 1, "tulip": 1}
    same = kft.data.load_images((x[..., None], y), image_size=(10, 10), val_split=0)
    np.testing.assert_array_equal(same.examples["train"][0][..., 1], x)


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=60):
        data = kft.data.load_images("tfds:tf_flowers", image_size=16, val_split=0.2)
    assert data.class_names == (
        "dandelion",
        "daisy",
        "tulips",
        "sunflowers",
        "roses",
    )
    assert sum(sum(c.values()) for c in data.counts.values()) == 60
    images, _ = next(iter(data.train))
    assert images.shape[1:] == (16, 16, 3)


@pytest.mark.slow
def test_real_flowers_folder_exact_counts(shared_dir):
    data = kft.data.load_images(
        shared_dir / "datasets" / "flowers", image_size=64, batch_size=64
    )
    assert data.class_names == ("daisy", "dandelion", "roses", "sunflowers", "tulips")
    assert sum(data.counts["train"].values()) == 2934
    assert sum(data.counts["val"].values()) == 736
    totals = {
        n: data.counts["train"][n] + data.counts["val"][n] for n in data.class_names
    }
    assert totals == {
        "daisy": 633,
        "dandelion": 898,
        "roses": 641,
        "sunflowers": 699,
        "tulips": 799,
    }
    assert data.test is None and not data.skipped
    images, labels = next(iter(data.train))
    assert images.shape == (64, 64, 64, 3) and images.dtype.name == "float32"
    assert float(images.numpy().min()) >= 0 and float(images.numpy().max()) <= 255
    assert images.numpy().max() > 1
    assert set(labels.numpy()) <= set(range(5))
    assert data.train.cardinality().numpy() == 46  # ceil(2934 / 64)


def test_images_are_decoded_once_and_progress_only_when_verbose(tmp_path, capsys):
    import shutil

    root = _make_folder(tmp_path / "pets", per_class=6)
    data = kft.data.load_images(root, image_size=8, val_split=0.0)
    assert capsys.readouterr().out == ""  # quiet by default
    before = np.concatenate([x.numpy() for x, _ in data.train]).sum()
    shutil.rmtree(root)  # the pipeline never goes back to the files
    after = np.concatenate([x.numpy() for x, _ in data.train]).sum()
    assert before == after
    _make_folder(root, per_class=6)
    kft.data.load_images(root, image_size=8, val_split=0.0, verbose=1)
    assert "12/12" in capsys.readouterr().out
