"""Checks to run before training: class balance and train/val/test leakage."""

import collections
import dataclasses
import hashlib
import re
import unicodedata

import numpy as np

from kerastune_ft._validation import check_number
from kerastune_ft.data._result import SPLITS

__all__ = [
    "ClassBalance",
    "balanced_class_weight",
    "LeakageReport",
    "class_balance",
    "find_leakage",
    "normalize_text",
]


def _check_data(data, function):
    if not (hasattr(data, "examples") and hasattr(data, "class_names")):
        raise TypeError(
            f"`{function}` takes the object returned by `kft.data.load_images` or "
            f"`kft.data.load_texts`. Received: data of type {type(data).__name__}."
        )


def balanced_class_weight(labels, num_classes=None):
    """Class weights inversely proportional to class frequency.

    The package's one formula, scikit-learn's `compute_class_weight("balanced")`:
    `n_examples / (n_present_classes * count(class))`. `fine_tune(class_weight=
    "balanced")` and `ClassBalance.class_weight()` both use it.

    Args:
        labels: integer class labels (any shape; flattened).
        num_classes: also list the classes `0..num_classes-1` that are absent
            from `labels`, with weight 0. Defaults to `None` (present classes
            only).

    Returns:
        `{class: weight}`.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> kft.data.balanced_class_weight(np.array([0, 0, 0, 0, 1]))
    {0: 0.625, 1: 2.5}
    """
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels).reshape(-1)
    classes = np.unique(labels)
    weights = {} if num_classes is None else dict.fromkeys(range(num_classes), 0.0)
    if len(classes):
        found = compute_class_weight("balanced", classes=classes, y=labels)
        weights.update({int(c): float(w) for c, w in zip(classes, found, strict=True)})
    return weights


@dataclasses.dataclass(frozen=True, repr=False)
class ClassBalance:
    """Examples per class and split, and how imbalanced the classes are.

    Attributes:
        class_names: tuple of class names.
        counts: `{split: {class_name: count}}`.
        totals: `{class_name: count}` over all splits.
        imbalance_ratio: largest class count / smallest, over all splits
            (`inf` when a class has no examples; 1.0 is perfectly balanced).
        split_ratios: `{split: imbalance ratio within that split}`.
    """

    class_names: tuple
    counts: dict
    totals: dict
    imbalance_ratio: float
    split_ratios: dict

    def class_weight(self, split="train"):
        """Keras `class_weight` dict that balances `split`.

        See `balanced_class_weight`; classes without examples in `split` get
        weight 0.
        """
        counts = self.counts[split]
        labels = np.repeat(
            np.arange(len(self.class_names)),
            [counts[name] for name in self.class_names],
        )
        return balanced_class_weight(labels, num_classes=len(self.class_names))

    def __repr__(self):
        splits = list(self.counts)
        width = max([len("class")] + [len(str(c)) for c in self.class_names])
        lines = [
            f"ClassBalance: {len(self.class_names)} classes, imbalance ratio "
            f"{self.imbalance_ratio:.2f} (largest / smallest class)",
            f"  {'class':<{width}}"
            + "".join(f" {s:>7}" for s in splits)
            + f" {'total':>7} {'share':>6}",
        ]
        grand = sum(self.totals.values()) or 1
        for name in self.class_names:
            lines.append(
                f"  {name:<{width}}"
                + "".join(f" {self.counts[s][name]:>7}" for s in splits)
                + f" {self.totals[name]:>7} {self.totals[name] / grand:>6.1%}"
            )
        lines.append(
            "  ratio per split: "
            + ", ".join(f"{s} {r:.2f}" for s, r in self.split_ratios.items())
        )
        return "\n".join(lines)


def _ratio(values):
    values = list(values)
    if not values or max(values) == 0:
        return float("nan")
    return max(values) / min(values) if min(values) else float("inf")


def class_balance(data):
    """Counts examples per class and split, and the imbalance ratio.

    Args:
        data: the object returned by `kft.data.load_images` / `load_texts`.

    Returns:
        A `ClassBalance`; print it for a table. `.imbalance_ratio` is the
        largest class count divided by the smallest, and
        `.class_weight()` gives balancing weights for `model.fit`.

    Example:

    >>> import kerastune_ft as kft
    >>> data = kft.data.load_texts(
    ...     (["a", "b", "c", "d", "e"] * 4, [0, 0, 0, 0, 1] * 4), val_split=0.0)
    >>> balance = kft.data.class_balance(data)
    >>> balance.imbalance_ratio
    4.0
    """
    _check_data(data, "class_balance")
    counts = {s: dict(c) for s, c in data.counts.items()}
    totals = {n: sum(c[n] for c in counts.values()) for n in data.class_names}
    return ClassBalance(
        class_names=tuple(data.class_names),
        counts=counts,
        totals=totals,
        imbalance_ratio=_ratio(totals.values()),
        split_ratios={s: _ratio(c.values()) for s, c in counts.items()},
    )


# Copies of one duplicate group named in the printed summary.
_SHOWN_COPIES = 4
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def normalize_text(text):
    """Lowercases, strips punctuation and collapses whitespace (for leakage)."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = _PUNCTUATION.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _image_key(pixels):
    return hashlib.sha1(
        np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()
    ).hexdigest()


@dataclasses.dataclass(frozen=True, repr=False)
class LeakageReport:
    """Duplicated examples within and across the train/val/test splits.

    Attributes:
        modality: `"image"` or `"text"`.
        kinds: the duplicate kinds checked: `("exact", "normalized")` for
            texts (normalized: lowercase, no punctuation, collapsed
            whitespace), `("exact",)` for images (identical decoded pixels).
        within: `{split: {kind: n}}`, n = examples that repeat an earlier
            example of the same split (so `n_examples - n_unique`).
        across: `{"a/b": {kind: n}}`, n = examples of split b whose content
            also appears in split a (a comes before b in train, val, test).
            Nonzero values mean the evaluation is optimistic.
        conflicts: `{kind: n}`, groups of duplicates carrying different
            labels anywhere in the data.
        examples: `{kind: [group, ...]}`, a few duplicate groups; each group
            is a dict with `"preview"` (the text, or "identical pixels"),
            `"size"` (copies in the group) and `"where"` (list of
            `(split, index, origin, class_name)`, origin being the file path
            or line that `LoadedData.origins` records).
    """

    modality: str
    kinds: tuple
    within: dict
    across: dict
    conflicts: dict
    examples: dict

    @property
    def has_leakage(self):
        """Whether any example is shared between two splits."""
        return any(n for counts in self.across.values() for n in counts.values())

    def __repr__(self):
        lines = [
            f"LeakageReport ({self.modality}s; "
            + ("LEAKAGE FOUND" if self.has_leakage else "no leakage across splits")
            + ")"
        ]
        for kind in self.kinds:
            within = ", ".join(f"{s} {c[kind]}" for s, c in self.within.items())
            across = ", ".join(f"{p} {c[kind]}" for p, c in self.across.items())
            lines.append(
                f"  {kind}: within splits: {within or '-'}; across splits: "
                f"{across or '-'}; groups with conflicting labels: "
                f"{self.conflicts[kind]}"
            )
            for group in self.examples[kind]:
                shown = group["where"][:_SHOWN_COPIES]
                where = ", ".join(
                    f"{split} {origin} ({label})" for split, _, origin, label in shown
                )
                more = group["size"] - len(shown)
                lines.append(
                    f"    {group['preview']!r} x{group['size']}: {where}"
                    + (f", ... and {more} more" if more > 0 else "")
                )
        return "\n".join(lines)


def find_leakage(data, *, max_examples=5):
    """Finds duplicated examples within and across train/val/test.

    Texts are compared exactly and after normalization (lowercase, no
    punctuation, collapsed whitespace); images by a hash of their decoded,
    resized uint8 pixels, so re-encoded copies of the same file match too.

    Args:
        data: the object returned by `kft.data.load_images` / `load_texts`.
        max_examples: duplicate groups kept per kind in `.examples`
            (groups spanning splits first). Defaults to `5`.

    Returns:
        A `LeakageReport`; print it for a summary. `.has_leakage` is `True`
        when an example appears in two splits.

    Example:

    >>> import kerastune_ft as kft
    >>> texts = ["Great phone!", "great phone", "bad", "awful", "fine", "meh"] * 3
    >>> data = kft.data.load_texts((texts, [1, 1, 0, 0, 1, 0] * 3), val_split=0.5)
    >>> report = kft.data.find_leakage(data)
    >>> report.has_leakage
    True
    """
    _check_data(data, "find_leakage")
    check_number("max_examples", max_examples, low=0, integer=True)
    splits = [s for s in SPLITS if s in data.examples]
    modality = getattr(data, "modality", "text")
    if modality == "image":
        kinds = {"exact": _image_key}
    else:
        kinds = {"exact": str, "normalized": normalize_text}
    within = {s: {} for s in splits}
    across = {f"{a}/{b}": {} for i, a in enumerate(splits) for b in splits[i + 1 :]}
    conflicts, examples = {}, {}
    for kind, key_fn in kinds.items():
        groups = collections.defaultdict(list)  # key -> [(split, index, label)]
        for split in splits:
            inputs, labels = data.examples[split]
            for index, (item, label) in enumerate(zip(inputs, labels, strict=True)):
                groups[key_fn(item)].append((split, index, int(label)))
        keys_by_split = {
            s: {k for k, members in groups.items() if any(m[0] == s for m in members)}
            for s in splits
        }
        for split in splits:
            n = len(data.examples[split][1])
            within[split][kind] = n - len(keys_by_split[split])
        for i, a in enumerate(splits):
            for b in splits[i + 1 :]:
                shared = keys_by_split[a] & keys_by_split[b]
                across[f"{a}/{b}"][kind] = sum(
                    1 for k in shared for m in groups[k] if m[0] == b
                )
        duplicated = [members for members in groups.values() if len(members) > 1]
        conflicts[kind] = sum(
            1 for members in duplicated if len({m[2] for m in members}) > 1
        )
        # Groups spanning splits are the ones that matter most: show them first.
        duplicated.sort(key=lambda members: -len({m[0] for m in members}))
        shown = []
        origins = getattr(data, "origins", None) or {}
        for members in duplicated[:max_examples]:
            where = [
                (s, i, origins[s][i] if s in origins else f"#{i}", data.class_names[y])
                for s, i, y in members
            ]
            split, index, _ = members[0]
            preview = (
                "identical pixels"
                if modality == "image"
                else str(data.examples[split][0][index])
            )
            shown.append(
                {"preview": preview[:80], "size": len(members), "where": where}
            )
        examples[kind] = shown
    return LeakageReport(
        modality=modality,
        kinds=tuple(kinds),
        within=within,
        across=across,
        conflicts=conflicts,
        examples=examples,
    )
