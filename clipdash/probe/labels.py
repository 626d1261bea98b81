"""Label sets the probe ranks an image against: packaged CIFAR prompts, ImageNet-1k, the 16 cue-conflict
classes, or labels the user types; each with the templates that turn a class name into prompts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from clipdash.data.prompts import TEMPLATE_SETS, imagenet_templates, load_prompts, templates_for
from clipdash.errors import DatasetError

#: The 16 categories of Geirhos et al. (2019), in the stimuli's folder order.
CUE_CONFLICT_CLASSES = (
    "airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat",
    "chair", "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck",
)  # fmt: skip


@dataclass(frozen=True)
class LabelSet:
    """Class names to rank an image against, with the prompt templates that turn them into text."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]  # each with one {c} placeholder


def _dataset_label_set(name: str, prompts: str) -> LabelSet:
    classnames, templates = load_prompts(prompts)
    return LabelSet(name, tuple(classnames), tuple(templates))


#: The label sets the page offers, each built on demand: the packaged CIFAR prompt files (18 CLIP
#: templates), ImageNet-1k with the one template "a photo of a {c}." (its 80-template ensemble would be
#: 80,000 prompts, minutes of text encoding on a CPU) and the 16 cue-conflict classes with the 80 ImageNet
#: templates.
LABEL_SETS: dict[str, Callable[[], LabelSet]] = {
    "CIFAR-10": lambda: _dataset_label_set("CIFAR-10", "cifar10"),
    "CIFAR-100": lambda: _dataset_label_set("CIFAR-100", "cifar100"),
    "ImageNet-1k": lambda: LabelSet("ImageNet-1k", tuple(IMAGENET_CLASSNAMES), TEMPLATE_SETS["photo"]),
    "cue-conflict (16 classes)": lambda: sixteen_class_labels(),
}


def list_label_sets() -> list[str]:
    return list(LABEL_SETS)


def label_set(name: str) -> LabelSet:
    """One of ``list_label_sets()``; raises ``DatasetError`` naming the valid choices otherwise."""
    if name not in LABEL_SETS:
        raise DatasetError(f"unknown label set {name!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]()


def sixteen_class_labels(
    template_set: str = "clip", classnames: tuple[str, ...] = CUE_CONFLICT_CLASSES
) -> LabelSet:
    """The 16 cue-conflict classes under a template set, as the engine's ``classifier16`` builds them:
    ``clip`` is CLIP's 80 ImageNet templates, ``seed`` and ``photo`` one template each."""
    templates = templates_for(imagenet_templates(), template_set)
    return LabelSet("cue-conflict (16 classes)", tuple(classnames), tuple(templates))


def describe_templates(template_set: str) -> str:
    """A template set in a few words, for chart titles: "80 ImageNet templates", "'an image of {c}'"."""
    fixed = TEMPLATE_SETS.get(template_set)
    return "80 ImageNet templates" if fixed is None else ", ".join(repr(t) for t in fixed)


def custom_label_set(text: str) -> LabelSet:
    """Comma-separated labels typed by the user (blanks, repeats dropped), with the 80 ImageNet templates."""
    labels = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not labels:
        raise DatasetError("Type at least one label, separated by commas (for example: cat, dog, a red car).")
    return LabelSet("custom", labels, tuple(imagenet_templates()))
