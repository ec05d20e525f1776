"""Suggestions of kft.diagnose follow the model (`evaluation.advice`, `inspection`)."""

from _histories import (
    OVERFIT,
    UNDERFIT_FLAT,
)

import kerastune_ft as kft
from kerastune_ft.evaluation import inspection


def test_suggestions_follow_the_model():
    frozen = kft.build_image_classifier(
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
        dropout=0.1,
        l2=0.0,
    )
    d = kft.diagnose(OVERFIT, model=frozen)
    text = " | ".join(d.suggestions)
    assert "dropout from 0.1 to 0.3" in text
    assert "L2 on the head from 0 to 1e-3" in text
    assert "augmentation='standard'" in text
    assert "already frozen" in text

    tuned = kft.build_image_classifier(
        "mobilenet_v2",
        3,
        weights=None,
        input_shape=(32, 32, 3),
        backbone_kwargs={"alpha": 0.35},
        dropout=0.5,
        freeze=-10,
        augmentation="light",
    )
    text = " | ".join(kft.diagnose(OVERFIT, model=tuned).suggestions)
    assert "dropout from" not in text  # already 0.5
    assert "augmentation=" not in text  # already augments
    facts = inspection.inspect_model(tuned)
    assert facts.augmentation is True
    assert f"{facts.trainable_units} of {facts.backbone_units}" in text
    assert 0 < facts.trainable_units <= 10

    under = " | ".join(kft.diagnose(UNDERFIT_FLAT, model=frozen).suggestions)
    assert "Unfreeze part of the backbone" in under
    assert "Lower the head's dropout from 0.1" in under
