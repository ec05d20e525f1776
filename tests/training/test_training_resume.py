"""A run killed with SIGKILL and resumed ends on the same best weights.

One two-stage run of a tiny model trains in a subprocess with
`checkpoint_dir` and is killed three times (while the best epoch's backup is
being written, in the middle of an epoch of stage 2 after its best epoch,
while a weights file is being written), each fresh subprocess resuming where
the last one died; a last one finishes it. Compared with an uninterrupted
run: the same history epoch by epoch (no epoch lost or repeated), the same
best epoch, and a final model that evaluates to that epoch's `val_loss`. A
slow head stage, then a fast unfreezing stage (a constant, high learning
rate) against validation labels a third of which are wrong, make the best
epoch an early one of stage 2 (epoch 4 of 7), so restoring any later
epoch's weights shows.
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
# be compared with the uninterrupted one epoch by epoch. Two stages whose best
# epoch is the second of stage 2 (epoch 4 of 7): a slow head stage, then a
# fast unfreezing one.
TRAIN_KW = {
    "epochs": 2,
    "learning_rate": 0.01,
    "schedule": "constant",
    "patience": 6,
    "cache_features": False,
    "verbose": 0,
    "seed": 0,
}
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
    "history": result.history,
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


@pytest.mark.slow
@pytest.mark.heavy(65)  # seconds, about: the longest start first
def test_run_killed_three_times_resumes_to_the_best_epoch(tmp_path):
    # Each process resumes where the previous one was killed (one subprocess
    # per kill keeps this test fast: each pays TensorFlow's import).
    kills = [
        # While writing the best-epoch state of epoch 4 (the best epoch, the
        # 4th backup): epoch 4 is trained again from epoch 3's backup.
        {"at": "best_state", "call": 4},
        # In the middle of epoch 6 (stage 2's fourth), after stage 2's best.
        {"at": "batch", "epoch": 6, "batch": 1},
        # While writing the weights of the second backup after resuming
        # (epoch 7's): half a weights file.
        {"at": "save_weights", "call": 2},
    ]
    result, evaluated = _reference(TRAIN_KW, STAGE_2)
    # The setting this test relies on: an early best epoch of stage 2, later
    # ones worse.
    assert len(result.stages) == 2 and result.epochs_run == 7
    assert result.best_epoch == 4, result.history
    assert evaluated == pytest.approx(result.best_metrics["val_loss"], abs=1e-4)
    config = {"ckpt": str(tmp_path / "ckpt"), "unfreeze": STAGE_2, "kw": TRAIN_KW}
    for kill in kills:
        killed = _run(tmp_path, {**config, "kill": kill})
        assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-3000:])
    resumed = _result(_run(tmp_path, config))
    # No epoch lost (nor repeated): every epoch's metrics, as uninterrupted.
    assert resumed["epochs_run"] == result.epochs_run
    assert resumed["history"].keys() == result.history.keys()
    for key, values in result.history.items():
        assert len(resumed["history"][key]) == len(values) == 7, key
        assert resumed["history"][key] == pytest.approx(values, abs=1e-4), key
    assert resumed["best_epoch"] == result.best_epoch
    assert resumed["evaluated"] == pytest.approx(resumed["best_val_loss"], abs=1e-4)
    assert resumed["best_val_loss"] == pytest.approx(
        result.best_metrics["val_loss"], abs=1e-4
    )
