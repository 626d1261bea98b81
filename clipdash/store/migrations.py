"""Schema migrations: bring a results database of an older version to the current one, keeping a backup.

``MIGRATIONS[v]`` takes a database at version v to v + 1. ``ResultWriter`` applies them in order, in one
transaction on the file, after saving the original as ``<name>.v<old>.bak``; a failure rolls back and
leaves the database as it was. The precompute upgrades a
database before it writes to it; the dashboard opens databases read-only, so it names the command
``python -m clipdash.store.migrate`` (``clipdash/store/migrate.py``) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from clipdash.errors import StoreError
from clipdash.store.db import (
    SCHEMA_VERSION,
    check_tables,
    not_a_database,
    read_schema_version,
)


def _add_run_metadata(con: duckdb.DuckDBPyConnection) -> None:
    """1 → 2: runs get source_path (filled from their checkpoints' paths), n_params and params (unknown)."""
    for column, kind in (("source_path", "VARCHAR"), ("n_params", "BIGINT"), ("params", "JSON")):
        con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    con.execute(
        """UPDATE runs SET source_path = (
               SELECT CASE WHEN runs.source = 'file' THEN min(c.path)
                           ELSE min(regexp_replace(c.path, '/[^/]+$', '')) END
               FROM checkpoints c WHERE c.run = runs.run AND c.path IS NOT NULL)"""
    )


# Which measurement wrote an old metrics row (old rows had no eval column); per-item table -> measurement.
_EVAL_OF_METRIC = """CASE WHEN dataset = 'cifar10-c/gaussian_noise' THEN 'noise'
    WHEN dataset IN ('tid2013', 'livec') THEN dataset WHEN dataset = 'cue-conflict' THEN 'cue_conflict'
    WHEN metric LIKE 'lp\\_%' ESCAPE '\\' THEN 'probe'
    WHEN metric IN ('ca_acc1', 'ca_C', 'mean_entropy') THEN 'class_agnostic' ELSE 'zeroshot' END"""
_PER_ITEM_BEFORE_3 = {
    "cue_conflict_decisions": "cue_conflict",
    "entropies": "class_agnostic",
    "class_agnostic_features": "class_agnostic",
    "image_embeddings": "probe",
}
# Keys that were settings packed into variants; schema 3 stores them in evaluation_settings.
_SETTING_KEYS = ("templates", "n_train", "prompts")


def _record_settings(con: duckdb.DuckDBPyConnection) -> None:
    """2 → 3: every number gets a setting; variants keep only their sub-series; runs get identities.

    Old rows were stored without their settings, so each (measurement, template set) becomes a legacy
    setting ``{"recorded": false, "templates": ...}``: readable and chosen like any other, never resumed
    over (a new job's settings differ). Per-item tables are rebuilt with the setting after (run, epoch).
    """
    from clipdash.store.settings import legacy_setting

    con.execute(
        "CREATE TABLE evaluation_settings (setting VARCHAR PRIMARY KEY, eval VARCHAR NOT NULL, "
        "settings JSON NOT NULL)"
    )
    con.execute(
        f"""CREATE TEMP TABLE old_metrics AS SELECT *, {_EVAL_OF_METRIC} AS eval,
                regexp_extract(variant, '(^|;)templates=([^;]+)', 2) AS templates FROM metrics"""
    )
    pairs = con.execute(  # every (checkpoint, measurement) with a marker or with metrics: no row is lost
        """WITH done AS (SELECT run, epoch, eval FROM evaluations
                         UNION SELECT run, epoch, eval FROM old_metrics)
           SELECT d.eval, coalesce(max(nullif(m.templates, '')), '') AS templates, d.run, d.epoch
           FROM done d LEFT JOIN old_metrics m USING (run, epoch, eval) GROUP BY ALL"""
    ).fetchall()
    mapping = []
    for eval_name, templates, run, epoch in pairs:
        setting, values = legacy_setting(eval_name, templates or None)
        mapping.append((run, epoch, eval_name, setting, values))
    con.execute(
        "CREATE TEMP TABLE legacy (run VARCHAR, epoch INTEGER, eval VARCHAR, setting VARCHAR, settings JSON)"
    )
    if mapping:
        con.executemany("INSERT INTO legacy VALUES (?, ?, ?, ?, ?)", mapping)
    con.execute("INSERT INTO evaluation_settings SELECT DISTINCT setting, eval, settings FROM legacy")
    settings_key = " OR ".join(f"x LIKE '{key}=%'" for key in _SETTING_KEYS)
    kept = f"lambda x: x <> '' AND NOT ({settings_key})"
    con.execute(
        f"""CREATE TABLE metrics_v3 AS SELECT m.run, m.epoch, l.setting, m.metric, m.dataset,
                array_to_string(list_filter(string_split(m.variant, ';'), {kept}), ';')
                    AS variant, m.value
            FROM old_metrics m JOIN legacy l USING (run, epoch, eval)"""
    )
    con.execute("DROP TABLE metrics")
    con.execute("ALTER TABLE metrics_v3 RENAME TO metrics")
    con.execute(
        """CREATE TABLE evaluations_v3 (run VARCHAR NOT NULL, epoch INTEGER NOT NULL, eval VARCHAR NOT NULL,
               setting VARCHAR NOT NULL, seconds DOUBLE NOT NULL, finished_at TIMESTAMP NOT NULL,
               clipdash_version VARCHAR, PRIMARY KEY (run, epoch, eval, setting))"""
    )
    con.execute(
        """INSERT INTO evaluations_v3 SELECT e.run, e.epoch, e.eval, l.setting, e.seconds, e.finished_at, NULL
           FROM evaluations e JOIN legacy l USING (run, epoch, eval)"""
    )
    con.execute("DROP TABLE evaluations")
    con.execute("ALTER TABLE evaluations_v3 RENAME TO evaluations")
    for table, eval_name in _PER_ITEM_BEFORE_3.items():
        columns = [
            row[0]
            for row in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [table],
            ).fetchall()
            if row[0] not in ("run", "epoch")
        ]
        selected = ", ".join(f"t.{c}" for c in columns)
        con.execute(
            f"""CREATE TABLE {table}_v3 AS SELECT t.run, t.epoch, l.setting, {selected} FROM {table} t
                JOIN legacy l ON l.run = t.run AND l.epoch = t.epoch AND l.eval = '{eval_name}'"""
        )
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {table}_v3 RENAME TO {table}")
    for column in ("run_id", "pretrained_tag", "training_data"):
        con.execute(f"ALTER TABLE runs ADD COLUMN {column} VARCHAR")
    con.execute("UPDATE runs SET run_id = uuid()::VARCHAR")
    con.execute(
        "UPDATE runs SET pretrained_tag = split_part(run, ':', 2), training_data = split_part(run, ':', 2) "
        "WHERE source = 'pretrained'"
    )
    con.execute(
        "UPDATE runs SET training_data = coalesce(params->>'train_data', params->>'source') "
        "WHERE source <> 'pretrained'"
    )
    con.execute("DROP TABLE old_metrics")
    con.execute("DROP TABLE legacy")


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _add_run_metadata,
    2: _record_settings,
}


def backup_path(path: Path, version: int) -> Path:
    """Where the original of a database at ``version`` is kept: ``<name>.v<version>.bak`` (numbered)."""
    backup, n = path.with_name(f"{path.name}.v{version}.bak"), 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.v{version}.bak{n}")
    return backup


def stored_version(path: Path) -> int | None:
    """The schema version of the database at ``path`` (None: no schema_version table); a database of an
    older version must still have all its tables."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            version = read_schema_version(con)
            if version is not None and version < SCHEMA_VERSION:
                check_tables(con, path, version)
            return version
    except duckdb.Error as exc:
        raise not_a_database(path, exc) from exc


def pending_version(path: Path) -> int | None:
    """The older schema version ``path`` must be migrated from, or None when there is nothing to migrate
    (current, newer, or not a clipdash database: ``check_schema`` says which); raises when no chain of
    migrations leads from its version to the current one."""
    version = stored_version(path)
    if version is None or version >= SCHEMA_VERSION:
        return None
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if missing:
        raise StoreError(
            f"{path} has schema version {version}, which this clipdash cannot migrate (no migration from "
            f"version {missing[0]}); re-run the precompute into a new database file"
        )
    return version


def apply_migrations(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Run every migration from ``version`` to the current one in ``con``'s open transaction."""
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](con)
    con.execute("UPDATE schema_version SET version = ?", [SCHEMA_VERSION])
