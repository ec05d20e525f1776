"""Every kind of bad input: a clear error or one counted warning, never silence."""

import numpy as np
import pytest
from PIL import Image

import kerastune_ft as kft


def _image(path, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (6, 6), color=(10, 20, 30) if mode == "RGB" else 5).save(path)
    return path


def _image_folder(root, classes=("cats", "dogs"), per_class=4):
    for name in classes:
        for i in range(per_class):
            _image(root / name / f"{i}.png")
    return root


def _text_file(root, body, name="data.txt", raw=False):
    path = root / name
    if raw:
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


GOOD_LINES = "".join(f"sentence {i}\t{i % 2}\n" for i in range(10))
WORDS = [f"w{i}" for i in range(10)]


def _empty_class_folder(tmp):
    root = _image_folder(tmp / "imgs")
    (root / "birds").mkdir()
    return root


def _corrupt_folder(tmp):
    root = _image_folder(tmp / "imgs")
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def _only_bad_files(tmp):
    for name in ("cats", "dogs"):
        path = tmp / "imgs" / name / "x.jpg"
        path.parent.mkdir(parents=True)
        path.write_text("not an image")
    return tmp / "imgs"


def _loose_files(tmp):
    _image(tmp / "imgs" / "a.png")
    return tmp / "imgs"


def _splits_without_train(tmp):
    _image_folder(tmp / "imgs" / "val")
    return tmp / "imgs"


# (id, loader, make_source(tmp_path), kwargs, raises-or-warns, match)
CASES = [
    (
        "missing image folder",
        "images",
        lambda t: t / "nope",
        {},
        ValueError,
        r"folder does not exist\. Received: source='.*nope'",
    ),
    (
        "missing text file",
        "texts",
        lambda t: t / "nope.txt",
        {},
        ValueError,
        r"file does not exist\. Received: source='.*nope\.txt'",
    ),
    (
        "image source is a file",
        "images",
        lambda t: _text_file(t, "x"),
        {},
        ValueError,
        "which is a file",
    ),
    (
        "text folder without class folders",
        "texts",
        lambda t: _text_file(t, "x\t1\n", "loose.txt").parent,
        {},
        ValueError,
        r"has no class subfolders.*loose\.txt.*root/<class>/\*\.txt",
    ),
    (
        "empty folder",
        "images",
        lambda t: t,
        {},
        ValueError,
        r"has no class subfolders \(it is empty\)",
    ),
    (
        "images without class folders",
        "images",
        _loose_files,
        {},
        ValueError,
        r"holds 1 file\(s\) directly: a\.png",
    ),
    (
        "split folders without train",
        "images",
        _splits_without_train,
        {},
        ValueError,
        r"split folders \['val'\] but no 'train/'",
    ),
    (
        "class folder with no images",
        "images",
        _empty_class_folder,
        {},
        ValueError,
        r"class folder '.*birds' has no files",
    ),
    (
        "single image class",
        "images",
        lambda t: _image_folder(t / "i", ("cats",)),
        {},
        ValueError,
        r"single class \(cats\)",
    ),
    (
        "single text class",
        "texts",
        lambda t: (WORDS, ["pos"] * 10),
        {},
        ValueError,
        r"single class \(pos\)",
    ),
    (
        "corrupt image, default",
        "images",
        _corrupt_folder,
        {},
        kft.KerasTuneFTWarning,
        r"Skipped 1 image file.*broken\.jpg",
    ),
    (
        "no decodable image at all",
        "images",
        _only_bad_files,
        {},
        ValueError,
        r"None of the 2 files .* could be decoded as an image",
    ),
    (
        "corrupt image, strict",
        "images",
        _corrupt_folder,
        {"strict": True},
        ValueError,
        r"1 image file\(s\).*broken\.jpg.*strict=False",
    ),
    (
        "unknown label values",
        "texts",
        lambda t: (WORDS, ["pos", "neg", "meh"] * 3 + ["x"]),
        {"class_names": ["neg", "pos"]},
        ValueError,
        r"2 unknown label value\(s\).*'meh' x3, 'x' x1",
    ),
    (
        "int label out of class_names",
        "texts",
        lambda t: (WORDS, [0, 1, 2, 0, 1] * 2),
        {"class_names": ["neg", "pos"]},
        ValueError,
        r"unknown label value\(s\) not in `class_names`: 2 x2",
    ),
    (
        "one class present of class_names",
        "texts",
        lambda t: (WORDS, ["pos"] * 10),
        {"class_names": ["neg", "pos"]},
        ValueError,
        r"single class \(pos\)",
    ),
    (
        "mixed int and word labels",
        "texts",
        lambda t: (WORDS, [0, "pos"] * 5),
        {},
        ValueError,
        "mix integers and words",
    ),
    (
        "missing csv column",
        "texts",
        lambda t: _text_file(t, "review,stars\nnice,5\nbad,1\n", "d.csv"),
        {"text_column": "text"},
        ValueError,
        r"no column 'text'\. Available columns: \['review', 'stars'\]",
    ),
    (
        "csv row with wrong field count",
        "texts",
        lambda t: _text_file(t, "text,label\nnice,1\nbad,0,extra\n", "d.csv"),
        {},
        ValueError,
        r"line 3 \(3 fields\)",
    ),
    (
        "line without a tab",
        "texts",
        lambda t: _text_file(t, GOOD_LINES + "no label here\n"),
        {},
        ValueError,
        r"line\(s\) are not `text<TAB>label`: line 11 \(no tab\)",
    ),
    (
        "line with empty label",
        "texts",
        lambda t: _text_file(t, GOOD_LINES + "text\t \n"),
        {},
        ValueError,
        r"line 11 \(empty label\)",
    ),
    (
        "empty text lines, default",
        "texts",
        lambda t: _text_file(t, GOOD_LINES + "\t1\n\n" + GOOD_LINES),
        {},
        kft.KerasTuneFTWarning,
        r"Skipped 2 empty text\(s\).*line 11, line 12",
    ),
    (
        "empty text lines, strict",
        "texts",
        lambda t: _text_file(t, GOOD_LINES + "   \t1\n"),
        {"strict": True},
        ValueError,
        r"1 empty text\(s\).*line 11",
    ),
    (
        "non-UTF-8 bytes",
        "texts",
        lambda t: _text_file(t, b"caf\xc3\xa9\t1\ncaf\xe9\t0\n", raw=True),
        {},
        ValueError,
        r"not valid utf-8: line 2 has byte\(s\) b'\\xe9'.*errors='replace'",
    ),
    (
        "bad errors option",
        "texts",
        lambda t: (WORDS, [0, 1] * 5),
        {"errors": "skip"},
        ValueError,
        r"Received: errors='skip'",
    ),
    (
        "val_split out of range",
        "texts",
        lambda t: (WORDS, [0, 1] * 5),
        {"val_split": 1.5},
        ValueError,
        r"`val_split` must be in \[0\.0, 1\.0\)\. Received: val_split=1\.5",
    ),
    (
        "negative test_split",
        "images",
        lambda t: _image_folder(t / "i"),
        {"test_split": -0.1},
        ValueError,
        r"Received: test_split=-0\.1",
    ),
    (
        "splits leave no training data",
        "texts",
        lambda t: (WORDS, [0, 1] * 5),
        {"val_split": 0.6, "test_split": 0.4},
        ValueError,
        r"less than 1.*Received: val_split=0\.6, test_split=0\.4",
    ),
    (
        "split too small for stratification",
        "texts",
        lambda t: (WORDS, [0] * 9 + [1]),
        {},
        ValueError,
        r"Cannot carve a stratified val split.*0=9, 1=1",
    ),
    (
        "batch_size zero",
        "texts",
        lambda t: (WORDS, [0, 1] * 5),
        {"batch_size": 0},
        ValueError,
        r"Received: batch_size=0",
    ),
    (
        "bad image_size",
        "images",
        lambda t: _image_folder(t / "i"),
        {"image_size": (32,)},
        ValueError,
        r"Received: image_size=\(32,\)",
    ),
    (
        "texts without labels",
        "texts",
        lambda t: WORDS,
        {},
        TypeError,
        r"Pass a tuple \(texts, labels\)",
    ),
    (
        "non-string text",
        "texts",
        lambda t: (WORDS[:9] + [None], [0, 1] * 5),
        {},
        TypeError,
        r"Received: texts\[9\]=None",
    ),
    (
        "labels and texts differ in length",
        "texts",
        lambda t: (WORDS, [0, 1]),
        {},
        ValueError,
        r"Received: 10 texts and 2 labels",
    ),
    (
        "pixels scaled to 0..1",
        "images",
        lambda t: (np.full((4, 6, 6, 3), 0.5, np.float32), [0, 1, 0, 1]),
        {},
        ValueError,
        r"look scaled to \[0, 1\].*images \* 255",
    ),
    (
        "image array wrong shape",
        "images",
        lambda t: (np.zeros((4, 6)), [0, 1, 0, 1]),
        {},
        ValueError,
        r"Received: images of shape \(4, 6\)",
    ),
    (
        "unknown tfds name",
        "texts",
        lambda t: "tfds:no_such_dataset_xyz",
        {},
        ValueError,
        r"no dataset named 'no_such_dataset_xyz'",
    ),
    (
        "tfds not available offline",
        "images",
        lambda t: "tfds:tf_flowers",
        {"download": False, "data_dir_from_tmp": True},
        ValueError,
        r"Could not load the tfds dataset 'tf_flowers'.*pass `data_dir=DIR`",
    ),
    (
        "unsupported source type",
        "images",
        lambda t: 42,
        {},
        TypeError,
        r"Received: source of type int",
    ),
]


@pytest.mark.parametrize(
    "loader, make_source, kwargs, expected, match",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_is_reported_clearly(
    tmp_path, loader, make_source, kwargs, expected, match
):
    source = make_source(tmp_path)
    kwargs = dict(kwargs)
    if kwargs.pop("data_dir_from_tmp", False):
        kwargs["data_dir"] = str(tmp_path / "tfds")
    if loader == "images":
        kwargs.setdefault("image_size", 6)
    load = kft.data.load_images if loader == "images" else kft.data.load_texts
    if issubclass(expected, Warning):
        with pytest.warns(expected, match=match) as record:
            load(source, **kwargs)
        assert len(record) == 1, [str(r.message) for r in record]
    else:
        with pytest.raises(expected, match=match):
            load(source, **kwargs)
