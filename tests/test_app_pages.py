"""Every dashboard page through Streamlit's AppTest: on a database made by the real precompute engine, on
the bundled database, on an empty one, and on paths that must be refused with a plain error."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from clipdash.store import ResultWriter

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
BUNDLED = REPO / "data" / "clipdash.duckdb"
DB_KEY = "database_path"  # the sidebar's text input (pages/common.py)
TIMEOUT = 120  # seconds per script run; generous because the first run imports torch on a busy machine
# page -> how many charts it draws on a database with results
PAGES = {
    "pages/home.py": 0,
    "pages/curves.py": 5,  # the seed paper's four panels + the correlation heatmap
    "pages/compare.py": 2,  # one measurement against another, curves of several runs
    "pages/cue_conflict.py": 3,  # shape bias per class, image grid, one image over training
    "pages/entropy.py": 2,
    "pages/temperature.py": 3,  # stored accuracy and entropy sweeps, confusion matrix
    "pages/calibration.py": 5,  # reliability diagram, ECE curve, OOD scores, AUROC and FPR curves
}


def render(page: str, db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """Run one page with ``db`` as the default database."""
    monkeypatch.setenv("CLIPDASH_DB", str(db))
    monkeypatch.delenv("CLIPDASH_DB_DIRS", raising=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.switch_page(page).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def charts(app: AppTest) -> list:
    return app.get("vega_lite_chart")


@pytest.fixture(scope="session")
def engine_db(shared_data: Path, tiny_arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three epochs of a tiny random CLIP evaluated by ``python -m clipdash.precompute`` on a few images."""
    import open_clip
    import torch

    from clipdash.precompute.cli import main

    root = tmp_path_factory.mktemp("engine")
    run_dir = root / "tinyrun"
    run_dir.mkdir()
    torch.manual_seed(0)
    model = open_clip.create_model(tiny_arch)
    for epoch in range(3):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        torch.save({"epoch": epoch, "state_dict": model.state_dict()}, run_dir / f"epoch_{epoch}.pt")
    db = root / "engine.duckdb"
    argv = [
        "--model", f"{tiny_arch}@{run_dir}/", "--data-root", str(shared_data), "--db", str(db),
        "--device", "cpu", "--limit", "40", "--templates", "photo", "--zeroshot-datasets", "cifar10",
        "--evals", "zeroshot,noise,tid2013,cue_conflict,class_agnostic,calibration,ood",
        "--probe-train-per-class", "10",
        "--ca-train-per-class", "10", "--ca-test-per-class", "5", "--embeddings-per-class", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    return db


@pytest.fixture(scope="session")
def bundled_db() -> Path:
    if not BUNDLED.is_file():
        pytest.skip(f"bundled results database not found at {BUNDLED}")
    return BUNDLED


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("empty") / "empty.duckdb"
    with ResultWriter(path):  # creates the schema, writes no rows
        pass
    return path


def _check_page_with_results(page: str, app: AppTest) -> None:
    assert len(charts(app)) == PAGES[page]
    assert not app.error
    assert len(app.get("download_button")) == 3 * PAGES[page]  # CSV, PNG, SVG per chart
    if page == "pages/home.py":
        assert len(app.dataframe) >= 3  # runs, measurements, datasets
    if page == "pages/curves.py":
        assert len(app.multiselect) == 2 and len(app.toggle) == 2
    if page == "pages/compare.py":
        assert len(app.toggle) == 2 and len(app.dataframe) == 2  # probit per axis; fits and points
    if page == "pages/cue_conflict.py":
        assert len(app.select_slider) == 1  # the epoch slider
        assert len(app.radio[0].options) == 3  # two_prompt, sixteen_class, imagenet_mean
    if page == "pages/temperature.py":
        assert len(app.metric) == 3 and len(app.radio[0].options) == 3
        assert any(c.value.startswith("95 % intervals: test accuracy ") for c in app.caption)
        assert len(app.dataframe) == 1  # per-class recall with intervals
    if page == "pages/calibration.py":
        assert len(app.select_slider) == 2  # an epoch slider for calibration and one for OOD
        assert "fitted on" in " ".join(c.value for c in app.caption)  # each temperature says on what


@pytest.mark.parametrize("page", PAGES)
def test_page_on_engine_database(page, engine_db, monkeypatch):
    app = render(page, engine_db, monkeypatch)
    _check_page_with_results(page, app)


@pytest.mark.parametrize("page", PAGES)
def test_page_on_bundled_database(page, bundled_db, monkeypatch):
    app = render(page, bundled_db, monkeypatch)
    _check_page_with_results(page, app)


@pytest.mark.parametrize("page", PAGES)
def test_page_on_empty_database(page, empty_db, monkeypatch):
    app = render(page, empty_db, monkeypatch)
    assert not charts(app) and not app.error
    messages = " ".join(info.value for info in app.info)
    assert messages.startswith("No ") and " yet" in messages
    if page != "pages/home.py":  # home shows the command in its "Adding results" section
        assert "run the precompute" in messages and "python -m clipdash.precompute" in messages


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.duckdb"
    path.write_bytes(b"\x00not a database\xff" * 512)
    return path


def _only_a_schema_version(tmp_path: Path, version: int) -> Path:
    """A database holding nothing but a schema_version table saying ``version``."""
    path = tmp_path / f"version-{version}.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"CREATE TABLE schema_version (version INTEGER); INSERT INTO schema_version VALUES ({version})"
        )
    return path


def _foreign(tmp_path: Path) -> Path:
    path = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    return path


def _damaged(tmp_path: Path) -> Path:
    """The bundled database with the middle half of its blocks overwritten (header and catalog intact)."""
    path = tmp_path / "damaged.duckdb"
    data = bytearray(BUNDLED.read_bytes())
    start, stop = len(data) // 4, 3 * len(data) // 4
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


BROKEN = {
    "missing": (lambda tmp: tmp / "missing.duckdb", "not found"),
    "garbage": (_garbage, "is not a DuckDB database"),
    "older": (lambda tmp: _only_a_schema_version(tmp, 0), "older clipdash"),
    "foreign": (_foreign, "not a clipdash results database"),
    "schema-only": (lambda tmp: _only_a_schema_version(tmp, 1), "is missing the tables"),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("kind", BROKEN)
def test_page_on_unusable_database_shows_error(page, kind, tmp_path, monkeypatch):
    make, message = BROKEN[kind]
    app = render(page, make(tmp_path), monkeypatch)
    assert not charts(app)
    assert len(app.error) == 1 and message in app.error[0].value


def test_damaged_data_blocks_give_one_sentence_on_every_page(tmp_path, monkeypatch):
    """DuckDB checks each block's checksum when it reads it: a page whose queries touch only intact blocks
    draws verified numbers; one that touches a damaged block says so in one sentence (never a traceback)."""
    db = _damaged(tmp_path)
    errors = {}
    for page in PAGES:
        app = render(page, db, monkeypatch)  # asserts no exception
        errors[page] = [e.value for e in app.error]
        assert len(errors[page]) <= 1 and all("is damaged and cannot be read" in e for e in errors[page])
        assert errors[page] or charts(app) or page == "pages/home.py"
    assert any(errors.values()), errors


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("../outside.duckdb", "'..' are not allowed"),
        ("data/reference_values.csv", "ending in .duckdb"),
        ("/etc/passwd.duckdb", "outside the allowed folders"),
        ("data/absent.duckdb", "not found"),
    ],
)
def test_sidebar_path_is_validated_before_reading(typed, message, empty_db, monkeypatch):
    app = render("pages/curves.py", empty_db, monkeypatch)
    app.text_input(key=DB_KEY).set_value(typed).run()
    assert not app.exception
    assert len(app.error) == 1 and message in app.error[0].value
    assert not app.info  # stopped before any query: no "no results" message


def test_sidebar_accepts_a_database_in_an_allowed_folder(engine_db, empty_db, monkeypatch):
    monkeypatch.setenv("CLIPDASH_DB_DIRS", str(engine_db.parent))
    monkeypatch.setenv("CLIPDASH_DB", str(empty_db))
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.switch_page("pages/entropy.py").run()
    assert app.info and not charts(app)
    app.text_input(key=DB_KEY).set_value(str(engine_db)).run()
    assert not app.exception and not app.error
    assert len(charts(app)) == PAGES["pages/entropy.py"]


def test_entrypoint_renders_home_with_database_chooser(engine_db, monkeypatch):
    monkeypatch.setenv("CLIPDASH_DB", str(engine_db))
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not app.exception
    assert app.title[0].value == "clipdash"
    assert app.sidebar.text_input(key=DB_KEY).value == str(engine_db)


def _shown(app: AppTest) -> tuple[str, str]:
    metrics = {metric.label: metric.value for metric in app.metric}
    return metrics["Test accuracy"], metrics["Mean entropy (nats)"]


def test_temperature_slider_retrains_the_probe(engine_db, monkeypatch):
    app = render("pages/temperature.py", engine_db, monkeypatch)
    slider = app.select_slider[-1]
    assert slider.label == "τ"
    shown = {}
    for tau in (0.005, 0.07, 2.0):
        app.select_slider[-1].set_value(tau).run()
        assert not app.exception
        shown[tau] = _shown(app)
    accuracies = {accuracy for accuracy, _ in shown.values()}
    entropies = [float(entropy) for _, entropy in shown.values()]
    assert len(accuracies) > 1  # the probe was refit: accuracy moves with τ
    assert entropies == sorted(entropies)  # a flatter profile at higher τ


def _interval_caption(app: AppTest, prefix: str) -> str:
    return next(c.value for c in app.caption if c.value.startswith(prefix))


def test_temperature_interval_recomputes_from_the_refit_predictions(engine_db, monkeypatch):
    """The live probe's interval: 1000 resamples of the test images (the generator resample_counts counts,
    here materialised as item indices), the 2.5th and 97.5th percentiles of the fixed probe's accuracy."""
    from clipdash.evals.retrain import retrain_class_agnostic
    from clipdash.store import queries

    app = render("pages/temperature.py", engine_db, monkeypatch)
    last = queries.class_agnostic_index(engine_db).iloc[-1]
    splits = queries.class_agnostic_features(
        engine_db, last["run"], last["setting"], last["epoch"], "cifar10"
    )
    outcome = retrain_class_agnostic(splits.train_x, splits.train_y, splits.test_x, splits.test_y, tau=0.07)
    correct = outcome.predictions == splits.test_y
    n = correct.size
    draws = np.random.default_rng([0, n]).integers(0, n, size=(1000, n))
    low, high = np.percentile(correct[draws].mean(axis=1), [2.5, 97.5])
    assert _shown(app)[0] == f"{correct.mean():.3f}"
    shown = _interval_caption(app, "95 % intervals: test accuracy ")
    assert shown.startswith(f"95 % intervals: test accuracy {low:.3f}–{high:.3f}, mean entropy ")
    assert (
        f"over the {n:,} test images (1,000 resamples)" in shown and "not the variance of refitting" in shown
    )
    recall = app.dataframe[0].value
    assert recall["test images"].sum() == n and recall["recall"].tolist() == pytest.approx(outcome.recall)


def _band_layers(app: AppTest) -> list[str]:
    import json

    spec = json.loads(charts(app)[0].proto.spec)  # the stored accuracy sweep
    return [layer["mark"]["type"] for layer in spec.get("layer", [])]


def test_temperature_stored_sweep_bands_stored_or_refit_alike(engine_db, tmp_path, monkeypatch):
    """The engine stores the sweep's intervals: the chosen epoch's curves get bands from them. A database
    without them offers to refit the epoch's stored probes, which gives the same intervals, and the same as
    the live refit at a stored τ (the same fit)."""
    import shutil

    app = render("pages/temperature.py", engine_db, monkeypatch)
    assert _band_layers(app) == ["area", "line"]
    assert "stored with the results" in _interval_caption(app, "Shaded: epoch 2's 95 % intervals")
    assert [t.label for t in app.toggle] == ["Standardise features"]
    stored = _interval_caption(app, "Stored value at this τ (C=fixed): ")
    live = _interval_caption(app, "95 % intervals: test accuracy ")
    assert stored.endswith(f"(95 % {live.split()[5].rstrip(',')})")

    without = tmp_path / "without.duckdb"
    shutil.copy(engine_db, without)
    with duckdb.connect(str(without)) as con:
        con.execute("DROP TABLE metric_intervals")
    app = render("pages/temperature.py", without, monkeypatch)
    assert _band_layers(app) == [] and not any(c.value.startswith("Shaded") for c in app.caption)
    assert _interval_caption(app, "Stored value at this τ (C=fixed): ") == stored.split(" (95 %")[0]
    app.toggle[0].set_value(True).run()  # "95 % intervals for epoch 2"
    assert not app.exception and _band_layers(app) == ["area", "line"]
    shaded = _interval_caption(app, "Shaded: epoch 2's 95 % intervals")
    assert "computed here by those refits. The refits reproduce all " in shaded
    assert _interval_caption(app, "Stored value at this τ (C=fixed): ") == stored


def test_cue_conflict_filters_and_history(engine_db, monkeypatch):
    app = render("pages/cue_conflict.py", engine_db, monkeypatch)
    app.toggle[0].set_value(True).run()  # only images whose decision changed between two epochs
    assert not app.exception
    app.radio[0].set_value("sixteen_class").run()
    assert not app.exception and len(charts(app)) >= 1


def test_curves_normalised_and_any_series(engine_db, monkeypatch):
    app = render("pages/curves.py", engine_db, monkeypatch)
    app.toggle[0].set_value(True).run()  # min-max normalise
    assert not app.exception and len(charts(app)) == PAGES["pages/curves.py"]
    app.multiselect[1].select(("acc5", "cifar10", "")).run()  # any stored series
    assert not app.exception and len(charts(app)) == PAGES["pages/curves.py"] + 1


def test_temperature_warns_when_cv_chose_c_at_the_grid_edge(bundled_db, monkeypatch):
    """On the bundled run most tuned fits chose C at the grid's end (the issue found 275 of 279 at C = 100);
    the page said so nowhere. It counts the stored ca_C_at_edge flags."""
    from clipdash.store.queries import query

    flags = query(
        bundled_db, "SELECT sum(value)::INT edge, count(*) n FROM metrics WHERE metric = 'ca_C_at_edge'"
    )
    edge, n = flags.iloc[0].tolist()
    assert n == 31 * 9 and edge > 0
    app = render("pages/temperature.py", bundled_db, monkeypatch)
    warnings = [w.value for w in app.warning]
    assert any(f"at the edge of its grid (0.01 … 100) in {edge} of {n} fits" in w for w in warnings), warnings


@pytest.fixture(scope="session")
def two_settings_db(engine_db: Path, shared_data: Path, tiny_arch: str, tmp_path_factory) -> Path:
    """The engine database plus the same run's zero-shot, noise and cue-conflict under the seed templates
    for epochs 0 and 1 only: two settings of one run."""
    import shutil

    from clipdash.precompute.cli import main

    db = tmp_path_factory.mktemp("two") / "two.duckdb"
    shutil.copy(engine_db, db)
    run_dir = engine_db.parent / "tinyrun"
    scratch = tmp_path_factory.mktemp("two-run") / "tinyrun"
    scratch.mkdir()
    for epoch in (0, 1):
        shutil.copy(run_dir / f"epoch_{epoch}.pt", scratch / f"epoch_{epoch}.pt")
    argv = [
        "--model", f"{tiny_arch}@{scratch}/", "--data-root", str(shared_data), "--db", str(db),
        "--device", "cpu", "--limit", "40", "--templates", "seed", "--zeroshot-datasets", "cifar10",
        "--evals", "zeroshot,noise,cue_conflict", "--run-name", "tinyrun",
    ]  # fmt: skip
    assert main(argv) == 0
    return db


def test_two_settings_of_a_run_are_never_one_curve(two_settings_db, monkeypatch):
    """Each (run, measurement) is drawn with one setting: the one with the most epochs by default, the
    other on request; the chart's data never holds two."""
    from clipdash import charts as chart_builders

    drawn = []  # the frames each curve panel was drawn from
    panel = chart_builders.curve_panel
    monkeypatch.setattr(
        chart_builders, "curve_panel", lambda frame, *a, **k: drawn.append(frame) or panel(frame, *a, **k)
    )
    app = render("pages/curves.py", two_settings_db, monkeypatch)
    choosers = [box for box in app.selectbox if box.label.startswith("Settings of tinyrun's")]
    assert {box.label.split("'s ")[1].split(" ")[0] for box in choosers} == {
        "zeroshot",
        "noise",
        "cue_conflict",
    }
    zeroshot = next(box for box in choosers if "zeroshot" in box.label)
    assert "templates=photo" in zeroshot.format_func(zeroshot.value)  # 3 epochs beat 2
    assert any("templates=photo" in c.value for c in app.caption)

    def accuracy_epochs() -> list[int]:
        frame = next(
            f for f in drawn[::-1] if (f["metric"] == "acc1").all() and "cifar10" in set(f["dataset"])
        )
        epochs = frame.loc[frame["dataset"] == "cifar10", "epoch"].tolist()
        assert len(epochs) == len(set(epochs))  # one value per epoch: never two settings in one curve
        return sorted(epochs)

    assert accuracy_epochs() == [0, 1, 2]
    seed = next(option for option in zeroshot.options if "templates=seed" in option)
    app.session_state["setting-tinyrun-zeroshot"] = seed.rsplit("[", 1)[1].rstrip("]")  # the setting id
    app.run()
    assert not app.exception
    assert accuracy_epochs() == [0, 1]
    cue = render("pages/cue_conflict.py", two_settings_db, monkeypatch)
    assert any(box.label.startswith("Settings of tinyrun's cue_conflict") for box in cue.selectbox)


def _fits(app: AppTest) -> pd.DataFrame:
    """The Compare page's table of Huber fits, one row per model group."""
    return app.dataframe[0].value.set_index("group")


def test_compare_probit_axes_and_another_x_on_one_trajectory(bundled_db, monkeypatch):
    """The bundled database holds one training run (31 epochs): one group, one line through 31 points."""
    app = render("pages/compare.py", bundled_db, monkeypatch)
    assert _fits(app).index.tolist() == ["CLIP trajectory"] and _fits(app).loc["CLIP trajectory", "n"] == 31
    linear = _fits(app).loc["CLIP trajectory", "slope"]
    for axis in ("x", "y"):
        app.toggle(key=f"compare-probit-{axis}").set_value(True).run()
        assert not app.exception and len(charts(app)) == 2
    assert _fits(app).loc["CLIP trajectory", "slope"] != pytest.approx(linear)  # fitted in probit units
    app.selectbox(key="compare-x").set_value(("n_images", "cifar10", "")).run()  # counts, not accuracies
    assert not app.exception and len(charts(app)) == 2
    assert app.toggle(key="compare-probit-x").disabled and not app.toggle(key="compare-probit-y").disabled
    assert any("outside [0, 1]" in caption.value for caption in app.caption)
    assert math.isnan(_fits(app).loc["CLIP trajectory", "slope"])  # one x value: no line
    app.radio[0].set_value("last").run()
    assert not app.exception and _fits(app).loc["CLIP trajectory", "n"] == 1
    app.radio[0].set_value("epoch").run()
    app.select_slider[0].set_value(10).run()
    assert not app.exception and app.dataframe[1].value["epoch"].tolist() == [10]
    app.radio(key="compare-along").set_value("fraction").run()
    assert not app.exception and len(charts(app)) == 2


def test_compare_draws_every_group_each_run_under_one_setting(comparison_db, monkeypatch):
    app = render("pages/compare.py", comparison_db, monkeypatch)
    fits = _fits(app)
    assert fits["n"].to_dict() == {"CLIP trajectory": 7, "ImageNet classifier": 1, "pretrained CLIP": 3}
    assert math.isnan(fits.loc["ImageNet classifier", "slope"])
    points = app.dataframe[1].value
    assert not points.duplicated(["run", "epoch"]).any()
    assert set(points.loc[points["run"] == "traj-a", "x_setting"]) == {
        "z-photo"
    }  # its 4 epochs, not seed's 2
    assert set(points.loc[points["run"] == "traj-b", "x_setting"]) == {"z-seed"}
    app.selectbox(key="compare-y").set_value(("srcc", "tid2013", "distortion=all")).run()  # below 0 at times
    assert not app.exception and app.toggle(key="compare-probit-y").disabled
    app.toggle(key="compare-probit-x").set_value(True).run()
    assert not app.exception and len(charts(app)) == 2


def test_calibration_page_moves_through_epochs_and_test_sets(engine_db, monkeypatch):
    app = render("pages/calibration.py", engine_db, monkeypatch)
    app.select_slider[0].set_value(0).run()
    assert not app.exception and len(charts(app)) == PAGES["pages/calibration.py"]
    assert app.selectbox(key="calibration-dataset").options == ["cifar10"]
    bins = app.get("vega_lite_chart")[0]
    assert "after temperature scaling" in str(bins.proto.spec)


def test_calibration_page_on_a_database_from_before_the_measurement(tmp_path, monkeypatch):
    """An older database has no calibration or OOD tables: the page says so instead of failing."""
    db = tmp_path / "older.duckdb"
    with ResultWriter(db):  # the schema of today, then the two tables taken away
        pass
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE calibration_bins; DROP TABLE ood_scores")
    app = render("pages/calibration.py", db, monkeypatch)
    assert not charts(app) and "No calibration or OOD results" in " ".join(i.value for i in app.info)


def test_calibration_page_draws_each_ood_protocol_with_its_own_id_set(
    engine_db, shared_data, tmp_path, monkeypatch
):
    """A run with OOD results under ID = CIFAR-10 and ID = Imagenette: the page offers both settings and
    draws the chosen one's sets and curves, captioned with its ID set."""
    import json
    import shutil

    from clipdash.precompute.cli import main
    from clipdash.store.queries import query, run_settings

    db = tmp_path / "two-protocols.duckdb"
    shutil.copy(engine_db, db)
    run, spec = query(db, "SELECT run, model_spec FROM runs").iloc[0]
    argv = ["--model", spec, "--data-root", str(shared_data), "--db", str(db), "--device", "cpu",
            "--limit", "40", "--templates", "photo", "--evals", "ood", "--ood-id", "imagenette"]  # fmt: skip
    assert main(argv) == 0
    settings = run_settings(db, run, "ood")
    assert len(settings) == 2
    app = render("pages/calibration.py", db, monkeypatch)
    for row in settings.itertuples():
        app.selectbox(key=f"setting-{run}-ood").set_value(row.setting).run()
        assert not app.exception
        id_set = json.loads(row.settings)["id_dataset"]
        assert f"ID: {id_set}." in " ".join(c.value for c in app.caption)
        assert len(charts(app)) == PAGES["pages/calibration.py"]


def test_cue_conflict_page_gives_the_change_in_shape_bias_with_a_paired_interval(engine_db, monkeypatch):
    app = render("pages/cue_conflict.py", engine_db, monkeypatch)
    labels = [m.label for m in app.metric]
    assert "Shape bias here minus epoch 0" in labels and "Images whose cue changed" in labels
    assert "95 % paired interval of the change" in " ".join(c.value for c in app.caption)
    app.radio[1].set_value("another model").run()  # the engine database holds one run
    assert not app.exception
    assert "No other run in this database" in " ".join(i.value for i in app.info)
