"""Augmentation: Keras layers for images, nlpaug for text."""

from kerastune_ft.augment.image import image_augmentation, mix_dataset
from kerastune_ft.augment.text import TextAugmenter, augment_dataset, augment_texts

__all__ = [
    "TextAugmenter",
    "augment_dataset",
    "augment_texts",
    "image_augmentation",
    "mix_dataset",
]
