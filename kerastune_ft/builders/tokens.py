"""Token-level helpers of the text builder: lengths, and padding cut per batch."""

import math

import numpy as np

from kerastune_ft._quiet import import_tensorflow

__all__ = [
    "choose_sequence_length",
    "covering_count",
    "is_string_list",
    "token_counts",
    "trim_padding",
]


def trim_padding(tokens, multiple=8):
    """Cuts a padded token batch to its longest text (rounded up to `multiple`).

    Args:
        tokens: a keras-hub token dict with `"padding_mask"` (true for real
            tokens); every entry is `(batch, sequence_length)`.
        multiple: round the kept length up to a multiple of this (never past
            the batch's length). Defaults to `8`.

    Returns:
        The same dict with every entry cut to the kept length.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> tokens = {"token_ids": np.arange(12).reshape(1, 12),
    ...           "padding_mask": np.array([[1] * 3 + [0] * 9])}
    >>> cut = kft.builders.tokens.trim_padding(tokens, multiple=4)
    >>> np.asarray(cut["token_ids"]).tolist()
    [[0, 1, 2, 3]]
    """
    tf = import_tensorflow("A text model's preprocessing")
    mask = tf.convert_to_tensor(tokens["padding_mask"])
    full = tf.shape(mask)[1]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(mask, "int32"), axis=1))
    keep = tf.minimum(full, (longest + multiple - 1) // multiple * multiple)
    return {k: tf.convert_to_tensor(v)[:, :keep] for k, v in tokens.items()}


def is_string_list(x):
    """Whether `x` is a non-empty list, tuple or 1-D array of Python strings."""
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.size > 0 and isinstance(x.flat[0], (str, bytes))
    return (
        isinstance(x, (list, tuple))
        and len(x) > 0
        and all(isinstance(t, (str, bytes)) for t in x)
    )


def token_counts(preprocessor, texts, batch_size=256):
    """Token counts per text, special tokens ([CLS], [SEP]) included.

    Args:
        preprocessor: a keras-hub `TextClassifierPreprocessor`.
        texts: a list of strings.
        batch_size: texts tokenized per call. Defaults to `256`.

    Returns:
        A NumPy int array, one count per text.
    """
    special = 2  # start and end tokens added by the packer
    counts = []
    for start in range(0, len(texts), batch_size):
        ids = preprocessor.tokenizer(list(texts[start : start + batch_size]))
        if hasattr(ids, "row_lengths"):
            counts.extend(int(n) for n in np.asarray(ids.row_lengths()))
        else:
            counts.extend(len(row) for row in ids)
    return np.asarray(counts, dtype="int64") + special


def choose_sequence_length(counts, max_length, *, coverage=0.99, multiple=8):
    """The smallest multiple of `multiple` covering `coverage` of `counts`.

    Args:
        counts: token counts per text.
        max_length: the backbone's maximum sequence length (the cap).
        coverage: fraction of texts that must fit. Defaults to `0.99`.
        multiple: round up to a multiple of this. Defaults to `8`.

    Returns:
        An int in `[multiple, max_length]` (or `max_length` if smaller).

    Example:

    >>> import kerastune_ft as kft
    >>> kft.builders.tokens.choose_sequence_length([5, 9, 12] * 40, 512)
    16
    """
    needed = covering_count(counts, coverage)
    length = max(multiple, int(math.ceil(needed / multiple)) * multiple)
    return min(length, int(max_length))


def covering_count(counts, coverage=0.99):
    """The smallest count such that `coverage` of `counts` are at most it."""
    ordered = np.sort(np.asarray(counts))
    # round() keeps 0.99 * 100 from becoming 99.00000000000001 -> 100.
    needed = max(1, math.ceil(round(coverage * len(ordered), 9)))
    return int(ordered[needed - 1])
