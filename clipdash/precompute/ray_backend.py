"""The Ray backend: each checkpoint is a Ray task; the driver (the CLI) plans, submits and is the only writer.

Results stream back as tasks finish and are written at once, so a killed driver loses at most the tasks in
flight, and rerunning resumes from the store as with the in-process backend (the same settings, the same
planner). Ctrl-C cancels the tasks still queued or running (``ray.cancel(force=True)``) and keeps what was
written. A task asks for one GPU when the engine runs on CUDA, else ``threads`` CPUs, and sets torch's
intra-op threads to that allotment (oversubscribed spinning threads cost more than they bring). Decoded
images are shared on a node through the on-disk decoded cache (``--cache-dir``, node-local) and within a
worker process, which also keeps each architecture between tasks; a locked text tower's prompts are
encoded once per run, by whichever task asks first, through the run's ``RunCoordinator`` actor. A failed
task is retried by Ray up to ``max_retries`` times, and a task's results are written only once it
returned, so nothing is written twice.
Ray is optional (``requirements-ray.txt``): it is imported only when this backend is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from clipdash.errors import ClipdashError
from clipdash.precompute.config import EngineConfig
from clipdash.precompute.execute import (
    FailedCheckpoint,
    Outcome,
    RunExecutor,
    SkippedEvaluation,
    inputs_key,
)
from clipdash.precompute.inputs import RunInputs
from clipdash.precompute.plan import WorkItem
from clipdash.precompute.ray_coordinator import RunCoordinator, SharedPooledOnRay
from clipdash.precompute.settings import Setting

# What a worker process keeps between its tasks: decoded inputs by input size, built architectures, and
# text encoders (with the pooled prompt outputs it has seen; the rest come from the run's coordinator).
_WORKER_INPUTS: dict[tuple, dict[int, RunInputs]] = {}  # by inputs_key, then input size
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
    coordinator,
    index: int,
) -> list[Outcome]:
    """Task ``index``: the outcomes of ``items`` of one run, evaluated in a Ray worker process."""
    import torch

    from clipdash.models.configs import register_builtin_configs, register_model_config

    coordinator.task_started.remote(index)
    torch.set_num_threads(threads)
    register_builtin_configs()
    for path in model_configs:
        register_model_config(path)
    executor = RunExecutor(
        spec_text,
        config,
        settings,
        _WORKER_INPUTS.setdefault(inputs_key(config), {}),
        replace,
        _WORKER_MODELS,
        _WORKER_TEXT,
        shared_text=SharedPooledOnRay(coordinator),
    )
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
        self.prompts_computed: dict[str, int] = {}  # run spec -> pooled prompt rows its tasks computed

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
        coordinator = ray.remote(RunCoordinator).options(num_cpus=0).remote()
        index_of = {
            task.remote(
                spec_text, [item], config, settings, replace, self.model_configs, self.threads, coordinator, i
            ): i
            for i, item in enumerate(items)
        }
        pending, finished = list(index_of), set()
        skipped: set[tuple[str, str]] = set()  # every task reports a run's unreadable data: say it once
        failed = 0
        bar = tqdm(total=len(pending), desc=f"{spec_text} (ray: {self.resources()})", unit="ckpt")
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in done:
                    for outcome in self._outcomes(ref, items[index_of[ref]]):
                        if isinstance(outcome, SkippedEvaluation):
                            if (outcome.run, outcome.eval) in skipped:
                                continue
                            skipped.add((outcome.run, outcome.eval))
                        failed += isinstance(outcome, FailedCheckpoint)
                        yield outcome
                    finished.add(index_of[ref])
                    bar.update(1)
                running = len(ray.get(coordinator.started_tasks.remote()) - finished)
                bar.set_postfix(running=running, queued=len(pending) - running, failed=failed)
            self.prompts_computed[spec_text] = ray.get(coordinator.prompts_computed.remote())
        finally:
            bar.close()
            for ref in pending:  # Ctrl-C or a failed write: stop what is still queued or running
                ray.cancel(ref, force=True)
            ray.kill(coordinator)

    def _outcomes(self, ref, item: WorkItem) -> list[Outcome]:
        """A finished task's outcomes; a task that failed on every try is one failed checkpoint."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            reason = f"its Ray task failed ({type(exc).__name__}): {str(exc).splitlines()[0]}"
            return [FailedCheckpoint(item.ref.run, item.ref.epoch, reason)]

    def resources(self) -> str:
        """The cluster's resources in a few words, for the log and the progress bar."""
        total = self.ray.cluster_resources()
        return ", ".join(f"{total.get(k, 0):g} {k}" for k in ("CPU", "GPU") if k in total or k == "CPU")
