"""Retraining config layers: the bias gate's margin was renamed when its meaning changed (largest gap ->
mean squared gap), and configs written for the old name still load, converted."""

from __future__ import annotations

import pytest

from monitor.settings import Settings
from retrain.jobs.config import ConfigError, defaults, effective_config


def test_bias_margin_defaults_and_the_old_name_is_read_as_its_square() -> None:
    base = Settings(database_url="sqlite://")
    assert defaults(base).gates.max_bias_disparity_increase == 0.01
    assert defaults(base).eval.probe_templates == 40
    assert defaults(base).eval.probe_axes == ("gender", "religion", "race_ethnicity")
    # Project config with the old key: a gap margin of 0.2 becomes a disparity margin of 0.04.
    cfg = effective_config(base, {"retrain": {"gates": {"max_bias_gap_increase": 0.2}}}, None)
    assert cfg.gates.max_bias_disparity_increase == pytest.approx(0.04)
    # Both keys: the new one wins.
    both = {"gates": {"max_bias_gap_increase": 0.2, "max_bias_disparity_increase": 0.003}}
    assert effective_config(base, {"retrain": both}, None).gates.max_bias_disparity_increase == 0.003
    # The old environment setting alone, likewise; the new one, when set, wins.
    assert defaults(Settings(database_url="sqlite://", gate_max_bias_gap_increase=0.1)).gates \
        .max_bias_disparity_increase == pytest.approx(0.01)
    assert defaults(Settings(database_url="sqlite://", gate_max_bias_gap_increase=0.3)).gates \
        .max_bias_disparity_increase == pytest.approx(0.09)
    assert defaults(Settings(database_url="sqlite://", gate_max_bias_gap_increase=0.3,
                             gate_max_bias_disparity_increase=0.02)).gates.max_bias_disparity_increase == 0.02
    with pytest.raises(ConfigError, match="max_bias_gap_increase must be >= 0"):
        effective_config(base, {"retrain": {"gates": {"max_bias_gap_increase": -1}}}, None)
