"""The results store: schema contract, atomic per-checkpoint writes, resume markers, locks, versions."""

from __future__ import annotations

import os
import shutil

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
)
from clipdash.store.queries import query, summary_table


def _result(
    run: str, epoch: int, value: float, evals: tuple[str, ...] = ("zeroshot",), replace: bool = False
) -> CheckpointResult:
    """One checkpoint's results: an acc1 row per measurement, class_agnostic's two per-item tables; each
    measurement under the setting ``<eval>-s1``."""
    results = []
    for name in evals:
        tables = {}
        if name == "class_agnostic":
            tables["entropies"] = pd.DataFrame(
                {"dataset": "cifar10", "tau": 0.07, "image_index": [0, 1], "entropy": [0.5, 1.5]}
            )
            tables["class_agnostic_features"] = pd.DataFrame(
                {
                    "dataset": "cifar10",
                    "split": "test",
                    "image_index": [0, 1],
                    "label": [3, 4],
                    "cosines": [np.array([0.1, 0.2], np.float32), np.array([0.3, 0.4], np.float32)],
                }
            )
        results.append(EvalResult(name, 1.0, [("acc1", "cifar10", "", value)], tables, setting=f"{name}-s1"))
    return CheckpointResult(
        run,
        epoch,
        f"tiny@/{run}/",
        "tiny",
        "directory",
        f"/{run}/epoch_{epoch}.pt",
        "ab",
        results,
        settings={f"{name}-s1": (name, '{"templates": "clip"}') for name in evals},
        replace=replace,
    )


def test_write_then_read_only_and_resume_markers(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        assert writer.completed("run-a") == set()
        writer.write(_result("run-a", 0, 0.1, ("zeroshot", "class_agnostic")))
        writer.write(_result("run-a", 1, 0.4, ("zeroshot", "probe")))
        assert writer.completed("run-a") == {
            (0, "zeroshot-s1"),
            (0, "class_agnostic-s1"),
            (1, "zeroshot-s1"),
            (1, "probe-s1"),
        }
    con = connect_read_only(db)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM metrics")  # the app's connection cannot write
    finally:
        con.close()
    metrics = query(db, "SELECT epoch, value FROM metrics WHERE setting = 'zeroshot-s1' ORDER BY epoch")
    assert metrics["value"].tolist() == [0.1, 0.4]
    settings = query(
        db, "SELECT setting, eval, settings->>'templates' AS t FROM evaluation_settings ORDER BY 1"
    )
    assert settings.values.tolist() == [
        ["class_agnostic-s1", "class_agnostic", "clip"],
        ["probe-s1", "probe", "clip"],
        ["zeroshot-s1", "zeroshot", "clip"],
    ]
    cosines = query(db, "SELECT cosines FROM class_agnostic_features WHERE epoch = 0 ORDER BY image_index")
    assert np.allclose(cosines["cosines"].iloc[1], [0.3, 0.4])
    assert summary_table(db)["acc1"].tolist() == [0.1, 0.4]


def test_rewriting_a_checkpoint_with_force_replaces_rows_without_duplicates(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1, ("class_agnostic",)))
        writer.write(_result("run-a", 0, 0.2, ("class_agnostic",), replace=True))  # --force
    counts = query(
        db,
        "SELECT (SELECT count(*) FROM metrics) m, (SELECT count(*) FROM entropies) e, "
        "(SELECT count(*) FROM evaluations) v, (SELECT max(value) FROM metrics) x",
    )
    assert counts.iloc[0].tolist() == [1, 2, 1, 0.2]


def test_a_measurement_writing_an_undeclared_table_is_refused(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        bad = _result("run-a", 0, 0.1)
        bad.evals[0].tables["entropies"] = pd.DataFrame({"x": [1]})  # class_agnostic's, not zeroshot's
        with pytest.raises(StoreError, match="undeclared tables"):
            writer.write(bad)
    assert query(db, "SELECT count(*) n FROM metrics")["n"].item() == 0


def test_failed_write_leaves_previous_database_intact(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
        bad = _result("run-a", 1, 0.5)
        bad.evals[0].tables["no_such_table"] = pd.DataFrame({"x": [1]})
        with pytest.raises(StoreError, match="undeclared tables"):
            writer.write(bad)
    assert query(db, "SELECT count(*) n FROM metrics")["n"].item() == 1
    assert not (tmp_path / "results.duckdb.tmp").exists()


def test_second_writer_is_refused_while_first_holds_the_lock(tmp_path):
    db = tmp_path / "results.duckdb"
    with ResultWriter(db):
        with pytest.raises(StoreError, match="another precompute job"):
            ResultWriter(db).__enter__()


def test_a_stale_tmp_from_a_killed_creation_is_discarded(tmp_path):
    """A new database is made as ``.tmp`` and renamed into place (older writers copied to ``.tmp`` for each
    checkpoint); a job killed in between leaves it behind, and the next job removes it."""
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
    (tmp_path / "results.duckdb.tmp").write_bytes(b"half-written garbage")
    with ResultWriter(db) as writer:
        assert writer.completed("run-a") == {(0, "zeroshot-s1")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.duckdb", "results.duckdb.lock"]


def test_a_checkpoint_write_never_copies_the_database(tmp_path, monkeypatch):
    """Each checkpoint is written into the file itself: no copy, no rename, the same inode."""
    db = tmp_path / "results.duckdb"
    with ResultWriter(db) as writer:
        writer.write(_result("run-a", 0, 0.1))
        inode = db.stat().st_ino

        def refused(*args, **kwargs):
            raise AssertionError(f"a checkpoint's write copied or renamed a file: {args}")

        for name in ("copyfile", "copy", "copy2", "copyfileobj"):
            monkeypatch.setattr(shutil, name, refused)
        monkeypatch.setattr(os, "replace", refused)
        monkeypatch.setattr(os, "rename", refused)
        for epoch in range(1, 4):
            writer.write(_result("run-a", epoch, 0.1 * epoch))
    assert db.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.duckdb", "results.duckdb.lock"]
    assert query(db, "SELECT list(epoch ORDER BY epoch) e FROM metrics")["e"].item().tolist() == [0, 1, 2, 3]


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
