"""`train`, `evaluate` and `export`: each parses nothing, calls the library."""

import dataclasses
import json
import pathlib
import tempfile

from kerastune_ft._quiet import load_frameworks
from kerastune_ft.cli.errors import EXIT_OK, UsageError, diverged_exit

__all__ = ["evaluate_command", "export_command", "train_command"]

CLASS_NAMES_FILE = "class_names.json"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
EVALUATIONS_DIR = "evaluations"


def train_command(args):
    """`kerastune-ft train CONFIG`: `kft.run` on the config, `--set` applied."""
    from kerastune_ft.config import load_config

    cfg = load_config(args.config, args.set)
    load_frameworks()
    import kerastune_ft as kft
    from kerastune_ft.pipeline import run

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
            result = run(
                cfg,
                pathlib.Path(scratch),
                verbose=0,
                strategy=strategy,
                checkpoint_dir=out / "checkpoints",
                strict=args.strict,
            )
        return diverged_exit(result)
    result = run(
        cfg,
        out,
        resume=args.resume,
        verbose=args.verbose,
        strategy=strategy,
        strict=args.strict,
    )
    return diverged_exit(result)


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


def evaluate_command(args):
    """`kerastune-ft evaluate MODEL DATA...`: `kft.evaluate` and a report."""
    load_frameworks()
    from kerastune_ft._files import check_writable_folder
    from kerastune_ft.evaluation import Report, evaluate
    from kerastune_ft.pipeline.run_dir import write_json
    from kerastune_ft.saving import load_model

    if args.out and pathlib.Path(args.out).exists():
        # Refuse a bad --out before loading anything (the run-folder case
        # is settled once the set names are known).
        if not pathlib.Path(args.out).is_dir():
            check_writable_folder(args.out, "evaluation", "--out")
    model = load_model(args.model)
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
        model,
        sets,
        class_names=class_names,
        batch_size=args.batch_size,
        tta=args.tta,
    )
    print(evaluation)
    if out is not None:
        write_json(out / METRICS_FILE, evaluation.to_dict())
        report = Report(evaluation=evaluation, title=f"Evaluation of {args.model}")
        report.save_html(out / "report.html")
        report.save_plots(out / "plots")
        print(f"Wrote {out / METRICS_FILE}, {out / 'report.html'} and plots/.")
    return EXIT_OK


def _export_path(args):
    if args.out is not None:
        return args.out
    stem = pathlib.Path(args.model).with_suffix("")
    suffix = "" if args.quantize == "none" else f"_{args.quantize}"
    return {
        "keras": f"{stem}_export.keras",
        "saved_model": f"{stem}_saved_model",
        "tflite": f"{stem}{suffix}.tflite",
    }[args.format]


def export_command(args):
    """`kerastune-ft export MODEL --format F`: `kft.export`."""
    load_frameworks()
    from kerastune_ft.export import export
    from kerastune_ft.saving import load_model

    model = load_model(args.model)
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
        _export_path(args),
        format=args.format,
        quantize=args.quantize,
        representative_data=representative,
        num_calibration=args.num_calibration,
        overwrite=args.overwrite,
    )
    print(result)
    return EXIT_OK
