"""Opening a clipdash database: schema creation and version checks, read-only connections, variant strings."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from clipdash.errors import StoreError

SCHEMA_VERSION = 1
SCHEMA_SQL = Path(__file__).with_name("schema.sql")


def format_variant(**params: object) -> str:
    """``key=value;key=value`` with sorted keys; floats in their shortest form; '' for no parameters."""
    return ";".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items()))


def parse_variant(variant: str) -> dict[str, str]:
    """Inverse of :func:`format_variant` (values stay strings)."""
    return dict(part.split("=", 1) for part in variant.split(";") if part)


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table of the current schema version in an empty database."""
    con.execute(SCHEMA_SQL.read_text())
    con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])


def read_schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The database's schema version, or None for a database without clipdash tables."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "schema_version" not in tables:
        return None
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return None if row is None else row[0]


def check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a database written by another schema version, with a message saying what to do."""
    version = read_schema_version(con)
    if version is None:
        raise StoreError(f"{path} is not a clipdash results database (no schema_version table)")
    if version != SCHEMA_VERSION:
        direction = "an older" if version < SCHEMA_VERSION else "a newer"
        raise StoreError(
            f"{path} has schema version {version}, written by {direction} clipdash; this one reads version "
            f"{SCHEMA_VERSION}. Re-run the precompute into a new database file"
            + (" or upgrade clipdash." if version > SCHEMA_VERSION else ".")
        )


def connect_read_only(path: str | Path, retries: int = 20, wait_s: float = 0.1) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-only and check its schema; retry briefly while a writer swaps the file in."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"results database not found: {path} (create it with python -m clipdash.precompute)")
    last_error: Exception | None = None
    for _ in range(retries):
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StoreError(f"{path} is not a readable DuckDB database: {exc}") from exc
            last_error = exc  # a writer holds the file: wait for it to let go
            time.sleep(wait_s)
            continue
        except duckdb.Error as exc:
            raise StoreError(f"{path} is not a readable DuckDB database: {exc}") from exc
        try:
            check_schema(con, path)
        except StoreError:
            con.close()
            raise
        return con
    raise StoreError(
        f"{path} is locked by another process (a precompute job?); try again shortly: {last_error}"
    )
