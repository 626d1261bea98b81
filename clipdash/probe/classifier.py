"""One image through an ImageNet-1k classifier baseline (EfficientNet-Lite0/1/2), live: its ImageNet-1k top-5
and the 16-class cue-conflict decision by model-vs-human's 1000 → 16 mean rule.

Every step is the engine's own: the image is decoded as a classifier run decodes its images
(``resize_center_crop`` to the variant's resize size, as ``RunInputs`` does at ``loaded.resize_to``), the
logits come from ``classify_images`` (which crops the centre and normalises), and the 16 scores from
SciPy's softmax and ``imagenet_to_16_mean`` as in the cue-conflict measurement's ``classifier_compute``; so
a stored stimulus gets the stored scores. A classifier has no text tower: no prompts, label sets, profile
or two-prompt vote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.special import softmax

from clipdash.data.cue_conflict import cue_conflict_root, load_imagenet16_indices
from clipdash.data.decode import resize_center_crop
from clipdash.errors import ClipdashError, DatasetError, ModelSpecError
from clipdash.evals.cue_conflict import imagenet_to_16_mean, sixteen_class_decisions
from clipdash.models import parse_model_spec
from clipdash.models.classifiers import N_CLASSES, LoadedClassifier, classify_images, load_classifier
from clipdash.probe.labels import CUE_CONFLICT_CLASSES

TOP_K = 5
WNIDS_FILE = "imagenet1k_wnids.txt"  # under <data_root>/cue-conflict: "<wnid> <names>", line i = class i


@dataclass(frozen=True, eq=False)
class LiveClassifier:
    """A loaded ImageNet-1k classifier, the device it runs on and a one-line description for the page."""

    loaded: LoadedClassifier
    device: torch.device
    description: str


def load_live_classifier(spec_text: str, device: torch.device | None = None) -> LiveClassifier:
    """The classifier a ``timm:NAME`` spec names, with its packaged weights; errors are clipdash errors."""
    spec = parse_model_spec(spec_text)
    if spec.source != "classifier":
        raise ModelSpecError(f"{spec_text!r} is not an ImageNet classifier spec (timm:NAME)")
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_classifier(spec.arch, device)
    size = loaded.image_size
    description = (
        f"{spec.arch} (ImageNet-1k classifier, {loaded.n_params / 1e6:.1f} M parameters), "
        f"{size}×{size} px input"
    )
    return LiveClassifier(loaded, device, description)


@dataclass(frozen=True)
class ImageNetNames:
    """The 1000 ImageNet-1k classes in index order (``labels`` short and unique, ``wnids``), or none
    (``labels is None``), with where they came from or why there are none (``note``)."""

    labels: tuple[str, ...] | None
    wnids: tuple[str, ...] | None
    source: str
    note: str | None = None


def _from_descriptions(wnids: Sequence[str], descriptions: Sequence[str], source: str) -> ImageNetNames:
    """Labels from WordNet descriptions: the first synonym, with the WordNet id where two classes share it
    (ImageNet has two "crane"s and two "maillot"s)."""
    first = [description.split(",")[0].strip() for description in descriptions]
    counts = pd.Series(first).value_counts()
    labels = [
        name if counts[name] == 1 else f"{name} ({wnid})" for name, wnid in zip(first, wnids, strict=True)
    ]
    return ImageNetNames(tuple(labels), tuple(wnids), source)


def _read_wnids_file(path: Path) -> ImageNetNames:
    lines = [line.split(maxsplit=1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) != N_CLASSES or any(len(parts) != 2 for parts in lines):
        raise DatasetError(f"{path} should hold {N_CLASSES} lines of '<wnid> <names>'")
    return _from_descriptions([p[0] for p in lines], [p[1] for p in lines], str(path))


def _packaged_names() -> ImageNetNames:
    """timm's packaged ImageNet-1k synsets and descriptions (the standard order the engine uses)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = list(info.label_names())
    if len(wnids) != N_CLASSES:
        raise DatasetError(f"timm's ImageNetInfo lists {len(wnids)} classes, not {N_CLASSES}")
    descriptions = [info.index_to_description(i) for i in range(N_CLASSES)]
    return _from_descriptions(wnids, descriptions, "timm's packaged ImageNet-1k class list")


def imagenet_names(data_root: Path | None) -> ImageNetNames:
    """ImageNet-1k class names: ``cue-conflict/imagenet1k_wnids.txt`` under ``data_root`` when present,
    else timm's packaged list, else none (the top-5 then shows class indices, and ``note`` says why)."""
    problems = []
    if data_root is not None:
        try:
            path = cue_conflict_root(data_root) / WNIDS_FILE
        except DatasetError:
            path = Path(data_root) / "cue-conflict" / WNIDS_FILE
        if path.is_file():
            try:
                return _read_wnids_file(path)
            except (DatasetError, OSError, UnicodeDecodeError) as exc:
                problems.append(str(exc))
    try:
        return _packaged_names()
    except (ImportError, OSError, ValueError, DatasetError) as exc:
        problems.append(f"timm's packaged list: {exc}")
    reason = f" ({'; '.join(problems)})" if problems else ""
    return ImageNetNames(
        None,
        None,
        "none",
        f"No ImageNet-1k class names are available{reason}, so the top-5 shows class indices (0–999).",
    )


@dataclass(frozen=True)
class ClassifierProbeResult:
    """What the page shows for one image under a classifier; every table is what its chart draws.

    ``sixteen``, ``pair`` and ``decision`` are None when the 1000 → 16 mapping is not available (``note``
    says why).
    """

    pixels: np.ndarray  # what the classifier sees: image_size² × 3 uint8, the centre of the decoded square
    decoded: np.ndarray  # as the engine decodes the image for this classifier: resize_to² × 3 uint8
    top5: pd.DataFrame  # rank, index, label, logit, probability — ImageNet-1k softmax
    sixteen: pd.DataFrame | None  # class, probability (mean of its ImageNet classes'), imagenet_classes
    pair: pd.DataFrame | None  # cue, class, probability, rank (of 16), higher — the chosen pair
    decision: str | None  # the argmax of the 16 scores (the engine's stored decision)
    note: str | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {"top5": self.top5, "sixteen": self.sixteen, "pair": self.pair}
        return {name: table for name, table in tables.items() if table is not None}


def classifier_pixels(loaded: LoadedClassifier, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(decoded, seen): the image decoded as a classifier run decodes its images (shortest side to
    ``resize_to``, centre square, as ``RunInputs`` at ``loaded.resize_to``), and the centre
    ``image_size`` square of it that ``classify_images`` crops and classifies."""
    decoded = resize_center_crop(image.convert("RGB"), loaded.resize_to)
    top = (loaded.resize_to - loaded.image_size) // 2  # classifiers.preprocess's crop
    return decoded, decoded[top : top + loaded.image_size, top : top + loaded.image_size]


def imagenet_logits(live: LiveClassifier, decoded: np.ndarray) -> np.ndarray:
    """N×1000 float32 logits of N×resize_to²×3 decoded images (the engine's ``ClassifierContext.logits``)."""
    return classify_images(live.loaded, decoded, live.device, batch_size=max(1, len(decoded))).numpy()


def top_k_imagenet(logits: np.ndarray, names: ImageNetNames) -> pd.DataFrame:
    """The five most probable ImageNet-1k classes of one image's 1000 logits, with softmax probabilities."""
    probabilities = softmax(logits.astype(np.float64))
    best = np.argsort(-probabilities, kind="stable")[:TOP_K]
    labels = [names.labels[i] if names.labels else f"class {i}" for i in best]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(best) + 1),
            "index": best,
            "label": labels,
            "logit": logits[best].astype(float),
            "probability": probabilities[best],
        }
    )


def sixteen_class_mean(
    logits: np.ndarray, indices: dict[str, list[int]], classnames: Sequence[str] = CUE_CONFLICT_CLASSES
) -> pd.DataFrame:
    """The engine's 1000 → 16 rule on one image's logits: per class, the mean softmax probability of its
    ImageNet-1k classes (``classifier_compute``: SciPy's softmax, then ``imagenet_to_16_mean``)."""
    probabilities = imagenet_to_16_mean(softmax(logits[None], axis=1), indices, list(classnames))[0]
    return pd.DataFrame(
        {
            "class": list(classnames),
            "probability": probabilities.astype(float),
            "imagenet_classes": [len(indices[name]) for name in classnames],
        }
    )


def pair_ranking(sixteen: pd.DataFrame, pair: tuple[str, str]) -> pd.DataFrame:
    """The chosen (shape, texture) classes' scores and ranks among the 16; ``higher`` marks the one that
    ranks higher (a tie counts for shape, as in the two-prompt vote)."""
    classes = list(sixteen["class"])
    unknown = [name for name in pair if name not in classes]
    if unknown:
        raise ValueError(f"unknown cue-conflict classes {unknown}; choose from {', '.join(classes)}")
    scores = sixteen.set_index("class")["probability"]
    values = [float(scores[name]) for name in pair]
    ranks = [int((sixteen["probability"] > value).sum()) + 1 for value in values]
    texture_higher = values[1] > values[0]
    return pd.DataFrame(
        {
            "cue": ["shape", "texture"],
            "class": list(pair),
            "probability": values,
            "rank": ranks,
            "higher": [not texture_higher, texture_higher],
        }
    )


def sixteen_class_indices(data_root: Path | None) -> dict[str, list[int]]:
    """The 16 classes' ImageNet-1k indices (``imagenet16_indices.json``, read as the engine does)."""
    if data_root is None:
        raise DatasetError(
            "there is no cue-conflict folder under CLIPDASH_DATA_ROOT (default ../shared/data) holding "
            "imagenet16_indices.json"
        )
    return load_imagenet16_indices(data_root)


def probe_classifier(
    live: LiveClassifier,
    image: Image.Image,
    pair: tuple[str, str],
    classnames: Sequence[str] = CUE_CONFLICT_CLASSES,
    data_root: Path | None = None,
    names: ImageNetNames | None = None,
) -> ClassifierProbeResult:
    """Every view of the probe page for one image under a classifier: ImageNet-1k top-5, the 16 scores by
    the 1000 → 16 mean rule (``imagenet16_indices.json`` under ``data_root``), their argmax and the pair.

    Without the 16 classes' ImageNet indices (or with classes they do not cover) the result has the top-5
    only and a ``note`` saying why.
    """
    decoded, seen = classifier_pixels(live.loaded, image)
    logits = imagenet_logits(live, decoded[None])[0]
    top5 = top_k_imagenet(logits, names or imagenet_names(data_root))
    try:
        sixteen = sixteen_class_mean(logits, sixteen_class_indices(data_root), classnames)
    except (ClipdashError, ValueError) as exc:
        note = (
            f"The 16-class decision needs the 16 classes' ImageNet-1k indices, which are not usable: {exc}."
        )
        return ClassifierProbeResult(seen, decoded, top5, None, None, None, note)
    decision = sixteen_class_decisions(sixteen["probability"].to_numpy()[None], list(sixteen["class"]))[0]
    return ClassifierProbeResult(seen, decoded, top5, sixteen, pair_ranking(sixteen, pair), decision)
