"""Run state and resume: what `checkpoint_dir` holds between stages.

`run_args.json` records the training arguments that change the run when it
starts; a later call with other arguments is refused instead of "resuming"
into a different run. `run_state.json` records the finished stages, the
merged history, the best-epoch state, and names the weights the model had
when the last finished stage ended (`stage{N}.weights.npz`, written first,
so that the two always agree: a kill between them leaves the previous pair).
"""

import dataclasses
import json
import os

from kerastune_ft import distribute
from kerastune_ft.training.callbacks import BestState, load_arrays, save_arrays
from kerastune_ft.training.results import StageReport

__all__ = ["RunState", "check_resumable", "check_checkpoint_dir"]

_ARGS_FILE = "run_args.json"
_STATE_FILE = "run_state.json"


def check_checkpoint_dir(checkpoint_dir):
    """`checkpoint_dir` is a folder path (new or existing), not a file.

    Args:
        checkpoint_dir: the argument.

    Raises:
        TypeError, ValueError: with what to pass instead.
    """
    if not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(
            "`checkpoint_dir` must be a folder path (str or pathlib.Path) or None. "
            f"Received: checkpoint_dir={checkpoint_dir!r}."
        )
    if os.path.exists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        raise ValueError(
            "`checkpoint_dir` must be a folder, but it is an existing file. Pass a "
            "new or existing folder. Received: "
            f"checkpoint_dir={os.fspath(checkpoint_dir)!r}."
        )


def check_resumable(checkpoint_dir, arguments, write=True):
    """Refuses a `checkpoint_dir` made by a run with other arguments.

    On the first call the arguments are recorded (`write=True`); a later call
    compares with them.

    Args:
        checkpoint_dir: the folder, or `None` (nothing to check).
        arguments: `{name: JSON-able value}`, the arguments that change the
            run.
        write: whether this process records them (the chief). Defaults to
            `True`.

    Raises:
        ValueError: the folder holds a run made with other arguments; the
            message names each one, with both values.
    """
    if checkpoint_dir is None:
        return
    arguments = json.loads(json.dumps(arguments))  # tuples -> lists, int keys -> str
    path = os.path.join(checkpoint_dir, _ARGS_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        differ = sorted(
            k for k in set(saved) | set(arguments) if saved.get(k) != arguments.get(k)
        )
        if differ:
            changes = ", ".join(
                f"{k}={saved.get(k)!r} there, {k}={arguments.get(k)!r} here"
                for k in differ
            )
            raise ValueError(
                "`checkpoint_dir` holds a run made with other arguments, so it "
                f"cannot be resumed: {changes}. Pass the same arguments to resume "
                "it, or another (new or empty) checkpoint_dir to start a new run. "
                f"Received: checkpoint_dir={os.fspath(checkpoint_dir)!r}."
            )
        return
    if write:
        os.makedirs(checkpoint_dir, exist_ok=True)
        tmp = path + ".tmp"
        distribute.write_json(tmp, arguments)
        os.replace(tmp, path)


@dataclasses.dataclass
class RunState:
    """Progress across stages, saved in `checkpoint_dir` after each stage.

    Attributes:
        stages_done: how many stages finished.
        history: the merged history of the finished stages.
        reports: their `StageReport`s.
        best: the best-epoch tracker's state.
        weights: the model's weights when the last finished stage ended, or
            `None`.
    """

    stages_done: int = 0
    history: dict = dataclasses.field(default_factory=dict)
    reports: list = dataclasses.field(default_factory=list)
    best: BestState = dataclasses.field(default_factory=BestState)
    weights: list | None = None

    @classmethod
    def load(cls, directory):
        """The state saved in `directory`, or a fresh one."""
        state = cls()
        path = directory and os.path.join(directory, _STATE_FILE)
        if not path or not os.path.isfile(path):
            return state
        with open(path) as f:
            saved = json.load(f)
        state.stages_done = saved["stages_done"]
        state.history = saved["history"]
        state.reports = [StageReport(**r) for r in saved["reports"]]
        state.best = BestState(**(saved.get("best") or {}))
        if saved.get("weights"):
            state.weights = load_arrays(os.path.join(directory, saved["weights"]))
        return state

    def save(self, directory):
        """Writes the weights, then `run_state.json` naming them."""
        if directory is None:
            return
        os.makedirs(directory, exist_ok=True)
        name = None
        if self.weights is not None:
            name = f"stage{self.stages_done}.weights.npz"
            tmp = os.path.join(directory, name + ".tmp")
            save_arrays(tmp, self.weights)
            os.replace(tmp, os.path.join(directory, name))
        tmp = os.path.join(directory, _STATE_FILE + ".tmp")
        distribute.write_json(
            tmp,
            {
                "stages_done": self.stages_done,
                "history": self.history,
                "reports": [dataclasses.asdict(r) for r in self.reports],
                "best": dataclasses.asdict(self.best),
                "weights": name,
            },
        )
        os.replace(tmp, os.path.join(directory, _STATE_FILE))
        for old in os.listdir(directory):  # earlier stages' weights
            if old.endswith(".weights.npz") and old != name:
                os.remove(os.path.join(directory, old))
