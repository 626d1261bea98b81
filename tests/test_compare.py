"""The comparison analysis (probit, Huber lines and their fit, model groups) on hand-made numbers, and the
comparison queries on a small database of every model group."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, spearmanr
from sklearn.linear_model import HuberRegressor

from clipdash import charts
from clipdash.evals import compare
from clipdash.store import queries

APP = str(Path(__file__).resolve().parents[1] / "app.py")

ACC = ("acc1", "cifar10", "")
NOISY = ("acc1", "cifar10-c/gaussian_noise", "severity=mean")
SRCC = ("srcc", "tid2013", "distortion=all")


def test_probit_of_known_accuracies():
    assert compare.probit([0.5])[0] == 0.0
    assert compare.probit(0.8413) == pytest.approx(1.0, abs=1e-3)  # Φ(1) = 0.84134
    assert compare.probit(0.1587) == pytest.approx(-1.0, abs=1e-3)
    ends = compare.probit([0.0, 1.0])  # clipped to [1e-4, 1 - 1e-4]: finite
    assert ends == pytest.approx([-3.719, 3.719], abs=1e-3)
    assert math.isnan(compare.probit([math.nan])[0])


def test_probit_is_scipy_norm_ppf():
    values = np.array([0.0, 1e-5, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0, math.nan])
    clipped = np.clip(values, compare.PROBIT_EPS, 1 - compare.PROBIT_EPS)
    np.testing.assert_array_equal(compare.probit(values), norm.ppf(clipped))


def test_importing_compare_leaves_the_fit_libraries_for_the_first_fit():
    """A fresh process: the module (what the Compare page imports before its first chart) and a probit axis
    bring neither scikit-learn nor scipy.stats; the first fit does, and says so."""
    code = (
        "import sys\n"
        "from clipdash.evals import compare\n"
        "heavy = lambda: [m for m in ('sklearn', 'scipy.stats') if m in sys.modules]\n"
        "compare.probit([0.5])\n"
        "print(len(heavy()), compare.fit_libraries_loaded())\n"
        "fit = compare.huber_fit([0, 1, 2, 3], [1, 3, 5, 7])\n"
        "print(len(heavy()), compare.fit_libraries_loaded(), fit.n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False", "2", "True", "4"]


def test_probit_refuses_values_that_are_not_accuracies():
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        compare.probit([0.5, 1.2])
    assert compare.probit_applicable([0.0, 0.3, math.nan, 1.0])
    assert not compare.probit_applicable([-0.1, 0.3])
    assert not compare.probit_applicable([math.nan])


def test_huber_fit_of_a_symmetric_square_by_hand():
    """(0,0), (0,1), (1,0), (1,1): by symmetry slope 0 and intercept 0.5; the residuals are ±0.5, so
    SS_res = 4 · 0.25 = 1 = SS_tot and R² = 0; the ranks are unrelated, ρ = 0."""
    fit = compare.huber_fit([0, 0, 1, 1], [0, 1, 0, 1])
    assert fit.n == 4
    assert fit.slope == pytest.approx(0.0, abs=1e-5)
    assert fit.intercept == pytest.approx(0.5, abs=1e-5)
    assert fit.r2 == pytest.approx(0.0, abs=1e-9)
    assert fit.spearman == 0.0


def test_huber_fit_on_a_line_by_hand():
    """y = 2x + 1 exactly: the line itself, R² = 1."""
    fit = compare.huber_fit([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0])
    assert (fit.slope, fit.intercept) == pytest.approx((2.0, 1.0), abs=1e-5)
    assert fit.r2 == pytest.approx(1.0) and fit.spearman == pytest.approx(1.0)


def test_huber_fit_agrees_with_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    x = rng.random(40)
    y = 0.7 * x + 0.1 + 0.05 * rng.standard_normal(40)
    fit = compare.huber_fit(x, y)
    model = HuberRegressor(epsilon=compare.HUBER_EPSILON, alpha=0.0, max_iter=1000).fit(x[:, None], y)
    assert fit.slope == pytest.approx(model.coef_[0], rel=1e-6)
    assert fit.intercept == pytest.approx(model.intercept_, rel=1e-6)
    assert fit.spearman == pytest.approx(spearmanr(x, y).statistic)
    predicted = fit.slope * x + fit.intercept
    assert fit.r2 == pytest.approx(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))


def test_an_outlier_moves_least_squares_but_not_huber():
    x = np.arange(10.0)
    y = 2 * x + 1
    y[9] = 100.0  # one wild point (the line says 19)
    ols_slope, _ = np.polyfit(x, y, 1)
    fit = compare.huber_fit(x, y)
    assert ols_slope > 6  # least squares is pulled far off
    assert (fit.slope, fit.intercept) == pytest.approx((2.0, 1.0), abs=1e-3)
    assert fit.r2 < 0.2  # the outlier stays in R²: the line explains little of its squared spread


@pytest.mark.parametrize(
    ("x", "y"),
    [([0.1, 0.2], [0.3, 0.4]), ([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]), ([0.1, math.nan, 0.3], [0.1, 0.2, 0.3])],
    ids=["two points", "constant x", "two finite pairs"],
)
def test_huber_fit_is_nan_when_undefined(x, y):
    fit = compare.huber_fit(x, y)
    assert fit.n == (3 if len(set(x)) == 1 else 2)
    assert all(math.isnan(v) for v in (fit.slope, fit.intercept, fit.spearman, fit.r2))


def test_huber_fit_r2_is_nan_for_constant_y():
    fit = compare.huber_fit([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert fit.slope == pytest.approx(0.0, abs=1e-6) and math.isnan(fit.r2) and math.isnan(fit.spearman)


def test_huber_fit_refuses_unpaired_values():
    with pytest.raises(ValueError, match="differ in length"):
        compare.huber_fit([0.1, 0.2, 0.3], [0.1, 0.2])


def test_model_groups_from_the_source_column():
    assert compare.model_group("pretrained") == "pretrained CLIP"
    assert compare.model_group("classifier") == "ImageNet classifier"
    assert compare.model_group("directory") == compare.model_group("file") == "CLIP trajectory"
    assert set(compare.GROUPS) == {"CLIP trajectory", "pretrained CLIP", "ImageNet classifier"}


def test_group_fits_and_their_lines():
    points = pd.DataFrame(
        {
            "group": ["a"] * 4 + ["b"] * 2,
            "x": [0.0, 1.0, 2.0, 3.0, 0.5, 0.6],
            "y": [1.0, 3.0, 5.0, 7.0, 0.1, 0.2],
        }
    )
    fits = compare.group_fits(points).set_index("group")
    assert fits.loc["a", ["n", "slope", "intercept", "x_min", "x_max"]].tolist() == pytest.approx(
        [4, 2.0, 1.0, 0.0, 3.0], abs=1e-5
    )
    assert fits.loc["b", "n"] == 2 and math.isnan(fits.loc["b", "slope"])
    lines = compare.fit_lines(fits.reset_index())
    assert lines["group"].tolist() == ["a", "a"]  # none for b
    assert lines[["x", "y"]].to_numpy() == pytest.approx(np.array([[0.0, 1.0], [3.0, 7.0]]), abs=1e-5)


def test_training_fraction_and_checkpoint_choice():
    points = pd.DataFrame(
        {"run": ["a", "a", "a", "b", "c"], "epoch": [0, 1, 2, 0, -1], "last_epoch": [2, 2, 2, 0, -1]}
    )
    fraction = compare.training_fraction(points["epoch"], points["last_epoch"])
    assert fraction.tolist()[:3] == [0.0, 0.5, 1.0]
    assert fraction.iloc[3:].isna().all()  # one epoch 0: no range; epoch -1: not a trajectory
    assert compare.pick_checkpoints(points, "all") is points
    assert compare.pick_checkpoints(points, "last")[["run", "epoch"]].values.tolist() == [
        ["a", 2],
        ["b", 0],
        ["c", -1],
    ]
    assert compare.pick_checkpoints(points, "epoch", 1)["run"].tolist() == ["a", "c"]
    with pytest.raises(ValueError, match="choose from all, last, epoch"):
        compare.pick_checkpoints(points, "first")
    with pytest.raises(ValueError, match="needs an epoch"):
        compare.pick_checkpoints(points, "epoch")


def test_axis_values_transform_only_the_axes_asked():
    points = pd.DataFrame({"x": [0.5, 0.8413], "y": [0.5, 2.0]})
    shown = compare.axis_values(points, probit_x=True, probit_y=False)
    assert shown["x_axis"].tolist() == pytest.approx([0.0, 1.0], abs=1e-3)
    assert shown["y_axis"].tolist() == [0.5, 2.0]
    with pytest.raises(ValueError):
        compare.axis_values(points, probit_x=False, probit_y=True)


# --- the queries ------------------------------------------------------------------------------------


def _default_pairs(db) -> tuple[tuple[str, str], ...]:
    chosen = queries.default_settings(db)
    return tuple(zip(chosen["run"], chosen["setting"], strict=True))


def test_comparison_points_take_each_run_under_its_own_setting(comparison_db):
    """traj-a has zero-shot under photo (4 epochs) and seed (epochs 0-1); traj-b only under seed. Drawn
    with each run's default, traj-a's points all come from photo: seed, passed for traj-b, never reaches
    traj-a, and no (run, epoch) appears twice."""
    pairs = _default_pairs(comparison_db)
    assert ("traj-a", "z-photo") in pairs and ("traj-b", "z-seed") in pairs
    points = queries.comparison_points(comparison_db, ACC, NOISY, pairs)
    assert not points.duplicated(["run", "epoch"]).any()
    a = points[points["run"] == "traj-a"]
    assert a["epoch"].tolist() == [0, 1, 2, 3]
    assert set(a["x_setting"]) == {"z-photo"} and set(a["y_setting"]) == {"noise"}
    assert a["x"].tolist() == pytest.approx([0.2, 0.35, 0.5, 0.65])  # never seed's 0.1
    assert set(points.loc[points["run"] == "traj-b", "x_setting"]) == {"z-seed"}
    assert points.set_index("run").loc["timm:resnet50", ["source", "epoch", "last_epoch"]].tolist() == [
        "classifier",
        -1,
        -1,
    ]
    assert pd.isna(points.set_index("run").loc["timm:resnet50", "n_params"])
    assert points.set_index("run").loc["ViT-B-32:openai", "pretrained_tag"] == "openai"
    assert set(a["last_epoch"]) == {3}


def test_two_settings_of_one_run_are_never_one_point(comparison_db):
    pairs = (("traj-a", "z-photo"), ("traj-a", "z-seed"), ("traj-a", "noise"))
    with pytest.raises(ValueError, match="two settings of one measurement were given for run.s. traj-a"):
        queries.comparison_points(comparison_db, ACC, NOISY, pairs)
    seed_only = queries.comparison_points(
        comparison_db, ACC, NOISY, (("traj-a", "z-seed"), ("traj-a", "noise"))
    )
    assert seed_only["epoch"].tolist() == [0, 1] and seed_only["x"].tolist() == pytest.approx([0.1, 0.1])


def test_series_values_and_empty_choices(comparison_db):
    pairs = _default_pairs(comparison_db)
    curves = queries.series_values(comparison_db, SRCC, pairs)
    assert len(curves) == 4 + 3 + 3 + 1 and set(curves["setting"]) == {"tid"}
    assert curves.loc[curves["run"] == "traj-a", "value"].tolist() == pytest.approx([-0.1, 0.0, 0.1, 0.2])
    assert queries.comparison_points(comparison_db, ACC, SRCC, ()).empty
    assert queries.series_values(comparison_db, SRCC, ()).empty
    with pytest.raises(ValueError, match="two settings"):
        queries.series_values(comparison_db, ACC, (("traj-a", "z-photo"), ("traj-a", "z-seed")))


def test_label_points_groups_every_model(comparison_db):
    points = compare.label_points(
        queries.comparison_points(comparison_db, ACC, SRCC, _default_pairs(comparison_db))
    )
    groups = points.groupby("group")["run"].nunique().to_dict()
    assert groups == {"CLIP trajectory": 2, "pretrained CLIP": 3, "ImageNet classifier": 1}
    b = points[points["run"] == "traj-b"]
    assert b["fraction"].tolist() == [0.0, 0.5, 1.0]
    fits = compare.group_fits(points).set_index("group")
    assert fits.loc["pretrained CLIP", "n"] == 3 and fits.loc["pretrained CLIP", "r2"] == pytest.approx(1.0)
    assert math.isnan(fits.loc["ImageNet classifier", "slope"])


# --- the page -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loaded", [False, True], ids=["fit libraries cold", "fit libraries loaded"])
def test_compare_page_draws_the_points_before_the_fits_only_while_their_imports_are_cold(
    loaded, comparison_db, monkeypatch
):
    """Cold (a fresh server: the first fit imports scikit-learn and SciPy), the scatter goes out without
    lines, then the fits run and the same chart is drawn again with them; loaded, it is drawn once. Either
    way the page ends with the dashed lines, the fit table and the points table."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    calls = []
    scatter, fits = charts.comparison_scatter, compare.group_fits

    def drawn(points, lines, *args, **kwargs):
        calls.append("points" if lines is None else "points and lines")
        return scatter(points, lines, *args, **kwargs)

    def fitted(*args, **kwargs):
        calls.append("fits")
        return fits(*args, **kwargs)

    monkeypatch.setattr(charts, "comparison_scatter", drawn)
    monkeypatch.setattr(compare, "group_fits", fitted)
    monkeypatch.setattr(compare, "fit_libraries_loaded", lambda: loaded)
    monkeypatch.setenv("CLIPDASH_DB", str(comparison_db))
    monkeypatch.delenv("CLIPDASH_DB_DIRS", raising=False)
    st.cache_data.clear()  # the page caches its fits
    app = AppTest.from_file(APP, default_timeout=120)
    app.switch_page("pages/compare.py").run()
    assert not app.exception, [e.value for e in app.exception]
    expected = ["fits", "points and lines"] if loaded else ["points", "fits", "points and lines"]
    assert calls == expected
    chart = app.get("vega_lite_chart")[0].proto.spec
    assert "strokeDash" in chart  # the final scatter has the fit lines
    table = app.dataframe[0].value.set_index("group")
    assert table["n"].to_dict() == {"CLIP trajectory": 7, "ImageNet classifier": 1, "pretrained CLIP": 3}
    assert len(app.get("vega_lite_chart")) == 2 and len(app.dataframe) == 2
    assert len(app.get("download_button")) == 6  # CSV, PNG, SVG per chart
    calls.clear()
    app.radio(key="compare-along").set_value("fraction").run()  # the points are as they were: no refit
    assert not app.exception and "fits" not in calls
