"""`demo`: a whole `kft.run` on bundled (text) or shared (image) data, offline."""

import dataclasses
import datetime
import os
import pathlib

from kerastune_ft._quiet import load_frameworks
from kerastune_ft.cli.errors import UsageError, diverged_exit

__all__ = ["demo_command", "demo_config"]

REPO_DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "reviews"


def _demo_out(args, task):
    if args.out:
        return pathlib.Path(args.out)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return pathlib.Path("runs") / f"demo-{task}-{stamp}"


def _text_config(args):
    from kerastune_ft.config import config_from_dict

    data_dir = pathlib.Path(args.data or REPO_DATA)
    train_file, shift_file = data_dir / "products.txt", data_dir / "movies.txt"
    for path in (train_file, shift_file):
        if not path.is_file():
            raise UsageError(
                f"Demo data not found: {path}. Run the demo from a kerastune_ft "
                "checkout, or pass --data DIR with products.txt and movies.txt."
            )
    return config_from_dict(
        {
            "task": "text",
            "name": "demo-text",
            "seed": args.seed,
            "data": {
                "source": str(train_file),
                "val_split": 0.25,
                "batch_size": 16,
                "seed": args.seed,
            },
            "model": {"backbone": args.backbone or "minilm-l6"},
            # The demo's own recipe: three epochs keep it to a few minutes.
            "training": {"epochs": args.epochs or 3, "patience": 2},
            "evaluation": {"splits": ["val"], "sets": {"movies": str(shift_file)}},
        },
        source="the text demo",
    )


def _image_config(args):
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
    backbone = args.backbone or "mobilenet_v2"
    return config_from_dict(
        {
            "task": "image",
            "name": "demo-image",
            "seed": args.seed,
            "data": {
                "source": str(folder),
                "image_size": [160, 160],
                "seed": args.seed,
                "max_per_class": args.max_per_class,
            },
            "model": {
                "backbone": backbone,
                "weights": "imagenet",
                "backbone_kwargs": {"alpha": 0.35}
                if backbone == "mobilenet_v2"
                else {},
            },
            "training": {"epochs": args.epochs or 20, "patience": 3},
            "evaluation": {"splits": ["val", "test"]},
        },
        source="the image demo",
    )


def demo_config(args):
    """The run config of `kerastune-ft demo` for the parsed `args`.

    Args:
        args: the parsed `demo` arguments.

    Returns:
        A `kerastune_ft.config.RunConfig` whose `output.dir` is `--out` or
        `runs/demo-TASK-TIME`.

    Raises:
        UsageError: the demo's data is not there.
    """
    cfg = _image_config(args) if args.task == "image" else _text_config(args)
    out = _demo_out(args, args.task)
    return cfg.replace(output=dataclasses.replace(cfg.output, dir=str(out)))


def demo_command(args):
    """`kerastune-ft demo`: runs the demo config with `kft.run`."""
    cfg = demo_config(args)
    load_frameworks()
    from kerastune_ft.pipeline import run

    result = run(cfg, verbose=args.verbose)
    if not args.verbose and result is not None:
        # Quiet mode still prints the answer: the metrics table.
        print(result.evaluation)
    return diverged_exit(result)
