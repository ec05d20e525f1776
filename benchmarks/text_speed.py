"""Issue 5, benchmark 3: MiniLM on UCI amazon_cells, kerastune_ft vs keras-hub.

    python benchmarks/text_speed.py            # both, back to back
    python benchmarks/text_speed.py --record   # and write RESULTS.md

Baseline, the keras-hub way: `keras_hub.models.BertTextClassifier.from_preset`
on the same MiniLM folder with its default preprocessor (its saved sequence
length), AdamW 2e-5, batch 16, 3 epochs, validation every epoch.
kerastune_ft: `kft.build_text_classifier("minilm-l6", 2, train_texts=...)` and
`kft.fine_tune(model, train, val, seed=0)`, all defaults. Both use the same
seeded, stratified 800/200 split from `kft.data.load_texts`, run in their own
process, back to back; wall time includes building the model.
"""

import sys
import time

from _common import load_uci, print_result, spawn, write_section

SEED = 0
BASELINE_EPOCHS = 3


def run_baseline():
    import keras
    import keras_hub
    import tensorflow as tf

    from kerastune_ft.backbones.text import resolve_text_backbone

    keras.utils.set_random_seed(SEED)
    start = time.perf_counter()
    data = load_uci("amazon_cells", val_split=0.2, seed=SEED)
    (x_train, y_train), (x_val, y_val) = data.examples["train"], data.examples["val"]
    train = (
        tf.data.Dataset.from_tensor_slices((list(x_train), y_train))
        .shuffle(len(y_train), seed=SEED)
        .batch(16)
    )
    val = tf.data.Dataset.from_tensor_slices((list(x_val), y_val)).batch(16)
    classifier = keras_hub.models.BertTextClassifier.from_preset(
        resolve_text_backbone("minilm-l6"), num_classes=2
    )
    classifier.compile(
        optimizer=keras.optimizers.AdamW(2e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = classifier.fit(
        train, validation_data=val, epochs=BASELINE_EPOCHS, verbose=0
    )
    return {
        "seconds": time.perf_counter() - start,
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "epochs": BASELINE_EPOCHS,
        "sequence_length": int(classifier.preprocessor.sequence_length),
        "epoch_val_accuracy": [float(v) for v in history.history["val_accuracy"]],
    }


def run_kft():
    import keras

    import kerastune_ft as kft

    keras.utils.set_random_seed(SEED)
    start = time.perf_counter()
    data = load_uci("amazon_cells", val_split=0.2, seed=SEED)
    model = kft.build_text_classifier(
        "minilm-l6", 2, train_texts=list(data.examples["train"][0])
    )
    result = kft.fine_tune(model, data.train, data.val, seed=SEED, verbose=0)
    accuracy = model.evaluate(data.val, verbose=0, return_dict=True)["accuracy"]
    return {
        "seconds": time.perf_counter() - start,
        "val_accuracy": float(accuracy),
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "sequence_length": int(model.preprocessor.sequence_length),
        "cached": result.stages[0].cached,
    }


def main(argv):
    if argv[:1] == ["--child"]:
        print_result(run_baseline() if argv[1] == "baseline" else run_kft())
        return
    base = spawn(__file__, "baseline")
    ours = spawn(__file__, "kft")
    lines = [
        "| impl | wall s | ratio | speed-up | val acc | epochs | sequence length "
        "| peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for impl, r in (("keras-hub baseline", base), ("kerastune_ft", ours)):
        ratio = r["seconds"] / base["seconds"]
        lines.append(
            f"| {impl} | {r['seconds']:.1f} | {ratio:.3f} | {1 / ratio:.1f}x | "
            f"{r['val_accuracy']:.4f} | {r['epochs']} | {r['sequence_length']} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    print("baseline per-epoch val accuracy:", base["epoch_val_accuracy"])
    print("kerastune_ft best epoch:", ours["best_epoch"], "cached:", ours["cached"])
    if "--record" in argv:
        speedup = base["seconds"] / ours["seconds"]
        body = (
            __doc__.split("\n\n", 2)[2]
            + "\n"
            + table
            + f"\n\nSpeed-up {speedup:.1f}x (goal >= 5x); accuracy "
            f"{ours['val_accuracy']:.4f} vs {base['val_accuracy']:.4f} (goal: equal "
            f"or better). Baseline val accuracy per epoch: "
            f"{', '.join(f'{v:.3f}' for v in base['epoch_val_accuracy'])}.\n"
        )
        write_section(
            "text_speed (issue 5, benchmark 3)",
            "python benchmarks/text_speed.py --record",
            body,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
