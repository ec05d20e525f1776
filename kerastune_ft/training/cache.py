"""The cached-feature path: run `model.backbone` once, train `model.head`.

A transfer classifier (see `docs/architecture.md`) exposes
`model.feature_extractor(augment=...)`, a model from its (preprocessed)
inputs to the head's input, and `model.head`. When the backbone has no
trainable weights, its output for an example never changes: it is computed
once and only the head trains, on the cached tensors. With an augmentation
layer, the feature extractor runs a few times with augmentation on
(`augmented_views`), and each epoch draws from those views.

`FeatureCache` shares those tensors between `fine_tune` calls.
"""

import dataclasses
import hashlib
import json
import math
import weakref

import keras
import numpy as np

from kerastune_ft import distribute
from kerastune_ft.data.batches import (
    ArrayBatches,
    batch_size_of,
    is_tf_dataset,
    iter_numpy,
    num_batches,
)

__all__ = [
    "CachedFeatures",
    "FeatureCache",
    "affordable_views",
    "as_dataset",
    "can_cache",
    "caching_supported",
    "check_feature_caching",
    "is_transfer_classifier",
    "materialize",
    "views_dataset",
]

# Augmented views are held in memory; past this they are cut down.
VIEWS_MEMORY_BYTES = 1 << 30


def is_transfer_classifier(model):
    """Whether `model` follows the transfer classifier contract.

    Args:
        model: any `keras.Model`.

    Returns:
        `True` when it has `.backbone` and `.head` models and a
        `feature_extractor` method (`kft.build_image_classifier`,
        `kft.build_text_classifier`).
    """
    return (
        isinstance(getattr(model, "backbone", None), keras.Model)
        and isinstance(getattr(model, "head", None), keras.Model)
        and callable(getattr(model, "feature_extractor", None))
    )


def can_cache(model):
    """Whether the backbone's outputs can be cached: a transfer classifier
    whose backbone has no trainable weights."""
    return is_transfer_classifier(model) and not model.backbone.trainable_weights


@dataclasses.dataclass
class CachedFeatures:
    """Feature vectors of a dataset and their labels.

    Attributes:
        x: the features, `(examples, features)` (views concatenated).
        y: the labels, in the same order.
        batch_size: the batch size of the dataset they came from.
    """

    x: np.ndarray
    y: np.ndarray
    batch_size: int


def _runner(features, training, rows):
    """`x -> features(x, training=training)` as NumPy, compiled per backend.

    TensorFlow: a `tf.function`. JAX: a jitted `stateless_call` whose
    non-trainable state (augmentation seeds) threads through the calls and
    is written back by the returned `done()`, and every batch is padded to
    at least `rows` (the dataset's batch size). Other backends: the eager call.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def run(x):
            return features(x, training=training)

        def run_numpy(x):  # NumPy batches (a PyDataset) become tensors first
            return run(tf.nest.map_structure(tf.convert_to_tensor, x)).numpy()

        return run_numpy, (lambda: None)
    if backend == "jax":
        compiled = _jax_step(features, training)
        compiled.rows = max(compiled.rows, rows)
        trainable = [v.value for v in features.trainable_variables]
        state = [v.value for v in features.non_trainable_variables]

        def run(x):
            nonlocal state
            # Another batch size would compile the pass again: smaller batches
            # (a last batch, a small validation set) are padded to the largest
            # batch size this pass has seen.
            n = len(x) if isinstance(x, np.ndarray) else None
            if n is not None:
                compiled.rows = max(compiled.rows, n)
                if n < compiled.rows:
                    pad = np.zeros((compiled.rows - n,) + x.shape[1:], x.dtype)
                    x = np.concatenate([x, pad])
            outputs, state = compiled.step(trainable, state, x)
            return np.asarray(outputs)[:n]

        def done():
            for variable, value in zip(
                features.non_trainable_variables, state, strict=True
            ):
                variable.assign(value)

        return run, done
    return (lambda x: keras.ops.convert_to_numpy(features(x, training=training))), (
        lambda: None
    )


# One compiled JAX pass per feature extractor and mode, reused by every
# `materialize` call on it (train, val, and later runs on the same model).
_JAX_STEPS = weakref.WeakKeyDictionary()


@dataclasses.dataclass
class _CompiledPass:
    """A jitted feature pass and the batch size it pads its inputs to."""

    step: object
    rows: int = 0


def _jax_step(features, training):
    import jax

    steps = _JAX_STEPS.setdefault(features, {})
    if training not in steps:
        extractor = weakref.ref(features)  # the cache must not keep it alive

        def step(trainable, state, x):
            return extractor().stateless_call(trainable, state, x, training=training)

        steps[training] = _CompiledPass(jax.jit(step))
    return steps[training]


def materialize(features, dataset, views=0):
    """Runs `features` over `dataset`.

    Args:
        features: the feature extractor.
        dataset: `(inputs, labels)` batches, already preprocessed: a
            `tf.data.Dataset` or a `keras.utils.PyDataset`.
        views: `0` for one pass in inference mode; `n > 0` for `n` passes in
            training mode (augmentation on), concatenated: a training dataset
            may reshuffle between passes, so each pass keeps its own labels.

    Returns:
        A `CachedFeatures`.
    """
    outputs, labels, batch_size = [], [], None
    run, done = _runner(features, bool(views), batch_size_of(dataset))
    # tf.data batches go to the tf.function as they are (no copy to NumPy).
    native = is_tf_dataset(dataset) and keras.backend.backend() == "tensorflow"
    for view in range(max(1, views)):
        if view and not is_tf_dataset(dataset):
            dataset.on_epoch_end()  # a PyDataset reshuffles between passes
        for x, y in dataset if native else iter_numpy(dataset):
            if batch_size is None:
                batch_size = int(np.shape(y)[0])
            # float32 also under mixed precision (bfloat16 features).
            outputs.append(np.asarray(run(x), dtype="float32"))
            labels.append(np.asarray(y))
    done()
    if not outputs:
        raise ValueError("The dataset is empty: there is nothing to train on.")
    return CachedFeatures(np.concatenate(outputs), np.concatenate(labels), batch_size)


def as_dataset(cached, shuffle, seed):
    """Cached features as batches, reshuffled each epoch when `shuffle`.

    A `tf.data.Dataset` on the TensorFlow backend (the fastest head epochs
    there), else a `kft.data.ArrayBatches`.
    """
    if keras.backend.backend() != "tensorflow":
        return ArrayBatches(
            cached.x, cached.y, cached.batch_size, shuffle=shuffle, seed=seed
        )
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((cached.x, cached.y))
    if shuffle:
        dataset = dataset.shuffle(
            len(cached.y), seed=seed, reshuffle_each_iteration=True
        )
    return dataset.batch(cached.batch_size).prefetch(tf.data.AUTOTUNE)


class _ViewBatches(ArrayBatches):
    """An epoch of `per_epoch` examples drawn from all the views, reshuffled."""

    def __init__(self, cached, per_epoch, seed):
        self.per_epoch = per_epoch
        super().__init__(cached.x, cached.y, cached.batch_size, shuffle=True, seed=seed)

    def _new_order(self):
        return super()._new_order()[: self.per_epoch]

    def __len__(self):
        return math.ceil(self.per_epoch / self.batch_size)


def views_dataset(cached, views, seed):
    """An epoch draws as many examples as one view holds, from all the views."""
    per_epoch = len(cached.y) // views
    if keras.backend.backend() != "tensorflow":
        return _ViewBatches(cached, per_epoch, seed)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((cached.x, cached.y))
    dataset = dataset.shuffle(len(cached.y), seed=seed, reshuffle_each_iteration=True)
    return dataset.take(per_epoch).batch(cached.batch_size).prefetch(tf.data.AUTOTUNE)


def affordable_views(features, train, requested):
    """How many augmented views of the training features fit the memory cap."""
    shape = features.outputs[0].shape[1:]
    if any(d is None for d in shape):
        return 0
    batches = num_batches(train)
    if batches is None:
        return 0
    batch = batch_size_of(train)
    per_view = batches * batch * math.prod(shape) * 4
    return int(min(requested, VIEWS_MEMORY_BYTES // max(1, per_view)))


def _layers(layer):
    # Every layer below `layer`, nested models included, in order.
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _layers(sub)


class FeatureCache:
    """Frozen-backbone features shared by several `kft.fine_tune` calls.

    A search or a set of repeated runs often trains many heads on the same
    frozen backbone and the same data; running the backbone over the data
    is then the largest cost. Pass one `FeatureCache` to each `fine_tune`
    call: features are keyed by the feature extractor (its layer
    configurations, without names, and a checksum of its weights), by the
    dataset object, the number of augmented views and the seed, and
    computed once.

    The cache holds references to the datasets it was given (so that their
    identity stays valid) and the features in memory; `clear()` frees them.

    Attributes:
        hits: how many lookups found computed features.
        misses: how many computed them.

    Example:

    >>> import keras, numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> x = np.random.rand(16, 32, 32, 3).astype("float32") * 255
    >>> ds = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 2)).batch(8)
    >>> cache = kft.training.FeatureCache()
    >>> for dropout in (0.1, 0.3):
    ...     keras.utils.set_random_seed(0)  # the same backbone weights
    ...     model = kft.build_image_classifier(
    ...         "mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3),
    ...         dropout=dropout)
    ...     _ = kft.fine_tune(model, ds, ds, epochs=1, feature_cache=cache,
    ...                       verbose=0)
    >>> cache.misses, cache.hits  # `ds` is train and validation: computed once
    (1, 3)
    """

    def __init__(self):
        self._entries = {}
        self.hits = 0
        self.misses = 0

    def __len__(self):
        return len(self._entries)

    def clear(self):
        """Drops every cached tensor."""
        self._entries.clear()

    def fingerprint(self, features):
        """A key for a feature extractor: its layers' configs and its weights.

        Args:
            features: a `keras.Model`.

        Returns:
            A hex string.
        """
        digest = hashlib.sha256()
        # Names are left out: Keras numbers them anew each time a model is built.
        for layer in _layers(features):
            config = {}
            if not isinstance(layer, keras.Model):
                try:
                    config = dict(layer.get_config())
                except NotImplementedError:
                    pass
            config.pop("name", None)
            digest.update(type(layer).__name__.encode())
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        for weight in features.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
        return digest.hexdigest()

    def get_or_compute(self, key, dataset, compute):
        """The value stored under `key` for `dataset`, or `compute()`'s, stored.

        Args:
            key: a hashable key.
            dataset: the dataset the value belongs to (held, compared by
                identity).
            compute: a function returning the value.

        Returns:
            The value.
        """
        entry = self._entries.get(key)
        if entry is not None and entry[0] is dataset:
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = compute()
        self._entries[key] = (dataset, value)
        return value


# Strategies under which fine_tune's feature caching (a local pass of the
# frozen part, then the head trained on the cached tensors) is tested; see
# tests/training/test_training_distribute.py.
_CACHING_STRATEGIES = (
    "_DefaultDistributionStrategy",
    "OneDeviceStrategy",
    "MirroredStrategy",
    "MultiWorkerMirroredStrategy",
    "CollectiveAllReduceStrategy",
    # keras.distribution on JAX: the head trains data-parallel on the cached
    # features like any model.
    "DataParallel",
)


def caching_supported(strategy=None):
    """Whether `kft.fine_tune` can cache frozen features under `strategy`.

    Args:
        strategy: `None` (the strategy in scope) or a strategy or name.
            Defaults to `None`.

    Returns:
        `(supported, reason)`: a bool and, when unsupported, why.
    """
    strategy = distribute.current_strategy(strategy)
    if strategy is None:  # TensorFlow's default strategy, or no distribution
        return True, ""
    name = type(strategy).__name__
    if any(name.startswith(known) for known in _CACHING_STRATEGIES):
        return True, ""
    return False, (
        f"feature caching is not supported under {name} (it is tested with the "
        "default, mirrored and multi-worker mirrored strategies)"
    )


def check_feature_caching(strategy, cache_features, say=None):
    """Resolves `fine_tune`'s `cache_features` under `strategy`.

    Args:
        strategy: a strategy or `None`.
        cache_features: `"auto"`, `True` or `False`.
        say: a print-like function for the reason caching is turned off.
            Defaults to `None` (silent).

    Returns:
        `cache_features`, or `False` when `"auto"` meets an unsupported
        strategy.

    Raises:
        ValueError: `cache_features=True` under an unsupported strategy.
    """
    if cache_features is False:
        return False
    supported, reason = caching_supported(strategy)
    if supported:
        return cache_features
    if cache_features is True:
        raise ValueError(
            f"`cache_features=True` but {reason}. Use cache_features='auto' "
            "(turns it off under this strategy) or False."
        )
    if say is not None:
        say(f"cache_features='auto': off, {reason}.")
    return False
