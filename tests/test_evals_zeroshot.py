"""Known answers for zero-shot classifier weights, top-k accuracy and mean per-class recall."""

import math

import numpy as np
import pytest
import torch
from open_clip.zero_shot_classifier import build_zero_shot_classifier
from sklearn.metrics import balanced_accuracy_score

from clipdash.evals.stats import mean_per_class_recall
from clipdash.evals.zeroshot import accuracy, zero_shot_classifier, zero_shot_metrics

PROMPT_EMBEDDINGS = {
    "a x": [3.0, 4.0],  # unit: (0.6, 0.8)
    "the x": [1.0, 0.0],
    "a y": [0.0, 2.0],  # unit: (0, 1)
    "the y": [0.0, 5.0],
}


def test_zero_shot_classifier_hand_computed():
    calls = []

    def encode_text(texts):
        calls.append(texts)
        return torch.tensor([PROMPT_EMBEDDINGS[text] for text in texts])

    weights = zero_shot_classifier(encode_text, ["x", "y"], ["a {c}", "the {c}"])
    # class x: mean of (0.6, 0.8) and (1, 0) = (0.8, 0.4), renormalised (2, 1) / sqrt(5); class y: (0, 1)
    expected = torch.tensor([[2 / math.sqrt(5), 0.0], [1 / math.sqrt(5), 1.0]])
    torch.testing.assert_close(weights, expected)
    assert calls == [["a x", "the x"], ["a y", "the y"]]


def test_zero_shot_classifier_matches_open_clip():
    generator = torch.Generator().manual_seed(0)
    classnames, templates = ["cat", "dog", "frog"], ["a {c}.", "a photo of a {c}.", "art of the {c}"]
    vocabulary = {t.format(c=c): i for i, (c, t) in enumerate((c, t) for c in classnames for t in templates)}
    table = torch.randn(len(vocabulary), 8, generator=generator)

    class FakeModel:
        def encode_text(self, tokens, normalize=False):
            rows = table[tokens]
            return rows / rows.norm(dim=-1, keepdim=True) if normalize else rows

    def tokenizer(texts):
        return torch.tensor([vocabulary[text] for text in texts])

    reference = build_zero_shot_classifier(
        FakeModel(),
        tokenizer,
        classnames,
        [t.replace("{c}", "{}") for t in templates],
        num_classes_per_batch=2,
    )
    ours = zero_shot_classifier(lambda texts: table[tokenizer(texts)], classnames, templates)
    torch.testing.assert_close(ours, reference)


def test_zero_shot_classifier_templates():
    assert zero_shot_classifier(
        lambda texts: torch.ones(len(texts), 2), ["x"], [lambda c: f"{c}!"]
    ).shape == (2, 1)
    with pytest.raises(ValueError, match="placeholder"):
        zero_shot_classifier(lambda texts: torch.ones(len(texts), 2), ["x"], ["a photo of a {}."])
    with pytest.raises(ValueError, match="at least one"):
        zero_shot_classifier(lambda texts: torch.ones(len(texts), 2), [], ["{c}"])


def test_accuracy_hand_counted():
    descending = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    logits = np.array([[0.9, 0.1, 0.2, 0.3, 0.4, 0.5], descending, descending])
    labels = np.array([0, 4, 5])  # rank 1 (hit), rank 5 (top-5 hit), rank 6 (miss)
    assert accuracy(logits, labels) == pytest.approx({"acc1": 1 / 3, "acc5": 2 / 3})
    assert accuracy(torch.tensor(logits), torch.tensor(labels), topk=(2,)) == pytest.approx({"acc2": 1 / 3})


def test_accuracy_caps_k_at_number_of_classes():
    logits = np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    assert accuracy(logits, [1, 1, 0]) == pytest.approx({"acc1": 1 / 3, "acc5": 1.0})


def test_accuracy_empty_is_nan_and_shapes_checked():
    result = accuracy(np.zeros((0, 3)), np.zeros(0))
    assert set(result) == {"acc1", "acc5"} and all(math.isnan(v) for v in result.values())
    with pytest.raises(ValueError, match="N×C"):
        accuracy(np.zeros((2, 3)), [0, 1, 2])


def test_mean_per_class_recall_hand_computed():
    labels, pred = [0, 0, 0, 1], [0, 0, 1, 1]
    # recall of class 0 = 2/3, class 1 = 1; class 2 is absent from the labels and left out
    assert mean_per_class_recall(pred, labels, n_classes=3) == pytest.approx(5 / 6)
    assert mean_per_class_recall(pred, labels, n_classes=3) == pytest.approx(
        balanced_accuracy_score(labels, pred)
    )
    assert math.isnan(mean_per_class_recall([], [], n_classes=3))
    with pytest.raises(ValueError, match="0..1"):
        mean_per_class_recall([0, 2], [0, 2], n_classes=2)


def test_zero_shot_metrics_hand_computed():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    classifier = torch.eye(2)
    # predictions 0, 1, 1 for labels 0, 1, 0: acc1 2/3; recall class 0 = 1/2, class 1 = 1
    metrics = zero_shot_metrics(features, classifier, torch.tensor([0, 1, 0]))
    assert metrics == pytest.approx({"acc1": 2 / 3, "acc5": 1.0, "mean_per_class_recall": 0.75})
