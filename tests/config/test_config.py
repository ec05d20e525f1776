"""The typed run config: defaults per task, overrides, paths, and bad configs."""

import os
import pathlib

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from kerastune_ft import config

REPO = pathlib.Path(__file__).resolve().parents[2]
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


def test_keys_left_out_are_the_library_defaults():
    """Nothing is restated: a key left out is `None` and is not passed on."""
    image = config.config_from_dict(IMAGE)
    text = config.config_from_dict(TEXT)
    for run in (image, text):
        assert run.model.freeze is None and run.head.dropout is None
        assert run.training.epochs is None
        assert run.training.fine_tune_learning_rate is None
        assert run.kwargs("training") == {} and run.kwargs("head") == {}
        assert run.kwargs("model") == {"backbone": run.model.backbone}
        assert run.seed == 0
    assert image.output.dir == "runs/run" and image.evaluation.splits == ["val", "test"]


def test_set_keys_pass_through_unchanged():
    raw = _with(IMAGE, "training.fine_tune_learning_rate", 3e-6)
    raw["training"]["unfreeze"] = "none"
    raw["training"]["augmented_views"] = 2
    raw["model"]["label_mode"] = "categorical"
    raw["model"]["augmentation"] = "light"
    run = config.config_from_dict(raw)
    assert run.kwargs("training") == {
        "unfreeze": None,
        "fine_tune_learning_rate": 3e-6,
        "augmented_views": 2,
    }
    assert run.kwargs("model")["label_mode"] == "categorical"
    assert run.kwargs("model")["augmentation"] == "light"
    raw["training"] = {"recipe": "linear_probe"}
    raw["data"]["val_split"] = "auto"
    run = config.config_from_dict(raw)
    assert run.kwargs("training") == {"recipe": "linear_probe"}
    assert run.kwargs("data")["val_split"] == "auto"
    raw["evaluation"] = {"tta": ["identity", "flip"]}
    assert config.config_from_dict(raw).kwargs("evaluation") == {
        "tta": ["identity", "flip"]
    }


def test_text_csv_columns_are_reachable():
    raw = _with(TEXT, "data.text_column", "review")
    raw["data"].update(label_column="stars", delimiter=";")
    run = config.config_from_dict(raw)
    kwargs = run.kwargs("data")
    assert kwargs["text_column"] == "review" and kwargs["label_column"] == "stars"
    assert kwargs["delimiter"] == ";"
    with pytest.raises(config.ConfigError, match="applies to task='text' only"):
        config.config_from_dict(_with(IMAGE, "data.text_column", "review"))


def test_older_key_names_are_still_read():
    raw = _with(IMAGE, "augmentation", {"preset": "light", "seed": 0})
    raw["head"] = {"units": [16]}
    raw["training"] = {"seed": 3, "unfreeze": "none"}
    raw["data"]["image_size"] = "auto"
    raw["model"]["weights"] = "pretrained"
    run = config.config_from_dict(raw)
    assert run.model.augmentation == "light" and run.head.head_units == [16]
    assert run.seed == 3 and run.data.image_size is None
    assert run.model.weights == "imagenet"
    text = config.config_from_dict(_with(TEXT, "model.weights", "none"))
    assert text.model.load_weights is False
    with pytest.raises(config.ConfigError, match=r"model\.augmentation"):
        config.config_from_dict(_with(IMAGE, "augmentation", {"seed": 5}))


@pytest.mark.parametrize("name", ["image_flowers.toml", "text_uci.toml"])
def test_example_configs_load_and_round_trip(name, monkeypatch):
    monkeypatch.setenv("KFT_SHARED", "/somewhere/shared")
    run = config.load_config(CONFIGS / name)
    assert run.data.source.startswith("/somewhere/shared/datasets/")
    again = config.config_from_dict(tomllib.loads(run.to_toml()))
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
        ("head.pooling", "", "`head.pooling` must be a non-empty string"),
        ("head.head_units", [0], "`head.head_units` must be a list of positive ints"),
        ("model.augmentation", 3, "Received: model.augmentation=3"),
        ("model.label_mode", "onehot", "Received: model.label_mode='onehot'"),
        ("training.augmented_views", -1, "Received: training.augmented_views=-1"),
        ("seed", -1, "Received: seed=-1"),
        ("data.image_size", [96], r"`data.image_size` must be \[height, width\]"),
        ("data.val_split", 1.2, "Received: data.val_split=1.2"),
        ("data.val_split", "half", "Received: data.val_split='half'"),
        ("training.recipe", 3, "`training.recipe` must be a non-empty string"),
        ("data.batch_size", "8", "`data.batch_size` must be an integer"),
        ("data.label_first", True, "`data.label_first` applies to task='text' only"),
        ("model.freeze", True, "Received: model.freeze=True"),
        ("model.freeze", 1.5, "Received: model.freeze=1.5"),
        ("model.preprocessing", 1, "Received: model.preprocessing=1"),
        ("training.unfreeze", -2, "Received: training.unfreeze=-2"),
        ("training.unfreeze", [{"top": 2, "epoch": 3}], "unknown keys \\['epoch'\\]"),
        ("training.schedule", 2, "Received: training.schedule=2"),
        ("training.class_weight", "auto", "Received: training.class_weight='auto'"),
        ("training.cache_features", "yes", "Received: training.cache_features='yes'"),
        (
            "training.early_stopping",
            "yes",
            "`training.early_stopping` must be true or false",
        ),
        ("evaluation.splits", ["dev"], "Received: evaluation.splits='dev'"),
        ("evaluation.sets", ["a.txt"], "`evaluation.sets` must be a table"),
        ("evaluation.tta", 0, "Received: evaluation.tta=0"),
        ("evaluation.tta", [3], "`evaluation.tta` must be a non-empty string"),
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
        ("data.image_size", [96, 96], "applies to task='image' only"),
        ("model.weights", "/x.h5", "applies to task='image' only"),
        ("model.load_weights", "yes", "Received: model.load_weights='yes'"),
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
