"""The only writer of a results database: one transaction per checkpoint, written in place.

For each checkpoint the writer opens the file read-write, writes that checkpoint's rows in one transaction,
checks them, commits, checkpoints and closes the file again, so a write costs in proportion to its own rows,
not to the file. DuckDB lets a read-write connection in one process lock other processes out: readers (the
app opens the file read-only, per query) wait while a checkpoint is written (``connect_read_only`` retries
for up to 10 s) and then see the previous or the new complete results, never a half-written checkpoint;
the writer in turn waits up to a minute for readers to let go before it calls the database busy. A lock
file keeps two jobs from writing one database. A killed job loses at most the checkpoint in flight: DuckDB
rolls back an uncommitted transaction and replays a committed one from its write-ahead log at the next open.

A write that fails before or at the commit (a full disk, a damaged block) raises ``StoreError`` and leaves
the database with exactly its earlier rows. DuckDB commits into its write-ahead log (``<db>.wal``) and
folds the log into the file at a checkpoint, which at close fails without an error; so the writer
checkpoints explicitly (turning DuckDB's automatic checkpoint at commit off, so a commit never checkpoints)
and checks that no log is left behind. A checkpoint that fails after the commit raises ``StoreError``
saying the rows are committed to the log: DuckDB folds them in the next time the database is opened with
space to do so. A job reads every block once when it starts, so a damaged file is refused before anything
is written. A ``--db`` that is a symlink is written through to its target (and locked under the target's
name).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from clipdash import __version__
from clipdash.errors import StoreError
from clipdash.measurements import all_tables, get_measurement
from clipdash.measurements.intervals import INTERVALS
from clipdash.store.db import (
    SCHEMA_VERSION,
    check_schema,
    connect_read_only,
    create_schema,
    damaged,
    first_line,
    refuse_non_file,
)
from clipdash.store.migrations import apply_migrations, backup_path, pending_version
from clipdash.store.queries import query

log = logging.getLogger(__name__)
BUSY_WAIT_S = 60.0  # how long a checkpoint's write waits for readers to let go of the file
SHARED_TABLES = ("human_shape_bias", "classnames", "class_agnostic_prompts")


@dataclass
class EvalResult:
    """What one measurement produced for one checkpoint: metric rows and per-item table rows."""

    eval: str
    seconds: float
    metrics: list[tuple[str, str, str, float]] = field(
        default_factory=list
    )  # metric, dataset, variant, value
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # table -> rows without run/epoch/setting
    setting: str = ""  # the id of the settings it was made with (set by the executor)
    intervals: pd.DataFrame | None = None  # metric_intervals rows without run/epoch/setting


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
    pretrained_tag: str | None = None
    training_data: str | None = None
    settings: dict[str, tuple[str, str]] = field(default_factory=dict)  # setting id -> (eval, settings JSON)
    replace: bool = False  # --force: replace stored rows of the same settings


def _remove_database(path: Path) -> None:
    """Remove a database file and its write-ahead log, where present."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _NotFolded(Exception):
    """The transaction is committed to DuckDB's write-ahead log, but the checkpoint into the file failed."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, verb: str = "INSERT") -> None:
    if frame.empty:
        return
    columns = ", ".join(frame.columns)
    # No try/finally: after a failed insert the transaction is aborted, unregister would raise and hide the
    # real error (a full disk), and the connection is closed (the transaction rolled back) anyway.
    con.register("incoming_rows", frame)
    con.execute(f"{verb} INTO {table} ({columns}) SELECT {columns} FROM incoming_rows")
    con.unregister("incoming_rows")


def _upsert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    _insert(con, table, frame, verb="INSERT OR REPLACE")


class ResultWriter:
    """Context manager holding the job lock on ``path``; :meth:`write` adds one checkpoint atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(os.path.realpath(Path(path).expanduser()))  # a symlink: write to its target
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
            _remove_database(self._creation_path)  # a creation killed half-way, or an older writer's copy
            if not self.path.exists():
                self._create()
            else:
                self._read_every_block()  # before anything is written, a migration included
                self.migrated_from = self._upgrade()
            connect_read_only(self.path).close()  # a folder, a text file, a foreign or damaged database
            if not os.access(self.path.parent, os.W_OK):  # DuckDB's write-ahead log goes beside the file
                raise StoreError(
                    f"cannot write in {self.path.parent} (permission denied); "
                    "choose a --db in a writable folder"
                )
            if not os.access(self.path, os.W_OK):  # written in place, no longer replaced by a copy
                raise StoreError(
                    f"cannot write {self.path} (permission denied); make it writable or choose another --db"
                )
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @property
    def _creation_path(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def _create(self) -> None:
        """A new, empty database, made under a temporary name and renamed into place: a creation that fails
        (a full disk) leaves no file behind."""
        new = self._creation_path
        try:
            with duckdb.connect(str(new)) as con:
                create_schema(con)
                con.execute("CHECKPOINT")
            _fsync(new)
            os.replace(new, self.path)
            _fsync(self.path.parent)
        except (OSError, duckdb.Error) as exc:
            _remove_database(new)
            raise StoreError(f"could not create {self.path} ({_reason(exc)})") from exc

    def _read_every_block(self) -> None:
        """Read every column of every table once, so a damaged or truncated file is refused in one sentence.

        DuckDB verifies a block's checksum when it reads it, and a checkpoint's write in place reads little
        of the file; without this read a damaged block would surface only in whichever query touches it.
        """
        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error:
            return  # not a DuckDB database at all: _upgrade and connect_read_only say so in one sentence
        with con:
            try:
                tables = con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() "
                    "WHERE database_name = current_database()"
                ).fetchall()
                for schema, table in tables:
                    con.execute(f'SELECT bit_xor(hash(COLUMNS(*))) FROM "{schema}"."{table}"').fetchall()
            except duckdb.Error as exc:
                raise damaged(self.path, exc) from exc

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file read-write, waiting up to ``BUSY_WAIT_S`` while other processes' readers hold it."""
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"{self.path} is busy: another process has held it open for {BUSY_WAIT_S:.0f} s "
                        f"({first_line(exc)}); close it, then run the precompute again (the results written "
                        "before are kept)"
                    ) from exc
                time.sleep(0.1)

    def completed(self, run: str) -> set[tuple[int, str]]:
        """(epoch, setting id) pairs already stored for ``run``: what a resumed job skips."""
        rows = query(self.path, "SELECT epoch, setting FROM evaluations WHERE run = ?", [run])
        return {(int(epoch), setting) for epoch, setting in rows.itertuples(index=False)}

    def stored_checkpoints(self, run: str) -> dict[int, tuple[str | None, str | None]]:
        """epoch -> (path, sha256) of the checkpoints stored for ``run``."""
        rows = query(self.path, "SELECT epoch, path, sha256 FROM checkpoints WHERE run = ?", [run])
        return {int(epoch): (path, sha256) for epoch, path, sha256 in rows.itertuples(index=False)}

    def write(self, result: CheckpointResult) -> None:
        """Write one checkpoint's rows (and its finished-eval markers) in one transaction, in place.

        Any failure raises ``StoreError`` in one sentence: one before or at the commit leaves the database
        as it was; one at the checkpoint after the commit says the rows are in the write-ahead log.
        """
        self._write(
            lambda con: _insert_result(con, result),
            lambda con: _check_markers(con, result),
            f"epoch {result.epoch} of {result.run}",
        )

    def write_intervals(self, run: str, epoch: int, intervals: dict[str, pd.DataFrame]) -> None:
        """Replace the stored intervals of one checkpoint's settings (setting id -> ``metric_intervals``
        rows without run, epoch, setting) in one transaction; the numbers they belong to stay as they are."""

        def change(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(INTERVALS.ddl())
            for setting, frame in intervals.items():
                key = [run, epoch, setting]
                con.execute(f"DELETE FROM {INTERVALS.name} WHERE run = ? AND epoch = ? AND setting = ?", key)
                _insert(con, INTERVALS.name, frame.assign(run=run, epoch=epoch, setting=setting))

        self._write(change, lambda con: None, f"the intervals of epoch {epoch} of {run}")

    def _write(
        self,
        change: Callable[[duckdb.DuckDBPyConnection], None],
        check: Callable[[duckdb.DuckDBPyConnection], None],
        what: str,
    ) -> None:
        """``_transaction`` of ``what`` (e.g. "epoch 3 of seed0"), its failures as one ``StoreError``
        sentence: before or at the commit the database is as it was; after it, the rows are in the log."""
        try:
            self._transaction(change, check)
        except _NotFolded as exc:
            raise StoreError(
                f"{what} is committed to the write-ahead log of {self.path} but could not be folded into "
                f"the file ({_reason(exc.cause)}); it is completed the next time the database is opened "
                "with space free"
            ) from exc.cause
        except (OSError, duckdb.Error) as exc:
            raise StoreError(
                f"could not write {what} to {self.path} ({_reason(exc)}); "
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
            self._transaction(
                lambda con: apply_migrations(con, version), lambda con: check_schema(con, self.path)
            )
        except _NotFolded as exc:
            raise StoreError(
                f"{self.path} is migrated from schema version {version} in its write-ahead log but the "
                f"migration could not be folded into the file ({_reason(exc.cause)}); it is completed the "
                f"next time the database is opened with space free, and the original is kept as {backup}"
            ) from exc.cause
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

    def _transaction(
        self,
        change: Callable[[duckdb.DuckDBPyConnection], None],
        check: Callable[[duckdb.DuckDBPyConnection], None],
    ) -> None:
        """Apply ``change`` and ``check`` in one transaction on the file itself, commit, checkpoint, close.

        The file is open read-write (locking readers out) only for this. A failure before or at the commit
        rolls the transaction back: the database keeps exactly its earlier rows. DuckDB commits into its
        write-ahead log and folds the log into the file at a checkpoint, which at close fails without an
        error; so the automatic checkpoint at commit is turned off (a commit never checkpoints), the
        checkpoint is explicit, and no log may be left after the close. A failure there raises
        ``_NotFolded``: the transaction is committed to the log, and DuckDB replays it at the next open.
        """
        con = self._connect()
        committed = False
        try:
            con.execute("SET checkpoint_threshold = '1000TB'")
            con.begin()
            change(con)
            check(con)  # in the transaction: a failed check rolls the change back
            con.commit()
            committed = True
            con.execute("CHECKPOINT")  # raises where the implicit checkpoint at close would not
        except (OSError, duckdb.Error) as exc:
            if committed:
                raise _NotFolded(exc) from exc
            raise
        finally:
            with contextlib.suppress(duckdb.Error):  # after a failed checkpoint: the log is checked below
                con.close()
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise _NotFolded(OSError(f"DuckDB left {wal.stat().st_size} bytes in its write-ahead log {wal}"))


def create_measurement_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every registered measurement's per-item table that the database lacks (a new measurement
    needs no migration)."""
    for table in (*all_tables(), INTERVALS):
        con.execute(table.ddl())


def _insert_result(con: duckdb.DuckDBPyConnection, result: CheckpointResult) -> None:
    """One checkpoint's rows, settings, shared tables and finished-eval markers, into ``con``'s transaction.

    Rows of a (run, epoch, setting) exist only with its marker (one transaction), and the planner skips
    marked work, so per-item rows are appended without a lookup; ``--force`` deletes them first.
    """
    now = datetime.now()
    create_measurement_tables(con)
    con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run) DO UPDATE SET "
        "source_path = coalesce(runs.source_path, excluded.source_path), "
        "n_params = coalesce(runs.n_params, excluded.n_params), "
        "params = coalesce(runs.params, excluded.params), "
        "pretrained_tag = coalesce(runs.pretrained_tag, excluded.pretrained_tag), "
        "training_data = coalesce(runs.training_data, excluded.training_data)",
        [
            result.run,
            str(uuid.uuid4()),
            result.model_spec,
            result.arch,
            result.source,
            now,
            result.source_path,
            result.n_params,
            json.dumps(result.params) if result.params else None,
            result.pretrained_tag,
            result.training_data,
        ],
    )
    con.execute(
        "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
        [result.run, result.epoch, result.path, result.sha256],
    )
    for setting, (eval_name, settings_json) in result.settings.items():
        con.execute(
            "INSERT INTO evaluation_settings VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [setting, eval_name, settings_json],
        )
    for table, frame in result.shared_tables.items():
        if table not in SHARED_TABLES:
            raise StoreError(f"unknown shared table {table!r}; expected one of {SHARED_TABLES}")
        _upsert(con, table, frame)
    for evaluation in result.evals:
        if evaluation.setting not in result.settings:
            raise StoreError(f"{evaluation.eval} of epoch {result.epoch} has no stored setting")
        key = [result.run, result.epoch, evaluation.setting]
        declared = {t.name for t in get_measurement(evaluation.eval).tables}
        unknown = set(evaluation.tables) - declared
        if unknown:
            raise StoreError(f"{evaluation.eval} wrote undeclared tables {sorted(unknown)}")
        stale = ["metrics", INTERVALS.name, *(sorted(declared) if result.replace else ())]
        for table in stale:
            con.execute(f"DELETE FROM {table} WHERE run = ? AND epoch = ? AND setting = ?", key)
        metrics = pd.DataFrame(evaluation.metrics, columns=["metric", "dataset", "variant", "value"])
        written = {"metrics": metrics, **evaluation.tables}
        if evaluation.intervals is not None:
            written[INTERVALS.name] = evaluation.intervals
        for table, frame in written.items():
            _insert(con, table, frame.assign(run=result.run, epoch=result.epoch, setting=evaluation.setting))
        con.execute(
            "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)",
            [*key[:2], evaluation.eval, evaluation.setting, evaluation.seconds, now, __version__],
        )


def _check_markers(con: duckdb.DuckDBPyConnection, result: CheckpointResult) -> None:
    """Raise unless the database holds the finished-eval markers of ``result``."""
    stored = con.execute(
        "SELECT list(setting) FROM evaluations WHERE run = ? AND epoch = ?", [result.run, result.epoch]
    ).fetchone()[0]
    missing = {e.eval for e in result.evals if e.setting not in set(stored or [])}
    if missing:
        raise OSError(f"the database lacks the rows of {', '.join(sorted(missing))} after the commit")


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words: the OS's error text or DuckDB's first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first_line(exc)
