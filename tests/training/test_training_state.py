"""`checkpoint_dir`: finished stages are skipped, other arguments refused,
and the epoch log keeps one entry per epoch.

That a run killed mid-epoch (SIGKILL) and resumed loses no epoch of its
history is proven in `test_training_resume.py`, epoch by epoch against an
uninterrupted run.
"""

import numpy as np
import pytest
from _tiny import tiny_data
from _training_models import last_dense, tiny_classifier

import kerastune_ft as kft
from kerastune_ft.training.callbacks import EpochLog


def test_checkpoint_dir_skips_finished_stages(tmp_path):
    data = tiny_data()
    first = kft.fine_tune(
        tiny_classifier(),
        data,
        data,
        epochs=2,
        checkpoint_dir=tmp_path,
        verbose=0,
        seed=0,
    )
    model = tiny_classifier()
    again = kft.fine_tune(
        model, data, data, epochs=2, checkpoint_dir=tmp_path, verbose=0, seed=0
    )
    assert again.history == first.history and again.best_epoch == first.best_epoch
    np.testing.assert_allclose(
        last_dense(model).get_weights()[0], last_dense(first.model).get_weights()[0]
    )


def test_checkpoint_dir_refuses_a_run_made_with_other_arguments(tmp_path):
    data = tiny_data()
    kft.fine_tune(
        tiny_classifier(), data, data, epochs=2, checkpoint_dir=tmp_path, verbose=0
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError) as error:
        kft.fine_tune(
            tiny_classifier(),
            data,
            data,
            epochs=3,
            learning_rate=0.5,
            checkpoint_dir=tmp_path,
            verbose=0,
        )
    message = str(error.value)
    assert "epochs=2 there, epochs=3 here" in message
    assert "stages=" in message  # the head stage's learning rate changed
    assert "Pass the same arguments" in message and "another" in message
    assert f"Received: checkpoint_dir={str(tmp_path)!r}" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # Arguments that do not change the run (verbosity, callbacks) may differ.
    kft.fine_tune(
        tiny_classifier(), data, data, epochs=2, checkpoint_dir=tmp_path, verbose=1
    )


def test_epoch_log_keeps_the_latest_entry_per_epoch(tmp_path):
    path = str(tmp_path / "epochs.jsonl")
    log = EpochLog(path)
    log.on_epoch_end(0, {"loss": 0.9})
    log.on_epoch_end(1, {"loss": 0.7})
    log.on_epoch_end(1, {"loss": 0.6})  # epoch 2 again, after a resume
    assert EpochLog.read(path) == {"loss": [0.9, 0.6]}
    assert EpochLog(path).history() == {"loss": [0.9, 0.6]}
