"""Calibration and OOD detection: reliability diagrams and score distributions per checkpoint, and their
summary numbers over training."""

import streamlit as st

from clipdash import charts
from clipdash.store import queries
from pages.common import choose_setting, database, load, no_results, runs_in_order, show_chart

st.title("Calibration and OOD detection")
db = database()
index = load(queries.calibration_index, db)
ood = load(queries.ood_index, db)
if index.empty and ood.empty:
    no_results(db, "calibration or OOD results", evals="calibration,ood")


def pick_epoch(epochs: list[int], key: str) -> int:
    """An epoch slider over the stored epochs (the last one first); a lone checkpoint needs no slider."""
    if len(epochs) == 1:
        return epochs[0]
    return st.select_slider("Epoch", epochs, value=epochs[-1], key=key)


def over_training(run: str, setting: str, series: list[tuple[str, str, str]], title: str, name: str) -> None:
    """Stored summary numbers of ``series`` against epoch, for one run and setting."""
    curves = load(queries.metric_curves, db, tuple(series), ((run, setting),))
    if curves["epoch"].nunique() > 1:
        show_chart(charts.curve_panel(curves, title, "value"), curves, name)


st.header("Calibration of the zero-shot classifier")
if index.empty:
    st.info("No calibration results in this database (precompute with --evals calibration).")
else:
    left, right = st.columns(2)
    run = left.selectbox("Run", runs_in_order(index), key="calibration-run")
    setting = choose_setting(db, run, "calibration")
    stored = index[(index["run"] == run) & (index["setting"] == setting)]
    dataset = right.selectbox("Test set", sorted(stored["dataset"].unique()), key="calibration-dataset")
    epoch = pick_epoch(
        sorted(stored.loc[stored["dataset"] == dataset, "epoch"].unique()), "calibration-epoch"
    )
    bins = load(queries.reliability_bins, db, run, setting, dataset, epoch)
    fitted = load(queries.calibration_temperatures, db, run, setting, dataset)
    fitted = fitted[fitted["epoch"] == epoch]
    st.caption(
        "ECE = Σ (n_bin / N) · |accuracy − confidence| over 15 equal-width bins. Temperature "
        + ", ".join(
            f"{row.temperature:.3g} (fitted on {row.fit_on}, {row.n_fit} images)"
            for row in fitted.itertuples()
        )
        + ": T > 1 means the softmax was overconfident."
    )
    show_chart(
        charts.reliability_diagram(bins, f"{run} · {dataset} · epoch {epoch}"), bins, "reliability", False
    )
    metrics = [(m, dataset, "") for m in ("ece", "ece_ts")]
    over_training(run, setting, metrics, f"ECE over training ({dataset})", "ece-over-training")

st.header("Out-of-distribution detection (ID: CIFAR-10 test)")
if ood.empty:
    st.info("No OOD results in this database (precompute with --evals ood).")
else:
    run = st.selectbox("Run", runs_in_order(ood), key="ood-run")
    setting = choose_setting(db, run, "ood")
    stored = ood[(ood["run"] == run) & (ood["setting"] == setting)]
    epoch = pick_epoch(sorted(stored["epoch"].unique()), "ood-epoch")
    histogram = load(queries.ood_score_histogram, db, run, setting, epoch)
    st.caption(
        "MCM score: the largest softmax(cosine / τ) over the ten CIFAR-10 class prompts (τ = 1). LIVE-C and "
        "MIT1003 are unlabelled, so their photos of cars, dogs or birds could not be removed."
    )
    show_chart(
        charts.ood_histogram(histogram, f"Score distributions · {run} · epoch {epoch}"),
        histogram,
        "ood-scores",
    )
    sets = sorted(histogram.loc[~histogram["is_id"], "dataset"].unique())
    over_training(
        run, setting, [("auroc", s, "id=cifar10") for s in sets], "AUROC over training", "ood-auroc"
    )
    over_training(
        run, setting, [("fpr95", s, "id=cifar10") for s in sets], "FPR at 95 % TPR over training", "ood-fpr"
    )
