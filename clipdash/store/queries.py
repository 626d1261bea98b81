"""Named read-only queries on a results database (the app and the CLI summary use these, never raw SQL).

Every function takes the database path first and opens it read-only for that one query, so a precompute
swapping in a new file is never blocked and the next call sees the new results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from clipdash.store.db import connect_read_only, damaged, parse_variant, variant_matches

Series = tuple[str, str, str]  # (metric, dataset, variant): one stored curve

# The seed paper's curves plus the probes: (column, metric, dataset, variant pattern of ``variant_matches``).
SUMMARY_COLUMNS = (
    ("acc1", "acc1", "cifar10", "templates=*"),
    ("noisy_acc1", "acc1", "cifar10-c/gaussian_noise", "severity=mean;templates=*"),
    ("noise_drop", "noise_drop", "cifar10-c/gaussian_noise", "severity=mean;templates=*"),
    ("tid2013_srcc", "srcc", "tid2013", "distortion=all"),
    ("livec_srcc", "srcc", "livec", "prompts=*"),
    ("texture_bias", "texture_bias", "cue-conflict", "protocol=two_prompt;templates=*"),
    ("shape_bias", "shape_bias", "cue-conflict", "protocol=sixteen_class;templates=*"),
    ("lp_acc1", "lp_acc1", "cifar10", "classifier=logreg;n_train=*"),
    ("ca_acc1", "ca_acc1", "cifar10", "C=cv;tau=0.07"),
)

# The seed paper's four panels (clean + noisy accuracy, TID2013, texture bias, noise drop), as
# (metric, dataset, variant pattern of ``variant_matches``); each resolves to the first stored variant
# that fits.
DEFAULT_CURVES = (
    ("acc1", "cifar10", "templates=*"),
    ("acc1", "cifar10-c/gaussian_noise", "severity=mean;*"),
    ("srcc", "tid2013", "distortion=all"),
    ("texture_bias", "cue-conflict", "protocol=two_prompt;templates=*"),
    ("noise_drop", "cifar10-c/gaussian_noise", "severity=mean;*"),
)

TABLES = (
    "runs",
    "checkpoints",
    "evaluations",
    "metrics",
    "cue_conflict_decisions",
    "entropies",
    "class_agnostic_features",
    "image_embeddings",
    "human_shape_bias",
    "classnames",
)


def query(db: str | Path, sql: str, params: list | None = None) -> pd.DataFrame:
    """Run one read-only query on a fresh connection (closed at once, so writers are never blocked).

    A database whose data blocks cannot be read is a ``StoreError``; a mistake in the SQL is not caught.
    """
    with connect_read_only(db) as con:
        try:
            return con.execute(sql, params or []).df()
        except duckdb.ProgrammingError:
            raise
        except duckdb.Error as exc:
            raise damaged(db, exc) from exc


def summary_table(db: str | Path) -> pd.DataFrame:
    """One row per (run, epoch, template set) with the headline number of every measurement.

    ``templates`` names the prompt template set of the zero-shot, noise and cue-conflict columns (one row
    each when a checkpoint has several); numbers that use no templates (TID2013, LIVE-C, probes) are on
    every row of their checkpoint. Where a column's other settings still vary (two ``n_train``), the larger
    of its values is shown: those settings are not stored apart yet.
    """
    wanted = " OR ".join(f"(metric = '{m}' AND dataset = '{d}')" for _, m, d, _ in SUMMARY_COLUMNS)
    frame = query(db, f"SELECT run, epoch, metric, dataset, variant, value FROM metrics WHERE {wanted}")
    columns = [name for name, *_ in SUMMARY_COLUMNS]
    if frame.empty:
        return pd.DataFrame(columns=["run", "epoch", "templates", *columns])
    frame["templates"] = frame["variant"].map(lambda variant: parse_variant(variant).get("templates"))
    picked = []
    for name, metric, dataset, pattern in SUMMARY_COLUMNS:
        match = (frame["metric"] == metric) & (frame["dataset"] == dataset)
        match &= frame["variant"].map(lambda variant, pattern=pattern: variant_matches(variant, pattern))
        picked.append(frame.loc[match, ["run", "epoch", "templates", "value"]].assign(column=name))
    long = pd.concat(picked)
    long["templates"] = long["templates"].fillna("")
    keyed = long[long["templates"] != ""]
    free = long[long["templates"] == ""].drop(columns="templates")
    template_sets = (
        long[["run", "epoch"]]
        .drop_duplicates()
        .merge(keyed[["run", "epoch", "templates"]].drop_duplicates(), how="left")
    )
    broadcast = free.merge(template_sets.fillna({"templates": ""}), on=["run", "epoch"])
    table = pd.concat([keyed, broadcast]).pivot_table(
        index=["run", "epoch", "templates"], columns="column", values="value", aggfunc="max"
    )
    table = table.reindex(columns=columns).reset_index().rename_axis(columns=None)
    table["templates"] = table["templates"].replace("", None)
    return table.sort_values(["run", "epoch", "templates"], na_position="last").reset_index(drop=True)


# --- what is in the database -------------------------------------------------------------------------


def table_counts(db: str | Path) -> pd.DataFrame:
    """Rows per result table (``table``, ``rows``): an empty database has zeros everywhere."""
    sql = " UNION ALL ".join(f"SELECT '{t}' AS table_name, count(*) AS rows FROM {t}" for t in TABLES)
    return query(db, sql).rename(columns={"table_name": "table"})


def runs_overview(db: str | Path) -> pd.DataFrame:
    """One row per run: arch, parameters, source and its path, spec, checkpoints and their epoch range."""
    return query(
        db,
        """SELECT r.run, r.arch, r.n_params, r.source, r.source_path, r.model_spec,
                  count(c.epoch) AS n_epochs, min(c.epoch) AS first_epoch, max(c.epoch) AS last_epoch
           FROM runs r LEFT JOIN checkpoints c USING (run)
           GROUP BY ALL ORDER BY r.run""",
    )


def measurements_overview(db: str | Path) -> pd.DataFrame:
    """One row per evaluation: how many runs and checkpoints have it, and its total compute time."""
    return query(
        db,
        """SELECT eval, count(DISTINCT run) AS n_runs, count(*) AS n_checkpoints, sum(seconds) AS seconds
           FROM evaluations GROUP BY eval ORDER BY eval""",
    )


def datasets_overview(db: str | Path) -> pd.DataFrame:
    """One row per dataset in the metrics table: its metrics and how many values are stored."""
    return query(
        db,
        """SELECT dataset, string_agg(DISTINCT metric, ', ' ORDER BY metric) AS metrics,
                  count(DISTINCT variant) AS n_variants, count(*) AS n_values
           FROM metrics GROUP BY dataset ORDER BY dataset""",
    )


def metric_series(db: str | Path) -> pd.DataFrame:
    """Every stored curve: (metric, dataset, variant) with its number of values and runs."""
    return query(
        db,
        """SELECT metric, dataset, variant, count(*) AS n_values, count(DISTINCT run) AS n_runs
           FROM metrics GROUP BY metric, dataset, variant ORDER BY metric, dataset, variant""",
    )


# --- curves ------------------------------------------------------------------------------------------


def match_series(available: pd.DataFrame, patterns: Sequence[Series] = DEFAULT_CURVES) -> list[Series]:
    """For each (metric, dataset, variant pattern), the first stored series of ``available`` that fits.

    ``available`` is :func:`metric_series`' frame; patterns with no stored match are left out.
    """
    found: list[Series] = []
    for metric, dataset, pattern in patterns:
        rows = available[(available["metric"] == metric) & (available["dataset"] == dataset)]
        variants = sorted(v for v in rows["variant"] if variant_matches(v, pattern))
        if variants:
            found.append((metric, dataset, variants[0]))
    return found


def metric_curves(
    db: str | Path, series: Sequence[Series], runs: Sequence[str] | None = None
) -> pd.DataFrame:
    """Long frame (run, epoch, metric, dataset, variant, value) of the given series (and runs, if given)."""
    columns = ["run", "epoch", "metric", "dataset", "variant", "value"]
    if not series or (runs is not None and not runs):
        return pd.DataFrame(columns=columns)
    match = " OR ".join(["(metric = ? AND dataset = ? AND variant = ?)"] * len(series))
    params: list = [part for item in series for part in item]
    run_filter = ""
    if runs is not None:
        run_filter = "AND list_contains(?::VARCHAR[], run)"
        params.append(list(runs))
    return query(
        db,
        f"SELECT {', '.join(columns)} FROM metrics WHERE ({match}) {run_filter} "
        "ORDER BY run, metric, dataset, variant, epoch",
        params,
    )


# --- cue-conflict ------------------------------------------------------------------------------------


def cue_conflict_index(db: str | Path) -> pd.DataFrame:
    """Which (run, protocol, epoch) have per-image cue-conflict decisions."""
    return query(
        db,
        "SELECT DISTINCT run, protocol, epoch FROM cue_conflict_decisions ORDER BY run, protocol, epoch",
    )


_CUE = """CASE WHEN decision = shape_class THEN 'shape'
               WHEN decision = texture_class THEN 'texture' ELSE 'other' END"""


def cue_conflict_decisions(
    db: str | Path, run: str, protocol: str, epochs: Sequence[int] | None = None
) -> pd.DataFrame:
    """Per image and epoch: classes, decision, ``cue`` (shape/texture/other), scores, ``margin``.

    ``margin`` = shape_score − texture_score: positive when the shape class scores higher.
    """
    params: list = [run, protocol]
    epoch_filter = ""
    if epochs is not None:
        epoch_filter = "AND list_contains(?::INTEGER[], epoch)"
        params.append([int(e) for e in epochs])
    return query(
        db,
        f"""SELECT epoch, image, shape_class, texture_class, decision, {_CUE} AS cue,
                   shape_score, texture_score, shape_score - texture_score AS margin
            FROM cue_conflict_decisions WHERE run = ? AND protocol = ? {epoch_filter}
            ORDER BY epoch, image""",
        params,
    )


def shape_bias_by_class(db: str | Path, run: str, protocol: str, epoch: int) -> pd.DataFrame:
    """Shape bias per shape class recomputed from the stored decisions, plus an ``'all'`` row.

    Same rule as the human table: same-class images dropped, answers that are neither cue ignored;
    ``shape_bias`` = n_shape / (n_shape + n_texture), NULL when both are 0.
    """
    return query(
        db,
        f"""WITH counted AS (
                SELECT shape_class, {_CUE} AS cue FROM cue_conflict_decisions
                WHERE run = ? AND protocol = ? AND epoch = ? AND shape_class <> texture_class),
            per_class AS (
                SELECT coalesce(shape_class, 'all') AS shape_class,
                       count(*) FILTER (WHERE cue = 'shape') AS n_shape,
                       count(*) FILTER (WHERE cue = 'texture') AS n_texture,
                       count(*) AS n_images
                FROM counted GROUP BY ROLLUP (shape_class))
            SELECT shape_class, n_shape, n_texture, n_images,
                   n_shape / nullif(n_shape + n_texture, 0) AS shape_bias
            FROM per_class WHERE n_images > 0
            ORDER BY shape_class = 'all', shape_class""",
        [run, protocol, int(epoch)],
    )


def human_shape_bias(db: str | Path) -> pd.DataFrame:
    """The human baseline: per subject (and ``'mean'``) and shape class (and ``'all'``)."""
    return query(
        db,
        "SELECT subject, shape_class, n_shape, n_texture, shape_bias FROM human_shape_bias "
        "ORDER BY subject, shape_class",
    )


def image_history(db: str | Path, run: str, protocol: str, image: str) -> pd.DataFrame:
    """One cue-conflict image over all epochs of a run: decision, cue, scores and margin."""
    return query(
        db,
        f"""SELECT epoch, decision, {_CUE} AS cue, shape_score, texture_score,
                   shape_score - texture_score AS margin
            FROM cue_conflict_decisions WHERE run = ? AND protocol = ? AND image = ? ORDER BY epoch""",
        [run, protocol, image],
    )


# --- class-agnostic entropy and temperature ----------------------------------------------------------


def entropy_index(db: str | Path) -> pd.DataFrame:
    """Which (run, dataset, epoch, tau) have per-image entropies."""
    return query(
        db, "SELECT DISTINCT run, dataset, epoch, tau FROM entropies ORDER BY run, dataset, epoch, tau"
    )


def entropy_values(
    db: str | Path, run: str, dataset: str, epochs: Sequence[int], taus: Sequence[float]
) -> pd.DataFrame:
    """Per-image entropies (epoch, tau, image_index, entropy) for the chosen epochs and temperatures."""
    return query(
        db,
        """SELECT epoch, tau, image_index, entropy FROM entropies
           WHERE run = ? AND dataset = ? AND list_contains(?::INTEGER[], epoch)
                 AND list_contains(?::DOUBLE[], tau)
           ORDER BY epoch, tau, image_index""",
        [run, dataset, [int(e) for e in epochs], [float(t) for t in taus]],
    )


def mean_entropy_by_epoch(db: str | Path, run: str, dataset: str) -> pd.DataFrame:
    """Mean per-image entropy (and image count) per (epoch, tau)."""
    return query(
        db,
        """SELECT epoch, tau, avg(entropy) AS mean_entropy, count(*) AS n_images FROM entropies
           WHERE run = ? AND dataset = ? GROUP BY epoch, tau ORDER BY tau, epoch""",
        [run, dataset],
    )


def prompt_count(db: str | Path) -> int:
    """K, the number of class-agnostic prompts (0 when none are stored); ln K is the maximum entropy."""
    return int(query(db, "SELECT count(*) AS k FROM class_agnostic_prompts")["k"].iloc[0])


def tau_sweep(db: str | Path, run: str, dataset: str = "cifar10") -> pd.DataFrame:
    """The stored τ sweep of a run: (epoch, metric, mode, tau, value) for ``ca_acc1`` and ``mean_entropy``.

    ``mode`` is the probe's C setting for ``ca_acc1`` ('fixed' or 'cv') and '' for ``mean_entropy``.
    """
    frame = query(
        db,
        """SELECT epoch, metric, variant, value FROM metrics
           WHERE run = ? AND dataset = ? AND metric IN ('ca_acc1', 'mean_entropy') AND variant LIKE '%tau=%'
           ORDER BY metric, variant, epoch""",
        [run, dataset],
    )
    params = [parse_variant(v) for v in frame["variant"]]
    frame["mode"] = [p.get("C", "") for p in params]
    frame["tau"] = [float(p["tau"]) for p in params]
    return frame[["epoch", "metric", "mode", "tau", "value"]]


def tuned_C(db: str | Path, run: str, dataset: str = "cifar10") -> pd.DataFrame:
    """The C that cross-validation chose for the class-agnostic probe, per (epoch, tau) of a run."""
    frame = query(
        db,
        "SELECT epoch, variant, value AS C FROM metrics WHERE run = ? AND dataset = ? AND metric = 'ca_C' "
        "ORDER BY epoch, variant",
        [run, dataset],
    )
    frame = frame[frame["variant"].map(lambda variant: variant_matches(variant, "C=cv;tau=*"))]
    frame["tau"] = [float(parse_variant(v)["tau"]) for v in frame["variant"]]
    return frame[["epoch", "tau", "C"]].reset_index(drop=True)


def class_agnostic_index(db: str | Path) -> pd.DataFrame:
    """Which (run, dataset, epoch) have stored class-agnostic cosines (train and test rows counted)."""
    return query(
        db,
        """SELECT run, dataset, epoch, count(*) FILTER (WHERE split = 'train') AS n_train,
                  count(*) FILTER (WHERE split = 'test') AS n_test
           FROM class_agnostic_features GROUP BY run, dataset, epoch ORDER BY run, dataset, epoch""",
    )


@dataclass(frozen=True)
class CosineSplits:
    """Stored cosine(image, generic prompt) features and labels of one checkpoint's probe splits."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def class_agnostic_features(db: str | Path, run: str, epoch: int, dataset: str = "cifar10") -> CosineSplits:
    """The train/test cosine matrices (images × prompts, in prompt order) and labels of one checkpoint."""
    frame = query(
        db,
        """SELECT split, label, cosines FROM class_agnostic_features
           WHERE run = ? AND epoch = ? AND dataset = ? ORDER BY split, image_index""",
        [run, int(epoch), dataset],
    )

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = frame[frame["split"] == name]
        x = (
            np.stack([np.asarray(c, dtype=np.float64) for c in rows["cosines"]])
            if len(rows)
            else np.empty((0, 0))
        )
        return x, rows["label"].to_numpy(np.int64)

    train_x, train_y = split("train")
    test_x, test_y = split("test")
    return CosineSplits(train_x, train_y, test_x, test_y)


def classnames(db: str | Path, dataset: str) -> list[str]:
    """The dataset's class names in label order (empty when the database has none)."""
    frame = query(db, "SELECT classname FROM classnames WHERE dataset = ? ORDER BY label", [dataset])
    return frame["classname"].tolist()


def checkpoint_files(db: str | Path) -> pd.DataFrame:
    """Checkpoints stored with a file path (run, epoch, path, arch, template_sets), by run and epoch.

    ``template_sets``: the sorted template sets of the checkpoint's cue-conflict results (empty without).
    """
    frame = query(
        db,
        "SELECT c.run, c.epoch, c.path, r.arch, "
        "  coalesce(list_sort(list(DISTINCT regexp_extract(m.variant, '(^|;)templates=([^;]+)', 2)) "
        "    FILTER (WHERE m.variant IS NOT NULL)), []) AS template_sets "
        "FROM checkpoints c JOIN runs r USING (run) "
        "LEFT JOIN metrics m ON m.run = c.run AND m.epoch = c.epoch AND m.dataset = 'cue-conflict' "
        "WHERE c.path IS NOT NULL GROUP BY ALL ORDER BY c.run, c.epoch",
    )
    frame["template_sets"] = frame["template_sets"].map(lambda sets: tuple(s for s in sets if s))
    return frame
