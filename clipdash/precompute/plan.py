"""The planner: which (checkpoint, measurements) pairs of a run remain, given what the store holds. Pure.

Work is done when the store has the checkpoint's results under the same setting id (the measurement's
parameters, precision, device, decoder, limit, data fingerprint, revision): a rerun with other settings
plans work beside the stored results; ``force`` plans everything again (the writer replaces the rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from clipdash.models.checkpoints import CheckpointRef


@dataclass(frozen=True)
class WorkItem:
    """One checkpoint and the measurements still to run on it (in the order asked for)."""

    ref: CheckpointRef
    evals: tuple[str, ...]


def plan_run(
    refs: Sequence[CheckpointRef],
    settings: Mapping[str, str],
    done: Iterable[tuple[int, str]],
    force: bool = False,
) -> list[WorkItem]:
    """The work left for one run's ``refs``: each checkpoint with the measurements of ``settings``
    (eval name -> setting id, in the order asked for) whose (epoch, setting id) is not in ``done``;
    checkpoints with nothing left are dropped, epoch order kept."""
    finished = set() if force else set(done)
    items = [
        WorkItem(ref, tuple(e for e, setting in settings.items() if (ref.epoch, setting) not in finished))
        for ref in refs
    ]
    return [item for item in items if item.evals]
