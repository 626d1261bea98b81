"""The Compare page's charts: which rows each layer draws, probit axes, colours by group or run."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from clipdash import charts
from clipdash.evals import compare


def _points() -> pd.DataFrame:
    rows = [("traj", e, "directory", 0.2 + 0.2 * e, 0.1 + 0.2 * e, 10**6, 2) for e in range(3)]
    rows += [("ViT-B-32:openai", -1, "pretrained", 0.9, 0.7, 1.5 * 10**8, -1)]
    rows += [("timm:resnet50", -1, "classifier", 0.8, 0.3, math.nan, -1)]
    frame = pd.DataFrame(rows, columns=["run", "epoch", "source", "x", "y", "n_params", "last_epoch"])
    frame = frame.assign(arch="a", pretrained_tag=None, training_data="d")
    return compare.axis_values(compare.label_points(frame), probit_x=True, probit_y=False)


def test_comparison_scatter_layers():
    points = _points()
    lines = compare.fit_lines(compare.group_fits(points, "x_axis", "y_axis"))
    chart = charts.comparison_scatter(points, lines, compare.GROUPS, ("x", "y"), (True, False))
    paths, sized, unsized, fits = (layer.data for layer in chart.layer)
    assert paths["run"].unique().tolist() == ["traj"]  # only trajectories are joined
    assert set(sized["run"]) == {"traj", "ViT-B-32:openai"}  # sized by n_params
    assert unsized["run"].tolist() == ["timm:resnet50"]  # unknown size: still drawn
    assert fits["group"].unique().tolist() == ["CLIP trajectory"]  # the only group with 3 points
    spec = chart.to_dict()
    x_axis = spec["layer"][1]["encoding"]["x"]["axis"]
    assert "cumulativeNormal" in x_axis["labelExpr"]  # probit values labelled as accuracies
    assert x_axis["values"][charts.PROBIT_TICKS.index(0.5)] == 0.0
    assert "axis" not in spec["layer"][1]["encoding"]["y"]
    assert spec["layer"][1]["encoding"]["color"]["scale"]["domain"] == list(compare.GROUPS)


def test_comparison_scatter_without_lines_draws_the_points_alone():
    """The Compare page's first draw while the fits are under way: the same points, no dashed layer."""
    points = _points()
    chart = charts.comparison_scatter(points, None, compare.GROUPS, ("x", "y"), (True, False))
    assert len(chart.layer) == 3
    assert "strokeDash" not in str(chart.to_dict())
    full = charts.comparison_scatter(
        points, compare.fit_lines(compare.group_fits(points, "x_axis", "y_axis")), compare.GROUPS, ("x", "y")
    )
    assert [layer.to_dict()["mark"] for layer in full.layer[:3]] == [
        layer.to_dict()["mark"] for layer in chart.layer
    ]


def test_run_curves_colour_by_run_or_by_group():
    curves = _points().rename(columns={"y": "value"})
    few = charts.run_curves(curves, "fraction", "acc1", compare.GROUPS)
    lines, rules = (layer.data for layer in few.layer)
    assert set(lines["run"]) == {"traj"} and set(rules["run"]) == {"ViT-B-32:openai", "timm:resnet50"}
    assert few.to_dict()["layer"][0]["encoding"]["color"]["field"] == "run"
    assert few.to_dict()["layer"][0]["encoding"]["x"]["field"] == "fraction"
    many = pd.concat([curves.assign(run=f"run-{i}") for i in range(charts.MAX_RUN_COLOURS + 1)])
    chart = charts.run_curves(many, "epoch", "acc1", compare.GROUPS)
    assert chart.to_dict()["layer"][0]["encoding"]["color"]["field"] == "group"
    with pytest.raises(ValueError, match="choose from epoch, fraction"):
        charts.run_curves(curves, "step", "acc1", compare.GROUPS)
