"""Per-item tables as data: a measurement declares the tables it writes, and the store creates them.

Every per-item table starts with the same three key columns (``run``, ``epoch``, ``setting``), so each
row says which checkpoint and which stored settings made it, and a measurement's numbers can be
recomputed (and later bootstrapped) from its rows. The writer creates a declared table that an existing
database lacks, so adding a measurement needs no migration.
"""

from __future__ import annotations

from dataclasses import dataclass

KEY_COLUMNS = (("run", "VARCHAR"), ("epoch", "INTEGER"), ("setting", "VARCHAR"))


@dataclass(frozen=True)
class Table:
    """A per-item table: its name, what one row is, and its columns after the key columns."""

    name: str
    row: str  # what one row is, for the schema comment and the README
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)

    def __post_init__(self) -> None:
        names = [name for name, _ in self.columns]
        if len(set(names)) != len(names) or {"run", "epoch", "setting"} & set(names):
            raise ValueError(f"table {self.name}: duplicate or reserved column names in {names}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self) -> str:
        """``CREATE TABLE IF NOT EXISTS`` with the key columns first (no index: these hold most rows)."""
        columns = ",\n    ".join(f"{name} {kind} NOT NULL" for name, kind in (*KEY_COLUMNS, *self.columns))
        return f"-- {self.row}\nCREATE TABLE IF NOT EXISTS {self.name} (\n    {columns}\n);"
