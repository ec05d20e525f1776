"""Augmentation: Keras layers for images, nlpaug for text."""
