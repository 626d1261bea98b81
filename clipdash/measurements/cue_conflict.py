"""Geirhos cue-conflict shape bias under three decision rules: the two-prompt vote (shape-class text vs
texture-class text), the 16-class zero-shot decision, and ImageNet-1000 → 16 by mean probability. Every
image's decision and scores are in ``cue_conflict_decisions``; the human baseline in ``human_shape_bias``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from clipdash.measurements import Measurement, ReferenceRule, Series
from clipdash.measurements.common import Rows, metric_rows
from clipdash.measurements.table import Table

PROTOCOLS = ("two_prompt", "sixteen_class", "imagenet_mean")
SHAPE_BIAS_REFERENCE = (ReferenceRule("shape_bias", "cue-conflict"),)


@dataclass(frozen=True)
class CueConflictParams:
    templates: str
    protocols: tuple[str, ...] = PROTOCOLS


def _decisions(protocol, data, decision, shape_score, texture_score) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "protocol": protocol,
            "image": data.names,
            "shape_class": data.shape_class,
            "texture_class": data.texture_class,
            "decision": decision,
            "shape_score": np.asarray(shape_score, dtype=float),
            "texture_score": np.asarray(texture_score, dtype=float),
        }
    )


def _sixteen_way(protocol: str, data, probs: np.ndarray) -> pd.DataFrame:
    """Decision rows of a 16-way rule: the argmax class, with the shape and texture classes' scores."""
    from clipdash.evals.cue_conflict import sixteen_class_decisions

    column = {name: i for i, name in enumerate(data.classnames)}
    rows = np.arange(len(data.names))
    shape = probs[rows, [column[c] for c in data.shape_class]]
    texture = probs[rows, [column[c] for c in data.texture_class]]
    return _decisions(protocol, data, sixteen_class_decisions(probs, list(data.classnames)), shape, texture)


def _bias_rows(frame: pd.DataFrame, protocol: str) -> Rows:
    from clipdash.evals.cue_conflict import shape_bias, shape_bias_per_class

    overall = shape_bias(frame)
    rows = metric_rows(
        {**overall, "texture_bias": 1 - overall["shape_bias"]}, "cue-conflict", protocol=protocol
    )
    for shape_class, row in shape_bias_per_class(frame).iterrows():
        values = {"shape_bias": row["shape_bias"], "texture_bias": 1 - row["shape_bias"]}
        rows += metric_rows(values, "cue-conflict", protocol=protocol, **{"class": shape_class})
    return rows


def compute(ctx, params: CueConflictParams):
    import torch
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from clipdash.data.cue_conflict import load_imagenet16_indices
    from clipdash.data.prompts import imagenet_templates
    from clipdash.evals import cue_conflict
    from clipdash.store import EvalResult

    data = ctx.inputs.cue_conflict
    features = ctx.features("cue-conflict")
    classnames = list(data.classnames)
    classifier16 = ctx.classifier(classnames, imagenet_templates())
    column = {name: i for i, name in enumerate(classnames)}
    shape_idx = np.array([column[c] for c in data.shape_class])
    texture_idx = np.array([column[c] for c in data.texture_class])

    vote = cue_conflict.two_prompt_vote(
        features.numpy(), classifier16.T[shape_idx].numpy(), classifier16.T[texture_idx].numpy()
    )
    decision = np.where(vote["texture_wins"], data.texture_class, data.shape_class)
    frames = [_decisions("two_prompt", data, decision, vote["shape_score"], vote["texture_score"])]

    probs16 = torch.softmax(ctx.logit_scale * features @ classifier16, dim=-1).numpy()
    imagenet = ctx.classifier(list(IMAGENET_CLASSNAMES), imagenet_templates())
    probs1000 = torch.softmax(ctx.logit_scale * features @ imagenet, dim=-1).numpy()
    indices = load_imagenet16_indices(ctx.inputs.data_root)
    probs_mean = cue_conflict.imagenet_to_16_mean(probs1000, indices, classnames)
    frames += [_sixteen_way("sixteen_class", data, probs16), _sixteen_way("imagenet_mean", data, probs_mean)]
    metrics: Rows = [row for frame in frames for row in _bias_rows(frame, frame["protocol"].iloc[0])]
    return EvalResult("cue_conflict", 0.0, metrics, {"cue_conflict_decisions": pd.concat(frames)})


@dataclass(frozen=True)
class ClassifierCueConflictParams:
    """An ImageNet-1k classifier decides by model-vs-human's rule: its softmax, mean per 16-class group."""

    protocols: tuple[str, ...] = ("imagenet_mean",)


def classifier_compute(ctx, params: ClassifierCueConflictParams):
    from scipy.special import softmax

    from clipdash.data.cue_conflict import load_imagenet16_indices
    from clipdash.evals.cue_conflict import imagenet_to_16_mean
    from clipdash.store import EvalResult

    data = ctx.inputs.cue_conflict
    indices = load_imagenet16_indices(ctx.inputs.data_root)
    probs = imagenet_to_16_mean(softmax(ctx.logits("cue-conflict"), axis=1), indices, list(data.classnames))
    frame = _sixteen_way("imagenet_mean", data, probs)
    return EvalResult(
        "cue_conflict", 0.0, _bias_rows(frame, "imagenet_mean"), {"cue_conflict_decisions": frame}
    )


def human_baseline(inputs) -> dict[str, pd.DataFrame]:
    import logging

    from clipdash.data.cue_conflict import load_human_trials
    from clipdash.errors import ClipdashError
    from clipdash.evals.cue_conflict import human_shape_bias

    try:
        return {"human_shape_bias": human_shape_bias(load_human_trials(inputs.data_root))}
    except ClipdashError as exc:
        logging.getLogger(__name__).warning("no human baseline: %s", exc)
        return {}


def _indices(inputs):
    from clipdash.data.cue_conflict import load_imagenet16_indices

    return load_imagenet16_indices(inputs.data_root)


def replicates(tables, metrics, config):
    """Shape and texture bias and fractions of each protocol, over the conflict images (per class there
    are 75 or fewer: not resampled)."""
    from clipdash.evals import bootstrap

    out = {}
    decisions = tables["cue_conflict_decisions"]
    for protocol, rows in decisions.groupby("protocol", sort=False):
        kept = rows[rows["shape_class"] != rows["texture_class"]]
        shape = (kept["decision"] == kept["shape_class"]).to_numpy()
        texture = (kept["decision"] == kept["texture_class"]).to_numpy()
        counts = bootstrap.resample_counts(len(kept), config)
        bias = bootstrap.ratio(counts, shape, shape | texture)
        values = {
            "shape_bias": bias,
            "texture_bias": 1 - bias,
            "shape_fraction": bootstrap.mean(counts, shape),
            "texture_fraction": bootstrap.mean(counts, texture),
        }
        for metric, replicate in values.items():
            out[(metric, "cue-conflict", f"protocol={protocol}")] = (len(kept), replicate)
    return out


MEASUREMENT = Measurement(
    name="cue_conflict",
    description="Geirhos cue-conflict shape bias: two-prompt vote, 16-class, ImageNet-1000 → 16",
    params=lambda config: CueConflictParams(config.templates),
    image_sets=lambda inputs: ("cue-conflict",),
    data_folders=lambda config: ("cue-conflict/stimuli", "cue-conflict/imagenet16_indices.json"),
    compute=compute,
    replicates=replicates,
    tables=(
        Table(
            "cue_conflict_decisions",
            "one conflict image under one decision rule",
            (
                ("protocol", "VARCHAR"),  # two_prompt, sixteen_class, imagenet_mean
                ("image", "VARCHAR"),  # '<shape>/<file>.png' relative to the stimuli folder
                ("shape_class", "VARCHAR"),
                ("texture_class", "VARCHAR"),
                ("decision", "VARCHAR"),  # the chosen class (16-way rules) or the winning cue's class
                ("shape_score", "DOUBLE"),  # cosine (two_prompt) or probability (16-way) of the shape class
                ("texture_score", "DOUBLE"),
            ),
        ),
    ),
    series=(
        Series(
            "texture_bias",
            "cue-conflict",
            "protocol=two_prompt",
            "texture bias (two-prompt vote)",
            summary="texture_bias",
            default_rank=3,
            paper_name="texture_bias",
            references=(ReferenceRule("shape_bias", "cue-conflict", complement=True),),
        ),
        Series(
            "shape_bias",
            "cue-conflict",
            "protocol=sixteen_class",
            "shape bias (16-class decision)",
            summary="shape_bias",
            references=SHAPE_BIAS_REFERENCE,
        ),
        Series("shape_bias", "cue-conflict", "protocol=*", "shape bias", references=SHAPE_BIAS_REFERENCE),
        Series(
            "texture_bias",
            "cue-conflict",
            "protocol=*",
            "texture bias",
            references=(ReferenceRule("shape_bias", "cue-conflict", complement=True),),
        ),
    ),
    titles={"texture_bias": "Texture bias", "shape_bias": "Shape bias"},
    files=_indices,
    shared_tables=human_baseline,
    bf16_sensitive=True,
    classifier_compute=classifier_compute,
    classifier_params=lambda config: ClassifierCueConflictParams(),
)
