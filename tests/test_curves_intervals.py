"""Uncertainty on the Curves page (issue 14): bands from the stored intervals, faded curves whose interval
spans most of their metric's range, Table 1's r and partial r given accuracy with intervals from replicates
of whole curves, and the bootstrap distribution of each curve's peak epoch.

Known answers on hand-made arrays, then a tiny run through the real engine (3 epochs, B = 200): the
replicates read back per epoch reproduce the stored intervals exactly and resample the same items at every
epoch, a database without ``metric_intervals`` draws without bands, and the page renders it all."""

from __future__ import annotations

import json
import math
import shutil

import altair as alt
import duckdb
import numpy as np
import pandas as pd
import pytest

from clipdash import charts
from clipdash.evals import bootstrap
from clipdash.evals.bootstrap import BootstrapConfig, percentile_interval
from clipdash.evals.curves import (
    correlation_replicates,
    correlation_table,
    interval_spans,
    metric_range,
    normalise_curves,
    partial_correlation,
    peak_distribution,
    rowwise_pearson,
)
from clipdash.evals.stats import pearson
from clipdash.store import queries
from tests.conftest import REPO, cli_args

ACCURACY = ("acc1", "cifar10", "")
NOISY = ("acc1", "cifar10-c/gaussian_noise", "severity=mean")
DROP = ("noise_drop", "cifar10-c/gaussian_noise", "severity=mean")
SRCC = ("srcc", "tid2013", "distortion=all")
SERIES = (ACCURACY, NOISY, SRCC, DROP)
B = 200


# --- known answers ---------------------------------------------------------------------------------------


def test_partial_correlation_hand_computed():
    # r_xy = r_xz = r_yz = 1/2: (1/2 − 1/4) / √(3/4 · 3/4) = (1/4) / (3/4) = 1/3
    assert partial_correlation(0.5, 0.5, 0.5) == pytest.approx(1 / 3)
    # z unrelated to x and y: the partial r is r itself
    assert partial_correlation(0.3, 0.0, 0.0) == pytest.approx(0.3)
    # 0.8, 0.6, 0.6: (0.8 − 0.36) / (1 − 0.36) = 0.44 / 0.64
    assert partial_correlation(0.8, 0.6, 0.6) == pytest.approx(0.6875)
    assert math.isnan(partial_correlation(0.5, 1.0, 0.2))  # z explains x entirely
    np.testing.assert_allclose(partial_correlation([0.5, 0.3], [0.5, 0.0], [0.5, 0.0]), [1 / 3, 0.3])


def test_partial_correlation_equals_the_correlation_of_residuals():
    """The textbook definition: regress x and y on z, correlate what is left."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=40)
    x, y = z + rng.normal(size=40), 0.5 * z - rng.normal(size=40) + 0.3 * rng.normal(size=40)
    x_left = x - np.polyval(np.polyfit(z, x, 1), z)
    y_left = y - np.polyval(np.polyfit(z, y, 1), z)
    expected = np.corrcoef(x_left, y_left)[0, 1]
    table = correlation_table(pd.DataFrame({"x": x, "y": y, "z": z}), control="z")
    assert table.loc[0, "partial_r"] == pytest.approx(expected, abs=1e-12)
    r = np.corrcoef([x, y, z])
    assert partial_correlation(r[0, 1], r[0, 2], r[1, 2]) == pytest.approx(expected, abs=1e-12)


def test_rowwise_pearson_agrees_with_numpy_and_the_scalar_pearson():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 12)), rng.normal(size=(5, 12))
    r = rowwise_pearson(x, y)
    for b in range(5):
        assert r[b] == pytest.approx(np.corrcoef(x[b], y[b])[0, 1], abs=1e-12)
        assert r[b] == pytest.approx(pearson(x[b], y[b]), abs=1e-12)
    # B = 1: the replicate is the plain statistic
    one = correlation_replicates({"x": x[:1], "y": y[:1]})
    assert list(one) == [("x", "y")] and one[("x", "y")][0] == pytest.approx(np.corrcoef(x[0], y[0])[0, 1])


def test_rowwise_pearson_uses_the_epochs_both_have_and_gives_nan_when_undefined():
    x = np.array([[1.0, np.nan, 3.0, 4.0, 2.0], [1.0, 2.0, np.nan, np.nan, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    y = np.array([[1.0, 2.0, 2.0, 4.0, np.nan], [3.0, 1.0, 2.0, 2.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    r = rowwise_pearson(x, y)
    assert r[0] == pytest.approx(pearson([1.0, 3.0, 4.0], [1.0, 2.0, 4.0]))  # epochs 0, 2, 3
    assert r[1] == pytest.approx(pearson([1.0, 2.0, 3.0], [3.0, 1.0, 5.0]))
    assert math.isnan(r[2])  # a constant curve
    assert math.isnan(rowwise_pearson([[1.0, 2.0, np.nan]], [[2.0, 3.0, 4.0]])[0])  # 2 shared epochs
    constant = np.full((1, 6), 0.1)  # rounding in the mean must not make a slope out of nothing
    assert math.isnan(rowwise_pearson(constant, np.arange(6.0)[None, :])[0])


def test_trivial_correlation_both_curves_follow_accuracy():
    """Two curves that rise with accuracy correlate near 1; given accuracy, nearly nothing is left."""
    rng = np.random.default_rng(7)
    epochs = 200
    accuracy = 1 - np.exp(-np.arange(epochs) / 30)
    curves = pd.DataFrame(
        {
            "accuracy": accuracy,
            "noisy_accuracy": 0.8 * accuracy + 0.01 * rng.normal(size=epochs),
            "tid2013": 0.3 + 0.5 * accuracy + 0.01 * rng.normal(size=epochs),
        }
    )
    table = correlation_table(curves, control="accuracy").set_index(["first", "second"])
    pair = table.loc[("noisy_accuracy", "tid2013")]
    assert pair["r"] > 0.99
    assert abs(pair["partial_r"]) < 0.2
    assert math.isnan(table.loc[("accuracy", "tid2013"), "partial_r"])  # no partial r given itself
    assert (table["n_epochs"] == epochs).all()


def test_correlation_table_intervals_from_replicates():
    """Each row's interval is the percentile interval of the r of the replicate curves, row by row."""
    rng = np.random.default_rng(3)
    epochs = 8
    base = {
        "a": np.linspace(0, 1, epochs),
        "b": np.linspace(0, 1, epochs) ** 2,
        "c": np.sin(np.arange(epochs)),
    }
    curves = pd.DataFrame(base)
    replicates = {name: values + 0.05 * rng.normal(size=(50, epochs)) for name, values in base.items()}
    table = correlation_table(curves, replicates, control="a").set_index(["first", "second"])
    r_b = rowwise_pearson(replicates["b"], replicates["c"])
    assert table.loc[("b", "c"), ["r_low", "r_high"]].tolist() == pytest.approx(percentile_interval(r_b))
    assert table.loc[("b", "c"), "r"] == pytest.approx(np.corrcoef(base["b"], base["c"])[0, 1])
    partial_b = partial_correlation(
        r_b,
        rowwise_pearson(replicates["b"], replicates["a"]),
        rowwise_pearson(replicates["c"], replicates["a"]),
    )
    expected = percentile_interval(partial_b)
    assert table.loc[("b", "c"), ["partial_low", "partial_high"]].tolist() == pytest.approx(expected)
    assert table.loc[("b", "c"), "resamples"] == 50
    # a curve without replicates has r but no interval
    table = correlation_table(curves, {"a": replicates["a"]})
    assert table["r_low"].isna().all() and table["r"].notna().all() and (table["resamples"] == 0).all()


def test_peak_distribution_hand_made():
    epochs = np.array([0, 1, 2, 5, 9])
    replicates = {
        "curve": np.array(
            [
                [0.1, 0.5, 0.4, 0.3, 0.2],  # peak at epoch 1
                [0.1, 0.5, 0.6, 0.3, 0.2],  # 2
                [0.1, 0.7, 0.6, 0.3, 0.2],  # 1
                [0.1, 0.2, 0.3, 0.4, 0.9],  # 9
                [np.nan] * 5,  # no value: left out
                [0.1, 0.8, 0.8, np.nan, 0.2],  # tie: the first, epoch 1
            ]
        )
    }
    row = peak_distribution(replicates, epochs, by_epoch=5).iloc[0]
    assert row["likely_peak"] == 1 and row["p_likely_peak"] == pytest.approx(3 / 5)
    assert row["p_peak_by"] == pytest.approx(4 / 5) and row["resamples"] == 5


def test_metric_ranges():
    assert metric_range("srcc") == metric_range("plcc") == (-1.0, 1.0)
    for metric in ("acc1", "texture_bias", "ece", "auroc", "fpr95", "noise_drop", "shape_fraction"):
        assert metric_range(metric) == (0.0, 1.0)
    assert metric_range("nll") is None and metric_range("temperature") is None


def _interval_rows() -> pd.DataFrame:
    rows = []
    for epoch in range(4):
        rows.append(("r", epoch, "srcc", "tid2013", "distortion=all", 0.1, 7, -0.65, 0.85))  # spans 0.75
        rows.append(
            ("r", epoch, "acc1", "cifar10", "", 0.2 * epoch, 10000, 0.2 * epoch - 0.01, 0.2 * epoch + 0.01)
        )
        rows.append(("r", epoch, "nll", "cifar10", "", 5.0, 10, 0.0, 100.0))  # unbounded: never faded
        rows.append(("r", epoch, "acc5", "cifar10", "", 0.5, pd.NA, np.nan, np.nan))  # no interval
    columns = ["run", "epoch", "metric", "dataset", "variant", "value", "n", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns).astype({"n": "Int64"})


def test_interval_spans_fade_curves_wider_than_half_their_range():
    spans = interval_spans(_interval_rows()).set_index("metric")
    assert spans.loc["srcc", "span"] == pytest.approx(0.75) and spans.loc["srcc", "faded"]
    assert spans.loc["srcc", "n"] == 7 and spans.loc["srcc", ["range_low", "range_high"]].tolist() == [-1, 1]
    assert spans.loc["acc1", "span"] == pytest.approx(0.02) and not spans.loc["acc1", "faded"]
    assert math.isnan(spans.loc["nll", "span"]) and not spans.loc["nll", "faded"]
    assert math.isnan(spans.loc["acc5", "width"]) and not spans.loc["acc5", "faded"]


def test_normalise_curves_rescales_bands_with_their_curve():
    frame = _interval_rows()
    frame = frame[frame["metric"] == "acc1"]
    normalised = normalise_curves(frame)
    assert normalised["value"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # width 0.02 over a range of 0.6
    assert (normalised["ci_high"] - normalised["ci_low"]).tolist() == pytest.approx([0.02 / 0.6] * 4)
    assert normalised.loc[normalised["epoch"] == 0, "ci_low"].item() == pytest.approx(-0.01 / 0.6)


def _layer_data(chart, index: int) -> pd.DataFrame:
    data = chart.layer[index].data
    return chart.data if data is alt.Undefined else data


def test_curve_panel_draws_bands_faded_curves_and_n_in_tooltips():
    frame = _interval_rows()
    frame = frame[frame["metric"].isin(["srcc", "acc1"])].assign(
        faded=lambda f: f["metric"] == "srcc",
        legend_note=lambda f: np.where(f["metric"] == "srcc", "n = 7 image pairs", ""),
    )
    pretrained = frame.iloc[[1]].assign(run="pretrained", epoch=-1)
    chart = charts.curve_panel(pd.concat([frame, pretrained]), "title", "value")
    spec = chart.to_dict()
    marks = [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]
    ]
    assert marks == ["area", "rect", "line", "rule"]  # bands under the lines; the pretrained strip
    band = _layer_data(chart, 0)
    assert len(band) == 8 and (band["epoch"] >= 0).all()
    names = set(_layer_data(chart, 2)["curve"])
    assert "r — srcc · tid2013 · distortion=all (n = 7 image pairs)" in names  # faded: n in the legend
    assert "r — acc1 · cifar10" in names
    tooltips = {t["field"] for t in spec["layer"][2]["encoding"]["tooltip"]}
    assert {"n", "ci_low", "ci_high"} <= tooltips
    assert spec["layer"][2]["encoding"]["opacity"]["condition"]["test"] == "datum.faded"


def test_curve_panel_without_intervals_is_unchanged():
    frame = _interval_rows().drop(columns=["n", "ci_low", "ci_high"])
    chart = charts.curve_panel(frame[frame["metric"] == "acc1"], "title", "value")
    assert len(chart.layer) == 1 and chart.to_dict()["layer"][0]["mark"]["type"] == "line"
    # intervals that are all missing draw no band either
    chart = charts.curve_panel(_interval_rows().query("metric == 'acc5'"), "title", "value")
    assert len(chart.layer) == 1


def test_correlation_heatmap_tooltips_carry_the_intervals():
    matrix = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["a", "b"], columns=["a", "b"])
    intervals = pd.DataFrame({"first": ["a"], "second": ["b"], "r_low": [-0.8], "r_high": [-0.1]})
    chart = charts.correlation_heatmap(matrix, pd.Series({"a": 3.0, "b": np.nan}), intervals)
    tidy = _layer_data(chart, 0)
    row = tidy[(tidy["curve"] == "b") & (tidy["against"] == "a")].iloc[0]
    assert (row["r_low"], row["r_high"]) == (-0.8, -0.1)
    assert tidy.loc[tidy["curve"] == tidy["against"], "r_low"].isna().all()


# --- through the engine ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def curves_db(tmp_path_factory, tiny_run, shared_data):
    from clipdash.precompute.cli import main

    db = tmp_path_factory.mktemp("curves-intervals") / "results.duckdb"
    argv = cli_args(
        tiny_run, shared_data, db, "--evals", "zeroshot,noise,tid2013", "--bootstrap-resamples", str(B)
    )
    assert main(argv) == 0
    return db


def _settings(db) -> list[tuple[str, str]]:
    defaults = queries.default_settings(db)
    return list(zip(defaults["run"], defaults["setting"], strict=True))


def test_curves_with_intervals_join_the_stored_ones(curves_db):
    curves = queries.metric_curves_with_intervals(curves_db, SERIES, _settings(curves_db))
    assert len(curves) == 4 * 3 and curves["ci_low"].notna().all()
    assert ((curves["ci_low"] <= curves["value"] + 1e-9) | (curves["metric"] == "srcc")).all()
    assert (curves["resamples"] == B).all() and (curves["level"] == 0.95).all()
    assert (curves.loc[curves["metric"] == "acc1", "n"] == 24).all()  # --limit 24
    # the same frame as metric_curves, with the interval columns after
    plain = queries.metric_curves(curves_db, SERIES, _settings(curves_db))
    pd.testing.assert_frame_equal(curves[plain.columns], plain)


def test_replicates_reproduce_the_stored_intervals_and_draw_the_same_items_at_every_epoch(curves_db):
    settings = _settings(curves_db)
    run = settings[0][0]
    found = queries.curve_replicates(curves_db, run, tuple(s for _, s in settings), SERIES, B, 0)
    assert found.epochs == (0, 1, 2) and set(found.values) == set(SERIES)
    stored = queries.metric_curves_with_intervals(curves_db, SERIES, settings)
    for series in SERIES:
        rows = stored[(stored["metric"] == series[0]) & (stored["dataset"] == series[1])]
        for j, epoch in enumerate(found.epochs):
            row = rows[rows["epoch"] == epoch].iloc[0]
            low, high = percentile_interval(found.values[series][:, j])
            assert (low, high) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-12, nan_ok=True)
            assert found.n[series][j] == row["n"]
    # replicate b of the accuracy curve is, at every epoch, the accuracy of the items drawn in draw b
    counts = bootstrap.resample_counts(24, BootstrapConfig(B, 0))
    top1 = queries.query(
        curves_db,
        "SELECT epoch, top1 FROM zeroshot_predictions WHERE dataset = 'cifar10' ORDER BY epoch, image_index",
    )
    for j, epoch in enumerate(found.epochs):
        outcome = top1.loc[top1["epoch"] == epoch, "top1"].to_numpy(float)
        np.testing.assert_allclose(found.values[ACCURACY][:, j], counts @ outcome / 24)
    aligned = found.aligned(ACCURACY, [2, 0, 7])
    np.testing.assert_array_equal(aligned[:, 0], found.values[ACCURACY][:, 2])
    assert np.isnan(aligned[:, 2]).all()


def test_a_database_without_intervals_draws_without_bands(curves_db, tmp_path):
    old = tmp_path / "old.duckdb"
    shutil.copy(curves_db, old)
    with duckdb.connect(str(old)) as con:
        con.execute("DELETE FROM metric_intervals WHERE metric = 'srcc'")
    curves = queries.metric_curves_with_intervals(old, SERIES, _settings(old))
    assert curves.loc[curves["metric"] == "srcc", "ci_low"].isna().all()
    assert curves.loc[curves["metric"] != "srcc", "ci_low"].notna().all()
    with duckdb.connect(str(old)) as con:
        con.execute("DROP TABLE metric_intervals")
    curves = queries.metric_curves_with_intervals(old, SERIES, _settings(old))
    assert len(curves) == 12 and curves[["n", "ci_low", "ci_high"]].isna().all().all()
    assert not interval_spans(curves)["faded"].any()
    charts.curve_panel(curves, "title", "value").to_dict()


def test_curves_page_shows_bands_table1_and_peaks(curves_db, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CLIPDASH_DB", str(curves_db))
    monkeypatch.delenv("CLIPDASH_DB_DIRS", raising=False)
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.switch_page("pages/curves.py").run()
    assert not app.exception, [e.value for e in app.exception]
    specs = [json.loads(chart.proto.spec) for chart in app.get("vega_lite_chart")]
    assert len(specs) == 4  # accuracy (clean + noisy), TID2013 SRCC, noise drop; the heatmap
    marks = [[layer["mark"]["type"] for layer in spec.get("layer", [])] for spec in specs]
    assert sum("area" in m for m in marks) == 3  # a band on every curve panel
    table1, peaks = (frame.value for frame in app.dataframe)
    assert list(table1.columns) == [
        "pair", "r", "95 % CI of r", "partial r | accuracy", "95 % CI of partial r | accuracy", "epochs",
        "published r",
    ]  # fmt: skip
    assert len(table1) == 6 and (table1["epochs"] == 3).all()
    published = table1.set_index("pair").loc["accuracy – noise_sensitivity", "published r"]
    assert published == pytest.approx(-0.441)
    assert "P(peak ≤ epoch 2)" in peaks.columns and len(peaks) == 4
    assert peaks["P(peak ≤ epoch 2)"].eq(1).all()  # every epoch is ≤ 2
    captions = " ".join(c.value for c in app.caption)
    assert "Bands: the stored 95 % percentile-bootstrap interval" in captions and "B = 200" in captions
    assert "trivial correlation" in captions
