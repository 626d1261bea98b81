"""The only writer of a results database: one transaction per checkpoint, swapped in atomically.

DuckDB lets one process write a file, and a writer locks readers out. So a precompute never writes the
dashboard's file in place: for each checkpoint it copies the database, writes that checkpoint's rows into
the copy in one transaction, and renames the copy over the original. Readers (the app opens the file
read-only, per query) see either the previous or the new complete database; a killed job leaves at worst
a stale ``.tmp`` copy, removed by the next job. A lock file keeps two jobs from writing one database.

A write that fails (a full disk, a read-only folder) raises ``StoreError`` and leaves the database as it
was. DuckDB commits into its write-ahead log and moves the log into the file at close, where an error is
not raised; so the writer checkpoints explicitly, checks that no log is left behind and reads the new
rows back from the copy before it is swapped in. A ``--db`` that is a symlink is written through to its
target (and locked under the target's name).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from clipdash.errors import StoreError
from clipdash.store.db import (
    SCHEMA_VERSION,
    check_schema,
    connect_read_only,
    create_schema,
    first_line,
    refuse_non_file,
)
from clipdash.store.migrations import apply_migrations, backup_path, pending_version
from clipdash.store.queries import query

log = logging.getLogger(__name__)
# Per-image tables have no primary-key index (it would double the file); each is written by exactly one
# evaluation, so the writer replaces a checkpoint's rows wholesale instead of upserting them.
PER_IMAGE_TABLES = ("cue_conflict_decisions", "entropies", "class_agnostic_features", "image_embeddings")
PER_CHECKPOINT_TABLES = ("metrics", *PER_IMAGE_TABLES)
SHARED_TABLES = ("human_shape_bias", "classnames", "class_agnostic_prompts")


@dataclass
class EvalResult:
    """What one evaluation produced for one checkpoint: metric rows and per-item table rows."""

    eval: str
    seconds: float
    metrics: list[tuple[str, str, str, float]] = field(
        default_factory=list
    )  # metric, dataset, variant, value
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # table -> rows without run/epoch


@dataclass
class CheckpointResult:
    """Everything written for one checkpoint, in one transaction."""

    run: str
    epoch: int
    model_spec: str
    arch: str
    source: str
    path: str | None
    sha256: str | None
    evals: list[EvalResult]
    shared_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # upserted, not per checkpoint
    source_path: str | None = None  # the run folder or checkpoint file; None for a pretrained tag
    n_params: int | None = None
    params: dict[str, str] | None = None  # the run's params.txt


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, verb: str = "INSERT") -> None:
    if frame.empty:
        return
    columns = ", ".join(frame.columns)
    # No try/finally: after a failed insert the transaction is aborted, unregister would raise and hide the
    # real error (a full disk), and the whole copy is thrown away anyway.
    con.register("incoming_rows", frame)
    con.execute(f"{verb} INTO {table} ({columns}) SELECT {columns} FROM incoming_rows")
    con.unregister("incoming_rows")


def _upsert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    _insert(con, table, frame, verb="INSERT OR REPLACE")


class ResultWriter:
    """Context manager holding the job lock on ``path``; :meth:`write` adds one checkpoint atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(os.path.realpath(Path(path).expanduser()))  # a symlink: write to its target
        self.tmp_path = self.path.with_name(self.path.name + ".tmp")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.migrated_from: int | None = None  # the schema version an older database was upgraded from
        self._lock_file = None

    def __enter__(self) -> ResultWriter:
        refuse_non_file(self.path)  # before a lock file is made beside a folder or a device
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.lock_path, "a")  # noqa: SIM115 (held for the writer's lifetime)
        except OSError as exc:
            raise StoreError(
                f"cannot write in {self.path.parent} ({exc.strerror or exc}); "
                "choose a --db in a writable folder"
            ) from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._release()
            raise StoreError(
                f"another precompute job is writing {self.path}; wait for it or use another --db"
            ) from exc
        try:
            self._remove_stale_copy()
            if not self.path.exists():
                self._create()
            else:
                self.migrated_from = self._upgrade()
            connect_read_only(self.path).close()  # a folder, a text file, a foreign or damaged database
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._remove_stale_copy()
        self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _remove_stale_copy(self) -> None:
        for stale in (self.tmp_path, self.tmp_path.with_name(self.tmp_path.name + ".wal")):
            stale.unlink(missing_ok=True)

    def _create(self) -> None:
        try:
            with duckdb.connect(str(self.tmp_path)) as con:
                create_schema(con)
                con.execute("CHECKPOINT")
            self._swap()
        except (OSError, duckdb.Error) as exc:
            self._remove_stale_copy()
            raise StoreError(f"could not create {self.path} ({_reason(exc)})") from exc

    def _swap(self) -> None:
        _fsync(self.tmp_path)
        os.replace(self.tmp_path, self.path)
        _fsync(self.path.parent)

    def completed(self, run: str) -> set[tuple[int, str]]:
        """(epoch, eval) pairs already stored for ``run``: what a resumed job skips."""
        rows = query(self.path, "SELECT epoch, eval FROM evaluations WHERE run = ?", [run])
        return {(int(epoch), name) for epoch, name in rows.itertuples(index=False)}

    def stored_checkpoints(self, run: str) -> dict[int, tuple[str | None, str | None]]:
        """epoch -> (path, sha256) of the checkpoints stored for ``run``."""
        rows = query(self.path, "SELECT epoch, path, sha256 FROM checkpoints WHERE run = ?", [run])
        return {int(epoch): (path, sha256) for epoch, path, sha256 in rows.itertuples(index=False)}

    def write(self, result: CheckpointResult) -> None:
        """Write one checkpoint's rows (and its finished-eval markers) in one transaction, then swap.

        Any failure raises ``StoreError`` in one sentence and leaves the database as it was.
        """
        try:
            self._rewrite(lambda con: _insert_result(con, result), lambda con: _check_markers(con, result))
        except (OSError, duckdb.Error) as exc:
            raise StoreError(
                f"could not write epoch {result.epoch} of {result.run} to {self.path} ({_reason(exc)}); "
                "it still holds the results written before"
            ) from exc

    def _upgrade(self) -> int | None:
        """Migrate an older database (``clipdash.store.migrations``), keeping the original as a backup;
        returns the version it had, or None when there was nothing to migrate."""
        version = pending_version(self.path)
        if version is None:
            return None
        backup = backup_path(self.path, version)
        try:
            shutil.copyfile(self.path, backup)
            self._rewrite(
                lambda con: apply_migrations(con, version), lambda con: check_schema(con, self.path)
            )
        except (OSError, duckdb.Error) as exc:
            backup.unlink(missing_ok=True)  # the original is untouched: no backup needed
            raise StoreError(
                f"could not migrate {self.path} from schema version {version} ({_reason(exc)})"
            ) from exc
        log.warning(
            "migrated %s from schema version %d to %d; the original is kept as %s",
            *(self.path, version, SCHEMA_VERSION, backup),
        )
        return version

    def _rewrite(
        self,
        change: Callable[[duckdb.DuckDBPyConnection], None],
        check: Callable[[duckdb.DuckDBPyConnection], None],
    ) -> None:
        """Apply ``change`` in one transaction to a copy of the database, check the copy, swap it in.

        DuckDB commits into a write-ahead log and folds it into the file at close, where a failure (a full
        disk) is not raised: so the copy is checkpointed explicitly, must have no log left, and is read
        back (``check``) before the rename. Any failure removes the copy and leaves the database as it was.
        """
        try:
            shutil.copyfile(self.path, self.tmp_path)
            with duckdb.connect(str(self.tmp_path)) as con:
                con.begin()
                change(con)
                con.commit()
                con.execute("CHECKPOINT")  # raises where the implicit checkpoint at close would not
            wal = self.tmp_path.with_name(self.tmp_path.name + ".wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise OSError(f"DuckDB left {wal.stat().st_size} bytes in its write-ahead log {wal}")
            with duckdb.connect(str(self.tmp_path), read_only=True) as con:
                check(con)
            self._swap()
        except BaseException:
            self._remove_stale_copy()
            raise


def _insert_result(con: duckdb.DuckDBPyConnection, result: CheckpointResult) -> None:
    """One checkpoint's rows, shared tables and finished-eval markers, into ``con``'s transaction."""
    now = datetime.now()
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run) DO UPDATE SET "
        "source_path = coalesce(runs.source_path, excluded.source_path), "
        "n_params = coalesce(runs.n_params, excluded.n_params), "
        "params = coalesce(runs.params, excluded.params)",
        [
            result.run,
            result.model_spec,
            result.arch,
            result.source,
            now,
            result.source_path,
            result.n_params,
            json.dumps(result.params) if result.params else None,
        ],
    )
    con.execute(
        "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
        [result.run, result.epoch, result.path, result.sha256],
    )
    for table, frame in result.shared_tables.items():
        if table not in SHARED_TABLES:
            raise StoreError(f"unknown shared table {table!r}; expected one of {SHARED_TABLES}")
        _upsert(con, table, frame)
    for evaluation in result.evals:
        metrics = pd.DataFrame(evaluation.metrics, columns=["metric", "dataset", "variant", "value"])
        for table, frame in {"metrics": metrics, **evaluation.tables}.items():
            if table not in PER_CHECKPOINT_TABLES:
                raise StoreError(f"unknown table {table!r}; expected one of {PER_CHECKPOINT_TABLES}")
            if table in PER_IMAGE_TABLES:
                con.execute(f"DELETE FROM {table} WHERE run = ? AND epoch = ?", [result.run, result.epoch])
                _insert(con, table, frame.assign(run=result.run, epoch=result.epoch))
            else:
                _upsert(con, table, frame.assign(run=result.run, epoch=result.epoch))
        con.execute(
            "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?)",
            [result.run, result.epoch, evaluation.eval, evaluation.seconds, now],
        )


def _check_markers(con: duckdb.DuckDBPyConnection, result: CheckpointResult) -> None:
    """Raise unless the rewritten copy holds the finished-eval markers of ``result``."""
    stored = con.execute(
        "SELECT list(eval) FROM evaluations WHERE run = ? AND epoch = ?", [result.run, result.epoch]
    ).fetchone()[0]
    missing = {e.eval for e in result.evals} - set(stored or [])
    if missing:
        raise OSError(f"the copy lacks the rows of {', '.join(sorted(missing))} after the commit")


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words: the OS's error text or DuckDB's first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first_line(exc)
