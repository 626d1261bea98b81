"""The store under hostile conditions: a full disk, odd --db paths, damaged files, symlinks.

A full disk needs a small tmpfs, which needs root (CI has it); read-only folders are made with chmod when
not root, and with a read-only tmpfs when root (root ignores permission bits).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_store import _result

from clipdash.errors import StoreError
from clipdash.store import ResultWriter, connect_read_only
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
    result = _result(run, epoch, 0.5)
    result.evals[0].tables["entropies"] = pd.DataFrame(
        {"dataset": "cifar10", "tau": 0.07, "image_index": np.arange(n), "entropy": np.linspace(0, 1, n)}
    )
    return result


# (rows of the new checkpoint, bytes left free beyond one copy of the database): the copy itself does not
# fit; the commit's log does not fit; the commit fits in the log but DuckDB's checkpoint into the file does
# not (the case that used to be lost silently, with exit 0).
@pytest.mark.parametrize(
    ("rows", "spare"), [(10, -100_000), (5000, 60_000), (10, 60_000)], ids=["copy", "commit", "checkpoint"]
)
def test_a_full_disk_fails_loudly_and_keeps_the_previous_database(small_disk, rows, spare):
    db = small_disk / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    before = db.read_bytes()
    _fill(small_disk, db.stat().st_size + spare)
    with ResultWriter(db) as writer:
        with pytest.raises(StoreError, match="No space left on device") as raised:
            writer.write(_with_entropies("run-a", 1, rows))
    message = str(raised.value)
    assert "epoch 1 of run-a" in message and "still holds the results written before" in message
    assert db.read_bytes() == before
    assert query(db, "SELECT list(epoch) e FROM evaluations")["e"].item().tolist() == [0]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "results.duckdb", "results.duckdb.lock"]


def test_the_cli_exits_non_zero_on_a_full_disk(small_disk, tiny_run, shared_data, capsys):
    from conftest import cli_args

    from clipdash.precompute.cli import main

    db = small_disk / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    before = db.read_bytes()
    _fill(small_disk, db.stat().st_size + 60_000)
    assert main(cli_args(tiny_run, shared_data, db, "--evals", "zeroshot")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: could not write epoch 0 of tinyrun") and "No space left" in err[-1]
    assert db.read_bytes() == before


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
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(StoreError):
        query(db, "SELECT sum(entropy) FROM entropies")


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
