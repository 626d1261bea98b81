"""Compare: many models side by side (after Tu et al.'s holistic robustness study). One measurement
against another per checkpoint, a robust line per model group and how well it fits; then one measurement
over training for several runs."""

import pandas as pd
import streamlit as st

from clipdash import charts
from clipdash.evals import compare
from clipdash.store import queries
from clipdash.store.settings import describe_setting
from pages.common import database, load, show_chart, stored_series

# Labels of compare.CHECKPOINTS, the x axes of the curves, and the points table's columns.
CHECKPOINTS = {"all": "all epochs", "last": "last epoch only", "epoch": "a chosen epoch"}
ALONG = {"epoch": "epoch", "fraction": "fraction of training (epoch / last epoch)"}
TABLE = ["run", "group", "epoch", "fraction", "x", "y", "arch", "n_params", "pretrained_tag", "training_data"]
TABLE += ["x_setting", "y_setting"]


@st.cache_data(show_spinner=False, max_entries=64)
def group_fits(points: pd.DataFrame) -> pd.DataFrame:
    """``compare.group_fits`` of the plotted coordinates, cached: a rerun that leaves the points as they
    were (another x axis for the curves below) does not refit."""
    return compare.group_fits(points, "x_axis", "y_axis")


st.title("Compare models")
db = database()
available, runs_table, options = stored_series(db)
preferred = queries.match_series(available) + options  # the registry's default curves first
x_default = preferred[0]
y_default = next((s for s in preferred if s != x_default), x_default)
x_series, y_series = (
    where.selectbox(
        f"{axis} axis",
        options,
        options.index(default),
        format_func=lambda s: charts.series_label(*s),
        key=f"compare-{axis}",
    )
    for axis, default, where in zip("xy", (x_default, y_default), st.columns(2), strict=True)
)
runs = st.multiselect("Runs", runs_table["run"].tolist(), default=runs_table["run"].tolist())
if not runs:
    st.info("Choose at least one run.")
    st.stop()

evals = available.set_index(["metric", "dataset", "variant"])["eval"]
drawn = load(queries.default_settings, db)
drawn = drawn[drawn["run"].isin(runs) & drawn["eval"].isin({evals[x_series], evals[y_series]})]
pairs = tuple(zip(drawn["run"], drawn["setting"], strict=True))
with st.expander("Settings drawn: per run and measurement, the one with the most epochs"):
    described = load(queries.stored_settings, db).set_index("setting")["settings"]
    st.caption(
        "  \n".join(
            f"{eval_name} · {describe_setting(described[setting])} [{setting}]: {len(rows)} run(s)"
            for (eval_name, setting), rows in drawn.groupby(["eval", "setting"])
        )
        + "  \nOther settings of a run are drawn on the Curves page."
    )

points = compare.label_points(load(queries.comparison_points, db, x_series, y_series, pairs))
if points.empty:
    st.info("No checkpoint of the chosen runs has both measurements.")
    st.stop()
x_label, y_label = charts.series_label(*x_series), charts.series_label(*y_series)

left, right = st.columns(2)
which = left.radio(
    "Checkpoints of training runs", compare.CHECKPOINTS, format_func=CHECKPOINTS.get, horizontal=True
)
epochs = sorted(points.loc[points["epoch"] >= 0, "epoch"].unique().tolist())
epoch = None
if which == "epoch" and epochs:
    epoch = right.select_slider("Epoch", epochs, value=epochs[-1])
probit = []
for axis, label, where in (("x", x_label, left), ("y", y_label, right)):
    allowed = compare.probit_applicable(points[axis])
    on = where.toggle(f"Probit {axis} axis", key=f"compare-probit-{axis}", disabled=not allowed)
    if not allowed:
        where.caption(f"{label} has values outside [0, 1]: not an accuracy, so no probit axis.")
    probit.append(on and allowed)

shown = compare.axis_values(compare.pick_checkpoints(points, which, epoch), *probit)
titles = tuple(
    f"probit({label})" if on else label for label, on in zip((x_label, y_label), probit, strict=True)
)
table = shown[TABLE]
scatter = st.empty()
if not compare.fit_libraries_loaded():
    # The first fit in a server process imports scikit-learn and SciPy (1–2 s): the points go to the
    # browser first, and the chart is drawn again with the lines once the fits are done.
    scatter.altair_chart(
        charts.comparison_scatter(shown, None, compare.GROUPS, titles, tuple(probit)), width="stretch"
    )
with st.spinner("Fitting a robust line per model group…"):
    fits = group_fits(shown[["group", "x_axis", "y_axis"]])
chart = charts.comparison_scatter(shown, compare.fit_lines(fits), compare.GROUPS, titles, tuple(probit))
show_chart(chart, table, "compare", slot=scatter)
st.caption(
    f"Dashed: a Huber line per model group (scikit-learn's HuberRegressor, ε = {compare.HUBER_EPSILON}), "
    "fitted to the points drawn (a group's runs pooled) in the units drawn (probit where the axis is); "
    "R² is that line's on those points. Fewer than 3 points or a single x value give no line (NaN)."
)
st.dataframe(
    fits.drop(columns=["x_min", "x_max"]),
    hide_index=True,
    column_config={
        "spearman": st.column_config.NumberColumn("Spearman ρ", format="%.3f"),
        "r2": st.column_config.NumberColumn("R²", format="%.3f"),
        "slope": st.column_config.NumberColumn(format="%.3f"),
        "intercept": st.column_config.NumberColumn(format="%.3f"),
    },
)
st.dataframe(table, hide_index=True)

st.header("Curves of several runs")
along = st.radio("Against", list(ALONG), format_func=ALONG.get, horizontal=True, key="compare-along")
curves = compare.label_points(load(queries.series_values, db, y_series, pairs))
show_chart(charts.run_curves(curves, along, y_label, compare.GROUPS), curves, "compare-curves")
