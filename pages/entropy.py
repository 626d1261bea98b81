"""Entropy: how peaked each image's softmax(cos/τ) profile over the class-agnostic prompts is."""

import math

import streamlit as st

from clipdash import charts
from clipdash.store import queries
from pages.common import choose_run_and_dataset, choose_setting, database, load, no_results, show_chart

st.title("Class-agnostic entropy")
st.caption(
    "Each image's softmax(cos/τ) over the generic prompts; its entropy is ln K when the profile is flat "
    "(K prompts) and 0 when one prompt takes all."
)
db = database()
index = load(queries.entropy_index, db)
if index.empty:
    no_results(db, "entropies", evals="class_agnostic")

run, dataset = choose_run_and_dataset(index)
setting = choose_setting(db, run, "class_agnostic")
stored = index[(index["run"] == run) & (index["dataset"] == dataset) & (index["setting"] == setting)]
epochs = sorted(stored["epoch"].unique().tolist())
taus = sorted(stored["tau"].unique().tolist(), reverse=True)
k = load(queries.prompt_count, db)
ln_k = math.log(k) if k else None
if ln_k is None:
    st.caption("The prompt list is not stored, so ln K is not marked.")

left, right = st.columns(2)
chosen_epochs = left.multiselect("Epochs", epochs, default=sorted({epochs[0], epochs[-1]}))
default_tau = 0.07 if 0.07 in taus else taus[len(taus) // 2]
chosen_taus = right.multiselect("Temperatures τ", taus, default=[default_tau], format_func="{:g}".format)
if chosen_epochs and chosen_taus:
    values = load(queries.entropy_values, db, run, setting, dataset, tuple(chosen_epochs), tuple(chosen_taus))
    show_chart(charts.entropy_histogram(values, ln_k), values, "entropy-histogram")
else:
    st.info("Choose at least one epoch and one temperature for the histogram.")

means = load(queries.mean_entropy_by_epoch, db, run, setting, dataset)
show_chart(charts.mean_entropy_chart(means, ln_k), means, "mean-entropy")
