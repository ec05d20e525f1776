"""`checkpoint_dir`: finished stages are skipped, other arguments refused,
and a run killed mid-epoch loses no epoch of its history."""

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


RESUME_SCRIPT = """
import sys, time, keras
sys.path[:0] = {tests!r}
from _tiny import tiny_data
from _training_models import tiny_classifier
import kerastune_ft as kft


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.15)  # slow enough to be killed in the middle of an epoch


keras.utils.set_random_seed(0)
result = kft.fine_tune(
    tiny_classifier(), tiny_data(), tiny_data(seed=1), epochs=6, early_stopping=False,
    cache_features=False, checkpoint_dir={ckpt!r}, callbacks=[Slow()], verbose=0, seed=0,
)
print("EPOCHS", result.epochs_run)
"""


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_without_losing_epochs(tmp_path):
    import os
    import pathlib
    import signal
    import subprocess
    import sys
    import time

    ckpt = tmp_path / "ckpt"
    script = tmp_path / "train.py"
    here = pathlib.Path(__file__).resolve().parent
    tests_dir = [str(here), str(here.parent)]
    script.write_text(RESUME_SCRIPT.format(tests=tests_dir, ckpt=str(ckpt)))
    log = ckpt / "epochs_stage0.jsonl"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # into the third epoch (3 batches x 0.15 s)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = len(log.read_text().splitlines())
    assert 2 <= done_before < 6

    finished = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    assert b"EPOCHS 6" in finished.stdout
    history = EpochLog.read(str(log))
    assert len(history["loss"]) == 6 and len(history["val_loss"]) == 6
