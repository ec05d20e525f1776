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


def peak_rss_mb():
    """This process's peak resident memory in MB (Linux reports KB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spawn(script, *args):
    """Runs `script --child *args` in a fresh process; returns its RESULT json."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, str(script), "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")


def print_result(result):
    """What a child prints for `spawn` to read, with its peak memory."""
    import json

    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)
