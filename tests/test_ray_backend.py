"""The Ray backend on a local two-worker cluster on loopback: the same rows as the in-process backend, and a
corrupt checkpoint among good ones reported as in-process (issue 12)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import cli_args
from test_precompute import assert_same_rows, snapshot

from clipdash.precompute.cli import main
from clipdash.store.queries import query

ray = pytest.importorskip("ray", reason="the Ray backend needs Ray: pip install -r requirements-ray.txt")


@pytest.fixture(scope="module")
def local_cluster():
    """Two CPUs on this machine, every address on loopback; torn down after the module."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}},
    )
    yield
    ray.shutdown()


def test_a_local_cluster_stores_the_same_rows_as_the_in_process_backend(
    local_cluster, tmp_path, tiny_run, shared_data
):
    here, there = tmp_path / "in-process.duckdb", tmp_path / "ray.duckdb"
    assert main(cli_args(tiny_run, shared_data, here)) == 0
    assert main(cli_args(tiny_run, shared_data, there, "--backend", "ray")) == 0
    assert_same_rows(snapshot(there), snapshot(here))
    assert main(cli_args(tiny_run, shared_data, there, "--backend", "ray")) == 0  # resumes: nothing to do
    assert query(there, "SELECT count(*) n FROM evaluations")["n"].item() == len(
        query(here, "SELECT * FROM evaluations")
    )


def test_a_corrupt_checkpoint_is_reported_and_the_others_are_stored(
    local_cluster, tmp_path, tiny_run, shared_data, capsys
):
    run = tmp_path / "tinyrun"
    shutil.copytree(tiny_run, run)
    damaged = run / "epoch_1.pt"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    db = tmp_path / "results.duckdb"
    assert main(cli_args(run, shared_data, db, "--evals", "zeroshot,tid2013", "--backend", "ray")) == 1
    assert "tinyrun epoch 1" in capsys.readouterr().err
    stored = query(db, "SELECT DISTINCT epoch FROM evaluations ORDER BY epoch")["epoch"].tolist()
    assert stored == [0, 2]  # the tiny test architecture reached the workers through --model-config


def _kill_the_first_busy_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker process found running a task (its title names the task), once."""
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::evaluate_in_worker"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.02)


def test_a_worker_killed_while_it_holds_a_task_loses_nothing_and_writes_nothing_twice(
    local_cluster, tmp_path, tiny_run, shared_data
):
    db = tmp_path / "results.duckdb"
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_the_first_busy_worker, args=(killed, stop))
    killer.start()
    try:
        assert (
            main(cli_args(tiny_run, shared_data, db, "--evals", "zeroshot,tid2013", "--backend", "ray")) == 0
        )
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was caught running a task"
    counts = query(db, "SELECT epoch, eval, count(*) n FROM evaluations GROUP BY ALL ORDER BY ALL")
    assert counts["epoch"].tolist() == [0, 0, 1, 1, 2, 2] and set(counts["n"]) == {1}
    per_item = query(db, "SELECT epoch, count(*) n FROM tid2013_pairs GROUP BY epoch ORDER BY epoch")
    assert per_item["n"].tolist() == [7, 7, 7]  # each checkpoint's pairs once, not once per attempt
