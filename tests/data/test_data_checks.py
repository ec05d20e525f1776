"""class_balance and find_leakage: planted duplicates and the real UCI files."""

import math

import numpy as np
import pytest
from PIL import Image

import kerastune_ft as kft


def _hand_built(splits, class_names=("neg", "pos")):
    """A LoadedData whose split membership the test controls exactly."""
    examples = {
        s: (np.array(texts, dtype=object), np.array(labels, dtype=np.int32))
        for s, (texts, labels) in splits.items()
    }
    counts = {
        s: {n: int((y == i).sum()) for i, n in enumerate(class_names)}
        for s, (_, y) in examples.items()
    }
    return kft.data.LoadedData(
        train=None,
        val=None,
        test=None,
        class_names=tuple(class_names),
        counts=counts,
        examples=examples,
        modality="text",
    )


def test_class_balance_counts_ratio_and_weights():
    texts = [f"text {i}" for i in range(50)]
    labels = ["spam"] * 10 + ["ham"] * 40
    data = kft.data.load_texts((texts, labels), val_split=0.2)
    balance = kft.data.class_balance(data)
    assert balance.totals == {"ham": 40, "spam": 10}
    assert balance.counts["val"] == {"ham": 8, "spam": 2}
    assert balance.imbalance_ratio == 4.0
    assert balance.split_ratios == {"train": 4.0, "val": 4.0}
    weights = balance.class_weight()
    assert weights == pytest.approx({0: 40 / (2 * 32), 1: 40 / (2 * 8)})
    text = repr(balance)
    assert "imbalance ratio 4.00" in text and "spam" in text and "20.0%" in text


def test_class_balance_flags_an_empty_class():
    data = _hand_built({"train": (["a", "b", "c"], [0, 0, 0])})
    assert math.isinf(kft.data.class_balance(data).imbalance_ratio)


def test_find_leakage_counts_planted_text_duplicates_exactly():
    data = _hand_built(
        {
            "train": (
                ["Great phone!", "great   phone", "bad", "bad", "ok"],
                [1, 1, 0, 0, 1],
            ),
            "val": (["Great phone!", "meh", "BAD!!"], [1, 0, 1]),
            "test": (["ok", "new"], [1, 0]),
        }
    )
    report = kft.data.find_leakage(data)
    assert report.kinds == ("exact", "normalized")
    assert report.within == {
        "train": {"exact": 1, "normalized": 2},
        "val": {"exact": 0, "normalized": 0},
        "test": {"exact": 0, "normalized": 0},
    }
    assert report.across == {
        "train/val": {"exact": 1, "normalized": 2},
        "train/test": {"exact": 1, "normalized": 1},
        "val/test": {"exact": 0, "normalized": 0},
    }
    # "bad" (neg) and "BAD!!" (pos) normalize alike but disagree on the label.
    assert report.conflicts == {"exact": 0, "normalized": 1}
    assert report.has_leakage
    first = report.examples["exact"][0]  # groups spanning splits come first
    assert {w[0] for w in first["where"]} == {"train", "val"} or {
        w[0] for w in first["where"]
    } == {"train", "test"}
    text = repr(report)
    assert "LEAKAGE FOUND" in text and "'Great phone!'" in text


def test_find_leakage_clean_data_and_end_to_end_planting():
    texts = [f"unique sentence {i}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    clean = kft.data.load_texts((texts, labels), val_split=0.25)
    report = kft.data.find_leakage(clean)
    assert not report.has_leakage
    assert all(v == 0 for c in report.within.values() for v in c.values())
    assert "no leakage" in repr(report)
    planted = kft.data.load_texts(
        (texts + ["Unique sentence 3."] * 6, labels + [1] * 6), val_split=0.25
    )
    report = kft.data.find_leakage(planted)
    assert report.has_leakage
    # 7 normalized copies of one sentence: every copy after the first per
    # split is a within-split repeat, every val copy is an across-split one.
    copies = {
        s: sum(kft.data.normalize_text(t) == "unique sentence 3" for t in x)
        for s, (x, _) in planted.examples.items()
    }
    assert copies["train"] + copies["val"] == 7
    assert report.within["train"]["normalized"] == copies["train"] - 1
    assert report.across["train/val"]["normalized"] == copies["val"]


def test_find_leakage_on_images_uses_decoded_pixels(tmp_path):
    rng = np.random.default_rng(0)

    def save(path, pixels, fmt="PNG"):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format=fmt)

    images = rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    for i in range(8):
        save(tmp_path / "train" / ("a" if i % 2 else "b") / f"{i}.png", images[i])
    for i in range(8, 12):
        save(tmp_path / "val" / ("a" if i % 2 else "b") / f"{i}.png", images[i])
    # Planted: a train image re-saved under another name (BMP) in val, and a
    # within-train copy.
    save(tmp_path / "val" / "a" / "copy_of_3.bmp", images[3], fmt="BMP")
    save(tmp_path / "train" / "a" / "copy_of_1.png", images[1])
    data = kft.data.load_images(tmp_path, image_size=8)
    report = kft.data.find_leakage(data)
    assert report.kinds == ("exact",)
    assert report.across == {"train/val": {"exact": 1}}
    assert report.within == {"train": {"exact": 1}, "val": {"exact": 0}}
    paths = {w[2].split("/")[-1] for g in report.examples["exact"] for w in g["where"]}
    assert {"3.png", "copy_of_3.bmp", "1.png", "copy_of_1.png"} == paths


@pytest.mark.parametrize("function", ["class_balance", "find_leakage"])
def test_checks_reject_other_objects(function):
    with pytest.raises(TypeError, match="Received: data of type list"):
        getattr(kft.data, function)([1, 2])


@pytest.mark.slow
def test_real_uci_duplicates_are_reported(shared_dir):
    # Facts about the real files, also counted independently with plain
    # Python: duplicated sentences, all with the same label.
    expected = {
        "amazon_cells": {"exact": 10, "normalized": 17},
        "imdb": {"exact": 3, "normalized": 4},
        "yelp": {"exact": 4, "normalized": 5},
    }
    folder = shared_dir / "datasets" / "uci_sentiment"
    for domain, within in expected.items():
        whole = kft.data.load_texts(folder / f"{domain}_labelled.txt", val_split=0)
        report = kft.data.find_leakage(whole)
        assert report.within["train"] == within, domain
        assert report.conflicts == {"exact": 0, "normalized": 0}
        split = kft.data.load_texts(folder / f"{domain}_labelled.txt", seed=0)
        split_report = kft.data.find_leakage(split)
        # With a random 80/20 split some of those duplicates straddle it.
        assert split_report.has_leakage, domain


def test_public_data_api_is_pinned():
    assert sorted(kft.data.__all__) == [
        "ArrayBatches",
        "ClassBalance",
        "LeakageReport",
        "LoadedData",
        "balanced_class_weight",
        "class_balance",
        "find_leakage",
        "link_per_class",
        "load_images",
        "load_texts",
        "normalize_text",
        "take_per_class",
    ]
    assert kft.data.normalize_text("  Great   PHONE!!\n") == "great phone"
