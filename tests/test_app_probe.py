"""The "Probe an image" page through Streamlit's AppTest (which can simulate uploads in streamlit 1.67).

The model is a tiny random checkpoint in the trainer's format, listed in a results database the page
finds through CLIPDASH_DB; AppTest runs the page in this process, so the tiny architecture registered by
the ``tiny_arch`` fixture is known to it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from clipdash.store import CheckpointResult, ResultWriter
from clipdash.train.loop import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
PAGE = "pages/probe.py"
TIMEOUT = 180  # seconds per script run: the first one imports torch and embeds 1,280 prompts
CHARTS = 4  # vote, 16 classes, top-5, prompt profile
DOWNLOADS = 3 * CHARTS  # CSV, PNG and SVG per chart


def png(width: int = 40, height: int = 30) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def probe_env(tiny_arch: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A database listing one tiny checkpoint, and a data root with two cue-conflict stimuli."""
    root = tmp_path_factory.mktemp("probe-app")
    checkpoint = root / "tiny-run" / "epoch_4.pt"
    checkpoint.parent.mkdir()
    torch.manual_seed(0)
    save_checkpoint(checkpoint, 4, tiny_arch, open_clip.create_model(tiny_arch))
    db = root / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(
            CheckpointResult("tiny-run", 4, f"{tiny_arch}@{checkpoint.parent}", tiny_arch, "directory",
                             str(checkpoint), None, [])
        )  # fmt: skip
    for name in ("bear/bear1-clock2.png", "cat/cat10-elephant3.png"):
        path = root / "data" / "cue-conflict" / "stimuli" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(56, 56))
    return {"CLIPDASH_DB": str(db), "CLIPDASH_DATA_ROOT": str(root / "data"), "label": "tiny-run · epoch 4"}


def open_page(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **overrides: str) -> AppTest:
    """The probe page with the tiny checkpoint chosen (the bundled model would be the default)."""
    for name in ("CLIPDASH_DB", "CLIPDASH_DATA_ROOT"):
        monkeypatch.setenv(name, overrides.get(name, env[name]))
    monkeypatch.delenv("CLIPDASH_DB_DIRS", raising=False)
    if "CLIPDASH_MODEL_CONFIGS" in overrides:
        monkeypatch.setenv("CLIPDASH_MODEL_CONFIGS", overrides["CLIPDASH_MODEL_CONFIGS"])
    else:
        monkeypatch.delenv("CLIPDASH_MODEL_CONFIGS", raising=False)
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    app.switch_page(PAGE).run()
    model = app.selectbox(key="probe_model")
    tiny = next(option for option in model.options if option.startswith(env["label"]))
    model.set_value(tiny).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def text_of(app: AppTest) -> str:
    """The page's text: markdown, info boxes, captions and image captions."""
    texts = [element.value for element in [*app.markdown, *app.info, *app.caption]]
    texts += [image.caption for element in app.get("image") for image in element.proto.imgs]
    return "\n".join(texts)


def test_upload_shows_votes_top5_and_profile(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    assert "Upload an image or pick" in text_of(app)
    app.file_uploader(key="probe_upload").upload("photo.png", png(), "image/png")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert len(app.get("vega_lite_chart")) == CHARTS
    assert len(app.get("download_button")) == DOWNLOADS
    text = text_of(app)
    assert "prompt wins: cos =" in text and "*cat* (shape)" in text and "*elephant* (texture)" in text
    assert "of the maximum, ln 32" in text
    assert app.metric[0].label == "Entropy of the profile" and app.metric[0].value.endswith(" nats")
    assert "32×32 px input" in app.status[0].label


def test_a_file_that_is_not_an_image_gives_one_plain_sentence(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    app.file_uploader(key="probe_upload").upload("photo.png", b"this is text, not a PNG", "image/png")
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "This file is not a PNG, JPEG, WebP, GIF or BMP image, so it cannot be decoded."
    ]
    assert not app.get("vega_lite_chart")


def test_cue_conflict_example_sets_the_pair_from_its_name(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    app.radio(key="probe_source").set_value("Cue-conflict example").run()
    assert app.selectbox(key="probe_example").value == "cat/cat10-elephant3.png"
    app.selectbox(key="probe_example").set_value("bear/bear1-clock2.png").run()
    assert not app.exception and not app.error
    shape = next(box for box in app.selectbox if box.label == "Shape class")
    texture = next(box for box in app.selectbox if box.label == "Texture class")
    assert (shape.value, texture.value) == ("bear", "clock")
    assert "*bear* (shape)" in text_of(app) and len(app.get("vega_lite_chart")) == CHARTS


def test_missing_stimuli_are_explained(monkeypatch, probe_env, tmp_path):
    app = open_page(monkeypatch, probe_env, CLIPDASH_DATA_ROOT=str(tmp_path))
    app.radio(key="probe_source").set_value("Cue-conflict example").run()
    assert not app.exception
    assert any("Cue-conflict examples are not available" in info.value for info in app.info)


def test_custom_labels_and_their_errors(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    app.file_uploader(key="probe_upload").upload("photo.png", png(), "image/png")
    app.run()
    app.selectbox(key="probe_labels").set_value("Custom labels…").run()
    app.text_input(key="probe_custom").set_value("a dog, a cat").run()
    assert not app.exception and not app.error
    assert len(app.get("vega_lite_chart")) == CHARTS
    app.text_input(key="probe_custom").set_value(" , ").run()
    assert [e.value for e in app.error] == [
        "Type at least one label, separated by commas (for example: cat, dog, a red car)."
    ]


def test_typed_model_must_be_a_pretrained_tag(monkeypatch, probe_env):
    app = open_page(monkeypatch, probe_env)
    app.selectbox(key="probe_model").set_value("Type an open_clip ARCH:TAG…").run()
    app.text_input(key="probe_spec").set_value("ViT-B-32@/etc/passwd").run()
    assert not app.exception
    assert "ARCH:TAG" in app.error[0].value
    app.text_input(key="probe_spec").set_value("ViT-Q-99:openai").run()
    assert "unknown architecture" in app.error[0].value


def test_a_missing_model_config_is_reported(monkeypatch, probe_env, tmp_path):
    app = open_page(monkeypatch, probe_env, CLIPDASH_MODEL_CONFIGS=str(tmp_path / "absent.json"))
    assert [e.value for e in app.error] == [
        f"CLIPDASH_MODEL_CONFIGS: model config not found: {tmp_path / 'absent.json'}"
    ]


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    gradient = (np.arange(width * height) % 251).astype(np.uint8).reshape(height, width)
    Image.fromarray(np.stack([gradient] * 3, axis=-1)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "size", [(5000, 1), (1, 5000), (1, 1), (3, 4000), (20_000, 1), (2, 2)], ids=lambda s: f"{s[0]}x{s[1]}"
)
def test_images_of_extreme_shape_give_votes_not_an_exception(monkeypatch, probe_env, size):
    app = open_page(monkeypatch, probe_env)
    app.file_uploader(key="probe_upload").upload("odd.png", png_of_size(*size), "image/png")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert len(app.get("vega_lite_chart")) == CHARTS
    assert f"{size[0]}×{size[1]} px" in text_of(app)


def test_the_uploader_filters_no_type_so_a_refused_one_gets_a_sentence(monkeypatch, probe_env):
    """A type filter makes the browser refuse a file with only a red icon; the page explains instead."""
    app = open_page(monkeypatch, probe_env)
    uploader = app.file_uploader(key="probe_upload")
    assert uploader.allowed_type == [] and uploader.label == "PNG, JPEG, WebP, GIF or BMP"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'
    uploader.upload("drawing.svg", svg, "image/svg+xml")
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "SVG drawings are not supported; please export it as a PNG, JPEG, WebP, GIF or BMP image and "
        "upload that."
    ]


def test_a_gif_upload_gives_votes(monkeypatch, probe_env):
    buffer = io.BytesIO()
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(buffer, format="GIF")
    app = open_page(monkeypatch, probe_env)
    app.file_uploader(key="probe_upload").upload("animation.gif", buffer.getvalue(), "image/gif")
    app.run()
    assert not app.exception and not app.error
    assert len(app.get("vega_lite_chart")) == CHARTS and "the image (40×30 px)" in text_of(app)


def test_the_template_set_defaults_to_the_one_the_checkpoint_was_stored_with(
    monkeypatch, probe_env, tmp_path
):
    """The page used the 80 ImageNet templates whatever the run; a seed-template run's votes differed."""
    from clipdash.store import EvalResult

    db = tmp_path / "seed.duckdb"
    checkpoint = Path(probe_env["CLIPDASH_DB"]).parent / "tiny-run" / "epoch_4.pt"
    stored = query_arch(probe_env["CLIPDASH_DB"])
    rows = [("texture_bias", "cue-conflict", "protocol=two_prompt", 0.5)]
    with ResultWriter(db) as writer:
        writer.write(
            CheckpointResult("tiny-run", 4, f"{stored}@{checkpoint.parent}", stored, "directory",
                             str(checkpoint), None, [EvalResult("cue_conflict", 1.0, rows, setting="s")],
                             settings={"s": ("cue_conflict", '{"templates": "seed"}')})
        )  # fmt: skip
    app = open_page(monkeypatch, {**probe_env, "CLIPDASH_DB": str(db)})
    app.file_uploader(key="probe_upload").upload("photo.png", png(), "image/png")
    app.run()
    assert not app.exception and not app.error
    templates = next(box for box in app.selectbox if box.label == "Prompt templates of the 16 classes")
    assert templates.value == "seed"
    assert "stored cue-conflict votes used: seed" in text_of(app)
    assert len(app.get("vega_lite_chart")) == CHARTS


def query_arch(db: str) -> str:
    from clipdash.store.queries import query

    return query(db, "SELECT arch FROM runs WHERE run = 'tiny-run'")["arch"].item()
