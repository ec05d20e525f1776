"""The bad-input table, command-line rows: `kerastune-ft` with hostile input.

Each row runs the command in this process and asserts the exit code (2 for
usage, configuration and data errors), that stderr is one message naming
the option, key or file at fault (no traceback), and that nothing that
existed before changed; a train command whose start failed may only have
written into its own new run folder.
"""

import functools
import shutil
import tempfile
import zipfile

import numpy as np
import pytest
from _bad_inputs import BadInput, check_bad_input
from PIL import Image

from kerastune_ft.config import dump_toml

USAGE = 2


def _images(root, classes=("cat", "dog", "fox"), per_class=6):
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.uniform(0, 80, (32, 32, 3))
            pixels[..., 0] += 80 * label
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"{i}.png")
    return root


def _config(tmp, source=None, **sections):
    if source is None:
        source = tmp / "images"
        if not source.exists():
            _images(source)
    raw = {
        "task": "image",
        "name": "tiny",
        "data": {
            "source": str(source),
            "image_size": [32, 32],
            "batch_size": 8,
            "val_split": 0.25,
        },
        "model": {
            "backbone": "mobilenet_v2",
            "weights": "none",
            "backbone_kwargs": {"alpha": 0.35},
        },
        "training": {"epochs": 1, "schedule": "constant"},
        "evaluation": {"splits": ["val"]},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    path = tmp / "tiny.toml"
    path.write_text(dump_toml(raw))
    return path


@functools.cache
def _model_file():
    """A tiny saved image model, built once per test process."""
    import kerastune_ft as kft

    model = kft.build_image_classifier(
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
    )
    path = tempfile.mkdtemp(prefix="kft-cli-rows-") + "/model.keras"
    model.save(path)
    return path


def _with_model(tmp):
    shutil.copy(_model_file(), tmp / "model.keras")
    _images(tmp / "images")
    return tmp


def _run_folder(tmp):
    """A finished-looking run folder: the user's work, never to be lost."""
    _with_model(tmp)
    run = tmp / "run"
    run.mkdir()
    shutil.copy(tmp / "model.keras", run / "model.keras")
    (run / "config.toml").write_text('task = "image"\n')
    (run / "metrics.json").write_text('{"best_epoch": 2}')
    (run / "report.html").write_text("<html>my report</html>")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.weights.npz").write_bytes(b"weights")
    (run / "my_notes.md").write_text("notes")
    return tmp


def _user_folder(tmp):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("\\documentclass{article}")
    return tmp


def _leaky(tmp):
    images = _images(tmp / "flat")
    for name in ("cat", "dog", "fox"):
        files = sorted((images / name).iterdir())
        for split, chosen in (("train", files[:4]), ("val", files[3:])):
            (tmp / "leaky" / split / name).mkdir(parents=True)
            for path in chosen:
                shutil.copy(path, tmp / "leaky" / split / name / path.name)
    return _config(tmp, tmp / "leaky")


def _class_only_in_val(tmp):
    _images(tmp / "split" / "train", classes=("a", "b"))
    _images(tmp / "split" / "val", classes=("a", "c"))
    return _config(tmp, tmp / "split")


def _corrupt_model(tmp):
    _images(tmp / "images")
    (tmp / "model.keras").write_bytes(b"\x00not a zip file at all")
    return tmp


def _foreign_zip_model(tmp):
    _images(tmp / "images")
    with zipfile.ZipFile(tmp / "model.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
    return tmp


def _train(*extra, out="run"):
    return lambda cfg: ["train", cfg, "--out", cfg.parent / out, "--quiet", *extra]


ROWS = [
    # train: the config and its overrides
    BadInput(
        "train: missing config",
        lambda t: t,
        lambda t: ["train", t / "nope.toml"],
        USAGE,
        r"config file not found.*nope\.toml",
        cli=True,
    ),
    BadInput(
        "train: misspelt key",
        _config,
        _train("--set", "training.epoch=3"),
        USAGE,
        r"training\.epoch.*Did you mean 'epochs'",
        cli=True,
    ),
    BadInput(
        "train: --set without =",
        _config,
        _train("--set", "epochs"),
        USAGE,
        r"--set.*key\.path=value",
        cli=True,
    ),
    BadInput(
        "train: negative epochs",
        _config,
        _train("--set", "training.epochs=-1"),
        USAGE,
        r"training\.epochs=-1",
        cli=True,
    ),
    BadInput(
        "train: dropout 1.5",
        _config,
        _train("--set", "head.dropout=1.5"),
        USAGE,
        r"head\.dropout=1\.5",
        cli=True,
    ),
    BadInput(
        "train: image size 0",
        _config,
        _train("--set", "data.image_size=[0, 0]"),
        USAGE,
        r"data\.image_size",
        cli=True,
    ),
    BadInput(
        "train: unknown schedule",
        _config,
        _train("--set", 'training.schedule="cosin"'),
        USAGE,
        r"schedule='cosin'.*cosine",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: unknown backbone",
        lambda t: _config(t, model={"backbone": "mobilenet_v9"}),
        _train(),
        USAGE,
        r"mobilenet_v9",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: unfreeze beyond the backbone",
        _config,
        _train("--set", "training.unfreeze=999"),
        USAGE,
        r"unfreeze.*999",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: monitor that no metric has",
        _config,
        _train("--set", 'training.monitor="val_acc"'),
        USAGE,
        r"(?=.*monitor='val_acc')(?=.*val_accuracy)",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: data source missing",
        _config,
        _train("--set", 'data.source="/no/such/folder"'),
        USAGE,
        r"/no/such/folder",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: a class only in val",
        _class_only_in_val,
        _train(),
        USAGE,
        r"'c'.*train",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: leakage with --strict",
        _leaky,
        _train("--strict"),
        USAGE,
        r"Leakage: 3 val example\(s\).*--strict",
        cli=True,
        output="run",
    ),
    BadInput(
        "train: leakage with data.strict",
        _leaky,
        _train("--set", "data.strict=true"),
        USAGE,
        r"Leakage.*data\.strict",
        cli=True,
        output="run",
    ),
    # train: where it writes
    BadInput(
        "train: --out is a file",
        lambda t: (_config(t), (t / "results.txt").write_text("keep"))[0],
        _train(out="results.txt"),
        USAGE,
        r"`--out` must be a folder.*results\.txt",
        cli=True,
    ),
    BadInput(
        "train: --out holds user files",
        lambda t: (_user_folder(t), _config(t))[1],
        _train(out="mine"),
        USAGE,
        r"`--out` is not empty.*thesis\.tex",
        cli=True,
    ),
    BadInput(
        "train: --out holds a user's subset/",
        lambda t: (
            (t / "proj" / "subset").mkdir(parents=True),
            (t / "proj" / "subset" / "a.jpg").write_bytes(b"x"),
            _config(t),
        )[2],
        _train("--set", "data.max_per_class=2", out="proj"),
        USAGE,
        r"`--out` is not empty.*subset/",
        cli=True,
    ),
    BadInput(
        "train: resume with nothing there",
        _config,
        _train("--resume"),
        USAGE,
        r"Nothing to resume",
        cli=True,
    ),
    BadInput(
        "train: resume a run with another config",
        lambda t: (_run_folder(t), _config(t))[1],
        lambda cfg: [
            "train",
            cfg,
            "--out",
            cfg.parent / "run",
            "--resume",
            "--set",
            "training.epochs=3",
        ],
        USAGE,
        r"Cannot resume",
        cli=True,
    ),
    BadInput(
        "train: a run folder without --resume",
        lambda t: (_run_folder(t), _config(t))[1],
        _train(),
        USAGE,
        r"already holds a run.*--resume",
        cli=True,
    ),
    # evaluate
    BadInput(
        "evaluate: not a .keras file",
        lambda t: (_with_model(t), (t / "model.h5").write_bytes(b"\x89HDF"))[0],
        lambda t: ["evaluate", t / "model.h5", t / "images"],
        USAGE,
        r"model\.h5.*\.keras",
        cli=True,
    ),
    BadInput(
        "evaluate: model missing",
        lambda t: _images(t / "images").parent,
        lambda t: ["evaluate", t / "model.keras", t / "images"],
        USAGE,
        r"model\.keras",
        cli=True,
    ),
    BadInput(
        "evaluate: random bytes named .keras",
        _corrupt_model,
        lambda t: ["evaluate", t / "model.keras", t / "images"],
        USAGE,
        r"model\.keras.*(not a valid|Keras model)",
        cli=True,
    ),
    BadInput(
        "evaluate: a zip with a broken config",
        _foreign_zip_model,
        lambda t: ["evaluate", t / "model.keras", t / "images"],
        USAGE,
        r"model\.keras.*(not a valid|Keras model)",
        cli=True,
    ),
    BadInput(
        "evaluate: data missing",
        _with_model,
        lambda t: ["evaluate", t / "model.keras", t / "nowhere"],
        USAGE,
        r"nowhere",
        cli=True,
    ),
    BadInput(
        "evaluate: two sets with one name",
        _with_model,
        lambda t: ["evaluate", t / "model.keras", f"a={t}/images", f"a={t}/images"],
        USAGE,
        r"Two DATA sets are named 'a'",
        cli=True,
    ),
    BadInput(
        "evaluate: --out is a file",
        lambda t: (_with_model(t), (t / "r.txt").write_text("keep"))[0],
        lambda t: ["evaluate", t / "model.keras", t / "images", "--out", t / "r.txt"],
        USAGE,
        r"`--out` must be a folder.*r\.txt",
        cli=True,
    ),
    BadInput(
        "evaluate: --out holds user files",
        lambda t: _user_folder(_with_model(t)),
        lambda t: ["evaluate", t / "model.keras", t / "images", "--out", t / "mine"],
        USAGE,
        r"`--out` is not empty.*thesis\.tex",
        cli=True,
    ),
    # export
    BadInput(
        "export: saved_model into a run folder",
        _run_folder,
        lambda t: [
            "export",
            t / "run" / "model.keras",
            "--format",
            "saved_model",
            "--out",
            t / "run",
        ],
        USAGE,
        r"run.*(not empty|overwrite)",
        cli=True,
    ),
    BadInput(
        "export: saved_model into a user folder",
        lambda t: _user_folder(_with_model(t)),
        lambda t: [
            "export",
            t / "model.keras",
            "--format",
            "saved_model",
            "--out",
            t / "mine",
        ],
        USAGE,
        r"mine.*(not empty|overwrite)",
        cli=True,
    ),
    BadInput(
        "export: .keras over an existing file",
        lambda t: (_with_model(t), (t / "copy.keras").write_text("mine"))[0],
        lambda t: [
            "export",
            t / "model.keras",
            "--format",
            "keras",
            "--out",
            t / "copy.keras",
        ],
        USAGE,
        r"copy\.keras.*overwrite",
        cli=True,
    ),
    BadInput(
        "export: int8 without calibration data",
        _with_model,
        lambda t: [
            "export",
            t / "model.keras",
            "--format",
            "tflite",
            "--quantize",
            "int8",
        ],
        USAGE,
        r"--representative",
        cli=True,
    ),
    BadInput(
        "export: corrupt model",
        _corrupt_model,
        lambda t: ["export", t / "model.keras", "--format", "keras"],
        USAGE,
        r"model\.keras.*(not a valid|Keras model)",
        cli=True,
    ),
    # describe / demo
    BadInput(
        "describe: unknown backbone",
        lambda t: t,
        lambda t: ["describe", "mobilenet_v9"],
        USAGE,
        r"Unknown image backbone.*mobilenet_v9",
        cli=True,
    ),
    BadInput(
        "describe: folder without config.json",
        lambda t: t,
        lambda t: ["describe", t],
        USAGE,
        r"without config\.json",
        cli=True,
    ),
    BadInput(
        "demo: --out holds user files",
        lambda t: _user_folder(_images(t / "images").parent),
        lambda t: [
            "demo",
            "--task",
            "image",
            "--data",
            t / "images",
            "--out",
            t / "mine",
            "--quiet",
        ],
        USAGE,
        r"`--out` is not empty.*thesis\.tex",
        cli=True,
    ),
    BadInput(
        "demo: image data missing",
        lambda t: t,
        lambda t: ["demo", "--task", "image", "--data", t / "nope"],
        USAGE,
        r"No image folder found.*nope",
        cli=True,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_command_line(row, tmp_path):
    check_bad_input(row, tmp_path)
