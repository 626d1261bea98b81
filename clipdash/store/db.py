"""Opening a clipdash database: schema creation and version checks, read-only connections, variant strings."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb

from clipdash.errors import StoreError

SCHEMA_VERSION = 3
FIRST_MIGRATABLE = 1  # clipdash.store.migrate upgrades databases from this version on
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
# Every table of the current schema, read from the schema file itself (the one place that lists them).
SCHEMA_TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA_SQL.read_text()))
# Tables of schema versions 1 and 2 (version 3 adds evaluation_settings and per-measurement tables).
TABLES_BEFORE_3 = (
    "schema_version",
    "runs",
    "checkpoints",
    "evaluations",
    "metrics",
    "cue_conflict_decisions",
    "entropies",
    "class_agnostic_features",
    "class_agnostic_prompts",
    "image_embeddings",
    "human_shape_bias",
    "classnames",
)


def format_variant(**params: object) -> str:
    """``key=value;key=value`` with sorted keys; floats in their shortest form; '' for no parameters."""
    return ";".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items()))


def parse_variant(variant: str) -> dict[str, str]:
    """Inverse of :func:`format_variant` (values stay strings)."""
    return dict(part.split("=", 1) for part in variant.split(";") if part)


def variant_matches(variant: str, pattern: str) -> bool:
    """Whether a variant's fields fit a pattern, field by field (never by string prefix).

    A pattern lists ``key=value`` fields, ``*`` as a value meaning any value; a lone ``*`` field allows
    other keys too, otherwise the variant must have exactly the pattern's keys. ``severity=mean;*`` fits
    ``a=1;severity=mean;templates=clip``, which the glob of the same text does not;
    ``protocol=two_prompt;templates=*`` does not fit a per-class ``class=cat;protocol=...`` row.
    """
    fields = parse_variant(variant)
    wanted = parse_variant(";".join(part for part in pattern.split(";") if part != "*"))
    others_allowed = "*" in pattern.split(";")
    if not others_allowed and set(fields) != set(wanted):
        return False
    return all(key in fields and value in ("*", fields[key]) for key, value in wanted.items())


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table of the current schema version, and every measurement's per-item table, in an
    empty database."""
    from clipdash.measurements import all_tables  # the registry's modules import this package

    con.execute(SCHEMA_SQL.read_text())
    for table in all_tables():
        con.execute(table.ddl())
    con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])


def read_schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The database's schema version, or None for a database without clipdash tables."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "schema_version" not in tables:
        return None
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return None if row is None else row[0]


def check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a database written by another schema version, or one missing tables, saying what to do."""
    version = read_schema_version(con)
    if version is None:
        raise StoreError(f"{path} is not a clipdash results database (no schema_version table)")
    if FIRST_MIGRATABLE <= version <= SCHEMA_VERSION:  # the tables of other versions are unknown here
        check_tables(con, path, version)
    if version != SCHEMA_VERSION:
        direction = "an older" if version < SCHEMA_VERSION else "a newer"
        if version > SCHEMA_VERSION:
            advice = "Upgrade clipdash, or re-run the precompute into a new database file."
        elif version >= FIRST_MIGRATABLE:
            advice = f"Upgrade it with python -m clipdash.store.migrate {path} (a backup is kept)."
        else:
            advice = "Re-run the precompute into a new database file."
        raise StoreError(
            f"{path} has schema version {version}, written by {direction} clipdash; this one reads version "
            f"{SCHEMA_VERSION}. {advice}"
        )


def check_tables(con: duckdb.DuckDBPyConnection, path: Path, version: int = SCHEMA_VERSION) -> None:
    """Refuse a database that lacks any core table of its schema version (a measurement's per-item table
    may be missing: the writer adds it)."""
    present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    missing = sorted(set(SCHEMA_TABLES if version >= 3 else TABLES_BEFORE_3) - present)
    if missing:
        raise StoreError(
            f"{path} is missing the tables {', '.join(missing)}, so it is not a complete clipdash results "
            "database; re-run the precompute into a new database file"
        )


def refuse_non_file(path: Path) -> None:
    """Refuse a folder or a device (a pipe, /dev/null) given as a database, in one sentence."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device or a pipe?)"
        raise StoreError(f"{path} is {kind}, not a results database; give the path of a .duckdb file")


def not_a_database(path: Path, exc: Exception) -> StoreError:
    """The one sentence for a file DuckDB cannot open: a text file, an empty or damaged file."""
    if not os.access(path, os.R_OK):
        return StoreError(f"cannot read {path}: permission denied")
    return StoreError(f"{path} is not a DuckDB database, or its header is damaged ({first_line(exc)})")


def damaged(path: str | Path, exc: Exception) -> StoreError:
    """The one sentence for a database whose data blocks cannot be read (corrupt or truncated)."""
    return StoreError(
        f"{path} is damaged and cannot be read ({first_line(exc)}); restore it from a copy or re-run the "
        "precompute into a new database file"
    )


def first_line(exc: Exception) -> str:
    """An exception's message without DuckDB's multi-line hints."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def connect_read_only(path: str | Path, retries: int = 100, wait_s: float = 0.1) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-only and check its schema; while a precompute writes a checkpoint into the file
    (it holds it for that one transaction, locking other processes out), retry for up to 10 s."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"results database not found: {path} (create it with python -m clipdash.precompute)")
    refuse_non_file(path)
    last_error: Exception | None = None
    for _ in range(retries):
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise not_a_database(path, exc) from exc
            last_error = exc  # a writer holds the file: wait for it to let go
            time.sleep(wait_s)
            continue
        except duckdb.Error as exc:
            raise not_a_database(path, exc) from exc
        try:
            check_schema(con, path)
        except duckdb.Error as exc:
            con.close()
            raise damaged(path, exc) from exc
        except StoreError:
            con.close()
            raise
        return con
    raise StoreError(
        f"{path} is locked by another process (a precompute job?); try again shortly: {last_error}"
    )
