"""``python -m clipdash.precompute.intervals --db FILE``: add bootstrap intervals to stored results.

The precompute stores each headline number's interval as it writes the number; results written before
(or with ``--bootstrap-resamples 0``) get theirs here, recomputed from their stored per-item rows, one
transaction per checkpoint. Resumable: a checkpoint's settings whose intervals are stored with the same
B and seed are skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from clipdash.errors import ClipdashError
from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.measurements import get_measurement, list_measurements
from clipdash.measurements.intervals import INTERVALS, checkpoint_intervals
from clipdash.store import ResultWriter
from clipdash.store.queries import query

log = logging.getLogger(__name__)


def pending(db: Path, config: BootstrapConfig) -> pd.DataFrame:
    """(run, epoch, eval, setting) of stored results that declare replicates and lack intervals of
    ``config``'s B and seed."""
    resampled = [name for name in list_measurements() if get_measurement(name).replicates is not None]
    present = query(
        db, "SELECT count(*) n FROM information_schema.tables WHERE table_name = ?", [INTERVALS.name]
    )
    done = ""
    params: list = [resampled]
    if present["n"].item():
        done = f"""AND (run, epoch, setting) NOT IN (SELECT DISTINCT run, epoch, setting FROM {INTERVALS.name}
                   WHERE resamples = ? AND seed = ?)"""
        params += [config.resamples, config.seed]
    return query(
        db,
        f"SELECT run, epoch, eval, setting FROM evaluations WHERE list_contains(?, eval) {done} ORDER BY ALL",
        params,
    )


def stored_intervals(db: Path, run: str, epoch: int, eval_name: str, setting: str, config: BootstrapConfig):
    """The interval rows of one stored result, from its per-item rows and metric rows."""
    measurement = get_measurement(eval_name)
    key = [run, int(epoch), setting]
    where = "WHERE run = ? AND epoch = ? AND setting = ?"
    tables = {
        table.name: query(db, f"SELECT * EXCLUDE (run, epoch, setting) FROM {table.name} {where}", key)
        for table in measurement.tables
    }
    metrics = query(db, f"SELECT metric, dataset, variant, value FROM metrics {where}", key)
    return checkpoint_intervals(measurement, tables, metrics, config)


def add_intervals(db: Path, config: BootstrapConfig) -> int:
    """Compute and store the missing intervals of ``db``; returns how many results got them."""
    todo = pending(db, config)
    if todo.empty:
        return 0
    with ResultWriter(db) as writer:
        groups = todo.groupby(["run", "epoch"], sort=False)
        for (run, epoch), rows in tqdm(groups, total=groups.ngroups, desc="intervals", unit="checkpoint"):
            frames = {
                row.setting: stored_intervals(db, run, epoch, row.eval, row.setting, config)
                for row in rows.itertuples()
            }
            writer.write_intervals(run, int(epoch), frames)
    return len(todo)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(
        prog="python -m clipdash.precompute.intervals", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--bootstrap-resamples", type=int, default=1000)
    parser.add_argument("--bootstrap-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.bootstrap_resamples < 1 or args.bootstrap_seed < 0:
        parser.error("--bootstrap-resamples must be positive and --bootstrap-seed non-negative")
    if not args.db.is_file():
        print(f"error: no database at {args.db}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        done = add_intervals(args.db, BootstrapConfig(args.bootstrap_resamples, args.bootstrap_seed))
    except ClipdashError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("intervals for %d stored result(s) in %.1f s", done, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
