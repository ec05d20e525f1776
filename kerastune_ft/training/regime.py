"""How much labelled data a run has, and the recipe `kft.fine_tune` picks for it.

With 8-32 examples per class, gradient descent on a classifier counted in
epochs learns next to nothing (a few optimizer steps, a validation split of a
handful of examples). `fine_tune(recipe="auto")` counts the training labels
and, when the smallest class has at most `FEW_SHOT_PER_CLASS` examples,
replaces the first (head) stage with stages that need no validation data
and no epoch count:

- image (or any frozen) backbones: `LinearProbeStage`, a logistic
  regression fitted to convergence on the cached features, its L2 strength
  chosen by cross-validation inside the training set;
- text transfer classifiers: `ContrastiveStage` (SetFit's contrastive phase:
  Tunstall et al., 2022) then `LinearProbeStage` on the tuned embeddings.

Unfreezing stages (`unfreeze=`) follow unchanged: a probe then unfreezing is
LP-FT (Kumar et al., 2022). The chosen `Regime` is in `FineTuneResult.regime`
and in `kft.diagnose`'s verdict.
"""

import dataclasses

import numpy as np

from kerastune_ft import freezing
from kerastune_ft._validation import check_choice
from kerastune_ft.data.batches import first_batch, iter_numpy, num_batches
from kerastune_ft.training import cache as caching
from kerastune_ft.training.contrastive import ContrastiveStage
from kerastune_ft.training.probe import LinearProbeStage, probe_refusal

__all__ = [
    "FEW_SHOT_PER_CLASS",
    "MAX_IMBALANCE",
    "RECIPES",
    "Regime",
    "choose_regime",
    "first_stages",
]

RECIPES = ("auto", "standard", "linear_probe", "contrastive")
"""`fine_tune`'s `recipe` values."""

# The few-shot recipes are measured from 8 to 32 examples per class
# (benchmarks/few_shot.py, image_speed.py fewshot: 20 per class); above that
# the gradient recipe keeps its full-size figures.
FEW_SHOT_PER_CLASS = 32
# Labels are counted only in a training set of at most this many times
# FEW_SHOT_PER_CLASS examples per class (an imbalanced small set such as SMS
# spam, 6.5:1, fits); a larger one keeps the standard recipe unread.
MAX_IMBALANCE = 8


@dataclasses.dataclass(frozen=True)
class Regime:
    """The recipe a `fine_tune` run used, and why.

    Attributes:
        recipe: `"standard"` (a gradient head stage), `"linear_probe"` or
            `"contrastive"` (contrastive backbone tuning, then a probe).
        smallest_class: training examples of the rarest class, or `None`
            when not counted (a large or unsized dataset).
        reason: one sentence saying why.

    Example:

    >>> import kerastune_ft as kft
    >>> regime = kft.training.Regime("linear_probe", 8, "8 examples per class")
    >>> str(regime)
    'linear_probe: 8 examples per class'
    """

    recipe: str
    smallest_class: int | None
    reason: str

    @property
    def few_shot(self):
        """Whether a few-shot recipe (no gradient head stage) was used."""
        return self.recipe != "standard"

    def __str__(self):
        return f"{self.recipe}: {self.reason}"


def choose_regime(model, train, recipe="auto", *, auto_epochs=True):
    """The `Regime` for `fine_tune(model, train, recipe=recipe)`.

    `"auto"` picks a few-shot recipe when `model` is a transfer classifier,
    the training length is automatic (`epochs=None`: a fixed epoch count asks
    for gradient epochs) and the rarest training class has at most
    `FEW_SHOT_PER_CLASS` examples; the labels are counted only in a small
    dataset (at most `MAX_IMBALANCE * FEW_SHOT_PER_CLASS` examples per class).

    Args:
        model: the model to fine-tune.
        train: the training dataset of `(inputs, labels)` batches.
        recipe: one of `RECIPES`. Defaults to `"auto"`.
        auto_epochs: whether `fine_tune` got `epochs=None`. Defaults to
            `True`.

    Returns:
        A `Regime`.

    Example:

    >>> import numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> from kerastune_ft.training.regime import choose_regime
    >>> x = np.zeros((16, 32, 32, 3), "float32")
    >>> ds = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 2)).batch(8)
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3))
    >>> choose_regime(model, ds).recipe
    'linear_probe'
    """
    check_choice("recipe", recipe, RECIPES)
    if recipe != "auto":
        return Regime(recipe, None, f"recipe={recipe!r} was asked for")
    if not caching.is_transfer_classifier(model):
        return Regime("standard", None, "the model is not a transfer classifier")
    if not auto_epochs:
        return Regime("standard", None, "`epochs` was given: gradient epochs")
    refusal = probe_refusal(model)
    if refusal is not None:
        return Regime("standard", None, f"no linear probe: {refusal}")
    text = freezing.is_text_model(model)
    if not text and freezing.get_backbone(model).trainable_weights:
        return Regime("standard", None, "the backbone trains (`freeze`)")
    smallest = _smallest_class(train, model.num_classes)
    if smallest is None or smallest > FEW_SHOT_PER_CLASS:
        return Regime(
            "standard",
            smallest,
            f"more than {FEW_SHOT_PER_CLASS} training examples per class",
        )
    reason = (
        f"{smallest} training examples in the rarest class "
        f"(<= {FEW_SHOT_PER_CLASS}): too few for gradient epochs on a head"
    )
    return Regime("contrastive" if text else "linear_probe", smallest, reason)


def first_stages(regime, standard_head):
    """The stages that replace `standard_head` (the gradient head stage).

    Args:
        regime: the run's `Regime`.
        standard_head: the planned `HeadStage`.

    Returns:
        A list of stages.
    """
    if regime.recipe == "linear_probe":
        return [LinearProbeStage()]
    if regime.recipe == "contrastive":
        return [ContrastiveStage(), LinearProbeStage()]
    return [standard_head]


def _smallest_class(train, num_classes):
    """The rarest class's count in `train`, or `None` when it is large.

    A dataset with more than `MAX_IMBALANCE * FEW_SHOT_PER_CLASS` examples
    per class is not read (reading an image dataset decodes every file).
    """
    batches = num_batches(train)
    if batches is None:
        return None
    first = first_batch(train)
    if first is None:
        return 0
    batch_size = max(1, int(np.shape(first[1])[0]))
    limit = MAX_IMBALANCE * FEW_SHOT_PER_CLASS * max(2, num_classes)
    if (batches - 1) * batch_size >= limit:
        return None
    labels = np.concatenate([y for _, y, *_ in iter_numpy(train)])
    if labels.ndim > 1 and labels.shape[-1] > 1:
        counts = labels.sum(axis=0)  # one-hot or multi-hot labels
    else:
        # Class ids, or 0/1 labels of one sigmoid output (num_classes=1).
        counts = np.bincount(
            labels.reshape(-1).astype(int), minlength=max(2, num_classes)
        )
    return int(np.min(counts))
