"""Known answers for TID2013 reference/distorted cosines and their alignment with MOS."""

import math

import numpy as np
import pytest
import torch

from clipdash.evals.tid2013 import cosine_similarity_pairs, tid2013_alignment


def test_cosine_similarity_pairs_hand_computed():
    similarity = cosine_similarity_pairs(
        [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    )
    np.testing.assert_allclose(similarity[:2], [1.0, 1 / math.sqrt(2)])
    assert math.isnan(similarity[2])  # a zero embedding has no direction
    with pytest.raises(ValueError, match="shapes differ"):
        cosine_similarity_pairs(np.ones((2, 3)), np.ones((3, 3)))


def test_tid2013_alignment_overall_and_per_distortion():
    similarity = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.8])
    mos = np.array([1.0, 2.0, 3.0, 5.0, 4.0, 2.0, 1.0])
    distortion = np.array([1, 1, 1, 2, 2, 2, 3])
    metrics = tid2013_alignment(similarity, mos, distortion)

    assert metrics["plcc"] == pytest.approx(np.corrcoef(similarity, mos)[0, 1])
    assert metrics["n_pairs"] == 7
    # type 01 is perfectly monotone and linear
    assert metrics["plcc/distortion=01"] == pytest.approx(1.0)
    assert metrics["srcc/distortion=01"] == pytest.approx(1.0)
    # type 02: deviations (-0.2, -0.1, 0.3) and (4/3, 1/3, -5/3): r = -0.8 / sqrt(0.14 * 42/9)
    assert metrics["plcc/distortion=02"] == pytest.approx(-0.8 / math.sqrt(0.14 * 42 / 9))
    assert metrics["srcc/distortion=02"] == pytest.approx(-1.0)
    # type 03 has a single pair: no correlation
    assert math.isnan(metrics["plcc/distortion=03"]) and math.isnan(metrics["srcc/distortion=03"])
    assert metrics["n_pairs/distortion=03"] == 1
    assert {key.split("/")[0] for key in metrics} == {"plcc", "srcc", "n_pairs"}


def test_tid2013_alignment_string_types_and_errors():
    metrics = tid2013_alignment([0.1, 0.2, 0.3], [3.0, 2.0, 1.0], ["jpeg", "jpeg", "jpeg"])
    assert metrics["srcc/distortion=jpeg"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="lengths differ"):
        tid2013_alignment([0.1, 0.2], [1.0, 2.0, 3.0], [1, 1, 1])


def test_tid2013_alignment_empty_is_nan():
    metrics = tid2013_alignment([], [], [])
    assert math.isnan(metrics["plcc"]) and math.isnan(metrics["srcc"]) and metrics["n_pairs"] == 0
