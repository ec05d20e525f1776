"""The one object every loader returns."""

import dataclasses

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, repr=False)
class LoadedData:
    """Batched datasets plus everything needed to check them before training.

    Returned by `kft.data.load_images` and `kft.data.load_texts`; not meant to
    be built by hand.

    Attributes:
        train: `(inputs, labels)` batches, reshuffled every epoch (seeded):
            a `tf.data.Dataset`, or a `kft.data.ArrayBatches` (a
            `keras.utils.PyDataset`) with `format="pydataset"`.
        val: batches of the same kind in a fixed order, or `None`.
        test: batches of the same kind in a fixed order, or `None`.
        class_names: tuple of class names; label `i` means `class_names[i]`.
        counts: `{split: {class_name: count}}` for the splits that exist.
        examples: `{split: (inputs, labels)}` unbatched NumPy arrays (uint8
            pixels of shape `image_size + (3,)` for images, Python strings
            for texts; int32 labels) for the splits that exist.
        modality: `"image"` or `"text"`.
        source: a short description of where the data came from.
        skipped: tuple of `(item, reason)` for inputs that were skipped
            (corrupt images, empty texts), already reported in a warning.
        image_size: `(height, width)` for images, else `None`.
        batch_size: the batch size of the datasets.
        origins: `{split: tuple of str}` saying where each example of
            `examples[split]` came from (a file path, "line 12",
            "index 3"), used by the checks to point at duplicates.
        notes: tuple of sentences about choices the loader made (e.g.
            `val_split="auto"` holding out nothing), shown by `repr`.

    Example:

    >>> import kerastune_ft as kft
    >>> data = kft.data.load_texts(
    ...     (["good", "bad", "great", "awful"] * 5, [1, 0, 1, 0] * 5), val_split=0.2
    ... )
    >>> data.counts["train"]
    {'0': 8, '1': 8}
    >>> texts, labels = data.examples["val"]
    >>> len(texts)
    4
    """

    train: object
    val: object
    test: object
    class_names: tuple
    counts: dict
    examples: dict
    modality: str
    source: str = ""
    skipped: tuple = ()
    image_size: tuple = None
    batch_size: int = 32
    origins: dict = dataclasses.field(default_factory=dict)
    notes: tuple = ()

    @property
    def num_classes(self):
        """The number of classes."""
        return len(self.class_names)

    @property
    def splits(self):
        """Names of the splits that exist, in `("train", "val", "test")` order."""
        return tuple(s for s in SPLITS if s in self.examples)

    def __repr__(self):
        width = max([len("class")] + [len(str(c)) for c in self.class_names])
        header = f"  {'class':<{width}}" + "".join(f" {s:>7}" for s in self.splits)
        lines = [
            f"LoadedData({self.modality}s from {self.source}, "
            f"{self.num_classes} classes, batch_size={self.batch_size}"
            + (f", image_size={tuple(self.image_size)}" if self.image_size else "")
            + ")",
            header,
        ]
        for name in self.class_names:
            lines.append(
                f"  {name:<{width}}"
                + "".join(f" {self.counts[s][name]:>7}" for s in self.splits)
            )
        lines.append(
            f"  {'total':<{width}}"
            + "".join(f" {sum(self.counts[s].values()):>7}" for s in self.splits)
        )
        if self.skipped:
            lines.append(f"  skipped: {len(self.skipped)} (see `.skipped`)")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)
