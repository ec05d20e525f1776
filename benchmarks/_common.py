"""Helpers shared by the benchmark scripts (not part of the package)."""

import datetime
import os
import pathlib
import re

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("KFT_SHARED", REPO.parent / "shared"))
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def read_uci(name):
    """`sentence<TAB>label` lines; split on "\\n" only (imdb has U+0085)."""
    path = SHARED / "datasets" / "uci_sentiment" / f"{name}_labelled.txt"
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            text, label = line.rsplit("\t", 1)
            texts.append(text.strip())
            labels.append(int(label))
    return texts, np.array(labels)


def stratified_split(labels, val_fraction, seed):
    rng = np.random.default_rng(seed)
    train, val = [], []
    for value in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == value))
        cut = int(round(len(index) * val_fraction))
        val.extend(index[:cut])
        train.extend(index[cut:])
    return rng.permutation(train), rng.permutation(val)


def write_section(title, command, body):
    """Replaces (or appends) the `## title` section of RESULTS.md."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {title}\n\nCommand: `{command}`\n\nDate: {date}\n\n{body.strip()}\n"
    text = (
        RESULTS.read_text(encoding="utf-8")
        if RESULTS.exists()
        else "# Benchmark results\n"
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n", encoding="utf-8")
