"""Small subsets of a dataset: at most N examples per class (seeded).

Quick runs and few-shot experiments (8 or 32 examples per class) start from
the full data and keep a seeded, stratified part of every split.
`take_per_class` works on a loaded `LoadedData`; `link_per_class` works on a
class-folder tree before anything is decoded, so a quick run of a large
image folder decodes only the files it keeps.
"""

import pathlib

import numpy as np

from kerastune_ft._validation import check_number
from kerastune_ft.data._common import build_result
from kerastune_ft.data._folders import scan_class_folders
from kerastune_ft.data._result import LoadedData
from kerastune_ft.data.batches import ArrayBatches

__all__ = ["link_per_class", "take_per_class"]


def _check_max_per_class(max_per_class):
    check_number("max_per_class", max_per_class, low=1, integer=True)
    return int(max_per_class)


def take_per_class(data, max_per_class, *, seed=0):
    """Keeps at most `max_per_class` examples of each class in every split.

    The examples kept are drawn at random (seeded) inside each class and
    keep their original order; the datasets are rebuilt with the same batch
    size, and `source` says that this is a subset.

    Args:
        data: a `LoadedData` from `kft.data.load_images` / `load_texts`.
        max_per_class: the most examples of one class to keep per split, an
            int >= 1.
        seed: seeds the draw and the training set's shuffling. Defaults to `0`.

    Returns:
        A new `LoadedData` with the same splits and class names.

    Raises:
        TypeError: if `data` is not a `LoadedData`.
        ValueError: if `max_per_class` is not an int >= 1.

    Example:

    >>> import kerastune_ft as kft
    >>> data = kft.data.load_texts(
    ...     (["good", "bad", "great", "awful"] * 10, [1, 0, 1, 0] * 10), val_split=0.2
    ... )
    >>> small = kft.data.take_per_class(data, 3, seed=0)
    >>> small.counts["train"], small.counts["val"]
    ({'0': 3, '1': 3}, {'0': 3, '1': 3})
    """
    if not isinstance(data, LoadedData):
        raise TypeError(
            "`data` must be the LoadedData that kft.data.load_images or "
            f"kft.data.load_texts returns. Received: data of type {type(data).__name__}."
        )
    max_per_class = _check_max_per_class(max_per_class)
    rng = np.random.default_rng(seed)
    given = {}
    for split, (x, y) in data.examples.items():
        keep = np.sort(
            np.concatenate(
                [
                    rng.permutation(np.flatnonzero(y == c))[:max_per_class]
                    for c in range(len(data.class_names))
                ]
            )
        )
        origins = np.asarray(data.origins.get(split, ()), dtype=object)
        if len(origins) != len(y):
            origins = np.asarray([f"index {i}" for i in range(len(y))], dtype=object)
        given[split] = (x[keep], y[keep], origins[keep])
    return build_result(
        given,
        list(data.class_names),
        val_split=0.0,
        test_split=0.0,
        modality=data.modality,
        batch_size=data.batch_size,
        seed=seed,
        source=f"{data.source} (at most {max_per_class} per class)",
        skipped=data.skipped,
        image_size=data.image_size,
        format="pydataset" if isinstance(data.train, ArrayBatches) else "tf",
    )


def link_per_class(root, max_per_class, target, *, seed=0):
    """Links at most `max_per_class` files per class and split under `target`.

    The links keep the folder layout (`<class>/` or `{train,val,test}/<class>/`),
    so `kft.data.load_images(target)` sees the same splits and decodes only
    the files kept. Nothing is written outside `target`, which must not exist
    yet (a new folder, so that no user file can be in the way).

    Args:
        root: a class-folder tree, as `kft.data.load_images` reads.
        max_per_class: the most files of one class to keep per split, an
            int >= 1.
        target: the folder to create, e.g. in `tempfile.mkdtemp()`.
        seed: seeds the draw. Defaults to `0`.

    Returns:
        `target`, as a `pathlib.Path`.

    Raises:
        ValueError: if `root` is not a folder of class subfolders,
            `max_per_class` is not an int >= 1, or `target` exists.

    Example:

    >>> import pathlib, tempfile
    >>> import kerastune_ft as kft
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("cats", "dogs"):
    ...     (root / name).mkdir()
    ...     for i in range(5):
    ...         _ = (root / name / f"{i}.jpg").write_bytes(b"")
    >>> subset = kft.data.link_per_class(root, 2, root.parent / (root.name + "_2"))
    >>> sorted(p.name for p in subset.iterdir())  # a flat tree is the train split
    ['train']
    >>> len(list((subset / "train" / "cats").iterdir()))
    2
    """
    max_per_class = _check_max_per_class(max_per_class)
    target = pathlib.Path(target)
    if target.exists():
        raise ValueError(
            "`target` must be a new folder: the subset's links are written there. "
            f"Received: target={str(target)!r}, which exists. Pass a path that does "
            "not exist yet."
        )
    if not pathlib.Path(root).is_dir():
        raise ValueError(
            "`root` must be a folder of class subfolders. Received: "
            f"root={str(root)!r}, which is not a folder. Check the path."
        )
    files = scan_class_folders(pathlib.Path(root), kind="images")
    rng = np.random.default_rng(seed)
    for split, items in files.items():
        by_class = {}
        for path, label in items:
            by_class.setdefault(label, []).append(path)
        for label, paths in by_class.items():
            folder = target / split / label
            folder.mkdir(parents=True)
            for index in sorted(rng.permutation(len(paths))[:max_per_class]):
                path = paths[index]
                (folder / path.name).symlink_to(path.resolve())
    return target
