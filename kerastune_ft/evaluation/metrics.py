"""Evaluation on one or several test sets: metrics, calibration, errors, shift.

The metrics come from scikit-learn (accuracy, precision/recall/F1 macro and
per class, confusion matrix). The expected calibration error (ECE) uses
`ECE_BINS` equal-width confidence bins over [0, 1]: the weighted mean of
|accuracy - mean confidence| per bin, the confidence being the top class
probability.
"""

import numpy as np

from kerastune_ft._validation import check_number
from kerastune_ft.data._arrays import dataset_to_numpy
from kerastune_ft.data.batches import is_batches
from kerastune_ft.evaluation.tta import _check_images, predict, resolve_views

__all__ = [
    "ECE_BINS",
    "MOST_CONFUSED",
    "Evaluation",
    "evaluate",
    "expected_calibration_error",
]

# Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15
# Most-confused pairs listed per set.
MOST_CONFUSED = 10


def expected_calibration_error(probabilities, labels, *, bins=ECE_BINS):
    """Expected calibration error of top-class confidences.

    Args:
        probabilities: `(n, k)` class probabilities.
        labels: `(n,)` integer labels.
        bins: number of equal-width confidence bins. Defaults to `ECE_BINS`
            (15).

    Returns:
        The ECE, a float in [0, 1].

    Example:

    >>> import numpy as np, kerastune_ft as kft
    >>> p = np.array([[0.9, 0.1], [0.82, 0.18], [0.3, 0.7], [0.62, 0.38]])
    >>> round(kft.evaluation.metrics.expected_calibration_error(p, [0, 0, 1, 1]), 3)
    0.3
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    labels = np.asarray(labels).reshape(-1)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds confidences in (edges[i], edges[i+1]]; 0 goes to the first.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _is_loaded_data(value):
    return (
        hasattr(value, "examples")
        and hasattr(value, "class_names")
        and hasattr(value, "modality")
    )


def _collect(dataset, name):
    """Returns (inputs array, int labels, class names or None) from a test set."""
    class_names = None
    if _is_loaded_data(dataset):
        split = "test" if "test" in dataset.examples else "val"
        if split not in dataset.examples:
            raise ValueError(
                f"Test set {name!r} is a LoadedData without a test or val split. "
                "Pass one of its datasets instead, e.g. data.train."
            )
        x, y = dataset.examples[split]
        return np.asarray(x), _labels(y, name), list(dataset.class_names)
    if isinstance(dataset, tuple) and len(dataset) == 2:
        x, y = dataset
        x = np.asarray(list(x) if isinstance(x, list) else x)
        return x, _labels(y, name), class_names
    if is_batches(dataset):
        arrays = dataset_to_numpy(dataset, name=name)
        return arrays.x, _labels(arrays.y, name), class_names
    raise TypeError(
        f"Test set {name!r} must be a tf.data.Dataset or keras.utils.PyDataset of "
        "(inputs, labels) batches, an (inputs, labels) tuple, or a kft.data "
        "LoadedData. "
        f"Received: {type(dataset).__name__}."
    )


def _labels(y, name):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        return y.argmax(axis=1).astype("int64")
    return y.reshape(-1).astype("int64")


def _set_metrics(probabilities, labels, inputs, class_names, top_losses):
    from sklearn import metrics as skm

    k = len(class_names)
    predicted = probabilities.argmax(axis=1)
    ids = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=ids, zero_division=0
    )
    matrix = skm.confusion_matrix(labels, predicted, labels=ids)
    p_true = probabilities[np.arange(len(labels)), np.clip(labels, 0, k - 1)]
    losses = -np.log(np.clip(p_true, 1e-12, 1.0))
    pairs = []
    for i in range(k):
        for j in range(k):
            if i != j and matrix[i, j]:
                pairs.append(
                    {
                        "true": class_names[i],
                        "predicted": class_names[j],
                        "count": int(matrix[i, j]),
                        "fraction_of_true": float(
                            matrix[i, j] / max(1, matrix[i].sum())
                        ),
                    }
                )
    pairs.sort(key=lambda p: (-p["count"], -p["fraction_of_true"]))
    wrong = np.flatnonzero(predicted != labels)
    # Most confidently wrong first: the largest loss on the true class.
    wrong = wrong[np.argsort(-losses[wrong], kind="stable")][:top_losses]
    is_text = inputs.dtype.kind in ("U", "S", "O")
    top = [
        {
            "index": int(i),
            "input": str(inputs[i]) if is_text else inputs[i],
            "true": class_names[labels[i]],
            "predicted": class_names[predicted[i]],
            "confidence": float(probabilities[i, predicted[i]]),
            "probability_of_true": float(p_true[i]),
            "loss": float(losses[i]),
        }
        for i in wrong
    ]
    return {
        "n": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "loss": float(losses.mean()),
        "ece": expected_calibration_error(probabilities, labels),
        "per_class": {
            class_names[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in range(k)
        },
        "confusion_matrix": matrix.tolist(),
        "most_confused": pairs[:MOST_CONFUSED],
        "top_losses": top,
        "modality": "text" if is_text else "image",
    }


class Evaluation:
    """What `kft.evaluate` returns: metrics per test set and the domain shift.

    Attributes:
        results: dict set name -> dict with `n`, `accuracy`,
            `precision_macro`, `recall_macro`, `f1_macro`, `loss` (mean
            cross-entropy), `ece`, `per_class` (class -> precision, recall,
            f1, support), `confusion_matrix` (list of rows, true x
            predicted), `most_confused` (pairs, most frequent first) and
            `top_losses` (the most confidently wrong examples with their raw
            `input`: a text, or an image array).
        class_names: the class names, label `i` being `class_names[i]`.
        domain_shift: for two or more sets, one row per set with its
            `accuracy`, `f1_macro`, `ece` and the drop from the first set
            (`accuracy_drop`, `accuracy_drop_relative`, `f1_macro_drop`);
            empty for one set.
        tta: the test-time augmentation views the probabilities were
            averaged over (a tuple of names from
            `kft.evaluation.tta.VIEWS`), or `None` without TTA.
    """

    def __init__(self, results, class_names, tta=None):
        self.results = results
        self.class_names = list(class_names)
        self.tta = None if tta is None else tuple(tta)
        self.domain_shift = []
        if len(results) > 1:
            names = list(results)
            ref = results[names[0]]
            for name in names:
                r = results[name]
                self.domain_shift.append(
                    {
                        "set": name,
                        "n": r["n"],
                        "accuracy": r["accuracy"],
                        "f1_macro": r["f1_macro"],
                        "ece": r["ece"],
                        "accuracy_drop": ref["accuracy"] - r["accuracy"],
                        "accuracy_drop_relative": (ref["accuracy"] - r["accuracy"])
                        / max(ref["accuracy"], 1e-12),
                        "f1_macro_drop": ref["f1_macro"] - r["f1_macro"],
                    }
                )

    @property
    def names(self):
        """The test set names, in the order given."""
        return list(self.results)

    def _name(self, name):
        if name is None:
            return self.names[0]
        if name not in self.results:
            raise ValueError(
                f"Unknown test set {name!r}. Evaluated sets: {self.names}."
            )
        return name

    def to_dict(self):
        """A JSON-serializable dict (image top losses keep their shape, not pixels)."""
        out = {
            "class_names": list(self.class_names),
            "tta": None if self.tta is None else list(self.tta),
            "results": {},
            "domain_shift": [],
        }
        for name, r in self.results.items():
            copy = {k: v for k, v in r.items() if k != "top_losses"}
            copy["top_losses"] = [
                {
                    **{k: v for k, v in t.items() if k != "input"},
                    "input": t["input"]
                    if isinstance(t["input"], str)
                    else {"shape": list(np.shape(t["input"]))},
                }
                for t in r["top_losses"]
            ]
            out["results"][str(name)] = copy
        out["domain_shift"] = [dict(row) for row in self.domain_shift]
        return out

    def plot_confusion_matrix(self, name=None, *, normalize=False):
        """The confusion matrix of one set (default: the first) as a Figure."""
        from kerastune_ft.evaluation import plots

        name = self._name(name)
        return plots.confusion_matrix(
            self.results[name]["confusion_matrix"],
            self.class_names,
            title=f"Confusion matrix: {name}",
            normalize=normalize,
        )

    def plot_per_class_f1(self):
        """Per-class F1 bars of every set as a Figure."""
        from kerastune_ft.evaluation import plots

        return plots.per_class_f1(
            {
                name: [r["per_class"][c]["f1"] for c in self.class_names]
                for name, r in self.results.items()
            },
            self.class_names,
        )

    def plot_domain_shift(self):
        """Accuracy and macro F1 per set as a Figure (needs two or more sets)."""
        from kerastune_ft.evaluation import plots

        if not self.domain_shift:
            raise ValueError(
                "The domain-shift plot needs two or more test sets: "
                "kft.evaluate(model, {'in-domain': ..., 'other': ...})."
            )
        return plots.domain_shift(self.domain_shift)

    def summary_rows(self):
        """Rows `[set, n, accuracy, precision, recall, f1, ece, loss]`."""
        return [
            [
                name,
                r["n"],
                r["accuracy"],
                r["precision_macro"],
                r["recall_macro"],
                r["f1_macro"],
                r["ece"],
                r["loss"],
            ]
            for name, r in self.results.items()
        ]

    SUMMARY_HEADER = [
        "set",
        "n",
        "accuracy",
        "precision",
        "recall",
        "F1 macro",
        "ECE",
        "loss",
    ]

    def __str__(self):
        from kerastune_ft.evaluation.render import fmt

        lines = ["Evaluation"]
        if self.tta is not None:
            lines[0] += (
                f" (test-time augmentation: mean of {len(self.tta)} views: "
                f"{', '.join(self.tta)})"
            )
        rows = [self.SUMMARY_HEADER] + [
            [fmt(c) for c in row] for row in self.summary_rows()
        ]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append(
                "  "
                + "  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True))
            )
        if self.domain_shift:
            ref = self.domain_shift[0]["set"]
            lines.append(f"Domain shift (drop from {ref}):")
            for row in self.domain_shift[1:]:
                lines.append(
                    f"  {row['set']}: accuracy {row['accuracy']:.3f} "
                    f"({-row['accuracy_drop']:+.3f}, "
                    f"{-row['accuracy_drop_relative'] * 100:+.1f}%), "
                    f"F1 {row['f1_macro']:.3f} ({-row['f1_macro_drop']:+.3f})"
                )
        for name, r in self.results.items():
            if r["most_confused"]:
                pair = r["most_confused"][0]
                lines.append(
                    f"{name}: most confused {pair['true']} -> {pair['predicted']} "
                    f"({pair['count']}x)"
                )
        return "\n".join(lines)

    def __repr__(self):
        accs = ", ".join(f"{n}: {r['accuracy']:.3f}" for n, r in self.results.items())
        tta = "" if self.tta is None else f", tta {len(self.tta)} views"
        return f"Evaluation(accuracy {{{accs}}}{tta})"

    def to_html(self, *, include_plots=True, thumbnails=True):
        """The evaluation as an HTML fragment; every dataset string is escaped."""
        from kerastune_ft.evaluation import render

        return render.evaluation_html(
            self, include_plots=include_plots, thumbnails=thumbnails
        )

    def _repr_html_(self):
        from kerastune_ft.evaluation import render

        return render.fragment_page(evaluation=self)


def evaluate(
    model,
    test_sets,
    *,
    class_names=None,
    batch_size=32,
    top_losses=8,
    verbose=0,
    tta=None,
):
    """Evaluates a classifier on one or several test sets (in and out of domain).

    For each set: accuracy, macro precision / recall / F1 and per class (via
    scikit-learn), the confusion matrix, the expected calibration error
    (`ECE_BINS` bins), the most-confused class pairs, and the top losses:
    the examples the model is most confidently wrong on, with their raw
    input (the text, or the image array shown as a thumbnail in reports).
    With two or more sets, `domain_shift` compares each with the first.

    Args:
        model: a classifier with Keras' `predict` (softmax, sigmoid or logits
            outputs), e.g. from `kft.build_image_classifier` or
            `kft.build_text_classifier` (which take raw strings).
        test_sets: one test set or a dict name -> test set, the first being
            the reference (in-domain) set. A test set is a `tf.data.Dataset`
            or a `keras.utils.PyDataset` (such as `kft.data.ArrayBatches`) of
            `(inputs, labels)` batches (read once, in order), an
            `(inputs, labels)` tuple of arrays or lists, or a `kft.data`
            `LoadedData` (its `test` split, else its `val` split). One set
            is named `"test"`.
        class_names: names of the classes. Defaults to `None`: those of a
            `LoadedData` when given, else `"0"`, `"1"`, ...
        batch_size: prediction batch size. Defaults to `32`.
        top_losses: how many most-confidently-wrong examples to keep per
            set. Defaults to `8`.
        verbose: `predict`'s verbosity. Defaults to `0`.
        tta: test-time augmentation for image models, as in
            `kft.evaluation.predict`: `None` (off), an int N (the first N
            deterministic views: the image, its mirror, crops resized
            back...) or a list of view names from
            `kft.evaluation.tta.VIEWS`. The scores use the probabilities
            averaged over the views; `Evaluation.tta` records them.
            Defaults to `None`.

    Returns:
        An `Evaluation` (print it, display it in Jupyter, plot it, or put it
        in a `kft.Report`).

    Example:

    >>> import numpy as np, keras, kerastune_ft as kft
    >>> model = keras.Sequential(
    ...     [keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> y = np.array([0, 1, 0, 1])
    >>> ev = kft.evaluate(model, {"in": (x, y), "out": (x[:2], y[:2])})
    >>> sorted(ev.results), len(ev.domain_shift)
    (['in', 'out'], 2)
    """
    if not hasattr(model, "predict"):
        raise TypeError(
            "`model` must have a Keras-like `predict` method (a keras.Model). "
            f"Received: {type(model).__name__}."
        )
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("top_losses", top_losses, low=0, integer=True)
    views = resolve_views(tta)
    if isinstance(test_sets, dict):
        if not test_sets:
            raise ValueError(
                "`test_sets` is an empty dict: pass at least one test set."
            )
        sets = dict(test_sets)
    else:
        sets = {"test": test_sets}
    collected = {}
    for name, dataset in sets.items():
        x, y, names = _collect(dataset, name)
        if len(x) != len(y):
            raise ValueError(
                f"Test set {name!r} has {len(x)} inputs but {len(y)} labels."
            )
        if views is not None:
            _check_images(model, x, views)
        if class_names is None and names is not None:
            class_names = names
        collected[name] = (x, y)
    probabilities = {
        name: predict(model, x, tta=views, batch_size=batch_size, verbose=verbose)
        for name, (x, _) in collected.items()
    }
    k = max(p.shape[1] for p in probabilities.values())
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != k:
        raise ValueError(
            f"The model has {k} outputs but {len(class_names)} class names were "
            f"given. Received: class_names={class_names!r}."
        )
    results = {}
    for name, (x, y) in collected.items():
        if len(y) and (y.min() < 0 or y.max() >= k):
            raise ValueError(
                f"Test set {name!r} has labels up to {int(y.max())} but the model has "
                f"{k} outputs. Check the labels (class order must match training)."
            )
        results[name] = _set_metrics(probabilities[name], y, x, class_names, top_losses)
    return Evaluation(results, class_names, tta=views)
