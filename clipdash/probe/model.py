"""One loaded model for live probing, its memoised text classifiers, and the process-wide hand-over of a
model loaded ahead of time (the dashboard's prewarm thread) to the page that asks for it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from clipdash.errors import ModelSpecError
from clipdash.evals import class_agnostic
from clipdash.evals.zeroshot import zero_shot_classifier
from clipdash.models import LoadedModel, load_model, parse_model_spec, quickgelu_warning, resolve_checkpoints
from clipdash.models.configs import register_builtin_configs
from clipdash.models.encode import TextEncoder
from clipdash.probe.labels import LabelSet, sixteen_class_labels


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LiveModel:
    """A loaded checkpoint, its text encoder and memoised text classifiers (one per label set).

    One instance is shared by every session of the dashboard (``st.cache_resource``), so text encoding,
    whose caches are plain dicts, runs under a lock.
    """

    loaded: LoadedModel
    text: TextEncoder
    device: torch.device
    description: str
    note: str | None = None
    _classifiers: dict[tuple, torch.Tensor] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def classifier(self, labels: LabelSet) -> torch.Tensor:
        """D×C zero-shot weights of a label set (templates averaged per class, as in the engine)."""
        key = (labels.classnames, labels.templates)
        with self._lock:
            if key not in self._classifiers:
                # Embed every prompt in large batches first (ImageNet's 1000 classes would otherwise be
                # 1000 small forward passes), then let the engine's function average them per class.
                prompts = list(
                    dict.fromkeys(t.format(c=c) for c in labels.classnames for t in labels.templates)
                )
                embedded = dict(zip(prompts, self.text.encode(prompts), strict=True))
                self._classifiers[key] = zero_shot_classifier(
                    lambda batch: torch.stack([embedded[p] for p in batch]),
                    labels.classnames,
                    labels.templates,
                )
            return self._classifiers[key]

    def prompt_features(self, prompts: Sequence[str]) -> torch.Tensor:
        """Embeddings of literal prompts (the class-agnostic profile's 32 generic prompts), memoised."""
        key = ("prompts", tuple(prompts))
        with self._lock:
            if key not in self._classifiers:
                self._classifiers[key] = self.text.encode(list(prompts))
            return self._classifiers[key]

    def warm_up(self) -> None:
        """Embed the prompts every probe needs (16 classes × 80 templates, the 32 generic prompts) now,
        so the slow part happens once, while the page says it is loading."""
        self.classifier(sixteen_class_labels())
        self.prompt_features(class_agnostic.GENERIC_PROMPTS)


def load_live_model(spec_text: str, device: torch.device | None = None) -> LiveModel:
    """Load the model a spec names (a directory gives its last epoch); errors are clipdash errors.

    clipdash's own architecture is registered first, so the bundled checkpoint's spec always parses.
    """
    register_builtin_configs()
    device = device or default_device()
    spec = parse_model_spec(spec_text)
    refs = resolve_checkpoints(spec)
    if not refs:
        raise ModelSpecError(f"model spec {spec_text!r} names no checkpoint")
    ref = refs[-1]
    loaded = load_model(ref, device=str(device))
    text = TextEncoder(device)
    text.start_checkpoint(loaded)
    where = ref.tag if ref.path is None else str(ref.path)
    epoch = "" if ref.epoch < 0 else f", epoch {ref.epoch}"
    description = f"{ref.arch} ({where}{epoch}), {loaded.image_size}×{loaded.image_size} px input"
    return LiveModel(loaded, text, device, description, quickgelu_warning(spec))


_PREWARMED: dict[str, LiveModel] = {}  # loaded ahead of time, not yet handed over
_HANDED_OVER: set[str] = set()  # specs a page has taken: prewarming them again would load a spare copy
_LOAD_LOCK = threading.Lock()  # one load at a time: a page and the prewarm never load the same model twice


def _load_warm(spec_text: str) -> LiveModel:
    model = load_live_model(spec_text)
    model.warm_up()
    return model


def prewarm(spec_text: str) -> None:
    """Load and warm up ``spec_text``'s model ahead of time (a background thread calls this once per server),
    to be handed to the first :func:`warmed_model` call for that spec; nothing if a page already has it."""
    with _LOAD_LOCK:
        if spec_text not in _PREWARMED and spec_text not in _HANDED_OVER:
            _PREWARMED[spec_text] = _load_warm(spec_text)


def warmed_model(spec_text: str) -> LiveModel:
    """The model for ``spec_text``, warmed up: the prewarmed one when there is one (waiting for a prewarm
    in progress rather than loading twice), else loaded now. The caller keeps it (the page's cache)."""
    with _LOAD_LOCK:
        model = _PREWARMED.pop(spec_text, None) or _load_warm(spec_text)
        _HANDED_OVER.add(spec_text)
    return model
