"""The Ray backend: each checkpoint is a Ray task; the driver (the CLI) plans, submits and is the only writer.

Results stream back as tasks finish and are written at once, so a killed driver loses at most the tasks in
flight, and rerunning resumes from the store as with the in-process backend (the same settings, the same
planner). A task asks for one GPU when the engine runs on CUDA, else ``threads`` CPUs, and sets torch's
intra-op threads to that allotment (oversubscribed spinning threads cost more than they bring). Decoded
images are shared on a node through the on-disk decoded cache (``--cache-dir``, node-local) and within a
worker process, which also keeps each architecture and its text encoder between tasks. A failed task is
retried by Ray up to ``max_retries`` times, and a task's results are written only once it returned, so
nothing is written twice.
Ray is optional (``requirements-ray.txt``): it is imported only when this backend is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from clipdash.errors import ClipdashError
from clipdash.precompute.config import EngineConfig
from clipdash.precompute.execute import FailedCheckpoint, Outcome, RunExecutor, SkippedEvaluation
from clipdash.precompute.inputs import RunInputs
from clipdash.precompute.plan import WorkItem
from clipdash.precompute.settings import Setting

# What a worker process keeps between its tasks: decoded inputs by input size, built architectures, and
# text encoders (a locked text tower's prompts are encoded once per worker, not once per task).
_WORKER_INPUTS: dict[int, RunInputs] = {}
_WORKER_MODELS: dict[tuple, object] = {}
_WORKER_TEXT: dict[str, object] = {}


def evaluate_in_worker(
    spec_text: str,
    items: Sequence[WorkItem],
    config: EngineConfig,
    settings: Mapping[str, Setting],
    replace: bool,
    model_configs: Sequence[Path],
    threads: int,
) -> list[Outcome]:
    """One task: the outcomes of ``items`` of one run, evaluated in a Ray worker process."""
    import torch

    from clipdash.models.configs import register_builtin_configs, register_model_config

    torch.set_num_threads(threads)
    register_builtin_configs()
    for path in model_configs:
        register_model_config(path)
    executor = RunExecutor(spec_text, config, settings, _WORKER_INPUTS, replace, _WORKER_MODELS, _WORKER_TEXT)
    return list(executor.run(items))


class RayBackend:
    """Runs each work item as a Ray task on a local cluster (``address`` None) or an existing one."""

    def __init__(
        self,
        address: str | None = None,
        threads: int = 1,
        model_configs: Sequence[Path] = (),
        max_retries: int = 3,
    ):
        try:
            import ray
        except ImportError as exc:
            raise ClipdashError(
                "--backend ray needs Ray: pip install -r requirements-ray.txt (or pip install 'ray[default]')"
            ) from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.threads = threads
        self.model_configs = tuple(Path(p) for p in model_configs)
        self.max_retries = max_retries

    def run(
        self,
        spec_text: str,
        items: Sequence[WorkItem],
        config: EngineConfig,
        settings: Mapping[str, Setting],
        replace: bool = False,
    ) -> Iterator[Outcome]:
        """Submit one task per checkpoint and yield each task's outcomes as soon as it finishes."""
        ray = self.ray
        gpus = 1 if config.torch_device.type == "cuda" else 0
        task = ray.remote(evaluate_in_worker).options(
            num_cpus=self.threads, num_gpus=gpus, max_retries=self.max_retries
        )
        pending = [
            task.remote(spec_text, [item], config, settings, replace, self.model_configs, self.threads)
            for item in items
        ]
        skipped: set[tuple[str, str]] = set()  # every task reports a run's unreadable data: say it once
        failed = 0
        bar = tqdm(total=len(pending), desc=f"{spec_text} (ray)", unit="ckpt")
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for outcome in ray.get(done[0]):
                    if isinstance(outcome, SkippedEvaluation):
                        if (outcome.run, outcome.eval) in skipped:
                            continue
                        skipped.add((outcome.run, outcome.eval))
                    failed += isinstance(outcome, FailedCheckpoint)
                    yield outcome
                bar.update(1)
                bar.set_postfix(queued_or_running=len(pending), failed=failed)
        finally:
            bar.close()
            for ref in pending:  # Ctrl-C or a failed write: stop what is still running
                ray.cancel(ref, force=True)

    def resources(self) -> str:
        """The cluster's resources in a few words, for the log."""
        total = self.ray.cluster_resources()
        return ", ".join(f"{total.get(k, 0):g} {k}" for k in ("CPU", "GPU") if k in total or k == "CPU")
