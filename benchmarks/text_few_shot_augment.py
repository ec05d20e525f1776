"""Does augmentation help MiniLM with 64 labeled sentences? 3 seeds.

Usage: NLTK_DATA=../shared/nltk_data python benchmarks/text_few_shot_augment.py

Train: 64 amazon_cells sentences (32 per class) drawn per seed from the 800
training sentences of a fixed stratified 80/20 split; validation: the fixed
200. Both arms run the same number of optimizer steps (40 at batch size 16):
without augmentation 10 epochs over 64 texts, with augmentation (copies=4)
2 epochs over the 320 originals + variants.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import SHARED, load_uci, write_section  # noqa: E402

os.environ.setdefault("NLTK_DATA", str(SHARED / "nltk_data"))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastune_ft as kft  # noqa: E402

SEEDS = (0, 1, 2)
COPIES = 4
BATCH = 16


def run(x_train, y_train, x_val, y_val, seed, augment):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = kft.build_text_classifier("minilm-l6", 2, train_texts=x_train)
    if augment:
        augmenter = kft.augment.TextAugmenter(("synonym", "swap", "delete"), p=0.15)
        data = kft.augment.augment_dataset(
            x_train,
            y_train,
            copies=COPIES,
            augmenter=augmenter,
            batch_size=BATCH,
            seed=seed,
        )
        epochs = 2
    else:
        data = (x_train, y_train)
        epochs = 10
    if isinstance(data, tuple):
        model.fit(*data, epochs=epochs, batch_size=BATCH, verbose=0)
    else:
        model.fit(data, epochs=epochs, verbose=0)
    return model.evaluate(x_val, y_val, batch_size=64, verbose=0, return_dict=True)[
        "accuracy"
    ]


def main():
    data = load_uci("amazon_cells", val_split=0.2, seed=0)
    texts, labels = data.examples["train"]
    x_val, y_val = list(data.examples["val"][0]), data.examples["val"][1]
    results = {False: [], True: []}
    start = time.time()
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        picked = np.concatenate(
            [rng.choice(np.flatnonzero(labels == c), 32, replace=False) for c in (0, 1)]
        )
        x_train, y_train = [texts[i] for i in picked], labels[picked]
        for augment in (False, True):
            accuracy = run(x_train, y_train, x_val, y_val, seed, augment)
            results[augment].append(accuracy)
            print(
                f"seed {seed} augment={augment}: val accuracy {accuracy:.3f}",
                flush=True,
            )
    lines = [
        "| arm | seed 0 | seed 1 | seed 2 | mean | std |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for augment in (False, True):
        accs = np.array(results[augment])
        name = f"augmented (copies={COPIES})" if augment else "no augmentation"
        lines.append(
            f"| {name} | "
            + " | ".join(f"{a:.3f}" for a in accs)
            + f" | {accs.mean():.3f} | {accs.std(ddof=1):.3f} |"
        )
    diff = np.array(results[True]) - np.array(results[False])
    verdict = (
        f"Mean difference (augmented - plain): {diff.mean():+.3f} "
        f"(per seed: {', '.join(f'{d:+.3f}' for d in diff)}). "
    )
    verdict += (
        "With 3 seeds and a 200-sentence validation set (one sentence = 0.5 "
        "points), differences below ~2-3 points are within noise."
    )
    body = (
        "MiniLM (`minilm-l6`, default builder settings: freeze embeddings, "
        "AdamW 5e-5), 64 amazon_cells training sentences per seed (32 per "
        "class), validation = the fixed 200-sentence stratified hold-out. "
        "Both arms take 40 optimizer steps at batch 16 (plain: 10 epochs x 64; "
        "augmented: 2 epochs x 320 originals + variants of "
        "`TextAugmenter(('synonym', 'swap', 'delete'), p=0.15)`).\n\n"
        + "\n".join(lines)
        + "\n\n"
        + verdict
        + f"\n\nTotal run time: {time.time() - start:.0f} s (shared 2-core machine)."
    )
    print(body)
    write_section(
        "text_few_shot_augment",
        "NLTK_DATA=../shared/nltk_data python benchmarks/text_few_shot_augment.py",
        body,
    )


if __name__ == "__main__":
    main()
