"""The typed run config: defaults per task, overrides, paths, and bad configs."""

import os
import pathlib

import pytest

from kerastune_ft import config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "data" / "configs"

IMAGE = {
    "task": "image",
    "data": {"source": "images/"},
    "model": {"backbone": "mobilenet_v2"},
}
TEXT = {
    "task": "text",
    "data": {"source": "texts.txt"},
    "model": {"backbone": "minilm-l6"},
}


def _with(base, path, value):
    raw = config.apply_overrides(base, [])
    *parents, last = path.split(".")
    target = raw
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return raw


def test_task_defaults_follow_the_builders():
    image = config.config_from_dict(IMAGE)
    text = config.config_from_dict(TEXT)
    assert (image.model.freeze, image.head.dropout, image.head.pooling) == (
        "all",
        0.2,
        "avg",
    )
    assert (text.model.freeze, text.head.dropout, text.head.pooling) == (
        "embeddings",
        0.1,
        "auto",
    )
    assert image.training.learning_rate == 1e-3
    assert text.training.learning_rate == 5e-5
    assert image.output.dir == "runs/run" and image.evaluation.splits == ["val", "test"]


@pytest.mark.parametrize("name", ["image_flowers.toml", "text_uci.toml"])
def test_example_configs_load_and_round_trip(name, monkeypatch):
    monkeypatch.setenv("KFT_SHARED", "/somewhere/shared")
    run = config.load_config(CONFIGS / name)
    assert run.data.source.startswith("/somewhere/shared/datasets/")
    again = config.config_from_dict(config.tomllib.loads(run.to_toml()))
    assert again == run


def test_shared_defaults_to_dot_dot_shared(monkeypatch):
    monkeypatch.delenv("KFT_SHARED", raising=False)
    run = config.config_from_dict(
        _with(IMAGE, "data.source", "${KFT_SHARED}/datasets/flowers")
    )
    assert run.data.source == os.path.abspath("../shared/datasets/flowers")


@pytest.mark.parametrize(
    "text, keys, value",
    [
        ("training.epochs=3", ["training", "epochs"], 3),
        ("training.learning_rate=1e-4", ["training", "learning_rate"], 1e-4),
        ("training.early_stopping=false", ["training", "early_stopping"], False),
        ("data.image_size=[96, 96]", ["data", "image_size"], [96, 96]),
        ("model.backbone=mobilenet_v2", ["model", "backbone"], "mobilenet_v2"),
        ('model.freeze="all"', ["model", "freeze"], "all"),
        (
            "model.backbone_kwargs={alpha=0.35}",
            ["model", "backbone_kwargs"],
            {"alpha": 0.35},
        ),
    ],
)
def test_overrides_are_toml_literals(text, keys, value):
    assert config.parse_override(text) == (keys, value)


def test_overrides_apply_and_are_validated(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(config.dump_toml(IMAGE))
    run = config.load_config(
        path, ["training.epochs=2", "model.backbone_kwargs.alpha=0.35"]
    )
    assert run.training.epochs == 2 and run.model.backbone_kwargs == {"alpha": 0.35}
    with pytest.raises(config.ConfigError, match="Received: training.epochs=0"):
        config.load_config(path, ["training.epochs=0"])


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("training.epoch", 3, "unknown key `training.epoch` .*Did you mean 'epochs'"),
        ("trainig", {}, "unknown key `trainig`.*Did you mean 'training'"),
        (
            "task",
            "audio",
            "`task` must be one of 'image', 'text'. Received: task='audio'",
        ),
        (
            "training.epochs",
            0,
            r"`training.epochs` must be in \[1, inf\]. Received: training.epochs=0",
        ),
        ("training.epochs", 2.5, "`training.epochs` must be an integer"),
        (
            "head.dropout",
            1.5,
            r"`head.dropout` must be in \[0.0, 1.0\). Received: head.dropout=1.5",
        ),
        (
            "head.pooling",
            "cls",
            "`head.pooling` must be one of 'avg', 'max', 'flatten'",
        ),
        ("head.units", [0], "`head.units` must be a list of positive ints"),
        ("augmentation.preset", "heavy", "Received: augmentation.preset='heavy'"),
        ("data.image_size", [96], r"`data.image_size` must be \[height, width\]"),
        ("data.val_split", 1.2, "Received: data.val_split=1.2"),
        ("data.batch_size", "8", "`data.batch_size` must be an integer"),
        ("data.label_first", True, "`data.label_first` applies to task='text' only"),
        ("model.freeze", True, "Received: model.freeze=True"),
        ("model.freeze", 1.5, "Received: model.freeze=1.5"),
        ("model.preprocessing", "keras", "Received: model.preprocessing='keras'"),
        ("training.unfreeze", -2, "Received: training.unfreeze=-2"),
        ("training.unfreeze", [{"top": 2, "epoch": 3}], "unknown keys \\['epoch'\\]"),
        ("training.schedule", "step", "Received: training.schedule='step'"),
        ("training.class_weight", "auto", "Received: training.class_weight='auto'"),
        ("training.cache_features", "yes", "Received: training.cache_features='yes'"),
        (
            "training.early_stopping",
            "yes",
            "`training.early_stopping` must be true or false",
        ),
        ("evaluation.splits", ["dev"], "Received: evaluation.splits='dev'"),
        ("evaluation.sets", ["a.txt"], "`evaluation.sets` must be a table"),
        ("output", 3, r"`output` must be a table \(\[output\]\)"),
        ("name", "a/b", "`name` may hold only letters"),
        (
            "data.source",
            "${KFT_NO_SUCH_VAR}/x",
            r"environment variable \$\{KFT_NO_SUCH_VAR\}",
        ),
    ],
)
def test_bad_configs_name_the_key_value_and_allowed(path, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.config_from_dict(_with(IMAGE, path, value))


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("head.pooling", "avg", "`head.pooling` must be one of 'auto', 'pooled'"),
        ("data.image_size", [96, 96], "applies to task='image' only"),
        ("model.weights", "/x.h5", "Received: model.weights='/x.h5'"),
        ("model.sequence_length", 4, r"must be in \[8, inf\]"),
    ],
)
def test_bad_text_configs(path, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.config_from_dict(_with(TEXT, path, value))


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"data": {"source": "x"}, "model": {"backbone": "b"}}, "missing key `task`"),
        ({"task": "image", "model": {"backbone": "b"}}, r"missing section \[data\]"),
        (
            {"task": "image", "data": {}, "model": {"backbone": "b"}},
            "missing key `data.source`",
        ),
    ],
)
def test_missing_keys(raw, message):
    with pytest.raises(config.ConfigError, match=message):
        config.config_from_dict(raw)


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs", "takes key.path=value"),
        ("training epochs=3", "must be a dotted path"),
    ],
)
def test_bad_overrides(text, message):
    with pytest.raises(config.ConfigError, match=message):
        config.parse_override(text)


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("task = image\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load_config(bad)
    with pytest.raises(config.ConfigError, match="config file not found"):
        config.load_config(tmp_path / "none.toml")


def test_configs_are_frozen():
    run = config.config_from_dict(IMAGE)
    with pytest.raises(AttributeError):
        run.training.epochs = 3
