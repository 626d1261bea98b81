"""What the tasks of one run on the Ray backend share: which tasks have started (for the progress bar), and
a locked text tower's pooled prompt outputs, each computed by one worker and handed to the others.

``RunCoordinator`` is a plain class so that this module imports without Ray; the backend makes it a Ray
actor (``ray.remote(RunCoordinator)``, asyncio-based, no CPU of its own). ``claim`` hands each key to the
first task that asks; later askers wait for its rows, and take a key over after ``wait_s`` (its claimer
may have been killed). Claims are made in one step before any waiting, so a task only ever waits for keys
claimed earlier: no two tasks can wait for each other.
"""

from __future__ import annotations

import asyncio

import numpy as np

from clipdash.models.encode import PooledKey


class RunCoordinator:
    """One per run on the Ray backend; see the module docstring."""

    def __init__(self, wait_s: float = 120.0):
        self.wait_s = wait_s
        self.rows: dict[PooledKey, np.ndarray] = {}
        self.claims: dict[PooledKey, asyncio.Event] = {}
        self.started: set[int] = set()
        self.computed = 0

    def task_started(self, index: int) -> None:
        self.started.add(index)

    def started_tasks(self) -> set[int]:
        """Indices of the tasks that have started (a retried task counts once)."""
        return set(self.started)

    def prompts_computed(self) -> int:
        """Pooled rows the tasks computed and gave (each prompt once, unless a claim was taken over)."""
        return self.computed

    async def claim(self, keys: list[PooledKey]) -> tuple[dict[PooledKey, np.ndarray], list[PooledKey]]:
        """The rows of ``keys`` already computed, and the keys the caller must compute (now its claims)."""
        keys = list(dict.fromkeys(keys))
        mine = [k for k in keys if k not in self.rows and k not in self.claims]
        for key in mine:
            self.claims[key] = asyncio.Event()
        others = {id(self.claims[k]): self.claims[k] for k in keys if k not in self.rows and k not in mine}
        if others:
            waits = [asyncio.ensure_future(event.wait()) for event in others.values()]
            _, late = await asyncio.wait(waits, timeout=self.wait_s)
            for wait in late:
                wait.cancel()
        taken_over = [k for k in keys if k not in self.rows and k not in mine]
        for key in taken_over:
            self.claims[key] = asyncio.Event()
        return {k: self.rows[k] for k in keys if k in self.rows}, mine + taken_over

    def give(self, rows: dict[PooledKey, np.ndarray]) -> None:
        """Store a task's computed rows and wake the tasks waiting for them."""
        self.computed += len(rows)
        for key, row in rows.items():
            self.rows.setdefault(key, row)
            event = self.claims.pop(key, None)
            if event is not None:
                event.set()


class SharedPooledOnRay:
    """A worker's view of its run's ``RunCoordinator`` actor, as ``TextEncoder``'s ``SharedPooled``."""

    def __init__(self, coordinator):
        self.coordinator = coordinator

    def claim(self, keys: list[PooledKey]) -> tuple[dict[PooledKey, np.ndarray], list[PooledKey]]:
        import ray

        return ray.get(self.coordinator.claim.remote(keys))

    def give(self, rows: dict[PooledKey, np.ndarray]) -> None:
        import ray

        ray.get(self.coordinator.give.remote(rows))
