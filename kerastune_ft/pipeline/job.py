"""`kft.run`: one job from a config, load -> build -> fine_tune -> evaluate -> report."""

import dataclasses
import json
import pathlib
import time

from kerastune_ft._files import write_text_atomic
from kerastune_ft.config import RunConfig, config_from_dict, load_config
from kerastune_ft.pipeline.data import (
    DataChecks,
    check_run_data,
    image_size,
    load_run_data,
)
from kerastune_ft.pipeline.run_dir import (
    CHECKPOINT_DIR,
    CLASS_NAMES_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    prepare_run_dir,
    write_history,
    write_json,
)

__all__ = ["RunResult", "run"]

# kft.run's verbose -> kft.fine_tune's: quiet, one line per epoch, bars.
_FINE_TUNE_VERBOSE = {0: 0, 1: 2, 2: 1}


@dataclasses.dataclass(frozen=True)
class RunData:
    """The loaded data and what the checks found in it."""

    data: object
    checks: DataChecks


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
    """The diagnosis of training and the evaluation on the test sets."""

    diagnosis: object
    evaluation: object


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What `kft.run` made, beside the files in its run directory.

    Attributes:
        out: the run directory (a `pathlib.Path`).
        model: the trained model (also saved as `out/model.keras`).
        result: the `kft.FineTuneResult`.
        diagnosis: the `kft.evaluation.Diagnosis` of the training history.
        evaluation: the `kft.evaluation.Evaluation` of the test sets, or `None`.
        data_checks: the `DataChecks` made before training.
        metrics: what `out/metrics.json` holds.
    """

    out: pathlib.Path
    model: object
    result: object
    diagnosis: object
    evaluation: object
    data_checks: DataChecks
    metrics: dict

    @property
    def diverged(self):
        """Whether training diverged (a NaN or infinite loss)."""
        return bool(self.result.diverged)


def _say(verbose):
    return print if verbose else (lambda *a, **k: None)


def _as_config(config):
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    if isinstance(config, (str, pathlib.Path)):
        return load_config(config)
    raise TypeError(
        "`config` must be a kerastune_ft.config.RunConfig, a dict or the path of "
        f"a TOML file. Received: config={config!r} of type {type(config).__name__}."
    )


def load_step(cfg, *, strict, say):
    """Loads the data, checks it, and says what it found."""
    say(f"[1/4] Loading {cfg.data.source}")
    data = load_run_data(cfg)
    say("      " + str(data).replace("\n", "\n      "))
    checks = check_run_data(
        data,
        strict=bool(strict or cfg.data.strict),
        class_weight=cfg.training.class_weight,
    )
    for finding in checks.findings:
        say(f"      Warning: {finding}")
    return RunData(data, checks)


def build_step(cfg, data, *, strategy):
    """Builds the classifier: `[model]` and `[head]` passed to the builder."""
    import kerastune_ft as kft

    kwargs = {**cfg.kwargs("model"), **cfg.kwargs("head")}
    backbone = kwargs.pop("backbone")
    kwargs.update(strategy=strategy, seed=cfg.seed)
    if cfg.task == "image":
        size = data.image_size or image_size(cfg)
        return kft.build_image_classifier(
            backbone, data.num_classes, input_shape=(*size, 3), **kwargs
        )
    return kft.build_text_classifier(
        backbone,
        data.num_classes,
        train_texts=list(data.examples["train"][0]),
        **kwargs,
    )


def _one_hot(dataset, num_classes):
    if dataset is None:
        return None
    import keras
    import numpy as np

    from kerastune_ft.data import ArrayBatches

    if isinstance(dataset, ArrayBatches):
        return ArrayBatches(
            dataset.x,
            np.eye(num_classes, dtype="float32")[dataset.y],
            dataset.batch_size,
            shuffle=dataset.shuffle,
            seed=dataset.seed,
            dtype=dataset.dtype,
        )
    return dataset.map(lambda x, y: (x, keras.ops.one_hot(y, num_classes)))


def train_step(cfg, model, data, out, *, strategy, checkpoint_dir, verbose):
    """Runs `kft.fine_tune` with `[training]`, then saves the model and history."""
    import kerastune_ft as kft

    train, val = data.train, data.val
    if cfg.model.label_mode == "categorical":
        train = _one_hot(train, data.num_classes)
        val = _one_hot(val, data.num_classes)
    result = kft.fine_tune(
        model,
        train,
        val,
        **cfg.kwargs("training"),
        checkpoint_dir=str(checkpoint_dir or out / CHECKPOINT_DIR),
        strategy=strategy,
        seed=cfg.seed,
        verbose=_FINE_TUNE_VERBOSE[verbose],
    )
    result.model.save(out / "model.keras")
    write_history(out / HISTORY_FILE, result.history)
    return result


def _evaluation_sets(cfg, data):
    sets = {}
    for split in cfg.evaluation.splits:
        dataset = getattr(data, split)
        if dataset is not None:
            sets[split] = dataset
    for name, source in cfg.evaluation.sets.items():
        extra = load_run_data(cfg, source, class_names=list(data.class_names))
        sets[name] = extra.train
    return sets


def evaluate_step(cfg, result, data):
    """Diagnoses training and evaluates on the `[evaluation]` sets."""
    from kerastune_ft.evaluation import diagnose, evaluate

    diagnosis = diagnose(result, model=result.model)
    sets = _evaluation_sets(cfg, data)
    evaluation = None
    if sets:
        evaluation = evaluate(
            result.model,
            sets,
            class_names=list(data.class_names),
            **({"batch_size": data.batch_size} | cfg.kwargs("evaluation")),
        )
    return RunEvaluation(diagnosis, evaluation)


def report_step(cfg, out, run_data, result, measured, seconds):
    """Writes the plots, `report.html` and `metrics.json`; returns the metrics."""
    from kerastune_ft.evaluation import Report

    data, checks = run_data.data, run_data.checks
    report = Report(
        measured.diagnosis,
        measured.evaluation,
        title=f"kerastune_ft run {cfg.name}",
        data_checks=checks.findings,
    )
    plots = {}
    if cfg.output.plots:
        plots = {k: str(v) for k, v in report.save_plots(out / "plots").items()}
    if cfg.output.report:
        report.save_html(out / "report.html")
    evaluation = measured.evaluation
    metrics = {
        "name": cfg.name,
        "task": cfg.task,
        "class_names": list(data.class_names),
        "counts": data.counts,
        "data_checks": checks.to_dict(),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "monitor": result.monitor,
        "best_metrics": result.best_metrics,
        "diverged": result.diverged,
        "stages": [dataclasses.asdict(s) for s in result.stages],
        "diagnosis": measured.diagnosis.to_dict(),
        "evaluation": evaluation.to_dict() if evaluation is not None else None,
        "plots": plots,
        "seconds": round(seconds, 1),
    }
    return write_json(out / METRICS_FILE, metrics)


def run(
    config,
    out=None,
    *,
    resume=False,
    verbose=1,
    strategy=None,
    checkpoint_dir=None,
    strict=False,
):
    """Runs one training job from a config into a run directory.

    The job is `load -> build -> fine_tune -> evaluate -> report`, each
    fed the keys of its config section unchanged (a key left out is the
    library's default). It writes `config.toml` (the config as given, paths
    expanded), `class_names.json`, `model.keras`, `history.csv`,
    `metrics.json`, `plots/*.png` and `report.html`. Checkpoints go to
    `out/checkpoints`, so a run that was killed continues with
    `resume=True`; resuming with another config is refused. `out` must be
    new, empty or a run directory: a folder holding other files is refused,
    never cleared. The config's `seed` seeds everything random before the
    data is split, so the same config on the same machine and versions gives
    the same `history.csv` (on CPU).

    Args:
        config: a `kerastune_ft.config.RunConfig`, a dict as
            `config_from_dict` takes, or the path of a TOML config file.
        out: the run directory. Defaults to `None`: the config's
            `output.dir`.
        resume: continue the run in `out`. Defaults to `False`.
        verbose: `0` quiet, `1` progress lines, `2` also Keras progress
            bars. Defaults to `1`.
        strategy: a `tf.distribute.Strategy` to build and train under.
            Defaults to `None`.
        checkpoint_dir: where checkpoints go. Defaults to `None`:
            `out/checkpoints` (multi-worker runs give every worker the
            chief's, on storage they all read).
        strict: leakage between splits is an error, as `data.strict` makes
            it. Defaults to `False`.

    Returns:
        A `RunResult`; `None` when `out` holds a finished run and `resume`
        is set (there is nothing left to do).

    Raises:
        ValueError: a bad config, data or run directory (the message says
            which key, file or folder, and what to do).

    Example:

    >>> import pathlib, tempfile
    >>> import kerastune_ft as kft
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> lines = [f"{word} thing number {i}\\t{i % 2}" for i, word in
    ...          enumerate(["a good", "a bad"] * 10)]
    >>> _ = (folder / "reviews.txt").write_text("\\n".join(lines) + "\\n")
    >>> result = kft.run({
    ...     "task": "text",
    ...     "data": {"source": str(folder / "reviews.txt"), "val_split": 0.2},
    ...     "model": {"backbone": "minilm-l6", "load_weights": False},
    ...     "training": {"recipe": "linear_probe"},  # quick: no gradient steps
    ...     "output": {"plots": False, "report": False},
    ... }, folder / "run", verbose=0)
    >>> sorted(path.name for path in (folder / "run").iterdir())  # doctest: +ELLIPSIS
    [...'model.keras'...]
    """
    import keras

    cfg = _as_config(config)
    out = pathlib.Path(cfg.output.dir if out is None else out)
    cfg = cfg.replace(output=dataclasses.replace(cfg.output, dir=str(out)))
    say = _say(verbose)
    start = time.perf_counter()
    if prepare_run_dir(cfg, out, resume):
        say(f"{out} is a finished run (it has {METRICS_FILE}); nothing to resume.")
        return None
    # Before anything random exists: the split, the initial weights, the
    # dropout and augmentation seeds and the order of batches follow it.
    keras.utils.set_random_seed(cfg.seed)
    run_data = load_step(cfg, strict=strict, say=say)
    data = run_data.data
    write_text_atomic(out / CLASS_NAMES_FILE, json.dumps(list(data.class_names)))
    say(f"[2/4] Building the {cfg.task} classifier on {cfg.model.backbone!r}")
    model = build_step(cfg, data, strategy=strategy)
    say("[3/4] Fine-tuning" + (", resuming" if resume else ""))
    result = train_step(
        cfg,
        model,
        data,
        out,
        strategy=strategy,
        checkpoint_dir=checkpoint_dir,
        verbose=verbose,
    )
    say("[4/4] Evaluating and writing the report")
    measured = evaluate_step(cfg, result, data)
    seconds = time.perf_counter() - start
    metrics = report_step(cfg, out, run_data, result, measured, seconds)
    if verbose:
        print(f"\nVerdict: {measured.diagnosis.verdict}. {measured.diagnosis.message}")
        if measured.evaluation is not None:
            print(measured.evaluation)
        print(f"Run directory: {out} ({metrics['seconds']:.0f}s)")
    return RunResult(
        out=out,
        model=result.model,
        result=result,
        diagnosis=measured.diagnosis,
        evaluation=measured.evaluation,
        data_checks=run_data.checks,
        metrics=metrics,
    )
