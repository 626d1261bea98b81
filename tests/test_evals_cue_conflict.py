"""Known answers for the cue-conflict decision rules and shape bias."""

import math

import numpy as np
import pandas as pd
import pytest

from clipdash.evals.cue_conflict import (
    human_shape_bias,
    imagenet_to_16_mean,
    shape_bias,
    shape_bias_per_class,
    sixteen_class_decisions,
    texture_bias,
    two_prompt_vote,
)


def _decisions(rows):
    return pd.DataFrame(rows, columns=["shape_class", "texture_class", "decision"])


DECISIONS = _decisions(
    [
        ("cat", "dog", "cat"),  # shape
        ("cat", "dog", "dog"),  # texture
        ("dog", "cat", "dog"),  # shape
        ("dog", "cat", "bird"),  # neither: ignored in the bias, kept in the fractions
        ("cat", "cat", "cat"),  # no conflict: dropped
    ]
)


def test_two_prompt_vote_hand_computed():
    images = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    shape_text = np.tile([1.0, 0.0], (3, 1))
    texture_text = np.tile([0.0, 2.0], (3, 1))
    vote = two_prompt_vote(images, shape_text, texture_text)
    np.testing.assert_allclose(vote["shape_score"], [1.0, 0.0, 1 / np.sqrt(2)])
    np.testing.assert_allclose(vote["texture_score"], [0.0, 1.0, 1 / np.sqrt(2)])
    np.testing.assert_array_equal(vote["texture_wins"], [False, True, False])  # a tie counts for shape
    assert texture_bias(vote["texture_wins"]) == pytest.approx(1 / 3)


def test_two_prompt_vote_shapes_and_empty():
    with pytest.raises(ValueError, match="N×D"):
        two_prompt_vote(np.ones((3, 2)), np.ones((2, 2)), np.ones((3, 2)))
    assert math.isnan(texture_bias(np.zeros(0, dtype=bool)))


def test_imagenet_to_16_mean_hand_computed():
    probabilities = np.array([[0.1, 0.3, 0.2, 0.0, 0.4], [0.5, 0.1, 0.0, 0.2, 0.2]])
    indices = {"a": [0, 1], "b": [4], "unused": [2]}
    scores = imagenet_to_16_mean(probabilities, indices, ["b", "a"])
    np.testing.assert_allclose(scores, [[0.4, 0.2], [0.2, 0.3]])
    assert sixteen_class_decisions(scores, ["b", "a"]) == ["b", "a"]


def test_imagenet_to_16_mean_errors():
    with pytest.raises(ValueError, match="known categories"):
        imagenet_to_16_mean(np.ones((1, 3)), {"a": [0]}, ["a", "zebra"])
    with pytest.raises(ValueError, match="0..2"):
        imagenet_to_16_mean(np.ones((1, 3)), {"a": [3]}, ["a"])
    with pytest.raises(ValueError, match="N×2"):
        sixteen_class_decisions(np.ones((1, 3)), ["a", "b"])


def test_shape_bias_hand_counted():
    assert shape_bias(DECISIONS) == pytest.approx(
        {
            "shape_bias": 2 / 3,
            "shape_fraction": 2 / 4,
            "texture_fraction": 1 / 4,
            "n_shape": 2,
            "n_texture": 1,
            "n_images": 4,
        }
    )


def test_shape_bias_undefined_is_nan():
    only_other_answers = shape_bias(_decisions([("cat", "dog", "bird")]))
    assert math.isnan(only_other_answers["shape_bias"]) and only_other_answers["shape_fraction"] == 0
    empty = shape_bias(_decisions([]))
    assert math.isnan(empty["shape_bias"]) and math.isnan(empty["shape_fraction"]) and empty["n_images"] == 0
    with pytest.raises(ValueError, match="missing columns"):
        shape_bias(pd.DataFrame({"shape_class": ["cat"]}))


def test_shape_bias_per_class_hand_counted():
    table = shape_bias_per_class(DECISIONS)
    assert table.index.name == "shape_class" and list(table.index) == ["cat", "dog"]
    assert table.loc["cat", "shape_bias"] == pytest.approx(0.5)  # one shape, one texture, one dropped
    assert table.loc["dog", "shape_bias"] == pytest.approx(1.0)  # one shape, one other answer
    assert table.loc["dog", "shape_fraction"] == pytest.approx(0.5)
    assert table["n_images"].tolist() == [2, 2]
    assert shape_bias_per_class(_decisions([])).empty


def test_human_shape_bias_per_subject_and_mean():
    second = _decisions([("cat", "dog", "dog"), ("dog", "cat", "dog")])  # bias 1/2
    trials = pd.concat(
        [DECISIONS.assign(subject="subject-01"), second.assign(subject="subject-02")], ignore_index=True
    )
    table = human_shape_bias(trials).set_index(["subject", "shape_class"])
    assert list(table.columns) == ["n_shape", "n_texture", "shape_bias"]
    assert table.loc[("subject-01", "all"), "shape_bias"] == pytest.approx(2 / 3)
    assert table.loc[("subject-02", "all"), "shape_bias"] == pytest.approx(0.5)
    # the mean weighs subjects equally (not (2 + 1) / (3 + 4)) and sums their counts
    assert table.loc[("mean", "all"), "shape_bias"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert table.loc[("mean", "all"), ["n_shape", "n_texture"]].tolist() == [3, 2]
    # per class: cat is 1/2 for subject-01 and 0 for subject-02
    assert table.loc[("mean", "cat"), "shape_bias"] == pytest.approx(0.25)
    assert table["n_shape"].dtype == np.int64


def test_shape_bias_difference_is_paired_and_hand_checkable():
    """Epoch A: 6 shape, 4 texture decisions (0.6); epoch B: the same images, two texture decisions
    turned to shape (0.8). The paired interval of the change excludes 0 less often than two independent
    intervals would suggest; here every replicate's change is ≥ 0, since no image moved the other way."""
    from clipdash.evals.cue_conflict import shape_bias_difference

    images = [f"cat/cat{i}-elephant1.png" for i in range(10)]
    first = pd.DataFrame(
        {"image": images, "shape_class": "cat", "texture_class": "elephant",
         "decision": ["cat"] * 6 + ["elephant"] * 4}
    )  # fmt: skip
    second = first.assign(decision=["cat"] * 8 + ["elephant"] * 2)
    same = first.assign(image=images, shape_class="cat", texture_class="cat")  # no conflict: dropped
    result = shape_bias_difference(pd.concat([first, same.head(2)]), second)
    assert result["first"] == pytest.approx(0.6) and result["second"] == pytest.approx(0.8)
    assert result["difference"] == pytest.approx(0.2) and result["n"] == 10 and result["changed"] == 2
    assert 0 <= result["ci_low"] <= 0.2 <= result["ci_high"] <= 0.5
