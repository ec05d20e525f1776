"""Issue 8: a Bayesian search on flowers, with and without the feature cache.

MobileNetV2-0.35 (ImageNet weights from ../shared), 160 px, 300 training
images (60 per class, seeded), validated on the full flowers val split (736
images). Three runs, each in its own subprocess (own memory, own tracing):

  default  the default recipe: `kft.build_image_classifier` defaults and
           `kft.fine_tune(epochs=EPOCHS)` defaults
  cache    `kft.tune(algorithm="bayesian", max_trials=TRIALS)` sharing one
           `kft.training.FeatureCache` across trials (feature_cache="auto")
  nocache  the same search (same seed) with feature_cache=None

The search selects on validation accuracy, so the best trial's validation
score is optimistic. A separate test set (400 other flowers training
images, 80 per class) scores the default model and the search's best model
without that bias.

    python benchmarks/tuning_search.py              # all three runs
    python benchmarks/tuning_search.py cache        # some of them
    TRIALS=8 EPOCHS=20 python benchmarks/tuning_search.py
"""

import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import SHARED  # noqa: E402

FLOWERS = SHARED / "datasets" / "flowers"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_0.35_224_no_top_imagenet.weights.h5"
SIZE = (160, 160)
TRAIN_PER_CLASS = 60
TEST_PER_CLASS = 80
TRIALS = int(os.environ.get("TRIALS", 8))
EPOCHS = int(os.environ.get("EPOCHS", 20))
SEED = 0
RUNS = ("default", "cache", "nocache")
# Frozen-backbone configurations (the cacheable part of the space): head
# regularization, learning rate, label smoothing, batch size. Augmentation is
# left out to keep the run short: each augmentation preset costs 8 augmented
# views of the training set (~2 min on a loaded 2-core machine) per batch size.
SPACE = {
    "dropout": (0.0, 0.6),
    "l1": 0.0,
    "l2": [0.0, 1e-4, 1e-3, 1e-2],
    "learning_rate": (1e-4, 1e-2, "log"),
    # Moot with unfreeze=0; searched anyway so that the 'cache' run of
    # 2026-11-22 (made before tune dropped it) and 'nocache' share one space.
    "fine_tune_learning_rate": (1e-6, 1e-4, "log"),
    "label_smoothing": [0.0, 0.1],
    "augmentation": "none",
    "batch_size": [16, 32],
    "freeze": "all",
    "unfreeze": 0,
}


def _subset_dir():
    """train (60/class), val (all), test (80 other train images/class)."""
    root = pathlib.Path(tempfile.gettempdir()) / "kft_tuning_flowers"
    if root.exists():
        return root
    rng = random.Random(SEED)
    for class_dir in sorted((FLOWERS / "train").iterdir()):
        files = sorted(class_dir.iterdir())
        rng.shuffle(files)
        chosen = {
            "train": files[:TRAIN_PER_CLASS],
            "test": files[TRAIN_PER_CLASS : TRAIN_PER_CLASS + TEST_PER_CLASS],
            "val": sorted((FLOWERS / "val" / class_dir.name).iterdir()),
        }
        for split, paths in chosen.items():
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for path in paths:
                (target / path.name).symlink_to(path)
    return root


def _builder():
    import functools

    import kerastune_ft as kft

    return functools.partial(
        kft.build_image_classifier,
        "mobilenet_v2",
        5,
        weights=str(WEIGHTS),
        input_shape=(*SIZE, 3),
        backbone_kwargs={"alpha": 0.35},
    )


def run(mode):
    import keras

    import kerastune_ft as kft
    from kerastune_ft import tuning

    keras.utils.set_random_seed(SEED)
    data = kft.data.load_images(str(_subset_dir()), image_size=SIZE, seed=SEED)
    start = time.perf_counter()
    if mode == "default":
        model = _builder()()
        result = kft.fine_tune(
            model, data.train, data.val, epochs=EPOCHS, seed=SEED, verbose=0
        )
        out = {"epochs": result.epochs_run}
    else:
        cache = kft.training.FeatureCache() if mode == "cache" else None
        search = tuning.tune(
            _builder(),
            data,
            algorithm="bayesian",
            max_trials=TRIALS,
            objective="val_accuracy",
            directory=tempfile.mkdtemp(prefix=f"kft_tune_{mode}_"),
            seed=SEED,
            space=SPACE,
            fine_tune_kwargs={"epochs": EPOCHS, "patience": 5},
            feature_cache=cache,
        )
        model = search.best_model
        out = {
            "best_hyperparameters": search.best_values,
            "best_trial_val_accuracy": search.best_score,
            "trials": [
                {k: v for k, v in row.items() if k not in ("status",)}
                for row in search.trials
            ],
            "importance": search.importance(),
            "cache_hits": getattr(cache, "hits", None),
            "cache_misses": getattr(cache, "misses", None),
        }
        search.plot().savefig(
            pathlib.Path(tempfile.gettempdir()) / f"kft_tuning_trials_{mode}.png"
        )
    seconds = time.perf_counter() - start
    out.update(
        {
            "mode": mode,
            "seconds": round(seconds, 1),
            "val_accuracy": float(
                model.evaluate(data.val, verbose=0, return_dict=True)["accuracy"]
            ),
            "test_accuracy": float(
                model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
            ),
            "train_images": sum(data.counts["train"].values()),
            "val_images": sum(data.counts["val"].values()),
            "test_images": sum(data.counts["test"].values()),
        }
    )
    print("RESULT " + json.dumps(out), flush=True)


def main(modes):
    results = {}
    for mode in modes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", mode],
            capture_output=True,
            text=True,
        )
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stderr[-3000:])
            raise SystemExit(f"{mode} failed")
        results[mode] = json.loads(lines[-1][len("RESULT ") :])
        print(f"{mode}: {json.dumps(results[mode])}", flush=True)
    print()
    print("| run | seconds | val accuracy | test accuracy |")
    print("| --- | ---: | ---: | ---: |")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['seconds']:.1f} | {r['val_accuracy']:.4f} | "
            f"{r['test_accuracy']:.4f} |"
        )
    if "cache" in results and "nocache" in results:
        ratio = results["cache"]["seconds"] / results["nocache"]["seconds"]
        print(f"\nsearch wall time with cache / without: {ratio:.3f}")
    out = pathlib.Path(tempfile.gettempdir()) / "kft_tuning_search.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"details: {out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        run(sys.argv[2])
    else:
        main(sys.argv[1:] or RUNS)
