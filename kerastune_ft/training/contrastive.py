"""Contrastive fine-tuning of a sentence-embedding backbone: `ContrastiveStage`.

SetFit's first phase, in Keras on the model's own keras-hub backbone:
Tunstall et al., 2022, "Efficient Few-Shot Learning Without Prompts"
(https://arxiv.org/abs/2209.11055). Pairs of labelled training texts (same
class: target 1, different classes: target 0) train the backbone so that
the cosine similarity of the two texts' pooled embeddings matches the
target (mean squared error, sentence-transformers' `CosineSimilarityLoss`).
With 8-32 examples per class this moves a sentence-embedding model's
classes apart where training a classifier end to end learns nothing. The
head is fitted afterwards on the new embeddings, by a following
`LinearProbeStage`: the plan `[ContrastiveStage(), LinearProbeStage()]`.
"""

import dataclasses
import math
import time

import numpy as np

from kerastune_ft import freezing
from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_choice, check_number
from kerastune_ft.builders.head import make_adamw
from kerastune_ft.builders.text import TEXT_POOLINGS, TransferTextClassifier
from kerastune_ft.training.results import StageReport
from kerastune_ft.training.schedules import make_schedule
from kerastune_ft.training.stages import Stage, StageOutcome

__all__ = ["SAMPLING", "ContrastiveStage", "Pairs", "sample_pairs"]

SAMPLING = ("oversampling", "undersampling", "unique")
"""The `sampling=` values: how many positive and negative pairs to keep."""


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Sentence pairs as indices into the training texts.

    Attributes:
        first: `(pairs,)` int array, the first text of each pair.
        second: `(pairs,)` int array, the second text.
        target: `(pairs,)` float32 array, 1.0 for a same-class pair, else 0.0.
    """

    first: np.ndarray
    second: np.ndarray
    target: np.ndarray

    def __len__(self):
        return len(self.target)


def sample_pairs(labels, *, seed=0, sampling="oversampling", iterations=None):
    """SetFit's pair sampling (`setfit.sampler.ContrastiveDataset`), seeded.

    Every pair `(i, j)` with `i <= j` (a text with itself included), in a
    seeded random order, is positive (same class; multi-hot labels: a label
    in common) or negative. `"oversampling"` repeats the smaller kind up to
    the larger's count, `"undersampling"` cuts the larger kind to the
    smaller's, `"unique"` keeps every pair once; `iterations` instead makes
    `iterations * len(labels)` pairs of each kind. Positive and negative
    pairs alternate.

    Args:
        labels: `(n,)` class ids, or `(n, k)` multi-hot labels.
        seed: seeds the order of the pairs. Defaults to `0`.
        sampling: one of `SAMPLING`. Defaults to `"oversampling"`.
        iterations: pairs of each kind per text, or `None`. Defaults to
            `None`.

    Returns:
        A `Pairs`.

    Example:

    >>> import numpy as np
    >>> from kerastune_ft.training.contrastive import sample_pairs
    >>> pairs = sample_pairs(np.array([0, 0, 1, 1]), seed=0)
    >>> len(pairs), int(pairs.target.sum())  # 6 positive, 4 negative: 6 + 6
    (12, 6)
    """
    labels = np.asarray(labels)
    first, second = np.triu_indices(len(labels), 0)
    order = np.random.default_rng(seed).permutation(len(first))
    first, second = first[order], second[order]
    if labels.ndim == 2:
        same = np.any(np.logical_and(labels[first], labels[second]), axis=-1)
    else:
        same = labels[first] == labels[second]
    positive, negative = np.flatnonzero(same), np.flatnonzero(~same)
    if not len(positive) or not len(negative):
        raise ValueError(
            "Contrastive pairs need examples of at least 2 classes. Received: "
            f"labels with {len(np.unique(labels, axis=0))} distinct value(s) in "
            f"{len(labels)} examples. Add examples of another class."
        )
    if iterations is not None:
        counts = (iterations * len(labels),) * 2
    else:
        counts = {
            "oversampling": (max(len(positive), len(negative)),) * 2,
            "undersampling": (min(len(positive), len(negative)),) * 2,
            "unique": (len(positive), len(negative)),
        }[sampling]
    kinds = [np.resize(positive, counts[0]), np.resize(negative, counts[1])]
    picked = _alternate(*kinds)
    return Pairs(first[picked], second[picked], same[picked].astype("float32"))


def _alternate(a, b):
    """`a[0], b[0], a[1], b[1], ...`, then the rest of the longer one."""
    common = min(len(a), len(b))
    head = np.stack([a[:common], b[:common]], axis=1).reshape(-1)
    return np.concatenate([head, a[common:], b[common:]]).astype("int64")


@dataclasses.dataclass
class ContrastiveStage(Stage):
    """Trains the backbone on sentence pairs with a cosine-similarity loss.

    SetFit's embedding phase with its defaults (Tunstall et al., 2022,
    "Efficient Few-Shot Learning Without Prompts", arXiv:2209.11055), but
    for the learning rate (below): pairs from `sample_pairs`
    (oversampling), shuffled each epoch; the whole backbone trains (its
    frozen flags come back afterwards); each text goes through
    `model.preprocessor -> model.backbone -> model.pooling` (the model's own
    parts, dropout active); the loss is the mean squared error between the
    cosine similarity of a pair's embeddings and its target (1 same class,
    0 different); AdamW (weight decay 0.01, not on biases and LayerNorm),
    linear warmup over 10% of the steps, then linear decay.

    The head is not trained: follow with a `LinearProbeStage`, which fits it
    on the new embeddings. The stage first sets the model's pooling to
    `pooling` (`model.set_pooling`, kept by `.keras` reloads): the
    L2-normalised mean of the tokens, the sentence embedding that
    sentence-transformers models such as all-MiniLM-L6-v2 were trained to
    give (on their pooled output a few-shot head learns nothing). The
    stage logs one epoch: the model's compiled loss and metrics after it
    (the head as it was) on the training and validation data. The run's
    best-epoch tracker is told about that epoch without its monitored
    value, so weights whose head is not fitted never become the best. It
    says the pair loss of each epoch (`context.say`: silent at `verbose=0`).
    Its cost grows with the square of the examples (see `max_pairs`).

    Attributes:
        name: the stage's name in reports. Defaults to `"contrastive"`.
        epochs: passes over the pairs. Defaults to `1` (SetFit's).
        learning_rate: peak learning rate. Defaults to `6e-5`, three times
            SetFit's body learning rate (2e-5): at 8 texts per class SetFit
            makes 9 steps (the first at 0, in warmup), which barely move the
            body; on amazon_cells at 8 per class, with the same head, 6e-5
            raised yelp accuracy on each of 3 seeds (`benchmarks/RESULTS.md`).
        batch_size: pairs per step. Defaults to `16`.
        weight_decay: AdamW's decoupled weight decay. Defaults to `0.01`.
        warmup: warmup as a fraction of the steps (rounded up). Defaults to
            `0.1`.
        sampling: one of `SAMPLING`. Defaults to `"oversampling"`.
        iterations: pairs of each kind per training text instead of
            `sampling`'s count, or `None`. Defaults to `None`.
        max_pairs: keep at most this many pairs (a random subset: the
            pairs come in a seeded random order), or `None` for all.
            Defaults to `4096` (256 steps of 16). Pairs grow with the square
            of the examples: with `"oversampling"` 8 texts per class of 2
            make 144 pairs (9 steps), 32 per class 2,112 (132 steps), 8 + 52
            texts 2,828, 32 + 208 texts 44,528 (2,783 steps, over an hour
            on a 2-core CPU; the cap makes it about 7 minutes).
        seed: pairs and their order. Defaults to `None`: the run's seed
            (`fine_tune(seed=...)`), else `0`.
        pooling: the model's pooling during and after the stage: `"mean"`,
            `"normalized_mean"`, `"cls"` or `"pooled"`. Defaults to
            `"normalized_mean"`.
        jit_compile: compile the step with XLA. Defaults to `True`: on a
            2-core CPU a MiniLM step of 16 pairs takes 1.5 s instead of
            2.4 s, for about 10 s more compilation before the first step
            (`benchmarks/RESULTS.md`).
        losses: after `run`, the mean contrastive loss of each epoch.

    Example:

    >>> import keras_hub, numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> from kerastune_ft.training import stages
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]
    >>> backbone = keras_hub.models.BertBackbone(
    ...     vocabulary_size=len(vocab), num_layers=1, num_heads=1, hidden_dim=8,
    ...     intermediate_dim=16, max_sequence_length=8)
    >>> preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
    ...     keras_hub.models.BertTokenizer(vocabulary=vocab), sequence_length=8)
    >>> model = kft.build_text_classifier(
    ...     backbone, 2, preprocessor=preprocessor, pooling="mean", seed=0)
    >>> texts = np.array(["good", "bad", "good good", "bad bad"] * 2)
    >>> ds = tf.data.Dataset.from_tensor_slices((texts, np.arange(8) % 2)).batch(4)
    >>> settings = stages.TrainSettings(
    ...     epochs=1, learning_rate=1e-3, fine_tune_learning_rate=1e-5,
    ...     weight_decay=0.0, verbose=0, has_validation=False, monitor="loss")
    >>> context = stages.StageContext(
    ...     model, ds, None, settings, None, [], 0, 0, say=lambda *a: None)
    >>> stage = kft.training.ContrastiveStage(batch_size=8)
    >>> outcome = stage.run(context)  # then: kft.training.LinearProbeStage()
    >>> outcome.report.name, outcome.report.cached, len(stage.losses)
    ('contrastive', 'none', 1)
    >>> sorted(outcome.history)
    ['accuracy', 'f1', 'loss', 'precision', 'recall']
    """

    name: str = "contrastive"
    epochs: int = 1
    learning_rate: float = 6e-5
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup: float = 0.1
    sampling: str = "oversampling"
    iterations: int | None = None
    max_pairs: int | None = 4096
    seed: int | None = None
    pooling: str = "normalized_mean"
    jit_compile: bool = True

    # Set by `run`; not a dataclass field (not part of `describe()`).
    losses = None

    def __post_init__(self):
        check_number("epochs", self.epochs, low=1, integer=True)
        check_number("learning_rate", self.learning_rate, low=0, low_inclusive=False)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("warmup", self.warmup, low=0, high=1, high_inclusive=False)
        check_choice("sampling", self.sampling, SAMPLING)
        check_choice("pooling", self.pooling, TEXT_POOLINGS)
        if not isinstance(self.jit_compile, bool):
            raise TypeError(
                "`jit_compile` must be True or False. Received: "
                f"jit_compile={self.jit_compile!r}."
            )
        for name in ("iterations", "max_pairs", "seed"):
            value = getattr(self, name)
            if value is not None:
                check_number(name, value, low=0 if name == "seed" else 1, integer=True)

    def run(self, context):
        """Trains the backbone on pairs and logs one epoch.

        Args:
            context: a `StageContext`.

        Returns:
            A `StageOutcome`: a one-epoch history and a `StageReport`.

        Raises:
            ValueError: not a text transfer classifier (with its
                preprocessor), a strategy with several replicas, or training
                examples of fewer than 2 classes.
        """
        started = time.perf_counter()
        model, settings = context.model, context.settings
        _check_model(model, context.strategy)
        if model.pooling_mode != self.pooling:
            model.set_pooling(self.pooling)
        texts, labels = _examples(context.train, model)
        seed = self.seed if self.seed is not None else (settings.seed or 0)
        pairs = sample_pairs(
            labels, seed=seed, sampling=self.sampling, iterations=self.iterations
        )
        if self.max_pairs is not None and len(pairs) > self.max_pairs:
            pairs = Pairs(*(a[: self.max_pairs] for a in dataclasses.astuple(pairs)))
        steps = self.epochs * math.ceil(len(pairs) / self.batch_size)
        frozen = model.frozen_units
        freezing.set_frozen_units(model.backbone, 0)
        variables = model.backbone.trainable_variables
        trainable = freezing.count_params(variables)
        context.say(
            f"Stage {context.index + 1}/{context.num_stages} ({self.name}): "
            f"{len(pairs)} pairs of {len(texts)} texts, {steps} steps, "
            f"{trainable:,} trainable parameters, learning rate {self.learning_rate:g}"
        )
        try:
            self.losses = self._train(
                model, texts, pairs, variables, steps, seed, context
            )
        finally:
            freezing.set_frozen_units(model.backbone, frozen)
        logs = _evaluate(model, context.train, context.validation_data)
        tracker = context.tracker
        if tracker is not None:  # as `fit` does, but the head is not fitted yet:
            tracker.set_model(model)  # withholding the monitored value keeps
            tracker.on_train_begin()  # these weights from becoming the best
            told = {k: v for k, v in logs.items() if k != tracker.monitor}
            tracker.on_epoch_end(context.epoch_offset, told)
            tracker.on_train_end()
        first, seconds = context.epoch_offset + 1, time.perf_counter() - started
        report = StageReport(self.name, first, first, float(self.learning_rate),
                             trainable, round(seconds, 2), "none")  # fmt: skip
        return StageOutcome({k: [v] for k, v in logs.items()}, report)

    def _train(self, model, texts, pairs, variables, steps, seed, context):
        """Runs the optimizer steps; the mean pair loss of each epoch."""
        tf = import_tensorflow("kft.training.ContrastiveStage (text)")
        tokens = model.preprocessor(tf.constant(texts))
        warmup_steps = math.ceil(self.warmup * steps)
        schedule = make_schedule("linear", self.learning_rate, warmup_steps, steps)
        optimizer = make_adamw(schedule, self.weight_decay)
        optimizer.build(variables)
        step = _train_step(model, variables, optimizer, self.jit_compile)
        order = np.random.default_rng([seed, 1])
        losses = []
        for epoch in range(self.epochs):
            total, count = 0.0, 0
            for batch in np.array_split(
                order.permutation(len(pairs)), math.ceil(len(pairs) / self.batch_size)
            ):
                ids, target, weight = _padded_batch(pairs, batch, self.batch_size)
                inputs = {k: tf.gather(v, ids) for k, v in tokens.items()}
                loss = step(inputs, tf.constant(target), tf.constant(weight))
                total, count = total + float(loss) * len(batch), count + len(batch)
            losses.append(total / count)
            context.say(
                f"Contrastive epoch {epoch + 1}/{self.epochs}: loss {losses[-1]:.4f}"
            )
        return losses


def _padded_batch(pairs, batch, size):
    """Text ids, targets and weights of a batch padded to `size` pairs.

    Every step then has the same shapes, so XLA compiles the step once
    (a shorter last batch would compile it again, ~20 s for MiniLM on CPU);
    padded pairs repeat the first pair with weight 0.
    """
    padded = np.concatenate([batch, np.full(size - len(batch), batch[0])])
    weight = (np.arange(size) < len(batch)).astype("float32")
    ids = np.concatenate([pairs.first[padded], pairs.second[padded]])
    return ids, pairs.target[padded].astype("float32"), weight


def _train_step(model, variables, optimizer, jit_compile):
    """A compiled step: both texts of each pair in one backbone call."""
    backbone, pooling = model.backbone, model.pooling
    tf = import_tensorflow("kft.training.ContrastiveStage (text)")

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def step(inputs, target, weight):
        with tf.GradientTape() as tape:
            features = backbone(inputs, training=True)
            embeddings = pooling(features, inputs.get("padding_mask"))
            u, v = tf.split(tf.math.l2_normalize(embeddings, axis=-1), 2)
            cosine = tf.reduce_sum(u * v, axis=-1)
            loss = tf.reduce_sum(weight * tf.square(cosine - target))
            loss = loss / tf.reduce_sum(weight)
        gradients = tape.gradient(loss, variables)
        # Weights the pooling does not read (a pooler under "mean") get none.
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None]
        )
        return loss

    return step


def _check_model(model, strategy):
    """Refuses what the stage cannot train, saying what it expects."""
    if not isinstance(model, TransferTextClassifier):
        raise ValueError(
            "A contrastive stage trains a text transfer classifier, as "
            "kft.build_text_classifier builds. Received: model of type "
            f"{type(model).__name__}. Build the model with kft.build_text_classifier, "
            "or use kft.training.HeadStage."
        )
    if model.preprocessor is None:
        raise ValueError(
            "A contrastive stage tokenizes the training texts with the model's "
            "preprocessor. Received: a TransferTextClassifier with preprocessor=None. "
            "Build it with its keras_hub TextClassifierPreprocessor."
        )
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            "A contrastive stage trains on one device. Received: a strategy with "
            f"{strategy.num_replicas_in_sync} replicas. Run it without `strategy`."
        )


def _examples(dataset, model):
    """`(texts, labels)` of an `(texts, labels)` dataset, sorted by text so that
    the pairs do not depend on the dataset's (reshuffled) order."""
    texts, labels = [], []
    for batch in dataset:
        texts.append(np.asarray(batch[0]).reshape(-1))
        labels.append(np.asarray(batch[1]))
    texts = np.concatenate(texts)
    labels = np.concatenate([y.reshape(len(y), -1) for y in labels])
    if not getattr(model, "multi_label", False):
        labels = labels.argmax(-1) if labels.shape[-1] > 1 else labels[:, 0]
        labels = labels.astype("int64")
    order = np.argsort(texts, kind="stable")
    return texts[order], labels[order]


def _evaluate(model, train, validation):
    """The model's compiled loss and metrics on train (and val), one epoch's logs."""
    logs = model.evaluate(train, verbose=0, return_dict=True)
    logs = {k: float(v) for k, v in logs.items()}
    if validation is not None:
        results = model.evaluate(validation, verbose=0, return_dict=True)
        logs.update({f"val_{k}": float(v) for k, v in results.items()})
    return logs
