"""`load_texts`: text files, CSV/TSV, lists and tfds names -> `LoadedData`."""

import codecs
import csv
import dataclasses
import io
import os
import pathlib

import numpy as np

from kerastune_ft._validation import check_choice
from kerastune_ft.data import _common, _tfds
from kerastune_ft.data._folders import scan_class_folders

__all__ = ["load_texts"]

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
# Delimiters we look for when a file does not split the way it was read.
LIKELY_DELIMITERS = (",", ";", "\t", "|")
# Fewer rows than this are too few to tell texts from labels.
MIN_ROWS_FOR_ORDER_CHECK = 8
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"


def load_texts(
    source,
    *,
    text_column=None,
    label_column=None,
    batch_size=32,
    val_split="auto",
    test_split=0.0,
    seed=0,
    strict=False,
    label_first=False,
    delimiter=None,
    encoding="utf-8",
    errors="strict",
    class_names=None,
    data_dir=None,
    download=True,
    tfds_splits=None,
):
    """Loads labelled texts for fine-tuning, checked, split and batched.

    Datasets yield `(texts, labels)` batches (`tf.string`, int32 class ids);
    train reshuffles every epoch (seeded), val and test keep their order.
    Class names are the sorted label values (numbers sort as numbers).

    Args:
        source: one of
            - a text file of `text<TAB>label` lines (`label<TAB>text` with
              `label_first=True`), no header, split on "\\n" only (not on
              U+0085 and the like), trailing whitespace / "\\r" dropped;
            - a folder `root/<class>/*.txt` (one text per file) or
              `root/{train,val,test}/<class>/*.txt`, laid out as for
              `load_images` (given splits are kept and must hold the same
              classes; symlinks as for `load_images`);
            - a CSV or TSV file with a header row (`.csv`, `.tsv`, or any
              file when `text_column`, `label_column` or `delimiter` is
              given);
            - `"tfds:<name>"`, a TensorFlow Datasets name such as
              `"tfds:imdb_reviews"` (its own splits are used; a missing val
              or test split is carved out of train);
            - a tuple `(texts, labels)` of lists or arrays.
        text_column: CSV/TSV column holding the texts. Defaults to `"text"`.
        label_column: CSV/TSV column holding the labels. Defaults to `"label"`.
        batch_size: examples per batch. Defaults to `32`.
        val_split: fraction of the examples held out for validation; `0` for
            no validation split; `"auto"` holds out `0.2` when that leaves at
            least 8 examples of every class to validate on (40 or more per
            class), else none: with fewer, `kft.fine_tune` picks a few-shot
            recipe that needs no validation data, and every example trains.
            `.notes` says which. Defaults to `"auto"`.
        test_split: fraction held out for a test split. Defaults to `0.0`.
        seed: seed of the split and of the per-epoch shuffling; the same seed
            gives the same split. Defaults to `0`.
        strict: if `True`, empty texts raise a `ValueError`; if `False` they
            are skipped and listed in one `KerasTuneFTWarning`. Defaults to
            `False`.
        label_first: for plain text files, whether each line is
            `label<TAB>text` (as in the SMS Spam Collection). A file read in
            the wrong order (labels nearly all distinct and longer than
            texts that hold only a few values) raises a `ValueError` saying
            so. Defaults to `False` (`text<TAB>label`).
        delimiter: CSV/TSV field delimiter, one character such as `";"`.
            Giving it reads the file as a table with a header row. Defaults
            to "\\t" for `.tsv` and `.tab` files, else ",".
        encoding: file encoding. Defaults to `"utf-8"`.
        errors: what to do with bytes that are not valid in `encoding`:
            `"strict"` raises a `ValueError` naming the file and line,
            `"replace"` substitutes U+FFFD, `"ignore"` drops them. Defaults to
            `"strict"`.
        class_names: optional list of class names fixing the label order;
            labels outside it raise a `ValueError`. Defaults to the sorted
            label values.
        data_dir: tfds data folder (tfds sources only). Defaults to tfds' own.
        download: whether tfds may download (tfds sources only). Defaults to
            `True`.
        tfds_splits: optional `{"train": ..., "val": ..., "test": ...}` tfds
            split strings (tfds sources only). Defaults to the dataset's own.

    Returns:
        A `kft.data.LoadedData` with `.train`, `.val`, `.test`,
        `.class_names`, `.counts` and `.examples`.

    Example:

    >>> import kerastune_ft as kft
    >>> texts = ["loved it", "hated it", "great phone", "awful battery"] * 5
    >>> labels = ["pos", "neg", "pos", "neg"] * 5
    >>> data = kft.data.load_texts((texts, labels), batch_size=4)
    >>> data.class_names
    ('neg', 'pos')
    >>> batch_texts, batch_labels = next(iter(data.train))
    >>> batch_texts.shape, batch_labels.dtype.name
    (TensorShape([4]), 'int32')
    """
    _common.check_common_args(batch_size, val_split, test_split, seed)
    check_choice("errors", errors, ("strict", "replace", "ignore"))
    _check_encoding(encoding)
    _check_delimiter(delimiter)
    strict = _common.check_flag("strict", strict)
    class_names = _common.check_class_names(class_names)
    read = _read_source(
        source,
        text_column=text_column,
        label_column=label_column,
        label_first=_common.check_flag("label_first", label_first),
        delimiter=delimiter,
        encoding=encoding,
        errors=errors,
        data_dir=data_dir,
        download=_common.check_flag("download", download),
        tfds_splits=tfds_splits,
    )
    given, skipped = _drop_empty_texts(read, strict)
    return _common.labelled_result(
        given,
        class_names or read.class_names,
        source=read.description,
        skipped=skipped,
        modality="text",
        val_split=val_split,
        test_split=test_split,
        batch_size=batch_size,
        seed=seed,
    )


@dataclasses.dataclass
class _Read:
    """What one kind of source gave: `(where, text, label)` rows per split."""

    rows: dict
    description: str
    links: list = dataclasses.field(default_factory=list)
    class_names: tuple | None = None


def _read_source(source, **options):
    """Reads `source` (tfds name, folder, file, or (texts, labels)) into rows."""
    if _tfds.is_tfds_source(source):
        return _read_tfds(source, **options)
    if isinstance(source, (str, os.PathLike)) and pathlib.Path(source).is_dir():
        return _read_folder(source, **options)
    if isinstance(source, (str, os.PathLike)):
        return _Read(
            {"train": _file_rows(pathlib.Path(source), **_file_options(options))},
            repr(str(source)),
        )
    if (
        isinstance(source, (tuple, list))
        and len(source) == 2
        and not all(isinstance(s, str) for s in source)
    ):
        rows = _pair_rows(source)
        _check_order(
            rows,
            "`source`",
            "`source` must be (texts, labels), but these look swapped: pass "
            "(texts, labels).",
        )
        return _Read({"train": rows}, f"{len(source[0])} texts")
    if isinstance(source, (list, tuple, np.ndarray)):
        raise TypeError(
            "`source` looks like texts without labels. Pass a tuple "
            "(texts, labels), e.g. load_texts((texts, labels)). "
            f"Received: a {type(source).__name__} of {len(source)} items."
        )
    raise TypeError(
        "`source` must be a file path, a 'tfds:<name>' string, or a tuple "
        f"(texts, labels). Received: source of type {type(source).__name__}."
    )


def _file_options(options):
    keys = ("text_column", "label_column", "label_first", "delimiter")
    return {
        **{key: options[key] for key in keys},
        "encoding": options["encoding"],
        "errors": options["errors"],
    }


def _read_tfds(source, *, encoding, errors, data_dir, download, tfds_splits, **_):
    loaded, tfds_names = _tfds.load_tfds(
        source,
        convert=lambda text: _to_str(text, encoding, errors),
        data_dir=data_dir,
        download=download,
        tfds_splits=tfds_splits,
    )
    rows = {
        split: [
            (f"{split} example {i}", text, label)
            for i, (text, label) in enumerate(zip(texts, labels, strict=True))
        ]
        for split, (texts, labels) in loaded.items()
    }
    return _Read(rows, source, class_names=tfds_names)


def _read_folder(source, *, encoding, errors, **_):
    links = []  # broken symlinks skipped in a folder source
    files = scan_class_folders(pathlib.Path(source), kind="texts", skipped=links)
    rows = {
        split: [
            (str(path), _read_file(path, encoding, errors).strip(), label)
            for path, label in items
        ]
        for split, items in files.items()
    }
    return _Read(rows, repr(str(source)), links)


def _drop_empty_texts(read, strict):
    """Drops (or refuses, when `strict`) empty texts.

    Returns `({split: (texts, raw labels, where)}, skipped)`.
    """
    skipped = [
        (where, "empty text")
        for split_rows in read.rows.values()
        for where, text, _ in split_rows
        if not text.strip()
    ]
    if skipped and strict:
        raise ValueError(
            f"{len(skipped)} empty text(s) in {read.description}: "
            f"{_common.listed(where for where, _ in skipped)}. Remove them, or "
            "pass `strict=False` to skip them with a warning."
        )
    _common.warn_skipped(
        skipped,
        f"empty text(s) in {read.description}",
        "Remove them, or pass `strict=True` to make this an error.",
        with_reasons=False,
    )
    given = {}
    for split, split_rows in read.rows.items():
        kept = [row for row in split_rows if row[1].strip()]
        given[split] = (
            np.array([text for _, text, _ in kept], dtype=object),
            [label for _, _, label in kept],
            np.array([where for where, _, _ in kept], dtype=object),
        )
    return given, read.links + skipped


def _check_encoding(encoding):
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(
            "`encoding` must name a text encoding such as 'utf-8', 'latin-1' "
            f"or 'cp1252'. Received: encoding={encoding!r}."
        ) from None


def _check_delimiter(delimiter):
    if delimiter is None:
        return
    if not isinstance(delimiter, str):
        raise TypeError(
            "`delimiter` must be a one-character string such as ',' or ';'. "
            f"Received: delimiter={delimiter!r} of type {type(delimiter).__name__}."
        )
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ValueError(
            "`delimiter` must be one character, such as ',', ';' or '\\t' (not "
            f"a quote or a line break). Received: delimiter={delimiter!r}."
        )


def _file_rows(
    path, *, text_column, label_column, label_first, delimiter, encoding, errors
):
    """One text file (lines, or a CSV/TSV table) -> rows `(where, text, label)`."""
    data = _read_file(path, encoding, errors)
    if not data.strip():
        size = path.stat().st_size
        raise ValueError(
            f"`source` file {str(path)!r} is empty "
            + ("(0 bytes)" if size == 0 else "(only blank lines)")
            + ". Check that it is the right file and was fully written."
        )
    table = (
        text_column is not None
        or label_column is not None
        or delimiter is not None
        or path.suffix.lower() in TABLE_SUFFIXES
    )
    if not table:
        rows = _parse_lines(data, path, label_first)
        right = "`text<TAB>label`" if label_first else "`label<TAB>text`"
        _check_order(
            rows,
            repr(str(path)),
            f"The lines look like {right}: pass `label_first={not label_first}`. "
            f"Received: label_first={label_first}.",
        )
        return rows
    sep = delimiter or TABLE_SUFFIXES.get(path.suffix.lower(), ",")
    text_column = text_column or DEFAULT_TEXT_COLUMN
    label_column = label_column or DEFAULT_LABEL_COLUMN
    rows = _parse_table(data, path, sep, text_column, label_column)
    _check_order(
        rows,
        repr(str(path)),
        "The columns look swapped: swap `text_column` and `label_column` "
        f"(text_column={label_column!r}, label_column={text_column!r}). "
        f"Received: text_column={text_column!r}, label_column={label_column!r}.",
    )
    return rows


def _check_order(rows, description, hint):
    """Raises when the labels look like texts and the texts like labels.

    A `label<TAB>text` file read as `text<TAB>label` otherwise loads with
    one class per sentence.
    """
    rows = [(text, str(label)) for _, text, label in rows if text.strip()]
    if len(rows) < MIN_ROWS_FOR_ORDER_CHECK:
        return
    texts = {text for text, _ in rows}
    labels = {label for _, label in rows}
    mean_length = {
        name: sum(len(v) for v in values) / len(values)
        for name, values in (("texts", texts), ("labels", labels))
    }
    swapped = (
        len(labels) > len(rows) / 2
        and 4 * len(texts) <= len(labels)
        and mean_length["labels"] > mean_length["texts"]
    )
    if swapped:
        example = max(labels, key=len)
        raise ValueError(
            f"The labels of {description} look like texts: {len(labels)} "
            f"distinct values in {len(rows)} rows (e.g. {example[:60]!r}), while "
            f"the texts hold only {len(texts)} distinct value(s) "
            f"({_common.listed(sorted(repr(t[:20]) for t in texts), 5)}). {hint}"
        )


def _guess_delimiter(lines, current):
    """A likely delimiter other than `current` that splits every line alike."""
    lines = [line for line in lines if line.strip()][:20]
    for candidate in LIKELY_DELIMITERS:
        if candidate == current or not lines:
            continue
        counts = {line.count(candidate) for line in lines}
        if len(counts) == 1 and counts != {0}:
            return candidate
    return None


def _to_str(value, encoding, errors):
    if isinstance(value, bytes):
        return value.decode(encoding, errors)
    return str(value)


def _read_file(path, encoding, errors):
    if not path.exists():
        raise ValueError(
            f"`source` file does not exist. Received: source={str(path)!r}. "
            f"Check the path (relative paths start from {os.getcwd()})."
        )
    data = path.read_bytes()
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{str(path)!r} is not valid {encoding}: line {line} has byte(s) "
            f"{data[err.start : err.end]!r} ({err.reason}). Pass the right "
            "`encoding=` (e.g. 'latin-1'), or `errors='replace'` to substitute "
            "them."
        ) from None
    return text.removeprefix("\ufeff")


def _parse_lines(text, path, label_first):
    """`text<TAB>label` lines -> rows `(where, text, label)`."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows, bad = [], []
    for number, line in enumerate(lines, start=1):
        where = f"line {number}"
        had_tab = "\t" in line
        line = line.rstrip()
        if not line.strip():
            rows.append((where, "", None))
            continue
        if label_first:
            label, sep, body = line.partition("\t")
        else:
            body, sep, label = line.rpartition("\t")
        if not sep:
            bad.append(f"{number} ({'empty label' if had_tab else 'no tab'})")
        elif not label.strip():
            bad.append(f"{number} (empty label)")
        else:
            rows.append((where, body.strip(), label.strip()))
    if bad:
        order = "label<TAB>text" if label_first else "text<TAB>label"
        raise ValueError(
            f"{str(path)!r}: {len(bad)} line(s) are not `{order}`: line "
            f"{_common.listed(bad)}. " + _lines_hint(lines, label_first)
        )
    return rows


def _lines_hint(lines, label_first):
    """What to do about lines that are not `text<TAB>label`."""
    guess = None if "\t" in "".join(lines) else _guess_delimiter(lines, "\t")
    if guess is None:
        return (
            "Fix them"
            + (
                "."
                if label_first
                else ", or pass `label_first=True` if labels come first."
            )
            + " For a CSV/TSV with a header, pass `text_column` and `label_column`."
        )
    return (
        f"No line has a tab, but every line holds {guess!r}: for a file "
        f"separated by {guess!r}, pass `delimiter={guess!r}` (its first row "
        "must then be a header; `text_column=` and `label_column=` name the "
        "columns)."
    )


def _parse_table(text, path, delimiter, text_column, label_column):
    """CSV/TSV with a header row -> rows `(where, text, label)`."""
    # newline="" keeps quoted multi-line fields intact and splits records on
    # \n / \r only, never on U+0085.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records = _records(reader, path)
    guess = _guess_delimiter(text.split("\n")[:20], delimiter)
    header = _header(next(records, None), path, delimiter, guess)
    columns = {"text_column": text_column, "label_column": label_column}
    for argument, column in columns.items():
        if column not in header:
            raise ValueError(
                f"{str(path)!r} has no column {column!r}. Available columns: "
                f"{header!r}. Pass `{argument}=` one of them. "
                f"Received: {argument}={column!r}."
            )
    ti, li = header.index(text_column), header.index(label_column)
    rows, bad = [], []
    for record in records:
        line = reader.line_num
        if not record:
            rows.append((f"line {line}", "", None))
        elif len(record) != len(header):
            quote = any("\n" in field for field in record)
            bad.append(
                f"{line} ({len(record)} fields"
                + (", with a line break: an unclosed quote?)" if quote else ")")
            )
        elif not record[li].strip():
            bad.append(f"{line} (empty label)")
        else:
            rows.append((f"line {line}", record[ti].strip(), record[li]))
    _check_table_rows(rows, bad, path, len(header), delimiter, guess)
    return rows


def _records(reader, path):
    """The reader's records; a CSV error names the file and line."""
    try:
        yield from reader
    except csv.Error as err:
        raise ValueError(
            f"{str(path)!r} cannot be read as CSV near line {reader.line_num}: "
            f'{err}. An unclosed quote (") makes one field of every line after '
            "it: close it, or check the `delimiter`."
        ) from None


def _header(header, path, delimiter, guess):
    if not header:
        raise ValueError(f"{str(path)!r} is empty: expected a header row.")
    header = [h.strip() for h in header]
    if len(header) == 1 and guess:
        raise ValueError(
            f"{str(path)!r} has a single column {header[0][:40]!r} when split on "
            f"{delimiter!r}, but every line holds {guess!r}: pass "
            f"`delimiter={guess!r}`. Received: delimiter={delimiter!r}."
        )
    return header


def _check_table_rows(rows, bad, path, width, delimiter, guess):
    if bad:
        raise ValueError(
            f"{str(path)!r}: {len(bad)} row(s) do not match the {width}-"
            f"column header or lack a label: line {_common.listed(bad)}. "
            "Check the delimiter"
            + (
                f" (every line holds {guess!r}: `delimiter={guess!r}`?)"
                if guess
                else ""
            )
            + f" and quoting. Received: delimiter={delimiter!r}."
        )
    if not rows:
        raise ValueError(
            f"{str(path)!r} has a header row but no data rows. Add examples, one "
            "per row, or check that it is the right file."
        )


def _pair_rows(source):
    texts, labels = source
    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels):
        raise ValueError(
            "`source` must be (texts, labels) with one label per text. "
            f"Received: {len(texts)} texts and {len(labels)} labels."
        )
    rows = []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if isinstance(text, (bytes, np.bytes_)):
            text = bytes(text).decode("utf-8")
        if not isinstance(text, str):
            raise TypeError(
                "Every text must be a string. "
                f"Received: texts[{i}]={text!r} of type {type(text).__name__}."
            )
        rows.append((f"index {i}", text.strip(), label))
    return rows
