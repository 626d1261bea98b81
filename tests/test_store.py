"""The results store: schema contract, atomic per-checkpoint writes, resume markers, locks, versions."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from clipdash.errors import StoreError
from clipdash.store import (
    SCHEMA_VERSION,
    CheckpointResult,
    EvalResult,
    ResultWriter,
    connect_read_only,
    format_variant,
    parse_variant,
)
from clipdash.store.queries import query, summary_table


def _result(run: str, epoch: int, value: float, evals: tuple[str, ...] = ("zeroshot",)) -> CheckpointResult:
    results = []
    for name in evals:
        entropies = pd.DataFrame(
            {"dataset": "cifar10", "tau": 0.07, "image_index": [0, 1], "entropy": [0.5, 1.5]}
        )
        features = pd.DataFrame(
            {
                "dataset": "cifar10",
                "split": "test",
                "image_index": [0, 1],
                "label": [3, 4],
                "cosines": [np.array([0.1, 0.2], np.float32), np.array([0.3, 0.4], np.float32)],
            }
        )
        results.append(
            EvalResult(
                name,
                1.0,
                [("acc1", "cifar10", "templates=clip", value)],
                {"entropies": entropies, "class_agnostic_features": features},
            )
        )
    return CheckpointResult(
        run, epoch, f"tiny@/{run}/", "tiny", "directory", f"/{run}/epoch_{epoch}.pt", "ab", results
    )


def test_variant_round_trip_sorted_keys():
    variant = format_variant(tau=0.07, C="cv", severity=3)
    assert variant == "C=cv;severity=3;tau=0.07"
    assert parse_variant(variant) == {"C": "cv", "severity": "3", "tau": "0.07"}
    assert format_variant() == "" and parse_variant("") == {}


def test_write_then_read_only_and_resume_markers(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        assert writer.completed("run-a") == set()
        writer.write(_result("run-a", 0, 0.1))
        writer.write(_result("run-a", 1, 0.4, ("zeroshot", "probe")))
        assert writer.completed("run-a") == {(0, "zeroshot"), (1, "zeroshot"), (1, "probe")}
    con = connect_read_only(db)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM metrics")  # the app's connection cannot write
    finally:
        con.close()
    metrics = query(db, "SELECT epoch, value FROM metrics ORDER BY epoch")
    assert metrics["value"].tolist() == [0.1, 0.4]
    cosines = query(db, "SELECT cosines FROM class_agnostic_features WHERE epoch = 0 ORDER BY image_index")
    assert np.allclose(cosines["cosines"].iloc[1], [0.3, 0.4])
    assert summary_table(db)["acc1"].tolist() == [0.1, 0.4]


def test_rewriting_a_checkpoint_replaces_rows_without_duplicates(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
        writer.write(_result("run-a", 0, 0.2))
    counts = query(
        db,
        "SELECT (SELECT count(*) FROM metrics) m, (SELECT count(*) FROM entropies) e, "
        "(SELECT count(*) FROM evaluations) v, (SELECT max(value) FROM metrics) x",
    )
    assert counts.iloc[0].tolist() == [1, 2, 1, 0.2]


def test_failed_write_leaves_previous_database_intact(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
        bad = _result("run-a", 1, 0.5)
        bad.evals[0].tables["no_such_table"] = pd.DataFrame({"x": [1]})
        with pytest.raises(StoreError, match="unknown table"):
            writer.write(bad)
    assert query(db, "SELECT count(*) n FROM metrics")["n"].item() == 1
    assert not (tmp_path / "results.duckdb.tmp").exists()


def test_second_writer_is_refused_while_first_holds_the_lock(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db):
        with pytest.raises(StoreError, match="another precompute job"):
            ResultWriter(db).__enter__()


def test_stale_copy_from_a_killed_job_is_discarded(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    (tmp_path / "results.duckdb.tmp").write_bytes(b"half-written garbage")
    with ResultWriter(db) as writer:
        assert writer.completed("run-a") == {(0, "zeroshot")}
        assert not writer.tmp_path.exists()


def test_missing_foreign_and_other_version_databases_are_refused_clearly(tmp_path):
    with pytest.raises(StoreError, match="not found"):
        connect_read_only(tmp_path / "absent.duckdb")
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).close()
    with pytest.raises(StoreError, match="not a clipdash results database"):
        connect_read_only(foreign)
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="is not a DuckDB database"):
        connect_read_only(garbage)
    old = tmp_path / "old.duckdb"
    with ResultWriter(old):
        pass
    with duckdb.connect(str(old)) as con:
        con.execute("UPDATE schema_version SET version = 0")
    with pytest.raises(StoreError, match="schema version 0, written by an older clipdash"):
        connect_read_only(old)
    with pytest.raises(StoreError, match="schema version 0"):
        ResultWriter(old).__enter__()


def test_summary_has_a_row_per_template_set_instead_of_the_max_over_them(tmp_path):
    """With clip and seed results for one checkpoint, the summary took max(acc1) over both, unnamed."""
    db = tmp_path / "results.duckdb"
    rows = [
        ("acc1", "cifar10", "templates=clip", 0.6),
        ("acc1", "cifar10", "templates=seed", 0.4),
        ("acc1", "cifar10-c/gaussian_noise", "severity=mean;templates=seed", 0.3),
        ("texture_bias", "cue-conflict", "protocol=two_prompt;templates=clip", 0.7),
        ("texture_bias", "cue-conflict", "class=cat;protocol=two_prompt;templates=clip", 0.9),
        ("srcc", "tid2013", "distortion=all", 0.2),
        ("srcc", "tid2013", "distortion=01", 0.8),
    ]
    with ResultWriter(db) as writer:
        result = _result("run-a", 0, 0.0)
        result.evals[0].metrics = rows
        writer.write(result)
    summary = summary_table(db).set_index("templates")
    assert summary.index.tolist() == ["clip", "seed"]
    assert summary.loc["clip", "acc1"] == 0.6 and summary.loc["seed", "acc1"] == 0.4
    assert np.isnan(summary.loc["clip", "noisy_acc1"]) and summary.loc["seed", "noisy_acc1"] == 0.3
    assert summary.loc["clip", "texture_bias"] == 0.7  # not the per-class row
    assert summary["tid2013_srcc"].tolist() == [0.2, 0.2]  # no template set: on every row


@pytest.mark.parametrize(
    ("variant", "pattern", "matches"),
    [
        ("templates=clip", "templates=*", True),
        ("severity=mean;templates=clip", "severity=mean;*", True),
        ("a_new_key=1;severity=mean;templates=clip", "severity=mean;*", True),  # a key sorting earlier
        ("severity=3;templates=clip", "severity=mean;*", False),
        ("class=cat;protocol=two_prompt;templates=clip", "protocol=two_prompt;templates=*", False),
        ("protocol=two_prompt;templates=clip", "protocol=two_prompt;templates=*", True),
        ("distortion=all", "distortion=all", True),
        ("distortion=01", "distortion=all", False),
        ("", "*", True),
        ("classifier=logreg;n_train=5000", "*", True),
    ],
)
def test_variant_patterns_match_fields_not_string_prefixes(variant, pattern, matches):
    """Glob patterns like 'severity=mean;*' break as soon as a key sorts before 'severity'."""
    from clipdash.store.db import variant_matches

    assert variant_matches(variant, pattern) is matches
