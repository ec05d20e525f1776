"""Suggestions of `kft.diagnose`: concrete next steps for each verdict.

Each verdict has its own function; all of them read the same inputs: the
`ModelFacts` of the model (or `None` when no model is known), the evidence
behind the verdict, and the run's stages.
"""

from kerastune_ft.evaluation.verdict import stage_of_epoch

__all__ = ["suggestions"]


def suggestions(verdict, facts, evidence, stages):
    """Concrete next steps for a verdict, tailored to the model facts.

    Args:
        verdict: one of `kerastune_ft.evaluation.verdict.VERDICTS`.
        facts: a `ModelFacts`, or `None` when the model is unknown.
        evidence: the numbers behind the verdict (`best`, `epochs`, ...).
        stages: list of `{"name", "first_epoch", "last_epoch"}`.

    Returns:
        A list of sentences.

    Example:

    >>> from kerastune_ft.evaluation.advice import suggestions
    >>> suggestions("still_improving", None, {"epochs": 5, "monitor": "val_loss"},
    ...             [])[0][:35]
    'Train for more epochs (about 10): t'
    """
    out = []
    if evidence.get("nan_epoch"):
        out.append(
            f"The loss became NaN at epoch {evidence['nan_epoch']}: lower the learning "
            "rate (e.g. learning_rate=1e-4) and check the inputs for NaN values."
        )
    advise = {
        "overfitting": _overfitting,
        "underfitting": _underfitting,
        "still_improving": _still_improving,
    }.get(verdict, _fits_well)
    out += advise(facts, evidence)
    if verdict == "overfitting":
        stage = stage_of_epoch(stages, evidence.get("overfit_epoch") or 0)
        if stage is not None:
            out.append(
                f"Overfitting began in stage '{stage}': unfreeze fewer layers or "
                "lower fine_tune_learning_rate in that stage."
            )
    return out


def _builder(facts):
    text = facts is not None and facts.modality == "text"
    return "kft.build_text_classifier" if text else "kft.build_image_classifier"


def _overfitting(facts, evidence):
    best = evidence.get("best")
    out = [
        f"Stop earlier: the validation loss was best at epoch {best}. Keep "
        "early stopping on (kft.fine_tune(early_stopping=True) restores the best "
        f"weights) or train for about {best} epochs."
    ]
    if facts is None:
        return out + [
            "Add more dropout before the classification layer.",
            "Add L2 regularization on the head (l2=1e-3).",
            "Add data augmentation.",
            "Collect more training data, or use label_smoothing=0.1 in kft.fine_tune.",
        ]
    builder = _builder(facts)
    if facts.dropout < 0.5:
        higher = min(0.5, round(facts.dropout + 0.2, 2))
        out.append(
            f"Raise the head's dropout from {facts.dropout:g} to {higher:g} "
            f"({builder}(..., dropout={higher:g}))."
        )
    if facts.l2 is not None and facts.l2 < 1e-3:
        out.append(
            f"Strengthen L2 on the head from {facts.l2:g} to 1e-3 "
            f"({builder}(..., l2=1e-3))."
        )
    out += _overfitting_backbone(facts)
    if not facts.augmentation:
        if facts.modality == "text":
            out.append(
                "Augment the training texts (kft.augment.TextAugmenter(('synonym', "
                "'swap')) with kft.augment.augment_dataset)."
            )
        else:
            out.append(f"Add augmentation ({builder}(..., augmentation='standard')).")
    out.append(
        "Collect more training data, or use label_smoothing=0.1 in kft.fine_tune."
    )
    return out


def _overfitting_backbone(facts):
    units, trainable = facts.backbone_units, facts.trainable_units
    if trainable:
        what = "transformer units" if facts.modality == "text" else "layers"
        return [
            f"Freeze more of the backbone: {trainable} of {units} backbone {what} "
            "are trainable. Unfreeze fewer (kft.fine_tune(unfreeze=...) with a "
            "smaller top) or lower fine_tune_learning_rate."
        ]
    if units:
        return [
            "The backbone is already frozen: the head alone overfits, so data and "
            "regularization matter most."
        ]
    return []


def _underfitting(facts, evidence):
    units = facts.backbone_units if facts else None
    trainable = facts.trainable_units if facts else None
    if trainable == 0 and units:
        out = [
            f"Unfreeze part of the backbone (all {units} units are frozen): "
            "kft.fine_tune(model, ..., unfreeze=20) or kft.unfreeze(model, top=20)."
        ]
    elif trainable is not None and units:
        out = [f"Unfreeze more of the backbone ({trainable} of {units} units train)."]
    else:
        out = ["Unfreeze more layers of the backbone (kft.fine_tune(unfreeze=...))."]
    builder = _builder(facts)
    if facts is not None and facts.dropout:
        lower = max(0.0, round(facts.dropout - 0.2, 2))
        out.append(
            f"Lower the head's dropout from {facts.dropout:g} ({builder}(..., "
            f"dropout={lower:g}))."
        )
    if facts is not None and facts.l2:
        out.append(f"Weaken L2 on the head from {facts.l2:g} ({builder}(..., l2=0.0)).")
    if facts is None or facts.modality != "text":
        out.append("Add a hidden layer to the head (head_units=(256,)).")
    out.append(
        "Train longer or with a higher learning rate (e.g. learning_rate=3e-3); "
        "check that the labels match the inputs (kft.data checks)."
    )
    return out


def _still_improving(facts, evidence):
    epochs = evidence.get("epochs", 0)
    return [
        f"Train for more epochs (about {max(2 * epochs, epochs + 5)}): the "
        f"{evidence.get('monitor', 'monitored metric')} was still improving when "
        "training stopped."
    ]


def _fits_well(facts, evidence):
    out = [
        "Nothing urgent. Measure it on held-out and other-domain data with "
        "kft.evaluate(model, {'test': ..., 'other domain': ...})."
    ]
    if facts is not None and facts.trainable_units == 0 and facts.backbone_units:
        out.append(
            "To gain a little more, unfreeze the top of the backbone at a low "
            "learning rate (kft.fine_tune(unfreeze=20, fine_tune_learning_rate=1e-5))."
        )
    return out
