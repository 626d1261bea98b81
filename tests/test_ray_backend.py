"""The Ray backend on a local two-worker cluster on loopback: the same rows as the in-process backend, a
corrupt checkpoint among good ones reported as in-process, a killed worker retried, a locked text tower's
prompts encoded once per run, and a driver interrupted (Ctrl-C) or killed resumed from what it wrote
(issue 12)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, cli_args, write_run
from test_precompute import assert_same_rows, snapshot

from clipdash.precompute.cli import Job, build_parser, main
from clipdash.store import ResultWriter
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
    # the same workers serve a job with another --limit: its own inputs, not the first job's (a bug found)
    smaller = tmp_path / "limit-12.duckdb"
    assert (
        main(
            [
                *cli_args(tiny_run, shared_data, smaller, "--evals", "zeroshot", "--backend", "ray"),
                "--limit=12",
            ]
        )
        == 0
    )
    n_images = query(smaller, "SELECT DISTINCT value FROM metrics WHERE metric = 'n_images'")["value"]
    assert n_images.tolist() == [12]


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


LIT_ARCH = "clipdash-vit-t4-minilm"


def write_lit_run(run_dir: Path, epochs: int) -> Path:
    """A LiT-style run: the MiniLM text tower identical in every epoch, the rest perturbed."""
    import open_clip
    import torch

    from clipdash.models.configs import register_builtin_configs

    register_builtin_configs()
    run_dir.mkdir(parents=True)
    torch.manual_seed(0)
    model = open_clip.create_model(LIT_ARCH)
    for epoch in range(epochs):
        torch.save({"epoch": epoch, "state_dict": model.state_dict()}, run_dir / f"epoch_{epoch}.pt")
        with torch.no_grad():
            for param in [*model.visual.parameters(), *model.text.proj.parameters()]:
                param.add_(0.05 * torch.randn_like(param))
    return run_dir


def test_a_locked_text_towers_prompts_are_encoded_once_per_run_not_per_task(
    local_cluster, tmp_path, shared_data
):
    from clipdash.precompute.ray_backend import RayBackend

    run = write_lit_run(tmp_path / "litrun", epochs=2)
    common = ["--model", f"{LIT_ARCH}@{run}/", "--data-root", str(shared_data), "--evals", "zeroshot",
              "--zeroshot-datasets", "cifar10", "--templates", "photo", "--limit", "20"]  # fmt: skip
    common.append("--device=cpu")
    here, there = tmp_path / "in-process.duckdb", tmp_path / "ray.duckdb"
    assert main([*common, "--db", str(here)]) == 0
    args = build_parser().parse_args([*common, "--db", str(there), "--backend", "ray"])
    backend = RayBackend(threads=1)
    with ResultWriter(there) as writer:
        Job(args, backend).run(writer)
    # both tasks started together on two workers; CIFAR-10's ten prompts were encoded by one of them
    assert backend.prompts_computed[f"{LIT_ARCH}@{run}/"] == 10
    assert_same_rows(snapshot(there), snapshot(here))


def _run_until_first_checkpoint_then(sig: int, command: list[str], total: int) -> tuple[int, str]:
    """Run ``command`` in its own process group; once its progress bar shows a first written checkpoint
    (of ``total``), send ``sig`` to the whole group, as a terminal's Ctrl-C does. Its exit code and stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    seen: list[str] = []
    first = threading.Event()

    def read() -> None:
        for chunk in iter(lambda: child.stderr.read(64), ""):
            seen.append(chunk)
            if re.search(rf"\| [1-9]/{total} \[", "".join(seen)):
                first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(300), "".join(seen)[-2000:]
    os.killpg(child.pid, sig)
    code = child.wait(120)
    reader.join()
    return code, "".join(seen)


def _busy_ray_workers() -> list[int]:
    """Processes whose title says they run an evaluation task."""
    busy = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::evaluate_in_worker"):
                busy.append(int(pid))
        except OSError:
            continue
    return busy


@pytest.fixture(scope="module")
def long_run(tmp_path_factory, tiny_arch) -> Path:
    """Ten epochs of the tiny architecture: enough tasks that some are still queued at the first result."""
    return write_run(tmp_path_factory.mktemp("runs") / "longrun", tiny_arch, epochs=10)


EVALS = ("--evals", "zeroshot,tid2013,probe", "--backend", "ray")


def _stored_once(db: Path) -> list[int]:
    counts = query(db, "SELECT epoch, eval, count(*) n FROM evaluations GROUP BY ALL ORDER BY ALL")
    assert set(counts["n"]) == {1}
    return sorted(set(counts["epoch"]))


def test_ctrl_c_stops_the_tasks_keeps_what_was_written_and_the_same_command_resumes(
    tmp_path, long_run, shared_data
):
    db = tmp_path / "results.duckdb"
    command = [sys.executable, "-m", "clipdash.precompute", *cli_args(long_run, shared_data, db, *EVALS)]
    code, stderr = _run_until_first_checkpoint_then(signal.SIGINT, command, total=10)
    assert code == 130, stderr[-3000:]
    assert "interrupted:" in stderr and "run the same command to resume" in stderr
    deadline = time.monotonic() + 30
    while _busy_ray_workers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _busy_ray_workers(), "a task kept running after Ctrl-C"
    written = _stored_once(db)
    assert 1 <= len(written) < 10
    assert main(cli_args(long_run, shared_data, db, *EVALS)) == 0
    assert _stored_once(db) == list(range(10))


def test_a_killed_driver_loses_only_tasks_in_flight_and_a_rerun_completes_the_same_rows(
    tmp_path, long_run, shared_data
):
    db, clean = tmp_path / "killed.duckdb", tmp_path / "in-process.duckdb"
    command = [sys.executable, "-m", "clipdash.precompute", *cli_args(long_run, shared_data, db, *EVALS)]
    code, stderr = _run_until_first_checkpoint_then(signal.SIGKILL, command, total=10)
    assert code == -signal.SIGKILL
    assert 1 <= len(_stored_once(db)) < 10
    assert main(cli_args(long_run, shared_data, db, *EVALS)) == 0
    assert main(cli_args(long_run, shared_data, clean, "--evals", "zeroshot,tid2013,probe")) == 0
    assert_same_rows(snapshot(db), snapshot(clean))
