"""The store under hostile conditions: a full disk, odd --db paths, damaged files, symlinks.

A full disk needs a small tmpfs, which needs root (CI has it); read-only folders are made with chmod when
not root, and with a read-only tmpfs when root (root ignores permission bits).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_store import _result

from clipdash.errors import StoreError
from clipdash.store import SCHEMA_VERSION, ResultWriter, connect_read_only
from clipdash.store.queries import query, table_counts


def _mount_tmpfs(target: Path, *options: str) -> None:
    """Mount a tmpfs at ``target`` or skip the test, saying why."""
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    command = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A 16,400 KiB tmpfs (the size the adversarial pass used), unmounted afterwards."""
    mount = tmp_path / "full"
    _mount_tmpfs(mount, "size=16400k")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def _fill(folder: Path, leave: int) -> None:
    """Fill ``folder``'s file system until ``leave`` bytes remain free."""
    with (folder / "filler").open("wb") as f:
        f.write(b"\0" * max(0, _free_bytes(folder) - leave))


def _with_entropies(run: str, epoch: int, n: int):
    result = _result(run, epoch, 0.5, ("class_agnostic",))
    result.evals[0].tables["entropies"] = pd.DataFrame(
        {"dataset": "cifar10", "tau": 0.07, "image_index": np.arange(n), "entropy": np.linspace(0, 1, n)}
    )
    return result


def _epochs(db: Path) -> list[int]:
    return query(db, "SELECT list(epoch ORDER BY epoch) e FROM evaluations")["e"].item().tolist()


# (rows of the new checkpoint, bytes left free, what DuckDB could not write): it writes a large checkpoint's
# row groups straight into the file before the commit, and they do not fit; a small checkpoint's commit does
# not fit in the write-ahead log.
@pytest.mark.parametrize(
    ("rows", "free", "failed"),
    [
        (300_000, 2_000_000, r'\(IO Error: Could not write file ".*/results\.duckdb": '),
        (5000, 60_000, r'Failed to commit: Could not write file ".*/results\.duckdb\.wal": '),
    ],
    ids=["insert", "commit"],
)
def test_a_full_disk_before_the_commit_keeps_exactly_the_earlier_rows(small_disk, rows, free, failed):
    db = small_disk / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    _fill(small_disk, free)
    with ResultWriter(db) as writer:
        with pytest.raises(StoreError, match="No space left on device") as raised:
            writer.write(_with_entropies("run-a", 1, rows))
    message = str(raised.value)
    assert message.startswith(f"could not write epoch 1 of run-a to {db} (")
    assert message.endswith("; it still holds the results written before") and re.search(failed, message)
    assert _epochs(db) == [0]  # DuckDB rolled the transaction back
    wal = small_disk / "results.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0  # a failed commit leaves at most an empty log
    (small_disk / "filler").unlink()
    with ResultWriter(db) as writer:  # with space again, the next job writes where this one stopped
        writer.write(_with_entropies("run-a", 1, rows))
    assert _epochs(db) == [0, 1]
    assert sorted(p.name for p in small_disk.iterdir()) == ["results.duckdb", "results.duckdb.lock"]


def test_a_full_disk_at_the_checkpoint_says_the_rows_are_committed_and_the_next_open_has_them(small_disk):
    """The commit fits in the write-ahead log but the checkpoint that folds it into the file does not (at
    close DuckDB would fail without an error: the case that used to be lost with exit 0)."""
    db = small_disk / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    _fill(small_disk, 60_000)
    with ResultWriter(db) as writer:
        with pytest.raises(StoreError) as raised:
            writer.write(_with_entropies("run-a", 1, 10))
    assert re.fullmatch(
        rf"epoch 1 of run-a is committed to the write-ahead log of {re.escape(str(db))} but could not be "
        r"folded into the file \(.*No space left on device.*\); it is completed the next time the database "
        "is opened with space free",
        str(raised.value),
    ), raised.value
    assert (small_disk / "results.duckdb.wal").stat().st_size > 0
    assert _epochs(db) == [0, 1]  # a reader replays the log in memory (a read-only open writes nothing)
    (small_disk / "filler").unlink()
    with duckdb.connect(str(db)) as con:  # the next open with space free folds the log into the file
        assert con.execute("SELECT count(*) FROM entropies WHERE epoch = 1").fetchone()[0] == 10
    assert not (small_disk / "results.duckdb.wal").exists()
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 2, 0.3))
    assert _epochs(db) == [0, 1, 2]


def test_a_migration_whose_checkpoint_fails_keeps_the_backup_and_says_it_is_committed(small_disk):
    from test_store_migrate import version_1_database

    db = version_1_database(small_disk / "results.duckdb")
    _fill(small_disk, db.stat().st_size + 60_000)  # room for the backup and the log, not the checkpoint
    with pytest.raises(StoreError, match="is migrated from schema version 1 in its write-ahead log") as err:
        ResultWriter(db).__enter__()
    backup = small_disk / "results.duckdb.v1.bak"
    assert f"the original is kept as {backup}" in str(err.value) and backup.is_file()
    (small_disk / "filler").unlink()
    with ResultWriter(db) as writer:  # the log is folded in at this open: nothing left to migrate
        assert writer.migrated_from is None
    assert query(db, "SELECT version FROM schema_version")["version"].item() == SCHEMA_VERSION


def test_the_cli_exits_non_zero_on_a_full_disk(small_disk, tiny_run, shared_data, capsys):
    from conftest import cli_args

    from clipdash.precompute.cli import main

    db = small_disk / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    before = query(db, "SELECT * FROM metrics ORDER BY ALL")
    _fill(small_disk, 0)  # the commit does not fit
    assert main(cli_args(tiny_run, shared_data, db, "--evals", "zeroshot")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: could not write epoch 0 of tinyrun") and "No space left" in err[-1]
    # In place, a failed write may leave unused blocks in the file, never rows: the earlier rows, only them
    pd.testing.assert_frame_equal(query(db, "SELECT * FROM metrics ORDER BY ALL"), before)
    assert query(db, "SELECT count(*) n FROM evaluations")["n"].item() == 1


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_text("run,epoch\nx,1\n"), "is not a DuckDB database"),
        (lambda p: p.write_bytes(b""), "is not a DuckDB database"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: duckdb.connect(str(p)).close(), "not a clipdash results database"),
    ],
    ids=["text", "empty", "folder", "foreign"],
)
def test_a_db_path_that_is_not_a_results_database_is_refused(tmp_path, make, expected):
    db = tmp_path / "results.duckdb"
    make(db)
    with pytest.raises(StoreError, match=expected):
        ResultWriter(db).__enter__()
    with pytest.raises(StoreError, match=expected):
        connect_read_only(db)


def _schema_version_only(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        con.execute("INSERT INTO schema_version VALUES (1)")


def test_a_database_with_only_a_schema_version_table_is_refused(tmp_path):
    db = tmp_path / "results.duckdb"
    _schema_version_only(db)
    for open_it in (lambda: ResultWriter(db).__enter__(), lambda: connect_read_only(db)):
        with pytest.raises(StoreError, match="is missing the tables checkpoints, class_agnostic_features"):
            open_it()


def _damaged_copy(tmp_path: Path) -> Path:
    """A results database whose data blocks are overwritten (its header intact)."""
    db = tmp_path / "damaged.duckdb"
    with ResultWriter(db) as writer:
        for epoch in range(3):
            writer.write(_with_entropies("run-a", epoch, 20_000))
    with db.open("r+b") as f:
        f.seek(64 * 1024)
        f.write(np.random.default_rng(0).integers(0, 256, db.stat().st_size - 64 * 1024, np.uint8).tobytes())
    return db


def test_queries_on_damaged_data_blocks_raise_one_store_error(tmp_path):
    db = _damaged_copy(tmp_path)
    raised = []
    for read in (lambda: table_counts(db), lambda: query(db, "SELECT * FROM entropies")):
        try:
            read()
        except StoreError as exc:  # anything else fails the test
            raised.append(str(exc))
    assert raised and all("is damaged" in message for message in raised), raised


def test_truncated_database_is_a_store_error(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_with_entropies("run-a", 0, 50_000))
    os.truncate(db, db.stat().st_size // 4)  # (the last half holds blocks this query does not read)
    with pytest.raises(StoreError, match="is damaged"):
        query(db, "SELECT sum(entropy) FROM entropies")


def test_a_damaged_data_block_is_refused_when_a_job_starts_before_anything_is_written(tmp_path):
    """A checkpoint's write in place reads little of the file, so the job reads every block once first."""
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        for epoch in range(3):
            writer.write(_with_entropies("run-a", epoch, 50_000))
    with duckdb.connect(str(db), read_only=True) as con:
        block = con.execute(
            "SELECT max(block_id) FROM pragma_storage_info('entropies') WHERE column_name = 'entropy'"
        ).fetchone()[0]
    with db.open("r+b") as f:
        f.seek(3 * 4096 + block * 256 * 1024 + 1000)  # past the file's three header blocks
        f.write(b"\xff" * 64)
    before = db.read_bytes()
    connect_read_only(db).close()  # the header and the catalog are intact
    with pytest.raises(StoreError, match=f"{re.escape(str(db))} is damaged and cannot be read .*checksum"):
        ResultWriter(db).__enter__()
    assert db.read_bytes() == before


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write to: chmod 555, or (as root) a read-only tmpfs."""
    folder = tmp_path / "ro"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    _mount_tmpfs(folder, "size=1m", "ro")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_database_in_a_read_only_folder_is_one_sentence(read_only_folder):
    with pytest.raises(StoreError, match=f"cannot write in {read_only_folder}"):
        ResultWriter(read_only_folder / "results.duckdb").__enter__()


def test_an_existing_database_on_a_read_only_file_system_is_one_sentence(tmp_path):
    mount = tmp_path / "ro"
    _mount_tmpfs(mount, "size=4m")
    try:
        db = mount / "results.duckdb"
        with ResultWriter(db) as writer:
            writer.write(_result("run-a", 0, 0.1))
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(StoreError, match=f"cannot write in {mount} \\(Read-only file system\\)"):
            ResultWriter(db).__enter__()
        assert _epochs(db) == [0]  # and the dashboard still reads it
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("denied", ["file", "folder"])
def test_a_database_that_cannot_be_written_in_place_is_one_sentence(tmp_path, monkeypatch, denied):
    """A read-only file, or a folder where DuckDB cannot make its write-ahead log (``os.access`` is patched:
    root, which runs these tests, may write whatever the permission bits say)."""
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    before = db.read_bytes()
    target = db if denied == "file" else tmp_path

    def access(path, mode, real=os.access):
        return False if mode == os.W_OK and Path(path) == target else real(path, mode)

    monkeypatch.setattr(os, "access", access)
    expected = f"cannot write {db} (" if denied == "file" else f"cannot write in {tmp_path} ("
    with pytest.raises(StoreError, match=re.escape(expected + "permission denied); ")):
        ResultWriter(db).__enter__()
    assert db.read_bytes() == before


def test_a_symlinked_db_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "store" / "real.duckdb"
    target.parent.mkdir()
    with ResultWriter(target) as writer:
        writer.write(_result("run-a", 0, 0.1))
    link = tmp_path / "link.duckdb"
    link.symlink_to(target)
    with ResultWriter(link) as writer:
        writer.write(_result("run-a", 1, 0.2))
        with pytest.raises(StoreError, match="another precompute job"):
            ResultWriter(target).__enter__()  # one lock, whichever name is used
    assert link.is_symlink()
    assert query(target, "SELECT list_sort(list(epoch)) e FROM evaluations")["e"].item().tolist() == [0, 1]


def test_a_dangling_symlink_creates_the_database_at_its_target(tmp_path):
    link = tmp_path / "link.duckdb"
    link.symlink_to(tmp_path / "elsewhere.duckdb")
    with ResultWriter(link) as writer:
        writer.write(_result("run-a", 0, 0.1))
    assert link.is_symlink() and (tmp_path / "elsewhere.duckdb").is_file()


def test_a_new_database_on_a_full_disk_is_one_sentence_and_leaves_nothing(small_disk):
    _fill(small_disk, 4096)
    with pytest.raises(StoreError, match=r"could not create .*results.duckdb \(.*No space left on device"):
        ResultWriter(small_disk / "results.duckdb").__enter__()
    assert sorted(p.name for p in small_disk.iterdir()) in (["filler"], ["filler", "results.duckdb.lock"])


def test_a_device_as_db_is_refused_without_a_lock_file_beside_it(tmp_path):
    link = tmp_path / "null.duckdb"
    link.symlink_to("/dev/null")
    with pytest.raises(StoreError, match="/dev/null is not a regular file"):
        ResultWriter(link).__enter__()
    assert not Path("/dev/null.lock").exists()
