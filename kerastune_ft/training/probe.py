"""A converged linear head on cached features: `LinearProbeStage`.

On frozen features the head's problem is a convex logistic regression, which
gradient descent on a few dozen examples stops far from. This stage fits it
to convergence with scikit-learn's `LogisticRegressionCV` (L2 strength chosen
by cross-validation inside the training data) and writes the coefficients
into the head's output `Dense`: the model stays one Keras model.

A linear probe followed by a short unfrozen stage is LP-FT: Kumar et al.,
2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution" (ICLR 2022, https://arxiv.org/abs/2202.10054).
"""

import dataclasses
import time

import keras
import numpy as np

from kerastune_ft import freezing
from kerastune_ft._quiet import import_tensorflow
from kerastune_ft._validation import check_number
from kerastune_ft.data.checks import balanced_class_weight
from kerastune_ft.training import cache as caching
from kerastune_ft.training.cache import materialize
from kerastune_ft.training.checks import check_labels
from kerastune_ft.training.losses import recompile
from kerastune_ft.training.results import StageReport
from kerastune_ft.training.stages import Stage, StageOutcome

__all__ = ["FALLBACK_C", "LinearProbeStage", "probe_refusal"]

# C when a class has one training example (no stratified split can hold it).
FALLBACK_C = 1.0


@dataclasses.dataclass
class LinearProbeStage(Stage):
    """Fits the output layer to convergence on frozen features (no `fit`).

    One inference pass of `model.feature_extractor()` (through
    `settings.cache.feature_cache` when given), then
    `sklearn.linear_model.LogisticRegressionCV` (L2, lbfgs, `C` chosen by
    stratified k-fold cross-validation on the training features, refit on
    all). Its coefficients become the output `Dense` of `model.head`, whose
    probabilities then equal `predict_proba`'s (softmax: multinomial, or for
    two classes half the binary logit each; `from_logits=True`: the same
    kernel; one sigmoid output, `num_classes=1, multi_label=True`: binary).
    It logs one epoch: the compiled metrics on the cached features.

    Attributes:
        name: the stage's name in reports. Defaults to `"linear probe"`.
        epochs: the epochs it logs. Defaults to `1`.
        learning_rate: reported as `0.0` (no gradient steps).
        Cs: the number of `C` values on scikit-learn's grid (log-spaced in
            [1e-4, 1e4]) or a list of `C` values. Defaults to `10`.
        folds: cross-validation folds, capped by the smallest class count
            (at least 2). With a class of one example, `C` is `FALLBACK_C`
            (1.0) and the stage says so. Defaults to `5`.
        max_iter: lbfgs iterations per fit. Defaults to `1000`.
        scoring: the scikit-learn score that chooses `C`. Defaults to
            `"neg_log_loss"` (smoother than accuracy on few examples).
        seed: shuffles the folds. Defaults to `None`: the run's seed
            (`fine_tune(seed=...)`), else `0`.
        chosen_C: after `run`, the `C` that was used (`None` before).

    Example:

    >>> import numpy as np, tensorflow as tf, kerastune_ft as kft
    >>> from kerastune_ft.training import engine, stages
    >>> x = np.random.default_rng(0).random((24, 32, 32, 3), "float32") * 255
    >>> ds = tf.data.Dataset.from_tensor_slices((x, np.arange(24) % 3)).batch(8)
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3), seed=0)
    >>> settings = stages.TrainSettings(
    ...     epochs=1, learning_rate=1e-3, fine_tune_learning_rate=1e-5,
    ...     weight_decay=0.0, verbose=0)
    >>> context = stages.StageContext(
    ...     model, ds, ds, settings, None, [], 0, 0, say=lambda *a: None)
    >>> probe = kft.training.LinearProbeStage(Cs=[0.01, 1.0], folds=3)
    >>> result = engine.run_stages(context, [probe])
    >>> result.stages[0].name, result.stages[0].cached, probe.chosen_C in (0.01, 1.0)
    ('linear probe', 'train+val', True)
    >>> sorted(k for k in result.history if not k.startswith("val_"))
    ['accuracy', 'f1', 'loss', 'precision', 'recall']
    """

    name: str = "linear probe"
    epochs: int = 1
    learning_rate: float = 0.0
    Cs: int | list = 10
    folds: int = 5
    max_iter: int = 1000
    scoring: str = "neg_log_loss"
    seed: int | None = None

    # Set by `run`; not a dataclass field, so not part of `describe()` (the
    # run's checkpoint fingerprint is taken before any stage runs).
    chosen_C = None

    def __post_init__(self):
        hint = "Pass how many C values to try (e.g. 10) or a list of C values > 0."
        if not isinstance(self.Cs, (list, tuple)):
            check_number("Cs", self.Cs, low=1, integer=True, hint=hint)
        elif not self.Cs:
            raise ValueError(f"`Cs` is empty. Received: Cs={self.Cs!r}. {hint}")
        else:
            for c in self.Cs:
                check_number("Cs", c, low=0, low_inclusive=False, hint=hint)
            self.Cs = [float(c) for c in self.Cs]
        check_number("folds", self.folds, low=2, integer=True)
        check_number("max_iter", self.max_iter, low=1, integer=True)
        if self.seed is not None:
            check_number("seed", self.seed, low=0, integer=True)

    def run(self, context):
        """Fits the output layer and logs one epoch.

        Args:
            context: a `StageContext`.

        Returns:
            A `StageOutcome`: a one-epoch history and a `StageReport`.

        Raises:
            ValueError: not a transfer classifier, a head with hidden layers,
                several multi-label outputs, or a class without examples.
        """
        started = time.perf_counter()
        model, settings = context.model, context.settings
        validation = context.validation_data
        dense = _output_dense(model)
        context.say(f"Stage {context.index + 1}/{context.num_stages} ({self.name})")
        train = _features(model, context.train, settings)
        val = None if validation is None else _features(model, validation, settings)
        check_labels(model, train.y)
        labels = _class_ids(train.y, dense.units)
        class_weight = _class_weight(settings.class_weight, labels)
        classifier = self._fit(train.x, labels, class_weight, settings, context.say)
        _write(dense, classifier)
        logs = _evaluate(model, train, val, labels, class_weight, settings)
        history = {k: [v] for k, v in logs.items()}
        tracker = context.tracker
        if tracker is not None:  # as `fit` does; the stage's end restores the
            tracker.set_model(model)  # best weights (an earlier stage's if better)
            tracker.on_train_begin()
            tracker.on_epoch_end(context.epoch_offset, logs)
            tracker.on_train_end()
        first, seconds = context.epoch_offset + 1, time.perf_counter() - started
        report = StageReport(self.name, first, first, float(self.learning_rate),
                             freezing.count_params(dense.weights), round(seconds, 2),
                             "train" if val is None else "train+val")  # fmt: skip
        return StageOutcome(history, report)

    def _fit(self, x, labels, class_weight, settings, say):
        """The fitted scikit-learn classifier; sets `chosen_C`."""
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold

        x = np.asarray(x, dtype=np.float64)
        common = {"max_iter": self.max_iter, "class_weight": class_weight}
        smallest = int(np.bincount(labels).min())
        if smallest < 2:
            say("A class has 1 training example: no cross-validation split can "
                f"hold it, so the linear probe uses C={FALLBACK_C}.")  # fmt: skip
            self.chosen_C = FALLBACK_C
            return LogisticRegression(C=FALLBACK_C, **common).fit(x, labels)
        folds = min(self.folds, smallest)
        seed = self.seed if self.seed is not None else settings.seed
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed or 0)
        classifier = LogisticRegressionCV(
            Cs=self.Cs, cv=splitter, scoring=self.scoring, **common, **_l2_arguments()
        ).fit(x, labels)
        # C_ is a float, or (legacy attributes) the same C once per class.
        self.chosen_C = float(np.ravel(classifier.C_)[0])
        say(f"Linear probe: C={self.chosen_C:.4g} by {folds}-fold {self.scoring}")
        return classifier


def _l2_arguments():
    """The L2 penalty as the installed scikit-learn spells it, without warnings
    (1.8 deprecated `penalty` for `l1_ratios`, and legacy `C_` arrays)."""
    from sklearn.linear_model import LogisticRegressionCV

    defaults = LogisticRegressionCV().get_params()
    modern = defaults.get("penalty") == "deprecated"
    arguments = {"l1_ratios": (0.0,)} if modern else {"penalty": "l2"}
    if "use_legacy_attributes" in defaults:
        arguments["use_legacy_attributes"] = False
    return arguments


def probe_refusal(model):
    """Why `LinearProbeStage` cannot fit `model`'s head, or `None` when it can.

    Args:
        model: a model.

    Returns:
        The refusal message (a string), or `None`.

    Example:

    >>> import kerastune_ft as kft
    >>> from kerastune_ft.training.probe import probe_refusal
    >>> model = kft.build_image_classifier(
    ...     "mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
    >>> probe_refusal(model) is None
    True
    """
    try:
        _output_dense(model)
    except ValueError as error:
        return str(error)
    return None


def _output_dense(model):
    """The head's output `Dense`, after refusing what a linear probe cannot fit."""
    use_head = "or use kft.training.HeadStage."
    if not caching.is_transfer_classifier(model):
        raise ValueError(
            "A linear probe needs a transfer classifier, as kft.build_image_classifier "
            "and kft.build_text_classifier build. Received: model of type "
            f"{type(model).__name__}. Build the model with one, {use_head}"
        )
    *below, dense = model.head.layers
    if getattr(model, "multi_label", False) and dense.units > 1:
        raise ValueError(
            "A linear probe fits one label per example. Received: multi_label=True "
            f"with {dense.units} outputs. Fit one label at a time, {use_head}"
        )
    if not isinstance(dense, keras.layers.Dense) or any(
        not isinstance(layer, keras.layers.Dropout) for layer in below
    ):
        raise ValueError(
            "A linear probe fits a head that is one Dense layer (after Dropout). "
            f"Received: head_units={getattr(model, 'head_units', None)!r}. Build the "
            f"model with head_units=(), {use_head}"
        )
    activation = dense.get_config().get("activation")
    one_sigmoid = (activation, dense.units) == ("sigmoid", 1)
    if activation not in ("softmax", "linear") and not one_sigmoid:
        raise ValueError(
            "A linear probe writes a softmax, one sigmoid or a logits output. "
            f"Received: activation={activation!r} with {dense.units} outputs. "
            "Use kft.training.HeadStage."
        )
    return dense


def _features(model, dataset, settings):
    """A dataset's features: one inference pass, under the key `fine_tune`'s
    cached head stage uses (no augmented views), so a `FeatureCache` serves both."""
    store = settings.cache.feature_cache
    if store is None:  # not `or`: an empty FeatureCache is falsy (__len__)
        store = caching.FeatureCache()
    features = model.feature_extractor(augment=False)
    key = (store.fingerprint(features), id(dataset), 0, settings.seed)
    source = dataset
    if freezing.is_text_model(model) and model.preprocessor is not None:
        # keras-hub text tasks preprocess inside fit(); the extractor does not.
        preprocessor = model.preprocessor
        tf = import_tensorflow("Text models")
        source = dataset.map(lambda x, y: (preprocessor(x), y), tf.data.AUTOTUNE)
    return store.get_or_compute(key, dataset, lambda: materialize(features, source))


def _class_ids(y, outputs):
    """Integer class ids of int, one-hot or single-column 0/1 labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[-1] > 1:
        y = y.argmax(axis=-1)
    labels = y.reshape(-1).astype("int64")
    expected = max(outputs, 2)
    missing = sorted(set(range(expected)) - set(labels.tolist()))
    if missing:
        raise ValueError(
            "A linear probe needs examples of every class. Received: no training "
            f"example of class(es) {missing}. Add some, or use kft.training.HeadStage."
        )
    return labels


def _class_weight(class_weight, labels):
    """`{class: weight}` for scikit-learn, or `None`."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str) and class_weight == "balanced":
        return balanced_class_weight(labels)
    present = set(labels.tolist())
    return {int(k): float(v) for k, v in class_weight.items() if int(k) in present}


def _write(dense, classifier):
    """Writes the classifier's coefficients into `dense` (float32)."""
    coef = np.asarray(classifier.coef_)
    intercept = np.asarray(classifier.intercept_)
    if dense.units == 2 and coef.shape[0] == 1:
        # Binary logistic regression has one logit z; softmax([-z/2, z/2])
        # gives class 1 sigmoid(z), with the smallest kernel norm.
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    kernel, bias = dense.get_weights()
    dense.set_weights([coef.T.astype(kernel.dtype), intercept.astype(bias.dtype)])


def _evaluate(model, train, val, labels, class_weight, settings):
    """The model's compiled loss and metrics (with the run's label smoothing and,
    on train, class weights, as `fit` applies them) on the cached features."""
    head, smoothing = model.head, settings.label_smoothing or None
    recompile(head, keras.optimizers.SGD(), smoothing, like=model)
    weights = None
    if class_weight:
        weights = np.asarray([class_weight.get(int(c), 1.0) for c in labels], "float32")
    logs = head.evaluate(
        train.x,
        train.y,
        sample_weight=weights,
        batch_size=train.batch_size,
        verbose=0,
        return_dict=True,
    )
    logs = {k: float(v) for k, v in logs.items()}
    if val is not None:
        batches = caching.as_dataset(val, shuffle=False, seed=None)
        results = head.evaluate(batches, verbose=0, return_dict=True)
        logs.update({f"val_{k}": float(v) for k, v in results.items()})
    return logs
