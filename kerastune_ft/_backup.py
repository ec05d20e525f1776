"""Atomic `BackupAndRestore` backups: each one a folder committed by a rename.

`kft.distribute.AtomicBackupAndRestore` and `kft.distribute.write_json` live
here (and are public there); `kft.distribute.backup_and_restore` decides
which process writes. Nothing here depends on the Keras backend: weights go
through `model.save_weights` / `load_weights`, metadata through JSON.
"""

import json
import os
import shutil
import tempfile

import keras

from kerastune_ft import _compat

__all__ = ["AtomicBackupAndRestore", "write_json"]


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """A `BackupAndRestore` whose every backup is one folder, committed by a rename.

    Keras' `keras.callbacks.BackupAndRestore` overwrites `latest.weights.h5`
    and then `training_metadata.json` in place: a process killed between the
    two resumes an epoch's weights with the previous epoch's counter, and one
    killed while writing the JSON cannot resume at all. Here each backup is
    written into a temporary folder (weights, metadata and the state of
    `companions`), flushed, and renamed to `ckpt-NNNNNN`: a backup exists
    whole or not at all, and what the companions saved always belongs to
    the same epoch as the weights. Restoring takes the newest backup that
    loads, falling back to the previous one (`double_checkpoint=True`), and
    resumes `fit` at the saved epoch, as Keras' callback does.

    A companion is any object with `save_state(folder, previous)` (write its
    files into `folder`; `previous` is the last committed backup folder or
    `None`, to link unchanged large files) and `load_state(folder)`.
    `kft.fine_tune` uses it for its best-epoch tracker.

    A fit that stopped early (a callback set `model.stop_training` before
    this one ran) is saved as finished, so that resuming does not train it
    further.

    With `write=False` (multi-worker training, non-chief workers) it restores
    from the chief's backups and saves only to a private temporary folder it
    deletes at once: saving weights may run collective ops, so every worker
    must save whenever the chief does (TensorFlow's multi-worker
    checkpointing pattern). It never writes to `backup_dir`.

    Args:
        backup_dir: the backup folder (only this callback's files go there).
        companions: objects whose state is saved with each backup. Defaults
            to `()`.
        write: whether this process writes backups. Defaults to `True`.
        double_checkpoint: keep the previous backup too, and fall back to it
            when the newest one cannot be loaded. Defaults to `False`.
        delete_checkpoint: delete `backup_dir` when `fit` ends. Defaults to
            `True`, as in Keras.

    Example:

    >>> import kerastune_ft as kft
    >>> callback = kft.distribute.AtomicBackupAndRestore("/tmp/kft_backup")
    >>> callback.committed()
    []
    """

    _PREFIX = "ckpt-"

    def __init__(
        self,
        backup_dir,
        *,
        companions=(),
        write=True,
        double_checkpoint=False,
        delete_checkpoint=True,
    ):
        super().__init__()
        if not backup_dir:
            raise ValueError(
                "`backup_dir` must be a folder path. "
                f"Received: backup_dir={backup_dir!r}."
            )
        self.backup_dir = os.fspath(backup_dir)
        self.companions = list(companions)
        self.write = write
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self.epoch = 0

    def committed(self):
        """Committed backup folders, newest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        names = [
            n
            for n in os.listdir(self.backup_dir)
            if n.startswith(self._PREFIX) and n[len(self._PREFIX) :].isdigit()
        ]
        names.sort(key=lambda n: int(n[len(self._PREFIX) :]), reverse=True)
        return [os.path.join(self.backup_dir, n) for n in names]

    def on_train_begin(self, logs=None):
        folders = self.committed()
        errors = []
        for folder in folders[: 2 if self.double_checkpoint else 1]:
            try:
                self._load_folder(folder)
                return
            except (OSError, ValueError, KeyError) as e:
                errors.append(f"{folder}: {e}")
        if errors:
            raise ValueError(
                f"The backup in {self.backup_dir!r} cannot be loaded ("
                + "; ".join(errors)
                + "). Delete that folder to train from the start."
            )

    def _load_folder(self, folder):
        if self.model.optimizer is not None and not self.model.optimizer.built:
            # The optimizer's variables must exist before loading them.
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(folder, "model.weights.h5"))
        with open(os.path.join(folder, "training_metadata.json")) as f:
            metadata = json.load(f)
        for companion in self.companions:
            companion.load_state(folder)
        _compat.set_fit_initial_epoch(self.model, int(metadata["epoch"]))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        if self.model.stop_training:
            # Stopped (early stopping, NaN): a resumed fit has nothing left.
            self.epoch = int(self.params.get("epochs") or epoch + 1)
        self.save()

    def save(self):
        """Commits a backup of the model (and companions) at `self.epoch`."""
        if not self.write:
            with tempfile.TemporaryDirectory(prefix="kerastune_ft_worker_") as folder:
                self.model.save_weights(os.path.join(folder, "model.weights.h5"))
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        folders = self.committed()
        number = (
            int(os.path.basename(folders[0])[len(self._PREFIX) :]) + 1 if folders else 0
        )
        final = os.path.join(self.backup_dir, f"{self._PREFIX}{number:06d}")
        tmp = os.path.join(self.backup_dir, f".{self._PREFIX}{number:06d}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        self.model.save_weights(os.path.join(tmp, "model.weights.h5"))
        write_json(
            os.path.join(tmp, "training_metadata.json"),
            {"epoch": self.epoch, "batch": 0},
        )
        for companion in self.companions:
            companion.save_state(tmp, folders[0] if folders else None)
        _fsync_folder(tmp)
        os.replace(tmp, final)
        _fsync_folder(self.backup_dir)
        keep = 2 if self.double_checkpoint else 1
        for old in folders[keep - 1 :]:
            shutil.rmtree(old, ignore_errors=True)

    def on_train_end(self, logs=None):
        # Keras never clears it: the next fit() of this model would start at
        # the restored epoch instead of its own initial_epoch.
        _compat.set_fit_initial_epoch(self.model, None)
        if self.write and self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


def write_json(path, value):
    """Writes JSON to `path` and flushes it to disk."""
    with open(path, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())


def _fsync_folder(folder):
    # A rename is durable only once the files and the folder are on disk.
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
