"""Helpers shared by the benchmark scripts (not part of the package)."""

import datetime
import os
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("KFT_SHARED", REPO.parent / "shared"))
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def load_uci(name, val_split=0.0, seed=0):
    """A UCI sentiment file through `kft.data.load_texts` (seeded, stratified)."""
    import kerastune_ft as kft

    path = SHARED / "datasets" / "uci_sentiment" / f"{name}_labelled.txt"
    return kft.data.load_texts(str(path), val_split=val_split, seed=seed)


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
