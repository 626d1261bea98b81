"""In-process vs Ray with 1 and 2 workers on the same checkpoints (run by hand, never in the tests).

    python benchmarks/scaling.py --run runs/cifar10-vit-t4-minilm --checkpoints 6 --evals zeroshot
    python benchmarks/scaling.py --random-arch ViT-B-32 --checkpoints 10 --device cuda   # a GPU machine

Evaluates the first ``--checkpoints`` epochs of a run folder (or of ``--random-arch``: that many random
checkpoints of an open_clip architecture, written first) three times into fresh databases, after one
untimed pass that fills the decoded-image cache: in this process, on a local Ray cluster on loopback with
one worker, and with all workers (2 CPUs on the CPU, 1 task per CPU; every GPU with --device cuda, 1 task
per GPU). Prints the wall times, Ray's overhead (1 worker / in-process; goal <= 1.10) and the scaling
efficiency (1-worker time / (W x W-worker time); goal >= 0.85).
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
    parser.add_argument("--random-arch", default=None, help="write random checkpoints of this open_clip arch")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    register_builtin_configs()
    work = Path(tempfile.mkdtemp(prefix="clipdash-scaling-"))
    if args.random_arch:
        run, spec = (
            write_random_run(work / "random-run", args.random_arch, args.checkpoints),
            args.random_arch,
        )
    else:
        run, spec = work / args.run.name, ""
        run.mkdir()
        for epoch in range(args.checkpoints):
            shutil.copy(args.run / f"epoch_{epoch}.pt", run / f"epoch_{epoch}.pt")
        shutil.copy(args.run / "params.txt", run / "params.txt")

    def argv(name: str) -> list[str]:
        db = work / f"{name}.duckdb"
        return ["--model", f"{spec}@{run}/", "--data-root", str(args.data_root), "--db", str(db),
                "--device", args.device, "--evals", args.evals, "--threads", "1"]  # fmt: skip

    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    most = gpus or 2
    torch.set_num_threads(1)
    timed_job(argv("warm-up"), InProcessBackend())  # fills the decoded cache; not timed
    seconds = {"in-process": timed_job(argv("in-process"), InProcessBackend())}
    for workers in (1, most):
        cpus, gpu_count = (workers, 0) if not gpus else (workers * 4, workers)
        ray.init(num_cpus=cpus, num_gpus=gpu_count, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")  # fmt: skip
        seconds[f"ray, {workers} worker(s)"] = timed_job(argv(f"ray-{workers}"), RayBackend(threads=1))
        ray.shutdown()
    for name, value in seconds.items():
        print(f"{name}: {value:.1f} s ({args.checkpoints} checkpoints, --evals {args.evals}, {args.device})")
    one, many = seconds["ray, 1 worker(s)"], seconds[f"ray, {most} worker(s)"]
    print(f"Ray overhead (1 worker / in-process): {one / seconds['in-process']:.2f}")
    print(f"scaling efficiency (1 worker / ({most} x {most} workers)): {one / (most * many):.2f}")
    shutil.rmtree(work)


def write_random_run(folder: Path, arch: str, checkpoints: int) -> Path:
    """``checkpoints`` random open_clip checkpoints of ``arch`` (a real-size model without weights)."""
    import open_clip

    folder.mkdir()
    model = open_clip.create_model(arch)
    for epoch in range(checkpoints):
        torch.save({"epoch": epoch, "state_dict": model.state_dict()}, folder / f"epoch_{epoch}.pt")
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.01 * torch.randn_like(param))
    return folder


if __name__ == "__main__":
    main()
