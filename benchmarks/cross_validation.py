"""Issue 8: 5-fold cross-validation of MiniLM on UCI amazon_cells.

The 1,000 amazon_cells sentences are split into 5 stratified folds (seeded);
each fold trains a fresh `kft.build_text_classifier("minilm-l6", 2)` for
EPOCHS epochs through `kft.fine_tune` (builder defaults: embeddings frozen,
AdamW 5e-5, cosine schedule) and is scored on its held-out fold. Early
stopping is off, so the held-out fold never influences training and the
mean +/- std is an unbiased estimate. Resident memory is recorded after
every fold (the Keras session is cleared between folds). With ISOLATE=1
every fold trains in its own subprocess (`cross_validate(isolate=True)`):
the RSS column is then the fold process's, and this process's RSS is printed
after each fold.

    python benchmarks/cross_validation.py
    FOLDS=5 EPOCHS=4 python benchmarks/cross_validation.py
    ISOLATE=1 FOLDS=5 EPOCHS=1 python benchmarks/cross_validation.py
"""

import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import load_uci  # noqa: E402

FOLDS = int(os.environ.get("FOLDS", 5))
EPOCHS = int(os.environ.get("EPOCHS", 4))
ISOLATE = os.environ.get("ISOLATE", "0") == "1"
SEED = 0


def main():
    import kerastune_ft as kft
    from kerastune_ft import tuning

    data = load_uci("amazon_cells", val_split=0.0, seed=SEED)
    texts = list(data.examples["train"][0])

    def build():
        return kft.build_text_classifier("minilm-l6", 2, train_texts=texts)

    start = time.perf_counter()
    cv = tuning.cross_validate(
        build,
        data,
        folds=FOLDS,
        seed=SEED,
        fine_tune_kwargs={"epochs": EPOCHS, "early_stopping": False},
        isolate=ISOLATE,
        verbose=1,
    )
    seconds = time.perf_counter() - start
    print()
    print(cv)
    print()
    print("| fold | accuracy | f1 | epochs | seconds | verdict | RSS MiB | peak MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    f1_key = next((k for k in cv.mean if "f1" in k), None)
    for f in cv.folds:
        f1 = f.metrics.get(f1_key, float("nan"))
        print(
            f"| {f.fold} | {f.metrics['accuracy']:.4f} | {f1:.4f} | {f.epochs_run} | "
            f"{f.seconds:.1f} | {f.verdict} | {f.rss_mb or 0:.0f} | "
            f"{f.peak_rss_mb or 0:.0f} |"
        )
    print()
    print(
        f"accuracy {cv.mean['accuracy']:.4f} +/- {cv.std['accuracy']:.4f} "
        f"({FOLDS} folds, {seconds:.0f} s, isolate={ISOLATE})"
    )
    current, peak = tuning.memory_usage_mb()
    print(f"this process after all folds: RSS {current:.0f} MiB, peak {peak:.0f} MiB")
    out = pathlib.Path(tempfile.gettempdir()) / "kft_cross_validation.json"
    out.write_text(json.dumps({**cv.to_dict(), "seconds": seconds}, indent=1))
    cv.plot().savefig(out.with_suffix(".png"))
    print(f"details: {out}")


if __name__ == "__main__":
    main()
