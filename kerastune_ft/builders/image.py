"""The image transfer classifier and its builder.

`kft.build_image_classifier` returns a `TransferImageClassifier`, a
functional `keras.Model` whose parts are attributes:

    input -> [model.augmentation] -> [model.preprocessor] -> model.backbone
          -> model.pooling -> model.head (Dropout, [Dense, Dropout]*, Dense)

It takes raw 0-255 RGB pixels. The backbone layer is named `"backbone"` and
the last Dense `"predictions"` (for users' `get_layer` calls), but the
package reaches every part through the attributes.
"""

import copy
import warnings

import keras

from kerastune_ft import distribute
from kerastune_ft._validation import check_choice
from kerastune_ft._warnings import KerasTuneFTWarning
from kerastune_ft.augment.image import image_augmentation
from kerastune_ft.backbones.image import (
    PREPROCESSING_MODES,
    get_image_backbone_spec,
    is_keras_hub_preset,
    load_keras_hub_backbone,
    make_preprocessing_layer,
)
from kerastune_ft.backbones.weights import check_weights_argument
from kerastune_ft.builders.head import (
    POOLINGS,
    TransferClassifierMixin,
    apply_seed,
    check_head_arguments,
    check_mixed_precision,
    check_seed,
    classification_loss,
    classification_metrics,
    dtype_policy_scope,
    make_adamw,
    make_head,
    make_pooling,
)
from kerastune_ft.freezing import BACKBONE_NAME, freeze_backbone

__all__ = ["TransferImageClassifier", "build_image_classifier"]

# Families whose constructors take `include_preprocessing`; turning it off
# changes what the backbone expects, so "auto" cannot know it.
_INCLUDE_PREPROCESSING = "include_preprocessing"


@keras.saving.register_keras_serializable(package="kerastune_ft")
class TransferImageClassifier(TransferClassifierMixin, keras.Model):
    """An image classifier: a pretrained backbone and a small head, as parts.

    Use `kft.build_image_classifier` to make one (it loads the backbone,
    checks the arguments and freezes); this class is what it returns and
    what `.keras` files reload into. The parts are attributes: `backbone`,
    `preprocessor`, `augmentation`, `pooling` and `head`.

    Args:
        backbone: the pretrained network, a `keras.Model` from images (after
            `preprocessor`) to a feature map or a feature vector.
        num_classes: number of outputs.
        image_shape: `(height, width, 3)` of the input images (`None` for a
            variable size). Defaults to `None`: the backbone's input shape.
        preprocessor: a layer mapping 0-255 pixels to the backbone's input
            range, or `None`. Defaults to `None`.
        augmentation: a random augmentation layer acting in training only,
            or `None`. Defaults to `None`.
        pooling: `"avg"`, `"max"`, `"flatten"`, or a weight-free layer
            turning the backbone output into a vector. Ignored (an identity)
            when the backbone outputs vectors. Defaults to `"avg"`.
        head_units: sizes of hidden ReLU Dense layers. Defaults to `()`.
        dropout: Dropout rate before each head Dense layer. Defaults to `0.2`.
        l1: L1 penalty on head Dense kernels. Defaults to `0.0`.
        l2: L2 penalty on head Dense kernels. Defaults to `1e-4`.
        multi_label: sigmoid outputs for multi-hot labels. Defaults to
            `False`.
        label_mode: `"int"` or `"categorical"` single-label targets.
            Defaults to `"int"`.
        from_logits: output logits (no activation). Defaults to `False`.
        bn_trainable: call the backbone in training mode during `fit` so
            that trainable BatchNormalization layers update their statistics;
            otherwise the backbone is called with `training=False`. Defaults
            to `False`.
        mixed_precision: the dtype policy the model's own layers (pooling,
            head) are created under: `"mixed_bfloat16"`, `"mixed_float16"`,
            `"float32"`, or `None` (the global Keras policy). The head's last
            Dense computes in float32 under a mixed policy. Pass the same
            policy the backbone was built under. Defaults to `None`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`).

    Example:

    >>> import keras, numpy as np, kerastune_ft as kft
    >>> base = keras.Sequential(
    ...     [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)], name="backbone")
    >>> model = kft.builders.TransferImageClassifier(base, 3, dropout=0.0)
    >>> [type(layer).__name__ for layer in model.head.layers]
    ['Dense']
    >>> x = np.zeros((2, 8, 8, 3), "float32")
    >>> features = model.feature_extractor()(x)
    >>> bool(np.allclose(model.head(features), model(x)))
    True
    """

    def __setattr__(self, name, value):
        # On torch, keras.Model is a torch Module, which refuses sub-modules
        # assigned before `Module.__init__` (the parts are set before the
        # functional `super().__init__`). The functional graph tracks every
        # layer anyway, so route around it as keras-hub's `Task` does.
        if keras.config.backend() == "torch" and not hasattr(self, "_initialized"):
            return object.__setattr__(self, name, value)
        return super().__setattr__(name, value)

    def __init__(
        self,
        backbone,
        num_classes,
        *,
        image_shape=None,
        preprocessor=None,
        augmentation=None,
        pooling="avg",
        head_units=(),
        dropout=0.2,
        l1=0.0,
        l2=1e-4,
        multi_label=False,
        label_mode="int",
        from_logits=False,
        bn_trainable=False,
        mixed_precision=None,
        **kwargs,
    ):
        mixed_precision = check_mixed_precision(mixed_precision)
        # Keras' Functional applies a `trainable` argument to every sublayer,
        # even True: a reloaded model would unfreeze its backbone (on JAX,
        # where the parts are tracked before that). Only False is applied,
        # after construction, as a model-wide freeze.
        trainable = kwargs.pop("trainable", True)
        if image_shape is None:
            image_shape = tuple(backbone.inputs[0].shape[1:])
        image_shape = tuple(image_shape)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.augmentation = augmentation
        # === Functional model ===
        with dtype_policy_scope(mixed_precision):
            inputs = keras.Input(shape=image_shape, name="image")
            x = inputs
            if augmentation is not None:
                x = augmentation(x)
            if preprocessor is not None:
                x = preprocessor(x)
            # Inference-mode BatchNormalization: fine-tuning with the statistics
            # of small batches wrecks pretrained features. training=False covers
            # direct calls; during fit Keras passes training=True down, so the
            # freezing rule also sets BatchNormalization layers non-trainable.
            x = backbone(x) if bn_trainable else backbone(x, training=False)
            if isinstance(pooling, str):
                check_choice("pooling", pooling, POOLINGS)
                pooling = make_pooling(pooling, x.shape)
            self.pooling = pooling
            x = pooling(x)
            self.head = make_head(
                x.shape[-1],
                num_classes,
                head_units=tuple(head_units),
                dropout=dropout,
                l1=l1,
                l2=l2,
                multi_label=multi_label,
                from_logits=from_logits,
            )
            outputs = self.head(x)
            super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if not trainable:
            self.trainable = False
        # === Config ===
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.head_units = tuple(head_units)
        self.dropout = dropout
        self.l1 = l1
        self.l2 = l2
        self.multi_label = multi_label
        self.label_mode = label_mode
        self.from_logits = from_logits
        self.bn_trainable = bn_trainable
        self.mixed_precision = mixed_precision

    def feature_extractor(self, augment=False):
        """A new model from raw images to the head's input (no copy of weights).

        `[augmentation] -> [preprocessor] -> backbone(training=False) ->
        pooling`, built on a fresh `keras.Input` from the model's own parts.

        Args:
            augment: include `augmentation` (it acts when the returned model
                is called with `training=True`). Defaults to `False`.

        Returns:
            A `keras.Model` sharing this model's layers and weights.
        """
        inputs = keras.Input(shape=self.image_shape, name="image")
        x = inputs
        if augment and self.augmentation is not None:
            x = self.augmentation(x)
        if self.preprocessor is not None:
            x = self.preprocessor(x)
        x = self.pooling(self.backbone(x, training=False))
        return keras.Model(inputs, x, name=f"{self.name}_features")

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Compiles with AdamW, the loss matching the outputs and our metrics.

        Args:
            optimizer: `"auto"` (`make_adamw(1e-3, 1e-4)`) or any Keras
                optimizer. Defaults to `"auto"`.
            loss: `"auto"` (the cross-entropy matching `multi_label`,
                `label_mode` and `from_logits`) or any Keras loss. Defaults
                to `"auto"`.
            metrics: `"auto"` (accuracy and macro precision / recall / F1)
                or a list of metrics. Defaults to `"auto"`.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = make_adamw()
        if isinstance(loss, str) and loss == "auto":
            loss = classification_loss(
                multi_label=self.multi_label,
                label_mode=self.label_mode,
                from_logits=self.from_logits,
            )
        if isinstance(metrics, str) and metrics == "auto":
            metrics = classification_metrics(
                self.num_classes,
                multi_label=self.multi_label,
                label_mode=self.label_mode,
                from_logits=self.from_logits,
            )
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        def serialize(layer):
            return None if layer is None else keras.layers.serialize(layer)

        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": serialize(self.backbone),
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "preprocessor": serialize(self.preprocessor),
            "augmentation": serialize(self.augmentation),
            "pooling": serialize(self.pooling),
            "head_units": list(self.head_units),
            "dropout": self.dropout,
            "l1": self.l1,
            "l2": self.l2,
            "multi_label": self.multi_label,
            "label_mode": self.label_mode,
            "from_logits": self.from_logits,
            "bn_trainable": self.bn_trainable,
            "mixed_precision": self.mixed_precision,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing consumes nested dicts
        for key in ("backbone", "preprocessor", "augmentation", "pooling"):
            if isinstance(config.get(key), dict):
                config[key] = keras.layers.deserialize(config[key])
        return cls(**config)


@distribute.builds_under_strategy
def build_image_classifier(
    backbone,
    num_classes,
    *,
    weights="imagenet",
    input_shape=None,
    freeze="all",
    dropout=0.2,
    l1=0.0,
    l2=1e-4,
    head_units=(),
    pooling="avg",
    augmentation=None,
    multi_label=False,
    label_mode="int",
    from_logits=False,
    compile=True,
    learning_rate=1e-3,
    weight_decay=1e-4,
    backbone_kwargs=None,
    preprocessing="auto",
    bn_trainable=False,
    mixed_precision=None,
    name=None,
    strategy=None,
    seed=None,
):
    """Builds an image classifier on a pretrained backbone.

    The returned `TransferImageClassifier` takes raw pixels in [0, 255] of
    shape `input_shape` and applies the backbone's own preprocessing inside
    itself, exactly once. BatchNormalization layers stay in inference mode
    and keep their pretrained statistics and scale/offset even when `freeze`
    unfreezes the layers around them (the backbone is called with
    `training=False` and its BatchNormalization layers are non-trainable; see
    `kft.freezing.freeze_backbone`). Pass `bn_trainable=True` to let
    unfrozen BatchNormalization layers train and update their statistics.

    Args:
        backbone: a registry name (see `kft.backbones.list_image_backbones()`,
            e.g. `"mobilenet_v2"`, `"efficientnet_b0"`, `"resnet50"`), a
            keras-hub preset folder or handle (e.g. a timm folder with
            `config.json` + `model.safetensors`), or a ready `keras.Model`
            mapping images to a feature map or feature vector (it receives
            the pixels after `preprocessing`; with `"auto"`, raw 0-255). A
            ready model is used in place: `freeze` sets its layers'
            `trainable` flags.
        num_classes: number of classes, an int >= 2 (or >= 1 with
            `multi_label=True`).
        weights: `"imagenet"` (looks in `$KFT_WEIGHTS_DIR` and the Keras cache
            before downloading; for keras-hub presets, the preset's weights),
            a weights file path, or `None` (random initialization). Ignored
            for a ready `keras.Model`. Defaults to `"imagenet"`.
        input_shape: `(height, width, 3)`. Defaults to `None`: the backbone's
            default size (e.g. 224x224; a ready model's own input shape; a
            keras-hub preset takes any size).
        freeze: which backbone layers to freeze: `"all"`, `"none"`, an int N
            (the first N layers), a negative int -N (all but the last N), a
            float fraction, or a layer name (up to and including it). Use
            `kft.describe_layers(model)` to choose. Defaults to `"all"`.
        dropout: Dropout rate in [0, 1) before each head Dense layer.
            Defaults to `0.2`.
        l1: L1 penalty on head Dense kernels. Defaults to `0.0`.
        l2: L2 penalty on head Dense kernels. Defaults to `1e-4`.
        head_units: sizes of hidden ReLU Dense layers between pooling and the
            output, e.g. `(256,)`. Defaults to `()` (a linear head).
        pooling: how the feature map becomes a vector: `"avg"`, `"max"` or
            `"flatten"`. Defaults to `"avg"`.
        augmentation: `None`, a preset (`"light"`, `"standard"`, `"strong"`),
            a list of Keras layers, or a layer; see
            `kft.augment.image_augmentation`. Acts only in training. Defaults
            to `None`.
        multi_label: one sigmoid per class and binary cross-entropy, for
            multi-hot labels. Defaults to `False` (softmax).
        label_mode: single-label label format: `"int"` (class ids, as
            `keras.utils.image_dataset_from_directory` gives by default) or
            `"categorical"` (one-hot, e.g. after `kft.augment.mix_dataset`).
            Defaults to `"int"`.
        from_logits: output logits (no activation) and compile a loss with
            `from_logits=True`. Defaults to `False`.
        compile: compile with AdamW, the matching loss and the metrics
            accuracy, precision, recall and F1 (macro-averaged). Defaults to
            `True`.
        learning_rate: AdamW learning rate. Defaults to `1e-3`.
        weight_decay: AdamW decoupled weight decay. Defaults to `1e-4`.
        backbone_kwargs: extra constructor arguments for the backbone, e.g.
            `{"alpha": 0.35}` for MobileNetV2. Defaults to `None`.
        preprocessing: `"auto"` (the backbone's own: from the registry, from
            the keras-hub preset, none for a ready model), `"tf"` ([-1, 1]),
            `"torch"` (ImageNet mean/std), `"caffe"` (BGR minus means) or
            `"none"`. Defaults to `"auto"`.
        bn_trainable: let unfrozen BatchNormalization layers train and
            update their moving statistics. Defaults to `False`.
        mixed_precision: the dtype policy the backbone and head are built
            under: `"mixed_bfloat16"` (bfloat16 compute, float32 weights:
            TPUs, Ampere or newer GPUs), `"mixed_float16"` (float16 compute;
            `compile` wraps the optimizer in a `LossScaleOptimizer`),
            `"float32"`, or `None` (the global Keras policy,
            `keras.config.dtype_policy()`). Under a mixed policy the head's
            last Dense computes in float32, so the outputs are float32;
            augmentation stays in float32. The global policy is not changed.
            Saved in the model's config: a `.keras` file reloads with the
            same policy. A ready `keras.Model` backbone keeps the policy it
            was built with. Defaults to `None`.
        name: model name. Defaults to `None` (`"<backbone>_classifier"`).
        strategy: what creates the model's variables: on TensorFlow a
            `tf.distribute.Strategy` (or `"mirrored"`, `"multi_worker"`,
            `"default"`), on JAX a `keras.distribution.DataParallel` (or
            `"data_parallel"`: every local device); see
            `kft.distribute.resolve_strategy`. Pass the same one to
            `kft.fine_tune`. Building inside
            `with strategy.scope():` does the same. Defaults to `None` (the
            strategy in scope, if any). See `docs/distributed.md`.
        seed: an int in [0, 2**32) for a reproducible build: the builder
            calls `keras.utils.set_random_seed(seed)` (seeding Python, NumPy,
            TensorFlow and Keras' global generators) before it creates any
            layer, so two builds with the same seed have the same initial
            head weights (and backbone weights with `weights=None`), the
            same Dropout and augmentation seeds, and start training from the
            same random state. A ready `keras.Model` backbone was created
            before the call and keeps its weights. Identical training also
            needs the same data order and, on GPU, deterministic ops
            (`tf.config.experimental.enable_op_determinism()`). Defaults to
            `None` (no seeding: the global random state as it is).

    Returns:
        A `kft.builders.TransferImageClassifier` (a functional `keras.Model`
        with `.backbone`, `.preprocessor`, `.augmentation`, `.pooling` and
        `.head`), compiled when `compile=True`.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3),
    ...     backbone_kwargs={"alpha": 0.35})
    >>> model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape
    (2, 3)
    >>> model.backbone.trainable, model.freeze(-5), model.unfreeze(0)
    (False, 149, 0)
    """
    head_units = check_head_arguments(
        num_classes=num_classes,
        dropout=dropout,
        l1=l1,
        l2=l2,
        head_units=head_units,
        multi_label=multi_label,
        label_mode=label_mode,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
    )
    check_choice("pooling", pooling, POOLINGS)
    check_choice("preprocessing", preprocessing, ("auto", *PREPROCESSING_MODES))
    check_seed(seed)
    check_mixed_precision(mixed_precision)
    backbone_kwargs = _check_backbone_kwargs(backbone_kwargs)
    if input_shape is not None:
        input_shape = _check_input_shape(input_shape)

    apply_seed(seed)  # before the first layer is created
    with dtype_policy_scope(mixed_precision):
        base, prep_layer, input_shape, label = _make_backbone(
            backbone, weights, input_shape, backbone_kwargs, preprocessing
        )
    frozen_units = freeze_backbone(
        base,
        freeze,
        bn_trainable=bn_trainable,
        what=f"The {label} backbone" if label else None,
    )
    # Augmentation acts on raw pixels and stays in float32 (created outside
    # the policy scope, in the same order as before for seeded builds).
    augmentation = None if augmentation is None else image_augmentation(augmentation)
    model = TransferImageClassifier(
        base,
        num_classes,
        image_shape=input_shape,
        preprocessor=prep_layer,
        augmentation=augmentation,
        pooling=pooling,
        head_units=head_units,
        dropout=dropout,
        l1=l1,
        l2=l2,
        multi_label=multi_label,
        label_mode=label_mode,
        from_logits=from_logits,
        bn_trainable=bn_trainable,
        mixed_precision=mixed_precision,
        name=name or f"{label}_classifier",
    )
    model.frozen_units = frozen_units  # as `model.freeze` would record it
    if compile:
        model.compile(optimizer=make_adamw(learning_rate, weight_decay))
    return model


def _check_backbone_kwargs(backbone_kwargs):
    if backbone_kwargs is None:
        return {}
    if not isinstance(backbone_kwargs, dict):
        raise TypeError(
            "`backbone_kwargs` must be a dict of constructor arguments, e.g. "
            f'{{"alpha": 0.35}}. Received: backbone_kwargs={backbone_kwargs!r}.'
        )
    for key in ("include_top", "weights", "input_shape", "name", "input_tensor"):
        if key in backbone_kwargs:
            raise ValueError(
                f"`backbone_kwargs` cannot set {key!r}: the builder sets it. "
                f"Received: backbone_kwargs={backbone_kwargs!r}. Use the builder's "
                "own arguments (`weights`, `input_shape`, `name`) instead."
            )
    return backbone_kwargs


def _check_input_shape(input_shape):
    hint = "Pass `input_shape=(height, width, 3)`, e.g. (224, 224, 3)."
    if not isinstance(input_shape, list | tuple) or len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape!r}. {hint}"
        )
    for dim in input_shape:
        if dim is not None and (
            isinstance(dim, bool) or not isinstance(dim, int) or dim < 1
        ):
            raise ValueError(
                "`input_shape` entries must be positive ints (or None for a "
                f"variable height/width). Received: input_shape={input_shape!r}. "
                f"{hint}"
            )
    if input_shape[-1] != 3:
        extra = (
            " Grayscale images: load them with `color_mode='rgb'` (repeats the "
            "channel 3 times)."
            if input_shape[-1] == 1
            else " Drop the alpha channel (load with `color_mode='rgb'`)."
        )
        raise ValueError(
            "Pretrained image backbones take 3-channel RGB images (channels "
            f"last). Received: input_shape={tuple(input_shape)!r}.{extra}"
        )
    return tuple(input_shape)


def _make_backbone(backbone, weights, input_shape, backbone_kwargs, preprocessing):
    """Returns (backbone model, preprocessing layer or None, input_shape, label)."""
    if isinstance(backbone, keras.Model):
        if backbone_kwargs:
            raise ValueError(
                "`backbone_kwargs` only apply to backbones built by name or "
                "preset; this backbone is a ready keras.Model. Received: "
                f"backbone_kwargs={backbone_kwargs!r}."
            )
        return _wrap_ready_model(backbone, input_shape, preprocessing)
    if is_keras_hub_preset(backbone) and not _is_registry_name(backbone):
        if weights not in ("imagenet", None):
            raise ValueError(
                "A keras-hub preset brings its own weights: use weights='imagenet' "
                "(the preset's weights) or weights=None. "
                f"Received: weights={weights!r}."
            )
        base, prep = load_keras_hub_backbone(
            backbone, load_weights=weights is not None, **backbone_kwargs
        )
        if preprocessing != "auto":
            prep = make_preprocessing_layer(preprocessing)
        elif prep is None:
            warnings.warn(
                f"The keras-hub preset {backbone!r} declares no image converter, so "
                "its backbone receives raw 0-255 pixels. If it expects another "
                'range, pass `preprocessing="tf"` ([-1, 1]), `"torch"` or `"caffe"`.',
                KerasTuneFTWarning,
                stacklevel=3,
            )
        shape = input_shape or (None, None, 3)
        return base, prep, shape, "keras_hub"

    spec = get_image_backbone_spec(backbone)
    if input_shape is None:
        input_shape = (spec.default_size, spec.default_size, 3)
    for dim in input_shape[:2]:
        if dim is not None and dim < spec.min_size:
            raise ValueError(
                f"{spec.family} needs images of at least {spec.min_size}x"
                f"{spec.min_size} pixels. Received: input_shape={input_shape!r}. "
                f"Its default size is {spec.default_size}; resize your images "
                "(e.g. `image_size=` when loading) or choose another backbone."
            )
    if preprocessing == "auto":
        if backbone_kwargs.get(_INCLUDE_PREPROCESSING) is False:
            raise ValueError(
                f"backbone_kwargs sets include_preprocessing=False for {spec.name}, "
                "so its expected input range is yours to choose: pass "
                '`preprocessing="tf"`, `"torch"`, `"caffe"` or `"none"` explicitly.'
            )
        preprocessing = spec.preprocessing
    weights = check_weights_argument(weights)
    try:
        base = spec.build(input_shape=input_shape, weights=weights, **backbone_kwargs)
    except TypeError as e:
        raise TypeError(
            f"keras.applications.{spec.constructor} rejected `backbone_kwargs`"
            f"={backbone_kwargs!r}: {e}"
        ) from e
    return base, make_preprocessing_layer(preprocessing), input_shape, spec.name


def _is_registry_name(value):
    try:
        get_image_backbone_spec(value)
    except (TypeError, ValueError):
        return False
    return True


def _wrap_ready_model(model, input_shape, preprocessing):
    if model.name != BACKBONE_NAME:
        # Rename without touching the caller's object: a functional wrapper
        # shares the same layers and weights.
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if not inputs:
            raise ValueError(
                f"A ready backbone must be a functional model or be named "
                f"{BACKBONE_NAME!r} (build it with name='backbone'). Received a "
                f"{type(model).__name__} named {model.name!r}."
            )
        outputs = model.outputs[0] if len(model.outputs) == 1 else model.outputs
        model = keras.Model(model.inputs, outputs, name=BACKBONE_NAME)
    if input_shape is None:
        try:
            input_shape = tuple(model.inputs[0].shape[1:])
        except (AttributeError, ValueError, IndexError, TypeError):
            input_shape = None
        if input_shape is None:
            raise ValueError(
                "Pass `input_shape=(height, width, 3)`: the ready backbone does "
                "not declare its input shape."
            )
        input_shape = _check_input_shape(input_shape)
    prep = None if preprocessing == "auto" else make_preprocessing_layer(preprocessing)
    return model, prep, input_shape, "custom"
