"""Augmentation: Keras layers for images, nlpaug for text."""

from kerastune_ft.augment.image import image_augmentation, mix_dataset

__all__ = ["image_augmentation", "mix_dataset"]
