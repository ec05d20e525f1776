"""kft.data.take_per_class and kft.data.link_per_class."""

import numpy as np
import pytest

import kerastune_ft as kft

TEXTS = [f"sentence {i}" for i in range(30)]
LABELS = [0] * 20 + [1] * 10


def _data(seed=0):
    return kft.data.load_texts((TEXTS, LABELS), val_split=0.2, seed=seed)


def test_take_per_class_is_stratified_seeded_and_keeps_order():
    data = _data()
    small = kft.data.take_per_class(data, 4, seed=1)
    assert small.counts["train"] == {"0": 4, "1": 4}
    assert small.counts["val"] == {"0": 4, "1": 2}  # val holds 2 of class 1
    texts, _ = small.examples["train"]
    full = list(data.examples["train"][0])
    assert [full.index(t) for t in texts] == sorted(full.index(t) for t in texts)
    again = kft.data.take_per_class(data, 4, seed=1)
    np.testing.assert_array_equal(again.examples["train"][0], texts)
    other = kft.data.take_per_class(data, 4, seed=2)
    assert list(other.examples["train"][0]) != list(texts)
    assert "at most 4 per class" in small.source
    assert small.class_names == data.class_names


@pytest.mark.parametrize(
    ("data", "n", "error", "match"),
    [
        ("not data", 2, TypeError, "Received: data of type str"),
        (None, 0, ValueError, "max_per_class"),
        (None, 2.5, (TypeError, ValueError), "max_per_class"),
    ],
)
def test_take_per_class_bad_input(data, n, error, match):
    with pytest.raises(error, match=match):
        kft.data.take_per_class(_data() if data is None else data, n)


def test_link_per_class_links_a_subset_and_touches_nothing_else(tmp_path):
    root = tmp_path / "photos"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            (root / name / f"{i}.jpg").write_bytes(b"x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    subset = kft.data.link_per_class(root, 2, tmp_path / "subset", seed=0)
    for name in ("cats", "dogs"):
        links = list((subset / "train" / name).iterdir())
        assert len(links) == 2 and all(p.is_symlink() for p in links)
        assert all(p.resolve().parent == (root / name).resolve() for p in links)
    after = sorted(
        p.relative_to(tmp_path)
        for p in tmp_path.rglob("*")
        if not p.is_relative_to(tmp_path / "subset")
    )
    assert after == before


def test_link_per_class_refuses_an_existing_target(tmp_path):
    root = tmp_path / "photos" / "cats"
    root.mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"x")
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="Received: target="):
        kft.data.link_per_class(tmp_path / "photos", 1, target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_link_per_class_bad_roots_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="Received: root="):
        kft.data.link_per_class(tmp_path / "missing", 2, tmp_path / "t")
    with pytest.raises(ValueError, match="no class subfolders"):
        kft.data.link_per_class(tmp_path, 2, tmp_path.parent / (tmp_path.name + "_t"))
    assert not (tmp_path / "t").exists()
    assert not (tmp_path.parent / (tmp_path.name + "_t")).exists()
