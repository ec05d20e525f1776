"""Exit codes and the error a command raises for a bad request."""

import sys

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "UsageError", "diverged_exit"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with what the user asked for (exit code 2)."""


def diverged_exit(result):
    """The exit code of a finished `kft.run`: a diverged run is a failure.

    Args:
        result: a `kerastune_ft.pipeline.RunResult`, or `None` (a finished
            run had nothing left to do).

    Returns:
        `EXIT_FAILURE` when training diverged, else `EXIT_OK`.
    """
    if result is not None and result.diverged:
        print(
            "kerastune-ft: training diverged (the loss became NaN or infinite); "
            "the saved model holds the last finite weights. Lower "
            "training.learning_rate, check the inputs for NaN values, or add "
            "training.label_smoothing.",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK
