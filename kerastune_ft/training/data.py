"""Data preparation of a stage: what `fit` trains on, as a `PreparedData`.

With a transfer classifier whose backbone is frozen, the training and
validation data become cached feature vectors and the model to fit becomes
`model.head` (see `kerastune_ft.training.cache`). Otherwise the data go to
the full model as they came. `balanced_class_weight` is the package's one
formula for balanced class weights.
"""

import dataclasses
import time

import keras
import numpy as np

from kerastune_ft import freezing
from kerastune_ft._quiet import import_tensorflow
from kerastune_ft.builders.model import random_layers
from kerastune_ft.data.batches import iter_numpy, num_batches
from kerastune_ft.training import cache as caching
from kerastune_ft.training.callbacks import CachedValidation
from kerastune_ft.training.checks import check_labels

__all__ = [
    "PreparedData",
    "labels_of",
    "prepare_data",
]


@dataclasses.dataclass
class PreparedData:
    """What one stage's `fit` trains on.

    Attributes:
        model: the model `fit` trains: `model.head` on cached features, else
            the full model.
        train: the training batches (features or raw inputs).
        validation: the validation batches, or `None` (also when validation
            metrics come from `callbacks`).
        cached: what was cached, for the `StageReport` (`"train+val"`,
            `"train (8 views)+val"`, `"val"`, `"none"`, ...).
        callbacks: callbacks that add metrics (cached validation of an
            augmented model), run before the others.
    """

    model: keras.Model
    train: object
    validation: object
    cached: str
    callbacks: list = dataclasses.field(default_factory=list)

    @property
    def steps_per_epoch(self):
        """Batches per epoch of `train`, or `None` when unknown."""
        return num_batches(self.train)


def labels_of(dataset):
    """Every label of an `(inputs, labels)` dataset, flattened, as one array."""
    return np.concatenate([y.reshape(-1) for _, y, *_ in iter_numpy(dataset)])


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """How a run caches features.

    Attributes:
        cache_features: `"auto"`, `True` or `False`.
        augmented_views: augmented views to cache with an augmentation layer.
        seed: the run's seed (shuffling of cached features), or `None`.
        feature_cache: a `FeatureCache` shared across runs, or `None`.
    """

    cache_features: object = "auto"
    augmented_views: int = 8
    seed: int | None = None
    feature_cache: caching.FeatureCache | None = None


def prepare_data(model, train, validation_data, settings, say):
    """The data and model one stage's `fit` runs on.

    Args:
        model: the model being fine-tuned.
        train: the training dataset.
        validation_data: the validation dataset or `None`.
        settings: a `CacheSettings`.
        say: a print-like function for what was cached.

    Returns:
        A `PreparedData`.

    Raises:
        ValueError: `cache_features=True` where caching is impossible.
    """
    plain = PreparedData(model, train, validation_data, "none")
    if settings.cache_features is False:
        return plain
    if not caching.can_cache(model):
        if settings.cache_features is True:
            raise ValueError(
                "`cache_features=True` but nothing can be cached: caching needs a "
                "transfer classifier (kft.build_image_classifier / "
                "kft.build_text_classifier) whose backbone has no trainable "
                "weights. Use cache_features='auto'."
            )
        return plain
    # Augmentation, and Dropout inside the backbone (it acts during fit):
    # the one answer to "which layers are random" is `random_layers`.
    random_below = bool(random_layers(model))
    if (
        random_below
        and settings.cache_features is True
        and not settings.augmented_views
    ):
        raise ValueError(
            "`cache_features=True` but random augmentation runs below the head, so "
            "training features change every epoch, and `augmented_views=0`. Use "
            "augmented_views > 0 (cache several augmented views) or "
            "cache_features='auto' (caches validation features only)."
        )
    return _cached(model, train, validation_data, settings, say, random_below)


def _cached(model, train, validation_data, settings, say, random_below):
    started = time.perf_counter()
    store = settings.feature_cache
    if store is None:
        store = caching.FeatureCache()
    # keras-hub text tasks preprocess inside fit(); the feature extractor
    # takes preprocessed inputs, so the cached passes apply it here.
    text = freezing.is_text_model(model)

    extractors = {}

    def extractor(augment):
        # One extractor per flag: on JAX its compiled pass is reused for
        # train and val (see `caching.materialize`).
        if augment not in extractors:
            extractors[augment] = model.feature_extractor(augment=augment)
        return extractors[augment]

    def materialized(dataset, views=0):
        features = extractor(bool(views))
        key = (store.fingerprint(features), id(dataset), views, settings.seed)
        if text:
            preprocessor = model.preprocessor
            tf = import_tensorflow("Text models")
            source = dataset.map(
                lambda x, y: (preprocessor(x), y), num_parallel_calls=tf.data.AUTOTUNE
            )
        else:
            source = dataset
        return store.get_or_compute(
            key, dataset, lambda: caching.materialize(features, source, views=views)
        )

    val_cached = val = None
    if validation_data is not None:
        val_cached = materialized(validation_data)
        val = caching.as_dataset(val_cached, shuffle=False, seed=settings.seed)
    views = 0
    if random_below and settings.augmented_views:
        views = caching.affordable_views(
            extractor(False), train, settings.augmented_views
        )
        if views < 2:
            say(
                "Augmented views of the training features would not fit in memory; "
                "training data runs through the full model."
            )
            views = 0
    if random_below and not views:
        return _validation_only(model, train, val, val_cached, started, say)
    train_cached = materialized(train, views=views)
    if views:
        fit_train = caching.views_dataset(train_cached, views, settings.seed)
        what = f"train ({views} augmented views)"
    else:
        fit_train = caching.as_dataset(train_cached, shuffle=True, seed=settings.seed)
        what = "train"
    check_labels(model, train_cached.y)
    say(
        f"Cached frozen features: {what} {tuple(train_cached.x.shape)}"
        + (f", val {tuple(val_cached.x.shape)}" if val is not None else "")
        + f" in {time.perf_counter() - started:.1f}s"
    )
    cached = f"train ({views} views)" if views else "train"
    cached += "+val" if val is not None else ""
    return PreparedData(model.head, fit_train, val, cached)


def _validation_only(model, train, val, val_cached, started, say):
    if val is None:
        return PreparedData(model, train, None, "none")
    say(
        f"Cached validation features {tuple(val_cached.x.shape)} in "
        f"{time.perf_counter() - started:.1f}s (training data is augmented, "
        "so it runs through the full model)."
    )
    return PreparedData(model, train, None, "val", [CachedValidation(model.head, val)])
