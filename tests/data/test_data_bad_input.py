"""Every kind of bad input to the data loaders: a clear error, or one counted warning.

The error rows run through the shared harness (`_bad_inputs.check_bad_input`):
the right exception type, a message naming the argument or file at fault,
and nothing on disk changed. Rows that expect a warning (the data still
loads) sit in their own table below.
"""

import os

import numpy as np
import pytest
from _bad_inputs import BadInput, changes, check_bad_input, snapshot
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
SENTENCES = [f"this is sentence number {i} of the file" for i in range(12)]
# SMS-like: `label<TAB>text`, which the default order reads backwards.
LABEL_FIRST = "".join(
    f"{('ham', 'spam')[i % 2]}\t{s}\n" for i, s in enumerate(SENTENCES)
)
TEXT_FIRST = "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES))
PIXELS = np.full((4, 6, 6, 3), 100.0, np.float32)


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


def _hidden_only_class(tmp):
    root = _image_folder(tmp / "imgs")
    _image(root / "birds" / ".hidden.png")
    return root


def _uneven_image_splits(tmp):
    _image_folder(tmp / "imgs" / "train", ("a", "b"))
    _image_folder(tmp / "imgs" / "val", ("a", "c"))
    return tmp / "imgs"


def _class_missing_from_test(tmp):
    _image_folder(tmp / "imgs" / "train", ("a", "b", "c"), per_class=6)
    _image_folder(tmp / "imgs" / "test", ("a", "b"))
    return tmp / "imgs"


def _uneven_text_splits(tmp):
    for split, classes in (("train", ("neg", "pos")), ("val", ("neg", "meh"))):
        for label in classes:
            folder = tmp / "texts" / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"{i}.txt").write_text(f"{label} review {i}")
    return tmp / "texts"


def _link(link, target):
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link, target_is_directory=True)


def _class_linked_to_root(tmp):
    root = _image_folder(tmp / "imgs")
    _link(root / "everything", root)
    return root


def _class_linked_above_root(tmp):
    root = _image_folder(tmp / "data" / "imgs")
    _link(root / "up", tmp / "data")
    return root


def _symlink_loop(tmp):
    root = _image_folder(tmp / "imgs")
    _link(root / "cats" / "loop", root / "cats" / "loop")
    return root


def _nested_link_to_class(tmp):
    root = _image_folder(tmp / "imgs")
    _link(root / "cats" / "more", root / "cats")
    return root


def _loop_outside_the_dataset(tmp):
    root = _image_folder(tmp / "imgs")
    _image(tmp / "ext" / "x.png")
    _link(root / "cats" / "ext", tmp / "ext")
    _link(tmp / "ext" / "back", tmp / "ext")
    return root


def _val_linked_to_train(tmp):
    root = tmp / "imgs"
    _image_folder(root / "train")
    _link(root / "val", root / "train")
    return root


def _nan_pixels(tmp):
    x = np.full((6, 6, 6, 3), 100.0, np.float32)
    x[1, 0, 0, 0] = np.nan
    x[4, 2, 2, :] = np.nan
    return x, [0, 1] * 3


def _inf_pixels(tmp):
    x = np.full((6, 6, 6, 3), 100.0, np.float32)
    x[2, 1, 1, 1] = np.inf
    x[3, 0, 0, 0] = -np.inf
    return x, [0, 1] * 3


def _swapped_pair(tmp):
    return ["pos", "neg"] * 6, SENTENCES


def _table(tmp, body, name="d.csv"):
    return _text_file(tmp, body, name)


ROWS_SPEC = [
    # --- folders ---------------------------------------------------------
    ("missing image folder", "images", lambda t: t / "nope", {}, ValueError,
     r"folder does not exist\. Received: source='.*nope'"),
    ("missing text file", "texts", lambda t: t / "nope.txt", {}, ValueError,
     r"file does not exist\. Received: source='.*nope\.txt'"),
    ("image source is a file", "images", lambda t: _text_file(t, "x"), {},
     ValueError, r"Received: source='.*data\.txt', which is a file"),
    ("text folder without class folders", "texts",
     lambda t: _text_file(t, "x\t1\n", "loose.txt").parent, {}, ValueError,
     r"has no class subfolders.*loose\.txt.*root/<class>/\*\.txt"),
    ("empty folder", "images", lambda t: t, {}, ValueError,
     r"folder '.*' has no class subfolders \(it is empty\)"),
    ("images without class folders", "images", _loose_files, {}, ValueError,
     r"'.*imgs' has no class subfolders.*holds 1 file\(s\) directly: a\.png"),
    ("split folders without train", "images", _splits_without_train, {},
     ValueError, r"'.*imgs' has split folders \['val'\] but no 'train/'"),
    ("class folder with no images", "images", _empty_class_folder, {},
     ValueError, r"class folder '.*birds' has no files"),
    ("class folder with only hidden files", "images", _hidden_only_class, {},
     ValueError, r"class folder '.*birds' has no files"),
    ("single image class", "images", lambda t: _image_folder(t / "i", ("cats",)),
     {}, ValueError, r"labels of '.*i' hold a single class \(cats\)"),
    ("no decodable image at all", "images", _only_bad_files, {}, ValueError,
     r"None of the 2 files under '.*imgs' could be decoded as an image"),
    ("corrupt image, strict", "images", _corrupt_folder, {"strict": True},
     ValueError, r"1 image file\(s\).*broken\.jpg.*strict=False"),
    # --- a class missing from a given split (bug 8) -----------------------
    ("image class in one split only", "images", _uneven_image_splits, {},
     ValueError, r"'.*imgs'.*class 'b' has no examples in val.*"
     r"class 'c' has no examples in train"),
    ("image class missing from test", "images", _class_missing_from_test, {},
     ValueError, r"class 'c' has no examples in test"),
    ("text class in one split only", "texts", _uneven_text_splits, {},
     ValueError, r"'.*texts'.*class 'meh' has no examples in train; "
     r"class 'pos' has no examples in val"),
    # --- symlinks (bug 9) -------------------------------------------------
    ("class folder linked to the root", "images", _class_linked_to_root, {},
     ValueError, r"'.*imgs/everything' points to '.*imgs'.*dataset folder itself"),
    ("class folder linked above the root", "images", _class_linked_above_root,
     {}, ValueError, r"'.*imgs/up' points to '.*data'.*folder above"),
    ("symlink loop", "images", _symlink_loop, {}, ValueError,
     r"'.*cats/loop'.*loop"),
    ("nested link to its own class", "images", _nested_link_to_class, {},
     ValueError, r"'.*cats/more' points to '.*cats'"),
    ("loop through a folder outside", "images", _loop_outside_the_dataset, {},
     ValueError, r"'.*ext/back' points to '.*ext', a folder that contains the "
     r"link itself: a symlink loop"),
    ("val folder linked to train", "images", _val_linked_to_train, {},
     ValueError, r"'.*imgs/val' points to '.*imgs/train'.*counted twice"),
    # --- labels -----------------------------------------------------------
    ("single text class", "texts", lambda t: (WORDS, ["pos"] * 10), {},
     ValueError, r"labels of 10 texts hold a single class \(pos\)"),
    ("unknown label values", "texts",
     lambda t: (WORDS, ["pos", "neg", "meh"] * 3 + ["x"]),
     {"class_names": ["neg", "pos"]}, ValueError,
     r"2 unknown label value\(s\).*'meh' x3, 'x' x1.*Received: class_names="),
    ("int label out of class_names", "texts",
     lambda t: (WORDS, [0, 1, 2, 0, 1] * 2), {"class_names": ["neg", "pos"]},
     ValueError, r"unknown label value\(s\) not in `class_names`: 2 x2"),
    ("one class present of class_names", "texts", lambda t: (WORDS, ["pos"] * 10),
     {"class_names": ["neg", "pos"]}, ValueError, r"single class \(pos\)"),
    ("negative label outside class_names", "images",
     lambda t: (PIXELS, [-1, 0, 1, -1]), {"class_names": ["no", "yes"]},
     ValueError, r"labels of arrays .*not in `class_names`: -1 x2"),
    ("mixed int and word labels", "texts", lambda t: (WORDS, [0, "pos"] * 5), {},
     ValueError, r"labels of 10 texts mix integers and words.*`class_names`"),
    ("class_names as one string", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"class_names": "ab"}, TypeError, r"Received: class_names='ab'"),
    ("duplicate class_names", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"class_names": ["a", "a"]}, ValueError, r"Received: class_names=\['a', 'a'\]"),
    ("NaN labels in arrays", "images",
     lambda t: (PIXELS, np.array([0, np.nan, 1, np.nan])), {}, ValueError,
     r"labels of arrays .* 2 NaN label\(s\) at index 1, 3"),
    ("fractional labels", "texts", lambda t: (WORDS, [0, 1, 0.5] + [0, 1] * 3 + [1]),
     {}, TypeError, r"labels of 10 texts.*index 2.*0\.5"),
    ("one-hot image labels", "images", lambda t: (PIXELS, np.eye(2)[[0, 1, 0, 1]]),
     {}, ValueError, r"labels of shape \(4, 2\).*np\.argmax\(labels, axis=1\)"),
    # --- text files, CSV/TSV ---------------------------------------------
    ("label-first file in the default order", "texts",
     lambda t: _text_file(t, LABEL_FIRST, "sms.txt"), {}, ValueError,
     r"'.*sms\.txt'.*12 distinct.*label_first=True.*Received: label_first=False"),
    ("text-first file with label_first", "texts",
     lambda t: _text_file(t, TEXT_FIRST, "uci.txt"), {"label_first": True},
     ValueError, r"'.*uci\.txt'.*label_first=False.*Received: label_first=True"),
    ("swapped csv columns", "texts",
     lambda t: _table(t, "text,label\n" + LABEL_FIRST.replace("\t", ",")),
     {}, ValueError, r"'.*d\.csv'.*`text_column` and `label_column`"),
    ("swapped texts and labels", "texts", _swapped_pair, {}, ValueError,
     r"\(texts, labels\).*swapped"),
    ("missing csv column", "texts",
     lambda t: _table(t, "review,stars\nnice,5\nbad,1\n"),
     {"text_column": "text"}, ValueError,
     r"'.*d\.csv' has no column 'text'\. Available columns: \['review', 'stars'\]"),
    ("csv row with wrong field count", "texts",
     lambda t: _table(t, "text,label\nnice,1\nbad,0,extra\n"), {}, ValueError,
     r"'.*d\.csv'.*line 3 \(3 fields\)"),
    ("semicolons read as csv", "texts",
     lambda t: _table(t, "text;label\nnice;1\nbad;0\n"), {}, ValueError,
     r"'.*d\.csv'.*delimiter=';'.*Received: delimiter=','"),
    ("tabs in a .csv file", "texts",
     lambda t: _table(t, "text\tlabel\nnice\t1\nbad\t0\n"), {}, ValueError,
     r"'.*d\.csv'.*delimiter='\\t'"),
    ("commas in a .tsv file", "texts",
     lambda t: _table(t, "text,label\nnice,1\nbad,0\n", "d.tsv"), {}, ValueError,
     r"'.*d\.tsv'.*delimiter=','.*Received: delimiter='\\t'"),
    ("comma lines in a text file", "texts",
     lambda t: _text_file(t, GOOD_LINES.replace("\t", ",")), {}, ValueError,
     r"'.*data\.txt'.*no tab.*delimiter=','"),
    ("unclosed quote in a csv", "texts",
     lambda t: _table(t, 'text,label\n"oops,1\nfine,0\n'), {}, ValueError,
     r"'.*d\.csv'.*line 3 \(1 fields, with a line break: an unclosed quote\?\)"),
    ("csv field over the csv limit", "texts",
     lambda t: _table(t, 'text,label\n"' + "x" * 140_000 + "\n"), {}, ValueError,
     r"'.*d\.csv' cannot be read as CSV near line \d+: field larger.*unclosed quote"),
    ("bad delimiter", "texts", lambda t: _table(t, "text,label\na,1\n"),
     {"delimiter": ";;"}, ValueError, r"`delimiter` must be one character.*"
     r"Received: delimiter=';;'"),
    ("0-byte text file", "texts", lambda t: _text_file(t, ""), {}, ValueError,
     r"'.*data\.txt' is empty \(0 bytes\)"),
    ("blank text file", "texts", lambda t: _text_file(t, "\n \n\n"), {},
     ValueError, r"'.*data\.txt' is empty"),
    ("0-byte csv", "texts", lambda t: _table(t, ""), {}, ValueError,
     r"'.*d\.csv' is empty \(0 bytes\)"),
    ("csv with only a header", "texts", lambda t: _table(t, "text,label\n"), {},
     ValueError, r"'.*d\.csv' has a header row but no data rows"),
    ("line without a tab", "texts",
     lambda t: _text_file(t, GOOD_LINES + "no label here\n"), {}, ValueError,
     r"'.*data\.txt'.*line\(s\) are not `text<TAB>label`: line 11 \(no tab\)"),
    ("line with empty label", "texts",
     lambda t: _text_file(t, GOOD_LINES + "text\t \n"), {}, ValueError,
     r"'.*data\.txt'.*line 11 \(empty label\)"),
    ("empty text lines, strict", "texts",
     lambda t: _text_file(t, GOOD_LINES + "   \t1\n"), {"strict": True},
     ValueError, r"1 empty text\(s\) in '.*data\.txt'.*line 11"),
    ("non-UTF-8 bytes", "texts",
     lambda t: _text_file(t, b"caf\xc3\xa9\t1\ncaf\xe9\t0\n", raw=True), {},
     ValueError, r"'.*data\.txt' is not valid utf-8: line 2 has byte\(s\) "
     r"b'\\xe9'.*errors='replace'"),
    ("unknown encoding", "texts", lambda t: _text_file(t, GOOD_LINES),
     {"encoding": "utf-9"}, ValueError, r"Received: encoding='utf-9'"),
    ("label_first not a bool", "texts", lambda t: _text_file(t, GOOD_LINES),
     {"label_first": "yes"}, TypeError, r"Received: label_first='yes'"),
    # --- plain arguments ---------------------------------------------------
    ("bad errors option", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"errors": "skip"}, ValueError, r"Received: errors='skip'"),
    ("val_split out of range", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"val_split": 1.5}, ValueError,
     r"`val_split` must be in \[0\.0, 1\.0\)\. Received: val_split=1\.5"),
    ("negative test_split", "images", lambda t: _image_folder(t / "i"),
     {"test_split": -0.1}, ValueError, r"Received: test_split=-0\.1"),
    ("splits leave no training data", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"val_split": 0.6, "test_split": 0.4}, ValueError,
     r"less than 1.*Received: val_split=0\.6, test_split=0\.4"),
    ("split too small for stratification", "texts",
     lambda t: (WORDS, [0] * 9 + [1]), {"val_split": 0.2}, ValueError,
     r"Cannot carve a stratified val split.*0=9, 1=1.*`val_split`"),
    ("batch_size zero", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"batch_size": 0}, ValueError, r"Received: batch_size=0"),
    ("negative seed", "texts", lambda t: (WORDS, [0, 1] * 5), {"seed": -1},
     ValueError, r"Received: seed=-1"),
    ("strict not a bool", "images", lambda t: _image_folder(t / "i"),
     {"strict": "no"}, TypeError, r"Received: strict='no'"),
    ("bad image_size", "images", lambda t: _image_folder(t / "i"),
     {"image_size": (32,)}, ValueError, r"Received: image_size=\(32,\)"),
    ("image_size with a string", "images", lambda t: _image_folder(t / "i"),
     {"image_size": (6, "6")}, TypeError, r"`image_size` must be an integer\. "
     r"Received: image_size='6'"),
    ("fractional batch_size", "texts", lambda t: (WORDS, [0, 1] * 5),
     {"batch_size": 2.5}, TypeError, r"Received: batch_size=2\.5"),
    ("zero image_size", "images", lambda t: _image_folder(t / "i"),
     {"image_size": 0}, ValueError, r"Received: image_size=0"),
    ("texts without labels", "texts", lambda t: WORDS, {}, TypeError,
     r"`source` looks like texts without labels.*Pass a tuple \(texts, labels\)"),
    ("non-string text", "texts", lambda t: (WORDS[:9] + [None], [0, 1] * 5), {},
     TypeError, r"Received: texts\[9\]=None"),
    ("labels and texts differ in length", "texts", lambda t: (WORDS, [0, 1]), {},
     ValueError, r"`source`.*Received: 10 texts and 2 labels"),
    # --- image arrays ------------------------------------------------------
    ("pixels scaled to 0..1", "images",
     lambda t: (np.full((4, 6, 6, 3), 0.5, np.float32), [0, 1, 0, 1]), {},
     ValueError, r"look scaled to \[0, 1\].*images \* 255"),
    ("NaN pixels", "images", _nan_pixels, {}, ValueError,
     r"`source` images hold 4 NaN or infinite pixel value\(s\) in 2 "
     r"image\(s\): index 1, 4"),
    ("infinite pixels", "images", _inf_pixels, {}, ValueError,
     r"`source` images hold 2 NaN or infinite pixel value\(s\) in 2 "
     r"image\(s\): index 2, 3"),
    ("image array wrong shape", "images",
     lambda t: (np.zeros((4, 6)), [0, 1, 0, 1]), {}, ValueError,
     r"Received: images of shape \(4, 6\)"),
    ("RGBA image array", "images",
     lambda t: (np.zeros((4, 6, 6, 4)), [0, 1, 0, 1]), {}, ValueError,
     r"Received: images of shape \(4, 6, 6, 4\).*images\[\.\.\., :3\]"),
    ("no images in the arrays", "images",
     lambda t: (np.zeros((0, 6, 6, 3)), []), {}, ValueError,
     r"`source` holds no images.*Received: images of shape \(0, 6, 6, 3\)"),
    ("string image array", "images",
     lambda t: (np.array([["a"] * 6] * 6 * 4).reshape(4, 6, 6), [0, 1] * 2), {},
     TypeError, r"Image arrays must be numeric\. Received: dtype=<U1"),
    # --- other sources -----------------------------------------------------
    ("unknown tfds name", "texts", lambda t: "tfds:no_such_dataset_xyz", {},
     ValueError, r"no dataset named 'no_such_dataset_xyz'.*Received: source="),
    ("tfds name missing", "texts", lambda t: "tfds:", {}, ValueError,
     r"needs a dataset name after 'tfds:'\. Received: source='tfds:'"),
    ("tfds not available offline", "images", lambda t: "tfds:tf_flowers",
     lambda t: {"download": False, "data_dir": str(t / "tfds")}, ValueError,
     r"Could not load the tfds dataset 'tf_flowers'.*pass `data_dir=DIR`"),
    ("unsupported source type", "images", lambda t: 42, {}, TypeError,
     r"`source` must be .* Received: source of type int"),
]  # fmt: skip


def _bad_input(id, loader, make_source, kwargs, error, match):
    """A harness row that calls `load_images` / `load_texts` on the source."""

    def setup(tmp):
        extra = kwargs(tmp) if callable(kwargs) else dict(kwargs)
        if loader == "images":
            extra.setdefault("image_size", 6)
        return make_source(tmp), extra

    def call(context):
        source, extra = context
        load = kft.data.load_images if loader == "images" else kft.data.load_texts
        return load(source, **extra)

    return BadInput(id, setup, call, error, match)


ROWS = [_bad_input(*spec) for spec in ROWS_SPEC]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input_is_a_clear_error(row, tmp_path):
    check_bad_input(row, tmp_path)


def _dangling_file_link(tmp):
    root = _image_folder(tmp / "imgs")
    os.symlink(tmp / "gone.png", root / "cats" / "gone.png")
    return root


def _dangling_folder_link(tmp):
    root = _image_folder(tmp / "imgs")
    os.symlink(tmp / "gone", root / "birds", target_is_directory=True)
    return root


# Inputs that still load, with ONE warning naming what was left out.
WARNING_ROWS = [
    ("corrupt image, default", "images", _corrupt_folder, {},
     r"Skipped 1 image file.*broken\.jpg"),
    ("empty text lines, default", "texts",
     lambda t: _text_file(t, GOOD_LINES + "\t1\n\n" + GOOD_LINES), {},
     r"Skipped 2 empty text\(s\) in '.*data\.txt'.*line 11, line 12"),
    ("dangling file symlink", "images", _dangling_file_link, {},
     r"Skipped 1 broken symlink.*cats/gone\.png \(target '.*gone\.png' does not exist"),
    ("dangling folder symlink", "images", _dangling_folder_link, {},
     r"Skipped 1 broken symlink.*imgs/birds \(target '.*gone' does not"),
]  # fmt: skip


@pytest.mark.parametrize(
    "loader, make_source, kwargs, match",
    [case[1:] for case in WARNING_ROWS],
    ids=[case[0] for case in WARNING_ROWS],
)
def test_skipped_input_is_one_warning(tmp_path, loader, make_source, kwargs, match):
    source = make_source(tmp_path)
    before = snapshot(tmp_path)
    kwargs = dict(kwargs)
    if loader == "images":
        kwargs.setdefault("image_size", 6)
    load = kft.data.load_images if loader == "images" else kft.data.load_texts
    with pytest.warns(kft.KerasTuneFTWarning, match=match) as record:
        data = load(source, **kwargs)
    assert len(record) == 1, [str(r.message) for r in record]
    assert len(data.skipped) >= 1
    assert changes(before, snapshot(tmp_path)) == []


def test_real_files_elsewhere_may_be_symlinked(tmp_path):
    """Links to real image files (as in the CLI's subsets) load like files."""
    real = _image_folder(tmp_path / "real", per_class=3)
    for name in ("cats", "dogs"):
        folder = tmp_path / "subset" / name
        folder.mkdir(parents=True)
        for path in sorted((real / name).iterdir())[:2]:
            (folder / path.name).symlink_to(path)
    # A class folder linked to a folder outside the dataset is fine too.
    (tmp_path / "subset" / "birds").symlink_to(
        _image_folder(tmp_path / "other", ("birds",), per_class=2) / "birds",
        target_is_directory=True,
    )
    data = kft.data.load_images(tmp_path / "subset", image_size=6, val_split=0)
    assert data.counts == {"train": {"birds": 2, "cats": 2, "dogs": 2}}
    subset = str(tmp_path / "subset")
    assert all(p.startswith(subset) for p in data.origins["train"])
