"""Bootstrap intervals of the headline numbers, from one checkpoint's per-item rows.

A measurement that can resample its items declares ``replicates(tables, metrics, config)``: from the
per-item tables it wrote for one checkpoint (and its metric rows, for names the rows do not carry), the
bootstrap replicates of each headline number, keyed like the metric rows by (metric, dataset, variant),
with the number of items resampled. ``interval_frame`` turns them into the rows of ``metric_intervals``;
pages reuse the replicates themselves for intervals of things made from whole curves (Table 1's r, peak
epochs), since the counts depend only on (seed, n) and so resample each epoch's items alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clipdash.evals.bootstrap import BootstrapConfig, percentile_interval
from clipdash.measurements.table import Table

Replicates = dict[tuple[str, str, str], tuple[int, np.ndarray]]  # (metric, dataset, variant) -> (n, B values)

INTERVALS = Table(
    "metric_intervals",
    "the percentile-bootstrap interval of one stored number: items resampled (n), bounds, B, seed, level",
    (
        ("metric", "VARCHAR"),
        ("dataset", "VARCHAR"),
        ("variant", "VARCHAR"),
        ("n", "BIGINT"),
        ("ci_low", "DOUBLE"),
        ("ci_high", "DOUBLE"),
        ("resamples", "INTEGER"),
        ("seed", "INTEGER"),
        ("level", "DOUBLE"),
    ),
)


def interval_frame(replicates: Replicates, config: BootstrapConfig) -> pd.DataFrame:
    """Rows of ``metric_intervals`` (without run, epoch, setting) for each number's replicates."""
    rows = [
        (metric, dataset, variant, n, *percentile_interval(values, config.level))
        for (metric, dataset, variant), (n, values) in replicates.items()
    ]
    frame = pd.DataFrame(rows, columns=["metric", "dataset", "variant", "n", "ci_low", "ci_high"])
    frame = frame.dropna(subset=["ci_low", "ci_high"])  # no finite replicate (a constant side): none
    return frame.assign(resamples=config.resamples, seed=config.seed, level=config.level).astype(
        {"n": np.int64, "resamples": np.int32, "seed": np.int32}
    )


def checkpoint_intervals(
    measurement, tables: dict[str, pd.DataFrame], metrics: pd.DataFrame, config: BootstrapConfig
) -> pd.DataFrame:
    """The interval rows of one checkpoint's results of ``measurement`` (none where it declares no
    replicates, or for no resamples)."""
    if measurement.replicates is None or config.resamples < 1:
        return interval_frame({}, config)
    return interval_frame(measurement.replicates(tables, metrics, config), config)
