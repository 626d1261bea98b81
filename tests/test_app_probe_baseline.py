"""The "Probe an image" page with the ImageNet-1k classifier baselines (EfficientNet-Lite0/1/2), through
Streamlit's AppTest, and the probe's classifier path against the engine's.

Each classifier is loaded once for the module: ``load_live_classifier`` is patched to hand out one CPU
instance per spec, which the page's ``st.cache_resource`` then keeps (AppTest runs the page in this
process). The data root is made here: one stimulus per class and an ``imagenet16_indices.json`` of
made-up index lists, with no ``imagenet1k_wnids.txt`` (so the names come from timm's packaged list); the
tests on the real stimuli and index lists need ``../shared/data``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import softmax
from streamlit.testing.v1 import AppTest

# The engine's modules are imported here, before the first AppTest run starts the dashboard's prewarm
# thread (which imports SciPy and scikit-learn in the background), not inside a test while it runs.
from clipdash.data.cue_conflict import load_imagenet16_indices
from clipdash.data.decode import load_rgb
from clipdash.errors import ModelSpecError
from clipdash.evals.cue_conflict import imagenet_to_16_mean
from clipdash.measurements.cue_conflict import ClassifierCueConflictParams, classifier_compute
from clipdash.precompute.context import ClassifierContext
from clipdash.precompute.inputs import RunInputs
from clipdash.probe import classifier as classifier_probe
from clipdash.probe.labels import CUE_CONFLICT_CLASSES
from clipdash.store import ResultWriter

REPO = Path(__file__).resolve().parents[1]
PAGE = "pages/probe.py"
TIMEOUT = 180  # seconds per script run: the first one imports torch and timm
LITE0 = "EfficientNet-Lite0 (ImageNet-1k classifier)"
CHARTS = 2  # the 16-class scores and the ImageNet-1k top-5
DOWNLOADS = 3 * CHARTS  # CSV, PNG and SVG per chart
CPU = torch.device("cpu")
STORED = "cat/cat10-elephant3.png"  # a stimulus of the shared data (and of the made-up root)
CLIP_ONLY = ("probe_tau", "probe_labels", "probe_custom")  # widget keys of the CLIP views


def png(width: int = 40, height: int = 30) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    gradient = (np.arange(width * height) % 251).astype(np.uint8).reshape(height, width)
    Image.fromarray(np.stack([gradient] * 3, axis=-1)).save(buffer, format="PNG")
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.fixture(scope="module", autouse=True)
def classifiers_once() -> dict[str, classifier_probe.LiveClassifier]:
    """One CPU instance per classifier spec for the whole module, for the page and the module alike."""
    loaded: dict[str, classifier_probe.LiveClassifier] = {}
    real = classifier_probe.load_live_classifier

    def load_once(spec: str, device: torch.device | None = None) -> classifier_probe.LiveClassifier:
        if spec not in loaded:
            loaded[spec] = real(spec, CPU)
        return loaded[spec]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifier_probe, "load_live_classifier", load_once)
        yield loaded


@pytest.fixture(scope="module")
def lite0(classifiers_once) -> classifier_probe.LiveClassifier:
    return classifier_probe.load_live_classifier("timm:efficientnet_lite0")


def made_up_root(root: Path, indices: bool = True) -> Path:
    """A data root with one stimulus per class (``<c>/<c>1-<next>1.png``) plus ``STORED``, and made-up
    ImageNet index lists for the 16 classes (class k: k·60 … k·60 + k mod 3)."""
    stimuli = root / "cue-conflict" / "stimuli"
    names = [
        f"{c}/{c}1-{CUE_CONFLICT_CLASSES[(k + 1) % 16]}1.png" for k, c in enumerate(CUE_CONFLICT_CLASSES)
    ]
    for k, name in enumerate([*names, STORED]):
        path = stimuli / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((56, 56, 3), 15 * k, np.uint8)).save(path)
    if indices:
        categories = {c: [k * 60 + j for j in range(k % 3 + 1)] for k, c in enumerate(CUE_CONFLICT_CLASSES)}
        (root / "cue-conflict" / "imagenet16_indices.json").write_text(json.dumps({"categories": categories}))
    return root


@pytest.fixture(scope="module")
def probe_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An empty results database (so the picker lists the bundled model and the classifiers only) and the
    made-up data root."""
    root = tmp_path_factory.mktemp("probe-baseline")
    db = root / "results.duckdb"
    with ResultWriter(db):
        pass
    return {"CLIPDASH_DB": str(db), "CLIPDASH_DATA_ROOT": str(made_up_root(root / "data"))}


def open_page(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], model: str = LITE0, **overrides
) -> AppTest:
    """The probe page with a classifier chosen."""
    for name in ("CLIPDASH_DB", "CLIPDASH_DATA_ROOT"):
        monkeypatch.setenv(name, str(overrides.get(name, env[name])))
    monkeypatch.delenv("CLIPDASH_DB_DIRS", raising=False)
    monkeypatch.delenv("CLIPDASH_MODEL_CONFIGS", raising=False)
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    app.session_state["probe_model"] = model  # picked before the first run: the bundled CLIP is not loaded
    app.switch_page(PAGE).run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.warning, [w.value for w in app.warning]
    assert app.selectbox(key="probe_model").value == model
    return app


def upload(app: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    app.file_uploader(key="probe_upload").upload(name, data, mime)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def text_of(app: AppTest) -> str:
    """The page's text: markdown, info boxes, captions and image captions."""
    texts = [element.value for element in [*app.markdown, *app.info, *app.caption]]
    texts += [image.caption for element in app.get("image") for image in element.proto.imgs]
    return "\n".join(texts)


def keys(app: AppTest) -> set[str]:
    return {widget.key for widget in [*app.selectbox, *app.select_slider, *app.text_input] if widget.key}


def test_the_picker_offers_the_three_baselines_and_hides_the_clip_widgets(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    options = app.selectbox(key="probe_model").options
    assert [o for o in options if "ImageNet-1k classifier" in o] == [
        "EfficientNet-Lite0 (ImageNet-1k classifier)",
        "EfficientNet-Lite1 (ImageNet-1k classifier)",
        "EfficientNet-Lite2 (ImageNet-1k classifier)",
    ]
    assert (
        "efficientnet_lite0 (ImageNet-1k classifier, 4.7 M parameters), 224×224 px input"
        in app.status[0].label
    )
    assert "has no text tower" in text_of(app) and "Upload an image or pick" in text_of(app)
    upload(app, "photo.png", png())
    assert not app.error, [e.value for e in app.error]
    assert not keys(app) & {*CLIP_ONLY, f"probe_templates:{LITE0}"}
    assert sum("has no text tower" in caption.value for caption in app.caption) == 1
    assert not app.metric  # no profile entropy


def test_upload_shows_the_imagenet_top5_and_the_sixteen_class_decision(monkeypatch, probe_env):
    app = upload(open_page(monkeypatch, probe_env), "photo.png", png())
    assert not app.error, [e.value for e in app.error]
    assert len(app.get("vega_lite_chart")) == CHARTS
    assert len(app.get("download_button")) == DOWNLOADS
    text = text_of(app)
    assert "class ranks higher: *cat* (shape) is" in text and "*elephant* (texture)" in text
    assert "The 16-class decision (the highest of the 16 scores) is **" in text
    assert "Class names from timm's packaged ImageNet-1k class list." in text
    assert "what the model sees (224 px: the centre of the image resized to 256 px)" in text
    assert "the image (40×30 px)" in text
    assert [subheader.value for subheader in app.subheader] == ["Shape or texture?", "ImageNet-1k top-5"]


@pytest.mark.parametrize(
    "name, data, mime, message",
    [
        (
            "notes.png",
            b"this is text, not a PNG",
            "image/png",
            "This file is not a PNG, JPEG, WebP, GIF or BMP image, so it cannot be decoded.",
        ),
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
            "image/svg+xml",
            "SVG drawings are not supported; please export it as a PNG, JPEG, WebP, GIF or BMP image and "
            "upload that.",
        ),
        ("cut.png", png(64, 64)[: len(png(64, 64)) // 2], "image/png", "cut off or damaged"),
    ],
    ids=["text", "svg", "truncated-png"],
)
def test_a_refused_file_gives_one_plain_sentence(monkeypatch, probe_env, name, data, mime, message):
    app = upload(open_page(monkeypatch, probe_env), name, data, mime)
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and message in errors[0], errors
    assert not app.get("vega_lite_chart")


SHAPES = [(1, 1), (2, 2), (5000, 1), (1, 5000), (3, 4000), (20_000, 1)]


@pytest.mark.parametrize(
    "name, data, size",
    [
        *[(f"odd-{w}x{h}.png", png_of_size(w, h), (w, h)) for w, h in SHAPES],
        ("animation.gif", gif(), (40, 30)),
    ],
    ids=[*[f"{w}x{h}" for w, h in SHAPES], "gif"],
)
def test_any_geometry_the_decoder_accepts_gives_the_classifier_s_results(
    monkeypatch, probe_env, name, data, size
):
    app = upload(
        open_page(monkeypatch, probe_env), name, data, "image/gif" if name.endswith("gif") else "image/png"
    )
    assert not app.error, [e.value for e in app.error]
    assert len(app.get("vega_lite_chart")) == CHARTS
    text = text_of(app)
    assert f"the image ({size[0]}×{size[1]} px)" in text and "16-class decision" in text


def test_a_cue_conflict_example_sets_the_pair_and_names_the_decision_s_cue(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    app.radio(key="probe_source").set_value("Cue-conflict example").run()
    assert app.selectbox(key="probe_example").value == STORED
    app.selectbox(key="probe_example").set_value("bear/bear1-bicycle1.png").run()
    assert not app.exception and not app.error
    shape = next(box for box in app.selectbox if box.label == "Shape class")
    texture = next(box for box in app.selectbox if box.label == "Texture class")
    assert (shape.value, texture.value) == ("bear", "bicycle")
    assert "*bear* (shape)" in text_of(app) and len(app.get("vega_lite_chart")) == CHARTS
    shape.set_value("clock").run()  # the pair is the user's: both classes the same
    texture = next(box for box in app.selectbox if box.label == "Texture class")
    texture.set_value("clock").run()
    assert "this pair does not test anything" in text_of(app)


def test_without_the_index_lists_the_top5_is_shown_and_the_reason_said(monkeypatch, probe_env, tmp_path):
    app = open_page(monkeypatch, probe_env, CLIPDASH_DATA_ROOT=made_up_root(tmp_path, indices=False))
    upload(app, "photo.png", png())
    assert not app.error, [e.value for e in app.error]
    assert len(app.get("vega_lite_chart")) == 1  # the top-5
    notes = [info.value for info in app.info]
    assert len(notes) == 1 and notes[0].startswith("The 16-class decision needs the 16 classes' ImageNet-1k")
    assert "imagenet16_indices.json is missing" in notes[0]


def test_without_any_class_names_the_top5_shows_indices_and_says_so(monkeypatch, probe_env, tmp_path):
    def unavailable():
        raise ImportError("no timm here")

    monkeypatch.setattr(classifier_probe, "_packaged_names", unavailable)
    app = open_page(monkeypatch, probe_env, CLIPDASH_DATA_ROOT=made_up_root(tmp_path))
    upload(app, "photo.png", png())
    assert not app.error, [e.value for e in app.error]
    assert [info.value for info in app.info] == [
        "No ImageNet-1k class names are available (timm's packaged list: no timm here), so the top-5 shows "
        "class indices (0–999)."
    ]
    assert len(app.get("vega_lite_chart")) == CHARTS


def test_imagenet_names_read_the_data_root_s_list_first(tmp_path):
    folder = made_up_root(tmp_path) / "cue-conflict"
    assert classifier_probe.imagenet_names(folder).source == "timm's packaged ImageNet-1k class list"
    lines = [f"n{i:08d} class {i}, synonym" for i in range(1000)]
    (folder / "imagenet1k_wnids.txt").write_text("\n".join(lines) + "\n")
    names = classifier_probe.imagenet_names(folder)
    assert names.source == str(folder / "imagenet1k_wnids.txt") and names.labels[7] == "class 7"
    (folder / "imagenet1k_wnids.txt").write_text("\n".join(lines[:10]))  # damaged: the packaged list
    assert classifier_probe.imagenet_names(folder).labels[0] == "tench"


def test_a_typed_classifier_spec_is_the_classifier_s_choice():
    from clipdash.probe import choices

    typed = choices.typed_choice(" timm:efficientnet_lite1 ")
    assert typed == choices.classifier_choices()[1] and typed.classifier
    assert (
        typed.spec == "timm:efficientnet_lite1"
        and typed.label == "EfficientNet-Lite1 (ImageNet-1k classifier)"
    )
    with pytest.raises(ModelSpecError, match="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        choices.typed_choice("timm:resnet50")


def test_the_pair_ranking_ties_count_for_shape():
    import pandas as pd

    sixteen = pd.DataFrame({"class": ["a", "b", "c"], "probability": [0.2, 0.5, 0.2]})
    ranking = classifier_probe.pair_ranking(sixteen, ("a", "c"))
    assert ranking["rank"].tolist() == [2, 2] and ranking["higher"].tolist() == [True, False]
    assert classifier_probe.pair_ranking(sixteen, ("a", "b"))["higher"].tolist() == [False, True]
    with pytest.raises(ValueError, match="choose from a, b, c"):
        classifier_probe.pair_ranking(sixteen, ("a", "z"))


@pytest.mark.parametrize("variant, size, resized", [(1, 240, 272), (2, 260, 292)])
def test_lite1_and_lite2_see_their_own_input_size(monkeypatch, probe_env, variant, size, resized):
    app = open_page(monkeypatch, probe_env, model=f"EfficientNet-Lite{variant} (ImageNet-1k classifier)")
    upload(app, "photo.png", png())
    assert not app.error and len(app.get("vega_lite_chart")) == CHARTS
    assert f"{size}×{size} px input" in app.status[0].label
    assert f"what the model sees ({size} px: the centre of the image resized to {resized} px)" in text_of(app)


# --- on the real stimuli and index lists -------------------------------------------------------------------


@pytest.mark.shared_data
def test_sixteen_class_scores_agree_with_the_engine_s_classifier_path(shared_data, lite0):
    """The probe's 16 scores of a stimulus are the engine's (RunInputs decoding, ClassifierContext logits,
    the cue-conflict measurement's classifier_compute) to 1e-5."""
    inputs = RunInputs(shared_data, lite0.loaded.resize_to, limit=1)  # the first conflict stimulus
    (name,) = inputs.cue_conflict.names
    ctx = ClassifierContext(lite0.loaded, inputs, CPU, batch_size=8)
    classnames = list(inputs.cue_conflict.classnames)
    engine = imagenet_to_16_mean(
        softmax(ctx.logits("cue-conflict"), axis=1), load_imagenet16_indices(shared_data), classnames
    )[0]
    stored = classifier_compute(ctx, ClassifierCueConflictParams()).tables["cue_conflict_decisions"].iloc[0]

    folder = shared_data / "cue-conflict"
    image = load_rgb(folder / "stimuli" / name)
    pair = (stored["shape_class"], stored["texture_class"])
    result = classifier_probe.probe_classifier(lite0, image, pair, classnames, folder)
    assert result.decoded.shape == (256, 256, 3) and np.array_equal(
        result.decoded, inputs.pixels("cue-conflict")[0]
    )
    assert result.sixteen["class"].tolist() == classnames
    np.testing.assert_allclose(result.sixteen["probability"], engine, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        result.pair["probability"], [stored["shape_score"], stored["texture_score"]], rtol=0, atol=1e-5
    )
    assert result.decision == stored["decision"]


@pytest.mark.shared_data
def test_a_stored_stimulus_on_the_page_shows_the_engine_s_scores(monkeypatch, probe_env, shared_data, lite0):
    """The real stimulus the page opens with, its real class names and index lists: the page's sentence
    carries the probe module's scores (themselves the engine's, above) and names the decision."""
    app = open_page(monkeypatch, probe_env, CLIPDASH_DATA_ROOT=shared_data)
    app.radio(key="probe_source").set_value("Cue-conflict example").run()
    assert not app.exception and not app.error
    assert app.selectbox(key="probe_example").value == STORED
    folder = shared_data / "cue-conflict"
    result = classifier_probe.probe_classifier(
        lite0, load_rgb(folder / "stimuli" / STORED), ("cat", "elephant"), data_root=folder
    )
    shape, texture = result.pair["probability"]
    text = text_of(app)
    assert (
        f"with mean probability {shape:.4f}, *elephant* (texture)" in text and f"with {texture:.4f}." in text
    )
    assert f"The 16-class decision (the highest of the 16 scores) is **{result.decision}**" in text
    assert f"Class names from {folder / 'imagenet1k_wnids.txt'}." in text
    assert len(app.get("vega_lite_chart")) == CHARTS
