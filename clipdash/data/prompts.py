"""Class names and prompt templates: the package JSON files and the named template sets.

Templates use one ``{c}`` placeholder (CLIP_benchmark's convention); CLIP's ``{}`` is converted on load.
The JSON files in ``prompts/`` hold ``classes`` and either a list of ``templates`` or the name of an ensemble
that ships with open_clip (``"openai_imagenet"``), so those 80 templates are not copied here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources

from clipdash.errors import DatasetError

#: Named template sets. ``None`` means the dataset's own CLIP ensemble (``LabeledImages.templates``).
TEMPLATE_SETS: dict[str, tuple[str, ...] | None] = {
    "clip": None,
    "seed": ("an image of {c}",),
    "photo": ("a photo of a {c}.",),
}

PROMPT_FILES = ("cifar10", "cifar100", "imagenette")


def imagenet_templates() -> list[str]:
    """open_clip's ``OPENAI_IMAGENET_TEMPLATES`` (CLIP's 80 ImageNet prompts) with a ``{c}`` placeholder."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES  # imports torch: only when asked

    return [template("{c}") for template in OPENAI_IMAGENET_TEMPLATES]


_SHIPPED_ENSEMBLES: dict[str, Callable[[], list[str]]] = {"openai_imagenet": imagenet_templates}


def templates_for(dataset_templates: list[str], template_set: str) -> list[str]:
    """The templates of ``template_set``: ``"clip"`` gives ``dataset_templates``, others a fixed list."""
    if template_set not in TEMPLATE_SETS:
        raise DatasetError(f"unknown template set {template_set!r}; choose one of {sorted(TEMPLATE_SETS)}")
    fixed = TEMPLATE_SETS[template_set]
    return list(dataset_templates) if fixed is None else list(fixed)


def normalize_template(template: str) -> str:
    """Turn CLIP's ``{}`` placeholder into CLIP_benchmark's ``{c}``; require exactly one placeholder."""
    out = template.replace("{}", "{c}")
    if out.count("{c}") != 1:
        raise DatasetError(f"prompt template {template!r} needs exactly one '{{}}' or '{{c}}' placeholder")
    return out


def load_prompts(name: str) -> tuple[list[str], list[str]]:
    """Class names and templates of a packaged dataset (``clipdash/data/prompts/<name>.json``)."""
    data = _read_json(name)
    templates = data["templates"]
    if isinstance(templates, str):
        if templates not in _SHIPPED_ENSEMBLES:
            raise DatasetError(
                f"prompts/{name}.json names unknown ensemble {templates!r}; "
                f"known: {sorted(_SHIPPED_ENSEMBLES)}"
            )
        templates = _SHIPPED_ENSEMBLES[templates]()
    return list(data["classes"]), [normalize_template(t) for t in templates]


def load_wnids(name: str) -> list[str]:
    """The WordNet ids aligned with the class names of an ImageNet-derived set (e.g. ``imagenette``)."""
    data = _read_json(name)
    if "wnids" not in data:
        raise DatasetError(f"prompts/{name}.json has no 'wnids' list")
    return list(data["wnids"])


def _read_json(name: str) -> dict:
    if name not in PROMPT_FILES:
        raise DatasetError(f"no packaged prompts for {name!r}; available: {list(PROMPT_FILES)}")
    text = (
        resources.files("clipdash.data")
        .joinpath("prompts")
        .joinpath(f"{name}.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)
