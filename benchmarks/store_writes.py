"""Cost of one checkpoint's write as the database grows (run by hand).

    python benchmarks/store_writes.py --checkpoints 500 --out /tmp/store-writes.duckdb

Writes ``--checkpoints`` synthetic checkpoints through ``ResultWriter``, each with the rows one checkpoint of
the bundled run stores (counts read from the bundled database's epoch 30: 223 metrics, 3,600 cue-conflict
decisions, 9,000 entropies, 3,000 class-agnostic cosine rows of 32 floats, 200 embeddings of 256 floats;
random values), into a fresh file, and prints the seconds of the first and the last writes (the median
of the first and of the last ``--window`` writes) and their ratio, with the file size. The goal for the
engine's next store is last/first <= 1.5; a writer that copies the file per checkpoint grows with it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clipdash.store import CheckpointResult, EvalResult, ResultWriter

ROWS = {
    "metrics": 223,
    "decisions": 1200,
    "taus": 9,
    "entropy_images": 1000,
    "cosines": 3000,
    "embeddings": 200,
}


def synthetic_checkpoint(epoch: int, rng: np.random.Generator) -> CheckpointResult:
    """One checkpoint's rows, shaped like the bundled run's."""
    metrics = [
        (f"metric_{i}", "cifar10", f"variant={i}", float(rng.random())) for i in range(ROWS["metrics"])
    ]
    n = ROWS["decisions"]
    decisions = pd.concat(
        pd.DataFrame(
            {
                "protocol": protocol,
                "image": [f"cat/cat{i}-dog{i}.png" for i in range(n)],
                "shape_class": "cat",
                "texture_class": "dog",
                "decision": np.where(rng.random(n) < 0.5, "cat", "dog"),
                "shape_score": rng.random(n),
                "texture_score": rng.random(n),
            }
        )
        for protocol in ("two_prompt", "sixteen_class", "imagenet_mean")
    )
    entropies = pd.concat(
        pd.DataFrame(
            {
                "dataset": "cifar10",
                "tau": tau,
                "image_index": np.arange(ROWS["entropy_images"], dtype=np.int32),
                "entropy": rng.random(ROWS["entropy_images"]),
            }
        )
        for tau in np.geomspace(0.01, 1, ROWS["taus"])
    )

    def vectors(n: int, dim: int, column: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "dataset": "cifar10",
                "split": np.where(np.arange(n) < n // 2, "train", "test"),
                "image_index": np.arange(n, dtype=np.int32),
                "label": (np.arange(n) % 10).astype(np.int32),
                column: list(rng.standard_normal((n, dim)).astype(np.float32)),
            }
        )

    evals = [
        EvalResult("zeroshot", 1.0, metrics),
        EvalResult("cue_conflict", 1.0, [], {"cue_conflict_decisions": decisions}),
        EvalResult(
            "class_agnostic",
            1.0,
            [],
            {"entropies": entropies, "class_agnostic_features": vectors(ROWS["cosines"], 32, "cosines")},
        ),
        EvalResult("probe", 1.0, [], {"image_embeddings": vectors(ROWS["embeddings"], 256, "embedding")}),
    ]
    return CheckpointResult("synthetic", epoch, "synthetic@/runs/synthetic/", "ViT-B-32", "directory",
                            f"/runs/synthetic/epoch_{epoch}.pt", None, evals)  # fmt: skip


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
    first, last = statistics.median(seconds[: args.window]), statistics.median(seconds[-args.window :])
    size = args.out.stat().st_size / 2**20
    print(f"\n{args.checkpoints} checkpoints, file {size:.0f} MiB, total {sum(seconds):.0f} s")
    print(f"first {args.window} writes: median {first:.3f} s; last {args.window}: median {last:.3f} s")
    print(f"last/first = {last / first:.1f}")


if __name__ == "__main__":
    main()
