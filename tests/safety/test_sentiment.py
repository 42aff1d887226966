from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.safety.sentiment import negative_flags, vader_compound


def test_compound_orders_positive_neutral_negative() -> None:
    scores = vader_compound(
        ["I love this, it is wonderful!", "The box is on the table.", "This is awful and I hate it."]
    )
    assert scores[0] > 0.5 and abs(scores[1]) < 0.05 and scores[2] < -0.5
    assert np.all((scores >= -1) & (scores <= 1))


def test_missing_texts_are_nan_and_types_checked() -> None:
    scores = vader_compound([None, "great"])
    assert math.isnan(scores[0]) and scores[1] > 0
    with pytest.raises(TypeError, match="expected str"):
        vader_compound([1.5])  # type: ignore[list-item]


def test_negative_flags_keep_missing_as_nan() -> None:
    flags = negative_flags([-0.6, 0.0, float("nan"), -0.05])
    assert flags[0] == 1.0 and flags[1] == 0.0 and math.isnan(flags[2]) and flags[3] == 1.0
