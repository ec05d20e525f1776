"""Helpers shared by the image and text loaders: labels, splits, pipelines."""

import math
import numbers
import warnings

import numpy as np

from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_fraction, check_number
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.data._result import SPLITS, LoadedData
from kerastune_ft.data.batches import ArrayBatches

# How many offending items an error or warning names before "... and N more".
MAX_LISTED = 10
# val_split="auto": hold out this fraction when every class keeps at least
# MIN_VAL_PER_CLASS validation examples (40+ per class), else nothing.
AUTO_VAL_SPLIT = 0.2
MIN_VAL_PER_CLASS = 8


def listed(items, limit=MAX_LISTED, sep=", "):
    """Formats the first `limit` items and how many were left out."""
    items = list(items)
    text = sep.join(str(i) for i in items[:limit])
    if len(items) > limit:
        text += f"{sep}... and {len(items) - limit} more"
    return text


def check_common_args(batch_size, val_split, test_split, seed):
    """Validates the arguments every loader shares."""
    check_number("batch_size", batch_size, low=1, integer=True)
    if not (isinstance(val_split, str) and val_split == "auto"):
        check_fraction("val_split", val_split, hint='Or pass val_split="auto".')
    check_fraction("test_split", test_split)
    check_number("seed", seed, low=0, integer=True)
    if val_split == "auto":
        val_split = AUTO_VAL_SPLIT
    if val_split + test_split >= 1:
        raise ValueError(
            "`val_split + test_split` must be less than 1 so that some examples "
            f"are left for training. Received: val_split={val_split}, "
            f"test_split={test_split}."
        )


def check_flag(name, value):
    """Validates a True/False argument (a string such as "no" is truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"`{name}` must be True or False. Received: {name}={value!r} of type "
            f"{type(value).__name__}."
        )
    return bool(value)


def warn_skipped(skipped, what, hint, with_reasons=True):
    """Emits ONE warning listing every skipped item (nothing lost silently)."""
    if not skipped:
        return
    details = listed(
        f"{item} ({reason})" if with_reasons else item for item, reason in skipped
    )
    warnings.warn(
        f"Skipped {len(skipped)} {what}: {details}. {hint}",
        KerasTuneFTWarning,
        stacklevel=3,
    )


def _as_label(value):
    """Normalizes one raw label to an int or a str (digit strings become ints)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
        return stripped
    raise TypeError(f"{value!r} of type {type(value).__name__}")


def _is_nan(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, numbers.Integral)
        and math.isnan(value)
    )


def _normalize_labels(raw_by_split, where):
    """`_as_label` over every split; errors name the split and index at fault."""
    several = len(raw_by_split) > 1
    nan = [
        f"{split} index {i}" if several else str(i)
        for split, raw in raw_by_split.items()
        for i, value in enumerate(raw)
        if _is_nan(value)
    ]
    if nan:
        raise ValueError(
            f"{where} hold {len(nan)} NaN label(s) at index {listed(nan)}. Every "
            "example needs a label: fill them in, or drop those examples."
        )
    normalized = {}
    for split, raw in raw_by_split.items():
        labels = []
        for i, value in enumerate(raw):
            try:
                labels.append(_as_label(value))
            except TypeError as err:
                at = f"{split} index {i}" if several else f"index {i}"
                one_hot = (
                    " One-hot labels? Pass `np.argmax(labels, axis=1)`."
                    if np.ndim(value) == 1
                    else ""
                )
                raise TypeError(
                    f"{where} must be integers or strings (class names). "
                    f"Received: at {at}, {err}.{one_hot}"
                ) from None
        normalized[split] = labels
    return normalized


def check_class_names(class_names):
    """Validates a user-given `class_names` and returns it as a tuple of str."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not hasattr(class_names, "__iter__"):
        raise TypeError(
            "`class_names` must be a list of strings. "
            f"Received: class_names={class_names!r}."
        )
    names = tuple(str(c) for c in class_names)
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(
            "`class_names` must hold at least 2 distinct names. "
            f"Received: class_names={list(class_names)!r}."
        )
    return names


def encode_labels(raw_by_split, class_names=None, *, where="the labels"):
    """Maps raw labels (ints or class-name strings) to int32 class indices.

    Args:
        raw_by_split: `{split: sequence of raw labels}`.
        class_names: optional tuple of names (already checked). When given,
            each label must be one of the names (compared as text, so `10`
            matches "10") or else an integer index into them.
        where: where the labels came from, for error messages.

    Returns:
        `({split: int32 array}, class_names tuple)`.
    """
    normalized = _normalize_labels(raw_by_split, where)
    values = {v for labels in normalized.values() for v in labels}
    if class_names is None:
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            raise ValueError(
                f"{where} mix integers and words: {listed(sorted(map(str, values)))}. "
                "Use one kind, or pass `class_names` to say what integers mean."
            )
        ordered = sorted(values)
        class_names = tuple(str(v) for v in ordered)
        index = {v: i for i, v in enumerate(ordered)}
    else:
        index = {i: i for i in range(len(class_names))}
        index.update({name: i for i, name in enumerate(class_names)})
        # An integer label that spells a class name means that name.
        index.update({v: index[str(v)] for v in values if str(v) in index})
        unknown = sorted((v for v in values if v not in index), key=str)
        if unknown:
            counts = {
                u: sum(labels.count(u) for labels in normalized.values())
                for u in unknown
            }
            raise ValueError(
                f"{where} contain {len(unknown)} unknown label value(s) not in "
                f"`class_names`: {listed(f'{u!r} x{counts[u]}' for u in unknown)}. "
                f"Received: class_names={list(class_names)!r}. Fix the labels, or "
                "add the missing names to `class_names`."
            )
    present = sorted({class_names[index[v]] for v in values})
    if len(present) < 2:
        raise ValueError(
            f"{where} hold a single class ({listed(present) or 'no labels'}); a "
            "classifier needs at least 2. Check the labels or the folder layout."
        )
    encoded = {
        s: np.asarray([index[v] for v in labels], dtype=np.int32)
        for s, labels in normalized.items()
    }
    return encoded, class_names


def _stratified(indices, labels, size, seed, what, class_names):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            indices, test_size=size, stratify=labels, random_state=seed
        )
    except ValueError as err:
        per_class = np.bincount(labels, minlength=len(class_names))
        counts = ", ".join(
            f"{name}={n}" for name, n in zip(class_names, per_class, strict=True) if n
        )
        raise ValueError(
            f"Cannot carve a stratified {what} split of {size:g} from "
            f"{len(indices)} examples (per class: {counts}): {err}. Every class "
            f"needs at least 2 examples and the {what} split needs at least one "
            f"per class. Lower or raise `{what}_split`, or add examples."
        ) from None


def resolve_val_split(val_split, given, class_names):
    """`val_split="auto"` as a fraction, and a note saying what was chosen.

    Returns:
        `(fraction, note)`; the note is `""` unless "auto" chose no split.
    """
    if not (isinstance(val_split, str) and val_split == "auto"):
        return val_split, ""
    if "val" in given:
        return AUTO_VAL_SPLIT, ""
    labels = given["train"][1]
    present = np.bincount(labels, minlength=len(class_names))
    smallest = int(present[present > 0].min()) if len(labels) else 0
    if smallest * AUTO_VAL_SPLIT >= MIN_VAL_PER_CLASS:
        return AUTO_VAL_SPLIT, ""
    note = (
        f"no validation split (val_split='auto'): the rarest class has {smallest} "
        f"examples, and holding out {AUTO_VAL_SPLIT:g} would leave fewer than "
        f"{MIN_VAL_PER_CLASS} to validate on. Every example trains; kft.fine_tune "
        "picks a few-shot recipe that needs no validation data. Pass val_split=0.2 "
        "to hold some out anyway."
    )
    return 0.0, note


def assign_splits(given, *, val_split, test_split, seed, class_names):
    """Carves val/test out of train (seeded, stratified) when not given.

    Args:
        given: `{split: (inputs, int labels, origins)}` with at least
            "train" (origins: array of strings saying where each example came
            from). Splits
            already present are kept as they are; their `*_split` is ignored.
        val_split: fraction of all train-pool examples for val (0 for none).
        test_split: fraction of all train-pool examples for test.
        seed: the split seed; the same seed gives the same split.
        class_names: for error messages.

    Returns:
        `{split: (inputs, labels, origins)}` for the splits that exist.
    """
    x, y, o = given["train"]
    out = {k: v for k, v in given.items() if k != "train"}
    carve_test = "test" not in given and test_split > 0
    carve_val = "val" not in given and val_split > 0
    pool = np.arange(len(y))
    if carve_test:
        pool, test_idx = _stratified(pool, y, test_split, seed, "test", class_names)
        test_idx = np.sort(test_idx)
        out["test"] = (x[test_idx], y[test_idx], o[test_idx])
    if carve_val:
        # val_split is a fraction of the whole pool, not of what test left.
        fraction = val_split / (1.0 - test_split) if carve_test else val_split
        pool, val_idx = _stratified(pool, y[pool], fraction, seed, "val", class_names)
        val_idx = np.sort(val_idx)
        out["val"] = (x[val_idx], y[val_idx], o[val_idx])
    if carve_test or carve_val:
        pool = np.sort(pool)
        out["train"] = (x[pool], y[pool], o[pool])
    else:
        out["train"] = (x, y, o)
    return {s: out[s] for s in SPLITS if s in out}


def check_split_classes(labels_by_split, class_names, *, source):
    """Raises when a class has examples in some splits but not in others.

    Carved splits are stratified, so this catches given splits (folders,
    tfds) whose classes differ, e.g. `train/{a,b}` with `val/{a,c}`.
    Classes with no example anywhere are left alone.
    """
    present = {s: set(np.unique(y).tolist()) for s, y in labels_by_split.items()}
    anywhere = set().union(*present.values())
    gaps = [
        f"class {class_names[c]!r} has no examples in "
        + ", ".join(s for s in present if c not in present[s])
        for c in sorted(anywhere)
        if any(c not in labels for labels in present.values())
    ]
    if gaps:
        raise ValueError(
            f"The splits of {source} do not hold the same classes: "
            f"{listed(gaps, sep='; ')}. A model cannot "
            "learn a class missing from train, and val/test scores say nothing "
            "about a class missing from them. Add examples of every class to "
            "every split, remove the class from all splits, or keep one folder "
            "per class (no train/val/test folders) and let `val_split` and "
            "`test_split` carve stratified splits."
        )


FORMATS = ("auto", "tf", "pydataset")


def resolve_format(format):
    """`load_images`' `format`: `"auto"` is `"tf"` on the TensorFlow backend,
    else `"pydataset"`."""
    if format not in FORMATS:
        raise ValueError(
            f"`format` must be one of {FORMATS}. Received: format={format!r}. "
            "Use 'tf' for tf.data datasets, 'pydataset' for kft.data.ArrayBatches "
            "(no TensorFlow needed), or 'auto'."
        )
    if format != "auto":
        if format == "tf":
            import_tensorflow("format='tf' (tf.data datasets)")
        return format
    import keras

    return "tf" if keras.backend.backend() == "tensorflow" else "pydataset"


def make_dataset(inputs, labels, *, batch_size, shuffle, seed, to_float, format="tf"):
    """Builds the batched `tf.data` pipeline (or `ArrayBatches`) over examples.

    The examples are decoded (and resized) once, before this, so the inputs
    already sit in memory: a `cache()` would only copy them again. The
    pipeline shuffles indices (not images) every epoch, so the shuffle buffer
    stays small, gathers whole batches, and casts pixels to float32 in a
    parallel map.
    """
    if format == "pydataset":
        return ArrayBatches(
            inputs,
            np.asarray(labels, dtype="int32"),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            dtype="float32" if to_float else None,
        )
    tf = import_tensorflow("A tf.data dataset (format='tf')")

    x = tf.constant(inputs)
    y = tf.constant(labels, dtype=tf.int32)
    ds = tf.data.Dataset.range(len(labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(idx):
        batch = tf.gather(x, idx)
        if to_float:
            batch = tf.cast(batch, tf.float32)
        return batch, tf.gather(y, idx)

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def labelled_result(given, class_names, *, source, **options):
    """Encodes raw labels, then splits: `{split: (inputs, raw labels, origins)}`.

    `options` are `build_result`'s keyword arguments.
    """
    labels, class_names = encode_labels(
        {s: list(raw) for s, (_, raw, _) in given.items()},
        class_names,
        where=f"The labels of {source}",
    )
    given = {
        s: (x, labels[s], np.asarray(origins, dtype=object))
        for s, (x, _, origins) in given.items()
    }
    return build_result(given, class_names, source=source, **options)


def build_result(
    given,
    class_names,
    *,
    val_split,
    test_split,
    modality,
    batch_size,
    seed,
    source,
    skipped=(),
    image_size=None,
    format="tf",
):
    """Splits `{split: (inputs, labels, origins)}` and returns a `LoadedData`."""
    val_split, note = resolve_val_split(val_split, given, class_names)
    splits = assign_splits(
        given,
        val_split=val_split,
        test_split=test_split,
        seed=seed,
        class_names=class_names,
    )
    examples = {s: (x, y) for s, (x, y, _) in splits.items()}
    check_split_classes(
        {s: y for s, (_, y) in examples.items()}, class_names, source=source
    )
    datasets = {
        split: make_dataset(
            x,
            y,
            batch_size=batch_size,
            shuffle=split == "train",
            seed=seed,
            to_float=modality == "image",
            format=format,
        )
        for split, (x, y) in examples.items()
    }
    counts = {
        split: {
            name: int(n)
            for name, n in zip(
                class_names, np.bincount(y, minlength=len(class_names)), strict=True
            )
        }
        for split, (_, y) in examples.items()
    }
    if not len(examples["train"][1]):
        raise ValueError(f"No training examples were loaded from {source}.")
    return LoadedData(
        train=datasets["train"],
        val=datasets.get("val"),
        test=datasets.get("test"),
        class_names=tuple(class_names),
        counts=counts,
        examples=examples,
        modality=modality,
        source=source,
        skipped=tuple(skipped),
        image_size=image_size,
        batch_size=batch_size,
        origins={s: tuple(o) for s, (_, _, o) in splits.items()},
        notes=(note,) if note else (),
    )
