import pytest

from kerastune_ft import _validation as v


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: v.check_choice("pooling", "average", ("avg", "max")),
            ValueError,
            r"Received: pooling='average'.*Did you mean 'avg'",
        ),
        (
            lambda: v.check_choice("pooling", 3, ("avg",)),
            ValueError,
            "Received: pooling=3",
        ),
        (
            lambda: v.check_fraction("dropout", 1.5),
            ValueError,
            r"must be in \[0.0, 1.0\)\. Received: dropout=1.5",
        ),
        (lambda: v.check_fraction("dropout", 1.0), ValueError, "Received: dropout=1.0"),
        (
            lambda: v.check_fraction("dropout", "0.2"),
            TypeError,
            "Received: dropout='0.2'",
        ),
        (lambda: v.check_number("l2", True, low=0), TypeError, "Received: l2=True"),
        (
            lambda: v.check_number("l2", -1e-4, low=0),
            ValueError,
            "Received: l2=-0.0001",
        ),
        (
            lambda: v.check_number("epochs", 2.5, low=1, integer=True),
            TypeError,
            "must be an integer",
        ),
    ],
)
def test_bad_values_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_good_values_pass_through():
    assert v.check_choice("pooling", "avg", ("avg", "max")) == "avg"
    assert v.check_fraction("dropout", 0.0) == 0.0
    assert v.check_number("epochs", 3, low=1, integer=True) == 3
