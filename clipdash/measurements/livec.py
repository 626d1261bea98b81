"""No-reference quality (CLIP-IQA): softmax over ("Good photo.", "Bad photo.") against LIVE-C opinion
scores (PLCC, SRCC); each image's score in ``livec_scores``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clipdash.measurements import Measurement, ReferenceRule, Series
from clipdash.measurements.common import metric_rows
from clipdash.measurements.table import Table


@dataclass(frozen=True)
class LivecParams:
    prompts: tuple[str, str] = ("Good photo.", "Bad photo.")


def compute(ctx, params: LivecParams):
    from clipdash.evals.quality import antonym_quality_scores, quality_alignment
    from clipdash.store import EvalResult

    data = ctx.inputs.livec
    prompts = ctx.prompt_features(list(params.prompts)).numpy()
    scores = antonym_quality_scores(ctx.features("livec").numpy(), prompts, ctx.logit_scale)
    values = quality_alignment(scores, data.mos)
    images = pd.DataFrame(
        {"image": [p.name for p in data.paths], "score": scores.astype(float), "mos": data.mos}
    )
    return EvalResult("livec", 0.0, metric_rows(values, "livec"), {"livec_scores": images})


def replicates(tables, metrics, config):
    """PLCC and SRCC over the images."""
    from clipdash.evals import bootstrap

    images = tables["livec_scores"]
    counts = bootstrap.resample_counts(len(images), config)
    x, y = images["score"].to_numpy(), images["mos"].to_numpy()
    return {
        ("plcc", "livec", ""): (len(images), bootstrap.pearson(counts, x, y)),
        ("srcc", "livec", ""): (len(images), bootstrap.spearman(counts, x, y)),
    }


MEASUREMENT = Measurement(
    name="livec",
    description="no-reference quality: good/bad photo prompts against LIVE-C opinion scores",
    params=lambda config: LivecParams(),
    image_sets=lambda inputs: ("livec",),
    data_folders=lambda config: ("livec-224", "livec"),
    compute=compute,
    replicates=replicates,
    tables=(
        Table(
            "livec_scores",
            "one LIVE-C image: P(good photo) and its opinion score",
            (("image", "VARCHAR"), ("score", "DOUBLE"), ("mos", "DOUBLE")),
        ),
    ),
    series=(
        Series(
            "srcc",
            "livec",
            "",
            "LIVE-C SRCC",
            summary="livec_srcc",
            references=(ReferenceRule("livec_srcc", "livec"),),
        ),
    ),
    bf16_sensitive=True,
)
