"""`load_images`: image folders, tfds names and NumPy arrays -> `LoadedData`."""

import concurrent.futures
import dataclasses
import os
import pathlib

import numpy as np

from kerastune_ft._validation import check_number
from kerastune_ft.data import _common, _tfds
from kerastune_ft.data._folders import scan_class_folders

__all__ = ["load_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def load_images(
    source,
    *,
    image_size,
    batch_size=32,
    val_split="auto",
    test_split=0.0,
    seed=0,
    strict=False,
    class_names=None,
    data_dir=None,
    download=True,
    tfds_splits=None,
    verbose=0,
    format="auto",
):
    """Loads labelled images for fine-tuning, checked, split and batched.

    Every image is decoded once (with Pillow: grayscale, CMYK, palette and
    PNG-named-.jpg files all become RGB), resized to `image_size` and kept in
    memory as uint8; the datasets yield float32 pixels in [0, 255] (the
    models preprocess inside) and int class indices. The training split is
    reshuffled every epoch (seeded); val and test keep a fixed order.

    Args:
        source: one of
            - a folder `root/<class>/*`: split by us with `val_split` and
              `test_split` (seeded, stratified);
            - a folder `root/{train,val,test}/<class>/*` (`validation/` also
              accepted): the given splits are used as they are. `val_split`
              and `test_split` are then ignored, except that a missing `val/`
              or `test/` folder is carved out of `train/` with them;
            - `"tfds:<name>"`, a TensorFlow Datasets name such as
              `"tfds:tf_flowers"` (its own splits are used the same way);
            - a tuple `(images, labels)`: an array `(N, H, W, 3)` or
              `(N, H, W)` of pixels in [0, 255] and N labels (ints or names).
            Hidden files (".DS_Store") are ignored; other non-image files are
            listed in a warning. Given splits must hold the same classes.
            Symlinked files are followed; a symlinked folder must point
            outside the dataset folder (a link to it, into it or above it
            raises a `ValueError`); broken links are skipped with a warning.
            Arrays must hold finite values (NaN or inf raise).
        image_size: `(height, width)` or an int for square images.
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
        strict: if `True`, an undecodable or truncated image raises a
            `ValueError`; if `False`, such files are skipped and listed in one
            `KerasTuneFTWarning`. Defaults to `False`.
        class_names: optional list of class names fixing the label order;
            labels outside it raise a `ValueError`. Defaults to the sorted
            folder names (or label values).
        data_dir: tfds data folder (tfds sources only). Defaults to tfds' own.
        download: whether tfds may download (tfds sources only). Defaults to
            `True`.
        tfds_splits: optional `{"train": ..., "val": ..., "test": ...}` tfds
            split strings (tfds sources only). Defaults to the dataset's own.
        verbose: `0` is quiet, `1` shows a progress bar while decoding.
            Defaults to `0`.
        format: what `.train`, `.val` and `.test` are (the name Keras'
            `image_dataset_from_directory` uses). `"tf"`: `tf.data.Dataset`s
            (needs TensorFlow). `"pydataset"`: `kft.data.ArrayBatches`, a
            `keras.utils.PyDataset` that works on every Keras backend without
            TensorFlow. `"auto"`: `"tf"` on the TensorFlow backend, else
            `"pydataset"`. Defaults to `"auto"`.

    Returns:
        A `kft.data.LoadedData` with `.train`, `.val`, `.test`,
        `.class_names`, `.counts` and `.examples`.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> x = np.random.randint(0, 256, size=(40, 32, 32, 3), dtype="uint8")
    >>> y = np.array([0, 1] * 20)
    >>> data = kft.data.load_images((x, y), image_size=(16, 16), batch_size=8)
    >>> images, labels = next(iter(data.train))
    >>> tuple(images.shape), images.dtype.name, labels.dtype.name
    ((8, 16, 16, 3), 'float32', 'int32')
    """
    image_size = _check_image_size(image_size)
    format = _common.resolve_format(format)
    _common.check_common_args(batch_size, val_split, test_split, seed)
    class_names = _common.check_class_names(class_names)
    strict = _common.check_flag("strict", strict)
    download = _common.check_flag("download", download)
    read = _read_source(
        source,
        image_size=image_size,
        strict=strict,
        verbose=verbose,
        data_dir=data_dir,
        download=download,
        tfds_splits=tfds_splits,
    )
    given = {s: (read.pixels[s], read.labels[s], read.origins[s]) for s in read.pixels}
    return _common.labelled_result(
        given,
        class_names or read.class_names,
        source=read.description,
        skipped=read.skipped,
        modality="image",
        image_size=image_size,
        val_split=val_split,
        test_split=test_split,
        batch_size=batch_size,
        seed=seed,
        format=format,
    )


@dataclasses.dataclass
class _Read:
    """What one kind of source gave, per split: pixels, raw labels, origins."""

    pixels: dict
    labels: dict
    origins: dict
    description: str
    skipped: list = dataclasses.field(default_factory=list)
    class_names: tuple | None = None


def _read_source(source, *, image_size, strict, verbose, **tfds_options):
    """Reads `source` (tfds name, folder, or (images, labels)) into arrays."""
    if _tfds.is_tfds_source(source):
        return _read_tfds(source, image_size, **tfds_options)
    if isinstance(source, (str, os.PathLike)):
        return _read_folder(source, image_size, strict, verbose)
    if isinstance(source, (tuple, list)) and len(source) == 2:
        x, y = _check_arrays(source, image_size)
        return _Read(
            {"train": x},
            {"train": list(y)},
            {"train": [f"index {i}" for i in range(len(y))]},
            f"arrays of shape {np.shape(source[0])}",
        )
    raise TypeError(
        "`source` must be a folder path, a 'tfds:<name>' string, or a tuple "
        f"(images, labels). Received: source of type {type(source).__name__}."
    )


def _read_tfds(source, image_size, *, data_dir, download, tfds_splits):
    loaded, tfds_names = _tfds.load_tfds(
        source,
        convert=lambda img: _to_rgb(img, image_size),
        data_dir=data_dir,
        download=download,
        tfds_splits=tfds_splits,
    )
    return _Read(
        {s: _stack(x, image_size) for s, (x, _) in loaded.items()},
        {s: y for s, (_, y) in loaded.items()},
        {
            s: [f"{s} example {i}" for i in range(len(y))]
            for s, (_, y) in loaded.items()
        },
        source,
        class_names=tfds_names,
    )


def _read_folder(source, image_size, strict, verbose):
    links = []
    files = scan_class_folders(pathlib.Path(source), kind="images", skipped=links)
    pixels, raw_labels, origins, skipped = _decode_files(files, image_size, verbose)
    description = repr(str(source))
    if skipped and not any(len(y) for y in raw_labels.values()):
        raise ValueError(
            f"None of the {len(skipped)} files under {description} could be "
            f"decoded as an image: {_common.listed([p for p, _ in skipped], 3)}."
        )
    if skipped and strict:
        raise ValueError(
            f"{len(skipped)} image file(s) under {description} could not be "
            f"decoded: {_common.listed(f'{p} ({r})' for p, r in skipped)}. "
            "Remove or repair them, or pass `strict=False` to skip them with "
            "a warning."
        )
    _common.warn_skipped(
        skipped,
        "image file(s) that could not be decoded",
        "Remove or repair them, or pass `strict=True` to make this an error.",
    )
    return _Read(pixels, raw_labels, origins, description, links + skipped)


def _check_image_size(image_size):
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise ValueError(
            "`image_size` must be (height, width) or an int. "
            f"Received: image_size={image_size!r}."
        )
    for side in image_size:
        check_number("image_size", side, low=1, integer=True)
    return tuple(int(s) for s in image_size)


def _decode_one(path, image_size):
    from PIL import Image

    with Image.open(path) as img:
        return _to_rgb(img, image_size)


def _to_rgb(img, image_size):
    """Any Pillow image or pixel array -> uint8 `(height, width, 3)` RGB."""
    from PIL import Image

    if not isinstance(img, Image.Image):
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        img = Image.fromarray(arr.astype(np.uint8))
    if img.mode != "RGB":
        # Palette images with transparency go through RGBA so Pillow does not
        # warn; CMYK, grayscale and 16-bit modes convert directly.
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        img = img.convert("RGB")
    height, width = image_size
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _stack(arrays, image_size):
    if not arrays:
        return np.zeros((0,) + tuple(image_size) + (3,), np.uint8)
    return np.stack(arrays)


def _decode_files(files, image_size, verbose):
    """Decodes the files in parallel; returns pixels, labels, paths, skipped."""
    # Workers write straight into one preallocated uint8 array per split, so
    # peak memory stays near the size of the decoded data.
    pixels = {
        s: np.empty((len(items),) + tuple(image_size) + (3,), np.uint8)
        for s, items in files.items()
    }
    jobs = [(s, j) for s, items in files.items() for j in range(len(items))]
    progbar = None
    if verbose:
        import keras

        progbar = keras.utils.Progbar(len(jobs), unit_name="image")

    def work(job):
        split, j = job
        path = files[split][j][0]
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            return f"not an image extension {path.suffix or '(none)'}"
        try:
            pixels[split][j] = _decode_one(path, image_size)
        except Exception as err:  # Pillow raises many types on bad files.
            return f"{type(err).__name__}: {err}"
        return None

    failed = {s: [] for s in files}
    skipped = []
    workers = min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for done, (job, error) in enumerate(
            zip(jobs, pool.map(work, jobs), strict=True)
        ):
            if error:
                split, j = job
                failed[split].append(j)
                skipped.append((str(files[split][j][0]), error))
            if progbar is not None:
                progbar.update(done + 1)
    labels, paths = {}, {}
    for split, items in files.items():
        if failed[split]:
            pixels[split] = np.delete(pixels[split], failed[split], axis=0)
        bad = set(failed[split])
        kept = [item for j, item in enumerate(items) if j not in bad]
        labels[split] = [label for _, label in kept]
        paths[split] = [str(path) for path, _ in kept]
    return pixels, labels, paths, skipped


def _check_finite(x):
    """NaN or inf pixels would silently become black: refuse them."""
    if not np.issubdtype(x.dtype, np.inexact):
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    images = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
    raise ValueError(
        f"`source` images hold {int(bad.sum())} NaN or infinite pixel value(s) "
        f"in {len(images)} image(s): index {_common.listed(images.tolist())}. "
        "They would load as black pixels. Repair or drop those images "
        "(`np.isfinite(images)` finds them)."
    )


def _check_arrays(source, image_size):
    x, y = source
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
        raise ValueError(
            "Image arrays must have shape (N, height, width, 3) or (N, height, "
            f"width). Received: images of shape {x.shape}."
            + (
                " RGBA? Drop the alpha channel: `images[..., :3]`."
                if x.ndim == 4 and x.shape[-1] == 4
                else ""
            )
        )
    if not len(x):
        raise ValueError(
            f"`source` holds no images. Received: images of shape {x.shape}."
        )
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            "`source` must be (images, labels) with one label per image. "
            f"Received: {len(x)} images and labels of shape {y.shape}."
            + (
                " One-hot labels? Pass `np.argmax(labels, axis=1)`."
                if y.ndim == 2 and len(y) == len(x)
                else ""
            )
        )
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"Image arrays must be numeric. Received: dtype={x.dtype}.")
    _check_finite(x)
    if x.size:
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 255:
            raise ValueError(
                "Pixels must be in [0, 255] (the models preprocess inside). "
                f"Received: values in [{low:g}, {high:g}]."
            )
        if np.issubdtype(x.dtype, np.floating) and high <= 1.0:
            raise ValueError(
                "Pixels look scaled to [0, 1], but the models expect raw pixels "
                f"in [0, 255] (received values in [{low:g}, {high:g}]). Pass "
                "`images * 255`."
            )
    x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    if x.shape[1:3] != tuple(image_size):
        x = _stack([_to_rgb(img, image_size) for img in x], image_size)
    elif x.ndim == 3:
        x = np.repeat(x[..., None], 3, axis=-1)
    return x, y
