"""Plan, execute, write: a pure planner, an executor that never touches the store, pluggable backends.

A backend that runs the executor in a spawned process (as a distributed backend would) must store the same
rows as the in-process one: the executor's inputs and outputs pickle and hold no open files.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_CONFIG, cli_args

from clipdash.models.checkpoints import CheckpointRef
from clipdash.precompute.backend import InProcessBackend
from clipdash.precompute.cli import Job, build_parser, main
from clipdash.precompute.config import EngineConfig
from clipdash.precompute.execute import Outcome
from clipdash.precompute.plan import WorkItem, plan_run
from clipdash.precompute.settings import Setting, job_settings
from clipdash.store import CheckpointResult, ResultWriter
from clipdash.store.queries import query

EVALS = ("zeroshot", "tid2013")


def _ref(epoch: int) -> CheckpointRef:
    return CheckpointRef("run", epoch, "tiny-clip", None, Path(f"/runs/run/epoch_{epoch}.pt"))


SETTINGS = {"zeroshot": "z-clip", "tid2013": "t-1"}  # eval -> setting id


def test_the_planner_keeps_what_is_not_stored_in_order():
    refs = [_ref(0), _ref(1), _ref(2)]
    done = {(0, "z-clip"), (0, "t-1"), (1, "t-1")}
    assert plan_run(refs, SETTINGS, done) == [
        WorkItem(refs[1], ("zeroshot",)),
        WorkItem(refs[2], ("zeroshot", "tid2013")),
    ]
    assert plan_run(refs, SETTINGS, {(e, n) for e in range(3) for n in SETTINGS.values()}) == []
    assert plan_run([], SETTINGS, set()) == []


def test_work_done_under_other_settings_is_not_done_and_force_redoes_everything():
    refs = [_ref(0), _ref(1)]
    done = {(0, "z-seed"), (1, "z-seed"), (0, "t-1"), (1, "t-1")}  # zero-shot stored with other templates
    assert plan_run(refs, SETTINGS, done) == [
        WorkItem(refs[0], ("zeroshot",)),
        WorkItem(refs[1], ("zeroshot",)),
    ]
    everything = {(e, n) for e in range(2) for n in SETTINGS.values()}
    assert plan_run(refs, SETTINGS, everything, force=True) == [WorkItem(r, tuple(SETTINGS)) for r in refs]


def test_the_engine_config_checks_itself(tmp_path):
    with pytest.raises(Exception, match="names no evaluation"):
        EngineConfig(tmp_path, ())
    with pytest.raises(Exception, match="unknown evaluation"):
        EngineConfig(tmp_path, ("nope",))
    with pytest.raises(Exception, match="unknown template set"):
        EngineConfig(tmp_path, EVALS, templates="mine")
    with pytest.raises(Exception, match="data root not found"):
        EngineConfig(tmp_path / "absent", EVALS)
    config = EngineConfig(tmp_path, EVALS)
    assert pickle.loads(pickle.dumps(config)) == config and config.batch == 256


def _run_in_child(
    spec_text: str,
    items: Sequence[WorkItem],
    config: EngineConfig,
    settings: Mapping[str, Setting],
    replace: bool,
) -> list[Outcome]:
    from clipdash.models.configs import register_model_config

    register_model_config(TINY_CONFIG)
    return list(InProcessBackend().run(spec_text, items, config, settings, replace))


class SpawnedProcessBackend:
    """Each run's executor in a freshly spawned process: everything crossing over is pickled."""

    def run(
        self,
        spec_text: str,
        items: Sequence[WorkItem],
        config: EngineConfig,
        settings: Mapping[str, Setting],
        replace: bool = False,
    ) -> Iterator[Outcome]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            job = pool.submit(_run_in_child, spec_text, items, config, settings, replace)
            yield from job.result(timeout=600)


def test_a_spawned_process_backend_stores_the_same_rows(tmp_path, tiny_run, shared_data, monkeypatch):
    # Streamlit's AppTest (earlier test files) leaves sys.modules["__main__"] as app.py, which a spawned
    # child would run again (starting the dashboard's prewarm thread there): spawn from a bare __main__.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    args = ("--evals", ",".join(EVALS))
    here, there = tmp_path / "here.duckdb", tmp_path / "there.duckdb"
    assert main(cli_args(tiny_run, shared_data, here, *args)) == 0
    command_line = build_parser().parse_args(cli_args(tiny_run, shared_data, there, *args))
    job = Job(command_line, SpawnedProcessBackend())
    with ResultWriter(there) as writer:
        job.run(writer)
    assert not job.failures
    for sql in (
        "SELECT run, epoch, setting, metric, dataset, variant, value FROM metrics ORDER BY ALL",
        "SELECT run, epoch, eval, setting FROM evaluations ORDER BY ALL",
        "SELECT * FROM evaluation_settings ORDER BY ALL",
        "SELECT * FROM zeroshot_predictions ORDER BY ALL",
        "SELECT * FROM tid2013_pairs ORDER BY ALL",
        "SELECT * FROM checkpoints ORDER BY ALL",
        "SELECT * FROM classnames ORDER BY ALL",
    ):
        pd.testing.assert_frame_equal(query(there, sql), query(here, sql))


def test_outcomes_pickle(tmp_path, tiny_run, shared_data, tiny_arch):
    config = EngineConfig(shared_data, ("tid2013",), templates="photo", limit=8)
    items = [WorkItem(CheckpointRef("tinyrun", 0, tiny_arch, None, tiny_run / "epoch_0.pt"), ("tid2013",))]
    outcomes = list(InProcessBackend().run(f"{tiny_arch}@{tiny_run}/", items, config, job_settings(config)))
    assert [type(o) for o in outcomes] == [CheckpointResult]
    again = pickle.loads(pickle.dumps(outcomes[0]))
    assert pd.DataFrame(again.evals[0].metrics).equals(pd.DataFrame(outcomes[0].evals[0].metrics))
    assert again.evals[0].tables["tid2013_pairs"].equals(outcomes[0].evals[0].tables["tid2013_pairs"])
    assert again.settings == outcomes[0].settings and again.evals[0].setting in again.settings
