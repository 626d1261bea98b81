"""The measurement registry: what every module declares, and what the rest of clipdash derives from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clipdash.measurements import (
    all_tables,
    default_curves,
    get_measurement,
    list_measurements,
    metric_titles,
    summary_series,
)
from clipdash.measurements.table import Table
from clipdash.precompute.cli import build_parser
from clipdash.precompute.config import EngineConfig
from clipdash.precompute.inputs import RunInputs
from clipdash.store.queries import default_curve_patterns


def test_the_registry_lists_every_module_in_the_cli_order():
    names = list_measurements()
    assert names[:7] == ["zeroshot", "noise", "tid2013", "livec", "cue_conflict", "probe", "class_agnostic"]
    assert "modality_gap" in names
    args = build_parser().parse_args(["--model", "x", "--data-root", ".", "--db", "x.duckdb"])
    assert args.evals.split(",") == names
    with pytest.raises(KeyError, match="choose from zeroshot, noise"):
        get_measurement("nope")


def test_every_declared_image_set_is_one_the_inputs_can_load(tmp_path):
    inputs = RunInputs(tmp_path, 32)
    known = set(inputs.image_sources())
    for name in list_measurements():
        assert set(get_measurement(name).image_sets(inputs)) <= known, name


def test_every_measurement_has_settings_a_description_and_tables_that_are_unique(tmp_path):
    config = EngineConfig(tmp_path, tuple(list_measurements()))
    for name in list_measurements():
        measurement = get_measurement(name)
        params = measurement.params(config)
        assert dataclasses.is_dataclass(params) and measurement.description
        assert all(isinstance(folder, str) for folder in measurement.data_folders(config))
    names = [table.name for table in all_tables()]
    assert len(names) == len(set(names))


def test_derived_defaults_come_from_the_declared_series():
    assert default_curve_patterns() == [
        ("acc1", "cifar10", ""),
        ("acc1", "cifar10-c/gaussian_noise", "severity=mean"),
        ("srcc", "tid2013", "distortion=all"),
        ("texture_bias", "cue-conflict", "protocol=two_prompt"),
        ("noise_drop", "cifar10-c/gaussian_noise", "severity=mean"),
    ]
    assert [s.summary for _, s in summary_series()][:3] == ["acc1", "noisy_acc1", "noise_drop"]
    assert metric_titles()["texture_bias"] == "Texture bias"
    assert [s.paper_name for s in default_curves()] == [
        "accuracy", "noisy_accuracy", "tid2013", "texture_bias", "noise_sensitivity"
    ]  # fmt: skip


def test_a_table_declares_its_key_columns_once():
    table = Table("example_rows", "one example", (("image", "VARCHAR"), ("score", "DOUBLE")))
    assert table.ddl().splitlines()[1] == "CREATE TABLE IF NOT EXISTS example_rows ("
    assert "setting VARCHAR NOT NULL" in table.ddl() and table.column_names == ("image", "score")
    with pytest.raises(ValueError, match="reserved"):
        Table("bad", "x", (("epoch", "INTEGER"),))


def test_importing_the_registry_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from clipdash.measurements import list_measurements, all_series; "
        "list_measurements(); all_series(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.stdout.strip() == "False"  # the dashboard reads the declarations; torch takes seconds
