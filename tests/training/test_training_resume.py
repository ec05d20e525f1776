"""A run killed with SIGKILL and resumed ends on the same best weights.

Each case trains a tiny model in a subprocess with `checkpoint_dir`, kills it
(in the middle of an epoch, while a backup is being written, in stage 2),
resumes it in a fresh subprocess with the same arguments, and compares with
an uninterrupted run: the same best epoch, and a final model that evaluates
to that epoch's `val_loss`. A constant, high learning rate and validation
labels a third of which are wrong make the best epoch an early one (epoch 2
of 6), so restoring any later epoch's weights shows.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import keras
import pytest
import tensorflow as tf
from _tiny import tiny_arrays, tiny_data
from _training_models import tiny_classifier

import kerastune_ft as kft

HERE = pathlib.Path(__file__).resolve().parent
TESTS = [str(HERE), str(HERE.parent)]
# Uncached and unshuffled: a resumed run repeats the same batches, so it can
# be compared with the uninterrupted one epoch by epoch.
TRAIN_KW = {
    "epochs": 6,
    "learning_rate": 1.0,
    "schedule": "constant",
    "patience": 6,
    "cache_features": False,
    "verbose": 0,
    "seed": 0,
}
# Two stages whose best epoch is the second of stage 2 (epoch 4 of 7): a slow
# head stage, then a fast unfreezing one.
STAGE_2_KW = {**TRAIN_KW, "epochs": 2, "learning_rate": 0.01}
STAGE_2 = {"top": 1, "learning_rate": 1.0, "epochs": 5}


def noisy_val():
    """Validation data whose every third label is wrong: overfitting shows."""
    x, y = tiny_arrays(seed=1)
    y = y.copy()
    y[::3] = (y[::3] + 1) % 3
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


SCRIPT = """
import json, os, signal, sys
sys.path[:0] = {tests!r}
import keras
from _tiny import tiny_data
from _training_models import tiny_classifier
from test_training_resume import noisy_val
import kerastune_ft as kft
from kerastune_ft import distribute

config = json.loads(sys.argv[1])
kill = config.get("kill") or {{}}
calls = {{"n": 0}}


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch + 1, batch) == (kill["epoch"], kill["batch"]):
            die()


def partly(write, path):
    # Writes the file, keeps half of it, and dies: a kill in mid-write.
    write()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    die()


if kill.get("at") == "save_weights":
    original = keras.Model.save_weights

    def save_weights(self, filepath, *args, **kwargs):
        calls["n"] += 1
        write = lambda: original(self, filepath, *args, **kwargs)
        if calls["n"] == kill["call"]:
            partly(write, filepath)
        return write()

    keras.Model.save_weights = save_weights
if kill.get("at") == "best_state":
    original_json = distribute.write_json

    def write_json(path, value):
        if os.path.basename(path) == "best.json":
            calls["n"] += 1
            if calls["n"] == kill["call"]:
                partly(lambda: original_json(path, value), path)
        return original_json(path, value)

    distribute.write_json = write_json

keras.utils.set_random_seed(0)
model = tiny_classifier()
val = noisy_val()
callbacks = [KillAt()] if kill.get("at") == "batch" else []
result = kft.fine_tune(
    model, tiny_data(), val, checkpoint_dir=config["ckpt"], callbacks=callbacks,
    unfreeze=config.get("unfreeze"), **config["kw"]
)
print("RESULT", json.dumps({{
    "best_epoch": result.best_epoch,
    "best_val_loss": result.best_metrics.get("val_loss"),
    "evaluated": model.evaluate(val, verbose=0, return_dict=True)["loss"],
    "epochs_run": result.epochs_run,
}}))
"""


def _run(tmp_path, config, timeout=240):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=TESTS))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, str(script), json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _result(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _reference(kw, unfreeze=None):
    """The uninterrupted run, in this process (the same seeded computation)."""
    keras.utils.set_random_seed(0)
    model = tiny_classifier()
    val = noisy_val()
    result = kft.fine_tune(model, tiny_data(), val, unfreeze=unfreeze, **kw)
    evaluated = model.evaluate(val, verbose=0, return_dict=True)["loss"]
    return result, evaluated


def _check_resumed(tmp_path, kw, unfreeze, kills):
    result, evaluated = _reference(kw, unfreeze)
    # The setting this test relies on: an early best epoch, later ones worse.
    assert result.best_epoch < result.epochs_run - 1
    assert evaluated == pytest.approx(result.best_metrics["val_loss"], abs=1e-4)
    config = {"ckpt": str(tmp_path / "ckpt"), "unfreeze": unfreeze, "kw": kw}
    for kill in kills:
        killed = _run(tmp_path, {**config, "kill": kill})
        assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-3000:])
    resumed = _result(_run(tmp_path, config))
    assert resumed["epochs_run"] == result.epochs_run
    assert resumed["best_epoch"] == result.best_epoch
    assert resumed["evaluated"] == pytest.approx(resumed["best_val_loss"], abs=1e-4)
    assert resumed["best_val_loss"] == pytest.approx(
        result.best_metrics["val_loss"], abs=1e-4
    )


@pytest.mark.slow
@pytest.mark.heavy(70)  # seconds, about: the longest start first
def test_run_killed_three_times_resumes_to_the_best_epoch(tmp_path):
    # Each process resumes where the previous one was killed (one subprocess
    # per kill keeps this test fast: each pays TensorFlow's import).
    kills = [
        # While writing the best-epoch state of epoch 2 (the best epoch):
        # epoch 2 is trained again from epoch 1's backup.
        {"at": "best_state", "call": 2},
        # In the middle of epoch 4, long after the best epoch.
        {"at": "batch", "epoch": 4, "batch": 1},
        # While writing the weights of the second backup after resuming
        # (epoch 5's): half a weights file.
        {"at": "save_weights", "call": 2},
    ]
    _check_resumed(tmp_path, TRAIN_KW, None, kills)


@pytest.mark.slow
def test_run_killed_in_stage_2_resumes_to_the_best_epoch(tmp_path):
    # Killed in epoch 6 (stage 2's fourth), after stage 2's best epoch.
    kills = [{"at": "batch", "epoch": 6, "batch": 1}]
    _check_resumed(tmp_path, STAGE_2_KW, STAGE_2, kills)
