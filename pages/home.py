"""Home: what the database holds, what each page answers, how to add results."""

import streamlit as st

from clipdash.store import queries
from clipdash.store.settings import describe_setting
from pages.common import PRECOMPUTE, database, load

st.title("clipdash")
st.write("How a CLIP model's representations change over training, and how they compare across models.")

db = database()
st.caption(f"Reading {db}")
counts = load(queries.table_counts, db).set_index("table")["rows"]
if counts["metrics"] == 0:
    st.info("No results yet — this database has the schema but no rows.")
else:
    st.subheader("Runs")
    st.dataframe(load(queries.runs_overview, db), hide_index=True)
    left, right = st.columns(2)
    with left:
        st.subheader("Measurements")
        st.dataframe(load(queries.measurements_overview, db), hide_index=True)
    with right:
        st.subheader("Datasets")
        st.dataframe(load(queries.datasets_overview, db), hide_index=True)
    st.subheader("Stored settings")
    st.caption(
        "Every number is stored with the settings that made it (table evaluation_settings); pages draw one "
        "setting per run and measurement, and ask when a run has several."
    )
    settings = load(queries.stored_settings, db)
    st.dataframe(
        settings.assign(settings=settings["settings"].map(describe_setting)), hide_index=True, width="stretch"
    )
    with st.expander("Rows per table"):
        st.dataframe(counts.rename("rows").to_frame(), width="content")

st.subheader("Pages")
st.markdown(
    """
- **Curves** — how does each measurement evolve over training, which curves rise and fall together
  (Pearson correlation between curves), and where does each one peak? Pretrained models and published
  values are drawn as reference lines.
- **Cue-conflict** — does the model decide by shape or by texture, per class and against each human
  subject; which images flip between two epochs, and how one image's decision margin moves.
- **Entropy** — how peaked is each image's softmax profile over the class-agnostic prompts, per epoch and
  temperature τ, against the maximum ln K.
- **Temperature** — the stored τ sweep of the class-agnostic probe, and a probe you retrain on the spot at
  any τ with the classifier of your choice.
- **Probe an image** — upload an image and see what a checkpoint makes of it.
"""
)

st.subheader("Adding results")
st.markdown(
    "Evaluate checkpoints into a results database (resumable: finished checkpoints are skipped), then "
    "choose that file in the sidebar or set `CLIPDASH_DB`:"
)
st.code(
    PRECOMPUTE.format(db=db)
    + "\n# a pretrained model as a reference:\n"
    + PRECOMPUTE.replace("ARCH@runs/<run>/", "ViT-B-32:openai").format(db=db),
    language="bash",
)
st.caption(
    "Databases are read from data/, the folder of CLIPDASH_DB and the folders in CLIPDASH_DB_DIRS "
    "(separated by ':')."
)
