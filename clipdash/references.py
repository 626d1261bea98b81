"""Published reference values (data/reference_values.csv) and which of our stored series each one fits.

The CSV holds published facts with their source (columns metric, dataset, model, value, protocol,
source). Its metric names are the papers' (``zeroshot_top1``, ``tid2013_srcc``); :data:`REFERENCE_RULES`
maps our (metric, dataset, variant) series onto them, so a panel draws only references that measure the
same thing on the same dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from clipdash.errors import DatasetError
from clipdash.store.db import variant_matches

REFERENCE_COLUMNS = ("metric", "dataset", "model", "value", "protocol", "source")


@dataclass(frozen=True)
class ReferenceRule:
    """Our series (metric, dataset, variant pattern of ``variant_matches``) → reference rows.

    ``complement`` draws 1 − value (texture bias = 1 − shape bias).
    """

    metric: str
    dataset: str
    variant: str
    ref_metric: str
    ref_dataset: str
    complement: bool = False


REFERENCE_RULES = (
    ReferenceRule("acc1", "cifar10", "templates=*", "zeroshot_top1", "cifar10"),
    ReferenceRule("acc1", "cifar100", "templates=*", "zeroshot_top1", "cifar100"),
    ReferenceRule("lp_acc1", "cifar10", "*", "linear_probe_top1", "cifar10"),
    ReferenceRule("lp_acc1", "cifar100", "*", "linear_probe_top1", "cifar100"),
    ReferenceRule("shape_bias", "cue-conflict", "protocol=*;templates=*", "shape_bias", "cue-conflict"),
    ReferenceRule(
        "texture_bias",
        "cue-conflict",
        "protocol=*;templates=*",
        "shape_bias",
        "cue-conflict",
        complement=True,
    ),
    ReferenceRule("srcc", "tid2013", "distortion=all", "tid2013_srcc", "tid2013"),
    ReferenceRule("plcc", "tid2013", "distortion=all", "tid2013_plcc", "tid2013"),
    ReferenceRule("srcc", "livec", "*", "livec_srcc", "livec"),
)

# Short curve names (the seed paper's Table 1 names where it has them) → our series
# (metric, dataset, variant pattern).
CURVE_NAMES = {
    "accuracy": ("acc1", "cifar10", "templates=*"),
    "noisy_accuracy": ("acc1", "cifar10-c/gaussian_noise", "severity=mean;*"),
    "tid2013": ("srcc", "tid2013", "distortion=all"),
    "texture_bias": ("texture_bias", "cue-conflict", "protocol=two_prompt;templates=*"),
    "noise_sensitivity": ("noise_drop", "cifar10-c/gaussian_noise", "severity=mean;*"),
}
_CURVE_CORRELATION = re.compile(r"curve_correlation\((?P<first>[^;]+);(?P<second>[^)]+)\)")


def load_references(path: Path) -> pd.DataFrame:
    """Read the reference CSV; a missing file or missing columns raise DatasetError naming the path."""
    if not path.is_file():
        raise DatasetError(f"reference values not found: {path} (columns {', '.join(REFERENCE_COLUMNS)})")
    frame = pd.read_csv(path)
    missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path} lacks columns {missing}; expected {', '.join(REFERENCE_COLUMNS)}")
    return frame[list(REFERENCE_COLUMNS)]


def references_for(references: pd.DataFrame, metric: str, dataset: str, variant: str) -> pd.DataFrame:
    """Reference rows (model, value, protocol, source) that fit one of our series; empty if none do."""
    frames = []
    for rule in REFERENCE_RULES:
        if (rule.metric, rule.dataset) != (metric, dataset) or not variant_matches(variant, rule.variant):
            continue
        rows = references[
            (references["metric"] == rule.ref_metric) & (references["dataset"] == rule.ref_dataset)
        ]
        if rule.complement:
            rows = rows.assign(value=1 - rows["value"], protocol="1 − shape bias; " + rows["protocol"])
        frames.append(rows[["model", "value", "protocol", "source"]])
    if not frames:
        return pd.DataFrame(columns=["model", "value", "protocol", "source"])
    return pd.concat(frames, ignore_index=True)


def curve_series_name(metric: str, dataset: str, variant: str) -> str | None:
    """The short name of one of our series (see :data:`CURVE_NAMES`), or None."""
    for name, (m, d, pattern) in CURVE_NAMES.items():
        if (m, d) == (metric, dataset) and variant_matches(variant, pattern):
            return name
    return None


def published_curve_correlations(references: pd.DataFrame) -> pd.DataFrame:
    """The seed paper's Table 1 rows as (first, second, r, model, source), curve names as in CURVE_NAMES."""
    rows = []
    for record in references.to_dict("records"):
        match = _CURVE_CORRELATION.fullmatch(str(record["metric"]))
        if match:
            rows.append((match["first"], match["second"], record["value"], record["model"], record["source"]))
    return pd.DataFrame(rows, columns=["first", "second", "r", "model", "source"])
