"""The `kerastune-ft` command line: argument parsing over the library.

Commands: `train` (`kft.run` on a TOML config), `evaluate`, `export`,
`describe` (a backbone's layers, to choose `freeze`), `backbones` (what is
available and what works offline) and `demo` (text or image, offline).

Exit codes: 0 success, 2 usage or configuration error (a bad option, key,
value, data path or output folder), 1 run failure (training diverged, or an
unexpected error). Errors are one clear line; `--debug` shows the
traceback.
"""

import sys

from kerastune_ft.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from kerastune_ft.cli.parser import build_parser

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "main",
]


def main(argv=None):
    """Runs the command line.

    Args:
        argv: the arguments after the program name. Defaults to `None`
            (`sys.argv[1:]`).

    Returns:
        The exit code: 0 success, 2 usage or configuration error, 1 run
        failure.

    Example:

    >>> from kerastune_ft.cli import main
    >>> main(["train", "no/such/config.toml"])
    2
    """
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
