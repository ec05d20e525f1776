"""Where pretrained backbones and their weights come from."""

from kerastune_ft.backbones.weights import (
    ENV_WEIGHTS_DIR,
    WeightsNotFoundError,
    check_weights_argument,
    find_local_weights,
    local_weights_first,
    weights_search_dirs,
)

__all__ = [
    "ENV_WEIGHTS_DIR",
    "WeightsNotFoundError",
    "check_weights_argument",
    "find_local_weights",
    "local_weights_first",
    "weights_search_dirs",
]
