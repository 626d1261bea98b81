"""Live probing of one image with one model: the logic behind the dashboard's "Probe an image" page.

Nothing here comes from the results database except the list of checkpoint files. The image is resized and
centre-cropped exactly like the precompute engine's inputs, encoded with the engine's ``encode_images``,
and compared with text prompts through the same pure functions (``clipdash.evals``), so probing a
cue-conflict stimulus gives the votes the database holds for it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import torch
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
from PIL import Image

from clipdash.charts import CUE_COLOURS
from clipdash.data.cue_conflict import cue_conflict_root, texture_class_from_name
from clipdash.data.decode import load_rgb, resize_center_crop
from clipdash.data.prompts import TEMPLATE_SETS, imagenet_templates, load_prompts
from clipdash.errors import DatasetError, ModelSpecError
from clipdash.evals import class_agnostic, cue_conflict
from clipdash.evals.zeroshot import zero_shot_classifier
from clipdash.models import LoadedModel, load_model, parse_model_spec, quickgelu_warning, resolve_checkpoints
from clipdash.models.configs import register_builtin_configs
from clipdash.precompute.encode import TextEncoder, encode_images
from clipdash.store.queries import checkpoint_files

BUNDLED_ARCH = "clipdash-vit-t4-minilm"
#: The 16 categories of Geirhos et al. (2019), in the stimuli's folder order.
CUE_CONFLICT_CLASSES = (
    "airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat",
    "chair", "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck",
)  # fmt: skip
TOP_K = 5
MAX_ENTROPY = math.log(len(class_agnostic.GENERIC_PROMPTS))
CUE_SCALE = alt.Scale(domain=list(CUE_COLOURS), range=list(CUE_COLOURS.values()))


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the page's model picker: what it shows and the model spec it loads."""

    label: str
    spec: str


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


def sixteen_class_labels() -> LabelSet:
    """The 16 cue-conflict classes with CLIP's 80 ImageNet templates (the engine's ``classifier16``)."""
    return LabelSet("cue-conflict (16 classes)", CUE_CONFLICT_CLASSES, tuple(imagenet_templates()))


def custom_label_set(text: str) -> LabelSet:
    """Comma-separated labels typed by the user (blanks, repeats dropped), with the 80 ImageNet templates."""
    labels = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not labels:
        raise DatasetError("Type at least one label, separated by commas (for example: cat, dog, a red car).")
    return LabelSet("custom", labels, tuple(imagenet_templates()))


def bundled_choice(path: Path) -> ModelChoice | None:
    """The bundled checkpoint (clipdash's own small CLIP) when ``path`` exists, else None."""
    if not path.is_file():
        return None
    return ModelChoice(f"bundled: {BUNDLED_ARCH} ({path.name})", f"{BUNDLED_ARCH}@{path}")


def database_choices(db: Path) -> list[ModelChoice]:
    """The checkpoint files listed in a results database that exist on this machine, by run and epoch."""
    frame = checkpoint_files(db)
    return [
        ModelChoice(f"{row.run} · epoch {row.epoch} ({row.arch})", f"{row.arch}@{row.path}")
        for row in frame.itertuples()
        if Path(row.path).is_file()
    ]


def typed_choice(text: str) -> ModelChoice:
    """A pretrained open_clip ``ARCH:TAG`` typed by the user; checkpoint files come from the lists instead."""
    if "@" in text:
        raise ModelSpecError(
            f"{text.strip()!r}: type an open_clip ARCH:TAG such as ViT-B-32:openai here; "
            "checkpoint files are chosen from the list of models"
        )
    spec = parse_model_spec(text)
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


def example_pair(name: str) -> tuple[str, str]:
    """(shape, texture) classes of a stimulus named ``<shape>/<shape>N-<texture>M.png``."""
    shape, _, filename = name.rpartition("/")
    return shape, texture_class_from_name(filename)


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


@dataclass(frozen=True)
class ProbeResult:
    """What the page shows for one image; every table is what its chart draws (and its CSV download)."""

    pixels: np.ndarray  # the model's input: H×W×3 uint8 after resize + centre crop
    sixteen: pd.DataFrame  # class, cosine, probability — the 16 cue-conflict classes
    vote: pd.DataFrame  # cue (shape/texture), class, cosine, wins — the two-prompt vote
    top5: pd.DataFrame  # rank, label, cosine, probability — zero-shot on the chosen label set
    profile: pd.DataFrame  # prompt, cosine, probability — softmax(cos/τ) over the 32 generic prompts
    tau: float
    entropy: float  # of the profile, in nats; at most MAX_ENTROPY = ln 32

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"sixteen": self.sixteen, "vote": self.vote, "top5": self.top5, "profile": self.profile}


def encode_image(live: LiveModel, image: Image.Image) -> tuple[np.ndarray, torch.Tensor]:
    """Resize + centre-crop to the model's input size (as the engine decodes); the unit embedding (D,)."""
    pixels = resize_center_crop(image.convert("RGB"), live.loaded.image_size)
    features = encode_images(live.loaded, pixels[None], live.device, batch_size=1)
    return pixels, features[0]


def sixteen_class_scores(
    features: torch.Tensor, classifier16: torch.Tensor, logit_scale: float
) -> pd.DataFrame:
    """Cosine and softmax(logit_scale · cos) of one image over the 16 cue-conflict classes."""
    cosines = features @ classifier16
    probabilities = torch.softmax(logit_scale * cosines, dim=-1)
    return pd.DataFrame(
        {"class": CUE_CONFLICT_CLASSES, "cosine": cosines.numpy(), "probability": probabilities.numpy()}
    )


def two_prompt_vote(
    features: torch.Tensor, classifier16: torch.Tensor, pair: tuple[str, str]
) -> pd.DataFrame:
    """The engine's two-prompt vote for one (shape, texture) pair: both cosines, which wins (ties: shape)."""
    unknown = [name for name in pair if name not in CUE_CONFLICT_CLASSES]
    if unknown:
        raise ValueError(
            f"unknown cue-conflict classes {unknown}; choose from {', '.join(CUE_CONFLICT_CLASSES)}"
        )
    shape, texture = pair
    columns = classifier16.T
    vote = cue_conflict.two_prompt_vote(
        features[None].numpy(),
        columns[[CUE_CONFLICT_CLASSES.index(shape)]].numpy(),
        columns[[CUE_CONFLICT_CLASSES.index(texture)]].numpy(),
    )
    texture_wins = bool(vote["texture_wins"][0])
    return pd.DataFrame(
        {
            "cue": ["shape", "texture"],
            "class": [shape, texture],
            "cosine": [float(vote["shape_score"][0]), float(vote["texture_score"][0])],
            "wins": [not texture_wins, texture_wins],
        }
    )


def top_k(
    features: torch.Tensor, classifier: torch.Tensor, logit_scale: float, labels: LabelSet
) -> pd.DataFrame:
    """The ``min(5, #labels)`` most probable labels by softmax(logit_scale · cos) over the label set."""
    cosines = features @ classifier
    probabilities = torch.softmax(logit_scale * cosines, dim=-1)
    best = probabilities.topk(min(TOP_K, len(labels.classnames))).indices
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(best) + 1),
            "label": [labels.classnames[i] for i in best.tolist()],
            "cosine": cosines[best].numpy(),
            "probability": probabilities[best].numpy(),
        }
    )


def prompt_profile(
    features: torch.Tensor, prompt_features: torch.Tensor, tau: float
) -> tuple[pd.DataFrame, float]:
    """softmax(cos/τ) over the 32 generic prompts and its entropy in nats."""
    cosines = (prompt_features @ features).numpy()
    probabilities = class_agnostic.softmax_with_temperature(cosines, tau)
    frame = pd.DataFrame(
        {"prompt": class_agnostic.GENERIC_PROMPTS, "cosine": cosines, "probability": probabilities}
    )
    return frame, float(class_agnostic.entropy(probabilities))


def probe_image(
    live: LiveModel, image: Image.Image, tau: float, labels: LabelSet, pair: tuple[str, str]
) -> ProbeResult:
    """Every view of the probe page for one image: 16-class scores, the pair's vote, top-5, prompt profile."""
    pixels, features = encode_image(live, image)
    logit_scale = live.loaded.logit_scale
    classifier16 = live.classifier(sixteen_class_labels())
    profile, entropy = prompt_profile(features, live.prompt_features(class_agnostic.GENERIC_PROMPTS), tau)
    return ProbeResult(
        pixels=pixels,
        sixteen=sixteen_class_scores(features, classifier16, logit_scale),
        vote=two_prompt_vote(features, classifier16, pair),
        top5=top_k(features, live.classifier(labels), logit_scale, labels),
        profile=profile,
        tau=float(tau),
        entropy=entropy,
    )


# Charts of a ProbeResult's tables (Altair, drawn by the page with its CSV/PNG/SVG downloads).


def _finish(chart: alt.TopLevelMixin, title: str, rows: int) -> alt.TopLevelMixin:
    """Title, a height of one bar row per item, and the page's width."""
    return chart.properties(
        title=title, height=22 * rows + 20, autosize=alt.AutoSizeParams(type="fit-x", contains="padding")
    )


def _tip(column: str) -> alt.Tooltip:
    return alt.Tooltip(f"{column}:Q", format=".4f")


def sixteen_class_chart(sixteen: pd.DataFrame, pair: tuple[str, str]) -> alt.TopLevelMixin:
    """The 16 class probabilities, the chosen pair's shape and texture classes in their cue colours."""
    shape, texture = pair
    role = sixteen["class"].map(lambda c: "shape" if c == shape else "texture" if c == texture else "other")
    bars = (
        alt.Chart(sixteen.assign(role=role))
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", title="softmax(logit scale · cos)", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("class:N", sort=list(CUE_CONFLICT_CLASSES), title=None),
            color=alt.Color(
                "role:N", scale=CUE_SCALE, title="pair's class", legend=alt.Legend(orient="bottom")
            ),
            tooltip=["class:N", _tip("probability"), _tip("cosine")],
        )
    )
    return _finish(bars, "16-class scores (80 ImageNet templates)", len(sixteen))


def vote_chart(vote: pd.DataFrame) -> alt.TopLevelMixin:
    """The two cosines of the two-prompt vote, the winner's bar labelled "wins"."""
    frame = vote.assign(
        prompt=vote["cue"] + ": " + vote["class"], result=vote["wins"].map({True: "wins", False: ""})
    )
    base = alt.Chart(frame).encode(
        x=alt.X("cosine:Q", title="cos(image, class text embedding)"),
        y=alt.Y("prompt:N", sort=None, title=None),
        tooltip=["cue:N", "class:N", _tip("cosine"), "wins:N"],
    )
    bars = base.mark_bar().encode(color=alt.Color("cue:N", scale=CUE_SCALE, legend=None))
    labels = base.mark_text(align="left", dx=4, fontWeight="bold").encode(text="result:N")
    return _finish(alt.layer(bars, labels), "Two-prompt vote: shape class vs texture class", len(frame))


def top5_chart(top5: pd.DataFrame, label_set_name: str) -> alt.TopLevelMixin:
    """The top-5 labels' probabilities, most probable first."""
    bars = (
        alt.Chart(top5)
        .mark_bar(color=CUE_COLOURS["shape"])
        .encode(
            x=alt.X("probability:Q", title="softmax(logit scale · cos)", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", sort=alt.SortField("rank"), title=None, axis=alt.Axis(labelLimit=300)),
            tooltip=["rank:Q", "label:N", _tip("probability"), _tip("cosine")],
        )
    )
    return _finish(bars, f"Zero-shot top-{len(top5)} of {label_set_name}", len(top5))


def profile_chart(profile: pd.DataFrame, tau: float) -> alt.TopLevelMixin:
    """The prompt profile, most probable prompt first, with the uniform level 1/K as a dashed rule."""
    bars = (
        alt.Chart(profile)
        .mark_bar(color="#4a5568")
        .encode(
            x=alt.X("probability:Q", title=f"softmax(cos / τ), τ = {tau:g}"),
            y=alt.Y("prompt:N", sort="-x", title=None, axis=alt.Axis(labelLimit=300)),
            tooltip=["prompt:N", _tip("probability"), _tip("cosine")],
        )
    )
    uniform = alt.Chart(pd.DataFrame({"probability": [1 / len(profile)]}))
    rule = uniform.mark_rule(color="black", strokeDash=[4, 3]).encode(x="probability:Q")
    title = f"Class-agnostic prompt profile (dashed: uniform 1/{len(profile)})"
    return _finish(alt.layer(bars, rule), title, len(profile))
