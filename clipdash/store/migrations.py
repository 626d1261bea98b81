"""Schema migrations: bring a results database of an older version to the current one, keeping a backup.

``MIGRATIONS[v]`` takes a database at version v to v + 1. ``ResultWriter`` applies them in order, in one
transaction on a copy of the file that it swaps in as it does a checkpoint's rows, after saving the
original as ``<name>.v<old>.bak``; a failure leaves the database as it was. The precompute upgrades a
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


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {1: _add_run_metadata}


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
                check_tables(con, path)
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
