"""Published reference values (data/reference_values.csv) and which of our stored series each one fits.

The CSV holds published facts with their source (columns metric, dataset, model, value, protocol,
source). Its metric names are the papers' (``zeroshot_top1``, ``tid2013_srcc``); the series each
measurement declares (``clipdash.measurements``) map our (metric, dataset, variant) series onto them, so
a panel draws only references that measure the same thing on the same dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from clipdash.errors import DatasetError
from clipdash.measurements import all_series
from clipdash.store.db import variant_matches

REFERENCE_COLUMNS = ("metric", "dataset", "model", "value", "protocol", "source")


def curve_names() -> dict[str, tuple[str, str, str]]:
    """The seed paper's Table 1 curve names -> our series (metric, dataset, variant pattern), from the
    measurement registry."""
    return {s.paper_name: (s.metric, s.dataset, s.variant) for _, s in all_series() if s.paper_name}


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
    rules = {
        rule
        for _, series in all_series()
        if (series.metric, series.dataset) == (metric, dataset) and variant_matches(variant, series.variant)
        for rule in series.references
    }
    for rule in sorted(rules, key=lambda r: (r.ref_metric, r.ref_dataset, r.complement)):
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
    """The short name of one of our series (see :func:`curve_names`), or None."""
    for name, (m, d, pattern) in curve_names().items():
        if (m, d) == (metric, dataset) and variant_matches(variant, pattern):
            return name
    return None


def published_curve_correlations(references: pd.DataFrame) -> pd.DataFrame:
    """The seed paper's Table 1 rows as (first, second, r, model, source), curve names as in curve_names."""
    rows = []
    for record in references.to_dict("records"):
        match = _CURVE_CORRELATION.fullmatch(str(record["metric"]))
        if match:
            rows.append((match["first"], match["second"], record["value"], record["model"], record["source"]))
    return pd.DataFrame(rows, columns=["first", "second", "r", "model", "source"])
