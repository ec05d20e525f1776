"""`kft.cross_validate`: one training recipe scored on k folds.

A plan and a loop: check the arguments and split the examples (a
`FoldPlan`), then build, fine-tune and score one fresh model per fold
(`FoldResult`), in this process or a fresh one, and summarize
(`CrossValidationResult`).
"""

import dataclasses
import os
import time

import keras
import numpy as np

from kerastune_ft._validation import check_number
from kerastune_ft.data._arrays import to_numpy
from kerastune_ft.data.batches import batch_size_of
from kerastune_ft.training import fine_tune
from kerastune_ft.tuning.folds import (
    check_folds,
    memory_usage_mb,
    release_memory,
    splitter,
    to_dataset,
)
from kerastune_ft.tuning.results import CrossValidationResult, FoldResult

__all__ = ["FoldPlan", "cross_validate"]


@dataclasses.dataclass(frozen=True)
class FoldPlan:
    """How every fold of `cross_validate` trains.

    Attributes:
        build_fn: returns a fresh compiled model.
        batch_size: the batch size of the fold datasets.
        seed: seeds the build, the shuffling and `fine_tune`, or `None`.
        fine_tune_kwargs: the `kft.fine_tune` arguments.
        folds: folds per repeat.
    """

    build_fn: object
    batch_size: int
    seed: int | None
    fine_tune_kwargs: dict
    folds: int


def _diagnose(result):
    try:
        from kerastune_ft.evaluation import diagnose
    except ImportError:
        return None
    try:
        return diagnose(result)
    except ValueError:
        return None  # e.g. too few epochs to judge


def _run_fold(plan, train, held_out, index):
    """Builds, fine-tunes and scores one fold; clears the session after it."""
    started = time.perf_counter()
    if plan.seed is not None:
        # Same initial weights whichever process builds the fold.
        keras.utils.set_random_seed(plan.seed)
    model = plan.build_fn()
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`build_fn()` must return a keras.Model. "
            f"Received: a {type(model).__name__}."
        )
    train_ds = to_dataset(train, plan.batch_size, shuffle=True, seed=plan.seed)
    val_ds = to_dataset(held_out, plan.batch_size, shuffle=False, seed=plan.seed)
    result = fine_tune(model, train_ds, val_ds, **plan.fine_tune_kwargs)
    scores = model.evaluate(val_ds, verbose=0, return_dict=True)
    diagnosis = _diagnose(result)
    fold = FoldResult(
        fold=index + 1,
        repeat=index // plan.folds + 1,
        train_size=len(train),
        val_size=len(held_out),
        metrics={k: float(v) for k, v in scores.items()},
        history={k: list(v) for k, v in result.history.items()},
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        seconds=0.0,
        verdict=getattr(diagnosis, "verdict", None),
        diagnosis=diagnosis,
        monitor=result.monitor,
        pid=os.getpid(),
    )
    del model, result, train_ds, val_ds
    release_memory()
    fold.seconds = round(time.perf_counter() - started, 2)
    fold.rss_mb, fold.peak_rss_mb = memory_usage_mb()
    return fold


def _checked_fine_tune_kwargs(fine_tune_kwargs, seed):
    import inspect

    kwargs = dict(fine_tune_kwargs or {})
    for key in ("model", "train", "validation_data"):
        if key in kwargs:
            raise ValueError(
                f"`fine_tune_kwargs` cannot set {key!r}: cross_validate sets it. "
                f"Received: fine_tune_kwargs keys {sorted(kwargs)}."
            )
    known = inspect.signature(fine_tune).parameters
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        raise ValueError(
            f"`fine_tune_kwargs` has {unknown}, which kft.fine_tune does not take. "
            "See help(kft.fine_tune) for its arguments."
        )
    kwargs.setdefault("verbose", 0)
    if seed is not None:
        kwargs.setdefault("seed", seed)
    return kwargs


def _summary(results):
    names = list(results[0].metrics)
    mean = {m: float(np.mean([f.metrics[m] for f in results])) for m in names}
    std = {m: float(np.std([f.metrics[m] for f in results])) for m in names}
    return CrossValidationResult(results, mean, std, results[-1].monitor)


def cross_validate(
    build_fn,
    data,
    folds=5,
    *,
    stratified=True,
    repeats=1,
    seed=None,
    fine_tune_kwargs=None,
    batch_size=None,
    splits=("train", "val"),
    isolate=False,
    verbose=0,
):
    """Scores a training recipe with k-fold cross-validation.

    Each fold gets a fresh model from `build_fn()`, trained with
    `kft.fine_tune` on the other folds and validated on the held-out fold,
    which also drives early stopping (so scores are slightly optimistic;
    pass `fine_tune_kwargs={"early_stopping": False}` for a strict estimate).
    The Keras session is cleared after every fold so memory stays flat.

    Args:
        build_fn: a function with no arguments returning a compiled model
            (e.g. `lambda: kft.build_text_classifier("minilm-l6", 2)`).
        data: a `kft.data` `LoadedData` (its `splits` are pooled, the test
            split stays out), an `(inputs, labels)` tuple of arrays or lists,
            or a `tf.data.Dataset` of batches.
        folds: number of folds, >= 2. Defaults to `5`.
        stratified: keep class proportions in every fold
            (`StratifiedKFold`). Defaults to `True`.
        repeats: repeat the k-fold split with different shuffles
            (`RepeatedStratifiedKFold`). Defaults to `1`.
        seed: seeds the splitter, the shuffling and every `fine_tune`.
            Defaults to `None`.
        fine_tune_kwargs: more `kft.fine_tune` arguments (e.g.
            `{"epochs": 4}`). Defaults to `None`.
        batch_size: batch size of the fold datasets. Defaults to `None`
            (the data's own, else 32).
        splits: for `LoadedData`, which splits to pool. Defaults to
            `("train", "val")`.
        isolate: train each fold in a fresh subprocess (joblib's loky, so
            `build_fn` may be a lambda), which hands all its memory back when
            the fold ends. In-process folds clear the Keras session, which
            keeps image models flat, but TensorFlow keeps the training graphs
            of keras-hub transformers with frozen embeddings (the text
            builder's default) alive: ~350 MiB per MiniLM fold. Each
            subprocess imports TensorFlow again (a few seconds).
            Defaults to `False`.
        verbose: `0` silent, `1` one line per fold. Defaults to `0`.

    Returns:
        A `CrossValidationResult` with per-fold metrics, histories and
        verdicts, the mean and standard deviation of each metric, and
        `.plot()` for learning curves.

    Example:

    >>> import keras, numpy as np, kerastune_ft as kft
    >>> def build():  # a fresh, untrained model for every fold
    ...     conv = keras.Sequential(
    ...         [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    ...     return kft.build_image_classifier(conv, 2, dropout=0.1)
    >>> x, y = np.random.rand(20, 8, 8, 3) * 255, np.arange(20) % 2
    >>> cv = kft.cross_validate(
    ...     build, (x, y), folds=2, seed=0, fine_tune_kwargs={"epochs": 1})
    >>> len(cv.folds), "accuracy" in cv.mean
    (2, True)
    """
    if not callable(build_fn):
        raise TypeError(
            "`build_fn` must be a function with no arguments that returns a "
            f"compiled model. Received: build_fn={build_fn!r}."
        )
    if not isinstance(isolate, bool):
        raise TypeError(
            f"`isolate` must be True or False. Received: isolate={isolate!r}."
        )
    arrays = to_numpy(data, splits)
    check_folds(folds, stratified, repeats, arrays.y)
    if batch_size is None:
        batch_size = batch_size_of(data)
    check_number("batch_size", batch_size, low=1, integer=True)
    plan = FoldPlan(
        build_fn,
        batch_size,
        seed,
        _checked_fine_tune_kwargs(fine_tune_kwargs, seed),
        folds,
    )
    results = []
    split = splitter(folds, stratified, repeats, seed)
    for index, (train_idx, val_idx) in enumerate(split.split(arrays.x, arrays.y)):
        args = (plan, arrays.take(train_idx), arrays.take(val_idx), index)
        if isolate:
            from joblib.externals import loky

            with loky.ProcessPoolExecutor(max_workers=1) as executor:
                fold = executor.submit(_run_fold, *args).result()
        else:
            fold = _run_fold(*args)
        results.append(fold)
        if verbose:
            scores = ", ".join(f"{k}={v:.4f}" for k, v in fold.metrics.items())
            print(f"Fold {fold.fold}: {scores} ({fold.seconds:.1f}s)")
    return _summary(results)
