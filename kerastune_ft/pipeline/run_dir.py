"""The run directory: who owns it, whether it can resume, what it holds."""

import json
import pathlib

from kerastune_ft._files import (
    MARKER,
    check_writable_folder,
    claim_folder,
    folder_kind,
    write_text_atomic,
)
from kerastune_ft.config import ConfigError, load_config

__all__ = [
    "CHECKPOINT_DIR",
    "CLASS_NAMES_FILE",
    "CONFIG_FILE",
    "HISTORY_FILE",
    "METRICS_FILE",
    "prepare_run_dir",
    "write_history",
    "write_json",
]

CONFIG_FILE = "config.toml"
CLASS_NAMES_FILE = "class_names.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoints"


def _differences(old, new, prefix=""):
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _differences(a, b, path + ".")
        elif a != b:
            changes.append(f"{path}: {a!r} -> {b!r}")
    return changes


def prepare_run_dir(cfg, out, resume):
    """Claims `out` for a new run, or checks that it can be resumed.

    A new run needs a new or empty folder, or a run folder whose start
    failed before training (only the config, class names and marker are
    there). A folder holding anything else is refused, never cleared.

    Args:
        cfg: the `kerastune_ft.config.RunConfig` to run.
        out: the run directory, a `pathlib.Path`.
        resume: continue the run in `out`.

    Returns:
        `True` when `out` holds a finished run (nothing to resume).

    Raises:
        ValueError: `out` is not ours, already holds a run (without
            `resume`), or holds another config or none (with `resume`).
    """
    config_path = out / CONFIG_FILE
    if not resume:
        if out.is_dir() and (folder_kind(out) == "run" or config_path.is_file()):
            leftovers = {MARKER, CONFIG_FILE, CLASS_NAMES_FILE}
            if {p.name for p in out.iterdir()} - leftovers:
                raise ConfigError(
                    f"The run directory {str(out)!r} already holds a run. Continue "
                    "it with --resume (resume=True), or choose another directory "
                    "with --out DIR."
                )
        else:
            check_writable_folder(out, "run", "--out")
        claim_folder(out, "run")
        write_text_atomic(config_path, cfg.to_toml())
        return False
    if not config_path.is_file():
        raise ConfigError(
            f"Nothing to resume: {str(out)!r} has no {CONFIG_FILE}. Start the run "
            "without --resume."
        )
    try:
        saved = load_config(config_path)
    except ConfigError as e:
        raise ConfigError(f"Cannot resume: the saved config is invalid: {e}") from None
    old, new = saved.to_dict(), cfg.to_dict()
    old["output"].pop("dir"), new["output"].pop("dir")
    changes = _differences(old, new)
    if changes:
        raise ConfigError(
            f"Cannot resume {str(out)!r} with a different config; changed: "
            + "; ".join(changes)
            + ". Resume with the same config and --set options, or start a new "
            "run with --out DIR."
        )
    return (out / METRICS_FILE).is_file()


def write_history(path, history):
    """Writes a Keras-style history as CSV (`epoch` from 1), atomically.

    Args:
        path: the file.
        history: `{metric: [value per epoch]}`; `None` values stay empty.

    Returns:
        `path`.
    """
    import pandas as pd

    table = pd.DataFrame({k: pd.Series(v, dtype="float64") for k, v in history.items()})
    table.index = pd.RangeIndex(1, len(table) + 1, name="epoch")
    return write_text_atomic(path, table.to_csv(float_format=lambda v: repr(float(v))))


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: repr(o)))


def write_json(path, value):
    """Writes `value` as indented JSON, atomically (objects as their repr)."""
    value = _jsonable(value)
    write_text_atomic(pathlib.Path(path), json.dumps(value, indent=2))
    return value
