"""The modality gap: a known answer on hand-made embeddings, the registry picks the module up, and the
engine stores per-class rows from which the stored numbers recompute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import cli_args

from clipdash.measurements import get_measurement, list_measurements
from clipdash.measurements.modality_gap import class_means, gap_from_classes
from clipdash.precompute.cli import build_parser, main
from clipdash.store.queries import query


def test_gap_of_hand_made_pairs():
    """Two classes on the unit circle: images at (1, 0) and (0, 1), texts at (0, 1) and (-1, 0)."""
    image = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = np.array([[0.0, 1.0], [-1.0, 0.0]])
    labels = np.array([0, 0, 1])
    values = gap_from_classes(class_means(image, text, labels))
    mean_image = np.array([2 / 3, 1 / 3])
    mean_text = np.array([-1 / 3, 2 / 3])  # two pairs with text 0, one with text 1
    assert values["gap"] == pytest.approx(np.linalg.norm(mean_image - mean_text))  # sqrt(10) / 3
    assert values["mean_cosine"] == pytest.approx(0.0)  # every image is orthogonal to its text
    same = gap_from_classes(class_means(text[labels], text, labels))
    assert same == {"gap": pytest.approx(0.0), "mean_cosine": pytest.approx(1.0)}


def test_the_registry_and_the_cli_know_it():
    assert "modality_gap" in list_measurements()
    assert (
        "modality_gap" in build_parser().parse_args(["--model", "x", "--data-root", ".", "--db", "x"]).evals
    )
    assert [t.name for t in get_measurement("modality_gap").tables] == ["modality_gap_classes"]


def test_the_engine_stores_per_class_rows_that_recompute_the_gap(tmp_path, tiny_run, shared_data):
    db = tmp_path / "results.duckdb"
    assert main(cli_args(tiny_run, shared_data, db, "--evals", "modality_gap")) == 0
    classes = query(db, "SELECT * FROM modality_gap_classes ORDER BY epoch, label")
    assert classes.groupby("epoch")["n_images"].sum().tolist() == [24, 24, 24]  # --limit 24, ten classes
    stored = query(db, "SELECT epoch, metric, value FROM metrics WHERE dataset = 'cifar10'")
    for epoch, rows in classes.groupby("epoch"):
        values = gap_from_classes(rows)
        for metric in ("gap", "mean_cosine"):
            expected = stored[(stored["epoch"] == epoch) & (stored["metric"] == metric)]["value"].item()
            assert values[metric] == pytest.approx(expected, rel=1e-5)
        assert 0 < values["gap"] < 2 and pd.notna(values["mean_cosine"])
