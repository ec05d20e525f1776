"""`python -m kerastune_ft.cli`: the `kerastune-ft` command."""

import sys

from kerastune_ft.cli import main

if __name__ == "__main__":
    sys.exit(main())
