"""Calibration and OOD detection: reliability diagrams and score distributions per checkpoint, and their
summary numbers over training."""

import json

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


def setting_values(run: str, eval_name: str, setting: str) -> dict:
    """The stored settings (JSON) of one of ``run``'s ``eval_name`` settings."""
    options = load(queries.run_settings, db, run, eval_name)
    return json.loads(options.loc[options["setting"] == setting, "settings"].iloc[0])


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
    bound = [("temperature_at_bound", dataset, f"fold={fold}") for fold in (0, 1)]
    edges = load(queries.metric_curves, db, tuple(bound), ((run, setting),))
    edges = edges[(edges["epoch"] == epoch) & (edges["value"] == 1)]
    if not edges.empty:
        st.warning(
            f"The temperature of {len(edges)} fold(s) stopped at an end of its search range (0.01–100): "
            "the likelihood wants it sharper or flatter than that (at initialisation, a random model's "
            "softmax is best flattened entirely), so the scaled numbers are the range's, not an optimum's."
        )
    show_chart(
        charts.reliability_diagram(bins, f"{run} · {dataset} · epoch {epoch}"), bins, "reliability", False
    )
    metrics = [(m, dataset, "") for m in ("ece", "ece_ts")]
    over_training(run, setting, metrics, f"ECE over training ({dataset})", "ece-over-training")

st.header("Out-of-distribution detection")
if ood.empty:
    st.info("No OOD results in this database (precompute with --evals ood).")
else:
    run = st.selectbox("Run", runs_in_order(ood), key="ood-run")
    setting = choose_setting(db, run, "ood")
    protocol = setting_values(run, "ood", setting)
    id_dataset = protocol.get("id_dataset", "cifar10")
    stored = ood[(ood["run"] == run) & (ood["setting"] == setting)]
    epoch = pick_epoch(sorted(stored["epoch"].unique()), "ood-epoch")
    histogram = load(queries.ood_score_histogram, db, run, setting, epoch)
    score = f"Score: {protocol.get('score')}"
    if protocol.get("score") == "mcm":
        score = f"MCM score: the largest softmax(cosine / τ) over the {id_dataset} class prompts (τ = 1)"
    st.caption(
        f"ID: {id_dataset}. {score}. Removed from the OOD sets: {'; '.join(protocol.get('removed', []))}. "
        "LIVE-C and MIT1003 are unlabelled, so their photos of cars, dogs or birds could not be removed."
    )
    show_chart(
        charts.ood_histogram(histogram, f"Score distributions · {run} · epoch {epoch}"),
        histogram,
        "ood-scores",
    )
    sets = sorted(histogram.loc[~histogram["is_id"], "dataset"].unique())
    variant = f"id={id_dataset}"
    over_training(run, setting, [("auroc", s, variant) for s in sets], "AUROC over training", "ood-auroc")
    over_training(
        run, setting, [("fpr95", s, variant) for s in sets], "FPR at 95 % TPR over training", "ood-fpr"
    )
