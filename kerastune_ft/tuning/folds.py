"""Folds: splitting examples, fold datasets, and memory between models.

Shared by `kft.cross_validate` (one recipe, k models) and by `kft.tune` with
`cross_validation=k` (every trial scored on k folds).
"""

import dataclasses

import keras
import numpy as np

from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_number
from kerastune_ft.data.batches import ArrayBatches

__all__ = ["TrialFolds", "memory_usage_mb"]


def release_memory():
    """Clears the Keras session between models (and collects garbage)."""
    # Models built in a loop keep graph state alive until the session is
    # cleared; clear_session() also runs gc.collect() so the freed tensors go.
    keras.backend.clear_session(free_memory=True)


def memory_usage_mb():
    """Returns `(current RSS, peak RSS)` of this process in MiB.

    The current RSS needs `psutil` (else `None`); the peak comes from
    `resource.getrusage` (Unix; else `None`).

    Returns:
        A tuple of two floats or `None`s.

    Example:

    >>> import kerastune_ft as kft
    >>> current, peak = kft.tuning.memory_usage_mb()
    >>> peak is None or peak > 0
    True
    """
    current = peak = None
    try:
        import psutil

        current = psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        pass
    return current, peak


def to_dataset(arrays, batch_size, *, shuffle, seed):
    """Batches of an `Arrays` (shuffled every epoch): a `tf.data.Dataset` on
    the TensorFlow backend, else a `kft.data.ArrayBatches`."""
    if keras.backend.backend() != "tensorflow":
        return ArrayBatches(arrays.x, arrays.y, batch_size, shuffle=shuffle, seed=seed)
    tf = import_tensorflow("Cross-validation with tf.data folds")
    x = arrays.x.astype(str) if arrays.x.dtype == object else arrays.x
    dataset = tf.data.Dataset.from_tensor_slices((x, arrays.y))
    if shuffle:
        dataset = dataset.shuffle(len(arrays), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def splitter(folds, stratified, repeats, seed):
    """The scikit-learn splitter for `folds` x `repeats` (stratified or not).

    Args:
        folds: number of folds.
        stratified: keep class proportions in every fold.
        repeats: how many times to reshuffle and split again.
        seed: the shuffling seed.

    Returns:
        A scikit-learn splitter (`.split(x, y)`).

    Example:

    >>> import numpy as np
    >>> from kerastune_ft.tuning.folds import splitter
    >>> y = np.arange(12) % 2
    >>> len(list(splitter(3, True, 2, 0).split(y, y)))
    6
    """
    from sklearn import model_selection

    if repeats > 1:
        cls = (
            model_selection.RepeatedStratifiedKFold
            if stratified
            else model_selection.RepeatedKFold
        )
        return cls(n_splits=folds, n_repeats=repeats, random_state=seed)
    cls = model_selection.StratifiedKFold if stratified else model_selection.KFold
    return cls(n_splits=folds, shuffle=True, random_state=seed)


def check_folds(folds, stratified, repeats, y, *, name="folds"):
    """Checks that `y` can be split into `folds` (stratified) folds."""
    check_number(name, folds, low=2, integer=True)
    check_number("repeats", repeats, low=1, integer=True)
    if len(y) < folds:
        raise ValueError(
            f"`{name}={folds}` needs at least {folds} examples; the data has "
            f"{len(y)}. Use fewer folds."
        )
    if not stratified:
        return
    labels = np.asarray(y)
    if labels.ndim > 1:
        raise ValueError(
            "`stratified=True` needs integer class labels; the labels are "
            f"{labels.ndim}-D (one-hot or multi-label). Use stratified=False."
        )
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        raise ValueError(
            f"The smallest class has {counts.min()} examples, fewer than "
            f"`{name}={folds}`, so stratified folds are impossible. Use fewer "
            "folds or stratified=False."
        )


@dataclasses.dataclass
class TrialFolds:
    """The folds every trial of a cross-validated search trains on.

    `kft.tune(cross_validation=k)` passes one to `keras_tuner`'s `search`;
    `FineTuneHyperModel.fit` then trains one model per fold and returns the
    list of fold metrics, which keras-tuner averages into the trial's score.
    The fold datasets are made once per batch size, so that every trial sees
    the same dataset objects and frozen features computed for them are
    reused.

    Attributes:
        arrays: the examples to split (an `Arrays`).
        folds: number of folds, >= 2.
        stratified: keep class proportions in every fold.
        seed: seeds the split and the shuffling.
        batch_size: the batch size when the trial samples none.
        datasets: `(fold, batch size) -> (train, held-out)` made so far.

    Example:

    >>> import numpy as np
    >>> from kerastune_ft.data._arrays import Arrays
    >>> from kerastune_ft.tuning import TrialFolds
    >>> x, y = np.zeros((8, 2)), np.arange(8) % 2
    >>> folds = TrialFolds(Arrays(x, y), folds=2, seed=0)
    >>> [len(list(val)) for _, val in folds.datasets_for(batch_size=2)]
    [2, 2]
    """

    arrays: object
    folds: int
    stratified: bool = True
    seed: int | None = None
    batch_size: int = 32
    datasets: dict = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self):
        check_folds(
            self.folds, self.stratified, 1, self.arrays.y, name="cross_validation"
        )

    def datasets_for(self, batch_size=None):
        """`[(train, held-out), ...]` datasets, one pair per fold.

        Args:
            batch_size: the batch size. Defaults to `None` (`batch_size`).

        Returns:
            A list of `(tf.data.Dataset, tf.data.Dataset)` pairs.
        """
        size = int(batch_size or self.batch_size)
        split = splitter(self.folds, self.stratified, 1, self.seed)
        pairs = []
        for index, (train_idx, val_idx) in enumerate(
            split.split(self.arrays.x, self.arrays.y)
        ):
            key = (index, size)
            if key not in self.datasets:
                self.datasets[key] = (
                    to_dataset(
                        self.arrays.take(train_idx), size, shuffle=True, seed=self.seed
                    ),
                    to_dataset(
                        self.arrays.take(val_idx), size, shuffle=False, seed=self.seed
                    ),
                )
            pairs.append(self.datasets[key])
        return pairs
