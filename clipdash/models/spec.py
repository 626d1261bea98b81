"""Model spec strings, parsed in one place into a frozen ``ModelSpec`` that the rest of clipdash takes.

Four forms: ``ARCH:TAG`` (open_clip pretrained weights), ``ARCH@/path/file.pt`` (one checkpoint),
``ARCH@/path/run/`` or ``@/path/run/`` (a run folder of ``epoch_K.pt``) and ``timm:NAME`` (an ImageNet-1k
classifier baseline, ``clipdash.models.classifiers``). Without ``ARCH`` the architecture is read from the
run's ``params.txt`` (open_clip's ``key: value`` lines, e.g. ``model: ViT-B-32``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import open_clip

from clipdash.errors import ModelSpecError

Source = Literal["pretrained", "file", "directory", "classifier"]
SOURCES = ("pretrained", "file", "directory", "classifier")
CLASSIFIER_PREFIX = "timm:"
CHECKPOINTS_SUBDIR = "checkpoints"
PARAMS_FILE = "params.txt"
SPEC_FORMS = (
    "ARCH:TAG (pretrained), ARCH@/path/file.pt (one checkpoint), ARCH@/path/run/ or @/path/run/, "
    "or timm:NAME (an ImageNet classifier)"
)


@dataclass(frozen=True)
class ModelSpec:
    """One parsed model spec; ``arch`` is always set (read from ``params.txt`` when the text omits it)."""

    text: str
    source: Source
    arch: str
    tag: str | None
    path: Path | None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ModelSpecError(f"model spec source must be one of {', '.join(SOURCES)}: {self.source!r}")
        if not self.arch:
            raise ModelSpecError(f"model spec {self.text!r} has no architecture")
        if self.source == "pretrained" and (not self.tag or self.path is not None):
            raise ModelSpecError(f"pretrained model spec {self.text!r} needs a tag and no path")
        if self.source == "classifier" and (self.tag is not None or self.path is not None):
            raise ModelSpecError(f"classifier model spec {self.text!r} takes no tag and no path")
        if self.source in ("file", "directory") and (self.path is None or self.tag is not None):
            raise ModelSpecError(f"{self.source} model spec {self.text!r} needs a path and no tag")


def run_folder(path: Path) -> Path:
    """The run folder of a checkpoint file or folder (above open_clip's ``checkpoints/`` level)."""
    folder = path if path.is_dir() else path.parent
    return folder.parent if folder.name == CHECKPOINTS_SUBDIR else folder


def read_params(run_dir: Path) -> dict[str, str]:
    """``params.txt`` of a run as a dict (empty when the run has none)."""
    params_path = run_dir / PARAMS_FILE
    if not params_path.is_file():
        return {}
    params = {}
    for line in params_path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            params[key.strip()] = value.strip()
    return params


def check_arch(arch: str) -> str:
    """Return ``arch`` if open_clip knows it, else raise listing the closest registered names."""
    models = open_clip.list_models()
    if arch in models:
        return arch
    by_lower = {m.lower(): m for m in models}
    close = [by_lower[m] for m in difflib.get_close_matches(arch.lower(), by_lower, n=5, cutoff=0.6)]
    hint = f"close matches: {', '.join(close)}" if close else "see open_clip.list_models()"
    raise ModelSpecError(
        f"unknown architecture {arch!r} ({hint}; custom configs must be registered first, "
        "see clipdash.models.configs.register_model_config)"
    )


def check_tag(arch: str, tag: str) -> str:
    """Return open_clip's spelling of ``tag`` for ``arch``, else raise listing the valid tags."""
    tags = open_clip.list_pretrained_tags_by_model(arch)
    by_clean = {t.lower().replace("-", "_"): t for t in tags}
    canonical = by_clean.get(tag.lower().replace("-", "_"))
    if canonical is not None:
        return canonical
    if not tags:
        raise ModelSpecError(
            f"architecture {arch} has no pretrained tags in open_clip; "
            f"load a checkpoint with {arch}@/path/file.pt"
        )
    raise ModelSpecError(f"unknown pretrained tag {tag!r} for {arch}; valid tags: {', '.join(tags)}")


def arch_from_params(path: Path) -> str:
    """The ``model:`` line of the run's ``params.txt``, for specs that omit the architecture."""
    run_dir = run_folder(path)
    arch = read_params(run_dir).get("model")
    if not arch:
        raise ModelSpecError(
            f"no architecture for {path}: write it as ARCH@{path} or add {run_dir / PARAMS_FILE} "
            "with a 'model: ARCH' line"
        )
    return arch


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``ARCH:TAG``, ``ARCH@/file.pt``, ``[ARCH]@/run/dir`` or ``timm:NAME`` into a ``ModelSpec``."""
    spec = text.strip()
    if spec.startswith(CLASSIFIER_PREFIX):
        from clipdash.models.classifiers import parse_classifier_spec  # imports timm: only when asked

        name = parse_classifier_spec(spec)
        return ModelSpec(text=text, source="classifier", arch=name, tag=None, path=None)
    if "@" in spec:
        arch, _, location = spec.partition("@")
        arch = arch.strip()
        if not location:
            raise ModelSpecError(f"model spec {text!r} has no path after '@'; use {SPEC_FORMS}")
        path = Path(location).expanduser().resolve()
        if not path.exists():
            raise ModelSpecError(f"model spec {text!r}: no such file or folder {path}")
        source = "directory" if path.is_dir() else "file"
        arch = check_arch(arch or arch_from_params(path))
        return ModelSpec(text=text, source=source, arch=arch, tag=None, path=path)
    arch, sep, tag = spec.partition(":")
    if not sep:
        raise ModelSpecError(f"model spec {text!r} names neither a tag nor a path; use {SPEC_FORMS}")
    arch = check_arch(arch.strip())
    return ModelSpec(text=text, source="pretrained", arch=arch, tag=check_tag(arch, tag.strip()), path=None)
