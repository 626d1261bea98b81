"""Cost of one checkpoint's write as the database grows (run by hand).

    python benchmarks/store_writes.py --checkpoints 500 --out /tmp/store-writes.duckdb

Writes ``--checkpoints`` synthetic checkpoints through ``ResultWriter`` into a fresh file, each with the rows
one checkpoint of the bundled run stores: its metrics and every registered measurement's per-item table,
with the bundled run's row counts (``ROWS``; the noise measurement at ``--limit 2000``) and random values of
each column's declared type. Prints the seconds of the first and the last writes (the median of the first
and of the last ``--window`` writes), their ratio and the file size. Goal (issue 11): last/first <= 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clipdash.measurements import get_measurement, list_measurements
from clipdash.measurements.table import Table
from clipdash.store import CheckpointResult, EvalResult, ResultWriter

# Rows per checkpoint of the bundled run (epoch 30): zero-shot on CIFAR-10 + CIFAR-100's 20 + Imagenette,
# noise on 2,000 images x (clean + 5 severities), two probes on the 10,000 test images, ...
ROWS = {
    "metrics": 230,
    "zeroshot_predictions": 12_020,
    "noise_predictions": 12_000,
    "tid2013_pairs": 7,
    "livec_scores": 1_162,
    "cue_conflict_decisions": 3_600,
    "probe_predictions": 20_000,
    "image_embeddings": 200,
    "entropies": 9_000,
    "class_agnostic_features": 3_000,
    "modality_gap_classes": 10,
}
VECTOR_SIZE = {"cosines": 32}  # other FLOAT[] columns: 256 (the bundled model's embedding size)


def synthetic_rows(table: Table, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows of random values of each declared column type."""
    columns = {}
    for name, kind in table.columns:
        if kind.endswith("[]"):
            columns[name] = list(rng.standard_normal((n, VECTOR_SIZE.get(name, 256))).astype(np.float32))
        elif kind == "VARCHAR":
            columns[name] = [f"{name}-{k % 16}" for k in range(n)]
        elif kind == "BOOLEAN":
            columns[name] = rng.random(n) < 0.5
        elif kind in ("FLOAT", "DOUBLE"):
            columns[name] = rng.random(n)
        else:  # integer types
            columns[name] = (np.arange(n) % 100).astype(np.int32)
    return pd.DataFrame(columns)


def synthetic_checkpoint(epoch: int, rng: np.random.Generator) -> CheckpointResult:
    """One checkpoint's rows, shaped like the bundled run's, each measurement under its own setting."""
    names = list_measurements()
    per_eval = ROWS["metrics"] // len(names)
    evals = [
        EvalResult(
            name,
            1.0,
            [(f"metric_{i}", "cifar10", f"variant={i}", float(rng.random())) for i in range(per_eval)],
            {t.name: synthetic_rows(t, ROWS.get(t.name, 1000), rng) for t in get_measurement(name).tables},
            setting=f"{name}-setting",
        )
        for name in names
    ]
    settings = {f"{name}-setting": (name, '{"synthetic": true}') for name in names}
    return CheckpointResult("synthetic", epoch, "synthetic@/runs/synthetic/", "ViT-B-32", "directory",
                            f"/runs/synthetic/epoch_{epoch}.pt", None, evals, settings=settings)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--window", type=int, default=10, help="writes averaged (median) at each end")
    parser.add_argument("--out", type=Path, default=Path("/tmp/clipdash-store-writes.duckdb"))
    args = parser.parse_args()
    args.out.unlink(missing_ok=True)
    rng = np.random.default_rng(0)
    seconds = []
    with ResultWriter(args.out) as writer:
        for epoch in range(args.checkpoints):
            result = synthetic_checkpoint(epoch, rng)  # built outside the timing
            start = time.perf_counter()
            writer.write(result)
            seconds.append(time.perf_counter() - start)
            if epoch % 50 == 0:
                print(
                    f"checkpoint {epoch}: {seconds[-1]:.3f} s, file {args.out.stat().st_size / 2**20:.0f} MiB"
                )
    rows = sum(ROWS.get(t.name, 1000) for name in list_measurements() for t in get_measurement(name).tables)
    first, last = statistics.median(seconds[: args.window]), statistics.median(seconds[-args.window :])
    size = args.out.stat().st_size / 2**20
    print(
        f"\n{args.checkpoints} checkpoints of {rows:,} per-item rows, file {size:.0f} MiB, "
        f"total {sum(seconds):.0f} s"
    )
    print(f"first {args.window} writes: median {first:.3f} s; last {args.window}: median {last:.3f} s")
    print(f"last/first = {last / first:.2f}")


if __name__ == "__main__":
    main()
