"""The Ray backend on a local two-worker cluster on loopback: the same rows as the in-process backend, and a
corrupt checkpoint among good ones reported as in-process (issue 12)."""

from __future__ import annotations

import shutil

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
