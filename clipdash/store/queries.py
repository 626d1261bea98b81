"""Named read-only queries on a results database (the app and the CLI summary use these, never raw SQL)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clipdash.store.db import connect_read_only

# The seed paper's curves plus the probes: (column, metric, dataset, variant pattern for LIKE).
SUMMARY_COLUMNS = (
    ("acc1", "acc1", "cifar10", "templates=%"),
    ("noisy_acc1", "acc1", "cifar10-c/gaussian_noise", "severity=mean;%"),
    ("noise_drop", "noise_drop", "cifar10-c/gaussian_noise", "severity=mean;%"),
    ("tid2013_srcc", "srcc", "tid2013", "distortion=all"),
    ("livec_srcc", "srcc", "livec", "%"),
    ("texture_bias", "texture_bias", "cue-conflict", "protocol=two_prompt;templates=%"),
    ("shape_bias", "shape_bias", "cue-conflict", "protocol=sixteen_class;templates=%"),
    ("lp_acc1", "lp_acc1", "cifar10", "classifier=logreg;%"),
    ("ca_acc1", "ca_acc1", "cifar10", "C=cv;tau=0.07"),
)


def query(db: str | Path, sql: str, params: list | None = None) -> pd.DataFrame:
    """Run one read-only query on a fresh connection (closed at once, so writers are never blocked)."""
    with connect_read_only(db) as con:
        return con.execute(sql, params or []).df()


def summary_table(db: str | Path) -> pd.DataFrame:
    """One row per (run, epoch) with the headline number of every measurement."""
    selects = ",\n".join(
        f"max(value) FILTER (WHERE metric = '{m}' AND dataset = '{d}' AND variant LIKE '{v}') AS {col}"
        for col, m, d, v in SUMMARY_COLUMNS
    )
    return query(db, f"SELECT run, epoch, {selects} FROM metrics GROUP BY run, epoch ORDER BY run, epoch")
