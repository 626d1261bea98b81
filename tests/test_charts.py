"""Chart builders (data routed to the right layers, labels, exports) and the published reference lines."""

from __future__ import annotations

import math
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clipdash import charts, references
from clipdash.errors import DatasetError

REFERENCES_CSV = Path(__file__).resolve().parents[1] / "data" / "reference_values.csv"


def _layer_data(chart, index: int) -> pd.DataFrame:
    """A layer's data (Altair moves data that all layers share up to the layer chart)."""
    data = chart.layer[index].data
    return chart.data if data is alt.Undefined else data


def _curves() -> pd.DataFrame:
    rows = [("trained", e, "acc1", "cifar10", "", 0.1 * e) for e in range(3)] + [
        ("trained", e, "acc1", "cifar10-c/gaussian_noise", "severity=mean", 0.05 * e) for e in range(3)
    ]
    rows += [("ViT-B-32:openai", -1, "acc1", "cifar10", "", 0.89)]
    return pd.DataFrame(rows, columns=["run", "epoch", "metric", "dataset", "variant", "value"])


def test_curve_panel_draws_pretrained_as_rules_and_names_curves_by_what_differs():
    refs = pd.DataFrame([("human", 0.9, "p", "s")], columns=["model", "value", "protocol", "source"])
    chart = charts.curve_panel(_curves(), "Accuracy", "acc1", refs)
    lines, rules, published = (_layer_data(chart, i) for i in range(3))
    assert (lines["epoch"] >= 0).all() and len(lines) == 6
    assert rules["epoch"].tolist() == [-1]
    assert published["model"].tolist() == ["human"]
    # two runs and two series: the legend names both, without the shared metric and templates
    assert set(lines["curve"]) == {"trained — cifar10", "trained — cifar10-c/gaussian_noise · severity=mean"}
    assert rules["curve"].tolist() == ["ViT-B-32:openai — cifar10"]
    chart.to_dict()  # a valid Vega-Lite spec


def test_curve_panel_names_curves_by_run_when_one_series():
    curves = _curves()
    curves = curves[curves["dataset"] == "cifar10"]
    chart = charts.curve_panel(curves, "Accuracy", "acc1")
    assert set(_layer_data(chart, 0)["curve"]) == {"trained"}
    assert len(chart.layer) == 2  # curves and the pretrained rule, no reference layer


def test_correlation_heatmap_labels_rows_with_peaks():
    matrix = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["a", "b"], columns=["a", "b"])
    chart = charts.correlation_heatmap(matrix, pd.Series({"a": 3.0, "b": math.nan}))
    tidy = _layer_data(chart, 0)
    assert set(tidy["curve"]) == {"a (peak @ 3)", "b"}
    assert tidy.loc[(tidy["curve"] == "b") & (tidy["against"] == "a"), "r"].item() == -0.5


def test_shape_bias_chart_splits_subjects_mean_and_model():
    model = pd.DataFrame(
        {"shape_class": ["cat", "all"], "shape_bias": [0.2, 0.3], "n_shape": 1, "n_texture": 2}
    )
    humans = pd.DataFrame(
        [("subject-01", "cat", 0.9), ("subject-02", "cat", 1.0), ("mean", "cat", 0.95)],
        columns=["subject", "shape_class", "shape_bias"],
    )
    chart = charts.shape_bias_chart(model, humans, "trained, epoch 2")
    assert _layer_data(chart, 0)["subject"].tolist() == ["subject-01", "subject-02"]
    assert _layer_data(chart, 1)["shape_bias"].tolist() == [0.95]
    assert chart.to_dict()["layer"][0]["encoding"]["y"]["sort"] == ["all", "cat"]


def test_thumbnails_read_only_existing_files_under_the_root(tmp_path):
    root = tmp_path / "stimuli"
    (root / "cat").mkdir(parents=True)
    Image.new("RGB", (224, 224), "red").save(root / "cat" / "cat1-dog1.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "secret.png")
    found = charts.stimulus_thumbnails(root, ["cat/cat1-dog1.png", "../secret.png", "cat/absent.png"])
    assert list(found) == ["cat/cat1-dog1.png"]
    assert found["cat/cat1-dog1.png"].startswith("data:image/png;base64,")


def _decisions(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": [f"cat/cat{i}-dog1.png" for i in range(n)],
            "cue": ["shape", "texture", "other"] * (n // 3),
            "decision": "cat",
            "shape_class": "cat",
            "texture_class": "dog",
            "margin": 0.1,
        }
    )


def test_decision_grid_places_images_in_rows_and_falls_back_to_names():
    chart = charts.decision_grid(_decisions(9), {}, columns=4)
    cells = _layer_data(chart, 0)
    assert cells["row"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert cells["name"].iloc[0] == "cat0-dog1"
    assert chart.to_dict()["layer"][1]["mark"]["type"] == "text"
    with_images = charts.decision_grid(_decisions(3), {f"cat/cat{i}-dog1.png": "data:x" for i in range(3)})
    assert with_images.to_dict()["layer"][1]["mark"]["type"] == "image"


def test_confusion_frame_names_labels_and_keeps_counts():
    tidy = charts.confusion_frame(np.array([[3, 1], [0, 2]]), ["cat"])
    assert tidy.values.tolist() == [["cat", "cat", 3], ["cat", "1", 1], ["1", "cat", 0], ["1", "1", 2]]
    charts.confusion_chart(tidy).to_dict()


def test_entropy_and_sweep_charts_mark_ln_k():
    values = pd.DataFrame({"epoch": [0, 0], "tau": [0.07, 0.07], "entropy": [1.0, 3.0]})
    histogram = charts.entropy_histogram(values, math.log(32))
    assert len(histogram.layer) == 2 and _layer_data(histogram, 0)["group"].iloc[0] == "epoch 0, τ=0.07"
    assert len(charts.entropy_histogram(values, None).layer) == 1
    means = pd.DataFrame({"epoch": [0, 1], "tau": [0.07, 0.07], "mean_entropy": [3.0, 2.5]})
    assert len(charts.mean_entropy_chart(means, math.log(32)).layer) == 2
    sweep = pd.DataFrame({"epoch": [0, 0], "mode": ["fixed", "cv"], "tau": [0.07, 0.07], "value": [0.3, 0.4]})
    assert charts.tau_sweep_chart(sweep, "acc", "t").to_dict()["encoding"]["x"]["scale"]["type"] == "log"


def test_chart_image_exports_png_and_svg():
    chart = charts.confusion_chart(charts.confusion_frame(np.eye(2, dtype=int), ["a", "b"]))
    assert charts.chart_image(chart, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in charts.chart_image(chart, "svg")[:200]
    with pytest.raises(ValueError, match="png"):
        charts.chart_image(chart, "pdf")


# --- published reference values ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return references.load_references(REFERENCES_CSV)


def test_reference_file_keeps_the_published_columns(published):
    assert list(published.columns) == list(references.REFERENCE_COLUMNS)
    assert published["source"].notna().all()


def test_texture_bias_references_are_one_minus_shape_bias(published):
    rows = references.references_for(published, "texture_bias", "cue-conflict", "protocol=two_prompt")
    human = rows[rows["model"].str.startswith("human")]
    assert human["value"].item() == pytest.approx(1 - 0.958)
    assert human["protocol"].item().startswith("1 − shape bias")


def test_references_match_metric_dataset_and_variant(published):
    tid = references.references_for(published, "srcc", "tid2013", "distortion=all")
    assert set(tid["model"]) >= {"PSNR", "DISTS"}
    assert references.references_for(published, "srcc", "tid2013", "distortion=jpeg").empty
    cifar10 = references.references_for(published, "acc1", "cifar10", "")
    assert len(cifar10) == 5 and cifar10["value"].max() == pytest.approx(0.9351)
    assert references.references_for(published, "acc1", "imagenette", "").empty
    shape = references.references_for(published, "shape_bias", "cue-conflict", "protocol=sixteen_class")
    assert 0.958 in shape["value"].tolist()
    per_class = "class=cat;protocol=sixteen_class"
    assert references.references_for(published, "shape_bias", "cue-conflict", per_class).empty


def test_seed_paper_table_one(published):
    table = references.published_curve_correlations(published).set_index(["first", "second"])
    assert len(table) == 6
    assert table.loc[("accuracy", "tid2013"), "r"] == pytest.approx(-0.795)
    names = set(table.index.get_level_values(0)) | set(table.index.get_level_values(1))
    assert names == set(references.curve_names()) - {"noisy_accuracy"}
    assert references.curve_series_name("noise_drop", "cifar10-c/gaussian_noise", "severity=mean") == (
        "noise_sensitivity"
    )
    assert references.curve_series_name("noise_drop", "cifar10-c/gaussian_noise", "severity=3") is None


def test_missing_or_malformed_reference_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        references.load_references(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("metric,value\nx,1\n")
    with pytest.raises(DatasetError, match="lacks columns"):
        references.load_references(bad)
