"""tf.distribute strategies with builders and fine_tune, run for real.

- `MirroredStrategy` over 2 logical CPU devices (a subprocess: the device
  split must happen before TensorFlow initializes): the same seeded run
  gives the same metrics as the default strategy.
- `MultiWorkerMirroredStrategy` with 2 worker processes on 127.0.0.1: one
  model on a sharded dataset, only the chief writes (checkpoints, report),
  the result matches a single-process run; a worker killed mid-run, and the
  job restarted, resumes from `BackupAndRestore`.

This file is also the worker program: `python test_distribute.py '<json>'`.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerastune_ft as kft
from kerastune_ft import distribute

HERE = pathlib.Path(__file__).resolve().parent
# The tiny problem all runs share: 32 examples, global batch 16, 3 classes.
# Few epochs: under a strategy every epoch builds a distributed iterator,
# which costs about a second on a quiet 2-core machine.
EXAMPLES, BATCH, EPOCHS = 32, 16, 3
TRAIN_KW = {
    "learning_rate": 0.05,
    "schedule": "constant",
    "early_stopping": False,
    "verbose": 0,
    "seed": 3,
}
WORKER_TIMEOUT = 420  # seconds; generous: the machine may be shared and slow


def _tiny_data():
    sys.path.insert(0, str(HERE))
    from _tiny import tiny_data

    return tiny_data(n=EXAMPLES, batch_size=BATCH)


def _tiny_model():
    sys.path[:0] = [str(HERE), str(HERE / "training")]
    from _training_models import tiny_classifier

    return tiny_classifier()


def _train_tiny(strategy=None, cache="auto", validate=True, explicit=False, **kwargs):
    """Seeded tiny model trained by fine_tune, built in `strategy`'s scope.

    `explicit` also passes `strategy=` to fine_tune (else it finds the
    model's own). Without validation (the multi-worker runs: half the distributed
    iterators) the training loss picks the best epoch.
    """
    keras.utils.set_random_seed(3)
    data = _tiny_data()
    with distribute.strategy_scope(strategy):
        model = _tiny_model()
    return kft.fine_tune(
        model,
        data,
        data if validate else None,
        epochs=EPOCHS,
        cache_features=cache,
        monitor="val_loss" if validate else "loss",
        strategy=strategy if explicit else None,
        **TRAIN_KW,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# In-process: argument handling (no extra devices needed)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, error, message",
    [
        ("gpus", ValueError, "Received: strategy='gpus'"),
        (2, TypeError, "Received: strategy=2"),
        (["mirrored"], TypeError, "tf.distribute.Strategy"),
    ],
)
def test_resolve_strategy_rejects_bad_values(value, error, message):
    with pytest.raises(error, match=message):
        distribute.resolve_strategy(value)


def test_another_backends_strategy_says_what_to_use_instead(monkeypatch):
    with pytest.raises(ValueError, match="Use strategy='mirrored'"):
        distribute.resolve_strategy("data_parallel")  # keras.distribution: JAX
    monkeypatch.setattr(distribute, "_backend", lambda: "torch")  # not installed
    assert distribute.resolve_strategy("default") is None
    with pytest.raises(ValueError, match="KERAS_BACKEND=jax"):
        distribute.resolve_strategy("mirrored")
    with pytest.raises(ValueError, match="only on the TensorFlow backend"):
        distribute.resolve_strategy(tf.distribute.get_strategy())


def test_current_strategy_and_has_strategy_follow_the_scope():
    assert distribute.current_strategy() is None and not distribute.has_strategy()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with distribute.strategy_scope(strategy):
        assert distribute.current_strategy() is strategy
        assert distribute.has_strategy()
    assert not distribute.has_strategy()
    assert distribute.current_strategy(strategy) is strategy
    assert distribute.current_strategy("default") is tf.distribute.get_strategy()


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG is not set"):
        distribute.resolve_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.resolve_strategy("multi_worker")


def test_default_strategy_helpers():
    assert distribute.resolve_strategy(None) is None
    default = distribute.resolve_strategy("default")
    assert default.num_replicas_in_sync == 1
    assert distribute.is_chief(default) and not distribute.is_multi_worker(default)
    assert distribute.global_batch_size(8, default) == 8
    assert distribute.scale_learning_rate(1e-3, default, rule="sqrt") == 1e-3
    with pytest.raises(ValueError, match="Received: rule='cubic'"):
        distribute.scale_learning_rate(1e-3, rule="cubic")
    with pytest.raises(ValueError, match="per_replica_batch_size"):
        distribute.global_batch_size(0)


def test_fine_tune_refuses_a_model_built_outside_the_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    model = _tiny_model()  # plain variables
    with pytest.raises(ValueError, match="created outside its scope"):
        kft.fine_tune(model, _tiny_data(), epochs=1, monitor="loss", strategy=strategy)
    with strategy.scope(), pytest.raises(ValueError, match="created outside"):
        kft.fine_tune(model, _tiny_data(), epochs=1, monitor="loss", verbose=0)


def test_fine_tune_follows_the_model_strategy_outside_its_scope():
    # Built in the scope, trained outside it: fine_tune re-enters the scope
    # for every compile (a plain recompile outside would mix strategies).
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _tiny_model()
    data = _tiny_data()
    result = kft.fine_tune(model, data, data, epochs=2, **TRAIN_KW)
    assert distribute.model_strategy(result.model) is strategy
    assert result.model.optimizer is not None
    assert result.stages[0].cached == "train+val"


def test_save_summary_writes_json_on_the_single_process_chief(tmp_path):
    data = _tiny_data()
    result = kft.fine_tune(_tiny_model(), data, data, epochs=2, **TRAIN_KW)
    path = distribute.save_summary(result, str(tmp_path / "out" / "summary.json"))
    summary = json.loads(pathlib.Path(path).read_text())
    assert summary["epochs_run"] == 2 and summary["num_replicas"] == 1
    assert summary["history"]["val_loss"] == pytest.approx(result.history["val_loss"])


# ---------------------------------------------------------------------------
# Subprocess workers
# ---------------------------------------------------------------------------


def _run_python(config, env=None, timeout=WORKER_TIMEOUT):
    completed = subprocess.run(
        [sys.executable, str(pathlib.Path(__file__).resolve()), json.dumps(config)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


@pytest.mark.heavy(60)  # seconds, about: the longest start first
def test_mirrored_two_logical_devices_match_the_default_strategy(tmp_path):
    out = tmp_path / "mirrored.json"
    _run_python({"mode": "mirrored", "out": str(out)})
    r = json.loads(out.read_text())
    assert r["devices"] == 2 and r["replicas"] == 2
    assert r["global_batch_size"] == 16 and r["scaled_lr"] == pytest.approx(2e-3)
    # Cached: features are computed once per example as usual; Keras peeks one
    # extra (seeded) shuffle under a strategy, so epochs see another order.
    assert r["mirrored_cached"]["cached"] == "train+val"
    assert r["mirrored_cached"]["val_loss"][-1] == pytest.approx(
        r["default_cached"]["val_loss"][-1], abs=0.02
    )
    assert r["mirrored_cached"]["val_loss"][-1] < r["mirrored_cached"]["val_loss"][0]
    # A second (unfreezing) stage compiled in the scope; uncached, the same
    # batches split 8 + 8 and averaged: float round-off only.
    assert r["mirrored_stages"]["stages"] == 2
    np.testing.assert_allclose(
        r["mirrored_stages"]["val_loss"], r["default_stages"]["val_loss"], atol=1e-5
    )
    # build_image_classifier(strategy=...) mirrors every variable.
    assert r["builder"]["mirrored_variables"]
    np.testing.assert_allclose(
        r["builder"]["mirrored_predictions"],
        r["builder"]["default_predictions"],
        atol=1e-5,
    )


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class _Cluster:
    """Two worker processes on 127.0.0.1, always stopped by `stop()`."""

    def __init__(self, tmp_path, name, config, kill_worker_at=None):
        ports = _free_ports(2)
        self.procs, self.logs = [], []
        for index in range(2):
            tf_config = {
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index},
            }
            worker = dict(
                config,
                mode="multi_worker",
                events=str(tmp_path / f"{name}_events{index}.json"),
            )
            if index == 1 and kill_worker_at is not None:
                worker["die_at_epoch"] = kill_worker_at
            log = open(tmp_path / f"{name}_worker{index}.log", "w")
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(pathlib.Path(__file__).resolve()),
                        json.dumps(worker),
                    ],
                    env={
                        **os.environ,
                        "TF_CPP_MIN_LOG_LEVEL": "2",
                        "TF_CONFIG": json.dumps(tf_config),
                    },
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def wait(self, timeout=WORKER_TIMEOUT):
        deadline = time.monotonic() + timeout
        codes = []
        for proc in self.procs:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        return codes

    def log_text(self, index):
        return pathlib.Path(self.logs[index].name).read_text()[-3000:]

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for log in self.logs:
            log.close()


def _events(tmp_path, name, index):
    return json.loads((tmp_path / f"{name}_events{index}.json").read_text())


def test_multi_worker_two_processes_chief_writes_and_matches_one_process(tmp_path):
    reference = _train_tiny(cache="auto", validate=False)
    checkpoint = tmp_path / "checkpoint"
    report = tmp_path / "report" / "summary.json"
    config = {
        "checkpoint_dir": str(checkpoint),
        "report": str(report),
        "watch": [str(checkpoint), str(report.parent)],
        "cache": "auto",
    }
    cluster = _Cluster(tmp_path, "run", config)
    try:
        codes = cluster.wait()
    finally:
        cluster.stop()
    assert codes == [0, 0], cluster.log_text(0) + cluster.log_text(1)
    chief, other = _events(tmp_path, "run", 0), _events(tmp_path, "run", 1)
    assert chief["is_chief"] and not other["is_chief"]
    assert chief["replicas"] == other["replicas"] == 2
    # Only the chief wrote: checkpoints (backups, run state, epoch logs) and
    # the report; the other worker wrote nothing at all in those folders.
    assert other["writes"] == [] and other["report"] is None
    assert any("backup_stage0" in w for w in chief["writes"])
    assert any("run_state.json" in w for w in chief["writes"])
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "epochs_stage0.jsonl",
        "run_args.json",
        "run_state.json",
        "stage1.weights.npz",
    ]
    summary = json.loads(report.read_text())
    assert summary["num_replicas"] == 2 and summary["epochs_run"] == EPOCHS
    assert summary["stages"][0]["cached"] == "train"
    # Both workers hold the same model, close to the single-process one (the
    # cached features are shuffled in another seeded order, as with mirrored).
    assert chief["loss"] == other["loss"] == summary["history"]["loss"]
    assert summary["history"]["loss"][-1] == pytest.approx(
        reference.history["loss"][-1], abs=0.02
    )


def test_multi_worker_killed_worker_resumes_from_backup(tmp_path):
    # Uncached: the shuffle-free batches make the restarted job's result
    # comparable with a single uninterrupted process to float round-off.
    reference = _train_tiny(cache=False, validate=False)
    checkpoint = tmp_path / "checkpoint"
    config = {
        "checkpoint_dir": str(checkpoint),
        "report": str(tmp_path / "summary.json"),
        "watch": [str(checkpoint)],
        "cache": False,
    }
    epoch_log = checkpoint / "epochs_stage0.jsonl"
    cluster = _Cluster(tmp_path, "killed", config, kill_worker_at=2)
    try:
        # Worker 1 kills itself when epoch 3 (index 2) begins; the chief
        # finishes saving epoch 2 and then waits for it in vain.
        assert cluster.procs[1].wait(timeout=WORKER_TIMEOUT) == -signal.SIGKILL
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if epoch_log.is_file() and len(epoch_log.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        cluster.stop()
    assert len(epoch_log.read_text().splitlines()) == 2
    assert list((checkpoint / "backup_stage0").glob("ckpt-*/model.weights.h5"))

    restarted = _Cluster(tmp_path, "restarted", config)
    try:
        codes = restarted.wait()
    finally:
        restarted.stop()
    assert codes == [0, 0], restarted.log_text(0) + restarted.log_text(1)
    chief, other = _events(tmp_path, "restarted", 0), _events(tmp_path, "restarted", 1)
    # Both resumed at epoch index 2: BackupAndRestore restored the weights,
    # the optimizer and the epoch counter; the history still has every epoch.
    assert chief["epochs_begun"] == other["epochs_begun"] == [2]
    assert other["writes"] == []
    np.testing.assert_allclose(chief["loss"], reference.history["loss"], atol=1e-4)
    np.testing.assert_allclose(other["loss"], chief["loss"], atol=1e-6)


# ---------------------------------------------------------------------------
# Worker program
# ---------------------------------------------------------------------------


def _mirrored_worker(config):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    out = {
        "devices": len(devices),
        "replicas": distribute.num_replicas(strategy),
        "global_batch_size": distribute.global_batch_size(8, strategy),
        "scaled_lr": distribute.scale_learning_rate(1e-3, strategy),
    }
    for name, strat in (("default", None), ("mirrored", strategy)):
        result = _train_tiny(strat, cache="auto")
        out[f"{name}_cached"] = {
            "val_loss": result.history["val_loss"],
            "cached": result.stages[0].cached,
        }
    # Two stages (head, then the unfrozen top of the backbone): each stage
    # recompiles inside the scope. Uncached, so the runs can match exactly.
    for name, strat in (("default", None), ("mirrored", strategy)):
        result = _train_tiny(
            strat, cache=False, unfreeze=[{"top": 1, "epochs": 1}], explicit=True
        )
        out[f"{name}_stages"] = {
            "val_loss": result.history["val_loss"],
            "stages": len(result.stages),
        }
    # The builder's strategy=: the backbone, head and optimizer variables are
    # mirrored on both devices, and the model computes what the plain one does.
    builder = {}
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
    for name, strat in (("default", None), ("mirrored", strategy)):
        keras.utils.set_random_seed(5)
        model = kft.build_image_classifier(
            "mobilenet_v2",
            3,
            weights=None,
            input_shape=(32, 32, 3),
            backbone_kwargs={"alpha": 0.35},
            strategy=strat,
        )
        builder[f"{name}_predictions"] = model.predict(images, verbose=0).tolist()
        if strat is not None:
            variables = [
                model.get_layer("backbone").weights[0].value,
                model.get_layer("predictions").kernel.value,
            ]
            builder["mirrored_variables"] = distribute.model_strategy(
                model
            ) is strat and all(
                isinstance(v, tf.distribute.DistributedValues) and len(v.values) == 2
                for v in variables
            )
    out["builder"] = builder
    pathlib.Path(config["out"]).write_text(json.dumps(out))


def _watch_writes(folders):
    """Records writes (files, folders, renames, removals) under `folders`."""
    folders = [os.path.abspath(f) for f in folders]
    writes = []

    def under(path):
        try:
            path = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return any(path == f or path.startswith(f + os.sep) for f in folders)

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int)
                and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
            )
            if writing and under(args[0]):
                writes.append(os.fsdecode(args[0]))
        elif event in (
            "os.mkdir",
            "os.rename",
            "os.remove",
            "os.rmdir",
            "shutil.rmtree",
        ):
            if args and under(args[0]):
                writes.append(f"{event}:{os.fsdecode(args[0])}")

    sys.addaudithook(hook)
    # HDF5 writes files from C, unseen by audit hooks: record save_weights.
    save_weights = keras.Model.save_weights

    def recorded(self, filepath, *args, **kwargs):
        if under(filepath):
            writes.append(f"save_weights:{filepath}")
        return save_weights(self, filepath, *args, **kwargs)

    keras.Model.save_weights = recorded
    return writes


def _multi_worker(config):
    strategy = distribute.resolve_strategy("multi_worker")
    writes = _watch_writes(config["watch"])
    epochs_begun = []
    die_at = config.get("die_at_epoch")

    class Probe(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == die_at:
                os.kill(os.getpid(), signal.SIGKILL)  # a worker dies mid-run
            epochs_begun.append(int(epoch))

    result = _train_tiny(
        strategy,
        cache=config["cache"],
        validate=False,
        checkpoint_dir=config["checkpoint_dir"],
        callbacks=[Probe()],
    )
    report = distribute.save_summary(result, config["report"])
    events = {
        "is_chief": distribute.is_chief(strategy),
        "replicas": distribute.num_replicas(strategy),
        "writes": list(writes),
        "report": report,
        "epochs_begun": epochs_begun,
        "loss": result.history["loss"],
    }
    # The test's own record, outside the watched folders.
    pathlib.Path(config["events"]).write_text(json.dumps(events))


if __name__ == "__main__":
    _config = json.loads(sys.argv[1])
    if _config["mode"] == "mirrored":
        _mirrored_worker(_config)
    else:
        _multi_worker(_config)
