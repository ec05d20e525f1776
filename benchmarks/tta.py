"""Test-time augmentation on flowers at 20 photos per class: plain vs tta=2, 4, 8.

    python benchmarks/tta.py            # seeds 0 1 2
    python benchmarks/tta.py 0          # some seeds

Each seed runs in its own subprocess: the few-shot split of
`benchmarks/image_speed.py fewshot` (the first 20 files of each class of
flowers/train, all 736 flowers/val photos as validation), the default recipe
(`kft.build_image_classifier("mobilenet_v2", 5)` with the ImageNet
MobileNetV2-0.35 weights from ../shared at 160 px, `kft.fine_tune(model,
train, val, seed=seed)`: its own epochs, early stopping on the validation
loss), then `kft.evaluate(model, val, tta=...)` for `tta` in None, 2, 4, 8,
each timed after one warm-up prediction. The views are
`kft.evaluation.tta.VIEWS` in order: identity, flip, center_crop,
flip_center_crop, then corner crops (87.5% of each side, resized back).
The validation photos also chose the epoch (early stopping), as in
`image_speed.py fewshot`, the same for every `tta`.
"""

import statistics
import sys
import time

from _common import print_result, spawn
from image_speed import FLOWERS, SIZE, WEIGHTS, _fewshot_dir

TTAS = (None, 2, 4, 8)


def run(seed):
    import os

    import keras
    import numpy as np

    import kerastune_ft as kft

    keras.utils.set_random_seed(seed)
    train = kft.data.load_images(
        str(_fewshot_dir(os.environ.get("TMPDIR", "/tmp"))),
        image_size=SIZE,
        val_split=0.0,
        seed=seed,
    )
    val = kft.data.load_images(str(FLOWERS / "val"), image_size=SIZE, val_split=0.0)
    model = kft.build_image_classifier(
        "mobilenet_v2",
        5,
        weights=str(WEIGHTS),
        backbone_kwargs={"alpha": 0.35},
        input_shape=SIZE + (3,),
    )
    start = time.perf_counter()
    result = kft.fine_tune(model, train.train, val.train, seed=seed, verbose=0)
    fit_seconds = time.perf_counter() - start
    # Warm-up: predict's first call traces the model.
    kft.evaluation.predict(model, np.zeros((2, *SIZE, 3), "float32"), tta=2)
    rows = {}
    for tta in TTAS:
        mark = time.perf_counter()
        ev = kft.evaluate(model, val.train, tta=tta)
        r = ev.results["test"]
        rows[str(tta)] = {
            "seconds": time.perf_counter() - mark,
            "accuracy": r["accuracy"],
            "f1_macro": r["f1_macro"],
            "loss": r["loss"],
            "ece": r["ece"],
            "n": r["n"],
        }
    return {
        "seed": seed,
        "epochs": result.epochs_run,
        "fit_seconds": fit_seconds,
        "rows": rows,
        "load_average": os.getloadavg()[0],
    }


def _table(results):
    lines = [
        "| tta | views | accuracy mean (per seed) | delta vs plain | macro-F1 mean | "
        "loss mean | ECE mean | evaluate s mean | time x plain |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    plain_acc = statistics.mean(r["rows"]["None"]["accuracy"] for r in results)
    plain_s = statistics.mean(r["rows"]["None"]["seconds"] for r in results)
    for tta in TTAS:
        rows = [r["rows"][str(tta)] for r in results]
        acc = [row["accuracy"] for row in rows]
        seconds = statistics.mean(row["seconds"] for row in rows)
        lines.append(
            f"| {tta} | {tta or 1} | {statistics.mean(acc):.4f} "
            f"({' / '.join(f'{a:.4f}' for a in acc)}) | "
            f"{statistics.mean(acc) - plain_acc:+.4f} | "
            f"{statistics.mean(row['f1_macro'] for row in rows):.4f} | "
            f"{statistics.mean(row['loss'] for row in rows):.4f} | "
            f"{statistics.mean(row['ece'] for row in rows):.4f} | "
            f"{seconds:.1f} | {seconds / plain_s:.2f} |"
        )
    return "\n".join(lines)


def main(argv):
    if argv[:1] == ["--child"]:
        print_result(run(int(argv[1])))
        return
    seeds = [int(a) for a in argv] or [0, 1, 2]
    results = []
    for seed in seeds:
        r = spawn(__file__, str(seed))
        results.append(r)
        print(
            f"seed {seed}: {r['epochs']} epochs, fit {r['fit_seconds']:.1f}s, "
            f"load average {r['load_average']:.2f}, "
            + ", ".join(
                f"tta={k}: acc {v['accuracy']:.4f} in {v['seconds']:.1f}s"
                for k, v in r["rows"].items()
            ),
            flush=True,
        )
    print()
    print(_table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
