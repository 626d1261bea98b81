"""A reader (the dashboard's access path) keeps working while a real precompute process writes.

The writer writes each checkpoint into the file itself, holding it read-write (which locks other processes
out) only for that transaction: a reader waits a moment and sees the old or the new rows, and a write waits
for readers in other processes to let go.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, cli_args
from test_store import _result

import clipdash.store.writer as store_writer
from clipdash.errors import StoreError
from clipdash.store import ResultWriter
from clipdash.store.queries import query

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def test_reader_sees_only_complete_checkpoints_while_a_job_writes(tmp_path, tiny_run, shared_data):
    db = tmp_path / "live.duckdb"
    command = [
        sys.executable,
        "-m",
        "clipdash.precompute",
        *cli_args(tiny_run, shared_data, db, "--evals", "zeroshot,tid2013,livec"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[int] = []
    reads = 0
    deadline = time.time() + 300
    try:
        while writer.poll() is None and time.time() < deadline:
            if db.exists():
                per_epoch = query(db, "SELECT epoch, count(*) n FROM evaluations GROUP BY epoch")
                reads += 1
                assert (per_epoch["n"] == 3).all(), per_epoch  # never a half-written checkpoint
                done = len(per_epoch)
                assert not seen or done >= seen[-1]  # results only ever grow
                seen.append(done)
            time.sleep(0.05)
    finally:
        if writer.poll() is None:
            writer.kill()
        stderr = writer.communicate(timeout=60)[1].decode()
    assert writer.returncode == 0, stderr[-2000:]
    assert reads > 5 and len(set(seen)) >= 2  # the reader really overlapped the writes
    assert query(db, "SELECT count(DISTINCT epoch) n FROM evaluations")["n"].item() == 3


_WRITE_CHECKPOINTS = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_store_failures import _with_entropies
from clipdash.store import ResultWriter
with ResultWriter(sys.argv[1]) as writer:
    for epoch in range(1, 13):
        writer.write(_with_entropies("run-a", epoch, 50_000))
        time.sleep(0.2)  # a job evaluates the next checkpoint between writes
"""


def test_a_reader_in_another_process_sees_the_old_or_the_new_rows_and_no_error(tmp_path):
    from test_store_failures import _with_entropies

    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as first:
        first.write(_with_entropies("run-a", 0, 50_000))
    command = [sys.executable, "-c", _WRITE_CHECKPOINTS, str(db), str(REPO / "tests")]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[int] = []
    try:
        while process.poll() is None:
            rows = query(db, "SELECT epoch, count(*) n FROM entropies GROUP BY epoch")  # raises on any error
            assert (rows["n"] == 50_000).all(), rows  # a checkpoint is there whole or not at all
            assert not seen or len(rows) >= seen[-1]
            seen.append(len(rows))
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.communicate(timeout=60)[1].decode()
    assert process.returncode == 0, stderr[-2000:]
    assert len(seen) > 5 and len(set(seen)) >= 3, seen  # the reads really overlapped the writes
    assert query(db, "SELECT count(DISTINCT epoch) n FROM entropies")["n"].item() == 13


_HOLD_OPEN = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_open(db, seconds: float) -> subprocess.Popen:
    """Another process with ``db`` open read-only for ``seconds`` (once this returns)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_OPEN, str(db), str(seconds)], env=ENV, stdout=subprocess.PIPE
    )
    assert holder.stdout.readline() == b"open\n"
    return holder


def test_a_write_waits_for_a_reader_in_another_process(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as results:
        results.write(_result("run-a", 0, 0.1))
        holder = _hold_open(db, 1.0)
        start = time.monotonic()
        results.write(_result("run-a", 1, 0.2))
        waited = time.monotonic() - start
        holder.wait(timeout=60)
    assert waited > 0.5
    assert query(db, "SELECT list(epoch ORDER BY epoch) e FROM evaluations")["e"].item().tolist() == [0, 1]


def test_a_database_held_open_past_the_wait_is_busy_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(store_writer, "BUSY_WAIT_S", 1.0)
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as results:
        results.write(_result("run-a", 0, 0.1))
        holder = _hold_open(db, 60)
        try:
            with pytest.raises(StoreError, match=f"{db} is busy: another process has held it open for 1 s"):
                results.write(_result("run-a", 1, 0.2))
        finally:
            holder.kill()
            holder.wait(timeout=60)
    assert query(db, "SELECT list(epoch) e FROM evaluations")["e"].item().tolist() == [0]
