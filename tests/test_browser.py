"""The whole dashboard in a real browser: Debian's chromium, driven by Playwright, on `streamlit run app.py`.

The server reads the bundled database when it is here (with a model for the probe page), else a database
the real precompute engine writes for one random checkpoint of the tiny test architecture, which the probe
page registers through CLIPDASH_MODEL_CONFIGS.
Every page is opened from the sidebar and checked for Streamlit exceptions and tracebacks; on the probe
page an image is uploaded and the charts must appear. Screenshots go to ``screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdash.probe import choices

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
BUNDLED_DB = REPO / "data" / "clipdash.duckdb"
BUNDLED_MODEL = REPO / "data" / "bundled_model.pt"
SCREENSHOTS = REPO / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TINY_CONFIG = REPO / "tests" / "assets" / "tiny-clip.json"  # registered in the server by the probe page
STIMULUS = "cue-conflict/stimuli/cat/cat10-elephant3.png"
SERVER_START_S = 120
PAGE_SETTLE_S = 120
PROBE_S = 300  # the first probe loads the model and embeds 1,280 class prompts on a busy CPU
QUIET_S = 1.5  # the app counts as settled once Streamlit's "running" widget has been gone this long


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_models(db: Path) -> list[choices.ModelChoice]:
    """What the probe page will offer with ``db``: the bundled checkpoint and the database's files."""
    bundled = choices.bundled_choice(BUNDLED_MODEL)
    return ([bundled] if bundled else []) + choices.database_choices(db)


def engine_database(data_root: Path, root: Path) -> Path:
    """One random checkpoint of the tiny test architecture, evaluated by the real engine on a few images."""
    import open_clip
    import torch

    from clipdash.models.configs import register_model_config
    from clipdash.precompute.cli import main
    from clipdash.train.loop import save_checkpoint

    arch = register_model_config(TINY_CONFIG)
    run = root / "tiny-random"
    run.mkdir()
    torch.manual_seed(0)
    save_checkpoint(run / "epoch_0.pt", 0, arch, open_clip.create_model(arch))
    db = root / "engine.duckdb"
    argv = [
        "--model", f"{arch}@{run}/", "--data-root", str(data_root), "--db", str(db), "--device", "cpu",
        "--limit", "20", "--templates", "photo", "--zeroshot-datasets", "cifar10",
        "--evals", "zeroshot,cue_conflict,class_agnostic", "--probe-train-per-class", "10",
        "--ca-train-per-class", "10", "--ca-test-per-class", "5", "--embeddings-per-class", "2",
    ]  # fmt: skip
    if main(argv) != 0:
        raise RuntimeError(f"the precompute engine failed on {run}")
    return db


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled database if the probe page has a model with it, else an engine-made one."""
    if BUNDLED_DB.is_file() and probe_models(BUNDLED_DB):
        return BUNDLED_DB
    data_root = Path(os.environ.get("CLIPDASH_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not data_root.is_dir():
        pytest.skip(
            f"no bundled database with a model at {BUNDLED_DB}, and no data at {data_root} to make one"
        )
    return engine_database(data_root, tmp_path_factory.mktemp("browser-db"))


@pytest.fixture(scope="module")
def server(database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app.py`` on a free local port; always terminated."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {
        **os.environ,
        "CLIPDASH_DB": str(database),
        "CLIPDASH_MODEL_CONFIGS": str(TINY_CONFIG),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(
        f"streamlit did not serve {url} within {SERVER_START_S} s:\n{log.read_text(errors='replace')}"
    )


def settle(page, timeout_s: float = PAGE_SETTLE_S) -> None:
    """Wait until the script run is over: the "running" widget gone for QUIET_S seconds."""
    running = page.locator('[data-testid="stStatusWidget"]')
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if running.count() and running.first.is_visible():
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return
        page.wait_for_timeout(250)
    pytest.fail(f"the app was still running after {timeout_s} s")


def assert_no_errors(page, where: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{where}: {exceptions.first.inner_text()}"
    body = page.inner_text("body")
    assert "Traceback" not in body, f"{where}: {body}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def upload_image(tmp_path: Path) -> Path:
    """A cue-conflict stimulus when the data is here (read in place), else a generated picture."""
    data_root = Path(os.environ.get("CLIPDASH_SHARED_DATA", REPO.parent / "shared" / "data"))
    if (data_root / STIMULUS).is_file():
        return data_root / STIMULUS
    y, x = np.mgrid[0:160, 0:240]
    pixels = np.stack([x % 256, y * 255 // 160, (x + y) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "gradient.png"
    Image.fromarray(pixels).save(path)
    return path


def odd_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """Uploads the browser must hand to the page (no type filter), with what the page then says."""
    svg = tmp_path / "drawing.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')
    gif = tmp_path / "flat.gif"
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(gif)
    line = tmp_path / "line.png"
    Image.fromarray(np.full((1, 5000, 3), 200, np.uint8)).save(line)
    return [
        (svg, "SVG drawings are not supported"),
        (gif, "the image (40×30 px)"),
        (line, "the image (5000×1 px)"),
    ]


def check_odd_uploads(page, tmp_path: Path) -> None:
    """An SVG gets one sentence; a GIF and a 5000 × 1 PNG get votes (they raised or were refused before)."""
    for path, said in odd_files(tmp_path):
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
        page.get_by_text(said).first.wait_for(timeout=PROBE_S * 1000)
        settle(page, PROBE_S)
        assert_no_errors(page, f"Probe an image, after uploading {path.name}")
        body = page.inner_text("body")
        if path.suffix == ".svg":
            assert page.locator('[data-testid="stVegaLiteChart"]').count() == 0
        else:
            assert "prompt wins: cos =" in body, body
        page.screenshot(path=str(SCREENSHOTS / f"probe-{path.stem}.png"), full_page=True)


def test_every_page_renders_and_the_probe_page_probes(browser, server, tmp_path):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1800})  # the app scrolls inside its frame
    page.set_default_timeout(PAGE_SETTLE_S * 1000)
    try:
        page.goto(server)
        page.locator('[data-testid="stSidebarNavLink"]').first.wait_for()
        settle(page)
        links = page.locator('[data-testid="stSidebarNavLink"]')
        # A link's text is its Material icon's name, then the page title.
        titles = [links.nth(i).inner_text().strip().splitlines()[-1] for i in range(links.count())]
        assert "Probe an image" in titles, titles
        for index, title in enumerate(titles):
            href = links.nth(index).get_attribute("href")
            links.nth(index).click()
            page.wait_for_url(href)
            settle(page, PROBE_S if title == "Probe an image" else PAGE_SETTLE_S)
            assert_no_errors(page, title)
            page.screenshot(path=str(SCREENSHOTS / f"{index + 1:02d}-{slug(title)}.png"), full_page=True)

        links.filter(has_text="Probe an image").click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            str(upload_image(tmp_path))
        )
        charts = page.locator('[data-testid="stVegaLiteChart"]')
        charts.nth(3).wait_for(timeout=PROBE_S * 1000)
        settle(page, PROBE_S)
        assert_no_errors(page, "Probe an image, after the upload")
        assert charts.count() == 4
        body = page.inner_text("body")
        assert "prompt wins: cos =" in body and "Shape or texture?" in body
        assert "Entropy of the profile" in body
        page.screenshot(path=str(SCREENSHOTS / "probe-uploaded.png"), full_page=True)
        charts.nth(3).scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "probe-uploaded-profile.png"))
        check_odd_uploads(page, tmp_path)
    finally:
        page.close()
