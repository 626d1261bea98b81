"""What the probe page offers: the bundled checkpoint, a database's checkpoint files, the ImageNet-1k
classifier baselines, a typed pretrained tag, and the cue-conflict stimuli to probe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from clipdash.data.cue_conflict import cue_conflict_root, load_cue_conflict, texture_class_from_name
from clipdash.data.decode import load_rgb
from clipdash.errors import DatasetError, ModelSpecError
from clipdash.models import parse_model_spec
from clipdash.models.classifiers import SPEC_PREFIX, list_classifiers
from clipdash.probe.labels import CUE_CONFLICT_CLASSES
from clipdash.store.queries import checkpoint_files

BUNDLED_ARCH = "clipdash-vit-t4-minilm"


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the page's model picker: what it shows, the model spec it loads, the template sets
    its stored cue-conflict results were computed with (none known for the bundled file or a tag), and
    whether it is an ImageNet-1k classifier (no text tower) rather than a CLIP model."""

    label: str
    spec: str
    template_sets: tuple[str, ...] = ()
    classifier: bool = False


def bundled_choice(path: Path) -> ModelChoice | None:
    """The bundled checkpoint (clipdash's own small CLIP) when ``path`` exists, else None."""
    if not path.is_file():
        return None
    return ModelChoice(f"bundled: {BUNDLED_ARCH} ({path.name})", f"{BUNDLED_ARCH}@{path}")


def database_choices(db: Path) -> list[ModelChoice]:
    """The checkpoint files listed in a results database that exist on this machine, by run and epoch."""
    frame = checkpoint_files(db)
    return [
        ModelChoice(
            f"{row.run} · epoch {row.epoch} ({row.arch})", f"{row.arch}@{row.path}", row.template_sets
        )
        for row in frame.itertuples()
        if Path(row.path).is_file()
    ]


def classifier_choice(name: str) -> ModelChoice:
    """An ImageNet-1k classifier baseline (``list_classifiers()``), e.g. "EfficientNet-Lite0 (ImageNet-1k
    classifier)" loading ``timm:efficientnet_lite0``."""
    shown = name.replace("efficientnet_lite", "EfficientNet-Lite")
    return ModelChoice(f"{shown} (ImageNet-1k classifier)", f"{SPEC_PREFIX}{name}", classifier=True)


def classifier_choices() -> list[ModelChoice]:
    """The registered ImageNet-1k classifier baselines, in registry order (loading one whose weights
    package is missing is an error naming the package)."""
    return [classifier_choice(name) for name in list_classifiers()]


def typed_choice(text: str) -> ModelChoice:
    """A pretrained open_clip ``ARCH:TAG`` (or a classifier's ``timm:NAME``) typed by the user; checkpoint
    files come from the lists instead."""
    if "@" in text:
        raise ModelSpecError(
            f"{text.strip()!r}: type an open_clip ARCH:TAG such as ViT-B-32:openai here; "
            "checkpoint files are chosen from the list of models"
        )
    spec = parse_model_spec(text)
    if spec.source == "classifier":
        return classifier_choice(spec.arch)
    name = f"{spec.arch}:{spec.tag}"
    return ModelChoice(f"open_clip {name}", name)


def cue_conflict_examples(data_root: Path) -> list[str]:
    """The stimuli under ``<data_root>/cue-conflict/stimuli``, named ``<shape>/<file>.png``."""
    stimuli = cue_conflict_root(data_root) / "stimuli"
    names = sorted(f"{p.parent.name}/{p.name}" for p in stimuli.glob("*/*.png"))
    if not names:
        raise DatasetError(f"{stimuli} holds no <shape>/*.png stimuli")
    return names


def load_example(data_root: Path, name: str) -> Image.Image:
    """One cue-conflict stimulus (``<shape>/<file>.png``) as RGB."""
    return load_rgb(cue_conflict_root(data_root) / "stimuli" / name)


def cue_conflict_classnames(data_root: Path | None) -> tuple[tuple[str, ...], str | None]:
    """The cue-conflict classes as the engine reads them (the stimuli's shape folders), and a note when the
    stimuli cannot give them, in which case Geirhos et al.'s 16 classes (the release's folders) are used."""
    if data_root is None:
        return CUE_CONFLICT_CLASSES, None
    try:
        return tuple(load_cue_conflict(data_root).classnames), None
    except DatasetError as exc:
        return CUE_CONFLICT_CLASSES, (
            f"The stimuli under {data_root} do not give the class names ({exc}); the 16-class scores use "
            "Geirhos et al.'s 16 classes."
        )


def example_pair(name: str) -> tuple[str, str]:
    """(shape, texture) classes of a stimulus named ``<shape>/<shape>N-<texture>M.png``."""
    shape, _, filename = name.rpartition("/")
    return shape, texture_class_from_name(filename)
