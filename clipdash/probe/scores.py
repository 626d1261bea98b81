"""One image through one live model: 16-class scores, the two-prompt vote, a top-5 and the class-agnostic
prompt profile, computed with the engine's preprocessing, encoder and pure functions (``clipdash.evals``),
so probing a cue-conflict stimulus gives the votes the database holds for it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from clipdash.data.decode import resize_center_crop
from clipdash.evals import class_agnostic, cue_conflict
from clipdash.models.encode import encode_images
from clipdash.probe.labels import CUE_CONFLICT_CLASSES, LabelSet, sixteen_class_labels
from clipdash.probe.model import LiveModel

TOP_K = 5
MAX_ENTROPY = math.log(len(class_agnostic.GENERIC_PROMPTS))


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
    template_set: str = "clip"  # of the 16-class scores and the vote (the engine's --templates)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"sixteen": self.sixteen, "vote": self.vote, "top5": self.top5, "profile": self.profile}


def encode_image(live: LiveModel, image: Image.Image) -> tuple[np.ndarray, torch.Tensor]:
    """Resize + centre-crop to the model's input size (as the engine decodes); the unit embedding (D,)."""
    pixels = resize_center_crop(image.convert("RGB"), live.loaded.image_size)
    features = encode_images(live.loaded, pixels[None], live.device, batch_size=1)
    return pixels, features[0]


def sixteen_class_scores(
    features: torch.Tensor,
    classifier16: torch.Tensor,
    logit_scale: float,
    classnames: Sequence[str] = CUE_CONFLICT_CLASSES,
) -> pd.DataFrame:
    """Cosine and softmax(logit_scale · cos) of one image over the 16 cue-conflict classes (columns of
    ``classifier16``, named by ``classnames``)."""
    cosines = features @ classifier16
    probabilities = torch.softmax(logit_scale * cosines, dim=-1)
    return pd.DataFrame(
        {"class": list(classnames), "cosine": cosines.numpy(), "probability": probabilities.numpy()}
    )


def two_prompt_vote(
    features: torch.Tensor,
    classifier16: torch.Tensor,
    pair: tuple[str, str],
    classnames: Sequence[str] = CUE_CONFLICT_CLASSES,
) -> pd.DataFrame:
    """The engine's two-prompt vote for one (shape, texture) pair: both cosines, which wins (ties: shape)."""
    classnames = list(classnames)
    unknown = [name for name in pair if name not in classnames]
    if unknown:
        raise ValueError(f"unknown cue-conflict classes {unknown}; choose from {', '.join(classnames)}")
    shape, texture = pair
    columns = classifier16.T
    vote = cue_conflict.two_prompt_vote(
        features[None].numpy(),
        columns[[classnames.index(shape)]].numpy(),
        columns[[classnames.index(texture)]].numpy(),
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
    live: LiveModel,
    image: Image.Image,
    tau: float,
    labels: LabelSet,
    pair: tuple[str, str],
    template_set: str = "clip",
    classnames: Sequence[str] = CUE_CONFLICT_CLASSES,
) -> ProbeResult:
    """Every view of the probe page for one image: 16-class scores, the pair's vote, top-5, prompt profile.

    The 16 classes (``classnames``: the stimuli's shape folders, as the engine reads them) use
    ``template_set`` as the engine did for the stored run (``--templates``), so the vote for a stored
    stimulus and checkpoint equals the stored one.
    """
    pixels, features = encode_image(live, image)
    logit_scale = live.loaded.logit_scale
    sixteen = sixteen_class_labels(template_set, tuple(classnames))
    classifier16 = live.classifier(sixteen)
    profile, entropy = prompt_profile(features, live.prompt_features(class_agnostic.GENERIC_PROMPTS), tau)
    return ProbeResult(
        pixels=pixels,
        sixteen=sixteen_class_scores(features, classifier16, logit_scale, sixteen.classnames),
        vote=two_prompt_vote(features, classifier16, pair, sixteen.classnames),
        top5=top_k(features, live.classifier(labels), logit_scale, labels),
        profile=profile,
        tau=float(tau),
        entropy=entropy,
        template_set=template_set,
    )
