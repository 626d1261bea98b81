"""In-process vs Ray with 1 and 2 workers on the same checkpoints (run by hand, never in the tests).

    python benchmarks/scaling.py --run runs/cifar10-vit-t4-minilm --checkpoints 6 --evals zeroshot

Evaluates the first ``--checkpoints`` epochs of a run folder three times into fresh databases, after one
untimed pass that fills the decoded-image cache: in this process with one torch thread, on a local Ray
cluster on loopback with one worker (1 CPU), and with two workers (1 CPU each). Prints the wall times,
Ray's overhead (1 worker / in-process; goal <= 1.10) and the scaling efficiency of two workers
(1-worker time / (2 x 2-worker time); goal >= 0.85).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import ray
import torch

from clipdash.models.configs import register_builtin_configs
from clipdash.precompute.backend import InProcessBackend
from clipdash.precompute.cli import Job, build_parser
from clipdash.precompute.ray_backend import RayBackend
from clipdash.store import ResultWriter


def timed_job(argv: list[str], backend) -> float:
    """Seconds to evaluate ``argv``'s checkpoints into its (fresh) database with ``backend``."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    job = Job(args, backend)
    with ResultWriter(args.db) as writer:
        job.run(writer)
    if job.failures:
        raise SystemExit(f"failures: {job.failures}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/cifar10-vit-t4-minilm"))
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--evals", default="zeroshot")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    register_builtin_configs()
    work = Path(tempfile.mkdtemp(prefix="clipdash-scaling-"))
    run = work / args.run.name
    run.mkdir()
    for epoch in range(args.checkpoints):
        shutil.copy(args.run / f"epoch_{epoch}.pt", run / f"epoch_{epoch}.pt")
    shutil.copy(args.run / "params.txt", run / "params.txt")

    def argv(name: str) -> list[str]:
        db = work / f"{name}.duckdb"
        return ["--model", f"@{run}/", "--data-root", str(args.data_root), "--db", str(db),
                "--device", "cpu", "--evals", args.evals, "--threads", "1"]  # fmt: skip

    torch.set_num_threads(1)
    timed_job(argv("warm-up"), InProcessBackend())  # fills the decoded cache; not timed
    seconds = {"in-process, 1 thread": timed_job(argv("in-process"), InProcessBackend())}
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        seconds[f"ray, {workers} worker(s)"] = timed_job(argv(f"ray-{workers}"), RayBackend(threads=1))
        ray.shutdown()
    for name, value in seconds.items():
        print(f"{name}: {value:.1f} s ({args.checkpoints} checkpoints, --evals {args.evals})")
    one, two = seconds["ray, 1 worker(s)"], seconds["ray, 2 worker(s)"]
    print(f"Ray overhead (1 worker / in-process): {one / seconds['in-process, 1 thread']:.2f}")
    print(f"scaling efficiency (1 worker / (2 x 2 workers)): {one / (2 * two):.2f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
