"""kft.tuning.cross_validate on tiny models (no pretrained weights)."""

import json
import os

import numpy as np
import pytest
from _tiny import tiny_arrays, tiny_builder

from kerastune_ft import tuning
from kerastune_ft.tuning.folds import splitter


def tiny_data(n=24, seed=0):
    return tiny_arrays(n, seed=seed)


# One recipe for the in-process and the isolated run, so they can be compared.
COMMON = dict(folds=2, seed=0, fine_tune_kwargs={"epochs": 3}, batch_size=6)


@pytest.fixture(scope="module")
def in_process():
    """The recipe cross-validated in this process (shared by the tests)."""
    # A lambda: loky pickles it with cloudpickle, as a notebook would need.
    return tuning.cross_validate(
        lambda: tiny_builder(dropout=0.0), tiny_data(), **COMMON
    )


def test_folds_metrics_mean_std_verdicts_and_plot(in_process):
    cv = in_process
    assert [f.fold for f in cv.folds] == [1, 2]
    assert [f.repeat for f in cv.folds] == [1, 1]
    assert [f.pid for f in cv.folds] == [os.getpid()] * 2
    for f in cv.folds:
        assert (f.train_size, f.val_size) == (12, 12)
        assert len(f.history["loss"]) == f.epochs_run == 3
        assert set(f.metrics) == {"loss", "accuracy"}
        assert f.verdict in {
            "overfitting",
            "underfitting",
            "still_improving",
            "fits_well",
        }
        assert f.peak_rss_mb is None or f.peak_rss_mb > 0
    accuracies = [f.metrics["accuracy"] for f in cv.folds]
    assert cv.mean["accuracy"] == pytest.approx(np.mean(accuracies))
    assert cv.std["accuracy"] == pytest.approx(np.std(accuracies))
    assert cv.verdicts == [f.verdict for f in cv.folds]
    assert "accuracy: " in cv.summary("accuracy") and "over 2 folds" in cv.summary()
    json.dumps(cv.to_dict())  # serializable, for reports
    fig = cv.plot()
    # train and held-out curves for every fold
    assert len(fig.axes[0].get_lines()) >= 4


def test_isolated_folds_run_in_fresh_processes_and_match(in_process):
    isolated = tuning.cross_validate(
        lambda: tiny_builder(dropout=0.0), tiny_data(), isolate=True, **COMMON
    )
    pids = [f.pid for f in isolated.folds]
    assert os.getpid() not in pids and len(set(pids)) == 2, pids
    for a, b in zip(isolated.folds, in_process.folds, strict=True):
        # Seeded before each build: the same fold gives the same model.
        assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], rel=1e-4)
        assert a.epochs_run == b.epochs_run
    assert isolated.folds[0].verdict is not None


def test_repeats_reshuffle_the_folds():
    x, y = tiny_data()
    splits = list(splitter(2, True, 2, 0).split(x, y))
    assert len(splits) == 4
    # The second repeat is a different partition of the same examples.
    assert sorted(splits[0][1]) != sorted(splits[2][1]) or sorted(
        splits[0][1]
    ) != sorted(splits[3][1])


def test_stratified_folds_keep_class_balance():
    x, y = tiny_data(n=30)
    for _, val_idx in splitter(3, True, 1, 0).split(x, y):
        # 10 examples per class over 3 folds: 3 or 4 of each class per fold
        assert set(np.bincount(y[val_idx], minlength=3).tolist()) <= {3, 4}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"folds": 1}, ValueError, "folds"),
        ({"repeats": 0}, ValueError, "repeats"),
        (
            {"folds": 9},
            ValueError,
            r"smallest class has 8 examples, fewer than `folds=9`",
        ),
        ({"build_fn": "mobilenet_v2"}, TypeError, "build_fn"),
        ({"data": "flowers/"}, TypeError, "LoadedData"),
        ({"data": ([1, 2, 3], [0, 1])}, ValueError, "differ in length"),
        ({"fine_tune_kwargs": {"train": None}}, ValueError, "cannot set 'train'"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"isolate": "yes"}, TypeError, r"isolate='yes'"),
        ({"fine_tune_kwargs": {"epoch": 3}}, ValueError, r"\['epoch'\]"),
        (
            {"data": (np.zeros((24, 8, 8, 3)), np.eye(3)[np.arange(24) % 3])},
            ValueError,
            "stratified=False",
        ),
    ],
)
def test_bad_arguments_fail_before_training(kwargs, error, match):
    arguments = {"build_fn": tiny_builder, "data": tiny_data(), "folds": 2}
    arguments.update(kwargs)
    build_fn = arguments.pop("build_fn")
    data = arguments.pop("data")
    with pytest.raises(error, match=match):
        tuning.cross_validate(build_fn, data, **arguments)
