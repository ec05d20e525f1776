"""Unit tests for nlpaug-based text augmentation (no model weights needed)."""

import json

import nltk
import numpy as np
import pytest

import kerastune_ft as kft
from kerastune_ft.augment import text as augment_text

TEXTS = [
    "The battery life of this phone is really great.",
    "The screen cracked after two days and support was useless.",
    "I love the sound quality and the price.",
    "Terrible reception, calls drop all the time.",
    "Works fine with my car charger.",
    "Broke within a week, do not buy.",
]
LABELS = [1, 0, 1, 0, 1, 0]
OFFLINE_KINDS = (
    "swap",
    "delete",
    "crop",
    "tfidf_insert",
    "tfidf_substitute",
    "keyboard",
    "ocr",
)


def offline_augmenter(kinds=("swap", "delete"), **kwargs):
    return kft.augment.TextAugmenter(kinds, p=0.3, **kwargs)


@pytest.mark.parametrize("kind", OFFLINE_KINDS)
def test_each_kind_changes_text_reproducibly(kind, tmp_path):
    augmenter = kft.augment.TextAugmenter(kind, p=0.4)
    if augmenter.needs_fit:
        augmenter.fit(TEXTS, model_dir=tmp_path)
    text = TEXTS[1]
    out = augmenter.augment(text, seed=3)
    assert isinstance(out, str) and out.strip()
    assert out != text
    assert augmenter.augment(text, seed=3) == out


def test_synonym_works_offline_with_shared_nltk_data(shared_dir, monkeypatch):
    monkeypatch.setenv("NLTK_DATA", str(shared_dir / "nltk_data"))
    augmenter = kft.augment.TextAugmenter("synonym", p=0.5)
    out = augmenter.augment("The movie was good and the actors were great.", seed=0)
    assert out != "The movie was good and the actors were great."


def test_missing_nltk_resource_is_a_clear_error_not_a_download(monkeypatch, tmp_path):
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])

    def no_download(*args, **kwargs):  # nlpaug would call this when missing
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk, "download", no_download)
    with pytest.raises(augment_text.MissingResourceError) as info:
        kft.augment.TextAugmenter("synonym")
    message = str(info.value)
    assert "wordnet" in message and "averaged_perceptron_tagger_eng" in message
    assert "python -m nltk.downloader" in message and "NLTK_DATA" in message


@pytest.mark.parametrize(
    "kind, kwargs, match",
    [
        ("back_translation", {}, "back_translation_models="),
        (
            "back_translation",
            {"back_translation_models": ("/no/a", "/no/b")},
            "never downloaded",
        ),
        ("contextual", {}, "contextual_model=DIR"),
        (
            "contextual",
            {"contextual_model": "/no/such/dir"},
            "Received: contextual_model",
        ),
    ],
)
def test_model_kinds_need_local_models(kind, kwargs, match):
    with pytest.raises(augment_text.MissingResourceError, match=match):
        kft.augment.TextAugmenter(kind, **kwargs)


def test_chain_applies_every_kind_and_sample_one():
    text = "one two three four five six seven eight nine ten"
    chained = kft.augment.TextAugmenter(("delete", "keyboard"), p=0.3, combine="chain")
    out = chained.augment(text, seed=1)
    assert len(out.split()) < 10  # a word was deleted
    assert any(word not in text.split() for word in out.split())  # and typos
    sampled = kft.augment.TextAugmenter(("delete", "swap"), p=0.3, combine="sample")
    results = {sampled.augment(text, seed=s) for s in range(8)}
    assert any(len(r.split()) == 10 for r in results)  # some swaps
    assert any(len(r.split()) < 10 for r in results)  # some deletions


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: kft.augment.TextAugmenter("synonyms"),
            ValueError,
            "Did you mean 'synonym'",
        ),
        (
            lambda: kft.augment.TextAugmenter(["swap", "flip"]),
            ValueError,
            "Valid kinds: synonym, swap",
        ),
        (lambda: kft.augment.TextAugmenter([]), ValueError, "at least one"),
        (lambda: kft.augment.TextAugmenter("swap", p=0), ValueError, "Received: p=0"),
        (
            lambda: kft.augment.TextAugmenter("swap", combine="all"),
            ValueError,
            "Received: combine='all'",
        ),
        (
            lambda: kft.augment.augment_dataset(["ok", ""], [0, 1]),
            ValueError,
            "empty string at index 1",
        ),
        (
            lambda: kft.augment.augment_dataset(["ok", "   "], [0, 1]),
            ValueError,
            "index 1",
        ),
        (
            lambda: kft.augment.augment_dataset(["ok", 7], [0, 1]),
            TypeError,
            "type int at index 1",
        ),
        (
            lambda: kft.augment.augment_dataset(["ok", None], [0, 1]),
            TypeError,
            "NoneType",
        ),
        (
            lambda: kft.augment.augment_dataset("just one", [0]),
            TypeError,
            "not a single string",
        ),
        (lambda: kft.augment.augment_dataset([], []), ValueError, "is empty"),
        (
            lambda: kft.augment.augment_dataset(["a", "b"], [0]),
            ValueError,
            "2 texts and 1 labels",
        ),
        (
            lambda: kft.augment.augment_dataset(["a"], None),
            ValueError,
            "`labels` is required",
        ),
        (
            lambda: kft.augment.augment_dataset(["a"], [1], split="validation"),
            ValueError,
            "never augmented",
        ),
        (
            lambda: kft.augment.augment_dataset(
                ["a"], [1], split="test", on_the_fly=True
            ),
            ValueError,
            "never augmented",
        ),
        (
            lambda: kft.augment.augment_dataset(["a"], [1], copies=0),
            ValueError,
            "Received: copies=0",
        ),
        (
            lambda: kft.augment.augment_dataset(["a"], [1], augmenter="swap"),
            TypeError,
            "kft.augment.TextAugmenter",
        ),
        (lambda: offline_augmenter().augment(""), ValueError, "empty string"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_augment_texts_keeps_labels_and_caches(tmp_path):
    augmenter = offline_augmenter()
    texts, labels = augment_text.augment_texts(
        TEXTS, LABELS, copies=3, augmenter=augmenter, cache_dir=tmp_path, num_workers=1
    )
    assert len(texts) == len(labels) == len(TEXTS) * 4
    assert list(texts[: len(TEXTS)]) == TEXTS  # originals first
    for c in range(1, 4):
        assert list(labels[c * len(TEXTS) : (c + 1) * len(TEXTS)]) == LABELS
    assert sum(t not in TEXTS for t in texts) >= len(TEXTS)  # variants differ
    cached = list(tmp_path.glob("*.json"))
    assert len(cached) == 1
    # A second call reads the cache (prove it by editing the cached file).
    data = json.loads(cached[0].read_text())
    data["variants"][0][0] = "FROM CACHE"
    cached[0].write_text(json.dumps(data))
    again, _ = augment_text.augment_texts(
        TEXTS, LABELS, copies=3, augmenter=augmenter, cache_dir=tmp_path, num_workers=1
    )
    assert "FROM CACHE" in list(again)
    # Different settings -> a different cache entry.
    augment_text.augment_texts(
        TEXTS,
        LABELS,
        copies=3,
        augmenter=kft.augment.TextAugmenter(("swap", "delete"), p=0.5),
        cache_dir=tmp_path,
        num_workers=1,
    )
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_worker_processes_match_in_process_results():
    augmenter = offline_augmenter(("swap", "keyboard", "tfidf_insert"))
    texts = TEXTS * 5
    labels = LABELS * 5
    kwargs = {"copies": 2, "augmenter": augmenter, "cache_dir": False, "seed": 7}
    serial, _ = augment_text.augment_texts(texts, labels, num_workers=1, **kwargs)
    parallel, _ = augment_text.augment_texts(texts, labels, num_workers=2, **kwargs)
    assert list(serial) == list(parallel)
    other, _ = augment_text.augment_texts(
        texts, labels, num_workers=1, **{**kwargs, "seed": 8}
    )
    assert list(other) != list(serial)


def test_multi_hot_labels_kept():
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    texts, out = augment_text.augment_texts(
        TEXTS,
        labels,
        copies=2,
        augmenter=offline_augmenter(),
        cache_dir=False,
        num_workers=1,
    )
    assert out.shape == (18, 3)
    np.testing.assert_array_equal(out[12:], labels)


def test_augment_dataset_materialized_mixes_and_reshuffles():
    dataset = kft.augment.augment_dataset(
        TEXTS,
        LABELS,
        copies=2,
        augmenter=offline_augmenter(),
        batch_size=4,
        cache_dir=False,
        num_workers=1,
    )
    first = [
        (t.decode(), int(y))
        for x, yb in dataset
        for t, y in zip(x.numpy(), yb.numpy(), strict=True)
    ]
    second = [t for x, _ in dataset for t in x.numpy()]
    assert len(first) == 18
    assert [t for t, _ in first] != [t.decode() for t in second]  # reshuffled
    originals = {t: y for t, y in zip(TEXTS, LABELS, strict=True)}
    assert all(originals[t] == y for t, y in first if t in originals)
    assert sum(t in originals for t, _ in first) == len(TEXTS)


def test_augment_dataset_on_the_fly():
    dataset = kft.augment.augment_dataset(
        TEXTS,
        LABELS,
        copies=4,
        augmenter=offline_augmenter(),
        batch_size=3,
        on_the_fly=True,
    )
    pairs = [
        (t.decode(), int(y))
        for x, yb in dataset
        for t, y in zip(x.numpy(), yb.numpy(), strict=True)
    ]
    assert len(pairs) == len(TEXTS)
    assert sum(t not in TEXTS for t, _ in pairs) >= 2  # most were augmented
    assert sorted(y for _, y in pairs) == sorted(LABELS)
