"""Named read-only queries on a results database (the app and the CLI summary use these, never raw SQL).

Every function takes the database path first and opens it read-only for that one query, so a precompute
writing a checkpoint into the file waits at most for that query, and the next call sees the new results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.measurements import (
    all_tables,
    default_curves,
    get_measurement,
    list_measurements,
    summary_series,
)
from clipdash.store.db import SCHEMA_TABLES, connect_read_only, damaged, parse_variant, variant_matches

Series = tuple[str, str, str]  # (metric, dataset, variant): one stored curve
RunSetting = tuple[str, str]  # (run, setting id): the setting one run's measurement is drawn with
CORE_TABLES = tuple(t for t in SCHEMA_TABLES if t != "schema_version")  # read from schema.sql


def default_curve_patterns() -> list[tuple[str, str, str]]:
    """The seed paper's four panels (clean + noisy accuracy, TID2013, texture bias, noise drop), as
    (metric, dataset, variant pattern of ``variant_matches``), from the measurement registry."""
    return [(s.metric, s.dataset, s.variant) for s in default_curves()]


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


def _pairs_join(settings: Sequence[RunSetting]) -> tuple[str, list]:
    """A JOIN keeping the rows of the given (run, setting) pairs, and its parameters (empty pairs: none)."""
    runs, ids = (list(column) for column in zip(*settings, strict=True)) if settings else ([], [])
    sql = "JOIN (SELECT unnest(?::VARCHAR[]) AS run, unnest(?::VARCHAR[]) AS setting) USING (run, setting)"
    return sql, [runs, ids]


def default_settings(db: str | Path) -> pd.DataFrame:
    """Per (run, eval): the setting with the most epochs (ties: the one stored first), which pages and the
    summary show unless told otherwise."""
    return query(
        db,
        """SELECT run, eval, setting FROM (
               SELECT run, eval, setting, row_number() OVER (PARTITION BY run, eval
                   ORDER BY count(DISTINCT epoch) DESC, min(finished_at), setting) AS rank
               FROM evaluations GROUP BY run, eval, setting)
           WHERE rank = 1 ORDER BY run, eval""",
    )


def summary_table(db: str | Path, settings: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (run, epoch) with the headline number of every measurement (the registry's summary
    columns), each from one setting: those given (a job's own, for every run), else each run's default
    (:func:`default_settings`, per run). Never a max or mean over settings."""
    columns = [s.summary for _, s in summary_series()]
    if settings is None:
        defaults = default_settings(db)
        chosen, params = _pairs_join(list(zip(defaults["run"], defaults["setting"], strict=True)))
    else:
        chosen, params = "WHERE list_contains(?::VARCHAR[], setting)", [list(settings)]
    frame = query(
        db,
        f"""SELECT run, epoch, s.eval, metric, dataset, variant, value
            FROM metrics JOIN evaluation_settings s USING (setting) {chosen}""",
        params,
    )
    if frame.empty:
        return pd.DataFrame(columns=["run", "epoch", *columns])
    picked = []
    for measurement, series in summary_series():
        match = (frame["eval"] == measurement.name) & (frame["metric"] == series.metric)
        match &= frame["dataset"] == series.dataset
        match &= frame["variant"].map(
            lambda variant, pattern=series.variant: variant_matches(variant, pattern)
        )
        picked.append(frame.loc[match, ["run", "epoch", "value"]].assign(column=series.summary))
    long = pd.concat(picked)
    if long.duplicated(["run", "epoch", "column"]).any():
        raise ValueError("two settings of one measurement were given for one run")
    table = long.pivot(index=["run", "epoch"], columns="column", values="value")
    table = table.reindex(columns=columns).reset_index().rename_axis(columns=None)
    return table.sort_values(["run", "epoch"]).reset_index(drop=True)


# --- settings ----------------------------------------------------------------------------------------


def stored_settings(db: str | Path) -> pd.DataFrame:
    """Every stored setting: setting, eval, settings (JSON text), n_runs, n_checkpoints."""
    return query(
        db,
        """SELECT s.setting, s.eval, s.settings::VARCHAR AS settings,
                  count(DISTINCT e.run) AS n_runs, count(e.epoch) AS n_checkpoints
           FROM evaluation_settings s LEFT JOIN evaluations e USING (setting)
           GROUP BY ALL ORDER BY s.eval, n_checkpoints DESC, s.setting""",
    )


def run_settings(db: str | Path, run: str, eval_name: str) -> pd.DataFrame:
    """The settings a run has results of one measurement under, most epochs first:
    setting, settings (JSON text), n_epochs, first_epoch, last_epoch."""
    return query(
        db,
        """SELECT e.setting, s.settings::VARCHAR AS settings, count(DISTINCT e.epoch) AS n_epochs,
                  min(e.epoch) AS first_epoch, max(e.epoch) AS last_epoch, min(e.finished_at) AS first_at
           FROM evaluations e JOIN evaluation_settings s USING (setting)
           WHERE e.run = ? AND e.eval = ? GROUP BY ALL ORDER BY n_epochs DESC, first_at, e.setting""",
        [run, eval_name],
    ).drop(columns="first_at")


# --- what is in the database -------------------------------------------------------------------------


def table_counts(db: str | Path) -> pd.DataFrame:
    """Rows per result table (``table``, ``rows``): an empty database has zeros everywhere."""
    present = set(query(db, "SELECT table_name FROM information_schema.tables")["table_name"])
    tables = [t for t in (*CORE_TABLES, *(t.name for t in all_tables())) if t in present]
    sql = " UNION ALL ".join(f"SELECT '{t}' AS table_name, count(*) AS rows FROM {t}" for t in tables)
    return query(db, sql).rename(columns={"table_name": "table"})


def runs_overview(db: str | Path) -> pd.DataFrame:
    """One row per run: arch, parameters, source and its path, spec, checkpoints and their epoch range."""
    return query(
        db,
        """SELECT r.run, r.arch, r.n_params, r.source, r.source_path, r.pretrained_tag, r.training_data,
                  r.model_spec, r.run_id, count(c.epoch) AS n_epochs, min(c.epoch) AS first_epoch,
                  max(c.epoch) AS last_epoch
           FROM runs r LEFT JOIN checkpoints c USING (run)
           GROUP BY ALL ORDER BY r.run""",
    )


def measurements_overview(db: str | Path) -> pd.DataFrame:
    """One row per measurement: how many runs, checkpoints and settings have it, and its compute time."""
    return query(
        db,
        """SELECT eval, count(DISTINCT run) AS n_runs, count(*) AS n_checkpoints,
                  count(DISTINCT setting) AS n_settings, sum(seconds) AS seconds
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
    """Every stored curve: (metric, dataset, variant) with the measurement (eval) that made it, and its
    number of values and runs."""
    return query(
        db,
        """SELECT m.metric, m.dataset, m.variant, any_value(s.eval) AS eval, count(*) AS n_values,
                  count(DISTINCT m.run) AS n_runs
           FROM metrics m JOIN evaluation_settings s USING (setting)
           GROUP BY m.metric, m.dataset, m.variant ORDER BY m.metric, m.dataset, m.variant""",
    )


# --- curves ------------------------------------------------------------------------------------------


def match_series(available: pd.DataFrame, patterns: Sequence[Series] | None = None) -> list[Series]:
    """For each (metric, dataset, variant pattern), the first stored series of ``available`` that fits.

    ``available`` is :func:`metric_series`' frame; patterns with no stored match are left out; the
    default patterns are the registry's default curves.
    """
    patterns = default_curve_patterns() if patterns is None else patterns
    found: list[Series] = []
    for metric, dataset, pattern in patterns:
        rows = available[(available["metric"] == metric) & (available["dataset"] == dataset)]
        variants = sorted(v for v in rows["variant"] if variant_matches(v, pattern))
        if variants:
            found.append((metric, dataset, variants[0]))
    return found


def metric_curves(
    db: str | Path, series: Sequence[Series], settings: Sequence[RunSetting] | None = None
) -> pd.DataFrame:
    """Long frame (run, epoch, metric, dataset, variant, setting, value) of the given series under the
    given (run, setting) pairs (every run and setting when None). Pages pass one setting per run and
    measurement, as pairs: a setting id chosen for one run never draws another run's rows, so no curve
    mixes two settings."""
    columns = ["run", "epoch", "metric", "dataset", "variant", "setting", "value"]
    if not series or (settings is not None and not settings):
        return pd.DataFrame(columns=columns)
    match = " OR ".join(["(metric = ? AND dataset = ? AND variant = ?)"] * len(series))
    params: list = [part for item in series for part in item]
    chosen = ""
    if settings is not None:
        chosen = (
            "JOIN (SELECT unnest(?::VARCHAR[]) AS run, unnest(?::VARCHAR[]) AS setting) USING (run, setting)"
        )
        runs, ids = zip(*settings, strict=True)
        params = [list(runs), list(ids), *params]
    return query(
        db,
        f"SELECT {', '.join(columns)} FROM metrics {chosen} WHERE ({match}) "
        "ORDER BY run, metric, dataset, variant, epoch",
        params,
    )


INTERVAL_COLUMNS = ["n", "ci_low", "ci_high", "resamples", "seed", "level"]


def _has_table(db: str | Path, table: str) -> bool:
    present = query(db, "SELECT count(*) n FROM information_schema.tables WHERE table_name = ?", [table])
    return bool(present["n"].item())


def metric_curves_with_intervals(
    db: str | Path, series: Sequence[Series], settings: Sequence[RunSetting] | None = None
) -> pd.DataFrame:
    """:func:`metric_curves`' frame plus each value's stored bootstrap interval (``metric_intervals``):
    n (items resampled), ci_low, ci_high, resamples, seed, level. Missing where none is stored — all of
    them in a database written before intervals existed (no such table), and numbers whose items are not
    stored — so a page draws those values without a band. Where one number has intervals of several
    (B, seed), the one with the most resamples (then the lowest seed) is given."""
    curves = metric_curves(db, series, settings)
    empty = {
        "n": pd.array([pd.NA] * len(curves), dtype="Int64"),
        **{c: np.full(len(curves), np.nan) for c in ("ci_low", "ci_high", "level")},
        **{c: pd.array([pd.NA] * len(curves), dtype="Int64") for c in ("resamples", "seed")},
    }
    if curves.empty or not _has_table(db, "metric_intervals"):
        return curves.assign(**empty)
    match = " OR ".join(["(metric = ? AND dataset = ? AND variant = ?)"] * len(series))
    params: list = [part for item in series for part in item]
    chosen = ""
    if settings is not None:
        chosen, pairs = _pairs_join(settings)
        params = [*pairs, *params]
    keys = ["run", "epoch", "setting", "metric", "dataset", "variant"]
    intervals = query(
        db,
        f"""SELECT {", ".join(keys + INTERVAL_COLUMNS)} FROM (
                SELECT *, row_number() OVER (PARTITION BY {", ".join(keys)}
                                             ORDER BY resamples DESC, seed) AS rank
                FROM metric_intervals {chosen} WHERE ({match}))
            WHERE rank = 1""",
        params,
    )
    merged = curves.merge(intervals, on=keys, how="left")
    return merged.astype({"n": "Int64", "resamples": "Int64", "seed": "Int64"})


@dataclass(frozen=True)
class CurveReplicates:
    """Bootstrap replicates of whole curves of one run (:func:`curve_replicates`): per series, a
    B × len(epochs) array whose row b is the curve with every epoch's items resampled by the b-th
    resample (NaN at epochs without stored items), and the number of items per epoch (0 there)."""

    epochs: tuple[int, ...]
    values: dict[Series, np.ndarray]
    n: dict[Series, np.ndarray]
    resamples: int
    seed: int

    def aligned(self, series: Series, epochs: Sequence[int]) -> np.ndarray:
        """The series' B × len(epochs) replicates at ``epochs``, in that order (NaN where not resampled)."""
        where = {epoch: j for j, epoch in enumerate(self.epochs)}
        out = np.full((self.resamples, len(epochs)), np.nan)
        for j, epoch in enumerate(epochs):
            if series in self.values and int(epoch) in where:
                out[:, j] = self.values[series][:, where[int(epoch)]]
        return out


def curve_replicates(
    db: str | Path, run: str, settings: Sequence[str], series: Sequence[Series], resamples: int, seed: int
) -> CurveReplicates:
    """Bootstrap replicates of the given series of one run over its epochs (≥ 0), each measured under one
    of ``settings`` (setting ids of the run, one per measurement), recomputed from the stored per-item
    rows by each measurement's ``replicates`` with B = ``resamples`` and ``seed`` (as the precompute
    does for ``metric_intervals``). A checkpoint's items are read in the order they were written, which
    is the same at every epoch, so the same resample draws the same items at every epoch. Series of
    measurements that declare no replicates, or whose per-item tables the database lacks, are left out."""
    from threadpoolctl import threadpool_limits

    config = BootstrapConfig(int(resamples), int(seed))
    wanted = set(series)
    known = set(list_measurements())
    evals = query(
        db,
        "SELECT setting, eval FROM evaluation_settings WHERE list_contains(?::VARCHAR[], setting)",
        [list(settings)],
    )
    present = set(query(db, "SELECT table_name FROM information_schema.tables")["table_name"])
    per_epoch: dict[Series, dict[int, tuple[int, np.ndarray]]] = {}
    for setting, eval_name in zip(evals["setting"], evals["eval"], strict=True):
        measurement = get_measurement(eval_name) if eval_name in known else None
        if measurement is None or measurement.replicates is None:
            continue
        if not all(table.name in present for table in measurement.tables):
            continue
        key = [run, setting]
        where = "WHERE run = ? AND setting = ? AND epoch >= 0"
        items = {
            table.name: query(
                db, f"SELECT * EXCLUDE (run, setting) FROM {table.name} {where} ORDER BY epoch, rowid", key
            )
            for table in measurement.tables
        }
        metrics = query(db, f"SELECT epoch, metric, dataset, variant, value FROM metrics {where}", key)
        by_epoch = {name: dict(tuple(rows.groupby("epoch"))) for name, rows in items.items()}
        # One BLAS thread: each product is a B × n matrix times a vector, memory-bound; a multi-threaded
        # BLAS spent twice the CPU time on them, and three times the wall time on a busy 2-core machine.
        with threadpool_limits(limits=1, user_api="blas"):
            for epoch, epoch_metrics in metrics.groupby("epoch"):
                tables = {
                    name: groups[epoch].drop(columns="epoch").reset_index(drop=True)
                    if epoch in groups
                    else items[name].drop(columns="epoch").iloc[:0]
                    for name, groups in by_epoch.items()
                }
                if not any(len(rows) for rows in tables.values()):
                    continue  # no stored items at this epoch: nothing to resample
                out = measurement.replicates(tables, epoch_metrics.drop(columns="epoch"), config)
                for name in wanted & set(out):
                    per_epoch.setdefault(name, {})[int(epoch)] = out[name]
    epochs = tuple(sorted({e for found in per_epoch.values() for e in found}))
    values, counts = {}, {}
    for name in (s for s in series if s in per_epoch):
        matrix = np.full((config.resamples, len(epochs)), np.nan)
        n = np.zeros(len(epochs), dtype=np.int64)
        for j, epoch in enumerate(epochs):
            if epoch in per_epoch[name]:
                n[j], matrix[:, j] = per_epoch[name][epoch]
        values[name], counts[name] = matrix, n
    return CurveReplicates(epochs, values, counts, config.resamples, config.seed)


# --- many runs side by side -------------------------------------------------------------------------

_RUN_INFO = ["source", "arch", "n_params", "pretrained_tag", "training_data", "last_epoch"]
# One series' rows under the chosen (run, setting) pairs. Parameters: runs, settings (two lists zipped by
# unnest), metric, dataset, variant.
_CHOSEN_SERIES = """SELECT run, epoch, setting, value FROM metrics
    JOIN (SELECT unnest(?::VARCHAR[]) AS run, unnest(?::VARCHAR[]) AS setting) USING (run, setting)
    WHERE metric = ? AND dataset = ? AND variant = ?"""
_WITH_RUN_INFO = """JOIN runs USING (run)
    JOIN (SELECT run, max(epoch) AS last_epoch FROM checkpoints GROUP BY run) USING (run)"""


def _chosen(settings: Sequence[RunSetting], series: Series) -> list:
    runs, ids = zip(*settings, strict=True)
    return [list(runs), list(ids), *series]


def _one_setting_each(frame: pd.DataFrame) -> pd.DataFrame:
    twice = frame.loc[frame.duplicated(["run", "epoch"]), "run"].unique()
    if len(twice):
        raise ValueError(
            f"two settings of one measurement were given for run(s) {', '.join(twice)}; "
            "pass one setting per run and measurement"
        )
    return frame


def series_values(db: str | Path, series: Series, settings: Sequence[RunSetting]) -> pd.DataFrame:
    """One series per (run, epoch) under the given (run, setting) pairs: run, epoch, value, setting, and
    the run's source, arch, n_params, pretrained_tag, training_data and last checkpoint's epoch
    (``last_epoch``). Runs without a pair are left out; two settings of the series' measurement for one
    run raise ValueError, so no curve mixes two."""
    columns = ["run", "epoch", "value", "setting", *_RUN_INFO]
    if not settings:
        return pd.DataFrame(columns=columns)
    frame = query(
        db,
        f"""SELECT {", ".join(columns)} FROM ({_CHOSEN_SERIES}) {_WITH_RUN_INFO}
            ORDER BY run, epoch, setting""",
        _chosen(settings, series),
    )
    return _one_setting_each(frame)


def comparison_points(db: str | Path, x: Series, y: Series, settings: Sequence[RunSetting]) -> pd.DataFrame:
    """One row per (run, epoch) that has both series under the given (run, setting) pairs: run, epoch, x, y,
    x_setting, y_setting, and the run's source, arch, n_params, pretrained_tag, training_data and last
    checkpoint's epoch (``last_epoch``). Pass one setting per run and measurement: a second one raises
    ValueError, so no point ever takes x or y from two settings."""
    columns = ["run", "epoch", "x", "y", "x_setting", "y_setting", *_RUN_INFO]
    if not settings:
        return pd.DataFrame(columns=columns)
    frame = query(
        db,
        f"""SELECT run, epoch, px.value AS x, py.value AS y, px.setting AS x_setting,
                   py.setting AS y_setting, {", ".join(_RUN_INFO)}
            FROM ({_CHOSEN_SERIES}) px JOIN ({_CHOSEN_SERIES}) py USING (run, epoch) {_WITH_RUN_INFO}
            ORDER BY run, epoch, x_setting, y_setting""",
        [*_chosen(settings, x), *_chosen(settings, y)],
    )
    return _one_setting_each(frame)


# --- cue-conflict ------------------------------------------------------------------------------------


def cue_conflict_index(db: str | Path) -> pd.DataFrame:
    """Which (run, setting, protocol, epoch) have per-image cue-conflict decisions."""
    return query(
        db,
        "SELECT DISTINCT run, setting, protocol, epoch FROM cue_conflict_decisions "
        "ORDER BY run, setting, protocol, epoch",
    )


_CUE = """CASE WHEN decision = shape_class THEN 'shape'
               WHEN decision = texture_class THEN 'texture' ELSE 'other' END"""


def cue_conflict_decisions(
    db: str | Path, run: str, setting: str, protocol: str, epochs: Sequence[int] | None = None
) -> pd.DataFrame:
    """Per image and epoch: classes, decision, ``cue`` (shape/texture/other), scores, ``margin``.

    ``margin`` = shape_score − texture_score: positive when the shape class scores higher.
    """
    params: list = [run, setting, protocol]
    epoch_filter = ""
    if epochs is not None:
        epoch_filter = "AND list_contains(?::INTEGER[], epoch)"
        params.append([int(e) for e in epochs])
    return query(
        db,
        f"""SELECT epoch, image, shape_class, texture_class, decision, {_CUE} AS cue,
                   shape_score, texture_score, shape_score - texture_score AS margin
            FROM cue_conflict_decisions WHERE run = ? AND setting = ? AND protocol = ? {epoch_filter}
            ORDER BY epoch, image""",
        params,
    )


def shape_bias_by_class(db: str | Path, run: str, setting: str, protocol: str, epoch: int) -> pd.DataFrame:
    """Shape bias per shape class recomputed from the stored decisions, plus an ``'all'`` row.

    Same rule as the human table: same-class images dropped, answers that are neither cue ignored;
    ``shape_bias`` = n_shape / (n_shape + n_texture), NULL when both are 0.
    """
    return query(
        db,
        f"""WITH counted AS (
                SELECT shape_class, {_CUE} AS cue FROM cue_conflict_decisions
                WHERE run = ? AND setting = ? AND protocol = ? AND epoch = ?
                      AND shape_class <> texture_class),
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
        [run, setting, protocol, int(epoch)],
    )


def stored_intervals(db: str | Path, run: str, setting: str, epoch: int) -> pd.DataFrame:
    """One checkpoint's numbers of one setting with their bootstrap intervals where stored: metric,
    dataset, variant, value, n, ci_low, ci_high (NULL without an interval, or for a database from before
    intervals)."""
    tables = query(db, "SELECT table_name FROM information_schema.tables")["table_name"]
    intervals = "NULL::BIGINT AS n, NULL::DOUBLE AS ci_low, NULL::DOUBLE AS ci_high FROM metrics m"
    if "metric_intervals" in set(tables):
        intervals = """i.n, i.ci_low, i.ci_high FROM metrics m
                       LEFT JOIN metric_intervals i USING (run, epoch, setting, metric, dataset, variant)"""
    return query(
        db,
        f"""SELECT m.metric, m.dataset, m.variant, m.value, {intervals}
            WHERE m.run = ? AND m.setting = ? AND m.epoch = ?""",
        [run, setting, int(epoch)],
    )


def human_shape_bias(db: str | Path) -> pd.DataFrame:
    """The human baseline: per subject (and ``'mean'``) and shape class (and ``'all'``)."""
    return query(
        db,
        "SELECT subject, shape_class, n_shape, n_texture, shape_bias FROM human_shape_bias "
        "ORDER BY subject, shape_class",
    )


def image_history(db: str | Path, run: str, setting: str, protocol: str, image: str) -> pd.DataFrame:
    """One cue-conflict image over all epochs of a run: decision, cue, scores and margin."""
    return query(
        db,
        f"""SELECT epoch, decision, {_CUE} AS cue, shape_score, texture_score,
                   shape_score - texture_score AS margin
            FROM cue_conflict_decisions WHERE run = ? AND setting = ? AND protocol = ? AND image = ?
            ORDER BY epoch""",
        [run, setting, protocol, image],
    )


# --- class-agnostic entropy and temperature ----------------------------------------------------------


def entropy_index(db: str | Path) -> pd.DataFrame:
    """Which (run, setting, dataset, epoch, tau) have per-image entropies."""
    return query(
        db,
        "SELECT DISTINCT run, setting, dataset, epoch, tau FROM entropies "
        "ORDER BY run, setting, dataset, epoch, tau",
    )


def entropy_values(
    db: str | Path, run: str, setting: str, dataset: str, epochs: Sequence[int], taus: Sequence[float]
) -> pd.DataFrame:
    """Per-image entropies (epoch, tau, image_index, entropy) for the chosen epochs and temperatures."""
    return query(
        db,
        """SELECT epoch, tau, image_index, entropy FROM entropies
           WHERE run = ? AND setting = ? AND dataset = ? AND list_contains(?::INTEGER[], epoch)
                 AND list_contains(?::DOUBLE[], tau)
           ORDER BY epoch, tau, image_index""",
        [run, setting, dataset, [int(e) for e in epochs], [float(t) for t in taus]],
    )


def mean_entropy_by_epoch(db: str | Path, run: str, setting: str, dataset: str) -> pd.DataFrame:
    """Mean per-image entropy (and image count) per (epoch, tau)."""
    return query(
        db,
        """SELECT epoch, tau, avg(entropy) AS mean_entropy, count(*) AS n_images FROM entropies
           WHERE run = ? AND setting = ? AND dataset = ? GROUP BY epoch, tau ORDER BY tau, epoch""",
        [run, setting, dataset],
    )


def prompt_count(db: str | Path) -> int:
    """K, the number of class-agnostic prompts (0 when none are stored); ln K is the maximum entropy."""
    return int(query(db, "SELECT count(*) AS k FROM class_agnostic_prompts")["k"].iloc[0])


def tau_sweep(db: str | Path, run: str, setting: str, dataset: str = "cifar10") -> pd.DataFrame:
    """The stored τ sweep of a run: (epoch, metric, mode, tau, value) for ``ca_acc1`` and ``mean_entropy``.

    ``mode`` is the probe's C setting for ``ca_acc1`` ('fixed' or 'cv') and '' for ``mean_entropy``.
    """
    frame = query(
        db,
        """SELECT epoch, metric, variant, value FROM metrics
           WHERE run = ? AND setting = ? AND dataset = ? AND metric IN ('ca_acc1', 'mean_entropy')
           ORDER BY metric, variant, epoch""",
        [run, setting, dataset],
    )
    params = [parse_variant(v) for v in frame["variant"]]
    frame["mode"] = [p.get("C", "") for p in params]
    frame["tau"] = [float(p["tau"]) for p in params]
    return frame[["epoch", "metric", "mode", "tau", "value"]]


def tuned_C(db: str | Path, run: str, setting: str, dataset: str = "cifar10") -> pd.DataFrame:
    """The C that cross-validation chose for the class-agnostic probe per (epoch, tau) of a run, and
    whether it lies at the edge of the grid searched (``at_edge``, stored as ``ca_C_at_edge``)."""
    frame = query(
        db,
        """SELECT epoch, variant, max(value) FILTER (WHERE metric = 'ca_C') AS C,
                  max(value) FILTER (WHERE metric = 'ca_C_at_edge') AS at_edge
           FROM metrics WHERE run = ? AND setting = ? AND dataset = ? AND metric IN ('ca_C', 'ca_C_at_edge')
           GROUP BY epoch, variant ORDER BY epoch, variant""",
        [run, setting, dataset],
    )
    frame = frame[frame["variant"].map(lambda variant: variant_matches(variant, "C=cv;tau=*"))]
    frame["tau"] = [float(parse_variant(v)["tau"]) for v in frame["variant"]]
    return frame[["epoch", "tau", "C", "at_edge"]].reset_index(drop=True)


def class_agnostic_index(db: str | Path) -> pd.DataFrame:
    """Which (run, setting, dataset, epoch) have stored class-agnostic cosines (train and test counted)."""
    return query(
        db,
        """SELECT run, setting, dataset, epoch, count(*) FILTER (WHERE split = 'train') AS n_train,
                  count(*) FILTER (WHERE split = 'test') AS n_test
           FROM class_agnostic_features GROUP BY ALL ORDER BY run, setting, dataset, epoch""",
    )


@dataclass(frozen=True)
class CosineSplits:
    """Stored cosine(image, generic prompt) features and labels of one checkpoint's probe splits."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def class_agnostic_features(
    db: str | Path, run: str, setting: str, epoch: int, dataset: str = "cifar10"
) -> CosineSplits:
    """The train/test cosine matrices (images × prompts, in prompt order) and labels of one checkpoint."""
    frame = query(
        db,
        """SELECT split, label, cosines FROM class_agnostic_features
           WHERE run = ? AND setting = ? AND epoch = ? AND dataset = ? ORDER BY split, image_index""",
        [run, setting, int(epoch), dataset],
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

    ``template_sets``: the sorted template sets of the checkpoint's stored cue-conflict settings (empty
    without cue-conflict results, or with settings stored before schema 3 that named none).
    """
    frame = query(
        db,
        "SELECT c.run, c.epoch, c.path, r.arch, "
        "  coalesce(list_sort(list(DISTINCT s.settings->>'templates') "
        "    FILTER (WHERE s.settings->>'templates' IS NOT NULL)), []) AS template_sets "
        "FROM checkpoints c JOIN runs r USING (run) "
        "LEFT JOIN evaluations e ON e.run = c.run AND e.epoch = c.epoch AND e.eval = 'cue_conflict' "
        "LEFT JOIN evaluation_settings s ON s.setting = e.setting "
        "WHERE c.path IS NOT NULL GROUP BY ALL ORDER BY c.run, c.epoch",
    )
    frame["template_sets"] = frame["template_sets"].map(lambda sets: tuple(s for s in sets if s))
    return frame


# --- calibration and OOD detection ---------------------------------------------------------------------


def _stored_index(db: str | Path, table: str, columns: str) -> pd.DataFrame:
    """The distinct ``columns`` of a per-item table; empty for a database written before the table's
    measurement existed (the writer adds the table on its first write)."""
    present = query(db, "SELECT count(*) n FROM information_schema.tables WHERE table_name = ?", [table])
    if not present["n"].item():
        return pd.DataFrame(columns=[c.strip() for c in columns.split(",")])
    return query(db, f"SELECT DISTINCT {columns} FROM {table} ORDER BY ALL")


def calibration_index(db: str | Path) -> pd.DataFrame:
    """Which (run, setting, dataset, epoch) have reliability bins stored."""
    return _stored_index(db, "calibration_bins", "run, setting, dataset, epoch")


def reliability_bins(db: str | Path, run: str, setting: str, dataset: str, epoch: int) -> pd.DataFrame:
    """One checkpoint's non-empty reliability bins (scaled false/true): bin, lower, upper, count,
    confidence, accuracy, and ``gap`` = accuracy − confidence."""
    return query(
        db,
        """SELECT scaled, bin, lower, upper, count, confidence, accuracy, accuracy - confidence AS gap
           FROM calibration_bins WHERE run = ? AND setting = ? AND dataset = ? AND epoch = ?
           ORDER BY scaled, bin""",
        [run, setting, dataset, int(epoch)],
    )


def calibration_temperatures(db: str | Path, run: str, setting: str, dataset: str) -> pd.DataFrame:
    """Per epoch and fold: the fitted temperature and what it was fitted on."""
    return query(
        db,
        """SELECT epoch, fold, fit_on, n_fit, temperature FROM calibration_temperatures
           WHERE run = ? AND setting = ? AND dataset = ? ORDER BY epoch, fold""",
        [run, setting, dataset],
    )


def ood_index(db: str | Path) -> pd.DataFrame:
    """Which (run, setting, epoch) have OOD scores stored."""
    return _stored_index(db, "ood_scores", "run, setting, epoch")


def ood_score_histogram(db: str | Path, run: str, setting: str, epoch: int, bins: int = 40) -> pd.DataFrame:
    """The score distribution of the ID set and of each OOD set at one checkpoint: per dataset and
    equal-width bin over the checkpoint's score range, ``score`` (bin centre), ``count`` and ``share``
    (of the dataset's images), with ``is_id``."""
    return query(
        db,
        """WITH s AS (SELECT dataset, is_id, score FROM ood_scores
                      WHERE run = ? AND setting = ? AND epoch = ?),
                r AS (SELECT min(score) lo, greatest(max(score) - min(score), 1e-9) width FROM s),
                b AS (SELECT dataset, is_id,
                             least(floor((score - lo) / width * ?), ? - 1) AS bin, lo, width FROM s, r)
           SELECT dataset, is_id, any_value(lo + (bin + 0.5) * width / ?) AS score, count(*) AS count,
                  count(*) / sum(count(*)) OVER (PARTITION BY dataset) AS share
           FROM b GROUP BY dataset, is_id, bin ORDER BY dataset, score""",
        [run, setting, int(epoch), bins, bins, bins],
    )
