"""Issue 8: why MiniLM's memory grows from fold to fold, with plain keras-hub.

Each mode runs ROUNDS rounds in its own process: load the MiniLM preset with
plain keras-hub (`keras_hub.models.TextClassifier.from_preset`, no
kerastune_ft code), optionally freeze layers, `fit` one epoch on 64
amazon_cells sentences, delete the model, `keras.backend.clear_session()`,
`gc.collect()`; then record resident memory and how many TensorFlow graph
operations are still alive.

  trainable   every layer trains (keras-hub's default)
  token_only  only `token_embedding` frozen
  embeddings  the four weighted embedding layers frozen (token, position,
              segment, layer norm): what `freeze="embeddings"`, the
              kerastune_ft text default, does
  kft         `kft.build_text_classifier("minilm-l6", 2)` (for comparison)

    python benchmarks/text_memory_leak.py
    ROUNDS=3 python benchmarks/text_memory_leak.py embeddings trainable
"""

import gc
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import load_uci, print_result, spawn, write_section  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", 4))
MODES = ("trainable", "token_only", "embeddings", "kft")
EMBEDDING_LAYERS = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_layer_norm",
)


def child(mode):
    import keras
    import keras_hub
    import psutil

    import kerastune_ft as kft

    keras.utils.set_random_seed(0)
    texts, labels = load_uci("amazon_cells").examples["train"]
    texts, labels = list(texts)[:64], labels[:64]
    preset = str(kft.backbones.text.resolve_text_backbone("minilm-l6"))
    rows = []
    for _ in range(ROUNDS):
        if mode == "kft":
            model = kft.build_text_classifier("minilm-l6", 2, sequence_length=40)
        else:
            model = keras_hub.models.TextClassifier.from_preset(preset, num_classes=2)
            model.preprocessor.sequence_length = 40
            frozen = {
                "token_only": EMBEDDING_LAYERS[:1],
                "embeddings": EMBEDDING_LAYERS,
            }
            for name in frozen.get(mode, ()):
                model.backbone.get_layer(name).trainable = False
            model.compile(
                optimizer=keras.optimizers.AdamW(5e-5),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        model.fit(texts, labels, batch_size=32, epochs=1, verbose=0)
        del model
        keras.backend.clear_session()
        gc.collect()
        operations = sum(1 for o in gc.get_objects() if type(o).__name__ == "Operation")
        rss = psutil.Process().memory_info().rss / 2**20
        rows.append({"rss_mb": round(rss), "graph_operations": operations})
    print_result({"mode": mode, "rounds": rows})


def main(modes):
    results = {}
    for mode in modes:
        results[mode] = spawn(__file__, mode)
        print(f"{mode}: {json.dumps(results[mode])}", flush=True)
    lines = [
        "| mode | RSS MiB after each round | TF graph operations alive after each "
        "round |",
        "| --- | --- | --- |",
    ]
    for mode, result in results.items():
        rounds = result["rounds"]
        lines.append(
            f"| {mode} | {', '.join(str(r['rss_mb']) for r in rounds)} | "
            f"{', '.join(str(r['graph_operations']) for r in rounds)} |"
        )
    table = "\n".join(lines)
    print(table)
    command = "python benchmarks/text_memory_leak.py " + " ".join(modes)
    write_section("text_memory_leak (issue 8)", command.strip(), table)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        main(sys.argv[1:] or MODES)
