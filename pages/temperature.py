"""Temperature: the stored τ sweep of the class-agnostic probe, and the probe retrained at any τ."""

import numpy as np
import streamlit as st

from clipdash import charts
from clipdash.evals.class_agnostic import C_GRID, TAU_GRID, at_grid_edge
from clipdash.evals.linear_probe import PROBE_CLASSIFIERS
from clipdash.evals.retrain import ProbeOutcome, retrain_class_agnostic
from clipdash.store import queries
from clipdash.store.queries import CosineSplits
from pages.common import choose_run_and_dataset, choose_setting, database, load, no_results, show_chart

CLASSIFIERS = {"linear_svm": "linear SVM", "logreg": "logistic regression", "mlp": "small MLP"}
# 50 log-spaced temperatures plus the stored grid, so the slider lands on every stored τ.
TAUS = sorted({float(f"{t:.3g}") for t in np.geomspace(0.005, 2.0, 50)} | {float(t) for t in TAU_GRID})


@st.cache_data(show_spinner=False, max_entries=4096)
def retrain(
    checkpoint: tuple, tau: float, classifier: str, standardize: bool, _splits: CosineSplits
) -> ProbeOutcome:
    """The probe refit on ``_splits``; cached per checkpoint (db, mtime, run, epoch, dataset) and settings."""
    x = _splits
    return retrain_class_agnostic(
        x.train_x, x.train_y, x.test_x, x.test_y, tau, classifier, standardize=standardize
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

st.header("Stored sweep")
sweep = load(queries.tau_sweep, db, run, setting, dataset)
accuracy = sweep[sweep["metric"] == "ca_acc1"]
entropy = sweep[sweep["metric"] == "mean_entropy"]
if sweep.empty:
    st.info("No stored τ sweep for this run.")
else:
    left, right = st.columns(2)
    with left:
        show_chart(
            charts.tau_sweep_chart(accuracy, "test top-1 accuracy", "Probe accuracy vs τ"),
            accuracy,
            "tau-acc",
        )
    with right:
        show_chart(
            charts.tau_sweep_chart(entropy, "mean entropy (nats)", "Mean entropy vs τ"),
            entropy,
            "tau-entropy",
        )
    st.caption(
        "C=fixed: linear SVC with C = 1; C=cv: C chosen per τ by 3-fold cross-validation on the train split."
    )
    chosen = load(queries.tuned_C, db, run, setting, dataset)
    # Stored as ca_C_at_edge since schema 3; derived from the C and the default grid for older rows.
    edge = np.where(chosen["at_edge"].isna(), at_grid_edge(chosen["C"]), chosen["at_edge"] > 0)
    if edge.any():
        st.warning(
            f"Cross-validation chose C at the edge of its grid ({min(C_GRID):g} … {max(C_GRID):g}) in "
            f"{int(edge.sum())} of {len(chosen)} fits (epochs × τ): there the best C may lie beyond the "
            "grid, so the C=cv curve does not fully factor the regularisation out."
        )

st.header("Retrain at any τ")
checkpoints = index[(index["run"] == run) & (index["dataset"] == dataset) & (index["setting"] == setting)]
checkpoints = checkpoints.set_index("epoch")
epochs = sorted(checkpoints.index.tolist())
epoch = st.select_slider("Epoch", epochs, value=epochs[-1]) if len(epochs) > 1 else epochs[0]
if not (checkpoints.loc[epoch, "n_train"] and checkpoints.loc[epoch, "n_test"]):
    st.info("This checkpoint lacks a train or test split of class-agnostic features.")
    st.stop()
tau = st.select_slider("τ", TAUS, value=0.07, format_func="{:g}".format)
left, right = st.columns(2)
classifier = left.radio(
    "Classifier",
    [c for c in CLASSIFIERS if c in PROBE_CLASSIFIERS],
    format_func=CLASSIFIERS.get,
    horizontal=True,
)
standardize = right.toggle(
    "Standardise features",
    value=False,
    help="Off is the stored sweep's protocol: the profile's scale is part of what τ changes.",
)
splits = load(queries.class_agnostic_features, db, run, setting, epoch, dataset)
outcome = retrain(
    (str(db), db.stat().st_mtime_ns, run, setting, epoch, dataset), tau, classifier, standardize, splits
)
n_classes = outcome.confusion.shape[0]
cols = st.columns(3)
cols[0].metric("Test accuracy", f"{outcome.acc1:.3f}")
cols[1].metric("Mean entropy (nats)", f"{outcome.mean_entropy:.3f}")
cols[2].metric("Chance", f"{1 / n_classes:.3f}" if n_classes else "–")
match = accuracy[
    (accuracy["epoch"] == epoch) & (accuracy["mode"] == "fixed") & np.isclose(accuracy["tau"], tau)
]
if classifier == "linear_svm" and not standardize and len(match):
    st.caption(f"Stored value at this τ (C=fixed): {match['value'].iloc[0]:.3f}")
names = load(queries.classnames, db, dataset)
confusion = charts.confusion_frame(outcome.confusion, names)
show_chart(charts.confusion_chart(confusion), confusion, "confusion")
