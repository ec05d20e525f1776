"""Image backbones: every `keras.applications` family, and keras-hub presets.

Each registry entry knows its constructor, its default input size, the
smallest input it accepts and the preprocessing its ImageNet weights expect.
Models built by `kft.build_image_classifier` take raw 0-255 pixels and apply
that preprocessing inside the model, exactly once:

- `"tf"`: scale to [-1, 1] (MobileNet V1/V2, ResNetV2, Xception, Inception,
  NASNet).
- `"torch"`: scale to [0, 1], then ImageNet mean/std (DenseNet).
- `"caffe"`: RGB to BGR, then subtract the ImageNet BGR means (ResNet V1,
  VGG).
- `"none"`: the backbone rescales inside itself (EfficientNet,
  EfficientNetV2, ConvNeXt, MobileNetV3); their `preprocess_input` is a
  no-op, so adding ours would preprocess twice.

A string that names an existing folder, or a keras-hub handle such as
`"hf://..."` or `"kaggle://..."`, is loaded with
`keras_hub.models.Backbone.from_preset`; its own image converter (scale and
offset read from the preset) becomes the preprocessing.
"""

import dataclasses
import difflib
import os

import keras
from keras import ops

from kerastune_ft._validation import check_choice
from kerastune_ft.backbones.weights import (
    check_weights_argument,
    load_weights_file,
    local_weights_first,
)
from kerastune_ft.freezing import BACKBONE_NAME

__all__ = [
    "IMAGE_BACKBONES",
    "ImageBackboneSpec",
    "ImagePreprocessing",
    "PREPROCESSING_MODES",
    "get_image_backbone_spec",
    "is_keras_hub_preset",
    "list_image_backbones",
    "load_keras_hub_backbone",
    "make_preprocessing_layer",
]

PREPROCESSING_MODES = ("tf", "torch", "caffe", "none")

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@dataclasses.dataclass(frozen=True)
class ImageBackboneSpec:
    """How to build one `keras.applications` backbone.

    Attributes:
        name: registry name, e.g. `"mobilenet_v2"`.
        constructor: attribute name in `keras.applications`, e.g.
            `"MobileNetV2"`.
        family: family name shown in listings, e.g. `"MobileNetV2"`.
        default_size: the input size the ImageNet weights were trained at.
        min_size: the smallest height/width the constructor accepts.
        preprocessing: one of `"tf"`, `"torch"`, `"caffe"` or `"none"`
            (the backbone rescales inside itself).
    """

    name: str
    constructor: str
    family: str
    default_size: int
    min_size: int
    preprocessing: str

    def build(self, *, input_shape, weights=None, **kwargs):
        """Builds the headless backbone, named `"backbone"`.

        Args:
            input_shape: `(height, width, 3)`.
            weights: `"imagenet"`, a weights file path, or `None`.
                Defaults to `None`.
            **kwargs: extra constructor arguments (e.g. `alpha=0.35`).

        Returns:
            A functional `keras.Model` without its classification top.
        """
        constructor = getattr(keras.applications, self.constructor)
        weights = check_weights_argument(weights)
        # A file is loaded here, not by the constructor, so that a file for
        # another architecture gets an error naming it and `weights`.
        with local_weights_first():
            model = constructor(
                include_top=False,
                weights="imagenet" if weights == "imagenet" else None,
                input_shape=tuple(input_shape),
                **kwargs,
            )
        if weights not in ("imagenet", None):
            load_weights_file(model, weights, what=f"the {self.family} backbone")
        # Renamed afterwards: EfficientNetV2 reads its block layout from
        # `name`, so passing name="backbone" to the constructor breaks it.
        model.name = BACKBONE_NAME
        return model


def _specs():
    specs = []

    def add(name, constructor, family, default_size, preprocessing, min_size=32):
        specs.append(
            ImageBackboneSpec(
                name, constructor, family, default_size, min_size, preprocessing
            )
        )

    add("mobilenet", "MobileNet", "MobileNet", 224, "tf")
    add("mobilenet_v2", "MobileNetV2", "MobileNetV2", 224, "tf")
    add("mobilenet_v3_small", "MobileNetV3Small", "MobileNetV3", 224, "none")
    add("mobilenet_v3_large", "MobileNetV3Large", "MobileNetV3", 224, "none")
    sizes = (224, 240, 260, 300, 380, 456, 528, 600)
    for i, size in enumerate(sizes):
        add(f"efficientnet_b{i}", f"EfficientNetB{i}", "EfficientNet", size, "none")
    for suffix, size in (
        ("b0", 224),
        ("b1", 240),
        ("b2", 260),
        ("b3", 300),
        ("s", 384),
        ("m", 480),
        ("l", 480),
    ):
        add(
            f"efficientnet_v2_{suffix}",
            f"EfficientNetV2{suffix.upper()}",
            "EfficientNetV2",
            size,
            "none",
        )
    for depth in (50, 101, 152):
        add(f"resnet{depth}", f"ResNet{depth}", "ResNet", 224, "caffe")
        add(f"resnet{depth}_v2", f"ResNet{depth}V2", "ResNetV2", 224, "tf")
    for depth in (121, 169, 201):
        add(f"densenet{depth}", f"DenseNet{depth}", "DenseNet", 224, "torch")
    for size, suffix in (
        ("tiny", "Tiny"),
        ("small", "Small"),
        ("base", "Base"),
        ("large", "Large"),
        ("xlarge", "XLarge"),
    ):
        add(f"convnext_{size}", f"ConvNeXt{suffix}", "ConvNeXt", 224, "none")
    add("xception", "Xception", "Xception", 299, "tf", min_size=71)
    add("inception_v3", "InceptionV3", "InceptionV3", 299, "tf", min_size=75)
    add(
        "inception_resnet_v2",
        "InceptionResNetV2",
        "InceptionResNetV2",
        299,
        "tf",
        min_size=75,
    )
    add("vgg16", "VGG16", "VGG", 224, "caffe")
    add("vgg19", "VGG19", "VGG", 224, "caffe")
    add("nasnet_mobile", "NASNetMobile", "NASNet", 224, "tf")
    add("nasnet_large", "NASNetLarge", "NASNet", 331, "tf")
    return {spec.name: spec for spec in specs}


IMAGE_BACKBONES = _specs()

# Common alternative spellings users type.
_ALIASES = {
    "mobilenet_v1": "mobilenet",
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3_small": "mobilenet_v3_small",
    "mobilenetv3_large": "mobilenet_v3_large",
    "nasnetmobile": "nasnet_mobile",
    "nasnetlarge": "nasnet_large",
    "inceptionv3": "inception_v3",
    "inceptionresnetv2": "inception_resnet_v2",
}


def list_image_backbones(family=None):
    """Lists the names accepted by `kft.build_image_classifier(backbone=...)`.

    Args:
        family: if given, only names of this family (e.g. `"EfficientNet"`,
            case-insensitive). Defaults to `None` (all names).

    Returns:
        A sorted list of registry names.

    Example:

    >>> import kerastune_ft as kft
    >>> "mobilenet_v2" in kft.backbones.list_image_backbones()
    True
    >>> kft.backbones.list_image_backbones("convnext")[:2]
    ['convnext_base', 'convnext_large']
    """
    names = [
        spec.name
        for spec in IMAGE_BACKBONES.values()
        if family is None or spec.family.lower() == str(family).lower()
    ]
    if family is not None and not names:
        families = sorted({spec.family for spec in IMAGE_BACKBONES.values()})
        raise ValueError(
            f"Unknown backbone family. Received: family={family!r}. "
            f"Known families: {', '.join(families)}."
        )
    return sorted(names)


def get_image_backbone_spec(name):
    """Returns the registry entry for a backbone name.

    Args:
        name: a registry name such as `"efficientnet_b0"` (case and `-`
            are forgiven: `"EfficientNet-B0"` works too).

    Returns:
        An `ImageBackboneSpec`.

    Example:

    >>> import kerastune_ft as kft
    >>> spec = kft.backbones.get_image_backbone_spec("efficientnet_b3")
    >>> spec.default_size, spec.preprocessing
    (300, 'none')
    """
    if not isinstance(name, str):
        raise TypeError(
            "`backbone` must be a registry name, a keras-hub preset or folder, "
            f"or a keras.Model. Received: backbone={name!r} of type "
            f"{type(name).__name__}."
        )
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key in IMAGE_BACKBONES:
        return IMAGE_BACKBONES[key]
    close = difflib.get_close_matches(key, list(IMAGE_BACKBONES), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown image backbone. Received: backbone={name!r}.{hint} "
        "List every name with `kft.backbones.list_image_backbones()`; a "
        "keras-hub preset folder or handle (e.g. 'hf://timm/...') and a "
        "ready keras.Model are accepted too."
    )


def is_keras_hub_preset(value):
    """Whether a string names a keras-hub preset folder or remote handle."""
    if not isinstance(value, str | os.PathLike):
        return False
    value = os.fspath(value)
    if "://" in value:
        return True
    return os.path.isdir(os.path.expanduser(value))


def load_keras_hub_backbone(preset, *, load_weights=True, **kwargs):
    """Loads a keras-hub image backbone and its preprocessing.

    Args:
        preset: a preset folder (keras-hub, timm or Hugging Face layout) or a
            handle such as `"hf://timm/..."`.
        load_weights: whether to load the preset's weights. Defaults to
            `True`.
        **kwargs: passed to `keras_hub.models.Backbone.from_preset`.

    Returns:
        `(backbone, preprocessing)`: the backbone named `"backbone"`, and a
        `keras.layers.Rescaling` layer mapping 0-255 pixels to the range the
        preset expects (or `None` when the preset declares none).

    Example:

    >>> import os
    >>> import kerastune_ft as kft
    >>> shared = os.environ.get("KFT_SHARED", "../shared")  # the offline assets
    >>> backbone, prep = kft.backbones.load_keras_hub_backbone(
    ...     f"{shared}/weights/efficientnet_lite0_timm_format")
    >>> backbone.name, type(prep).__name__
    ('backbone', 'Rescaling')
    """
    import keras_hub

    preset = os.path.expanduser(os.fspath(preset))
    backbone = keras_hub.models.Backbone.from_preset(
        preset, load_weights=load_weights, name=BACKBONE_NAME, **kwargs
    )
    preprocessing = None
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except (ValueError, FileNotFoundError):
        converter = None
    if converter is not None and converter.scale is not None:
        # Only the value mapping is kept: resizing is the data pipeline's job
        # and the model's input_shape already fixes the size.
        preprocessing = keras.layers.Rescaling(
            scale=_as_list(converter.scale),
            offset=_as_list(converter.offset or 0.0),
            name="preprocessing",
        )
    return backbone, preprocessing


def _as_list(value):
    if isinstance(value, int | float):
        return float(value)
    return [float(v) for v in value]


@keras.saving.register_keras_serializable(package="kerastune_ft")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw 0-255 RGB pixels to what an ImageNet backbone expects.

    Equivalent to `keras.applications.imagenet_utils.preprocess_input` for
    channels-last inputs, as a serializable layer (no `Lambda`).

    Args:
        mode: `"tf"` (to [-1, 1]), `"torch"` (to [0, 1] then ImageNet
            mean/std) or `"caffe"` (RGB to BGR, minus ImageNet BGR means).
            Defaults to `"tf"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> layer = kft.backbones.ImagePreprocessing("tf")
    >>> np.asarray(layer(np.full((1, 2, 2, 3), 255.0)))[0, 0, 0].tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        check_choice("mode", mode, ("tf", "torch", "caffe"))
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        mean = ops.convert_to_tensor(_CAFFE_BGR_MEAN, dtype=self.compute_dtype)
        return ops.flip(x, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config


def make_preprocessing_layer(mode, name="preprocessing"):
    """Returns the layer for a preprocessing mode, or `None` for `"none"`.

    Args:
        mode: one of `"tf"`, `"torch"`, `"caffe"`, `"none"` (or `None`).
        name: layer name. Defaults to `"preprocessing"`.

    Returns:
        An `ImagePreprocessing` layer, or `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> kft.backbones.make_preprocessing_layer("none") is None
    True
    """
    if mode is None or mode == "none":
        return None
    check_choice(
        "preprocessing",
        mode,
        PREPROCESSING_MODES,
        hint='Use "auto" in kft.build_image_classifier to take the backbone\'s own.',
    )
    return ImagePreprocessing(mode, name=name)
