"""Temperature: the stored τ sweep of the class-agnostic probe, and the probe retrained at any τ."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from clipdash import charts
from clipdash.evals.class_agnostic import C_GRID, TAU_GRID, at_grid_edge
from clipdash.evals.linear_probe import PROBE_CLASSIFIERS
from clipdash.evals.retrain import MLP_LBFGS_ITERATIONS, ProbeOutcome, retrain_class_agnostic
from clipdash.store import parse_variant, queries
from clipdash.store.queries import CosineSplits
from pages.common import choose_run_and_dataset, choose_setting, database, load, no_results, show_chart

CLASSIFIERS = {"linear_svm": "linear SVM", "logreg": "logistic regression", "mlp": "small MLP"}
# 50 log-spaced temperatures plus the stored grid, so the slider lands on every stored τ.
TAUS = sorted({float(f"{t:.3g}") for t in np.geomspace(0.005, 2.0, 50)} | {float(t) for t in TAU_GRID})
BAND_COLUMNS = ["epoch", "mode", "tau", "n", "ci_low", "ci_high"]


@st.cache_data(show_spinner=False, max_entries=4096)
def retrain(
    checkpoint: tuple, tau: float, classifier: str, standardize: bool, C: float, _splits: CosineSplits
) -> ProbeOutcome:
    """The probe refit on ``_splits``; cached per checkpoint (db, mtime, run, epoch, dataset) and settings."""
    x = _splits
    return retrain_class_agnostic(
        x.train_x, x.train_y, x.test_x, x.test_y, tau, classifier, C=C, standardize=standardize
    )


def interval_text(interval: tuple[float, float]) -> str:
    low, high = interval
    return f"{low:.3f}–{high:.3f}" if np.isfinite(low) and np.isfinite(high) else "–"


def stored_bands(db, run: str, setting: str, epoch: int, dataset: str) -> pd.DataFrame:
    """The stored intervals (``metric_intervals``) of one epoch's sweep: ``BAND_COLUMNS`` plus metric."""
    stored = load(queries.stored_intervals, db, run, setting, epoch)
    stored = stored[
        stored["metric"].isin(["ca_acc1", "mean_entropy"])
        & (stored["dataset"] == dataset)
        & stored["ci_low"].notna()
    ].drop_duplicates(["metric", "variant"])  # one interval per number where several (B, seed) are stored
    params = [parse_variant(v) for v in stored["variant"]]
    return stored.assign(
        epoch=epoch, mode=[p.get("C", "") for p in params], tau=[float(p["tau"]) for p in params]
    )[["metric", *BAND_COLUMNS]]


def refit_bands(checkpoint: tuple, splits: CosineSplits, epoch: int, chosen: pd.DataFrame) -> pd.DataFrame:
    """The same intervals from refits of the stored probes (linear SVM, unstandardised, C = 1 and the C
    that cross-validation chose per τ), for a database that stores none; ``refit``: the refit's accuracy."""
    rows = []
    for tau in TAU_GRID:
        tuned = chosen.loc[(chosen["epoch"] == epoch) & np.isclose(chosen["tau"], tau), "C"]
        for mode, C in (("fixed", 1.0), ("cv", float(tuned.iloc[0]) if len(tuned) else np.nan)):
            if not np.isfinite(C):
                continue
            outcome = retrain(checkpoint, float(tau), "linear_svm", False, C, splits)
            n = len(outcome.labels)
            rows.append(("ca_acc1", epoch, mode, float(tau), n, *outcome.acc1_interval, outcome.acc1))
            if mode == "fixed":
                rows.append(
                    ("mean_entropy", epoch, "", float(tau), n, *outcome.mean_entropy_interval, np.nan)
                )
    return pd.DataFrame(rows, columns=["metric", *BAND_COLUMNS, "refit"])


def refit_note(bands: pd.DataFrame, accuracy: pd.DataFrame) -> str:
    """How far the refits' accuracies lie from the stored ones (liblinear at C = 100 can stop a test image
    or two apart); empty for stored intervals."""
    if "refit" not in bands:
        return ""
    both = bands[bands["metric"] == "ca_acc1"].merge(accuracy, on=["epoch", "mode", "tau"])
    images = (both["refit"] - both["value"]).abs() * both["n"]
    if images.max() < 0.5:
        return f" The refits reproduce all {len(both)} stored accuracies."
    return (
        f" The refits reproduce {int((images < 0.5).sum())} of {len(both)} stored accuracies; the others "
        f"differ by up to {images.max():.0f} test image(s)."
    )


def with_bands(chart: alt.TopLevelMixin, bands: pd.DataFrame, y_title: str) -> alt.TopLevelMixin:
    """``charts.tau_sweep_chart`` with a translucent band (in its epoch's colour) per curve of ``bands``."""
    if bands.empty:
        return chart
    lines = chart.copy(deep=False)
    top = {key: getattr(lines, key) for key in ("title", "height", "autosize")}
    for key in top:
        setattr(lines, key, alt.Undefined)
    band = (
        alt.Chart(bands)
        .mark_area(opacity=0.3)
        .encode(
            x=alt.X("tau:Q", scale=alt.Scale(type="log"), title="temperature τ"),
            y=alt.Y("ci_low:Q", title=y_title),
            y2="ci_high:Q",
            color=alt.Color("epoch:Q"),
            detail="mode:N",
            tooltip=[
                "epoch:Q",
                "mode:N",
                "tau:Q",
                "n:Q",
                alt.Tooltip("ci_low:Q", format=".4f", title="95 % low"),
                alt.Tooltip("ci_high:Q", format=".4f", title="95 % high"),
            ],
        )
    )
    return alt.layer(band, lines).properties(**top)


@st.cache_data(show_spinner=False, max_entries=64)
def sweep_panels(
    key: tuple, _accuracy: pd.DataFrame, _entropy: pd.DataFrame, _bands: pd.DataFrame
) -> list[tuple[alt.TopLevelMixin, pd.DataFrame, str]]:
    """The stored sweep's two charts with the chosen epoch's bands, and their CSV rows (the bands' columns
    filled for that epoch): built once per ``key`` (db, mtime, run, setting, dataset, epoch, the bands'
    source and size): building an Altair chart costs tens of milliseconds, and every rerun did."""
    panels = []
    for frame, metric, y_title, title, name in (
        (_accuracy, "ca_acc1", "test top-1 accuracy", "Probe accuracy vs τ", "tau-acc"),
        (_entropy, "mean_entropy", "mean entropy (nats)", "Mean entropy vs τ", "tau-entropy"),
    ):
        bands = _bands[_bands["metric"] == metric][BAND_COLUMNS]
        chart = with_bands(charts.tau_sweep_chart(frame, y_title, title), bands, y_title)
        panels.append((chart, frame.merge(bands, on=["epoch", "mode", "tau"], how="left"), name))
    return panels


@st.fragment
def retrain_section(db, run: str, setting: str, dataset: str, epoch: int, stored: pd.DataFrame) -> None:
    """The τ slider and what the refit probe gives; a fragment, so moving a widget here reruns only this."""
    tau = st.select_slider("τ", TAUS, value=0.07, format_func="{:g}".format)
    left, right = st.columns(2)
    classifier = left.radio(
        "Classifier",
        [c for c in CLASSIFIERS if c in PROBE_CLASSIFIERS],
        format_func=CLASSIFIERS.get,
        horizontal=True,
        help="Linear SVM (C = 1, the stored sweep's probe) and logistic regression as scikit-learn fits "
        f"them; small MLP: 64 ReLU units, fitted full-batch by L-BFGS for {MLP_LBFGS_ITERATIONS} iterations.",
    )
    standardize = right.toggle(
        "Standardise features",
        value=False,
        help="Off is the stored sweep's protocol: the profile's scale is part of what τ changes.",
    )
    splits = load(queries.class_agnostic_features, db, run, setting, epoch, dataset)
    checkpoint = (str(db), db.stat().st_mtime_ns, run, setting, epoch, dataset)
    outcome = retrain(checkpoint, tau, classifier, standardize, 1.0, splits)
    n_classes = outcome.confusion.shape[0]
    cols = st.columns(3)
    cols[0].metric("Test accuracy", f"{outcome.acc1:.3f}")
    cols[1].metric("Mean entropy (nats)", f"{outcome.mean_entropy:.3f}")
    cols[2].metric("Chance", f"{1 / n_classes:.3f}" if n_classes else "–")
    st.caption(
        f"95 % intervals: test accuracy {interval_text(outcome.acc1_interval)}, mean entropy "
        f"{interval_text(outcome.mean_entropy_interval)} — a percentile bootstrap over the "
        f"{len(outcome.labels):,} test images ({outcome.bootstrap.resamples:,} resamples), the fitted probe "
        "held fixed: the test set's sampling error, not the variance of refitting (another train split or "
        "seed would add to it)."
    )
    match = stored[(stored["mode"] == "fixed") & np.isclose(stored["tau"], tau)]
    if classifier == "linear_svm" and not standardize and len(match):
        row = match.iloc[0]
        shown = f" (95 % {interval_text((row['ci_low'], row['ci_high']))})" if pd.notna(row["ci_low"]) else ""
        st.caption(f"Stored value at this τ (C=fixed): {row['value']:.3f}{shown}")
    names = load(queries.classnames, db, dataset)
    confusion = charts.confusion_frame(outcome.confusion, names)
    show_chart(charts.confusion_chart(confusion), confusion, "confusion")
    recall = pd.DataFrame(
        {
            "class": confusion["true"].unique(),
            "test images": outcome.confusion.sum(axis=1),
            "recall": outcome.recall,
            "95 % low": outcome.recall_interval[:, 0],
            "95 % high": outcome.recall_interval[:, 1],
        }
    )
    st.caption("Per class: recall (the confusion matrix's diagonal over its row) with its 95 % interval.")
    st.dataframe(
        recall,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("recall", "95 % low", "95 % high")
        },
    )


st.title("Temperature τ and the class-agnostic probe")
st.caption(
    "Each image is described by softmax(cos/τ) over the generic prompts; a linear classifier then tries to "
    "recover its class from that profile. Lower τ sharpens the profile."
)
db = database()
index = load(queries.class_agnostic_index, db)
if index.empty:
    no_results(db, "class-agnostic features", evals="class_agnostic")

run, dataset = choose_run_and_dataset(index)
setting = choose_setting(db, run, "class_agnostic")
checkpoints = index[(index["run"] == run) & (index["dataset"] == dataset) & (index["setting"] == setting)]
checkpoints = checkpoints.set_index("epoch")
epochs = sorted(checkpoints.index.tolist())
epoch = (
    st.select_slider(
        "Epoch",
        epochs,
        value=epochs[-1],
        help="The checkpoint whose stored curves get 95 % bands and whose probe is retrained below.",
    )
    if len(epochs) > 1
    else epochs[0]
)
has_splits = bool(checkpoints.loc[epoch, "n_train"] and checkpoints.loc[epoch, "n_test"])

st.header("Stored sweep")
sweep = load(queries.tau_sweep, db, run, setting, dataset)
accuracy = sweep[sweep["metric"] == "ca_acc1"]
entropy = sweep[sweep["metric"] == "mean_entropy"]
stored_here = accuracy.assign(ci_low=np.nan, ci_high=np.nan)
if sweep.empty:
    st.info("No stored τ sweep for this run.")
else:
    chosen = load(queries.tuned_C, db, run, setting, dataset)
    bands = stored_bands(db, run, setting, epoch, dataset)
    source = "stored"
    if bands.empty and has_splits:
        source = "refit"
        if st.toggle(
            f"95 % intervals for epoch {epoch}",
            help="This database stores no intervals for the sweep: refits the epoch's 18 stored probes "
            "(C=fixed and C=cv at the 9 stored τ) on its stored cosines, a few seconds the first time.",
        ):
            splits = load(queries.class_agnostic_features, db, run, setting, epoch, dataset)
            checkpoint = (str(db), db.stat().st_mtime_ns, run, setting, epoch, dataset)
            with st.spinner(f"Refitting epoch {epoch}'s probes…"):
                bands = refit_bands(checkpoint, splits, epoch, chosen)
    acc_bands = bands[bands["metric"] == "ca_acc1"][BAND_COLUMNS]
    stored_here = accuracy[accuracy["epoch"] == epoch].merge(
        acc_bands, on=["epoch", "mode", "tau"], how="left"
    )
    key = (str(db), db.stat().st_mtime_ns, run, setting, dataset, epoch, source, len(bands))
    for column, (chart, data, name) in zip(
        st.columns(2), sweep_panels(key, accuracy, entropy, bands), strict=True
    ):
        with column:
            show_chart(chart, data, name)
    st.caption(
        "C=fixed: linear SVC with C = 1; C=cv: C chosen per τ by 3-fold cross-validation on the train split."
    )
    if not bands.empty:
        n = int(bands["n"].max())
        st.caption(
            f"Shaded: epoch {epoch}'s 95 % intervals, a percentile bootstrap over its {n:,} test images "
            "of the probe refitted with its stored C on the stored cosines, the probe held fixed (the test "
            "set's sampling error, not the refit's variance); "
            + ("stored with the results." if source == "stored" else "computed here by those refits.")
            + refit_note(bands, accuracy)
        )
    # Stored as ca_C_at_edge since schema 3; derived from the C and the default grid for older rows.
    edge = np.where(chosen["at_edge"].isna(), at_grid_edge(chosen["C"]), chosen["at_edge"] > 0)
    if edge.any():
        st.warning(
            f"Cross-validation chose C at the edge of its grid ({min(C_GRID):g} … {max(C_GRID):g}) in "
            f"{int(edge.sum())} of {len(chosen)} fits (epochs × τ): there the best C may lie beyond the "
            "grid, so the C=cv curve does not fully factor the regularisation out."
        )

st.header("Retrain at any τ")
if not has_splits:
    st.info("This checkpoint lacks a train or test split of class-agnostic features.")
    st.stop()
retrain_section(db, run, setting, dataset, epoch, stored_here)
