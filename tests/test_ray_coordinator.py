"""The Ray backend's per-run coordinator, as plain asyncio (no Ray): each pooled prompt row is computed by
the first task that claims it, later askers wait for it, and a claim whose holder vanished is taken over."""

from __future__ import annotations

import asyncio

import numpy as np

from clipdash.precompute.ray_coordinator import RunCoordinator

KEYS = [("tower", "a photo of a cat."), ("tower", "a photo of a dog.")]


def test_the_first_asker_computes_and_a_second_waits_for_its_rows():
    async def scenario():
        coordinator = RunCoordinator(wait_s=10)
        found, mine = await coordinator.claim(KEYS)
        assert found == {} and mine == KEYS
        second = asyncio.ensure_future(coordinator.claim(KEYS[::-1] + [("tower", "a photo of a car.")]))
        await asyncio.sleep(0.05)
        assert not second.done()  # waiting for the first asker's rows
        coordinator.give({key: np.full(3, i, np.float32) for i, key in enumerate(KEYS)})
        found, mine = await second
        assert sorted(found) == sorted(KEYS) and mine == [("tower", "a photo of a car.")]
        assert found[KEYS[1]].tolist() == [1, 1, 1]
        coordinator.give({mine[0]: np.zeros(3, np.float32)})
        assert coordinator.prompts_computed() == 3
        assert await coordinator.claim(KEYS) == ({k: coordinator.rows[k] for k in KEYS}, [])

    asyncio.run(scenario())


def test_a_claim_whose_holder_never_answers_is_taken_over_after_the_wait():
    async def scenario():
        coordinator = RunCoordinator(wait_s=0.1)
        await coordinator.claim(KEYS)  # this task is then killed: it never gives
        found, mine = await coordinator.claim(KEYS)
        assert found == {} and mine == KEYS
        coordinator.give({key: np.ones(2, np.float32) for key in KEYS})
        coordinator.give({KEYS[0]: np.full(2, 7, np.float32)})  # the first holder answers late
        assert coordinator.prompts_computed() == 3  # computed twice, and said so
        assert coordinator.rows[KEYS[0]].tolist() == [1, 1]  # the first rows given are kept

    asyncio.run(scenario())


def test_started_tasks_count_a_retried_task_once():
    coordinator = RunCoordinator()
    for index in (0, 1, 0):
        coordinator.task_started(index)
    assert coordinator.started_tasks() == {0, 1}
