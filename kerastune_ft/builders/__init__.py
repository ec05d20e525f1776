"""Model assembly: the two transfer classifier classes and their builders.

Both builders return a transfer classifier whose parts are attributes
(`backbone`, `preprocessor`, `augmentation`, `pooling`, `head`); see
`docs/architecture.md` for the contract the rest of the package relies on.
"""

from kerastune_ft.builders.head import MacroScore, make_adamw
from kerastune_ft.builders.image import TransferImageClassifier, build_image_classifier
from kerastune_ft.builders.model import is_text_model, outputs_logits, random_layers
from kerastune_ft.builders.text import (
    TokenPooling,
    TransferTextClassifier,
    build_text_classifier,
)

__all__ = [
    "MacroScore",
    "TokenPooling",
    "TransferImageClassifier",
    "TransferTextClassifier",
    "build_image_classifier",
    "build_text_classifier",
    "is_text_model",
    "make_adamw",
    "outputs_logits",
    "random_layers",
]
