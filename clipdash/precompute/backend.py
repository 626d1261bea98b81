"""Backends run the executor: today in this process; the Ray backend of the next issue plugs in here.

A backend takes one run's spec string, its work items, the ``EngineConfig`` and the settings its results are
stored under (all picklable) and yields
outcomes as they are ready; the caller (the CLI) writes each result, so a killed job loses at most the
checkpoints in flight.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from clipdash.precompute.config import EngineConfig
from clipdash.precompute.execute import Outcome, RunExecutor
from clipdash.precompute.inputs import RunInputs
from clipdash.precompute.plan import WorkItem
from clipdash.precompute.settings import Setting


class Backend(Protocol):
    def run(
        self,
        spec_text: str,
        items: Sequence[WorkItem],
        config: EngineConfig,
        settings: Mapping[str, Setting],
        replace: bool = False,
    ) -> Iterator[Outcome]:
        """The outcomes of one run's ``items`` (``settings``: eval name -> setting; ``replace``: --force)."""
        ...


class InProcessBackend:
    """One run after another in this process; decoded inputs are shared between runs of one input size."""

    def __init__(self) -> None:
        self.inputs_by_size: dict[int, RunInputs] = {}

    def run(
        self,
        spec_text: str,
        items: Sequence[WorkItem],
        config: EngineConfig,
        settings: Mapping[str, Setting],
        replace: bool = False,
    ) -> Iterator[Outcome]:
        yield from RunExecutor(spec_text, config, settings, self.inputs_by_size, replace).run(items)
