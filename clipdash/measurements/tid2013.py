"""Full-reference quality: cosine(reference, distorted) image embeddings against TID2013's mean opinion
scores (PLCC, SRCC), overall and per distortion type; each pair's cosine in ``tid2013_pairs``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clipdash.measurements import Measurement, ReferenceRule, Series
from clipdash.measurements.common import Rows, metric_rows
from clipdash.measurements.table import Table


@dataclass(frozen=True)
class Tid2013Params:
    similarity: str = "cosine"


def compute(ctx, params: Tid2013Params):
    from clipdash.evals.tid2013 import cosine_similarity_pairs, tid2013_alignment
    from clipdash.store import EvalResult

    data = ctx.inputs.tid2013
    reference = ctx.features("tid2013/reference").numpy()[data.reference_index]
    similarity = cosine_similarity_pairs(reference, ctx.features("tid2013/distorted").numpy())
    rows: Rows = []
    for key, value in tid2013_alignment(similarity, data.mos, data.distortion).items():
        metric, _, distortion = key.partition("/distortion=")
        rows += metric_rows({metric: value}, "tid2013", distortion=distortion or "all")
    rows += metric_rows({"n_missing": data.n_missing, "n_listed": data.n_listed}, "tid2013", distortion="all")
    pairs = pd.DataFrame(
        {
            "distorted": [p.name for p in data.distorted_paths],
            "reference": [data.reference_paths[i].name for i in data.reference_index],
            "distortion": data.distortion.astype("int16"),
            "level": data.level.astype("int16"),
            "cosine": similarity.astype(float),
            "mos": data.mos.astype(float),
        }
    )
    return EvalResult("tid2013", 0.0, rows, {"tid2013_pairs": pairs})


def replicates(tables, metrics, config):
    """PLCC and SRCC over all pairs, over the image pairs present (per distortion there are too few)."""
    from clipdash.evals import bootstrap

    pairs = tables["tid2013_pairs"]
    counts = bootstrap.resample_counts(len(pairs), config)
    x, y = pairs["cosine"].to_numpy(), pairs["mos"].to_numpy()
    return {
        ("plcc", "tid2013", "distortion=all"): (len(pairs), bootstrap.pearson(counts, x, y)),
        ("srcc", "tid2013", "distortion=all"): (len(pairs), bootstrap.spearman(counts, x, y)),
    }


MEASUREMENT = Measurement(
    name="tid2013",
    description="cosine(reference, distorted) embeddings against TID2013 opinion scores",
    params=lambda config: Tid2013Params(),
    image_sets=lambda inputs: ("tid2013/reference", "tid2013/distorted"),
    data_folders=lambda config: ("tid2013",),
    compute=compute,
    replicates=replicates,
    tables=(
        Table(
            "tid2013_pairs",
            "one (reference, distorted) pair present in the data",
            (
                ("distorted", "VARCHAR"),
                ("reference", "VARCHAR"),
                ("distortion", "SMALLINT"),
                ("level", "SMALLINT"),
                ("cosine", "DOUBLE"),
                ("mos", "DOUBLE"),
            ),
        ),
    ),
    series=(
        Series(
            "srcc",
            "tid2013",
            "distortion=all",
            "TID2013 SRCC",
            summary="tid2013_srcc",
            default_rank=2,
            paper_name="tid2013",
            references=(ReferenceRule("tid2013_srcc", "tid2013"),),
        ),
        Series(
            "plcc",
            "tid2013",
            "distortion=all",
            "TID2013 PLCC",
            references=(ReferenceRule("tid2013_plcc", "tid2013"),),
        ),
    ),
    titles={
        "srcc": "Spearman correlation with human scores",
        "plcc": "Pearson correlation with human scores",
    },
    bf16_sensitive=True,
)
