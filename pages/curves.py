"""Curves: per-epoch measurements for one or more runs, reference lines, and how the curves correlate."""

import pandas as pd
import streamlit as st

from clipdash import charts, references
from clipdash.evals.curves import curve_correlations, minmax_normalise, peak_epochs
from clipdash.store import queries
from pages.common import REFERENCES_CSV, choose_setting, database, load, show_chart, stored_series

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
curves = load(queries.metric_curves, db, tuple(chosen), tuple(settings))
shown = curves
if normalise:
    shown = curves[curves["epoch"] >= 0]
    shown = shown.assign(
        value=shown.groupby(["run", "metric", "dataset", "variant"])["value"].transform(minmax_normalise)
    )
    st.caption("Normalised: each curve rescaled to 0..1; pretrained models and published values are hidden.")
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
        show_chart(chart, panel, f"curve-{metric}")

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
wide = wide[[names[s] for s in chosen if names.get(s) in wide.columns]]  # in the order chosen
matrix = curve_correlations(wide)
peaks = peak_epochs(wide)
show_chart(
    charts.correlation_heatmap(matrix, peaks), matrix.rename_axis("curve").reset_index(), "curve-correlations"
)
if published is not None:
    table1 = references.published_curve_correlations(published)
    table1 = table1[table1["first"].isin(wide.columns) & table1["second"].isin(wide.columns)]
    if len(table1):
        st.caption("Published for comparison (seed paper, Table 1):")
        st.dataframe(table1, hide_index=True)
