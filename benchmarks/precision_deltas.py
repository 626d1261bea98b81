"""How much every stored metric moves between two precomputes of the same checkpoints (run by hand).

    python -m clipdash.precompute --model @runs/<run>/ --data-root ../shared/data --db bf16.duckdb \
        --precision bf16
    python benchmarks/precision_deltas.py --reference data/clipdash.duckdb --candidate bf16.duckdb

Both databases are opened read-only. Metrics are matched by (run, epoch, metric, dataset, variant) and
grouped by (metric, dataset, variant) over the checkpoints, with per-class variants (``class=...``) pooled
into one ``class=*`` group. Proportions (accuracies, biases, drops) and correlations are printed in points
(×100: percentage points for proportions), entropies in nats. A group fails the tolerance when its largest
change over all checkpoints exceeds ``--tolerance`` points; count metrics (``n_*``) must match exactly, and
the cross-validated C of the class-agnostic probe (``ca_C``) is reported as how often it changed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from clipdash.store.queries import query

UNITLESS_NATS = ("mean_entropy",)
HYPERPARAMETERS = ("ca_C",)
DECISION_COUNTS = ("n_shape", "n_texture")  # outcomes (decisions per cue), compared image by image instead


def paired_metrics(reference: Path, candidate: Path) -> pd.DataFrame:
    """Rows present in both databases with both values: run, epoch, metric, dataset, variant, ref, cand."""
    sql = "SELECT run, epoch, metric, dataset, variant, value FROM metrics"
    frames = [query(path, sql) for path in (reference, candidate)]
    keys = ["run", "epoch", "metric", "dataset", "variant"]
    pairs = frames[0].merge(frames[1], on=keys, suffixes=("_ref", "_cand"))
    return pairs.rename(columns={"value_ref": "ref", "value_cand": "cand"})


def summarise(pairs: pd.DataFrame, tolerance_points: float) -> pd.DataFrame:
    """One row per (metric, dataset, variant group): values compared, largest and mean |change|, verdict."""
    values = pairs[~pairs["metric"].str.startswith("n_") & ~pairs["metric"].isin(HYPERPARAMETERS)].copy()
    values["group"] = values["variant"].map(lambda v: re.sub(r"class=[^;]*", "class=*", v))
    scale = values["metric"].isin(UNITLESS_NATS).map({True: 1.0, False: 100.0})  # nats stay nats
    values["change"] = (values["cand"] - values["ref"]) * scale
    values["abs_change"] = values["change"].abs()
    values["both_nan"] = values["ref"].isna() & values["cand"].isna()
    rows = []
    for (metric, dataset, group), part in values.groupby(["metric", "dataset", "group"], sort=True):
        defined = part[~part["both_nan"]]
        one_sided = int((defined["ref"].isna() | defined["cand"].isna()).sum())
        largest = float(defined["abs_change"].max()) if len(defined) else 0.0
        unit = "nats" if metric in UNITLESS_NATS else "points"
        rows.append(
            {
                "metric": metric,
                "dataset": dataset,
                "variant": group,
                "values": len(part),
                "unit": unit,
                "max_abs": largest,
                "mean_abs": float(defined["abs_change"].mean()) if len(defined) else 0.0,
                "mean_signed": float(defined["change"].mean()) if len(defined) else 0.0,
                "nan_mismatch": one_sided,
                "within": unit == "nats" or (one_sided == 0 and largest <= tolerance_points),
            }
        )
    return pd.DataFrame(rows)


def count_mismatches(pairs: pd.DataFrame) -> pd.DataFrame:
    """Count metrics (``n_*``, decision counts aside) that differ: the runs did not see the same images."""
    counts = pairs[pairs["metric"].str.startswith("n_") & ~pairs["metric"].isin(DECISION_COUNTS)]
    return counts[counts["ref"].ne(counts["cand"]) & ~(counts["ref"].isna() & counts["cand"].isna())]


def changed_decisions(reference: Path, candidate: Path) -> pd.DataFrame:
    """Per cue-conflict protocol: how many per-image decisions differ, in all and in the worst checkpoint."""
    sql = "SELECT run, epoch, protocol, image, decision FROM cue_conflict_decisions"
    keys = ["run", "epoch", "protocol", "image"]
    both = query(reference, sql).merge(query(candidate, sql), on=keys, suffixes=("_ref", "_cand"))
    both["changed"] = both["decision_ref"] != both["decision_cand"]
    per_checkpoint = both.groupby(["protocol", "run", "epoch"])["changed"].agg(["sum", "size"]).reset_index()
    return per_checkpoint.groupby("protocol").agg(
        decisions=("size", "sum"),
        changed=("sum", "sum"),
        images_per_checkpoint=("size", "max"),
        most_changed_in_a_checkpoint=("sum", "max"),
    )


def changed_hyperparameters(pairs: pd.DataFrame) -> str:
    """How often a cross-validated hyperparameter came out different."""
    chosen = pairs[pairs["metric"].isin(HYPERPARAMETERS)]
    if chosen.empty:
        return "no cross-validated hyperparameters stored"
    changed = int((chosen["ref"] != chosen["cand"]).sum())
    return f"ca_C (chosen by cross-validation): different in {changed} of {len(chosen)} (checkpoint, τ) fits"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="e.g. the fp32 database")
    parser.add_argument("--candidate", type=Path, required=True, help="e.g. the bf16 database")
    parser.add_argument("--tolerance", type=float, default=0.5, help="points (default 0.5)")
    parser.add_argument("--csv", type=Path, help="also write the per-group table here")
    args = parser.parse_args(argv)
    pairs = paired_metrics(args.reference, args.candidate)
    if pairs.empty:
        print("no metric is present in both databases", file=sys.stderr)
        return 2
    checkpoints = pairs[["run", "epoch"]].drop_duplicates()
    print(f"{len(pairs)} paired values, {len(checkpoints)} checkpoints: {args.reference} vs {args.candidate}")
    table = summarise(pairs, args.tolerance)
    print()
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    failing = table[~table["within"]]
    counts = count_mismatches(pairs)
    decisions = changed_decisions(args.reference, args.candidate)
    if len(decisions):
        print("\ncue-conflict decisions that differ, image by image:")
        print(decisions.to_string())
    print(f"\n{changed_hyperparameters(pairs)}")
    print(f"count metrics that differ: {len(counts)}")
    names = ", ".join(f"{r.metric}/{r.dataset}/{r.variant}" for r in failing.itertuples())
    beyond = f"groups beyond {args.tolerance} points: {len(failing)} of {len(table)}"
    print(beyond + (f": {names}" if names else ""))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
