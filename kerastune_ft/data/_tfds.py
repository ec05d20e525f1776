"""Loading a TensorFlow Datasets dataset by name (`"tfds:tf_flowers"`)."""

from kerastune_ft._quiet import import_tensorflow

PREFIX = "tfds:"

# tfds split names -> ours.
_SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def is_tfds_source(source):
    return isinstance(source, str) and source.startswith(PREFIX)


def load_tfds(source, *, convert, data_dir=None, download=True, tfds_splits=None):
    """Loads every split of a supervised tfds dataset as NumPy examples.

    Args:
        source: `"tfds:<name>"`, e.g. `"tfds:tf_flowers"`.
        convert: applied to each input as it streams in (e.g. resize an
            image), so full-size inputs never pile up in memory.
        data_dir: tfds data folder. Defaults to tfds' own (`~/tensorflow_datasets`).
        download: whether tfds may download and prepare the data.
        tfds_splits: optional `{our_split: tfds_split}` such as
            `{"train": "train[:90%]", "test": "test"}`. Defaults to the
            dataset's own train/validation/test splits (just "train" when the
            dataset declares none).

    Returns:
        `({split: (list of converted inputs, list of raw labels)},
        class_names or None)`.
    """
    import_tensorflow("A tfds source")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "A tfds source needs tensorflow-datasets: `pip install "
            f"tensorflow-datasets`. Received: source={source!r}. Or load the files "
            "with a folder source."
        ) from e

    name = source[len(PREFIX) :]
    if not name:
        raise ValueError(
            "A tfds source needs a dataset name after 'tfds:'. "
            f"Received: source={source!r}. Example: 'tfds:tf_flowers'."
        )
    how_to = (
        f"Download it once on a connected machine with `tfds.load({name!r}, "
        "data_dir=DIR)` and pass `data_dir=DIR` here (or copy DIR beside "
        "~/tensorflow_datasets), or load the files with a folder/file source."
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"TensorFlow Datasets has no dataset named {name!r}. "
            f"Received: source={source!r}. See https://www.tensorflow.org/datasets/"
            "catalog for names."
        ) from None
    if tfds_splits is None:
        declared = list(builder.info.splits.keys()) or ["train"]
        tfds_splits = {_SPLIT_NAMES[s]: s for s in declared if s in _SPLIT_NAMES} or {
            "train": declared[0]
        }
    if "train" not in tfds_splits:
        raise ValueError(
            "`tfds_splits` must name a 'train' split. "
            f"Received: tfds_splits={tfds_splits!r}."
        )
    examples = {}
    for ours, theirs in tfds_splits.items():
        try:
            ds = tfds.load(
                name,
                split=theirs,
                as_supervised=True,
                data_dir=data_dir,
                download=download,
            )
        except Exception as err:
            raise ValueError(
                f"Could not load the tfds dataset {name!r} (split {theirs!r}) "
                f"from data_dir={data_dir!r} with download={download}: "
                f"{type(err).__name__}: {str(err)[:300]}. {how_to}"
            ) from err
        inputs, labels = [], []
        for item, label in tfds.as_numpy(ds):
            inputs.append(convert(item))
            labels.append(label)
        examples[ours] = (inputs, labels)
    class_names = None
    features = builder.info.features
    label = features["label"] if features and "label" in features.keys() else None
    if label is not None and getattr(label, "names", None):
        class_names = tuple(label.names)
    return examples, class_names
