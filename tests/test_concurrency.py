"""A reader (the dashboard's access path) keeps working while a real precompute process writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import REPO, cli_args

from clipdash.store.queries import query


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
