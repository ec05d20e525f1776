"""Reading a run config: files, `--set` overrides, paths, older key names."""

import dataclasses
import difflib
import json
import os
import pathlib
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from kerastune_ft.config.run_config import SECTIONS, RunConfig
from kerastune_ft.config.sections import ConfigError, check_str, fail

__all__ = [
    "apply_overrides",
    "config_from_dict",
    "expand_path",
    "load_config",
    "parse_override",
    "shared_dir",
]

ENV_SHARED = "KFT_SHARED"
DEFAULT_SHARED = "../shared"
_TOP_LEVEL = ("task", "name", "seed")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def shared_dir():
    """The real-assets folder: `$KFT_SHARED`, default `../shared`.

    Returns:
        The folder as a string (it may not exist).

    Example:

    >>> from kerastune_ft.config import shared_dir
    >>> isinstance(shared_dir(), str)
    True
    """
    return os.environ.get(ENV_SHARED) or DEFAULT_SHARED


def expand_path(value, name="path"):
    """Replaces `${VAR}` by environment variables and `~` by the home folder.

    `${KFT_SHARED}` defaults to `../shared` when the variable is unset; any
    other unset variable is an error.

    Args:
        value: a path string, e.g. `"${KFT_SHARED}/datasets/flowers"`.
        name: the config key, for messages. Defaults to `"path"`.

    Returns:
        The expanded path, made absolute (relative paths start from the
        current directory); `tfds:`, `hf://` and `kaggle://` sources are
        returned as they are.

    Example:

    >>> import os
    >>> from kerastune_ft.config import expand_path
    >>> _ = os.environ.setdefault("KFT_EXAMPLE_ROOT", "/data")
    >>> expand_path("${KFT_EXAMPLE_ROOT}/flowers")
    '/data/flowers'
    >>> expand_path("tfds:tf_flowers")
    'tfds:tf_flowers'
    """

    def replace(match):
        var = match.group(1)
        if var == ENV_SHARED:
            return shared_dir()
        if var not in os.environ:
            fail(
                f"`{name}` uses the environment variable ${{{var}}}, which is not "
                f"set. Received: {name}={value!r}. Set it, or write the path out."
            )
        return os.environ[var]

    if value.startswith(("tfds:", "hf://", "kaggle://")):
        return value
    return os.path.abspath(os.path.expanduser(_VARIABLE.sub(replace, value)))


def _suggest(key, allowed):
    close = difflib.get_close_matches(key, list(allowed), n=2)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _upgrade(raw):
    """Reads the key names of configs written before the library's names.

    `[augmentation] preset` is `model.augmentation`, `head.units` is
    `head.head_units`, `training.seed` is the top-level `seed`, image
    `data.image_size = "auto"` and `model.weights = "pretrained"` are the
    defaults, and a text `model.weights` is `model.load_weights`.
    """
    raw = json.loads(json.dumps(raw))  # a deep copy of plain data
    task = raw.get("task")
    sections = {k: v for k, v in raw.items() if isinstance(v, dict)}
    model, head = sections.get("model", {}), sections.get("head", {})
    old = raw.pop("augmentation", None)
    if isinstance(old, dict):
        unknown = set(old) - {"preset", "seed"}
        if unknown or old.get("seed", 0) != 0:
            fail(
                "the [augmentation] section is now `model.augmentation` (the "
                "builder's argument), seeded by the run's `seed`. Received: "
                f"augmentation={old!r}. Move the preset to [model] augmentation."
            )
        if old.get("preset", "none") != "none":
            raw.setdefault("model", {}).setdefault("augmentation", old["preset"])
    if "units" in head:
        head.setdefault("head_units", head.pop("units"))
    training = sections.get("training", {})
    if "seed" in training:
        raw.setdefault("seed", training.pop("seed"))
    if sections.get("data", {}).get("image_size") == "auto":
        sections["data"].pop("image_size")
    weights = model.get("weights")
    if task == "text" and weights in ("pretrained", "none"):
        model["load_weights"] = model.pop("weights") != "none"
    elif weights == "pretrained":
        model["weights"] = "imagenet"
    return raw


def config_from_dict(raw, *, source="the config"):
    """Validates a nested dict (as parsed from TOML) into a `RunConfig`.

    Args:
        raw: `{"task": ..., "data": {...}, ...}`.
        source: where it came from, for messages. Defaults to `"the config"`.

    Returns:
        A `RunConfig` with paths expanded; keys left out are `None` (the
        library's defaults).

    Raises:
        ConfigError: naming the key path, the value received and what is
            allowed.

    Example:

    >>> from kerastune_ft.config import config_from_dict
    >>> run = config_from_dict({
    ...     "task": "text",
    ...     "data": {"source": "data/reviews/products.txt"},
    ...     "model": {"backbone": "minilm-l6"},
    ... })
    >>> run.model.freeze, run.training.epochs, run.output.dir
    (None, None, 'runs/run')
    """
    try:
        return _from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _check_keys(raw):
    allowed_top = _TOP_LEVEL + tuple(SECTIONS)
    for key in raw:
        if key not in allowed_top:
            fail(
                f"unknown key `{key}`. Allowed top-level keys: "
                f"{', '.join(allowed_top)}.{_suggest(key, allowed_top)}"
            )
    for section, cls in SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, dict):
            fail(
                f"`{section}` must be a table ([{section}]). "
                f"Received: {section}={values!r}."
            )
        fields = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in fields:
                fail(
                    f"unknown key `{section}.{key}` (value {values[key]!r}). Allowed "
                    f"keys in [{section}]: {', '.join(fields)}.{_suggest(key, fields)}"
                )


def _expand_paths(section, values, task):
    if section == "data" and "source" in values:
        values["source"] = expand_path(
            check_str("data.source", values["source"]), "data.source"
        )
    weights = values.get("weights") if section == "model" else None
    if (
        task == "image"
        and isinstance(weights, str)
        and weights
        not in (
            "imagenet",
            "none",
        )
    ):
        values["weights"] = expand_path(weights, "model.weights")
    if section == "evaluation" and isinstance(values.get("sets"), dict):
        values["sets"] = {
            name: expand_path(
                check_str(f"evaluation.sets.{name}", path), f"evaluation.sets.{name}"
            )
            for name, path in values["sets"].items()
        }
    return values


def _from_dict(raw):
    if not isinstance(raw, dict):
        fail(f"a run config must be a table of sections. Received: {raw!r}.")
    if "task" not in raw:
        fail('missing key `task`: set task = "image" or task = "text".')
    raw = _upgrade(raw)
    task = raw["task"]
    _check_keys(raw)
    for section in ("data", "model"):
        if section not in raw:
            fail(f"missing section [{section}].")
    for section, key in (("data", "source"), ("model", "backbone")):
        if key not in raw[section]:
            fail(f"missing key `{section}.{key}`.")
    sections = {
        section: cls(**_expand_paths(section, dict(raw.get(section, {})), task))
        for section, cls in SECTIONS.items()
    }
    name = raw.get("name", "run")
    if not sections["output"].dir and isinstance(name, str):
        sections["output"] = dataclasses.replace(
            sections["output"], dir=os.path.join("runs", name)
        )
    return RunConfig(task=task, name=name, seed=raw.get("seed", 0), **sections)


def parse_override(text):
    """Parses one `--set key.path=value` into `(["key", "path"], value)`.

    The value is read as a TOML literal (`3`, `1e-4`, `true`, `[160, 160]`,
    `"text"`, `{ alpha = 0.35 }`); anything that is not valid TOML is taken
    as a plain string, so `--set model.backbone=mobilenet_v2` needs no quotes.

    Args:
        text: `"key.path=value"`.

    Returns:
        `(list of keys, value)`.

    Example:

    >>> from kerastune_ft.config import parse_override
    >>> parse_override("training.epochs=3")
    (['training', 'epochs'], 3)
    >>> parse_override("model.backbone=mobilenet_v2")
    (['model', 'backbone'], 'mobilenet_v2')
    """
    if not isinstance(text, str) or "=" not in text:
        fail(
            "`--set` takes key.path=value, e.g. --set training.epochs=3. "
            f"Received: {text!r}."
        )
    key, value = text.split("=", 1)
    keys = key.strip().split(".")
    if not all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys):
        fail(
            "`--set` key must be a dotted path such as training.epochs. "
            f"Received: {key!r}."
        )
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return keys, parsed


def apply_overrides(raw, overrides):
    """Returns a copy of `raw` with `--set` overrides applied.

    Args:
        raw: the parsed TOML dict.
        overrides: strings `"key.path=value"`.

    Returns:
        A new nested dict.

    Example:

    >>> from kerastune_ft.config import apply_overrides
    >>> apply_overrides({"training": {"epochs": 3}}, ["training.epochs=5"])
    {'training': {'epochs': 5}}
    """
    result = json.loads(json.dumps(raw))  # a deep copy of plain data
    for text in overrides:
        keys, value = parse_override(text)
        target = result
        for depth, key in enumerate(keys[:-1]):
            node = target.setdefault(key, {})
            if not isinstance(node, dict):
                fail(
                    f"`--set {text}`: `{'.'.join(keys[: depth + 1])}` is a value, "
                    "not a table."
                )
            target = node
        target[keys[-1]] = value
    return result


def load_config(path, overrides=()):
    """Reads, overrides and validates a run config file.

    Args:
        path: a `.toml` file (a `.json` file with the same structure also
            works).
        overrides: `"key.path=value"` strings applied on top, as with
            `kerastune-ft train --set`. Defaults to `()`.

    Returns:
        A validated `RunConfig`.

    Raises:
        ConfigError: the file is missing or malformed, or a key or value is
            invalid (the message names the key path and what is allowed).

    Example:

    >>> from kerastune_ft.config import load_config
    >>> run = load_config("data/configs/text_uci.toml", ["training.epochs=2"])
    >>> run.task, run.training.epochs
    ('text', 2)
    """
    path = pathlib.Path(path)
    if not path.is_file():
        fail(f"config file not found: {str(path)!r}.")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        fail(f"{path}: not valid {path.suffix[1:].upper() or 'TOML'}: {e}")
    raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, source=str(path))
