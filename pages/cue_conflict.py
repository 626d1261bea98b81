"""Cue-conflict: shape vs texture decisions per class against humans, the images, one image over training."""

import streamlit as st

from clipdash import charts
from clipdash.evals.cue_conflict import shape_bias_difference
from clipdash.store import queries
from pages.common import choose_setting, database, load, no_results, runs_in_order, show_chart, thumbnails

PROTOCOLS = {
    "two_prompt": "two prompts (shape vs texture class)",
    "sixteen_class": "16-way zero-shot",
    "imagenet_mean": "ImageNet-1000 → 16 (mean rule)",
}

st.title("Cue-conflict: shape or texture?")
db = database()
everything = index = load(queries.cue_conflict_index, db)
if index.empty:
    no_results(db, "cue-conflict decisions", evals="cue_conflict")

left, right = st.columns([1, 2])
run = left.selectbox("Run", runs_in_order(index))
setting = choose_setting(db, run, "cue_conflict")
index = index[(index["run"] == run) & (index["setting"] == setting)]
stored = set(index["protocol"])
protocol = right.radio(
    "Protocol",
    [p for p in PROTOCOLS if p in stored] + sorted(stored - set(PROTOCOLS)),
    format_func=lambda p: PROTOCOLS.get(p, p),
    horizontal=True,
)
epochs = sorted(index.loc[(index["run"] == run) & (index["protocol"] == protocol), "epoch"].tolist())
epoch = st.select_slider("Epoch", epochs, value=epochs[-1]) if len(epochs) > 1 else epochs[0]

by_class = load(queries.shape_bias_by_class, db, run, setting, protocol, epoch)
humans = load(queries.human_shape_bias, db)
overall = by_class.loc[by_class["shape_class"] == "all", "shape_bias"]
human_mean = humans.loc[(humans["subject"] == "mean") & (humans["shape_class"] == "all"), "shape_bias"]
cols = st.columns(3)
cols[0].metric("Shape bias", f"{overall.iloc[0]:.3f}" if len(overall) else "–")
cols[1].metric("Texture bias", f"{1 - overall.iloc[0]:.3f}" if len(overall) else "–")
cols[2].metric("Humans (mean of subjects)", f"{human_mean.iloc[0]:.3f}" if len(human_mean) else "–")
numbers = load(queries.stored_intervals, db, run, setting, epoch)
stored_bias = numbers[(numbers["metric"] == "shape_bias") & (numbers["variant"] == f"protocol={protocol}")]
if len(stored_bias) and stored_bias["ci_low"].notna().all():
    row = stored_bias.iloc[0]
    cols[0].caption(f"95 % bootstrap interval [{row.ci_low:.3f}, {row.ci_high:.3f}] over {row.n} images")
if humans.empty:
    st.caption(
        "No human baseline in this database (the precompute stores it when the human trials are found)."
    )
show_chart(
    charts.shape_bias_chart(by_class, humans, f"{run}, epoch {epoch}"),
    by_class.assign(run=run, epoch=epoch, protocol=protocol),
    "shape-bias-per-class",
)

st.header("Change in shape bias")
mode = st.radio(
    "Compare this checkpoint with", ("another epoch of this run", "another model"), horizontal=True
)
if mode == "another epoch of this run":
    other_run, other_setting = run, setting
    other_epoch = st.selectbox("Epoch to compare with", epochs, index=0, key="cc-other-epoch")
else:
    others = everything[(everything["protocol"] == protocol) & (everything["run"] != run)]
    if others.empty:
        st.info(f"No other run in this database has {PROTOCOLS.get(protocol, protocol)} decisions.")
        other_run = None
    else:
        other_run = st.selectbox("Model to compare with", runs_in_order(others), key="cc-other-run")
        other_setting = choose_setting(db, other_run, "cue_conflict")
        stored_epochs = others.loc[
            (others["run"] == other_run) & (others["setting"] == other_setting), "epoch"
        ].tolist()
        if not stored_epochs:
            st.info(f"{other_run} has no {protocol} decisions under this setting.")
            other_run = None
        else:
            other_epoch = st.selectbox("Its epoch", sorted(stored_epochs)[::-1], key="cc-other-model-epoch")
if other_run is not None:
    then = load(queries.cue_conflict_decisions, db, other_run, other_setting, protocol, (other_epoch,))
    now = load(queries.cue_conflict_decisions, db, run, setting, protocol, (epoch,))
    change = shape_bias_difference(then, now)
    label = f"epoch {other_epoch}" if other_run == run else f"{other_run}, epoch {other_epoch}"
    left, right = st.columns(2)
    left.metric(
        f"Shape bias here minus {label}",
        f"{change['difference']:+.3f}",
        help="Over the conflict images both decided; the interval is a paired bootstrap (1000 replicates "
        "drawing the same images for both), so it is the change's uncertainty, not two biases'.",
    )
    right.metric("Images whose cue changed", f"{change['changed']:.0f} of {change['n']:.0f}")
    st.caption(
        f"{change['first']:.3f} ({label}) → {change['second']:.3f} (here); 95 % paired interval of the "
        f"change [{change['ci_low']:+.3f}, {change['ci_high']:+.3f}]"
        + (": excludes 0." if change["ci_low"] > 0 or change["ci_high"] < 0 else ": includes 0.")
    )
    if other_run != run:
        moved = then.merge(now, on=["image", "shape_class", "texture_class"], suffixes=(" there", " here"))
        moved = moved[moved["cue there"] != moved["cue here"]]
        st.dataframe(
            moved[["image", "shape_class", "texture_class", "decision there", "decision here"]],
            hide_index=True,
        )

st.header("The images")
left, middle, right = st.columns([2, 2, 1])
classes = left.multiselect("Shape class", sorted(set(by_class["shape_class"]) - {"all"}))
cues = middle.multiselect("Decision follows", list(charts.CUE_COLOURS), default=list(charts.CUE_COLOURS))
limit = right.number_input("Show at most", min_value=8, max_value=400, value=48, step=8)
changed = st.toggle("Only images whose decision changed between two epochs", disabled=len(epochs) < 2)
if changed:
    a, b = st.columns(2)
    before = a.selectbox("From epoch", epochs, index=0)
    after = b.selectbox("To epoch", epochs, index=epochs.index(epoch))
    both = load(queries.cue_conflict_decisions, db, run, setting, protocol, (before, after))
    was = both[both["epoch"] == before].set_index("image")["decision"]
    shown = both[both["epoch"] == after].assign(was=lambda f: f["image"].map(was))
    shown = shown[shown["decision"] != shown["was"]]
else:
    shown = load(queries.cue_conflict_decisions, db, run, setting, protocol, (epoch,))
if classes:
    shown = shown[shown["shape_class"].isin(classes)]
shown = shown[shown["cue"].isin(cues)]
st.caption(f"{len(shown)} images match; showing {min(len(shown), limit)}.")
if shown.empty:
    st.info("No images match these filters.")
else:
    # round-robin over the shape classes, so the first images shown cover every class
    rank = shown.groupby("shape_class").cumcount()
    shown = shown.assign(rank=rank).sort_values(["rank", "shape_class"]).drop(columns="rank")
    page = shown.head(int(limit))
    show_chart(
        charts.decision_grid(page, thumbnails(page["image"])), shown, "cue-conflict-images", stretch=False
    )

    st.header("One image over training")
    image = st.selectbox("Image", shown["image"].tolist())
    history = load(queries.image_history, db, run, setting, protocol, image)
    show_chart(charts.image_history_chart(history, image), history, "image-history")
