"""`kft.run` from Python: the steps, what reaches the library, what it returns.

The signature pin (`tests/config/test_config_signatures.py`) says that every
config key *is* a keyword of the function it feeds; these tests show that a
run passes exactly the keys that are set, unchanged, and nothing restated.
"""

import csv

import numpy as np
import pytest

import kerastune_ft
from kerastune_ft.config import config_from_dict
from kerastune_ft.pipeline import RunResult, load_run_data, run


class _Stop(Exception):
    pass


def _images(root, per_class=6):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("cat", "dog", "fox")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.uniform(0, 80, (32, 32, 3))
            pixels[..., 0] += 80 * label
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"{i}.png")
    return root


def _image_config(root, **sections):
    raw = {
        "task": "image",
        "name": "tiny",
        "data": {
            "source": str(root),
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
        "output": {"plots": False},
    }
    for section, values in sections.items():
        is_table = isinstance(values, dict)
        raw[section] = {**raw.get(section, {}), **values} if is_table else values
    return config_from_dict(raw)


def test_only_the_keys_set_reach_fine_tune_unchanged(tmp_path, monkeypatch):
    """No restated default: fine_tune_learning_rate and epochs stay fine_tune's."""
    seen = {}

    def spy(model, train, validation_data=None, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(kerastune_ft, "fine_tune", spy)
    cfg = _image_config(
        _images(tmp_path / "images"),
        training={"epochs": None, "learning_rate": 3e-3, "augmented_views": 2},
        model={"augmentation": "light", "label_mode": "categorical"},
    )
    with pytest.raises(_Stop):
        run(cfg, tmp_path / "run", verbose=0)
    passed = {k: v for k, v in seen.items() if v is not None}
    assert set(passed) == {
        "learning_rate",
        "augmented_views",
        "schedule",
        "checkpoint_dir",
        "seed",
        "verbose",
    }
    assert passed["learning_rate"] == 3e-3 and passed["augmented_views"] == 2
    assert "fine_tune_learning_rate" not in seen and "epochs" not in seen


def test_run_from_python_returns_a_typed_result(tmp_path):
    cfg = _image_config(_images(tmp_path / "images"), seed=1)
    result = run(cfg, tmp_path / "run", verbose=0)
    assert isinstance(result, RunResult) and result.out == tmp_path / "run"
    assert result.diverged is False and result.result.epochs_run == 1
    assert set(result.evaluation.to_dict()["results"]) == {"val"}
    assert result.metrics["class_names"] == ["cat", "dog", "fox"]
    assert result.data_checks.findings == ()
    with open(tmp_path / "run" / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]
    assert not (tmp_path / "run" / "plots").exists()  # output.plots = false
    # A finished run has nothing left to resume.
    assert run(cfg, tmp_path / "run", resume=True, verbose=0) is None


def test_a_name_the_library_does_not_know_fails_at_the_start(tmp_path):
    """Choices (poolings, schedules, presets) are the library's to check."""
    cfg = _image_config(_images(tmp_path / "images"), head={"pooling": "cls"})
    with pytest.raises(ValueError, match="pooling='cls'"):
        run(cfg, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "model.keras").exists()


def test_text_csv_columns_reach_the_loader(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = [f"{'great' if i % 2 else 'awful'} thing {i};{i % 2};x" for i in range(20)]
    path.write_text("review;stars;other\n" + "\n".join(rows) + "\n")
    cfg = config_from_dict(
        {
            "task": "text",
            "data": {
                "source": str(path),
                "text_column": "review",
                "label_column": "stars",
                "delimiter": ";",
                "max_per_class": 6,
            },
            "model": {"backbone": "minilm-l6"},
        }
    )
    data = load_run_data(cfg)
    assert data.class_names == ("0", "1")
    assert data.counts["train"] == {"0": 6, "1": 6}  # max_per_class
    assert data.examples["train"][0][0].split()[0] in ("great", "awful")


def test_config_may_be_a_path_or_a_dict(tmp_path):
    with pytest.raises(ValueError, match="config file not found"):
        run(tmp_path / "none.toml", tmp_path / "run")
    with pytest.raises(ValueError, match="missing key `task`"):
        run({"data": {}}, tmp_path / "run")
    with pytest.raises(TypeError, match="Received: config=3"):
        run(3, tmp_path / "run")
