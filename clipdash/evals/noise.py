"""Robustness to Gaussian noise (CIFAR-C style): the relative accuracy drop from clean to noisy images."""

from __future__ import annotations

import math


def noise_drop(clean_acc: float, noisy_acc: float) -> float:
    """(clean − noisy) / clean: the share of the clean accuracy lost to noise.

    NaN when the clean accuracy is 0 or either input is NaN (a share of nothing is undefined).
    Negative when noise helps.
    """
    if math.isnan(clean_acc) or math.isnan(noisy_acc) or clean_acc == 0:
        return math.nan
    return (clean_acc - noisy_acc) / clean_acc
