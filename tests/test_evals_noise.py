"""Known answers for the relative accuracy drop under noise."""

import math

import pytest

from clipdash.evals.noise import noise_drop


def test_noise_drop_hand_computed():
    assert noise_drop(0.8, 0.6) == pytest.approx(0.25)
    assert noise_drop(0.5, 0.5) == 0.0
    assert noise_drop(0.4, 0.5) == pytest.approx(-0.25)  # noise helped


@pytest.mark.parametrize(("clean", "noisy"), [(0.0, 0.0), (0.0, 0.1), (math.nan, 0.5), (0.5, math.nan)])
def test_noise_drop_undefined_is_nan(clean, noisy):
    assert math.isnan(noise_drop(clean, noisy))
