"""Per-checkpoint state shared by all evaluations: each image set is encoded once, each prompt set once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from clipdash.data.prompts import templates_for
from clipdash.data.types import LabeledImages
from clipdash.evals import linear_probe, torch_probe
from clipdash.evals.zeroshot import zero_shot_classifier, zero_shot_outcomes
from clipdash.models.encode import TextEncoder, encode_images
from clipdash.models.loading import LoadedModel
from clipdash.precompute.inputs import RunInputs

if TYPE_CHECKING:
    from clipdash.models.classifiers import LoadedClassifier


@dataclass
class CheckpointContext:
    """One loaded checkpoint plus the run's decoded inputs; memoises embeddings across evaluations."""

    loaded: LoadedModel
    inputs: RunInputs
    text: TextEncoder
    device: torch.device
    batch_size: int
    template_set: str
    _features: dict[str, torch.Tensor] = field(default_factory=dict)
    _classifiers: dict[tuple, torch.Tensor] = field(default_factory=dict)

    @property
    def logit_scale(self) -> float:
        return float(self.loaded.logit_scale)

    def features(self, key: str) -> torch.Tensor:
        """L2-normalised image embeddings of an image set (one forward pass per image per checkpoint)."""
        if key not in self._features:
            pixels = self.inputs.device_pixels(key)
            self._features[key] = encode_images(self.loaded, pixels, self.device, self.batch_size)
        return self._features[key]

    def probe_predictions(self, train_x: Any, train_y: Any, test_x: Any, classifier: str) -> np.ndarray:
        """Test predictions of a linear probe; on CUDA, logistic regression is fitted by torch on the GPU
        (same objective; the solver is part of the probe's stored setting)."""
        if classifier == "logreg" and self.device.type == "cuda":
            return torch_probe.torch_probe_predictions(train_x, train_y, test_x, device=self.device)
        return linear_probe.probe_predictions(train_x, train_y, test_x, classifier=classifier)

    def zero_shot_outcomes(self, key: str, data: LabeledImages) -> dict[str, np.ndarray]:
        """Per-image zero-shot outcomes of image set ``key``, scored against ``data``'s labels and classes
        under the chosen template set."""
        classifier = self.classifier(data.classnames, data.templates)
        return zero_shot_outcomes(self.features(key), classifier, data.labels, self.logit_scale)

    def templates(self, dataset_templates: list[str]) -> list[str]:
        """The chosen template set (``clip`` = the dataset's own CLIP ensemble)."""
        return templates_for(dataset_templates, self.template_set)

    def classifier(self, classnames: list[str], dataset_templates: list[str]) -> torch.Tensor:
        """D×C zero-shot weights for ``classnames`` under the chosen template set."""
        templates = self.templates(dataset_templates)
        key = (tuple(classnames), tuple(templates))
        if key not in self._classifiers:
            prompts = [template.format(c=name) for name in classnames for template in templates]
            table = dict(zip(prompts, self.text.encode(prompts), strict=True))  # one batched pass

            def lookup(batch: list[str]) -> torch.Tensor:
                return torch.stack([table[prompt] for prompt in batch])

            self._classifiers[key] = zero_shot_classifier(lookup, classnames, templates)
        return self._classifiers[key]

    def prompt_features(self, prompts: list[str]) -> torch.Tensor:
        """Embeddings of literal prompts (no templates), e.g. the class-agnostic or antonym prompts."""
        return self.text.encode(list(prompts))


@dataclass
class ClassifierContext:
    """One ImageNet-1k classifier plus the run's decoded inputs; memoises its logits per image set."""

    loaded: LoadedClassifier
    inputs: RunInputs
    device: torch.device
    batch_size: int
    _logits: dict[str, np.ndarray] = field(default_factory=dict)

    def logits(self, key: str) -> np.ndarray:
        """N×1000 ImageNet-1k logits of an image set (one forward pass per image)."""
        from clipdash.models.classifiers import classify_images  # timm: only for classifier runs

        if key not in self._logits:
            pixels = self.inputs.pixels(key)
            self._logits[key] = classify_images(self.loaded, pixels, self.device, self.batch_size).numpy()
        return self._logits[key]
