"""Curves: per-epoch measurements for one or more runs with their bootstrap intervals, reference lines, and
how the curves correlate (Table 1 with intervals, partial r given accuracy, where each curve peaks)."""

import math

import numpy as np
import pandas as pd
import streamlit as st

from clipdash import charts, references
from clipdash.evals.bootstrap import BootstrapConfig
from clipdash.evals.curves import (
    correlation_table,
    curve_correlations,
    interval_spans,
    normalise_curves,
    peak_distribution,
    peak_epochs,
)
from clipdash.store import queries
from pages.common import REFERENCES_CSV, choose_setting, database, load, show_chart, stored_series

KEYS = ["run", "metric", "dataset", "variant"]
ITEM_UNITS = {"tid2013": "image pairs"}  # what one resampled item is, per measurement (else images)
CONTROL = "accuracy"  # the seed paper's name of zero-shot CIFAR-10 acc1: partial r is taken given it


def bounds_text(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"[{low:.3f}, {high:.3f}]".replace("-", "−")


st.title("Curves over training")
db = database()
available, runs_table, options = stored_series(db)
runs = st.multiselect("Runs", runs_table["run"].tolist(), default=runs_table["run"].tolist())
chosen = st.multiselect(
    "Measurements (one panel per metric)",
    options,
    default=queries.match_series(available),
    format_func=lambda s: charts.series_label(*s),
)
left, right = st.columns(2)
normalise = left.toggle("Min–max normalise each curve (compare shapes)", value=False)
show_references = right.toggle("Published reference values", value=True, disabled=normalise)
if not runs or not chosen:
    st.info("Choose at least one run and one measurement.")
    st.stop()

evals = available.set_index(["metric", "dataset", "variant"])["eval"]
with st.expander("Settings drawn (one per run and measurement)", expanded=True):
    settings = [
        (run, setting)
        for run in runs
        for e in dict.fromkeys(evals[s] for s in chosen)
        if (setting := choose_setting(db, run, e, required=False)) is not None
    ]
curves = load(queries.metric_curves_with_intervals, db, tuple(chosen), tuple(settings))

# How wide is each curve's interval against what its metric can take? Over half its range: faded.
spans = interval_spans(curves[curves["epoch"] >= 0])
spans["unit"] = [
    ITEM_UNITS.get(evals.get((m, d, v), ""), "images")
    for m, d, v in zip(spans["metric"], spans["dataset"], spans["variant"], strict=True)
]
spans["legend_note"] = [
    f"n = {n:,.0f} {unit}" if math.isfinite(n) else ""
    for n, unit in zip(spans["n"], spans["unit"], strict=True)
]
curves = curves.merge(spans[[*KEYS, "faded", "legend_note"]], on=KEYS, how="left")
curves["faded"] = curves["faded"].fillna(False).astype(bool)
banded = curves["ci_low"].notna() & curves["ci_high"].notna()
if banded.any():
    levels = " / ".join(f"{level * 100:g} %" for level in sorted(curves.loc[banded, "level"].unique()))
    resampled = sorted(curves.loc[banded, "resamples"].dropna().unique())
    st.caption(
        f"Bands: the stored {levels} percentile-bootstrap interval "
        f"of each number over its items (B = {', '.join(map(str, resampled))}); tooltips and CSV give n and "
        "the bounds. A curve whose median interval spans over half of its metric's possible range "
        "(correlations [−1, 1]; accuracies, fractions, biases, ECE, AUROC, FPR, noise drop [0, 1]; NLL "
        "and other unbounded metrics are never faded) is drawn faded, its n in the legend."
        + ("" if banded.all() else " Values without a stored interval are drawn without a band.")
    )
else:
    st.caption(
        "No bootstrap intervals are stored for these curves (a database written before intervals "
        "existed, or measurements that store no items): drawn without bands. "
        f"`python -m clipdash.precompute.intervals --db {db}` adds them."
    )
shown = curves
if normalise:
    shown = normalise_curves(curves[curves["epoch"] >= 0])
    st.caption(
        "Normalised: each curve rescaled to 0..1, its band with the same minimum and maximum (so a band "
        "may reach beyond 0..1); pretrained models and published values are hidden."
    )
published = references.load_references(REFERENCES_CSV) if show_references and not normalise else None

panels = st.columns(2)
for i, metric in enumerate(dict.fromkeys(m for m, _, _ in chosen)):
    in_panel = [s for s in chosen if s[0] == metric]
    refs = (
        pd.concat([references.references_for(published, *s) for s in in_panel]).drop_duplicates()
        if published is not None
        else None
    )
    panel = shown[shown["metric"] == metric]
    chart = charts.curve_panel(
        panel, charts.metric_title(metric), "normalised" if normalise else metric, refs
    )
    with panels[i % 2]:
        show_chart(chart, panel.drop(columns="legend_note"), f"curve-{metric}")
        for row in spans[spans["faded"] & (spans["metric"] == metric)].itertuples():
            low, high = (f"{bound:g}".replace("-", "−") for bound in (row.range_low, row.range_high))
            st.caption(
                f"{row.run} · {charts.series_label(row.metric, row.dataset, row.variant)} is faded: the "
                f"median 95 % interval spans {row.span * 100:.0f} % of the metric's range [{low}, {high}]; "
                f"{row.n:,.0f} {row.unit}."
            )

st.header("Do the curves move together?")
st.caption(
    "Pearson r between per-epoch curves of one run (each pair over the epochs both have), as in the seed "
    "paper's Table 1; the epoch where each curve peaks is in its row label."
)
trajectories = curves[curves["epoch"] >= 0]
multi_epoch = trajectories.groupby("run")["epoch"].nunique()
candidates = multi_epoch[multi_epoch >= 3].index.tolist()
if not candidates:
    st.info("Correlations need a run with at least 3 epochs among the chosen runs.")
    st.stop()
run = st.selectbox("Run", candidates)
one_run = trajectories[trajectories["run"] == run]
names = {
    s: references.curve_series_name(*s) or charts.series_label(*s)
    for s in one_run[["metric", "dataset", "variant"]].drop_duplicates().itertuples(index=False, name=None)
}
wide = one_run.assign(
    curve=[names[s] for s in zip(one_run["metric"], one_run["dataset"], one_run["variant"], strict=True)]
)
wide = wide.pivot_table(index="epoch", columns="curve", values="value", aggfunc="first").sort_index()
in_order = [s for s in chosen if names.get(s) in wide.columns]
wide = wide[[names[s] for s in in_order]]  # in the order chosen
matrix = curve_correlations(wide)
peaks = peak_epochs(wide)
heatmap = st.empty()
heatmap.altair_chart(charts.correlation_heatmap(matrix, peaks), width="stretch")  # before the bootstrap

# Replicates of whole curves: B resamples of every epoch's items, recomputed per measurement (its
# ``replicates``) from the stored per-item rows, once per (database version, run, setting, series).
stored = one_run.dropna(subset=["resamples"])
config = (
    BootstrapConfig(int(stored["resamples"].max()), int(stored.loc[stored["resamples"].idxmax(), "seed"]))
    if len(stored)
    else BootstrapConfig()
)
setting_of = one_run.groupby(["metric", "dataset", "variant"])["setting"].first()
by_setting: dict[str, list] = {}
for s in in_order:
    by_setting.setdefault(setting_of[s], []).append(s)
replicates: dict[str, np.ndarray] = {}
with st.spinner(
    f"Bootstrapping {len(in_order)} curves × {len(wide)} epochs × {config.resamples} replicates "
    "(once per database version)…"
):
    for setting, series in by_setting.items():
        found = load(
            queries.curve_replicates, db, run, (setting,), tuple(series), config.resamples, config.seed
        )
        replicates.update({names[s]: found.aligned(s, wide.index) for s in series if s in found.values})
replicates = {name: replicates[name] for name in wide.columns if name in replicates}  # in the order chosen
table = correlation_table(wide, replicates, CONTROL if CONTROL in wide.columns else None, config.level)
show_chart(
    charts.correlation_heatmap(matrix, peaks, table),
    matrix.rename_axis("curve").reset_index(),
    "curve-correlations",
    slot=heatmap,
)

table1 = references.published_curve_correlations(references.load_references(REFERENCES_CSV))
published_r = {}
for row in table1.itertuples():
    published_r[(row.first, row.second)] = published_r[(row.second, row.first)] = row.r
partial_title = f"partial r | {CONTROL}"
shown_table = pd.DataFrame(
    {
        "pair": table["first"] + " – " + table["second"],
        "r": table["r"],
        "95 % CI of r": [bounds_text(lo, hi) for lo, hi in zip(table["r_low"], table["r_high"], strict=True)],
        partial_title: table["partial_r"],
        f"95 % CI of {partial_title}": [
            bounds_text(lo, hi) for lo, hi in zip(table["partial_low"], table["partial_high"], strict=True)
        ],
        "epochs": table["n_epochs"],
        "published r": [
            published_r.get(pair, np.nan) for pair in zip(table["first"], table["second"], strict=True)
        ],
    }
)
st.subheader("Table 1 with intervals")
number = st.column_config.NumberColumn(format="%.3f")
st.dataframe(
    shown_table,
    hide_index=True,
    column_config={"r": number, partial_title: number, "published r": number},
)
origin = (
    "the B and seed of the stored intervals"
    if len(stored)
    else "this database stores no intervals, so the default B and seed"
)
missing = [name for name in wide.columns if name not in replicates]
st.caption(
    f"95 % intervals: each of B = {config.resamples} replicates (seed {config.seed}: {origin}) resamples "
    "every epoch's items — the same draw at every epoch of a measurement, since the draw depends only on "
    "the seed and the number of items — recomputes every curve from its stored per-item rows, then r. "
    "Different measurements' items are resampled independently. A curve measured on few items (TID2013: "
    "a few image pairs) is noisier in every replicate than as stored, which pulls the replicates' r "
    "towards 0: its interval can then sit mostly below r."
    + (f" No interval for {', '.join(missing)}: its items are not stored." if missing else "")
)
if CONTROL in wide.columns:
    st.caption(
        f"Partial r controls for {CONTROL} (zero-shot CIFAR-10 top-1): (r_xy − r_xz·r_yz) / "
        "√((1 − r_xz²)(1 − r_yz²)), over the epochs all three curves have, with its interval from the same "
        "replicates. Curves that all rise as the model learns correlate near 1 for that reason alone — a "
        "trivial correlation: r near ±1 with a partial r near 0 says a pair moves together only through "
        "accuracy; a partial r that stays large says more."
    )
else:
    st.caption(f"Choose the {CONTROL} curve (zero-shot CIFAR-10 acc1) to see partial correlations given it.")
if len(table1):
    model, source = table1["model"].iloc[0], table1["source"].iloc[0]
    st.caption(f"Published r: {source} ({model}); the seed paper gives no intervals.")

st.subheader("Where does each curve peak?")
if replicates:
    first, last = int(wide.index.min()), int(wide.index.max())
    by_epoch = st.number_input(
        "P(peak ≤ epoch …)", min_value=first, max_value=last, value=max(first, min(5, last)), step=1
    )
    peak_table = peak_distribution(replicates, wide.index.to_numpy(), int(by_epoch))
    by_label = f"P(peak ≤ epoch {by_epoch})"
    st.dataframe(
        pd.DataFrame(
            {
                "curve": peak_table["curve"],
                "peak epoch (stored curve)": peak_table["curve"].map(peaks).astype("Int64"),
                "most likely peak epoch": peak_table["likely_peak"],
                "P(peak = that epoch)": peak_table["p_likely_peak"],
                by_label: peak_table["p_peak_by"],
                "replicates": peak_table["resamples"],
            }
        ),
        hide_index=True,
        column_config={
            "peak epoch (stored curve)": st.column_config.NumberColumn(format="%d"),
            "most likely peak epoch": st.column_config.NumberColumn(format="%d"),
            "P(peak = that epoch)": st.column_config.NumberColumn(format="%.2f"),
            by_label: st.column_config.NumberColumn(format="%.2f"),
        },
    )
    st.caption(
        "Each replicate curve's peak is the epoch of its maximum (the first on ties; for noise drop, the "
        "most noise-sensitive epoch); the shares are over the replicates. "
        + "; ".join(
            f"{row.curve}: {by_label} = {row.p_peak_by:.2f}"
            for row in peak_table.itertuples()
            if math.isfinite(row.p_peak_by)
        )
    )
else:
    st.caption("No curve here has stored per-item rows to resample: peak epochs without intervals.")
