"""load_texts: line files, CSV/TSV, lists, tfds, and the real UCI / SMS sets."""

import numpy as np
import pytest

import kerastune_ft as kft


def _lines(n=10):
    return [f"sentence number {i}" for i in range(n)]


def test_tab_file_splits_on_newline_only_and_strips_trailing_whitespace(tmp_path):
    # U+0085, U+2028 and \x0c are line breaks for str.splitlines(), not for us.
    texts = ["odd\u0085break", "form\x0cfeed", "para\u2028graph", "plain"] * 3
    body = "".join(f"{t}  \t{i % 2}\r\n" for i, t in enumerate(texts))
    path = tmp_path / "reviews.txt"
    path.write_text(body, encoding="utf-8")
    assert len(body.splitlines()) > len(texts)  # the trap is real
    data = kft.data.load_texts(path, val_split=0.0)
    x, y = data.examples["train"]
    assert len(x) == 12 and list(x[:4]) == texts[:4]
    assert data.class_names == ("0", "1") and list(y[:2]) == [0, 1]
    assert data.origins["train"][2] == "line 3"


def test_label_first_word_labels_and_tabs_inside_text(tmp_path):
    path = tmp_path / "sms"
    lines = ["ham\thello\tthere", "spam\tWIN now", "ham\tok"] * 4
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = kft.data.load_texts(path, label_first=True, val_split=0.25, seed=1)
    assert data.class_names == ("ham", "spam")
    assert data.counts == {"train": {"ham": 6, "spam": 3}, "val": {"ham": 2, "spam": 1}}
    all_texts = set(data.examples["train"][0]) | set(data.examples["val"][0])
    assert all_texts == {"hello\tthere", "WIN now", "ok"}


@pytest.mark.parametrize(
    "name, content, kwargs",
    [
        (
            "data.csv",
            'id,review,stars\n1,"Great, really great",pos\n2,"multi\nline",neg\n',
            {"text_column": "review", "label_column": "stars"},
        ),
        (
            "data.tsv",
            "label\ttext\npos\tGreat, really great\nneg\tmulti line\n",
            {},
        ),
        (
            "data.dat",
            "text;label\nGreat, really great;pos\nmulti line;neg\n",
            {"text_column": "text", "label_column": "label", "delimiter": ";"},
        ),
    ],
)
def test_csv_and_tsv_with_named_columns(tmp_path, name, content, kwargs):
    path = tmp_path / name
    path.write_text(content * 1, encoding="utf-8")
    data = kft.data.load_texts(path, val_split=0.0, **kwargs)
    texts, labels = data.examples["train"]
    assert texts[0] == "Great, really great"
    assert data.class_names == ("neg", "pos") and list(labels) == [1, 0]


def test_csv_keeps_unicode_line_separators_and_quoted_newlines(tmp_path):
    path = tmp_path / "d.csv"
    body = 'text,label\r\nodd\u0085break\u2028x,1\r\n"multi\r\nline",0\r\n'
    path.write_bytes(("\ufeff" + body).encode("utf-8"))  # with a BOM
    data = kft.data.load_texts(path, val_split=0)
    texts, labels = data.examples["train"]
    assert list(texts) == ["odd\u0085break\u2028x", "multi\r\nline"]
    assert list(labels) == [1, 0]


def test_class_folders_of_text_files(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for label in ("neg", "pos"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}.txt").write_text(f" {label} review {i}\n\nmore ")
    data = kft.data.load_texts(tmp_path, val_split=0.25)
    assert data.class_names == ("neg", "pos")
    assert data.counts == {
        "train": {"neg": 3, "pos": 3},
        "val": {"neg": 1, "pos": 1},
        "test": {"neg": 2, "pos": 2},
    }
    texts = data.examples["test"][0]
    assert "neg review 0\n\nmore" in list(texts)


def test_lists_give_string_batches_and_reshuffle():
    texts = _lines(40)
    labels = [i % 2 for i in range(40)]
    data = kft.data.load_texts((texts, labels), batch_size=50, val_split=0.25)
    batch, y = next(iter(data.train))
    assert batch.dtype.name == "string" and batch.shape == (30,)
    assert y.dtype.name == "int32"
    orders = [[t.decode() for x, _ in data.train for t in x.numpy()] for _ in range(2)]
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]
    assert data.counts["val"] == {"0": 5, "1": 5}
    again = kft.data.load_texts((texts, labels), batch_size=50, val_split=0.25)
    assert list(again.examples["val"][0]) == list(data.examples["val"][0])


@pytest.mark.parametrize(
    "per_class, val", [(8, 0), (39, 0), (40, 8), (100, 20)], ids=str
)
def test_auto_val_split_holds_out_only_enough_to_validate(per_class, val):
    texts = _lines(3 * per_class)
    labels = [i % 3 for i in range(3 * per_class)]
    data = kft.data.load_texts((texts, labels))  # val_split="auto"
    if val:
        assert data.counts["val"] == {"0": val, "1": val, "2": val}
        assert data.notes == ()
    else:
        assert data.val is None and "val" not in data.counts
        assert data.counts["train"] == {c: per_class for c in "012"}
        assert f"the rarest class has {per_class} examples" in data.notes[0]
        assert "note: no validation split (val_split='auto')" in repr(data)


def test_auto_val_split_counts_the_rarest_class():
    labels = [0] * 200 + [1] * 20
    data = kft.data.load_texts((_lines(220), labels))
    assert data.val is None and "rarest class has 20 examples" in data.notes[0]
    data = kft.data.load_texts((_lines(220), labels), val_split=0.2)
    assert data.counts["val"] == {"0": 40, "1": 4}


def test_explicit_class_names_fix_the_order_and_numbers_sort_as_numbers():
    texts = _lines(12)
    data = kft.data.load_texts((texts, ["2", "10", "1"] * 4), val_split=0)
    assert data.class_names == ("1", "2", "10")
    data = kft.data.load_texts(
        (texts, ["spam", "ham"] * 6), class_names=["spam", "ham"], val_split=0
    )
    assert data.class_names == ("spam", "ham")
    assert list(data.examples["train"][1][:2]) == [0, 1]
    data = kft.data.load_texts(
        (texts, [10, 2, 1] * 4), class_names=["10", "2", "1"], val_split=0
    )
    assert list(data.examples["train"][1][:3]) == [0, 1, 2]


def test_empty_texts_are_skipped_with_one_counted_warning():
    texts = ["good", "  ", "bad", ""] + _lines(8)
    labels = [1, 0, 0, 1] + [0, 1] * 4
    with pytest.warns(kft.KerasTuneFTWarning, match="Skipped 2 empty text") as record:
        data = kft.data.load_texts((texts, labels), val_split=0)
    assert len(record) == 1 and "index 1, index 3" in str(record[0].message)
    assert len(data.examples["train"][0]) == 10 and len(data.skipped) == 2


def test_tfds_text_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=30):
        data = kft.data.load_texts(
            "tfds:imdb_reviews",
            tfds_splits={"train": "train", "test": "test"},
            val_split=0.2,
        )
    assert data.class_names == ("neg", "pos")
    assert sum(data.counts["test"].values()) == 30
    assert sum(data.counts["train"].values()) + sum(data.counts["val"].values()) == 30
    assert isinstance(data.examples["train"][0][0], str)


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["amazon_cells", "imdb", "yelp"])
def test_real_uci_sentiment_files_exact_counts(shared_dir, domain):
    path = shared_dir / "datasets" / "uci_sentiment" / f"{domain}_labelled.txt"
    data = kft.data.load_texts(path, val_split=0.0)
    assert data.class_names == ("0", "1")
    assert data.counts == {"train": {"0": 500, "1": 500}}
    texts = data.examples["train"][0]
    assert all(t and t == t.strip() and "\t" not in t for t in texts)
    if domain == "imdb":
        assert sum("\u0085" in t for t in texts) > 0  # kept inside sentences
    split = kft.data.load_texts(path, val_split=0.2, test_split=0.1, seed=0)
    assert split.counts["test"] == {"0": 50, "1": 50}
    assert split.counts["val"] == {"0": 100, "1": 100}


@pytest.mark.slow
def test_real_sms_spam_exact_counts(shared_dir):
    path = shared_dir / "datasets" / "sms_spam" / "SMSSpamCollection"
    data = kft.data.load_texts(path, label_first=True, val_split=0.0)
    assert data.class_names == ("ham", "spam")
    assert data.counts == {"train": {"ham": 4827, "spam": 747}}
    split = kft.data.load_texts(path, label_first=True, val_split=0.2, seed=0)
    assert sum(split.counts["val"].values()) == 1115
    # Stratified: the val split keeps the 13.4% spam rate.
    assert split.counts["val"]["spam"] == 149
    assert np.isclose(split.counts["train"]["spam"] / 4459, 747 / 5574, atol=0.001)


def test_many_distinct_labels_with_distinct_texts_are_not_called_swapped(tmp_path):
    # One class per line is odd but not a swapped file: the texts differ too.
    path = tmp_path / "ids.txt"
    path.write_text("".join(f"{t}\tid{i}\n" for i, t in enumerate(_lines(12))))
    data = kft.data.load_texts(path, val_split=0.0)
    assert data.num_classes == 12


@pytest.mark.slow
def test_real_files_read_in_the_wrong_order_are_refused(shared_dir):
    sms = shared_dir / "datasets" / "sms_spam" / "SMSSpamCollection"
    # Before: a puzzling "mix integers and words" listing 5,160 messages.
    with pytest.raises(ValueError, match=r"SMSSpamCollection'.*label_first=True"):
        kft.data.load_texts(sms, val_split=0.0)
    uci = shared_dir / "datasets" / "uci_sentiment" / "yelp_labelled.txt"
    with pytest.raises(ValueError, match=r"yelp_labelled\.txt'.*label_first=False"):
        # Before: loaded silently with 996 one-sentence classes.
        kft.data.load_texts(uci, label_first=True, val_split=0.0)
