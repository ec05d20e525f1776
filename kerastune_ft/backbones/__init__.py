"""Where pretrained backbones and their weights come from."""

from kerastune_ft.backbones.image import (
    IMAGE_BACKBONES,
    ImageBackboneSpec,
    ImagePreprocessing,
    get_image_backbone_spec,
    list_image_backbones,
    load_keras_hub_backbone,
    make_preprocessing_layer,
)
from kerastune_ft.backbones.text import (
    TEXT_BACKBONE_ALIASES,
    load_text_backbone,
    resolve_text_backbone,
)
from kerastune_ft.backbones.weights import (
    ENV_WEIGHTS_DIR,
    WeightsNotFoundError,
    check_weights_argument,
    find_local_weights,
    load_weights_file,
    local_weights_first,
    weights_search_dirs,
)

__all__ = [
    "ENV_WEIGHTS_DIR",
    "IMAGE_BACKBONES",
    "ImageBackboneSpec",
    "ImagePreprocessing",
    "get_image_backbone_spec",
    "list_image_backbones",
    "TEXT_BACKBONE_ALIASES",
    "load_keras_hub_backbone",
    "load_text_backbone",
    "resolve_text_backbone",
    "make_preprocessing_layer",
    "WeightsNotFoundError",
    "check_weights_argument",
    "find_local_weights",
    "load_weights_file",
    "local_weights_first",
    "weights_search_dirs",
]
