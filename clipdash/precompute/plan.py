"""The planner: which (checkpoint, evaluations) pairs of a run remain, given what the store holds. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clipdash.models.checkpoints import CheckpointRef


@dataclass(frozen=True)
class WorkItem:
    """One checkpoint and the evaluations still to run on it (in the order asked for)."""

    ref: CheckpointRef
    evals: tuple[str, ...]


def plan_run(
    refs: Sequence[CheckpointRef], evals: Sequence[str], done: Iterable[tuple[int, str]]
) -> list[WorkItem]:
    """The work left for one run's ``refs``: each checkpoint with the ``evals`` not in ``done``
    ((epoch, eval) pairs already stored); checkpoints with nothing left are dropped, epoch order kept."""
    finished = set(done)
    items = [WorkItem(ref, tuple(e for e in evals if (ref.epoch, e) not in finished)) for ref in refs]
    return [item for item in items if item.evals]
