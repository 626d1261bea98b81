"""Older databases are migrated, not refused: a backup is kept, the user is told, a failure changes nothing.

The version-1 fixture is built from the version-1 schema (tests/assets/schema_v1.sql) with rows of each
kind, as a clipdash of that version wrote them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import ASSETS

from clipdash.errors import StoreError
from clipdash.store import SCHEMA_VERSION, ResultWriter, connect_read_only, migrations
from clipdash.store.migrate import main as migrate_main
from clipdash.store.queries import query


def version_1_database(path: Path) -> Path:
    """A version-1 results database: a directory run with two checkpoints, a pretrained tag, metrics."""
    with duckdb.connect(str(path)) as con:
        con.execute((ASSETS / "schema_v1.sql").read_text())
        con.execute("INSERT INTO schema_version VALUES (1)")
        con.execute(
            "INSERT INTO runs VALUES ('seed0', 'tiny@/runs/a/seed0/', 'tiny', 'directory', now()), "
            "('ViT-B-32:openai', 'ViT-B-32:openai', 'ViT-B-32', 'pretrained', now()), "
            "('one', 'tiny@/files/one.pt', 'tiny', 'file', now())"
        )
        con.execute(
            "INSERT INTO checkpoints VALUES ('seed0', 0, '/runs/a/seed0/epoch_0.pt', 'aa'), "
            "('seed0', 1, '/runs/a/seed0/epoch_1.pt', 'bb'), ('ViT-B-32:openai', -1, NULL, NULL), "
            "('one', -1, '/files/one.pt', 'cc')"
        )
        con.execute(
            "INSERT INTO metrics VALUES ('seed0', 0, 'acc1', 'cifar10', 'templates=clip', 0.25), "
            "('seed0', 1, 'acc1', 'cifar10', 'templates=clip', 0.5)"
        )
        con.execute("INSERT INTO evaluations VALUES ('seed0', 0, 'zeroshot', 1.0, now())")
    return path


def test_a_version_1_database_is_migrated_with_a_backup(tmp_path, caplog):
    db = version_1_database(tmp_path / "results.duckdb")
    original = db.read_bytes()
    with caplog.at_level(logging.WARNING, logger="clipdash.store.writer"):
        with ResultWriter(db) as writer:
            assert writer.migrated_from == 1
    assert f"migrated {db} from schema version 1 to {SCHEMA_VERSION}" in caplog.text
    backup = tmp_path / "results.duckdb.v1.bak"
    assert backup.read_bytes() == original
    assert query(db, "SELECT version FROM schema_version")["version"].item() == SCHEMA_VERSION
    runs = query(db, "SELECT run, source_path, n_params, params FROM runs ORDER BY run").set_index("run")
    assert runs.loc["seed0", "source_path"] == "/runs/a/seed0"
    assert runs.loc["one", "source_path"] == "/files/one.pt"
    assert pd.isna(runs.loc["ViT-B-32:openai", "source_path"])
    assert runs["n_params"].isna().all() and runs["params"].isna().all()  # unknown until a rerun
    assert query(db, "SELECT list(value ORDER BY epoch) v FROM metrics")["v"].item().tolist() == [0.25, 0.5]
    # schema 3: settings leave the variant for evaluation_settings; old rows get a legacy setting
    metrics = query(
        db,
        "SELECT m.variant, s.eval, s.settings::VARCHAR AS settings FROM metrics m "
        "JOIN evaluation_settings s USING (setting)",
    )
    assert set(metrics["variant"]) == {""} and set(metrics["eval"]) == {"zeroshot"}
    assert metrics["settings"].unique().tolist() == ['{"recorded": false, "templates": "clip"}']
    done = query(
        db,
        "SELECT e.epoch, e.setting = m.setting AS same FROM evaluations e JOIN metrics m USING (run, epoch)",
    )
    assert done.values.tolist() == [[0, True]]
    ids = query(db, "SELECT run_id, pretrained_tag FROM runs ORDER BY run")
    assert ids["run_id"].nunique() == 3 and ids["pretrained_tag"].tolist()[0] == "openai"
    with ResultWriter(db) as writer:  # now current: nothing to do
        assert writer.migrated_from is None
    assert not (tmp_path / "results.duckdb.v1.bak2").exists()


def test_the_dashboard_names_the_migration_command(tmp_path):
    db = version_1_database(tmp_path / "results.duckdb")
    with pytest.raises(StoreError, match=f"Upgrade it with python -m clipdash.store.migrate {db}"):
        connect_read_only(db)


def test_the_migrate_command(tmp_path, capsys):
    db = version_1_database(tmp_path / "results.duckdb")
    assert migrate_main([str(db)]) == 0
    assert f"{db}: migrated from schema version 1 to {SCHEMA_VERSION}" in capsys.readouterr().out
    assert migrate_main([str(db)]) == 0
    assert "already" in capsys.readouterr().out
    assert migrate_main([str(tmp_path / "absent.duckdb")]) == 2


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    db = version_1_database(tmp_path / "results.duckdb")
    original = db.read_bytes()

    def broken(con):
        con.execute("ALTER TABLE runs ADD COLUMN source_path VARCHAR")
        raise duckdb.IOException("No space left on device")

    monkeypatch.setitem(migrations.MIGRATIONS, 1, broken)
    with pytest.raises(
        StoreError, match="could not migrate .* from schema version 1 .No space left on device"
    ):
        ResultWriter(db).__enter__()
    assert db.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) in (
        ["results.duckdb"],
        ["results.duckdb", "results.duckdb.lock"],
    )


def test_new_runs_store_their_parameter_count_and_params(tmp_path, tiny_run, shared_data):
    import open_clip
    from conftest import cli_args

    from clipdash.precompute.cli import main

    (tiny_run.parent / "withparams").mkdir()
    run = tiny_run.parent / "withparams"
    for epoch in (0, 1):
        (run / f"epoch_{epoch}.pt").write_bytes((tiny_run / f"epoch_{epoch}.pt").read_bytes())
    (run / "params.txt").write_text("model: tiny-clip\nlr: 0.001\n")
    db = tmp_path / "results.duckdb"
    assert main(cli_args(run, shared_data, db, "--evals", "tid2013")) == 0
    row = query(db, "SELECT source_path, n_params, params->>'lr' AS lr FROM runs").iloc[0]
    expected = sum(p.numel() for p in open_clip.create_model("tiny-clip").parameters())
    assert (row["source_path"], row["n_params"], row["lr"]) == (str(run), expected, "0.001")
