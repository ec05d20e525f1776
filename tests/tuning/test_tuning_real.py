"""Search and cross-validation with real ImageNet weights on real flowers (slow).

The claims they prove, reduced in size (full-size runs: benchmarks/
tuning_search.py and benchmarks/cross_validation.py):
- a search over frozen-backbone configurations computes the backbone
  features once and reuses them in every later trial;
- cross-validating a MobileNetV2-0.35 flowers recipe over 5 folds does not
  grow memory: peak RSS after fold 5 is within 10% of after fold 2;
- both find real signal (accuracy far above the 20% of chance).
"""

import functools

import keras
import numpy as np
import pytest

import kerastune_ft as kft
from kerastune_ft import tuning

MOBILENET_FILE = "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"
SIZE = 96
PER_CLASS = 16


@pytest.fixture(scope="module")
def flowers_arrays(shared_dir):
    """PER_CLASS training and 10 validation photos per class, as arrays."""
    root = shared_dir / "datasets" / "flowers"

    def load(split, count):
        images, labels = [], []
        for label, class_dir in enumerate(sorted((root / split).iterdir())):
            for path in sorted(class_dir.iterdir())[:count]:
                image = keras.utils.load_img(path, target_size=(SIZE, SIZE))
                images.append(keras.utils.img_to_array(image))
                labels.append(label)
        return np.stack(images).astype("float32"), np.array(labels, dtype="int32")

    return load("train", PER_CLASS), load("val", 10)


def _builder(shared_dir):
    return functools.partial(
        kft.build_image_classifier,
        "mobilenet_v2",
        5,
        weights=str(shared_dir / "weights" / MOBILENET_FILE),
        input_shape=(SIZE, SIZE, 3),
        backbone_kwargs={"alpha": 0.35},
    )


@pytest.mark.slow
@pytest.mark.heavy(80)  # seconds, about: the longest start first
def test_cross_validation_memory_stays_flat(shared_dir, flowers_arrays):
    (x, y), _ = flowers_arrays
    cv = tuning.cross_validate(
        _builder(shared_dir),
        (x, y),
        folds=5,
        seed=0,
        batch_size=16,
        fine_tune_kwargs={"epochs": 3, "learning_rate": 5e-3, "early_stopping": False},
    )
    assert len(cv.folds) == 5
    peaks = [f.peak_rss_mb for f in cv.folds]
    print(f"peak RSS per fold (MiB): {peaks}; RSS: {[f.rss_mb for f in cv.folds]}")
    assert peaks[4] <= 1.10 * peaks[1], f"peak RSS per fold (MiB): {peaks}"
    current = [f.rss_mb for f in cv.folds]
    if current[0] is not None:  # psutil installed (a test dependency)
        assert current[4] <= 1.10 * current[1], f"RSS per fold (MiB): {current}"
    # Frozen ImageNet features separate the classes with 64 training images.
    assert cv.mean["accuracy"] > 0.5, cv


@pytest.mark.slow
def test_search_reuses_cached_features_across_trials(
    shared_dir, flowers_arrays, tmp_path
):
    import tensorflow as tf

    (x, y), (vx, vy) = flowers_arrays
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(80, seed=0).batch(16)
    val = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(16)
    cache = kft.training.FeatureCache()
    result = tuning.tune(
        _builder(shared_dir),
        train,
        val,
        algorithm="bayesian",
        max_trials=2,
        objective="val_accuracy",
        directory=str(tmp_path),
        seed=0,
        space={
            "dropout": (0.0, 0.5),
            "learning_rate": (3e-3, 1e-2, "log"),
            "l1": 0.0,
            "l2": [0.0, 1e-3],
            "label_smoothing": 0.0,
            "augmentation": "none",
            "freeze": "all",
            "unfreeze": 0,
            "batch_size": None,
        },
        fine_tune_kwargs={"epochs": 3},
        feature_cache=cache,
    )
    assert len(result.trials) == 2
    # Training and validation features were computed in the first trial only.
    assert (cache.misses, cache.hits) == (2, 2)
    assert result.best_score > 0.5
    accuracy = result.best_model.evaluate(val, verbose=0, return_dict=True)["accuracy"]
    assert accuracy == pytest.approx(result.best_score, abs=1e-6)
    assert result.plot().axes
